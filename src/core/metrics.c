#include "core/metrics.h"

#include <string.h>
#include <sys/mman.h>

static jt_metrics local_metrics;
static jt_metrics *metrics = &local_metrics;

void *
jt_shared_zalloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return NULL;
    }
    memset(p, 0, n);
    return p;
}

int
jt_metrics_init_shared(void)
{
    void *p = jt_shared_zalloc(sizeof(jt_metrics));
    if (p == NULL) {
        return -1;
    }
    metrics = p;
    return 0;
}

jt_metrics *
jt_metrics_get(void)
{
    return metrics;
}

const int64_t jt_metrics_bucket_us[JT_METRICS_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
};

void
jt_histogram_observe(jt_histogram *h, int64_t us)
{
    int i;

    for (i = 0; i < JT_METRICS_BUCKETS; i++) {
        if (us <= jt_metrics_bucket_us[i]) {
            __atomic_fetch_add(&h->bucket[i], 1, __ATOMIC_RELAXED);
            break;
        }
    }
    __atomic_fetch_add(&h->sum_us, (uint64_t) (us > 0 ? us : 0), __ATOMIC_RELAXED);
    __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

void
jt_metrics_request(int route, int status, int64_t us)
{
    jt_route_metrics *m;
    int cls = status / 100 - 1;

    if (route < 0 || route >= JT_METRICS_ROUTES) {
        route = JT_METRICS_ROUTES - 1;
    }
    if (cls < 0 || cls > 4) {
        cls = 4;
    }
    m = &metrics->routes[route];
    __atomic_fetch_add(&m->status[cls], 1, __ATOMIC_RELAXED);
    jt_histogram_observe(&m->latency, us);
}

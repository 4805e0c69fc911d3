#include "core/metrics.h"

#include <string.h>
#include <sys/mman.h>

static jt_metrics local_metrics;
static jt_metrics *metrics = &local_metrics;

int
jt_metrics_init_shared(void)
{
    void *p = mmap(NULL, sizeof(jt_metrics), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return -1;
    }
    memset(p, 0, sizeof(jt_metrics));
    metrics = p;
    return 0;
}

jt_metrics *
jt_metrics_get(void)
{
    return metrics;
}

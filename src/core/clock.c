#include "core/clock.h"

#include <errno.h>
#include <sys/mman.h>
#include <time.h>

static int64_t  local_offset_ms;
static int64_t *offset_ms = &local_offset_ms;
static int      offset_on;

static int64_t
read_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
jt_clock_mono_us(void)
{
    return read_us(CLOCK_MONOTONIC);
}

int64_t
jt_clock_mono_ms(void)
{
    return read_us(CLOCK_MONOTONIC) / 1000;
}

int64_t
jt_clock_wall_us(void)
{
    return read_us(CLOCK_REALTIME);
}

int64_t
jt_clock_wall_ms(void)
{
    return read_us(CLOCK_REALTIME) / 1000;
}

int64_t
jt_clock_test_offset_ms(void)
{
    return offset_on ? __atomic_load_n(offset_ms, __ATOMIC_RELAXED) : 0;
}

/* Business time: the wall clock, moved by the test offset only where test
 * routes are on, so a production process can never be told another time. */
int64_t
jt_clock_now_us(void)
{
    return read_us(CLOCK_REALTIME) + jt_clock_test_offset_ms() * 1000;
}

int64_t
jt_clock_now_ms(void)
{
    return jt_clock_now_us() / 1000;
}

/* The offset lives in a page the master maps before it forks, so one
 * POST /test/clock, served by any worker, moves the clock of every worker
 * and bid consumer at once: a test never sees two processes disagree about
 * whether a sale has opened. */
int
jt_clock_init_shared(void)
{
    void *p = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        return -1;
    }
    *(int64_t *) p = 0;
    offset_ms = p;
    return 0;
}

/* Per process, set by the master from [server] enable_test_routes before
 * it forks (and again on reload, for the next generation): in production
 * the offset is never read, whatever the shared page holds. */
void
jt_clock_use_test_offset(int on)
{
    offset_on = on != 0;
}

void
jt_clock_set_test_offset_ms(int64_t off)
{
    __atomic_store_n(offset_ms, off, __ATOMIC_RELAXED);
}

/* nanosleep until the whole duration has passed: a signal (a consumer's
 * SIGQUIT, say) only shortens a sleep once its flag is looked at, never
 * a backoff or a test's hold on a transaction by accident. */
void
jt_clock_sleep_us(int64_t us)
{
    struct timespec ts;

    if (us <= 0) {
        return;
    }
    ts.tv_sec = (time_t) (us / 1000000);
    ts.tv_nsec = (long) (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void
jt_clock_sleep_ms(int64_t ms)
{
    jt_clock_sleep_us(ms * 1000);
}

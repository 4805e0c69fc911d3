/* The clocks: one function for each kind of time, so no module keeps its
 * own copy and no rule reads a clock the others do not.
 *
 *   business time   jt_clock_now_ms/_us: when a sale opens or closes, what
 *                   an auction costs now, when a receipt is stale. The wall
 *                   clock plus the test-only offset (POST /test/clock),
 *                   which is applied only in a process that was told test
 *                   routes are on (jt_clock_use_test_offset), and which
 *                   lives in one shared page so that moving it moves every
 *                   worker and consumer at once. Every business-time
 *                   comparison, in C or bound into SQL, reads this one.
 *   durations       jt_clock_mono_ms/_us: timeouts, deadlines, backoff,
 *                   latency, reconnect pauses. CLOCK_MONOTONIC: a wall
 *                   clock stepped backwards (NTP, an operator) must never
 *                   stretch a wait or stall a reconnect.
 *   wall time       jt_clock_wall_ms/_us: the real time of day, for log
 *                   stamps and start times shown in /status. Never shifted.
 */
#ifndef JT_CLOCK_H
#define JT_CLOCK_H

#include <stdint.h>

int64_t jt_clock_mono_ms(void);
int64_t jt_clock_mono_us(void);
int64_t jt_clock_wall_ms(void);
int64_t jt_clock_wall_us(void);

int64_t jt_clock_now_ms(void);
int64_t jt_clock_now_us(void);

/* The test offset's shared page: created by the master before it forks (a
 * process-local value otherwise, e.g. in the admin tool). 0 or -1. */
int     jt_clock_init_shared(void);
/* Whether this process (and the children it forks from now on) applies the
 * offset: the master passes [server] enable_test_routes. */
void    jt_clock_use_test_offset(int on);
void    jt_clock_set_test_offset_ms(int64_t offset_ms);
int64_t jt_clock_test_offset_ms(void);

/* Sleeps ms (<= 0: not at all), resuming after a signal, so a duration asked
 * for is a duration slept. */
void    jt_clock_sleep_ms(int64_t ms);
void    jt_clock_sleep_us(int64_t us);

#endif

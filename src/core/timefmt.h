/* UTC timestamps as the API writes them: 2026-12-01T09:00:00Z, with an
 * optional fraction (up to microseconds) and "Z" or "+00:00". */
#ifndef JT_TIMEFMT_H
#define JT_TIMEFMT_H

#include <stdint.h>

/* Strict: every field a fixed number of digits, the date must exist (no
 * 31 April), 1970..2100. 0 with *epoch_us set, or -1. */
int jt_parse_utc(const char *s, int64_t *epoch_us);

#endif

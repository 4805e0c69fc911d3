/* Times as text, in the two forms jangteo speaks, both UTC:
 *
 *   the API       2026-12-01T09:00:00Z, with an optional fraction (up to
 *                 microseconds) and "Z" or "+00:00";
 *   MariaDB       2026-12-01 09:00:00.000000, a DATETIME(6) as text (every
 *                 session runs with time_zone = '+00:00', store/db.c).
 *
 * Epoch microseconds are the common currency between them and the clock
 * (core/clock.h). */
#ifndef JT_TIMEFMT_H
#define JT_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define JT_SQL_TIME_LEN 27   /* "YYYY-MM-DD HH:MM:SS.ffffff" and its NUL */
#define JT_UTC_MS_LEN   25   /* "YYYY-MM-DDTHH:MM:SS.mmmZ" and its NUL */

/* Strict: every field a fixed number of digits, the date must exist (no
 * 31 April), 1970..2100. 0 with *epoch_us set, or -1. */
int  jt_parse_utc(const char *s, int64_t *epoch_us);

/* A DATETIME(6) as MariaDB writes it (the fraction optional), the same
 * strictness. 0 with *epoch_us set, or -1. */
int  jt_parse_sql_time(const char *s, int64_t *epoch_us);
void jt_format_sql_time(char out[JT_SQL_TIME_LEN], int64_t epoch_us);

/* The API's form with milliseconds: 2026-12-01T09:00:00.000Z. */
void jt_format_utc_ms(char out[JT_UTC_MS_LEN], int64_t epoch_ms);

#define JT_UTC_US_LEN 28   /* "YYYY-MM-DDTHH:MM:SS.ffffffZ" and its NUL */
/* ... and with microseconds, as DATE_FORMAT(t, '%Y-%m-%dT%H:%i:%s.%fZ'). */
void jt_format_utc_us(char out[JT_UTC_US_LEN], int64_t epoch_us);

#endif

#include "core/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int
digits(const char *s, int n, int *out)
{
    int i, v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Both forms: "YYYY-MM-DD?HH:MM:SS[.fraction]" with `sep` between date and
 * time; the API's ('T') must end in "Z" or "+00:00", MariaDB's (' ') right
 * after the seconds or their fraction. Checks the ranges and that the date
 * exists; 0 with *epoch_us set, or -1. */
static int
parse_datetime(const char *s, char sep, int64_t *epoch_us)
{
    int y, mo, d, h, mi, sec, us = 0, n = 0;
    const char *p;
    struct tm tm, back;
    time_t t;

    if (s == NULL || strlen(s) < 19 || s[4] != '-' || s[7] != '-' || s[10] != sep || s[13] != ':'
        || s[16] != ':' || digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d)
        || digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec)) {
        return -1;
    }
    p = s + 19;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 6) {
                us = us * 10 + (*p - '0');
            }
        }
        if (n == 0) {
            return -1;
        }
        for (; n < 6; n++) {
            us *= 10;
        }
    }
    if (sep == 'T' ? strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0 : *p != '\0') {
        return -1;
    }
    if (y < 1970 || y > 2100 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) {
        return -1;
    }
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    gmtime_r(&t, &back);
    if (back.tm_mday != d || back.tm_mon != mo - 1) {   /* 30 February rolls into March */
        return -1;
    }
    *epoch_us = (int64_t) t * 1000000 + us;
    return 0;
}

int
jt_parse_utc(const char *s, int64_t *epoch_us)
{
    return parse_datetime(s, 'T', epoch_us);
}

int
jt_parse_sql_time(const char *s, int64_t *epoch_us)
{
    return parse_datetime(s, ' ', epoch_us);
}

/* "<date><sep><time>" then ".<digits>" (the first `digits` of the
 * microseconds) and `zone`, into out of len bytes. strftime, not printf,
 * for the calendar part: no field can overflow it unnoticed (a year past
 * 9999 gives an empty string; the parsers never let one in). */
static void
format(char *out, size_t len, int64_t epoch_us, char sep, int digits, const char *zone)
{
    time_t t = (time_t) (epoch_us / 1000000);
    unsigned frac = (unsigned) (epoch_us % 1000000);
    const char *fmt = sep == 'T' ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S";
    struct tm tm;
    size_t n;

    gmtime_r(&t, &tm);
    n = strftime(out, len, fmt, &tm);
    if (n != 19) {
        out[0] = '\0';
        return;
    }
    if (digits == 3) {
        snprintf(out + n, len - n, ".%03u%s", (frac / 1000) % 1000, zone);
    } else {
        snprintf(out + n, len - n, ".%06u%s", frac % 1000000, zone);
    }
}

void
jt_format_sql_time(char out[JT_SQL_TIME_LEN], int64_t epoch_us)
{
    format(out, JT_SQL_TIME_LEN, epoch_us, ' ', 6, "");
}

void
jt_format_utc_ms(char out[JT_UTC_MS_LEN], int64_t epoch_ms)
{
    format(out, JT_UTC_MS_LEN, epoch_ms * 1000, 'T', 3, "Z");
}

void
jt_format_utc_us(char out[JT_UTC_US_LEN], int64_t epoch_us)
{
    format(out, JT_UTC_US_LEN, epoch_us, 'T', 6, "Z");
}

#include "core/timefmt.h"

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

int
jt_parse_utc(const char *s, int64_t *epoch_us)
{
    int y, mo, d, h, mi, sec, us = 0, n = 0;
    const char *p;
    struct tm tm, back;
    time_t t;

    if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':'
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
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0) {
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

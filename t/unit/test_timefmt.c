/* UTC times as text: the API's strict parser, MariaDB's DATETIME(6) text,
 * and the writers. Every figure is an epoch value worked out separately. */
#include "core/timefmt.h"
#include "tap.h"

/* A text, the epoch microseconds it means (-1: refused), and why. */
typedef struct {
    const char *text;
    int64_t     us;
    const char *name;
} time_case;

static const time_case api_cases[] = {
    /* valid */
    { "2026-12-01T09:00:00Z", 1796115600000000LL, "2026-12-01T09:00:00Z" },
    { "2026-12-01T09:00:00+00:00", 1796115600000000LL, "+00:00 is Z" },
    { "2026-12-01T09:00:00.5Z", 1796115600500000LL, "one fraction digit is tenths" },
    { "2026-12-01T09:00:00.123456Z", 1796115600123456LL, "six are microseconds" },
    { "2026-12-01T09:00:00.1234567Z", 1796115600123456LL, "a seventh digit is dropped, not rounded" },
    { "1970-01-01T00:00:00Z", 0, "the first instant allowed" },
    { "2100-12-31T23:59:59.999999Z", 4133980799999999LL, "the last instant allowed" },
    /* leap years */
    { "2028-02-29T00:00:00Z", 1835395200000000LL, "29 February of a leap year" },
    { "2000-02-29T12:00:00Z", 951825600000000LL, "29 February 2000 (divisible by 400)" },
    { "2027-02-29T00:00:00Z", -1, "29 February of a common year is refused" },
    { "2100-02-29T00:00:00Z", -1, "29 February 2100 (divisible by 100) is refused" },
    { "2026-04-31T00:00:00Z", -1, "31 April is refused" },
    /* out of range */
    { "1969-12-31T23:59:59Z", -1, "before 1970" },
    { "2101-01-01T00:00:00Z", -1, "after 2100" },
    { "2026-00-10T09:00:00Z", -1, "month 0" },
    { "2026-13-01T00:00:00Z", -1, "month 13" },
    { "2026-12-00T09:00:00Z", -1, "day 0" },
    { "2026-12-32T09:00:00Z", -1, "day 32" },
    { "2026-12-01T24:00:00Z", -1, "hour 24" },
    { "2026-12-01T23:60:00Z", -1, "minute 60" },
    { "2026-12-01T23:59:60Z", -1, "second 60 (no leap seconds)" },
    /* offsets and shape: UTC only, every field its fixed width */
    { "2026-12-01T09:00:00+09:00", -1, "another offset is refused (send UTC)" },
    { "2026-12-01T09:00:00-00:00", -1, "-00:00 is refused" },
    { "2026-12-01T09:00:00z", -1, "a lower-case z is refused" },
    { "2026-12-01T09:00:00", -1, "no zone is refused" },
    { "2026-12-01T09:00:00ZZ", -1, "trailing bytes are refused" },
    { "2026-12-01 09:00:00Z", -1, "a space for the T is refused" },
    { "2026-12-01T09:00:00.Z", -1, "a dot without digits is refused" },
    { "2026-1-01T09:00:00Z", -1, "a one-digit month is refused" },
    { "+026-12-01T09:00:00Z", -1, "a sign is refused" },
    { "", -1, "the empty string is refused" },
    { NULL, -1, "NULL is refused" },
};

static const time_case sql_cases[] = {
    { "2026-12-01 09:00:00.000000", 1796115600000000LL, "DATETIME(6) text" },
    { "2026-12-01 09:00:00", 1796115600000000LL, "DATETIME without a fraction" },
    { "2030-01-01 00:00:00.123000", 1893456000123000LL, "an odd millisecond" },
    { "2026-12-01T09:00:00", -1, "the API's T is not MariaDB's" },
    { "2026-12-01 09:00:00Z", -1, "nor is a zone" },
    { "2027-02-29 00:00:00", -1, "the same calendar check" },
};

static int64_t
utc(const char *s)
{
    int64_t us = -1;

    return jt_parse_utc(s, &us) == 0 ? us : -1;
}

static int64_t
sqlt(const char *s)
{
    int64_t us = -1;

    return jt_parse_sql_time(s, &us) == 0 ? us : -1;
}

int
main(void)
{
    char sql[JT_SQL_TIME_LEN], api[JT_UTC_MS_LEN];
    size_t i;

    for (i = 0; i < sizeof(api_cases) / sizeof(api_cases[0]); i++) {
        is_int(utc(api_cases[i].text), api_cases[i].us, "API: %s", api_cases[i].name);
    }
    for (i = 0; i < sizeof(sql_cases) / sizeof(sql_cases[0]); i++) {
        is_int(sqlt(sql_cases[i].text), sql_cases[i].us, "MariaDB: %s", sql_cases[i].name);
    }

    /* writers, and round trips */
    jt_format_sql_time(sql, 1893456000123456LL);
    is_str(sql, "2030-01-01 00:00:00.123456", "DATETIME(6) text of an instant");
    jt_format_sql_time(sql, 0);
    is_str(sql, "1970-01-01 00:00:00.000000", "... of the epoch");
    is_int(sqlt(sql), 0, "... which reads back");
    jt_format_sql_time(sql, utc("2028-02-29T23:59:59.999999Z"));
    is_str(sql, "2028-02-29 23:59:59.999999", "an API time as DATETIME(6) text");
    jt_format_utc_ms(api, 1893456000123LL);
    is_str(api, "2030-01-01T00:00:00.123Z", "the API's millisecond form");
    is_int(utc(api), 1893456000123000LL, "... which the parser reads back");
    {
        char us[JT_UTC_US_LEN];
        jt_format_utc_us(us, 1893456000123456LL);
        is_str(us, "2030-01-01T00:00:00.123456Z", "the microsecond form (DATE_FORMAT %%Y-%%m-%%dT%%H:%%i:%%s.%%fZ)");
        is_int(utc(us), 1893456000123456LL, "... which the parser reads back");
        jt_format_utc_us(us, 0);
        is_str(us, "1970-01-01T00:00:00.000000Z", "... of the epoch");
    }

    return done_testing();
}

/* If-Match as a row version (PATCH, DELETE and restock of a product). */
#include "http/conditional.h"
#include "tap.h"

/* The version, or -1 absent, -2 malformed. */
static int64_t
if_match(const char *h)
{
    int64_t v = -99;

    switch (jt_http_parse_if_match(h, &v)) {
    case JT_IF_MATCH_ABSENT:    return -1;
    case JT_IF_MATCH_VERSION:   return v;
    case JT_IF_MATCH_MALFORMED: return -2;
    }
    return -99;
}

int
main(void)
{
    is_int(if_match(NULL), -1, "no header: absent");
    is_int(if_match("3"), 3, "a bare version");
    is_int(if_match("\"3\""), 3, "an entity tag");
    is_int(if_match("W/\"3\""), 3, "a weak tag (the W/ prefix)");
    is_int(if_match("W/3"), 3, "W/ before a bare version");
    is_int(if_match("0"), 0, "version 0, a new row");
    is_int(if_match("00042"), 42, "leading zeros");
    is_int(if_match("9223372036854775807"), 9223372036854775807LL, "the largest version");
    /* the quotes are optional on each side, as they always were */
    is_int(if_match("\"3"), 3, "an opening quote alone is taken");
    is_int(if_match("3\""), 3, "a closing quote alone is taken");

    is_int(if_match(""), -2, "an empty header is malformed");
    is_int(if_match("\"\""), -2, "an empty tag is malformed");
    is_int(if_match("*"), -2, "* (any version) is not supported: malformed");
    is_int(if_match("3, 4"), -2, "a list is malformed");
    is_int(if_match("\"3\", \"4\""), -2, "a list of tags is malformed");
    is_int(if_match(" 3"), -2, "a leading space is malformed");
    is_int(if_match("3 "), -2, "a trailing space is malformed");
    is_int(if_match("w/\"3\""), -2, "a lower-case w/ is malformed");
    is_int(if_match("W/"), -2, "W/ alone is malformed");
    is_int(if_match("W/W/\"3\""), -2, "W/ twice is malformed");
    is_int(if_match("\"\"3\"\""), -2, "doubled quotes are malformed");
    is_int(if_match("-1"), -2, "a sign is malformed");
    is_int(if_match("abc"), -2, "letters are malformed");
    is_int(if_match("9223372036854775808"), -2, "past INT64_MAX is malformed");
    is_int(if_match("99999999999999999999999"), -2, "past 64 bits is malformed");

    return done_testing();
}

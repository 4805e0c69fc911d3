#include "http/conditional.h"

#include <string.h>

#include "http/request.h"

/* A version is a decimal row version, the one GET answers carry. W/ and
 * the quotes of an entity tag are taken off when present (each quote on
 * its own, as clients have always sent them); everything else that is not
 * exactly one version is refused rather than guessed at: a write that was
 * conditional must never go through unconditionally. */
jt_if_match
jt_http_parse_if_match(const char *h, int64_t *v)
{
    char digits[24];
    size_t n = 0;
    uint64_t u;

    if (h == NULL) {
        return JT_IF_MATCH_ABSENT;
    }
    if (!strncmp(h, "W/", 2)) {
        h += 2;
    }
    if (*h == '"') {
        h++;
    }
    while (*h >= '0' && *h <= '9' && n < sizeof(digits) - 1) {
        digits[n++] = *h++;
    }
    digits[n] = '\0';
    if (*h == '"') {
        h++;
    }
    if (*h != '\0' || jt_parse_u64(digits, &u) != 0 || u > INT64_MAX) {
        return JT_IF_MATCH_MALFORMED;
    }
    *v = (int64_t) u;
    return JT_IF_MATCH_VERSION;
}

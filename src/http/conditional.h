/* Conditional requests (RFC 9110 section 13): the version a client last
 * saw, sent as If-Match, so a write on a row that has changed since is
 * refused (412) instead of overwriting what the client never saw. */
#ifndef JT_CONDITIONAL_H
#define JT_CONDITIONAL_H

#include <stdint.h>

typedef enum {
    JT_IF_MATCH_ABSENT = 0,   /* no If-Match: write unconditionally */
    JT_IF_MATCH_VERSION,      /* *version is set */
    JT_IF_MATCH_MALFORMED     /* answer 400 */
} jt_if_match;

/* If-Match as a row version: 3, "3" or W/"3" (one version; a list, "*" or
 * anything else is malformed). */
jt_if_match jt_http_parse_if_match(const char *header, int64_t *version);

#endif

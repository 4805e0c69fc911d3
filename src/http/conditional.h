/* Conditional requests (RFC 9110 section 13): the version a client last
 * saw, sent as If-Match, so a write on a row that has changed since is
 * refused (412) instead of overwriting what the client never saw. */
#ifndef JT_CONDITIONAL_H
#define JT_CONDITIONAL_H

#include <stdint.h>

/* If-Match as a row version: 3, "3" or W/"3". 0 absent, 1 parsed (with
 * *version set), -1 malformed. */
int jt_http_parse_if_match(const char *header, int64_t *version);

#endif

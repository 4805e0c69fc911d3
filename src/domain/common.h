/* Small helpers every domain module uses. */
#ifndef JT_DOMAIN_COMMON_H
#define JT_DOMAIN_COMMON_H

#include "http/request.h"
#include "store/db.h"

/* Maps a failed statement to the answer: 503 when the database is down,
 * 500 (a bug) otherwise. */
jt_err jt_db_fail(jt_req *r, jt_db_rc rc);

/* Starts a JSON answer in the request arena. */
void jt_json_begin(jt_req *r, jt_buf *b, jt_json *w, size_t cap);

#endif

/* Cursor (keyset) pagination, newest first, for every list of rows with a
 * growing id: a user's orders, points ledger and receipts today, and the
 * cart, notification and order-event lists to come.
 *
 *   ?cursor=  an id: the page holds the rows with id < cursor (absent: from
 *             the newest); 1..INT64_MAX, else 400 naming the parameter.
 *   ?limit=   rows per page, 1..max_limit (the list's own cap), default
 *             JT_CURSOR_DEFAULT_LIMIT; else 400 naming the parameter.
 *
 * The list's statement ends in its cursor and its limit, and reads one row
 * more than the page shows, so no COUNT(*) is needed to know whether
 * another page exists:
 *
 *     SELECT ... WHERE owner = ? AND id < ? ORDER BY id DESC LIMIT ?
 *
 * jt_cursor_fetch() binds the list's own parameters, then the cursor and
 * limit + 1, runs it and drops the extra row. The answer is
 * {"items":[...],"nextCursor":N} (null on the last page): jt_cursor_open()
 * writes up to the items array, the caller writes one element per row,
 * jt_cursor_close() writes the rest. nextCursor is the id of the last row
 * shown, which the client passes back as ?cursor=; rows inserted meanwhile
 * are newer, so they never shift a page the way an OFFSET would. */
#ifndef JT_CURSOR_H
#define JT_CURSOR_H

#include <stdint.h>

#include "core/buf.h"
#include "http/request.h"
#include "store/db.h"

#define JT_CURSOR_DEFAULT_LIMIT 20

#define JT_CURSOR_MAX_PARAMS 6   /* the list's own parameters, before the two */

typedef struct {
    int64_t cursor;     /* rows with id < cursor */
    int64_t limit;      /* rows the page shows */
    int     more;       /* set by jt_cursor_fetch: another page exists */
    int64_t next;       /* and its cursor: the id of the last row shown */
} jt_cursor;

/* Reads ?cursor= and ?limit= of r. JT_OK, or a 400 naming the parameter. */
jt_err jt_cursor_parse(jt_req *r, jt_cursor *c, int64_t max_limit);
/* Runs sql with params[0..n-1], the cursor and limit + 1; keeps at most
 * limit rows, the id of each in column id_col. JT_OK, or the database's
 * failure as an answer (jt_db_fail). */
jt_err jt_cursor_fetch(jt_req *r, jt_cursor *c, const char *sql, const jt_val *params, int n, int id_col,
                       jt_rows *rows);
void   jt_cursor_open(jt_json *w);
void   jt_cursor_close(const jt_cursor *c, jt_json *w);

#endif

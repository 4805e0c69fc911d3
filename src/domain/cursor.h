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
 * jt_cursor_answer() binds the list's own parameters, then the cursor and
 * limit + 1, runs it, drops the extra row and answers 200 with
 * {"items":[...],"nextCursor":N} (null on the last page), each item written
 * by the list's own jt_cursor_item. nextCursor is the id of the last row
 * shown, which the client passes back as ?cursor=; rows inserted meanwhile
 * are newer, so they never shift a page the way an OFFSET would.
 *
 * A list handler therefore reads: authorise, jt_cursor_parse, check its
 * own parameters, return jt_cursor_answer; jt_cursor_user_list is that
 * whole handler for a list of one user's rows with no parameter of its
 * own (/api/v1/users/{userId}/...). */
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

/* The public lists that are cached by page (products, auctions) keep
 * numbered pages instead: ?page= (1..max_page, default 1) and ?size=
 * (1..JT_PAGE_MAX_SIZE, default JT_CURSOR_DEFAULT_LIMIT), read here. */
#define JT_PAGE_MAX_SIZE 100
jt_err jt_page_parse(jt_req *r, int64_t max_page, int64_t *page, int64_t *size);

/* Reads ?cursor= and ?limit= of r. JT_OK, or a 400 naming the parameter. */
jt_err jt_cursor_parse(jt_req *r, jt_cursor *c, int64_t max_limit);
/* Writes row i of a page as one element of "items" (JT_OK, or an error
 * that becomes the answer instead). */
typedef jt_err (*jt_cursor_item)(jt_req *r, jt_json *w, const jt_rows *rows, int i);

/* Runs sql with params[0..n-1], the cursor and limit + 1 (each row's id in
 * column id_col) and answers the page; row_bytes sizes the answer buffer.
 * JT_OK with the answer given, or the error to answer (the database's
 * failure, or an item's). */
jt_err jt_cursor_answer(jt_req *r, jt_cursor *c, const char *sql, const jt_val *params, int n, int id_col,
                        size_t row_bytes, jt_cursor_item item);

/* GET /api/v1/users/{userId}/...: the page of sql (WHERE owner = {userId}
 * AND id < ? ... LIMIT ?) for that user or an admin (403 otherwise). */
jt_err jt_cursor_user_list(jt_req *r, int64_t max_limit, const char *sql, int id_col, size_t row_bytes,
                           jt_cursor_item item);

#endif

#include "domain/cursor.h"

#include "domain/accounts.h"
#include "domain/common.h"

jt_err
jt_page_parse(jt_req *r, int64_t max_page, int64_t *page, int64_t *size)
{
    jt_err e;

    if ((e = jt_req_query_int(r, "page", 1, 1, max_page, page)) != JT_OK
        || (e = jt_req_query_int(r, "size", JT_CURSOR_DEFAULT_LIMIT, 1, JT_PAGE_MAX_SIZE, size)) != JT_OK) {
        return e;
    }
    return JT_OK;
}

/* Both parameters are bounded before any statement runs: a cursor of 0 or
 * a negative limit would be an empty or unbounded page, never an answer
 * the client meant. */
jt_err
jt_cursor_parse(jt_req *r, jt_cursor *c, int64_t max_limit)
{
    jt_err e;

    c->more = 0;
    c->next = 0;
    if ((e = jt_req_query_int(r, "cursor", INT64_MAX, 1, INT64_MAX, &c->cursor)) != JT_OK
        || (e = jt_req_query_int(r, "limit", JT_CURSOR_DEFAULT_LIMIT, 1, max_limit, &c->limit)) != JT_OK) {
        return e;
    }
    return JT_OK;
}

/* One page, newest first. The statement is asked for one row more than the
 * page shows: whether it came is whether a next page exists, with no
 * COUNT(*); it is dropped before anything is written. */
jt_err
jt_cursor_answer(jt_req *r, jt_cursor *c, const char *sql, const jt_val *params, int n, int id_col,
                 size_t row_bytes, jt_cursor_item item)
{
    jt_val p[JT_CURSOR_MAX_PARAMS + 2];
    jt_rows rows;
    jt_db_rc rc;
    jt_buf b;
    jt_json w;
    jt_err e;
    int i;

    if (n < 0 || n > JT_CURSOR_MAX_PARAMS) {
        return jt_fail(r, JT_E_INTERNAL, "a list with %d parameters", n);
    }
    for (i = 0; i < n; i++) {
        p[i] = params[i];
    }
    p[n] = JT_VI(c->cursor);
    p[n + 1] = JT_VI(c->limit + 1);
    if ((rc = jt_db_exec(r->db, r->arena, sql, p, n + 2, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    c->more = rows.nrows > c->limit;
    if (c->more) {
        rows.nrows = (int) c->limit;
        c->next = jt_cell(&rows, rows.nrows - 1, id_col)->i;
    }

    jt_json_begin(r, &b, &w, 128 + (size_t) rows.nrows * row_bytes);
    jw_obj_open(&w);
    jw_key(&w, "items");
    jw_arr_open(&w);
    for (i = 0; i < rows.nrows; i++) {
        if ((e = item(r, &w, &rows, i)) != JT_OK) {
            return e;
        }
    }
    jw_arr_close(&w);
    if (c->more) {
        jw_kint(&w, "nextCursor", c->next);
    } else {
        jw_knull(&w, "nextCursor");
    }
    jw_obj_close(&w);
    if (b.oom) {
        return jt_fail(r, JT_E_INTERNAL, "out of memory");
    }
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* A user's own list, or any user's for an admin: the owner is the path's
 * {userId}, checked (and, for an admin, found) before the page is read. */
jt_err
jt_cursor_user_list(jt_req *r, int64_t max_limit, const char *sql, int id_col, size_t row_bytes,
                    jt_cursor_item item)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_val p[1] = { JT_VI(uid) };
    jt_principal who;
    jt_cursor c;
    jt_err e;

    if ((e = auth_require_user(r, &who, uid)) != JT_OK || (e = jt_cursor_parse(r, &c, max_limit)) != JT_OK) {
        return e;
    }
    return jt_cursor_answer(r, &c, sql, p, 1, id_col, row_bytes, item);
}

#include "domain/cursor.h"

#include "domain/common.h"

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

jt_err
jt_cursor_fetch(jt_req *r, jt_cursor *c, const char *sql, const jt_val *params, int n, int id_col,
                jt_rows *rows)
{
    jt_val p[JT_CURSOR_MAX_PARAMS + 2];
    jt_db_rc rc;
    int i;

    if (n < 0 || n > JT_CURSOR_MAX_PARAMS) {
        return jt_fail(r, JT_E_INTERNAL, "a list with %d parameters", n);
    }
    for (i = 0; i < n; i++) {
        p[i] = params[i];
    }
    p[n] = JT_VI(c->cursor);
    p[n + 1] = JT_VI(c->limit + 1);   /* one row more says whether a next page exists */
    if ((rc = jt_db_exec(r->db, r->arena, sql, p, n + 2, rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    c->more = rows->nrows > c->limit;
    if (c->more) {
        rows->nrows = (int) c->limit;
        c->next = jt_cell(rows, rows->nrows - 1, id_col)->i;
    }
    return JT_OK;
}

void
jt_cursor_open(jt_json *w)
{
    jw_obj_open(w);
    jw_key(w, "items");
    jw_arr_open(w);
}

void
jt_cursor_close(const jt_cursor *c, jt_json *w)
{
    jw_arr_close(w);
    if (c->more) {
        jw_kint(w, "nextCursor", c->next);
    } else {
        jw_knull(w, "nextCursor");
    }
    jw_obj_close(w);
}

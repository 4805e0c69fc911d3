#include "domain/common.h"

#include <string.h>

#include "core/clock.h"

jt_err
jt_db_fail(jt_req *r, jt_db_rc rc)
{
    if (rc == JT_DB_DOWN || rc == JT_DB_RETRY) {
        return jt_fail(r, JT_E_DATABASE_UNAVAILABLE, "the database is unavailable; retry later");
    }
    return jt_fail(r, JT_E_INTERNAL, "database error");
}

void
jt_json_begin(jt_req *r, jt_buf *b, jt_json *w, size_t cap)
{
    jt_buf_init(b, r->arena, cap);
    jw_init(w, b);
}

/* The text is written into the caller's buffer, not the arena: binding a
 * time can then never fail, and a statement bound twice with one instant
 * (JT_SQL_CLOCK in two arms) points both parameters at the same bytes. */
jt_val
jt_sql_time(jt_sql_time_buf *buf, int64_t epoch_us)
{
    jt_format_sql_time(buf->text, epoch_us);
    return JT_VB(buf->text, strlen(buf->text));
}

jt_val
jt_sql_now(jt_sql_time_buf *buf)
{
    return jt_sql_time(buf, jt_clock_now_us());
}

/* Small helpers every domain module uses. */
#ifndef JT_DOMAIN_COMMON_H
#define JT_DOMAIN_COMMON_H

#include <stdint.h>

#include "core/timefmt.h"
#include "http/request.h"
#include "store/db.h"

/* Maps a failed statement to the answer: 503 when the database is down,
 * 500 (a bug) otherwise. */
jt_err jt_db_fail(jt_req *r, jt_db_rc rc);

/* Starts a JSON answer in the request arena. */
void jt_json_begin(jt_req *r, jt_buf *b, jt_json *w, size_t cap);

/* Business time in SQL. Every business time is a DATETIME(6) in UTC (sale
 * windows, auction windows, the instant a bid was accepted), and a rule
 * that depends on the time compares it with the app's clock (core/clock.h,
 * test offset included), never with MariaDB's NOW(6): so one clock moves
 * sale windows, auctions and every scheduler alike.
 *
 * A statement that needs "now" joins JT_SQL_CLOCK, a one-row table `clk`
 * whose column `now` is a bound parameter, and binds jt_sql_now() in that
 * parameter's place; a business time written into a row is bound with
 * jt_sql_time(). JT_SQL_EPOCH_MS reads one back as epoch milliseconds.
 *
 * What stays on the database's clock, and why: stamps of record
 * (created_at, updated_at, deleted_at, cancelled_at) are written by it and
 * compared only with it (popular's "last three days"); lifetimes kept
 * beside a Redis TTL (idempotency keys) or for security (bearer tokens) run
 * on real time, which a test offset must not stretch. */
#define JT_SQL_CLOCK "(SELECT CAST(? AS DATETIME(6)) AS now) clk"
#define JT_SQL_EPOCH_MS(col) "(TIMESTAMPDIFF(MICROSECOND, TIMESTAMP'1970-01-01 00:00:00', " col ") DIV 1000)"

/* The text a bound time points at: it must live until the statement ran. */
typedef struct {
    char text[JT_SQL_TIME_LEN];
} jt_sql_time_buf;

jt_val jt_sql_time(jt_sql_time_buf *buf, int64_t epoch_us);
jt_val jt_sql_now(jt_sql_time_buf *buf);

#endif

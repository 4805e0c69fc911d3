/* MariaDB: one connection per worker, opened after fork, prepared statements
 * only (cached per connection, keyed by the SQL text's address), results
 * copied into the request arena. Like hiredis, a broken connection is thrown
 * away and replaced, never reused: jt_db_ready() reconnects on demand. */
#ifndef JT_DB_H
#define JT_DB_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"

enum { JT_V_NULL = 0, JT_V_INT, JT_V_STR };

typedef struct {
    int         type;
    int64_t     i;
    const char *s;     /* NUL-terminated for results */
    size_t      len;
} jt_val;

#define JT_VI(x)     ((jt_val) { .type = JT_V_INT, .i = (int64_t) (x) })
#define JT_VS(x)     ((jt_val) { .type = JT_V_STR, .s = (x), .len = strlen(x) })
#define JT_VB(p, n)  ((jt_val) { .type = JT_V_STR, .s = (const char *) (p), .len = (n) })
#define JT_VNULL     ((jt_val) { .type = JT_V_NULL })

typedef struct {
    int      nrows;
    int      ncols;
    jt_val  *cells;          /* nrows * ncols */
    uint64_t affected;
    uint64_t insert_id;
} jt_rows;

static inline jt_val *
jt_cell(const jt_rows *rs, int row, int col)
{
    return &rs->cells[row * rs->ncols + col];
}

/* An integer cell whatever type MariaDB gave it: a BIGINT as is, a DECIMAL
 * (what SUM, and COALESCE or LEAST over one, return) from its text, NULL
 * as 0. */
int64_t jt_val_int(const jt_val *v);

/* Outcomes of a statement. */
typedef enum {
    JT_DB_OK = 0,
    JT_DB_RETRY,      /* deadlock (1213) or lock wait timeout (1205): retry the transaction */
    JT_DB_DOWN,       /* connection lost, cannot connect, or a Galera node not ready (1047): 503 */
    JT_DB_DUPLICATE,  /* unique key violation (1062) */
    JT_DB_ERROR       /* anything else: a bug */
} jt_db_rc;

#define JT_DB_MAX_STMTS 160

struct jt_db_stmt {
    const char *sql;
    void       *stmt;   /* MYSQL_STMT * */
};

typedef struct jt_db {
    void              *conn;         /* MYSQL *, NULL when down */
    const jt_conf     *conf;
    const char        *user;
    const char        *password;
    struct jt_db_stmt  stmts[JT_DB_MAX_STMTS];
    int                nstmts;
    int64_t            retry_at_ms;  /* no reconnect before this (jt_clock_mono_ms) */
    int                node;         /* [mariadb] hosts: the node in use, or to try first */
    int64_t            failback_at_ms; /* on a node other than the first: try the first again then */
    int64_t            used_ms;      /* the last statement's start: an idle connection is pinged */
    int                in_tx;        /* START TRANSACTION sent, no COMMIT/ROLLBACK yet */
    int                fail_next;    /* test-only, see [testing] fail_after_commit */
    unsigned           last_errno;
    char               last_error[256];
    uint64_t           reconnects;
    uint64_t           errors;
} jt_db;

void      jt_db_init(jt_db *db, const jt_conf *conf, const char *user, const char *password);
/* Connects if needed (a Galera node list fails over, see db.c).
 * JT_DB_OK or JT_DB_DOWN. */
jt_db_rc  jt_db_ready(jt_db *db);
void      jt_db_close(jt_db *db);

/* Runs one prepared statement. sql must be a string with static storage:
 * its address keys the statement cache. */
jt_db_rc  jt_db_exec(jt_db *db, jt_arena *a, const char *sql, const jt_val *params, int nparams,
                     jt_rows *out);

/* Transaction control (constant statements); they keep db->in_tx. */
jt_db_rc  jt_db_begin(jt_db *db);
jt_db_rc  jt_db_commit(jt_db *db);
void      jt_db_rollback(jt_db *db);

/* For the admin tool only: run trusted multi-statement SQL (migrations). */
jt_db_rc  jt_db_run_script(jt_db *db, const char *sql, size_t len);

#endif

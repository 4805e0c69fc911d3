#include "store/db.h"

#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"

int64_t
jt_val_int(const jt_val *v)
{
    if (v->type == JT_V_INT) {
        return v->i;
    }
    return v->type == JT_V_STR && v->s != NULL ? strtoll(v->s, NULL, 10) : 0;
}

void
jt_db_init(jt_db *db, const jt_conf *conf, const char *user, const char *password)
{
    memset(db, 0, sizeof(*db));
    db->conf = conf;
    db->user = user;
    db->password = password;
}

void
jt_db_close(jt_db *db)
{
    int i;

    for (i = 0; i < db->nstmts; i++) {
        mysql_stmt_close(db->stmts[i].stmt);
    }
    db->nstmts = 0;
    db->in_tx = 0;
    if (db->conn != NULL) {
        mysql_close(db->conn);
        db->conn = NULL;
    }
}

static int
is_connection_error(unsigned e)
{
    switch (e) {
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_LOST_EXTENDED:
    case CR_COMMANDS_OUT_OF_SYNC:
    case ER_CONNECTION_KILLED:
    case ER_SERVER_SHUTDOWN:
    case ER_QUERY_INTERRUPTED:
    case 4031: /* ER_CLIENT_INTERACTION_TIMEOUT */
        return 1;
    default:
        return e >= 2000 && e < 3000; /* every client-side error: treat the connection as broken */
    }
}

/* The node in use is gone or unusable: drop the connection, and with a
 * node list start the next connect at the following node (a dead node is
 * not tried first again; failback brings the preferred one back later). */
static void
node_failed(jt_db *db)
{
    jt_db_close(db);
    if (db->conf->db_nnodes > 1) {
        db->node = (db->node + 1) % db->conf->db_nnodes;
    }
}

/* Classifies the last error and, for connection errors, drops the
 * connection so the next request reconnects. */
static jt_db_rc
classify(jt_db *db, unsigned e, const char *msg)
{
    db->last_errno = e;
    snprintf(db->last_error, sizeof(db->last_error), "%s", msg ? msg : "");
    if (e == ER_LOCK_DEADLOCK || e == ER_LOCK_WAIT_TIMEOUT) {
        return JT_DB_RETRY;
    }
    if (e == ER_DUP_ENTRY) {
        return JT_DB_DUPLICATE;
    }
    db->errors++;
    JT_METRIC_INC(db_errors);
    if (is_connection_error(e)) {
        jt_log_warn("mariadb: connection lost (%u %s)", e, db->last_error);
        node_failed(db);
        return JT_DB_DOWN;
    }
    if (e == ER_UNKNOWN_COM_ERROR) {
        /* Galera's "WSREP has not yet prepared node for application use":
         * the node left the primary component or is not synced. Not a bug
         * of ours: leave it for the next node, as for a dead one. */
        jt_log_warn("mariadb: node not ready (%u %s)", e, db->last_error);
        node_failed(db);
        return JT_DB_DOWN;
    }
    jt_log_error("mariadb: error %u: %s", e, db->last_error);
    return JT_DB_ERROR;
}

/* With a node list: whether the node just connected may serve. A Galera
 * node answers only in state 4 (Synced): a joiner, a donor or a node
 * outside the primary component would refuse statements (1047) or serve
 * stale rows. 2: a synced Galera node; 1: a server without wsrep (no such
 * status), which may serve; 0: not synced. */
static int
node_synced(MYSQL *m)
{
    MYSQL_RES *res;
    MYSQL_ROW row;
    int ok = 1;

    if (mysql_query(m, "SHOW GLOBAL STATUS LIKE 'wsrep_local_state'") != 0
        || (res = mysql_store_result(m)) == NULL) {
        return 0;
    }
    row = mysql_fetch_row(res);
    if (row != NULL && row[1] != NULL) {
        ok = strcmp(row[1], "4") == 0 ? 2 : 0;
    }
    mysql_free_result(res);
    return ok;
}

/* One connection attempt: to node i of [mariadb] hosts, or (i < 0) to
 * host/port/socket. The connection with its session set, or NULL with the
 * reason in db->last_error. */
static MYSQL *
connect_one(jt_db *db, int i)
{
    const jt_conf *c = db->conf;
    unsigned int ct = (unsigned) c->db_connect_timeout, rt = (unsigned) c->db_read_timeout,
                 wt = (unsigned) c->db_write_timeout;
    const char *host = c->db_host, *sock = c->db_socket[0] ? c->db_socket : NULL;
    unsigned port = (unsigned) c->db_port;
    my_bool off = 0;
    char setup[200], sync_wait[32] = "";
    MYSQL *m;
    int galera;

    if (i >= 0) {
        host = c->db_nodes[i].host;
        port = (unsigned) c->db_nodes[i].port;
        sock = NULL;
    }
    m = mysql_init(NULL);
    if (m == NULL) {
        snprintf(db->last_error, sizeof(db->last_error), "out of memory");
        return NULL;
    }
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &wt);
    mysql_options(m, MYSQL_OPT_RECONNECT, &off);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (mysql_real_connect(m, sock ? NULL : host, db->user, db->password, c->db_name, port, sock, 0) == NULL) {
        db->last_errno = mysql_errno(m);
        snprintf(db->last_error, sizeof(db->last_error), "%s", mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    galera = i >= 0 ? node_synced(m) : 1;
    if (galera == 0) {
        snprintf(db->last_error, sizeof(db->last_error), "node %.200s:%u is not synced", host, port);
        mysql_close(m);
        return NULL;
    }
    /* Session settings: UTC, READ COMMITTED (the version column is the
     * fence, so snapshot reads buy nothing and gap locks cost deadlocks),
     * bounded lock waits and statement times. On Galera, wsrep_sync_wait
     * (README, "Several app hosts"): every read and every START
     * TRANSACTION first waits until this node has applied what the cluster
     * committed before it, so a keyed retry that lands on another host
     * finds its idempotency row, a token made on one host works on the
     * next, an order is readable right after its 201 anywhere, and a write
     * decides on rows no older than its client's last answer. */
    if (galera == 2) {
        snprintf(sync_wait, sizeof(sync_wait), ", wsrep_sync_wait=%d", (int) c->db_sync_wait);
    }
    snprintf(setup, sizeof(setup),
             "SET time_zone='+00:00', tx_isolation='READ-COMMITTED', "
             "innodb_lock_wait_timeout=%u, max_statement_time=%u%s",
             rt < 5 ? rt : 5, rt, sync_wait);
    if (mysql_query(m, setup) != 0) {
        snprintf(db->last_error, sizeof(db->last_error), "session setup failed: %s", mysql_error(m));
        mysql_close(m);
        return NULL;
    }
    return m;
}

#define DB_IDLE_PING_MS 1000   /* a connection unused this long is pinged before its next statement */

/* Connects if needed. With [mariadb] hosts the nodes are tried in turn
 * from db->node (the one in use, or the next after one that failed), each
 * within connect_timeout, so one dead node costs one attempt, not an
 * outage. A worker that is not on the first (preferred) node goes back to
 * it between requests once failback_interval has passed: a node that
 * rejoined takes its share again, and app hosts keep their own preferred
 * nodes (fewer certification conflicts than writing everywhere at once). */
jt_db_rc
jt_db_ready(jt_db *db)
{
    const jt_conf *c = db->conf;
    int n = c->db_nnodes, k, start;
    MYSQL *m = NULL;
    int64_t now;

    now = jt_clock_mono_ms();
    if (db->conn != NULL && !db->in_tx && now - db->used_ms >= DB_IDLE_PING_MS && mysql_ping(db->conn) != 0) {
        /* idle a while and gone meanwhile (a restart, a failover, a
         * wait_timeout): found now, before a request's first statement
         * fails on it and the request with it */
        jt_log_warn("mariadb: an idle connection was gone (%s); reconnecting", mysql_error(db->conn));
        jt_db_close(db);
        db->retry_at_ms = 0;
    }
    db->used_ms = now;
    if (db->conn != NULL) {
        if (n < 2 || db->node == 0 || db->in_tx || now < db->failback_at_ms) {
            return JT_DB_OK;
        }
        jt_log_info("mariadb: trying the preferred node %s:%d again", c->db_nodes[0].host, c->db_nodes[0].port);
        jt_db_close(db);
        db->node = 0;
        db->retry_at_ms = 0;
    }
    if (now < db->retry_at_ms) {
        return JT_DB_DOWN;
    }
    start = db->node;
    for (k = 0; k < (n > 0 ? n : 1); k++) {
        int i = n > 0 ? (start + k) % n : -1;
        m = connect_one(db, i);
        if (m != NULL) {
            if (i >= 0 && i != db->node) {
                jt_log_warn("mariadb: failed over to node %s:%d", c->db_nodes[i].host, c->db_nodes[i].port);
            }
            db->node = i >= 0 ? i : 0;
            break;
        }
        jt_log_warn("mariadb: cannot connect: %s", db->last_error);
        db->errors++;
        JT_METRIC_INC(db_errors);
    }
    if (m == NULL) {
        /* a short pause keeps a down database from being hammered by every
         * request, while reconnecting quickly once it is back */
        db->retry_at_ms = now + 250;
        return JT_DB_DOWN;
    }
    db->conn = m;
    db->failback_at_ms = now + c->db_failback_interval * 1000;
    db->reconnects++;
    JT_METRIC_INC(db_reconnects);
    return JT_DB_OK;
}

/* The prepared statement for sql: from the connection's cache, or prepared
 * now. *cached says whether the cache keeps it; when it is full the caller
 * closes the statement after one use, or the server would keep one
 * statement per call until max_prepared_stmt_count refuses every prepare. */
static MYSQL_STMT *
get_stmt(jt_db *db, const char *sql, jt_db_rc *rc, int *cached)
{
    MYSQL_STMT *st;
    my_bool yes = 1;
    int i;

    *cached = 0;
    for (i = 0; i < db->nstmts; i++) {
        if (db->stmts[i].sql == sql) {
            *cached = 1;
            return db->stmts[i].stmt;
        }
    }
    st = mysql_stmt_init(db->conn);
    if (st == NULL) {
        *rc = classify(db, mysql_errno(db->conn), mysql_error(db->conn));
        return NULL;
    }
    if (mysql_stmt_prepare(st, sql, strlen(sql)) != 0) {
        unsigned e = mysql_stmt_errno(st);
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", mysql_stmt_error(st));
        mysql_stmt_close(st);
        *rc = classify(db, e, msg);
        return NULL;
    }
    mysql_stmt_attr_set(st, STMT_ATTR_UPDATE_MAX_LENGTH, &yes);
    if (db->nstmts < JT_DB_MAX_STMTS && db->nstmts < db->conf->db_stmt_cache) {
        db->stmts[db->nstmts].sql = sql;
        db->stmts[db->nstmts].stmt = st;
        db->nstmts++;
        *cached = 1;
    }
    return st;
}

static int
is_int_type(enum enum_field_types t)
{
    return t == MYSQL_TYPE_TINY || t == MYSQL_TYPE_SHORT || t == MYSQL_TYPE_LONG
           || t == MYSQL_TYPE_INT24 || t == MYSQL_TYPE_LONGLONG || t == MYSQL_TYPE_YEAR;
}

static jt_db_rc
stmt_fail(jt_db *db, MYSQL_STMT *st)
{
    char msg[256];
    unsigned e = mysql_stmt_errno(st);
    snprintf(msg, sizeof(msg), "%s", mysql_stmt_error(st));
    return classify(db, e, msg);
}

static jt_db_rc run_stmt(jt_db *db, jt_arena *a, MYSQL_STMT *st, const jt_val *params, int nparams,
                         jt_rows *out);

/* Test-only ([testing] fail_after_commit): the first statement after a
 * COMMIT within one request behaves as if the database went away, so a
 * test can prove that no committed write depends on a later read. */
static int
fails_after_commit(jt_db *db)
{
    if (!db->fail_next) {
        return 0;
    }
    db->fail_next = 0;
    jt_log_warn("mariadb: test: failing the statement after COMMIT");
    jt_db_close(db);
    return 1;
}

jt_db_rc
jt_db_exec(jt_db *db, jt_arena *a, const char *sql, const jt_val *params, int nparams, jt_rows *out)
{
    MYSQL_STMT *st;
    jt_db_rc rc = JT_DB_ERROR;
    int cached;

    memset(out, 0, sizeof(*out));
    if (fails_after_commit(db) || jt_db_ready(db) != JT_DB_OK) {
        return JT_DB_DOWN;
    }
    st = get_stmt(db, sql, &rc, &cached);
    if (st == NULL) {
        return rc;
    }
    rc = run_stmt(db, a, st, params, nparams, out);
    if (!cached) {
        mysql_stmt_close(st);   /* detached, not freed, when the connection was lost */
    }
    return rc;
}

static jt_db_rc
run_stmt(jt_db *db, jt_arena *a, MYSQL_STMT *st, const jt_val *params, int nparams, jt_rows *out)
{
    MYSQL_BIND small_pb[24], *pb = small_pb, *rb = NULL;
    MYSQL_RES *meta;
    my_bool *nulls = NULL;
    unsigned long *lens = NULL;
    unsigned int ncols, i;
    jt_db_rc rc = JT_DB_ERROR;
    int row;

    if (nparams > 24) {
        /* a multi-row insert */
        pb = jt_palloc(a, sizeof(MYSQL_BIND) * (size_t) nparams);
        if (pb == NULL) {
            return JT_DB_ERROR;
        }
    }

    memset(pb, 0, sizeof(MYSQL_BIND) * (size_t) (nparams ? nparams : 1));
    for (i = 0; i < (unsigned) nparams; i++) {
        switch (params[i].type) {
        case JT_V_INT:
            pb[i].buffer_type = MYSQL_TYPE_LONGLONG;
            pb[i].buffer = (void *) &params[i].i;
            break;
        case JT_V_STR:
            pb[i].buffer_type = MYSQL_TYPE_STRING;
            pb[i].buffer = (void *) params[i].s;
            pb[i].buffer_length = params[i].len;
            break;
        default:
            pb[i].buffer_type = MYSQL_TYPE_NULL;
        }
    }
    if (nparams > 0 && mysql_stmt_bind_param(st, pb) != 0) {
        return stmt_fail(db, st);
    }
    if (mysql_stmt_execute(st) != 0) {
        return stmt_fail(db, st);
    }
    out->affected = mysql_stmt_affected_rows(st);
    out->insert_id = mysql_stmt_insert_id(st);

    ncols = mysql_stmt_field_count(st);
    if (ncols == 0) {
        return JT_DB_OK;
    }
    if (mysql_stmt_store_result(st) != 0) {
        return stmt_fail(db, st);
    }
    meta = mysql_stmt_result_metadata(st);
    if (meta == NULL) {
        rc = stmt_fail(db, st);
        if (db->conn != NULL) {
            mysql_stmt_free_result(st);
        }
        return rc;
    }
    out->ncols = (int) ncols;
    out->nrows = (int) mysql_stmt_num_rows(st);
    out->cells = jt_pcalloc(a, sizeof(jt_val) * (size_t) (out->nrows ? out->nrows : 1) * ncols);
    rb = jt_pcalloc(a, sizeof(MYSQL_BIND) * ncols);
    nulls = jt_pcalloc(a, sizeof(my_bool) * ncols);
    lens = jt_pcalloc(a, sizeof(unsigned long) * ncols);
    if (out->cells == NULL || rb == NULL || nulls == NULL || lens == NULL) {
        goto done;
    }

    for (row = 0; row < out->nrows; row++) {
        MYSQL_FIELD *f = mysql_fetch_fields(meta);
        for (i = 0; i < ncols; i++) {
            jt_val *v = jt_cell(out, row, (int) i);
            memset(&rb[i], 0, sizeof(MYSQL_BIND));
            rb[i].is_null = &nulls[i];
            rb[i].length = &lens[i];
            if (is_int_type(f[i].type)) {
                v->type = JT_V_INT;
                rb[i].buffer_type = MYSQL_TYPE_LONGLONG;
                rb[i].buffer = &v->i;
                rb[i].is_unsigned = 0;
            } else {
                size_t cap = f[i].max_length + 1;
                char *p = jt_palloc(a, cap);
                if (p == NULL) {
                    goto done;
                }
                v->type = JT_V_STR;
                v->s = p;
                rb[i].buffer_type = MYSQL_TYPE_STRING;
                rb[i].buffer = p;
                rb[i].buffer_length = cap;
            }
        }
        if (mysql_stmt_bind_result(st, rb) != 0) {
            rc = stmt_fail(db, st);
            goto done;
        }
        {
            int fr = mysql_stmt_fetch(st);
            if (fr == 1) {
                rc = stmt_fail(db, st);
                goto done;
            }
            if (fr == MYSQL_NO_DATA) {
                out->nrows = row;
                break;
            }
        }
        for (i = 0; i < ncols; i++) {
            jt_val *v = jt_cell(out, row, (int) i);
            if (nulls[i]) {
                v->type = JT_V_NULL;
                v->s = NULL;
                v->len = 0;
            } else if (v->type == JT_V_STR) {
                v->len = lens[i];
                ((char *) v->s)[v->len < f[i].max_length + 1 ? v->len : f[i].max_length] = '\0';
            }
        }
    }
    rc = JT_DB_OK;
done:
    mysql_free_result(meta);
    if (db->conn != NULL) {      /* a lost connection has closed st already */
        mysql_stmt_free_result(st);
    }
    return rc;
}

static jt_db_rc
simple(jt_db *db, const char *q)
{
    if (fails_after_commit(db) || jt_db_ready(db) != JT_DB_OK) {
        return JT_DB_DOWN;
    }
    if (mysql_real_query(db->conn, q, strlen(q)) != 0) {
        return classify(db, mysql_errno(db->conn), mysql_error(db->conn));
    }
    return JT_DB_OK;
}

jt_db_rc
jt_db_begin(jt_db *db)
{
    jt_db_rc rc = simple(db, "START TRANSACTION");

    db->in_tx = rc == JT_DB_OK;
    return rc;
}

jt_db_rc
jt_db_commit(jt_db *db)
{
    jt_db_rc rc = simple(db, "COMMIT");

    if (rc == JT_DB_OK) {
        db->in_tx = 0;
        db->fail_next = db->conf->enable_test_routes && db->conf->test_fail_after_commit;
    }
    return rc;
}

void
jt_db_rollback(jt_db *db)
{
    db->in_tx = 0;
    if (db->conn != NULL && mysql_real_query(db->conn, "ROLLBACK", 8) != 0) {
        (void) classify(db, mysql_errno(db->conn), mysql_error(db->conn));
    }
}

jt_db_rc
jt_db_run_script(jt_db *db, const char *sql, size_t len)
{
    MYSQL *m;
    int status;

    if (jt_db_ready(db) != JT_DB_OK) {
        return JT_DB_DOWN;
    }
    m = db->conn;
    mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_ON);
    if (mysql_real_query(m, sql, len) != 0) {
        jt_db_rc rc = classify(db, mysql_errno(m), mysql_error(m));
        if (db->conn) {
            mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_OFF);
        }
        return rc;
    }
    do {
        MYSQL_RES *res = mysql_store_result(m);
        if (res) {
            mysql_free_result(res);
        }
        status = mysql_next_result(m);
        if (status > 0) {
            jt_db_rc rc = classify(db, mysql_errno(m), mysql_error(m));
            if (db->conn) {
                mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_OFF);
            }
            return rc;
        }
    } while (status == 0);
    mysql_set_server_option(m, MYSQL_OPTION_MULTI_STATEMENTS_OFF);
    return JT_DB_OK;
}

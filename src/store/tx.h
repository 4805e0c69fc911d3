/* The one retry loop. A write path is a function that runs inside one
 * explicit transaction; this module owns BEGIN/COMMIT/ROLLBACK and retries
 * the whole function from the start, with full-jitter backoff, a bounded
 * number of attempts and a total deadline, whenever it reports a version
 * conflict or MariaDB reports a deadlock (1213) or lock-wait timeout (1205). */
#ifndef JT_TX_H
#define JT_TX_H

#include <stdint.h>

#include "core/arena.h"
#include "core/config.h"
#include "store/db.h"

typedef enum {
    JT_TX_COMMIT = 0,   /* body done: commit */
    JT_TX_CONFLICT,     /* a versioned UPDATE matched no row: retry */
    JT_TX_ABORT,        /* business rule refused: roll back, answer (body's reason) */
    JT_TX_DBERR         /* a statement failed: see tx->db_rc */
} jt_tx_step;

typedef enum {
    JT_TX_OK = 0,        /* committed */
    JT_TX_ABORTED,       /* body said no; nothing changed */
    JT_TX_EXHAUSTED,     /* attempts or deadline used up; nothing changed */
    JT_TX_DB_DOWN,       /* connection lost; nothing changed (or unknown for COMMIT) */
    JT_TX_DB_ERROR,      /* a bug */
    JT_TX_DUPLICATE      /* unique key violated (e.g. an idempotency row) */
} jt_tx_rc;

typedef struct {
    int64_t max_attempts;
    int64_t deadline_ms;
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    int64_t test_delay_ms;   /* test-only sleep inside the transaction */
} jt_tx_policy;

typedef struct jt_tx {
    jt_db    *db;
    jt_arena *arena;
    jt_db_rc  db_rc;         /* set by the body on JT_TX_DBERR */
    int       attempt;       /* 1-based */
    void     *data;          /* the body's own state */
    void     *write;         /* the write path running it (domain/write.c), or NULL */
} jt_tx;

typedef jt_tx_step (*jt_tx_body)(jt_tx *tx);

/* The policy of [tx] (and [testing] tx_delay_ms when test routes are on). */
void     jt_tx_policy_init(jt_tx_policy *p, const jt_conf *c);

jt_tx_rc jt_tx_run(jt_db *db, jt_arena *a, const jt_tx_policy *p, jt_tx_body body, void *data);
/* The same, with tx->write set to `write` for the body. */
jt_tx_rc jt_tx_run_for(jt_db *db, jt_arena *a, const jt_tx_policy *p, jt_tx_body body, void *data, void *write);

/* Helper for bodies: run a statement, turning failure into a step. */
#define JT_TX_EXEC(tx, sql, params, n, rows)                                         \
    do {                                                                             \
        (tx)->db_rc = jt_db_exec((tx)->db, (tx)->arena, sql, params, n, rows);       \
        if ((tx)->db_rc != JT_DB_OK) {                                               \
            return JT_TX_DBERR;                                                      \
        }                                                                            \
    } while (0)

#endif

#include "store/tx.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "store/lock.h"

void
jt_tx_policy_init(jt_tx_policy *p, const jt_conf *c)
{
    p->max_attempts = c->tx_max_attempts;
    p->deadline_ms = c->tx_deadline_ms;
    p->backoff_base_ms = c->tx_backoff_base_ms;
    p->backoff_max_ms = c->tx_backoff_max_ms;
    p->test_delay_ms = c->enable_test_routes ? c->test_tx_delay_ms : 0;
}

jt_tx_rc
jt_tx_run(jt_db *db, jt_arena *a, const jt_tx_policy *p, jt_tx_body body, void *data)
{
    return jt_tx_run_for(db, a, p, body, data, NULL);
}

jt_tx_rc
jt_tx_run_for(jt_db *db, jt_arena *a, const jt_tx_policy *p, jt_tx_body body, void *data, void *write)
{
    int64_t deadline = jt_clock_mono_ms() + p->deadline_ms, backoff = p->backoff_base_ms;
    jt_tx tx = { db, a, JT_DB_OK, 0, data, write };

    for (;;) {
        jt_tx_step step;
        jt_db_rc rc;

        tx.attempt++;
        tx.db_rc = JT_DB_OK;
        /* the first attempt may find its transaction opened already
         * (jt_write_lock sends START TRANSACTION before it waits) */
        rc = tx.attempt == 1 && db->in_tx ? JT_DB_OK : jt_db_begin(db);
        if (rc != JT_DB_OK) {
            return rc == JT_DB_DOWN ? JT_TX_DB_DOWN : JT_TX_DB_ERROR;
        }
        step = body(&tx);
        if (step == JT_TX_COMMIT && p->test_delay_ms > 0) {
            /* test-only: hold the transaction open past a tiny lease */
            jt_clock_sleep_ms(p->test_delay_ms);
        }
        if (step == JT_TX_COMMIT) {
            rc = jt_db_commit(db);
            if (rc == JT_DB_OK) {
                return JT_TX_OK;
            }
            step = JT_TX_DBERR;
            tx.db_rc = rc;
        }
        jt_db_rollback(db);

        if (step == JT_TX_ABORT) {
            return JT_TX_ABORTED;
        }
        if (step == JT_TX_DBERR) {
            if (tx.db_rc == JT_DB_DOWN) {
                return JT_TX_DB_DOWN;
            }
            if (tx.db_rc == JT_DB_DUPLICATE) {
                return JT_TX_DUPLICATE;
            }
            if (tx.db_rc != JT_DB_RETRY) {
                return JT_TX_DB_ERROR;
            }
        }
        /* a conflict: somebody else's write won; start again from a fresh read */
        JT_METRIC_INC(tx_conflicts);
        if (tx.attempt >= p->max_attempts || jt_clock_mono_ms() + backoff >= deadline) {
            JT_METRIC_INC(tx_exhausted);
            jt_log_warn("tx: giving up after %d attempts", tx.attempt);
            return JT_TX_EXHAUSTED;
        }
        jt_sleep_jitter_ms(backoff);
        backoff = backoff * 2 > p->backoff_max_ms ? p->backoff_max_ms : backoff * 2;
        if (backoff <= 0) {
            backoff = 1;
        }
    }
}

#include "store/idem.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/buf.h"
#include "core/metrics.h"
#include "store/lock.h"

static const char SQL_IDEM_GET[] =
    "SELECT fingerprint, status, body FROM idempotency_keys"
    " WHERE user_id = ? AND idem_key = ? AND expires_at > NOW(6)";
static const char SQL_IDEM_GET_LOCKING[] =
    "SELECT fingerprint, status, body FROM idempotency_keys"
    " WHERE user_id = ? AND idem_key = ? AND expires_at > NOW(6) LOCK IN SHARE MODE";
/* An expired row of the key is taken over in place (it would otherwise
 * block the key's reuse until the purge job ran); a live one is left as it
 * is, 0 rows affected: the key's answer is already committed. expires_at
 * is assigned last, as every IF before it reads the old one. */
static const char SQL_IDEM_PUT[] =
    "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, status, body, ref_kind, ref_id, expires_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, NOW(6) + INTERVAL ? SECOND) ON DUPLICATE KEY UPDATE"
    " fingerprint = IF(expires_at <= NOW(6), VALUES(fingerprint), fingerprint),"
    " status = IF(expires_at <= NOW(6), VALUES(status), status),"
    " body = IF(expires_at <= NOW(6), VALUES(body), body),"
    " ref_kind = IF(expires_at <= NOW(6), VALUES(ref_kind), ref_kind),"
    " ref_id = IF(expires_at <= NOW(6), VALUES(ref_id), ref_id),"
    " created_at = IF(expires_at <= NOW(6), NOW(6), created_at),"
    " expires_at = IF(expires_at <= NOW(6), VALUES(expires_at), expires_at)";


int
jt_idem_parse_key(jt_arena *a, const char *h, const char **key, size_t *len)
{
    size_t n, i, o = 0;
    char *out;

    if (h == NULL) {
        return -1;
    }
    n = strlen(h);
    if (n == 0 || n > 600) {
        return -1;
    }
    out = jt_palloc(a, n + 1);
    if (out == NULL) {
        return -1;
    }
    if (h[0] == '"') {
        /* RFC 8941 sf-string: printable ASCII, \" and \\ the only escapes */
        if (n < 2 || h[n - 1] != '"') {
            return -1;
        }
        for (i = 1; i < n - 1; i++) {
            unsigned char c = (unsigned char) h[i];
            if (c == '\\') {
                if (i + 1 >= n - 1 || (h[i + 1] != '"' && h[i + 1] != '\\')) {
                    return -1;
                }
                out[o++] = h[++i];
            } else if (c == '"' || c < 0x20 || c > 0x7e) {
                return -1;
            } else {
                out[o++] = (char) c;
            }
        }
    } else {
        for (i = 0; i < n; i++) {
            unsigned char c = (unsigned char) h[i];
            if (c <= 0x20 || c > 0x7e) {
                return -1;
            }
            out[o++] = (char) c;
        }
    }
    /* the key itself: 1..255 visible characters (no spaces) */
    if (o == 0 || o > 255) {
        return -1;
    }
    for (i = 0; i < o; i++) {
        if ((unsigned char) out[i] <= 0x20) {
            return -1;
        }
    }
    out[o] = '\0';
    *key = out;
    *len = o;
    return 0;
}

void
jt_idem_fingerprint(const char *method, const char *path, const char *canonical, size_t len,
                    unsigned char out[32])
{
    crypto_hash_sha256_state st;

    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *) method, strlen(method));
    crypto_hash_sha256_update(&st, (const unsigned char *) " ", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *) path, strlen(path));
    crypto_hash_sha256_update(&st, (const unsigned char *) "\n", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *) canonical, len);
    crypto_hash_sha256_final(&st, out);
}

/* Redis value: 64 hex of fingerprint, '|', 3-digit status, '|', body. */
static jt_idem_rc
from_cached(jt_idem *id, const char *v, size_t n)
{
    char fphex[65];
    int status;

    if (n < 69 || v[64] != '|' || v[68] != '|') {
        return JT_IDEM_PROCEED;   /* unreadable: ignore the cache */
    }
    sodium_bin2hex(fphex, sizeof(fphex), id->fp, 32);
    if (memcmp(fphex, v, 64) != 0) {
        return JT_IDEM_MISMATCH;
    }
    status = (v[65] - '0') * 100 + (v[66] - '0') * 10 + (v[67] - '0');
    id->replay_status = status;
    id->replay_body = v + 69;
    id->replay_len = n - 69;
    return JT_IDEM_REPLAY;
}

static jt_idem_rc
lookup(jt_idem *id, jt_db *db, jt_arena *a, const char *sql)
{
    jt_val p[2] = { JT_VI(id->user_id), JT_VB(id->key, id->key_len) };
    jt_rows rows;
    jt_db_rc rc = jt_db_exec(db, a, sql, p, 2, &rows);
    jt_val *fp;

    if (rc != JT_DB_OK) {
        return rc == JT_DB_DOWN ? JT_IDEM_DB_DOWN : rc == JT_DB_RETRY ? JT_IDEM_IN_FLIGHT : JT_IDEM_ERROR;
    }
    if (rows.nrows == 0) {
        return JT_IDEM_PROCEED;
    }
    fp = jt_cell(&rows, 0, 0);
    if (fp->len != 32 || memcmp(fp->s, id->fp, 32) != 0) {
        return JT_IDEM_MISMATCH;
    }
    id->replay_status = (int) jt_cell(&rows, 0, 1)->i;
    id->replay_body = jt_cell(&rows, 0, 2)->s;
    id->replay_len = jt_cell(&rows, 0, 2)->len;
    return JT_IDEM_REPLAY;
}

jt_idem_rc
jt_idem_lookup(jt_idem *id, jt_db *db, jt_arena *a)
{
    return lookup(id, db, a, SQL_IDEM_GET);
}

jt_idem_rc
jt_idem_settle(jt_idem *id, jt_db *db, jt_arena *a)
{
    /* autocommit: the shared lock lasts for this one statement */
    return db->in_tx ? JT_IDEM_ERROR : lookup(id, db, a, SQL_IDEM_GET_LOCKING);
}

void
jt_idem_identify(jt_idem *id, int64_t user_id, const char *key, size_t key_len, const unsigned char fp[32])
{
    unsigned char kh[32];
    char khex[65];

    memset(id, 0, sizeof(*id));
    id->user_id = user_id;
    id->key = key;
    id->key_len = key_len;
    memcpy(id->fp, fp, 32);
    crypto_hash_sha256(kh, (const unsigned char *) key, key_len);
    sodium_bin2hex(khex, sizeof(khex), kh, sizeof(kh));
    snprintf(id->cache_key, sizeof(id->cache_key), "idem:%lld:%s", (long long) user_id, khex);
    snprintf(id->marker_key, sizeof(id->marker_key), "idem-inflight:%lld:%s", (long long) user_id, khex);
}

/* The replay cache and the in-flight marker in one round trip: the cached
 * answer if there is one ({1, value}), else the marker taken ({0}) or
 * already held by another request ({2}). KEYS: cache, marker; ARGV: token,
 * marker ms. */
static jt_redis_script begin_script = {
    "local v = redis.call('get', KEYS[1])\n"
    "if v then return {1, v} end\n"
    "if redis.call('set', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end\n"
    "return {2}",
    "", NULL
};

/* An answer replayed (jangteo_idempotent_replays_total) or a key reused
 * with another request (..._payload_mismatches_total), counted once. */
static jt_idem_rc
counted(jt_idem_rc rc)
{
    if (rc == JT_IDEM_REPLAY) {
        JT_METRIC_INC(idem_replays);
    } else if (rc == JT_IDEM_MISMATCH) {
        JT_METRIC_INC(idem_mismatch);
    }
    return rc;
}

jt_idem_rc
jt_idem_begin(jt_idem *id, jt_db *db, jt_redis *r, jt_arena *a, int64_t user_id, const char *key,
              size_t key_len, const unsigned char fp[32], int64_t marker_ms, int late)
{
    unsigned char rnd[16];
    char ms[24];
    const char *args[4];
    redisReply *rep;
    jt_idem_rc rc;
    int64_t got = -1;

    jt_idem_identify(id, user_id, key, key_len, fp);
    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(id->token, sizeof(id->token), rnd, sizeof(rnd));
    snprintf(ms, sizeof(ms), "%lld", (long long) marker_ms);

    /* 1. the replay cache, and the in-flight marker when it misses */
    args[0] = id->cache_key;
    args[1] = id->marker_key;
    args[2] = id->token;
    args[3] = ms;
    rep = jt_redis_eval(r, a, &begin_script, 2, 4, args);
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 1
        && rep->element[0]->type == REDIS_REPLY_INTEGER) {
        got = rep->element[0]->integer;
    }
    if (got == 1 && rep->elements == 2 && rep->element[1]->type == REDIS_REPLY_STRING) {
        rc = from_cached(id, rep->element[1]->str, rep->element[1]->len);
        if (rc != JT_IDEM_PROCEED) {
            return counted(rc);
        }
        /* unreadable: ignore the cache, and take the marker as before */
        rep = jt_redis_cmd(r, a, "SET %s %s NX PX %lld", id->marker_key, id->token, (long long) marker_ms);
        got = rep == NULL || rep->type == REDIS_REPLY_ERROR ? -1 : rep->type == REDIS_REPLY_STATUS ? 0 : 2;
    }
    id->marker_held = got == 0;
    if (got < 0) {
        JT_METRIC_INC(idem_degraded);
    }

    /* 2. the durable record (a flushed or restarted Redis lands here).
     * Without Redis we go on: the unique row inserted with the effect
     * still lets only one request commit. */
    if (late && got == 0) {
        return JT_IDEM_PROCEED;
    }
    rc = jt_idem_lookup(id, db, a);
    if (rc != JT_IDEM_PROCEED) {
        jt_idem_abandon(id, r, a);
        return counted(rc);
    }

    /* 3. the marker held by a same-key request still in flight */
    if (got == 2) {
        JT_METRIC_INC(idem_in_flight);
        return JT_IDEM_IN_FLIGHT;
    }
    return JT_IDEM_PROCEED;
}

jt_tx_step
jt_idem_record(jt_tx *tx, jt_idem *id, int status, const char *body, size_t len, const char *ref_kind,
               int64_t ref_id, int64_t ttl_s)
{
    jt_val p[8] = {
        JT_VI(id->user_id), JT_VB(id->key, id->key_len), JT_VB(id->fp, 32), JT_VI(status),
        JT_VB(body, len), JT_VS(ref_kind), JT_VI(ref_id), JT_VI(ttl_s),
    };
    jt_rows rows;

    JT_TX_EXEC(tx, SQL_IDEM_PUT, p, 8, &rows);
    if (rows.affected == 0) {
        tx->db_rc = JT_DB_DUPLICATE;   /* as the unique key would say */
        return JT_TX_DBERR;
    }
    return JT_TX_COMMIT;
}

/* After COMMIT, in one round trip and in this order: the answer cached
 * (when there is one), the marker dropped if still ours, and the locks
 * released (lock.h). A retry arriving in between sees the marker (409) or
 * the cached answer, never neither; the locks go only after the cache.
 * KEYS: cache, marker, then the set's; ARGV: value ('' for none), ttl s,
 * marker token ('' when not held), then the set's. */
static jt_redis_script finish_script = {
    "local K0, A0 = 2, 3\n"
    "if ARGV[1] ~= '' then redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) end\n"
    "if ARGV[3] ~= '' and redis.call('get', KEYS[2]) == ARGV[3] then redis.call('del', KEYS[2]) end\n"
    JT_LOCK_RELEASE_LUA,
    "", NULL
};

void
jt_idem_finish(jt_idem *id, jt_redis *r, jt_arena *a, const jt_buf *answer, int status, int64_t ttl_s,
               jt_lockset *ls)
{
    const char *args[2 * JT_LOCK_MAX + 7], **own;
    char fphex[65], head[80], ttl[24], wake_ttl[24];
    int k;
    jt_buf v;

    jt_buf_init(&v, a, (answer != NULL ? answer->len : 0) + 80);
    if (answer != NULL) {
        sodium_bin2hex(fphex, sizeof(fphex), id->fp, 32);
        snprintf(head, sizeof(head), "%s|%03d|", fphex, status);
        jt_buf_adds(&v, head);
        jt_buf_add(&v, answer->data, answer->len);
    }
    snprintf(ttl, sizeof(ttl), "%lld", (long long) ttl_s);
    k = jt_lock_held_count(ls);
    own = args + 2 + 2 * k;   /* the script's own ARGV, then the set's */
    (void) jt_lock_release_args(ls, args + 2, own + 3, wake_ttl);
    args[0] = id->cache_key;
    args[1] = id->marker_key;
    own[0] = v.oom ? "" : jt_buf_cstr(&v);
    own[1] = ttl;
    own[2] = id->marker_held ? id->token : "";
    id->marker_held = 0;
    if (k == 0 && own[0][0] == '\0' && own[2][0] == '\0') {
        return;   /* nothing to cache, drop or release */
    }
    (void) jt_lock_released(ls, jt_redis_eval(r, a, &finish_script, 2 + 2 * k, 2 + 2 * k + 5, args), k);
}

void
jt_idem_abandon(jt_idem *id, jt_redis *r, jt_arena *a)
{
    if (!id->marker_held) {
        return;
    }
    id->marker_held = 0;
    (void) jt_lock_release_one(r, a, id->marker_key, id->token);
}

/* One statement for a batch's rows (JSON_TABLE: one text whatever n is).
 * No purge of an expired row first, as jt_idem_record does: a batch that
 * meets any existing row of one of its keys fails whole on the unique key
 * (JT_DB_DUPLICATE), and its caller runs those orders one by one. */
static const char SQL_IDEM_PUT_MANY[] =
    "INSERT INTO idempotency_keys (user_id, idem_key, fingerprint, status, body, ref_kind, ref_id, expires_at)"
    " SELECT j.u, j.k, UNHEX(j.f), j.s, j.b, j.rk, j.r, NOW(6) + INTERVAL j.ttl SECOND FROM JSON_TABLE(?, '$[*]'"
    " COLUMNS (n FOR ORDINALITY, u BIGINT PATH '$.u', k VARCHAR(255) PATH '$.k', f CHAR(64) PATH '$.f',"
    " s INT PATH '$.s', b LONGTEXT PATH '$.b', rk VARCHAR(16) PATH '$.rk', r BIGINT PATH '$.r',"
    " ttl BIGINT PATH '$.t')) j ORDER BY j.n";

jt_tx_step
jt_idem_record_many(jt_tx *tx, const jt_idem_row *rows, int n)
{
    jt_val p[1];
    jt_rows res;
    jt_buf b;
    jt_json w;
    int i;

    if (n == 0) {
        return JT_TX_COMMIT;
    }
    jt_buf_init(&b, tx->arena, 256 * (size_t) n);
    jw_init(&w, &b);
    jw_arr_open(&w);
    for (i = 0; i < n; i++) {
        char fphex[65];
        sodium_bin2hex(fphex, sizeof(fphex), rows[i].id->fp, 32);
        jw_obj_open(&w);
        jw_kint(&w, "u", rows[i].id->user_id);
        jw_key(&w, "k");
        jw_strn(&w, rows[i].id->key, rows[i].id->key_len);
        jw_kstr(&w, "f", fphex);
        jw_kint(&w, "s", rows[i].status);
        jw_key(&w, "b");
        jw_strn(&w, rows[i].body, rows[i].len);
        jw_kstr(&w, "rk", rows[i].ref_kind);
        jw_kint(&w, "r", rows[i].ref_id);
        jw_kint(&w, "t", rows[i].ttl_s);
        jw_obj_close(&w);
    }
    jw_arr_close(&w);
    if (b.oom) {
        tx->db_rc = JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    p[0] = JT_VB(b.data, b.len);
    JT_TX_EXEC(tx, SQL_IDEM_PUT_MANY, p, 1, &res);
    return JT_TX_COMMIT;
}

/* KEYS: cache keys; ARGV: their values, then their ttls in seconds */
static jt_redis_script cache_many_script = {
    "local n = #KEYS\n"
    "for i = 1, n do redis.call('set', KEYS[i], ARGV[i], 'EX', ARGV[n + i]) end\n"
    "return n",
    "", NULL
};

void
jt_idem_cache_many(jt_redis *r, jt_arena *a, const jt_idem_row *rows, int n)
{
    const char **args;
    int i;

    if (n <= 0 || (args = jt_palloc(a, sizeof(char *) * (size_t) (3 * n))) == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        char fphex[65], head[80];
        jt_buf v;

        sodium_bin2hex(fphex, sizeof(fphex), rows[i].id->fp, 32);
        snprintf(head, sizeof(head), "%s|%03d|", fphex, rows[i].status);
        jt_buf_init(&v, a, rows[i].len + 80);
        jt_buf_adds(&v, head);
        jt_buf_add(&v, rows[i].body, rows[i].len);
        args[i] = rows[i].id->cache_key;
        args[n + i] = jt_buf_cstr(&v);
        jt_buf_init(&v, a, 24);
        jt_buf_addf(&v, "%lld", (long long) rows[i].ttl_s);
        args[2 * n + i] = jt_buf_cstr(&v);
        if (v.oom || args[n + i] == NULL || args[2 * n + i] == NULL) {
            return;   /* the durable rows answer retries all the same */
        }
    }
    (void) jt_redis_eval(r, a, &cache_many_script, n, 3 * n, args);
}

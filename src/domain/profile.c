/* The buyer's own account. The profile's fields follow the sign-up's rules
 * (accounts_field_*) and are sealed like it (core/pii.c); a new password is
 * an argon2id hash, and changing it revokes every other session in the
 * same transaction as the new hash. Every write runs through the write
 * path (domain/write.h) with the user row's version as its fence. */
#include "domain/profile.h"

#include <string.h>

#include <sodium.h>

#include "core/config.h"
#include "core/pii.h"
#include "domain/accounts.h"
#include "domain/common.h"
#include "domain/cursor.h"
#include "domain/write.h"
#include "http/json.h"
#include "store/authcache.h"
#include "store/db.h"

#define TS_FMT "'%Y-%m-%dT%H:%i:%s.%fZ'"

static const char SQL_USER_VERSION[] = "SELECT version FROM users WHERE id = ?";
/* a NULL field keeps what is there */
static const char SQL_PROFILE_UPDATE[] =
    "UPDATE users SET name_enc = COALESCE(?, name_enc), phone_enc = COALESCE(?, phone_enc),"
    " version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_PASSWORD_GET[] = "SELECT password_hash, version FROM users WHERE id = ?";
static const char SQL_PASSWORD_UPDATE[] =
    "UPDATE users SET password_hash = ?, version = version + 1 WHERE id = ? AND version = ?";
static const char SQL_REVOKE_OTHERS[] =
    "UPDATE auth_tokens SET revoked_at = NOW(6) WHERE user_id = ? AND revoked_at IS NULL AND token_hash <> ?";
static const char SQL_TOKEN_PAGE[] =
    "SELECT id, DATE_FORMAT(created_at, " TS_FMT "), DATE_FORMAT(last_used_at, " TS_FMT "),"
    " DATE_FORMAT(expires_at, " TS_FMT "), token_hash = ? FROM auth_tokens"
    " WHERE user_id = ? AND revoked_at IS NULL AND expires_at > NOW(6) AND id < ? ORDER BY id DESC LIMIT ?";
static const char SQL_TOKEN_REVOKE_ID[] =
    "UPDATE auth_tokens SET revoked_at = NOW(6) WHERE id = ? AND user_id = ? AND revoked_at IS NULL";
static const char SQL_TOKEN_OF_USER[] = "SELECT 1 FROM auth_tokens WHERE id = ? AND user_id = ?";

/* After a write that revokes sessions: committed, or maybe committed (only
 * the body's own refusal wrote nothing), no cached copy of a revoked
 * session outlives it (store/authcache.h). */
static void
sessions_revoked(jt_req *r, jt_err e, jt_err refusal)
{
    if (e == JT_OK || e != refusal) {
        jt_authcache_revoked(r->redis, r->arena);
    }
}

/* --- the profile --------------------------------------------------------------- */

typedef struct {
    const char *name;     /* NULL: unchanged */
    const char *phone;
} profile_fields;

static jt_err
parse_patch(jt_req *r, json_object *o, profile_fields *f)
{
    static const char *const known[] = { "name", "phone", NULL };
    jt_err e;

    if ((e = jt_json_only(r, o, "", known)) != JT_OK || (e = accounts_field_name(r, o, JT_OPTIONAL, &f->name)) != JT_OK
        || (e = accounts_field_phone(r, o, JT_OPTIONAL, &f->phone)) != JT_OK) {
        return e;
    }
    if (f->name == NULL && f->phone == NULL) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "nothing to change: give 'name', 'phone' or both");
    }
    return JT_OK;
}

jt_err
profile_validate_patch(jt_req *r, json_object *o)
{
    profile_fields f;

    return parse_patch(r, o, &f);
}

typedef struct {
    jt_req         *r;
    int64_t         uid;
    jt_val          name;     /* sealed, or NULL */
    jt_val          phone;
    /* the password change */
    const char     *verified; /* the hash the current password was checked against */
    const char     *hash;     /* the new one */
    unsigned char  *keep;     /* the caller's token hash: its session stays */
    int64_t         revoked;
    jt_err          refusal;
} profile_tx;

static jt_tx_step
patch_body(jt_tx *tx)
{
    profile_tx *t = tx->data;
    jt_val p[4] = { t->name, t->phone, JT_VI(t->uid), JT_VI(0) };
    jt_rows rows;
    jt_buf b;
    jt_err e;

    JT_TX_EXEC(tx, SQL_USER_VERSION, &p[2], 1, &rows);
    if (rows.nrows == 0) {
        t->refusal = jt_fail(t->r, JT_E_USER_NOT_FOUND, "user %lld does not exist", (long long) t->uid);
        return JT_TX_ABORT;
    }
    p[3] = JT_VI(jt_cell(&rows, 0, 0)->i);
    JT_TX_EXEC(tx, SQL_PROFILE_UPDATE, p, 4, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;   /* a balance or another edit moved the version: read again */
    }
    if ((e = accounts_profile(t->r, t->uid, &b)) != JT_OK) {
        tx->db_rc = e == JT_E_DATABASE_UNAVAILABLE ? JT_DB_DOWN : JT_DB_ERROR;
        return JT_TX_DBERR;
    }
    jt_write_answer(tx, 200, &b, "USER", t->uid);
    return JT_TX_COMMIT;
}

/* Seals one personal field for its column, or binds NULL (unchanged). */
static int
seal(jt_req *r, const char *column, const char *plain, jt_val *out)
{
    unsigned char *c;
    size_t n;

    if (plain == NULL) {
        *out = JT_VNULL;
        return 0;
    }
    if ((c = jt_pii_seal(r->arena, column, plain, strlen(plain), &n)) == NULL) {
        return -1;
    }
    *out = JT_VB(c, n);
    return 0;
}

/* PATCH /api/v1/users/{userId} */
jt_err
profile_patch(jt_req *r)
{
    profile_tx t = { r, jt_req_param_id(r, "userId"), JT_VNULL, JT_VNULL, NULL, NULL, NULL, 0, JT_OK };
    profile_fields f = { NULL, NULL };
    jt_principal who;
    json_object *o;
    jt_write *wr;
    jt_err e;

    if ((e = auth_require_user(r, &who, t.uid)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = parse_patch(r, o, &f)) != JT_OK) {
        return e;
    }
    if (seal(r, "users.name", f.name, &t.name) != 0 || seal(r, "users.phone", f.phone, &t.phone) != 0) {
        return jt_fail(r, JT_E_INTERNAL, "cannot seal personal data");
    }
    if ((e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_IGNORED)) != JT_OK
        || (e = jt_write_run(r, wr, patch_body, &t, &t.refusal)) != JT_OK) {
        return e;
    }
    jt_write_finish(r, wr);
    return JT_OK;
}

/* --- the password -------------------------------------------------------------- */

typedef struct {
    const char *current;
    const char *fresh;
} password_fields;

/* The new password by the sign-up's rule; the current one as a login
 * takes it (any string a login would look at). */
static jt_err
parse_password(jt_req *r, json_object *o, password_fields *f)
{
    static const char *const known[] = { "currentPassword", "newPassword", NULL };
    jt_err e;

    if ((e = jt_json_only(r, o, "", known)) != JT_OK
        || (e = jt_json_str(r, o, "currentPassword", JT_REQUIRED, 1, 4096, &f->current)) != JT_OK
        || (e = accounts_field_password(r, o, "newPassword", &f->fresh)) != JT_OK) {
        return e;
    }
    return JT_OK;
}

jt_err
profile_validate_password(jt_req *r, json_object *o)
{
    password_fields f;

    return parse_password(r, o, &f);
}

/* The new hash goes in only over the hash the current password was checked
 * against (a change that committed meanwhile makes this one a refusal, not
 * a silent overwrite), and every other live session goes with the old
 * password, in the same transaction: no token outlives the change. */
static jt_tx_step
password_body(jt_tx *tx)
{
    profile_tx *t = tx->data;
    jt_val p[3] = { JT_VI(t->uid) };
    jt_rows rows;
    jt_json w;
    jt_buf b;

    JT_TX_EXEC(tx, SQL_PASSWORD_GET, p, 1, &rows);
    if (rows.nrows == 0 || strcmp(jt_cell(&rows, 0, 0)->s, t->verified) != 0) {
        t->refusal = jt_fail(t->r, JT_E_PASSWORD_WRONG, "the password has just been changed; log in again");
        return JT_TX_ABORT;
    }
    p[0] = JT_VS(t->hash);
    p[1] = JT_VI(t->uid);
    p[2] = JT_VI(jt_cell(&rows, 0, 1)->i);
    JT_TX_EXEC(tx, SQL_PASSWORD_UPDATE, p, 3, &rows);
    if (rows.affected != 1) {
        return JT_TX_CONFLICT;
    }
    p[0] = JT_VI(t->uid);
    p[1] = JT_VB(t->keep, 32);
    JT_TX_EXEC(tx, SQL_REVOKE_OTHERS, p, 2, &rows);
    t->revoked = (int64_t) rows.affected;
    jt_json_begin(t->r, &b, &w, 64);
    jw_obj_open(&w);
    jw_kint(&w, "userId", t->uid);
    jw_kint(&w, "revokedSessions", t->revoked);
    jw_obj_close(&w);
    jt_write_answer(tx, 200, &b, "USER", t->uid);
    return JT_TX_COMMIT;
}

/* POST /api/v1/users/{userId}/password */
jt_err
profile_password(jt_req *r)
{
    const jt_conf *c = r->conf;
    profile_tx t = { r, jt_req_param_id(r, "userId"), JT_VNULL, JT_VNULL, NULL, NULL, NULL, 0, JT_OK };
    char hash[crypto_pwhash_STRBYTES];
    password_fields f;
    jt_principal who;
    json_object *o;
    jt_val v[1];
    jt_rows rows;
    jt_db_rc rc;
    jt_write *wr;
    jt_err e;
    int ok;

    if ((e = auth_require_user(r, &who, t.uid)) != JT_OK || (e = jt_json_body(r, &o)) != JT_OK
        || (e = parse_password(r, o, &f)) != JT_OK) {
        return e;
    }
    v[0] = JT_VI(t.uid);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_PASSWORD_GET, v, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0) {
        return jt_fail(r, JT_E_USER_NOT_FOUND, "user %lld does not exist", (long long) t.uid);
    }
    t.verified = jt_cell(&rows, 0, 0)->s;
    if (crypto_pwhash_str_verify(t.verified, f.current, strlen(f.current)) != 0) {
        return jt_fail(r, JT_E_PASSWORD_WRONG, "the current password is wrong");
    }
    ok = crypto_pwhash_str(hash, f.fresh, strlen(f.fresh), (unsigned long long) c->kdf_opslimit,
                           (size_t) c->kdf_memlimit_kib * 1024) == 0;
    t.hash = ok ? jt_pstrdup(r->arena, hash) : NULL;
    sodium_memzero(hash, sizeof(hash));
    if (t.hash == NULL) {
        return jt_fail(r, JT_E_INTERNAL, "cannot hash the new password");
    }
    t.keep = who.token_hash;
    if ((e = jt_write_begin(r, &wr, who.user_id, o, JT_WRITE_KEY_IGNORED)) != JT_OK) {
        return e;
    }
    e = jt_write_run(r, wr, password_body, &t, &t.refusal);
    sessions_revoked(r, e, t.refusal);
    if (e != JT_OK) {
        return e;
    }
    jt_write_finish(r, wr);
    return JT_OK;
}

/* --- the sessions -------------------------------------------------------------- */

static jt_err
write_token(jt_req *r, jt_json *w, const jt_rows *rows, int i)
{
    (void) r;
    jw_obj_open(w);
    jw_kint(w, "tokenId", jt_cell(rows, i, 0)->i);
    jw_kstr(w, "createdAt", jt_cell(rows, i, 1)->s);
    if (jt_cell(rows, i, 2)->type == JT_V_NULL) {
        jw_knull(w, "lastUsedAt");
    } else {
        jw_kstr(w, "lastUsedAt", jt_cell(rows, i, 2)->s);
    }
    jw_kstr(w, "expiresAt", jt_cell(rows, i, 3)->s);
    jw_kbool(w, "current", jt_val_int(jt_cell(rows, i, 4)) != 0);
    jw_obj_close(w);
    return JT_OK;
}

/* GET /api/v1/users/{userId}/tokens */
jt_err
profile_tokens(jt_req *r)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_principal who;
    jt_cursor c;
    jt_val p[2];
    jt_err e;

    if ((e = auth_require_user(r, &who, uid)) != JT_OK || (e = jt_cursor_parse(r, &c, 100)) != JT_OK) {
        return e;
    }
    p[0] = JT_VB(who.token_hash, 32);
    p[1] = JT_VI(uid);
    return jt_cursor_answer(r, &c, SQL_TOKEN_PAGE, p, 2, 0, 192, write_token);
}

typedef struct {
    jt_req  *r;
    int64_t  uid;
    int64_t  id;
    jt_err   refusal;
} revoke_tx;

/* Revoking a revoked session again changes nothing and is not an error;
 * a session that is not the user's is not found. */
static jt_tx_step
revoke_body(jt_tx *tx)
{
    revoke_tx *t = tx->data;
    jt_val p[2] = { JT_VI(t->id), JT_VI(t->uid) };
    jt_rows rows;
    jt_buf none;

    JT_TX_EXEC(tx, SQL_TOKEN_REVOKE_ID, p, 2, &rows);
    if (rows.affected == 0) {
        JT_TX_EXEC(tx, SQL_TOKEN_OF_USER, p, 2, &rows);
        if (rows.nrows == 0) {
            t->refusal = jt_fail(t->r, JT_E_TOKEN_NOT_FOUND, "user %lld has no session %lld", (long long) t->uid,
                                 (long long) t->id);
            return JT_TX_ABORT;
        }
    }
    jt_buf_init(&none, tx->arena, 0);
    jt_write_answer(tx, 204, &none, "TOKEN", t->id);
    return JT_TX_COMMIT;
}

/* DELETE /api/v1/users/{userId}/tokens/{tokenId} */
jt_err
profile_token_revoke(jt_req *r)
{
    revoke_tx t = { r, jt_req_param_id(r, "userId"), jt_req_param_id(r, "tokenId"), JT_OK };
    jt_principal who;
    jt_write *wr;
    jt_err e;

    if ((e = auth_require_user(r, &who, t.uid)) != JT_OK
        || (e = jt_write_begin(r, &wr, who.user_id, NULL, JT_WRITE_KEY_IGNORED)) != JT_OK) {
        return e;
    }
    e = jt_write_run(r, wr, revoke_body, &t, &t.refusal);
    sessions_revoked(r, e, t.refusal);
    if (e != JT_OK) {
        return e;
    }
    jt_write_finish(r, wr);
    return JT_OK;
}

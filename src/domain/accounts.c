/* Accounts and bearer tokens. Email, name and phone are sealed at rest
 * (core/pii.c); passwords are argon2id hashes (libsodium). */
#include "domain/accounts.h"

#include <ctype.h>
#include <string.h>

#include <sodium.h>

#include "core/config.h"
#include "core/log.h"
#include "core/pii.h"
#include "domain/common.h"
#include "http/json.h"
#include "store/authcache.h"
#include "store/db.h"

static const char SQL_USER_INSERT[] =
    "INSERT INTO users (email_index, email_enc, name_enc, phone_enc, password_hash, role)"
    " VALUES (?, ?, ?, ?, ?, ?)";
static const char SQL_USER_GET[] =
    "SELECT id, email_enc, name_enc, phone_enc, role, balance,"
    " DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM users WHERE id = ?";
static const char SQL_USER_EXISTS[] = "SELECT 1 FROM users WHERE id = ?";
static const char SQL_USER_BY_EMAIL[] =
    "SELECT id, password_hash FROM users WHERE email_index = ?";
/* a login is the token's first use: its first requests need no stamp */
static const char SQL_TOKEN_INSERT[] =
    "INSERT INTO auth_tokens (token_hash, user_id, expires_at, last_used_at)"
    " VALUES (?, ?, NOW(6) + INTERVAL ? SECOND, NOW(6))";
static const char SQL_TOKEN_EXPIRY[] =
    "SELECT DATE_FORMAT(expires_at, '%Y-%m-%dT%H:%i:%s.%fZ') FROM auth_tokens WHERE token_hash = ?";
/* the third column says whether last_used_at is older than touch_interval
 * (then the request writes it: at most once per interval, not per request);
 * the last two how long, in microseconds, until the token expires and
 * until its stamp falls due (what a cached copy may live, store/authcache.h) */
static const char SQL_TOKEN_LOOKUP[] =
    "SELECT t.user_id, u.role, t.last_used_at IS NULL OR t.last_used_at < NOW(6) - INTERVAL ? SECOND, t.id,"
    " TIMESTAMPDIFF(MICROSECOND, NOW(6), t.expires_at),"
    " TIMESTAMPDIFF(MICROSECOND, NOW(6), COALESCE(t.last_used_at, NOW(6)) + INTERVAL ? SECOND)"
    " FROM auth_tokens t JOIN users u ON u.id = t.user_id"
    " WHERE t.token_hash = ? AND t.revoked_at IS NULL AND t.expires_at > NOW(6)";
static const char SQL_TOKEN_TOUCH[] =
    "UPDATE auth_tokens SET last_used_at = NOW(6) WHERE token_hash = ?";
static const char SQL_TOKEN_REVOKE[] =
    "UPDATE auth_tokens SET revoked_at = NOW(6) WHERE token_hash = ? AND revoked_at IS NULL";

#define TOKEN_BYTES 32
#define TOKEN_CHARS JT_TOKEN_CHARS

static const jt_conf *
conf_of(jt_req *r)
{
    return r->conf;
}

/* --- authentication --------------------------------------------------- */

jt_err
auth_require(jt_req *r, jt_principal *p)
{
    const char *h = r->authorization, *tok;
    unsigned char raw[TOKEN_BYTES];
    size_t raw_len;
    jt_val v[3];
    jt_rows rows;
    jt_db_rc rc;
    jt_authcache_entry ce;
    uint64_t ticket;
    int64_t valid_us, expires_us;

    memset(p, 0, sizeof(*p));
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return jt_fail(r, JT_E_UNAUTHORIZED, "a bearer token is required");
    }
    tok = h + 7;
    while (*tok == ' ') {
        tok++;
    }
    if (strlen(tok) != TOKEN_CHARS
        || sodium_base642bin(raw, sizeof(raw), tok, TOKEN_CHARS, NULL, &raw_len, NULL,
                             sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0
        || raw_len != TOKEN_BYTES) {
        return jt_fail(r, JT_E_UNAUTHORIZED, "the token is invalid or expired");
    }
    crypto_hash_sha256(p->token_hash, raw, sizeof(raw));
    if (jt_authcache_get(conf_of(r), r->redis, r->arena, p->token_hash, &ce, &ticket)) {
        p->user_id = ce.user_id;
        p->role = jt_pstrdup(r->arena, ce.role);
        p->is_admin = !strcmp(ce.role, "ADMIN");
        p->token_id = ce.token_id;
        return p->role != NULL ? JT_OK : jt_fail(r, JT_E_INTERNAL, "out of memory");
    }
    v[0] = JT_VI(conf_of(r)->token_touch_interval);
    v[1] = JT_VI(conf_of(r)->token_touch_interval);
    v[2] = JT_VB(p->token_hash, 32);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_TOKEN_LOOKUP, v, 3, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0) {
        return jt_fail(r, JT_E_UNAUTHORIZED, "the token is invalid or expired");
    }
    p->user_id = jt_cell(&rows, 0, 0)->i;
    p->role = jt_cell(&rows, 0, 1)->s;
    p->is_admin = !strcmp(p->role, "ADMIN");
    p->token_id = jt_cell(&rows, 0, 3)->i;
    valid_us = expires_us = jt_val_int(jt_cell(&rows, 0, 4));
    if (jt_val_int(jt_cell(&rows, 0, 2)) != 0) {
        valid_us = 0;   /* the stamp is due: no copy until it is written */
        if (!r->db->in_tx) {
            /* bookkeeping, on its own (autocommit): a request is not refused
             * because the stamp of its token could not be written */
            if (jt_db_exec(r->db, r->arena, SQL_TOKEN_TOUCH, &v[2], 1, &rows) != JT_DB_OK) {
                jt_log_warn("auth: could not stamp a token's last use");
            } else {
                /* stamped now: due again after touch_interval */
                valid_us = expires_us < conf_of(r)->token_touch_interval * 1000000
                               ? expires_us : conf_of(r)->token_touch_interval * 1000000;
            }
        }
    } else if (jt_val_int(jt_cell(&rows, 0, 5)) < valid_us) {
        valid_us = jt_val_int(jt_cell(&rows, 0, 5));
    }
    if (strlen(p->role) < JT_AUTHCACHE_ROLE) {
        ce.user_id = p->user_id;
        ce.token_id = p->token_id;
        snprintf(ce.role, sizeof(ce.role), "%s", p->role);
        jt_authcache_put(conf_of(r), ticket, p->token_hash, &ce, valid_us / 1000);
    }
    return JT_OK;
}

/* Owner or admin; anyone else gets `other` (403, or 404 where a user's
 * rows must not even be seen to exist). */
static jt_err
require_owner(jt_req *r, jt_principal *p, int64_t user_id, jt_err other, const char *what)
{
    jt_err e = auth_require(r, p);

    if (e != JT_OK) {
        return e;
    }
    if (p->user_id != user_id && !p->is_admin) {
        return other == JT_E_FORBIDDEN
                   ? jt_fail(r, other, "this token may not act on user %lld", (long long) user_id)
                   : jt_fail(r, other, "no such %s", what);
    }
    if (p->user_id != user_id) {
        /* an admin acting on someone else: that someone must exist */
        jt_val v[1] = { JT_VI(user_id) };
        jt_rows rows;
        jt_db_rc rc = jt_db_exec(r->db, r->arena, SQL_USER_EXISTS, v, 1, &rows);
        if (rc != JT_DB_OK) {
            return jt_db_fail(r, rc);
        }
        if (rows.nrows == 0) {
            return jt_fail(r, JT_E_USER_NOT_FOUND, "user %lld does not exist", (long long) user_id);
        }
    }
    return JT_OK;
}

jt_err
auth_require_user(jt_req *r, jt_principal *p, int64_t user_id)
{
    return require_owner(r, p, user_id, JT_E_FORBIDDEN, NULL);
}

jt_err
auth_require_owner(jt_req *r, jt_principal *p, int64_t user_id, const char *what)
{
    return require_owner(r, p, user_id, JT_E_NOT_FOUND, what);
}

/* --- validation -------------------------------------------------------- */

static int
valid_email(char *e)
{
    char *at = strchr(e, '@'), *p;
    size_t n = strlen(e);

    if (n < 3 || n > 254 || at == NULL || at == e || strchr(at + 1, '@') != NULL
        || strchr(at + 1, '.') == NULL || at[1] == '.' || e[n - 1] == '.') {
        return 0;
    }
    for (p = e; *p; p++) {
        unsigned char c = (unsigned char) *p;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '(' || c == ')' || c == ','
            || c == ';' || c == ':' || c == '<' || c == '>' || c == '[' || c == ']') {
            return 0;
        }
        *p = (char) tolower(c);
    }
    return 1;
}

/* ^01[016789]-?\d{3,4}-?\d{4}$ */
int
accounts_valid_phone(const char *s)
{
    size_t i = 0, d;

    if (strncmp(s, "01", 2) != 0 || strchr("016789", s[2]) == NULL || s[2] == '\0') {
        return 0;
    }
    i = 3;
    if (s[i] == '-') {
        i++;
    }
    for (d = 0; isdigit((unsigned char) s[i]); i++, d++) {
    }
    /* the middle and last groups: 3-4 then 4 digits, with or without a dash */
    if (s[i] == '-') {
        if (d < 3 || d > 4) {
            return 0;
        }
        i++;
        for (d = 0; isdigit((unsigned char) s[i]); i++, d++) {
        }
        return s[i] == '\0' && d == 4;
    }
    return s[i] == '\0' && (d == 7 || d == 8);
}

static jt_err
check_name(jt_req *r, const char *name)
{
    if (strspn(name, " \t\r\n") == strlen(name)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'name' must not be blank");
    }
    return JT_OK;
}

static jt_err
check_phone(jt_req *r, const char *phone)
{
    if (!accounts_valid_phone(phone)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'phone' must look like 010-1234-5678");
    }
    return JT_OK;
}

jt_err
accounts_validate(jt_req *r, jt_new_user *u)
{
    char *email;
    jt_err e;

    email = jt_pstrdup(r->arena, u->email);
    if (email == NULL || !valid_email(email)) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'email' is not a valid address");
    }
    u->email = email;
    if ((u->name != NULL && (e = check_name(r, u->name)) != JT_OK) || (e = check_phone(r, u->phone)) != JT_OK) {
        return e;
    }
    if (u->role == NULL) {
        u->role = "BUYER";
    }
    if (strcmp(u->role, "BUYER") && strcmp(u->role, "SELLER") && strcmp(u->role, "ADMIN")) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'role' must be BUYER or SELLER");
    }
    return JT_OK;
}

/* The row of a new account whose password hash is already made: the
 * admin tool's load buyers share one (see cmd_load_buyers). JT_DB_DUPLICATE
 * when the email is taken, JT_DB_ERROR when sealing failed. */
jt_db_rc
accounts_insert_hashed(jt_db *db, jt_arena *a, const jt_new_user *u, const char *hash, int64_t *id)
{
    unsigned char idx[JT_PII_INDEX_LEN], *se, *sn, *sp;
    size_t le, ln, lp;
    jt_val v[6];
    jt_rows rows;
    jt_db_rc rc;

    jt_pii_index(u->email, strlen(u->email), idx);
    se = jt_pii_seal(a, "users.email", u->email, strlen(u->email), &le);
    sn = jt_pii_seal(a, "users.name", u->name, strlen(u->name), &ln);
    sp = jt_pii_seal(a, "users.phone", u->phone, strlen(u->phone), &lp);
    if (se == NULL || sn == NULL || sp == NULL) {
        return JT_DB_ERROR;
    }
    v[0] = JT_VB(idx, sizeof(idx));
    v[1] = JT_VB(se, le);
    v[2] = JT_VB(sn, ln);
    v[3] = JT_VB(sp, lp);
    v[4] = JT_VS(hash);
    v[5] = JT_VS(u->role);
    rc = jt_db_exec(db, a, SQL_USER_INSERT, v, 6, &rows);
    if (rc == JT_DB_OK) {
        *id = (int64_t) rows.insert_id;
    }
    return rc;
}

jt_err
accounts_insert(jt_db *db, jt_arena *a, const jt_new_user *u, int64_t opslimit, int64_t memlimit_kib,
                int64_t *id)
{
    char hash[crypto_pwhash_STRBYTES];
    jt_db_rc rc;

    if (crypto_pwhash_str(hash, u->password, strlen(u->password), (unsigned long long) opslimit,
                          (size_t) memlimit_kib * 1024) != 0) {
        return JT_E_INTERNAL;
    }
    rc = accounts_insert_hashed(db, a, u, hash, id);
    sodium_memzero(hash, sizeof(hash));
    if (rc == JT_DB_DUPLICATE) {
        return JT_E_EMAIL_TAKEN;
    }
    if (rc != JT_DB_OK) {
        return rc == JT_DB_DOWN ? JT_E_DATABASE_UNAVAILABLE : JT_E_INTERNAL;
    }
    return JT_OK;
}

/* The sign-up's rule for each personal field, also the profile's PATCH
 * and the password change's: one rule, so an account can never be edited
 * into a state sign-up would refuse. */
jt_err
accounts_field_password(jt_req *r, json_object *o, const char *key, const char **out)
{
    return jt_json_str(r, o, key, JT_REQUIRED, 8, 72, out);
}

jt_err
accounts_field_name(jt_req *r, json_object *o, int required, const char **out)
{
    jt_err e = jt_json_str(r, o, "name", required, 1, 50, out);

    return e == JT_OK && *out != NULL ? check_name(r, *out) : e;
}

jt_err
accounts_field_phone(jt_req *r, json_object *o, int required, const char **out)
{
    jt_err e = jt_json_str(r, o, "phone", required, 10, 13, out);

    return e == JT_OK && *out != NULL ? check_phone(r, *out) : e;
}

/* A new bearer token for uid, as the token table keeps it: 256 bits from
 * the CSPRNG, only their SHA-256 stored (th), expiring after ttl seconds.
 * token receives the base64url text the client sends. */
jt_db_rc
auth_token_issue(jt_db *db, jt_arena *a, int64_t uid, int64_t ttl, char token[JT_TOKEN_CHARS + 1],
                 unsigned char th[32])
{
    unsigned char raw[TOKEN_BYTES];
    jt_val v[3];
    jt_rows rows;

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(token, JT_TOKEN_CHARS + 1, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    crypto_hash_sha256(th, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    v[0] = JT_VB(th, 32);
    v[1] = JT_VI(uid);
    v[2] = JT_VI(ttl);
    return jt_db_exec(db, a, SQL_TOKEN_INSERT, v, 3, &rows);
}

/* --- handlers ---------------------------------------------------------- */

/* The body of POST /api/v1/users, validated (no database involved). */
jt_err
accounts_parse(jt_req *r, json_object *o, jt_new_user *u)
{
    jt_err e;

    memset(u, 0, sizeof(*u));
    if ((e = jt_json_str(r, o, "email", JT_REQUIRED, 3, 254, &u->email)) != JT_OK
        || (e = accounts_field_password(r, o, "password", &u->password)) != JT_OK
        || (e = accounts_field_name(r, o, JT_REQUIRED, &u->name)) != JT_OK
        || (e = accounts_field_phone(r, o, JT_REQUIRED, &u->phone)) != JT_OK
        || (e = jt_json_str(r, o, "role", JT_OPTIONAL, 1, 16, &u->role)) != JT_OK
        || (e = accounts_validate(r, u)) != JT_OK) {
        return e;
    }
    if (!strcmp(u->role, "ADMIN")) {
        return jt_fail(r, JT_E_INVALID_REQUEST, "'role' must be BUYER or SELLER");
    }
    return JT_OK;
}

/* POST /api/v1/users */
jt_err
accounts_create(jt_req *r)
{
    const jt_conf *c = conf_of(r);
    json_object *o;
    jt_new_user u;
    int64_t id;
    jt_buf b;
    jt_json w;
    jt_err e;
    char loc[64];

    if ((e = jt_json_body(r, &o)) != JT_OK || (e = accounts_parse(r, o, &u)) != JT_OK) {
        return e;
    }
    switch (e = accounts_insert(r->db, r->arena, &u, c->kdf_opslimit, c->kdf_memlimit_kib, &id)) {
    case JT_OK:
        break;
    case JT_E_EMAIL_TAKEN:
        return jt_fail(r, e, "this email is already registered");
    case JT_E_DATABASE_UNAVAILABLE:
        return jt_db_fail(r, JT_DB_DOWN);
    default:
        return jt_db_fail(r, JT_DB_ERROR);
    }
    jt_json_begin(r, &b, &w, 256);
    jw_obj_open(&w);
    jw_kint(&w, "userId", id);
    jw_kstr(&w, "email", u.email);
    jw_kstr(&w, "name", u.name);
    jw_kstr(&w, "phone", u.phone);
    jw_kstr(&w, "role", u.role);
    jw_kint(&w, "balance", 0);
    jw_obj_close(&w);
    snprintf(loc, sizeof(loc), "/api/v1/users/%lld", (long long) id);
    jt_reply_header(r, "Location", loc);
    jt_reply_json(r, 201, &b);
    return JT_OK;
}

/* The profile of uid as GET /api/v1/users/{userId} answers it, personal
 * fields opened, into b (also the answer of PATCH, read inside its
 * transaction). */
jt_err
accounts_profile(jt_req *r, int64_t uid, jt_buf *b)
{
    jt_val v[1] = { JT_VI(uid) };
    jt_rows rows;
    jt_db_rc rc;
    jt_json w;
    const char *email, *name, *phone;

    if ((rc = jt_db_exec(r->db, r->arena, SQL_USER_GET, v, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    if (rows.nrows == 0) {
        return jt_fail(r, JT_E_USER_NOT_FOUND, "user %lld does not exist", (long long) uid);
    }
    email = jt_pii_open(r->arena, "users.email", (const unsigned char *) jt_cell(&rows, 0, 1)->s,
                        jt_cell(&rows, 0, 1)->len);
    name = jt_pii_open(r->arena, "users.name", (const unsigned char *) jt_cell(&rows, 0, 2)->s,
                       jt_cell(&rows, 0, 2)->len);
    phone = jt_pii_open(r->arena, "users.phone", (const unsigned char *) jt_cell(&rows, 0, 3)->s,
                        jt_cell(&rows, 0, 3)->len);
    if (email == NULL || name == NULL || phone == NULL) {
        return jt_fail(r, JT_E_INTERNAL, "personal data cannot be opened with the configured keys");
    }
    jt_json_begin(r, b, &w, 256);
    jw_obj_open(&w);
    jw_kint(&w, "userId", uid);
    jw_kstr(&w, "name", name);
    jw_kstr(&w, "email", email);
    jw_kstr(&w, "phone", phone);
    jw_kstr(&w, "role", jt_cell(&rows, 0, 4)->s);
    jw_kint(&w, "balance", jt_cell(&rows, 0, 5)->i);
    jw_kstr(&w, "updatedAt", jt_cell(&rows, 0, 6)->s);
    jw_obj_close(&w);
    return b->oom ? jt_fail(r, JT_E_INTERNAL, "out of memory") : JT_OK;
}

/* GET /api/v1/users/{userId} */
jt_err
accounts_get(jt_req *r)
{
    int64_t uid = jt_req_param_id(r, "userId");
    jt_principal p;
    jt_buf b;
    jt_err e;

    if ((e = auth_require_user(r, &p, uid)) != JT_OK || (e = accounts_profile(r, uid, &b)) != JT_OK) {
        return e;
    }
    jt_reply_json(r, 200, &b);
    return JT_OK;
}

/* POST /api/v1/auth/tokens */
jt_err
auth_token_create(jt_req *r)
{
    /* verified against when the email is unknown, so both failures cost
     * the same time and look the same */
    static char dummy_hash[crypto_pwhash_STRBYTES];
    const jt_conf *c = conf_of(r);
    unsigned char idx[JT_PII_INDEX_LEN], th[32];
    char token[TOKEN_CHARS + 1], *email;
    const char *em, *pw, *hash;
    json_object *o;
    jt_val v[3];
    jt_rows rows;
    jt_db_rc rc;
    int64_t uid = 0;
    jt_buf b;
    jt_json w;
    jt_err e;

    if ((e = jt_json_body(r, &o)) != JT_OK
        || (e = jt_json_str(r, o, "email", JT_REQUIRED, 1, 254, &em)) != JT_OK
        || (e = jt_json_str(r, o, "password", JT_REQUIRED, 0, 4096, &pw)) != JT_OK) {
        return e;
    }
    if (strlen(pw) < 8 || strlen(pw) > 4 * 72) {
        /* no account can have such a password: same answer as a wrong one */
        return jt_fail(r, JT_E_INVALID_CREDENTIALS, "wrong email or password");
    }
    if (dummy_hash[0] == '\0'
        && crypto_pwhash_str(dummy_hash, "not a password", 14, (unsigned long long) c->kdf_opslimit,
                             (size_t) c->kdf_memlimit_kib * 1024) != 0) {
        return JT_E_INTERNAL;
    }
    email = jt_pstrdup(r->arena, em);
    if (email == NULL) {
        return JT_E_INTERNAL;
    }
    for (char *q = email; *q; q++) {
        *q = (char) tolower((unsigned char) *q);
    }
    jt_pii_index(email, strlen(email), idx);
    v[0] = JT_VB(idx, sizeof(idx));
    if ((rc = jt_db_exec(r->db, r->arena, SQL_USER_BY_EMAIL, v, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    hash = rows.nrows ? jt_cell(&rows, 0, 1)->s : dummy_hash;
    if (crypto_pwhash_str_verify(hash, pw, strlen(pw)) != 0 || rows.nrows == 0) {
        return jt_fail(r, JT_E_INVALID_CREDENTIALS, "wrong email or password");
    }
    uid = jt_cell(&rows, 0, 0)->i;

    if ((rc = auth_token_issue(r->db, r->arena, uid, c->token_ttl, token, th)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    v[0] = JT_VB(th, 32);
    if ((rc = jt_db_exec(r->db, r->arena, SQL_TOKEN_EXPIRY, v, 1, &rows)) != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    jt_json_begin(r, &b, &w, 192);
    jw_obj_open(&w);
    jw_kstr(&w, "token", token);
    jw_kstr(&w, "tokenType", "Bearer");
    jw_kstr(&w, "expiresAt", rows.nrows ? jt_cell(&rows, 0, 0)->s : "");
    jw_kint(&w, "userId", uid);
    jw_obj_close(&w);
    jt_reply_json(r, 201, &b);
    return JT_OK;
}

/* DELETE /api/v1/auth/tokens/current: takes effect at once (every request
 * checks the token row; nothing caches it). */
jt_err
auth_token_revoke(jt_req *r)
{
    jt_principal p;
    jt_val v[1];
    jt_rows rows;
    jt_db_rc rc;
    jt_err e;

    if ((e = auth_require(r, &p)) != JT_OK) {
        return e;
    }
    v[0] = JT_VB(p.token_hash, 32);
    rc = jt_db_exec(r->db, r->arena, SQL_TOKEN_REVOKE, v, 1, &rows);
    jt_authcache_revoked(r->redis, r->arena);   /* done, or maybe done (a lost connection) */
    if (rc != JT_DB_OK) {
        return jt_db_fail(r, rc);
    }
    jt_reply_text(r, 204, "application/json", "", 0);
    return JT_OK;
}

/* Accounts and bearer tokens: registering a user, who is asking, and may
 * they act on this user (accounts.c). */
#ifndef JT_ACCOUNTS_H
#define JT_ACCOUNTS_H

#include <json-c/json.h>
#include <stdint.h>

#include "http/request.h"
#include "store/db.h"

typedef struct {
    int64_t       user_id;
    int           is_admin;
    const char   *role;
    unsigned char token_hash[32];
} jt_principal;

/* 401 without a valid, unexpired, unrevoked token. */
jt_err auth_require(jt_req *r, jt_principal *p);
/* auth_require, then 403 unless the principal is user_id or an admin. */
jt_err auth_require_user(jt_req *r, jt_principal *p, int64_t user_id);

jt_err accounts_create(jt_req *r);
jt_err accounts_get(jt_req *r);
jt_err auth_token_create(jt_req *r);
jt_err auth_token_revoke(jt_req *r);

/* Shared with the admin tool: validates and inserts a user. */
typedef struct {
    const char *email;      /* normalised (lower case) on success */
    const char *password;
    const char *name;
    const char *phone;
    const char *role;
} jt_new_user;

struct jt_db;
jt_err accounts_validate(jt_req *r, jt_new_user *u);
/* The registration body, validated without touching the database. */
jt_err accounts_parse(jt_req *r, json_object *o, jt_new_user *u);
int    accounts_valid_phone(const char *s);
/* Hashes the password, seals the personal fields and inserts the row.
 * JT_OK with *id set, JT_E_EMAIL_TAKEN, JT_E_DATABASE_UNAVAILABLE or
 * JT_E_INTERNAL; no detail is set (the caller may not be a request). */
jt_err accounts_insert(struct jt_db *db, jt_arena *a, const jt_new_user *u, int64_t opslimit,
                       int64_t memlimit_kib, int64_t *id);
/* accounts_insert with a hash made by the caller (a jt_db_rc; DUPLICATE =
 * email taken). */
jt_db_rc accounts_insert_hashed(jt_db *db, jt_arena *a, const jt_new_user *u, const char *hash, int64_t *id);

/* A bearer token's text: 32 random bytes in base64url without padding. */
#define JT_TOKEN_CHARS 43
/* Issues a token for uid valid ttl seconds (only its SHA-256, th, is stored). */
jt_db_rc auth_token_issue(jt_db *db, jt_arena *a, int64_t uid, int64_t ttl, char token[JT_TOKEN_CHARS + 1],
                          unsigned char th[32]);

#endif

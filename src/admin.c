/* jangteo-admin: operations that are not HTTP requests — schema migrations
 * and demo data (more commands join as the domain grows). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/log.h"
#include "core/pii.h"
#include "domain/audit.h"
#include "domain/accounts.h"
#include "domain/catalog.h"
#include "domain/events.h"
#include "domain/lifecycle.h"
#include "domain/payments.h"
#include "domain/points.h"
#include "domain/search.h"
#include "store/authcache.h"
#include "store/tx.h"
#include "store/db.h"
#include "store/pg.h"
#include "store/redis.h"

static const char SQL_MIG_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version VARCHAR(191) NOT NULL PRIMARY KEY,"
    " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
static const char SQL_MIG_APPLIED[] = "SELECT 1 FROM schema_migrations WHERE version = ?";
static const char SQL_MIG_RECORD[] = "INSERT INTO schema_migrations (version) VALUES (?)";

static int
is_migration(const char *name)
{
    size_t n = strlen(name);
    return n > 8 && name[0] >= '0' && name[0] <= '9' && name[1] >= '0' && name[1] <= '9'
           && name[2] >= '0' && name[2] <= '9' && name[3] == '_' && !strcmp(name + n - 4, ".sql");
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "re");
    char *buf;
    long n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > 16 * 1024 * 1024 || (buf = malloc((size_t) n + 1)) == NULL) {
        fclose(f);
        return NULL;
    }
    *len = fread(buf, 1, (size_t) n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Applies every sql_dir/NNN_*.sql not yet recorded in schema_migrations, in
 * name order. Re-running is a no-op. */
static int
cmd_migrate(const jt_conf *c, jt_arena *a)
{
    jt_db db;
    DIR *d;
    struct dirent *de;
    char *names[1000];
    int n = 0, i, applied = 0, rc = 1;

    jt_db_init(&db, c, c->mig_user[0] ? c->mig_user : c->db_user,
               c->mig_user[0] ? c->mig_password : c->db_password);
    if (jt_db_ready(&db) != JT_DB_OK) {
        fprintf(stderr, "migrate: cannot connect: %s\n", db.last_error);
        return 1;
    }
    if (jt_db_run_script(&db, SQL_MIG_TABLE, strlen(SQL_MIG_TABLE)) != JT_DB_OK) {
        fprintf(stderr, "migrate: %s\n", db.last_error);
        goto out;
    }
    d = opendir(c->mig_sql_dir);
    if (d == NULL) {
        fprintf(stderr, "migrate: cannot open %s: %s\n", c->mig_sql_dir, strerror(errno));
        goto out;
    }
    while ((de = readdir(d)) != NULL && n < 1000) {
        if (is_migration(de->d_name)) {
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t) n, sizeof(char *), cmp_names);

    for (i = 0; i < n; i++) {
        jt_val v[1] = { JT_VS(names[i]) };
        jt_rows rows;
        char path[1024];
        size_t len;
        char *sql;

        if (jt_db_exec(&db, a, SQL_MIG_APPLIED, v, 1, &rows) != JT_DB_OK) {
            fprintf(stderr, "migrate: %s\n", db.last_error);
            goto out_names;
        }
        if (rows.nrows > 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", c->mig_sql_dir, names[i]);
        sql = slurp(path, &len);
        if (sql == NULL) {
            fprintf(stderr, "migrate: cannot read %s\n", path);
            goto out_names;
        }
        if (jt_db_run_script(&db, sql, len) != JT_DB_OK) {
            fprintf(stderr, "migrate: %s failed: %s\n", names[i], db.last_error);
            free(sql);
            goto out_names;
        }
        free(sql);
        if (jt_db_exec(&db, a, SQL_MIG_RECORD, v, 1, &rows) != JT_DB_OK) {
            fprintf(stderr, "migrate: cannot record %s: %s\n", names[i], db.last_error);
            goto out_names;
        }
        printf("migrate: applied %s\n", names[i]);
        applied++;
    }
    printf("migrate: %d applied, %d already in place\n", applied, n - applied);
    rc = 0;
out_names:
    for (i = 0; i < n; i++) {
        free(names[i]);
    }
out:
    jt_db_close(&db);
    return rc;
}

static const char SQL_DEMO_COUNT[] = "SELECT COUNT(*) FROM products";
static const char SQL_DEMO_PRODUCT[] = "INSERT INTO products (name, price, stock) VALUES (?, ?, ?)";
static const char SQL_DEMO_MOVEMENTS_P[] =
    "INSERT INTO stock_movements (product_id, option_id, delta, kind) SELECT id, NULL, stock, 'INITIAL'"
    " FROM products WHERE NOT EXISTS (SELECT 1 FROM product_options o WHERE o.product_id = products.id)"
    " AND NOT EXISTS (SELECT 1 FROM stock_movements m WHERE m.product_id = products.id)";
static const char SQL_DEMO_MOVEMENTS_O[] =
    "INSERT INTO stock_movements (product_id, option_id, delta, kind) SELECT product_id, id, stock, 'INITIAL'"
    " FROM product_options WHERE NOT EXISTS (SELECT 1 FROM stock_movements m WHERE m.option_id = product_options.id)";
static const char SQL_DEMO_OPTION[] =
    "INSERT INTO product_options (product_id, name, extra_price, stock) VALUES (?, ?, ?, ?)";
static const char SQL_DEMO_HAS_OPTIONS[] = "UPDATE products SET has_options = 1 WHERE id = ?";

/* A realistic catalog: a few hundred products, prices in KRW. */
static int
cmd_demo(const jt_conf *c, jt_arena *a)
{
    static const char *kinds[] = {
        "배추김치", "고추장", "된장", "참기름", "들기름", "김", "햇반", "라면", "떡볶이 떡", "만두",
        "한우 불고기", "삼겹살", "고등어", "오징어", "멸치", "쌀 10kg", "현미", "보리차", "유자차", "식혜",
        "사과", "배", "감귤", "딸기", "수박", "참외", "고구마", "감자", "양파", "대파",
    };
    static const char *brands[] = { "장터", "한솔", "푸른들", "바다향", "산골", "해담", "정가네", "미소" };
    static const char *sizes[] = { "소", "중", "대", "선물세트", "1+1" };
    jt_db db;
    jt_rows rows;
    int i, rc = 1;
    uint32_t seed = 12345;

    jt_db_init(&db, c, c->db_user, c->db_password);
    if (jt_db_exec(&db, a, SQL_DEMO_COUNT, NULL, 0, &rows) != JT_DB_OK) {
        fprintf(stderr, "demo-data: %s\n", db.last_error);
        goto out;
    }
    if (jt_cell(&rows, 0, 0)->i > 0) {
        printf("demo-data: catalog already has %lld products; left as is\n",
               (long long) jt_cell(&rows, 0, 0)->i);
    } else {
        if (jt_db_begin(&db) != JT_DB_OK) {
            goto out;
        }
        for (i = 0; i < 300; i++) {
            char name[128];
            int64_t price, stock;
            jt_val v[3];

            seed = seed * 1103515245u + 12345u;
            snprintf(name, sizeof(name), "%s %s (%s)", brands[(seed >> 8) % 8],
                     kinds[i % 30], sizes[(seed >> 16) % 5]);
            price = (int64_t) (1 + (seed >> 4) % 120) * 500;   /* 500 .. 60,000 KRW */
            stock = (int64_t) ((seed >> 12) % 200);
            v[0] = JT_VS(name);
            v[1] = JT_VI(price);
            v[2] = JT_VI(stock);
            if (jt_db_exec(&db, a, SQL_DEMO_PRODUCT, v, 3, &rows) != JT_DB_OK) {
                fprintf(stderr, "demo-data: %s\n", db.last_error);
                jt_db_rollback(&db);
                goto out;
            }
            {
                jt_tx tx = { &db, a, JT_DB_OK, 1, NULL, NULL };
                if (search_index_name(&tx, (int64_t) rows.insert_id, name) != JT_TX_COMMIT) {
                    fprintf(stderr, "demo-data: %s\n", db.last_error);
                    jt_db_rollback(&db);
                    goto out;
                }
            }
            /* every tenth product is sold by size: its stock lives on the options */
            if (i % 10 == 9) {
                static const char *opt[] = { "소 (S)", "중 (M)", "대 (L)" };
                int64_t pid = (int64_t) rows.insert_id;
                int k;
                jt_val hv[1] = { JT_VI(pid) };
                for (k = 0; k < 3; k++) {
                    jt_val ov[4] = { JT_VI(pid), JT_VS(opt[k]), JT_VI(k * 2000), JT_VI(50) };
                    if (jt_db_exec(&db, a, SQL_DEMO_OPTION, ov, 4, &rows) != JT_DB_OK) {
                        fprintf(stderr, "demo-data: %s\n", db.last_error);
                        jt_db_rollback(&db);
                        goto out;
                    }
                }
                if (jt_db_exec(&db, a, SQL_DEMO_HAS_OPTIONS, hv, 1, &rows) != JT_DB_OK) {
                    fprintf(stderr, "demo-data: %s\n", db.last_error);
                    jt_db_rollback(&db);
                    goto out;
                }
            }
        }
        if (jt_db_exec(&db, a, SQL_DEMO_MOVEMENTS_P, NULL, 0, &rows) != JT_DB_OK
            || jt_db_exec(&db, a, SQL_DEMO_MOVEMENTS_O, NULL, 0, &rows) != JT_DB_OK
            || jt_db_commit(&db) != JT_DB_OK) {
            fprintf(stderr, "demo-data: %s\n", db.last_error);
            goto out;
        }
        printf("demo-data: 300 products loaded (30 of them with size options)\n");
    }
    rc = 0;
out:
    jt_db_close(&db);
    return rc;
}

/* Creates one account through the same validation as the API: JT_OK, or
 * the reason (already reported on stderr, bar JT_E_EMAIL_TAKEN, which the
 * caller words). */
static jt_err
create_user(const jt_conf *c, jt_arena *a, jt_db *db, jt_new_user *u, int64_t *id)
{
    jt_req r;
    jt_err e;

    memset(&r, 0, sizeof(r));
    r.arena = a;
    if ((e = accounts_validate(&r, u)) != JT_OK) {
        fprintf(stderr, "invalid account: %s\n", r.problem_detail ? r.problem_detail : "?");
        return e;
    }
    if (strlen(u->password) < 8 || strlen(u->password) > 72) {
        fprintf(stderr, "invalid account: the password must be 8 to 72 characters long\n");
        return JT_E_INVALID_REQUEST;
    }
    e = accounts_insert(db, a, u, c->kdf_opslimit, c->kdf_memlimit_kib, id);
    if (e != JT_OK && e != JT_E_EMAIL_TAKEN) {
        fprintf(stderr, "cannot create %s: %s\n", u->email, db->last_error);
    }
    return e;
}

static const char SQL_DEMO_USERS[] = "SELECT COUNT(*) FROM users";

static int
demo_users(const jt_conf *c, jt_arena *a)
{
    static struct { const char *email, *password, *name, *phone, *role; } demo[] = {
        { "buyer@jangteo.test",  "jangteo-buyer-1234",  "김구매", "010-1234-5678", "BUYER" },
        { "buyer2@jangteo.test", "jangteo-buyer-5678",  "이장터", "010-2345-6789", "BUYER" },
        { "seller@jangteo.test", "jangteo-seller-1234", "박판매", "010-3456-7890", "SELLER" },
        { "admin@jangteo.test",  "jangteo-admin-1234",  "관리자", "010-4567-8901", "ADMIN" },
    };
    jt_db db;
    jt_rows rows;
    size_t i;
    int rc = 1;

    jt_db_init(&db, c, c->db_user, c->db_password);
    if (jt_db_exec(&db, a, SQL_DEMO_USERS, NULL, 0, &rows) != JT_DB_OK) {
        fprintf(stderr, "demo-data: %s\n", db.last_error);
        goto out;
    }
    if (jt_cell(&rows, 0, 0)->i == 0) {
        for (i = 0; i < sizeof(demo) / sizeof(demo[0]); i++) {
            jt_new_user u = { demo[i].email, demo[i].password, demo[i].name, demo[i].phone, demo[i].role };
            int64_t id;
            if (create_user(c, a, &db, &u, &id) != JT_OK) {
                goto out;
            }
        }
    }
    printf("demo accounts (email / password / role):\n");
    for (i = 0; i < sizeof(demo) / sizeof(demo[0]); i++) {
        printf("  %-22s %-22s %s\n", demo[i].email, demo[i].password, demo[i].role);
    }
    rc = 0;
out:
    jt_db_close(&db);
    return rc;
}

/* create-admin --email E --name N --phone P --password-file F */
static int
cmd_create_admin(const jt_conf *c, jt_arena *a, int argc, char **argv)
{
    static const struct option opts[] = {
        { "email", required_argument, NULL, 'e' },
        { "name", required_argument, NULL, 'n' },
        { "phone", required_argument, NULL, 'p' },
        { "password-file", required_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    jt_new_user u = { NULL, NULL, "관리자", "010-0000-0000", "ADMIN" };
    char password[256] = "";
    jt_db db;
    int64_t id;
    jt_err e;
    int o;

    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'e': u.email = optarg; break;
        case 'n': u.name = optarg; break;
        case 'p': u.phone = optarg; break;
        case 'f': {
            FILE *f = fopen(optarg, "re");
            size_t n;
            if (f == NULL) {
                fprintf(stderr, "create-admin: cannot read %s\n", optarg);
                return 2;
            }
            n = fread(password, 1, sizeof(password) - 1, f);
            fclose(f);
            password[n] = '\0';
            password[strcspn(password, "\r\n")] = '\0';
            break;
        }
        default:
            return 2;
        }
    }
    if (u.email == NULL || password[0] == '\0') {
        fprintf(stderr, "usage: jangteo-admin create-admin --email E --password-file F [--name N] [--phone P]\n");
        return 2;
    }
    u.password = password;
    jt_db_init(&db, c, c->db_user, c->db_password);
    e = create_user(c, a, &db, &u, &id);
    jt_db_close(&db);
    if (e == JT_E_EMAIL_TAKEN) {
        fprintf(stderr, "create-admin: %s is already registered\n", u.email);
        return 1;
    }
    if (e != JT_OK) {
        return 1;
    }
    printf("create-admin: admin user %lld created\n", (long long) id);
    return 0;
}

/* --- load runs: buyers with points and tokens, products with stock ------ */

#define LOAD_BATCH 100       /* rows per transaction: one durable commit each */
#define LOAD_MAX   100000

/* A whole decimal number in [lo, hi]: JT_OK, or JT_E_INVALID_REQUEST with
 * a message on stderr. */
static jt_err
parse_count(const char *cmd, const char *what, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = s != NULL ? strtoll(s, &end, 10) : 0;
    if (s == NULL || *s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "%s: %s must be a whole number from %lld to %lld\n", cmd, what, (long long) lo,
                (long long) hi);
        return JT_E_INVALID_REQUEST;
    }
    *out = v;
    return JT_OK;
}

/* The first member of each load command's transaction data: which rows
 * this batch makes, and the ids they got. */
typedef struct {
    int     first;       /* row numbers first .. first + n - 1 */
    int     n;
    int64_t ids[LOAD_BATCH];
} load_batch;

/* What a load run made: rows committed and their id range. */
typedef struct {
    int     done;
    int64_t first_id, last_id;
    int     contiguous;
} load_result;

/* Runs `body` over n rows, LOAD_BATCH per transaction (through tx.c's
 * retry loop), calling `committed` after each COMMIT (it may write what
 * the batch made; nonzero stops the run) and showing progress on a
 * terminal only (stderr a tty), so logs and pipes stay clean. Returns 0
 * when all n rows were committed; the rows of earlier batches stay either
 * way and are counted in *res. */
static int
load_run(const char *cmd, const char *what, const jt_conf *c, jt_arena *a, int64_t n, jt_tx_body body,
         load_batch *b, int (*committed)(void *data), load_result *res)
{
    jt_tx_policy policy = { c->tx_max_attempts, c->tx_deadline_ms, c->tx_backoff_base_ms,
                            c->tx_backoff_max_ms, 0 };
    int tty = isatty(STDERR_FILENO), rc = 0, i;
    jt_db db;

    memset(res, 0, sizeof(*res));
    res->contiguous = 1;
    jt_db_init(&db, c, c->db_user, c->db_password);
    while (res->done < n) {
        jt_tx_rc trc;

        b->first = res->done + 1;
        b->n = n - res->done < LOAD_BATCH ? (int) (n - res->done) : LOAD_BATCH;
        trc = jt_tx_run(&db, a, &policy, body, b);
        if (trc != JT_TX_OK) {
            fprintf(stderr, "%s%s: %s after %d %s were committed: %s\n", tty ? "\n" : "", cmd,
                    trc == JT_TX_DB_DOWN ? "the database is unavailable" : "a batch failed", res->done, what,
                    db.last_error[0] ? db.last_error : "refused");
            rc = 1;
            break;
        }
        for (i = 0; i < b->n; i++) {
            res->contiguous = res->contiguous && (res->first_id == 0 || b->ids[i] == res->last_id + 1);
            res->first_id = res->first_id ? res->first_id : b->ids[i];
            res->last_id = b->ids[i];
        }
        res->done += b->n;
        jt_arena_reset(a);
        if (committed != NULL && committed(b) != 0) {
            rc = 1;
            break;
        }
        if (tty) {
            fprintf(stderr, "\r%s: %d of %lld %s%s", cmd, res->done, (long long) n, what,
                    res->done == n ? "\n" : "");
            fflush(stderr);
        }
    }
    jt_db_close(&db);
    return rc;
}

typedef struct {
    load_batch     b;
    const jt_conf *conf;
    const char    *tag;       /* this run's random tag: emails never collide with another run's */
    const char    *hash;      /* the run's one password hash */
    int64_t        balance;
    char           tokens[LOAD_BATCH][JT_TOKEN_CHARS + 1];
    FILE          *out;
    const char    *path;
} load_buyers_tx;

/* One batch of load buyers in one transaction: each account is validated
 * and inserted as registration does, charged through points_apply (so its
 * balance is its one CHARGE ledger row and the audit stays clean) and given
 * a token as login issues them. A retry redoes the whole batch with fresh
 * tokens; nothing is written to the tokens file before COMMIT. The rows are
 * new, so no other process can write them before COMMIT: no lock is needed. */
static jt_tx_step
load_buyers_body(jt_tx *tx)
{
    load_buyers_tx *t = tx->data;
    int i;

    for (i = 0; i < t->b.n; i++) {
        char email[96], name[64];
        jt_new_user u = { email, NULL, name, "010-0000-0000", "BUYER" };
        unsigned char th[32];
        int64_t after, ledger;
        jt_tx_step step;
        jt_err why;
        jt_req r;

        snprintf(email, sizeof(email), "load-%s-%d@load.jangteo.test", t->tag, t->b.first + i);
        snprintf(name, sizeof(name), "부하 구매자 %d", t->b.first + i);
        memset(&r, 0, sizeof(r));
        r.arena = tx->arena;
        if (accounts_validate(&r, &u) != JT_OK) {
            return JT_TX_ABORT;
        }
        tx->db_rc = accounts_insert_hashed(tx->db, tx->arena, &u, t->hash, &t->b.ids[i]);
        if (tx->db_rc != JT_DB_OK) {
            return JT_TX_DBERR;
        }
        if (t->balance > 0) {
            step = points_apply(tx, t->b.ids[i], t->balance, "CHARGE", 0, &after, &ledger, &why);
            if (step != JT_TX_COMMIT) {
                return step;
            }
        }
        tx->db_rc = auth_token_issue(tx->db, tx->arena, t->b.ids[i], t->conf->token_ttl, t->tokens[i], th);
        if (tx->db_rc != JT_DB_OK) {
            return JT_TX_DBERR;
        }
    }
    return JT_TX_COMMIT;
}

/* After a batch's COMMIT: its tokens, one a line. */
static int
load_buyers_committed(void *data)
{
    load_buyers_tx *t = data;
    int i;

    for (i = 0; i < t->b.n; i++) {
        fprintf(t->out, "%s\n", t->tokens[i]);
    }
    sodium_memzero(t->tokens, sizeof(t->tokens));
    if (fflush(t->out) != 0) {
        fprintf(stderr, "load-buyers: writing %s: %s\n", t->path, strerror(errno));
        return 1;
    }
    return 0;
}

/* load-buyers N --balance B --tokens FILE
 *
 * N buyers for load runs, each with balance B and one bearer token (one per
 * line of FILE, mode 0600: they are credentials), in batches of LOAD_BATCH.
 * Fast because argon2id runs once, not N times: the buyers of a run share
 * one hash of a random 256-bit password that is never written anywhere.
 * That is safe: argon2id's cost protects human-chosen passwords from
 * guessing; a 256-bit random one cannot be guessed at any cost, so sharing
 * its hash (and salt) tells nobody anything, and nobody can log in as a
 * load buyer with a password at all. Their tokens are made exactly as
 * POST /api/v1/auth/tokens makes them (256 random bits, SHA-256 stored,
 * [auth] token_ttl) and work, and are revoked, the same way. */
static int
cmd_load_buyers(const jt_conf *c, jt_arena *a, int argc, char **argv)
{
    static const struct option opts[] = {
        { "balance", required_argument, NULL, 'b' },
        { "tokens", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    static const char cmd[] = "load-buyers";
    load_buyers_tx t;
    load_result res;
    const char *balance_s = "0";
    unsigned char raw[32], tag_raw[4];
    char password[64], hash[crypto_pwhash_STRBYTES], tag[9];
    int64_t n;
    int o, fd, rc;

    memset(&t, 0, sizeof(t));
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'b': balance_s = optarg; break;
        case 't': t.path = optarg; break;
        default:  return 2;
        }
    }
    if (optind != argc - 1 || t.path == NULL) {
        fprintf(stderr, "usage: jangteo-admin load-buyers N [--balance B] --tokens FILE\n");
        return 2;
    }
    if (parse_count(cmd, "N", argv[optind], 1, LOAD_MAX, &n) != JT_OK
        || parse_count(cmd, "--balance", balance_s, 0, JT_BALANCE_MAX, &t.balance) != JT_OK) {
        return 2;
    }
    /* before any row exists: a path we cannot write creates nothing */
    fd = open(t.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 || (t.out = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "%s: cannot write %s: %s\n", cmd, t.path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return 1;
    }

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(password, sizeof(password), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    if (crypto_pwhash_str(hash, password, strlen(password), (unsigned long long) c->kdf_opslimit,
                          (size_t) c->kdf_memlimit_kib * 1024) != 0) {
        fprintf(stderr, "%s: cannot hash a password (out of memory?)\n", cmd);
        fclose(t.out);
        return 1;
    }
    sodium_memzero(password, sizeof(password));
    randombytes_buf(tag_raw, sizeof(tag_raw));
    sodium_bin2hex(tag, sizeof(tag), tag_raw, sizeof(tag_raw));
    t.conf = c;
    t.tag = tag;
    t.hash = hash;

    rc = load_run(cmd, "buyers", c, a, n, load_buyers_body, &t.b, load_buyers_committed, &res);
    sodium_memzero(hash, sizeof(hash));
    if (fclose(t.out) != 0 && rc == 0) {
        fprintf(stderr, "%s: writing %s: %s\n", cmd, t.path, strerror(errno));
        rc = 1;
    }
    if (rc != 0) {
        if (res.done > 0) {
            fprintf(stderr, "%s: the %d buyers created have their tokens in %s\n", cmd, res.done, t.path);
        }
        return 1;
    }
    printf("%s: %d buyers created (user ids %lld to %lld), balance %lld each (%s);"
           " %d tokens in %s, valid for %lld s\n", cmd, res.done, (long long) res.first_id,
           (long long) res.last_id, (long long) t.balance, t.balance ? "one CHARGE ledger row" : "no ledger row",
           res.done, t.path, (long long) c->token_ttl);
    return 0;
}

typedef struct {
    load_batch b;
    int64_t    price, stock;
} load_products_tx;

/* One batch of load products in one transaction, each as the catalog
 * creates it (INITIAL stock movement, search grams). */
static jt_tx_step
load_products_body(jt_tx *tx)
{
    load_products_tx *t = tx->data;
    int i;

    for (i = 0; i < t->b.n; i++) {
        char name[64];
        jt_tx_step step;

        snprintf(name, sizeof(name), "부하 상품 %d", t->b.first + i);
        step = catalog_insert_simple(tx, name, t->price, t->stock, &t->b.ids[i]);
        if (step != JT_TX_COMMIT) {
            return step;
        }
    }
    return JT_TX_COMMIT;
}

/* load-products N [--price P] [--stock S]: N products for load runs. The
 * ids are printed as a range; they are contiguous unless someone else
 * created products at the same moment (then it says so). */
static int
cmd_load_products(const jt_conf *c, jt_arena *a, int argc, char **argv)
{
    static const struct option opts[] = {
        { "price", required_argument, NULL, 'p' },
        { "stock", required_argument, NULL, 's' },
        { NULL, 0, NULL, 0 },
    };
    static const char cmd[] = "load-products";
    load_products_tx t;
    load_result res;
    const char *price_s = "1000", *stock_s = "1000000";
    int64_t n;
    int o;

    memset(&t, 0, sizeof(t));
    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': price_s = optarg; break;
        case 's': stock_s = optarg; break;
        default:  return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: jangteo-admin load-products N [--price P] [--stock S]\n");
        return 2;
    }
    if (parse_count(cmd, "N", argv[optind], 1, LOAD_MAX, &n) != JT_OK
        || parse_count(cmd, "--price", price_s, 0, JT_PRODUCT_PRICE_MAX, &t.price) != JT_OK
        || parse_count(cmd, "--stock", stock_s, 0, JT_PRODUCT_STOCK_MAX, &t.stock) != JT_OK) {
        return 2;
    }
    if (load_run(cmd, "products", c, a, n, load_products_body, &t.b, NULL, &res) != 0) {
        return 1;
    }
    printf("%s: %d product%s created, ids %lld-%lld%s, price %lld, stock %lld each\n", cmd, res.done,
           res.done == 1 ? "" : "s", (long long) res.first_id, (long long) res.last_id,
           res.contiguous ? "" : " (not contiguous: other products were created meanwhile)", (long long) t.price,
           (long long) t.stock);
    return 0;
}

static const char SQL_PURGE_IDEM[] = "DELETE FROM idempotency_keys WHERE expires_at <= NOW(6) LIMIT 1000";
static const char SQL_PURGE_TOKENS[] = "DELETE FROM auth_tokens WHERE expires_at <= NOW(6) LIMIT 1000";

/* purge: removes expired idempotency keys and tokens, and published events
 * past their retention, in bounded batches */
static int
cmd_purge(const jt_conf *c, jt_arena *a)
{
    const char *sqls[2] = { SQL_PURGE_IDEM, SQL_PURGE_TOKENS };
    uint64_t total[2] = { 0, 0 };
    jt_db db;
    int i, batches;

    jt_db_init(&db, c, c->db_user, c->db_password);
    for (i = 0; i < 2; i++) {
        for (batches = 0; batches < 100000; batches++) {
            jt_rows rows;
            if (jt_db_exec(&db, a, sqls[i], NULL, 0, &rows) != JT_DB_OK) {
                fprintf(stderr, "purge: %s\n", db.last_error);
                jt_db_close(&db);
                return 1;
            }
            total[i] += rows.affected;
            jt_arena_reset(a);
            if (rows.affected < 1000) {
                break;
            }
        }
    }
    {
        /* published events past [events] retention (the relay does this
         * every minute too), in the same bounded batches */
        int64_t n, events = 0;
        for (batches = 0; batches < 10000 && (n = events_purge(c, &db, a)) > 0; batches++) {
            events += n;
            jt_arena_reset(a);
        }
        jt_db_close(&db);
        printf("purge: %llu expired idempotency keys, %llu expired tokens, %lld published events older than %lld s"
               " removed\n",
               (unsigned long long) total[0], (unsigned long long) total[1], (long long) events,
               (long long) c->ev_retention);
    }
    return 0;
}

/* audit [--timeout S]: every invariant with its figures, and with a
 * gateway configured every card order against the gateway's records; exit
 * 1 on any violation. Its statements scan whole tables, so they are bounded
 * by --timeout (default 300 s each), not by a request's [mariadb]
 * read_timeout: after a load run of 100,000 orders a check takes seconds. */
static int
cmd_audit(const jt_conf *c, jt_arena *a, int argc, char **argv)
{
    static const struct option opts[] = {
        { "timeout", required_argument, NULL, 't' },
        { NULL, 0, NULL, 0 },
    };
    const char *timeout_s = "300";
    jt_conf ac = *c;
    jt_audit report;
    jt_db db;
    jt_pg pg;
    jt_pay_env env;
    jt_db_rc rc;
    int i, o;

    optind = 0;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o != 't') {
            return 2;
        }
        timeout_s = optarg;
    }
    if (optind != argc
        || parse_count("audit", "--timeout", timeout_s, 1, 3600, &ac.db_read_timeout) != JT_OK) {
        fprintf(stderr, "usage: jangteo-admin audit [--timeout SECONDS]\n");
        return 2;
    }
    jt_db_init(&db, &ac, c->db_user, c->db_password);
    if (jt_pg_init_shared(c) != 0 || jt_pg_init(&pg, c) != 0) {
        fprintf(stderr, "audit: cannot set up the payment gateway client\n");
        return 2;
    }
    pg.in_flight_limit = 0;
    env.conf = c;
    env.db = &db;
    env.redis = NULL;
    env.pg = &pg;
    env.arena = a;
    rc = audit_run_gateway(&env, INT64_C(1000000), &report);
    jt_pg_close(&pg);
    if (rc != JT_DB_OK) {
        fprintf(stderr, "audit: %s\n", db.last_error);
        jt_db_close(&db);
        return 2;
    }
    jt_db_close(&db);
    for (i = 0; i < report.n; i++) {
        jt_audit_check *k = &report.checks[i];
        printf("audit: %-24s %-4s checked %-8lld violations %-6lld %s%s%s\n", k->name,
               k->violations ? "FAIL" : "ok", (long long) k->checked, (long long) k->violations,
               k->invariant, k->violations ? "; e.g. ids " : "", k->samples);
    }
    printf("audit: %s (%lld violations)\n", report.violations ? "VIOLATIONS FOUND" : "clean",
           (long long) report.violations);
    return report.violations ? 1 : 0;
}

/* sweep: one pass of the order lifecycle's scheduler, for sites that run
 * it from a timer ([lifecycle] scheduler = no); safe beside a running
 * daemon's scheduler (domain/lifecycle.h) */
static int
cmd_sweep(const jt_conf *c, jt_arena *a)
{
    jt_sweep_report rep;
    jt_redis redis;
    jt_db db;
    jt_err e;

    jt_db_init(&db, c, c->db_user, c->db_password);
    jt_redis_init(&redis, c);
    e = lifecycle_sweep(c, &db, &redis, a, &rep);
    jt_db_close(&db);
    jt_redis_close(&redis);
    if (e != JT_OK) {
        fprintf(stderr, "sweep: MariaDB unavailable\n");
        return 1;
    }
    if (rep.locked_out) {
        printf("sweep: another scheduler is sweeping now; nothing done\n");
        return 0;
    }
    printf("sweep: %lld moved, %lld skipped, %lld to retry%s\n", (long long) rep.moved, (long long) rep.skipped,
           (long long) rep.failed, rep.out_of_time ? " (deadline reached; the rest waits)" : "");
    return rep.failed ? 1 : 0;
}

/* auth-flush: every host's token cache forgets (store/authcache.h), for a
 * role, an expiry or a revocation changed in SQL rather than through the
 * API; the hosts see it within [auth] cache_poll_ms */
static int
cmd_auth_flush(const jt_conf *c, jt_arena *a)
{
    jt_redis redis;
    int64_t epoch;
    int rc = 0;

    jt_redis_init(&redis, c);
    if ((epoch = jt_authcache_tell(&redis, a)) < 0) {
        fprintf(stderr, "auth-flush: Redis unavailable (the caches forget within [auth] cache_ttl_ms = %lld)\n",
                (long long) c->auth_cache_ttl_ms);
        rc = 1;
    } else {
        printf("auth-flush: token caches told (auth:epoch %lld); every host forgets within %lld ms\n",
               (long long) epoch, (long long) c->auth_cache_poll_ms);
    }
    jt_redis_close(&redis);
    return rc;
}

static void
usage(FILE *out)
{
    fprintf(out, "usage: jangteo-admin [-c FILE] COMMAND\n"
                 "commands:\n"
                 "  migrate     apply pending sql/ migrations (uses the [migrate] account)\n"
                 "  demo-data   load the demo catalog and accounts\n"
                 "  create-admin --email E --password-file F [--name N] [--phone P]\n"
                 "  purge       remove expired idempotency keys and tokens, and published events past [events] retention\n"
                 "  load-buyers N [--balance B] --tokens FILE\n"
                 "              N buyers with balance B for load runs; one bearer token per line of FILE\n"
                 "  load-products N [--price P] [--stock S]\n"
                 "              N products for load runs (default price 1000, stock 1000000)\n"
                 "  audit [--timeout S]\n"
                 "              check every money and stock invariant (exit 1 on a violation);\n"
                 "              each statement may take S seconds (default 300)\n"
                 "  sweep       move due orders along their lifecycle once (the scheduler's sweep)\n"
                 "  auth-flush  make every host's token cache forget (after roles or tokens were changed in SQL)\n");
}

static int
need_keys(const jt_conf *c)
{
    char err[256];
    if (jt_pii_load(c->pii_key_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "jangteo-admin: %s\n", err);
        return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    const char *path = JT_CONF_FILE;
    jt_conf conf;
    jt_arena arena;
    char err[256];
    int c, rc;

    while ((c = getopt(argc, argv, "+c:h")) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'h': usage(stdout); return 0;
        default:  usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (sodium_init() < 0 || jt_conf_load(&conf, path, err, sizeof(err)) != 0) {
        fprintf(stderr, "jangteo-admin: %s\n", err);
        return 1;
    }
    jt_log_open("", "off", "warn");
    if (jt_arena_init(&arena, 64 * 1024) != 0) {
        return 1;
    }
    if (!strcmp(argv[optind], "migrate")) {
        rc = cmd_migrate(&conf, &arena);
    } else if (!strcmp(argv[optind], "demo-data")) {
        rc = need_keys(&conf) || cmd_demo(&conf, &arena) || demo_users(&conf, &arena);
    } else if (!strcmp(argv[optind], "create-admin")) {
        rc = need_keys(&conf) ? 1 : cmd_create_admin(&conf, &arena, argc - optind, argv + optind);
    } else if (!strcmp(argv[optind], "load-buyers")) {
        rc = need_keys(&conf) ? 1 : cmd_load_buyers(&conf, &arena, argc - optind, argv + optind);
    } else if (!strcmp(argv[optind], "load-products")) {
        rc = cmd_load_products(&conf, &arena, argc - optind, argv + optind);
    } else if (!strcmp(argv[optind], "audit")) {
        rc = cmd_audit(&conf, &arena, argc - optind, argv + optind);
    } else if (!strcmp(argv[optind], "sweep")) {
        rc = cmd_sweep(&conf, &arena);
    } else if (!strcmp(argv[optind], "purge")) {
        rc = cmd_purge(&conf, &arena);
    } else if (!strcmp(argv[optind], "auth-flush")) {
        rc = cmd_auth_flush(&conf, &arena);
    } else {
        usage(stderr);
        rc = 2;
    }
    jt_arena_destroy(&arena);
    return rc;
}

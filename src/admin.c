/* jangteo-admin: operations that are not HTTP requests — schema migrations
 * and demo data (more commands join as the domain grows). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "core/arena.h"
#include "core/config.h"
#include "core/log.h"
#include "core/pii.h"
#include "domain/audit.h"
#include "domain/accounts.h"
#include "domain/catalog.h"
#include "domain/payments.h"
#include "domain/search.h"
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

static const char SQL_PURGE_IDEM[] = "DELETE FROM idempotency_keys WHERE expires_at <= NOW(6) LIMIT 1000";
static const char SQL_PURGE_TOKENS[] = "DELETE FROM auth_tokens WHERE expires_at <= NOW(6) LIMIT 1000";

/* purge: removes expired idempotency keys and tokens, in bounded batches */
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
    jt_db_close(&db);
    printf("purge: %llu expired idempotency keys, %llu expired tokens removed\n",
           (unsigned long long) total[0], (unsigned long long) total[1]);
    return 0;
}

/* audit: every invariant with its figures, and with a gateway configured
 * every card order against the gateway's records; exit 1 on any violation */
static int
cmd_audit(const jt_conf *c, jt_arena *a)
{
    jt_audit report;
    jt_db db;
    jt_pg pg;
    jt_pay_env env;
    jt_db_rc rc;
    int i;

    jt_db_init(&db, c, c->db_user, c->db_password);
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

static void
usage(FILE *out)
{
    fprintf(out, "usage: jangteo-admin [-c FILE] COMMAND\n"
                 "commands:\n"
                 "  migrate     apply pending sql/ migrations (uses the [migrate] account)\n"
                 "  demo-data   load the demo catalog and accounts\n"
                 "  create-admin --email E --password-file F [--name N] [--phone P]\n"
                 "  purge       remove expired idempotency keys and tokens\n"
                 "  audit       check every money and stock invariant (exit 1 on a violation)\n");
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
    } else if (!strcmp(argv[optind], "audit")) {
        rc = cmd_audit(&conf, &arena);
    } else if (!strcmp(argv[optind], "purge")) {
        rc = cmd_purge(&conf, &arena);
    } else {
        usage(stderr);
        rc = 2;
    }
    jt_arena_destroy(&arena);
    return rc;
}

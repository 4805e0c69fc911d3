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
#include "store/db.h"

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
        }
        if (jt_db_commit(&db) != JT_DB_OK) {
            goto out;
        }
        printf("demo-data: 300 products loaded\n");
    }
    rc = 0;
out:
    jt_db_close(&db);
    return rc;
}

static void
usage(FILE *out)
{
    fprintf(out, "usage: jangteo-admin [-c FILE] COMMAND\n"
                 "commands:\n"
                 "  migrate     apply pending sql/ migrations (uses the [migrate] account)\n"
                 "  demo-data   load the demo catalog and accounts\n");
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
        rc = cmd_demo(&conf, &arena);
    } else {
        usage(stderr);
        rc = 2;
    }
    jt_arena_destroy(&arena);
    return rc;
}

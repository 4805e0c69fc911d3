#include <stdlib.h>
#include <unistd.h>

#include "core/config.h"
#include "tap.h"

static const char *
write_tmp(const char *text)
{
    static char path[64];
    int fd;
    strcpy(path, "/tmp/jt-conf-XXXXXX");
    fd = mkstemp(path);
    if (write(fd, text, strlen(text)) < 0) {
        return NULL;
    }
    close(fd);
    return path;
}

int
main(void)
{
    jt_conf c;
    char err[256];
    const char *p;
    char secret[64], body[512];

    ok(jt_conf_load(&c, NULL, err, sizeof(err)) == 0, "defaults load");
    is_int(c.workers, 4, "default workers");
    is_int(c.listen_mode, 0660, "default mode is octal 0660");
    is_int(c.enable_test_routes, 0, "test routes off by default");

    p = write_tmp("[server]\nworkers = 8\nlisten_mode = 0666\nenable_test_routes = yes\n"
                  "[redis]\nport = 6390\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) == 0, "file loads: %s", err);
    is_int(c.workers, 8, "workers read");
    is_int(c.listen_mode, 0666, "mode read");
    is_int(c.redis_port, 6390, "redis port read");
    is_int(c.enable_test_routes, 1, "bool read");
    unlink(p);

    p = write_tmp("[server]\nworkers = 0\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) != 0 && strstr(err, "workers"), "range checked: %s", err);
    unlink(p);
    p = write_tmp("[server]\nworkers = 4x\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) != 0, "garbage refused");
    unlink(p);
    p = write_tmp("[server]\nwrokers = 4\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) != 0 && strstr(err, "unknown"), "unknown key refused: %s", err);
    unlink(p);

    /* node lists ([mariadb] hosts, [redis] sentinels) and the allow-list */
    p = write_tmp("[server]\nfastcgi_allow = 10.0.0.2 , 10.0.0.3\n"
                  "[mariadb]\nhosts = 10.0.0.21:3306, db2.example:3307 ,10.0.0.23:3306\n"
                  "[redis]\nsentinels = 10.0.0.11:26379,10.0.0.12:26379\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) == 0, "node lists load: %s", err);
    is_str(c.fastcgi_allow, "10.0.0.2,10.0.0.3", "fastcgi_allow in libfcgi's form (no spaces)");
    is_int(c.db_nnodes, 3, "three Galera nodes");
    is_str(c.db_nodes[1].host, "db2.example", "second node's host");
    is_int(c.db_nodes[1].port, 3307, "second node's port");
    is_int(c.redis_nsentinels, 2, "two sentinels");
    is_int(c.redis_sentinel_nodes[1].port, 26379, "sentinel port");
    unlink(p);
    ok(jt_conf_load(&c, NULL, err, sizeof(err)) == 0 && c.db_nnodes == 0 && c.redis_nsentinels == 0
       && !strcmp(c.fastcgi_allow, "127.0.0.1"), "by default: one MariaDB, one Redis, only 127.0.0.1 over TCP");
    {
        static const char *const bad[] = {
            "[mariadb]\nhosts = 10.0.0.21\n",               /* no port */
            "[mariadb]\nhosts = 10.0.0.21:0\n",             /* port out of range */
            "[mariadb]\nhosts = :3306\n",                   /* no host */
            "[redis]\nsentinels = a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9\n",   /* more than JT_MAX_NODES */
            "[server]\nfastcgi_allow = ,\n",                /* empty: libfcgi would allow everyone */
            "[server]\nfastcgi_allow = web.example\n",      /* a name, not an address */
            NULL,
        };
        int i;
        for (i = 0; bad[i] != NULL; i++) {
            p = write_tmp(bad[i]);
            ok(jt_conf_load(&c, p, err, sizeof(err)) != 0 && (strstr(err, "hosts") || strstr(err, "sentinels")
                                                             || strstr(err, "fastcgi_allow")),
               "refused with the setting named: %s", err);
            unlink(p);
        }
    }

    strcpy(secret, write_tmp("s3cret\n"));
    snprintf(body, sizeof(body), "[mariadb]\npassword_file = %s\n", secret);
    p = write_tmp(body);
    ok(jt_conf_load(&c, p, err, sizeof(err)) == 0, "password_file loads");
    is_str(c.db_password, "s3cret", "secret read from file, newline stripped");
    unlink(p);

    /* [payments] */
    ok(jt_conf_load(&c, NULL, err, sizeof(err)) == 0 && c.pg_hold_seconds == 900 && c.breaker_window == 100
           && c.breaker_min_calls == 50 && c.breaker_failure_rate == 20 && c.breaker_slow_rate == 10
           && c.breaker_slow_ms == 3000 && c.breaker_open_ms == 6000 && c.breaker_half_open_calls == 10
           && c.pg_retry_attempts == 3 && c.pg_retry_interval_ms == 500,
       "payments defaults: hold 900 s, breaker 100/50/20 %%/10 %%/3000 ms/6 s/10, 3 attempts 500 ms apart");
    snprintf(body, sizeof(body), "[payments]\npg_url = http://127.0.0.1:9\nimp_key = k\nimp_secret_file = %s\n", secret);
    p = write_tmp(body);
    ok(jt_conf_load(&c, p, err, sizeof(err)) == 0, "a gateway with key and secret file loads: %s", err);
    is_str(c.imp_secret, "s3cret", "imp_secret read from its file");
    unlink(p);
    p = write_tmp("[payments]\npg_url = http://127.0.0.1:9\nimp_key = k\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) != 0 && strstr(err, "imp_secret_file"), "a gateway without its secret: %s", err);
    unlink(p);
    snprintf(body, sizeof(body), "[payments]\npg_url = ftp://x\nimp_key = k\nimp_secret_file = %s\n", secret);
    p = write_tmp(body);
    ok(jt_conf_load(&c, p, err, sizeof(err)) != 0 && strstr(err, "pg_url"), "pg_url must be http(s): %s", err);
    unlink(p);
    p = write_tmp("[payments]\nbreaker_window = 40\nbreaker_min_calls = 50\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) != 0 && strstr(err, "breaker_min_calls"), "min calls beyond the window: %s", err);
    unlink(p);
    p = write_tmp("[payments]\nwebhook_allow = 127.0.0.1, localhost\n");
    ok(jt_conf_load(&c, p, err, sizeof(err)) != 0 && strstr(err, "localhost"), "a webhook source that is not an address: %s", err);
    unlink(p);
    unlink(secret);
    return done_testing();
}

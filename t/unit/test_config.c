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
    unlink(secret);
    return done_testing();
}

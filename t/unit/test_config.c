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

    strcpy(secret, write_tmp("s3cret\n"));
    snprintf(body, sizeof(body), "[mariadb]\npassword_file = %s\n", secret);
    p = write_tmp(body);
    ok(jt_conf_load(&c, p, err, sizeof(err)) == 0, "password_file loads");
    is_str(c.db_password, "s3cret", "secret read from file, newline stripped");
    unlink(p);
    unlink(secret);
    return done_testing();
}

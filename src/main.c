/* jangteod: the FastCGI application server. Reads its configuration and
 * hands over to the master process manager (server/master.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "config.h"
#include "core/config.h"
#include "server/master.h"

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: jangteod [-c FILE] [-t] [--print-config] [-v]\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "  -t, --test          check the configuration and exit\n"
            "      --print-config  print every setting with its default\n"
            "  -v, --version       print the version\n",
            JT_CONF_FILE);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "test", no_argument, NULL, 't' },
        { "print-config", no_argument, NULL, 'p' },
        { "version", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = JT_CONF_FILE;
    int c, test = 0;

    while ((c = getopt_long(argc, argv, "c:tvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 't': test = 1; break;
        case 'p': jt_conf_print_defaults(stdout); return 0;
        case 'v': printf("jangteod %s\n", PACKAGE_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default:  usage(stderr); return 2;
        }
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "jangteod: libsodium failed to initialise\n");
        return 1;
    }
    if (test) {
        jt_conf conf;
        char err[256];
        if (jt_conf_load(&conf, path, err, sizeof(err)) != 0) {
            fprintf(stderr, "jangteod: %s\n", err);
            return 1;
        }
        printf("jangteod: configuration %s is valid\n", path);
        return 0;
    }
    return jt_master_run(path);
}

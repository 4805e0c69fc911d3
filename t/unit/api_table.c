/* Prints the API as the daemon has it compiled in, for t/05-openapi.t to
 * hold against openapi/jangteo.yaml:
 *
 *   route METHOD PATH      every route but the test-only ones
 *   code STATUS CODE       every problem code of the error table
 *
 * Path parameters lose their type suffix ({receiptId:str} -> {receiptId}),
 * as the spec spells them. */
#include <stdio.h>
#include <string.h>

#include "http/errors.h"
#include "http/router.h"
#include "routes.h"

static void
print_path(const char *p)
{
    int skip = 0;

    for (; *p; p++) {
        if (*p == ':' ) {
            skip = 1;
        } else if (*p == '}') {
            skip = 0;
        }
        if (!skip) {
            putchar(*p);
        }
    }
}

int
main(void)
{
    size_t i;
    int e;

    for (i = 0; i < jt_nroutes; i++) {
        if (jt_routes[i].flags & JT_ROUTE_TEST) {
            continue;
        }
        printf("route %s ", jt_method_name(jt_routes[i].method));
        print_path(jt_routes[i].pattern);
        putchar('\n');
    }
    for (e = 1; e < JT_E__COUNT; e++) {
        const jt_err_info *info = jt_err_lookup((jt_err) e);
        printf("code %d %s\n", info->status, info->code);
    }
    return 0;
}

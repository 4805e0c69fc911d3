#include "domain/lockkey.h"

#include <stdio.h>

/* One prefix per kind; the id follows it in decimal. */
static const char *const prefixes[JT_LOCKKEY__COUNT] = {
    [JT_LOCKKEY_PRODUCT] = "lock:stock:p:",
    [JT_LOCKKEY_BALANCE] = "lock:balance:",
    [JT_LOCKKEY_AUCTION] = "lock:auction:",
    [JT_LOCKKEY_ORDER]   = "lock:order:",
};

const char *
jt_lockkey(jt_arena *a, jt_lockkey_kind kind, int64_t id)
{
    char tmp[64];

    if ((int) kind < 0 || kind >= JT_LOCKKEY__COUNT) {
        return NULL;
    }
    snprintf(tmp, sizeof(tmp), "%s%lld", prefixes[kind], (long long) id);
    return jt_pstrdup(a, tmp);
}

const char *
jt_lockkey_stock(jt_arena *a, int64_t product_id, int64_t option_id)
{
    (void) option_id;
    return jt_lockkey_product(a, product_id);
}

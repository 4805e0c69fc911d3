/* Every JSON body type through its validator: registration, login-free
 * charge amount, order (items + shipping, sealed), product creation and
 * auction creation. The first byte picks the validator. */
#include "fuzz_common.h"

#include "domain/auctions.h"
#include "domain/accounts.h"
#include "domain/catalog.h"
#include "domain/orders.h"
#include "domain/points.h"
#include "http/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jt_req r;
    json_object *o;
    jt_new_user u;
    int64_t amount;
    jt_err e;

    fuzz_init();
    if (size < 1) {
        return 0;
    }
    fuzz_req(&r, data + 1, size - 1);
    e = jt_json_body(&r, &o);
    fuzz_check(e);
    if (e == JT_OK) {
        switch (data[0] % 5) {
        case 0: fuzz_check(accounts_parse(&r, o, &u)); break;
        case 1: fuzz_check(points_parse_amount(&r, o, &amount)); break;
        case 2: fuzz_check(orders_validate(&r, o)); break;
        case 3: fuzz_check(catalog_validate_create(&r, o)); break;
        default: fuzz_check(auctions_validate_create(&r, o)); break;
        }
    }
    jt_arena_reset(&fuzz_arena);
    return 0;
}

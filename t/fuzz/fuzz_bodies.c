/* Every JSON body type through its validator: registration, login-free
 * charge amount, order (items + shipping, sealed), product creation,
 * auction creation, a cart's and a wishlist's line, a profile's PATCH and
 * a password change. The first byte picks the validator. */
#include "fuzz_common.h"

#include "domain/auctions.h"
#include "domain/accounts.h"
#include "domain/basket.h"
#include "domain/catalog.h"
#include "domain/orders.h"
#include "domain/points.h"
#include "domain/profile.h"
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
        switch (data[0] % 9) {
        case 0: fuzz_check(accounts_parse(&r, o, &u)); break;
        case 1: fuzz_check(points_parse_amount(&r, o, &amount)); break;
        case 2: fuzz_check(orders_validate(&r, o)); break;
        case 3: fuzz_check(catalog_validate_create(&r, o)); break;
        case 4: fuzz_check(auctions_validate_create(&r, o)); break;
        case 5: fuzz_check(basket_validate_line(&r, o, 0)); break;
        case 6: fuzz_check(basket_validate_line(&r, o, 1)); break;
        case 7: fuzz_check(profile_validate_patch(&r, o)); break;
        default: fuzz_check(profile_validate_password(&r, o)); break;
        }
    }
    jt_arena_reset(&fuzz_arena);
    return 0;
}

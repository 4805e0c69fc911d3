/* Header parsers: Idempotency-Key (sf-string or token), If-Match, request
 * id sanitising, and a key's fingerprint. */
#include "fuzz_common.h"

#include "http/conditional.h"
#include "store/idem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *h;
    const char *key, *id;
    size_t len, i;
    int64_t v;
    unsigned char fp[32];

    fuzz_init();
    h = jt_pstrndup(&fuzz_arena, (const char *) data, size);
    if (jt_idem_parse_key(&fuzz_arena, h, &key, &len) == 0) {
        if (len < 1 || len > 255) {
            __builtin_trap();
        }
        for (i = 0; i < len; i++) {
            if ((unsigned char) key[i] <= 0x20 || (unsigned char) key[i] > 0x7e) {
                __builtin_trap();
            }
        }
        jt_idem_fingerprint("POST", "/x", key, len, fp);
    }
    if (jt_http_parse_if_match(h, &v) == JT_IF_MATCH_VERSION && v < 0) {
        __builtin_trap();
    }
    id = jt_req_sanitize_id(&fuzz_arena, h);
    for (i = 0; id[i]; i++) {
        if (id[i] == '\r' || id[i] == '\n' || id[i] == ' ') {
            __builtin_trap();
        }
    }
    jt_arena_reset(&fuzz_arena);
    return 0;
}

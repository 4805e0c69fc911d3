/* Shared set-up for the libFuzzer targets: one arena, a request bound to
 * it, a PII key so sealing validators run, reset after every input. */
#ifndef JT_FUZZ_COMMON_H
#define JT_FUZZ_COMMON_H

#include <stdint.h>
#include <string.h>

#include <sodium.h>

#include "core/arena.h"
#include "core/log.h"
#include "core/pii.h"
#include "http/request.h"

static jt_arena fuzz_arena;

static void
fuzz_init(void)
{
    static int done;
    unsigned char key[32] = { 1, 2, 3 };

    if (done) {
        return;
    }
    done = 1;
    if (sodium_init() < 0 || jt_arena_init(&fuzz_arena, 64 * 1024) != 0) {
        __builtin_trap();
    }
    jt_log_open("", "off", "error");
    jt_pii_add_key(1, key);
}

static void
fuzz_req(jt_req *r, const uint8_t *data, size_t size)
{
    memset(r, 0, sizeof(*r));
    r->arena = &fuzz_arena;
    r->method = JT_POST;
    r->method_name = "POST";
    r->path = "/fuzz";
    r->query = "";
    r->body = jt_pstrndup(&fuzz_arena, (const char *) data, size);
    r->body_len = size;
    r->content_type = "application/json";
}

/* Every error a validator returns must be a 4xx: bad input never makes a 5xx. */
static void
fuzz_check(jt_err e)
{
    if (e != JT_OK && jt_err_lookup(e)->status >= 500) {
        __builtin_trap();
    }
}

#endif

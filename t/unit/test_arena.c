#include <stdint.h>
#include <stdlib.h>

#include "core/arena.h"
#include "tap.h"

static int cleaned;
static void on_reset(void *p) { cleaned += *(int *) p; }

int
main(void)
{
    jt_arena a;
    int i, one = 1, aligned = 1;
    char *big;

    ok(jt_arena_init(&a, 4096) == 0, "arena initialises");
    for (i = 0; i < 1000; i++) {
        void *p = jt_palloc(&a, (size_t) (i % 97) + 1);
        if (p == NULL || ((uintptr_t) p & 15) != 0) {
            aligned = 0;
        }
        memset(p, 0xAB, (size_t) (i % 97) + 1);
    }
    ok(aligned, "1000 small allocations are 16-byte aligned");
    big = jt_palloc(&a, 100000);
    ok(big != NULL, "an oversized allocation gets its own block");
    memset(big, 1, 100000);
    ok(a.big_bytes >= 100000, "oversized bytes are accounted");
    is_str(jt_pstrndup(&a, "hello world", 5), "hello", "pstrndup copies n bytes");
    ok(jt_arena_on_reset(&a, on_reset, &one) == 0, "cleanup registered");
    jt_arena_reset(&a);
    is_int(cleaned, 1, "cleanup ran on reset");
    is_int(a.big_bytes, 0, "oversized blocks are freed on reset");
    jt_arena_reset(&a);
    is_int(cleaned, 1, "cleanups run only once");

    /* steady state: a second identical workload must not grow the chain */
    {
        int blocks1 = 0, blocks2 = 0, round;
        for (round = 0; round < 2; round++) {
            jt_arena_block *b;
            int *cnt = round == 0 ? &blocks1 : &blocks2;
            for (i = 0; i < 200; i++) {
                jt_palloc(&a, 100);
            }
            for (b = a.first; b != NULL; b = *(jt_arena_block **) b) {
                (*cnt)++;
            }
            jt_arena_reset(&a);
        }
        ok(blocks2 <= blocks1 && blocks1 <= 10, "the block chain stays bounded across resets (%d, %d)",
           blocks1, blocks2);
    }
    ok(jt_palloc(&a, SIZE_MAX) == NULL, "absurd sizes fail instead of wrapping");
    jt_arena_destroy(&a);
    return done_testing();
}

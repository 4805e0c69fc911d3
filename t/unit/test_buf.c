#include "core/arena.h"
#include "core/buf.h"
#include "tap.h"

int
main(void)
{
    jt_arena a;
    jt_buf b;
    jt_json w;
    int i;

    jt_arena_init(&a, 4096);

    jt_buf_init(&b, &a, 4);
    for (i = 0; i < 1000; i++) {
        jt_buf_addc(&b, 'x');
    }
    is_int(b.len, 1000, "buffer grows past its initial capacity");
    jt_buf_addf(&b, "%d-%s", 42, "z");
    is_int(b.len, 1004, "formatted append");

    jt_buf_init(&b, &a, 16);
    jw_init(&w, &b);
    jw_obj_open(&w);
    jw_kint(&w, "id", 7);
    jw_kstr(&w, "name", "김치 \"A\"\\\n\t\x01");
    jw_key(&w, "list");
    jw_arr_open(&w);
    jw_int(&w, 1);
    jw_int(&w, -9223372036854775807LL - 1);
    jw_obj_open(&w);
    jw_obj_close(&w);
    jw_null(&w);
    jw_arr_close(&w);
    jw_kbool(&w, "ok", 1);
    jw_knull(&w, "none");
    jw_obj_close(&w);
    is_str(jt_buf_cstr(&b),
           "{\"id\":7,\"name\":\"김치 \\\"A\\\"\\\\\\n\\t\\u0001\",\"list\":[1,-9223372036854775808,{},null],"
           "\"ok\":true,\"none\":null}",
           "JSON writer: commas, escapes, nesting, extremes");

    jt_buf_init(&b, &a, 16);
    jw_init(&w, &b);
    jw_arr_open(&w);
    jw_arr_close(&w);
    is_str(jt_buf_cstr(&b), "[]", "empty array");

    jt_arena_destroy(&a);
    return done_testing();
}

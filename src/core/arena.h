/* Per-request memory: everything a request needs is carved out of one arena
 * that is reset (not freed) when the request ends, so a worker's footprint
 * stays flat however many requests it serves. Foreign allocations (json-c
 * objects, MariaDB results) are tied to the arena with a cleanup handler. */
#ifndef JT_ARENA_H
#define JT_ARENA_H

#include <stddef.h>

typedef struct jt_arena_block jt_arena_block;
typedef struct jt_arena_cleanup jt_arena_cleanup;

typedef struct {
    jt_arena_block   *first;     /* kept across resets */
    jt_arena_block   *current;
    jt_arena_cleanup *cleanups;
    size_t            block_size;
    size_t            big_bytes; /* bytes in oversized blocks, freed on reset */
} jt_arena;

int   jt_arena_init(jt_arena *a, size_t block_size);
void  jt_arena_reset(jt_arena *a);
void  jt_arena_destroy(jt_arena *a);

/* Returns NULL only when malloc fails. Memory is 16-byte aligned. */
void *jt_palloc(jt_arena *a, size_t n);
void *jt_pcalloc(jt_arena *a, size_t n);
char *jt_pstrndup(jt_arena *a, const char *s, size_t n);
char *jt_pstrdup(jt_arena *a, const char *s);

/* Run fn(data) at the next reset, newest first. */
int   jt_arena_on_reset(jt_arena *a, void (*fn)(void *), void *data);

#endif

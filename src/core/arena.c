#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct jt_arena_block {
    jt_arena_block *next;
    size_t          size;
    size_t          used;
    int             big;      /* oversized: freed at reset */
    unsigned char   data[] __attribute__((aligned(16)));
};

struct jt_arena_cleanup {
    jt_arena_cleanup *next;
    void            (*fn)(void *);
    void             *data;
};

#define ALIGN16(n) (((n) + 15u) & ~(size_t) 15u)

static jt_arena_block *
block_new(size_t size, int big)
{
    jt_arena_block *b = malloc(sizeof(*b) + size);
    if (b == NULL) {
        return NULL;
    }
    b->next = NULL;
    b->size = size;
    b->used = 0;
    b->big = big;
    return b;
}

int
jt_arena_init(jt_arena *a, size_t block_size)
{
    memset(a, 0, sizeof(*a));
    a->block_size = block_size ? block_size : 64 * 1024;
    a->first = block_new(a->block_size, 0);
    if (a->first == NULL) {
        return -1;
    }
    a->current = a->first;
    return 0;
}

void *
jt_palloc(jt_arena *a, size_t n)
{
    jt_arena_block *b, *nb;
    void *p;

    if (n > SIZE_MAX / 2) {
        return NULL;
    }
    n = ALIGN16(n ? n : 1);

    /* Oversized requests get a block of their own, linked after current so
     * the current block keeps serving small allocations. */
    if (n > a->block_size / 4) {
        nb = block_new(n, 1);
        if (nb == NULL) {
            return NULL;
        }
        nb->used = n;
        nb->next = a->current->next;
        a->current->next = nb;
        a->big_bytes += n;
        return nb->data;
    }

    for (b = a->current; b != NULL; b = b->next) {
        if (!b->big && b->size - b->used >= n) {
            p = b->data + b->used;
            b->used += n;
            a->current = b;
            return p;
        }
    }

    nb = block_new(a->block_size, 0);
    if (nb == NULL) {
        return NULL;
    }
    /* append at the tail so reset can walk the chain once */
    for (b = a->current; b->next != NULL; b = b->next) {
    }
    b->next = nb;
    a->current = nb;
    nb->used = n;
    return nb->data;
}

void *
jt_pcalloc(jt_arena *a, size_t n)
{
    void *p = jt_palloc(a, n);
    if (p != NULL) {
        memset(p, 0, n);
    }
    return p;
}

char *
jt_pstrndup(jt_arena *a, const char *s, size_t n)
{
    char *p = jt_palloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *
jt_pstrdup(jt_arena *a, const char *s)
{
    return jt_pstrndup(a, s, strlen(s));
}

int
jt_arena_on_reset(jt_arena *a, void (*fn)(void *), void *data)
{
    jt_arena_cleanup *c = jt_palloc(a, sizeof(*c));
    if (c == NULL) {
        return -1;
    }
    c->fn = fn;
    c->data = data;
    c->next = a->cleanups;
    a->cleanups = c;
    return 0;
}

/* Runs cleanups, frees oversized blocks and surplus blocks (keeping the
 * first block plus one spare), and rewinds the rest. */
void
jt_arena_reset(jt_arena *a)
{
    jt_arena_cleanup *c;
    jt_arena_block *b, *next, *keep_tail;
    int kept = 0;

    for (c = a->cleanups; c != NULL; c = c->next) {
        c->fn(c->data);
    }
    a->cleanups = NULL;

    keep_tail = NULL;
    for (b = a->first; b != NULL; b = next) {
        next = b->next;
        if (b->big || kept >= 2) {
            free(b);
            continue;
        }
        b->used = 0;
        b->next = NULL;
        if (keep_tail != NULL) {
            keep_tail->next = b;
        }
        keep_tail = b;
        kept++;
    }
    a->big_bytes = 0;
    a->current = a->first;
}

void
jt_arena_destroy(jt_arena *a)
{
    jt_arena_block *b, *next;

    jt_arena_reset(a);
    for (b = a->first; b != NULL; b = next) {
        next = b->next;
        free(b);
    }
    a->first = a->current = NULL;
}

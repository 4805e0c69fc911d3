#include "core/scoreboard.h"

#include <string.h>
#include <sys/mman.h>

#include "core/clock.h"
static jt_scoreboard *the_scoreboard;
static jt_slot       *self;

jt_slot *
jt_scoreboard_self(void)
{
    return self;
}

void
jt_scoreboard_set_self(jt_slot *s)
{
    self = s;
}

jt_scoreboard *
jt_scoreboard_create(int nslots)
{
    size_t size = sizeof(jt_scoreboard) + sizeof(jt_slot) * (size_t) nslots;
    jt_scoreboard *sb;

    sb = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sb == MAP_FAILED) {
        return NULL;
    }
    memset(sb, 0, size);
    sb->nslots = nslots;
    sb->start_time = jt_clock_wall_ms() / 1000;
    the_scoreboard = sb;
    return sb;
}

jt_scoreboard *
jt_scoreboard_get(void)
{
    return the_scoreboard;
}

/* Only the master allocates and frees slots, so no locking is needed. */
int
jt_scoreboard_alloc_slot(jt_scoreboard *sb)
{
    int i;

    for (i = 0; i < sb->nslots; i++) {
        if (sb->slots[i].state == JT_SLOT_FREE && sb->slots[i].pid == 0) {
            memset(&sb->slots[i], 0, sizeof(jt_slot));
            sb->slots[i].state = JT_SLOT_STARTING;
            return i;
        }
    }
    return -1;
}

void
jt_scoreboard_count(jt_scoreboard *sb, int *active, int *idle, int *total)
{
    int i, a = 0, n = 0, t = 0;

    for (i = 0; i < sb->nslots; i++) {
        int st = __atomic_load_n(&sb->slots[i].state, __ATOMIC_RELAXED);
        if (sb->slots[i].kind != JT_KIND_WORKER) {
            continue;
        }
        if (st == JT_SLOT_BUSY) {
            a++;
        } else if (st == JT_SLOT_IDLE) {
            n++;
        }
        if (st != JT_SLOT_FREE) {
            t++;
        }
    }
    *active = a;
    *idle = n;
    *total = t;
}

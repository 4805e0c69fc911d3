/* Combining: a hot product's queued orders committed together, in one
 * InnoDB transaction (combine.c says how and why it is safe). */
#ifndef JT_COMBINE_H
#define JT_COMBINE_H

#include "domain/order_place.h"
#include "domain/write.h"
#include "http/request.h"

typedef enum {
    COMBINE_DONE = 0,      /* answered, or *e is the error to answer */
    COMBINE_ALONE,         /* run the order on its own, taking its locks */
    COMBINE_ALONE_LOCKED   /* run it on its own: w holds its locks already */
} combine_rc;

/* Whether t may take part: Redis up, combining on, and every line of it
 * on one product. */
int combine_eligible(jt_req *r, const order_tx *t);

/* Places t (validated and priced, w begun) by combining. */
combine_rc combine_place(jt_req *r, jt_write *w, order_tx *t, jt_err *e);

#endif

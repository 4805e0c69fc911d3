#ifndef JT_CATALOG_H
#define JT_CATALOG_H

#include "http/request.h"

jt_err catalog_list(jt_req *r);
jt_err catalog_get(jt_req *r);

#endif

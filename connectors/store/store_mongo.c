/* store_mongo.c — placeholder until the mongo backend lands. */
#include "store_backend.h"
#include <stdio.h>

store *store_mongo_open(const char *where, char *err, size_t errlen)
{
    snprintf(err, errlen, "store: the mongo backend is not built yet (%s)", where);
    return NULL;
}

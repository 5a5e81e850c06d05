/* store_sqlite.c — placeholder until the sqlite backend lands. */
#include "store_backend.h"
#include <stdio.h>

store *store_sqlite_open(const char *where, char *err, size_t errlen)
{
    snprintf(err, errlen, "store: the sqlite backend is not built yet (%s)", where);
    return NULL;
}

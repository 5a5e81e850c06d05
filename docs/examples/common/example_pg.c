/*
 * example_pg.c — see example_pg.h.
 */
#include "example_pg.h"

#include <stdio.h>
#include <string.h>

int example_sql(PGconn *db, const char *sql, int n, const char *const *params, PGresult **out,
                char *err, size_t errlen)
{
    PGresult *r = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQresultErrorMessage(r));
        err[strcspn(err, "\n")] = '\0';
        PQclear(r);
        return -1;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return 0;
}

PGconn *example_connect(const char *conninfo, char *err, size_t errlen)
{
    PGconn *db = PQconnectdb(conninfo);
    if (db == NULL || PQstatus(db) != CONNECTION_OK) {
        snprintf(err, errlen, "PostgreSQL: %s", db != NULL ? PQerrorMessage(db) : "out of memory");
        err[strcspn(err, "\n")] = '\0';
        PQfinish(db);
        return NULL;
    }
    return db;
}

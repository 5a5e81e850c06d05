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

int example_prepare_schema(PGconn *db, const char *const *statements, size_t n, char *err,
                           size_t errlen)
{
    if (example_sql(db, "SET client_min_messages TO warning", 0, NULL, NULL, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (example_sql(db, statements[i], 0, NULL, NULL, err, errlen) != 0)
            return -1;
    PGresult *r = NULL;
    if (example_sql(db, "SELECT to_regclass('dtm_barrier.barrier') IS NOT NULL", 0, NULL, &r, err,
                    errlen) != 0)
        return -1;
    int ok = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!ok)
        snprintf(err, errlen, "table dtm_barrier.barrier is missing: apply "
                              "schemas/barrier/postgres.sql to this database");
    return ok ? 0 : -1;
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

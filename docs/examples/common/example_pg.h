/*
 * example_pg.h — the PostgreSQL helpers the examples share: run one
 * statement with parameters, create a service's tables, open a connection;
 * each reports PostgreSQL's message on one line.
 */
#ifndef DTMQ_EXAMPLE_PG_H
#define DTMQ_EXAMPLE_PG_H

#include <libpq-fe.h>
#include <stddef.h>

/* Runs sql with params on db; *out gets the result when it succeeded (caller
 * clears it; NULL: cleared here). 0, or -1 with PostgreSQL's message in err. */
int example_sql(PGconn *db, const char *sql, int n, const char *const *params, PGresult **out,
                char *err, size_t errlen);

/* Runs each of the n statements (CREATE ... IF NOT EXISTS) quietly, then
 * checks that the barrier table (schemas/barrier/postgres.sql) is there.
 * 0, or -1 with the reason in err. */
int example_prepare_schema(PGconn *db, const char *const *statements, size_t n, char *err,
                           size_t errlen);

/* A new connection to conninfo, or NULL with the reason in err. */
PGconn *example_connect(const char *conninfo, char *err, size_t errlen);

#endif

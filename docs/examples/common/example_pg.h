/*
 * example_pg.h — the two PostgreSQL helpers the examples share: run one
 * statement with parameters, and open a connection; both report
 * PostgreSQL's message on one line.
 */
#ifndef DTMQ_EXAMPLE_PG_H
#define DTMQ_EXAMPLE_PG_H

#include <libpq-fe.h>
#include <stddef.h>

/* Runs sql with params on db; *out gets the result when it succeeded (caller
 * clears it; NULL: cleared here). 0, or -1 with PostgreSQL's message in err. */
int example_sql(PGconn *db, const char *sql, int n, const char *const *params, PGresult **out,
                char *err, size_t errlen);

/* A new connection to conninfo, or NULL with the reason in err. */
PGconn *example_connect(const char *conninfo, char *err, size_t errlen);

#endif

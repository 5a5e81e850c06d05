/*
 * cli.h — dtmq's operator command line: subcommands that talk to a running
 * dtmq over its HTTP API (docs/cli.md).
 *
 *     dtmq query GID          the transaction and its branches
 *     dtmq list [filters]     /api/dtmsvr/all, one line per transaction
 *     dtmq submit FILE|-      POST a TransGlobal JSON to /api/dtmsvr/submit
 *     dtmq force-stop GID     POST /api/dtmsvr/forceStop
 *     dtmq retry GID          POST /api/dtmsvr/resetNextCronTime
 *     dtmq help [SUBCOMMAND]
 *
 * main.c hands argv to cli_main() when argv[1] is one of them; anything else
 * (no argument, "serve", an option) runs the server.
 *
 * The second half of this header is shared by cli.c and cli_format.c only:
 * parsing times given on the command line and printing the server's replies.
 */
#ifndef DTMQ_CLI_H
#define DTMQ_CLI_H

#include <jansson.h>
#include <stdio.h>

/* Exit codes of cli_main (docs/cli.md). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_SERVER_ERROR = 1, /* the server answered 4xx/5xx (or dtm_result FAILURE) */
    CLI_EXIT_USAGE = 2,        /* unknown subcommand/option, missing or bad argument */
    CLI_EXIT_UNREACHABLE = 3,  /* no answer: connection refused, DNS, timeout */
    CLI_EXIT_NOT_FOUND = 4     /* query of a gid the server does not know */
};

/* True (1) for "query", "list", "submit", "force-stop", "retry" and "help";
 * 0 for anything else, NULL included. */
int cli_is_subcommand(const char *arg);

/* Runs the subcommand argv[1] with its options argv[2..]; argv[0] is the
 * program. Prints results on stdout and errors (one line each) on stderr.
 * Returns the exit code (CLI_EXIT_*). argv is only read. */
int cli_main(int argc, char **argv);

/* ---- shared by cli.c and cli_format.c ------------------------------------ */

/* Parses a time given on the command line: epoch milliseconds ("1795255200000")
 * or RFC 3339 ("2026-11-21T10:00:00Z", "2026-11-21T11:00:00.250+01:00",
 * "2026-11-21" for midnight UTC). 0 with *ms set, or -1 when text is neither
 * or lies before 1970. */
int cli_parse_time(const char *text, long long *ms);

/* Prints a /api/dtmsvr/query reply whose "transaction" is an object: its
 * fields, one per line, then a table of its branches. */
void cli_print_transaction(FILE *out, const json_t *reply);

/* Prints a table of transactions (an array of DTM Global objects): gid, type,
 * status, create time, next cron time ("-" once finished); a header line
 * first. */
void cli_print_transaction_list(FILE *out, const json_t *transactions);

/* The error text of a server reply body: its "message", else its
 * "dtm_result", else the body itself (shortened), "(empty reply)" when empty.
 * Returns a malloc'd string the caller frees. */
char *cli_reply_message(const char *body);

#endif /* DTMQ_CLI_H */

/*
 * client_only.c — a C service that uses only <dtmq/dtmq_client.h> (and what
 * it includes: dtmq.h), built by tests/install/run.sh with `pkg-config dtmq`
 * alone: no libpq or libmongoc flags, so the header must not pull in the
 * barrier's databases and the functions called must not drag in objects that
 * need them. Gets a gid from the dtmq given as argv[1] and checks the branch
 * helpers; prints the gid. The client is created and freed here.
 */
#include <dtmq/dtmq_client.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    char err[512], gid[64];
    dtmq_branch_ref ref;
    if (dtmq_branch_from_query("gid=g&trans_type=xa&branch_id=01&op=action", &ref, err,
                               sizeof(err)) != DTMQ_OK ||
        dtmq_result_status(DTMQ_ONGOING) != 425 ||
        strcmp(dtmq_result_body(DTMQ_SUCCESS), "{\"dtm_result\":\"SUCCESS\"}") != 0) {
        fprintf(stderr, "branch helpers: %s\n", err);
        return 1;
    }
    if (argc < 2)
        return 0;
    dtmq_client_options o = {0};
    o.server = argv[1];
    dtmq_client *c = dtmq_client_new(&o, err, sizeof(err));
    int rc = c == NULL ? DTMQ_ERR_INVALID : dtmq_new_gid(c, gid, sizeof(gid), err, sizeof(err));
    if (rc != DTMQ_OK) {
        fprintf(stderr, "%s: %s\n", dtmq_error_name(rc), err);
        dtmq_client_free(c);
        return 1;
    }
    printf("%s\n", gid);
    dtmq_client_free(c);
    return 0;
}

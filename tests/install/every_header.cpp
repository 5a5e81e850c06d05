/*
 * every_header.cpp — a C++ program that includes every public header of
 * libdtmq (as installed: <dtmq/...>) and calls at least one function of
 * each, so that a header without its extern "C" guard fails to link
 * (C++-mangled names are not in libdtmq.a). Built by tests/install/run.sh
 * with `pkg-config dtmq-barrier`; prints "ok" and exits 0 when every call
 * answered as documented. Nothing is owned across calls: the transaction
 * and the worker it tries to make are freed here.
 */
#include <dtmq/dtmq.h>
#include <dtmq/dtmq_barrier.h>
#include <dtmq/dtmq_client.h>
#include <dtmq/dtmq_worker.h>

#include <cstdio>
#include <cstring>

static int failed = 0;

static void expect(bool ok, const char *what)
{
    if (!ok) {
        std::fprintf(stderr, "every_header: %s\n", what);
        failed = 1;
    }
}

int main()
{
    char err[256];

    /* dtmq.h */
    expect(dtmq_result_http_status(DTMQ_FAILURE) == 409, "dtmq_result_http_status");
    expect(std::strcmp(dtmq_error_name(DTMQ_ERR_INVALID), "DTMQ_ERR_INVALID") == 0,
           "dtmq_error_name");
    dtmq_branch_ref ref;
    expect(dtmq_branch_from_query("/a?gid=g1&trans_type=saga&branch_id=01&op=action&dtm=x", &ref,
                                  err, sizeof err) == DTMQ_OK &&
               std::strcmp(ref.dtm, "x") == 0,
           "dtmq_branch_from_query");

    /* dtmq_client.h */
    dtmq_trans *t = dtmq_saga_new("g1");
    expect(t != nullptr && std::strcmp(dtmq_trans_gid(t), "g1") == 0, "dtmq_saga_new");
    dtmq_trans_free(t);

    /* dtmq_worker.h: refused before any Kafka is needed */
    dtmq_worker_options wo;
    std::memset(&wo, 0, sizeof wo);
    dtmq_worker *w = nullptr;
    expect(dtmq_worker_new(&wo, &w, err, sizeof err) == -1 && w == nullptr, "dtmq_worker_new");
    dtmq_worker_free(w);

    /* dtmq_barrier.h: no database needed */
    dtmq_branch_info b;
    expect(dtmq_branch_info_for_msg("g1", &b, err, sizeof err) == 0 &&
               std::strcmp(b.op, "msg") == 0,
           "dtmq_branch_info_for_msg");
    expect(dtmq_barrier_http_status(DTMQ_BARRIER_BUSINESS_ERROR) == 409 &&
               dtmq_barrier_http_status(DTMQ_BARRIER_DB_ERROR) == 500,
           "dtmq_barrier_http_status");
    expect(std::strcmp(dtmq_barrier_outcome_name(DTMQ_BARRIER_DONE), "DONE") == 0,
           "dtmq_barrier_outcome_name");

    if (failed == 0)
        std::puts("ok");
    return failed;
}

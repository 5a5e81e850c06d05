/*
 * outcome.c — the names of the branch outcomes (outcome.h), as logs, metrics
 * and the attempts record in ext_data write them.
 */
#include "outcome.h"

const char *dispatch_outcome_name(dispatch_outcome o)
{
    switch (o) {
    case DISPATCH_SUCCESS: return "SUCCESS";
    case DISPATCH_FAILURE: return "FAILURE";
    case DISPATCH_ONGOING: return "ONGOING";
    case DISPATCH_ERROR: return "ERROR";
    }
    return "UNKNOWN";
}

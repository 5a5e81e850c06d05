/*
 * outcome.h — how a branch answered, whichever way it was called: the HTTP
 * dispatcher maps a response to it, the Kafka paths map a worker's reply on
 * dtm.reply to it, and the engine records it.
 */
#ifndef DTMQ_OUTCOME_H
#define DTMQ_OUTCOME_H

/* DTM's mapping (protocol reference 2.1), in order: 425 or a body
 * containing "ONGOING" → ONGOING; 409 or a body containing "FAILURE" →
 * FAILURE; any other non-200 status or a transport error → ERROR; 200 →
 * SUCCESS. */
typedef enum dispatch_outcome {
    DISPATCH_SUCCESS = 0,
    DISPATCH_FAILURE,
    DISPATCH_ONGOING,
    DISPATCH_ERROR,
} dispatch_outcome;

const char *dispatch_outcome_name(dispatch_outcome o); /* "SUCCESS", ... */

#endif

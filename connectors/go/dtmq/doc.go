// Package dtmq is the Go worker library and submit client of dtmq, the
// Kafka-native distributed transaction broker that speaks DTM's protocol.
//
// A branch URL kafka://TOPIC makes dtmq publish the branch's payload to TOPIC,
// keyed by the gid, with the headers dtm-gid, dtm-trans-type, dtm-branch-id,
// dtm-op and dtm-reply-to (plus the transaction's branch_headers). A [Worker]
// consumes such topics in a consumer group, calls a [Handler] for every
// message and, for saga, TCC, XA and workflow branches, publishes the
// handler's [Result] to the message's dtm-reply-to topic:
//
//	{"gid":"order-1","branch_id":"01","op":"action","dtm_result":"SUCCESS","message":""}
//
// The worker follows "The worker contract" of docs/kafka.md:
//
//   - Reply, then commit. A message's offset is marked for commit only after
//     Kafka acknowledged its reply (or, for a msg branch, after the handler
//     returned [Success]); offsets are committed every 500 ms and on Close.
//     A worker that dies in between reads the message again and replies
//     again; dtmq takes the first reply it waits for and ignores repeats.
//   - A reply that cannot be published (Kafka down, a bad reply topic) makes
//     the worker handle the same message again after a pause; the messages
//     behind it in its partition wait.
//   - msg branches get no reply: dtmq counts its acknowledged publish as the
//     branch's success and never sends it again, so the worker handles such
//     a message again (after a pause) until the handler returns Success.
//   - A handler error (or panic) is an unknown result: nothing is replied,
//     and for saga/TCC/XA the offset is committed, so dtmq publishes the
//     branch again once its reply deadline (request_timeout) passed, with
//     backoff, exactly as DTM retries an HTTP branch that answered 500.
//
// Delivery is therefore at least once: a handler must be idempotent. The
// dtmqbarrier package builds DTM's own dtmcli.BranchBarrier from a [Branch]
// so that the business step runs in DTM's subtransaction barrier:
//
//	bb, err := dtmqbarrier.From(b)
//	err = bb.CallWithDB(db, func(tx *sql.Tx) error { ... })
//
// A [Client] publishes transactions to dtm.submit and waits for dtmq's
// answers on a reply topic (reply_to, wait_result).
//
// The Kafka client is franz-go (github.com/twmb/franz-go): pure Go, no cgo.
package dtmq

// branch.go — what a handler sees (Branch, read from one Kafka message's
// dtm-* headers) and what it answers (Result).

package dtmq

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The headers dtmq writes on every Kafka branch message (docs/kafka.md,
// "Kafka branches"). dtmq writes them before the transaction's
// branch_headers, which may repeat a name: the first one counts.
const (
	HeaderGid       = "dtm-gid"
	HeaderTransType = "dtm-trans-type"
	HeaderBranchID  = "dtm-branch-id"
	HeaderOp        = "dtm-op"
	HeaderReplyTo   = "dtm-reply-to"
)

// Header is one Kafka header of a branch message.
type Header struct {
	Key   string
	Value []byte
}

// Branch is one branch call of a dtmq transaction, as a handler sees it.
// Payload and Headers belong to the worker and are valid only during the
// handler call: copy what you keep.
type Branch struct {
	Gid       string // dtm-gid
	BranchID  string // dtm-branch-id, e.g. "01"
	Op        string // dtm-op: action, compensate, try, confirm, cancel, commit, rollback
	TransType string // dtm-trans-type: saga, tcc, xa, msg, workflow ("" when absent)
	ReplyTo   string // dtm-reply-to: the topic the result goes to ("" for none)

	Payload []byte   // the branch's body, as the transaction gave it
	Headers []Header // every header of the message, in order (the dtm-* ones and the branch_headers)

	Topic     string
	Partition int32
	Offset    int64
}

// Header returns the value of the first header called name, and whether
// there is one.
func (b *Branch) Header(name string) (string, bool) {
	for _, h := range b.Headers {
		if h.Key == name {
			return string(h.Value), true
		}
	}
	return "", false
}

func (b *Branch) String() string {
	return fmt.Sprintf("gid %s branch %s %s (%s) from %s[%d]@%d", b.Gid, b.BranchID, b.Op,
		b.TransType, b.Topic, b.Partition, b.Offset)
}

// firstHeader returns the value of r's first header called name.
func firstHeader(r *kgo.Record, name string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == name {
			return string(h.Value), true
		}
	}
	return "", false
}

// branchFromRecord reads r's dtm-* headers. It fails, naming the header,
// when dtm-gid, dtm-branch-id or dtm-op is missing or empty: such a message
// is not a dtmq branch call.
func branchFromRecord(r *kgo.Record) (*Branch, error) {
	b := &Branch{Payload: r.Value, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	required := []struct {
		name string
		dst  *string
	}{{HeaderGid, &b.Gid}, {HeaderBranchID, &b.BranchID}, {HeaderOp, &b.Op}}
	for _, f := range required {
		v, ok := firstHeader(r, f.name)
		if !ok || v == "" {
			return nil, fmt.Errorf("no %s header", f.name)
		}
		*f.dst = v
	}
	b.TransType, _ = firstHeader(r, HeaderTransType)
	b.ReplyTo, _ = firstHeader(r, HeaderReplyTo)
	b.Headers = make([]Header, len(r.Headers))
	for i, h := range r.Headers {
		b.Headers[i] = Header{Key: h.Key, Value: h.Value}
	}
	return b, nil
}

// Result is a handler's answer, in DTM's words. Make one with Success,
// Failure or Ongoing; the zero Result is not an answer (the worker treats it
// as a handler error).
type Result struct {
	word    string
	message string
}

// Success: the step is done. dtmq goes on with the transaction.
func Success() Result { return Result{word: "SUCCESS"} }

// Failure: the step is refused for good, with a reason. A saga action's
// FAILURE rolls the saga back, and message (up to 200 bytes) becomes the
// rollback reason; for the other ops dtmq retries, as DTM does. Return
// Failure only for a business refusal (insufficient funds), never for a
// passing error (the database is down): return an error for that.
func Failure(message string) Result { return Result{word: "FAILURE", message: message} }

// Ongoing: not done yet; dtmq calls the branch again later.
func Ongoing() Result { return Result{word: "ONGOING"} }

// Word is the result's dtm_result: SUCCESS, FAILURE, ONGOING ("" for the zero Result).
func (r Result) Word() string { return r.word }

// Message is the text that goes into the reply's message.
func (r Result) Message() string { return r.message }

func (r Result) String() string {
	if r.message == "" {
		return r.word
	}
	return r.word + ": " + r.message
}

// Handler does one branch step. It returns the step's Result, or an error
// when the outcome is unknown (a database that cannot be reached, a
// timeout): then nothing is replied and dtmq publishes the branch again
// after its reply deadline (request_timeout), with backoff; for a msg
// branch the worker itself handles the message again after a pause. A
// panic counts as an error.
//
// Delivery is at least once, so a handler must be idempotent: doing the
// same (gid, branch id, op) twice must have the effect of doing it once and
// answer the same (the dtmqbarrier package wires DTM's barrier to a Branch).
//
// ctx is the context given to Worker.Run: it is cancelled when the worker
// is asked to stop. A Result returned after that is still replied.
type Handler func(ctx context.Context, b *Branch) (Result, error)

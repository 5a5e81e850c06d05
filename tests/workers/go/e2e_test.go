// e2e_test.go — the worker contract end to end: the real dtmq
// (DTMQ_TEST_BIN) on real Kafka publishes the kafka:// branches, the Go
// worker answers them with the bank of bank_test.go on real PostgreSQL
// inside DTM's barrier, and transactions go in through the Go submit
// client. The cases of the C worker's end-to-end tests and more: success,
// FAILURE with compensation in reverse order, ONGOING then SUCCESS,
// duplicate deliveries applied once, a late reply, a msg branch. (The
// worker killed before replying is in killed_test.go.)

package workers

import (
	"context"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"dtmq.dev/connectors/go/dtmq"
	"github.com/twmb/franz-go/pkg/kgo"
)

const warmupGid = "go-warmup"

// warmUp makes sure the worker has its topics' partitions before dtmq
// publishes (a slow join would turn into republished branches and break
// the order the tests check): one msg-type message per topic, waited for.
func warmUp(t testing.TB, rec *recorder, topics ...string) {
	t.Helper()
	p := newProducer(t)
	for _, topic := range topics {
		produceBranch(t, p, branchMsg{topic: topic, gid: warmupGid, transType: "msg", branchID: "00", op: "warmup"})
	}
	deadline := time.Now().Add(2 * waitBound)
	for len(rec.snapshot()) < len(topics) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not get its %d warm-up messages", len(topics))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newClient(t testing.TB, d *dtmqProc) *dtmq.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	c, err := dtmq.NewClient(ctx, dtmq.ClientConfig{Brokers: kafkaBrokers(t), SubmitTopic: d.submitTopic(),
		ReplyTopic: fresh("go.replies-"), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// e2e is one end-to-end world: a bank, dtmq, a branch topic, a worker on it
// (handler: the recorder's rules, else the bank), a submit client.
type e2e struct {
	bank   *bank
	dtmq   *dtmqProc
	topic  string
	rec    *recorder
	worker *running
	client *dtmq.Client
}

func newE2E(t *testing.T, rules func(*recorder), dtmqArgs ...string) *e2e {
	e := &e2e{bank: newBank(t), dtmq: startDtmq(t, dtmqArgs...), topic: fresh("go.e2e-bank-"), rec: newRecorder()}
	e.rec.next = e.bank.handle
	if rules != nil {
		rules(e.rec)
	}
	e.worker = start(t, newWorker(t, fresh("go-e2e-busi-"), []string{e.topic}, e.rec.handle, nil))
	warmUp(t, e.rec, e.topic)
	e.client = newClient(t, e.dtmq)
	return e
}

func (e *e2e) url() string { return "kafka://" + e.topic }

func (e *e2e) calls(gid string) []call {
	var out []call
	for _, c := range e.rec.snapshot() {
		if c.Gid == gid {
			out = append(out, c)
		}
	}
	return out
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// librdkafka's (dtmq's) partition of a key: CRC-32 modulo the count.
func crcPartition(key string, n int) int32 { return int32(crc32.ChecksumIEEE([]byte(key)) % uint32(n)) }

func TestE2ESagaSucceedsAndRepliesLandInTheGidsPartition(t *testing.T) {
	e := newE2E(t, nil, "--request-timeout", "10")
	gid := fresh("go-e2e-ok-")
	saga := dtmq.NewSaga(gid).Add(e.url(), e.url(), payload("A", -30)).Add(e.url(), e.url(), payload("B", 30))
	saga.WaitResult = true
	r, err := e.client.Submit(ctxFor(t, 60*time.Second), saga)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if r.Phase != "finished" || r.Status != 200 || r.DtmResult != "SUCCESS" || r.Gid != gid || r.Op != "submit" {
		t.Fatalf("reply: %+v", *r)
	}
	if st := e.dtmq.query(t, gid).Transaction.Status; st != "succeed" {
		t.Fatalf("status %s", st)
	}
	cs := e.calls(gid)
	if len(cs) != 2 || cs[0].BranchID != "01" || cs[1].BranchID != "02" || cs[0].Op != "action" ||
		cs[0].TransType != "saga" || cs[0].ReplyTo != e.dtmq.replyTopic() || cs[0].payload != payload("A", -30) {
		t.Fatalf("calls: %+v", cs)
	}
	if a, b := e.bank.balance(t, "A"), e.bank.balance(t, "B"); a != 70 || b != 130 {
		t.Fatalf("balances %d %d, want 70 130", a, b)
	}
	// dtmq (librdkafka) put the branch messages in CRC-32(gid)'s partition;
	// the Go worker's replies on PREFIXreply must land in the same one
	// (both topics have 4 partitions), the dtmq process owning the gid
	want := crcPartition(gid, 4)
	for _, c := range cs {
		if c.Partition != want {
			t.Errorf("dtmq published branch %s to partition %d, want %d", c.BranchID, c.Partition, want)
		}
	}
	replies := readTopic(t, e.dtmq.replyTopic(), 2, waitBound, nil)
	if len(replies) != 2 {
		t.Fatalf("replies on %s: %d", e.dtmq.replyTopic(), len(replies))
	}
	for _, rep := range replies {
		if string(rep.Key) != gid || rep.Partition != want {
			t.Errorf("reply %s in partition %d, want key %s in %d", rep.Value, rep.Partition, gid, want)
		}
	}
}

func TestE2ESagaFailureCompensatesInReverseOrder(t *testing.T) {
	e := newE2E(t, nil, "--request-timeout", "10")
	gid := fresh("go-e2e-fail-")
	saga := dtmq.NewSaga(gid).Add(e.url(), e.url(), payload("A", -30)).Add(e.url(), e.url(), payload("B", 30)).
		Add(e.url(), e.url(), payload("A", -500)) // refused: insufficient balance
	saga.WaitResult = true
	r, err := e.client.Submit(ctxFor(t, 60*time.Second), saga)
	if !errors.Is(err, dtmq.ErrFailure) || r == nil || r.Status != 409 || r.Phase != "finished" {
		t.Fatalf("Submit: %+v, %v; want a finished 409 FAILURE", r, err)
	}
	q := e.dtmq.query(t, gid)
	if q.Transaction.Status != "failed" ||
		!strings.Contains(q.Transaction.RollbackReason, "branch 03 action failed: account A: insufficient balance") {
		t.Fatalf("status %q, reason %q", q.Transaction.Status, q.Transaction.RollbackReason)
	}
	var got []string
	for _, c := range e.calls(gid) {
		got = append(got, c.BranchID+" "+c.Op)
	}
	want := "01 action,02 action,03 action,03 compensate,02 compensate,01 compensate"
	if strings.Join(got, ",") != want {
		t.Fatalf("calls %v, want %s", got, want)
	}
	if a, b := e.bank.balance(t, "A"), e.bank.balance(t, "B"); a != 100 || b != 100 {
		t.Fatalf("balances %d %d, want 100 100 (compensated)", a, b)
	}
	// the refused step's compensation was a null compensation: 4 steps ran
	if n := e.bank.busi.Load(); n != 5 {
		t.Fatalf("business steps %d, want 5 (3 actions, 2 compensations)", n)
	}
}

func TestE2EOngoingThenSuccess(t *testing.T) {
	e := newE2E(t, func(r *recorder) { r.answer("", "action", dtmq.Ongoing(), 1) }, "--request-timeout", "10")
	gid := fresh("go-e2e-ongoing-")
	r, err := e.client.Submit(ctxFor(t, waitBound), dtmq.NewSaga(gid).Add(e.url(), e.url(), payload("A", -30)))
	if err != nil || r.Phase != "accepted" || r.Status != 200 {
		t.Fatalf("Submit: %+v %v", r, err)
	}
	q := e.dtmq.waitStatus(t, gid, "succeed", 40*time.Second)
	if q.Transaction.Status != "succeed" {
		t.Fatalf("status %s", q.Transaction.Status)
	}
	cs := e.calls(gid)
	if len(cs) != 2 || cs[0].Op != "action" || cs[1].Op != "action" || cs[1].BranchID != "01" {
		t.Fatalf("calls: %+v, want action 01 twice (ONGOING, then SUCCESS)", cs)
	}
	if a := e.bank.balance(t, "A"); a != 70 {
		t.Fatalf("balance A %d, want 70", a)
	}
}

// dtmq's branch messages produced again by hand (a redelivery, a producer
// retry): every copy answered SUCCESS, nothing applied twice, dtmq ignores
// the extra replies.
func TestE2EDuplicateDeliveriesAreAppliedOnce(t *testing.T) {
	e := newE2E(t, nil, "--request-timeout", "10")
	gid := fresh("go-e2e-dup-")
	saga := dtmq.NewSaga(gid).Add(e.url(), e.url(), payload("A", -30)).Add(e.url(), e.url(), payload("B", 30))
	saga.WaitResult = true
	if _, err := e.client.Submit(ctxFor(t, 60*time.Second), saga); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	replies0, unknown0 := e.dtmq.ingress(t)
	orig := readTopic(t, e.topic, 3, waitBound, nil) // the warm-up and dtmq's two
	var copies []*kgo.Record
	for _, r := range orig {
		if string(r.Key) == gid {
			copies = append(copies, r)
		}
	}
	if len(copies) != 2 {
		t.Fatalf("dtmq's messages for %s: %d, want 2", gid, len(copies))
	}
	p := newProducer(t)
	for i := 0; i < 2; i++ {
		for _, r := range copies {
			produceRaw(t, p, r.Topic, string(r.Key), r.Value, r.Headers)
		}
	}
	if cs := e.rec.wait(1+6, waitBound); len(without(cs, warmupGid)) != 6 {
		t.Fatalf("handler calls %d, want 6", len(without(cs, warmupGid)))
	}
	deadline := time.Now().Add(waitBound)
	for {
		r, u := e.dtmq.ingress(t)
		if r+u-replies0-unknown0 >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r, u := e.dtmq.ingress(t); r+u-replies0-unknown0 != 4 {
		t.Fatalf("dtmq counted %d more replies, want the 4 repeats", r+u-replies0-unknown0)
	}
	if a, b := e.bank.balance(t, "A"), e.bank.balance(t, "B"); a != 70 || b != 130 {
		t.Fatalf("balances %d %d, want 70 130 (applied once)", a, b)
	}
	if n := e.bank.busi.Load(); n != 2 {
		t.Fatalf("business steps %d, want 2", n)
	}
	if q := e.dtmq.query(t, gid); q.Transaction.Status != "succeed" {
		t.Fatalf("status %s", q.Transaction.Status)
	}
}

// A handler slower than the transaction's request_timeout: dtmq publishes
// the branch again while the first delivery is still in hand; the late
// SUCCESS is still replied and recorded, the repeat is a duplicate for the
// barrier. The saga succeeds with the step applied once.
func TestE2ELateReplyIsRecordedAndTheRepeatIsADuplicate(t *testing.T) {
	var slowed bool
	e := newE2E(t, func(r *recorder) {
		r.before = func(b *dtmq.Branch) {
			if b.Gid != warmupGid && !slowed {
				slowed = true
				time.Sleep(6 * time.Second) // request_timeout is 2 s
			}
		}
	})
	gid := fresh("go-e2e-late-")
	saga := dtmq.NewSaga(gid).Add(e.url(), e.url(), payload("A", -30))
	saga.RequestTimeout = 2
	t0 := time.Now()
	if _, err := e.client.Submit(ctxFor(t, waitBound), saga); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	q := e.dtmq.waitStatus(t, gid, "succeed", 40*time.Second)
	if q.Transaction.Status != "succeed" {
		t.Fatalf("status %s", q.Transaction.Status)
	}
	if el := time.Since(t0); el < 5*time.Second {
		t.Fatalf("succeeded after %s: before the slow handler answered?", el)
	}
	cs := e.rec.wait(1+2, waitBound)
	cs = without(cs, warmupGid)
	if len(cs) < 2 {
		t.Fatalf("calls %d, want at least 2 (dtmq published the branch again)", len(cs))
	}
	for _, c := range cs {
		if c.BranchID != "01" || c.Op != "action" {
			t.Fatalf("call %+v", c.Branch)
		}
	}
	if cs[1].Offset <= cs[0].Offset {
		t.Fatalf("second call at offset %d, first at %d: want a new publish", cs[1].Offset, cs[0].Offset)
	}
	// every delivery was answered, the first one after its deadline
	var replies []*kgo.Record
	deadline := time.Now().Add(waitBound)
	for len(replies) < len(without(e.rec.snapshot(), warmupGid)) && time.Now().Before(deadline) {
		replies = replies[:0]
		for _, r := range readTopic(t, e.dtmq.replyTopic(), 10, time.Second, nil) {
			if string(r.Key) == gid {
				replies = append(replies, r)
			}
		}
	}
	cs = without(e.rec.snapshot(), warmupGid)
	if len(replies) != len(cs) {
		t.Fatalf("replies %d for %d deliveries: want one each", len(replies), len(cs))
	}
	if late := replies[0].Timestamp.Sub(t0); late < 5*time.Second {
		t.Fatalf("the first reply came %s after the submit: not late", late)
	}
	if a := e.bank.balance(t, "A"); a != 70 {
		t.Fatalf("balance A %d, want 70", a)
	}
	if n := e.bank.busi.Load(); n != 1 {
		t.Fatalf("business steps %d, want 1", n)
	}
	for _, b := range q.Branches {
		if b.Op == "compensate" && b.Status != "prepared" {
			t.Fatalf("compensation %s ran", b.Status)
		}
	}
}

// A 2-phase message with a kafka:// step: dtmq's publish is the step's
// success; the worker sends no reply and keeps the message until its
// handler succeeded.
func TestE2EMsgBranchIsDeliveredHandledUntilSuccessAndNotReplied(t *testing.T) {
	e := newE2E(t, func(r *recorder) { r.answer("", "", dtmq.Failure("not yet"), 1) })
	gid := fresh("go-e2e-msg-")
	msg := dtmq.NewMsg(gid, "http://127.0.0.1:9/qp").AddMsg(e.url(), payload("B", 7))
	msg.WaitResult = true
	msg.BranchHeaders = map[string]string{"X-Trace": "t-9"}
	r, err := e.client.Submit(ctxFor(t, waitBound), msg)
	if err != nil || r.Phase != "finished" || r.Status != 200 {
		t.Fatalf("Submit: %+v %v", r, err)
	}
	cs := e.rec.wait(1+2, waitBound)
	cs = without(cs, warmupGid)
	if len(cs) != 2 || cs[0].TransType != "msg" || cs[0].Offset != cs[1].Offset || cs[0].payload != payload("B", 7) {
		t.Fatalf("calls %+v, want the msg message twice", cs)
	}
	if v, _ := cs[0].Header("X-Trace"); v != "t-9" {
		t.Fatalf("branch header X-Trace %q", v)
	}
	if b := e.bank.waitBalance(t, "B", 107); b != 107 {
		t.Fatalf("balance B %d, want 107", b)
	}
	time.Sleep(500 * time.Millisecond)
	for _, rep := range readTopic(t, e.dtmq.replyTopic(), 10, 2*time.Second, nil) {
		if string(rep.Key) == gid {
			t.Fatalf("the worker replied to a msg branch: %s", rep.Value)
		}
	}
	if q := e.dtmq.query(t, gid); q.Transaction.Status != "succeed" {
		t.Fatalf("status %s", q.Transaction.Status)
	}
}

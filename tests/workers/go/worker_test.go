// worker_test.go — the Worker against real Kafka alone (no dtmq): branch
// messages are produced here the way dtmq publishes them, replies read back
// and compared byte for byte, committed offsets read from the group
// coordinator. The same cases as the C worker's tests
// (tests/integration/test_worker.c), plus handler errors and panics.

package workers

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"dtmq.dev/connectors/go/dtmq"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestWorkerSagaBranchReachesTheHandlerAndTheReplyIsExact(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	payload := []byte{'{', '"', 'a', '"', ':', '1', '}', 0, 0xff, 'z'}
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "01", op: "action",
		replyTo: n.reply, payload: payload, extra: []kgo.RecordHeader{{Key: "X-Trace", Value: []byte("t-1")}}})

	rec := newRecorder()
	rec.answer("", "", dtmq.Success(), 0)
	start(t, newWorker(t, n.group, []string{n.topic}, rec.handle, nil))
	calls := rec.wait(1, waitBound)
	if len(calls) != 1 {
		t.Fatalf("handler calls: %d, want 1", len(calls))
	}
	c := calls[0]
	if c.Gid != n.gid || c.TransType != "saga" || c.BranchID != "01" || c.Op != "action" || c.ReplyTo != n.reply ||
		c.Topic != n.topic || c.Offset != 0 || c.Partition < 0 {
		t.Errorf("branch: %+v", c.Branch)
	}
	if !bytes.Equal(c.Payload, payload) {
		t.Errorf("payload %q, want %q", c.Payload, payload)
	}
	if v, ok := c.Header("X-Trace"); !ok || v != "t-1" {
		t.Errorf("branch header X-Trace: %q %v", v, ok)
	}
	if len(c.Headers) != 6 {
		t.Errorf("headers: %d, want 6", len(c.Headers))
	}

	replies := readTopic(t, n.reply, 4, 2*time.Second, nil)
	if len(replies) != 1 {
		t.Fatalf("replies: %d, want 1", len(replies))
	}
	r := replies[0]
	if string(r.Key) != n.gid {
		t.Errorf("reply key %q, want the gid %q", r.Key, n.gid)
	}
	if want := replyJSON(n.gid, "01", "action", "SUCCESS", ""); string(r.Value) != want {
		t.Errorf("reply\n got %s\nwant %s", r.Value, want)
	}
	want := map[string]string{"dtm-gid": n.gid, "dtm-branch-id": "01", "dtm-op": "action"}
	for _, h := range r.Headers {
		if want[h.Key] == string(h.Value) {
			delete(want, h.Key)
		}
	}
	if len(want) != 0 {
		t.Errorf("reply headers %v miss %v", r.Headers, want)
	}
}

func TestWorkerTakesDtmqsHeadersOverBranchHeadersOfTheSameName(t *testing.T) {
	n := freshNames()
	elsewhere := fresh("go.wt-elsewhere-")
	p := newProducer(t)
	// dtmq writes its headers first, then the transaction's branch_headers
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "01", op: "action",
		replyTo: n.reply, payload: []byte("v"), extra: []kgo.RecordHeader{{Key: "dtm-gid", Value: []byte("spoofed")},
			{Key: "dtm-op", Value: []byte("compensate")}, {Key: "dtm-reply-to", Value: []byte(elsewhere)}}})
	rec := newRecorder()
	start(t, newWorker(t, n.group, []string{n.topic}, rec.handle, nil))
	calls := rec.wait(1, waitBound)
	if len(calls) != 1 || calls[0].Gid != n.gid || calls[0].Op != "action" || calls[0].ReplyTo != n.reply {
		t.Fatalf("calls: %+v", calls)
	}
	replies := readTopic(t, n.reply, 2, 2*time.Second, nil)
	if len(replies) != 1 || string(replies[0].Value) != replyJSON(n.gid, "01", "action", "SUCCESS", "") {
		t.Fatalf("replies: %v", values(replies))
	}
}

func values(rs []*kgo.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Value))
	}
	return out
}

func TestWorkerFailureAndOngoingAreRepliedAsDtmResults(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	ops := []string{"action", "compensate", "try"}
	for i, op := range ops {
		tt := "saga"
		if op == "try" {
			tt = "tcc"
		}
		produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: tt, branchID: []string{"01", "02", "03"}[i],
			op: op, replyTo: n.reply, payload: []byte("{}")})
	}
	rec := newRecorder()
	rec.answer("", "action", dtmq.Failure(`insufficient "balance"`), 0)
	rec.answer("", "compensate", dtmq.Ongoing(), 0)
	rec.answer("", "try", dtmq.Success(), 0)
	start(t, newWorker(t, n.group, []string{n.topic}, rec.handle, nil))
	if calls := rec.wait(3, waitBound); len(calls) != 3 || calls[2].TransType != "tcc" {
		t.Fatalf("calls: %d", len(calls))
	}
	replies := readTopic(t, n.reply, 3, waitBound, nil)
	want := []string{replyJSON(n.gid, "01", "action", "FAILURE", `insufficient "balance"`),
		replyJSON(n.gid, "02", "compensate", "ONGOING", ""), replyJSON(n.gid, "03", "try", "SUCCESS", "")}
	if strings.Join(values(replies), "\n") != strings.Join(want, "\n") { // one gid: one partition, in order
		t.Fatalf("replies\n got %v\nwant %v", values(replies), want)
	}
}

func TestWorkerSendsNoReplyForMsgBranchesAndHandlesThemUntilSuccess(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "msg", branchID: "01", op: "action",
		replyTo: n.reply, payload: []byte(`{"m":1}`)})
	// a saga branch behind it in the same partition: its reply is the sentinel
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "02", op: "action",
		replyTo: n.reply, payload: []byte("{}")})
	rec := newRecorder()
	// the msg handler fails, then errs, then succeeds: dtmq never sends a msg
	// branch again, so the worker must keep the message until it succeeded
	rec.answer("", "", dtmq.Failure("not yet"), 1)
	rec.fail("", "", errors.New("database down"), 1)
	rec.answer("", "", dtmq.Success(), 1)
	rec.answer("", "", dtmq.Failure("would be replied if it were not msg"), 0)
	start(t, newWorker(t, n.group, []string{n.topic}, rec.handle, nil))
	calls := rec.wait(4, waitBound)
	if len(calls) != 4 {
		t.Fatalf("calls: %d, want 4", len(calls))
	}
	for i := 0; i < 3; i++ {
		if calls[i].TransType != "msg" || calls[i].BranchID != "01" || calls[i].Offset != 0 || calls[i].ReplyTo != n.reply {
			t.Errorf("call %d: %+v, want the msg branch (offset 0) again", i, calls[i].Branch)
		}
	}
	if calls[3].BranchID != "02" {
		t.Errorf("call 3: branch %s, want 02", calls[3].BranchID)
	}
	replies := readTopic(t, n.reply, 4, 2*time.Second, nil)
	want := replyJSON(n.gid, "02", "action", "FAILURE", "would be replied if it were not msg")
	if len(replies) != 1 || string(replies[0].Value) != want { // only the saga branch's
		t.Fatalf("replies %v, want only %s", values(replies), want)
	}
}

func TestWorkerSkipsMessagesWithoutDtmHeaders(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	produceRaw(t, p, n.topic, n.gid, []byte("no headers at all"), nil)
	produceRaw(t, p, n.topic, n.gid, []byte("no dtm-op"), []kgo.RecordHeader{{Key: "dtm-gid", Value: []byte(n.gid)},
		{Key: "dtm-branch-id", Value: []byte("01")}, {Key: "dtm-trans-type", Value: []byte("saga")}})
	produceRaw(t, p, n.topic, n.gid, []byte("no dtm-branch-id"), []kgo.RecordHeader{{Key: "dtm-gid", Value: []byte(n.gid)},
		{Key: "dtm-op", Value: []byte("action")}})
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "04", op: "action",
		replyTo: "", payload: []byte("good")})
	rec := newRecorder()
	r := start(t, newWorker(t, n.group, []string{n.topic}, rec.handle, nil))
	calls := rec.wait(1, waitBound)
	time.Sleep(300 * time.Millisecond) // nothing else may come
	calls = rec.snapshot()
	if len(calls) != 1 || calls[0].BranchID != "04" || calls[0].ReplyTo != "" || calls[0].Offset != 3 {
		t.Fatalf("calls: %+v", calls)
	}
	r.stop(t) // commits
	if got := committedOffset(t, n.group, n.topic, calls[0].Partition); got != 4 {
		t.Fatalf("committed offset %d, want 4", got)
	}
}

func TestWorkerCommitsOffsetsSoTheNextWorkerDoesNotRedeliver(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	for _, bid := range []string{"01", "02", "03"} {
		produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: bid, op: "action",
			replyTo: n.reply, payload: []byte("x")})
	}
	rec1 := newRecorder()
	r1 := start(t, newWorker(t, n.group, []string{n.topic}, rec1.handle, nil))
	calls := rec1.wait(3, waitBound)
	if len(calls) != 3 {
		t.Fatalf("first worker: %d calls", len(calls))
	}
	partition := calls[0].Partition
	r1.stop(t)
	if got := committedOffset(t, n.group, n.topic, partition); got != 3 {
		t.Fatalf("committed after the first worker: %d, want 3", got)
	}
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "04", op: "action",
		replyTo: n.reply, payload: []byte("x")})
	rec2 := newRecorder()
	r2 := start(t, newWorker(t, n.group, []string{n.topic}, rec2.handle, nil))
	calls = rec2.wait(1, waitBound)
	time.Sleep(300 * time.Millisecond)
	calls = rec2.snapshot()
	// same key, same partition: a redelivered 01..03 would come before 04
	if len(calls) != 1 || calls[0].BranchID != "04" || calls[0].Offset != 3 {
		t.Fatalf("second worker: %+v", calls)
	}
	r2.stop(t)
	if got := committedOffset(t, n.group, n.topic, partition); got != 4 {
		t.Fatalf("committed after the second worker: %d, want 4", got)
	}
}

func TestWorkerHandlesAgainAMessageWhoseReplyFailed(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "01", op: "action",
		replyTo: "bad topic!", payload: []byte("x")})
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "02", op: "action",
		replyTo: n.reply, payload: []byte("y")})
	rec1 := newRecorder()
	r1 := start(t, newWorker(t, n.group, []string{n.topic}, rec1.handle, nil))
	calls := rec1.wait(3, waitBound)
	r1.stop(t)
	if len(calls) < 3 {
		t.Fatalf("calls: %d, want the same message at least 3 times", len(calls))
	}
	for i, c := range rec1.snapshot() { // the partition never moved past it
		if c.BranchID != "01" || c.Offset != 0 {
			t.Fatalf("call %d: branch %s offset %d, want 01 at 0", i, c.BranchID, c.Offset)
		}
	}
	if got := committedOffset(t, n.group, n.topic, calls[0].Partition); got > 0 {
		t.Fatalf("offset %d committed past a message whose reply failed", got)
	}
	rec2 := newRecorder()
	start(t, newWorker(t, n.group, []string{n.topic}, rec2.handle, nil))
	calls = rec2.wait(1, waitBound)
	if len(calls) < 1 || calls[0].BranchID != "01" || calls[0].Offset != 0 {
		t.Fatalf("the next worker: %+v, want 01 at offset 0 again", calls)
	}
	if replies := readTopic(t, n.reply, 2, 2*time.Second, nil); len(replies) != 0 {
		t.Fatalf("replies %v: 02 must stay behind 01", values(replies))
	}
}

func TestWorkerHandlerErrorOrPanicSendsNoReplyAndCommits(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	for _, bid := range []string{"01", "02", "03", "04"} {
		produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: bid, op: "action",
			replyTo: n.reply, payload: []byte("x")})
	}
	rec := newRecorder()
	rec.fail("", "", errors.New("database down"), 1)
	rec.answer("", "", dtmq.Result{}, 1) // the zero Result: an error too
	rec.answer("", "", dtmq.Success(), 2)
	rec.before = func(b *dtmq.Branch) {
		if b.BranchID == "03" {
			panic("boom")
		}
	}
	r := start(t, newWorker(t, n.group, []string{n.topic}, rec.handle, nil))
	calls := rec.wait(3, waitBound) // 01 (error), 02 (zero), 04; 03 panicked before recording
	time.Sleep(500 * time.Millisecond)
	calls = rec.snapshot()
	if len(calls) != 3 || calls[0].BranchID != "01" || calls[1].BranchID != "02" || calls[2].BranchID != "04" {
		t.Fatalf("calls: %+v", calls)
	}
	replies := readTopic(t, n.reply, 4, 2*time.Second, nil)
	if len(replies) != 1 || string(replies[0].Value) != replyJSON(n.gid, "04", "action", "SUCCESS", "") {
		t.Fatalf("replies %v, want only 04's", values(replies))
	}
	r.stop(t)
	// an error is an unknown result: dtmq publishes the branch again, so the
	// worker does not hold the partition
	if got := committedOffset(t, n.group, n.topic, calls[0].Partition); got != 4 {
		t.Fatalf("committed offset %d, want 4", got)
	}
}

func TestWorkerStopsFinishingTheMessageInHandAndRunsAgain(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	for _, bid := range []string{"01", "02"} {
		produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: bid, op: "action",
			replyTo: n.reply, payload: []byte("x")})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var seen []string
	w2 := newWorker(t, n.group, []string{n.topic}, func(_ context.Context, b *dtmq.Branch) (dtmq.Result, error) {
		seen = append(seen, b.BranchID)
		cancel() // stop from inside the handler: this message is still replied to
		return dtmq.Success(), nil
	}, nil)
	done := make(chan error, 1)
	go func() { done <- w2.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(waitBound):
		t.Fatal("Run did not return after the stop")
	}
	if len(seen) != 1 || seen[0] != "01" {
		t.Fatalf("first run: %v, want only 01", seen)
	}
	// a second run goes on with 02 (not lost by the stop)
	ctx2, cancel2 := context.WithTimeout(context.Background(), waitBound)
	defer cancel2()
	cancel = cancel2
	if err := w2.Run(ctx2); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if len(seen) != 2 || seen[1] != "02" {
		t.Fatalf("second run: %v, want 01 then 02", seen)
	}
	w2.Close()
	if err := w2.Run(context.Background()); !errors.Is(err, dtmq.ErrWorkerClosed) {
		t.Fatalf("Run after Close: %v, want ErrWorkerClosed", err)
	}
	replies := readTopic(t, n.reply, 2, waitBound, nil)
	if len(replies) != 2 {
		t.Fatalf("replies %v, want 01's and 02's", values(replies))
	}
}

func TestNewWorkerRejectsBadConfig(t *testing.T) {
	h := func(context.Context, *dtmq.Branch) (dtmq.Result, error) { return dtmq.Success(), nil }
	ok := dtmq.WorkerConfig{Brokers: []string{"127.0.0.1:1"}, Group: "g", Topics: []string{"t"}, Handler: h}
	cases := []struct {
		mod  func(*dtmq.WorkerConfig)
		want string
	}{
		{func(c *dtmq.WorkerConfig) { c.Brokers = nil }, "WorkerConfig.Brokers"},
		{func(c *dtmq.WorkerConfig) { c.Brokers = []string{""} }, "WorkerConfig.Brokers[0]: empty"},
		{func(c *dtmq.WorkerConfig) { c.Group = "" }, "WorkerConfig.Group"},
		{func(c *dtmq.WorkerConfig) { c.Topics = nil }, "WorkerConfig.Topics: at least one"},
		{func(c *dtmq.WorkerConfig) { c.Topics = []string{"ok", "bad topic"} }, `WorkerConfig.Topics[1]: "bad topic" is not a Kafka topic name`},
		{func(c *dtmq.WorkerConfig) { c.Topics = []string{".."} }, "not a Kafka topic name"},
		{func(c *dtmq.WorkerConfig) { c.Handler = nil }, "WorkerConfig.Handler"},
		{func(c *dtmq.WorkerConfig) { c.RetryPause = -1 }, "may not be negative"},
	}
	for i, c := range cases {
		cfg := ok
		c.mod(&cfg)
		w, err := dtmq.NewWorker(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) || w != nil {
			t.Errorf("case %d: %v, want an error with %q", i, err, c.want)
		}
	}
	// options that would commit before the reply are refused (real Kafka:
	// the worker gets as far as making its client)
	cfg := ok
	cfg.Brokers = kafkaBrokers(t)
	cfg.Topics = []string{fresh("go.wt-opts-")}
	cfg.Opts = []kgo.Opt{kgo.DisableAutoCommit()}
	if _, err := dtmq.NewWorker(cfg); err == nil || !strings.Contains(err.Error(), "WorkerConfig.Opts") {
		t.Errorf("DisableAutoCommit: %v", err)
	}
}

// Replies are placed as librdkafka (dtmq, libdtmq, kcat) places a key:
// CRC-32 of the gid modulo the partition count, not franz-go's default
// murmur2; eight gids make a chance match of the two (1 in 4 each) unlikely.
func TestWorkerRepliesInTheCRC32PartitionOfTheGid(t *testing.T) {
	n := freshNames()
	createTopics(t, n.reply) // 4 partitions, as dtmq's PREFIXreply
	p := newProducer(t)
	want := map[string]int32{}
	for i := 0; i < 8; i++ {
		gid := fresh("go-wt-part-")
		want[gid] = crcPartition(gid, 4)
		produceBranch(t, p, branchMsg{topic: n.topic, gid: gid, transType: "saga", branchID: "01", op: "action",
			replyTo: n.reply, payload: []byte("x")})
	}
	rec := newRecorder()
	start(t, newWorker(t, n.group, []string{n.topic}, rec.handle, nil))
	replies := readTopic(t, n.reply, 8, waitBound, nil)
	if len(replies) != 8 {
		t.Fatalf("replies: %d, want 8", len(replies))
	}
	for _, r := range replies {
		if w, ok := want[string(r.Key)]; !ok || r.Partition != w {
			t.Errorf("reply for %s in partition %d, want %d", r.Key, r.Partition, w)
		}
	}
}

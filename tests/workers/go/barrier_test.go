// barrier_test.go — dtmqbarrier: the mapping of the dtm-* headers to DTM's
// BranchBarrier (checked against dtmcli.BarrierFromQuery itself), the
// result mapping, and DTM's barrier doing its job on real PostgreSQL behind
// a real worker: duplicate deliveries applied once, a null compensation,
// a hanging action.

package workers

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"dtmq.dev/connectors/go/dtmq"
	"dtmq.dev/connectors/go/dtmqbarrier"
	"github.com/dtm-labs/client/dtmcli"
)

func branchWith(h map[string]string) *dtmq.Branch {
	b := &dtmq.Branch{}
	for _, k := range []string{"dtm-gid", "dtm-trans-type", "dtm-branch-id", "dtm-op", "dtm-reply-to"} {
		if v, ok := h[k]; ok {
			b.Headers = append(b.Headers, dtmq.Header{Key: k, Value: []byte(v)})
		}
	}
	return b
}

func TestBarrierFromMapsTheHeadersAsBarrierFromQueryMapsTheQuery(t *testing.T) {
	h := map[string]string{"dtm-gid": "go-g;1\n", "dtm-trans-type": "saga", "dtm-branch-id": "02", "dtm-op": "compensate",
		"dtm-reply-to": "dtm.reply"}
	b := branchWith(h)
	b.Headers = append(b.Headers, dtmq.Header{Key: "dtm-gid", Value: []byte("a branch_header of the same name")})
	bb, err := dtmqbarrier.From(b)
	if err != nil {
		t.Fatalf("From: %v", err)
	}
	// DTM's own reading of the same values as an HTTP branch's query
	q := url.Values{"gid": {h["dtm-gid"]}, "trans_type": {"saga"}, "branch_id": {"02"}, "op": {"compensate"}}
	want, err := dtmcli.BarrierFromQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	if *bb != *want {
		t.Fatalf("From: %+v\nBarrierFromQuery: %+v", *bb, *want)
	}
	if bb.Gid != "go-g1" || bb.TransType != "saga" || bb.BranchID != "02" || bb.Op != "compensate" || bb.BarrierID != 0 {
		t.Fatalf("barrier: %+v", *bb)
	}
	for _, missing := range []string{"dtm-gid", "dtm-trans-type", "dtm-branch-id", "dtm-op"} {
		m := map[string]string{}
		for k, v := range h {
			if k != missing {
				m[k] = v
			}
		}
		if _, err := dtmqbarrier.From(branchWith(m)); err == nil || !strings.Contains(err.Error(), "no "+missing+" header") {
			t.Errorf("without %s: %v", missing, err)
		}
		m[missing] = ""
		if _, err := dtmqbarrier.From(branchWith(m)); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("empty %s: %v", missing, err)
		}
	}
	if _, err := dtmqbarrier.From(nil); err == nil {
		t.Error("From(nil): no error")
	}
}

func TestBarrierResultMapsLikeResult2HttpJSON(t *testing.T) {
	cases := []struct {
		err      error
		word     string
		isErr    bool
		httpCode int
	}{
		{nil, "SUCCESS", false, 200},
		{fmt.Errorf("no money %w", dtmcli.ErrFailure), "FAILURE", false, 409},
		{dtmcli.ErrOngoing, "ONGOING", false, 425},
		{errors.New("connection refused"), "", true, 500},
	}
	for _, c := range cases {
		res, err := dtmqbarrier.Result(c.err)
		code, _ := dtmcli.Result2HttpJSON(c.err)
		if res.Word() != c.word || (err != nil) != c.isErr || code != c.httpCode {
			t.Errorf("Result(%v) = %v, %v (HTTP would be %d)", c.err, res, err, code)
		}
	}
	if res, _ := dtmqbarrier.Result(fmt.Errorf("no money %w", dtmcli.ErrFailure)); !strings.Contains(res.Message(), "no money") {
		t.Errorf("FAILURE message: %q", res.Message())
	}
}

// The same action delivered three times and its compensation twice: applied
// once each, every delivery answered SUCCESS.
func TestBarrierDuplicateDeliveriesAreAppliedOnce(t *testing.T) {
	bk := newBank(t)
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	for _, op := range []string{"action", "action", "action", "compensate", "compensate"} {
		produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "01", op: op,
			replyTo: n.reply, payload: []byte(payload("A", -30))})
	}
	start(t, newWorker(t, n.group, []string{n.topic}, bk.handle, nil))
	replies := readTopic(t, n.reply, 5, waitBound, nil)
	if len(replies) != 5 {
		t.Fatalf("replies: %d, want 5", len(replies))
	}
	for i, r := range replies {
		op := "action"
		if i >= 3 {
			op = "compensate"
		}
		if want := replyJSON(n.gid, "01", op, "SUCCESS", ""); string(r.Value) != want {
			t.Errorf("reply %d: %s, want %s", i, r.Value, want)
		}
	}
	if got := bk.busi.Load(); got != 2 {
		t.Errorf("business steps run: %d, want 2 (one action, one compensation)", got)
	}
	if got := bk.balance(t, "A"); got != 100 {
		t.Errorf("balance A: %d, want 100 (-30 once, +30 once)", got)
	}
	if got := bk.barrierRows(t, n.gid); got != 2 {
		t.Errorf("barrier rows: %d, want 2", got)
	}
}

// A compensation that arrives before its action (the action's message was
// late): a null compensation (nothing to undo), and the action that comes
// after it is a hanging request the barrier refuses to run.
func TestBarrierNullCompensationAndHangingAction(t *testing.T) {
	bk := newBank(t)
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	for _, op := range []string{"compensate", "action"} {
		produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "01", op: op,
			replyTo: n.reply, payload: []byte(payload("A", -30))})
	}
	start(t, newWorker(t, n.group, []string{n.topic}, bk.handle, nil))
	replies := readTopic(t, n.reply, 2, waitBound, nil)
	want := []string{replyJSON(n.gid, "01", "compensate", "SUCCESS", ""), replyJSON(n.gid, "01", "action", "SUCCESS", "")}
	if strings.Join(values(replies), "\n") != strings.Join(want, "\n") {
		t.Fatalf("replies %v, want %v", values(replies), want)
	}
	if got := bk.busi.Load(); got != 0 {
		t.Errorf("business steps run: %d, want 0", got)
	}
	if got := bk.balance(t, "A"); got != 100 {
		t.Errorf("balance A: %d, want 100", got)
	}
}

// A business refusal inside the barrier is a FAILURE reply, and rolls the
// local transaction (with its barrier row) back.
func TestBarrierBusinessRefusalIsAFailureReply(t *testing.T) {
	bk := newBank(t)
	n := freshNames()
	createTopics(t, n.reply)
	p := newProducer(t)
	produceBranch(t, p, branchMsg{topic: n.topic, gid: n.gid, transType: "saga", branchID: "01", op: "action",
		replyTo: n.reply, payload: []byte(payload("A", -500))})
	start(t, newWorker(t, n.group, []string{n.topic}, bk.handle, nil))
	replies := readTopic(t, n.reply, 1, waitBound, nil)
	if len(replies) != 1 || !strings.Contains(string(replies[0].Value), `"dtm_result":"FAILURE","message":"account A: insufficient balance FAILURE"`) {
		t.Fatalf("replies: %v", values(replies))
	}
	time.Sleep(200 * time.Millisecond)
	if got := bk.balance(t, "A"); got != 100 {
		t.Errorf("balance A: %d, want 100 (rolled back)", got)
	}
	if got := bk.barrierRows(t, n.gid); got != 0 {
		t.Errorf("barrier rows: %d, want 0 (rolled back with the step)", got)
	}
}

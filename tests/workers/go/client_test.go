// client_test.go — the submit client against the real dtmq: answers that
// refuse (400 for a bad message, 409 for a finished gid) come back as
// *ReplyError (ErrFailure) with dtmq's reason; prepare then abort; no
// ReplyTopic (fire and forget); no answer within the context; bad calls.

package workers

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"dtmq.dev/connectors/go/dtmq"
)

func TestClientRefusalsAreReplyErrorsWithDtmqsReason(t *testing.T) {
	d := startDtmq(t)
	c := newClient(t, d)
	ctx := ctxFor(t, waitBound)

	gid := fresh("go-cl-bad-")
	r, err := c.Submit(ctx, dtmq.NewSaga(gid).Add("ftp://nowhere", "", "x"))
	var re *dtmq.ReplyError
	if !errors.As(err, &re) || !errors.Is(err, dtmq.ErrFailure) || r.Status != 400 || r.Phase != "accepted" ||
		!strings.Contains(r.Message, "ftp://nowhere") {
		t.Fatalf("bad branch URL: %+v, %v", r, err)
	}

	gid = fresh("go-cl-twice-")
	saga := dtmq.NewSaga(gid).Add("", "", "x") // an empty URL: a step that succeeds at once
	saga.WaitResult = true
	if r, err := c.Submit(ctx, saga); err != nil || r.Status != 200 || r.Phase != "finished" {
		t.Fatalf("first submit: %+v, %v", r, err)
	}
	r, err = c.Submit(ctx, saga)
	if !errors.Is(err, dtmq.ErrFailure) || r.Status != 409 {
		t.Fatalf("second submit of a finished saga: %+v, %v", r, err)
	}

	gid = fresh("go-cl-msg-")
	msg := dtmq.NewMsg(gid, "http://127.0.0.1:9/qp").AddMsg("", "x")
	if r, err := c.Prepare(ctx, msg); err != nil || r.Op != "prepare" || r.Status != 200 {
		t.Fatalf("prepare: %+v, %v", r, err)
	}
	if st := d.query(t, gid).Transaction.Status; st != "prepared" {
		t.Fatalf("after prepare: %s", st)
	}
	if r, err := c.Abort(ctx, msg); err != nil || r.Op != "abort" {
		t.Fatalf("abort: %+v, %v", r, err)
	}
	if st := d.waitStatus(t, gid, "failed", 10*time.Second).Transaction.Status; st != "failed" {
		t.Fatalf("after abort: %s", st)
	}

	// the abort of a prepared msg ends it without a pass: with WaitResult the
	// finished reply repeats the answer at once (no wait for ctx's end)
	gid = fresh("go-cl-msgwait-")
	msg = dtmq.NewMsg(gid, "http://127.0.0.1:9/qp").AddMsg("", "x")
	if r, err := c.Prepare(ctx, msg); err != nil || r.Status != 200 {
		t.Fatalf("prepare: %+v, %v", r, err)
	}
	msg.WaitResult = true
	started := time.Now()
	if r, err := c.Abort(ctxFor(t, 10*time.Second), msg); err != nil || r.Phase != "finished" || r.Status != 200 {
		t.Fatalf("abort with WaitResult: %+v, %v", r, err)
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Fatalf("abort with WaitResult took %v", took)
	}
}

func TestClientWithoutReplyTopicReturnsOnceKafkaHasTheMessage(t *testing.T) {
	d := startDtmq(t)
	c, err := dtmq.NewClient(ctxFor(t, waitBound), dtmq.ClientConfig{Brokers: kafkaBrokers(t), SubmitTopic: d.submitTopic()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gid := fresh("go-cl-fire-")
	r, err := c.Submit(ctxFor(t, waitBound), dtmq.NewSaga(gid).Add("", "", "x"))
	if err != nil || r != nil {
		t.Fatalf("Submit: %+v, %v; want nil, nil", r, err)
	}
	if st := d.waitStatus(t, gid, "succeed", 20*time.Second).Transaction.Status; st != "succeed" {
		t.Fatalf("status %s", st)
	}
}

func TestClientGivesUpAtTheContextDeadline(t *testing.T) {
	// a submit topic no dtmq reads: nobody answers
	nobody := fresh("go.nobody-")
	createTopics(t, nobody)
	c, err := dtmq.NewClient(ctxFor(t, waitBound), dtmq.ClientConfig{Brokers: kafkaBrokers(t),
		SubmitTopic: nobody, ReplyTopic: fresh("go.replies-")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = c.Submit(ctx, dtmq.NewSaga(fresh("go-cl-none-")).Add("", "", "x"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("Submit: %v, want a deadline error", err)
	}
	if el := time.Since(t0); el > 5*time.Second {
		t.Fatalf("returned after %s", el)
	}
}

func TestClientRejectsBadCalls(t *testing.T) {
	ctx := ctxFor(t, waitBound)
	cases := []struct {
		cfg  dtmq.ClientConfig
		want string
	}{
		{dtmq.ClientConfig{}, "ClientConfig.Brokers"},
		{dtmq.ClientConfig{Brokers: []string{"x:1"}, SubmitTopic: "a b"}, "ClientConfig.SubmitTopic"},
		{dtmq.ClientConfig{Brokers: []string{"x:1"}, ReplyTopic: "a/b"}, "ClientConfig.ReplyTopic"},
	}
	for _, cs := range cases {
		if _, err := dtmq.NewClient(ctx, cs.cfg); err == nil || !strings.Contains(err.Error(), cs.want) {
			t.Errorf("%+v: %v, want %q", cs.cfg, err, cs.want)
		}
	}
	c, err := dtmq.NewClient(ctx, dtmq.ClientConfig{Brokers: kafkaBrokers(t), SubmitTopic: fresh("go.nobody-")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Submit(ctx, &dtmq.Trans{TransType: "saga"}); err == nil || !strings.Contains(err.Error(), "Trans.Gid") {
		t.Errorf("no gid: %v", err)
	}
	bad := dtmq.NewSaga("go-cl-x").Add("", "", "ok").Add("", "", make(chan int))
	if _, err := c.Submit(ctx, bad); err == nil || !strings.Contains(err.Error(), "step 2: payload") {
		t.Errorf("a payload that is not JSON: %v", err)
	}
}

// env_test.go — what every test of the Go worker library shares: the test
// services from the environment tests/lib/run_lib.sh's test_env sets
// (DTMQ_TEST_KAFKA, DTMQ_TEST_POSTGRES, DTMQ_TEST_BIN), fresh names, a
// recording handler, a worker run in the background with a bound, and
// readers of topics and committed offsets. Nothing is skipped when a
// service is missing: the test fails and says which variable to set.

package workers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"dtmq.dev/connectors/go/dtmq"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const waitBound = 30 * time.Second // the bound of every wait on Kafka

func need(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set (%s); tests/workers/go/run.sh sets it", name, what)
	}
	return v
}

func kafkaBrokers(t testing.TB) []string {
	return strings.Split(need(t, "DTMQ_TEST_KAFKA", "the test Kafka's bootstrap, host:port"), ",")
}

// fresh returns prefix + a random suffix: topics, groups and gids of one
// test never meet another's (or another run's). Prefixes start with "go".
func fresh(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

type names struct{ topic, reply, group, gid string }

func freshNames() names {
	return names{fresh("go.wt-branch-"), fresh("go.wt-reply-"), fresh("go-wt-group-"), fresh("go-wt-gid-")}
}

// testLogger writes the library's log lines to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ---- a recording handler -------------------------------------------------

// call is one handler call, copied.
type call struct {
	dtmq.Branch
	payload string
}

// rule: what the handler answers for a topic and op ("": any); times > 0:
// only for the first times matches. err != nil: return that error.
type rule struct {
	topic, op string
	result    dtmq.Result
	err       error
	times     int
	used      int
}

type recorder struct {
	mu     sync.Mutex
	calls  []call
	rules  []*rule
	notify chan struct{}
	before func(b *dtmq.Branch) // runs first in every call (outside mu)
	next   dtmq.Handler         // answers when no rule does (nil: Success)
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) answer(topic, op string, res dtmq.Result, times int) {
	r.rules = append(r.rules, &rule{topic: topic, op: op, result: res, times: times})
}

func (r *recorder) fail(topic, op string, err error, times int) {
	r.rules = append(r.rules, &rule{topic: topic, op: op, err: err, times: times})
}

func (r *recorder) handle(ctx context.Context, b *dtmq.Branch) (dtmq.Result, error) {
	if r.before != nil {
		r.before(b)
	}
	r.mu.Lock()
	c := call{Branch: *b, payload: string(b.Payload)}
	c.Payload = append([]byte(nil), b.Payload...)
	c.Headers = append([]dtmq.Header(nil), b.Headers...)
	r.calls = append(r.calls, c)
	select {
	case r.notify <- struct{}{}:
	default:
	}
	for _, u := range r.rules {
		if b.Gid == warmupGid {
			break // warm-ups (e2e_test.go) just succeed
		}
		if (u.topic == "" || u.topic == b.Topic) && (u.op == "" || u.op == b.Op) && (u.times == 0 || u.used < u.times) {
			u.used++
			r.mu.Unlock()
			return u.result, u.err
		}
	}
	r.mu.Unlock()
	if r.next != nil && b.Gid != warmupGid {
		return r.next(ctx, b)
	}
	return dtmq.Success(), nil
}

// without returns the calls that are not warm-ups.
func without(cs []call, gid string) []call {
	var out []call
	for _, c := range cs {
		if c.Gid != gid {
			out = append(out, c)
		}
	}
	return out
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// wait waits until there are at least n calls; returns the calls it has.
func (r *recorder) wait(n int, bound time.Duration) []call {
	deadline := time.After(bound)
	for {
		if cs := r.snapshot(); len(cs) >= n {
			return cs
		}
		select {
		case <-r.notify:
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			return r.snapshot()
		}
	}
}

// ---- workers -----------------------------------------------------------------

type running struct {
	w      *dtmq.Worker
	cancel context.CancelFunc
	done   chan error
}

// newWorker makes a worker for the test's topics with the recorder's handler
// (or h when given) and a 6 s session timeout (the worker-killed test needs
// a dead member's partitions to move quickly).
func newWorker(t testing.TB, group string, topics []string, h dtmq.Handler, mod func(*dtmq.WorkerConfig)) *dtmq.Worker {
	t.Helper()
	cfg := dtmq.WorkerConfig{Brokers: kafkaBrokers(t), Group: group, Topics: topics, Handler: h,
		SessionTimeout: 6 * time.Second, RetryPause: 200 * time.Millisecond, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	w, err := dtmq.NewWorker(cfg)
	if err != nil {
		t.Fatalf("NewWorker: %v", err)
	}
	return w
}

// start runs w in the background; stop() cancels it, checks Run's result
// and closes it. Registered with t.Cleanup too (idempotent).
func start(t testing.TB, w *dtmq.Worker) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Worker.Run: %v", err)
		}
	case <-time.After(waitBound):
		t.Errorf("Worker.Run did not return within %s of the stop", waitBound)
	}
	r.w.Close()
}

// ---- producing, reading ------------------------------------------------------

func newProducer(t testing.TB) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(t)...), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

type branchMsg struct {
	topic, gid, transType, branchID, op, replyTo string
	payload                                      []byte
	extra                                        []kgo.RecordHeader // after the dtm-* ones
}

// produceBranch produces a message the way dtmq's engine publishes a branch
// (broker/engine/pass.c): key gid, value payload, the dtm-* headers first.
func produceBranch(t testing.TB, p *kgo.Client, m branchMsg) *kgo.Record {
	t.Helper()
	h := []kgo.RecordHeader{{Key: "dtm-gid", Value: []byte(m.gid)}, {Key: "dtm-trans-type", Value: []byte(m.transType)},
		{Key: "dtm-branch-id", Value: []byte(m.branchID)}, {Key: "dtm-op", Value: []byte(m.op)},
		{Key: "dtm-reply-to", Value: []byte(m.replyTo)}}
	return produceRaw(t, p, m.topic, m.gid, m.payload, append(h, m.extra...))
}

func produceRaw(t testing.TB, p *kgo.Client, topic, key string, value []byte, h []kgo.RecordHeader) *kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	rec := &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Headers: h}
	if err := p.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	return rec
}

// readTopic reads topic from the start until max records came, stop
// returned true for one, or bound passed.
func readTopic(t testing.TB, topic string, max int, bound time.Duration, stop func(*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(t)...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	var out []*kgo.Record
	for len(out) < max && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			done = done || (stop != nil && stop(r))
		})
		if done {
			break
		}
	}
	return out
}

// committedOffset is the offset group committed for topic[partition]; -1
// when none.
func committedOffset(t testing.TB, group, topic string, partition int32) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(t)...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = topic
	rt.Partitions = []int32{partition}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("OffsetFetch: %v", err)
	}
	if e := kerr.ErrorForCode(resp.ErrorCode); e != nil {
		t.Fatalf("OffsetFetch: %v", e)
	}
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
				t.Fatalf("OffsetFetch %s[%d]: %v", topic, partition, e)
			}
			return p.Offset
		}
	}
	return -1
}

func replyJSON(gid, bid, op, result, message string) string {
	return fmt.Sprintf(`{"gid":%q,"branch_id":%q,"op":%q,"dtm_result":%q,"message":%q}`, gid, bid, op, result, message)
}

// createTopics creates topics (4 partitions) as dtmq creates its reply topic
// at start, so that the first reply does not wait for an auto-creation.
func createTopics(t testing.TB, topics ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaBrokers(t)...))
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	for _, name := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 4, 1
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	for _, rt := range resp.Topics {
		if e := kerr.ErrorForCode(rt.ErrorCode); e != nil && e != kerr.TopicAlreadyExists {
			t.Fatalf("CreateTopics %s: %v", rt.Topic, e)
		}
	}
}

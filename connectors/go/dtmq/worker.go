// worker.go — the Worker: one franz-go client that consumes branch topics in
// a consumer group, calls the Handler per message, produces the replies and
// marks offsets for commit.
//
// Invariants, per partition (the same as the C worker's,
// connectors/libdtmq/worker/dtmq_worker.c):
//   - an offset is marked (MarkCommitRecords) only for a message that is
//     finished: skipped for good (no dtm-* headers), handled with no reply
//     due, or handled with its reply acknowledged by Kafka (ProduceSync
//     returned no error). AutoCommitMarks commits marked offsets only, so a
//     committed offset never passes a message whose reply is missing;
//   - a message that must be handled again (its reply failed, a msg handler
//     did not succeed) or that was not reached (a stop) is never followed by
//     a later message of its partition: the rest of the polled batch of that
//     partition is left alone and the partition is moved back to the message
//     (SetOffsets) before the next poll. Polls block rebalances
//     (BlockRebalanceOnPoll) until that is done, so no partition changes
//     hands in between.

package dtmq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	defaultRetryPause   = 500 * time.Millisecond
	maxRetryPauseFactor = 8 // the pause doubles while the same batch keeps failing, up to 8x
	defaultReplyTimeout = 10 * time.Second
	autoCommitInterval  = 500 * time.Millisecond
	maxPollRecords      = 64
	closeCommitTimeout  = 10 * time.Second
)

// ErrWorkerClosed is returned by Run once Close was called.
var ErrWorkerClosed = errors.New("dtmq: worker closed")

// WorkerConfig configures a Worker. Brokers, Group, Topics and Handler are
// required.
type WorkerConfig struct {
	Brokers []string // Kafka bootstrap addresses, host:port
	Group   string   // the consumer group: one per kind of worker
	Topics  []string // the branch topics (the TOPIC of kafka://TOPIC); missing ones are created
	Handler Handler

	// SessionTimeout of the group member; 0 keeps franz-go's default (45 s),
	// fine on a real Kafka. On dtmq's embedded cluster (librdkafka's mock
	// cluster) use 6 s, as dtmq's own consumers do (docs/kafka.md). It is
	// also how long a crashed worker's partitions wait before another
	// member of the group gets them.
	SessionTimeout time.Duration

	// RetryPause before a message is handled again (0: 500 ms); it doubles
	// while the same message keeps failing, up to 8 times as long.
	RetryPause time.Duration

	// ReplyTimeout bounds the wait for Kafka's acknowledgement of a reply
	// (0: 10 s); past it the message is handled again.
	ReplyTimeout time.Duration

	// Logger gets one line per skipped message, handler error and failed
	// reply, and franz-go's warnings (nil: slog.Default()).
	Logger *slog.Logger

	// Opts are appended to the worker's own franz-go options, so they
	// override them: TLS (kgo.DialTLSConfig), SASL, kgo.Balancers,
	// kgo.FetchMaxWait, kgo.RecordPartitioner, ... They must not change how
	// offsets are committed (kgo.DisableAutoCommit, or leaving out
	// AutoCommitMarks or BlockRebalanceOnPoll): NewWorker refuses that.
	Opts []kgo.Opt
}

func (c *WorkerConfig) check() error {
	if err := checkBrokers("WorkerConfig.Brokers", c.Brokers); err != nil {
		return err
	}
	if c.Group == "" {
		return errors.New("WorkerConfig.Group: a consumer group is required")
	}
	if len(c.Topics) == 0 {
		return errors.New("WorkerConfig.Topics: at least one topic is required")
	}
	for i, t := range c.Topics {
		if err := checkTopic(fmt.Sprintf("WorkerConfig.Topics[%d]", i), t); err != nil {
			return err
		}
	}
	if c.Handler == nil {
		return errors.New("WorkerConfig.Handler: required")
	}
	if c.SessionTimeout < 0 || c.RetryPause < 0 || c.ReplyTimeout < 0 {
		return errors.New("WorkerConfig: SessionTimeout, RetryPause and ReplyTimeout may not be negative")
	}
	return nil
}

// Worker consumes branch messages and answers them; see the package
// documentation for the guarantees. Run it with Run, stop it by cancelling
// Run's context, then Close it.
type Worker struct {
	cfg     WorkerConfig
	cl      *kgo.Client
	log     *slog.Logger
	running atomic.Bool
	closed  atomic.Bool
	retries int // consecutive batches that had to handle a message again (Run's goroutine only)
}

// librdkafkaPartitioner places a keyed record as librdkafka's default
// (consistent_random: CRC-32 of the key modulo the partition count) does, so
// a Go worker's reply for a gid lands in the partition a C producer (dtmq,
// libdtmq, kcat) would choose; with dtm.submit and dtm.reply of the same
// partition count, that is the partition of the dtmq process running the
// transaction (docs/kafka.md). franz-go's default is Java's murmur2.
func librdkafkaPartitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(func(key []byte, n int) int {
		return int(crc32.ChecksumIEEE(key) % uint32(n))
	})
}

// NewWorker checks cfg, creates the topics the cluster lacks (best effort)
// and joins the group. Errors name the field or the step that failed.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("dtmq: %w", err)
	}
	if cfg.RetryPause == 0 {
		cfg.RetryPause = defaultRetryPause
	}
	if cfg.ReplyTimeout == 0 {
		cfg.ReplyTimeout = defaultReplyTimeout
	}
	log := loggerOr(cfg.Logger)
	if err := ensureTopics(cfg.Brokers, cfg.Opts, log, cfg.Topics); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), // a new group reads what came before it
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(autoCommitInterval),
		kgo.BlockRebalanceOnPoll(),
		kgo.RecordPartitioner(librdkafkaPartitioner()),
		kgo.AllowAutoTopicCreation(), // as librdkafka's producer: a reply topic is created when the broker allows it
		kgo.WithLogger(slogLogger{log}),
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	opts = append(opts, cfg.Opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("dtmq: kafka client (WorkerConfig.Brokers, WorkerConfig.Opts): %w", err)
	}
	if cl.OptValue(kgo.DisableAutoCommit) == true || cl.OptValue(kgo.AutoCommitMarks) != true ||
		cl.OptValue(kgo.BlockRebalanceOnPoll) != true {
		cl.Close()
		return nil, errors.New("dtmq: WorkerConfig.Opts: must not change how offsets are committed " +
			"(DisableAutoCommit, AutoCommitMarks, BlockRebalanceOnPoll): the worker commits an offset only after its reply")
	}
	return &Worker{cfg: cfg, cl: cl, log: log}, nil
}

// ensureTopics creates the missing topics with a short-lived client (the
// worker's own client subscribes at creation), made with the caller's
// options but those of consuming (TLS, SASL, dialer, ... stay).
func ensureTopics(brokers []string, extra []kgo.Opt, log *slog.Logger, topics []string) error {
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.WithLogger(slogLogger{log})}
	for _, o := range extra {
		_, group := o.(kgo.GroupOpt)
		_, consumer := o.(kgo.ConsumerOpt)
		if !group && !consumer {
			opts = append(opts, o)
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("dtmq: kafka client (WorkerConfig.Brokers, WorkerConfig.Opts): %w", err)
	}
	defer cl.Close()
	createTopics(context.Background(), cl, log, topics)
	return nil
}

// Run handles messages until ctx is cancelled (it then returns nil) or the
// worker is closed (ErrWorkerClosed). Per message, in partition order:
//  1. reads the dtm-* headers; a message without dtm-gid, dtm-branch-id or
//     dtm-op is logged and skipped (its offset is marked);
//  2. calls the handler;
//  3. unless the branch is a msg or dtm-reply-to is empty, produces the
//     reply, keyed by gid, and waits for Kafka's acknowledgement;
//  4. marks the offset for commit. If 3 failed, or a msg handler did not
//     return Success, the message is handled again after a pause.
//
// The message in hand when ctx is cancelled is still finished (replied
// to, marked). Run may be called again after it returned; not from two
// goroutines at once.
func (w *Worker) Run(ctx context.Context) error {
	if w.closed.Load() {
		return ErrWorkerClosed
	}
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("dtmq: Worker.Run is already running")
	}
	defer w.running.Store(false)
	for ctx.Err() == nil {
		fetches := w.cl.PollRecords(ctx, maxPollRecords)
		if fetches.IsClientClosed() {
			w.cl.AllowRebalance()
			return ErrWorkerClosed
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				w.log.Warn("dtmq worker: fetch error", "topic", topic, "partition", partition, "error", err)
			}
		})
		again := w.takeFetches(ctx, fetches)
		w.cl.AllowRebalance()
		if again {
			w.retries++
			w.pause(ctx)
		} else {
			w.retries = 0
		}
	}
	return nil
}

// takeFetches handles the polled records partition by partition; a
// partition stops at its first message that is not finished, and is moved
// back to it. Reports whether a message is to be handled again.
func (w *Worker) takeFetches(ctx context.Context, fetches kgo.Fetches) (again bool) {
	rewind := map[string]map[int32]kgo.EpochOffset{}
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		for _, r := range p.Records {
			done := ctx.Err() == nil && w.take(ctx, r)
			if done {
				w.cl.MarkCommitRecords(r)
				continue
			}
			again = again || ctx.Err() == nil
			if rewind[r.Topic] == nil {
				rewind[r.Topic] = map[int32]kgo.EpochOffset{}
			}
			rewind[r.Topic][r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
			break
		}
	})
	if len(rewind) > 0 {
		w.cl.SetOffsets(rewind)
	}
	return again
}

// pause sleeps before a message is handled again, doubling with each
// consecutive retry up to maxRetryPauseFactor, and returns early on a stop.
func (w *Worker) pause(ctx context.Context) {
	d := w.cfg.RetryPause
	for i := 1; i < w.retries && d < w.cfg.RetryPause*maxRetryPauseFactor; i++ {
		d *= 2
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// take handles one record; true when it is finished (its offset may be
// committed), false when it is to be handled again.
func (w *Worker) take(ctx context.Context, r *kgo.Record) bool {
	b, err := branchFromRecord(r)
	if err != nil {
		w.log.Warn("dtmq worker: not a dtmq branch message, skipped", "topic", r.Topic,
			"partition", r.Partition, "offset", r.Offset, "reason", err.Error())
		return true
	}
	res, herr := w.call(ctx, b)
	if herr == nil && res.word == "" {
		herr = errors.New("the handler returned the zero Result (use Success, Failure or Ongoing)")
	}
	if b.TransType == "msg" {
		// dtmq counted its publish as the branch's success and never sends it
		// again: only the handler's Success may let the message go.
		if herr == nil && res.word == "SUCCESS" {
			return true
		}
		w.log.Warn("dtmq worker: msg branch not done, handling it again", "branch", b.String(),
			"result", res.String(), "error", errString(herr))
		return false
	}
	if herr != nil {
		w.log.Warn("dtmq worker: handler error, no reply (dtmq publishes the branch again after its request_timeout)",
			"branch", b.String(), "error", herr.Error())
		return true
	}
	if b.ReplyTo == "" {
		return true
	}
	if err := w.reply(ctx, b, res); err != nil {
		w.log.Warn("dtmq worker: cannot publish the reply, handling the message again",
			"branch", b.String(), "reply_to", b.ReplyTo, "error", err.Error())
		return false
	}
	return true
}

// call runs the handler; a panic becomes an error.
func (w *Worker) call(ctx context.Context, b *Branch) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = Result{}, fmt.Errorf("handler panic: %v", p)
		}
	}()
	return w.cfg.Handler(ctx, b)
}

// replyValue is schemas/kafka/reply.schema.json, in the C worker's key order.
type replyValue struct {
	Gid       string `json:"gid"`
	BranchID  string `json:"branch_id"`
	Op        string `json:"op"`
	DtmResult string `json:"dtm_result"`
	Message   string `json:"message"`
}

func encodeReply(b *Branch, res Result) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(replyValue{b.Gid, b.BranchID, b.Op, res.word, res.message}); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// reply produces res to b.ReplyTo and waits for Kafka's acknowledgement. A
// stop (ctx) does not cut it short: only ReplyTimeout does.
func (w *Worker) reply(ctx context.Context, b *Branch, res Result) error {
	if err := checkTopic("dtm-reply-to", b.ReplyTo); err != nil {
		return err
	}
	value, err := encodeReply(b, res)
	if err != nil {
		return err
	}
	rec := &kgo.Record{
		Topic: b.ReplyTo,
		Key:   []byte(b.Gid),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderGid, Value: []byte(b.Gid)},
			{Key: HeaderBranchID, Value: []byte(b.BranchID)},
			{Key: HeaderOp, Value: []byte(b.Op)},
		},
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ReplyTimeout)
	defer cancel()
	return w.cl.ProduceSync(rctx, rec).FirstErr()
}

// Close commits the marked offsets, leaves the group and closes the client.
// Call it after Run returned (cancel Run's context first); a new worker of
// the group then starts after the last finished message.
func (w *Worker) Close() {
	if w.closed.Swap(true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeCommitTimeout)
	defer cancel()
	if err := w.cl.CommitMarkedOffsets(ctx); err != nil {
		w.log.Warn("dtmq worker: committing offsets at close (the messages after the last commit will be handled again)",
			"error", err)
	}
	w.cl.CloseAllowingRebalance()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

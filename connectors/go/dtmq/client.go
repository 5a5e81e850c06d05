// client.go — the submit client: publishes prepare/submit/abort to
// dtm.submit with reply_to, and waits for dtmq's answers
// (schemas/kafka/submit_reply.schema.json) on the reply topic.
//
// The client consumes its reply topic with a consumer of its own, without a
// group, from the end offsets it read when it was made, so that no reply
// published after NewClient returned is missed. A waiter is registered
// before its message is produced; replies are matched by gid and op.

package dtmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrFailure and ErrOngoing are what a *ReplyError is (errors.Is) when dtmq
// answered FAILURE (refused, or the transaction failed) or ONGOING (still
// running when wait_result gave up).
var (
	ErrFailure = errors.New("dtmq: FAILURE")
	ErrOngoing = errors.New("dtmq: ONGOING")
)

// Reply is one of dtmq's answers to a dtm.submit message.
type Reply struct {
	Gid       string `json:"gid"`
	Op        string `json:"op"`
	Phase     string `json:"phase"`      // accepted, or finished (wait_result)
	Status    int    `json:"status"`     // the HTTP status of the same request: 200, 400, 409, 425, 500
	DtmResult string `json:"dtm_result"` // SUCCESS, FAILURE, ONGOING
	Message   string `json:"message"`    // why, when refused or failed
}

// ReplyError is the error of a call whose answer was not SUCCESS. It is
// ErrFailure or ErrOngoing under errors.Is.
type ReplyError struct{ Reply *Reply }

func (e *ReplyError) Error() string {
	r := e.Reply
	s := fmt.Sprintf("dtmq: %s %s %s: %d %s", r.Op, r.Gid, r.Phase, r.Status, r.DtmResult)
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

func (e *ReplyError) Is(target error) bool {
	return (target == ErrFailure && e.Reply.DtmResult == "FAILURE") ||
		(target == ErrOngoing && e.Reply.DtmResult == "ONGOING")
}

// ClientConfig configures a Client. Brokers is required.
type ClientConfig struct {
	Brokers []string

	// SubmitTopic is dtmq's submit topic: its KafkaTopicPrefix + "submit"
	// ("" : "dtm.submit").
	SubmitTopic string

	// ReplyTopic is where dtmq answers (reply_to); created when missing.
	// Give each service its own. "": no answers are asked for, and a call
	// returns once Kafka acknowledged the message (with a nil *Reply).
	ReplyTopic string

	Logger *slog.Logger // nil: slog.Default()
	Opts   []kgo.Opt    // appended to the client's own franz-go options (TLS, SASL, ...)
}

// Client publishes transactions to dtm.submit. It is safe for concurrent use.
type Client struct {
	cfg     ClientConfig
	log     *slog.Logger
	prod    *kgo.Client
	cons    *kgo.Client // nil without a ReplyTopic
	mu      sync.Mutex
	waiters map[waitKey][]chan *Reply
	done    chan struct{} // closed when the reply loop ended
	cancel  context.CancelFunc
}

type waitKey struct{ gid, op string }

// NewClient connects, creates the reply topic when missing and starts
// following it. ctx bounds the set-up.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if err := checkBrokers("ClientConfig.Brokers", cfg.Brokers); err != nil {
		return nil, fmt.Errorf("dtmq: %w", err)
	}
	if cfg.SubmitTopic == "" {
		cfg.SubmitTopic = "dtm.submit"
	}
	if err := checkTopic("ClientConfig.SubmitTopic", cfg.SubmitTopic); err != nil {
		return nil, fmt.Errorf("dtmq: %w", err)
	}
	if cfg.ReplyTopic != "" {
		if err := checkTopic("ClientConfig.ReplyTopic", cfg.ReplyTopic); err != nil {
			return nil, fmt.Errorf("dtmq: %w", err)
		}
	}
	log := loggerOr(cfg.Logger)
	base := []kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.WithLogger(slogLogger{log})}
	prod, err := kgo.NewClient(append(append(base, kgo.RecordPartitioner(librdkafkaPartitioner())), cfg.Opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dtmq: kafka client: %w", err)
	}
	c := &Client{cfg: cfg, log: log, prod: prod, waiters: map[waitKey][]chan *Reply{}, done: make(chan struct{})}
	if cfg.ReplyTopic == "" {
		close(c.done)
		return c, nil
	}
	if err := c.followReplies(ctx, base); err != nil {
		prod.Close()
		return nil, err
	}
	return c, nil
}

// followReplies starts consuming the reply topic from its current end.
func (c *Client) followReplies(ctx context.Context, base []kgo.Opt) error {
	createTopics(ctx, c.prod, c.log, []string{c.cfg.ReplyTopic})
	ends, err := endOffsets(ctx, c.prod, c.cfg.ReplyTopic)
	if err != nil {
		return fmt.Errorf("dtmq: reply topic: %w", err)
	}
	at := map[int32]kgo.Offset{}
	for p, o := range ends {
		at[p] = kgo.NewOffset().At(o)
	}
	opts := append(append(base, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.cfg.ReplyTopic: at})), c.cfg.Opts...)
	c.cons, err = kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("dtmq: kafka client: %w", err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.replyLoop(lctx)
	return nil
}

func (c *Client) replyLoop(ctx context.Context) {
	defer close(c.done)
	for {
		fetches := c.cons.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			c.log.Warn("dtmq client: fetching replies", "topic", t, "partition", p, "error", err)
		})
		fetches.EachRecord(c.deliver)
	}
}

// deliver hands a reply to the waiters of its gid and op.
func (c *Client) deliver(r *kgo.Record) {
	var rep Reply
	if err := json.Unmarshal(r.Value, &rep); err != nil || rep.Phase == "" {
		c.log.Warn("dtmq client: not a dtmq reply, ignored", "topic", r.Topic, "partition", r.Partition,
			"offset", r.Offset)
		return
	}
	if rep.Gid == "" { // a 400 to a message without a usable gid: the key is all there is
		rep.Gid = string(r.Key)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.waiters[waitKey{rep.Gid, rep.Op}] {
		select {
		case ch <- &rep:
		default: // that waiter has its answer already
		}
	}
	if rep.Op == "" { // unusable op: every waiter of the gid is answered
		for k, chs := range c.waiters {
			if k.gid == rep.Gid {
				for _, ch := range chs {
					select {
					case ch <- &rep:
					default:
					}
				}
			}
		}
	}
}

func (c *Client) addWaiter(k waitKey) chan *Reply {
	ch := make(chan *Reply, 4)
	c.mu.Lock()
	c.waiters[k] = append(c.waiters[k], ch)
	c.mu.Unlock()
	return ch
}

func (c *Client) removeWaiter(k waitKey, ch chan *Reply) {
	c.mu.Lock()
	defer c.mu.Unlock()
	chs := c.waiters[k]
	for i := range chs {
		if chs[i] == ch {
			chs = append(chs[:i], chs[i+1:]...)
			break
		}
	}
	if len(chs) == 0 {
		delete(c.waiters, k)
	} else {
		c.waiters[k] = chs
	}
}

// Prepare opens a msg, tcc, xa or workflow transaction (op prepare) and
// returns dtmq's accepted answer.
func (c *Client) Prepare(ctx context.Context, t *Trans) (*Reply, error) {
	return c.Send(ctx, "prepare", t)
}

// Submit runs a saga or msg, or commits a prepared transaction. With
// t.WaitResult it returns the finished answer (how the first pass ended),
// else the accepted one.
func (c *Client) Submit(ctx context.Context, t *Trans) (*Reply, error) {
	return c.Send(ctx, "submit", t)
}

// Abort rolls a prepared tcc/xa back or drops a prepared msg.
func (c *Client) Abort(ctx context.Context, t *Trans) (*Reply, error) {
	return c.Send(ctx, "abort", t)
}

// Send publishes t with op to the submit topic, keyed by its gid, waits for
// Kafka's acknowledgement, then (with a ReplyTopic) for dtmq's answer: the
// finished one for submit/abort with WaitResult (unless the accepted one
// already refused), else the accepted one. It returns the answer, and a
// *ReplyError when it is not SUCCESS; ctx bounds the whole call (a
// deadline passed: ctx's error, the message may still be taken).
func (c *Client) Send(ctx context.Context, op string, t *Trans) (*Reply, error) {
	if t == nil || t.Gid == "" {
		return nil, errors.New("dtmq: Trans.Gid: required")
	}
	if t.err != nil {
		return nil, fmt.Errorf("dtmq: %s %s: %w", op, t.Gid, t.err)
	}
	value, err := json.Marshal(submitValue{Op: op, ReplyTo: c.cfg.ReplyTopic, Trans: t})
	if err != nil {
		return nil, fmt.Errorf("dtmq: %s %s: %w", op, t.Gid, err)
	}
	var ch chan *Reply
	k := waitKey{t.Gid, op}
	if c.cfg.ReplyTopic != "" {
		ch = c.addWaiter(k)
		defer c.removeWaiter(k, ch)
	}
	rec := &kgo.Record{Topic: c.cfg.SubmitTopic, Key: []byte(t.Gid), Value: value}
	if err := c.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return nil, fmt.Errorf("dtmq: %s %s: publishing to %s: %w", op, t.Gid, c.cfg.SubmitTopic, err)
	}
	if ch == nil {
		return nil, nil
	}
	finished := t.WaitResult && (op == "submit" || op == "abort")
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dtmq: %s %s: no answer on %s: %w", op, t.Gid, c.cfg.ReplyTopic, ctx.Err())
		case <-c.done:
			return nil, fmt.Errorf("dtmq: %s %s: client closed", op, t.Gid)
		case r := <-ch:
			if finished && r.Phase == "accepted" && r.Status == 200 {
				continue // the command is stored; its end comes next
			}
			if r.DtmResult != "SUCCESS" {
				return r, &ReplyError{Reply: r}
			}
			return r, nil
		}
	}
}

// Close stops following replies and closes the Kafka clients, after
// flushing what is being produced (up to 5 s).
func (c *Client) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cons.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.prod.Flush(ctx)
	c.prod.Close()
}

// kafka.go — what the worker and the client share around franz-go: the
// topic name rule, creating missing topics, the end offsets of a topic, and
// a franz-go logger that writes to log/slog.

package dtmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// topicName is Kafka's (and dtmq's) rule: 1 to 249 of [A-Za-z0-9._-], not "." or "..".
var topicName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

func checkTopic(field, name string) error {
	if !topicName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%s: %q is not a Kafka topic name (1 to 249 of A-Z a-z 0-9 . _ -, not . or ..)", field, name)
	}
	return nil
}

func checkBrokers(field string, brokers []string) error {
	if len(brokers) == 0 {
		return fmt.Errorf("%s: at least one Kafka bootstrap address (host:port) is required", field)
	}
	for i, b := range brokers {
		if b == "" {
			return fmt.Errorf("%s[%d]: empty address", field, i)
		}
	}
	return nil
}

// createTopics creates those of topics the cluster lacks, with its default
// partitions and replication. Best effort, as in the C worker: a topic that
// cannot be created is logged and left to whoever creates it later (dtmq's
// first publish does). A topic that already exists is fine.
func createTopics(ctx context.Context, cl *kgo.Client, log *slog.Logger, topics []string) {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 10000
	for _, t := range topics {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = t
		rt.NumPartitions = -1 // the broker's num.partitions
		rt.ReplicationFactor = -1
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		log.Warn("dtmq: cannot create missing topics", "topics", topics, "error", err)
		return
	}
	for _, t := range resp.Topics {
		if e := kerr.ErrorForCode(t.ErrorCode); e != nil && !errors.Is(e, kerr.TopicAlreadyExists) {
			log.Warn("dtmq: cannot create topic", "topic", t.Topic, "error", e)
		}
	}
}

// endOffsets returns the offset the next record of each partition of topic
// will get (ListOffsets "latest").
func endOffsets(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	var partitions []int32
	for {
		resp, err := meta.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, err)
		}
		partitions = partitions[:0]
		if len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 {
			for _, p := range resp.Topics[0].Partitions {
				partitions = append(partitions, p.Partition)
			}
		}
		if len(partitions) > 0 {
			break
		}
		select { // a topic just created may need a moment to show up
		case <-ctx.Done():
			return nil, fmt.Errorf("metadata of %s: no partitions: %w", topic, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	for {
		out, err := listEnds(ctx, cl, topic, partitions)
		if err == nil || !kerr.IsRetriable(err) {
			return out, err
		}
		select { // a partition just created answers NOT_LEADER_FOR_PARTITION until it has a leader
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// listEnds asks each partition's leader for its end offset once; a
// partition's error is returned wrapped, so kerr.IsRetriable sees it.
func listEnds(ctx context.Context, cl *kgo.Client, topic string, partitions []int32) (map[int32]int64, error) {
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = topic
	for _, p := range partitions {
		lp := kmsg.NewListOffsetsRequestTopicPartition()
		lp.Partition = p
		lp.Timestamp = -1 // latest
		lt.Partitions = append(lt.Partitions, lp)
	}
	lo.Topics = append(lo.Topics, lt)
	// franz-go sends ListOffsets to each partition's leader and merges the answers
	resp, err := lo.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	out := make(map[int32]int64, len(partitions))
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if e := kerr.ErrorForCode(p.ErrorCode); e != nil {
				return nil, fmt.Errorf("end offset of %s[%d]: %w", topic, p.Partition, e)
			}
			out[p.Partition] = p.Offset
		}
	}
	if len(out) != len(partitions) {
		return nil, fmt.Errorf("end offsets of %s: %d of %d partitions answered", topic, len(out), len(partitions))
	}
	return out, nil
}

// slogLogger hands franz-go's log lines (warnings and errors) to a slog.Logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (s slogLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	s.l.Log(context.Background(), lv, "kafka: "+msg, keyvals...)
}

func loggerOr(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

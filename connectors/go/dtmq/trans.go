// trans.go — Trans, a transaction as it goes to dtm.submit
// (schemas/kafka/submit.schema.json: DTM's TransGlobal plus op and
// reply_to), and the builders of the common shapes.

package dtmq

import (
	"encoding/json"
	"fmt"
)

// Trans is DTM's TransGlobal, the body of prepare, submit and abort. Only
// Gid is always required; prepare and submit need TransType. See
// docs/protocol.md for what each field means to dtmq.
type Trans struct {
	Gid            string              `json:"gid"`
	TransType      string              `json:"trans_type,omitempty"` // saga, tcc, xa, msg, workflow
	Steps          []map[string]string `json:"steps,omitempty"`      // saga/msg: {"action": URL, "compensate": URL}
	Payloads       []string            `json:"payloads,omitempty"`   // one body per step
	QueryPrepared  string              `json:"query_prepared,omitempty"`
	CustomData     string              `json:"custom_data,omitempty"`
	RollbackReason string              `json:"rollback_reason,omitempty"`
	WaitResult     bool                `json:"wait_result,omitempty"` // answer once the first pass ended ("finished")
	Concurrent     bool                `json:"concurrent,omitempty"`
	TimeoutToFail  int64               `json:"timeout_to_fail,omitempty"` // seconds
	RequestTimeout int64               `json:"request_timeout,omitempty"` // seconds a branch call (or Kafka reply) may take
	RetryInterval  int64               `json:"retry_interval,omitempty"`  // seconds
	RetryLimit     int64               `json:"retry_limit,omitempty"`     // 0: no limit
	BranchHeaders  map[string]string   `json:"branch_headers,omitempty"`  // extra headers of every branch call or message

	err error // the first payload that could not be encoded (Add, AddMsg)
}

// NewSaga starts a saga; add its steps with Add.
func NewSaga(gid string) *Trans { return &Trans{Gid: gid, TransType: "saga"} }

// NewMsg starts a 2-phase message whose query-back URL is queryPrepared
// (dtmq asks it whether the local transaction committed when the msg was
// prepared but not submitted in time); add its steps with AddMsg.
func NewMsg(gid, queryPrepared string) *Trans {
	return &Trans{Gid: gid, TransType: "msg", QueryPrepared: queryPrepared}
}

// Add appends a saga step: action and compensate are URLs (http://...,
// kafka://TOPIC, or "" for a no-op), payload the body of both: a string or
// []byte as it is, anything else as JSON (as DTM's SDK does).
func (t *Trans) Add(action, compensate string, payload any) *Trans {
	return t.addStep(map[string]string{"action": action, "compensate": compensate}, payload)
}

// AddMsg appends a msg step: action is a URL (kafka://TOPIC, http://...,
// topic://NAME), payload its body as in Add.
func (t *Trans) AddMsg(action string, payload any) *Trans {
	return t.addStep(map[string]string{"action": action}, payload)
}

func (t *Trans) addStep(step map[string]string, payload any) *Trans {
	body, err := payloadText(payload)
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("step %d: payload: %w", len(t.Steps)+1, err)
	}
	t.Steps = append(t.Steps, step)
	t.Payloads = append(t.Payloads, body)
	return t
}

func payloadText(p any) (string, error) {
	switch v := p.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	default:
		b, err := json.Marshal(v)
		return string(b), err
	}
}

// submitValue is the value of a dtm.submit message: the TransGlobal with op
// and reply_to (a field of the same name in Trans would be shadowed).
type submitValue struct {
	Op      string `json:"op"`
	ReplyTo string `json:"reply_to,omitempty"`
	*Trans
}

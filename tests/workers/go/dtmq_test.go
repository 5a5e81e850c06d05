// dtmq_test.go — the real dtmq for the end-to-end tests: the binary of
// DTMQ_TEST_BIN (build/asan/dtmq from make check) on a fresh SQLite store,
// on the test Kafka with a topic prefix and consumer group of its own, its
// HTTP API on a port of 19600-19699 (this suite's range). Stopped with
// SIGTERM at the end of the test: it must exit 0 and leave no sanitizer
// report in its log.

package workers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const firstPort, lastPort = 19600, 19699

type dtmqProc struct {
	api    string // http://127.0.0.1:PORT/api/dtmsvr
	prefix string // its topics: PREFIXsubmit, PREFIXreply
	cmd    *exec.Cmd
	log    string
	exited chan error
}

func (d *dtmqProc) submitTopic() string { return d.prefix + "submit" }
func (d *dtmqProc) replyTopic() string  { return d.prefix + "reply" }

func dtmqBin(t testing.TB) string {
	bin := need(t, "DTMQ_TEST_BIN", "the dtmq binary, e.g. build/asan/dtmq")
	if !filepath.IsAbs(bin) { // relative to the repository's root, as run_lib.sh sets it
		bin = filepath.Join("..", "..", "..", bin)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("dtmq binary: %v (make check builds it)", err)
	}
	return bin
}

// freePort is a port of this suite's range that nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 200; i++ {
		p := firstPort + int(time.Now().UnixNano()/1000+int64(i)*7)%(lastPort-firstPort+1)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatalf("no free port in %d-%d", firstPort, lastPort)
	return 0
}

// startDtmq starts dtmq with short intervals plus args, and waits for its
// /api/ping.
func startDtmq(t testing.TB, args ...string) *dtmqProc {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	d := &dtmqProc{api: fmt.Sprintf("http://127.0.0.1:%d/api/dtmsvr", port), prefix: fresh("go.dtmq") + ".",
		log: filepath.Join(dir, "dtmq.log"), exited: make(chan error, 1)}
	all := append([]string{"--http-host", "127.0.0.1", "--http-port", fmt.Sprint(port),
		"--kafka-topic-prefix", d.prefix, "--kafka-group", fresh("go-dtmq-"),
		"--retry-interval", "1", "--retry-interval-max", "2", "--trans-cron-interval", "1"}, args...)
	d.cmd = exec.Command(dtmqBin(t), all...)
	d.cmd.Env = append(os.Environ(), "DTMQ_STORE=sqlite:"+filepath.Join(dir, "dtmq.db"),
		"DTMQ_KAFKA="+strings.Join(kafkaBrokers(t), ","))
	logf, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting dtmq: %v", err)
	}
	go func() { d.exited <- d.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/ping", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			t.Fatalf("dtmq exited at start (%v): %s", err, d.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dtmq did not answer on port %d within 60 s: %s", port, d.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *dtmqProc) tail() string {
	b, _ := os.ReadFile(d.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

func (d *dtmqProc) stop(t testing.TB) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-d.exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		err = <-d.exited
		t.Errorf("dtmq did not stop within 30 s of SIGTERM")
	}
	d.cmd = nil
	if err != nil {
		t.Errorf("dtmq exited with %v: %s", err, d.tail())
	}
	if b, _ := os.ReadFile(d.log); bytes.Contains(b, []byte("Sanitizer")) || bytes.Contains(b, []byte("runtime error:")) {
		t.Errorf("sanitizer report in dtmq's log: %s", d.tail())
	}
	if t.Failed() {
		t.Logf("dtmq's log (last part):\n%s", d.tail())
	}
}

// post sends body to API/route and returns the status and the answer.
func (d *dtmqProc) post(t testing.TB, route, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(d.api+"/"+route, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", route, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type queried struct {
	Transaction struct {
		Status         string `json:"status"`
		RollbackReason string `json:"rollback_reason"`
	} `json:"transaction"`
	Branches []struct {
		BranchID string `json:"branch_id"`
		Op       string `json:"op"`
		Status   string `json:"status"`
	} `json:"branches"`
}

func (d *dtmqProc) query(t testing.TB, gid string) queried {
	t.Helper()
	var q queried
	resp, err := http.Get(d.api + "/query?gid=" + gid)
	if err != nil {
		t.Fatalf("query %s: %v", gid, err)
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&q)
	return q
}

// waitStatus waits until gid's status is want; returns the last one seen.
func (d *dtmqProc) waitStatus(t testing.TB, gid, want string, bound time.Duration) queried {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		q := d.query(t, gid)
		if q.Transaction.Status == want || time.Now().After(deadline) {
			return q
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// info returns the kafka_ingress counters of /api/info.
func (d *dtmqProc) ingress(t testing.TB) (replies, unknown int64) {
	t.Helper()
	resp, err := http.Get(strings.TrimSuffix(d.api, "/dtmsvr") + "/info")
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	defer resp.Body.Close()
	var info struct {
		Ingress struct {
			Replies        int64 `json:"replies"`
			RepliesUnknown int64 `json:"replies_unknown"`
		} `json:"kafka_ingress"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	return info.Ingress.Replies, info.Ingress.RepliesUnknown
}

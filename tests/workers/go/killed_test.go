// killed_test.go — a worker killed (SIGKILL) after its step committed and
// before its reply: dtmq publishes the branch again after request_timeout,
// a second worker of the same group gets the partition once the dead
// member's session timed out, handles the uncommitted message and the
// republished one, and the barrier applies the step once.
//
// The killed worker is a second process: this test binary run again with
// GO_WORKER_HELPER=killed (TestMain), which handles one branch in the
// barrier and then kills itself before the worker can reply.

package workers

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"dtmq.dev/connectors/go/dtmq"
)

func TestMain(m *testing.M) {
	if os.Getenv("GO_WORKER_HELPER") == "killed" {
		os.Exit(killedWorker())
	}
	os.Exit(m.Run())
}

// killedWorker runs in the helper process: a worker on $GO_HELPER_TOPIC in
// $GO_HELPER_GROUP whose handler answers warm-ups, and for a real branch
// runs the bank step, prints "handled", and dies (SIGKILL) before the
// reply. Prints "warm" after a warm-up.
func killedWorker() int {
	db, err := sql.Open("pgx", os.Getenv("DTMQ_TEST_POSTGRES"))
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	bk := &bank{db: db, schema: os.Getenv("GO_HELPER_SCHEMA")}
	w, err := dtmq.NewWorker(dtmq.WorkerConfig{
		Brokers: strings.Split(os.Getenv("DTMQ_TEST_KAFKA"), ","), Group: os.Getenv("GO_HELPER_GROUP"),
		Topics: []string{os.Getenv("GO_HELPER_TOPIC")}, SessionTimeout: 6 * time.Second,
		Handler: func(ctx context.Context, b *dtmq.Branch) (dtmq.Result, error) {
			if b.Gid == warmupGid {
				fmt.Println("warm")
				return dtmq.Success(), nil
			}
			res, err := bk.handle(ctx, b)
			// a while later (a commit of an offset marked too early would be
			// flushed by now: autocommit runs every 500 ms), still before the reply
			time.Sleep(1500 * time.Millisecond)
			fmt.Println("handled", b.Gid, b.BranchID, b.Op, b.Offset, res.Word(), err)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = w.Run(ctx)
	return 2 // not reached when the branch came
}

func TestE2EWorkerKilledBeforeReplyingIsReplacedAndTheStepAppliedOnce(t *testing.T) {
	bk := newBank(t)
	d := startDtmq(t)
	topic, group, gid := fresh("go.e2e-killed-"), fresh("go-e2e-killed-"), fresh("go-e2e-killed-")

	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "GO_WORKER_HELPER=killed", "GO_HELPER_TOPIC="+topic,
		"GO_HELPER_GROUP="+group, "GO_HELPER_SCHEMA="+bk.schema)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = testWriter{t}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	expectLine := func(prefix string, bound time.Duration) string {
		t.Helper()
		timeout := time.After(bound)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the helper ended before printing %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
				t.Logf("helper: %s", l)
			case <-timeout:
				t.Fatalf("the helper did not print %q within %s", prefix, bound)
			}
		}
	}
	p := newProducer(t)
	// the warm-up: the helper's worker has the topic's partitions when it is handled
	produceBranch(t, p, branchMsg{topic: topic, gid: warmupGid, transType: "msg", branchID: "00", op: "warmup"})
	expectLine("warm", 2*waitBound)

	c := newClient(t, d)
	saga := dtmq.NewSaga(gid).Add("kafka://"+topic, "kafka://"+topic, payload("A", -30))
	saga.RequestTimeout = 3
	if _, err := c.Submit(ctxFor(t, waitBound), saga); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	handled := expectLine("handled", waitBound)
	if !strings.Contains(handled, "handled "+gid+" 01 action") || !strings.Contains(handled, "SUCCESS") {
		t.Fatalf("helper: %s", handled)
	}
	var firstOffset int64
	fmt.Sscanf(strings.Fields(handled)[4], "%d", &firstOffset)
	err = helper.Wait()
	if ws, ok := helper.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the helper ended with %v, want SIGKILL", err)
	}
	if a := bk.balance(t, "A"); a != 70 {
		t.Fatalf("balance A %d after the killed worker's step, want 70 (committed)", a)
	}
	if st := d.query(t, gid).Transaction.Status; st != "submitted" {
		t.Fatalf("status %s before a second worker came, want submitted (no reply yet)", st)
	}

	rec := newRecorder()
	rec.next = bk.handle
	start(t, newWorker(t, group, []string{topic}, rec.handle, nil))
	q := d.waitStatus(t, gid, "succeed", 60*time.Second)
	if q.Transaction.Status != "succeed" {
		t.Fatalf("status %s, want succeed", q.Transaction.Status)
	}
	cs := rec.snapshot()
	var mine []call
	for _, c := range cs {
		if c.Gid == gid {
			mine = append(mine, c)
		}
	}
	if len(mine) == 0 || mine[0].Offset != firstOffset {
		t.Fatalf("second worker's calls %+v: want the killed worker's message (offset %d) first: its offset was not committed", mine, firstOffset)
	}
	published := 0
	for _, r := range readTopic(t, topic, 10, 3*time.Second, nil) {
		if string(r.Key) == gid {
			published++
		}
	}
	if published < 2 {
		t.Fatalf("dtmq published the branch %d times, want at least 2 (again after the missing reply)", published)
	}
	t.Logf("dtmq published the branch %d times; the second worker handled it %d times", published, len(mine))
	if a := bk.balance(t, "A"); a != 70 {
		t.Fatalf("balance A %d, want 70 (applied once)", a)
	}
	if n := bk.busi.Load(); n != 0 {
		t.Fatalf("the second worker ran the step %d times, want 0 (the barrier knew it)", n)
	}
	if n := bk.barrierRows(t, gid); n != 1 {
		t.Fatalf("barrier rows %d, want 1", n)
	}
}

// bank_test.go — a small bank on the test PostgreSQL (DTMQ_TEST_POSTGRES)
// whose handler runs in DTM's barrier (dtmcli, through dtmqbarrier): a
// branch's payload is {"account":..,"amount":..}; its action adds the
// amount, its compensation takes it back, each in one local transaction with
// the barrier row. Every test gets a schema of its own (the barrier table
// dtm_barrier.barrier is shared: rows are keyed by the test's fresh gids).

package workers

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"dtmq.dev/connectors/go/dtmq"
	"dtmq.dev/connectors/go/dtmqbarrier"
	"github.com/dtm-labs/client/dtmcli"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

func init() {
	dtmcli.SetCurrentDBType(dtmcli.DBTypePostgres) // dtmcli's default is MySQL
}

type bank struct {
	db     *sql.DB
	schema string
	busi   atomic.Int64 // business steps that really ran (not skipped by the barrier)
}

// newBank opens the database, applies schemas/barrier/postgres.sql and
// creates a fresh schema with accounts A and B (100 each).
func newBank(t testing.TB) *bank {
	t.Helper()
	db, err := sql.Open("pgx", need(t, "DTMQ_TEST_POSTGRES", "a libpq connection string of the test database"))
	if err != nil {
		t.Fatalf("open PostgreSQL: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ddl, err := os.ReadFile(filepath.Join("..", "..", "..", "schemas", "barrier", "postgres.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(ddl)); err != nil {
		t.Fatalf("schemas/barrier/postgres.sql: %v", err)
	}
	b := &bank{db: db, schema: fresh("go_bank_")}
	if _, err := db.Exec(fmt.Sprintf(`CREATE SCHEMA %[1]s;
		CREATE TABLE %[1]s.accounts (id text PRIMARY KEY, balance bigint NOT NULL);
		INSERT INTO %[1]s.accounts VALUES ('A', 100), ('B', 100)`, b.schema)); err != nil {
		t.Fatalf("bank schema: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() { // after a failure the rows are evidence
			_, _ = db.Exec("DROP SCHEMA " + b.schema + " CASCADE")
		}
	})
	return b
}

func (b *bank) balance(t testing.TB, account string) int64 {
	t.Helper()
	var v int64
	if err := b.db.QueryRow("SELECT balance FROM "+b.schema+".accounts WHERE id = $1", account).Scan(&v); err != nil {
		t.Fatalf("balance %s: %v", account, err)
	}
	return v
}

// waitBalance waits (up to 10 s) for account to hold want: a handler call
// is recorded before its step commits. Returns the last balance seen.
func (b *bank) waitBalance(t testing.TB, account string, want int64) int64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := b.balance(t, account)
		if v == want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// barrierRows counts gid's rows in the barrier table.
func (b *bank) barrierRows(t testing.TB, gid string) int {
	t.Helper()
	var n int
	if err := b.db.QueryRow("SELECT count(*) FROM dtm_barrier.barrier WHERE gid = $1", gid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type transfer struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// handle is the worker's handler: the step in the barrier. A balance that
// would go below 0 is a business refusal (FAILURE).
func (b *bank) handle(_ context.Context, br *dtmq.Branch) (dtmq.Result, error) {
	var tr transfer
	if err := json.Unmarshal(br.Payload, &tr); err != nil {
		return dtmq.Failure("bad payload: " + err.Error()), nil
	}
	bb, err := dtmqbarrier.From(br)
	if err != nil {
		return dtmq.Result{}, err
	}
	amount := tr.Amount
	if br.Op == "compensate" {
		amount = -amount
	}
	return dtmqbarrier.Result(bb.CallWithDB(b.db, func(tx *sql.Tx) error {
		b.busi.Add(1)
		var v int64
		err := tx.QueryRow("UPDATE "+b.schema+".accounts SET balance = balance + $1 WHERE id = $2 RETURNING balance",
			amount, tr.Account).Scan(&v)
		if err != nil {
			return err
		}
		if v < 0 {
			return fmt.Errorf("account %s: insufficient balance %w", tr.Account, dtmcli.ErrFailure)
		}
		return nil
	}))
}

func payload(account string, amount int64) string {
	b, _ := json.Marshal(transfer{account, amount})
	return string(b)
}

// Package dtmqbarrier wires DTM's subtransaction barrier (the real SDK,
// github.com/dtm-labs/client/dtmcli) to dtmq's Kafka branches and submit
// client:
//
//   - From builds a *dtmcli.BranchBarrier from a branch message's dtm-*
//     headers, so a worker keeps writing bb.CallWithDB(db, busi) on its
//     database, unchanged from an HTTP branch;
//   - Result maps what the barrier call returned to a dtmq.Result, as
//     dtmcli.Result2HttpJSON maps it to an HTTP status;
//   - MsgDoAndSubmitDB is dtmcli.Msg.DoAndSubmitDB over Kafka: prepare, the
//     local transaction with the msg's barrier row, submit (or abort).
//
// dtmcli keeps its database dialect and barrier table in globals: call
// dtmcli.SetCurrentDBType(dtmcli.DBTypePostgres) once for PostgreSQL (its
// default is MySQL), and dtmcli.SetBarrierTableName when the table is not
// dtm_barrier.barrier (schemas/barrier/postgres.sql creates that one), or
// set DBType / BarrierTableName on the returned barrier.
package dtmqbarrier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"

	"dtmq.dev/connectors/go/dtmq"
	"github.com/dtm-labs/client/dtmcli"
)

// From returns DTM's barrier for branch b. The headers map to DTM's branch
// query parameters, and go through dtmcli.BarrierFromQuery, so the values
// are cleaned exactly as for an HTTP branch:
//
//	dtm-trans-type -> trans_type   (TransType)
//	dtm-gid        -> gid          (Gid)
//	dtm-branch-id  -> branch_id    (BranchID)
//	dtm-op         -> op           (Op)
//
// It fails, naming the header, when one of them is missing or empty (the
// barrier rows are keyed by all four).
func From(b *dtmq.Branch) (*dtmcli.BranchBarrier, error) {
	if b == nil {
		return nil, errors.New("dtmqbarrier: no branch")
	}
	q := url.Values{}
	for _, f := range []struct{ header, param string }{
		{dtmq.HeaderTransType, "trans_type"},
		{dtmq.HeaderGid, "gid"},
		{dtmq.HeaderBranchID, "branch_id"},
		{dtmq.HeaderOp, "op"},
	} {
		v, ok := b.Header(f.header)
		if !ok || v == "" {
			return nil, fmt.Errorf("dtmqbarrier: the message has no %s header (the barrier needs %s)", f.header, f.param)
		}
		q.Set(f.param, v)
	}
	bb, err := dtmcli.BarrierFromQuery(q)
	if err != nil {
		return nil, fmt.Errorf("dtmqbarrier: %w", err)
	}
	return bb, nil
}

// Result turns the error of a barrier call (bb.CallWithDB, bb.Call) into a
// handler's answer, as DTM turns it into an HTTP status:
//
//	nil                      -> dtmq.Success()      (200; also a duplicate, a
//	                                                 null compensation or a
//	                                                 hanging request the barrier skipped)
//	wraps dtmcli.ErrFailure  -> dtmq.Failure(err)   (409)
//	wraps dtmcli.ErrOngoing  -> dtmq.Ongoing()      (425)
//	anything else            -> the error itself    (500: no reply, dtmq calls again)
func Result(err error) (dtmq.Result, error) {
	switch {
	case err == nil:
		return dtmq.Success(), nil
	case errors.Is(err, dtmcli.ErrFailure):
		return dtmq.Failure(err.Error()), nil
	case errors.Is(err, dtmcli.ErrOngoing):
		return dtmq.Ongoing(), nil
	default:
		return dtmq.Result{}, err
	}
}

// MsgClient is what MsgDoAndSubmitDB needs of a client: *dtmq.Client has it.
type MsgClient interface {
	Prepare(ctx context.Context, t *dtmq.Trans) (*dtmq.Reply, error)
	Submit(ctx context.Context, t *dtmq.Trans) (*dtmq.Reply, error)
	Abort(ctx context.Context, t *dtmq.Trans) (*dtmq.Reply, error)
}

// MsgDoAndSubmitDB prepares msg t with c, runs busi in one local
// transaction on db together with the msg's barrier row (DTM's special
// branch gid/00/msg), and submits t; dtmcli.Msg.DoAndSubmitDB's rules:
//
//   - busi returns an error wrapping dtmcli.ErrFailure: the transaction is
//     rolled back and t aborted;
//   - busi (or the commit) returns another error: the barrier row says
//     whether the local transaction committed (bb.QueryPrepared): if not
//     (ErrFailure), t is aborted; if it did, t is submitted; if that cannot
//     be read either, t stays prepared and dtmq asks t.QueryPrepared later.
//
// busi's error is returned first, else the error of the submit; the reply
// is the submit's (nil when none was made). t.TransType must be "msg".
func MsgDoAndSubmitDB(ctx context.Context, c MsgClient, t *dtmq.Trans, db *sql.DB,
	busi dtmcli.BarrierBusiFunc) (*dtmq.Reply, error) {
	if t == nil || t.TransType != "msg" {
		return nil, errors.New("dtmqbarrier: MsgDoAndSubmitDB: the transaction must be a msg (dtmq.NewMsg)")
	}
	bb, err := dtmcli.BarrierFrom(t.TransType, t.Gid, "00", "msg")
	if err != nil {
		return nil, fmt.Errorf("dtmqbarrier: %w", err)
	}
	if _, err := c.Prepare(ctx, t); err != nil {
		return nil, err
	}
	errb := bb.CallWithDB(db, busi)
	if errb != nil && !errors.Is(errb, dtmcli.ErrFailure) {
		err = bb.QueryPrepared(db)
	}
	var reply *dtmq.Reply
	switch {
	case errors.Is(errb, dtmcli.ErrFailure) || errors.Is(err, dtmcli.ErrFailure):
		_, _ = c.Abort(ctx, t) // if lost, dtmq's query-back finds the rollback row
	case err == nil:
		reply, err = c.Submit(ctx, t)
	}
	if errb != nil {
		return reply, errb
	}
	return reply, err
}

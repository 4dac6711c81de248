package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// ErrBusy: another process kept the node in a round for longer than
// RoundLockWait; nothing was written.
var ErrBusy = errors.New("store: the node is in a round elsewhere")

// RoundLockWait bounds waiting for a node another round holds.
const RoundLockWait = 5 * time.Second

// RoundFunc judges a round on the node as it is while the node is held.
// It returns the write to commit, or an error to write nothing.
type RoundFunc func(n *Node) (*RoundWrite, error)

// Round runs f on the node, held against every other round of it, in this
// process and (on PostgreSQL) in every process on the store, and commits
// what f returns before letting go of the node:
//
//   - PostgreSQL: the node's row is locked (SELECT ... FOR UPDATE) in the
//     transaction that writes the round, so rounds of one node judged by
//     different replicas happen one after the other. A replica that dies
//     mid-round loses its session and with it the lock; one that stalls
//     mid-round is cut off by idle_in_transaction_session_timeout.
//   - SQLite (one process per file): a lock per node in this process, then
//     the group commit.
//
// The write stays conditional on the node's round (ErrConflict), so even a
// write that raced past the lock could not apply twice. Round sets the
// write's Started to when the node was taken.
func (s *Store) Round(ctx context.Context, name string, f RoundFunc) error {
	if s.d.name == "postgres" {
		return s.roundLocked(ctx, name, f)
	}
	mu := s.locks.of(name)
	mu.Lock()
	defer mu.Unlock()
	started := time.Now()
	n, err := s.GetNode(ctx, name)
	if err != nil {
		return err
	}
	w, err := f(n)
	if err != nil {
		return err
	}
	w.Started = started
	return s.CommitRound(ctx, w)
}

func (s *Store) roundLocked(ctx context.Context, name string, f RoundFunc) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: round of %s: %w", name, err)
	}
	defer conn.Close()
	var (
		w    *RoundWrite
		rerr error
	)
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		var clean bool
		w, clean, rerr = s.roundOn(ctx, pc, name, f)
		if !clean {
			return driver.ErrBadConn // the session's state is unknown: drop it
		}
		return nil
	})
	if rerr == nil && err != nil && !errors.Is(err, driver.ErrBadConn) {
		rerr = fmt.Errorf("store: round of %s: %w", name, err)
	}
	var lost *commitLost
	if errors.As(rerr, &lost) {
		// The connection may have died after the server committed (a
		// PostgreSQL restart): look before saying nothing was written.
		if s.committed(ctx, w) {
			return nil
		}
	}
	return rerr
}

// commitLost: the answer to COMMIT did not come.
type commitLost struct{ err error }

func (e *commitLost) Error() string { return e.err.Error() }
func (e *commitLost) Unwrap() error { return e.err }

// roundOn runs a round on one session in two round trips: BEGIN and the
// node's row lock pipelined, then (after f) the write and COMMIT
// pipelined. It reports whether the session was left idle, outside a
// transaction.
func (s *Store) roundOn(ctx context.Context, c *pgx.Conn, name string, f RoundFunc) (*RoundWrite, bool, error) {
	n, err := lockNode(ctx, c, name)
	if err != nil {
		return nil, c.PgConn().TxStatus() == 'I', err
	}
	rollback := func() bool {
		_, err := c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		return err == nil
	}
	started := time.Now()
	w, err := f(n)
	if err != nil {
		return nil, rollback(), err
	}
	w.Started = started
	// Once judged, the round is written even if the caller goes away
	// meanwhile (an attester that gave up): cancelling mid-COMMIT would
	// only leave its outcome unknown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(roundWriteSQL, w.Node, int64(w.Round), w.State, b2i(w.Sticky), marshalFailures(w.Failures),
		string(w.Appraisal), ms(w.Time), w.Verdict, int64(w.Entries), marshalFailures(w.VerdictFailures), w.Replica, ms(w.Started))
	b.Queue("COMMIT")
	br := c.SendBatch(ctx, b)
	tag, werr := br.Exec()
	_, cerr := br.Exec()
	closeErr := br.Close()
	var pe *pgconn.PgError
	switch {
	case werr != nil && errors.As(werr, &pe):
		// The server refused the write: the transaction is aborted, and
		// COMMIT ended it (as a rollback).
		return w, c.PgConn().TxStatus() == 'I', fmt.Errorf("store: commit round %d of %s: %w", w.Round, name, werr)
	case werr != nil || cerr != nil || closeErr != nil:
		// No answer (the connection broke): the server may have run both.
		return w, false, &commitLost{fmt.Errorf("store: commit round %d of %s: %w", w.Round, name, errors.Join(werr, cerr, closeErr))}
	case tag.RowsAffected() == 0:
		return w, true, fmt.Errorf("store: commit round %d of %s: %w", w.Round, name, ErrConflict)
	}
	return w, true, nil
}

// commitTimeout bounds a round's write and COMMIT.
const commitTimeout = 10 * time.Second

// commitCheckWait bounds finding out whether a commit whose answer was
// lost went through (PostgreSQL may be restarting).
const commitCheckWait = 20 * time.Second

// committed reports whether w is stored, as written by this attempt (its
// replica and start time): the outcome of a commit whose answer was lost.
// It reports false when it cannot tell within commitCheckWait.
func (s *Store) committed(ctx context.Context, w *RoundWrite) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitCheckWait)
	defer cancel()
	deadline := time.Now().Add(commitCheckWait)
	for {
		var (
			replica string
			started int64
		)
		err := s.w.QueryRowContext(ctx, `SELECT replica, started FROM verdicts WHERE node = $1 AND round = $2`, w.Node, int64(w.Round+1)).Scan(&replica, &started)
		switch {
		case err == nil:
			return replica == w.Replica && started == ms(w.Started)
		case errors.Is(err, sql.ErrNoRows):
			return false
		case time.Now().After(deadline) || ctx.Err() != nil:
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// roundWriteSQL is a round's write on PostgreSQL in one statement: the
// node's row (conditional on its round) and, if it was written, the
// verdict.
const roundWriteSQL = `WITH u AS (
	UPDATE nodes SET state = $3, sticky = $4, failures = $5, appraisal = $6, round = round + 1, last_seen = $7, updated = $7, verdict = $8
	WHERE name = $1 AND round = $2 RETURNING name)
INSERT INTO verdicts (node, round, time, verdict, entries, failures, replica, started)
	SELECT name, $2::bigint + 1, $7, $8, $9, $10, $11, $12 FROM u`

// lockNode begins a transaction holding the node's row: BEGIN and SELECT
// ... FOR UPDATE NOWAIT in one round trip. NOWAIT with retries in Go,
// rather than a lock wait in the server, keeps the wait bounded and
// cancellable.
func lockNode(ctx context.Context, c *pgx.Conn, name string) (*Node, error) {
	deadline := time.Now().Add(RoundLockWait)
	pause := 2 * time.Millisecond
	for {
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(`SELECT `+nodeColumns+` FROM nodes WHERE name = $1 FOR UPDATE NOWAIT`, name)
		br := c.SendBatch(ctx, b)
		_, err := br.Exec()
		var n *Node
		if err == nil {
			n, err = scanNode(br.QueryRow())
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return n, nil
		}
		if c.PgConn().TxStatus() != 'I' {
			if _, rerr := c.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				return nil, fmt.Errorf("store: round of %s: %w", name, errors.Join(err, rerr))
			}
		}
		var pe *pgconn.PgError
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return nil, fmt.Errorf("store: node %s: %w", name, ErrNotFound)
		case errors.As(err, &pe) && pe.Code == "55P03": // lock_not_available
		default:
			return nil, fmt.Errorf("store: round of %s: %w", name, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("store: round of %s: %w", name, ErrBusy)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// nodeLocks are the per-node locks of a SQLite store's rounds, striped.
type nodeLocks struct {
	seed  maphash.Seed
	once  sync.Once
	locks [256]sync.Mutex
}

func (l *nodeLocks) of(name string) *sync.Mutex {
	l.once.Do(func() { l.seed = maphash.MakeSeed() })
	return &l.locks[maphash.String(l.seed, name)%uint64(len(l.locks))]
}

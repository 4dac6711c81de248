package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/imago-ima/imago/attest"
)

const (
	roundUpdateSQL = `UPDATE nodes SET state = $3, sticky = $4, failures = $5, appraisal = $6, round = round + 1, last_seen = $7, updated = $7, verdict = $8
		WHERE name = $1 AND round = $2`
	verdictInsertSQL = `INSERT INTO verdicts (node, round, time, verdict, entries, failures, replica, started) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
)

// RoundWrite is one round's outcome for a node, committed as one
// transaction: the node's new state and appraisal state, and the verdict
// for the history.
type RoundWrite struct {
	Node string
	// Round is the round the challenge was issued in; the write applies
	// only if the node is still in it, and moves it to Round+1.
	Round     uint64
	State     string
	Sticky    bool
	Failures  []attest.Failure
	Appraisal []byte
	Time      time.Time
	// Verdict and Entries go to the history.
	Verdict string
	Entries uint64
	// VerdictFailures are this round's failures (Failures may carry older,
	// sticky ones).
	VerdictFailures []attest.Failure
	// Replica names the verifier process that judged the round, and
	// Started is when it took the node (Round sets it): the history shows
	// that no two replicas judged a node at once.
	Replica string
	Started time.Time
}

// CommitRound writes a round durably (group commit). It returns
// ErrConflict, writing nothing, if the node is no longer in w.Round or is
// gone.
func (s *Store) CommitRound(ctx context.Context, w *RoundWrite) error {
	err := s.gc.do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		return s.writeRound(ctx, tx, w)
	})
	if err != nil {
		return fmt.Errorf("store: commit round %d of %s: %w", w.Round, w.Node, err)
	}
	return nil
}

// writeRound writes a round in tx: the node's row, conditional on its
// round, and the verdict.
func (s *Store) writeRound(ctx context.Context, tx *sql.Tx, w *RoundWrite) error {
	t := ms(w.Time)
	res, err := tx.StmtContext(ctx, s.roundUpdate).ExecContext(ctx, w.Node, int64(w.Round), w.State, b2i(w.Sticky), marshalFailures(w.Failures), string(w.Appraisal), t, w.Verdict)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return &itemError{ErrConflict}
	}
	_, err = tx.StmtContext(ctx, s.verdictInsert).ExecContext(ctx, w.Node, int64(w.Round+1), t, w.Verdict, int64(w.Entries),
		marshalFailures(w.VerdictFailures), w.Replica, ms(w.Started))
	return err
}

// Verdict is one history record.
type Verdict struct {
	Round    uint64
	Time     time.Time
	Verdict  string
	Entries  uint64
	Failures []attest.Failure
}

// History returns a node's newest verdicts, newest first, at most limit.
func (s *Store) History(ctx context.Context, name string, limit int) ([]Verdict, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT round, time, verdict, entries, failures FROM verdicts WHERE node = $1 ORDER BY round DESC LIMIT $2`, name, limit)
	if err != nil {
		return nil, fmt.Errorf("store: history of %s: %w", name, err)
	}
	defer rows.Close()
	var out []Verdict
	for rows.Next() {
		var (
			v                 Verdict
			round, t, entries int64
			failures          string
		)
		if err := rows.Scan(&round, &t, &v.Verdict, &entries, &failures); err != nil {
			return nil, fmt.Errorf("store: history of %s: %w", name, err)
		}
		v.Round, v.Time, v.Entries, v.Failures = uint64(round), fromMS(t), uint64(entries), unmarshalFailures(failures)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: history of %s: %w", name, err)
	}
	return out, nil
}

// MarkStale turns passing nodes whose last evidence is older than cutoff
// (or that never sent any and were enrolled before it) stale. It returns
// the nodes marked.
func (s *Store) MarkStale(ctx context.Context, cutoff time.Time) ([]string, error) {
	return s.MarkStaleFenced(ctx, nil, cutoff)
}

// PruneHistory keeps each node's newest keep verdicts and drops verdicts
// older than before (if not zero). It returns how many it dropped.
func (s *Store) PruneHistory(ctx context.Context, keep int, before time.Time) (int64, error) {
	return s.PruneHistoryFenced(ctx, nil, keep, before)
}

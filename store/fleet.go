package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/imago-ima/imago/attest"
)

// Fence proves, inside a write's transaction, that the writer still has
// the right to make it: package lease's leases check their owner and
// fencing token there, so a replica that lost its lease (paused, cut off)
// cannot write. A nil Fence always passes.
type Fence interface {
	Check(ctx context.Context, tx *sql.Tx) error
}

// DB is the store's writer pool, for packages that keep their own tables
// in the store's database (package lease, on PostgreSQL).
func (s *Store) DB() *sql.DB { return s.w }

// fenced runs do in one transaction after f's check.
func (s *Store) fenced(ctx context.Context, f Fence, op string, do func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	defer tx.Rollback()
	if f != nil {
		if err := f.Check(ctx, tx); err != nil {
			return fmt.Errorf("store: %s: %w", op, err)
		}
	}
	if err := do(tx); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return nil
}

// MarkStaleFenced is MarkStale under a fence.
func (s *Store) MarkStaleFenced(ctx context.Context, f Fence, cutoff time.Time) ([]string, error) {
	var out []string
	err := s.fenced(ctx, f, "mark stale", func(tx *sql.Tx) (err error) {
		out, err = names(tx.QueryContext(ctx, `UPDATE nodes SET state = $1, updated = $3
			WHERE state = $2 AND last_seen < $4 RETURNING name`, attest.StateStale, attest.StatePass, time.Now().UnixMilli(), ms(cutoff)))
		return err
	})
	return out, err
}

// names reads the rows of a statement returning node names.
func names(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// PruneHistoryFenced is PruneHistory under a fence.
func (s *Store) PruneHistoryFenced(ctx context.Context, f Fence, keep int, before time.Time) (int64, error) {
	var n int64
	err := s.fenced(ctx, f, "prune history", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM verdicts WHERE round <= (SELECT MAX(v.round) FROM verdicts v WHERE v.node = verdicts.node) - $1`, keep)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		if before.IsZero() {
			return nil
		}
		if res, err = tx.ExecContext(ctx, `DELETE FROM verdicts WHERE time < $1`, ms(before)); err != nil {
			return err
		}
		m, _ := res.RowsAffected()
		n += m
		return nil
	})
	return n, err
}

// ExpireEnrollments drops enrollment challenges (a node's pending
// enrollment) that expired before now, under a fence. It returns the
// nodes whose pending enrollment it dropped.
func (s *Store) ExpireEnrollments(ctx context.Context, f Fence, now time.Time) ([]string, error) {
	expires := `json_extract(pending, '$.expires')`
	if s.d.name == "postgres" {
		expires = `(pending::jsonb->>'expires')::bigint`
	}
	var out []string
	err := s.fenced(ctx, f, "expire enrollments", func(tx *sql.Tx) (err error) {
		out, err = names(tx.QueryContext(ctx, `UPDATE nodes SET pending = NULL, updated = $1
			WHERE pending IS NOT NULL AND pending <> '' AND `+expires+` < $1 RETURNING name`, ms(now)))
		return err
	})
	return out, err
}

// CountByState counts the nodes in each state.
func (s *Store) CountByState(ctx context.Context) (map[string]int, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT state, COUNT(*) FROM nodes GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("store: count nodes: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			st string
			n  int
		)
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("store: count nodes: %w", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: count nodes: %w", err)
	}
	return out, nil
}

// NodesChangedSince reads the nodes whose row changed at or after since
// (by the writers' clocks, in milliseconds), oldest change first, at most
// limit.
func (s *Store) NodesChangedSince(ctx context.Context, since time.Time, limit int) ([]*Node, error) {
	return s.queryNodes(ctx, "changed nodes", `SELECT `+nodeColumns+` FROM nodes WHERE updated >= $1 ORDER BY updated, name LIMIT $2`, ms(since), limit)
}

// RoundRecord is one stored round as the fleet's checks read it: which
// replica judged it, from when it took the node to the verdict.
type RoundRecord struct {
	Node    string
	Round   uint64
	Verdict string
	Entries uint64
	Replica string
	Started time.Time
	Time    time.Time
}

// Rounds reads every stored round, by node and round.
func (s *Store) Rounds(ctx context.Context) ([]RoundRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT node, round, verdict, entries, replica, started, time FROM verdicts ORDER BY node, round`)
	if err != nil {
		return nil, fmt.Errorf("store: rounds: %w", err)
	}
	defer rows.Close()
	var out []RoundRecord
	for rows.Next() {
		var (
			r                       RoundRecord
			round, entries, st, end int64
		)
		if err := rows.Scan(&r.Node, &round, &r.Verdict, &entries, &r.Replica, &st, &end); err != nil {
			return nil, fmt.Errorf("store: rounds: %w", err)
		}
		r.Round, r.Entries, r.Started, r.Time = uint64(round), uint64(entries), fromMS(st), fromMS(end)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: rounds: %w", err)
	}
	return out, nil
}

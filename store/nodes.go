package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/imago-ima/imago/attest"
)

// Node is one node's row.
type Node struct {
	Name        string
	PolicyID    string
	AllowNoCert bool
	// State is attest.StateEnrolling, StatePass, StateFail or StateStale.
	State string
	// Sticky marks a failure the node's own TPM vouched for: later passing
	// rounds do not clear it; a reboot or a policy change does.
	Sticky   bool
	Failures []attest.Failure
	// EKID is the sha256 (hex) of the enrolled EK's public area; empty
	// until enrollment completes.
	EKID     string
	EKPublic []byte
	EKCert   []byte
	AKPublic []byte
	// Pending is the enrollment in progress, if any.
	Pending *Pending
	// Round counts committed rounds and enrollments; a challenge names the
	// round it was issued in and is honoured only in that round.
	Round uint64
	// Appraisal is the appraisal state (JSON).
	Appraisal []byte
	// Verdict is the last round's verdict ("" before the first).
	Verdict  string
	LastSeen time.Time
	Created  time.Time
	Updated  time.Time
}

// Enrolled reports whether the node has an activated AK.
func (n *Node) Enrolled() bool { return n.EKID != "" }

// Pending is an enrollment waiting for the credential's secret.
type Pending struct {
	EKID     string `json:"ek_id"`
	EKPublic []byte `json:"ek_public"`
	EKCert   []byte `json:"ek_cert,omitempty"`
	AKPublic []byte `json:"ak_public"`
	// SecretHash is the sha256 of the credential's secret.
	SecretHash []byte `json:"secret_hash"`
	// Token names the attempt.
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
}

// Policy is a stored runtime policy.
type Policy struct {
	ID       string
	Body     []byte
	Keyrings [][]byte
	// Options is the rest of the policy (JSON, the verifier's).
	Options []byte
}

// PutPolicy stores a policy under its id (a no-op if it is there).
func (s *Store) PutPolicy(ctx context.Context, p Policy) error {
	kr, err := json.Marshal(p.Keyrings)
	if err != nil {
		return err
	}
	opts := p.Options
	if opts == nil {
		opts = []byte("{}")
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO policies (id, body, keyrings, options, created) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		p.ID, p.Body, kr, opts, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("store: put policy: %w", err)
	}
	return nil
}

// GetPolicy reads a policy.
func (s *Store) GetPolicy(ctx context.Context, id string) (*Policy, error) {
	var (
		p  = Policy{ID: id}
		kr []byte
	)
	err := s.r.QueryRowContext(ctx, `SELECT body, keyrings, options FROM policies WHERE id = $1`, id).Scan(&p.Body, &kr, &p.Options)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: policy %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: policy %s: %w", id, err)
	}
	if err := json.Unmarshal(kr, &p.Keyrings); err != nil {
		return nil, fmt.Errorf("store: policy %s: keyrings: %w", id, err)
	}
	return &p, nil
}

// AddNode adds a node, or changes an existing node's policy. A changed
// policy starts the node over (state enrolling, appraisal state and
// failures cleared, round advanced so outstanding challenges die); the
// enrollment stays. It reports whether the node was created, and whether
// anything changed.
func (s *Store) AddNode(ctx context.Context, name, policyID string, allowNoCert bool) (created, changed bool, err error) {
	now := time.Now().UnixMilli()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, false, fmt.Errorf("store: add node %s: %w", name, err)
	}
	defer tx.Rollback()
	var (
		oldPolicy string
		oldAllow  bool
	)
	err = tx.QueryRowContext(ctx, `SELECT policy_id, allow_no_cert FROM nodes WHERE name = $1`, name).Scan(&oldPolicy, &oldAllow)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, `INSERT INTO nodes (name, policy_id, allow_no_cert, state, created, updated) VALUES ($1, $2, $3, $4, $5, $5)`,
			name, policyID, b2i(allowNoCert), attest.StateEnrolling, now)
		created, changed = true, true
	case err != nil:
	case oldPolicy != policyID:
		_, err = tx.ExecContext(ctx, `UPDATE nodes SET policy_id = $2, allow_no_cert = $3, state = $4, sticky = 0, failures = '[]', appraisal = '{}', round = round + 1, updated = $5 WHERE name = $1`,
			name, policyID, b2i(allowNoCert), attest.StateEnrolling, now)
		changed = true
	case oldAllow != allowNoCert:
		_, err = tx.ExecContext(ctx, `UPDATE nodes SET allow_no_cert = $2, updated = $3 WHERE name = $1`, name, b2i(allowNoCert), now)
		changed = true
	}
	if err != nil {
		return false, false, fmt.Errorf("store: add node %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, false, fmt.Errorf("store: add node %s: %w", name, err)
	}
	return created, changed, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// RemoveNode deletes a node and its history.
func (s *Store) RemoveNode(ctx context.Context, name string) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: remove node %s: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("store: remove node %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: node %s: %w", name, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM verdicts WHERE node = $1`, name); err != nil {
		return fmt.Errorf("store: remove node %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: remove node %s: %w", name, err)
	}
	return nil
}

const nodeColumns = `name, policy_id, allow_no_cert, state, sticky, failures, ek_id, ek_public, ek_cert, ak_public, pending, round, appraisal, last_seen, created, updated, verdict`

type scanner interface{ Scan(...any) error }

func scanNode(sc scanner) (*Node, error) {
	var (
		n                               Node
		allow, sticky                   int
		failures, appraisal             string
		ekID, pending                   sql.NullString
		round, lastSeen, created, updat int64
	)
	if err := sc.Scan(&n.Name, &n.PolicyID, &allow, &n.State, &sticky, &failures, &ekID, &n.EKPublic, &n.EKCert, &n.AKPublic,
		&pending, &round, &appraisal, &lastSeen, &created, &updat, &n.Verdict); err != nil {
		return nil, err
	}
	n.AllowNoCert, n.Sticky = allow != 0, sticky != 0
	n.Failures = unmarshalFailures(failures)
	n.EKID = ekID.String
	if pending.Valid && pending.String != "" {
		n.Pending = new(Pending)
		if err := json.Unmarshal([]byte(pending.String), n.Pending); err != nil {
			return nil, fmt.Errorf("pending enrollment: %w", err)
		}
	}
	n.Round = uint64(round)
	n.Appraisal = []byte(appraisal)
	n.LastSeen, n.Created, n.Updated = fromMS(lastSeen), fromMS(created), fromMS(updat)
	return &n, nil
}

// GetNode reads a node.
func (s *Store) GetNode(ctx context.Context, name string) (*Node, error) {
	n, err := scanNode(s.getNode.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: node %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: node %s: %w", name, err)
	}
	return n, nil
}

// ListNodes reads every node, by name.
func (s *Store) ListNodes(ctx context.Context) ([]*Node, error) {
	return s.queryNodes(ctx, "list nodes", `SELECT `+nodeColumns+` FROM nodes ORDER BY name`)
}

// queryNodes reads the nodes a query of nodeColumns selects; what names
// the operation in errors.
func (s *Store) queryNodes(ctx context.Context, what, query string, args ...any) ([]*Node, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*Node
	for rows.Next() {
		n, err := scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// BeginEnroll records an enrollment attempt, replacing an earlier one. It
// fails with ErrEKInUse if the EK is enrolled under another node, and with
// ErrConflict if the node's round is not round.
func (s *Store) BeginEnroll(ctx context.Context, name string, round uint64, p *Pending) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: enroll %s: %w", name, err)
	}
	defer tx.Rollback()
	var other string
	err = tx.QueryRowContext(ctx, `SELECT name FROM nodes WHERE ek_id = $1 AND name <> $2`, p.EKID, name).Scan(&other)
	if err == nil {
		return fmt.Errorf("store: enroll %s: %w (%s)", name, ErrEKInUse, other)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: enroll %s: %w", name, err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE nodes SET pending = $2, updated = $3 WHERE name = $1 AND round = $4`, name, string(b), time.Now().UnixMilli(), int64(round))
	if err != nil {
		return fmt.Errorf("store: enroll %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("store: enroll %s: %w", name, ErrConflict)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: enroll %s: %w", name, err)
	}
	return nil
}

// CompleteEnroll makes the pending enrollment (the one with token) the
// node's: its EK and AK, a fresh appraisal state and the state enrolling.
// With keep (the same EK and AK enrolled again, as after an attester
// restart) the appraisal state and verdict stay.
// It fails with ErrConflict if the pending enrollment changed, and with
// ErrEKInUse if the EK was enrolled under another node meanwhile.
func (s *Store) CompleteEnroll(ctx context.Context, name, token string, keep bool) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: activate %s: %w", name, err)
	}
	defer tx.Rollback()
	n, err := scanNode(tx.QueryRowContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: node %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("store: activate %s: %w", name, err)
	}
	if n.Pending == nil || n.Pending.Token != token {
		return fmt.Errorf("store: activate %s: %w", name, ErrConflict)
	}
	p := n.Pending
	if keep {
		_, err = tx.ExecContext(ctx, `UPDATE nodes SET pending = NULL, round = round + 1, updated = $2 WHERE name = $1`, name, time.Now().UnixMilli())
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE nodes SET ek_id = $2, ek_public = $3, ek_cert = $4, ak_public = $5, pending = NULL,
		appraisal = '{}', state = $6, sticky = 0, failures = '[]', round = round + 1, updated = $7 WHERE name = $1`,
			name, p.EKID, p.EKPublic, p.EKCert, p.AKPublic, attest.StateEnrolling, time.Now().UnixMilli())
	}
	if s.d.uniqueViolation(err) {
		return fmt.Errorf("store: activate %s: %w", name, ErrEKInUse)
	}
	if err != nil {
		return fmt.Errorf("store: activate %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		if s.d.uniqueViolation(err) {
			return fmt.Errorf("store: activate %s: %w", name, ErrEKInUse)
		}
		return fmt.Errorf("store: activate %s: %w", name, err)
	}
	return nil
}

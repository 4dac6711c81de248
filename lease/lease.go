package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrLost: the lease is not held by this owner with this token any more
// (it expired, or another replica took it); nothing was written.
var ErrLost = errors.New("lease: not held")

// Lease is a lease as its holder knows it.
type Lease struct {
	Name  string
	Owner string
	// Token is the fencing token: it grows at every change of owner.
	Token int64
	// Expires is the expiry by the database's clock.
	Expires time.Time

	local bool
}

// Check fences a write: run first in the write's transaction, it fails
// with ErrLost unless the lease is still this owner's, with this token,
// unexpired, and holds the lease row (FOR SHARE) until the transaction
// ends, so that no other replica can take the lease meanwhile.
func (l Lease) Check(ctx context.Context, tx *sql.Tx) error {
	if l.local {
		return nil
	}
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM leases WHERE name = $1 AND owner = $2 AND token = $3 AND expires > clock_timestamp() FOR SHARE`,
		l.Name, l.Owner, l.Token).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s (token %d of %s)", ErrLost, l.Name, l.Token, l.Owner)
	}
	if err != nil {
		return fmt.Errorf("lease: check %s: %w", l.Name, err)
	}
	return nil
}

// Replica is one verifier process of a fleet as the store knows it.
type Replica struct {
	Name  string `json:"name"`
	Build string `json:"build"`
	Addr  string `json:"addr"`
	// Live: the replica's database session holds its liveness lock.
	Live      bool      `json:"live"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
}

// Row is a lease as the table has it.
type Row struct {
	Name     string    `json:"name"`
	Owner    string    `json:"owner"`
	Token    int64     `json:"token"`
	Expires  time.Time `json:"expires"`
	Acquired time.Time `json:"acquired"`
}

// Manager claims, renews and releases leases for one owner; Postgres and
// Local implement it.
type Manager interface {
	// Owner is this replica's name.
	Owner() string
	// Run keeps the replica's presence (on PostgreSQL: its liveness session,
	// heartbeat and wake-ups) until ctx ends (nil) or it fails for good.
	Run(ctx context.Context) error
	// Ensure creates the named leases if they do not exist.
	Ensure(ctx context.Context, names []string) error
	// Claim takes up to max of the named leases that no live replica
	// holds; names are those the caller does not hold (it renews those).
	Claim(ctx context.Context, names []string, max int) ([]Lease, error)
	// Renew extends this owner's leases among names and returns those
	// still held.
	Renew(ctx context.Context, names []string) ([]Lease, error)
	// Release gives leases up and wakes the other replicas.
	Release(ctx context.Context, names []string) error
	// Replicas lists the replicas the store knows.
	Replicas(ctx context.Context) ([]Replica, error)
	// Leases lists the leases.
	Leases(ctx context.Context) ([]Row, error)
	// Wake signals when another replica released a lease or joined.
	Wake() <-chan struct{}
	// TTL is the lease period.
	TTL() time.Duration
}

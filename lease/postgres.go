package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// livenessClass is the first key of every replica's liveness advisory
// lock ("imag"); the second is hashtext(replica name).
const livenessClass = 0x696d6167

// channel is the NOTIFY channel of wake-ups.
const channel = "imago_fleet"

// ErrNameInUse: a live replica already has this name.
var ErrNameInUse = errors.New("lease: a live replica already has this name")

// Options configure a PostgreSQL manager.
type Options struct {
	// Owner names this replica (unique among live replicas).
	Owner string
	// TTL is the lease period (default 10s).
	TTL time.Duration
	// Build and Addr describe the replica (the fleet page shows them).
	Build, Addr string
	Logger      *slog.Logger
}

// Postgres is a Manager on a PostgreSQL store.
type Postgres struct {
	db   *sql.DB
	url  string
	o    Options
	log  *slog.Logger
	wake chan struct{}
	// live: the liveness session holds its lock; without it this replica
	// claims and renews nothing.
	live atomic.Bool
	// ready is closed once the liveness session first holds its lock.
	ready chan struct{}
}

// NewPostgres makes a manager on the store's pool db; url opens the
// liveness session (a connection of its own: it holds the replica's
// advisory lock and LISTENs).
func NewPostgres(db *sql.DB, url string, o Options) *Postgres {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Postgres{db: db, url: url, o: o, log: o.Logger, wake: make(chan struct{}, 1), ready: make(chan struct{})}
}

// Owner implements Manager.
func (p *Postgres) Owner() string { return p.o.Owner }

// TTL implements Manager.
func (p *Postgres) TTL() time.Duration { return p.o.TTL }

// Wake implements Manager.
func (p *Postgres) Wake() <-chan struct{} { return p.wake }

// Ready is closed once this replica is live (its liveness session holds
// its lock).
func (p *Postgres) Ready() <-chan struct{} { return p.ready }

func (p *Postgres) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run implements Manager: it keeps the liveness session (reconnecting
// with backoff when it breaks, as when PostgreSQL restarts), beats the
// heartbeat and turns notifications into wake-ups. It fails for good only
// if a live replica has this name.
func (p *Postgres) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		err := p.session(ctx, &first)
		p.live.Store(false)
		if errors.Is(err, ErrNameInUse) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		p.log.Warn("fleet: liveness session lost; reconnecting (leases are given up meanwhile)", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.o.TTL/2)
	}
	return nil
}

// session runs one liveness session until it breaks or ctx ends.
func (p *Postgres) session(ctx context.Context, first *bool) error {
	cctx, cancel := context.WithTimeout(ctx, p.o.TTL)
	conn, err := pgx.Connect(cctx, p.url)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, livenessClass, p.o.Owner).Scan(&got); err != nil {
		return err
	}
	if !got {
		if *first {
			return fmt.Errorf("%w: %q", ErrNameInUse, p.o.Owner)
		}
		// Our previous session may not be gone yet on the server.
		return fmt.Errorf("liveness lock of %q still held (an old session of ours?)", p.o.Owner)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO replicas (name, key, build, addr, started, heartbeat)
		VALUES ($1, hashtext($1), $2, $3, clock_timestamp(), clock_timestamp())
		ON CONFLICT (name) DO UPDATE SET key = EXCLUDED.key, build = EXCLUDED.build, addr = EXCLUDED.addr,
			started = CASE WHEN $4 THEN EXCLUDED.started ELSE replicas.started END, heartbeat = EXCLUDED.heartbeat`,
		p.o.Owner, p.o.Build, p.o.Addr, *first); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	// A replica joined: the others rebalance.
	if _, err := conn.Exec(ctx, `SELECT pg_notify($1, 'joined ' || $2)`, channel, p.o.Owner); err != nil {
		return err
	}
	if *first {
		*first = false
		// Forget replicas dead for a day.
		conn.Exec(ctx, `DELETE FROM replicas r WHERE heartbeat < clock_timestamp() - interval '1 day' AND NOT `+liveSQL("r"))
		close(p.ready)
	}
	p.live.Store(true)
	p.signal()
	beat := p.o.TTL / 3
	for {
		wctx, cancel := context.WithTimeout(ctx, beat)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			if n.Payload != "joined "+p.o.Owner {
				p.signal()
			}
			continue
		case !errors.Is(err, context.DeadlineExceeded) && !pgconn.Timeout(err):
			return err
		}
		hctx, cancel := context.WithTimeout(ctx, beat)
		_, err = conn.Exec(hctx, `UPDATE replicas SET heartbeat = clock_timestamp() WHERE name = $1`, p.o.Owner)
		cancel()
		if err != nil {
			return err
		}
	}
}

// liveSQL is a condition: the replica row alias r holds its liveness
// lock in this database.
func liveSQL(r string) string {
	return `EXISTS (SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted AND k.classid = ` + fmt.Sprint(livenessClass) + `
		AND k.objsubid = 2 AND k.objid::bigint = (` + r + `.key::bigint & 4294967295)
		AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`
}

// Ensure implements Manager.
func (p *Postgres) Ensure(ctx context.Context, names []string) error {
	if _, err := p.db.ExecContext(ctx, `INSERT INTO leases (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`, names); err != nil {
		return fmt.Errorf("lease: ensure: %w", err)
	}
	return nil
}

func (p *Postgres) secs() float64 { return p.o.TTL.Seconds() }

// Claim implements Manager: free leases, expired ones, those whose owner
// is not live (its session is gone), and this owner's own that it no
// longer counts as held (a failed renewal), skipping rows another replica
// is claiming or writing under right now. The token grows at every claim.
func (p *Postgres) Claim(ctx context.Context, names []string, max int) ([]Lease, error) {
	if !p.live.Load() || max <= 0 {
		return nil, nil
	}
	rows, err := p.db.QueryContext(ctx, `UPDATE leases SET owner = $1, token = token + 1,
			expires = clock_timestamp() + make_interval(secs => $2), acquired = clock_timestamp()
		WHERE name IN (
			SELECT l.name FROM leases l
			WHERE l.name = ANY($3)
			  AND (l.owner = '' OR l.owner = $1 OR l.expires < clock_timestamp()
			       OR NOT EXISTS (SELECT 1 FROM replicas r WHERE r.name = l.owner AND `+liveSQL("r")+`))
			ORDER BY l.name LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING name, token, expires`, p.o.Owner, p.secs(), names, max)
	if err != nil {
		return nil, fmt.Errorf("lease: claim: %w", err)
	}
	return p.scan(rows)
}

// Renew implements Manager.
func (p *Postgres) Renew(ctx context.Context, names []string) ([]Lease, error) {
	if !p.live.Load() {
		return nil, nil
	}
	if len(names) == 0 {
		return nil, nil
	}
	rows, err := p.db.QueryContext(ctx, `UPDATE leases SET expires = clock_timestamp() + make_interval(secs => $2)
		WHERE owner = $1 AND name = ANY($3) RETURNING name, token, expires`, p.o.Owner, p.secs(), names)
	if err != nil {
		return nil, fmt.Errorf("lease: renew: %w", err)
	}
	return p.scan(rows)
}

func (p *Postgres) scan(rows *sql.Rows) ([]Lease, error) {
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		l := Lease{Owner: p.o.Owner}
		if err := rows.Scan(&l.Name, &l.Token, &l.Expires); err != nil {
			return nil, fmt.Errorf("lease: %w", err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return out, nil
}

// Release implements Manager.
func (p *Postgres) Release(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("lease: release: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE leases SET owner = '', expires = 'epoch' WHERE owner = $1 AND name = ANY($2)`, p.o.Owner, names); err != nil {
		return fmt.Errorf("lease: release: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, 'released')`, channel); err != nil {
		return fmt.Errorf("lease: release: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("lease: release: %w", err)
	}
	return nil
}

// Replicas implements Manager.
func (p *Postgres) Replicas(ctx context.Context) ([]Replica, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT r.name, r.build, r.addr, r.started, r.heartbeat, `+liveSQL("r")+` FROM replicas r ORDER BY r.name`)
	if err != nil {
		return nil, fmt.Errorf("lease: replicas: %w", err)
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var r Replica
		if err := rows.Scan(&r.Name, &r.Build, &r.Addr, &r.Started, &r.Heartbeat, &r.Live); err != nil {
			return nil, fmt.Errorf("lease: replicas: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Leases implements Manager.
func (p *Postgres) Leases(ctx context.Context) ([]Row, error) {
	rows, err := p.db.QueryContext(ctx, `SELECT name, owner, token, expires, acquired FROM leases ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("lease: leases: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var r Row
		if err := rows.Scan(&r.Name, &r.Owner, &r.Token, &r.Expires, &r.Acquired); err != nil {
			return nil, fmt.Errorf("lease: leases: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is what differs between the two databases.
type dialect struct {
	name string
	// uniqueViolation reports a unique-constraint error.
	uniqueViolation func(error) bool
}

var sqliteDialect = dialect{
	name: "sqlite",
	uniqueViolation: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
}

var postgresDialect = dialect{
	name: "postgres",
	uniqueViolation: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505"
	},
}

// SQLite settings: WAL (readers do not block the writer), synchronous=FULL
// (a commit is on disk when it returns), a busy timeout rather than
// SQLITE_BUSY, foreign keys on, and BEGIN IMMEDIATE for write
// transactions (no deadlock between two would-be writers). The pragmas run
// in this order on every new connection: the busy timeout first, so that
// switching to WAL while another connection holds the file waits instead
// of failing with SQLITE_BUSY at once.
const sqlitePragmas = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"

// sqliteOpenWait bounds how long opening waits for other connections that
// open the same new database at the same moment (see pingSQLite).
const sqliteOpenWait = 10 * time.Second

// pingSQLite opens db's first connection. SQLite answers SQLITE_BUSY at
// once, without its busy handler, where waiting could deadlock: when
// several connections open a new database together, all but one can lose
// the switch to WAL mode that way. A busy open is tried again, a few
// milliseconds later, for up to sqliteOpenWait (once the file is in WAL
// mode the switch is a no-op and no longer contends).
func pingSQLite(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, sqliteOpenWait)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		err := db.PingContext(ctx)
		var e *sqlite.Error
		if err == nil || !errors.As(err, &e) || e.Code()&0xff != sqlite3.SQLITE_BUSY {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
		}
	}
	u := "file:" + (&url.URL{Path: path}).EscapedPath()
	w, err := sql.Open("sqlite", u+"?"+sqlitePragmas+"&_txlock=immediate&_pragma=wal_autocheckpoint("+strconv.Itoa(autoCheckpointPages)+")")
	if err != nil {
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := pingSQLite(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", u+"?"+sqlitePragmas+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	cp, err := sql.Open("sqlite", u+"?"+sqlitePragmas)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("store: sqlite %s: %w", path, err)
	}
	cp.SetMaxOpenConns(1)
	return &Store{d: sqliteDialect, w: w, r: r, cp: startCheckpointer(cp)}, nil
}

// idleInTransaction is PostgreSQL's idle_in_transaction_session_timeout
// for the store's sessions (unless the URL sets it): a replica that stalls
// inside a transaction (a round holds its node's row) is cut off, so the
// node is free again for the other replicas.
const idleInTransaction = "15s"

// postgresConns is the size of a replica's writer pool: a round holds a
// connection while it is judged (the node's row lock), so it bounds the
// rounds judged at once; postgresReaders is the size of its reader pool.
// A replica opens at most their sum, plus one liveness session: 33, so
// PostgreSQL's default max_connections (100) takes three replicas.
const (
	postgresConns   = 24
	postgresReaders = 8
)

func openPostgres(u string) (*Store, error) {
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, fmt.Errorf("store: postgres %s: %s", redact(u), strings.ReplaceAll(err.Error(), u, redact(u)))
	}
	if _, ok := cfg.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.RuntimeParams["idle_in_transaction_session_timeout"] = idleInTransaction
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(postgresConns)
	db.SetMaxIdleConns(postgresConns)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: postgres %s: %s", redact(u), strings.ReplaceAll(err.Error(), u, redact(u)))
	}
	// Reads have a pool of their own: a round holds a writer connection
	// while it is judged, and what it reads meanwhile (a policy not yet
	// cached) must not wait for a writer connection.
	r := stdlib.OpenDB(*cfg)
	r.SetMaxOpenConns(postgresReaders)
	r.SetMaxIdleConns(postgresReaders)
	return &Store{d: postgresDialect, w: db, r: r}, nil
}

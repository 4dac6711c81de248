package store

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
// transactions (no deadlock between two would-be writers).
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)"

func openSQLite(path string) (*Store, error) {
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
	if err := w.Ping(); err != nil {
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

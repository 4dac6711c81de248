package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/imago-ima/imago/attest"
)

// Errors callers tell apart.
var (
	ErrNotFound = errors.New("store: no such node")
	// ErrConflict: the node changed since it was read (another round or an
	// enrollment committed first); nothing was written.
	ErrConflict = errors.New("store: the node changed meanwhile")
	// ErrEKInUse: the endorsement key is enrolled under another node.
	ErrEKInUse = errors.New("store: the endorsement key is enrolled under another node")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrBadURL: the store URL is none of the accepted forms.
	ErrBadURL = errors.New("store: bad store URL")
)

// Store is an open verifier store. Its methods are safe for concurrent use.
type Store struct {
	d      dialect
	w      *sql.DB // the writer (one connection for SQLite)
	r      *sql.DB // readers (the same pool as w for PostgreSQL)
	gc     *committer
	cp     *checkpointer // SQLite only
	secret []byte
	locks  nodeLocks // rounds of one node, on SQLite (see Round)

	closeOnce sync.Once
	closeErr  error

	// prepared statements of the hot path (SQLite parses every statement
	// it is not given prepared)
	getNode, roundUpdate, verdictInsert *sql.Stmt
}

// Options tune a store.
type Options struct {
	// MaxBatch bounds the round writes of one group commit (default 512).
	MaxBatch int
}

// Open opens (creating and migrating if needed) the store a URL names:
//
//	sqlite:///ABSOLUTE/PATH  sqlite://RELATIVE/PATH  sqlite:PATH
//	postgres://...  postgresql://...  (a libpq/pgx URL)
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	var (
		s   *Store
		err error
	)
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
		if path == "" {
			return nil, fmt.Errorf("%w %q: no file path", ErrBadURL, url)
		}
		s, err = openSQLite(ctx, path)
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		s, err = openPostgres(url)
	default:
		return nil, fmt.Errorf("%w %q: want sqlite:///PATH or postgres://...", ErrBadURL, redact(url))
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if s.secret, err = s.loadSecret(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	max := o.MaxBatch
	if max <= 0 {
		max = 512
	}
	s.gc = newCommitter(s.w, max)
	return s, nil
}

// redact hides a password in a URL for messages.
func redact(url string) string {
	at := strings.LastIndex(url, "@")
	scheme := strings.Index(url, "://")
	if at < 0 || scheme < 0 {
		return url
	}
	creds := url[scheme+3 : at]
	if user, _, ok := strings.Cut(creds, ":"); ok {
		return url[:scheme+3] + user + ":***" + url[at:]
	}
	return url
}

// Close stops the writer (waiting for the batch in flight) and closes the
// database. Later calls return the first call's error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.gc.close()
		for _, st := range []*sql.Stmt{s.getNode, s.roundUpdate, s.verdictInsert} {
			st.Close()
		}
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *Store) prepare(ctx context.Context) error {
	var err error
	if s.getNode, err = s.r.PrepareContext(ctx, `SELECT `+nodeColumns+` FROM nodes WHERE name = $1`); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	if s.roundUpdate, err = s.w.PrepareContext(ctx, roundUpdateSQL); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	if s.verdictInsert, err = s.w.PrepareContext(ctx, verdictInsertSQL); err != nil {
		return fmt.Errorf("store: prepare: %w", err)
	}
	return nil
}

func (s *Store) closeDBs() error {
	err := s.w.Close()
	if s.cp != nil {
		err = errors.Join(err, s.cp.close())
	}
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// Dialect returns "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.d.name }

// Secret returns the store's 32-byte secret, made at the first Open and
// shared by every process on the store: the verifier MACs its challenge
// tokens with it.
func (s *Store) Secret() []byte { return s.secret }

func (s *Store) loadSecret(ctx context.Context) ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if _, err := s.w.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('challenge_key', $1) ON CONFLICT (key) DO NOTHING`, key); err != nil {
		return nil, fmt.Errorf("store: secret: %w", err)
	}
	var v []byte
	if err := s.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'challenge_key'`).Scan(&v); err != nil {
		return nil, fmt.Errorf("store: secret: %w", err)
	}
	if len(v) != 32 {
		return nil, fmt.Errorf("store: secret of %d bytes", len(v))
	}
	return v, nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func marshalFailures(f []attest.Failure) string {
	if len(f) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(f)
	return string(b)
}

func unmarshalFailures(s string) []attest.Failure {
	var f []attest.Failure
	json.Unmarshal([]byte(s), &f)
	if f == nil {
		f = []attest.Failure{}
	}
	return f
}

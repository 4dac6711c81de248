package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrations embed.FS

// advisoryLockKey is the PostgreSQL advisory lock migrations run under
// ("imago" in ASCII).
const advisoryLockKey = 0x696d61676f

// postgresTypes translates SQLite's column types in the migrations: bytes
// are BYTEA, integers 64-bit.
var postgresTypes = strings.NewReplacer(" BLOB", " BYTEA", " INTEGER", " BIGINT")

type migration struct {
	version int
	name    string
	sql     string
	// compatible: the migration only adds (columns with defaults, tables,
	// indexes), so a build that does not know it may still run on the
	// database. A migration says so with a first line "-- imago: compatible".
	compatible bool
}

// compatibleMarker is the first line of a compatible migration.
const compatibleMarker = "-- imago: compatible"

// loadMigrations reads the migrations of a dialect. A migration is shared
// (migrations/NNNN_name.sql, written in SQLite's types and translated for
// PostgreSQL's) or, where the two databases need different statements,
// one file per dialect (migrations/sqlite/NNNN_name.sql and
// migrations/postgres/NNNN_name.sql). Each version appears once.
func loadMigrations(dialect string) ([]migration, error) {
	var out []migration
	for _, dir := range []string{"migrations", path.Join("migrations", dialect)} {
		ents, err := fs.ReadDir(migrations, dir)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			v, name, ok := strings.Cut(e.Name(), "_")
			n, err := strconv.Atoi(v)
			if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
				return nil, fmt.Errorf("store: migration file %s: want NNNN_name.sql", path.Join(dir, e.Name()))
			}
			b, err := migrations.ReadFile(path.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			sql := string(b)
			if dialect == "postgres" && dir == "migrations" {
				sql = postgresTypes.Replace(sql)
			}
			first, _, _ := strings.Cut(sql, "\n")
			out = append(out, migration{n, strings.TrimSuffix(name, ".sql"), sql, strings.TrimSpace(first) == compatibleMarker})
		}
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: %s migrations: version %d where %d was expected (each version once, shared or per dialect)", dialect, m.version, i+1)
		}
	}
	return out, nil
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int {
	m, _ := loadMigrations("sqlite")
	return len(m)
}

// migrate brings the schema to the newest version, once: under an advisory
// lock on PostgreSQL (replicas starting together wait for each other), in
// an immediate transaction on SQLite. A database newer than this build is
// refused.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.d.name)
	if err != nil {
		return err
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer conn.Close()
	if s.d.name == "postgres" {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, advisoryLockKey); err != nil {
			return fmt.Errorf("store: migrate: advisory lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, advisoryLockKey)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied BIGINT NOT NULL, compatible BIGINT NOT NULL DEFAULT 0)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	for {
		done, err := migrateOne(ctx, conn, ms)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the next migration, reading the version inside the
// write transaction (SQLite's BEGIN IMMEDIATE; PostgreSQL holds the
// advisory lock), so that two processes never apply one twice. It reports
// whether the schema is current.
func migrateOne(ctx context.Context, conn *sql.Conn, ms []migration) (bool, error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	var cur sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&cur); err != nil {
		return false, fmt.Errorf("store: migrate: %w", err)
	}
	if int(cur.Int64) > len(ms) {
		return true, checkNewer(ctx, tx, len(ms))
	}
	if int(cur.Int64) == len(ms) {
		return true, tx.Commit()
	}
	m := ms[cur.Int64]
	for _, stmt := range splitSQL(m.sql) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, fmt.Errorf("store: migrate to %d (%s): %w", m.version, m.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied, compatible) VALUES ($1, $2, $3, $4)`, m.version, m.name, time.Now().UnixMilli(), b2i(m.compatible)); err != nil {
		return false, fmt.Errorf("store: migrate to %d: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: migrate to %d: %w", m.version, err)
	}
	return false, nil
}

// ErrSchemaNewer: the database has a schema version this build cannot use
// (a newer imago migrated it incompatibly).
var ErrSchemaNewer = errors.New("store: the database schema is newer than this imago")

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// checkNewer allows a database migrated past this build's known versions
// only if every migration beyond them is compatible.
func checkNewer(ctx context.Context, q querier, known int) error {
	var (
		v    int64
		name string
	)
	err := q.QueryRowContext(ctx, `SELECT version, name FROM schema_migrations WHERE version > $1 AND compatible = 0 ORDER BY version LIMIT 1`, known).Scan(&v, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: schema: %w", err)
	}
	return fmt.Errorf("%w: version %d (%s) is not compatible with this imago's schema %d; upgrade this replica", ErrSchemaNewer, v, name, known)
}

// CheckSchema fails with ErrSchemaNewer once another process has migrated
// the database to a version this build cannot use. Replicas of a fleet
// call it periodically: an old replica left running across an
// incompatible upgrade stops instead of writing rows it does not
// understand.
func (s *Store) CheckSchema(ctx context.Context) error {
	return checkNewer(ctx, s.r, SchemaVersion())
}

// splitSQL splits a migration into statements at semicolons that end a
// line, dropping comment-only lines.
func splitSQL(src string) []string {
	var out []string
	var cur strings.Builder
	for line := range strings.Lines(src) {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") || t == "" {
			continue
		}
		cur.WriteString(line)
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}

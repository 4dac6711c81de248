package store

import (
	"context"
	"database/sql"
	"embed"
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
}

// loadMigrations reads the migrations, one set for both databases, written
// in SQLite's types and translated for PostgreSQL's.
func loadMigrations(dialect string) ([]migration, error) {
	dir := "migrations"
	ents, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range ents {
		v, name, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || !strings.HasSuffix(name, ".sql") {
			return nil, fmt.Errorf("store: migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := migrations.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		sql := string(b)
		if dialect == "postgres" {
			sql = postgresTypes.Replace(sql)
		}
		out = append(out, migration{n, strings.TrimSuffix(name, ".sql"), sql})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: migrations: version %d where %d was expected", m.version, i+1)
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
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied BIGINT NOT NULL)`); err != nil {
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
		return false, fmt.Errorf("store: the database has schema version %d, newer than this imago (%d)", cur.Int64, len(ms))
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
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES ($1, $2, $3)`, m.version, m.name, time.Now().UnixMilli()); err != nil {
		return false, fmt.Errorf("store: migrate to %d: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("store: migrate to %d: %w", m.version, err)
	}
	return false, nil
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

// Package store keeps the verifier's durable state: nodes (policy,
// enrollment, incremental appraisal state, current verdict) and the history
// of verdicts, in SQLite (modernc.org/sqlite, pure Go, the default) or
// PostgreSQL (jackc/pgx v5), with one schema and one set of queries.
//
// # Durability
//
// A round's verdict and the node's next state are written in one
// transaction, conditional on the node's round counter (so a round is
// applied once, and two rounds of one node never both commit), and Commit
// returns only after the transaction is durable: SQLite in WAL mode with
// synchronous=FULL (one fsync of the log per commit), PostgreSQL with its
// default synchronous_commit. An error means nothing was committed.
//
// # Throughput
//
// Round writes go through one writer goroutine that commits whatever has
// queued while the previous commit was being made durable (group commit):
// one fsync covers many verdicts, and each caller is answered after its own
// verdict is durable. SQLite has one writer connection (the WAL allows one
// writer; readers use their own connections), a busy timeout, and WAL
// checkpoints in the background, so that no commit carries one.
//
// # Migrations
//
// The schema is versioned (migrations/NNNN_name.sql, embedded; one set for
// both databases)
// and migrated at Open, under a PostgreSQL advisory lock (so replicas
// starting together migrate once) or SQLite's write lock.
package store

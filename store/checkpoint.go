package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// SQLite checkpoints. A commit that finds the WAL over the auto-checkpoint
// size copies the WAL into the database and fsyncs it, inside that commit:
// a stall of every verdict queued behind it. So the writer's threshold is
// high (a safety net) and a checkpointer on its own connection copies the
// WAL in the background (PASSIVE: it never blocks the writer or readers)
// once a checkpointInterval.
const (
	checkpointInterval = time.Second
	// autoCheckpointPages is the writer's safety net: 64 MiB of 4 KiB pages.
	autoCheckpointPages = 16384
)

type checkpointer struct {
	db   *sql.DB
	stop chan struct{}
	wg   sync.WaitGroup
}

func startCheckpointer(db *sql.DB) *checkpointer {
	c := &checkpointer{db: db, stop: make(chan struct{})}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(checkpointInterval)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			// An error (SQLITE_BUSY while another checkpoint runs) is
			// retried at the next tick; the writer's auto-checkpoint is the
			// backstop.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
			cancel()
		}
	}()
	return c
}

func (c *checkpointer) close() error {
	close(c.stop)
	c.wg.Wait()
	return c.db.Close()
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// op is one write of a group commit. It returns an *itemError for an
// outcome that concerns only this write (a conflict): the batch goes on.
// Any other error aborts the batch, which is then retried one write at a
// time so that one bad write fails alone.
type op func(ctx context.Context, tx *sql.Tx) error

// itemError is an op's own outcome, which leaves the transaction usable.
type itemError struct{ err error }

func (e *itemError) Error() string { return e.err.Error() }
func (e *itemError) Unwrap() error { return e.err }

type request struct {
	ctx  context.Context
	op   op
	done chan error
}

// committer is the single writer of group commits.
type committer struct {
	db   *sql.DB
	max  int
	reqs chan request
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func newCommitter(db *sql.DB, max int) *committer {
	c := &committer{db: db, max: max, reqs: make(chan request, max), stop: make(chan struct{})}
	c.wg.Add(1)
	go c.loop()
	return c
}

// do queues op and waits until it is durable or failed. Cancelling ctx
// stops waiting for a place in the queue; once queued, the write's outcome
// is awaited, so a caller never returns while its write may still commit.
func (c *committer) do(ctx context.Context, o op) error {
	r := request{ctx: context.WithoutCancel(ctx), op: o, done: make(chan error, 1)}
	select {
	case c.reqs <- r:
	case <-c.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.done
}

func (c *committer) close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

func (c *committer) loop() {
	defer c.wg.Done()
	batch := make([]request, 0, c.max)
	for {
		batch = batch[:0]
		select {
		case r := <-c.reqs:
			batch = append(batch, r)
		case <-c.stop:
			c.drain()
			return
		}
	fill:
		for len(batch) < c.max {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		c.commit(batch)
	}
}

// drain answers what is queued at close.
func (c *committer) drain() {
	for {
		select {
		case r := <-c.reqs:
			r.done <- ErrClosed
		default:
			return
		}
	}
}

// commit runs a batch in one transaction; on a batch-level failure it
// retries each write alone.
func (c *committer) commit(batch []request) {
	results, err := c.run(batch)
	if err == nil {
		for i, r := range batch {
			r.done <- results[i]
		}
		return
	}
	if len(batch) == 1 {
		batch[0].done <- err
		return
	}
	for _, r := range batch {
		res, err := c.run([]request{r})
		if err != nil {
			r.done <- err
		} else {
			r.done <- res[0]
		}
	}
}

func (c *committer) run(batch []request) ([]error, error) {
	ctx := batch[0].ctx
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	results := make([]error, len(batch))
	for i, r := range batch {
		err := r.op(r.ctx, tx)
		var ie *itemError
		if err != nil && !errors.As(err, &ie) {
			tx.Rollback()
			return nil, err
		}
		if ie != nil {
			results[i] = ie.err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return results, nil
}

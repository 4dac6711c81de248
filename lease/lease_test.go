package lease

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/pgtest"
	"github.com/imago-ima/imago/store"
)

// cluster starts PostgreSQL, migrates a store database (the leases and
// replicas tables) and returns its URL.
func cluster(t *testing.T) string {
	t.Helper()
	c := pgtest.Start(t)
	url := c.CreateDatabase(t, "fleet")
	st, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return url
}

func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var testLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// replica starts a manager's liveness session; stop it with the returned
// function (as a crash would end its session).
func replica(t *testing.T, db *sql.DB, url, name string, ttl time.Duration) (*Postgres, func()) {
	t.Helper()
	p := NewPostgres(db, url, Options{Owner: name, TTL: ttl, Build: "test", Addr: name, Logger: testLog})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("replica %s: %v", name, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("replica %s not live", name)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return p, stop
}

func leaseNames(ls []Lease) []string {
	out := names(ls)
	slices.Sort(out)
	return out
}

// fencedInsert writes v into table fenced by l, as a store write is.
func fencedInsert(ctx context.Context, db *sql.DB, l Lease, v int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := l.Check(ctx, tx); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO fenced (v) VALUES ($1)`, v); err != nil {
		return err
	}
	return tx.Commit()
}

func rowsOf(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT v FROM fenced ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		rows.Scan(&v)
		out = append(out, v)
	}
	return out
}

func TestLeasesPostgres(t *testing.T) {
	url := cluster(t)
	db := openDB(t, url)
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE fenced (v INT)`); err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	a, stopA := replica(t, db, url, "a", ttl)
	b, _ := replica(t, db, url, "b", ttl)
	all := []string{"prune", "stale", "enrollments"}
	if err := a.Ensure(ctx, all); err != nil {
		t.Fatal(err)
	}
	if err := b.Ensure(ctx, all); err != nil { // twice is harmless
		t.Fatal(err)
	}

	t.Run("two holders", func(t *testing.T) {
		got, err := a.Claim(ctx, all, 2)
		if err != nil || len(got) != 2 {
			t.Fatalf("a claimed %v, %v; want 2", leaseNames(got), err)
		}
		gotB, err := b.Claim(ctx, all, 3)
		if err != nil || len(gotB) != 1 || slices.Contains(leaseNames(got), gotB[0].Name) {
			t.Fatalf("b claimed %v (%v) next to a's %v; want the one left", leaseNames(gotB), err, leaseNames(got))
		}
		if more, _ := b.Claim(ctx, leaseNames(got), 3); len(more) != 0 {
			t.Fatalf("b claimed a live holder's leases: %v", leaseNames(more))
		}
		// Each fences its own writes; neither can write under the other's.
		for _, l := range got {
			if err := fencedInsert(ctx, db, l, 1); err != nil {
				t.Fatal(err)
			}
			stolen := l
			stolen.Owner = "b"
			if err := fencedInsert(ctx, db, stolen, 2); !errors.Is(err, ErrLost) {
				t.Fatalf("b wrote under a's lease: %v", err)
			}
		}
		if err := a.Release(ctx, leaseNames(got)); err != nil {
			t.Fatal(err)
		}
		if err := b.Release(ctx, leaseNames(gotB)); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("expiry and a paused holder's late write", func(t *testing.T) {
		got, err := a.Claim(ctx, []string{"prune"}, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", got, err)
		}
		la := got[0]
		// a is "paused": it does not renew. Before expiry b cannot take it.
		if l, _ := b.Claim(ctx, []string{"prune"}, 1); len(l) != 0 {
			t.Fatal("taken before expiry from a live holder")
		}
		time.Sleep(time.Until(la.Expires) + 200*time.Millisecond)
		got, err = b.Claim(ctx, []string{"prune"}, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("takeover after expiry: %v %v", got, err)
		}
		lb := got[0]
		if lb.Token <= la.Token {
			t.Fatalf("token %d after takeover, was %d", lb.Token, la.Token)
		}
		// a wakes up and writes: refused, and nothing is written.
		if err := fencedInsert(ctx, db, la, 100); !errors.Is(err, ErrLost) {
			t.Fatalf("late write: %v, want ErrLost", err)
		}
		if slices.Contains(rowsOf(t, db), 100) {
			t.Fatal("the late write is in the table")
		}
		// a cannot renew it either.
		if r, _ := a.Renew(ctx, []string{"prune"}); len(r) != 0 {
			t.Fatal("a renewed a lease b holds")
		}
		if err := fencedInsert(ctx, db, lb, 101); err != nil {
			t.Fatal(err)
		}
		b.Release(ctx, []string{"prune"})
	})

	t.Run("a holder paused inside its write", func(t *testing.T) {
		// The holder's session is cut off by PostgreSQL after
		// idle_in_transaction_session_timeout; only then can the lease
		// be taken, and the holder's write never commits.
		slow := openDB(t, url+"&idle_in_transaction_session_timeout=4000")
		got, err := a.Claim(ctx, []string{"stale"}, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", got, err)
		}
		la := got[0]
		tx, err := slow.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := la.Check(ctx, tx); err != nil {
			t.Fatal(err)
		}
		// While the write's transaction holds the lease row, nobody takes
		// it, even once it has expired.
		time.Sleep(time.Until(la.Expires) + 100*time.Millisecond)
		if l, err := b.Claim(ctx, []string{"stale"}, 1); err != nil || len(l) != 0 {
			t.Fatalf("taken from under a write in progress: %v %v", l, err)
		}
		deadline := time.Now().Add(10 * time.Second)
		var lb []Lease
		for len(lb) == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			lb, _ = b.Claim(ctx, []string{"stale"}, 1)
		}
		if len(lb) != 1 {
			t.Fatal("the lease was not taken after the paused session was cut off")
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO fenced (v) VALUES (200)`)
		if err == nil {
			err = tx.Commit()
		}
		if err == nil {
			t.Fatal("the paused holder's write committed")
		}
		tx.Rollback()
		if slices.Contains(rowsOf(t, db), 200) {
			t.Fatal("the paused holder's write is in the table")
		}
		b.Release(ctx, []string{"stale"})
	})

	t.Run("a crashed holder's leases are taken at once", func(t *testing.T) {
		got, err := a.Claim(ctx, []string{"enrollments"}, 1)
		if err != nil || len(got) != 1 {
			t.Fatalf("claim: %v %v", got, err)
		}
		stopA() // its liveness session ends, as at SIGKILL
		start := time.Now()
		var lb []Lease
		for len(lb) == 0 && time.Since(start) < ttl {
			lb, _ = b.Claim(ctx, []string{"enrollments"}, 1)
			time.Sleep(20 * time.Millisecond)
		}
		if len(lb) != 1 || time.Now().After(got[0].Expires) {
			t.Fatalf("taken %v, %v after the crash (lease expires %v)", leaseNames(lb), time.Since(start), got[0].Expires)
		}
		reps, err := b.Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reps {
			if r.Live != (r.Name == "b") {
				t.Fatalf("replica %s live=%v", r.Name, r.Live)
			}
		}
	})

	t.Run("a name in use", func(t *testing.T) {
		dup := NewPostgres(db, url, Options{Owner: "b", TTL: ttl, Logger: testLog})
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := dup.Run(cctx); !errors.Is(err, ErrNameInUse) {
			t.Fatalf("a second replica b: %v", err)
		}
	})
}

// TestKeepersShare runs three keepers: together they hold every lease,
// each at most its fair share, never one lease twice; when one stops, the
// others take its leases; a release wakes them at once.
func TestKeepersShare(t *testing.T) {
	url := cluster(t)
	db := openDB(t, url)
	const ttl = 1500 * time.Millisecond
	all := []string{"l1", "l2", "l3", "l4", "l5", "l6"}
	type k struct {
		keeper *Keeper
		cancel context.CancelFunc
		done   chan error
	}
	var ks []*k
	for i := range 3 {
		m := NewPostgres(db, url, Options{Owner: fmt.Sprintf("r%d", i), TTL: ttl, Logger: testLog})
		kp := NewKeeper(m, all, testLog)
		ctx, cancel := context.WithCancel(context.Background())
		x := &k{kp, cancel, make(chan error)}
		go func() { kp.Run(ctx); close(x.done) }()
		t.Cleanup(func() { cancel(); <-x.done })
		ks = append(ks, x)
	}
	check := func(keepers []*k, share int) bool {
		seen := map[string]bool{}
		for _, x := range keepers {
			h := x.keeper.Held()
			if len(h) > share {
				return false
			}
			for _, n := range h {
				if seen[n] {
					t.Fatalf("lease %s held twice", n)
				}
				seen[n] = true
			}
		}
		return len(seen) == len(all)
	}
	waitFor := func(what string, d time.Duration, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("%s not within %v", what, d)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("a fair share each", 20*time.Second, func() bool { return check(ks, 2) })
	// A graceful stop releases at once: the others take over well within a
	// lease period (woken by NOTIFY).
	ks[0].cancel()
	<-ks[0].done
	start := time.Now()
	waitFor("takeover after a release", ttl, func() bool { return check(ks[1:], 3) })
	t.Logf("takeover after a graceful stop: %v", time.Since(start))
}

func TestLocal(t *testing.T) {
	l := NewLocal(Options{Owner: "only"})
	k := NewKeeper(l, []string{"a", "b"}, testLog)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(k.Held()) != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h := k.Held(); len(h) != 2 {
		t.Fatalf("local keeper holds %v", h)
	}
	ls, _ := k.Get("a")
	if err := ls.Check(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

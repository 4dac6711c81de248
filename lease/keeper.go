package lease

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Keeper keeps this replica's fair share of a set of leases: it renews
// what it holds every third of the lease period, claims more while it
// holds fewer than its share (the leases divided among the live replicas,
// rounded up) and releases what it holds beyond it. A wake-up (another
// replica released a lease or joined) makes it look at once.
type Keeper struct {
	m     Manager
	names []string
	log   *slog.Logger
	// OnError is called for each failed database operation (metrics).
	OnError func(op string)

	mu   sync.Mutex
	held map[string]held
}

type held struct {
	Lease
	// until is when this process stops trusting the lease by its own
	// clock: the start of the renewal that returned it, plus the period.
	// The fence is the database's check; this only stops work early.
	until time.Time
}

// NewKeeper makes a keeper of the named leases.
func NewKeeper(m Manager, names []string, log *slog.Logger) *Keeper {
	if log == nil {
		log = slog.Default()
	}
	return &Keeper{m: m, names: slices.Sorted(slices.Values(names)), log: log, held: map[string]held{}}
}

// Manager returns the keeper's manager.
func (k *Keeper) Manager() Manager { return k.m }

// Get returns the named lease if this replica holds it.
func (k *Keeper) Get(name string) (Lease, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	h, ok := k.held[name]
	if !ok || time.Now().After(h.until) {
		return Lease{}, false
	}
	return h.Lease, true
}

// Held returns the names of the leases this replica holds.
func (k *Keeper) Held() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	var out []string
	for n, h := range k.held {
		if now.Before(h.until) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Drop forgets a lease a fenced write found lost.
func (k *Keeper) Drop(name string) {
	k.mu.Lock()
	delete(k.held, name)
	k.mu.Unlock()
}

// Run runs the manager and keeps the share until ctx ends, then releases
// what it holds (so the others take over at once). It returns the
// manager's error if it fails for good.
func (k *Keeper) Run(ctx context.Context) error {
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- k.m.Run(mctx) }()
	tick := time.NewTicker(k.m.TTL() / 3)
	defer tick.Stop()
	ensured := false
	for {
		if !ensured {
			if err := k.m.Ensure(ctx, k.names); err != nil {
				k.fail("ensure", err)
			} else {
				ensured = true
			}
		}
		if ensured {
			k.keep(ctx)
		}
		select {
		case <-ctx.Done():
			k.releaseAll()
			cancel()
			<-errc
			return nil
		case err := <-errc:
			k.releaseAll()
			return err
		case <-tick.C:
		case <-k.m.Wake():
		}
	}
}

func (k *Keeper) fail(op string, err error) {
	if k.OnError != nil {
		k.OnError(op)
	}
	k.log.Error("fleet: lease "+op, "err", err)
}

// keep renews, then balances to the fair share.
func (k *Keeper) keep(parent context.Context) {
	ttl := k.m.TTL()
	ctx, cancel := context.WithTimeout(parent, ttl/2)
	defer cancel()
	fail := func(op string, err error) {
		if parent.Err() == nil {
			k.fail(op, err)
		}
	}
	start := time.Now()
	mine := k.Held()
	k.mu.Lock()
	for n := range k.held { // expired by our clock: let go
		if !slices.Contains(mine, n) {
			delete(k.held, n)
		}
	}
	k.mu.Unlock()
	if len(mine) > 0 {
		renewed, err := k.m.Renew(ctx, mine)
		if err != nil {
			fail("renew", err)
			return
		}
		k.mu.Lock()
		for _, n := range mine {
			if !slices.ContainsFunc(renewed, func(l Lease) bool { return l.Name == n }) {
				delete(k.held, n)
				k.log.Warn("fleet: lease lost", "lease", n)
			}
		}
		for _, l := range renewed {
			k.held[l.Name] = held{l, start.Add(ttl)}
		}
		k.mu.Unlock()
	}
	reps, err := k.m.Replicas(ctx)
	if err != nil {
		fail("replicas", err)
		return
	}
	live := 0
	for _, r := range reps {
		if r.Live {
			live++
		}
	}
	share := (len(k.names) + max(live, 1) - 1) / max(live, 1)
	mine = k.Held()
	switch {
	case len(mine) > share:
		extra := mine[share:]
		k.mu.Lock()
		for _, n := range extra {
			delete(k.held, n)
		}
		k.mu.Unlock()
		if err := k.m.Release(ctx, extra); err != nil {
			fail("release", err)
		}
		k.log.Info("fleet: leases released to other replicas", "leases", extra, "replicas", live)
	case len(mine) < share:
		var want []string
		for _, n := range k.names {
			if !slices.Contains(mine, n) {
				want = append(want, n)
			}
		}
		got, err := k.m.Claim(ctx, want, share-len(mine))
		if err != nil {
			fail("claim", err)
			return
		}
		k.mu.Lock()
		for _, l := range got {
			k.held[l.Name] = held{l, start.Add(ttl)}
		}
		k.mu.Unlock()
		if len(got) > 0 {
			k.log.Info("fleet: leases taken", "leases", names(got), "replicas", live)
		}
	}
}

func names(ls []Lease) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

// releaseAll gives up every lease held (at shutdown).
func (k *Keeper) releaseAll() {
	k.mu.Lock()
	var all []string
	for n := range k.held {
		all = append(all, n)
	}
	clear(k.held)
	k.mu.Unlock()
	if len(all) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := k.m.Release(ctx, all); err != nil {
		k.log.Warn("fleet: releasing leases at shutdown", "err", err)
	}
}

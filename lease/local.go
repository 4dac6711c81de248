package lease

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Local is the Manager of a store with one process (SQLite): it holds
// every lease, always; its fence is trivially true.
type Local struct {
	owner   string
	ttl     time.Duration
	started time.Time
	addr    string
	build   string

	mu    sync.Mutex
	names []string
}

// NewLocal makes a local manager.
func NewLocal(o Options) *Local {
	if o.TTL <= 0 {
		o.TTL = 10 * time.Second
	}
	return &Local{owner: o.Owner, ttl: o.TTL, started: time.Now(), addr: o.Addr, build: o.Build}
}

// Owner implements Manager.
func (l *Local) Owner() string { return l.owner }

// TTL implements Manager.
func (l *Local) TTL() time.Duration { return l.ttl }

// Run implements Manager: there is nothing to keep.
func (l *Local) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Ensure implements Manager.
func (l *Local) Ensure(_ context.Context, names []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		if !slices.Contains(l.names, n) {
			l.names = append(l.names, n)
		}
	}
	slices.Sort(l.names)
	return nil
}

func (l *Local) lease(name string) Lease {
	return Lease{Name: name, Owner: l.owner, Token: 1, Expires: time.Now().Add(l.ttl), local: true}
}

// Claim implements Manager. Local leases are never taken from this owner,
// so a claim of what it holds already returns nothing new: the caller
// claims each name once, and renews it.
func (l *Local) Claim(_ context.Context, names []string, max int) ([]Lease, error) {
	var out []Lease
	for _, n := range names {
		if len(out) >= max {
			break
		}
		out = append(out, l.lease(n))
	}
	return out, nil
}

// Renew implements Manager.
func (l *Local) Renew(_ context.Context, names []string) ([]Lease, error) {
	var out []Lease
	for _, n := range names {
		out = append(out, l.lease(n))
	}
	return out, nil
}

// Release implements Manager.
func (l *Local) Release(context.Context, []string) error { return nil }

// Replicas implements Manager: this process.
func (l *Local) Replicas(context.Context) ([]Replica, error) {
	return []Replica{{Name: l.owner, Build: l.build, Addr: l.addr, Live: true, Started: l.started, Heartbeat: time.Now()}}, nil
}

// Leases implements Manager.
func (l *Local) Leases(context.Context) ([]Row, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Row
	for _, n := range l.names {
		out = append(out, Row{Name: n, Owner: l.owner, Token: 1, Expires: time.Now().Add(l.ttl), Acquired: l.started})
	}
	return out, nil
}

// Wake implements Manager: never.
func (l *Local) Wake() <-chan struct{} { return nil }

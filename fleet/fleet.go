package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/imago-ima/imago/lease"
	"github.com/imago-ima/imago/store"
)

// The leases of a fleet: one per piece of work that must happen once.
const (
	TaskStale       = "stale"
	TaskEnrollments = "enrollments"
	TaskPrune       = "prune"
)

// Tasks are the fleet's leases.
var Tasks = []string{TaskEnrollments, TaskPrune, TaskStale}

// Config configures a replica.
type Config struct {
	Store  *store.Store
	Leases lease.Manager
	// Interval is the attesters' interval: the tasks run once an interval,
	// and a node silent for three is stale.
	Interval time.Duration
	// HistoryKeep and HistoryMaxAge bound the history (see store.PruneHistory).
	HistoryKeep   int
	HistoryMaxAge time.Duration
	Logger        *slog.Logger
	// OnDBError is called for each failed database operation (metrics).
	OnDBError func(op string)
}

// Replica runs a replica's share of the fleet's work.
type Replica struct {
	cfg    Config
	keeper *lease.Keeper
	log    *slog.Logger
	now    func() time.Time
}

// New makes a replica.
func New(cfg Config) (*Replica, error) {
	if cfg.Store == nil || cfg.Leases == nil {
		return nil, errors.New("fleet: a store and a lease manager are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.HistoryKeep <= 0 {
		cfg.HistoryKeep = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	k := lease.NewKeeper(cfg.Leases, Tasks, cfg.Logger)
	k.OnError = cfg.OnDBError
	return &Replica{cfg: cfg, keeper: k, log: cfg.Logger, now: time.Now}, nil
}

// ReportDBErrors sets the function called for each failed database
// operation (the verifier counts them); call it before Run.
func (r *Replica) ReportDBErrors(f func(op string)) {
	r.cfg.OnDBError = f
	r.keeper.OnError = f
}

// Name is the replica's name.
func (r *Replica) Name() string { return r.cfg.Leases.Owner() }

// Held returns the leases this replica holds.
func (r *Replica) Held() []string { return r.keeper.Held() }

// Run keeps the leases and does the work until ctx ends (nil) or the
// replica cannot go on (its name is in use, the schema moved past this
// build): then it returns the error and the process should stop.
func (r *Replica) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.keeper.Run(ctx) }()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-errc
			return nil
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("fleet: %w", err)
			}
			return nil
		case <-t.C:
		}
		if err := r.cfg.Store.CheckSchema(ctx); errors.Is(err, store.ErrSchemaNewer) {
			cancel()
			<-errc
			return fmt.Errorf("fleet: %w", err)
		} else if err != nil && ctx.Err() == nil {
			r.dbError("schema", err)
		}
		r.work(ctx)
	}
}

func (r *Replica) dbError(op string, err error) {
	if r.cfg.OnDBError != nil {
		r.cfg.OnDBError(op)
	}
	r.log.Error("fleet: "+op, "err", err)
}

// work runs every task whose lease this replica holds.
func (r *Replica) work(ctx context.Context) {
	now := r.now()
	for _, task := range Tasks {
		l, ok := r.keeper.Get(task)
		if !ok {
			continue
		}
		err := r.task(ctx, task, l, now)
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, lease.ErrLost):
			r.keeper.Drop(task)
			r.log.Warn("fleet: lease lost before its write; nothing written", "lease", task, "err", err)
		default:
			r.dbError(task, err)
		}
	}
}

func (r *Replica) task(ctx context.Context, task string, l lease.Lease, now time.Time) error {
	switch task {
	case TaskStale:
		stale, err := r.cfg.Store.MarkStaleFenced(ctx, l, now.Add(-3*r.cfg.Interval))
		for _, n := range stale {
			r.log.Warn("node stale: no evidence within three intervals", "node", n)
		}
		return err
	case TaskEnrollments:
		gone, err := r.cfg.Store.ExpireEnrollments(ctx, l, now)
		if len(gone) > 0 {
			r.log.Info("expired enrollment challenges dropped", "nodes", len(gone))
		}
		return err
	case TaskPrune:
		var before time.Time
		if r.cfg.HistoryMaxAge > 0 {
			before = now.Add(-r.cfg.HistoryMaxAge)
		}
		n, err := r.cfg.Store.PruneHistoryFenced(ctx, l, r.cfg.HistoryKeep, before)
		if n > 0 {
			r.log.Debug("history pruned", "verdicts", n)
		}
		return err
	}
	return nil
}

// Status is the fleet as one replica sees it.
type Status struct {
	// Replica is the replica answering.
	Replica string `json:"replica"`
	// Store is "sqlite" or "postgres".
	Store    string `json:"store"`
	Interval string `json:"interval"`
	LeaseTTL string `json:"lease_ttl"`
	// States counts the nodes in each state; Nodes is their sum.
	States   map[string]int  `json:"states"`
	Nodes    int             `json:"nodes"`
	Replicas []lease.Replica `json:"replicas"`
	Leases   []lease.Row     `json:"leases"`
	Time     time.Time       `json:"time"`
}

// Status reads the fleet's status.
func (r *Replica) Status(ctx context.Context) (*Status, error) {
	st := &Status{Replica: r.Name(), Store: r.cfg.Store.Dialect(), Interval: r.cfg.Interval.String(),
		LeaseTTL: r.cfg.Leases.TTL().String(), Time: r.now().UTC()}
	var err error
	if st.States, err = r.cfg.Store.CountByState(ctx); err != nil {
		return nil, err
	}
	for _, n := range st.States {
		st.Nodes += n
	}
	if st.Replicas, err = r.cfg.Leases.Replicas(ctx); err != nil {
		return nil, err
	}
	if st.Leases, err = r.cfg.Leases.Leases(ctx); err != nil {
		return nil, err
	}
	if st.Replicas == nil {
		st.Replicas = []lease.Replica{}
	}
	if st.Leases == nil {
		st.Leases = []lease.Row{}
	}
	return st, nil
}

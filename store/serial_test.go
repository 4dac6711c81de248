package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
)

// TestRoundSerialised: rounds of one node, run at once through two stores
// on the same database (two replicas; on SQLite, one process's store),
// never overlap; each writes one verdict, at its round, in order; an
// unknown node is ErrNotFound; a write that lost its round is ErrConflict.
func TestRoundSerialised(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		a := open(t, url)
		b := a
		if a.Dialect() == "postgres" {
			b = open(t, url)
		}
		const nodes, perWorker = 4, 10
		for i := range nodes {
			addNode(t, a, fmt.Sprintf("s%d", i))
		}
		var busy [nodes]atomic.Int32
		var overlaps atomic.Int32
		var wg sync.WaitGroup
		for i := range nodes {
			for w, st := range []*Store{a, b, a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("s%d", i)
					for range perWorker {
						err := st.Round(ctx, name, func(n *Node) (*RoundWrite, error) {
							if busy[i].Add(1) != 1 {
								overlaps.Add(1)
							}
							defer busy[i].Add(-1)
							time.Sleep(2 * time.Millisecond)
							return &RoundWrite{Node: name, Round: n.Round, State: attest.StatePass, Verdict: attest.VerdictPass,
								Entries: n.Round, Appraisal: []byte(`{}`), Time: time.Now(), Replica: fmt.Sprint("w", w)}, nil
						})
						if err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		if overlaps.Load() != 0 {
			t.Fatalf("%d rounds of a node overlapped", overlaps.Load())
		}
		recs, err := a.Rounds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != nodes*4*perWorker {
			t.Fatalf("%d rounds stored, want %d", len(recs), nodes*4*perWorker)
		}
		for k := 1; k < len(recs); k++ {
			p, r := recs[k-1], recs[k]
			if p.Node == r.Node && (r.Round != p.Round+1 || r.Started.Before(p.Time)) {
				t.Fatalf("rounds %+v then %+v", p, r)
			}
		}
		if err := a.Round(ctx, "nobody", func(*Node) (*RoundWrite, error) { return nil, nil }); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown node: %v", err)
		}
		err = a.Round(ctx, "s0", func(n *Node) (*RoundWrite, error) {
			return &RoundWrite{Node: "s0", Round: n.Round + 7, State: attest.StatePass, Verdict: attest.VerdictPass, Appraisal: []byte(`{}`), Time: time.Now()}, nil
		})
		if !errors.Is(err, ErrConflict) {
			t.Fatalf("a write for another round: %v", err)
		}
		// A failed round leaves the session usable: the next one commits.
		if err := a.Round(ctx, "s0", func(n *Node) (*RoundWrite, error) { return nil, errors.New("judged nothing") }); err == nil {
			t.Fatal("f's error was lost")
		}
		if err := a.Round(ctx, "s0", func(n *Node) (*RoundWrite, error) {
			return &RoundWrite{Node: "s0", Round: n.Round, State: attest.StatePass, Verdict: attest.VerdictPass, Appraisal: []byte(`{}`), Time: time.Now()}, nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/internal/pgtest"
)

// backends runs a test on SQLite and on a real PostgreSQL cluster. Each
// call of open opens the same database again.
func backends(t *testing.T, f func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) {
		f(t, "sqlite://"+filepath.Join(t.TempDir(), "verifier.db"))
	})
	t.Run("postgres", func(t *testing.T) {
		c := pgtest.Start(t)
		f(t, c.CreateDatabase(t, "verifier"))
	})
}

func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func addNode(t *testing.T, s *Store, name string) *Node {
	t.Helper()
	ctx := context.Background()
	if err := s.PutPolicy(ctx, Policy{ID: "p1", Body: []byte(`{"digests":{}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.AddNode(ctx, name, "p1", false); err != nil {
		t.Fatal(err)
	}
	n, err := s.GetNode(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNodesAndEnrollment(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		secret := s.Secret()
		s.Close()
		s = open(t, url)
		if !bytes.Equal(secret, s.Secret()) || len(secret) != 32 {
			t.Fatal("the secret changed across opens")
		}
		a := addNode(t, s, "a")
		if a.State != attest.StateEnrolling || a.Round != 0 || a.Enrolled() {
			t.Fatalf("new node: %+v", a)
		}
		addNode(t, s, "b")
		// Enrol a, then b with a's EK: refused.
		p := &Pending{EKID: "ek1", EKPublic: []byte{1}, AKPublic: []byte{2}, SecretHash: []byte{3}, Token: "t1"}
		if err := s.BeginEnroll(ctx, "a", 0, p); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteEnroll(ctx, "a", "wrong token", false); !errors.Is(err, ErrConflict) {
			t.Fatalf("wrong token: %v", err)
		}
		if err := s.CompleteEnroll(ctx, "a", "t1", false); err != nil {
			t.Fatal(err)
		}
		a, _ = s.GetNode(ctx, "a")
		if !a.Enrolled() || a.Pending != nil || a.Round != 1 || !bytes.Equal(a.AKPublic, []byte{2}) {
			t.Fatalf("enrolled node: %+v", a)
		}
		p2 := *p
		p2.Token = "t2"
		if err := s.BeginEnroll(ctx, "b", 0, &p2); !errors.Is(err, ErrEKInUse) {
			t.Fatalf("EK of a under b: %v", err)
		}
		// Even when both were begun before either completed.
		addNode(t, s, "c")
		p3 := Pending{EKID: "ek3", Token: "t3"}
		p4 := Pending{EKID: "ek3", Token: "t4"}
		if err := s.BeginEnroll(ctx, "b", 0, &p3); err != nil {
			t.Fatal(err)
		}
		if err := s.BeginEnroll(ctx, "c", 0, &p4); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteEnroll(ctx, "b", "t3", false); err != nil {
			t.Fatal(err)
		}
		if err := s.CompleteEnroll(ctx, "c", "t4", false); !errors.Is(err, ErrEKInUse) {
			t.Fatalf("second completion with the same EK: %v", err)
		}
		// A policy change starts the node over.
		if err := s.PutPolicy(ctx, Policy{ID: "p2", Body: []byte(`{}`), Keyrings: [][]byte{{9}}}); err != nil {
			t.Fatal(err)
		}
		if _, changed, err := s.AddNode(ctx, "a", "p2", false); err != nil || !changed {
			t.Fatalf("policy change: %v %v", changed, err)
		}
		a, _ = s.GetNode(ctx, "a")
		if a.PolicyID != "p2" || a.Round != 2 || !a.Enrolled() {
			t.Fatalf("after policy change: %+v", a)
		}
		pol, err := s.GetPolicy(ctx, "p2")
		if err != nil || len(pol.Keyrings) != 1 {
			t.Fatalf("policy: %+v %v", pol, err)
		}
		nodes, err := s.ListNodes(ctx)
		if err != nil || len(nodes) != 3 {
			t.Fatalf("list: %d %v", len(nodes), err)
		}
		if err := s.RemoveNode(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetNode(ctx, "a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("removed node: %v", err)
		}
		if err := s.RemoveNode(ctx, "a"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("removed twice: %v", err)
		}
		// The EK is free again.
		if err := s.BeginEnroll(ctx, "c", 0, &Pending{EKID: "ek1", Token: "t5"}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRoundsGroupCommit(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		ctx := context.Background()
		s := open(t, url)
		const nodes, rounds = 20, 15
		for i := range nodes {
			addNode(t, s, fmt.Sprintf("n%d", i))
		}
		// Two writers per node race for every round: exactly one wins each.
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, conflicts := 0, 0
		for i := range nodes {
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("n%d", i)
					for r := range uint64(rounds) {
						err := s.CommitRound(ctx, &RoundWrite{Node: name, Round: r, State: attest.StatePass, Verdict: attest.VerdictPass,
							Entries: r * 10, Appraisal: []byte(`{"w":` + strconv.Itoa(w) + `}`), Time: time.Now()})
						mu.Lock()
						switch {
						case err == nil:
							wins++
						case errors.Is(err, ErrConflict):
							conflicts++
						default:
							t.Error(err)
						}
						mu.Unlock()
						// wait for the round to be committed by either writer
						for {
							n, err := s.GetNode(ctx, name)
							if err != nil {
								t.Error(err)
								return
							}
							if n.Round > r {
								break
							}
						}
					}
				}()
			}
		}
		wg.Wait()
		if wins != nodes*rounds || conflicts != nodes*rounds {
			t.Fatalf("%d wins, %d conflicts; want %d each", wins, conflicts, nodes*rounds)
		}
		h, err := s.History(ctx, "n3", 100)
		if err != nil || len(h) != rounds || h[0].Round != rounds || h[0].Entries != (rounds-1)*10 {
			t.Fatalf("history: %+v %v", h, err)
		}
		if n, err := s.PruneHistory(ctx, 5, time.Time{}); err != nil || n != nodes*(rounds-5) {
			t.Fatalf("pruned %d, %v; want %d", n, err, nodes*(rounds-5))
		}
		h, _ = s.History(ctx, "n3", 100)
		if len(h) != 5 || h[4].Round != rounds-4 {
			t.Fatalf("after prune: %+v", h)
		}
		stale, err := s.MarkStale(ctx, time.Now().Add(time.Hour))
		if err != nil || len(stale) != nodes {
			t.Fatalf("stale: %v %v", stale, err)
		}
		n, _ := s.GetNode(ctx, "n0")
		if n.State != attest.StateStale {
			t.Fatalf("state %s", n.State)
		}
		// A round for a removed node conflicts.
		s.RemoveNode(ctx, "n0")
		if err := s.CommitRound(ctx, &RoundWrite{Node: "n0", Round: n.Round, State: "pass", Verdict: "pass"}); !errors.Is(err, ErrConflict) {
			t.Fatalf("round of a removed node: %v", err)
		}
	})
}

// TestConcurrentMigrations: replicas starting together on an empty
// database migrate it once.
func TestConcurrentMigrations(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := Open(context.Background(), url, Options{})
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil && !(errors.Is(err, context.DeadlineExceeded)) {
				// SQLite: one process per file is the rule, but goroutines
				// of one process wait on the busy timeout and succeed.
				t.Fatal(err)
			}
		}
		s := open(t, url)
		var n int
		if err := s.r.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != SchemaVersion() {
			t.Fatalf("%d migrations recorded (%v), want %d", n, err, SchemaVersion())
		}
		// A database from a newer imago is refused.
		if _, err := s.w.Exec(`INSERT INTO schema_migrations (version, name, applied) VALUES (99, 'future', 0)`); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if _, err := Open(context.Background(), url, Options{}); err == nil {
			t.Fatal("a newer schema was accepted")
		}
	})
}

// TestDurableWhenAcknowledged kills a writer process with SIGKILL while it
// commits rounds and checks that every round it had acknowledged is in the
// database.
func TestDurableWhenAcknowledged(t *testing.T) {
	backends(t, func(t *testing.T, url string) {
		s := open(t, url)
		for i := range 8 {
			addNode(t, s, fmt.Sprintf("d%d", i))
		}
		s.Close()
		exe, _ := os.Executable()
		cmd := exec.Command(exe, "-test.run=^TestDurabilityChild$")
		cmd.Env = append(os.Environ(), "IMAGO_STORE_CHILD="+url)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[string]uint64{}
		sc := bufio.NewScanner(out)
		for n := 0; n < 400 && sc.Scan(); n++ {
			var node string
			var round uint64
			if _, err := fmt.Sscanf(sc.Text(), "ack %s %d", &node, &round); err == nil {
				acked[node] = max(acked[node], round)
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		if len(acked) == 0 {
			t.Fatal("the child acknowledged nothing")
		}
		s = open(t, url)
		for node, r := range acked {
			n, err := s.GetNode(context.Background(), node)
			if err != nil {
				t.Fatal(err)
			}
			if n.Round < r+1 {
				t.Errorf("%s: round %d acknowledged, store has %d", node, r, n.Round)
			}
			h, _ := s.History(context.Background(), node, 1000)
			if uint64(len(h)) < r+1 {
				t.Errorf("%s: %d verdicts stored, %d acknowledged", node, len(h), r+1)
			}
		}
	})
}

// TestDurabilityChild commits rounds as fast as it can and prints each
// acknowledgement; TestDurableWhenAcknowledged kills it.
func TestDurabilityChild(t *testing.T) {
	url := os.Getenv("IMAGO_STORE_CHILD")
	if url == "" {
		return
	}
	s, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("d%d", i)
			for r := uint64(0); ; r++ {
				if err := s.CommitRound(context.Background(), &RoundWrite{Node: name, Round: r, State: "pass", Verdict: "pass", Time: time.Now()}); err != nil {
					fmt.Println("error", err)
					return
				}
				mu.Lock()
				fmt.Printf("ack %s %d\n", name, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

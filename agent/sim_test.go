package agent

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/tpm"
)

// TestSimulator runs the staged start on the embedded simulator (cgo builds):
// present at start, --init late, and arriving after start (its Open gated
// as a driver that registers late). The list must replay to the simulator's
// PCR 10 in every bank (sha1, sha256, sha384, sha512).
func TestSimulator(t *testing.T) {
	if !tpm.Available("sim") {
		testenv.Missing(t, "cgo", "the TPM simulator is not built in (CGO_ENABLED=0)")
	}
	for _, tc := range []struct {
		name     string
		initLate bool
		late     bool // the TPM appears after the first stage
		wantAgg  string
	}{
		{"present", false, false, BootAggregate},
		{"init late", true, false, BootAggregateLate},
		{"arrives late", false, true, BootAggregateLate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, logs := testConfig(t, "sim")
			cfg.InitLate = tc.initLate
			var appeared atomic.Bool
			appeared.Store(!tc.late)
			cfg.Open = func(uri string) (TPM, error) {
				if !appeared.Load() {
					return nil, fmt.Errorf("%w: gated", tpm.ErrNoTPM)
				}
				return openTPM(uri)
			}
			cfg.Available = func(string) bool { return appeared.Load() }
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := New(ctx, cfg)
			if err != nil {
				t.Fatalf("%v\n%s", err, logs)
			}
			defer a.Close()
			files := writeFiles(t, 3, "sim")
			first := a.Measure(context.Background(), files[:1])
			if tc.late && first[0].Status != StatusQueued {
				t.Fatalf("%+v", first[0])
			}
			appeared.Store(true)
			for a.State() == Deferred {
				if err := a.Late(TriggerTPMAppeared); err != nil && err != errNotYet {
					t.Fatal(err)
				}
			}
			a.Measure(context.Background(), files[1:])
			st := a.Status()
			if st.State != "initialised" || st.Aggregate != tc.wantAgg || st.Entries != 4 {
				t.Fatalf("status %+v\n%s", st, logs)
			}
			got, err := a.ReadPCRs([]int{10})
			if err != nil {
				t.Fatal(err)
			}
			list := readListFile(t, filepath.Join(cfg.StateDir, listFile))
			if entryName(list[0]) != tc.wantAgg {
				t.Fatalf("first entry %s", entryName(list[0]))
			}
			replayed := replayList(t, list, got.Banks())
			if len(got.Banks()) < 2 {
				t.Fatalf("banks %v", got.Banks())
			}
			for _, b := range got.Banks() {
				w, _ := got.Get(b, 10)
				g, _ := replayed.Get(b, 10)
				if !bytes.Equal(w, g) {
					t.Errorf("%s PCR 10: simulator %x, list replays to %x", b, w, g)
				}
			}
		})
	}
}

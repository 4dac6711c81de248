package adopt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/pcr"
)

// checkTPM compares the TPM (read with tpm2_pcrread) with the independent
// replay of the whole list in every bank, checks evmctl's verdict for
// sha1/sha256 ("succeed at entry N", N the whole list), and checks that no
// PCR but 10 was touched.
func checkTPM(t *testing.T, fs *fakeFS, s interface {
	PCRRead(testing.TB, string) pcr.Set
}, banks []pcr.Bank) {
	t.Helper()
	got := s.PCRRead(t, "")
	want := oracleReplay(t, fs.listPath(), banks...)
	for _, b := range banks {
		for i := range 24 {
			v, ok := got.Get(b, i)
			if !ok {
				t.Fatalf("tpm2_pcrread has no %s PCR %d", b, i)
			}
			switch {
			case i == 10:
				if w, _ := want.Get(b, 10); !bytes.Equal(v, w) {
					t.Errorf("%s PCR 10: TPM %x, the list replays to %x", b, v, w)
				}
			case i >= 17 && i <= 22:
				// reset to 0xFF by TPM2_Startup(CLEAR) (PC Client)
			default:
				if !isZero(v) {
					t.Errorf("%s PCR %d touched: %x", b, i, v)
				}
			}
		}
	}
	n := fs.count()
	for b, at := range evmctlEntry(t, fs.listPath(), got) {
		if at != n {
			t.Errorf("evmctl %s: succeed at entry %d, the list has %d", b, at, n)
		}
	}
}

// TestAdoptLateTPM is the whole story on swtpm: the kernel's bypass list
// (a real one, grown by the test) exists, the adopter waits, the list grows,
// a TPM appears, the adopter catches up and follows the list as it grows,
// violations included, in every allocated bank.
func TestAdoptLateTPM(t *testing.T) {
	for _, c := range []struct {
		name  string
		banks []string
	}{
		{"sha1+sha256", []string{"sha1", "sha256"}},
		{"sha1+sha256+sha384+sha512", []string{"sha1", "sha256", "sha384", "sha512"}},
		{"sha256", []string{"sha256"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := swtpm(t, c.banks...)
			fs := newFakeFS(t)
			state := filepath.Join(t.TempDir(), "adopt.json")
			r := start(t, Config{SecurityFS: fs.root, TPM: s.URI, StateFile: state, BootIDFile: bootID(t, "boot-1")})
			st := r.until(t, "waiting", func(s Status) bool { return s.State == Waiting })
			if st.AppearedAt != nil || st.Adopted != 0 {
				t.Fatalf("before the TPM: %+v", st)
			}
			fs.append(entries(t, 16, 20, 20)...) // listed before the TPM, one violation
			st = r.until(t, "the count while waiting", func(s Status) bool { return s.Listed == 36 })
			if st.State != Waiting || st.Adopted != 0 || st.LagEntries != 36 {
				t.Fatalf("no TPM yet, but %+v", st)
			}
			s.Start()
			st = r.until(t, "following", func(s Status) bool { return s.State == Following && s.Adopted == 36 })
			if st.AppearedAt == nil || *st.AppearedAt != 36 || st.ResumedAt != nil || st.Violations != 1 {
				t.Fatalf("after catching up: %+v", st)
			}
			if len(st.Banks) != len(c.banks) {
				t.Fatalf("banks %v, want %v", st.Banks, c.banks)
			}
			for round := range 3 {
				fs.append(entries(t, 36+10*round, 10, 36+10*round+3)...)
				want := 46 + 10*round
				r.until(t, "following the list", func(s Status) bool { return s.Adopted == want && s.Listed == want })
			}
			st = r.a.Status()
			if st.LagEntries != 0 || st.LagSeconds > 5 || st.Violations != 4 {
				t.Fatalf("lag: %+v", st)
			}
			if err := r.stop(t); err != nil {
				t.Fatalf("Run = %v, want nil after its context ended", err)
			}
			if st := r.a.Status(); st.State != Stopped {
				t.Fatalf("after stop: %+v", st)
			}
			var banks []pcr.Bank
			for _, b := range c.banks {
				bk, _ := pcr.ParseBank(b)
				banks = append(banks, bk)
			}
			checkTPM(t, fs, s, banks)
		})
	}
}

// TestAdoptRestart: a second adopter on the same TPM finds the entries the
// first extended, extends the rest once, and knows from the state file where
// the TPM appeared; from another boot's state file it does not.
func TestAdoptRestart(t *testing.T) {
	s := swtpm(t, "sha1", "sha256")
	s.Start()
	fs := newFakeFS(t)
	fs.append(entries(t, 16, 14)...)
	state := filepath.Join(t.TempDir(), "adopt.json")
	boot := bootID(t, "boot-1")
	r := start(t, Config{SecurityFS: fs.root, TPM: s.URI, StateFile: state, BootIDFile: boot})
	r.until(t, "first run caught up", func(s Status) bool { return s.State == Following && s.Adopted == 30 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	fs.append(entries(t, 30, 25, 31, 40)...)

	r2 := start(t, Config{SecurityFS: fs.root, TPM: s.URI, StateFile: state, BootIDFile: boot})
	st := r2.until(t, "second run caught up", func(s Status) bool { return s.State == Following && s.Adopted == 55 })
	if st.ResumedAt == nil || *st.ResumedAt != 30 || st.AppearedAt == nil || *st.AppearedAt != 30 {
		t.Fatalf("resumed: %+v", st)
	}
	if err := r2.stop(t); err != nil {
		t.Fatal(err)
	}
	checkTPM(t, fs, s, []pcr.Bank{pcr.SHA1, pcr.SHA256})

	// The same TPM, a state file from another boot: the appearance is unknown.
	r3 := start(t, Config{SecurityFS: fs.root, TPM: s.URI, StateFile: state, BootIDFile: bootID(t, "boot-2")})
	st = r3.until(t, "third run", func(s Status) bool { return s.State == Following })
	if st.AppearedAt != nil || st.ResumedAt == nil || *st.ResumedAt != 55 {
		t.Fatalf("another boot's state file: %+v", st)
	}
	r3.stop(t)
	checkTPM(t, fs, s, []pcr.Bank{pcr.SHA1, pcr.SHA256})
}

// TestAdoptPartialRecord: the list read ends inside a record (a reader that
// races the writer); the adopter waits for the rest and extends it once.
func TestAdoptPartialRecord(t *testing.T) {
	s, fs, r := following(t, "sha256")
	es := entries(t, 16, 3)
	var raw []byte
	for _, e := range es {
		raw, _ = appendRecord(raw, e)
	}
	cut := len(raw) - 11
	fs.write(raw[:cut], 3)
	r.until(t, "two whole records", func(s Status) bool { return s.Adopted == 18 })
	time.Sleep(100 * time.Millisecond)
	if st := r.a.Status(); st.Adopted != 18 || st.State == Failed {
		t.Fatalf("half a record: %+v", st)
	}
	fs.write(raw[cut:], 0)
	r.until(t, "the third", func(s Status) bool { return s.Adopted == 19 })
	r.stop(t)
	checkTPM(t, fs, s, []pcr.Bank{pcr.SHA256})
}

// TestAdoptRefusals: every refusal says why and leaves the TPM as it was.
func TestAdoptRefusals(t *testing.T) {
	t.Run("no-kernel-list", func(t *testing.T) {
		r := start(t, Config{SecurityFS: t.TempDir(), TPM: "tcp://127.0.0.1:1"})
		refusal(t, r.wait(t), NoKernelList)
		if st := r.a.Status(); st.State != Refused || st.Reason != string(NoKernelList) || st.Error == "" {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("kernel-has-tpm", func(t *testing.T) {
		data, err := os.ReadFile("../testdata/realkernel/b-ima-sig/binary_runtime_measurements")
		if err != nil {
			t.Fatal(err)
		}
		fs := newFakeFSWith(t, data, 16)
		r := start(t, Config{SecurityFS: fs.root, TPM: "tcp://127.0.0.1:1"})
		err = r.wait(t)
		refusal(t, err, NotBypass)
		if !strings.Contains(err.Error(), "found a TPM at boot") {
			t.Errorf("message %q does not say the kernel has a TPM", err)
		}
	})
	t.Run("empty-list", func(t *testing.T) {
		fs := newFakeFSWith(t, nil, 0)
		refusal(t, start(t, Config{SecurityFS: fs.root, TPM: "tcp://127.0.0.1:1"}).wait(t), BadList)
	})
	t.Run("reserved-pcr", func(t *testing.T) {
		fs := newFakeFS(t)
		refusal(t, start(t, Config{SecurityFS: fs.root, TPM: "tcp://127.0.0.1:1", Reserved: []int{10}}).wait(t), Reserved)
	})
	t.Run("pcr-holds-something-else", func(t *testing.T) {
		s := swtpm(t, "sha1", "sha256")
		s.Start()
		s.PCRExtend(t, "10:sha1="+strings.Repeat("ab", 20)+",sha256="+strings.Repeat("cd", 32))
		before := s.PCRRead(t, "sha1:10+sha256:10")
		fs := newFakeFS(t)
		err := start(t, Config{SecurityFS: fs.root, TPM: s.URI}).wait(t)
		refusal(t, err, NotPrefix)
		after := s.PCRRead(t, "sha1:10+sha256:10")
		for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
			if x, y := before[b][10], after[b][10]; !bytes.Equal(x, y) {
				t.Errorf("%s PCR 10 changed from %x to %x", b, x, y)
			}
		}
	})
	t.Run("another-pcr-of-the-list-holds-something", func(t *testing.T) {
		// The list names PCR 11 too (a pcr= policy rule); PCR 10 is zeros
		// but PCR 11 is not: refused before anything is extended.
		s := swtpm(t, "sha256")
		s.Start()
		s.PCRExtend(t, "11:sha256="+strings.Repeat("ab", 32))
		fs := newFakeFS(t)
		es := entries(t, 16, 4)
		es[2].PCR = 11
		fs.append(es...)
		refusal(t, start(t, Config{SecurityFS: fs.root, TPM: s.URI}).wait(t), NotPrefix)
		if v := s.PCRRead(t, "sha256:10"); !isZero(v[pcr.SHA256][10]) {
			t.Fatalf("PCR 10 extended: %x", v[pcr.SHA256][10])
		}
	})
	t.Run("foreign-extend-while-following", func(t *testing.T) {
		s, fs, r := following(t, "sha256")
		s.PCRExtend(t, "10:sha256="+strings.Repeat("ee", 32))
		tampered := s.PCRRead(t, "sha256:10")
		fs.append(entries(t, 16, 5)...)
		refusal(t, r.wait(t), NotPrefix)
		if st := r.a.Status(); st.Adopted != 16 {
			t.Fatalf("extended after the foreign extend: %+v", st)
		}
		if now := s.PCRRead(t, "sha256:10"); !bytes.Equal(now[pcr.SHA256][10], tampered[pcr.SHA256][10]) {
			t.Fatalf("PCR 10 changed after the refusal")
		}
	})
	t.Run("list-got-shorter", func(t *testing.T) {
		_, fs, r := following(t, "sha256")
		fs.setCount(3)
		refusal(t, r.wait(t), BadList)
	})
	t.Run("second-adopter", func(t *testing.T) {
		fs := newFakeFS(t)
		r := start(t, Config{SecurityFS: fs.root, TPM: "tcp://127.0.0.1:1"})
		r.until(t, "waiting", func(s Status) bool { return s.State == Waiting })
		err := start(t, Config{SecurityFS: fs.root, TPM: "tcp://127.0.0.1:1"}).wait(t)
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second adopter: %v, want ErrLocked", err)
		}
	})
}

// TestAdoptTPMGoesAway: the TPM vanishes while adoption follows the list
// (swtpm killed) and comes back powered on afresh (PCRs reset): adoption
// waits, then adopts the whole list again into the new TPM, recording a new
// appearance. OnAdopt sees both appearances.
func TestAdoptTPMGoesAway(t *testing.T) {
	s := swtpm(t, "sha1", "sha256")
	s.Start()
	fs := newFakeFS(t)
	var records []Record
	var mu sync.Mutex
	r := start(t, Config{SecurityFS: fs.root, TPM: s.URI, OnAdopt: func(_ context.Context, rec Record) error {
		mu.Lock()
		defer mu.Unlock()
		records = append(records, rec)
		return nil
	}})
	r.until(t, "caught up", func(s Status) bool { return s.State == Following && s.Adopted == 16 })
	s.Stop()
	fs.append(entries(t, 16, 10)...)
	st := r.until(t, "waiting for the TPM again", func(s Status) bool { return s.State == Waiting && s.Error != "" })
	if !strings.Contains(st.Error, "reading the TPM's PCRs") {
		t.Fatalf("status error %q", st.Error)
	}
	fs.append(entries(t, 26, 4)...)
	s.Start()
	st = r.until(t, "adopted into the new TPM", func(s Status) bool { return s.State == Following && s.Adopted == 30 })
	if st.AppearedAt == nil || *st.AppearedAt != 30 || st.Error != "" {
		t.Fatalf("after the TPM came back: %+v", st)
	}
	r.stop(t)
	mu.Lock()
	if len(records) != 2 || records[0].Listed != 16 || records[1].Listed != 30 {
		t.Fatalf("OnAdopt records %+v", records)
	}
	mu.Unlock()
	checkTPM(t, fs, s, []pcr.Bank{pcr.SHA1, pcr.SHA256})
}

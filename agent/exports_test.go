//go:build linux

package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/imago-ima/imago/internal/gatetest"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// longPathFile creates a file whose path is about 4,000 bytes (PATH_MAX is
// 4,096): each of its export records is then longer than what is left of
// the page the export files end in, so that appending one to a full tmpfs
// needs a page it does not have.
func longPathFile(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	for len(dir)+256 < 3900 {
		dir = filepath.Join(dir, strings.Repeat("d", 255))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, strings.Repeat("f", 3990-len(dir)))
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fill writes a file on the filesystem of dir until it is full (ENOSPC).
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return p
		}
	}
}

// TestExportsFullFilesystem: the runtime directory is a small tmpfs filled
// up for real. A measurement whose exports cannot be written is answered
// with CodeNotCommitted and nothing is committed: the durable list, the
// exports and the TPM are as before. Once space returns the same file is
// measured once, and the exports are the durable list byte for byte with
// runtime_measurements_count equal to their entries (checkTPM, with
// tpm2_pcrread and evmctl). Before, the failed export reported an error
// for an entry that was durable and extended, the retry listed the file
// twice, and the exports stayed torn.
func TestExportsFullFilesystem(t *testing.T) {
	mnt := gatetest.MountOpts(t, "tmpfs", "size=256k,mode=0700")
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	s.Start()
	cfg, logs := testConfig(t, s.URI)
	cfg.RuntimeDir = filepath.Join(mnt, "run")
	r := startAgent(t, cfg, logs)
	big := longPathFile(t, "measured when the runtime directory is full")
	filler := fill(t, mnt)
	before := mustRead(t, filepath.Join(cfg.StateDir, listFile))
	pcrsBefore := s.PCRRead(t, "sha1:10+sha256:10")

	res := r.measure(big)
	if res[0].Status != StatusError || !errors.Is(res[0].Err(), ErrNotCommitted) {
		t.Fatalf("measure with the runtime directory full: %+v", res[0])
	}
	if st := r.status(); st.Entries != 1 || st.State != "initialised" || st.Exports != "" {
		t.Fatalf("status %+v", st)
	}
	if after := mustRead(t, filepath.Join(cfg.StateDir, listFile)); string(after) != string(before) {
		t.Fatal("the durable list changed")
	}
	if exp := mustRead(t, filepath.Join(cfg.RuntimeDir, exportBinary)); string(exp) != string(before) {
		t.Fatalf("the exports are torn: %d bytes, the list %d", len(exp), len(before))
	}
	if pcrs := s.PCRRead(t, "sha1:10+sha256:10"); diffSets(pcrsBefore, pcrs) != "" {
		t.Fatal("the TPM was extended")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if res := r.measure(big); res[0].Status != StatusMeasured {
		t.Fatalf("measure once space is back: %+v", res[0])
	}
	r.stop()
	list := checkTPM(t, s, cfg)
	if n := len(named(list, strings.ReplaceAll(realPath(t, big), " ", "_"))); n != 1 {
		t.Fatalf("the file is listed %d times", n)
	}
}

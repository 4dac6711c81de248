package tpm_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// backend is one TPM to run the behaviour tests against.
type backend struct {
	name  string
	banks []pcr.Bank // allocated banks, in TPM order
	// open returns the URI and, for swtpm over tcp, the emulator (for
	// tpm2-tools cross-checks); nil for the simulator and unix sockets.
	open func(t testing.TB) (string, *tpmtest.Swtpm)
}

func swtpmBackend(name string, unix bool, banks ...pcr.Bank) backend {
	var names []string
	for _, b := range banks {
		names = append(names, b.String())
	}
	return backend{name: name, banks: banks, open: func(t testing.TB) (string, *tpmtest.Swtpm) {
		s := tpmtest.New(t, tpmtest.Options{Banks: names, Unix: unix})
		s.Start()
		if unix {
			return s.URI, nil
		}
		return s.URI, s
	}}
}

func backends() []backend {
	bs := []backend{
		swtpmBackend("swtpm-sha256", false, pcr.SHA256),
		swtpmBackend("swtpm-sha1-sha256", false, pcr.SHA1, pcr.SHA256),
		swtpmBackend("swtpm-sha1-sha256-sha384", false, pcr.SHA1, pcr.SHA256, pcr.SHA384),
		swtpmBackend("swtpm-unix-sha1-sha256", true, pcr.SHA1, pcr.SHA256),
	}
	if b, ok := simBackend(); ok {
		bs = append(bs, b)
	}
	return bs
}

func mustOpen(t testing.TB, uri string) *tpm.TPM {
	t.Helper()
	tp, err := tpm.Open(uri)
	if err != nil {
		t.Fatalf("Open(%q): %v", uri, err)
	}
	t.Cleanup(func() { tp.Close() })
	return tp
}

// digestOf returns H_b(msg): a stand-in template digest for bank b.
func digestOf(b pcr.Bank, msg string) []byte {
	h := b.New()
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func allIndexes() []int {
	var out []int
	for i := range 24 {
		out = append(out, i)
	}
	return out
}

// resetValue is a PCR's value after TPM2_Startup(CLEAR) on a PC Client TPM
// (TCG PC Client Platform TPM Profile, PCR attributes): zeros, except
// PCRs 17-22 (locality-restricted, DRTM), which start as all 0xFF.
func resetValue(b pcr.Bank, i int) []byte {
	v := pcr.Zero(b)
	if i >= 17 && i <= 22 {
		for j := range v {
			v[j] = 0xff
		}
	}
	return v
}

func TestBanks(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			uri, sw := be.open(t)
			tp := mustOpen(t, uri)
			got, err := tp.Banks()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, be.banks) {
				t.Errorf("Banks() = %v, want %v", got, be.banks)
			}
			if n := tp.NumPCRs(); n != 24 {
				t.Errorf("NumPCRs() = %d, want 24", n)
			}
			for _, b := range got {
				if n, err := tp.DigestSize(b); err != nil || n != b.Size() {
					t.Errorf("DigestSize(%s) = %d, %v", b, n, err)
				}
			}
			if sw != nil {
				// tpm2_getcap pcrs is the independent oracle.
				if want := sw.AllocatedBanks(t); !slices.Equal(got, want) {
					t.Errorf("Banks() = %v, tpm2_getcap pcrs says %v", got, want)
				}
			}
		})
	}
}

// TestReadAll reads all 24 PCRs of every bank (more than the 8 digests one
// TPM2_PCR_Read returns) right after power-on, and compares with the reset
// values and with tpm2_pcrread.
func TestReadAll(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			uri, sw := be.open(t)
			tp := mustOpen(t, uri)
			got, err := tp.ReadPCRs(be.banks, allIndexes())
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range be.banks {
				for i := range 24 {
					v, ok := got.Get(b, i)
					if !ok || !bytes.Equal(v, resetValue(b, i)) {
						t.Errorf("%s PCR %d = %x (present %v), want %x", b, i, v, ok, resetValue(b, i))
					}
				}
			}
			if len(got.Banks()) != len(be.banks) {
				t.Errorf("ReadPCRs returned banks %v, want %v", got.Banks(), be.banks)
			}
			if sw != nil {
				want := sw.PCRRead(t, "")
				for _, b := range be.banks {
					for i := range 24 {
						w, _ := want.Get(b, i)
						g, _ := got.Get(b, i)
						if !bytes.Equal(g, w) {
							t.Errorf("%s PCR %d = %x, tpm2_pcrread %x", b, i, g, w)
						}
					}
				}
			}
		})
	}
}

// TestExtendAllBanks extends PCR 23 twice and PCR 16 once, each with one
// TPM2_PCR_Extend carrying every bank, and checks every bank against
// pcr.Extend and (swtpm) tpm2_pcrread.
func TestExtendAllBanks(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			uri, sw := be.open(t)
			tp := mustOpen(t, uri)
			want := make(pcr.Set)
			for _, b := range be.banks {
				want.Put(b, 16, pcr.Zero(b))
				want.Put(b, 23, pcr.Zero(b))
			}
			for _, step := range []struct {
				idx int
				msg string
			}{{23, "imago tpm test 1"}, {23, "imago tpm test 2"}, {16, "imago tpm test 3"}} {
				ds := make(map[pcr.Bank][]byte)
				for _, b := range be.banks {
					d := digestOf(b, step.msg)
					ds[b] = d
					old, _ := want.Get(b, step.idx)
					want.Put(b, step.idx, pcr.Extend(b, old, d))
				}
				if err := tp.Extend(step.idx, ds); err != nil {
					t.Fatal(err)
				}
			}
			got, err := tp.ReadPCRs(be.banks, []int{16, 23})
			if err != nil {
				t.Fatal(err)
			}
			checkSet(t, "ReadPCRs", got, want)
			if sw != nil {
				checkSet(t, "tpm2_pcrread", sw.PCRRead(t, ""), want)
			}
		})
	}
}

// TestReadAfterToolExtend: tpm2_pcrextend extends, ReadPCRs reads; the
// values must be what pcr.Extend computes and what tpm2_pcrread reads.
func TestReadAfterToolExtend(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256", "sha384"}})
	s.Start()
	banks := []pcr.Bank{pcr.SHA1, pcr.SHA256, pcr.SHA384}
	want := pcr.Set{}
	spec := "23:"
	for n, b := range banks {
		d := digestOf(b, "tpm2_pcrextend")
		if n > 0 {
			spec += ","
		}
		spec += fmt.Sprintf("%s=%x", b, d)
		want.Put(b, 23, pcr.Extend(b, pcr.Zero(b), d))
	}
	s.PCRExtend(t, spec)
	tp := mustOpen(t, s.URI)
	got, err := tp.ReadPCRs(banks, []int{23})
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, "ReadPCRs", got, want)
	checkSet(t, "tpm2_pcrread", s.PCRRead(t, "sha1:23+sha256:23+sha384:23"), want)
}

// checkSet checks that every value in want is in got.
func checkSet(t *testing.T, what string, got, want pcr.Set) {
	t.Helper()
	for _, b := range want.Banks() {
		for _, i := range want.Indexes(b) {
			w, _ := want.Get(b, i)
			g, ok := got.Get(b, i)
			if !ok || !bytes.Equal(g, w) {
				t.Errorf("%s: %s PCR %d = %x, want %x", what, b, i, g, w)
			}
		}
	}
}

// TestExtendSubset: banks missing from the TPML_DIGEST_VALUES stay as they
// are (TPM 2.0 Part 3 §22.2: only the listed banks are extended).
func TestExtendSubset(t *testing.T) {
	be := swtpmBackend("swtpm-sha1-sha256-sha384", false, pcr.SHA1, pcr.SHA256, pcr.SHA384)
	uri, sw := be.open(t)
	tp := mustOpen(t, uri)
	d := digestOf(pcr.SHA256, "only sha256")
	if err := tp.Extend(16, map[pcr.Bank][]byte{pcr.SHA256: d}); err != nil {
		t.Fatal(err)
	}
	want := pcr.Set{}
	want.Put(pcr.SHA1, 16, pcr.Zero(pcr.SHA1))
	want.Put(pcr.SHA256, 16, pcr.Extend(pcr.SHA256, pcr.Zero(pcr.SHA256), d))
	want.Put(pcr.SHA384, 16, pcr.Zero(pcr.SHA384))
	got, err := tp.ReadPCRs(be.banks, []int{16})
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, "ReadPCRs", got, want)
	checkSet(t, "tpm2_pcrread", sw.PCRRead(t, "sha1:16+sha256:16+sha384:16"), want)
}

func TestExtendRejects(t *testing.T) {
	be := swtpmBackend("swtpm-sha1-sha256", false, pcr.SHA1, pcr.SHA256)
	uri, _ := be.open(t)
	tp := mustOpen(t, uri)
	good := map[pcr.Bank][]byte{pcr.SHA1: digestOf(pcr.SHA1, "x"), pcr.SHA256: digestOf(pcr.SHA256, "x")}
	tests := []struct {
		name string
		idx  int
		ds   map[pcr.Bank][]byte
	}{
		{"no-digests", 23, nil},
		{"short-digest", 23, map[pcr.Bank][]byte{pcr.SHA256: make([]byte, 20)}},
		{"index-24", 24, good},
		{"index-negative", -1, good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tp.Extend(tt.idx, tt.ds); err == nil {
				t.Fatalf("Extend(%d, %v) succeeded", tt.idx, tt.ds)
			}
		})
	}
	// PCR 0 can be extended from locality 0, PCR 17 cannot: the TPM's own
	// refusal comes back as a tpm2.TPMRC (TPM_RC_LOCALITY).
	err := tp.Extend(17, good)
	if !errors.Is(err, tpm2.TPMRCLocality) {
		t.Errorf("Extend(17) = %v, want TPM_RC_LOCALITY", err)
	}
	// Nothing above changed PCR 23.
	got, err := tp.ReadPCRs([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{23})
	if err != nil {
		t.Fatal(err)
	}
	checkSet(t, "ReadPCRs", got, pcr.Set{pcr.SHA1: {23: pcr.Zero(pcr.SHA1)}, pcr.SHA256: {23: pcr.Zero(pcr.SHA256)}})
}

// TestReadUnallocated: a bank the TPM does not have is an error, not a hang.
func TestReadUnallocated(t *testing.T) {
	uri := tpmtest.StartSwtpm(t, "sha256")
	tp := mustOpen(t, uri)
	if s, err := tp.ReadPCRs([]pcr.Bank{pcr.SHA1}, []int{0}); err == nil {
		t.Fatalf("ReadPCRs(sha1) on a sha256-only TPM = %v, want error", s)
	}
	if _, err := tp.ReadPCRs([]pcr.Bank{pcr.SHA256}, []int{24}); err == nil {
		t.Fatal("ReadPCRs(PCR 24) succeeded")
	}
}

// TestNoStartup: an emulator powered on without TPM2_Startup answers
// TPM_RC_INITIALIZE; Open sends Startup(CLEAR) and goes on.
func TestNoStartup(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}, NoStartup: true})
	s.Start()
	tp := mustOpen(t, s.URI)
	banks, err := tp.Banks()
	if err != nil || !slices.Equal(banks, []pcr.Bank{pcr.SHA256}) {
		t.Fatalf("Banks() = %v, %v", banks, err)
	}
	// A second client finds it started (TPM_RC_INITIALIZE from Startup is fine).
	tp2 := mustOpen(t, s.URI)
	if _, err := tp2.Banks(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := tpm.Open("none"); !errors.Is(err, tpm.ErrDisabled) {
		t.Errorf("Open(none) = %v, want ErrDisabled", err)
	}
	if tpm.Available("none") {
		t.Error("Available(none) = true")
	}
	// A tcp port with nothing listening: take a free port and release it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := tpm.Open("tcp://" + addr); !errors.Is(err, tpm.ErrNoTPM) {
		t.Errorf("Open(tcp refused) = %v, want ErrNoTPM", err)
	}
	if tpm.Available("tcp://" + addr) {
		t.Error("Available(tcp refused) = true")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "absent.sock")
	if _, err := tpm.Open("unix://" + sock); !errors.Is(err, tpm.ErrNoTPM) {
		t.Errorf("Open(unix absent) = %v, want ErrNoTPM", err)
	}
	if tpm.Available("unix://" + sock) {
		t.Error("Available(unix absent) = true")
	}
	// A stale socket file (its listener gone) is also "nothing there now".
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ul.(*net.UnixListener).SetUnlinkOnClose(false)
	ul.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	if _, err := tpm.Open("unix://" + sock); !errors.Is(err, tpm.ErrNoTPM) {
		t.Errorf("Open(stale unix socket) = %v, want ErrNoTPM", err)
	}
}

// TestOpenGarbage: something that accepts connections but is not a TPM is a
// failure, not ErrNoTPM.
func TestOpenGarbage(t *testing.T) {
	tests := []struct {
		name  string
		reply []byte
	}{
		{"hangs-up", nil},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n\r\n")},
		{"huge-size", []byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}},
		{"short-size", []byte{0x80, 0x01, 0, 0, 0, 4, 0, 0, 0, 0}},
		{"cut-short", []byte{0x80, 0x01, 0, 0, 0, 64, 0, 0, 0, 0, 1, 2}},
		{"header-only-success", []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var wg sync.WaitGroup
			wg.Go(func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Read(make([]byte, 4096))
					c.Write(tt.reply)
					c.Close()
				}
			})
			_, err = tpm.Open("tcp://" + l.Addr().String())
			if err == nil || errors.Is(err, tpm.ErrNoTPM) {
				t.Errorf("Open = %v, want a non-ErrNoTPM error", err)
			}
			l.Close()
			wg.Wait()
		})
	}
}

// TestDeferredStart is the agent's staged start: the emulator appears after
// the first attempt, goes away, and comes back (a fresh power-on).
func TestDeferredStart(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
	if tpm.Available(s.URI) {
		t.Fatal("Available before start")
	}
	if _, err := tpm.Open(s.URI); !errors.Is(err, tpm.ErrNoTPM) {
		t.Fatalf("Open before start = %v, want ErrNoTPM", err)
	}
	s.Start()
	if !tpm.Available(s.URI) {
		t.Fatal("not Available after start")
	}
	tp := mustOpen(t, s.URI)
	ds := map[pcr.Bank][]byte{pcr.SHA1: digestOf(pcr.SHA1, "a"), pcr.SHA256: digestOf(pcr.SHA256, "a")}
	if err := tp.Extend(23, ds); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if tpm.Available(s.URI) {
		t.Fatal("Available after stop")
	}
	if err := tp.Extend(23, ds); !errors.Is(err, tpm.ErrNoTPM) {
		t.Fatalf("Extend after stop = %v, want ErrNoTPM", err)
	}
	s.Start()
	// The same *TPM reconnects; the restart reset the PCRs.
	if err := tp.Extend(23, ds); err != nil {
		t.Fatal(err)
	}
	got, err := tp.ReadPCRs([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{23})
	if err != nil {
		t.Fatal(err)
	}
	want := pcr.Set{}
	for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
		want.Put(b, 23, pcr.Extend(b, pcr.Zero(b), ds[b]))
	}
	checkSet(t, "after restart", got, want)
	checkSet(t, "tpm2_pcrread after restart", s.PCRRead(t, "sha1:23+sha256:23"), want)
}

// TestSharedSwtpm: two clients of one swtpm (which serves one connection at
// a time) extend concurrently; every extend lands. All extend the same
// digest, so the result does not depend on the order.
func TestSharedSwtpm(t *testing.T) {
	s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha256"}})
	s.Start()
	a, b := mustOpen(t, s.URI), mustOpen(t, s.URI)
	d := digestOf(pcr.SHA256, "shared")
	const perClient = 20
	var wg sync.WaitGroup
	errs := make(chan error, 4*perClient)
	for _, tp := range []*tpm.TPM{a, a, b, b} {
		wg.Go(func() {
			for range perClient {
				if err := tp.Extend(16, map[pcr.Bank][]byte{pcr.SHA256: d}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := pcr.Zero(pcr.SHA256)
	for range 4 * perClient {
		want = pcr.Extend(pcr.SHA256, want, d)
	}
	got := s.PCRRead(t, "sha256:16")
	if v, _ := got.Get(pcr.SHA256, 16); !bytes.Equal(v, want) {
		t.Fatalf("tpm2_pcrread PCR 16 = %x, want %x", v, want)
	}
}

func TestClosed(t *testing.T) {
	uri := tpmtest.StartSwtpm(t)
	tp, err := tpm.Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	if got := tp.String(); got != uri {
		t.Errorf("String() = %q, want %q", got, uri)
	}
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tp.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if _, err := tp.Banks(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Banks after Close = %v, want os.ErrClosed", err)
	}
	if err := tp.Extend(23, map[pcr.Bank][]byte{pcr.SHA256: make([]byte, 32)}); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Extend after Close = %v, want os.ErrClosed", err)
	}
}

// ExampleOpen shows the agent's staged start.
func ExampleOpen() {
	tp, err := tpm.Open("none")
	switch {
	case errors.Is(err, tpm.ErrDisabled):
		fmt.Println("TPM support off")
	case errors.Is(err, tpm.ErrNoTPM):
		fmt.Println("no TPM yet: defer, poll tpm.Available, retry Open")
	case err != nil:
		fmt.Println("fail:", err)
	default:
		defer tp.Close()
	}
	// Output: TPM support off
}

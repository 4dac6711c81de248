package verify

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

// gate is a reader that gives nothing until open is closed: a policy
// that is still being read while Verify reads the list.
type gate struct {
	r    io.Reader
	open chan struct{}
}

func (g *gate) Read(p []byte) (int, error) {
	<-g.open
	return g.r.Read(p)
}

// eofCloser closes a gate when the list has been read to its end.
type eofCloser struct {
	r    io.Reader
	gate *gate
	done bool
}

func (e *eofCloser) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && !e.done {
		e.done = true
		close(e.gate.open)
	}
	return n, err
}

// samePending verifies list under the policy doc twice, compiled first and
// pending (the policy gated until the list is read, so that every entry
// read meanwhile is deferred), and requires the same report and State; it
// returns the pending Policy.
func samePending(t *testing.T, doc, list []byte, o Options, r Round) (*Report, *Policy) {
	return samePendingCap(t, doc, list, o, r, MaxDeferred)
}

func samePendingCap(t *testing.T, doc, list []byte, o Options, r Round, maxDeferred int64) (*Report, *Policy) {
	t.Helper()
	rp, err := runtimepolicy.Compile(bytes.NewReader(doc), runtimepolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.RuntimePolicy = rp
	want, wantState := verifyOnce(t, o, r, bytes.NewReader(list))
	g := &gate{r: bytes.NewReader(doc), open: make(chan struct{})}
	o.RuntimePolicy, o.Pending = nil, runtimepolicy.CompileAsync(g, runtimepolicy.Options{})
	p, err := NewPolicy(o)
	if err != nil {
		t.Fatal(err)
	}
	p.maxDeferred = maxDeferred
	if maxDeferred < MaxDeferred {
		// Once the workers keep all they may, they wait for the policy,
		// and so does the reader for batches: open the gate then.
		go func() {
			for p.deferred.Load() < int64(maxDeferred/(deferredArena+batchEntries*deferredEntrySize))*batchEntries/2 {
				time.Sleep(time.Millisecond)
			}
			close(g.open)
		}()
		r.List = bytes.NewReader(list)
	} else {
		r.List = &eofCloser{r: bytes.NewReader(list), gate: g}
	}
	got, gotState, err := p.Verify(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotState, wantState) {
		t.Fatalf("pending policy:\n%+v\n%+v\ncompiled first:\n%+v\n%+v", got, gotState, want, wantState)
	}
	return got, p
}

func verifyOnce(t *testing.T, o Options, r Round, list io.Reader) (*Report, *State) {
	t.Helper()
	p, err := NewPolicy(o)
	if err != nil {
		t.Fatal(err)
	}
	r.List = list
	rep, st, err := p.Verify(nil, r)
	if err != nil {
		t.Fatal(err)
	}
	return rep, st
}

// With the policy compiled while the list is read (imago verify), the
// verdicts are those of the policy compiled first: every kind of failure,
// in entry order, the boot aggregate (and the bypass rule), many batches.
func TestPendingPolicy(t *testing.T) {
	for _, bypass := range []bool{false, true} {
		t.Run(fmt.Sprintf("bypass=%v", bypass), func(t *testing.T) {
			const n = 6000
			p := runtimepolicy.New()
			p.Excludes = []string{`/tmp/`}
			var list []byte
			v1, v256 := make([]byte, 20), make([]byte, 32)
			wantFail := map[int]string{}
			for i := range n {
				path := fmt.Sprintf("/usr/bin/tool%d", i)
				sum := bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 16)
				pcrIdx := uint32(10)
				switch {
				case i == 0:
					path = bootagg.Name
					sum = bytes.Repeat([]byte{0x5a}, 32)
					if bypass {
						sum = make([]byte, 32)
					}
				case i%997 == 0:
					wantFail[i] = IDNotInAllowlist // not listed
				case i%1009 == 0:
					wantFail[i] = IDRuntimePolicyHash
				case i%1013 == 0:
					path = "/tmp/excluded" // passes
				case i == 4444:
					pcrIdx = 11
					wantFail[i] = IDIMAPCR
				}
				e, err := ima.NewEntry(ima.TemplateIMANG, nil, pcrIdx, ima.DigestNG(ima.HashSHA256, sum), ima.NameNG(path))
				if err != nil {
					t.Fatal(err)
				}
				switch wantFail[i] {
				case IDNotInAllowlist:
				case IDRuntimePolicyHash:
					p.Digests.Set(path, []string{strings.Repeat("ab", 32)})
				default:
					if !(i == 0 && bypass) {
						p.Digests.Set(path, []string{hex.EncodeToString(sum)})
					}
				}
				line := ima.AppendASCII(nil, e)
				if i == 3000 { // a template digest that its data does not hash to
					if line[3] == '0' {
						line[3] = '1'
					} else {
						line[3] = '0'
					}
					wantFail[i] = IDTemplateHash
				}
				list = append(list, line...)
				if pcrIdx == 10 {
					back := lines(t, string(line))[0]
					v1 = pcr.Extend(pcr.SHA1, v1, back.TemplateDigest(pcr.SHA1))
					v256 = pcr.Extend(pcr.SHA256, v256, back.TemplateDigest(pcr.SHA256))
				}
			}
			q := pcr.Set{pcr.SHA1: {10: v1}, pcr.SHA256: {10: v256}}
			rep, pol := samePending(t, p.Marshal(), list, Options{}, Round{Quoted: q, PCRs: q})
			if pol.deferred.Load() < n/2 {
				t.Errorf("%d entries deferred of %d", pol.deferred.Load(), n)
			}
			// Room for two chunks only: the rest waits for the policy.
			_, pol = samePendingCap(t, p.Marshal(), list, Options{}, Round{Quoted: q, PCRs: q}, 2*(deferredArena+batchEntries*deferredEntrySize))
			if d := pol.deferred.Load(); d == 0 || d > 2*batchEntries {
				t.Errorf("%d entries deferred with room for %d", d, 2*batchEntries)
			}
			got := map[int]string{}
			for _, f := range rep.Failures {
				got[f.Entry] = f.ID
			}
			if !reflect.DeepEqual(got, wantFail) || !rep.Matched {
				t.Errorf("failures %v, want %v (matched %v)", got, wantFail, rep.Matched)
			}
			if b := rep.BootAggregate; b == nil || (bypass && b.Verdict != VerdictAdopted) || (!bypass && b.Verdict != "pass") {
				t.Errorf("boot aggregate %+v", b)
			}
		})
	}
}

// The Keylime vectors and the real-kernel captures, pending: the same
// reports (lists with signatures and keyrings wait for the policy where
// they need it).
func TestPendingPolicyCaptures(t *testing.T) {
	for _, c := range []struct{ list, policy string }{
		{kl + "measurements.txt", kl + "runtime-policy-test.json"},
		{kl + "keyrings.txt", kl + "runtime-policy-test.json"},
		{kl + "signatures.txt", kl + "runtime-policy-test.json"},
	} {
		t.Run(filepath.Base(c.list), func(t *testing.T) {
			samePending(t, readFile(t, c.policy), readFile(t, c.list), Options{Keys: loadKeys(t, "rsa2048pub.pem")}, Round{})
		})
	}
	dirs, _ := filepath.Glob(filepath.Join(realkernel, "*", "ascii_runtime_measurements"))
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			doc := policyDoc(t, dir, nil)
			pcrs := capturePCRs(t, dir)
			r := Round{PCRs: pcrs, EventLog: captureEventLog(t, dir)}
			if len(pcrs) > 0 {
				r.Quoted = pcrs
			}
			samePending(t, doc, readFile(t, f), Options{AllowViolations: true}, r)
		})
	}
}

// A policy that cannot be compiled is Verify's error, whatever the list.
func TestPendingPolicyError(t *testing.T) {
	list := readFile(t, kl+"measurements.txt")
	p, err := NewPolicy(Options{Pending: runtimepolicy.CompileAsync(strings.NewReader(`{"meta": {"version": 1}, "digests": {"/a": ["zz"]}}`), runtimepolicy.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	rep, st, err := p.Verify(nil, Round{List: bytes.NewReader(list)})
	var fe *runtimepolicy.FormatError
	if rep != nil || st != nil || !errors.As(err, &fe) || p.PolicyErr() == nil {
		t.Fatalf("%v %v %v", rep, st, err)
	}
}

// The memory kept for deferred entries is counted in full: an entry is no
// larger than deferredEntrySize.
func TestDeferredEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(deferredEntry{}); n > deferredEntrySize {
		t.Fatalf("deferredEntry is %d bytes, counted as %d", n, deferredEntrySize)
	}
}

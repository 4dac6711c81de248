package verify

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imago-ima/imago/eventlog"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

// Lists the real kernel wrote (Debian 6.1 under qemu with swtpm; see
// ../testdata/realkernel/README.md). The oracles are the TPM's PCRs read at
// capture time and the firmware log.
const realkernel = "../testdata/realkernel"

// capturePCRs reads every pcrs-<alg>.txt of a capture.
func capturePCRs(t *testing.T, dir string) pcr.Set {
	t.Helper()
	set := pcr.Set{}
	files, _ := filepath.Glob(filepath.Join(dir, "pcrs-*.txt"))
	for _, f := range files {
		alg := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "pcrs-"), ".txt")
		if strings.Contains(alg, "-") {
			continue // pcrs-sha1-after.txt, pcrs-sha1-appeared.txt: other moments
		}
		b, err := pcr.ParseBank(alg)
		if err != nil {
			t.Fatal(err)
		}
		s, err := pcr.ParseEvmctl(b, readFile(t, f))
		if err != nil {
			t.Fatal(err)
		}
		set.Merge(s)
	}
	return set
}

func captureEventLog(t *testing.T, dir string) pcr.Set {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "binary_bios_measurements"))
	if err != nil {
		return nil
	}
	l, err := eventlog.ReadLog(bytes.NewReader(data))
	if err != nil {
		return nil // TPM 1.2 SHA-1 logs are read elsewhere
	}
	set, _, err := l.Replay()
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func policyFromCapture(t *testing.T, dir string, edit func(*runtimepolicy.Policy)) *runtimepolicy.Compiled {
	t.Helper()
	// Through its JSON, as a user would.
	c, err := runtimepolicy.Compile(bytes.NewReader(policyDoc(t, dir, edit)), runtimepolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// policyDoc is the runtime policy runtime-policy create --from-log writes
// for a capture (its JSON), edited.
func policyDoc(t *testing.T, dir string, edit func(*runtimepolicy.Policy)) []byte {
	t.Helper()
	ld, err := runtimepolicy.FromList(ima.NewListReader(bytes.NewReader(readFile(t, filepath.Join(dir, "ascii_runtime_measurements"))), ima.ReaderOptions{}).All(),
		runtimepolicy.FromListOptions{Keyrings: true, IMABuf: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := runtimepolicy.Create(runtimepolicy.CreateOptions{Lists: []*runtimepolicy.ListDigests{ld}})
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(p)
	}
	return p.Marshal()
}

// A policy made from a capture passes it, in every bank the TPM had and
// with the boot aggregate from the firmware log; one changed digest fails
// exactly that entry.
func TestRealKernelCaptures(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(realkernel, "*"))
	n := 0
	for _, dir := range dirs {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			pcrs := capturePCRs(t, dir)
			evlog := captureEventLog(t, dir)
			rp := policyFromCapture(t, dir, nil)
			bin := readFile(t, filepath.Join(dir, "binary_runtime_measurements"))
			p, err := NewPolicy(Options{RuntimePolicy: rp, AllowViolations: true})
			if err != nil {
				t.Fatal(err)
			}
			asc := readFile(t, filepath.Join(dir, "ascii_runtime_measurements"))
			// Alternate the three ways in: entries from a scanner, the
			// binary list, the ascii list parsed on every core.
			way := 0
			round := func() Round {
				r := Round{PCRs: pcrs, EventLog: evlog}
				switch way++; way % 3 {
				case 1:
					r.Entries = ima.ScanList(bytes.NewReader(bin), ima.ReaderOptions{})
				case 2:
					r.List = bytes.NewReader(bin)
				default:
					r.List = bytes.NewReader(asc)
				}
				if len(pcrs) > 0 {
					r.Quoted = pcrs
				}
				return r
			}
			for range 3 {
				rep, st, err := p.Verify(nil, round())
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Pass() || (len(pcrs) > 0 && !rep.Matched) || st.Next != rep.Read {
					t.Fatalf("policy from the capture (way %d): %+v\n%v", way, rep, rep.Failures)
				}
				if rep.BootAggregate == nil || rep.BootAggregate.Verdict != "pass" {
					t.Errorf("boot aggregate %+v", rep.BootAggregate)
				}
			}
			// Change the digest of one file (not the boot aggregate).
			entries := lines(t, string(readFile(t, filepath.Join(dir, "ascii_runtime_measurements"))))
			victim, path := -1, ""
			for i, e := range entries {
				name, _ := e.Name()
				if i > 0 && !e.IsViolation() && strings.HasPrefix(name, "/") && victim < 0 {
					if _, ok := e.Field(ima.FieldBuf); !ok {
						victim, path = i, name
					}
				}
			}
			rp2 := policyFromCapture(t, dir, func(p *runtimepolicy.Policy) {
				p.Digests.Set(path, []string{strings.Repeat("ab", 32)})
			})
			p2, _ := NewPolicy(Options{RuntimePolicy: rp2, AllowViolations: true})
			rep, _, err := p2.Verify(nil, round())
			if err != nil {
				t.Fatal(err)
			}
			// The same path measured again later fails there too.
			var want []int
			for i, e := range entries {
				if name, _ := e.Name(); name == path && !e.IsViolation() {
					want = append(want, i)
				}
			}
			var got []int
			for _, f := range rep.Failures {
				got = append(got, f.Entry)
				if f.ID != IDRuntimePolicyHash || f.Path != path {
					t.Errorf("failure %v", f)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("failing entries %v, want %v (%s)", got, want, path)
			}
		})
	}
	if n < 10 {
		t.Fatalf("only %d captures in %s", n, realkernel)
	}
}

// The signed capture: with its key alone, the three signed files verify
// (entries 11, 12 and the bad one's own .sig files aside), the file whose
// signature was made over other content fails, and so does every unsigned
// entry (Keylime's rule without a policy).
func TestRealKernelSigned(t *testing.T) {
	dir := filepath.Join(realkernel, "p-ima-sig-signed")
	key, err := digsig.ParseKey(readFile(t, filepath.Join(dir, "x509_ima.pem")))
	if err != nil {
		t.Fatal(err)
	}
	if key.KeyID != 0xb2064dbe {
		t.Errorf("keyid %08x, want b2064dbe", key.KeyID)
	}
	p, _ := NewPolicy(Options{Keys: []digsig.Key{key}})
	entries := lines(t, string(readFile(t, filepath.Join(dir, "ascii_runtime_measurements"))))
	rep, _, err := p.Verify(nil, Round{Entries: Entries(entries), EventLog: captureEventLog(t, dir)})
	if err != nil {
		t.Fatal(err)
	}
	signed := map[string]bool{}
	for i, e := range entries {
		_, raw, err := e.Signature()
		name, _ := e.Name()
		failedHere := slices.ContainsFunc(rep.Failures, func(f Failure) bool { return f.Entry == i })
		switch {
		case i == 0:
			if failedHere {
				t.Errorf("boot aggregate failed: %+v", rep.BootAggregate)
			}
		case err == nil && raw != nil && name == "/signed/data-badsig.txt":
			if !failedHere {
				t.Errorf("entry %d %s: the bad signature passed", i, name)
			}
		case err == nil && raw != nil:
			signed[name] = true
			if failedHere {
				t.Errorf("entry %d %s: a good signature failed", i, name)
			}
		default:
			if !failedHere {
				t.Errorf("entry %d %s: unsigned, passed", i, name)
			}
		}
	}
	if len(signed) != 2 {
		t.Errorf("signed entries that verified: %v", signed)
	}
	for _, f := range rep.Failures {
		if f.ID != IDInvalidSignature {
			t.Errorf("failure %v", f)
		}
	}
}

package verify

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

// Lists Debian's 6.1 kernel kept in TPM-bypass (boot aggregate zeros), which
// imago agent --adopt-kernel-list extended into a TPM that appeared later
// (../adopt/testdata/PROVENANCE), and a bypass list no TPM ever held. The
// oracle is the TPM: its PCRs as the guest kernel read them from sysfs.
const (
	adoptedCaptures = "../adopt/testdata/realkernel-*"
	bypassNeverHeld = "../adopt/testdata/bypass-6.1"
)

// capturePCRsAt reads pcrs-<alg><suffix>.txt of a capture.
func capturePCRsAt(t *testing.T, dir, suffix string) pcr.Set {
	t.Helper()
	set := pcr.Set{}
	files, _ := filepath.Glob(filepath.Join(dir, "pcrs-*"+suffix+".txt"))
	for _, f := range files {
		alg := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "pcrs-"), suffix+".txt")
		b, err := pcr.ParseBank(alg)
		if err != nil {
			continue
		}
		s, err := pcr.ParseEvmctl(b, readFile(t, f))
		if err != nil {
			t.Fatal(err)
		}
		set.Merge(s)
	}
	if len(set) == 0 {
		t.Fatalf("%s: no pcrs-*%s.txt", dir, suffix)
	}
	return set
}

func isAdopted(b *BootAggregateResult) bool {
	return b != nil && b.Verdict == VerdictAdopted && b.Rule == bootagg.Adopted && strings.Contains(b.Note, "boot_aggregate_late")
}

// An adopted list: every bank the TPM had matches PCR 10, and the zero
// boot aggregate is reported as adopted (neither a failure nor a plain
// pass), with a policy or without, with the list whole or in rounds (the
// attestation service's path) whose first quote predates most of the
// adoption.
func TestAdoptedList(t *testing.T) {
	dirs, _ := filepath.Glob(adoptedCaptures)
	if len(dirs) < 2 {
		t.Fatalf("adopted captures %v: want both", dirs)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			final := capturePCRs(t, dir)
			bin := readFile(t, filepath.Join(dir, "binary_runtime_measurements"))
			asc := readFile(t, filepath.Join(dir, "ascii_runtime_measurements"))
			plain, _ := NewPolicy(Options{AllowViolations: true})
			withPolicy, _ := NewPolicy(Options{AllowViolations: true, RuntimePolicy: policyFromCapture(t, dir, nil)})
			// A policy that names a real boot aggregate: the zero one of an
			// adopted list is no failure (its evidence is the adopter's list).
			realAgg, _ := NewPolicy(Options{AllowViolations: true, RuntimePolicy: policyFromCapture(t, dir, func(p *runtimepolicy.Policy) {
				p.Digests.Set(bootagg.Name, []string{strings.Repeat("5a", 32)})
			})})
			for name, p := range map[string]*Policy{"no policy": plain, "policy": withPolicy, "policy with a real boot aggregate": realAgg} {
				for way, r := range []Round{
					{List: bytes.NewReader(bin)},
					{List: bytes.NewReader(asc)},
					{Entries: ima.ScanList(bytes.NewReader(bin), ima.ReaderOptions{})},
				} {
					r.Quoted, r.PCRs = final, final
					rep, st, err := p.Verify(nil, r)
					if err != nil {
						t.Fatal(err)
					}
					if !rep.Pass() || !rep.Matched || rep.Consumed != rep.Read || len(rep.PCRs) != len(final) || !isAdopted(rep.BootAggregate) {
						t.Fatalf("%s, way %d: pass %v matched %v %d/%d pcrs %d boot %+v\n%v", name, way, rep.Pass(), rep.Matched,
							rep.Consumed, rep.Read, len(rep.PCRs), rep.BootAggregate, rep.Failures)
					}
					if st.BootAggregate != VerdictAdopted {
						t.Errorf("State.BootAggregate %q", st.BootAggregate)
					}
				}
			}

			// Rounds, sha256 quoted: a quote taken with PCR 10 still zeros
			// covers no entry of the 18 listed when the TPM appeared (nothing
			// is judged yet); the sha256 PCR 10 read
			// just after the TPM appeared (the banks were read one by one
			// while adoption ran, so only one bank makes a quote) covers a
			// prefix; the last one the rest.
			entries := lines(t, string(asc))
			only256 := func(s pcr.Set) pcr.Set {
				v, ok := s.Get(pcr.SHA256, 10)
				if !ok {
					t.Fatal("no sha256 PCR 10")
				}
				return pcr.Set{pcr.SHA256: {10: v}}
			}
			zeros := pcr.Set{pcr.SHA256: {10: make([]byte, 32)}}
			rep, st, err := withPolicy.Verify(nil, Round{Entries: Entries(entries[:18]), Quoted: zeros})
			if err != nil || !rep.Matched || rep.Consumed != 0 || rep.BootAggregate != nil || st.Next != 0 || !rep.Pass() {
				t.Fatalf("zero quote: %v %+v %+v", err, rep, st)
			}
			rep, st, err = withPolicy.Verify(st, Round{Entries: Entries(entries), Quoted: only256(capturePCRsAt(t, dir, "-appeared"))})
			if err != nil || !rep.Matched || rep.Consumed == 0 || rep.Consumed == len(entries) || !isAdopted(rep.BootAggregate) || !rep.Pass() {
				t.Fatalf("quote when the TPM appeared: %v %+v %+v", err, rep, st)
			}
			rep, st, err = withPolicy.Verify(st, Round{Entries: Entries(entries[st.Next:]), Quoted: only256(final)})
			if err != nil || !rep.Matched || st.Next != len(entries) || !rep.Pass() || st.BootAggregate != VerdictAdopted {
				t.Fatalf("last quote: %v %+v %+v", err, rep, st)
			}
		})
	}
}

// The negative cases of the same rule (bootagg.CheckBypass): a bypass list
// no TPM holds, and an adopted list whose PCRs do not replay, fail, and are
// said to be TPM-bypass; without PCR values the zero aggregate is reported,
// never passed silently.
func TestBypassNotHeld(t *testing.T) {
	dirs, _ := filepath.Glob(adoptedCaptures)
	dir := dirs[0]
	final := capturePCRs(t, dir)
	p, _ := NewPolicy(Options{AllowViolations: true})
	bypassed := func(rep *Report, fails bool) {
		t.Helper()
		b := rep.BootAggregate
		if b == nil || b.Verdict == VerdictAdopted || b.Rule != "no TPM (zeros)" || !strings.HasPrefix(b.Note, "TPM-bypass") {
			t.Fatalf("boot aggregate %+v", b)
		}
		if got := len(rep.Failures) > 0 && rep.Failures[0].Entry == 0 && rep.Failures[0].ID == IDRuntimePolicyHash; got != fails || (b.Verdict == "fail") != fails {
			t.Fatalf("boot aggregate failure %v, want %v: %+v %v", got, fails, b, rep.Failures)
		}
	}

	// The real bypass list of a boot without TPM, against the TPM of
	// another boot: PCR 10 mismatches, the zero aggregate fails.
	never := readFile(t, filepath.Join(bypassNeverHeld, "binary_runtime_measurements"))
	rep, _, err := p.Verify(nil, Round{List: bytes.NewReader(never), Quoted: final, PCRs: final})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass() || rep.Matched {
		t.Fatalf("bypass list never held passed: %+v", rep)
	}
	bypassed(rep, true)

	// The adopted list against PCRs that do not replay: one bank changed.
	bin := readFile(t, filepath.Join(dir, "binary_runtime_measurements"))
	for _, b := range final.Banks() {
		bad := pcr.Set{}
		bad.Merge(final)
		v, _ := final.Get(b, 10)
		v = bytes.Clone(v)
		v[0] ^= 1
		bad.Put(b, 10, v)
		rep, _, err := p.Verify(nil, Round{List: bytes.NewReader(bin), Quoted: bad, PCRs: bad})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Pass() || rep.Matched {
			t.Fatalf("%s PCR 10 changed: passed", b)
		}
		bypassed(rep, true)
	}

	// No PCR values: reported as TPM-bypass; unchecked without a policy,
	// failed by a policy that does not list zeros.
	rep, _, err = p.Verify(nil, Round{List: bytes.NewReader(never)})
	if err != nil || rep.BootAggregate == nil || rep.BootAggregate.Verdict != "unchecked" {
		t.Fatalf("%v %+v", err, rep.BootAggregate)
	}
	bypassed(rep, false)
	strict, _ := NewPolicy(Options{RuntimePolicy: policyFromCapture(t, bypassNeverHeld, func(p *runtimepolicy.Policy) {
		p.Digests.Set(bootagg.Name, []string{strings.Repeat("5a", 32)})
	})})
	rep, _, _ = strict.Verify(nil, Round{List: bytes.NewReader(never)})
	bypassed(rep, true)
	if rep.FailedEntries != 1 || rep.Pass() {
		t.Fatalf("%+v", rep)
	}
}

// CheckBootAggregate, as the attestation service calls it: only a whole
// zero digest of its algorithm's size, at the list's first entry, held by
// the TPM, is adopted.
func TestCheckBootAggregateBypass(t *testing.T) {
	p, _ := NewPolicy(Options{})
	pcrs := pcr.Set{pcr.SHA256: {0: make([]byte, 32)}}
	zero := ima.Digest{Alg: ima.HashSHA256, Sum: make([]byte, 32)}
	for _, c := range []struct {
		name  string
		index int
		d     ima.Digest
		held  bool
		want  string
	}{
		{bootagg.Name, 0, zero, true, VerdictAdopted},
		{bootagg.NameLate, 0, zero, true, VerdictAdopted},
		{bootagg.Name, 0, ima.Digest{Alg: ima.HashSHA1, Sum: make([]byte, 20)}, true, VerdictAdopted},
		{bootagg.Name, 0, zero, false, "fail"},
		{bootagg.Name, 3, zero, true, "fail"},                                                   // not the first entry
		{bootagg.Name, 0, ima.Digest{Alg: ima.HashSHA256, Sum: make([]byte, 20)}, true, "fail"}, // zeros of the wrong size
		{bootagg.Name, 0, ima.Digest{Alg: ima.HashSHA256, Sum: append(make([]byte, 31), 1)}, true, "fail"},
	} {
		res, f := p.CheckBootAggregate(c.index, c.name, c.d, nil, pcrs, c.held)
		if res.Verdict != c.want || (f != nil) != (c.want == "fail") {
			t.Errorf("%s at %d %s held %v: %+v %v, want %s", c.name, c.index, c.d.Alg, c.held, res, f, c.want)
		}
	}
}

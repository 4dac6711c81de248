package verify

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

const kl = "testdata/keylime/"

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadPolicy(t testing.TB, name string) *runtimepolicy.Compiled {
	t.Helper()
	if name == "" {
		return nil
	}
	c, err := runtimepolicy.Compile(bytes.NewReader(readFile(t, kl+name)), runtimepolicy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadKeys(t testing.TB, names ...string) []digsig.Key {
	t.Helper()
	var out []digsig.Key
	for _, n := range names {
		k, err := digsig.ParseKey(readFile(t, kl+n))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

// lines returns the entries of an ascii list text.
func lines(t testing.TB, text string) []*ima.Entry {
	t.Helper()
	var out []*ima.Entry
	for e, err := range ima.NewASCIIReader(strings.NewReader(text), ima.ReaderOptions{}).All() {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func run(t testing.TB, o Options, entries []*ima.Entry) *Report {
	t.Helper()
	p, err := NewPolicy(o)
	if err != nil {
		t.Fatal(err)
	}
	rep, _, err := p.Verify(nil, Round{Entries: Entries(entries)})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// Keylime's test_ima_verification.py asserts these verdicts of
// process_measurement_list; imago gives the same.
func TestKeylimeVerificationVectors(t *testing.T) {
	meas := string(readFile(t, kl+"measurements.txt"))
	sigs := string(readFile(t, kl+"signatures.txt"))
	sigLines := strings.SplitAfter(strings.TrimSpace(sigs), "\n")
	bad := string(readFile(t, kl+"bad-signatures.txt"))
	keyrings := string(readFile(t, kl+"keyrings.txt"))
	rsa := []string{"rsa2048pub.pem"}
	both := []string{"rsa2048pub.pem", "secp256k1.pem"}
	for _, tc := range []struct {
		name   string
		list   string
		policy string
		keys   []string
		pass   bool
	}{
		{"no policy, no keyring", meas, "", nil, true},
		{"policy", meas, "runtime-policy-test.json", nil, true},
		{"empty policy", meas, "empty-runtime-policy.json", nil, false},
		{"rsa key, rsa entry", sigLines[0], "", rsa, true},
		{"rsa key, ec entry", sigLines[1], "", rsa, false},
		{"both keys", sigs, "", both, true},
		{"keyring entry in the policy", keyrings, "runtime-policy-test.json", nil, true},
		{"combined, policy", meas + sigs, "runtime-policy-test.json", nil, true},
		{"combined, keys only", meas + sigs, "", both, false},
		{"combined, policy and keys", meas + sigs, "runtime-policy-test.json", both, true},
		{"valid signature, wrong policy hash", sigs, "runtime-policy-wrong.json", both, true},
		{"valid signature, not in policy", sigs, "empty-runtime-policy.json", both, true},
		{"no key, right hash", sigs, "runtime-policy-test.json", nil, true},
		{"excluded, wrong hashes", meas, "runtime-policy-wrong-with-excludes.json", nil, true},
		{"excluded, signatures", sigs, "runtime-policy-with-excludes.json", both, true},
		{"excluded, wrong hashes, keys", meas, "runtime-policy-wrong-with-excludes.json", both, true},
		{"malformed signature, excluded", bad, "runtime-policy-with-excludes.json", nil, false},
		{"malformed signature, in policy", bad, "runtime-policy-test.json", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := run(t, Options{RuntimePolicy: loadPolicy(t, tc.policy), Keys: loadKeys(t, tc.keys...)}, lines(t, tc.list))
			if rep.Pass() != tc.pass {
				t.Errorf("pass %v, want %v: %v", rep.Pass(), tc.pass, rep.Failures)
			}
		})
	}
}

// The failure ids are Keylime's.
func TestFailureIDs(t *testing.T) {
	meas := lines(t, string(readFile(t, kl+"measurements.txt")))
	rep := run(t, Options{RuntimePolicy: loadPolicy(t, "runtime-policy-wrong.json")}, meas)
	if rep.FailureCount != 3 || rep.Failures[0].ID != IDNotInAllowlist || rep.Failures[0].Entry != 0 || rep.Failures[1].Path != "/lib/modules/5.4.48-openpower1/kernel/drivers/usb/common/usb-common.ko" {
		t.Errorf("failures %v", rep.Failures)
	}
	sigs := lines(t, string(readFile(t, kl+"signatures.txt")))
	rep = run(t, Options{RuntimePolicy: loadPolicy(t, "runtime-policy-wrong.json")}, sigs)
	if rep.FailureCount != 2 || rep.Failures[0].ID != IDRuntimePolicyHash || rep.Failures[0].Expected[0] != "bad05d13792292e202dbf69a6f1b07bc8a02f01424db8489ba7bb7d43c0290ef" {
		t.Errorf("failures %v", rep.Failures)
	}
	rep = run(t, Options{Keys: loadKeys(t, "rsa2048pub.pem")}, sigs)
	if rep.FailureCount != 1 || rep.Failures[0].ID != IDInvalidSignature || rep.Failures[0].Path != "/usr/bin/zmore" {
		t.Errorf("failures %v", rep.Failures)
	}
	rep = run(t, Options{RuntimePolicy: loadPolicy(t, "runtime-policy-test.json")}, lines(t, string(readFile(t, kl+"bad-signatures.txt"))))
	if rep.FailureCount != 1 || rep.Failures[0].ID != IDTemplateHash {
		t.Errorf("failures %v", rep.Failures)
	}
}

// The policy's verification-keys verify signatures (Keylime's tenant
// keyring), with the keyids the policy states.
func TestVerificationKeys(t *testing.T) {
	sigs := lines(t, string(readFile(t, kl+"signatures.txt")))
	rep := run(t, Options{RuntimePolicy: loadPolicy(t, "runtime-policy-with-verification-keys.json")}, sigs)
	if !rep.Pass() {
		t.Errorf("failures %v", rep.Failures)
	}
}

// test_iterative_attestation: entries fed one round at a time, each with
// the running SHA-1 PCR 10 as quote, advance the State one entry a round;
// an empty round with the same quote matches without advancing.
func TestIterativeRounds(t *testing.T) {
	meas := lines(t, string(readFile(t, kl+"measurements.txt")))
	p, err := NewPolicy(Options{})
	if err != nil {
		t.Fatal(err)
	}
	running := make([]byte, 20)
	st := &State{}
	for i, e := range meas {
		h := sha1.Sum(append(append([]byte(nil), running...), e.Digest...))
		running = h[:]
		q := pcr.Set{pcr.SHA1: {10: running}}
		rep, next, err := p.Verify(st, Round{Entries: Entries(meas[i : i+1]), Quoted: q})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Pass() || !rep.Matched || rep.Consumed != 1 || next.Next != i+1 {
			t.Fatalf("round %d: %+v, state %+v", i, rep, next)
		}
		// The state survives JSON.
		b, _ := next.Marshal()
		if st, err = ParseState(b); err != nil {
			t.Fatal(err)
		}
	}
	rep, next, err := p.Verify(st, Round{Entries: Entries(nil), Quoted: pcr.Set{pcr.SHA1: {10: running}}})
	if err != nil || !rep.Pass() || next.Next != len(meas) {
		t.Fatalf("empty round: %v %+v %+v", err, rep, next)
	}
	wrong := bytes.Clone(running)
	wrong[0] ^= 1
	rep, next, err = p.Verify(st, Round{Entries: Entries(nil), Quoted: pcr.Set{pcr.SHA1: {10: wrong}}})
	if err != nil || rep.Pass() || rep.Failures[0].ID != IDPCRMismatch || next.Next != len(meas) {
		t.Fatalf("empty round, other PCR: %v %+v %+v", err, rep, next)
	}
	if hex.EncodeToString(running) != next.PCRs[0].Value {
		t.Errorf("state PCR %s, want %x", next.PCRs[0].Value, running)
	}
}

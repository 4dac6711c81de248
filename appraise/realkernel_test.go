package appraise

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// TestRoundRealKernel judges what Debian's 6.1 kernel wrote under qemu with
// swtpm (testdata/realkernel): its binary list and SeaBIOS's event log, with
// a quote over the PCR values the guest read from sysfs at capture (an
// emulated TPM set to them signs it). The list replays to the quote, the
// event log to PCR 0-9 and the boot aggregate; a changed event log and a
// policy without one file fail with the right ids.
func TestRoundRealKernel(t *testing.T) {
	for _, capture := range []string{"i-tpm-crb", "e-sha256-bank"} {
		t.Run(capture, func(t *testing.T) {
			dir := filepath.Join("..", "testdata", "realkernel", capture)
			read := func(n string) []byte {
				b, err := os.ReadFile(filepath.Join(dir, n))
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			pcrs := make(pcr.Set)
			for _, b := range []pcr.Bank{pcr.SHA1, pcr.SHA256} {
				data, err := os.ReadFile(filepath.Join(dir, "pcrs-"+b.String()+".txt"))
				if os.IsNotExist(err) {
					continue
				}
				s, err := pcr.ParseEvmctl(b, data)
				if err != nil {
					t.Fatal(err)
				}
				pcrs.Merge(s)
			}
			tp, err := softtpm.New(nil, "")
			if err != nil {
				t.Fatal(err)
			}
			tp.SetPCRs(pcrs)
			akPub, _ := tp.AKPublic()
			ak, _ := quote.PublicKey(akPub)
			list, eventLog := read("binary_runtime_measurements"), read("binary_bios_measurements")
			policy := policyOf(t, list)

			sel := quote.NewSelection(pcrs.Banks(), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
			ch := Challenge{Nonce: []byte("real kernel"), Selection: sel, EventLog: true}
			q, err := tp.Quote(ch.Nonce, sel)
			if err != nil {
				t.Fatal(err)
			}
			ev := &attest.Evidence{Quote: attest.Quote{Attest: q.Attest, Signature: q.Signature}, PCRs: attest.PCRValues(q.PCRs), List: list, EventLog: eventLog}
			pol, err := CompilePolicy(policy(""), nil, PolicyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			o := Round(pol, ak, State{}, ch, ev)
			entries := strings.Count(string(read("ascii_runtime_measurements")), "\n")
			if o.Verdict != attest.VerdictPass || !o.State.BootLog || o.State.Next() == 0 || o.State.Next() > uint64(entries) {
				t.Fatalf("capture: %+v (list has %d entries)", o, entries)
			}

			bad := slices.Clone(eventLog)
			bad[len(bad)-5] ^= 0xff // the last event's data: its digest no longer matches
			ev2 := *ev
			ev2.EventLog = bad
			if o := Round(pol, ak, State{}, ch, &ev2); o.Verdict != attest.VerdictFail || !slices.Contains(ids(o), IDBootPCRMismatch) && !slices.Contains(ids(o), IDEventLog) {
				t.Fatalf("changed event log: %+v", o)
			}

			pol2, _ := CompilePolicy(policy("/bin/busybox"), nil, PolicyOptions{})
			o = Round(pol2, ak, State{}, ch, ev)
			if o.Verdict != attest.VerdictFail || len(o.Failures) == 0 || o.Failures[0].Path != "/bin/busybox" {
				t.Fatalf("policy without /bin/busybox: %+v", o)
			}
		})
	}
}

// policyOf returns a function making a Keylime policy from a list's
// entries, with one path's digest changed.
func policyOf(t *testing.T, list []byte) func(changed string) []byte {
	t.Helper()
	entries, err := decodeList(list)
	if err != nil {
		t.Fatal(err)
	}
	return func(changed string) []byte {
		d := map[string][]string{}
		for _, e := range entries {
			if e.IsViolation() {
				continue
			}
			dg, err := e.FileDigest()
			if err != nil {
				t.Fatal(err)
			}
			n, _ := e.Name()
			h := hex.EncodeToString(dg.Sum)
			if n == changed {
				h = strings.Repeat("0", len(h))
			}
			d[n] = append(d[n], h)
		}
		b, _ := json.Marshal(map[string]any{"meta": map[string]int{"version": 1}, "digests": d})
		return b
	}
}

package adopt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imago-ima/imago/internal/realkernel"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
)

// guestScript is the real-kernel proof, run by the guest's /init: the kernel
// booted with no TPM and ima_policy=tcb (TPM-bypass); files are read and a
// violation caused, the agent starts with --adopt-kernel-list, a TPM
// appears (tpm_vtpm_proxy + swtpm in the guest), more reads and a
// violation, a burst of reads during which the agent is killed with SIGKILL
// and started again, more reads, and SIGTERM. Then the PCRs and the list.
// Scratch files live on tmpfs (/run, $OUT), which tcb does not measure.
const guestScript = realkernel.Shell + `
AG="/bin/imago agent --tpm auto --adopt-kernel-list --adopt-interval 200ms --pcr 11 --state-dir /run/imago/state --runtime-dir /run/imago/ima --socket /run/imago/agent.sock --tpm-wait 1h --log-level debug"
fail() { echo "FAIL: $*"; exit 1; }
wait_log() { # PATTERN FILE SECS
	n=0
	while ! grep -q "$1" "$2"; do
		[ $n -ge $(($3 * 10)) ] && return 1
		sleep 0.1
		n=$((n + 1))
	done
}
count() { cat /sys/kernel/security/ima/runtime_measurements_count; }

# Before the TPM: reads, and an open-writers violation.
cat /etc/fixture/before-1 /etc/fixture/before-2 > /dev/null
exec 3>> /etc/fixture/viol-before
cat /etc/fixture/viol-before > /dev/null
exec 3>&-
mkdir -p /run/imago
$AG > $OUT/agent-1.log 2>&1 &
AGENT=$!
wait_log 'will be adopted when a TPM appears' $OUT/agent-1.log 600 || fail "the agent is not waiting to adopt"
count > $OUT/count-before-tpm

# The TPM appears.
insmod ` + realkernel.VTPMModule + ` || fail insmod
cp -r ` + realkernel.SwtpmStateDir + `/tpm /run/tpm
swtpm chardev --vtpm-proxy --tpm2 --tpmstate dir=/run/tpm --flags not-need-init,startup-clear > $OUT/swtpm.log 2>&1 &
SWTPM=$!
wait_for /sys/class/tpm/tpm0/pcr-sha256 600 || fail "no TPM appeared"
save_pcrs -appeared
wait_log 'caught up' $OUT/agent-1.log 600 || fail "adoption did not catch up"

# After the TPM: reads, and a ToMToU violation.
cat /etc/fixture/after-1 /etc/fixture/after-2 > /dev/null
exec 4< /etc/fixture/tomtou
echo changed >> /etc/fixture/tomtou
exec 4<&-

# A burst of reads, paced so that it is still being listed when the agent is
# killed: kill -9 the agent while it adopts them (entries are then listed that
# it never saw, whatever the machine's speed); start it again.
c=$(count)
(for f in /etc/burst/*; do cat $f; sleep 0.01; done > /dev/null) &
BURST=$!
wait_log "msg=extended .*entry=$((c + 20)) " $OUT/agent-1.log 600 || fail "the burst is not being adopted"
kill -9 $AGENT
wait $AGENT
kill -0 $BURST 2>/dev/null || echo "burst already over at the kill" > $OUT/burst-over
wait $BURST
count > $OUT/count-at-kill
$AG > $OUT/agent-2.log 2>&1 &
AGENT=$!
wait_log 'caught up' $OUT/agent-2.log 600 || fail "the restarted agent did not catch up"
cat /etc/fixture/after-restart-1 /etc/fixture/after-restart-2 > /dev/null
c=$(count)
wait_log "msg=extended .*entry=$c " $OUT/agent-2.log 600 || fail "the last reads were not adopted"
/bin/imago status --json --socket /run/imago/agent.sock > $OUT/status.json
kill -TERM $AGENT
wait $AGENT
echo $? > $OUT/agent-exit
save_pcrs ''
save_ima ''
cp /run/imago/state/binary_runtime_measurements $OUT/agent-list
kill $SWTPM
`

// guestFiles are the files the script reads (on the ramfs root: measured).
func guestFiles() []realkernel.File {
	var fs []realkernel.File
	for _, n := range []string{"before-1", "before-2", "viol-before", "after-1", "after-2", "tomtou", "after-restart-1", "after-restart-2"} {
		fs = append(fs, realkernel.File{Path: "/etc/fixture/" + n, Data: []byte("fixture " + n + "\n")})
	}
	for i := range 400 {
		fs = append(fs, realkernel.File{Path: fmt.Sprintf("/etc/burst/f-%03d", i), Data: []byte(fmt.Sprintf("burst %d\n", i))})
	}
	return fs
}

// TestRealKernelAdoption boots Debian's 6.1 kernel without a TPM (the
// kernel falls into TPM-bypass), makes a TPM appear in the guest and adopts
// the kernel's list with the static agent. The oracles: the TPM's PCRs as
// the guest's kernel exposes them in sysfs, evmctl, and the Python replay.
func TestRealKernelAdoption(t *testing.T) {
	testenv.SkipShort(t)
	realkernel.Require(t, true)
	testenv.Tool(t, "evmctl")
	testenv.Tool(t, "python3")
	imago := realkernel.BuildImago(t)
	for _, c := range []struct {
		name  string
		banks []string
	}{
		{"sha1+sha256", []string{"sha1", "sha256"}},
		{"sha1+sha256+sha384+sha512", []string{"sha1", "sha256", "sha384", "sha512"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // two guests, one CPU each
			res, err := realkernel.Boot(context.Background(), realkernel.Config{Dir: t.TempDir(), Timeout: 15 * time.Minute,
				Cmdline:     []string{"ima_policy=tcb", "ima_template=ima-ng", "ima_hash=sha256"},
				Imago:       imago,
				SwtpmStates: map[string][]string{"tpm": c.banks},
				Files:       guestFiles(),
				Script:      guestScript})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("boot: %v", res.Elapsed)
			if res.Status != 0 {
				t.Fatalf("guest script exit %d:\n%s\nagent-1:\n%s\nagent-2:\n%s", res.Status, res.Out["run.log"],
					tail(res.Out["agent-1.log"]), tail(res.Out["agent-2.log"]))
			}
			checkRealKernel(t, res.Out, filepath.Join(res.Dir, "out"), c.banks)
			if dir := os.Getenv("IMAGO_ADOPT_CAPTURE"); dir != "" {
				saveCapture(t, res, filepath.Join(dir, "realkernel-"+strings.ReplaceAll(c.name, "+", "-")))
			}
		})
	}
}

// TestRealKernelCaptures runs the same checks on the committed captures of
// that test (testdata/realkernel-*, see their PROVENANCE), without qemu.
func TestRealKernelCaptures(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/realkernel-*")
	if len(dirs) == 0 {
		t.Fatal("no testdata/realkernel-* capture")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			out := map[string][]byte{}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var banks []string
			for _, e := range ents {
				data, err := os.ReadFile(filepath.Join(dir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				out[e.Name()] = data
				if b, ok := strings.CutPrefix(e.Name(), "pcrs-"); ok && !strings.Contains(b, "-") {
					banks = append(banks, strings.TrimSuffix(b, ".txt"))
				}
			}
			out["dmesg.txt"] = out["dmesg-ima-tpm.txt"]
			checkRealKernel(t, out, dir, banks)
		})
	}
}

// checkRealKernel checks a boot's outputs (out, also as files in dir).
func checkRealKernel(t *testing.T, res map[string][]byte, out string, banks []string) {
	if !bytes.Contains(res["dmesg.txt"], []byte("No TPM chip found, activating TPM-bypass!")) {
		t.Fatal("dmesg does not say TPM-bypass")
	}
	list := filepath.Join(out, "binary_runtime_measurements")
	es := readList(t, list)
	n := len(es)
	if c := atoi(t, res["runtime_measurements_count"]); c != n {
		t.Fatalf("count %d, list %d", c, n)
	}
	if _, err := CheckFirst(es[0]); err != nil {
		t.Fatalf("the kernel's list is not a bypass list: %v", err)
	}
	// Where the TPM appeared, and what was listed on either side of it.
	appeared := regexp.MustCompile(`msg="a TPM appeared: .* listed=(\d+) `).FindSubmatch(res["agent-1.log"])
	if appeared == nil {
		t.Fatalf("agent-1 did not log the TPM's appearance:\n%s", tail(res["agent-1.log"]))
	}
	at := atoi(t, appeared[1])
	index := map[string]int{}
	viol := []int{}
	for i, e := range es {
		name, _ := e.Name()
		index[name] = i
		if e.IsViolation() {
			viol = append(viol, i)
		}
	}
	for _, f := range []string{"before-1", "before-2"} {
		if i, ok := index["/etc/fixture/"+f]; !ok || i >= at {
			t.Errorf("%s at entry %d (listed: %v), the TPM appeared at %d", f, i, ok, at)
		}
	}
	for _, f := range []string{"after-1", "after-2", "after-restart-1", "after-restart-2"} {
		if i, ok := index["/etc/fixture/"+f]; !ok || i < at {
			t.Errorf("%s at entry %d (listed: %v), the TPM appeared at %d", f, i, ok, at)
		}
	}
	if len(viol) != 2 || viol[0] >= at || viol[1] < at {
		t.Errorf("violations at %v, want one on each side of %d", viol, at)
	}
	// The kill -9 landed in the middle of the burst, and the restart resumed
	// exactly where the TPM stood.
	resumed := regexp.MustCompile(`msg="resuming: .* held=(\d+) listed=(\d+) appeared_at=(\d+)`).FindSubmatch(res["agent-2.log"])
	if resumed == nil {
		t.Fatalf("agent-2 did not resume:\n%s", tail(res["agent-2.log"]))
	}
	held, listed := atoi(t, resumed[1]), atoi(t, resumed[2])
	if held <= index["/etc/fixture/after-2"] || held >= listed || atoi(t, resumed[3]) != at {
		t.Errorf("resumed with held=%d listed=%d appeared_at=%s (TPM appeared at %d): not mid-follow", held, listed, resumed[3], at)
	}
	t.Logf("%d entries; the TPM appeared at %d; killed with %d of %d in the TPM; violations %v", n, at, held, listed, viol)
	if got := strings.TrimSpace(string(res["agent-exit"])); got != "0" {
		t.Errorf("the agent exited %s on SIGTERM", got)
	}
	// The TPM: every bank's PCR 10 is the replay of the whole list; PCR 0-9
	// are what they were when the TPM appeared (zeros); nothing else moved.
	set := make(pcr.Set)
	var bs []pcr.Bank
	for _, name := range banks {
		b, _ := pcr.ParseBank(name)
		bs = append(bs, b)
		now, err := pcr.ParseEvmctl(b, res["pcrs-"+name+".txt"])
		if err != nil {
			t.Fatalf("pcrs-%s.txt: %v", name, err)
		}
		then, err := pcr.ParseEvmctl(b, res["pcrs-"+name+"-appeared.txt"])
		if err != nil {
			t.Fatalf("pcrs-%s-appeared.txt: %v", name, err)
		}
		for i := range 10 {
			if !bytes.Equal(now[b][i], then[b][i]) || !isZero(now[b][i]) {
				t.Errorf("%s PCR %d: %x when the TPM appeared, %x at the end", name, i, then[b][i], now[b][i])
			}
		}
		set.Merge(now)
	}
	want := oracleReplay(t, list, bs...)
	for _, b := range bs {
		if got, _ := set.Get(b, 10); !bytes.Equal(got, want[b][10]) {
			t.Errorf("%s PCR 10 (sysfs) %x, the list replays to %x", b, got, want[b][10])
		}
	}
	for b, e := range evmctlEntry(t, list, set) {
		if e != n {
			t.Errorf("evmctl %s: succeed at entry %d, the list has %d", b, e, n)
		}
	}
	checkAgentList(t, res, out, set, bs, at)
}

// checkAgentList checks the agent's own list (PCR 11): it replays to the
// TPM, begins with boot_aggregate_late as evmctl ima_boot_aggregate
// computes it from the TPM's PCRs, and then records the adoption; and the
// agent's status shows the adoption.
func checkAgentList(t *testing.T, res map[string][]byte, out string, set pcr.Set, banks []pcr.Bank, at int) {
	own := readList(t, filepath.Join(out, "agent-list"))
	want := oracleReplay(t, filepath.Join(out, "agent-list"), banks...)
	for _, b := range banks {
		if got, _ := set.Get(b, 11); !bytes.Equal(got, want[b][11]) {
			t.Errorf("%s PCR 11 %x, the agent's list replays to %x", b, got, want[b][11])
		}
	}
	if len(own) < 2 {
		t.Fatalf("the agent's list has %d entries", len(own))
	}
	agg := evmctlBootAggregate(t, out)
	name, _ := own[0].Name()
	d, _ := own[0].FileDigest()
	if name != "boot_aggregate_late" || d.String() != agg {
		t.Errorf("the agent's first entry: %s %s; evmctl ima_boot_aggregate: %s", name, d, agg)
	}
	rec, ok, err := RecordOf(own[1])
	if !ok || err != nil || rec.Listed != at || rec.PCR != 10 || rec.Aggregate != agg || len(rec.Banks) != len(banks) {
		t.Errorf("the agent's second entry: %+v, ok %v, err %v; want listed=%d aggregate=%s", rec, ok, err, at, agg)
	}
	var st struct {
		State    string
		Adoption Status
	}
	if err := json.Unmarshal(res["status.json"], &st); err != nil {
		t.Fatalf("status.json: %v", err)
	}
	if a := st.Adoption; st.State != "initialised" || a.State != Following || a.AppearedAt == nil || *a.AppearedAt != at ||
		a.ResumedAt == nil || a.LagEntries != 0 || a.Violations == 0 {
		t.Errorf("the agent's status: %s", res["status.json"])
	}
}

// evmctlBootAggregate runs `evmctl ima_boot_aggregate` on the sysfs PCRs in
// dir and returns its sha256 value ("sha256:<hex>").
func evmctlBootAggregate(t *testing.T, dir string) string {
	t.Helper()
	evmctl := testenv.Tool(t, "evmctl")
	cmd := exec.Command(evmctl, "ima_boot_aggregate", "--pcrs", "sha1,pcrs-sha1.txt", "--pcrs", "sha256,pcrs-sha256.txt")
	cmd.Dir = dir
	got, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(got), "\n") {
		if strings.HasPrefix(line, "sha256:") {
			return line
		}
	}
	t.Fatalf("evmctl ima_boot_aggregate: %v\n%s", err, got)
	return ""
}

func atoi(t *testing.T, b []byte) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%q: %v", b, err)
	}
	return n
}

// saveCapture keeps a boot's outputs as a fixture (IMAGO_ADOPT_CAPTURE=DIR),
// with a PROVENANCE file.
func saveCapture(t *testing.T, res *realkernel.Result, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var prov bytes.Buffer
	qemu, _ := exec.Command("qemu-system-x86_64", "--version").Output()
	swtpmV, _ := exec.Command("swtpm", "--version").Output()
	kernel, _ := realkernel.Kernel()
	fmt.Fprintf(&prov, "What Debian's Linux 6.1 kernel wrote (%s) booted without a TPM under qemu by\n", kernel)
	fmt.Fprintf(&prov, "internal/realkernel, adopted by the static imago agent when a TPM appeared in the guest (adopt/realkernel_test.go,\n")
	fmt.Fprintf(&prov, "TestRealKernelAdoption; made with: IMAGO_ADOPT_CAPTURE=testdata go test -run TestRealKernelAdoption ./adopt/),\n")
	fmt.Fprintf(&prov, "captured %s.\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&prov, "qemu: %s", firstLine(qemu))
	fmt.Fprintf(&prov, "swtpm (in the guest): %s", firstLine(swtpmV))
	fmt.Fprintf(&prov, "cmdline: %s", res.Out["cmdline.txt"])
	fmt.Fprintf(&prov, "The TPM's PCRs are as the guest kernel exposes them in /sys/class/tpm/tpm0/pcr-<alg>/ (pcrs-<alg>.txt at the end,\n")
	fmt.Fprintf(&prov, "-appeared when the TPM appeared). agent-list is the agent's own list (--pcr 11). Licence: generated data.\nsha256:\n")
	var names []string
	for name := range res.Out {
		keep := strings.HasPrefix(name, "pcrs-") || strings.HasPrefix(name, "agent-") || strings.HasPrefix(name, "count-")
		switch name {
		case "binary_runtime_measurements", "ascii_runtime_measurements", "runtime_measurements_count", "violations", "status.json", "cmdline.txt":
			keep = true
		}
		if keep && !strings.Contains(name, "/") {
			names = append(names, name)
		}
	}
	var dm bytes.Buffer
	for _, line := range strings.SplitAfter(string(res.Out["dmesg.txt"]), "\n") {
		if regexp.MustCompile(`(?i)ima|tpm|integrity|Linux version`).MatchString(line) {
			dm.WriteString(line)
		}
	}
	res.Out["dmesg-ima-tpm.txt"] = dm.Bytes()
	names = append(names, "dmesg-ima-tpm.txt")
	slices.Sort(names)
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), res.Out[name], 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&prov, "  %x  %s\n", sha256.Sum256(res.Out[name]), name)
	}
	if err := os.WriteFile(filepath.Join(dir, "PROVENANCE"), prov.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("capture saved in %s", dir)
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return line + "\n"
}

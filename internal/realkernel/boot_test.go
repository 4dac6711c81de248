package realkernel

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
)

func firstEntry(t *testing.T, list []byte) (*ima.Entry, int) {
	t.Helper()
	r := ima.NewReader(bytes.NewReader(list), ima.ReaderOptions{DigestSize: 20})
	var first *ima.Entry
	n := 0
	for e, err := range r.All() {
		if err != nil {
			t.Fatalf("the guest's list: %v", err)
		}
		if first == nil {
			first = e
		}
		n++
	}
	if first == nil {
		t.Fatal("the guest's list is empty")
	}
	return first, n
}

// TestBootNoTPM boots with ima_policy=tcb and no TPM: the kernel falls
// into TPM-bypass, and the list comes back with a zero boot aggregate.
func TestBootNoTPM(t *testing.T) {
	testenv.SkipShort(t)
	Require(t, false)
	res, err := Boot(context.Background(), Config{Dir: t.TempDir(),
		Cmdline: []string{"ima_policy=tcb", "ima_template=ima-ng", "ima_hash=sha256"},
		Files:   []File{{Path: "/etc/greeting", Data: []byte("hello\n")}},
		Script:  Shell + "cat /etc/greeting > /dev/null\nsave_ima ''\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot: %v", res.Elapsed)
	if res.Status != 0 {
		t.Fatalf("script exit %d\n%s", res.Status, res.Out["run.log"])
	}
	if !bytes.Contains(res.Out["dmesg.txt"], []byte("No TPM chip found, activating TPM-bypass!")) {
		t.Fatal("dmesg does not say TPM-bypass")
	}
	first, n := firstEntry(t, res.Out["binary_runtime_measurements"])
	d, err := first.FileDigest()
	if err != nil || !first.IsBootAggregate() || !d.IsZero() || d.Alg != ima.HashSHA256 {
		t.Fatalf("first entry %v %v", d, err)
	}
	if c, _ := strconv.Atoi(strings.TrimSpace(string(res.Out["runtime_measurements_count"]))); c != n {
		t.Fatalf("count %d, list %d entries", c, n)
	}
	if !bytes.Contains(res.Out["ascii_runtime_measurements"], []byte(" /etc/greeting\n")) {
		t.Fatal("root's read of /etc/greeting on the ramfs root is not listed")
	}
}

// TestBootHostTPM boots with a TPM attached at boot: SeaBIOS measures, the
// kernel's IMA extends PCR 10, and evmctl replays the returned list to the
// returned PCRs in both banks.
func TestBootHostTPM(t *testing.T) {
	testenv.SkipShort(t)
	Require(t, true)
	evmctl := testenv.Tool(t, "evmctl")
	res, err := Boot(context.Background(), Config{Dir: t.TempDir(),
		Cmdline: []string{"ima_policy=tcb", "ima_template=ima-ng", "ima_hash=sha256"},
		TPM:     &HostTPM{Banks: []string{"sha1", "sha256"}},
		Script:  Shell + "save_pcrs ''\nsave_ima ''\n"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot: %v", res.Elapsed)
	_, n := firstEntry(t, res.Out["binary_runtime_measurements"])
	out := filepath.Join(res.Dir, "out")
	for _, b := range []string{"sha1", "sha256"} {
		cmd := exec.Command(evmctl, "ima_measurement", "-v", "--pcrs", b+",pcrs-"+b+".txt", "binary_runtime_measurements")
		cmd.Dir = out
		got, err := cmd.CombinedOutput()
		m := regexp.MustCompile(b + ` PCR-10: succeed at entry (\d+)`).FindSubmatch(got)
		if err != nil || m == nil || string(m[1]) != strconv.Itoa(n) {
			t.Fatalf("evmctl %s: %v\n%s", b, err, got)
		}
	}
}

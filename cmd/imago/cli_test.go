package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/internal/testfixture"
)

// fixture returns testdata/realkernel/<parts...> at the module root (a
// missing file fails the test).
func fixture(t *testing.T, parts ...string) string {
	t.Helper()
	return testfixture.Path(t, "realkernel/"+strings.Join(parts, "/"))
}

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, bytes.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// pcrFromFile returns PCR n from an evmctl "PCR-NN: HEX" file, as the TPM
// reported it at capture.
func pcrFromFile(t *testing.T, path string, n int) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "PCR-" + twoDigits(n) + ":"
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(line[len(prefix):]), " ", ""))
		}
	}
	t.Fatalf("%s has no PCR %d", path, n)
	return ""
}

func twoDigits(n int) string { return string([]byte{byte('0' + n/10), byte('0' + n%10)}) }

func TestLogCheckRealKernel(t *testing.T) {
	for _, v := range []string{"a-ima-ng", "g-violations", "h-ima-buf", "l-uefi"} {
		t.Run(v, func(t *testing.T) {
			dir := fixture(t, v)
			p1, p256 := filepath.Join(dir, "pcrs-sha1.txt"), filepath.Join(dir, "pcrs-sha256.txt")
			for _, list := range []string{"binary_runtime_measurements", "ascii_runtime_measurements"} {
				r := runCLI(t, nil, "log", "check", filepath.Join(dir, list), "--pcrs", "sha1,"+p1, "--pcrs", "sha256,"+p256)
				if r.code != 0 {
					t.Fatalf("%s: exit %d\n%s%s", list, r.code, r.stdout, r.stderr)
				}
				// flags before FILE work too
				r = runCLI(t, nil, "log", "check", "--pcrs", "sha256,"+p256, filepath.Join(dir, list))
				if r.code != 0 {
					t.Fatalf("%s (flags first): exit %d\n%s%s", list, r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}

// A list checked against another machine's PCRs fails with exit 1, and so
// does evmctl on the same input.
func TestLogCheckMismatchAgreesWithEvmctl(t *testing.T) {
	list := fixture(t, "a-ima-ng", "binary_runtime_measurements")
	good := fixture(t, "a-ima-ng", "pcrs-sha256.txt")
	bad := fixture(t, "g-violations", "pcrs-sha256.txt")
	for _, tc := range []struct {
		pcrs string
		want int
	}{{good, 0}, {bad, 1}} {
		r := runCLI(t, nil, "log", "check", list, "--pcrs", "sha256,"+tc.pcrs)
		if r.code != tc.want {
			t.Errorf("imago with %s: exit %d, want %d\n%s%s", tc.pcrs, r.code, tc.want, r.stdout, r.stderr)
		}
		evmctl := testenv.Tool(t, "evmctl")
		err := exec.Command(evmctl, "ima_measurement", "--pcrs", "sha256,"+tc.pcrs, list).Run()
		if (err == nil) != (tc.want == 0) {
			t.Errorf("evmctl with %s: %v, imago wants exit %d", tc.pcrs, err, tc.want)
		}
	}
}

func TestLogReplayJSONEqualsTPM(t *testing.T) {
	dir := fixture(t, "g-violations")
	r := runCLI(t, nil, "log", "replay", "--json", filepath.Join(dir, "binary_runtime_measurements"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var out struct {
		Entries    int                          `json:"entries"`
		Violations int                          `json:"violations"`
		PCRs       map[string]map[string]string `json:"pcrs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatal(err)
	}
	count, _ := os.ReadFile(filepath.Join(dir, "runtime_measurements_count"))
	viol, _ := os.ReadFile(filepath.Join(dir, "violations"))
	if got := strings.TrimSpace(string(count)); got != itoa(out.Entries) {
		t.Errorf("entries %d, securityfs says %s", out.Entries, got)
	}
	if got := strings.TrimSpace(string(viol)); got != itoa(out.Violations) {
		t.Errorf("violations %d, securityfs says %s", out.Violations, got)
	}
	for _, bank := range []string{"sha1", "sha256"} {
		want := pcrFromFile(t, filepath.Join(dir, "pcrs-"+bank+".txt"), 10)
		if got := out.PCRs[bank]["10"]; got != want {
			t.Errorf("%s PCR 10: replay %s, TPM %s", bank, got, want)
		}
	}
}

func itoa(n int) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + func() string { b, _ := json.Marshal(n); return string(b) }())
}

func TestConvertRoundTrip(t *testing.T) {
	for _, v := range []string{"a-ima-ng", "g-violations", "h-ima-buf"} {
		t.Run(v, func(t *testing.T) {
			dir := fixture(t, v)
			bin, _ := os.ReadFile(filepath.Join(dir, "binary_runtime_measurements"))
			asc, _ := os.ReadFile(filepath.Join(dir, "ascii_runtime_measurements"))
			r := runCLI(t, nil, "log", "convert", "--to", "ascii", filepath.Join(dir, "binary_runtime_measurements"))
			if r.code != 0 || r.stdout != string(asc) {
				t.Errorf("binary -> ascii differs from the kernel's ascii (exit %d)", r.code)
			}
			r = runCLI(t, nil, "log", "convert", "--to", "binary", filepath.Join(dir, "ascii_runtime_measurements"))
			if r.code != 0 || r.stdout != string(bin) {
				t.Errorf("ascii -> binary differs from the kernel's binary (exit %d): %s", r.code, r.stderr)
			}
			// stdin, and -o
			out := filepath.Join(t.TempDir(), "list")
			r = runCLI(t, asc, "log", "convert", "-", "--to", "binary", "-o", out)
			got, _ := os.ReadFile(out)
			if r.code != 0 || !bytes.Equal(got, bin) {
				t.Errorf("stdin ascii -> -o binary differs (exit %d)", r.code)
			}
		})
	}
}

// A big-endian list (as a big-endian host without ima_canonical_fmt writes
// it) is detected, shown like the little-endian original, and --canonical
// turns it back into the kernel's little-endian bytes.
func TestBigEndianCanonical(t *testing.T) {
	dir := fixture(t, "a-ima-ng")
	le := filepath.Join(dir, "binary_runtime_measurements")
	asc, _ := os.ReadFile(filepath.Join(dir, "ascii_runtime_measurements"))
	bin, _ := os.ReadFile(le)
	r := runCLI(t, nil, "log", "convert", "--to", "binary", "--byte-order", "le", le)
	if r.code != 0 || r.stdout != string(bin) {
		t.Fatalf("le -> le not identity")
	}
	// Make the BE list with the library's writer, through the CLI's own reader.
	be := filepath.Join(t.TempDir(), "be")
	var buf bytes.Buffer
	lr := mustEntries(t, le)
	for _, e := range lr {
		e2, err := e.Reorder(binary.BigEndian)
		if err != nil {
			t.Fatal(err)
		}
		b, err := appendBinary(e2, binary.BigEndian)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	os.WriteFile(be, buf.Bytes(), 0o644)
	r = runCLI(t, nil, "log", "show", "--summary", be)
	if r.code != 0 || !strings.Contains(r.stderr, "big-endian") {
		t.Fatalf("BE list: exit %d, summary %q", r.code, r.stderr)
	}
	// Names and file digests are the same; the template digests differ
	// (a BE host hashes BE field lengths, ima-spec §2.2).
	if strings.Count(r.stdout, "\n") != strings.Count(string(asc), "\n") || r.stdout == string(asc) {
		t.Errorf("BE ascii: want same entries with other template digests")
	}
	r = runCLI(t, nil, "log", "convert", "--to", "binary", "--canonical", be)
	if r.code != 0 || r.stdout != string(bin) {
		t.Errorf("BE -> canonical differs from the kernel's little-endian list (exit %d)", r.code)
	}
	if !strings.Contains(r.stderr, "warning") {
		t.Errorf("no warning about recomputed template digests: %q", r.stderr)
	}
}

func TestEventlogReplayEqualsTPM(t *testing.T) {
	for _, v := range []string{"a-ima-ng", "l-uefi"} {
		dir := fixture(t, v)
		r := runCLI(t, nil, "eventlog", "replay", "--json", filepath.Join(dir, "binary_bios_measurements"))
		if r.code != 0 {
			t.Fatalf("%s: exit %d %s", v, r.code, r.stderr)
		}
		var out struct {
			PCRs map[string]map[string]string `json:"pcrs"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatal(err)
		}
		for _, bank := range []string{"sha1", "sha256"} {
			for i := 0; i <= 9; i++ {
				want := pcrFromFile(t, filepath.Join(dir, "pcrs-"+bank+".txt"), i)
				got, ok := out.PCRs[bank][itoa(i)]
				if !ok {
					got = strings.Repeat("0", len(want))
				}
				if got != want {
					t.Errorf("%s %s PCR %d: replay %s, TPM %s", v, bank, i, got, want)
				}
			}
		}
	}
}

func TestBootagg(t *testing.T) {
	a := fixture(t, "a-ima-ng")
	d := fixture(t, "d-no-tpm")
	list := filepath.Join(a, "ascii_runtime_measurements")
	pcrs := []string{"--pcrs", "sha1," + filepath.Join(a, "pcrs-sha1.txt"), "--pcrs", "sha256," + filepath.Join(a, "pcrs-sha256.txt")}
	// evmctl ima_boot_aggregate printed these for the same PCRs (verify.txt).
	r := runCLI(t, nil, append([]string{"bootagg"}, pcrs...)...)
	want := "sha1:c1f87d28d7a964d05bc20cb66deb09904035fe41\nsha256:6c54f2bc3953b80ac6a88d61ede827409f0eab62d1758cbeb4f19e7cb9fb5fe3\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("bootagg: exit %d\n%s", r.code, r.stdout)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{append([]string{"bootagg", "check", list}, pcrs...), 0},
		{[]string{"bootagg", "check", list, "--eventlog", filepath.Join(a, "binary_bios_measurements")}, 0},
		{[]string{"bootagg", "check", list, "--no-tpm"}, 1},
		{[]string{"bootagg", "check", filepath.Join(d, "binary_runtime_measurements"), "--no-tpm"}, 0},
		{append([]string{"bootagg", "check", filepath.Join(d, "ascii_runtime_measurements")}, pcrs...), 1},
		{[]string{"bootagg", "check", list}, 2},
		{[]string{"bootagg", "check", list, "--no-tpm", "--eventlog", "x"}, 2},
	} {
		r := runCLI(t, nil, tc.args...)
		if r.code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, r.code, tc.code, r.stdout, r.stderr)
		}
	}
}

// Bad input never panics: a clear error naming the offset or line, exit 2.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile(fixture(t, "a-ima-ng", "binary_runtime_measurements"))
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		return p
	}
	huge := append([]byte{}, good[:4+20+4+6]...) // pcr, digest, name len, "ima-ng"
	huge = binary.LittleEndian.AppendUint32(huge, 0xffffffff)
	garbageName := append([]byte{}, good[:4+20]...)
	garbageName = binary.LittleEndian.AppendUint32(garbageName, 6)
	garbageName = append(garbageName, "\x01\x02zz\xff!"...)
	garbageName = binary.LittleEndian.AppendUint32(garbageName, 0)
	pcrs := fixture(t, "a-ima-ng", "pcrs-sha256.txt")
	for _, tc := range []struct {
		name, file, want string
	}{
		{"truncated", write("trunc", good[:len(good)-7]), "byte"},
		{"4GiB length", write("huge", huge), "byte"},
		{"garbage template name", write("garbage", garbageName), "byte"},
		{"not a log", write("text", []byte("hello world\nthis is not a list\n")), "byte 0x0"},
		{"bad ascii line", write("badascii", []byte("10 "+strings.Repeat("ab", 20)+" ima-ng sha256:zz /x\n")), "line 1"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
		{"directory", dir, "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"log", "show", tc.file},
				{"log", "replay", tc.file},
				{"log", "check", tc.file, "--pcrs", "sha256," + pcrs},
			} {
				r := runCLI(t, nil, args...)
				if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("%v: exit %d, stderr %q; want 2 and %q", args, r.code, r.stderr, tc.want)
				}
			}
		})
	}
}

func TestUsage(t *testing.T) {
	list := fixture(t, "a-ima-ng", "binary_runtime_measurements")
	for _, args := range [][]string{
		{"log", "check", list},
		{"log", "check"},
		{"log", "show", list, "--no-such-flag"},
		{"log", "convert", list},
		{"log", "convert", "--to", "yaml", list},
		{"log", "replay", list, "--bank", "md5"},
		{"log", "check", list, "--pcrs", "sha256,/nonexistent"},
		{"bootagg"},
	} {
		if r := runCLI(t, nil, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
}

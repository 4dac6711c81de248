package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testfixture"
)

// An unknown or missing command under a group exits 2 with "imago: GROUP:
// unknown command" and the group's usage (not its help, not exit 0).
func TestGroupUsage(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		first string // first line of stderr
		usage string // the group's usage line
	}{
		{[]string{"log", "sho", "x"}, `imago: log: unknown command "sho" (did you mean "show"?)`, "imago log [command]"},
		{[]string{"log"}, `imago: log: missing command`, "imago log [command]"},
		{[]string{"eventlog", "shw"}, `imago: eventlog: unknown command "shw" (did you mean "show"?)`, "imago eventlog [command]"},
		{[]string{"policy", "chek", "-"}, `imago: policy: unknown command "chek" (did you mean "check"?)`, "imago policy [command]"},
		{[]string{"tpm", "foo"}, `imago: tpm: unknown command "foo"`, "imago tpm [command]"},
		{[]string{"bootagg", "chek", "x"}, `imago: bootagg: unknown command "chek" (did you mean "check"?)`, "imago bootagg [command]"},
		{[]string{"nosuch"}, `imago: unknown command "nosuch"`, "imago [command]"},
		{nil, `imago: missing command`, "imago [command]"},
	} {
		r := runCLI(t, nil, tc.args...)
		first, rest, _ := strings.Cut(r.stderr, "\n")
		if r.code != 2 || first != tc.first || !strings.Contains(rest, "Usage:\n") || !strings.Contains(rest, "\n  "+tc.usage+"\n") || r.stdout != "" {
			t.Errorf("%q: exit %d, stderr:\n%s\nwant 2, %q and the usage %q", tc.args, r.code, r.stderr, tc.first, tc.usage)
		}
		if strings.Contains(rest, "[flags]\n  "+tc.usage) && tc.args[0] != "bootagg" { // bootagg runs itself too
			t.Errorf("%q: the group's usage shows it as runnable:\n%s", tc.args, rest)
		}
	}
}

// Usage errors end with a hint that names the command that was run, and
// every message names imago once.
func TestUsageHintsAndPrefix(t *testing.T) {
	list := fixture(t, "a-ima-ng", "binary_runtime_measurements")
	for _, tc := range []struct {
		args []string
		hint string
	}{
		{[]string{"log", "show", "--bogus", list}, "imago log show"},
		{[]string{"log", "show"}, "imago log show"},
		{[]string{"log", "check", list}, "imago log check"},
		{[]string{"log", "replay", list, "--bank", "md5"}, "imago log replay"},
		{[]string{"bootagg", "check"}, "imago bootagg check"},
		{[]string{"bootagg"}, "imago bootagg"},
		{[]string{"hash", "--hash", "md9", "x"}, "imago hash"},
		{[]string{"sign", "x"}, "imago sign"},
		{[]string{"appraise", "--require", "x", "y"}, "imago appraise"},
		{[]string{"--bogus"}, "imago"},
		{[]string{"version", "extra"}, "imago version"},
		{[]string{"policy", "check"}, "imago policy check"},
	} {
		r := runCLI(t, nil, tc.args...)
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if r.code != 2 || len(lines) != 2 || lines[1] != "run '"+tc.hint+" --help' for usage" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the hint for %q", tc.args, r.code, r.stderr, tc.hint)
			continue
		}
		if !strings.HasPrefix(lines[0], "imago: ") || strings.Count(lines[0], "imago") != 1 {
			t.Errorf("%q: %q does not name imago exactly once", tc.args, lines[0])
		}
	}
}

// modulePackages are the names this module's errors may start with.
var modulePackages = regexp.MustCompile(`\b(ima|digsig|pcr|pcrsrc|eventlog|bootagg|replay|policy|keyfile|ctxio|testfixture|agent|tpm|gate): `)

// Errors from several layers name each package at most once, and imago
// once: "imago: --pcrs b1.json: pcr: json: ...", never "pcrsrc: ...: pcr:
// pcrs: ..." or "replay: entry 15: ...: ima: entry 15 ...".
func TestErrorsDoNotStack(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	list := fixture(t, "a-ima-ng", "binary_runtime_measurements")
	good, _ := os.ReadFile(list)
	trunc := write("trunc", string(good[:len(good)-60]))
	junkKey := write("junk.der", "not a key")
	keyDir := filepath.Join(dir, "keys")
	os.Mkdir(keyDir, 0o700)
	os.WriteFile(filepath.Join(keyDir, "junk.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), 0o600)
	for _, args := range [][]string{
		{"log", "check", list, "--pcrs", write("b1.json", `{"pcrs": 5}`)},
		{"log", "check", list, "--pcrs", write("b2.json", `{"sha256": {"10": "zz"}}`)},
		{"log", "check", list, "--pcrs", write("b3.json", `{"sha256": {"10": 5}}`)},
		{"log", "check", list, "--pcrs", "sha1," + write("bad.txt", "PCR-00: zz\n")},
		{"log", "check", list, "--pcrs", write("bad.yaml", "sha256:\n  0 : 0x12\n")},
		{"log", "check", list, "--pcrs", write("hello.txt", "hello\n")},
		{"log", "check", list, "--pcrs", "md9,x"},
		{"log", "check", list, "--pcrs", filepath.Join(dir, "none")},
		{"log", "check", trunc, "--pcrs", "sha1," + fixture(t, "a-ima-ng", "pcrs-sha1.txt")},
		{"log", "replay", trunc},
		{"log", "show", trunc},
		{"eventlog", "show", trunc},
		{"bootagg", "--eventlog", trunc},
		{"appraise", "--keyring", junkKey, list},
		{"appraise", "--keyring", keyDir, list},
		{"sign", "--key", junkKey, list},
		{"policy", "check", write("policy", "measure func=NOPE\n")},
	} {
		r := runCLI(t, nil, args...)
		if r.code == 0 || r.stderr == "" {
			t.Errorf("%q: exit %d, no error", args, r.code)
			continue
		}
		for _, l := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
			if strings.Count(l, "imago") > 1 {
				t.Errorf("%q: %q names imago twice", args, l)
			}
			seen := map[string]bool{}
			for _, m := range modulePackages.FindAllStringSubmatch(l, -1) {
				if seen[m[1]] || len(seen) > 0 {
					t.Errorf("%q: %q stacks package names", args, l)
					break
				}
				seen[m[1]] = true
			}
			if strings.Contains(l, "encoding/") || strings.Contains(l, "Go value of type") {
				t.Errorf("%q: %q shows the standard library's internals", args, l)
			}
		}
	}
}

// walk calls fn for every command of imago's tree.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

// Every command's help has an EXIT STATUS section, names only documents
// in the repository, and the hash algorithm flag is --hash everywhere.
func TestHelpTexts(t *testing.T) {
	root := newRootCommand(&cli{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	n := 0
	walk(root, func(cmd *cobra.Command) {
		n++
		args := strings.Fields(strings.TrimPrefix(cmd.CommandPath(), "imago"))
		r := runCLI(t, nil, append(args, "--help")...)
		help := r.stdout
		name := "imago " + strings.Join(args, " ")
		if r.code != 0 {
			t.Errorf("%s --help: exit %d", name, r.code)
		}
		i := strings.Index(help, "\nEXIT STATUS\n")
		if i < 0 {
			t.Errorf("%s: no EXIT STATUS section:\n%s", name, help)
		} else if sec := help[i:]; !regexp.MustCompile(`\n  \d`).MatchString(sec) && !strings.Contains(sec, "  0") {
			t.Errorf("%s: EXIT STATUS names no status:\n%s", name, sec)
		}
		if strings.Count(help, "Exit status:") > 0 {
			t.Errorf("%s: an \"Exit status:\" paragraph outside the section", name)
		}
		for _, m := range regexp.MustCompile(`[\w./-]+\.md\b|§`).FindAllString(help, -1) {
			if m == "§" || strings.Contains(m, "..") {
				t.Errorf("%s: refers to %q, outside the repository", name, m)
				continue
			}
			if _, err := os.Stat(filepath.Join(testfixture.Root(t), m)); err != nil {
				t.Errorf("%s: refers to %q, not in the repository", name, m)
			}
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden {
				return
			}
			if strings.HasPrefix(strings.ToLower(f.Usage), "hash algorithm") && f.Name != "hash" {
				t.Errorf("%s: --%s sets a hash algorithm; the flag is --hash everywhere", name, f.Name)
			}
		})
	})
	if n < 20 {
		t.Errorf("walked %d commands", n)
	}
	// The old name still works, with a note.
	r := runCLI(t, nil, "appraise", "--ima-hash", "sha1", "--keyring", fixture(t, "p-ima-sig-signed", "x509_ima.der"), "/nonexistent")
	if r.code != 2 || !strings.Contains(r.stderr, "--ima-hash is now --hash") {
		t.Errorf("--ima-hash: exit %d, %q", r.code, r.stderr)
	}
}

// imago version and --version: what debug.ReadBuildInfo says, checked
// against git (the revision the binary was built from) and go env.
func TestVersion(t *testing.T) {
	bin := buildImago(t)
	out, err := exec.Command(bin, "version", "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var bi buildInfo
	if err := json.Unmarshal(out, &bi); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	goVersion, _ := exec.Command("go", "env", "GOVERSION").Output()
	if bi.Go != strings.TrimSpace(string(goVersion)) || bi.Platform == "" || bi.Version == "" {
		t.Errorf("version --json: %+v; go env GOVERSION %s", bi, goVersion)
	}
	if cgo, _ := exec.Command("go", "env", "CGO_ENABLED").Output(); bi.CGO != (strings.TrimSpace(string(cgo)) == "1") || bi.Simulator != bi.CGO {
		t.Errorf("cgo %v simulator %v; go env CGO_ENABLED %s (the simulator needs cgo)", bi.CGO, bi.Simulator, cgo)
	}
	// Go stamps the revision in a clone, not in a git worktree (where .git
	// is a file): there the binary says it does not know.
	gitDir, gerr := os.Stat(filepath.Join(testfixture.Root(t), ".git"))
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && gerr == nil && gitDir.IsDir() {
		if bi.Revision != strings.TrimSpace(string(head)) || bi.Time == "" {
			t.Errorf("revision %q time %q; git rev-parse HEAD %s", bi.Revision, bi.Time, head)
		}
		status, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
		if bi.Modified != (len(bytes.TrimSpace(status)) > 0) {
			t.Errorf("modified %v; git status:\n%s", bi.Modified, status)
		}
	} else {
		t.Logf("no git clone here (%v, %v): no revision to compare", err, gerr)
		if bi.Revision != "" {
			t.Errorf("revision %q without a git clone", bi.Revision)
		}
	}
	text, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(text), bi.Version) || !strings.Contains(string(text), bi.Go) ||
		!strings.Contains(string(text), bi.Revision) || (bi.Revision == "") != strings.Contains(string(text), "revision:  unknown") {
		t.Errorf("version: %v\n%s", err, text)
	}
	line, err := exec.Command(bin, "--version").Output()
	if err != nil || strings.Count(string(line), "\n") != 1 || !strings.HasPrefix(string(line), "imago "+bi.Version) ||
		!strings.Contains(string(line), shortRev(bi.Revision)) || !strings.Contains(string(line), "simulator") {
		t.Errorf("--version: %v %q", err, line)
	}
}

// A file name holding a newline: the kernel (and the agent's export)
// prints it raw, so the ascii list splits the line. log show names the line
// and says why; log check given the directory or both lists reads the
// binary list and matches; log check given only the ascii list fails,
// naming the lines.
func TestASCIINewlineName(t *testing.T) {
	dir := t.TempDir()
	base := mustEntries(t, fixture(t, "a-ima-ng", "binary_runtime_measurements"))
	odd, err := ima.NewEntry(ima.TemplateIMANG, binary.LittleEndian, 10,
		ima.DigestNG(ima.HashSHA256, bytes.Repeat([]byte{0xab}, 32)), ima.NameNG("/tmp/evil\n10 0000000000000000000000000000000000000000 ima-ng sha256:00 /fake"))
	if err != nil {
		t.Fatal(err)
	}
	entries := append(append(base[:4:4], odd), base[4:]...)
	var bin, asc []byte
	for _, e := range entries {
		if bin, err = ima.AppendBinary(bin, e, binary.LittleEndian); err != nil {
			t.Fatal(err)
		}
		asc = ima.AppendASCII(asc, e)
	}
	binPath, ascPath := filepath.Join(dir, "binary_runtime_measurements"), filepath.Join(dir, "ascii_runtime_measurements")
	os.WriteFile(binPath, bin, 0o600)
	os.WriteFile(ascPath, asc, 0o600)
	if n := bytes.Count(asc, []byte("\n")); n != len(entries)+1 {
		t.Fatalf("the ascii list has %d lines for %d entries; the name should split one", n, len(entries))
	}

	// show: the binary list is exact; the ascii list stops at line 5.
	r := runCLI(t, nil, "log", "show", "--json", binPath)
	if r.code != 0 || !strings.Contains(r.stdout, `"name":"/tmp/evil\n10_0000`) {
		t.Errorf("show binary: exit %d %s", r.code, r.stderr)
	}
	r = runCLI(t, nil, "log", "show", ascPath)
	if r.code != 2 || !strings.Contains(r.stderr, ascPath+": line 5: the listed template digest does not match") ||
		!strings.Contains(r.stderr, "newline") || !strings.Contains(r.stderr, "binary_runtime_measurements") ||
		strings.Count(r.stdout, "\n") != 4 {
		t.Errorf("show ascii: exit %d, %d lines out, stderr %q", r.code, strings.Count(r.stdout, "\n"), r.stderr)
	}

	// check: PCRs from the binary list's replay (the check of the list's
	// own replay is what is under test: which list is read).
	r = runCLI(t, nil, "log", "replay", "--json", binPath)
	pcrs := filepath.Join(t.TempDir(), "pcrs.json")
	os.WriteFile(pcrs, []byte(r.stdout), 0o600)
	for _, args := range [][]string{{dir}, {ascPath, binPath}, {binPath, ascPath}, {binPath}} {
		r := runCLI(t, nil, append(append([]string{"log", "check"}, args...), "--pcrs", pcrs)...)
		if r.code != 0 || !strings.Contains(r.stdout, "matched: 17 entries") {
			t.Errorf("check %q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, cmd := range []string{"check", "replay"} {
		args := []string{"log", cmd, ascPath}
		if cmd == "check" {
			args = append(args, "--pcrs", pcrs)
		}
		r = runCLI(t, nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, ascPath+": line 5: the listed template digest does not match") || !strings.Contains(r.stderr, "newline") {
			t.Errorf("%s ascii: exit %d\n%s", cmd, r.code, r.stderr)
		}
	}
	// verify reads the binary list too (from the directory or the pair):
	// the TPM's PCR 0-9 for the boot aggregate, the replay's PCR 10 (the
	// later --pcrs wins).
	vp := []string{"--pcrs", "sha1," + fixture(t, "a-ima-ng", "pcrs-sha1.txt"),
		"--pcrs", "sha256," + fixture(t, "a-ima-ng", "pcrs-sha256.txt"), "--pcrs", pcrs}
	for _, args := range [][]string{{dir}, {ascPath, binPath}} {
		r := runCLI(t, nil, append(append([]string{"verify"}, args...), vp...)...)
		if r.code != 0 {
			t.Errorf("verify %q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := runCLI(t, nil, append([]string{"verify", ascPath}, vp...)...); r.code == 0 {
		t.Errorf("verify of the ascii list alone passed:\n%s", r.stdout)
	}
	// Two lists of one kind are a usage error.
	if r := runCLI(t, nil, "log", "check", binPath, binPath, "--pcrs", pcrs); r.code != 2 {
		t.Errorf("two binary lists: exit %d", r.code)
	}
}

// log convert -o OUT writes OUT whole or not at all: a list that fails
// halfway leaves an existing OUT as it was and no temporary file behind.
func TestConvertOutputAtomic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.WriteFile(out, []byte("before"), 0o600)
	good, _ := os.ReadFile(fixture(t, "a-ima-ng", "binary_runtime_measurements"))
	trunc := filepath.Join(dir, "trunc")
	os.WriteFile(trunc, good[:len(good)-60], 0o600)
	if r := runCLI(t, nil, "log", "convert", "--to", "ascii", trunc, "-o", out); r.code != 2 {
		t.Fatalf("exit %d", r.code)
	}
	if got, _ := os.ReadFile(out); string(got) != "before" {
		t.Errorf("OUT changed: %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("left behind: %v", ents)
	}
	if r := runCLI(t, nil, "log", "convert", "--to", "ascii", fixture(t, "a-ima-ng", "binary_runtime_measurements"), "-o", out); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want, _ := os.ReadFile(fixture(t, "a-ima-ng", "ascii_runtime_measurements"))
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Error("OUT is not the kernel's ascii list")
	}
}

// verify reads the binary list from a directory or a pair, as log check.
func TestVerifyPrefersBinary(t *testing.T) {
	dir := fixture(t, "a-ima-ng")
	pcrs := []string{"--pcrs", "sha1," + filepath.Join(dir, "pcrs-sha1.txt"), "--pcrs", "sha256," + filepath.Join(dir, "pcrs-sha256.txt")}
	for _, args := range [][]string{
		{dir},
		{filepath.Join(dir, "ascii_runtime_measurements"), filepath.Join(dir, "binary_runtime_measurements")},
	} {
		r := runCLI(t, nil, append(append([]string{"verify"}, args...), pcrs...)...)
		if r.code != 0 {
			t.Errorf("verify %q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
}

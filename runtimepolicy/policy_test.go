package runtimepolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonEqual compares two JSON documents as values, meta.timestamp aside.
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want: %v", err)
	}
	for _, m := range []map[string]any{g, w} {
		if meta, ok := m["meta"].(map[string]any); ok {
			delete(meta, "timestamp")
		}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("policies differ:\n got %s\nwant %s", got, want)
	}
}

// Every policy Keylime and keylime-tests wrote reads back, and Marshal
// writes the compact ones byte for byte as Python's json.dumps did.
func TestParseMarshalKeylimePolicies(t *testing.T) {
	files, _ := filepath.Glob("testdata/keylime-tests/*/*/output*.json")
	more, _ := filepath.Glob("testdata/keylime/*policy-sha*")
	files = append(files, more...)
	files = append(files, "testdata/keylime/runtime-policy-test.json", "testdata/keylime/sign-runtime-policy_runtime-policy.json",
		"testdata/keylime-tests/policy-commands/base_policy.json")
	if len(files) < 15 {
		t.Fatalf("only %d policies found", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data := readFile(t, f)
			p, err := Parse(bytes.NewReader(data), Options{})
			if err != nil {
				t.Fatal(err)
			}
			out := p.Marshal()
			compact := !bytes.Contains(data, []byte("\n  "))
			if compact && f != "testdata/keylime/runtime-policy-test.json" {
				if string(out) != strings.TrimRight(string(data), "\n") {
					t.Errorf("Marshal differs from Keylime's bytes:\n got %s\nwant %s", out, data)
				}
			} else if f != "testdata/keylime/runtime-policy-test.json" {
				jsonEqual(t, out, data)
			}
			c, err := Compile(bytes.NewReader(data), Options{})
			if err != nil {
				t.Fatal(err)
			}
			n, _, _ := c.Counts()
			if n != p.Digests.Len() {
				t.Errorf("Compile has %d paths, Parse %d", n, p.Digests.Len())
			}
			for _, name := range p.Digests.Names() {
				want, _ := p.Digests.Get(name)
				got, ok := c.HexDigests(name)
				if !ok || !reflect.DeepEqual(got, want) {
					t.Errorf("%s: compiled %v, parsed %v", name, got, want)
				}
			}
		})
	}
}

// Keylime's own test data (test_ima_verification.py test_read_allowlist):
// 21 digests, testload.mod's, the .ima keyring, generator 2, and a
// boot_aggregate written "sha256:<hex>" that is read leniently.
func TestKeylimeTestPolicy(t *testing.T) {
	c, err := Compile(bytes.NewReader(readFile(t, "testdata/keylime/runtime-policy-test.json")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, k, _ := c.Counts(); n != 21 || k != 1 {
		t.Errorf("counts %d paths, %d keyrings; want 21, 1", n, k)
	}
	if c.Meta.Generator != GeneratorCompatibleAllowList || c.Meta.Version != 1 {
		t.Errorf("meta %+v", c.Meta)
	}
	if d, _ := c.HexDigests("/boot/grub2/i386-pc/testload.mod"); len(d) != 1 || d[0] != "68e1d012e3f193dcde955e6ffbbc80e22b0f8778" {
		t.Errorf("testload.mod %v", d)
	}
	if d := c.BootAggregates(); len(d) != 1 || d[0] != "4309217e9709def327c3409407f4d52907aeba46ef1b4f46529fd095f2ef9fb2" {
		t.Errorf("boot_aggregate %v", d)
	}
	d, ok := c.Keyring([]byte(".ima"))
	if !ok || d.Hex()[0] != "a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a" {
		t.Errorf(".ima keyring %v", d.Hex())
	}
}

func TestSignedPolicy(t *testing.T) {
	pub, err := ParseKey(readFile(t, "testdata/keylime/runtime-policy-pubkey.pub"))
	if err != nil {
		t.Fatal(err)
	}
	kid, err := KeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	// The keyid keylime-policy wrote into runtime-policy-test-signed.json.
	if kid != "8114198dd64f6b1e07bd392274824d7adca5af8bfdc2fd2cf93a18db8f589e05" {
		t.Errorf("keyid %s", kid)
	}
	signed := readFile(t, "testdata/keylime/runtime-policy-test-signed.json")
	c, err := Compile(bytes.NewReader(signed), Options{Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	if n, _, _ := c.Counts(); n != 21 || c.Signature == nil || !c.Signature.KeyIDMatches {
		t.Errorf("signed policy: %d paths, signature %+v", n, c.Signature)
	}
	bad := readFile(t, "testdata/keylime/runtime-policy-test-signed-bad.json")
	if _, err := Compile(bytes.NewReader(bad), Options{Key: pub}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("bad envelope: %v, want ErrBadSignature", err)
	}
	if _, err := Compile(bytes.NewReader(signed), Options{}); !errors.Is(err, ErrNeedsKey) {
		t.Errorf("envelope without key: %v, want ErrNeedsKey", err)
	}
	plain := readFile(t, "testdata/keylime/runtime-policy-test.json")
	if _, err := Compile(bytes.NewReader(plain), Options{Key: pub}); !errors.Is(err, ErrNotSigned) {
		t.Errorf("plain policy with a key: %v, want ErrNotSigned", err)
	}
	// A tampered payload fails.
	var env map[string]any
	json.Unmarshal(signed, &env)
	env["payload"] = strings.Replace(env["payload"].(string), "eyJ", "eyK", 1)
	tampered, _ := json.Marshal(env)
	if _, err := Compile(bytes.NewReader(tampered), Options{Key: pub}); err == nil {
		t.Error("tampered envelope accepted")
	}
}

func TestSignVerify(t *testing.T) {
	priv := readFile(t, "testdata/keylime/sign-runtime-policy_ec-p521-private.pem")
	pol := readFile(t, "testdata/keylime/sign-runtime-policy_runtime-policy.json")
	signer, err := ParseSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(bytes.NewReader(pol), Options{})
	if err != nil {
		t.Fatal(err)
	}
	env, err := Sign(p.Marshal(), signer)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParseKey(readFile(t, "testdata/keylime/sign-runtime-policy_ec-p521-public.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Parse(bytes.NewReader(env), Options{Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p2.Marshal(), p.Marshal()) || p2.Signature == nil || !p2.Signature.KeyIDMatches {
		t.Errorf("round trip through an envelope changed the policy or the keyid")
	}
	other, _ := ParseKey(readFile(t, "testdata/keylime/runtime-policy-pubkey.pub"))
	if _, err := Parse(bytes.NewReader(env), Options{Key: other}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another key: %v", err)
	}
}

func TestExcludes(t *testing.T) {
	x, err := CompileExcludes([]string{"/tmp", "/home/[^/]+/\\.cache", "boot_aggregate$", "/opt/a|/opt/b"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		"/tmp/x": true, "/tmpfile": true, "/var/tmp": false, "/home/u/.cache/y": true,
		"boot_aggregate": true, "boot_aggregate_late": false, "/opt/b/c": true, "/usr/opt/a": false,
	} {
		if got := x.Match([]byte(path)); got != want {
			t.Errorf("%s: excluded %v, want %v", path, got, want)
		}
	}
	for _, bad := range []string{"/usr/(?=bin)", `(a)\1`, `x++`, `/tmp\Z`} {
		_, err := CompileExcludes([]string{"/ok", bad})
		var xe *ExcludeError
		if !errors.As(err, &xe) || xe.Index != 1 || xe.Pattern != bad {
			t.Errorf("%q: %v, want an ExcludeError naming pattern 1", bad, err)
		}
	}
	pol := `{"meta": {"version": 1}, "digests": {}, "excludes": ["/ok", "(?<!x)y"]}`
	if _, err := Compile(strings.NewReader(pol), Options{}); err == nil || !strings.Contains(err.Error(), "(?<!x)y") {
		t.Errorf("policy with a Python-only exclude: %v", err)
	}
}

func TestAllowlist(t *testing.T) {
	in := "76f8ae56f16b39f55be8145bee2824a6d64a84c009104f58305ea2449479da72  boot_aggregate\n" +
		"492e61ea7479b08a47b632195594b790dda24f2249841d3f8603ca1f8927087d *a file with spaces\n" +
		"\n" +
		"SHA256 (/usr/bin/x) = a3525d7a8b5b6bd86867a9d29799429f06fe764818d9caef633f619243734794\n" +
		"a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a  %keyring:.ima\n" +
		"\\c7ca7f03a35e0fa2ac84c905a6ef1fe75efe4ab97809a1d26b158047330fe5af  /a\\\\b\n"
	a, err := ReadAllowlist(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(a.Digests.Names(), "|"); got != `boot_aggregate|a_file_with_spaces|/usr/bin/x|/a\b` {
		t.Errorf("paths %q", got)
	}
	if v, _ := a.Keyrings.Get(".ima"); len(v) != 1 {
		t.Errorf("keyrings %v", a.Keyrings.Names())
	}
	_, err = ReadAllowlist(strings.NewReader("76f8ae56  x\n"))
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Line != 1 {
		t.Errorf("short digest: %v", err)
	}
	_, err = ReadAllowlist(bytes.NewReader(readFile(t, "testdata/keylime/create-runtime-policy_allowlist-unknown")))
	if err == nil {
		t.Error("md5 allowlist accepted")
	}
	ex, err := ReadExcludeList(strings.NewReader("# comment\n/tmp\n\n^/var/log/.*$\n"))
	if err != nil || len(ex) != 2 {
		t.Errorf("exclude list %v %v", ex, err)
	}
	if _, err := ReadExcludeList(strings.NewReader("/ok\n/bad(?=x)\n")); !errors.As(err, &fe) || fe.Line != 2 {
		t.Errorf("bad exclude list: %v", err)
	}
}

// Malformed policies are refused with the place and the reason.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"meta": {"version": 1}, "digests": {"/a": ["XYZ"]}}`, "hex"},
		{`{"meta": {"version": 1}, "digests": {"/a": ["ABCDEF0123456789ABCDEF0123456789ABCDEF01"]}}`, "lower-case"},
		{`{"meta": {"version": 2}, "digests": {}}`, "version 2"},
		{`{"digests": {}}`, "no meta"},
		{`{"meta": {"version": 1}, "digests": {}, "ima": {"log_hash_alg": "md5"}}`, "log_hash_alg"},
		{`{"meta": {"version": 1}, "ima": {"dm_policy": {"version": 1}}}`, "dm_policy"},
		{`{"meta": {"version": 1}, "digests": {}} x`, "after the end"},
		{`{"meta": {"version": 1}, "digests": {}, "digests": {}}`, "twice"},
		{`{"meta": {"version": 1}, "digests": {"/a": ["` + strings.Repeat("0", 40) + `"]`, "cut short"},
		{`{"meta": {"version": 1}, "verification-keys": "{\"pubkeys\": []}"}`, "keyids"},
		{`{"meta": {"version": 1}, "payload": "eyJ9"}`, "envelope"},
	} {
		_, err := Compile(strings.NewReader(tc.doc), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.doc, err, tc.want)
		}
	}
}

package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
)

// The oracle is Keylime's own verifier code (keylime/ima/ima.py
// process_measurement_list at 9b1f6e6a, from ../shared/tools/keylime-baseline),
// run with Debian's python3 on the same list and policy files.

const baseline = "../../shared/tools/keylime-baseline"

var (
	keylimeOnce sync.Once
	keylimeSrc  string
	keylimeErr  error
)

// keylime returns the unpacked Keylime source, or reports it missing.
func keylime(t *testing.T) string {
	t.Helper()
	tarball := filepath.Join(baseline, "keylime-9b1f6e6a.tar.gz")
	if _, err := os.Stat(tarball); err != nil {
		testenv.Missing(t, "keylime-baseline", "%s not found (../shared is beside the clone on CI)", tarball)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		testenv.Missing(t, "python3", "Debian's /usr/bin/python3 is needed to run Keylime")
	}
	keylimeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "imago-keylime-")
		if err != nil {
			keylimeErr = err
			return
		}
		if out, err := exec.Command("tar", "-xzf", tarball, "-C", dir).CombinedOutput(); err != nil {
			keylimeErr = fmt.Errorf("tar: %v: %s", err, out)
			return
		}
		out, err := exec.Command("/usr/bin/python3", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import keylime.ima.ima", dir).CombinedOutput()
		if err != nil {
			keylimeErr = fmt.Errorf("keylime does not import (python3-cryptography, -jsonschema, -gpg, -yaml, -lark, -tornado ...): %v: %s", err, out)
			return
		}
		keylimeSrc = dir
	})
	if keylimeErr != nil {
		testenv.Missing(t, "keylime-python", "%v", keylimeErr)
	}
	return keylimeSrc
}

func TestMain(m *testing.M) {
	code := m.Run()
	if keylimeSrc != "" {
		os.RemoveAll(keylimeSrc)
	}
	os.Exit(code)
}

// oracleResult is what Keylime says of one list.
type oracleResult struct {
	Pass    bool       `json:"pass"`
	Events  []string   `json:"events"`
	Entries [][]string `json:"entries"`
}

// keylimeVerdict runs the baseline runner (verify_keylime.py): Keylime's
// verdict on the whole list and its first failure ids.
func keylimeVerdict(t *testing.T, list, policy string, keys []string, pcr10 string) (bool, []string) {
	t.Helper()
	args := []string{filepath.Join(baseline, "verify_keylime.py"), keylime(t), list}
	if policy != "" {
		args = append(args, "--policy", policy)
	}
	for _, k := range keys {
		args = append(args, "--key", k)
	}
	if pcr10 != "" {
		args = append(args, "--pcr10", pcr10)
	}
	out, err := exec.Command("/usr/bin/python3", args...).Output()
	if err != nil {
		t.Fatalf("verify_keylime.py: %v", err)
	}
	var whole struct {
		Pass   bool     `json:"pass"`
		Events []string `json:"events"`
	}
	if err := json.Unmarshal(out, &whole); err != nil {
		t.Fatalf("verify_keylime.py: %v: %s", err, out)
	}
	return whole.Pass, whole.Events
}

// keylimeEntries runs testdata/oracle/keylime_entries.py once for many
// cases: Keylime's failure ids entry by entry.
func keylimeEntries(t *testing.T, dir string, cases []map[string]any) []oracleResult {
	t.Helper()
	src := keylime(t)
	b, _ := json.Marshal(cases)
	manifest := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(manifest, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/usr/bin/python3", "testdata/oracle/keylime_entries.py", src, manifest).Output()
	if err != nil {
		t.Fatalf("keylime_entries.py: %v", err)
	}
	var res []oracleResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("keylime_entries.py: %v: %s", err, out)
	}
	return res
}

// fixture builds lists, policies and keys for the oracle cases.
type fixture struct {
	dir          string
	rsaKey       *rsa.PrivateKey
	rsaPEM       string // tenant key file
	imaCert      []byte // DER certificate loaded onto .ima by the list
	imaKey       *ecdsa.PrivateKey
	imaKeyID     uint32
	otherPEM     string
	files        map[string][]byte // path -> sha256 of "its content"
	order        []string
	keyrings     map[string][]byte
	bufs         map[string][]byte
	lateBoot     bool
	bootDigest   []byte
	bootTemplate string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), files: map[string][]byte{}, keyrings: map[string][]byte{}, bufs: map[string][]byte{}}
	var err error
	if f.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&f.rsaKey.PublicKey)
	f.rsaPEM = f.write(t, "tenant.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if f.imaKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "ima test key"},
		NotBefore: time.Unix(1700000000, 0), NotAfter: time.Unix(2000000000, 0), SubjectKeyId: []byte{1, 2, 3, 4, 5, 6, 7, 8, 0xca, 0xfe, 0xba, 0xbe},
		KeyUsage: x509.KeyUsageDigitalSignature}
	if f.imaCert, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &f.imaKey.PublicKey, f.imaKey); err != nil {
		t.Fatal(err)
	}
	f.imaKeyID = 0xcafebabe
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ = x509.MarshalPKIXPublicKey(&other.PublicKey)
	f.otherPEM = f.write(t, "other.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for i := range 12 {
		p := fmt.Sprintf("/usr/bin/tool%d", i)
		sum := sha256.Sum256([]byte(p))
		f.files[p] = sum[:]
		f.order = append(f.order, p)
	}
	f.bootDigest = bytes.Repeat([]byte{0x42}, 32)
	return f
}

func (f *fixture) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustEntry(t *testing.T, template string, pcrIdx uint32, fields ...ima.Field) *ima.Entry {
	t.Helper()
	e, err := ima.NewEntry(template, nil, pcrIdx, fields...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *fixture) sign(t *testing.T, key crypto.Signer, keyid uint32, sum []byte) []byte {
	t.Helper()
	s, err := digsig.Sign(key, keyid, ima.HashSHA256, sum)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// policyFile writes a policy holding the fixture's files, with changes.
func (f *fixture) policyFile(t *testing.T, name string, edit func(p *runtimepolicy.Policy)) string {
	t.Helper()
	p := runtimepolicy.New()
	p.Meta.Generator = runtimepolicy.GeneratorLegacyAllowList
	p.Digests.Set("boot_aggregate", []string{hex.EncodeToString(f.bootDigest)})
	for _, path := range f.order {
		p.Digests.Set(path, []string{hex.EncodeToString(f.files[path])})
	}
	if edit != nil {
		edit(p)
	}
	return f.write(t, name, p.Marshal())
}

func asciiList(es []*ima.Entry) []byte {
	var b []byte
	for _, e := range es {
		b = ima.AppendASCII(b, e)
	}
	return b
}

// imagoVerdict runs imago's verifier on the same files.
func imagoVerdict(t *testing.T, list, policy string, keys []string, o Options, quoted pcr.Set) (*Report, error) {
	t.Helper()
	if policy != "" {
		rp, err := runtimepolicy.Compile(bytes.NewReader(readFile(t, policy)), runtimepolicy.Options{})
		if err != nil {
			return nil, err
		}
		o.RuntimePolicy = rp
	}
	for _, k := range keys {
		key, err := digsig.ParseKey(readFile(t, k))
		if err != nil {
			t.Fatal(err)
		}
		o.Keys = append(o.Keys, key)
	}
	p, err := NewPolicy(o)
	if err != nil {
		t.Fatal(err)
	}
	data := readFile(t, list)
	rep, _, err := p.Verify(nil, Round{List: bytes.NewReader(data), Quoted: quoted})
	if err != nil {
		t.Fatal(err)
	}
	return rep, nil
}

// idsByEntry groups a report's failure ids by entry.
func idsByEntry(rep *Report, n int) [][]string {
	out := make([][]string, n)
	for _, f := range rep.Failures {
		if f.Entry >= 0 && f.Entry < n {
			out[f.Entry] = append(out[f.Entry], f.ID)
		}
	}
	return out
}

type oracleCase struct {
	name     string
	entries  func(f *fixture) []*ima.Entry
	policy   func(f *fixture, p *runtimepolicy.Policy) // nil: no policy
	keys     func(f *fixture) []string
	opts     Options
	pcr      bool // give Keylime and imago the list's PCR 10 (sha1)
	baseline bool // also run ../shared's verify_keylime.py
	badPCR   bool // ... a wrong one
	// differ, when set, asserts where imago is better than Keylime: it
	// gets both results and checks them itself.
	differ func(t *testing.T, k oracleResult, rep *Report, err error)
}

func TestKeylimeOracle(t *testing.T) {
	f := newFixture(t)
	ng := func(f *fixture, path string) *ima.Entry {
		return mustEntry(t, ima.TemplateIMANG, 10, ima.DigestNG(ima.HashSHA256, f.files[path]), ima.NameNG(path))
	}
	boot := func(f *fixture) *ima.Entry {
		return mustEntry(t, ima.TemplateIMANG, 10, ima.DigestNG(ima.HashSHA256, f.bootDigest), ima.NameNG("boot_aggregate"))
	}
	base := func(f *fixture) []*ima.Entry {
		es := []*ima.Entry{boot(f)}
		for _, p := range f.order {
			es = append(es, ng(f, p))
		}
		return es
	}
	sigEntry := func(f *fixture, path string, sig []byte) *ima.Entry {
		return mustEntry(t, ima.TemplateIMASig, 10, ima.DigestNG(ima.HashSHA256, f.files[path]), ima.NameNG(path), ima.Sig(sig))
	}
	keyEntry := func(f *fixture, keyring string, data []byte) *ima.Entry {
		sum := sha256.Sum256(data)
		return mustEntry(t, ima.TemplateIMABuf, 10, ima.DigestNG(ima.HashSHA256, sum[:]), ima.NameNG(keyring), ima.Buf(data))
	}
	keyringDigest := func(f *fixture) string { s := sha256.Sum256(f.imaCert); return hex.EncodeToString(s[:]) }
	signedByIMA := func(f *fixture) []*ima.Entry {
		es := []*ima.Entry{boot(f), keyEntry(f, ".ima", f.imaCert)}
		for _, p := range f.order[:4] {
			es = append(es, sigEntry(f, p, f.sign(t, f.imaKey, f.imaKeyID, f.files[p])))
		}
		return es
	}
	tenant := func(f *fixture) []string { return []string{f.rsaPEM} }
	anyKey := func(f *fixture) []string { return []string{f.otherPEM} }

	cases := []oracleCase{
		{name: "all in policy", entries: base, policy: func(*fixture, *runtimepolicy.Policy) {}},
		{name: "all in policy, PCR 10", entries: base, policy: func(*fixture, *runtimepolicy.Policy) {}, pcr: true, baseline: true},
		{name: "wrong PCR 10", entries: base, policy: func(*fixture, *runtimepolicy.Policy) {}, badPCR: true, baseline: true},
		{name: "missing paths", entries: base, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Digests = runtimepolicy.NewDigestMap()
			p.Digests.Set("boot_aggregate", []string{hex.EncodeToString(f.bootDigest)})
			for i, path := range f.order {
				if i%2 == 0 {
					p.Digests.Set(path, []string{hex.EncodeToString(f.files[path])})
				}
			}
		}},
		{name: "wrong digests", entries: base, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Digests.Set(f.order[3], []string{strings.Repeat("ab", 32), strings.Repeat("cd", 20)})
			p.Digests.Set(f.order[7], []string{strings.Repeat("ef", 32)})
		}},
		{name: "excludes", entries: base, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Digests.Set(f.order[3], []string{strings.Repeat("ab", 32)})
			p.Digests.Set(f.order[10], []string{strings.Repeat("ab", 32)})
			p.Excludes = []string{"/usr/bin/tool3$", "/usr/bin/tool1"} // prefix: tool1, tool10, tool11
		}},
		{name: "no boot_aggregate in policy", entries: base, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Digests.Set("boot_aggregate", []string{strings.Repeat("00", 32)})
		}},
		{name: "no policy, no keys", entries: base},
		{name: "tenant key signatures", entries: func(f *fixture) []*ima.Entry {
			es := base(f)
			es = append(es, sigEntry(f, f.order[0], f.sign(t, f.rsaKey, mustKeyID(t, &f.rsaKey.PublicKey), f.files[f.order[0]])))
			es = append(es, sigEntry(f, f.order[1], f.sign(t, f.rsaKey, mustKeyID(t, &f.rsaKey.PublicKey), f.files[f.order[2]]))) // bad
			es = append(es, sigEntry(f, f.order[2], nil))
			return es
		}, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Digests.Set(f.order[0], []string{strings.Repeat("ab", 32)}) // the signature decides
		}, keys: tenant},
		{name: "keys only", entries: func(f *fixture) []*ima.Entry {
			return []*ima.Entry{
				sigEntry(f, f.order[0], f.sign(t, f.rsaKey, mustKeyID(t, &f.rsaKey.PublicKey), f.files[f.order[0]])),
				sigEntry(f, f.order[1], f.sign(t, f.rsaKey, mustKeyID(t, &f.rsaKey.PublicKey), f.files[f.order[2]])),
				sigEntry(f, f.order[2], nil),
				ng(f, f.order[3]),
			}
		}, keys: tenant},
		{name: "keyring learned, signatures verify", entries: signedByIMA, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Keyrings.Set(".ima", []string{keyringDigest(f)})
			for _, path := range f.order[:4] {
				p.Digests.Set(path, []string{strings.Repeat("ab", 32)})
			}
		}, keys: anyKey, baseline: true},
		{name: "keyring not in policy", entries: signedByIMA, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Keyrings.Set(".ima", []string{strings.Repeat("ab", 32)})
			for _, path := range f.order[:2] {
				p.Digests.Set(path, []string{strings.Repeat("ab", 32)})
			}
		}, keys: anyKey},
		{name: "keyring ignored", entries: signedByIMA, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.IMA.IgnoredKeyrings = []string{".ima"}
			p.Digests.Set(f.order[1], []string{strings.Repeat("ab", 32)})
		}, keys: anyKey},
		{name: "ima-buf data", entries: func(f *fixture) []*ima.Entry {
			return []*ima.Entry{boot(f), keyEntry(f, "selinux-state", []byte("enforcing=1")), keyEntry(f, "kernel_version", []byte("6.1.0"))}
		}, policy: func(f *fixture, p *runtimepolicy.Policy) {
			s := sha256.Sum256([]byte("enforcing=1"))
			p.IMABuf.Set("selinux-state", []string{hex.EncodeToString(s[:])})
		}},
		{name: "malformed signature, excluded", entries: func(f *fixture) []*ima.Entry {
			s := f.sign(t, f.rsaKey, mustKeyID(t, &f.rsaKey.PublicKey), f.files[f.order[0]])
			s[7] ^= 0x40 // sig_size no longer matches
			return []*ima.Entry{boot(f), sigEntry(f, f.order[0], s), sigEntry(f, f.order[1], []byte{3, 2, 4})}
		}, policy: func(f *fixture, p *runtimepolicy.Policy) { p.Excludes = []string{"/usr/bin/"} }, keys: tenant},
		{name: "violation", entries: func(f *fixture) []*ima.Entry {
			v := mustEntry(t, ima.TemplateIMANG, 10, ima.DigestNG(ima.HashSHA256, make([]byte, 32)), ima.NameNG(f.order[5]))
			clear(v.Digest)
			return []*ima.Entry{boot(f), ng(f, f.order[0]), v}
		}, policy: func(*fixture, *runtimepolicy.Policy) {}},
		{name: "template hash", entries: func(f *fixture) []*ima.Entry {
			e := ng(f, f.order[0])
			e.Digest[0] ^= 1
			return []*ima.Entry{boot(f), e, ng(f, f.order[1])}
		}, policy: func(*fixture, *runtimepolicy.Policy) {}},
		{name: "another PCR", entries: func(f *fixture) []*ima.Entry {
			return []*ima.Entry{boot(f), mustEntry(t, ima.TemplateIMANG, 11, ima.DigestNG(ima.HashSHA256, f.files[f.order[0]]), ima.NameNG(f.order[0]))}
		}, policy: func(*fixture, *runtimepolicy.Policy) {}},

		// Where imago is better, as issue 8 says; each difference asserted.
		{name: "better: boot_aggregate_late", entries: func(f *fixture) []*ima.Entry {
			late := mustEntry(t, ima.TemplateIMANG, 10, ima.DigestNG(ima.HashSHA256, f.bootDigest), ima.NameNG("boot_aggregate_late"))
			return []*ima.Entry{late, ng(f, f.order[0])}
		}, policy: func(*fixture, *runtimepolicy.Policy) {},
			differ: func(t *testing.T, k oracleResult, rep *Report, err error) {
				if k.Pass || !slices.Contains(k.Entries[0], IDNotInAllowlist) {
					t.Errorf("Keylime: %+v, want not_in_allowlist for boot_aggregate_late", k)
				}
				if err != nil || !rep.Pass() || rep.BootAggregate == nil || !rep.BootAggregate.Late {
					t.Errorf("imago: %v %+v, want a pass reported as a late start", err, rep)
				}
			}},
		{name: "better: Python-only exclude refused", entries: base, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Digests.Set(f.order[2], []string{strings.Repeat("ab", 32)})
			p.Excludes = []string{"/usr/bin/tool2", "/opt/(?!keep)"}
		}, differ: func(t *testing.T, k oracleResult, rep *Report, err error) {
			// Python compiles the look-ahead and Keylime applies it; Go's
			// RE2 cannot, and imago refuses the policy rather than judge
			// with a different exclude list.
			if !k.Pass {
				t.Errorf("Keylime: %+v", k)
			}
			var xe *runtimepolicy.ExcludeError
			if !errors.As(err, &xe) || xe.Pattern != "/opt/(?!keep)" || xe.Index != 1 {
				t.Errorf("imago: %v, want the policy refused naming the pattern", err)
			}
		}},
		{name: "better: broken exclude refused", entries: base, policy: func(f *fixture, p *runtimepolicy.Policy) {
			p.Digests.Set(f.order[2], []string{strings.Repeat("ab", 32)})
			p.Excludes = []string{"/usr/bin/tool2", "/opt/(unclosed"}
		}, differ: func(t *testing.T, k oracleResult, rep *Report, err error) {
			// Keylime logs the error and drops the whole exclude list, so
			// the entry the first pattern excludes fails.
			if k.Pass || !slices.Contains(k.Entries[3], IDRuntimePolicyHash) {
				t.Errorf("Keylime: %+v", k)
			}
			var xe *runtimepolicy.ExcludeError
			if !errors.As(err, &xe) || xe.Pattern != "/opt/(unclosed" {
				t.Errorf("imago: %v, want the policy refused naming the pattern", err)
			}
		}},
		{name: "better: violations allowed on request", entries: func(f *fixture) []*ima.Entry {
			v := mustEntry(t, ima.TemplateIMANG, 10, ima.DigestNG(ima.HashSHA256, make([]byte, 32)), ima.NameNG(f.order[5]))
			clear(v.Digest)
			return []*ima.Entry{boot(f), v}
		}, policy: func(*fixture, *runtimepolicy.Policy) {}, opts: Options{AllowViolations: true},
			differ: func(t *testing.T, k oracleResult, rep *Report, err error) {
				if k.Pass || !slices.Contains(k.Entries[1], IDViolation) {
					t.Errorf("Keylime: %+v", k)
				}
				if err != nil || !rep.Pass() || rep.Violations != 1 {
					t.Errorf("imago: %v %+v", err, rep)
				}
			}},
		{name: "better: ima-ngv2 judged", entries: func(f *fixture) []*ima.Entry {
			v2 := mustEntry(t, ima.TemplateIMANGv2, 10, ima.DigestNGv2("ima", ima.HashSHA256, f.files[f.order[0]]), ima.NameNG(f.order[0]))
			bad := mustEntry(t, ima.TemplateIMANGv2, 10, ima.DigestNGv2("ima", ima.HashSHA256, f.files[f.order[0]]), ima.NameNG(f.order[1]))
			return []*ima.Entry{boot(f), v2, bad}
		}, policy: func(*fixture, *runtimepolicy.Policy) {},
			differ: func(t *testing.T, k oracleResult, rep *Report, err error) {
				if k.Pass || !slices.Contains(k.Entries[1], IDParser) {
					t.Errorf("Keylime: %+v, want a parser error on ima-ngv2", k)
				}
				if err != nil || rep.FailedEntries != 1 || rep.Failures[0].Entry != 2 || rep.Failures[0].ID != IDRuntimePolicyHash {
					t.Errorf("imago: %v %+v", err, rep.Failures)
				}
			}},
		{name: "better: signature v3", entries: func(f *fixture) []*ima.Entry {
			s, err := digsig.SignV3(f.rsaKey, digsig.TypeDigSig, mustKeyID(t, &f.rsaKey.PublicKey), ima.HashSHA256, f.files[f.order[0]])
			if err != nil {
				t.Fatal(err)
			}
			return []*ima.Entry{sigEntry(f, f.order[0], s)}
		}, keys: tenant,
			differ: func(t *testing.T, k oracleResult, rep *Report, err error) {
				if k.Pass || !slices.Contains(k.Entries[0], IDInvalidSignature) {
					t.Errorf("Keylime: %+v, want invalid_signature (it reads only v2)", k)
				}
				if err != nil || !rep.Pass() {
					t.Errorf("imago: %v %+v", err, rep.Failures)
				}
			}},
	}
	type built struct {
		es     []*ima.Entry
		list   string
		policy string
		keys   []string
		quoted pcr.Set
		pcrHex string
	}
	var bs []built
	var manifest []map[string]any
	for _, tc := range cases {
		var b built
		b.es = tc.entries(f)
		name := strings.NewReplacer(" ", "-", ",", "", ":", "").Replace(tc.name)
		b.list = f.write(t, name+".ascii", asciiList(b.es))
		if tc.policy != nil {
			b.policy = f.policyFile(t, name+".json", func(p *runtimepolicy.Policy) { tc.policy(f, p) })
		}
		if tc.keys != nil {
			b.keys = tc.keys(f)
		}
		if tc.pcr || tc.badPCR {
			v := make([]byte, 20)
			for _, e := range b.es {
				v = pcr.Extend(pcr.SHA1, v, e.TemplateDigest(pcr.SHA1))
			}
			if tc.badPCR {
				v[0] ^= 1
			}
			b.quoted, b.pcrHex = pcr.Set{pcr.SHA1: {10: v}}, hex.EncodeToString(v)
		}
		bs = append(bs, b)
		c := map[string]any{"list": b.list, "keys": b.keys, "pcr10": b.pcrHex}
		if b.policy != "" {
			c["policy"] = b.policy
		}
		manifest = append(manifest, c)
	}
	perEntry := keylimeEntries(t, f.dir, manifest)
	for i, tc := range cases {
		b := bs[i]
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := perEntry[i]
			// The baseline runner (verify_keylime.py) on some cases too:
			// it must say what the per-entry runner says.
			if tc.baseline {
				pass, events := keylimeVerdict(t, b.list, b.policy, b.keys, b.pcrHex)
				if pass != k.Pass || !slices.Equal(events, k.Events[:min(5, len(k.Events))]) {
					t.Fatalf("verify_keylime.py %v %v, keylime_entries.py %+v", pass, events, k)
				}
			}
			rep, err := imagoVerdict(t, b.list, b.policy, b.keys, tc.opts, b.quoted)
			if tc.differ != nil {
				tc.differ(t, k, rep, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pass() != k.Pass {
				t.Fatalf("imago pass %v, Keylime %v\nimago: %v\nKeylime: %+v", rep.Pass(), k.Pass, rep.Failures, k)
			}
			got := idsByEntry(rep, len(b.es))
			for j := range b.es {
				if !sameIDs(got[j], k.Entries[j]) {
					t.Errorf("entry %d: imago %v, Keylime %v", j, got[j], k.Entries[j])
				}
			}
			imagoMismatch := len(rep.Failures) > 0 && rep.Failures[len(rep.Failures)-1].ID == IDPCRMismatch
			if tc.badPCR != slices.Contains(k.Events, IDPCRMismatch) || tc.badPCR != imagoMismatch {
				t.Errorf("pcr_mismatch: Keylime %v, imago %v", k.Events, rep.Failures)
			}
		})
	}
}

func sameIDs(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func mustKeyID(t *testing.T, pub crypto.PublicKey) uint32 {
	t.Helper()
	id, err := digsig.KeyIDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

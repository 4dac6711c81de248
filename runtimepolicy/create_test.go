package runtimepolicy

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
)

const golden = "testdata/keylime-tests/create-static-data/"

func listDigests(t *testing.T, file string, o FromListOptions) *ListDigests {
	t.Helper()
	l, err := FromList(ima.NewListReader(bytes.NewReader(readFile(t, file)), ima.ReaderOptions{}).All(), o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func parseFile(t *testing.T, file string) *Policy {
	t.Helper()
	p, err := Parse(bytes.NewReader(readFile(t, file)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// keylime-tests' keylime_create_policy test.sh: the same inputs give the
// golden policies (EXPECTED.json lists the commands), timestamps aside.
func TestCreateGolden(t *testing.T) {
	const ts = "2023-01-01 00:00:00"
	list1 := golden + "test2/ascii_runtime_measurements-1"
	list2 := golden + "test2/ascii_runtime_measurements-2"
	cert, err := digsig.ParseKey(readFile(t, golden+"test3/eckey-ecdsa.pem"))
	if err != nil {
		t.Fatal(err)
	}
	exc, err := ReadExcludeList(bytes.NewReader(readFile(t, golden+"test3/exclude-list-1")))
	if err != nil {
		t.Fatal(err)
	}
	al, err := ReadAllowlist(bytes.NewReader(readFile(t, golden+"test4/allowlist-1")))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		opts func() CreateOptions
		want string
	}{
		{"test1 -m /dev/null", func() CreateOptions { return CreateOptions{} }, "test1/output1.json"},
		{"test2 -m list1", func() CreateOptions {
			return CreateOptions{Lists: []*ListDigests{listDigests(t, list1, FromListOptions{})}}
		}, "test2/output1.json"},
		{"test2 -B output1 -m list2 (ima-buf does not change digests)", func() CreateOptions {
			return CreateOptions{Base: parseFile(t, golden+"test2/output1.json"), Lists: []*ListDigests{listDigests(t, list2, FromListOptions{})}}
		}, "test2/output1.json"},
		{"test2 --ima-buf", func() CreateOptions {
			return CreateOptions{Base: parseFile(t, golden+"test2/output1.json"), Lists: []*ListDigests{listDigests(t, list2, FromListOptions{IMABuf: true})}}
		}, "test2/output3.json"},
		{"test2 -i .builtin_trusted_keys --ima-buf", func() CreateOptions {
			ig := []string{".builtin_trusted_keys"}
			return CreateOptions{Base: parseFile(t, golden+"test2/output1.json"), IgnoredKeyrings: ig,
				Lists: []*ListDigests{listDigests(t, list2, FromListOptions{IMABuf: true, Ignored: ig})}}
		}, "test2/output4.json"},
		{"test2 -i .builtin_trusted_keys --keyrings", func() CreateOptions {
			ig := []string{".builtin_trusted_keys"}
			return CreateOptions{Base: parseFile(t, golden+"test2/output1.json"), IgnoredKeyrings: ig,
				Lists: []*ListDigests{listDigests(t, list2, FromListOptions{Keyrings: true, Ignored: ig})}}
		}, "test2/output5.json"},
		{"test2 --keyrings --ima-buf -i .builtin_trusted_keys", func() CreateOptions {
			ig := []string{".builtin_trusted_keys"}
			return CreateOptions{Base: parseFile(t, golden+"test2/output1.json"), IgnoredKeyrings: ig,
				Lists: []*ListDigests{listDigests(t, list2, FromListOptions{Keyrings: true, IMABuf: true, Ignored: ig})}}
		}, "test2/output6.json"},
		{"test3 -m list1 -e exclude-list-1", func() CreateOptions {
			return CreateOptions{Lists: []*ListDigests{listDigests(t, golden+"test3/ascii_runtime_measurements-1", FromListOptions{})}, Excludes: exc}
		}, "test3/output1.json"},
		{"test3 -B output1 -i .builtin_trusted_keys -i test123", func() CreateOptions {
			return CreateOptions{Base: parseFile(t, golden+"test3/output1.json"), IgnoredKeyrings: []string{".builtin_trusted_keys", "test123"}}
		}, "test3/output2.json"},
		{"test3 -B output2 -A eckey-ecdsa.pem", func() CreateOptions {
			return CreateOptions{Base: parseFile(t, golden+"test3/output2.json"), VerificationKeys: []digsig.Key{cert}}
		}, "test3/output3.json"},
		{"test4 -a allowlist-1", func() CreateOptions { return CreateOptions{Allowlist: al} }, "test4/output1.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts()
			o.Timestamp = ts
			p, err := Create(o)
			if err != nil {
				t.Fatal(err)
			}
			want := readFile(t, golden+tc.want)
			got := p.Marshal()
			if !bytes.Contains(want, []byte("\n  ")) {
				if string(got) != strings.TrimRight(string(want), "\n") {
					t.Errorf("bytes differ:\n got %s\nwant %s", got, want)
				}
			}
			jsonEqual(t, got, want)
		})
	}
}

// keylime-policy-commands/test.sh: the asserted digests.
func TestCreatePolicyCommands(t *testing.T) {
	dir := "testdata/keylime-tests/policy-commands/"
	base := parseFile(t, dir+"base_policy.json")
	if v, _ := base.Digests.Get("test"); len(v) != 1 || v[0] != "f2ca1bb6c7e907d06dafe4687e579fce76b37e4e93b7605022da52e6ccc26fd2" {
		t.Errorf("base policy digests.test %v", v)
	}
	al, err := ReadAllowlist(bytes.NewReader(readFile(t, dir+"allowlist.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := al.Digests.Get("test"); len(v) != 1 || v[0] != "f2ca1bb6c7e907d06dafe4687e579fce76b37e4e93b7605022da52e6ccc26fd2" {
		t.Errorf("allowlist digests.test %v", v)
	}
	ex, err := ReadExcludeList(bytes.NewReader(readFile(t, dir+"excludelist.txt")))
	if err != nil || len(ex) != 1 || ex[0] != "test" {
		t.Errorf("excludes %v %v", ex, err)
	}
	l := listDigests(t, dir+"ima_log.txt", FromListOptions{Keyrings: true, IMABuf: true})
	p, err := Create(CreateOptions{Lists: []*ListDigests{l}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Digests.Get("/test"); !ok {
		t.Errorf("digests %v", p.Digests.Names())
	}
	if _, ok := p.Digests.Get("boot_aggregate"); !ok {
		t.Errorf("no boot_aggregate")
	}
	for name, want := range map[string]string{
		".ima":  "a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a",
		".test": "68b0115a1ccce90691f62df3053bd6601ad258e02ee6b5cee07f2a19144f253f",
	} {
		if v, _ := p.Keyrings.Get(name); len(v) != 1 || v[0] != want {
			t.Errorf("keyrings[%s] %v", name, v)
		}
	}
	if v, _ := p.IMABuf.Get("dm_table_load"); len(v) != 1 || v[0] != "571016c9f57363c80e08dd4346391c4e70227e41b0247b8a3aa2240a178d3d14" {
		t.Errorf("ima-buf dm_table_load %v", v)
	}
}

// keylime's test_create_runtime_policy: the digest algorithm comes from
// the inputs, and inputs that disagree abort.
func TestDigestAlgorithm(t *testing.T) {
	for _, alg := range []string{"sha1", "sha256", "sha384", "sha512"} {
		l := listDigests(t, "testdata/keylime/create-runtime-policy_ima-log-"+alg, FromListOptions{})
		al, err := ReadAllowlist(bytes.NewReader(readFile(t, "testdata/keylime/create-runtime-policy_allowlist-"+alg)))
		if err != nil {
			t.Fatal(err)
		}
		base := parseFile(t, "testdata/keylime/create-runtime-policy_policy-"+alg)
		got, err := DigestAlgorithm("", CreateOptions{Base: base, Allowlist: al, Lists: []*ListDigests{l}})
		if err != nil || got != alg {
			t.Errorf("%s: %q %v", alg, got, err)
		}
		other := "sha1"
		if alg == "sha1" {
			other = "sha512"
		}
		o := listDigests(t, "testdata/keylime/create-runtime-policy_ima-log-"+other, FromListOptions{})
		if _, err := DigestAlgorithm("", CreateOptions{Allowlist: al, Lists: []*ListDigests{o}}); err == nil {
			t.Errorf("%s allowlist with a %s list: no error", alg, other)
		}
	}
}

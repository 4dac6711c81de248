package agent

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/testenv"
	"github.com/imago-ima/imago/tpm/tpmtest"
)

// TestTemplates runs the agent with each kind of template on a swtpm and
// checks the list against tpm2_pcrread and evmctl (checkTPM). For ima-sig, a
// file carrying a security.ima signature (type 3, v2, sha512) is hashed
// with the signature's algorithm and listed with the whole xattr in sig
// (ima-spec.md §3.3, §3.5).
func TestTemplates(t *testing.T) {
	for _, tc := range []struct {
		template, hash string
	}{
		{"ima", ""},
		{"ima-sig", ""},
		{"ima-buf", ""},
		{"ima-ngv2", ""},
		{"d-ng|n-ng|iuid|igid|imode", ""},
		{"d|n-ng", "sha256"},
	} {
		t.Run(tc.template, func(t *testing.T) {
			s := tpmtest.New(t, tpmtest.Options{Banks: []string{"sha1", "sha256"}})
			s.Start()
			cfg, logs := testConfig(t, s.URI)
			tp, err := ima.LookupTemplate(tc.template)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Template = tp
			cfg.Hash = tc.hash
			if tp.IsLegacy() {
				cfg.Hash = "sha1"
			}
			r := startAgent(t, cfg, logs)
			files := writeFiles(t, 2, "tmpl")
			var sig []byte
			if tc.template == "ima-sig" {
				sig = append([]byte{0x03, 0x02, byte(ima.HashSHA512), 1, 2, 3, 4, 0, 4}, 0xde, 0xad, 0xbe, 0xef)
				if err := syscall.Setxattr(files[1], "security.ima", sig, 0); err != nil {
					testenv.Root(t, "writing security.ima")
					t.Fatalf("cannot set security.ima: %v", err)
				}
			}
			res := r.measure(files...)
			for _, x := range res {
				if x.Status != StatusMeasured {
					t.Fatalf("%+v", x)
				}
			}
			r.stop()
			list := checkTPM(t, s, cfg)
			if got := list[1].Template; got != tp.Name {
				t.Errorf("template %q, want %q", got, tp.Name)
			}
			if tc.template == "ima-sig" {
				if !strings.HasPrefix(res[1].Digest, "sha512:") {
					t.Errorf("signed file digest %s, want sha512 (the signature's algorithm)", res[1].Digest)
				}
				if f := list[2].Fields[2]; f.ID != ima.FieldSig || !bytes.Equal(f.Data, sig) {
					t.Errorf("sig field %x, want %x", f.Data, sig)
				}
				if len(list[1].Fields[2].Data) != 0 {
					t.Errorf("unsigned file has a sig field")
				}
			}
			if strings.Contains(tc.template, "iuid") {
				fi, _ := os.Stat(files[0])
				st := fi.Sys().(*syscall.Stat_t)
				f := list[1].Fields
				if binary.NativeEndian.Uint32(f[2].Data) != st.Uid || binary.NativeEndian.Uint16(f[4].Data) != uint16(st.Mode) {
					t.Errorf("iuid/imode %x %x", f[2].Data, f[4].Data)
				}
				if len(list[0].Fields[2].Data) != 0 {
					t.Errorf("the aggregate has an iuid")
				}
			}
		})
	}
}

package policy

import (
	"strings"
	"testing"

	"github.com/imago-ima/imago/ima"
)

// TestKernelTablesFromIMA: the hash algorithms and template descriptors a
// policy names are ima's tables (ima-spec.md §1.1, §3.1), not copies: every
// algorithm ima knows is accepted by appraise_algos= and printed back by
// its kernel name, and every built-in template is accepted by template=
// under its name and its format.
func TestKernelTablesFromIMA(t *testing.T) {
	for a := ima.HashAlg(0); a.Valid(); a++ {
		rule := "appraise func=BPRM_CHECK appraise_algos=" + a.String()
		p, err := ParseBytes([]byte(rule + "\n"))
		if err != nil {
			t.Errorf("%s: %v", rule, err)
			continue
		}
		if !p.Rules[0].AppraiseAlgos.Has(a) {
			t.Errorf("%s: algorithm %d not in the set", rule, a)
		}
		if out := p.Format(); !strings.Contains(out, "appraise_algos="+a.String()+" ") {
			t.Errorf("%s: read back %q", rule, out)
		}
	}
	for _, tm := range ima.BuiltinTemplates() {
		for _, s := range []string{tm.Name, tm.Format()} {
			p, err := ParseBytes([]byte("measure func=FILE_CHECK template=" + s + "\n"))
			if err != nil {
				t.Errorf("template=%s: %v", s, err)
				continue
			}
			if p.Rules[0].Template != tm.Name {
				t.Errorf("template=%s: %q, want %q", s, p.Rules[0].Template, tm.Name)
			}
		}
	}
}

package policy

import (
	"errors"
	"testing"
)

// readBackLossy reports whether the kernel's read-back of p loses
// information, so that it cannot parse back to the same rules: ids of 2^31
// or more print negative (%d), and fsname= is cut to 63 bytes.
func readBackLossy(p *Policy) bool {
	for _, r := range p.Rules {
		for _, c := range []IDCond{r.UID, r.EUID, r.GID, r.EGID, r.FOwner, r.FGroup} {
			if c.Set && c.Value >= 1<<31 {
				return true
			}
		}
		if len(r.FSName) > maxFSNameShown {
			return true
		}
	}
	return false
}

func FuzzParse(f *testing.F) {
	for _, c := range acceptCases {
		f.Add([]byte(c.in))
	}
	for _, c := range rejectCases {
		f.Add([]byte(c.in))
	}
	f.Add([]byte(tcbText + secureBootText + appraiseTCBText + criticalText))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseBytes(data)
		if err != nil {
			if p != nil {
				t.Fatal("error with a policy")
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 || pe.Col < 1 {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		text := p.Format()
		if readBackLossy(p) {
			return
		}
		q, err := ParseBytes([]byte(text))
		if err != nil {
			t.Fatalf("read-back %q does not parse: %v", text, err)
		}
		if !rulesEqual(p.Rules, q.Rules) {
			t.Fatalf("read-back %q parses to other rules", text)
		}
		if text2 := q.Format(); text2 != text {
			t.Fatalf("format not stable:\n%q\n%q", text, text2)
		}
	})
}

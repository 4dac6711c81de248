package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/replay"
)

// bootHead keeps the first entry of a list that log check replays, to report
// a TPM-bypass boot aggregate (issue 11: an adopted list).
type bootHead struct{ e *ima.Entry }

// capture passes seq through, keeping a copy of its first entry (readers may
// reuse their entries).
func (h *bootHead) capture(seq iter.Seq2[*ima.Entry, error]) iter.Seq2[*ima.Entry, error] {
	return func(yield func(*ima.Entry, error) bool) {
		for e, err := range seq {
			if err == nil && h.e == nil {
				c := *e
				c.Digest, c.Data, c.Fields = bytes.Clone(e.Digest), bytes.Clone(e.Data), nil
				h.e = &c
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// bootAggJSON is log check's "boot_aggregate" for a bypass list.
type bootAggJSON struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Rule   string `json:"rule"`
	Note   string `json:"note"`
}

// bypass returns the finding for a list whose first entry is a TPM-bypass
// boot aggregate (bootagg.CheckBypass, the rule verify applies too), or nil
// for any other list. The list counts as held by the TPM when every checked
// bank matched the aggregate's PCR.
func (h *bootHead) bypass(rep *replay.Report) *bootAggJSON {
	if h.e == nil {
		return nil
	}
	e, err := withFields(h.e)
	if err != nil || !e.IsBootAggregate() {
		return nil
	}
	d, err := e.FileDigest()
	if err != nil || !bootagg.IsBypass(d.Sum) {
		return nil
	}
	name, _ := e.Name()
	alg := d.Alg.String()
	if e.Template == ima.TemplateIMA {
		alg = ""
	}
	held := false
	for _, c := range rep.Checks {
		if c.PCR == int(e.PCR) {
			held = c.Matched
			if !held {
				break
			}
		}
	}
	rule, err := bootagg.CheckBypass(name, alg, d.Sum, held)
	if err != nil {
		return nil
	}
	out := &bootAggJSON{Name: name, Digest: d.String(), Rule: rule.String()}
	if rule == bootagg.RuleAdopted {
		out.Note = fmt.Sprintf("the kernel had no TPM at boot (zero boot aggregate), yet the TPM holds this list: entries listed before the TPM appeared are only as trustworthy as the system was until then; %s", bootagg.AdoptedEvidence)
	} else {
		out.Note = "TPM-bypass: the kernel had no TPM at boot and extends nothing; imago agent --adopt-kernel-list extends such a list into a TPM that appears later"
	}
	return out
}

// withFields returns e with its template fields split (the fast scanner
// leaves them out), by reading its binary record back.
func withFields(e *ima.Entry) (*ima.Entry, error) {
	if e.Fields != nil {
		return e, nil
	}
	order := e.Order
	if order == nil {
		order = binary.LittleEndian
	}
	rec, err := ima.AppendBinary(nil, e, order)
	if err != nil {
		return nil, err
	}
	return ima.NewReader(bytes.NewReader(rec), ima.ReaderOptions{Order: order, DigestSize: len(e.Digest)}).Next()
}

func printBypass(w interface{ Write([]byte) (int, error) }, b *bootAggJSON) {
	fmt.Fprintf(w, "%s %s: %s: %s\n", b.Name, b.Digest, b.Rule, b.Note)
}

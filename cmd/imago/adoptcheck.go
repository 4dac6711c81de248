package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strings"

	"github.com/imago-ima/imago/adopt"
	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
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
	PCR    int    `json:"pcr"`
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
	out := &bootAggJSON{PCR: int(e.PCR), Name: name, Digest: d.String(), Rule: rule.String()}
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

func printBypass(w io.Writer, b *bootAggJSON) {
	fmt.Fprintf(w, "%s %s: %s: %s\n", b.Name, b.Digest, b.Rule, b.Note)
}

// adopterEvidence runs checkAdopter for log check's --adopter-list (nil,
// nil without it). The kernel's list must be a bypass list the TPM holds.
func adopterEvidence(path string, bypass *bootAggJSON, target pcr.Set, rep *replay.Report) (*adopterJSON, error) {
	adopted := bypass != nil && bypass.Rule == bootagg.RuleAdopted.String()
	pcrIndex := 0
	if bypass != nil {
		pcrIndex = bypass.PCR
	}
	return adopterFlag(path, adopted, target, pcrIndex, rep.Entries, func(e *ima.Entry) *adopterBoot { return adopterAggregate(e, target) })
}

// adopterFlag checks --adopter-list (log check's and verify's; nil, nil
// without it): adopted says the kernel's list is a bypass list its TPM
// holds, judge checks the adopter's boot aggregate.
func adopterFlag(path string, adopted bool, target pcr.Set, kernelPCR, kernelEntries int, judge func(*ima.Entry) *adopterBoot) (*adopterJSON, error) {
	if path == "" {
		return nil, nil
	}
	if !adopted {
		return nil, failed("--adopter-list: the list is not a TPM-bypass list its TPM holds: there is no adoption to give evidence for")
	}
	a, err := checkAdopter(path, target, kernelPCR, kernelEntries, judge)
	if err != nil {
		return nil, inputErr(fmt.Errorf("--adopter-list %w", err))
	}
	return a, nil
}

// adopterJSON is log check's "adopter" report: the evidence an adopter's own
// list (imago agent --adopt-kernel-list) gives for an adopted kernel list.
type adopterJSON struct {
	List    string       `json:"list"`
	Matched bool         `json:"matched"`
	Checks  []string     `json:"checks"`
	Record  *recordJSON  `json:"kernel_list_adopted,omitempty"`
	Boot    *adopterBoot `json:"boot_aggregate,omitempty"`
	Problem string       `json:"problem,omitempty"`
}

type recordJSON struct {
	Listed    int      `json:"listed"`
	PCR       int      `json:"pcr"`
	Banks     []string `json:"banks"`
	Aggregate string   `json:"aggregate,omitempty"`
}

type adopterBoot struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Rule   string `json:"rule,omitempty"`
	Error  string `json:"error,omitempty"`
}

// maxAdopterList bounds the adopter's list log check reads into memory.
const maxAdopterList = 256 << 20

// checkAdopter checks the adopter's own list against the PCR values the
// kernel's list was checked with: it must replay to them (its own PCR), its
// boot aggregate must pass judge (log check: what PCR 0-9 give, bootagg.Check,
// unchecked when the values lack PCR 0-9; verify: its boot aggregate rule),
// and it must carry a kernel_list_adopted record for the kernel list's PCR
// that lists no more entries than the kernel list has. The result is data;
// the error is for a list that cannot be read.
func checkAdopter(path string, target pcr.Set, kernelPCR, kernelEntries int, judge func(*ima.Entry) *adopterBoot) (*adopterJSON, error) {
	data, err := readBounded(path, maxAdopterList)
	if err != nil {
		return nil, err
	}
	out := &adopterJSON{List: path}
	open := func() iter.Seq2[*ima.Entry, error] {
		return ima.NewListReader(bytes.NewReader(data), ima.ReaderOptions{AllowUnknownTemplates: true}).All()
	}
	var banks []pcr.Bank
	for _, b := range target.Banks() {
		if b.Known() {
			banks = append(banks, b)
		}
	}
	rep, err := replay.Check(open, target, replay.Options{Banks: banks})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out.Matched = rep.Err() == nil
	for _, c := range rep.Checks {
		if c.Matched {
			out.Checks = append(out.Checks, fmt.Sprintf("%s PCR-%02d: matched at entry %d of %d", c.Bank, c.PCR, c.Prefix, rep.Entries))
		} else {
			out.Checks = append(out.Checks, fmt.Sprintf("%s PCR-%02d: MISMATCH: TPM %x, list replays to %x", c.Bank, c.PCR, c.Want, c.Got))
		}
	}
	if !out.Matched {
		out.Problem = fmt.Sprintf("the adopter's list does not replay to the PCR values: %v", rep.Err())
	}
	i := 0
	for e, err := range open() {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if i == 0 && e.IsBootAggregate() {
			out.Boot = judge(e)
		}
		i++
		r, ok, err := adopt.RecordOf(e)
		switch {
		case err != nil:
			out.Problem = fmt.Sprintf("entry %d: %v", i, err)
			out.Matched = false
		case ok:
			rj := &recordJSON{Listed: r.Listed, PCR: r.PCR, Aggregate: r.Aggregate}
			for _, b := range r.Banks {
				rj.Banks = append(rj.Banks, b.String())
			}
			out.Record = rj // the last one: the latest appearance
		}
	}
	switch {
	case out.Boot == nil:
		out.Matched, out.Problem = false, "the adopter's list does not begin with a boot aggregate"
	case out.Boot.Error != "":
		out.Matched, out.Problem = false, "the adopter's boot aggregate: "+out.Boot.Error
	case out.Record == nil:
		out.Matched, out.Problem = false, "the adopter's list has no "+adopt.RecordName+" entry"
	case out.Record.PCR != kernelPCR || out.Record.Listed > kernelEntries:
		out.Matched = false
		out.Problem = fmt.Sprintf("the %s entry (PCR %d, %d entries listed) does not fit the kernel's list (PCR %d, %d entries)",
			adopt.RecordName, out.Record.PCR, out.Record.Listed, kernelPCR, kernelEntries)
	}
	return out, nil
}

// adopterAggregate checks the adopter's boot aggregate against PCR 0-9.
func adopterAggregate(e *ima.Entry, target pcr.Set) *adopterBoot {
	name, _ := e.Name()
	d, err := e.FileDigest()
	if err != nil {
		return &adopterBoot{Name: name, Error: err.Error()}
	}
	b := &adopterBoot{Name: name, Digest: d.String()}
	alg := d.Alg.String()
	if e.Template == ima.TemplateIMA {
		alg = ""
	}
	rule, err := bootagg.Check(name, alg, d.Sum, target)
	switch {
	case errors.Is(err, bootagg.ErrNoBank):
		b.Rule = "unchecked (no PCR 0-9 values for its bank given)"
	case err != nil:
		b.Error = err.Error()
	default:
		b.Rule = "matches the PCRs (" + rule.String() + ")"
	}
	return b
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

func printAdopter(w io.Writer, a *adopterJSON) {
	fmt.Fprintf(w, "adopter's list %s:\n", a.List)
	for _, c := range a.Checks {
		fmt.Fprintf(w, "  %s\n", c)
	}
	if a.Boot != nil {
		v := a.Boot.Rule
		if a.Boot.Error != "" {
			v = "MISMATCH: " + a.Boot.Error
		}
		fmt.Fprintf(w, "  %s %s: %s\n", a.Boot.Name, a.Boot.Digest, v)
	}
	if r := a.Record; r != nil {
		fmt.Fprintf(w, "  %s: the TPM appeared when the kernel had listed %d entries (PCR %d, banks %s): entries 1-%d of the kernel's list predate it\n",
			adopt.RecordName, r.Listed, r.PCR, strings.Join(r.Banks, ","), r.Listed)
	}
	if a.Problem != "" {
		fmt.Fprintf(w, "  NOT evidence: %s\n", a.Problem)
	}
}

package adopt

import (
	"bytes"
	"fmt"
	"iter"
	"slices"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/replay"
)

// This file holds adoption's decisions as pure functions of entries and PCR
// values: is the list a TPM-bypass list, what one extend carries, how many
// entries a TPM already holds, whether the TPM still holds what adoption
// extended. adopt.go does the I/O around them.

// Bank is one allocated PCR bank of the TPM with the size of its digests
// (for a bank imago cannot hash, the size the TPM reports).
type Bank struct {
	Alg  pcr.Bank
	Size int
}

// CheckFirst decides from the first entry of the kernel's list whether the
// list is a TPM-bypass list (ima-spec.md §6.4): a boot aggregate
// (boot_aggregate, or boot_aggregate_late from a kernel with the seed patch
// that still found no TPM) whose digest is all zeros. It returns the
// digest's algorithm, the kernel's ima_hash_algo ("sha1" for the legacy d
// field). Anything else is a *RefusedError.
func CheckFirst(e *ima.Entry) (alg string, err error) {
	if !e.IsBootAggregate() {
		name, _ := e.Name()
		return "", refuse(NotBypass, "the kernel's first entry is %q, not a boot aggregate", name)
	}
	d, err := e.FileDigest()
	if err != nil {
		return "", refuse(BadList, "the kernel's boot aggregate: %v", err)
	}
	if !d.IsZero() {
		return "", refuse(NotBypass, "the kernel found a TPM at boot (its boot aggregate is %s, not zeros) and extends PCR %d itself", d, e.PCR)
	}
	return d.Alg.String(), nil
}

// CheckListed checks entry i's listed SHA-1 template digest (the classic
// list's column): the SHA-1 of its template data, or all zeros for a
// violation (ima-spec.md §4.1, §5.2). A list that fails this is not what a
// kernel writes, and is not adopted.
func CheckListed(i int, e *ima.Entry) error {
	if len(e.Digest) != 20 {
		return refuse(BadList, "entry %d: listed template digest of %d bytes, want 20 (sha1)", i, len(e.Digest))
	}
	if e.IsViolation() {
		return nil
	}
	if d := e.TemplateDigest(pcr.SHA1); !bytes.Equal(d, e.Digest) {
		return refuse(BadList, "entry %d: listed template digest %x, its template data hash to %x", i, e.Digest, d)
	}
	return nil
}

// Digests returns what one TPM2_PCR_Extend carries for e: per allocated
// bank, what the kernel would have extended (ima.Entry.ExtendDigest: the
// bank's hash of the template data, the SHA-1 digest zero-padded for a bank
// imago cannot hash, 0xFF for a violation).
func Digests(e *ima.Entry, banks []Bank) map[pcr.Bank][]byte {
	out := make(map[pcr.Bank][]byte, len(banks))
	for _, b := range banks {
		out[b.Alg] = e.ExtendDigest(b.Alg, b.Size)
	}
	return out
}

// known returns the banks imago can hash, the only ones it can check.
func known(banks []Bank) []pcr.Bank {
	var out []pcr.Bank
	for _, b := range banks {
		if b.Alg.Known() {
			out = append(out, b.Alg)
		}
	}
	return out
}

// FindPrefix returns how many entries of the kernel's list the TPM holds:
// the k for which replaying the first k entries (as Digests extends them)
// gives the TPM's value of every PCR the list names, in every bank imago can
// hash, all at the same k. Every such PCR at zero is k = 0. tpm holds the
// TPM's PCRs (at least every PCR the list names, in every bank); open yields
// the list (a fixed snapshot: it may be called twice). A TPM whose PCRs are
// no prefix of the list, or whose banks disagree, is a *RefusedError with
// reason NotPrefix; any other error means the list could not be read.
func FindPrefix(open func() iter.Seq2[*ima.Entry, error], tpm pcr.Set, banks []Bank) (int, error) {
	kb := known(banks)
	if len(kb) == 0 {
		return 0, refuse(NoBank, "the TPM has no PCR bank imago can hash (banks %v)", banks)
	}
	// Fast path: the first entry (the boot aggregate) extends its PCR, so a
	// TPM whose value of that PCR is zeros in every bank holds no prefix. A
	// PCR the list names later that is not zeros is caught by the check
	// before the batch that extends it (chain.check).
	for e, err := range open() {
		if err != nil {
			return 0, err
		}
		zero := true
		for _, b := range kb {
			if v, ok := tpm.Get(b, int(e.PCR)); !ok || !isZero(v) {
				zero = false
			}
		}
		if zero {
			return 0, nil
		}
		break
	}
	target := make(pcr.Set)
	for _, b := range kb {
		for i, v := range tpm[b] {
			target.Put(b, i, v)
		}
	}
	rep, err := replay.Check(open, target, replay.Options{Banks: kb, ListBank: pcr.SHA1, MaxTemplateMismatches: 1})
	if err != nil {
		return 0, err
	}
	if rep.TemplateMismatchCount > 0 {
		m := rep.TemplateMismatches[0]
		return 0, refuse(BadList, "entry %d: listed template digest %x, its template data hash to %x", m.Entry, m.Listed, m.Computed)
	}
	if len(rep.Checks) == 0 {
		return 0, refuse(BadList, "the kernel's list names no PCR the TPM has")
	}
	if !slices.ContainsFunc(rep.Checks, func(c replay.PCRCheck) bool { return !isZero(c.Want) }) {
		return 0, nil
	}
	k := -1
	for _, c := range rep.Checks {
		if !c.Matched || c.Variant != replay.PerBank {
			return 0, refuse(NotPrefix, "%s PCR %d holds %x, which no prefix of the kernel's %d entries replays to: something other than adoption extended it", c.Bank, c.PCR, c.Want, rep.Entries)
		}
		if k < 0 {
			k = c.Prefix
		} else if c.Prefix != k {
			return 0, refuse(NotPrefix, "the banks disagree: %s PCR %d holds the first %d entries, another bank the first %d", c.Bank, c.PCR, c.Prefix, k)
		}
	}
	return k, nil
}

// chain is what adoption expects the TPM to hold: for each bank imago can
// hash, the value of every PCR, starting from values the TPM was seen to hold
// and extended as adoption extends them.
type chain struct {
	banks []pcr.Bank
	vals  pcr.Set
}

// newChain starts a chain for a TPM that holds a prefix of the list: the
// TPM's values of the PCRs that prefix extends (held, which FindPrefix found
// equal to the prefix's replay), zeros for every other PCR (whatever the TPM
// holds there, which the next check compares).
func newChain(banks []Bank, tpm pcr.Set, held map[int]bool) *chain {
	c := &chain{banks: known(banks), vals: make(pcr.Set)}
	for _, b := range c.banks {
		for i, v := range tpm[b] {
			if !held[i] {
				v = pcr.Zero(b)
			}
			c.vals.Put(b, i, v)
		}
	}
	return c
}

// extend records one extend of PCR i with digests.
func (c *chain) extend(i int, digests map[pcr.Bank][]byte) {
	for _, b := range c.banks {
		old, ok := c.vals.Get(b, i)
		if !ok {
			old = pcr.Zero(b)
		}
		c.vals.Put(b, i, pcr.Extend(b, old, digests[b]))
	}
}

// check compares the TPM's PCRs idx with the chain: a difference means that
// something other than adoption extended a PCR the kernel's list uses (or
// the TPM was reset), and adoption must stop.
func (c *chain) check(tpm pcr.Set, idx []int) error {
	for _, b := range c.banks {
		for _, i := range idx {
			want, ok := c.vals.Get(b, i)
			if !ok {
				want = pcr.Zero(b)
			}
			got, ok := tpm.Get(b, i)
			if !ok {
				return fmt.Errorf("adopt: %s PCR %d was not read", b, i)
			}
			if !bytes.Equal(got, want) {
				return refuse(NotPrefix, "%s PCR %d holds %x where adoption expects %x: something else extended it, or the TPM was reset", b, i, got, want)
			}
		}
	}
	return nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

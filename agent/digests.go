package agent

import (
	"fmt"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// BankInfo is one allocated PCR bank and its digest size (for a bank imago
// does not know, the size the TPM reports).
type BankInfo struct {
	Bank pcr.Bank
	Size int
}

// bankDigests returns what one TPM2_PCR_Extend carries for e, per allocated
// bank (ima-spec.md §4.3, §4.4, §5.2; ima.Entry.ExtendDigest). sha1 is e's
// SHA-1 template digest, as listed (all zeros for a violation).
func bankDigests(e *ima.Entry, sha1 []byte, banks []BankInfo) map[pcr.Bank][]byte {
	out := make(map[pcr.Bank][]byte, len(banks))
	for _, b := range banks {
		if b.Bank == pcr.SHA1 && !isZero(sha1) {
			out[b.Bank] = sha1
			continue
		}
		out[b.Bank] = e.ExtendDigest(b.Bank, b.Size)
	}
	return out
}

// exportBanks returns the banks that get binary/ascii_runtime_measurements_<alg>
// files (ima-spec.md §2.1): every allocated bank in TPM order, then SHA-1 if
// no bank is SHA-1 (the extra slot). In bypass that is SHA-1 alone.
func exportBanks(banks []BankInfo) []BankInfo {
	out := append([]BankInfo(nil), banks...)
	for _, b := range banks {
		if b.Bank == pcr.SHA1 {
			return out
		}
	}
	return append(out, BankInfo{Bank: pcr.SHA1, Size: 20})
}

// aggregateBank picks the bank ima_calc_boot_aggregate uses for algo
// (ima-spec.md §6.2; bootagg.Choose).
func aggregateBank(banks []pcr.Bank, algo ima.HashAlg) (pcr.Bank, bool) {
	return bootagg.Choose(banks, algo.String())
}

// Aggregate is a computed boot aggregate: the d-ng digest with its algorithm
// and the legacy d field's SHA-1 digest (ima-spec.md §6.2, §6.3).
type Aggregate struct {
	Alg    ima.HashAlg
	Digest []byte
	D      []byte // 20 bytes
}

// computeAggregate computes the boot aggregate for ima_hash_algo algo from
// the TPM's PCR0-9 in set, as the kernel does (bootagg.Kernel,
// bootagg.KernelLegacy); a nil set is bypass: zeros of algo's size (§6.4).
func computeAggregate(set pcr.Set, banks []pcr.Bank, algo ima.HashAlg) (Aggregate, error) {
	agg := Aggregate{Alg: algo, Digest: make([]byte, algo.Size()), D: make([]byte, 20)}
	if set == nil {
		return agg, nil
	}
	name, d, ok := bootagg.Kernel(banks, algo.String(), set)
	if !ok {
		return agg, fmt.Errorf("agent: boot aggregate: unknown algorithm %s", algo)
	}
	a, err := ima.ParseHashAlg(name)
	if err != nil {
		return agg, fmt.Errorf("agent: boot aggregate: %w", err)
	}
	agg.Alg, agg.Digest = a, d
	agg.D = bootagg.KernelLegacy(banks, algo.String(), set)
	return agg, nil
}

package bootagg

// Adopted is what a TPM-bypass list that a TPM nevertheless holds is: a
// list adopted by a late TPM (RuleAdopted).
const Adopted = "bypass list adopted by a late TPM"

// AdoptedEvidence says where the real boot aggregate of an adopted list is.
const AdoptedEvidence = "the real boot aggregate is in the adopter's own list (imago agent --adopt-kernel-list: its boot_aggregate_late entry and its kernel_list_adopted entry, which names how many entries were listed before the TPM appeared)"

// IsBypass reports whether a boot aggregate digest is the TPM-bypass value:
// all zeros (§6.4). An empty digest is not.
func IsBypass(digest []byte) bool {
	for _, c := range digest {
		if c != 0 {
			return false
		}
	}
	return len(digest) > 0
}

// CheckBypass decides what a list whose boot aggregate is the TPM-bypass
// value (zeros) is, given replayed: whether the list replays to the TPM's
// value of its PCR (the boot aggregate's, 10) in the banks checked.
//
// A kernel in TPM-bypass extends nothing (§6.4), so a bypass list that a TPM
// holds was extended into a TPM that appeared after IMA's init, entry by
// entry, by an adopter (imago agent --adopt-kernel-list, for kernels without
// the late-TPM patch; a kernel with it names its aggregate
// boot_aggregate_late and computes it from the TPM): RuleAdopted, reported
// as Adopted. Such a list's boot aggregate proves nothing about the boot:
// the evidence for the real one is the adopter's own list (AdoptedEvidence),
// to be checked against the same TPM; and the entries listed before the TPM
// appeared are only as trustworthy as the system was until then. A bypass
// list the TPM does not hold is RuleNoTPM: nothing anchors it. A digest that
// is not the bypass value is a *MismatchError (CheckNoTPM): check it with
// Check instead.
//
// Both `imago log check` and package verify call this for a zero boot
// aggregate, so that an adopted list is reported the same way everywhere:
// neither a silent pass nor a parse failure.
func CheckBypass(name, alg string, digest []byte, replayed bool) (Rule, error) {
	r, err := CheckNoTPM(name, alg, digest)
	if err != nil {
		return 0, err
	}
	if replayed {
		return RuleAdopted, nil
	}
	return r, nil
}

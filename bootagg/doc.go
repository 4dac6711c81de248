// Package bootagg computes and checks the IMA boot aggregate, the first entry
// of a measurement list (ima-spec.md §6), as pure functions of PCR values.
//
// The rules (§6.2-6.4, and rule 7 of the fixture corpus' MANIFEST.md):
//
//   - SHA-1 bank: SHA-1(PCR0 || ... || PCR7) (RuleSHA1);
//   - any other bank, Linux 5.8 and later: H(PCR0 || ... || PCR9)
//     (RulePCR0to9); before 5.8: H(PCR0..7) (RulePre58);
//   - the kernel picks the bank (Choose): the bank whose hash is ima_hash,
//     else the last SHA-256 bank, else the first SHA-1 bank, else none (all
//     zeros, algorithm ima_hash);
//   - the legacy d field (template "ima") holds SHA-1(PCR0..7), or 20 zero
//     bytes without a SHA-1 bank (KernelLegacy, LegacySHA1);
//   - without a TPM (TPM-bypass) the digest is all zeros (NoTPM, CheckNoTPM).
//
// The PCR values come as a pcr.Set, from a TPM read (all 24 PCRs) or from
// eventlog.Replay of the firmware log. A replay lists only PCRs that had
// events (and PCR 0); a PCR 0-9 absent from the set is taken as zeros, its
// value after TPM2_Startup. PCR 0's locality (StartupLocality, H-CRTM) is
// already in the replayed PCR 0.
//
// Check takes the entry as plain values (name, algorithm, digest) and returns
// the Rule that reproduces it, or a *MismatchError with every candidate.
package bootagg

// Package eventlog reads TCG PC Client firmware event logs
// (/sys/kernel/security/tpm0/binary_bios_measurements) and replays them to
// PCR values, the input of the IMA boot aggregate (ima-spec.md §11, §6.5).
//
// It is pure: it reads an io.Reader and returns values, using only the
// standard library, pcr and internal/sm3.
//
// # Formats
//
// Both layouts of TCG PC Client Platform Firmware Profile §10.2 are read, all
// integers little-endian:
//
//   - SHA-1 (TPM 1.2 / legacy): TCG_PCR_EVENT records {pcrIndex, eventType,
//     SHA-1 digest, eventSize, event} until the end;
//   - crypto-agile (TPM 2.0): a first TCG_PCR_EVENT of type EV_NO_ACTION whose
//     data is the TCG_EfiSpecIDEvent ("Spec ID Event03\0", §10.4.5.1), then
//     TCG_PCR_EVENT2 records carrying one digest per algorithm of the Spec ID
//     table. Any algorithm set is read (sha1, sha256, sha384, sha512, sm3_256);
//     algorithms imago cannot compute are parsed by the table's size and kept.
//
// Intel TDX CCEL logs are the same crypto-agile format (sha384, "PCR" index =
// MR index, RTMR i = index i+1) and read the same way.
//
// Reader is a streaming, sticky-error reader with Next, All and Offset; a
// malformed record gives a *FormatError with its byte offset and field.
// Lengths are bounded by MaxLogSize, MaxEvents, MaxEventSize, MaxDigests and
// MaxDigestSize before anything is allocated. The reader stops when the rest
// of the input is filler (all 0x00 or all 0xFF, as padded logs and CCEL areas
// have), so a log cut inside a record that leaves only 0x00/0xFF bytes looks
// like filler. It accepts a Spec ID event whose vendorInfo runs past its
// eventSize (tpm2-tools' specid-vendordata.bin) by taking the missing bytes from
// after the record, and records that in SpecID.VendorInfoOutside.
//
// # Replay
//
// Replay follows ima-spec.md §11 and rules 1-6 of the fixture corpus'
// MANIFEST.md, each confirmed against independent values:
//
//   - PCRs start at zeros, PCRs 17-22 at all 0xFF;
//   - EV_NO_ACTION events are never extended (SP800-155 Event3 events carry
//     real digests and are still not extended);
//   - StartupLocality: an EV_NO_ACTION "StartupLocality\0" event with
//     locality L before the first PCR 0 extend makes PCR 0 start at 00..0L;
//   - H-CRTM: with an EV_EFI_HCRTM_EVENT in PCR 0 and no StartupLocality
//     event, PCR 0 starts at 00..04 and the HCRTM event is extended;
//   - events in PCR 0xFFFFFFFF (Windows' "PCR -1") are parsed, never extended;
//   - a bank some event carries no digest for is left out (ReplayInfo.Incomplete).
//
// ReplayInfo says which of these applied. Replay does not repair firmware
// bugs: a log that misses the ExitBootServices EV_EFI_ACTION events in PCR 5
// (MANIFEST rule 5, go-attestation's ebs_event_missing_eventlog) replays to
// what the log says; a caller may append the two events and replay again.
//
// # Why not go-eventlog or go-attestation
//
// Both were evaluated on every log of the corpus (notes/eventlog-why.md).
// They agree on ordinary logs, but go-eventlog v0.0.2 does not replay the
// H-CRTM log (tpm2-tss binary_measurements_hcrtm.bin, PCR 0) or a sha512
// bank (tpm2-tools event.bin); go-attestation v0.6.4 refuses the sm3_256
// H-CRTM log and the 0xFF-padded TDX CCEL logs; both refuse tpm2-tools'
// specid-vendordata.bin. Neither computes PCR values (they only check a log
// against values one already has), both start PCRs 17-22 at zeros, and both
// bring go-tpm and more into a package that must be stdlib-only.
package eventlog

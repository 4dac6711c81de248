package eventlog

import (
	"fmt"
	"slices"

	"github.com/imago-ima/imago/pcr"
)

// NumPCRs is the number of PCRs of a PC Client TPM (0-23).
const NumPCRs = 24

// ReplayInfo says how Replay computed its values and which quirks of the log
// it applied.
type ReplayInfo struct {
	// Format is FormatCryptoAgile if the first event is a Spec ID event, else
	// FormatSHA1.
	Format Format
	// Banks are the banks replayed, in TPM_ALG_ID order.
	Banks []pcr.Bank
	// Unknown are banks the log carries that imago cannot compute. Their
	// digests are parsed and kept in the events; they are not replayed and
	// have no values in the Set.
	Unknown []pcr.Bank
	// Incomplete are banks the log declares but some extended event carries
	// no digest for (a malformed log: TCG PC Client PFP §10.2.2 wants every
	// bank in every record). They cannot be replayed and have no values in
	// the Set.
	Incomplete []pcr.Bank
	// InitialPCR0 is the last byte PCR 0 started with in every bank: the
	// StartupLocality, 4 for an H-CRTM start, else 0.
	InitialPCR0 uint8
	// StartupLocality is true if a StartupLocality EV_NO_ACTION event set
	// InitialPCR0.
	StartupLocality bool
	// HCRTM is true if an EV_EFI_HCRTM_EVENT without a StartupLocality event
	// made PCR 0 start at 4.
	HCRTM bool
	// Events is the number of events given; Extended how many were extended.
	Events, Extended int
	// NoAction counts EV_NO_ACTION events (never extended), PCRNone events in
	// "PCR -1" (never extended, whatever their type), OutOfRange events whose
	// PCR index is 24 or more but not 0xFFFFFFFF (not extended: a TPM would
	// refuse them).
	NoAction, PCRNone, OutOfRange int
	// Filler and FillerByte: filler after the last event (set by Log.Replay).
	Filler     int64
	FillerByte byte
}

// Replay computes the PCR values a TPM holds after the events (ima-spec.md
// §11, the replay rules of the fixtures' MANIFEST.md):
//
//   - every PCR of every bank starts at zeros, except PCRs 17-22 at all 0xFF;
//   - PCR 0 starts at 00..0L if a StartupLocality EV_NO_ACTION event with
//     locality L comes before the first event extended into PCR 0
//     (TCG PC Client PFP §10.4.5.3); otherwise at 00..04 if the log has an
//     EV_EFI_HCRTM_EVENT in PCR 0 (H-CRTM; the event itself is extended);
//   - EV_NO_ACTION events and events in PCR 0xFFFFFFFF are never extended;
//   - every other event extends PCR[pcrIndex] of each bank with its digest
//     for that bank: PCR = H(PCR || digest).
//
// The Set holds every bank the log carries that imago can compute and, per
// bank, PCR 0 and every PCR that had an extended event. PCRs without events
// are absent (a caller wanting PCR0-9 treats them as their reset value,
// zeros). The banks come from the Spec ID event if events[0] is one, else
// from the digests of the events (SHA-1 for a SHA-1 log). A bank that some
// extended event has no digest for is left out and listed in
// ReplayInfo.Incomplete. A digest of the wrong size is an error.
func Replay(events []*Event) (pcr.Set, ReplayInfo, error) {
	info := ReplayInfo{Events: len(events), Format: FormatSHA1}
	var banks []pcr.Bank
	if len(events) > 0 && isSpecIDEvent(events[0]) {
		spec, _, err := parseSpecID(events[0].Data)
		if err != nil {
			return nil, ReplayInfo{}, &FormatError{Offset: events[0].Offset, Event: events[0].Seq, Field: "specID", Err: err}
		}
		info.Format = FormatCryptoAgile
		banks = spec.Banks()
	} else {
		for _, e := range events {
			for _, d := range e.Digests {
				if !slices.Contains(banks, d.Bank) {
					banks = append(banks, d.Bank)
				}
			}
		}
	}
	for _, b := range banks {
		if b.Known() {
			info.Banks = append(info.Banks, b)
		} else {
			info.Unknown = append(info.Unknown, b)
		}
	}
	slices.Sort(info.Banks)
	slices.Sort(info.Unknown)

	// Initial PCR 0: StartupLocality before the first PCR 0 extend, else
	// H-CRTM.
	for _, e := range events {
		if l, ok := e.StartupLocality(); ok {
			info.InitialPCR0, info.StartupLocality = l, true
			break
		}
		if e.PCR == 0 && e.Type != EV_NO_ACTION {
			break
		}
	}
	if !info.StartupLocality {
		for _, e := range events {
			if e.PCR == 0 && e.Type == EV_EFI_HCRTM_EVENT {
				info.InitialPCR0, info.HCRTM = 4, true
				break
			}
		}
	}

	type bankState struct {
		bank       pcr.Bank
		incomplete bool
		ext        *pcr.Extender
		v          [NumPCRs][]byte
	}
	states := make([]*bankState, len(info.Banks))
	for i, b := range info.Banks {
		st := &bankState{bank: b, ext: pcr.NewExtender(b)}
		for j := range st.v {
			st.v[j] = make([]byte, b.Size())
			if j >= 17 && j <= 22 {
				for k := range st.v[j] {
					st.v[j][k] = 0xff
				}
			}
		}
		st.v[0][b.Size()-1] = info.InitialPCR0
		states[i] = st
	}
	var touched [NumPCRs]bool
	touched[0] = true
	for _, e := range events {
		switch {
		case e.PCR == PCRNone:
			info.PCRNone++
			continue
		case e.Type == EV_NO_ACTION:
			info.NoAction++
			continue
		case e.PCR >= NumPCRs:
			info.OutOfRange++
			continue
		}
		for _, st := range states {
			if st.incomplete {
				continue
			}
			d, ok := e.Digest(st.bank)
			if !ok {
				st.incomplete = true
				continue
			}
			if len(d) != st.bank.Size() {
				return nil, ReplayInfo{}, &FormatError{Offset: e.Offset, Event: e.Seq, Field: "digest",
					Err: fmt.Errorf("%s digest has %d bytes, want %d", st.bank, len(d), st.bank.Size())}
			}
			st.ext.Extend(st.v[e.PCR], d)
		}
		touched[e.PCR] = true
		info.Extended++
	}
	out := make(pcr.Set)
	var complete []pcr.Bank
	for _, st := range states {
		if st.incomplete {
			info.Incomplete = append(info.Incomplete, st.bank)
			continue
		}
		complete = append(complete, st.bank)
		for i, t := range touched {
			if t {
				out.Put(st.bank, i, st.v[i])
			}
		}
	}
	info.Banks = complete
	return out, info, nil
}

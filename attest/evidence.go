package attest

import (
	"github.com/imago-ima/imago/quote"
)

// Evidence answers a challenge: one quote over the selection, the quoted
// PCR values, the measurement list from the offset (read after the
// quote), and the firmware event log if it was asked for.
type Evidence struct {
	// Token is the challenge's token. Empty in offline evidence, which
	// carries its Nonce instead.
	Token string `json:"token,omitempty"`
	// Nonce is the nonce quoted (offline evidence only).
	Nonce []byte `json:"nonce,omitempty"`
	// Quote is the TPMS_ATTEST and TPMT_SIGNATURE of TPM2_Quote.
	Quote Quote `json:"quote"`
	// PCRs are the values of every quoted PCR.
	PCRs PCRValues `json:"pcrs"`
	// Offset is the index of List's first entry.
	Offset uint64 `json:"offset"`
	// List is the binary measurement list from Offset on, as securityfs
	// binary_runtime_measurements has it.
	List []byte `json:"list"`
	// EventLog is the TCG firmware event log (binary_bios_measurements), if
	// asked for and present.
	EventLog []byte `json:"event_log,omitempty"`
	// AKPublic is the AK's TPMT_PUBLIC (offline evidence only: it names
	// the key the verifier must have enrolled).
	AKPublic []byte `json:"ak_public,omitempty"`
}

// Quote is a TPM2_Quote's output.
type Quote struct {
	Attest    []byte `json:"attest"`
	Signature []byte `json:"signature"`
}

// Limits on evidence.
const (
	// MaxEvidenceSize bounds encoded evidence (a first round carries the
	// whole list: a busy host's list of 100,000 entries is about 20 MiB,
	// base64 a third more).
	MaxEvidenceSize = 64 << 20
	// MaxListSize bounds the list bytes of one round.
	MaxListSize = 48 << 20
	// MaxEventLogSize bounds the firmware event log.
	MaxEventLogSize = 4 << 20
)

// DecodeEvidence decodes and bounds Evidence: the quote fields within
// quote's limits, PCR values only for banks of known size and PCRs below
// quote.NumPCRs. The quote itself is decoded by quote.Parse.
func DecodeEvidence(data []byte) (*Evidence, error) {
	const msg = "evidence"
	var e Evidence
	if err := decode(msg, data, MaxEvidenceSize, &e); err != nil {
		return nil, err
	}
	if e.Token != "" {
		if err := checkToken(msg, e.Token); err != nil {
			return nil, err
		}
	}
	if err := checkLen(msg, "nonce", e.Nonce, 0, quote.MaxNonceSize); err != nil {
		return nil, err
	}
	if e.Token == "" && len(e.Nonce) == 0 {
		return nil, formatErr(msg, "token", "neither a challenge token nor a nonce")
	}
	if err := checkLen(msg, "quote.attest", e.Quote.Attest, 1, quote.MaxAttestSize); err != nil {
		return nil, err
	}
	if err := checkLen(msg, "quote.signature", e.Quote.Signature, 1, quote.MaxSignatureSize); err != nil {
		return nil, err
	}
	if len(e.PCRs) == 0 || len(e.PCRs) > quote.MaxBanks {
		return nil, formatErr(msg, "pcrs", "%d banks, want 1 to %d", len(e.PCRs), quote.MaxBanks)
	}
	for b, m := range e.PCRs {
		if !b.Known() {
			return nil, formatErr(msg, "pcrs", "bank %s: digest size unknown", b)
		}
		for i := range m {
			if i >= quote.NumPCRs {
				return nil, formatErr(msg, "pcrs", "bank %s: PCR %d outside [0, %d)", b, i, quote.NumPCRs)
			}
		}
	}
	if err := checkLen(msg, "list", e.List, 0, MaxListSize); err != nil {
		return nil, err
	}
	if err := checkLen(msg, "event_log", e.EventLog, 0, MaxEventLogSize); err != nil {
		return nil, err
	}
	if err := checkLen(msg, "ak_public", e.AKPublic, 0, quote.MaxPublicSize); err != nil {
		return nil, err
	}
	return &e, nil
}

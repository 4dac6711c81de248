package attest

import (
	"github.com/imago-ima/imago/quote"
)

// ChallengeRequest opens an attestation round. It says what the attester
// has; the verifier decides what it wants.
type ChallengeRequest struct {
	// Banks are the TPM's allocated PCR banks, by name.
	Banks []string `json:"banks"`
	// ListPCRs are the PCRs the attester's measurement list extends (10
	// for the kernel's IMA, the agent's --pcr for imago's own list).
	ListPCRs []int `json:"list_pcrs,omitempty"`
}

// Challenge is the verifier's answer: what the quote must cover and where
// the list must start. It is single-use and expires.
type Challenge struct {
	// Token names the challenge; Evidence returns it.
	Token string `json:"token"`
	// Nonce is the quote's qualifying data.
	Nonce []byte `json:"nonce"`
	// Selection is the PCR selection to quote.
	Selection quote.Selection `json:"selection"`
	// Offset is the index of the first list entry to send.
	Offset uint64 `json:"offset"`
	// EventLog asks for the firmware event log (the first round after
	// enrollment or a reboot).
	EventLog bool `json:"event_log"`
	// Expires is when the verifier stops honouring the token (RFC 3339).
	Expires string `json:"expires"`
}

// MaxChallengeRequestSize bounds an encoded ChallengeRequest.
const MaxChallengeRequestSize = 4 << 10

// DecodeChallengeRequest decodes and bounds a ChallengeRequest.
func DecodeChallengeRequest(data []byte) (*ChallengeRequest, error) {
	const msg = "challenge request"
	var r ChallengeRequest
	if err := decode(msg, data, MaxChallengeRequestSize, &r); err != nil {
		return nil, err
	}
	if len(r.Banks) == 0 || len(r.Banks) > quote.MaxBanks {
		return nil, formatErr(msg, "banks", "%d banks, want 1 to %d", len(r.Banks), quote.MaxBanks)
	}
	if len(r.ListPCRs) > quote.NumPCRs {
		return nil, formatErr(msg, "list_pcrs", "%d PCRs, more than %d", len(r.ListPCRs), quote.NumPCRs)
	}
	for _, p := range r.ListPCRs {
		if p < 0 || p >= quote.NumPCRs {
			return nil, formatErr(msg, "list_pcrs", "PCR %d outside [0, %d)", p, quote.NumPCRs)
		}
	}
	return &r, nil
}

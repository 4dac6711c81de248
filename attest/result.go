package attest

import "github.com/imago-ima/imago/quote"

// Node states a user sees.
const (
	// StateEnrolling: added, no verdict yet (enrollment pending or done).
	StateEnrolling = "enrolling"
	// StatePass: the last round passed.
	StatePass = "pass"
	// StateFail: a round failed; Failures say why.
	StateFail = "fail"
	// StateStale: no evidence within three intervals.
	StateStale = "stale"
)

// Verdicts of one round.
const (
	VerdictPass = "pass"
	VerdictFail = "fail"
	// VerdictRestart: the quote shows a TPM reset or restart (a reboot);
	// the node starts over and the attester asks for a new challenge.
	VerdictRestart = "restart"
)

// Failure is one reason a round failed, with Keylime's dotted ids for
// entries (ima.validation.ima-ng.not_in_allowlist, ima.pcr_mismatch, ...) and
// imago's for the quote (quote.signature, quote.nonce, ...).
type Failure struct {
	// Entry is the list index of the failing entry, or -1.
	Entry int64 `json:"entry"`
	// Path is the entry's file name, if one.
	Path string `json:"path,omitempty"`
	// ID is the failure id.
	ID string `json:"id"`
	// Detail says more, for people.
	Detail string `json:"detail,omitempty"`
}

// Result answers Evidence.
type Result struct {
	Node    string `json:"node"`
	Verdict string `json:"verdict"`
	// State is the node's state after this round.
	State    string    `json:"state"`
	Failures []Failure `json:"failures"`
	// Entries is the number of list entries verified so far (the next
	// offset).
	Entries uint64 `json:"entries"`
	// Round numbers the node's rounds.
	Round uint64 `json:"round"`
	// EAR is the signed attestation result (a JWT), if the verifier
	// issues them.
	EAR string `json:"ear,omitempty"`
}

// NodeView is what `imago verifier node show --json` prints and
// GET /v1/nodes/{node} returns.
type NodeView struct {
	Node     string    `json:"node"`
	State    string    `json:"state"`
	Failures []Failure `json:"failures"`
	// Enrolled says the AK was activated.
	Enrolled bool `json:"enrolled"`
	// Entries is the number of list entries verified since the last
	// reboot or policy change.
	Entries uint64 `json:"entries"`
	Round   uint64 `json:"round"`
	// PolicyID is the sha256 of the runtime policy, its keyrings and
	// options.
	PolicyID string `json:"policy_id"`
	// PCR is the PCR the node's list extends.
	PCR int `json:"pcr"`
	// EK is the sha256 of the EK public area, once enrolled.
	EK string `json:"ek,omitempty"`
	// LastSeen and LastVerdict are RFC 3339 times (empty if never).
	LastSeen string `json:"last_seen,omitempty"`
	// Verdict is the last round's verdict (pass, fail, restart; empty
	// before the first), Updated when the node's row last changed.
	Verdict     string          `json:"verdict,omitempty"`
	Updated     string          `json:"updated,omitempty"`
	Created     string          `json:"created"`
	TPM         *TPMView        `json:"tpm,omitempty"`
	History     []HistoryRecord `json:"history,omitempty"`
	AllowNoCert bool            `json:"allow_ek_without_cert,omitempty"`
}

// TPMView is the node's TPM as its last accepted quote showed it.
type TPMView struct {
	Clock        uint64   `json:"clock"`
	ResetCount   uint32   `json:"reset_count"`
	RestartCount uint32   `json:"restart_count"`
	Banks        []string `json:"banks,omitempty"`
}

// HistoryRecord is one stored verdict.
type HistoryRecord struct {
	Round    uint64    `json:"round"`
	Time     string    `json:"time"`
	Verdict  string    `json:"verdict"`
	Entries  uint64    `json:"entries"`
	Failures []Failure `json:"failures,omitempty"`
}

// NodeAdd is POST /v1/nodes: a node and its runtime policy.
type NodeAdd struct {
	Node string `json:"node"`
	// RuntimePolicy is a Keylime runtime policy (JSON, possibly a DSSE
	// envelope), as given to `imago verify --runtime-policy`.
	RuntimePolicy []byte `json:"runtime_policy"`
	// Keyrings are PEM or DER certificates or public keys for ima-sig
	// entries (`--keyring`).
	Keyrings [][]byte `json:"keyrings,omitempty"`
	// AllowEKWithoutCert lets the node enrol a TPM that has no EK
	// certificate.
	AllowEKWithoutCert bool `json:"allow_ek_without_cert,omitempty"`
	// PCR is the PCR the node's list extends (0 means 10, the kernel's;
	// an imago agent's --pcr for its list).
	PCR int `json:"pcr,omitempty"`
	// PolicyKey is the PEM public key a DSSE-signed runtime policy must
	// verify with.
	PolicyKey []byte `json:"policy_key,omitempty"`
}

// Limits of NodeAdd.
const (
	MaxPolicySize  = 64 << 20
	MaxKeyrings    = 64
	MaxKeyringSize = 64 << 10
	MaxNodeAddSize = MaxPolicySize*4/3 + MaxKeyrings*MaxKeyringSize*4/3 + 4096
)

// DecodeNodeAdd decodes and bounds a NodeAdd.
func DecodeNodeAdd(data []byte) (*NodeAdd, error) {
	const msg = "node add"
	var r NodeAdd
	if err := decode(msg, data, MaxNodeAddSize, &r); err != nil {
		return nil, err
	}
	if err := ValidNodeName(r.Node); err != nil {
		return nil, &FormatError{Message: msg, Field: "node", Err: err}
	}
	if err := checkLen(msg, "runtime_policy", r.RuntimePolicy, 1, MaxPolicySize); err != nil {
		return nil, err
	}
	if len(r.Keyrings) > MaxKeyrings {
		return nil, formatErr(msg, "keyrings", "%d keys, more than %d", len(r.Keyrings), MaxKeyrings)
	}
	for _, k := range r.Keyrings {
		if err := checkLen(msg, "keyrings", k, 1, MaxKeyringSize); err != nil {
			return nil, err
		}
	}
	if r.PCR < 0 || r.PCR >= quote.NumPCRs {
		return nil, formatErr(msg, "pcr", "PCR %d outside [0, %d)", r.PCR, quote.NumPCRs)
	}
	if err := checkLen(msg, "policy_key", r.PolicyKey, 0, MaxKeyringSize); err != nil {
		return nil, err
	}
	return &r, nil
}

package attester

import (
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/imago-ima/imago/enroll"
)

// EK certificate NV indices (TCG EK Credential Profile 2.5 §2.2.1.5): the
// low range and the high range, by key type.
var ekCertIndices = []tpm2.TPMHandle{
	0x01c00002, // RSA 2048 (low range)
	0x01c0000a, // ECC NIST P-256 (low range)
	0x01c00012, // RSA 2048 (high range)
	0x01c00014, // ECC NIST P-256
	0x01c00016, // ECC NIST P-384 (swtpm puts its ECC EK certificate here)
	0x01c00018, // ECC NIST P-521
	0x01c0001a, // ECC SM2 P-256
	0x01c0001c, // RSA 3072
	0x01c0001e, // RSA 4096
}

// The templates of the low-range EKs, which a TPM re-creates on
// CreatePrimary when no persistent EK matches.
var lowRangeTemplates = map[tpm2.TPMHandle]tpm2.TPMTPublic{
	0x01c00002: tpm2.RSAEKTemplate,
	0x01c0000a: tpm2.ECCEKTemplate,
}

// The EK chain range (EK Credential Profile §2.2.1.5.2): intermediate
// certificates, one per index.
const (
	ekChainFirst tpm2.TPMHandle = 0x01c00100
	ekChainLast  tpm2.TPMHandle = 0x01c001ff
)

type nvCert struct {
	index tpm2.TPMHandle
	der   []byte
}

// readEKCertificates reads every EK certificate index that exists. An
// index that exists but cannot be read is an error, not a silent absence.
func readEKCertificates(t transport.TPM) ([]nvCert, error) {
	var out []nvCert
	for _, idx := range ekCertIndices {
		der, err := readNV(t, idx, enroll.MaxCertSize)
		if errors.Is(err, errNoIndex) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, nvCert{idx, trimDER(der)})
	}
	return out, nil
}

// readEKChain reads the chain certificates at 0x01c00100-0x01c001ff, in
// index order.
func readEKChain(t transport.TPM) ([][]byte, error) {
	idx, err := listHandles(t, ekChainFirst, ekChainLast)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, h := range idx {
		if len(out) == enroll.MaxChain {
			break
		}
		der, err := readNV(t, h, enroll.MaxCertSize)
		if err != nil {
			return nil, err
		}
		out = append(out, trimDER(der))
	}
	return out, nil
}

var errNoIndex = errors.New("NV index not defined")

// nvChunk is the size of one TPM2_NV_Read. TPM_PT_NV_BUFFER_MAX is at
// least 512 on every TPM we know (1024 on swtpm, 768 on some chips).
const nvChunk = 512

// readNV reads a whole NV index (at most limit bytes), authorising with
// the index itself (TPMA_NV_AUTHREAD with an empty auth value, as EK
// certificate indices have) or else the owner.
func readNV(t transport.TPM, idx tpm2.TPMHandle, limit int) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: idx}.Execute(t)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, errNoIndex
		}
		return nil, fmt.Errorf("attester: NV index %#x: read public: %w", uint32(idx), err)
	}
	nv, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("attester: NV index %#x: %w", uint32(idx), err)
	}
	size := int(nv.DataSize)
	if size > limit {
		return nil, fmt.Errorf("attester: NV index %#x: %d bytes, more than %d", uint32(idx), size, limit)
	}
	auth := tpm2.AuthHandle{Handle: idx, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)}
	if !nv.Attributes.AuthRead && nv.Attributes.OwnerRead {
		auth = tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	}
	out := make([]byte, 0, size)
	for off := 0; off < size; {
		n := min(nvChunk, size-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: auth,
			NVIndex:    tpm2.NamedHandle{Handle: idx, Name: pub.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("attester: NV index %#x: read at %d: %w", uint32(idx), off, err)
		}
		if len(rsp.Data.Buffer) == 0 {
			return nil, fmt.Errorf("attester: NV index %#x: empty read at %d", uint32(idx), off)
		}
		out = append(out, rsp.Data.Buffer...)
		off += len(rsp.Data.Buffer)
	}
	return out, nil
}

// trimDER cuts trailing padding after a DER SEQUENCE (NV indices are often
// larger than the certificate and padded with zeros or 0xFF).
func trimDER(b []byte) []byte {
	if len(b) < 2 || b[0] != 0x30 {
		return b
	}
	var n, hdr int
	switch l := b[1]; {
	case l < 0x80:
		n, hdr = int(l), 2
	case l == 0x81 && len(b) >= 3:
		n, hdr = int(b[2]), 3
	case l == 0x82 && len(b) >= 4:
		n, hdr = int(b[2])<<8|int(b[3]), 4
	default:
		return b
	}
	if hdr+n <= len(b) {
		return b[:hdr+n]
	}
	return b
}

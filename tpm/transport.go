package tpm

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
)

// Transport returns the TPM's command channel, for the commands this
// package does not wrap (attestation keys, credential activation, quotes,
// NV reads: package attester). Every command sent through it is serialised
// with this package's own commands and resent, up to maxRetries times, while
// the TPM answers TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING. After
// Close it fails with os.ErrClosed.
//
// Only the command is serialised: a caller that needs several commands in a
// row without interleaving (a policy session and the command it authorises)
// must be the TPM's only user meanwhile.
func (tp *TPM) Transport() transport.TPM { return lockedTransport{tp} }

type lockedTransport struct{ tp *TPM }

func (l lockedTransport) Send(cmd []byte) ([]byte, error) {
	if err := l.tp.lock(); err != nil {
		return nil, err
	}
	defer l.tp.mu.Unlock()
	for i := 0; ; i++ {
		rsp, err := l.tp.t.Send(cmd)
		if err != nil {
			return nil, fmt.Errorf("tpm: %s: %w", l.tp.name, err)
		}
		if i+1 >= maxRetries || len(rsp) < headerSize {
			return rsp, nil
		}
		switch tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10])) {
		case tpm2.TPMRCRetry, tpm2.TPMRCYielded, tpm2.TPMRCTesting:
			time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
		default:
			return rsp, nil
		}
	}
}

package agent

import "github.com/imago-ima/imago/tpm"

// openTPM is the default Config.Open: tpm.Open behind the TPM interface (a
// nil *tpm.TPM must not become a non-nil interface).
func openTPM(uri string) (TPM, error) {
	t, err := tpm.Open(uri)
	if err != nil {
		return nil, err
	}
	return t, nil
}

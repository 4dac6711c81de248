package adopt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/imago-ima/imago/internal/journal"
)

// appearance is Config.StateFile: the record of this boot's adoption, so
// that a restart still knows how many entries predate the TPM.
type appearance struct {
	Version int    `json:"version"`
	BootID  string `json:"boot_id"`
	Listed  int    `json:"listed"`
	Record  string `json:"record"`
	TPM     string `json:"tpm"`
	Time    string `json:"time"`
}

// maxStateFile bounds what is read of the state file.
const maxStateFile = 64 << 10

func (a *Adopter) bootID() (string, error) {
	b, err := os.ReadFile(a.cfg.BootIDFile)
	if err != nil {
		return "", fmt.Errorf("adopt: boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// saveAppearance writes the state file durably (if there is one).
func (a *Adopter) saveAppearance(r Record, tpmName string) error {
	if a.cfg.StateFile == "" {
		return nil
	}
	id, err := a.bootID()
	if err != nil {
		return err
	}
	data, _ := json.MarshalIndent(appearance{Version: 1, BootID: id, Listed: r.Listed, Record: string(r.Format()),
		TPM: tpmName, Time: time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	if err := journal.WriteFileAtomic(a.cfg.StateFile, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	return nil
}

// loadAppearance returns how many entries were listed when the TPM appeared
// in this boot, or nil if the state file has no record of it.
func (a *Adopter) loadAppearance() *int {
	if a.cfg.StateFile == "" {
		return nil
	}
	f, err := os.Open(a.cfg.StateFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("cannot read the adoption state file", "err", err)
		}
		return nil
	}
	defer f.Close()
	var ap appearance
	if err := json.NewDecoder(io.LimitReader(f, maxStateFile)).Decode(&ap); err != nil {
		a.log.Warn("the adoption state file is unreadable; the entry at which the TPM appeared is unknown", "file", a.cfg.StateFile, "err", err)
		return nil
	}
	id, err := a.bootID()
	if err != nil || ap.BootID != id {
		a.log.Warn("the adoption state file is from another boot; the entry at which the TPM appeared is unknown", "file", a.cfg.StateFile)
		return nil
	}
	return &ap.Listed
}

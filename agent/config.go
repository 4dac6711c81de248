package agent

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
)

// TPM is what the agent needs of a TPM; *tpm.TPM has these methods (see
// there: Extend goes through the guard session once StartGuard was
// called).
type TPM interface {
	Banks() ([]pcr.Bank, error)
	DigestSize(b pcr.Bank) (int, error)
	ReadPCRs(banks []pcr.Bank, indexes []int) (pcr.Set, error)
	Extend(index int, digests map[pcr.Bank][]byte) error
	ReadClock() (tpm.ClockInfo, error)
	StartGuard() (uint32, error)
	FlushSession(handle uint32) error
	Close() error
}

// Defaults.
const (
	DefaultPCR          = 10 // CONFIG_IMA_MEASURE_PCR_IDX
	DefaultTPMWait      = 30 * time.Second
	DefaultPollInterval = 200 * time.Millisecond
	DefaultStateDir     = "/var/lib/imago"
	DefaultRuntimeDir   = "/run/imago/ima"
	DefaultSocket       = "/run/imago/agent.sock"
	DefaultSecurityFS   = "/sys/kernel/security"
	DefaultHash         = ima.HashSHA256 // the build-time CONFIG_IMA_DEFAULT_HASH analogue
	// DefaultHashTimeout bounds hashing one file: sha256 runs at about
	// 650 MB/s on a small VM, so about 190 GB; what takes longer is a file
	// that does not end (a pseudo file) or does not answer (a hung network
	// or FUSE filesystem).
	DefaultHashTimeout = 5 * time.Minute
	// DefaultMaxConnsPerUID bounds the socket connections one uid holds
	// open at once, so that no client can take every file descriptor.
	DefaultMaxConnsPerUID = 32
)

// Config configures Run. Zero fields take the defaults above.
type Config struct {
	// TPM is the TPM URI (tpm package: auto, /dev/..., tcp://, unix://,
	// sim, none). "none" switches TPM support off.
	TPM string
	// InitLate never initialises at the first stage (the seed's
	// CONFIG_IMA_INIT_LATE_SYNC form): always boot_aggregate_late.
	InitLate bool
	// Hash is the kernel name of the algorithm files are hashed with
	// (ima_hash=; "" : sha256). If it cannot be computed, initialisation
	// logs so and falls back to DefaultHash.
	Hash string
	// Template is the template every entry uses (nil: ima-ng).
	Template *ima.Template
	// PCR is the PCR extended (0: DefaultPCR). Where the kernel's IMA is
	// active (SecurityFS has ima/), PCR 10 is refused.
	PCR int
	// StateDir holds the durable list and queue; RuntimeDir the exports;
	// Socket is the request socket (mode 0600).
	StateDir, RuntimeDir, Socket string
	// SocketUIDs are the peer uids allowed besides root and the agent's own.
	SocketUIDs []int
	// MaxConnsPerUID bounds the connections one uid holds open (0:
	// DefaultMaxConnsPerUID); a client past it is answered CodeBusy.
	MaxConnsPerUID int
	// HashTimeout bounds hashing one file (0: DefaultHashTimeout; negative:
	// no bound); a file not hashed in time is not measured (CodeHashTimeout).
	HashTimeout time.Duration
	// TPMWait bounds the deferred state; PollInterval is how often the TPM
	// is looked for while deferred.
	TPMWait, PollInterval time.Duration
	// Adopt adopts the kernel's TPM-bypass list into the TPM when one
	// appears, every AdoptInterval (package adopt; 0: adopt.DefaultInterval),
	// beside the agent's own list. The agent's own list then always begins
	// with boot_aggregate_late (the TPM came after the kernel's IMA init)
	// and records each adoption; its PCR must not be the kernel list's.
	Adopt         bool
	AdoptInterval time.Duration
	// SecurityFS is where securityfs is mounted ("" : DefaultSecurityFS).
	SecurityFS string
	// BootIDFile names this boot ("" : /proc/sys/kernel/random/boot_id).
	BootIDFile string
	Logger     *slog.Logger
	// Open opens the TPM named by a URI; its error wraps ErrNoTPM when none is
	// there now. Available polls for it cheaply. nil: the tpm package's.
	Open      func(uri string) (TPM, error)
	Available func(uri string) bool
	// ErrNoTPM is the sentinel Open wraps for "not there now" (nil:
	// tpm.ErrNoTPM).
	ErrNoTPM error
	// Notify, if set, receives sd_notify(3) states ("READY=1\nSTATUS=...").
	Notify func(state string)
	// Ready, if set, is closed once the socket accepts requests.
	Ready chan<- struct{}

	hash ima.HashAlg // Hash, parsed
}

func (c *Config) setDefaults() error {
	if c.Hash == "" {
		c.Hash = DefaultHash.String()
	}
	alg, err := ima.ParseHashAlg(c.Hash)
	if err != nil {
		return err
	}
	c.hash = alg
	if c.Template == nil {
		t, err := ima.LookupTemplate(ima.TemplateIMANG)
		if err != nil {
			return err
		}
		c.Template = t
	}
	if c.PCR == 0 {
		c.PCR = DefaultPCR
	}
	if c.PCR < 0 || c.PCR > 23 {
		return fmt.Errorf("agent: PCR %d outside 0..23", c.PCR)
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.RuntimeDir == "" {
		c.RuntimeDir = DefaultRuntimeDir
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.MaxConnsPerUID <= 0 {
		c.MaxConnsPerUID = DefaultMaxConnsPerUID
	}
	switch {
	case c.HashTimeout == 0:
		c.HashTimeout = DefaultHashTimeout
	case c.HashTimeout < 0:
		c.HashTimeout = 0
	}
	if c.TPMWait == 0 {
		c.TPMWait = DefaultTPMWait
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.SecurityFS == "" {
		c.SecurityFS = DefaultSecurityFS
	}
	if c.Adopt {
		c.InitLate = true
	}
	if c.BootIDFile == "" {
		c.BootIDFile = "/proc/sys/kernel/random/boot_id"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TPM == "" {
		c.TPM = "auto"
	}
	if c.Open == nil {
		c.Open = openTPM
	}
	if c.Available == nil {
		c.Available = tpm.Available
	}
	if c.ErrNoTPM == nil {
		c.ErrNoTPM = tpm.ErrNoTPM
	}
	if c.Template.IsLegacy() && alg != ima.HashSHA1 && alg != ima.HashMD5 {
		return fmt.Errorf("agent: the ima template needs --hash sha1 or md5, not %s (ima-spec.md §3.7)", c.Hash)
	}
	for _, id := range c.Template.Fields {
		if _, err := field(id, &event{D: make([]byte, 20)}, binary.NativeEndian); err != nil {
			return err
		}
	}
	return nil
}

// ErrKernelPCR: the kernel's IMA is active and the agent was asked to
// extend PCR 10, the kernel's.
var ErrKernelPCR = errors.New("agent: the kernel's IMA is active (securityfs has ima/): PCR 10 is the kernel's; extending it breaks every verifier of the kernel's list; pass --pcr N with N other than 10")

// kernelIMAActive reports whether securityfs shows the kernel's IMA.
func kernelIMAActive(securityfs string) bool {
	for _, p := range []string{"ima", "integrity/ima"} {
		if fi, err := os.Stat(filepath.Join(securityfs, p)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

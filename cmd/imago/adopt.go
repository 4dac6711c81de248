package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/imago-ima/imago/adopt"
	"github.com/imago-ima/imago/agent"
)

// adoptFlags are `imago agent`'s options for adopting the kernel's
// TPM-bypass list (issue 11).
type adoptFlags struct {
	on         bool
	interval   time.Duration
	securityfs string // hidden: where securityfs is (tests, containers)
}

func (f *adoptFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.on, "adopt-kernel-list", false, "adopt the kernel's TPM-bypass list: when a TPM appears, extend every entry of the kernel's list into it as the kernel would have (PCR 10, every bank), and follow the list (the agent's own list then needs --pcr other than 10; default 11)")
	fl.DurationVar(&f.interval, "adopt-interval", adopt.DefaultInterval, "with --adopt-kernel-list: how often the kernel's list is polled (bounds how far the TPM lags it)")
	fl.StringVar(&f.securityfs, "securityfs", "", "where securityfs is mounted (default /sys/kernel/security)")
	fl.MarkHidden("securityfs")
}

// agentPCR returns the agent's own PCR: with adoption, 11 unless --pcr was
// given, and never 10 (the kernel's).
func (f *adoptFlags) agentPCR(pcr int, given bool) (int, error) {
	if !f.on {
		return pcr, nil
	}
	if !given {
		return 11, nil
	}
	if pcr == 10 {
		return 0, usagef("--adopt-kernel-list: PCR 10 is the kernel's list's; give the agent's own list another --pcr")
	}
	return pcr, nil
}

// apply sets the agent's adoption options.
func (f *adoptFlags) apply(cfg *agent.Config) error {
	if f.securityfs != "" {
		cfg.SecurityFS = f.securityfs
	}
	if !f.on {
		return nil
	}
	if f.interval <= 0 {
		return usagef("--adopt-interval must be positive")
	}
	if cfg.TPM == "none" || cfg.TPM == "sim" {
		return usagef("--adopt-kernel-list: --tpm %s: adoption needs a TPM the kernel could have had (auto, a device, tcp:// or unix://)", cfg.TPM)
	}
	cfg.Adopt, cfg.AdoptInterval = true, f.interval
	return nil
}

// printAdoption prints `imago status`'s adoption lines.
func printAdoption(w io.Writer, s *adopt.Status) error {
	at := "(no TPM yet)"
	if s.AppearedAt != nil {
		at = fmt.Sprintf("%d (entries 1-%d of the kernel's list predate the TPM)", *s.AppearedAt, *s.AppearedAt)
	} else if s.State != adopt.Waiting && s.State != adopt.Starting {
		at = "unknown (no record of it in this boot)"
	}
	_, err := fmt.Fprintf(w, "adoption:  %s\n  tpm:         %s\n  adopted:     %d of %d listed (%d violations)\n  appeared at: %s\n  lag:         %d entries, %.1f s (polled every %g s)\n",
		s.State, s.TPM, s.Adopted, s.Listed, s.Violations, at, s.LagEntries, s.LagSeconds, s.Interval)
	if err == nil && s.Error != "" {
		_, err = fmt.Fprintf(w, "  error:       %s\n", s.Error)
	}
	return err
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/imago-ima/imago/adopt"
)

// adoptFlags are `imago agent`'s options for adopting the kernel's
// TPM-bypass list (issue 11).
type adoptFlags struct {
	on       bool
	interval time.Duration
}

func (f *adoptFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.on, "adopt-kernel-list", false, "adopt the kernel's TPM-bypass list: when a TPM appears, extend every entry of the kernel's list into it as the kernel would have (PCR 10, every bank), and follow the list (the agent's own list then needs --pcr other than 10; default 11)")
	fl.DurationVar(&f.interval, "adopt-interval", adopt.DefaultInterval, "with --adopt-kernel-list: how often the kernel's list is polled (bounds how far the TPM lags it)")
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

// runAdopting runs the agent (run) and, beside it, the adopter, as one
// lifecycle: a refusal is logged and the agent carries on (its status says
// why); any other adoption failure stops the agent and is returned, so the
// service manager restarts both (a restart finds where the TPM stands).
func runAdopting(ctx context.Context, log *slog.Logger, cfg adopt.Config, run func(context.Context) error) error {
	a, err := adopt.New(cfg)
	if err != nil {
		return usagef("--adopt-kernel-list: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	adopted := make(chan error, 1)
	go func() { adopted <- a.Run(ctx) }()
	ran := make(chan error, 1)
	go func() { ran <- run(ctx) }()
	for {
		select {
		case err := <-adopted:
			if err == nil || errors.Is(err, adopt.ErrRefused) {
				adopted = nil // the refusal is in the log and the status
				continue
			}
			cancel()
			<-ran
			return err
		case err := <-ran:
			cancel()
			if adopted != nil {
				<-adopted
			}
			return err
		}
	}
}

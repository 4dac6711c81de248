package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/internal/keyfile"
	"github.com/imago-ima/imago/runtimepolicy"
)

func newRuntimePolicyCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "runtime-policy",
		Short: "Create, sign, verify and show Keylime runtime policies",
		Long: `Keylime runtime policies (JSON version 1, as keylime-policy writes them) and
their DSSE-signed envelopes.

Exit status: 0 ok, 1 a signature does not verify, 2 bad usage or unreadable
input.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("runtime-policy: unknown command %q", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("runtime-policy: a subcommand is required")
		},
	}
	cmd.AddCommand(newRPCreateCommand(c), newRPSignCommand(c), newRPVerifyCommand(c), newRPShowCommand(c))
	return cmd
}

// pyTimestamp formats t as Python's str(datetime.now()) does, the form of
// meta.timestamp in Keylime's policies.
func pyTimestamp(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// writeOut writes data to -o OUT (atomically: a temporary file renamed
// over it) or, with no -o, to standard output with a final newline.
func (c *cli) writeOut(out string, data []byte) error {
	if out == "" || out == "-" {
		if _, err := c.stdout.Write(append(data, '\n')); err != nil {
			return err
		}
		return nil
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return inputErr(err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return inputErr(err)
	}
	return nil
}

// readRuntimePolicyFile parses a policy, verifying an envelope with key if given.
func (c *cli) readRuntimePolicyFile(ctx context.Context, name string, key any) (*runtimepolicy.Policy, error) {
	in, err := c.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	p, err := runtimepolicy.Parse(in.r, runtimepolicy.Options{Key: key})
	switch {
	case errors.Is(err, runtimepolicy.ErrNeedsKey):
		return nil, inputErr(fmt.Errorf("%s is a signed policy (DSSE envelope): give the key it was signed with (--key PUB)", name))
	case err != nil:
		return nil, inputErr(fmt.Errorf("%s: %w", name, err))
	}
	return p, nil
}

func newRPSignCommand(c *cli) *cobra.Command {
	var keyPath, out string
	cmd := &cobra.Command{
		Use:   "sign --key KEY P.json [-o OUT]",
		Short: "Sign a runtime policy: a DSSE envelope, as keylime-policy sign writes it",
		Long: `Wrap a runtime policy in a DSSE envelope (payloadType
application/vnd.keylime+json) signed with an EC private key (PEM), as
keylime-policy sign runtime --backend ecdsa does: ECDSA with SHA-256 over the
DSSE pre-authentication encoding, keyid = SHA-256 of the PEM public key. The
policy is checked first and signed as Keylime serialises it.

Exit status: 0 signed, 2 bad usage or unreadable input.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return usagef("runtime-policy sign: --key KEY is required")
			}
			data, err := keyfile.Read(keyPath)
			if err != nil {
				return inputErr(fmt.Errorf("--key %w", err))
			}
			signer, err := runtimepolicy.ParseSigner(data)
			if err != nil {
				return inputErr(fmt.Errorf("--key %s: %w", keyPath, err))
			}
			p, err := c.readRuntimePolicyFile(cmd.Context(), args[0], nil)
			if err != nil {
				return err
			}
			if p.Signature != nil {
				return usagef("runtime-policy sign: %s is already signed", args[0])
			}
			if err := p.Check(); err != nil {
				return inputErr(fmt.Errorf("%s: %w", args[0], err))
			}
			env, err := runtimepolicy.Sign(p.Marshal(), signer)
			if err != nil {
				return inputErr(err)
			}
			return c.writeOut(out, env)
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "EC private key (PEM)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the envelope here (default: standard output)")
	return cmd
}

func newRPVerifyCommand(c *cli) *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "verify --key PUB P.json",
		Short: "Verify the DSSE signature of a runtime policy",
		Long: `Verify that a DSSE-enveloped runtime policy is signed by the key PUB (an EC
public key or certificate, PEM) and that its payload is a runtime policy.

Exit status: 0 the signature verifies, 1 it does not, 2 bad usage, unreadable
input, or a policy that is not signed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return usagef("runtime-policy verify: --key PUB is required")
			}
			data, err := keyfile.Read(keyPath)
			if err != nil {
				return inputErr(fmt.Errorf("--key %w", err))
			}
			key, err := runtimepolicy.ParseKey(data)
			if err != nil {
				return inputErr(fmt.Errorf("--key %s: %w", keyPath, err))
			}
			in, err := c.open(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			p, err := runtimepolicy.Parse(in.r, runtimepolicy.Options{Key: key})
			switch {
			case errors.Is(err, runtimepolicy.ErrBadSignature):
				return failed("%s: the DSSE signature does not verify with %s", args[0], keyPath)
			case err != nil:
				return inputErr(fmt.Errorf("%s: %w", args[0], err))
			}
			n := p.Digests.Len()
			note := ""
			if !p.Signature.KeyIDMatches {
				note = fmt.Sprintf(" (the envelope names keyid %q)", p.Signature.KeyID)
			}
			fmt.Fprintf(c.stdout, "%s: signature verified with %s%s; policy of %d paths\n", args[0], keyPath, note, n)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "EC public key or certificate (PEM)")
	return cmd
}

func newRPShowCommand(c *cli) *cobra.Command {
	var keyPath string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show P.json [--json] [--key PUB]",
		Short: "Summarise a runtime policy",
		Long: `Print what a runtime policy holds: its meta data, how many paths, keyrings and
ima-buf names it lists, its excludes, ignored keyrings and verification keys.
A signed policy needs --key to be read.

Exit status: 0 ok, 2 bad usage or unreadable input.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var key any
			if keyPath != "" {
				data, err := keyfile.Read(keyPath)
				if err != nil {
					return inputErr(fmt.Errorf("--key %w", err))
				}
				if key, err = runtimepolicy.ParseKey(data); err != nil {
					return inputErr(fmt.Errorf("--key %s: %w", keyPath, err))
				}
			}
			p, err := c.readRuntimePolicyFile(cmd.Context(), args[0], key)
			if err != nil {
				return err
			}
			return showPolicy(c.stdout, p, asJSON)
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "EC public key to verify a signed policy")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func showPolicy(w io.Writer, p *runtimepolicy.Policy, asJSON bool) error {
	keys, err := runtimepolicy.ParseVerificationKeys(p.VerificationKeys)
	if err != nil {
		return inputErr(err)
	}
	var keyids []string
	for _, k := range keys {
		keyids = append(keyids, fmt.Sprintf("%08x", k.KeyID))
	}
	digests := 0
	for _, n := range p.Digests.Names() {
		v, _ := p.Digests.Get(n)
		digests += len(v)
	}
	v := struct {
		Version         int      `json:"version"`
		Generator       int      `json:"generator"`
		Timestamp       string   `json:"timestamp,omitempty"`
		Release         int      `json:"release"`
		Paths           int      `json:"paths"`
		Digests         int      `json:"digests"`
		BootAggregate   []string `json:"boot_aggregate"`
		Excludes        []string `json:"excludes"`
		Keyrings        []string `json:"keyrings"`
		IMABuf          []string `json:"ima_buf"`
		IgnoredKeyrings []string `json:"ignored_keyrings"`
		LogHashAlg      string   `json:"log_hash_alg"`
		KeyIDs          []string `json:"verification_keyids"`
		Signed          bool     `json:"signed"`
		SignatureKeyID  string   `json:"signature_keyid,omitempty"`
	}{
		Version: p.Meta.Version, Generator: p.Meta.Generator, Timestamp: p.Meta.Timestamp, Release: p.Release,
		Paths: p.Digests.Len(), Digests: digests, Excludes: p.Excludes, Keyrings: p.Keyrings.Names(),
		IMABuf: p.IMABuf.Names(), IgnoredKeyrings: p.IMA.IgnoredKeyrings, LogHashAlg: p.IMA.LogHashAlg, KeyIDs: keyids,
		Signed: p.Signature != nil,
	}
	v.BootAggregate, _ = p.Digests.Get("boot_aggregate")
	if p.Signature != nil {
		v.SignatureKeyID = p.Signature.KeyID
	}
	if asJSON {
		return writeJSON(w, v)
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintf(bw, "runtime policy version %d, generator %d, release %d, timestamp %q\n", v.Version, v.Generator, v.Release, v.Timestamp)
	if v.Signed {
		fmt.Fprintf(bw, "signed (DSSE), keyid %s: verified\n", v.SignatureKeyID)
	}
	fmt.Fprintf(bw, "paths: %d (%d digests)\n", v.Paths, v.Digests)
	fmt.Fprintf(bw, "boot_aggregate: %v\n", v.BootAggregate)
	fmt.Fprintf(bw, "excludes: %q\n", v.Excludes)
	fmt.Fprintf(bw, "keyrings: %q\n", v.Keyrings)
	fmt.Fprintf(bw, "ima-buf: %q\n", v.IMABuf)
	fmt.Fprintf(bw, "ignored keyrings: %q\n", v.IgnoredKeyrings)
	fmt.Fprintf(bw, "log_hash_alg: %s\n", v.LogHashAlg)
	fmt.Fprintf(bw, "verification keys: %v\n", v.KeyIDs)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/verifier/client"
)

// serverFlags are the flags of every command that talks to a verifier.
type serverFlags struct {
	servers       []string
	ca, tokenFile string
	// retry goes through the replicas (default: each once, then once more)
	retry client.Retry
	// timeout bounds a request to one replica (default client.Timeout)
	timeout time.Duration
	// onError is told of each failed attempt at a replica
	onError func(endpoint string, err error)
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&f.servers, "server", nil, "the verifier's URL (https://HOST:8881); several replicas: repeat or separate with commas")
	cmd.Flags().StringVar(&f.ca, "ca", "", "PEM certificate to trust for the verifier's TLS (default: system roots)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the operator bearer token (default $IMAGO_VERIFIER_TOKEN)")
}

func (f *serverFlags) client(operator bool) (*client.Client, error) {
	if len(f.servers) == 0 {
		return nil, usagef("--server URL is required")
	}
	o := client.Options{Retry: f.retry, Timeout: f.timeout, OnError: f.onError}
	if o.Retry.Rounds == 0 {
		o.Retry = client.Retry{Rounds: 2, Min: 500 * time.Millisecond}
	}
	if f.ca != "" {
		b, err := os.ReadFile(f.ca)
		if err != nil {
			return nil, inputErr(fmt.Errorf("--ca: %w", err))
		}
		o.CA = b
	}
	if operator {
		o.Token = os.Getenv("IMAGO_VERIFIER_TOKEN")
		if f.tokenFile != "" {
			b, err := os.ReadFile(f.tokenFile)
			if err != nil {
				return nil, inputErr(fmt.Errorf("--token-file: %w", err))
			}
			o.Token = strings.TrimSpace(string(b))
		}
	}
	cl, err := client.NewFleet(f.servers, o)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return cl, nil
}

// verifierErr maps a verifier client error to an exit status: a refusal
// (4xx) is bad input (2), an unreachable or failing verifier too (no
// answer could be had).
func verifierErr(err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return inputErr(err)
}

func newVerifierNodeCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Add, list, show and remove attested nodes",
	}
	cmd.AddCommand(newNodeAddCommand(c), newNodeListCommand(c), newNodeShowCommand(c), newNodeRemoveCommand(c))
	return cmd
}

func newNodeAddCommand(c *cli) *cobra.Command {
	var (
		sf          serverFlags
		policy      string
		keyrings    []string
		allowNoCert bool
		asJSON      bool
		listPCR     int
		policyKey   string
	)
	cmd := &cobra.Command{
		Use:   "add NODE --runtime-policy P.json [--policy-key PUB] [--keyring K]... [--pcr N] [--allow-ek-without-cert] --server URL [--ca C]",
		Short: "Add a node (or change its runtime policy: the node starts over)",
		Long: `Add a node the verifier attests, with the Keylime runtime policy its list is
judged by ('imago verify --runtime-policy' takes the same files) and keys for
ima-sig entries (--keyring: PEM or DER certificates or public keys). Adding an
existing node with another policy starts it over from its first entry.
--policy-key: the EC public key a DSSE-signed policy must verify with.
--pcr: the PCR the node's list extends (10, the kernel's; an imago agent's
--pcr when the node attests the agent's list).
--allow-ek-without-cert lets the node enrol a TPM with no EK certificate.

Exit status: 0 added, 2 refused or the verifier unreachable.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if policy == "" {
				return usagef("--runtime-policy is required")
			}
			cl, err := sf.client(true)
			if err != nil {
				return err
			}
			if err := attest.ValidNodeName(args[0]); err != nil {
				return usagef("%v", err)
			}
			if listPCR < 0 || listPCR > 23 {
				return usagef("--pcr %d: want 0..23", listPCR)
			}
			a := &attest.NodeAdd{Node: args[0], AllowEKWithoutCert: allowNoCert, PCR: listPCR}
			if policyKey != "" {
				if a.PolicyKey, err = readBounded(policyKey, int64(attest.MaxKeyringSize)); err != nil {
					return inputErr(fmt.Errorf("--policy-key: %w", err))
				}
			}
			if a.RuntimePolicy, err = readBounded(policy, int64(attest.MaxPolicySize)); err != nil {
				return inputErr(fmt.Errorf("--runtime-policy: %w", err))
			}
			for _, k := range keyrings {
				b, err := readBounded(k, int64(attest.MaxKeyringSize))
				if err != nil {
					return inputErr(fmt.Errorf("--keyring: %w", err))
				}
				a.Keyrings = append(a.Keyrings, b)
			}
			v, err := cl.AddNode(cmd.Context(), a)
			if err != nil {
				return verifierErr(err)
			}
			if asJSON {
				return writeJSON(c.stdout, v)
			}
			_, err = fmt.Fprintf(c.stdout, "node %s: %s (policy %s)\n", v.Node, v.State, short(v.PolicyID))
			return err
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&policy, "runtime-policy", "", "Keylime runtime policy (JSON)")
	cmd.Flags().StringArrayVar(&keyrings, "keyring", nil, "key or certificate for ima-sig entries (repeatable)")
	cmd.Flags().BoolVar(&allowNoCert, "allow-ek-without-cert", false, "let a TPM without an EK certificate enrol")
	cmd.Flags().IntVar(&listPCR, "pcr", 10, "the PCR the node's list extends")
	cmd.Flags().StringVar(&policyKey, "policy-key", "", "EC public key (PEM) a DSSE-signed policy must verify with")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the node as JSON")
	return cmd
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func newNodeListCommand(c *cli) *cobra.Command {
	var (
		sf     serverFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list --server URL [--ca C] [--json]",
		Short: "List the nodes and their states",
		Long: `List the nodes: name, state (enrolling, pass, fail, stale), entries verified,
last evidence, failures. --json prints {"nodes": [...]} as the API does.

Exit status: 0 listed, 2 the verifier refused or is unreachable.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := sf.client(true)
			if err != nil {
				return err
			}
			nodes, err := cl.Nodes(cmd.Context())
			if err != nil {
				return verifierErr(err)
			}
			if asJSON {
				if nodes == nil {
					nodes = []attest.NodeView{}
				}
				return writeJSON(c.stdout, map[string]any{"nodes": nodes})
			}
			tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tSTATE\tENTRIES\tLAST SEEN\tFAILURES")
			for _, n := range nodes {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\n", n.Node, n.State, n.Entries, orDash(n.LastSeen), len(n.Failures))
			}
			return tw.Flush()
		},
	}
	sf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newNodeShowCommand(c *cli) *cobra.Command {
	var (
		sf      serverFlags
		asJSON  bool
		history int
	)
	cmd := &cobra.Command{
		Use:   "show NODE --server URL [--ca C] [--json] [--history N]",
		Short: "Show a node: state, failures, TPM counters, recent verdicts",
		Long: `Show a node. --json prints {"node": ..., "state": "enrolling"|"pass"|"fail"|"stale",
"failures": [{"entry": i, "path": "...", "id": "..."}], "entries": N, "round": N,
"enrolled": bool, "tpm": {...}, "history": [...], ...}.

Exit status: 0 shown, 2 no such node or the verifier unreachable.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := sf.client(true)
			if err != nil {
				return err
			}
			v, err := cl.Node(cmd.Context(), args[0], history)
			if err != nil {
				return verifierErr(err)
			}
			if asJSON {
				return writeJSON(c.stdout, v)
			}
			return printNode(c.stdout, v)
		},
	}
	sf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().IntVar(&history, "history", 10, "verdicts to show")
	return cmd
}

func printNode(w io.Writer, v *attest.NodeView) error {
	fmt.Fprintf(w, "node:      %s\nstate:     %s\nenrolled:  %v\nentries:   %d\nround:     %d\npolicy:    %s (PCR %d)\nlast seen: %s\n",
		v.Node, v.State, v.Enrolled, v.Entries, v.Round, short(v.PolicyID), v.PCR, orDash(v.LastSeen))
	if v.EK != "" {
		fmt.Fprintf(w, "ek:        %s\n", short(v.EK))
	}
	if v.TPM != nil {
		fmt.Fprintf(w, "tpm:       clock %d, resets %d, restarts %d\n", v.TPM.Clock, v.TPM.ResetCount, v.TPM.RestartCount)
	}
	for _, f := range v.Failures {
		printFailure(w, f)
	}
	for _, h := range v.History {
		fmt.Fprintf(w, "round %d  %s  %s  %d entries  %d failures\n", h.Round, h.Time, h.Verdict, h.Entries, len(h.Failures))
	}
	return nil
}

func printFailure(w io.Writer, f attest.Failure) {
	where := "       -"
	if f.Entry >= 0 {
		where = fmt.Sprintf("%8d", f.Entry)
	}
	line := fmt.Sprintf("FAIL %s %s %s", where, f.ID, f.Path)
	if f.Detail != "" {
		line += ": " + f.Detail
	}
	fmt.Fprintln(w, strings.TrimRight(line, " "))
}

func newNodeRemoveCommand(c *cli) *cobra.Command {
	var sf serverFlags
	cmd := &cobra.Command{
		Use:   "remove NODE --server URL [--ca C]",
		Short: "Remove a node and its history (its TPM may then enrol again)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := sf.client(true)
			if err != nil {
				return err
			}
			if err := cl.RemoveNode(cmd.Context(), args[0]); err != nil {
				return verifierErr(err)
			}
			_, err = fmt.Fprintf(c.stdout, "node %s removed\n", args[0])
			return err
		},
	}
	sf.register(cmd)
	return cmd
}

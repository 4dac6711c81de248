package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/keyfile"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
	"github.com/imago-ima/imago/verify"
)

type verifyOpts struct {
	lf              listFlags
	policy          string
	policyKey       string
	allowlist       string
	excludelist     string
	keyrings        []string
	pcrs            []string
	eventlog        string
	allowViolations bool
	asJSON          bool
	imaPCR          int
	adopterList     string // issue 11
}

func newVerifyCommand(c *cli) *cobra.Command {
	var o verifyOpts
	cmd := &cobra.Command{
		Use:   "verify LIST [--runtime-policy P.json [--policy-key PUB]] [--allowlist A [--excludelist X]] [--keyring K]... [--pcrs SRC]... [--eventlog E]",
		Short: "Verify a measurement list against a Keylime runtime policy, keys and TPM PCRs",
		Long: `Verify a measurement list the way Keylime's verifier does: every entry is
judged by a Keylime runtime policy (digests by path, excludes, keyrings,
ima-buf digests, verification keys), by the signatures of ima-sig entries
against the keys given and the keys the list loads onto keyrings, the boot
aggregate by the policy, the firmware event log or the PCRs, and the list is
replayed to the PCR values given in every bank. Every failing entry is
reported, with Keylime's failure id.

LIST is an ascii or binary list (any template, per-bank files too), '-' for
standard input, or a directory holding the lists, or an ascii and a binary
list of the same measurements: from a directory or a pair, the binary list is
read (it is exact; see 'imago log --help'). --runtime-policy reads a Keylime runtime policy (JSON v1) or a
DSSE envelope of one, which must verify with --policy-key. --allowlist reads a
legacy sha*sum-style allowlist (with %keyring: lines), --excludelist a
legacy exclude list (one regular expression a line).

Without a policy, ima-sig entries are judged by their signatures alone when
--keyring is given; with neither, only the PCRs, the boot aggregate and the
template digests are checked.

A list whose boot aggregate is the TPM-bypass value (zeros: the kernel had no
TPM at boot) and that the TPM nevertheless holds (every bank of --pcrs
matches) is reported as a bypass list adopted by a late TPM (imago agent
--adopt-kernel-list), not a failure; --adopter-list checks the adopter's own
list as the evidence for the real boot aggregate (it must replay to the same
PCR values, its boot aggregate must pass the boot aggregate rule, and its
kernel_list_adopted entry must fit the list). A bypass list the TPM does not
hold is judged by the boot aggregate rule and said to be TPM-bypass.

` + pcrsHelp + `

Exit status: 0 the list passes, 1 it fails, 2 bad usage or unreadable input
(a policy that cannot be loaded is 2, never a pass).`,
		Args: listArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			list, err := o.lf.pick(cmd.Context(), args)
			if err != nil {
				return err
			}
			return runVerify(cmd.Context(), c, &o, list)
		},
	}
	o.lf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&o.policy, "runtime-policy", "", "Keylime runtime policy (JSON, or a DSSE envelope)")
	f.StringVar(&o.policyKey, "policy-key", "", "EC public key (PEM) that must have signed a DSSE-enveloped policy")
	f.StringVar(&o.allowlist, "allowlist", "", "legacy allowlist: sha256sum-style lines, %keyring: lines")
	f.StringVar(&o.excludelist, "excludelist", "", "legacy exclude list: one regular expression a line")
	f.StringArrayVar(&o.keyrings, "keyring", nil, "certificate or public key file, or a folder of them, to verify ima-sig signatures (repeatable)")
	f.StringArrayVar(&o.pcrs, "pcrs", nil, "PCR values the list must replay to, and PCR0-9 for the boot aggregate (repeatable)")
	f.StringVar(&o.eventlog, "eventlog", "", "firmware event log (binary_bios_measurements) for the boot aggregate")
	f.BoolVar(&o.allowViolations, "allow-violations", false, "let violation entries (zero template digest) pass")
	f.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	f.IntVar(&o.imaPCR, "ima-pcr", 10, "the PCR the list's entries are extended into")
	f.StringVar(&o.adopterList, "adopter-list", "", "for a TPM-bypass list adopted by a late TPM: the adopter's own list (imago agent --adopt-kernel-list), checked against the same PCR values as the evidence for the real boot aggregate")
	return cmd
}

// loadVerifyKeys reads the keys of --keyring files and folders with
// Keylime's key formats and keyid rule (one key per DER file or PEM block),
// through internal/keyfile (regular files of at most 1 MiB).
func loadVerifyKeys(c *cli, paths []string) ([]digsig.Key, error) {
	var keys []digsig.Key
	err := keyfile.Walk(paths, func(path string, err error) {
		var ke *keyfile.Error
		if errors.As(err, &ke) {
			err = ke.Err
		}
		fmt.Fprintf(c.stderr, "imago: --keyring: skipped %s: %v\n", path, err)
	}, func(_ string, data []byte) (int, error) {
		if !bytes.Contains(data, []byte("-----BEGIN")) {
			k, err := digsig.ParseKey(data)
			if err != nil {
				return 0, err
			}
			keys = append(keys, k)
			return 1, nil
		}
		n := 0
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			k, err := digsig.ParseKey(b.Bytes)
			if errors.Is(err, digsig.ErrNotKey) {
				continue
			}
			if err != nil {
				return n, fmt.Errorf("PEM %s block: %w", b.Type, err)
			}
			keys = append(keys, k)
			n++
		}
		if n == 0 {
			return 0, errors.New("no certificate or key")
		}
		return n, nil
	})
	if err != nil {
		return nil, inputErr(fmt.Errorf("--keyring %w", err))
	}
	return keys, nil
}

// loadRuntimePolicy reads --runtime-policy, or --allowlist with
// --excludelist; nil when neither is given. A --runtime-policy file is
// compiled on a goroutine of its own (pending; policyErr maps its error),
// so that the list is read at the same time; from standard input it is
// read first.
func (c *cli) loadRuntimePolicy(ctx context.Context, o *verifyOpts) (*runtimepolicy.Compiled, *runtimepolicy.Pending, error) {
	if o.policy != "" && (o.allowlist != "" || o.excludelist != "") {
		return nil, nil, usagef("verify: give --runtime-policy or --allowlist/--excludelist, not both")
	}
	if o.policyKey != "" && o.policy == "" {
		return nil, nil, usagef("verify: --policy-key needs --runtime-policy")
	}
	if o.excludelist != "" && o.allowlist == "" {
		return nil, nil, usagef("verify: --excludelist needs --allowlist (a runtime policy holds its own excludes)")
	}
	var key any
	if o.policyKey != "" {
		data, err := keyfile.Read(o.policyKey)
		if err != nil {
			return nil, nil, inputErr(fmt.Errorf("--policy-key %w", err))
		}
		if key, err = runtimepolicy.ParseKey(data); err != nil {
			return nil, nil, inputErr(fmt.Errorf("--policy-key %s: %w", o.policyKey, err))
		}
	}
	switch {
	case o.policy != "":
		in, err := c.open(ctx, o.policy)
		if err != nil {
			return nil, nil, err
		}
		ro := runtimepolicy.Options{Key: key}
		if in.f == nil {
			defer in.Close()
			rp, err := runtimepolicy.Compile(in.r, ro)
			return rp, nil, o.policyErr(err)
		}
		if st, err := in.f.Stat(); err == nil {
			ro.SizeHint = st.Size()
		}
		pending := runtimepolicy.CompileAsync(in.r, ro)
		go func() { // ends with the compile
			<-pending.Done()
			in.Close()
		}()
		return nil, pending, nil
	case o.allowlist != "":
		p, err := c.legacyPolicy(ctx, o.allowlist, o.excludelist, "")
		if err != nil {
			return nil, nil, err
		}
		rp, err := p.Compile()
		if err != nil {
			return nil, nil, inputErr(err)
		}
		return rp, nil, nil
	}
	return nil, nil, nil
}

// policyErr is the error of a --runtime-policy that could not be compiled.
func (o *verifyOpts) policyErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, runtimepolicy.ErrNeedsKey):
		return inputErr(fmt.Errorf("%s is a signed policy (DSSE envelope): give the key it was signed with, --policy-key PUB", o.policy))
	}
	return inputErr(fmt.Errorf("--runtime-policy %s: %w", o.policy, err))
}

// legacyPolicy converts an allowlist and an exclude list.
func (c *cli) legacyPolicy(ctx context.Context, allowlist, excludelist, ts string) (*runtimepolicy.Policy, error) {
	in, err := c.open(ctx, allowlist)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	a, err := runtimepolicy.ReadAllowlist(in.r)
	if err != nil {
		return nil, inputErr(fmt.Errorf("--allowlist %s: %w", allowlist, err))
	}
	var ex []string
	if excludelist != "" {
		if ex, err = c.readExcludeList(ctx, excludelist); err != nil {
			return nil, err
		}
	}
	return runtimepolicy.FromAllowlist(a, ex, ts), nil
}

func (c *cli) readExcludeList(ctx context.Context, name string) ([]string, error) {
	in, err := c.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	ex, err := runtimepolicy.ReadExcludeList(in.r)
	if err != nil {
		return nil, inputErr(fmt.Errorf("--excludelist %s: %w", name, err))
	}
	return ex, nil
}

func runVerify(ctx context.Context, c *cli, o *verifyOpts, list string) (err error) {
	rp, pending, err := c.loadRuntimePolicy(ctx, o)
	if err != nil {
		return err
	}
	if pending != nil {
		// The policy's own error comes first, as if it had been read first
		// (and the compile has ended whenever this returns).
		defer func() {
			if _, perr := pending.Wait(); perr != nil {
				err = o.policyErr(perr)
			}
		}()
	}
	return verifyList(ctx, c, o, list, rp, pending)
}

func verifyList(ctx context.Context, c *cli, o *verifyOpts, list string, rp *runtimepolicy.Compiled, pending *runtimepolicy.Pending) error {
	keys, err := loadVerifyKeys(c, o.keyrings)
	if err != nil {
		return err
	}
	var pcrs, evlog pcr.Set
	if len(o.pcrs) > 0 {
		if pcrs, err = loadPCRs(ctx, o.pcrs, c.stdin); err != nil {
			return err
		}
	}
	if o.eventlog != "" {
		l, err := c.readEventlog(ctx, o.eventlog)
		if err != nil {
			return err
		}
		if evlog, _, err = l.Replay(); err != nil {
			return inputErr(fmt.Errorf("%s: %w", o.eventlog, err))
		}
	}
	p, err := verify.NewPolicy(verify.Options{RuntimePolicy: rp, Pending: pending, Keys: keys, AllowViolations: o.allowViolations, PCR: o.imaPCR})
	if err != nil {
		return usagef("%v", err)
	}
	lb, err := o.lf.listBank(list)
	if err != nil {
		return err
	}
	ropts, err := o.lf.options()
	if err != nil {
		return err
	}
	if lb != 0 {
		ropts.DigestSize = lb.Size()
	}
	in, err := c.open(ctx, list)
	if err != nil {
		return err
	}
	defer in.Close()
	if in.f != nil {
		// A signal ends a read that waits (a FIFO): the file is closed.
		stop := context.AfterFunc(ctx, func() { in.f.Close() })
		defer stop()
	}
	round := verify.Round{List: ctxReader{ctx, in.r}, ListOptions: ropts, PCRs: pcrs, EventLog: evlog}
	// The PCR values check the list only if they hold its PCR.
	quoted := false
	for _, b := range pcrs.Banks() {
		if _, ok := pcrs.Get(b, p.PCR()); ok && b.Known() {
			quoted = true
		}
	}
	if quoted {
		round.Quoted = pcrs
	}
	state := &verify.State{}
	if lb != 0 {
		state.ListBank = lb.String()
	}
	rep, _, err := p.Verify(state, round)
	if perr := p.PolicyErr(); perr != nil {
		return perr // runVerify reports it
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return inputErr(fmt.Errorf("%s: %w", in.name, err))
	}
	rp = p.RuntimePolicy()
	adopted := rep.BootAggregate != nil && rep.BootAggregate.Verdict == verify.VerdictAdopted
	evidence, err := adopterFlag(o.adopterList, adopted, pcrs, p.PCR(), rep.First+rep.Read, func(e *ima.Entry) *adopterBoot {
		return verifyAdopterAggregate(p, e, evlog, pcrs)
	})
	if err != nil {
		return err
	}
	if o.asJSON {
		if err := writeJSON(c.stdout, verifyJSON(rep, rp, quoted, evidence)); err != nil {
			return err
		}
	} else {
		printVerify(c.stdout, in.name, rep, rp, len(pcrs) > 0 && !quoted, p.PCR(), evidence)
	}
	if !rep.Pass() {
		return silent(failed("%s: the list fails verification", in.name))
	}
	if evidence != nil && !evidence.Matched {
		return silent(failed("%s: the adopter's list is no evidence: %s", in.name, evidence.Problem))
	}
	return nil
}

// verifyAdopterAggregate judges the boot aggregate of an adopter's own list
// by verify's boot aggregate rule (the policy's digests, the event log, the
// PCR values).
func verifyAdopterAggregate(p *verify.Policy, e *ima.Entry, evlog, pcrs pcr.Set) *adopterBoot {
	name, _ := e.Name()
	d, err := e.FileDigest()
	if err != nil {
		return &adopterBoot{Name: name, Error: err.Error()}
	}
	res, f := p.CheckBootAggregate(0, name, d, evlog, pcrs, false)
	b := &adopterBoot{Name: name, Digest: res.Digest}
	switch {
	case f != nil:
		b.Error = f.String()
	case res.Verdict == "unchecked":
		b.Rule = "unchecked (no policy boot_aggregate, event log or PCR 0-9 to judge it by)"
	default:
		b.Rule = res.Verdict + " (" + bootSource(&res) + ")"
	}
	return b
}

// bootSource says what accepted a boot aggregate: "policy", "pcrs sha256
// PCR0-9", "excluded by the policy".
func bootSource(b *verify.BootAggregateResult) string {
	switch {
	case b.Excluded:
		return "excluded by the policy"
	case b.Bank != "":
		return b.Source + " " + b.Bank + " " + b.Rule
	}
	return b.Source
}

// ctxReader fails reads once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func printVerify(w io.Writer, name string, rep *verify.Report, rp *runtimepolicy.Compiled, pcrsNoList bool, imaPCR int, evidence *adopterJSON) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for _, f := range rep.Failures {
		if f.Entry < 0 {
			continue
		}
		fmt.Fprintf(bw, "entry %d %s: %s", f.Entry, orDash(f.Path), f.ID)
		if len(f.Expected) > 0 {
			fmt.Fprintf(bw, " expected %s got %s", strings.Join(f.Expected, ","), f.Got)
		} else if f.Got != "" {
			fmt.Fprintf(bw, " got %s", f.Got)
		}
		if f.Message != "" {
			fmt.Fprintf(bw, " (%s)", f.Message)
		}
		fmt.Fprintln(bw)
	}
	if more := rep.FailureCount - len(rep.Failures); more > 0 {
		fmt.Fprintf(bw, "... %d more failures not kept\n", more)
	}
	switch b := rep.BootAggregate; {
	case b == nil:
	case b.Verdict == verify.VerdictAdopted:
		// log check's words for the same finding
		fmt.Fprintf(bw, "%s %s: %s: %s\n", b.Name, b.Digest, b.Rule, b.Note)
	default:
		fmt.Fprintf(bw, "%s %s: %s", b.Name, b.Digest, b.Verdict)
		if b.Excluded || b.Source != "" {
			fmt.Fprintf(bw, " (%s)", bootSource(b))
		}
		if b.Late {
			fmt.Fprint(bw, "; late start: the boot aggregate was taken when the TPM appeared after boot")
		}
		if b.Note != "" {
			fmt.Fprintf(bw, "; %s", b.Note)
		}
		fmt.Fprintln(bw)
	}
	for _, pr := range rep.PCRs {
		if pr.Matched {
			v := ""
			if pr.Variant != "" {
				v = " (" + pr.Variant + ")"
			}
			fmt.Fprintf(bw, "%s PCR-%02d: matched at entry %d of %d%s: %s\n", pr.Bank, pr.PCR, pr.Entry, rep.First+rep.Read, v, pr.Quoted)
		} else {
			fmt.Fprintf(bw, "%s PCR-%02d: MISMATCH: TPM %s, list replays to %s\n", pr.Bank, pr.PCR, pr.Quoted, pr.Replayed)
		}
	}
	if pcrsNoList {
		fmt.Fprintf(bw, "note: the PCR values hold no PCR %d: they were used for the boot aggregate only\n", imaPCR)
	}
	for _, f := range rep.Failures {
		if f.Entry < 0 {
			fmt.Fprintf(bw, "%s: %s\n", f.ID, f.Message)
		}
	}
	if evidence != nil {
		printAdopter(bw, evidence)
	}
	verdict := "PASS"
	if !rep.Pass() || evidence != nil && !evidence.Matched {
		verdict = "FAIL"
	}
	what := "no runtime policy"
	if rp != nil {
		n, _, _ := rp.Counts()
		what = fmt.Sprintf("runtime policy of %d paths", n)
		if rp.Signature != nil {
			what += ", signature verified"
		}
	}
	fmt.Fprintf(bw, "%s: %s: %d entries, %d failing entries (%d failures), %d violations; %s\n",
		verdict, name, rep.Read, rep.FailedEntries, rep.FailureCount, rep.Violations, what)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func verifyJSON(rep *verify.Report, rp *runtimepolicy.Compiled, quoted bool, evidence *adopterJSON) any {
	type policyJSON struct {
		Paths     int    `json:"paths"`
		Keyrings  int    `json:"keyrings"`
		IMABuf    int    `json:"ima_buf"`
		Excludes  int    `json:"excludes"`
		Signed    bool   `json:"signed"`
		KeyID     string `json:"keyid,omitempty"`
		LogHashAl string `json:"log_hash_alg"`
	}
	out := struct {
		Verdict       string                      `json:"verdict"`
		Entries       int                         `json:"entries"`
		FailedEntries int                         `json:"failed_entries"`
		FailureCount  int                         `json:"failure_count"`
		Failures      []verify.Failure            `json:"failures"`
		Violations    int                         `json:"violations"`
		ListBank      string                      `json:"list_bank,omitempty"`
		Banks         []string                    `json:"banks"`
		PCRs          []verify.PCRResult          `json:"pcrs"`
		PCRsChecked   bool                        `json:"pcrs_checked"`
		BootAggregate *verify.BootAggregateResult `json:"boot_aggregate"`
		Policy        *policyJSON                 `json:"policy"`
		Adopter       *adopterJSON                `json:"adopter,omitempty"`
	}{
		Verdict: "pass", Entries: rep.Read, FailedEntries: rep.FailedEntries, FailureCount: rep.FailureCount,
		Failures: rep.Failures, Violations: rep.Violations, ListBank: rep.ListBank, Banks: rep.Banks,
		PCRs: rep.PCRs, PCRsChecked: quoted, BootAggregate: rep.BootAggregate, Adopter: evidence,
	}
	if !rep.Pass() || evidence != nil && !evidence.Matched {
		out.Verdict = "fail"
	}
	if out.Failures == nil {
		out.Failures = []verify.Failure{}
	}
	if out.PCRs == nil {
		out.PCRs = []verify.PCRResult{}
	}
	if rp != nil {
		n, k, b := rp.Counts()
		pj := &policyJSON{Paths: n, Keyrings: k, IMABuf: b, Excludes: len(rp.Excludes()), Signed: rp.Signature != nil, LogHashAl: rp.IMA.LogHashAlg}
		if rp.Signature != nil {
			pj.KeyID = rp.Signature.KeyID
		}
		out.Policy = pj
	}
	return out
}

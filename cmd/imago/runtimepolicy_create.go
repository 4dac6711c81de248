package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/treehash"
	"github.com/imago-ima/imago/runtimepolicy"
)

type createOpts struct {
	logs, skip, excludes, ignored, vkeys []string
	dir, allowlist, excludelist, alg     string
	base, out                            string
	keyrings, imaBuf, allOwners          bool
}

func newRPCreateCommand(c *cli) *cobra.Command {
	var o createOpts
	cmd := &cobra.Command{
		Use:   "create [--from-log L]... [--from-dir ROOT [--skip-path P]...] [--allowlist A] [--excludelist X] [--exclude RE]... [--base P.json] [-o OUT]",
		Short: "Create a runtime policy, as keylime-policy create runtime does",
		Long: `Create a Keylime runtime policy from measurement lists (--from-log: every file
digest by path, the boot aggregate included; --keyrings and --ima-buf add the
digests of ima-buf entries), from a filesystem tree (--from-dir ROOT: ROOT is
the target's root filesystem, listed paths are relative to it; /proc /sys /run
/dev /tmp /var /mnt /media /snap /lost+found and --skip-path are skipped, only
files owned by root are hashed, on every core), from a legacy allowlist
(sha256sum output works as it is), merged over --base, in keylime-policy's
order. The digest algorithm is --hash, else that of the inputs, else sha256.
Output is the policy as keylime-policy writes it.

Exit status: 0 written, 2 bad usage or unreadable input (also inputs whose
digest algorithms disagree).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error { return runCreate(cmd.Context(), c, &o) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.logs, "from-log", nil, "measurement list (ascii or binary) to take digests from (repeatable)")
	f.StringVar(&o.dir, "from-dir", "", "root filesystem to hash")
	f.StringArrayVar(&o.skip, "skip-path", nil, "directory under --from-dir to leave out (repeatable)")
	f.StringVar(&o.allowlist, "allowlist", "", "legacy allowlist (sha256sum output, %keyring: lines)")
	f.StringVar(&o.excludelist, "excludelist", "", "exclude list: one regular expression a line")
	f.StringArrayVar(&o.excludes, "exclude", nil, "exclude regular expression (repeatable)")
	f.StringVar(&o.alg, "hash", "", "file digest algorithm for --from-dir: sha1, sha256, sha384, sha512, sm3")
	f.BoolVar(&o.keyrings, "keyrings", false, "add the digests of keys loaded onto keyrings (ima-buf) from --from-log")
	f.BoolVar(&o.imaBuf, "ima-buf", false, "add the digests of other ima-buf entries from --from-log")
	f.StringArrayVar(&o.ignored, "ignored-keyring", nil, "keyring whose keys are neither checked nor learned (repeatable)")
	f.StringArrayVar(&o.vkeys, "verification-key", nil, "certificate or key (PEM or DER) for ima-sig signatures (repeatable)")
	f.StringVar(&o.base, "base", "", "runtime policy to merge into")
	f.StringVarP(&o.out, "output", "o", "", "write the policy here (default: standard output)")
	f.BoolVar(&o.allOwners, "all-owners", false, "with --from-dir, hash files of every owner, not only root's")
	return cmd
}

func runCreate(ctx context.Context, c *cli, o *createOpts) error {
	if len(o.skip) > 0 && o.dir == "" {
		return usagef("runtime-policy create: --skip-path needs --from-dir")
	}
	co := runtimepolicy.CreateOptions{IgnoredKeyrings: o.ignored, Timestamp: pyTimestamp(time.Now())}
	if o.base != "" {
		p, err := c.readRuntimePolicyFile(ctx, o.base, nil)
		if err != nil {
			return err
		}
		co.Base = p
	}
	if o.allowlist != "" {
		in, err := c.open(ctx, o.allowlist)
		if err != nil {
			return err
		}
		a, err := runtimepolicy.ReadAllowlist(in.r)
		in.Close()
		if err != nil {
			return inputErr(fmt.Errorf("--allowlist %s: %w", o.allowlist, err))
		}
		co.Allowlist = a
	}
	for _, l := range o.logs {
		in, err := c.open(ctx, l)
		if err != nil {
			return err
		}
		ld, err := runtimepolicy.FromList(scanned(in.name, ima.NewListReader(in.r, ima.ReaderOptions{}).All()),
			runtimepolicy.FromListOptions{Keyrings: o.keyrings, IMABuf: o.imaBuf, Ignored: o.ignored})
		in.Close()
		if err != nil {
			return inputErr(err)
		}
		co.Lists = append(co.Lists, ld)
	}
	if o.excludelist != "" {
		ex, err := c.readExcludeList(ctx, o.excludelist)
		if err != nil {
			return err
		}
		co.Excludes = ex
	}
	if _, err := runtimepolicy.CompileExcludes(o.excludes); err != nil {
		return usagef("--exclude: %v", err)
	}
	co.Excludes = append(co.Excludes, o.excludes...)
	for _, v := range o.vkeys {
		keys, err := loadVerifyKeys(c, []string{v})
		if err != nil {
			return err
		}
		co.VerificationKeys = append(co.VerificationKeys, keys...)
	}
	asked := o.alg
	if asked != "" {
		a, err := ima.ParseHashAlg(asked)
		if err != nil || a.New() == nil || a.Size() < 20 {
			return usagef("--hash %q: want sha1, sha256, sha384, sha512 or sm3", asked)
		}
		asked = a.String()
	}
	algName, err := runtimepolicy.DigestAlgorithm(asked, co)
	if err != nil {
		return inputErr(err)
	}
	if o.dir != "" {
		alg, err := ima.ParseHashAlg(algName)
		if err != nil {
			return inputErr(err)
		}
		dm, err := c.hashTree(ctx, o, alg)
		if err != nil {
			return err
		}
		co.Dir = dm
	}
	p, err := runtimepolicy.Create(co)
	if err != nil {
		return inputErr(err)
	}
	return c.writeOut(o.out, p.Marshal())
}

// hashTree hashes --from-dir with a progress line on a terminal.
func (c *cli) hashTree(ctx context.Context, o *createOpts, alg ima.HashAlg) (*runtimepolicy.DigestMap, error) {
	var pr treehash.Progress
	stop := c.progress(&pr)
	files, errs, err := treehash.Hash(ctx, o.dir, treehash.Options{Alg: alg, Skip: o.skip, AllOwners: o.allOwners, Progress: &pr})
	stop()
	if err != nil {
		return nil, inputErr(fmt.Errorf("--from-dir %s: %w", o.dir, err))
	}
	for i, e := range errs {
		if i == 20 {
			fmt.Fprintf(c.stderr, "imago: ... and %d more files not read\n", len(errs)-20)
			break
		}
		fmt.Fprintf(c.stderr, "imago: skipped: %v\n", e)
	}
	// Every digest in hex in one string, one allocation for them all.
	hexes := make([]byte, 0, len(files)*2*alg.Size())
	for _, f := range files {
		hexes = hex.AppendEncode(hexes, f.Digest)
	}
	all := string(hexes)
	dm := runtimepolicy.NewDigestMapSize(len(files))
	for i, f := range files {
		n := 2 * len(f.Digest)
		dm.Add(f.Path, all[i*n:(i+1)*n])
	}
	return dm, nil
}

// progress draws a progress line on stderr while hashing, if stderr is a
// terminal; the function returned ends it.
func (c *cli) progress(pr *treehash.Progress) func() {
	f, ok := c.stderr.(*os.File)
	if !ok || !isTerminal(f) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				drawProgress(f, pr, start)
				fmt.Fprintln(f)
				return
			case <-t.C:
				drawProgress(f, pr, start)
			}
		}
	}()
	return func() { close(done); <-finished }
}

func drawProgress(w io.Writer, pr *treehash.Progress, start time.Time) {
	if !pr.Walked.Load() {
		fmt.Fprintf(w, "\r\x1b[Kwalking the tree...")
		return
	}
	files, bytes := pr.Files.Load(), pr.Bytes.Load()
	tf, tb := pr.FilesTotal.Load(), pr.BytesTotal.Load()
	frac := 1.0
	if tb > 0 {
		frac = float64(bytes) / float64(tb)
	}
	const width = 30
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if float64(i) < frac*width {
			bar[i] = '#'
		}
	}
	rate := float64(bytes) / time.Since(start).Seconds() / (1 << 20)
	fmt.Fprintf(w, "\r\x1b[K[%s] %d/%d files, %.1f/%.1f MiB, %.0f MiB/s", bar, files, tf, float64(bytes)/(1<<20), float64(tb)/(1<<20), rate)
}

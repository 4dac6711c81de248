package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/ctxio"
	"github.com/imago-ima/imago/internal/keyfile"
	"github.com/imago-ima/imago/internal/xattr"
)

func newAppraiseCommand(c *cli) *cobra.Command {
	var (
		keyrings []string
		defAlg   string
		require  string
		algos    []string
	)
	cmd := &cobra.Command{
		Use:   "appraise [--keyring DIR|FILE]... FILE...",
		Short: "Check each file's security.ima as IMA appraisal would",
		Long: `Read each file's security.ima, hash the file with the algorithm the value
names, and decide as the kernel's IMA appraisal does (ima_appraise_measurement,
xattr_verify): a hash (0x01, 0x04) must equal the file's digest, a signature
(0x03 v2 or v3) must verify with a key of the keyring. One line per file:
"pass FILE", or "<status> FILE: <cause>[: detail]" with the kernel's integrity
status (fail, nolabel, unknown) and audit cause (invalid-hash,
invalid-signature, IMA-signature-required, missing-hash, ...).

--keyring names X.509 certificates (DER or PEM) or public keys, or a directory
of them, like the .ima keyring; keys are found by keyid (the last 4 bytes of
the certificate's SubjectKeyIdentifier, or of SHA-1 of the public key). Key
files must be regular files of at most 1 MiB (links are followed); in a
directory, other entries are skipped with a note. Only regular files are
appraised. --hash is the algorithm for a file without security.ima (the
kernel's ima_hash=).
--require imasig or sigv3 makes a hash fail, as appraise_type= does.
fs-verity signatures (0x06) need the fs-verity digest and are reported as
unknown here.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("ima-hash") {
				fmt.Fprintln(c.stderr, "imago: appraise: --ima-hash is now --hash, the name every imago command uses")
			}
			def, err := ima.ParseHashAlg(defAlg)
			if err != nil {
				return usagef("--hash: %v", err)
			}
			var req digsig.Requirements
			switch require {
			case "", "hash":
			case "imasig":
				req.Signature = true
			case "sigv3":
				req.Signature, req.SigV3 = true, true
			default:
				return usagef("--require: want imasig or sigv3, got %q", require)
			}
			for _, s := range algos {
				for _, name := range strings.Split(s, ",") {
					a, err := ima.ParseHashAlg(name)
					if err != nil {
						return usagef("--appraise-algos: %v", err)
					}
					req.AllowedAlgos = append(req.AllowedAlgos, a)
				}
			}
			kr, err := loadKeyring(c, keyrings)
			if err != nil {
				return err
			}
			return runAppraise(cmd.Context(), c, kr, def, req, args)
		},
	}
	cmd.Flags().StringArrayVar(&keyrings, "keyring", nil, "certificate or public key file, or a directory of them (repeatable)")
	hashFlag(cmd, &defAlg, "hash algorithm for files without security.ima (the kernel's ima_hash=)")
	cmd.Flags().StringVar(&defAlg, "ima-hash", "sha256", "the old name of --hash")
	cmd.Flags().MarkHidden("ima-hash")
	cmd.Flags().StringVar(&require, "require", "", "imasig or sigv3: a hash value fails (appraise_type=)")
	cmd.Flags().StringSliceVar(&algos, "appraise-algos", nil, "allowed hash algorithms, comma-separated (appraise_algos=)")
	exitStatus(cmd, withCanceled("0 every file passes", "1 a file fails appraisal", "2 bad usage, or a keyring or file cannot be read")...)
	return cmd
}

// loadKeyring reads --keyring files and folders (internal/keyfile:
// regular files of at most 1 MiB, links followed); in a folder, a file that
// is not one, or holds no usable key, is skipped with a note.
func loadKeyring(c *cli, paths []string) (*digsig.Keyring, error) {
	kr, err := keyfile.LoadKeyring(paths, func(path string, err error) {
		var ke *keyfile.Error
		if errors.As(err, &ke) {
			err = ke.Err
		}
		fmt.Fprintf(c.stderr, "imago: keyring: skipped %s: %v\n", path, err)
	})
	if err != nil {
		return nil, inputErr(fmt.Errorf("keyring: %w", err))
	}
	return kr, nil
}

func runAppraise(ctx context.Context, c *cli, kr *digsig.Keyring, def ima.HashAlg, req digsig.Requirements, files []string) error {
	w := bufio.NewWriter(c.stdout)
	defer w.Flush()
	failedN, bad := 0, 0
	for _, path := range files {
		value, err := xattr.Get(path, xattr.IMA)
		if errors.Is(err, xattr.ErrNoData) {
			value, err = nil, nil
		}
		var d ima.Digest
		if err == nil {
			d, err = hashFile(ctx, path, digsig.HashAlgOf(value, def))
			if errors.Is(err, digsig.ErrUnsupported) {
				// Go cannot compute the value's algorithm: an unknown.
				d, err = ima.Digest{Alg: digsig.HashAlgOf(value, def)}, nil
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.Flush()
			fmt.Fprintf(c.stderr, "imago: appraise: %v\n", ctxio.Named(path, err))
			bad++
			continue
		}
		aerr := digsig.Appraise(value, d, kr, req)
		if aerr == nil {
			fmt.Fprintf(w, "pass %s\n", path)
			continue
		}
		failedN++
		var ae *digsig.AppraisalError
		if errors.As(aerr, &ae) {
			line := fmt.Sprintf("%s %s: %s", ae.Status, path, ae.Cause)
			if ae.Err != nil {
				line += ": " + strings.TrimPrefix(ae.Err.Error(), "digsig: ")
			}
			fmt.Fprintln(w, line)
		} else {
			fmt.Fprintf(w, "fail %s: %v\n", path, aerr)
		}
	}
	if bad > 0 {
		return silent(inputErr(fmt.Errorf("appraise: %d of %d file(s) could not be read", bad, len(files))))
	}
	if failedN > 0 {
		return silent(failed("appraise: %d of %d file(s) fail", failedN, len(files)))
	}
	return nil
}

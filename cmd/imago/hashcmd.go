package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/ctxio"
	"github.com/imago-ima/imago/internal/xattr"
)

func newHashCommand(c *cli) *cobra.Command {
	var (
		alg     string
		noXattr bool
	)
	cmd := &cobra.Command{
		Use:   "hash [--hash ALG] FILE...",
		Short: "Write each file's digest to its security.ima, as evmctl ima_hash does",
		Long: `Hash each file and write the digest to its security.ima extended attribute,
byte for byte as evmctl ima_hash and the kernel's appraise fix mode write it:
0x04 <hash_algo> <digest> (IMA_XATTR_DIGEST_NG), or for sha1 the legacy
0x01 <digest> (IMA_XATTR_DIGEST). Each line printed is the value in hex and
the file. Only regular files are hashed, as the kernel measures only those.
Writing security.ima needs CAP_SYS_ADMIN and a filesystem with security.*
extended attributes.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := parseHashFlag(alg)
			if err != nil {
				return err
			}
			return runHash(cmd.Context(), c, a, noXattr, args)
		},
	}
	exitStatus(cmd, withCanceled("0 every file hashed", "2 bad usage, or a file could not be read or written")...)
	hashFlag(cmd, &alg, "hash algorithm of the digest")
	cmd.Flags().BoolVarP(&noXattr, "no-xattr", "n", false, "print the value only, do not write security.ima")
	return cmd
}

// parseHashFlag accepts a kernel hash algorithm name that Go can compute.
func parseHashFlag(s string) (ima.HashAlg, error) {
	a, err := ima.ParseHashAlg(s)
	if err != nil {
		return 0, usagef("--hash: %v", err)
	}
	if a.New() == nil {
		return 0, usagef("--hash: %s cannot be computed here", a)
	}
	return a, nil
}

// hashFlag registers --hash (-a), the one name every command uses for a
// hash algorithm.
func hashFlag(cmd *cobra.Command, v *string, what string) {
	cmd.Flags().StringVarP(v, "hash", "a", "sha256", what+": sha1, sha224, sha256, sha384, sha512, sm3, sha3-256, ... (kernel names)")
}

func runHash(ctx context.Context, c *cli, alg ima.HashAlg, noXattr bool, files []string) error {
	w := bufio.NewWriter(c.stdout)
	defer w.Flush()
	bad := 0
	for _, path := range files {
		d, err := hashFile(ctx, path, alg)
		var value []byte
		if err == nil {
			value, err = digsig.DigestValue(d)
		}
		if err == nil && !noXattr {
			err = xattr.Set(path, xattr.IMA, value)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.Flush()
			fmt.Fprintf(c.stderr, "imago: hash: %v\n", ctxio.Named(path, err))
			bad++
			continue
		}
		fmt.Fprintf(w, "%s %s\n", hex.EncodeToString(value), path)
	}
	if bad > 0 {
		return silent(inputErr(fmt.Errorf("hash: %d of %d file(s) failed", bad, len(files))))
	}
	return nil
}

// hashFile streams a regular file through alg; anything else (a FIFO, a
// device) is refused without waiting on it, and the read ends when ctx
// does (a 100 GB file is not read to its end after SIGINT).
func hashFile(ctx context.Context, path string, alg ima.HashAlg) (ima.Digest, error) {
	h := alg.New()
	if h == nil {
		return ima.Digest{}, fmt.Errorf("%s cannot be computed here: %w", alg, digsig.ErrUnsupported)
	}
	f, err := ctxio.OpenRegular(ctx, path)
	if err != nil {
		return ima.Digest{}, err
	}
	defer f.Close()
	if _, err := io.CopyBuffer(h, f, make([]byte, 256<<10)); err != nil {
		return ima.Digest{}, err
	}
	return ima.Digest{Alg: alg, Sum: h.Sum(nil)}, nil
}

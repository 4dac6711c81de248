package main

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/internal/ctxio"
	"github.com/imago-ima/imago/internal/keyfile"
	"github.com/imago-ima/imago/internal/xattr"
)

func newSignCommand(c *cli) *cobra.Command {
	var (
		keyPath, certPath, keyidHex, alg string
		noXattr                          bool
	)
	cmd := &cobra.Command{
		Use:   "sign --key KEY [--cert CERT] [--hash ALG] FILE...",
		Short: "Sign each file into its security.ima, as evmctl ima_sign does",
		Long: `Sign each file's digest and write the signature to its security.ima extended
attribute: 0x03 0x02 <hash_algo> <keyid> <sig_size> <signature>, signature v2
(EVM_IMA_XATTR_DIGSIG), RSA PKCS#1 v1.5 or ECDSA, as evmctl ima_sign writes it;
evmctl ima_verify and the kernel's appraisal accept it. Only regular files
are signed.

KEY is an unencrypted PEM private key: PKCS#8 (PRIVATE KEY), PKCS#1 (RSA
PRIVATE KEY) or SEC1 (EC PRIVATE KEY). The keyid is --keyid if given, else the
last 4 bytes of the SubjectKeyIdentifier of --cert (DER or PEM) or of a
certificate in the KEY file, else as evmctl computes it, from the public key
(SHA-1 of the subjectPublicKey; equal to the SKID of a certificate made with
subjectKeyIdentifier=hash). Each line printed is the value in hex and the file.
KEY and CERT must be regular files of at most 1 MiB.`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := parseHashFlag(alg)
			if err != nil {
				return err
			}
			if keyPath == "" {
				return usagef("sign: --key is required")
			}
			key, keyid, err := loadSigningKey(keyPath, certPath, keyidHex)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(c.stdout)
			defer w.Flush()
			bad := 0
			ctx := cmd.Context()
			for _, path := range args {
				d, err := hashFile(ctx, path, a)
				var value []byte
				if err == nil {
					value, err = digsig.Sign(key, keyid, a, d.Sum)
				}
				if err == nil && !noXattr {
					err = xattr.Set(path, xattr.IMA, value)
				}
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					w.Flush()
					fmt.Fprintf(c.stderr, "imago: sign: %v\n", ctxio.Named(path, err))
					bad++
					continue
				}
				fmt.Fprintf(w, "%s %s\n", hex.EncodeToString(value), path)
			}
			if bad > 0 {
				return silent(inputErr(fmt.Errorf("sign: %d of %d file(s) failed", bad, len(args))))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&keyPath, "key", "k", "", "PEM private key (RSA or ECDSA)")
	cmd.Flags().StringVar(&certPath, "cert", "", "certificate of the key, for the keyid (DER or PEM)")
	cmd.Flags().StringVar(&keyidHex, "keyid", "", "keyid as 8 hex digits, overriding the certificate's")
	hashFlag(cmd, &alg, "hash algorithm of the signed digest")
	exitStatus(cmd, withCanceled("0 every file signed", "2 bad usage, an unusable key, or a file could not be read or written")...)
	cmd.Flags().BoolVarP(&noXattr, "no-xattr", "n", false, "print the value only, do not write security.ima")
	return cmd
}

// loadSigningKey reads the private key and decides the keyid (see the
// sign command's help).
func loadSigningKey(keyPath, certPath, keyidHex string) (crypto.Signer, uint32, error) {
	data, err := keyfile.Read(keyPath)
	if err != nil {
		return nil, 0, inputErr(fmt.Errorf("--key %w", err))
	}
	key, keyCert, err := parsePrivateKeyPEM(data)
	if err != nil {
		return nil, 0, inputErr(fmt.Errorf("--key %s: %w", keyPath, err))
	}
	cert := keyCert
	if certPath != "" {
		if cert, err = readCertificate(certPath); err != nil {
			return nil, 0, inputErr(fmt.Errorf("--cert %w", err))
		}
	}
	if cert != nil && !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, 0, inputErr(fmt.Errorf("%s: certificate is not for the key in %s", orDefault(certPath, keyPath), keyPath))
	}
	var keyid uint32
	switch {
	case keyidHex != "":
		v, err := strconv.ParseUint(keyidHex, 16, 32)
		if err != nil {
			return nil, 0, usagef("--keyid: want 8 hex digits, got %q", keyidHex)
		}
		keyid = uint32(v)
	case cert != nil:
		keyid, err = digsig.KeyIDFromCertificate(cert)
	default:
		keyid, err = digsig.KeyIDFromPublicKey(key.Public())
	}
	if err != nil {
		return nil, 0, inputErr(err)
	}
	return key, keyid, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// parsePrivateKeyPEM returns the first private key in PEM data, and the
// first certificate if the file also holds one.
func parsePrivateKeyPEM(data []byte) (crypto.Signer, *x509.Certificate, error) {
	var (
		key  crypto.Signer
		cert *x509.Certificate
	)
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if x509.IsEncryptedPEMBlock(b) || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, nil, errors.New("encrypted private keys are not supported; decrypt it with openssl pkey first")
		}
		var (
			k   any
			err error
		)
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "CERTIFICATE":
			if cert == nil {
				cert, err = x509.ParseCertificate(b.Bytes)
			}
			if err != nil {
				return nil, nil, err
			}
			continue
		default:
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", b.Type, err)
		}
		if key != nil {
			continue
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			key = k
		case *ecdsa.PrivateKey:
			key = k
		default:
			return nil, nil, fmt.Errorf("%T keys are not supported (RSA and ECDSA only)", k)
		}
	}
	if key == nil {
		return nil, nil, errors.New("no PEM private key (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)")
	}
	return key, cert, nil
}

// readCertificate reads a DER or PEM certificate.
func readCertificate(path string) (*x509.Certificate, error) {
	data, err := keyfile.Read(path)
	if err != nil {
		return nil, err
	}
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: PEM %s, want CERTIFICATE", path, b.Type)
		}
		data = b.Bytes
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	da, err1 := x509.MarshalPKIXPublicKey(a)
	db, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(da, db)
}

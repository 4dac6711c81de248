module github.com/imago-ima/imago

go 1.26.8

require (
	github.com/decred/dcrd/dcrec/secp256k1/v4 v4.4.1
	github.com/google/go-tpm v0.9.8
	github.com/spf13/cobra v1.10.2
	golang.org/x/sys v0.45.0
)

require (
	github.com/google/go-tpm-tools v0.4.11 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
)

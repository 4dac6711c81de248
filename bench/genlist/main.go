// Command genlist writes a synthetic ima-ng measurement list and the PCR 10
// values it replays to, for the benchmarks (bench/replay.sh) and for trying
// imago and evmctl on large lists:
//
//	go run ./bench/genlist [-seed S] [-violations K] N OUTDIR
//
// OUTDIR receives binary_runtime_measurements, ascii_runtime_measurements,
// expected.json and pcrs-sha1.txt / pcrs-sha256.txt (see internal/genlist).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/imago-ima/imago/internal/genlist"
)

func main() {
	seed := flag.Uint64("seed", 1, "seed for names and violation positions")
	viol := flag.Int("violations", 0, "number of violation entries")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: genlist [-seed S] [-violations K] N OUTDIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	n, err := strconv.Atoi(flag.Arg(0))
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "genlist: N must be a positive number, not %q\n", flag.Arg(0))
		os.Exit(2)
	}
	pcrs, err := genlist.WriteDir(flag.Arg(1), n, genlist.Options{Seed: *seed, Violations: *viol})
	if err != nil {
		fmt.Fprintf(os.Stderr, "genlist: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d entries in %s: sha1 PCR-10 %x, sha256 PCR-10 %x\n", n, flag.Arg(1), pcrs["sha1"], pcrs["sha256"])
}

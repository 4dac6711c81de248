// Command sharate prints Go's SHA-256 rate per core with every core
// hashing at once, in MB/s: the yardstick of bench/verify.sh for
// runtime-policy create --from-dir. One goroutine per GOMAXPROCS hashes a
// buffer of the size the tree hasher reads with (treehash.ReadSize) for
// the given time. It prints the bytes of all of them over the time,
// divided by the number of goroutines (the rate per core), then the bytes
// over the CPU time they took (the rate per CPU-second, which other work
// on the machine changes less).
//
// usage: go run ./bench/sharate [SECONDS]
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imago-ima/imago/internal/cputime"
	"github.com/imago-ima/imago/internal/treehash"
)

func main() {
	secs := 2.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil && v > 0 {
			secs = v
		}
	}
	procs := runtime.GOMAXPROCS(0)
	var total atomic.Int64
	var wg sync.WaitGroup
	cpu := cputime.Start()
	start := time.Now()
	for range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, treehash.ReadSize)
			for i := range buf {
				buf[i] = byte(i)
			}
			h := sha256.New()
			var n int64
			for time.Since(start).Seconds() < secs {
				for range 16 {
					h.Write(buf)
					n += int64(len(buf))
				}
			}
			h.Sum(nil)
			total.Add(n)
		}()
	}
	wg.Wait()
	mb := float64(total.Load()) / 1e6
	fmt.Printf("%.1f %.1f\n", mb/time.Since(start).Seconds()/float64(procs), mb/cpu.Elapsed().Seconds())
}

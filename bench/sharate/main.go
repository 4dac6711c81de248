// Command sharate prints Go's SHA-256 rate on one core, in MB/s: the
// yardstick of bench/verify.sh for runtime-policy create --from-dir.
//
// usage: go run ./bench/sharate [SECONDS]
package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func main() {
	secs := 2.0
	if len(os.Args) > 1 {
		if v, err := strconv.ParseFloat(os.Args[1], 64); err == nil && v > 0 {
			secs = v
		}
	}
	runtime.GOMAXPROCS(1)
	buf := make([]byte, 256<<10) // the buffer size create --from-dir reads with
	for i := range buf {
		buf[i] = byte(i)
	}
	h := sha256.New()
	var n int64
	start := time.Now()
	for time.Since(start).Seconds() < secs {
		for range 64 {
			h.Write(buf)
			n += int64(len(buf))
		}
	}
	h.Sum(nil)
	fmt.Printf("%.1f\n", float64(n)/time.Since(start).Seconds()/1e6)
}

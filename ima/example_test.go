package ima_test

import (
	"fmt"
	"log"
	"os"

	"github.com/imago-ima/imago/ima"
)

// Read a binary measurement list, letting the reader detect the producer's
// byte order and the template digest width, and print each file digest and
// path.
func ExampleNewReader() {
	f, err := os.Open("testdata/realkernel-a-ima-ng/binary_runtime_measurements")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()

	r := ima.NewReader(f, ima.ReaderOptions{})
	n := 0
	for e, err := range r.All() {
		if err != nil {
			log.Fatal(err)
		}
		if n < 3 {
			d, _ := e.FileDigest()
			name, _ := e.Name()
			fmt.Printf("%d %s %s %s\n", e.PCR, e.Template, d.Alg, name)
		}
		n++
	}
	fmt.Println(n, "entries,", r.ByteOrder(), "digest size", r.DigestSize())
	// Output:
	// 10 ima-ng sha256 boot_aggregate
	// 10 ima-ng sha256 /init
	// 10 ima-ng sha256 /bin/busybox
	// 16 entries, LittleEndian digest size 20
}

// Build the entry a measurement agent would append for a file, and print its
// line as ascii_runtime_measurements shows it.
func ExampleNewEntry() {
	sum := make([]byte, 32) // sha256 of the file
	e, err := ima.NewEntry(ima.TemplateIMANG, nil, 10,
		ima.DigestNG(ima.HashSHA256, sum), ima.NameNG("/usr/bin/my tool"))
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(ima.AppendASCII(nil, e))
	// Output:
	// 10 7e2164586508a26a69ceffee716da579427eebdf ima-ng sha256:0000000000000000000000000000000000000000000000000000000000000000 /usr/bin/my_tool
}

package eventlog_test

import (
	"fmt"
	"os"

	"github.com/imago-ima/imago/eventlog"
)

// Replay a crypto-agile log with four banks. The values equal the pcrs:
// section that tpm2-tools' tpm2_eventlog prints for this log (upstream
// test/integration/fixtures/event.bin.yaml).
func ExampleReplay() {
	f, err := os.Open("testdata/tpm2-tools-event.bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	log, err := eventlog.ReadLog(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	pcrs, info, err := eventlog.Replay(log.Events)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(log.Format, len(log.Events), "events, banks", info.Banks)
	for _, b := range pcrs.Banks() {
		for _, i := range pcrs.Indexes(b) {
			v, _ := pcrs.Get(b, i)
			fmt.Printf("%s PCR%d %x\n", b, i, v)
		}
	}
	// Output:
	// crypto-agile 2 events, banks [sha1 sha256 sha384 sha512]
	// sha1 PCR0 543c314066a9cd7a6b6aa53f56b38e814a76efe7
	// sha256 PCR0 118bdc4043596f8d6b7813438131959961f6abba29bab0075d16ca39664f5862
	// sha384 PCR0 8ce4f7fcd5eaae9df051f735b0e5a37f836d54352e2efafc930fa69a28cd7c8d07014fd54c477a5dc46a0ff8c4ecaf07
	// sha512 PCR0 2b39e8bfcb64133066c8939231a424cd0a2f3ceaf21b182e82b826916b5826fa3f98fcf1333a2948947ea52f03959e7737800e49722c972e5444f7be6aa9a431
}

// Read a log record by record.
func ExampleReader() {
	f, err := os.Open("testdata/tpm2-tools-event.bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	r := eventlog.NewReader(f)
	for e, err := range r.All() {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%d @%d PCR%d %v %d digests %d bytes\n", e.Seq, e.Offset, e.PCR, e.Type, len(e.Digests), len(e.Data))
	}
	fmt.Println(r.Format(), r.SpecID().Banks(), r.Offset())
	// Output:
	// 0 @0 PCR0 EV_NO_ACTION 1 digests 45 bytes
	// 1 @77 PCR0 EV_EFI_PLATFORM_FIRMWARE_BLOB 4 digests 16 bytes
	// crypto-agile [sha1 sha256 sha384 sha512] 281
}

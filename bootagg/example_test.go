package bootagg_test

import (
	"encoding/hex"
	"fmt"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/pcr"
)

// sha256 PCR0-9 read from the swtpm of the realkernel a-ima-ng capture
// (pcrs-sha256.txt). Linux 6.1 with ima_hash=sha256 wrote the boot aggregate
// sha256:6c54f2bc... into that capture's list.
var capturedPCRs = []string{
	"e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
	"85af72fcfeedb1db195fbf081e0cc9cb43b1efca9d98396710a2c7a3ce34fa80",
	"22c81553ac1b2c475f081ba0149354f68ff6123ac1bae1742006f894d2269241",
	"e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
	"1eb9aa21337cc1fa31ce5f56900d7bf59b9dda366823095aed06544caa2557ca",
	"e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
	"e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
	"e21b703ee69c77476bccb43ec0336a9a1b2914b378944f7b00a10214ca8fea93",
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0000000000000000000000000000000000000000000000000000000000000000",
}

func set() pcr.Set {
	s := make(pcr.Set)
	for i, h := range capturedPCRs {
		v, _ := hex.DecodeString(h)
		s.Put(pcr.SHA256, i, v)
	}
	return s
}

// Compute the value a kernel records, as a verifier or the agent does.
func ExampleKernel() {
	alg, digest, _ := bootagg.Kernel([]pcr.Bank{pcr.SHA1, pcr.SHA256}, "sha256", set())
	fmt.Printf("%s:%x\n", alg, digest)
	// Output:
	// sha256:6c54f2bc3953b80ac6a88d61ede827409f0eab62d1758cbeb4f19e7cb9fb5fe3
}

// Check a list's first entry against the PCRs.
func ExampleCheck() {
	want, _ := hex.DecodeString("6c54f2bc3953b80ac6a88d61ede827409f0eab62d1758cbeb4f19e7cb9fb5fe3")
	rule, err := bootagg.Check("boot_aggregate", "sha256", want, set())
	fmt.Println(rule, err)

	_, err = bootagg.Check("boot_aggregate", "sha256", make([]byte, 32), set())
	fmt.Println(err != nil)
	rule, err = bootagg.CheckNoTPM("boot_aggregate", "sha256", make([]byte, 32))
	fmt.Println(rule, err)
	// Output:
	// PCR0-9 <nil>
	// true
	// no TPM (zeros) <nil>
}

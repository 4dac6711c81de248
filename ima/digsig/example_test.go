package digsig_test

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
)

// Verify the signatures of keylime's ima-sig test lines with its RSA key.
func ExampleVerify() {
	var keys digsig.Keyring
	pem, err := os.ReadFile("testdata/keylime/rsa2048pub.pem")
	if err != nil {
		fmt.Println(err)
		return
	}
	ids, err := keys.Add(pem)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("keyid %08x\n", ids[0])
	lines, _ := os.ReadFile("testdata/keylime/ima-sig-lines.txt")
	for _, line := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		e, err := ima.ParseASCIILine([]byte(line), nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		_, sig, _ := e.Signature()
		d, _ := e.FileDigest()
		name, _ := e.Name()
		switch err := digsig.Verify(sig, d, &keys); {
		case err == nil:
			fmt.Println(name, d.Alg, "ok")
		case errors.Is(err, digsig.ErrUnknownKey):
			fmt.Println(name, d.Alg, err)
		}
	}
	// Output:
	// keyid f3452d23
	// /usr/bin/dd sha1 ok
	// /usr/bin/zmore sha1 digsig: unknown key 531f4025
	// /usr/bin/dd sha256 ok
	// /usr/bin/zmore sha256 digsig: unknown key 531f4025
}

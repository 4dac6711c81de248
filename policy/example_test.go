package policy_test

import (
	"fmt"
	"strings"

	"github.com/imago-ima/imago/policy"
)

func Example() {
	p, err := policy.Parse(strings.NewReader(`# measure what root reads and every exec, except on tmpfs
dont_measure fsmagic=0x01021994 func=FILE_CHECK
measure func=BPRM_CHECK mask=MAY_EXEC
measure func=PATH_CHECK mask=^MAY_READ uid=0 pcr=11
appraise func=BPRM_CHECK fowner=0 appraise_type=imasig
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	// Each token of the read-back ends with a space, as the kernel prints
	// it; shown here with the end of line marked.
	for _, l := range strings.SplitAfter(p.Format(), "\n") {
		fmt.Print(strings.Replace(l, "\n", "$\n", 1))
	}
	d := p.Evaluate(policy.Event{Func: policy.BprmCheck, Mask: policy.MayExec, FSMagic: 0xef53})
	fmt.Printf("exec by root of a root-owned file: measure %v appraise %v signature %v\n", d.Measure, d.Appraise, d.DigSigRequired)
	d = p.Evaluate(policy.Event{Func: policy.FileCheck, Mask: policy.MayRead | policy.MayWrite, FSMagic: 0xef53})
	fmt.Printf("O_RDWR open by root: measure %v into PCR %d\n", d.Measure, d.PCR)
	// Output:
	// dont_measure func=FILE_CHECK fsmagic=0x1021994 $
	// measure func=BPRM_CHECK mask=MAY_EXEC $
	// measure func=FILE_CHECK mask=^MAY_READ pcr=11 uid=0 $
	// appraise func=BPRM_CHECK fowner=0 appraise_type=imasig $
	// exec by root of a root-owned file: measure true appraise true signature true
	// O_RDWR open by root: measure true into PCR 11
}

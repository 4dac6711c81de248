package bootagg

import (
	"errors"
	"testing"
)

func TestCheckBypass(t *testing.T) {
	zero := make([]byte, 32)
	for _, c := range []struct {
		name, alg string
		digest    []byte
		replayed  bool
		want      Rule
		err       bool
	}{
		{Name, "sha256", zero, true, RuleAdopted, false},
		{Name, "sha256", zero, false, RuleNoTPM, false},
		{NameLate, "sha256", zero, true, RuleAdopted, false},
		{Name, "", make([]byte, 20), true, RuleAdopted, false},
		{Name, "sha256", append(make([]byte, 31), 1), true, 0, true},
		{Name, "sha256", make([]byte, 20), true, 0, true}, // zeros of the wrong size
		{"/init", "sha256", zero, true, 0, true},
	} {
		got, err := CheckBypass(c.name, c.alg, c.digest, c.replayed)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("CheckBypass(%s, %s, %x, %v) = %v, %v; want %v (error %v)", c.name, c.alg, c.digest, c.replayed, got, err, c.want, c.err)
		}
		var me *MismatchError
		if c.err && c.name == Name && !errors.As(err, &me) {
			t.Errorf("error %v is not a *MismatchError", err)
		}
	}
	if RuleAdopted.String() != "bypass list adopted by a late TPM" {
		t.Errorf("RuleAdopted prints %q", RuleAdopted)
	}
	if IsBypass(nil) || !IsBypass(zero) || IsBypass([]byte{0, 1}) {
		t.Error("IsBypass")
	}
}

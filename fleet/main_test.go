package fleet_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/imago-ima/imago/internal/fleettest"
)

// bins are the imago binaries the tests run as replicas, built once.
var bins *fleettest.Binaries

func TestMain(m *testing.M) {
	var err error
	if bins, err = fleettest.NewBinaries(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	bins.Cleanup()
	os.Exit(code)
}

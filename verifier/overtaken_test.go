package verifier

import (
	"context"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/verifier/client"
)

// overtaker is an HTTP transport that, before the first activation it
// carries, sends the node's enrollment request again through another
// client: what a replica does when an enrollment request retried after a
// lost answer commits after the one the attester goes on with.
type overtaker struct {
	next     http.RoundTripper
	again    func() error
	overtook atomic.Int32
}

func (o *overtaker) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/activate") && o.overtook.Add(1) == 1 {
		if err := o.again(); err != nil {
			return nil, err
		}
	}
	return o.next.RoundTrip(r)
}

// TestEnrollmentOvertaken: an enrollment whose challenge was replaced by a
// later enrollment of the same node (the verifier answers enroll.no_pending
// to its activation) is started again by the attester and completes; the
// node then attests.
func TestEnrollmentOvertaken(t *testing.T) {
	ca, _ := softtpm.NewCA("test")
	v := startVerifier(t, "sqlite://"+filepath.Join(t.TempDir(), "v.db"), enroll.NewRoots([]*x509.Certificate{ca.Cert}), nil)
	plain, _ := client.New(v.URL, client.Options{CA: v.CA})
	a := softAdded(t, ca, plain, "late")
	ctx := context.Background()
	req, err := attester.EnrollRequest(a.TPM)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := client.TLSTransport(v.CA, 4)
	if err != nil {
		t.Fatal(err)
	}
	o := &overtaker{next: tr, again: func() error {
		_, err := plain.Enroll(ctx, "late", req)
		return err
	}}
	a.Client, _ = client.New(v.URL, client.Options{Transport: o})
	if err := a.Enroll(ctx); err != nil {
		t.Fatalf("enrollment overtaken once: %v", err)
	}
	if n := o.overtook.Load(); n != 2 {
		t.Fatalf("%d activations, want 2 (the overtaken one and the next)", n)
	}
	if res, err := a.Round(ctx); err != nil || res.State != attest.StatePass {
		t.Fatalf("round after the enrollment: %+v %v", res, err)
	}
}

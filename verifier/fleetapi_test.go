package verifier

import (
	"bytes"
	"testing"
)

// TestOpenAPIFleetPaths: the fleet's routes are in openapi.yaml.
func TestOpenAPIFleetPaths(t *testing.T) {
	for _, p := range []string{"/v1/fleet:", "/v1/events:", "/metrics:", "/:"} {
		if !bytes.Contains(OpenAPI(), []byte("\n  "+p+"\n")) {
			t.Errorf("openapi.yaml lacks %s", p)
		}
	}
}

# imago: see README.md. `make demo` runs the main job, `make test` the tests.
GO      ?= go
# A count, not a duration: a duration -fuzztime can fail with a bare
# "context deadline exceeded" from a race in Go 1.26's fuzz coordinator
# (golang/go#75804), so `make test` is deterministic only with counts.
FUZZTIME ?= 50000x
BIN     := bin/imago
# Files tests keep (go test -artifacts), e.g. the fleet page's screenshot.
ARTIFACTS ?= $(CURDIR)/test-artifacts
SHELL   := /bin/bash

.PHONY: all build static demo test vet unit fuzz-smoke fuzz bench clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/imago

# A static binary without the embedded simulator, for an initramfs.
static:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -o bin/imago-static ./cmd/imago

demo: build
	$(BIN) demo

test: vet unit fuzz-smoke

vet:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet ./...
	# imago reads and verifies on macOS and Windows too (the agent is Linux only).
	GOOS=darwin $(GO) build ./...
	GOOS=windows $(GO) build ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test with -race; internal/testenv/testreport prints the results,
# then every skipped test with its reason, and under CI=true fails on a
# skip that is not one of testenv's environment reasons.
unit:
	mkdir -p $(ARTIFACTS)
	set -o pipefail; $(GO) test -race -count=1 -artifacts -outputdir=$(ARTIFACTS) -json ./... | $(GO) run ./internal/testenv/testreport
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/imago

# Every Fuzz target for FUZZTIME, seeded from testdata/fuzz. A run that
# fails with "context deadline exceeded" and wrote no crasher is Go's fuzz
# coordinator race (golang/go#75804, only with a duration FUZZTIME): it is
# run again, at most twice; any other failure stops at once.
fuzz-smoke:
	@set -e; log=$$(mktemp); trap 'rm -f $$log' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    for try in 1 2 3; do \
	      echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	      if $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$pkg >$$log 2>&1; then break; fi; \
	      if [ $$try = 3 ] || grep -q 'Failing input written to' $$log || ! grep -q 'context deadline exceeded' $$log; then cat $$log; exit 1; fi; \
	      echo "  no crasher written, \"context deadline exceeded\": golang/go#75804, once more"; \
	    done; \
	  done; \
	done; echo "fuzz smoke: ok"

fuzz:
	$(MAKE) fuzz-smoke FUZZTIME=5m

bench:
	bash bench/replay.sh
	bash bench/measure.sh
	bash bench/attest.sh
	bash bench/fleet.sh
	bash bench/verify.sh

clean:
	rm -rf bin

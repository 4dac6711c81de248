# imago: see README.md. `make demo` runs the main job, `make test` the tests.
GO      ?= go
FUZZTIME ?= 10s
BIN     := bin/imago

.PHONY: all build static demo test vet unit fuzz-smoke fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/imago

# A static binary without the embedded simulator, for an initramfs.
static:
	CGO_ENABLED=0 $(GO) build -o bin/imago-static ./cmd/imago

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

unit:
	$(GO) test -race -count=1 ./...
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/imago

# Every Fuzz target for FUZZTIME, seeded from testdata/fuzz.
fuzz-smoke:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s $$pkg >/tmp/imago-fuzz.log 2>&1 || { cat /tmp/imago-fuzz.log; exit 1; }; \
	  done; \
	done; echo "fuzz smoke: ok"

fuzz:
	$(MAKE) fuzz-smoke FUZZTIME=5m

bench:
	bash bench/replay.sh
	bash bench/measure.sh
	bash bench/verify.sh
	bash bench/attest.sh

clean:
	rm -rf bin

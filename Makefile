# The two commands a newcomer needs: `make run` and `make test` (README.md).
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test test-short build vet bench js-deps faults

## run: every role in one process on :8000 against DATABASE_URL (default: local PostgreSQL, database vibegrapher)
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/vibegrapher all

## build: the vibegrapher binary in ./bin
build:
	CGO_ENABLED=1 $(GO) build -ldflags "$(LDFLAGS)" -o bin/vibegrapher ./cmd/vibegrapher

## test: every test against real PostgreSQL (TEST_DATABASE_URL, else 127.0.0.1:5432), with the race detector
test: js-deps
	$(GO) test -race -count=1 -timeout 30m ./...

## js-deps: the official socket.io-client used by the JavaScript protocol tests
js-deps:
	@if [ -f api/realtime/testdata/jsclient/package.json ]; then cd api/realtime/testdata/jsclient && npm ci --no-audit --no-fund --loglevel=error; fi

vet:
	$(GO) vet ./...

## bench: the benchmarks whose figures docs/benchmarks.md reports
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## faults: the full fault-injection suite (docs/reliability.md): 20 kill -9, SIGTERM during a 40 s model call, database restart and 10 s stop, listener and realtime kills; needs root and pg_createcluster
faults:
	$(GO) test -count=1 -v -timeout 45m -run TestFaults ./faults -faults.full

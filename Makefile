# The two commands a newcomer needs: `make run` and `make test` (README.md).
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test test-short build vet bench js-deps docker-smoke test-testcontainers fly-deploy

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

## docker-smoke: build the image and run the compose stack on a Docker engine (started if none runs), end to end through 127.0.0.1:28080 (not part of `make test`)
docker-smoke: js-deps
	deploy/smoke.sh

TC_PKGS ?= ./db/...
## test-testcontainers: the database tests (TC_PKGS) against PostgreSQL started by testcontainers on Docker, not the local server (docs/deployment.md)
test-testcontainers:
	deploy/testcontainers.sh $(GO) test -race -count=1 $(TC_PKGS)

## fly-deploy: fly deploy with VERSION from this checkout
fly-deploy:
	fly deploy --build-arg VERSION=$(VERSION)

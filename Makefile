# The two commands a newcomer needs: `make run` and `make test` (README.md).
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test test-short build vet bench js-deps docs swagger-ui faults docker-smoke test-testcontainers fly-deploy

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

## docs: rewrite docs/openapi.json and docs/asyncapi.json from the code (a test fails while they are stale)
docs:
	$(GO) generate ./api

## swagger-ui: refresh the docs page's Swagger UI (api/docsui) from npm; set SWAGGER_UI_VERSION
SWAGGER_UI_VERSION ?= 5.35.0
swagger-ui:
	tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null && tar xzf swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz && \
	cp package/swagger-ui-bundle.js package/swagger-ui-bundle.js.LICENSE.txt package/swagger-ui.css package/favicon-32x32.png package/LICENSE package/NOTICE $(CURDIR)/api/docsui/ && \
	rm -rf $$tmp && sed -i 's/^swagger-ui-dist [0-9.]*/swagger-ui-dist $(SWAGGER_UI_VERSION)/' $(CURDIR)/api/docsui/VERSION

## faults: the full fault-injection suite (docs/reliability.md): 20 kill -9, SIGTERM during a 40 s model call, database restart and 10 s stop, listener and realtime kills; needs root and pg_createcluster
faults:
	$(GO) test -count=1 -v -timeout 45m -run TestFaults ./faults -faults.full

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

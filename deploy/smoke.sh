#!/bin/sh
# make docker-smoke: the compose stack, built and run on a real Docker engine,
# checked end to end through its published port (README.md "Deployment").
#
#  1. a Docker engine: the running one, else dockerd started here (and stopped
#     at the end);
#  2. base images: present ones are used; missing ones are pulled where a
#     registry answers, else built locally as stand-ins (deploy/standins.sh);
#     likewise PyPI, else a stand-in openai-agents wheel (deploy/standin/);
#  3. docker-compose build (timed), up, wait for the health check;
#  4. deploy/smoke/smoke_test.go through http://127.0.0.1:$SMOKE_PORT: a project,
#     a test case passed in the sandbox (whose isolation line the worker logged
#     is printed), a change vibecoded against a fake Responses API and
#     committed, code_changed received by socket.io-client, /riverui/;
#  5. docker-compose down -v.
# Everything listens on this machine only: the API on 127.0.0.1:$SMOKE_PORT,
# the fake and the package index on the engine's bridge address.
set -eu
cd "$(dirname "$0")/.."
SMOKE_PORT=${SMOKE_PORT:-28080}
FAKE_PORT=${SMOKE_FAKE_PORT:-28002}
PYINDEX_PORT=${SMOKE_PYINDEX_PORT:-28001}
PROJECT=vibegrapher-smoke
say() { echo "docker-smoke: $*" >&2; }

if command -v docker-compose >/dev/null 2>&1; then
	compose() { docker-compose -p "$PROJECT" "$@"; }
elif docker compose version >/dev/null 2>&1; then
	compose() { docker compose -p "$PROJECT" "$@"; }
else
	say "neither docker-compose nor the compose plugin is installed"; exit 2
fi

engine=$(deploy/engine.sh)
pyindex_pid=
cleanup() {
	status=$?
	if [ -n "${up:-}" ]; then
		if [ $status -ne 0 ]; then compose logs --tail=80 vibegrapher >&2 || true; fi
		say "docker-compose down -v"
		compose down -v --remove-orphans >/dev/null 2>&1 || true
	fi
	[ -z "$pyindex_pid" ] || kill "$pyindex_pid" 2>/dev/null || true
	if [ "$engine" = started ] && [ -z "${SMOKE_KEEP_ENGINE:-}" ]; then deploy/engine.sh stop; fi
	exit $status
}
trap cleanup EXIT INT TERM

reachable() { curl -sS -m 5 -o /dev/null "$1" 2>/dev/null; }
# This host's address on the engine's default bridge: where the build (the
# package index) and the stack's containers (the fake) reach this host.
bridge=$(docker network inspect bridge -f '{{range .IPAM.Config}}{{.Gateway}}{{end}}')
if [ -z "$bridge" ]; then
	bridge=$(ip -4 -o addr show "$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}')" | awk '{sub("/.*", "", $4); print $4; exit}')
fi

# Base images.
export POSTGRES_IMAGE=${POSTGRES_IMAGE:-postgres:16-alpine}
missing=
for img in golang:1.26-bookworm debian:bookworm-slim "$POSTGRES_IMAGE"; do
	docker image inspect "$img" >/dev/null 2>&1 || missing="$missing $img"
done
if [ -n "$missing" ]; then
	# Pull only when asked: the script sends nothing off this machine unless
	# SMOKE_PULL=1 says a registry is reachable.
	if [ -n "${SMOKE_PULL:-}" ]; then
		for img in $missing; do say "pulling $img"; docker pull -q "$img" >/dev/null; done
	else
		say "base images missing and SMOKE_PULL unset: using local STAND-INS for$missing"
		deploy/standins.sh
		case " $missing " in *" $POSTGRES_IMAGE "*) POSTGRES_IMAGE=vibegrapher-standin/postgres:15 ;; esac
	fi
fi
for img in debian:bookworm-slim golang:1.26-bookworm "$POSTGRES_IMAGE"; do
	kind=$(docker image inspect -f '{{index .Config.Labels "org.vibegrapher.standin"}}' "$img" 2>/dev/null || true)
	[ -z "$kind" ] || say "base image $img is a local STAND-IN ($kind), built by deploy/standins.sh"
done

# Python packages of the sandbox.
if [ -z "${PIP_INDEX_URL:-}" ] && [ -z "${SMOKE_PYPI:-}" ]; then
	say "PIP_INDEX_URL and SMOKE_PYPI unset: building with the STAND-IN openai-agents wheel (deploy/standin/agents) served on $bridge:$PYINDEX_PORT"
	deploy/standin/pyindex.sh "$bridge:$PYINDEX_PORT" &
	pyindex_pid=$!
	export PIP_INDEX_URL="http://$bridge:$PYINDEX_PORT/simple/" PIP_TRUSTED_HOST="$bridge"
	i=0; until reachable "$PIP_INDEX_URL"; do i=$((i + 1)); [ $i -lt 50 ] || { say "package index did not start"; exit 1; }; sleep 0.2; done
fi

export VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
export VIBEGRAPHER_IMAGE=vibegrapher:smoke VIBEGRAPHER_PORT=$SMOKE_PORT VIBEGRAPHER_BIND=127.0.0.1
export API_TOKEN=smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export RIVER_UI_PASSWORD=river-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
export OPENAI_API_KEY=sk-smoke OPENAI_BASE_URL="http://$bridge:$FAKE_PORT/v1"

say "building the image (VERSION=$VERSION)"
t0=$(date +%s)
compose build -q vibegrapher >&2
say "built $VIBEGRAPHER_IMAGE in $(( $(date +%s) - t0 )) s; size $(docker image inspect -f '{{.Size}}' "$VIBEGRAPHER_IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

up=1
compose up -d >&2
say "waiting for the health check"
cid=$(compose ps -q vibegrapher)
i=0
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$cid")" = healthy ]; do
	i=$((i + 1))
	if [ $i -gt 90 ] || [ "$(docker inspect -f '{{.State.Status}}' "$cid")" != running ]; then
		say "vibegrapher did not become healthy"; exit 1
	fi
	sleep 1
done
say "healthy: $(curl -fsS "http://127.0.0.1:$SMOKE_PORT/readyz")"
line=$(docker logs "$cid" 2>&1 | grep -m1 '"msg":"sandbox: ' || true)
say "worker's sandbox line: $line"
case "$line" in
*'"msg":"sandbox: isolated'*) ;;
*) say "the sandbox is not isolated in the container"; exit 1 ;;
esac

SMOKE_URL="http://127.0.0.1:$SMOKE_PORT" SMOKE_API_TOKEN=$API_TOKEN SMOKE_RIVER_UI_PASSWORD=$RIVER_UI_PASSWORD \
SMOKE_FAKE_ADDR="$bridge:$FAKE_PORT" SMOKE_JSCLIENT="$PWD/api/realtime/testdata/jsclient/client.js" \
	go test -tags dockersmoke -count=1 -v -run '^TestDockerSmoke$' ./deploy/smoke
say "PASS"

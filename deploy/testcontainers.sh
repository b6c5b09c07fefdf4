#!/bin/sh
# make test-testcontainers: runs "$@" (the database tests) with dbtest's
# testcontainers path and not the PostgreSQL on 127.0.0.1:5432, which is left
# running. Starts a Docker engine if none runs (and stops it after); where no
# registry is reachable the postgres image is the local stand-in
# (deploy/standins.sh). Settings (docs/deployment.md):
#   TEST_DATABASE=testcontainers   skip TEST_DATABASE_URL and the loopback server
#   TEST_POSTGRES_IMAGE            the image testcontainers' postgres module runs
#   TESTCONTAINERS_RYUK_DISABLED   true: the reaper image cannot be pulled here,
#                                  so this script removes the containers itself
#   TESTCONTAINERS_HOST_OVERRIDE   where the engine publishes ports, when
#                                  testcontainers guesses wrong (it takes a
#                                  host with /.dockerenv for a container):
#                                  127.0.0.1 for a local engine (the default here)
set -eu
cd "$(dirname "$0")/.."
say() { echo "test-testcontainers: $*" >&2; }
engine=$(deploy/engine.sh)
cleanup() {
	status=$?
	ids=$(docker ps -aq --filter label=org.testcontainers=true 2>/dev/null || true)
	if [ -n "$ids" ]; then
		say "removing $(echo "$ids" | wc -l) testcontainers container(s)"
		docker rm -fv $ids >/dev/null
	fi
	if [ "$engine" = started ]; then deploy/engine.sh stop; fi
	exit $status
}
trap cleanup EXIT INT TERM

if [ -z "${TEST_POSTGRES_IMAGE:-}" ]; then
	TEST_POSTGRES_IMAGE=postgres:16-alpine
	# Pull only when asked (TC_PULL=1): nothing leaves this machine otherwise.
	if ! docker image inspect "$TEST_POSTGRES_IMAGE" >/dev/null 2>&1 && [ -z "${TC_PULL:-}" ]; then
		TEST_POSTGRES_IMAGE=vibegrapher-standin/postgres:15
		docker image inspect "$TEST_POSTGRES_IMAGE" >/dev/null 2>&1 || deploy/standins.sh
		say "$TEST_POSTGRES_IMAGE missing and TC_PULL unset: testcontainers runs the local STAND-IN $TEST_POSTGRES_IMAGE"
	fi
fi
export TEST_DATABASE=testcontainers TEST_POSTGRES_IMAGE
export TESTCONTAINERS_RYUK_DISABLED=${TESTCONTAINERS_RYUK_DISABLED:-true}
# testcontainers takes a machine with /.dockerenv (as this one, whose image was
# built by Docker) for a container and dials the bridge gateway, where nothing
# is published. With the engine on this machine (a unix socket) its ports are
# on this machine's loopback.
case "${DOCKER_HOST:-unix://}" in
unix://*) [ -n "${TESTCONTAINERS_HOST_OVERRIDE:-}" ] || export TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 ;;
esac
unset TEST_DATABASE_URL
say "TEST_DATABASE=$TEST_DATABASE TEST_POSTGRES_IMAGE=$TEST_POSTGRES_IMAGE TESTCONTAINERS_RYUK_DISABLED=$TESTCONTAINERS_RYUK_DISABLED${TESTCONTAINERS_HOST_OVERRIDE:+ TESTCONTAINERS_HOST_OVERRIDE=$TESTCONTAINERS_HOST_OVERRIDE}"
"$@"

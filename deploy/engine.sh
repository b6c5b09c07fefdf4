#!/bin/sh
# Makes sure a Docker engine answers on the default socket. When none runs and
# dockerd is installed, starts one (and says so): published ports default to
# 127.0.0.1 (--ip), its log goes to $ENGINE_LOG. Prints "started" on stdout when
# it started one, so the caller can stop it (deploy/engine.sh stop).
set -eu
ENGINE_LOG=${ENGINE_LOG:-/tmp/vibegrapher-dockerd.log}
PIDFILE=${ENGINE_PIDFILE:-/tmp/vibegrapher-dockerd.pid}

case "${1:-start}" in
stop)
	if [ -f "$PIDFILE" ]; then
		pid=$(cat "$PIDFILE")
		echo "engine: stopping the dockerd this script started (pid $pid)" >&2
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
		rm -f "$PIDFILE"
	fi
	exit 0 ;;
esac

if docker info >/dev/null 2>&1; then
	exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
	echo "engine: no Docker engine answers and dockerd is not installed (Debian: apt-get install docker.io docker-compose)" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ]; then
	echo "engine: no Docker engine answers; starting dockerd needs root" >&2
	exit 2
fi
echo "engine: no Docker engine running: starting dockerd (published ports default to 127.0.0.1; log: $ENGINE_LOG)" >&2
# setsid: the engine outlives this shell but not a later `engine.sh stop`.
setsid dockerd --ip=127.0.0.1 >"$ENGINE_LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"
i=0
until docker info >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -gt 120 ]; then
		echo "engine: dockerd did not answer within 60 s; see $ENGINE_LOG" >&2
		exit 2
	fi
	sleep 0.5
done
echo "engine: dockerd $(docker version --format '{{.Server.Version}}') running" >&2
echo started

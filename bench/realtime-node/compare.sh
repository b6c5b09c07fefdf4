#!/bin/sh
# Runs issue 14's realtime loads against vibegrapher (`vibegrapher api
# --realtime` on a fresh database) and the official Node.js socket.io server,
# side by side in one run, three times, and prints each measurement and the
# medians. Extra arguments go to `vibegrapher-load realtime` (they override
# the defaults below), e.g.
#
#   bench/realtime-node/compare.sh -loads 10000x20@50ms -clients-per-process 2500
#   bench/realtime-node/compare.sh -servers before=/tmp/vibegrapher-old,ours,node
#
# Needs Go, Node.js 18+ and npm, and PostgreSQL on 127.0.0.1:5432 (or
# -database-url). Results: docs/realtime.md.
set -eu
cd "$(dirname "$0")/../.."
(cd bench/realtime-node && npm ci --no-audit --no-fund --loglevel=error)
mkdir -p bin
go build -o bin/vibegrapher ./cmd/vibegrapher
go build -o bin/vibegrapher-load ./cmd/vibegrapher-load
exec bin/vibegrapher-load realtime -servers ours,node -runs 3 -vibegrapher bin/vibegrapher "$@"

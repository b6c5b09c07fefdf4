#!/bin/sh
# Builds local stand-ins for the images the Dockerfile and the compose file
# pull, for machines that reach Debian's mirror but no image registry (and no
# PyPI). Each is built once and kept; an image already present (stand-in or
# the real one, pulled earlier) is left alone.
#
#   debian:bookworm-slim   debootstrap --variant=minbase from apt's Debian mirror
#   golang:1.26-bookworm   that Debian + gcc, the host's Go toolchain (/usr/local/go)
#                          and the modules go.sum needs, served from the host's
#                          module cache as a file:// GOPROXY
#   vibegrapher-standin/postgres:15
#                          Debian's postgresql package behind an entrypoint that
#                          honours the official image's POSTGRES_* variables
#   the agents wheel       see deploy/standin/pyindex.sh
set -eu
cd "$(dirname "$0")/.."
MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
GOROOT_HOST=$(go env GOROOT)
HOST_MODCACHE=$(go env GOMODCACHE)
GOVERSION=$(go env GOVERSION)
WORK=${STANDIN_WORK:-/var/tmp/vibegrapher-standins}
mkdir -p "$WORK"

have() { docker image inspect "$1" >/dev/null 2>&1; }
say() { echo "standins: $*" >&2; }

# debian:bookworm-slim
if ! have debian:bookworm-slim; then
	say "building STAND-IN debian:bookworm-slim with debootstrap from $MIRROR (no registry reachable)"
	rootfs="$WORK/bookworm"
	rm -rf "$rootfs"
	debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
		{ tail -n 20 "$WORK/debootstrap.log" >&2; exit 1; }
	# What the real slim image does: no docs or caches, the mirror apt used here.
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
		"$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
	printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" >"$rootfs/etc/apt/sources.list"
	tar -C "$rootfs" -c . | docker import \
		-c 'CMD ["bash"]' -c 'LABEL org.vibegrapher.standin=debootstrap' - debian:bookworm-slim >/dev/null
	rm -rf "$rootfs"
else
	say "debian:bookworm-slim present ($(docker image inspect -f '{{index .Config.Labels "org.vibegrapher.standin"}}' debian:bookworm-slim | sed 's/^$/registry image/;s/^debootstrap$/stand-in built earlier/'))"
fi

# golang:1.26-bookworm
if ! have golang:1.26-bookworm; then
	say "building STAND-IN golang:1.26-bookworm from the host's $GOVERSION and module cache"
	ctx="$WORK/golang"
	rm -rf "$ctx"
	mkdir -p "$ctx/gomodcache"
	cp -a "$GOROOT_HOST" "$ctx/go"
	# A module cache holding exactly what `go mod download` needs (the whole
	# module graph), filled from the host's cache (modules it lacks, such as
	# Windows-only ones, from the host's GOPROXY); its cache/download directory
	# is a GOPROXY tree. go.sum checks every file either way.
	GOMODCACHE="$ctx/gomodcache" GOPROXY="file://$HOST_MODCACHE/cache/download|$(go env GOPROXY)" GOFLAGS=-mod=mod \
		go mod download
	mv "$ctx/gomodcache/cache/download" "$ctx/goproxy"
	chmod -R u+w "$ctx/gomodcache" && rm -rf "$ctx/gomodcache"
	cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates git \
 && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
COPY goproxy /goproxy
ENV PATH=/go/bin:/usr/local/go/bin:$PATH GOPATH=/go \
    GOPROXY=file:///goproxy GOSUMDB=off GOTOOLCHAIN=local
LABEL org.vibegrapher.standin=host-go
WORKDIR /go
DOCKERFILE
	docker build -q -t golang:1.26-bookworm "$ctx" >/dev/null
	rm -rf "$ctx"
else
	say "golang:1.26-bookworm present"
fi

# vibegrapher-standin/postgres:15
if ! have vibegrapher-standin/postgres:15; then
	say "building STAND-IN vibegrapher-standin/postgres:15 from Debian's postgresql package"
	docker build -q -t vibegrapher-standin/postgres:15 deploy/standin/postgres >/dev/null
else
	say "vibegrapher-standin/postgres:15 present"
fi

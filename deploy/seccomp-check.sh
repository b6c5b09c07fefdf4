#!/bin/sh
# Checks deploy/seccomp.json against the sandbox inside the image, with the
# container settings docker-compose.yml uses (uid 10001, no capabilities,
# no-new-privileges, no fresh /proc possible):
#   1. the sandbox's own tests (hostile ones included) pass under the profile;
#   2. without any one of the six added system calls the sandbox is not
#      isolated (so the rule is minimal).
# Usage: deploy/seccomp-check.sh [image]   (default vibegrapher:smoke)
set -eu
cd "$(dirname "$0")/.."
image=${1:-vibegrapher:smoke}
engine=$(deploy/engine.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"; [ "$engine" != started ] || deploy/engine.sh stop' EXIT
CGO_ENABLED=1 go test -c -o "$work/sandbox.test" ./sandbox
chmod 755 "$work" "$work/sandbox.test"
# As deployed: the binary outside /usr, under an init (tini in the image), so
# that its pid is not 1, which inside the sandbox is the run's own.
run() { # profile, test pattern
	docker run --rm --init --user 10001:10001 --cap-drop ALL --security-opt no-new-privileges:true \
		--security-opt "seccomp=$1" -e SANDBOX_PYTHON=/opt/sandbox-python/bin/python3 \
		-v "$work/sandbox.test:/opt/sandbox-test/sandbox.test:ro" --entrypoint /opt/sandbox-test/sandbox.test "$image" \
		-test.count=1 -test.v -test.run "$2" -test.skip "${3:-^$}" 2>&1
}
# Skipped: they read /proc (the fork bomb names its processes through
# /proc/self/comm; TestPrivileges reads /proc/self/status), which the sandbox
# has not in a container (docs/deployment.md). The same limits are checked by
# the probe, whose line TestFeatures prints.
skip='^(TestHostileForkBomb|TestPrivileges)$'
echo "seccomp-check: the sandbox's tests in $image under deploy/seccomp.json (skipping $skip)" >&2
out=$(run "$PWD/deploy/seccomp.json" . "$skip") || { echo "$out" | grep -a -E '^(--- FAIL|FAIL)|_test.go' >&2; exit 1; }
echo "$out" | grep -a -m1 -o 'sandbox_test.go:[0-9]*: features: .*' | sed 's/^[^ ]* //'
echo "$out" | grep -a -c '^--- PASS' | sed 's/$/ tests passed/'
for s in clone mount umount2 pivot_root sethostname mount_setattr; do
	python3 - "$s" deploy/seccomp.json >"$work/without-$s.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[2]))
p["syscalls"][-1]["names"].remove(sys.argv[1])
json.dump(p, sys.stdout)
PY
	if out=$(run "$work/without-$s.json" '^TestFeatures$'); then
		echo "seccomp-check: still isolated without $s: the rule is not minimal" >&2
		exit 1
	fi
	echo "without $s: $(echo "$out" | grep -m1 -o 'not isolated on this host: NOT isolated (missing: [^)]*)' || echo "$out" | tail -n 2)"
done

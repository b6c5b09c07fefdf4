#!/bin/sh
# Regenerates deploy/seccomp.json: Docker's default seccomp profile (the
# github.com/moby/profiles/seccomp Go module, fetched with `go mod download`)
# plus one rule allowing, without CAP_SYS_ADMIN, the six system calls the
# sandbox's launcher needs to build its namespaces and private root (found
# minimal by removing each in turn: without any one of them runs fail).
# Usage: deploy/seccomp-gen.sh [version]
set -eu
cd "$(dirname "$0")"
v=${1:-v0.3.0}
dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/moby/profiles/seccomp@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
python3 - "$dir/default.json" "$v" >seccomp.json <<'PY'
import json, sys
src, version = sys.argv[1:]
p = json.load(open(src))
p["syscalls"].append({
    "names": ["clone", "mount", "umount2", "pivot_root", "sethostname", "mount_setattr"],
    "action": "SCMP_ACT_ALLOW",
    "comment": "vibegrapher sandbox: new user/pid/net/mount/ipc/uts namespaces (clone), "
               "its private read-only root (mount, mount_setattr, pivot_root, umount2) and "
               "hostname (sethostname). Everything above is Docker's default profile, "
               "github.com/moby/profiles/seccomp " + version + ".",
})
json.dump(p, sys.stdout, indent="\t")
print()
PY
echo "wrote deploy/seccomp.json from moby/profiles/seccomp $v" >&2

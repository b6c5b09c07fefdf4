#!/bin/sh
# Builds the STAND-IN openai-agents wheel (the version
# deploy/sandbox-requirements.txt pins; package `agents`, see
# agents/agents/__init__.py) into a PEP 503 "simple" index and serves it on
# $1 (ADDR:PORT) until killed, for `docker build --build-arg PIP_INDEX_URL=…`
# where PyPI is unreachable. The build reaches it over the engine's bridge.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
addr=${1:?usage: pyindex.sh ADDR:PORT}
version=$(sed -n 's/^openai-agents==\([^ ;]*\).*/\1/p' "$here/../sandbox-requirements.txt")
root=${PYINDEX_ROOT:-/var/tmp/vibegrapher-pyindex}
rm -rf "$root" && mkdir -p "$root/simple/openai-agents"
python3 - "$here/agents" "$root/simple/openai-agents" "$version" <<'PY'
import base64, hashlib, os, sys, zipfile
src, out, version = sys.argv[1:]
dist = "openai_agents-" + version
files = {}
for dirpath, _, names in os.walk(src):
    for n in sorted(names):
        if n.endswith(".py"):
            p = os.path.join(dirpath, n)
            files[os.path.relpath(p, src)] = open(p, "rb").read()
files[dist + ".dist-info/METADATA"] = (
    "Metadata-Version: 2.1\nName: openai-agents\nVersion: %s\n"
    "Summary: STAND-IN for the OpenAI Agents SDK (no PyPI here)\n" % version).encode()
files[dist + ".dist-info/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: vibegrapher-standin\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
def h(b):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
record = "".join("%s,%s,%d\n" % (n, h(b), len(b)) for n, b in files.items()) + dist + ".dist-info/RECORD,,\n"
files[dist + ".dist-info/RECORD"] = record.encode()
whl = dist + "-py3-none-any.whl"
with zipfile.ZipFile(os.path.join(out, whl), "w") as z:
    for n, b in files.items():
        z.writestr(n, b)
digest = hashlib.sha256(open(os.path.join(out, whl), "rb").read()).hexdigest()
with open(os.path.join(out, "index.html"), "w") as f:
    f.write('<html><body><a href="%s#sha256=%s">%s</a></body></html>\n' % (whl, digest, whl))
PY
echo "pyindex: serving the STAND-IN openai-agents $version wheel at http://$addr/simple/" >&2
cd "$root"
exec python3 -m http.server --bind "${addr%:*}" "${addr##*:}" >/dev/null 2>&1

#!/usr/bin/env python3
"""One message's path through the service (and the load), from Go execution
traces (docs/benchmarks.md, twenty-third round).

It reads `go tool trace -d=parsed` of the service's trace (/debug/pprof/trace
while `vibegrapher-load pipeline` runs) and, optionally, of the load's
(VGLOAD_TRACE=FILE). Both traces are stamped with the machine's monotonic
clock, so their events fall in one timeline. It finds the POSTs of messages
(goroutines in api.(*Server).postMessage), and for the one chosen prints
every goroutine that blocked or was woken from 0.6 ms before it, for --span
ms: who woke whom, and where each blocked (network: a round trip to
PostgreSQL or the fake model; select, chan, sync: a hand-over inside the
process). S is the service, L the load.

    curl -s -o /tmp/svc.trace 'http://127.0.0.1:20083/debug/pprof/trace?seconds=3' &
    VGLOAD_TRACE=/tmp/load.trace vibegrapher-load pipeline -exec BIN -port 20083 -sessions 1 -messages 10 -runs 5
    python3 bench/tracewindow.py /tmp/svc.trace --load /tmp/load.trace --message 12 --span 14

With --syscalls it also prints system calls and their stacks' frames of this
project and River (what a round trip was for).
"""
import argparse
import re
import subprocess

EVENT = re.compile(r"M=(-?\d+) P=(-?\d+) G=(-?\d+) (\S+) Time=(\d+)(.*)")


def transitions(path):
    """The goroutine state transitions of a trace: (time, G, detail, frames)."""
    out = subprocess.run(["go", "tool", "trace", "-d=parsed", path], capture_output=True, text=True, check=True).stdout
    events, cur, frames = [], None, []
    for line in out.splitlines():
        if line.startswith("M="):
            if cur:
                events.append(cur + (frames,))
            frames = []
            m = EVENT.match(line)
            cur = (int(m.group(5)), int(m.group(3)), m.group(6).strip()) if m and m.group(4) == "StateTransition" else None
        elif line.startswith("\t") and not line.startswith("\t\t"):
            frames.append(line.strip().split(" @ ")[0])
    if cur:
        events.append(cur + (frames,))
    return events


def short(frames, n=3):
    out = []
    for f in frames:
        if f.startswith(("runtime.", "internal/", "syscall.", "net.", "sync.")):
            continue
        f = re.sub(r"github.com/[^/]+/[^/]+/", "", f)
        f = re.sub(r"\[.*?\]", "", f)
        out.append(f[-50:])
        if len(out) >= n:
            break
    return " < ".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("service", help="the service's execution trace")
    ap.add_argument("--load", help="the load's execution trace (VGLOAD_TRACE)")
    ap.add_argument("--message", type=int, default=0, help="which POST of the trace, from 0")
    ap.add_argument("--span", type=float, default=15, help="ms to print from the POST")
    ap.add_argument("--syscalls", action="store_true", help="also print system calls")
    args = ap.parse_args()

    svc = transitions(args.service)
    posts, last = [], None
    for t, _, _, frames in svc:
        if any("postMessage" in f for f in frames):
            if last is None or t - last > 4e6:
                posts.append(t)
            last = t
    print(f"{len(posts)} POSTs in the service's trace")
    if args.message >= len(posts):
        return
    t0 = posts[args.message] - 0.6e6
    t1 = t0 + args.span * 1e6
    rows = [("S", e) for e in svc if t0 <= e[0] <= t1]
    if args.load:
        rows += [("L", e) for e in transitions(args.load) if t0 <= e[0] <= t1]
    rows.sort(key=lambda r: r[1][0])
    for who, (t, g, detail, frames) in rows:
        st = re.search(r"(\w+)->(\w+)", detail)
        tr = st.group(0) if st else detail[:30]
        if "Runnable->Running" in tr or "Idle" in tr or ("Syscall" in tr and not args.syscalls):
            continue
        if "Syscall->" in tr:
            continue
        reason = re.search(r'Reason="([^"]*)"', detail)
        target = re.search(r"GoID=(\d+)", detail)
        where = short(frames)
        if args.syscalls and "->Syscall" in tr:
            where = " < ".join(re.sub(r"github.com/[^/]+/[^/]+/", "", f)[-45:] for f in frames
                               if "vibegrapher" in f or "riverqueue" in f)[:200] or where
        print(f"{(t - t0) / 1e3:8.0f} us {who} {'' if who == 'S' else '    '}G{g:>6} -> G{target.group(1) if target else '-':>6} "
              f"{tr[:18]:18s} {(reason.group(1) if reason else '')[:10]:10s} {where}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where an event's latency goes, per measurement of ours, from the traces of
one traced run (docs/realtime.md, "Where the paced tail comes from"):

  git apply bench/realtime-node/tail-trace.patch   # throwaway: per-event server trace
  go build -o /tmp/vg-trace ./cmd/vibegrapher && git apply -R bench/realtime-node/tail-trace.patch
  mkdir /tmp/tr && RT_TRACE_DIR=/tmp/tr go run ./cmd/vibegrapher-load realtime \\
      -servers ours -vibegrapher /tmp/vg-trace -loads 100x200@10ms -runs 3
  bench/realtime-node/tail.py /tmp/tr

Stages, from the payload's sent_at_us (before the INSERT): a INSERT+COMMIT
(until COMMIT returned in PostgreSQL), b the NOTIFY reaching our listener,
c the hub starting its outbox read, d the read, e the fan-out up to its last
write (all sockets), f the last write to the client's receive. Printed as
means over all receives and over the receives at or above the p99."""
import collections, glob, os, sys

d = sys.argv[1]


def stamp(path):  # file names carry the time in µs (Go) or ms (Node)
    t = int(os.path.basename(path).split("-")[1].split(".")[0])
    return t if t > 10**14 else t * 1000


servers = sorted(glob.glob(d + "/server-*.txt"), key=stamp)
others = {k: sorted(glob.glob(d + "/%s-*.txt" % k), key=stamp) for k in ("client", "commits", "gc")}
for n, sf in enumerate(servers):
    lo, hi = stamp(sf), stamp(servers[n + 1]) if n + 1 < len(servers) else 1 << 62
    mine = {k: [f for f in v if lo <= stamp(f) < hi] for k, v in others.items()}
    recv = []
    for cf in mine["client"]:
        for line in open(cf):
            p = line.split()
            if len(p) == 4:
                seq, _, sent, at = map(int, p)
                recv.append((at - sent, seq, sent, at))
    commit = {}
    for mf in mine["commits"]:
        for line in open(mf):
            if line.strip():
                a, b = map(int, line.split())
                commit[a] = b
    gcs = []
    for gf in mine["gc"]:
        for line in open(gf):
            p = line.split()
            if len(p) >= 3:
                gcs.append((int(p[1]), int(p[2])))
    notify, read0, fan0, fan1 = {}, {}, {}, {}
    cur = batch = None
    for line in open(sf):
        t, kind, a, b, _ = line.split()
        t, a, b = int(t), int(a), int(b)
        if kind == "notify":
            notify.setdefault(a, t)
        elif kind == "read0":
            cur = t
        elif kind == "read1" and a:
            for s in range(a, b + 1):
                read0[s] = cur
        elif kind == "fan0":
            batch = (a, b, t)
        elif kind == "fan1":
            for s in range(batch[0], batch[1] + 1):
                fan0[s], fan1[s] = batch[2], t
    recv = [r for r in recv if r[1] in fan1]  # with -servers ours only; others' receives are skipped
    if not recv:
        continue
    lat = sorted(r[0] for r in recv)
    p99 = lat[int(len(lat) * 0.99)]

    def stages(rows):
        m = collections.Counter()
        for _, s, sent, at in rows:
            c = commit.get(s, sent)
            nt = notify.get(s, read0[s])
            m["a commit"] += c - sent
            m["b NOTIFY"] += nt - c
            m["c wake"] += read0[s] - nt
            m["d read"] += fan0[s] - read0[s]
            m["e fan-out"] += fan1[s] - fan0[s]
            m["f client"] += at - fan1[s]
        return "  ".join("%s %.1f" % (k, v / len(rows) / 1000) for k, v in sorted(m.items()))

    tail = [r for r in recv if r[0] >= p99]
    gc_hit = sum(1 for _, _, sent, at in tail if any(g < at and g + dur > sent for g, dur in gcs))
    print("%s: %d receives, p50 %.1f ms, p99 %.1f ms" % (os.path.basename(sf), len(recv), lat[len(lat) // 2] / 1000, p99 / 1000))
    print("  all, mean ms:  " + stages(recv))
    print("  p99 tail, ms:  " + stages(tail))
    print("  p99 tail receives during a client GC: %d of %d; tail events (seq: receives): %s" % (
        gc_hit, len(tail), sorted(collections.Counter(r[1] for r in tail).items())))

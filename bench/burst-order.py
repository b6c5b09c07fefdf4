#!/usr/bin/env python3
"""What the order of a burst's work can do for `vibegrapher-load pipeline`'s
500 x 2 @ 2 s row, on a machine of given speed (docs/benchmarks.md, fifteenth
round).

A model, not a measurement. N sessions each post M messages one after another
(the next when the last is answered, as the load does); a message is three
pieces of CPU work for the whole machine (service, PostgreSQL and the load
together): its POST (P), its job's start (S), which begins the model call, and
its end (E) once the model answered L ms later. The machine does CPU-ms of work
at `cores` per ms, one piece after another. Which waiting piece goes next is
the policy: each class has an offset, and the piece with the smallest arrival
time + offset goes first (offsets 0/0/0 is arrival order; the service's pool
slots today, db/slots.go, are S 0, E 0, P 1000: a job's transactions before the
requests that came less than a second before them).

    python3 bench/burst-order.py                 # today's policy and others, at 5.8 / 4.5 / 3.6 ms a message
    python3 bench/burst-order.py --cost 4.5 --front   # every offset pair: the best p99 for each p50
"""
import argparse
import heapq
import itertools


def run(cost, share, offsets, sessions=500, messages=2, latency=2000.0, cores=2.0):
    """Latencies (ms) of every message, and when the last one was answered."""
    work = {k: cost * share[k] for k in "PSE"}
    order = itertools.count()
    arriving = []  # (time, order, kind, session, message, posted)
    for s in range(sessions):
        heapq.heappush(arriving, (0.0, next(order), "P", s, 0, 0.0))
    waiting = []  # (arrival + offset, order, piece)
    now, latencies = 0.0, []
    while arriving or waiting:
        if not waiting:
            now = max(now, arriving[0][0])
        while arriving and arriving[0][0] <= now:
            piece = heapq.heappop(arriving)
            heapq.heappush(waiting, (piece[0] + offsets[piece[2]], piece[1], piece))
        _, _, (_, _, kind, s, m, posted) = heapq.heappop(waiting)
        now += work[kind] / cores
        if kind == "P":
            heapq.heappush(arriving, (now, next(order), "S", s, m, posted))
        elif kind == "S":
            heapq.heappush(arriving, (now + latency, next(order), "E", s, m, posted))
        else:
            latencies.append(now - posted)
            if m + 1 < messages:
                heapq.heappush(arriving, (now, next(order), "P", s, m + 1, now))
    return sorted(latencies), now


def summary(latencies, last):
    n = len(latencies)
    at = lambda p: latencies[min(n - 1, n * p // 100)]
    return "p50 %5.0f  p90 %5.0f  p99 %5.0f  mean %5.0f  last answer %5.0f ms" % (
        at(50), at(90), at(99), sum(latencies) / n, last)


POLICIES = [
    ("arrival order", dict(S=0, P=0, E=0)),
    ("jobs first, requests within 1 s (today)", dict(S=0, P=1000, E=0)),
    ("starts first, then requests and ends in arrival order", dict(S=0, P=1000, E=1000)),
    ("ends last, within 1 s", dict(S=0, P=0, E=1000)),
    ("ends last, within 0.6 s", dict(S=0, P=0, E=600)),
]


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--cost", type=float, action="append",
                   help="CPU-ms of the whole machine per message (default 5.8, 4.5, 3.6)")
    a.add_argument("--share", default="0.3,0.25,0.45", help="shares of P,S,E in a message's cost")
    a.add_argument("--front", action="store_true", help="search offsets: the best p99 for each p50")
    args = a.parse_args()
    share = dict(zip("PSE", map(float, args.share.split(","))))
    for cost in args.cost or [5.8, 4.5, 3.6]:
        print("%.1f ms of CPU per message" % cost)
        if not args.front:
            for name, offsets in POLICIES:
                print("  %-56s %s" % (name, summary(*run(cost, share, offsets))))
            continue
        results = []
        for p, e in itertools.product(range(0, 1001, 100), range(0, 2001, 100)):
            lat, last = run(cost, share, dict(S=0, P=p, E=e))
            n = len(lat)
            results.append((lat[n // 2], lat[n * 99 // 100], p, e, summary(lat, last)))
        best = None
        for p50, p99, p, e, text in sorted(results):
            if best is None or p99 < best:
                best = p99
                print("  offsets S 0, P %4d, E %4d: %s" % (p, e, text))


if __name__ == "__main__":
    main()

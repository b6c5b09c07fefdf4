#!/usr/bin/env python3
"""Where a burst's time goes, by message, from `vibegrapher-load pipeline`'s
timeline (VGLOAD_TIMELINE=FILE, the last run's; docs/benchmarks.md, eighteenth
round).

For each message of the sessions (the first, the second, ...) it prints the
p10/p50/p90/p99 of: POST -> 202; POST -> job_status "running" on the client;
POST -> the fake model's receipt of the message's first VibeCoder call
(model_ms; "call", the start phase); the model's answer (call + latency) -> vibecode_response on the
client ("answer", the end phase); and the latency (POST -> vibecode_response).
Each phase's quantiles are its own: they need not add up.

    VGLOAD_TIMELINE=/tmp/tl.csv go run ./cmd/vibegrapher-load pipeline -exec /tmp/vg -sessions 500 -messages 2 -latency 2s
    python3 bench/timeline.py /tmp/tl.csv --latency 2000    # the run's -latency, in ms
"""
import argparse
import csv
from collections import defaultdict


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("timeline", help="the CSV that VGLOAD_TIMELINE wrote")
    ap.add_argument("--latency", type=float, required=True, help="the run's -latency in ms (0 for an instant model)")
    args = ap.parse_args()

    phases = defaultdict(lambda: defaultdict(list))
    with open(args.timeline, newline="") as f:
        for row in csv.DictReader(f):
            at = {k: float(v) for k, v in row.items() if k.endswith("_ms") and v != ""}
            p = phases[int(row["message"])]
            posted = at["posted_ms"]
            p["202"].append(at["accepted_ms"] - posted)
            if "running_ms" in at:
                p["running"].append(at["running_ms"] - posted)
            if "model_ms" in at:
                p["call"].append(at["model_ms"] - posted)
                p["answer"].append(at["answered_ms"] - at["model_ms"] - args.latency)
            p["latency"].append(at["answered_ms"] - posted)

    quantiles = (0.1, 0.5, 0.9, 0.99)
    print("ms, p10 / p50 / p90 / p99 of each phase, by the message's place in its session")
    for message in sorted(phases):
        p = phases[message]
        print(f"message {message + 1} ({len(p['latency'])} answered)")
        for name in ("202", "running", "call", "answer", "latency"):
            if p[name]:
                print(f"  {name:8}" + " / ".join(f"{quantile(p[name], q):6.0f}" for q in quantiles))


if __name__ == "__main__":
    main()

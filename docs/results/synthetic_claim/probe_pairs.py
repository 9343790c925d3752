#!/usr/bin/env python3
"""Prerequisite (c)'s direction half, split by distinctive pair (a diagnostic, not a check).

The direction gap that `timebalance summarize` reports (distinctive minus invariant teacher's
linear probe on the direction classes) averages two time-reversal pairs; this prints it for
each pair, and the fine-tuned teachers' accuracy on the same pair, paired per run (mean and
standard error over the runs given). Reads each run's `metrics.json` only (standard library).

    python3 docs/results/synthetic_claim/probe_pairs.py \
        docs/results/synthetic_claim/runs/iteration-2.1/s{0,1,2,3,4,5,6,7}/synthetic_claim
"""

import json
import math
import statistics
import sys
from pathlib import Path


def pairs(classes):
    """Index pairs of the distinctive classes: the generator lists each forward class right
    before its time reversal (`src/data/synth/classes.rs`)."""
    ids = [i for i, c in enumerate(classes) if c["family"] == "distinctive"]
    return [(ids[k], ids[k + 1]) for k in range(0, len(ids) - 1, 2)]


def mean_se(values):
    if len(values) < 2:
        return f"{values[0]:.2f}"
    se = statistics.stdev(values) / math.sqrt(len(values))
    return f"{statistics.mean(values):.2f} ± {se:.2f}"


def main(runs):
    rows = {}
    for run in runs:
        metrics = json.loads((Path(run) / "metrics.json").read_text())
        classes = metrics["classes"]
        probe = metrics["probe"]
        for a, b in pairs(classes):
            name = f"{classes[a]['name']} / {classes[b]['name']}"

            def probe_gap():
                inv = probe["invariant"]["test_per_class"]
                dis = probe["distinctive"]["test_per_class"]
                return (dis[a] + dis[b] - inv[a] - inv[b]) / 2

            def tuned_gap():
                acc = [classes[k]["accuracy"] for k in (a, b)]
                return sum(x["teacher_distinctive"] - x["teacher_invariant"] for x in acc) / 2

            rows.setdefault((name, "linear probe"), []).append(probe_gap())
            rows.setdefault((name, "fine-tuned teacher"), []).append(tuned_gap())
    print(f"distinctive − invariant teacher, points of top-1, paired over {len(runs)} run(s)\n")
    print("| pair | model | difference | per run |")
    print("|---|---|---|---|")
    for (name, model), values in rows.items():
        per_run = " / ".join(f"{v:.1f}" for v in values)
        print(f"| {name} | {model} | {mean_se(values)} | {per_run} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: probe_pairs.py RUN_DIR [RUN_DIR ...] (directories holding metrics.json)")
    main(sys.argv[1:])

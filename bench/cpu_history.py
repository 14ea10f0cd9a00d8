#!/usr/bin/env python3
"""cpu_history.py: one row per CPU `make bench` run that measured the step ÷ GEMM ratio
paired (`cuvae bench --paired`), from the raw JSON lines in bench/results/: the table of
issue 15's goals over time that the README's "CPU speed" section shows. Numbers are
copied from the lines (best repeat per row, as report.py picks it), never edited.

Columns: the run's date (UTC) and build, the CPU, the examples model's samples/s, the step ÷
GEMM ratio of each config measured paired (median of the pairs; examples with its
quartiles), and cuvae ÷ PyTorch on examples b128 at 2 and 1 torch threads. A run whose
PyTorch peer ran with glibc's malloc defaults (before the bench set MALLOC_*_THRESHOLD_, so
its freed tensors went back to the kernel and came back as page faults) is marked †.
After the table, how many runs met each goal.

usage: cpu_history.py [RESULTS.jsonl | DIRECTORY]...   (default: bench/results)
"""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import best_runs, load  # noqa: E402  (the same "best repeat" as RESULTS.md)

GOAL_STEP_OVER_GEMM = 1.25   # issue 15: a step at most 1.25x its GEMMs alone
GOAL_OVER_PYTORCH = 2.5      # ... and at least 2.5x PyTorch's CPU step on examples b128
CONFIGS = ["examples_b128", "lecture_b128", "large_b1024", "conv_b128", "vq_b128"]


def paths_of(args):
    paths = []
    for a in args or [os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")]:
        paths += sorted(glob.glob(os.path.join(a, "*.jsonl"))) if os.path.isdir(a) else [a]
    return paths


def run_row(path):
    """The run's figures, or None when it is not a CPU run with paired lines."""
    meta, lines = load(path)
    if meta.get("backend") != "cpu":
        return None
    paired = {d["config"]: d for d in lines if d.get("mode") == "paired" and "skipped" not in d}
    if not paired:
        return None
    best = {}
    for d in best_runs(lines):
        if "skipped" not in d:
            best[(d["config"], d.get("framework", "cuvae"), d.get("mode"), d.get("threads"))] = d
    trains = [d for k, d in best.items() if k[:3] == ("cpu_examples_b128", "cuvae", "train")]
    ours = max(trains, key=lambda d: d["samples_per_s"]) if trains else None
    over_torch = {}
    for threads in (2, 1):
        peer = best.get(("cpu_examples_b128", "pytorch", "eager", threads))
        over_torch[threads] = ours["samples_per_s"] / peer["samples_per_s"] if ours and peer else None
    return {
        "date": str(meta.get("date", "?"))[:16].replace("T", " "),
        "git": str(meta.get("git", "?"))[:7],
        "cpu": meta.get("cpu_model", "?"),
        "samples_per_s": ours["samples_per_s"] if ours else None,
        "paired": {c: paired.get("cpu_" + c) for c in CONFIGS},
        "over_torch": over_torch,
        "torch_malloc_defaults": "MALLOC_MMAP_THRESHOLD_" not in meta.get("threads_note", ""),
    }


def fmt(x, spec, suffix=""):
    return format(x, spec) + suffix if x is not None else "—"


def main():
    rows = [r for r in map(run_row, paths_of(sys.argv[1:])) if r]
    print("| run (UTC) | build | CPU | examples samples/s | examples step ÷ GEMM | lecture | large | conv | VQ"
          " | examples ÷ PyTorch, 2 / 1 torch threads |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["paired"]
        ex = p["examples_b128"]
        ex_cell = (f"{ex['step_over_gemm']:.2f}× [{ex['step_over_gemm_q1']:.2f}–{ex['step_over_gemm_q3']:.2f}]"
                   if ex else "—")
        others = [fmt(p[c]["step_over_gemm"] if p[c] else None, ".2f", "×") for c in CONFIGS[1:]]
        torch_cell = " / ".join(fmt(r["over_torch"][t], ".2f", "×") for t in (2, 1))
        if r["torch_malloc_defaults"]:
            torch_cell += " †"
        print(f"| {r['date']} | {r['git']} | {r['cpu']} | {fmt(r['samples_per_s'], ',.0f')} | {ex_cell} | "
              + " | ".join(others) + f" | {torch_cell} |")
    print()
    print("† PyTorch with glibc's malloc defaults (before the bench set MALLOC_MMAP_THRESHOLD_ and "
          "MALLOC_TRIM_THRESHOLD_).")
    for c in CONFIGS:
        measured = [r["paired"][c]["step_over_gemm"] for r in rows if r["paired"][c]]
        met = sum(x <= GOAL_STEP_OVER_GEMM for x in measured)
        print(f"- {c}: step ≤ {GOAL_STEP_OVER_GEMM}× its GEMMs (median of the pairs, unrounded) "
              f"in {met} of {len(measured)} runs")
    fair = [r for r in rows if not r["torch_malloc_defaults"] and None not in r["over_torch"].values()]
    for t in (2, 1):
        met = sum(r["over_torch"][t] >= GOAL_OVER_PYTORCH for r in fair)
        print(f"- examples: ≥ {GOAL_OVER_PYTORCH}× PyTorch at {t} torch thread{'s' if t > 1 else ''} "
              f"in {met} of {len(fair)} runs with its malloc settings")
    both = sum(min(r["over_torch"].values()) >= GOAL_OVER_PYTORCH for r in fair)
    print(f"- examples: ≥ {GOAL_OVER_PYTORCH}× PyTorch at both settings in {both} of {len(fair)} such runs")


if __name__ == "__main__":
    main()

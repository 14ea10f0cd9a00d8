#!/usr/bin/env python3
"""report.py: turns one bench run's raw JSON lines (bench/results/*.jsonl,
written by scripts/bench.sh) into the markdown section appended to
bench/RESULTS.md. The first line of the file is {"kind": "meta", ...} (device,
date, versions, command); every other line is one `cuvae bench` or
bench/torch_vae.py result. Numbers are copied from the lines, never edited.

When a run was repeated, the table shows the best repeat (highest samples/s)
of each (config, framework, mode, precision, threads); all repeats stay in
the .jsonl.

usage: report.py RESULTS.jsonl CONFIG.json...
"""
import json
import sys


def load(path):
    meta, lines = None, []
    with open(path) as f:
        for text in f:
            text = text.strip()
            if not text:
                continue
            d = json.loads(text)
            if d.get("kind") == "meta":
                meta = d
            else:
                lines.append(d)
    return meta or {}, lines


def describe_layers(layers):
    """conv32s2-conv64s2-bn ... for a layer list; the widths for the shorthand."""
    parts = []
    for spec in layers:
        if isinstance(spec, (int, float)):
            parts.append(str(spec))
            continue
        kind = spec if isinstance(spec, str) else next(iter(spec))
        value = None if isinstance(spec, str) else spec[kind]
        if kind == "conv2d":
            parts.append(f"conv{value}s{spec.get('stride', 1)}")
        elif kind == "conv_transpose2d":
            parts.append(f"convT{value}s{spec.get('stride', 1)}")
        elif kind == "linear":
            parts.append(str(value))
        elif kind == "batch_norm":
            parts.append("bn")
    return parts


def describe_model(cfg):
    m = cfg["model"]
    enc = "-".join([str(m["input_dim"])] + describe_layers(m["encoder"]))
    dec = "-".join(describe_layers(m.get("decoder", [])) + [str(m["input_dim"])])
    return f"{enc}-L{m['latent_dim']}-{dec}"


def mib(n):
    return "n/a" if n is None else f"{n / 2**20:,.1f} MiB"


def run_label(d, nproc):
    if d.get("framework") == "cuvae":
        if d["mode"] == "train":
            return "cuvae train (CUDA graph)" if d.get("cuda_graph") else "cuvae train"
        if d["mode"] == "train-eager":
            return "cuvae train, eager (no CUDA graph)"
        if d["mode"] in ("paired", "paired-eager"):
            return "cuvae train and GEMM-only, alternating (--paired)"
        if d.get("backend") == "cuda":
            return "cuvae GEMM-only (cuBLAS alone)"
        if d.get("conv_calls_per_step"):   # the CPU's oneDNN convolutions replay with the GEMMs
            return "cuvae GEMM-only (OpenBLAS and oneDNN's convolutions alone)"
        return "cuvae GEMM-only (OpenBLAS alone)"
    label = f"PyTorch {d['mode']}"
    threads = d.get("threads")
    if d.get("backend") == "cpu" and threads is not None:
        label += f", {threads} torch thread{'s' if threads != 1 else ''}"
        if d.get("omp_wait_policy"):
            label += f" (OMP_WAIT_POLICY={d['omp_wait_policy']})"
    return label


def key_of(d):
    return (d.get("config"), d.get("framework", "cuvae"), d.get("mode"), d.get("precision"),
            d.get("threads") if d.get("backend") == "cpu" else None)


def best_runs(lines):
    """Best repeat per key; skipped lines kept only when nothing ran for that key."""
    best, order = {}, []
    for d in lines:
        k = key_of(d)
        if k not in best:
            order.append(k)
            best[k] = d
            continue
        old = best[k]
        if "skipped" in old or ("skipped" not in d and d["samples_per_s"] > old["samples_per_s"]):
            best[k] = d
    return [best[k] for k in order]


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "—"


def paired_ratio(d):
    """A --paired line's step ÷ GEMM: the median of its pairs, with the quartiles."""
    return (f"{d['step_over_gemm']:.2f}× [{d['step_over_gemm_q1']:.2f}–{d['step_over_gemm_q3']:.2f}], "
            f"{d['pairs']} pairs")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    meta, lines = load(sys.argv[1])
    configs = {}
    order = []
    for path in sys.argv[2:]:
        with open(path) as f:
            cfg = json.load(f)
        configs[cfg["name"]] = cfg
        order.append(cfg["name"])
    runs = best_runs(lines)
    nproc = meta.get("nproc")
    out = []
    w = out.append

    w(f"## {meta.get('device', '?')} — {meta.get('date', '?')}")
    w("")
    w(f"- command: `{meta.get('command', '?')}`")
    w(f"- host CPU: {meta.get('cpu_model', '?')}, {nproc} cores (nproc)")
    w(f"- threads: {meta.get('threads_note', '?')}")
    for key, label in (("driver", "NVIDIA driver"), ("cuda", "CUDA"), ("torch", "PyTorch"),
                       ("openblas", "OpenBLAS"), ("git", "cuvae commit")):
        if meta.get(key):
            w(f"- {label}: {meta[key]}")
    w(f"- timing: {meta.get('timing_note', '')}")
    steals = sorted(d["steal_percent"] for d in lines if "steal_percent" in d)
    if steals:
        w(f"- host steal time while each run ran (/proc/stat: the share of this machine's CPU time its "
          f"host gave to others): median {steals[len(steals) // 2]:.1f} %, max {steals[-1]:.1f} % over "
          f"{len(steals)} runs (`steal_percent` in the raw lines); above a few per cent the timings are noisy")
    w(f"- raw lines: `{meta.get('jsonl', sys.argv[1])}`")
    w("")

    # summary: one row per config, cuvae against every PyTorch run at fp32
    # (a PyTorch run skipped everywhere, e.g. torch.compile on torch 1.13, only shows below)
    torch_cols = []
    for d in runs:
        if d.get("framework") == "pytorch" and d.get("precision") == "fp32" and "skipped" not in d:
            label = run_label(d, nproc)
            if label not in torch_cols:
                torch_cols.append(label)
    w("Summary at matched precision (fp32; TF32 off on CUDA). Ratio = cuvae samples/s ÷ PyTorch "
      "samples/s (> 1: cuvae faster). GEMM share = GEMM-only ms ÷ cuvae train ms; step ÷ GEMM = "
      "cuvae train ms ÷ GEMM-only ms of the best repeats, the time a step spends beyond its GEMMs "
      "(on the CPU with oneDNN, a conv layer's GEMMs are its whole oneDNN convolutions, layout "
      "reorders included; CPU goal: ≤ 1.25×); paired = the same ratio from one process alternating blocks of training "
      "steps and blocks of their GEMMs (`cuvae bench --paired`): the median over the pairs "
      "[quartiles], which a host slowing the machine for a while moves far less than the separate runs.")
    w("")
    header = ["config", "model", "batch", "cuvae samples/s"]
    for c in torch_cols:
        header += [f"{c} samples/s", "ratio"]
    header += ["GEMM share", "step ÷ GEMM", "step ÷ GEMM, paired", "cuvae peak mem", "PyTorch peak mem"]
    w("| " + " | ".join(header) + " |")
    w("|" + "---|" * len(header))
    for name in order:
        mine = [d for d in runs if d.get("config") == name]
        train = next((d for d in mine if d.get("framework") == "cuvae" and d["mode"] == "train"
                      and d.get("precision", "fp32") == "fp32" and "skipped" not in d), None)
        gemm = next((d for d in mine if d.get("framework") == "cuvae" and d["mode"] == "gemm-only"
                     and "skipped" not in d), None)
        paired = next((d for d in mine if d.get("framework") == "cuvae" and d["mode"] == "paired"
                       and "skipped" not in d), None)
        if not train:
            continue
        row = [name, describe_model(configs[name]), str(train["batch"]), f"{train['samples_per_s']:,.0f}"]
        torch_peak = None
        for c in torch_cols:
            d = next((d for d in mine if d.get("framework") == "pytorch" and d.get("precision") == "fp32"
                      and run_label(d, nproc) == c), None)
            if d is None:
                row += ["—", "—"]
            elif "skipped" in d:
                row += ["skipped", "—"]
            else:
                row += [f"{d['samples_per_s']:,.0f}", ratio(train["samples_per_s"], d["samples_per_s"])]
                if d.get("peak_memory_bytes") is not None and torch_peak is None:
                    torch_peak = d["peak_memory_bytes"]
        share = f"{100.0 * gemm['ms_per_step'] / train['ms_per_step']:.0f} %" if gemm else "—"
        over = f"{train['ms_per_step'] / gemm['ms_per_step']:.2f}×" if gemm else "—"
        row += [share, over, paired_ratio(paired) if paired else "—", mib(train.get("peak_memory_bytes")),
                mib(torch_peak)]
        w("| " + " | ".join(row) + " |")
    w("")

    # details: every run of every config
    for name in order:
        mine = [d for d in runs if d.get("config") == name]
        if not mine:
            continue
        # each run is compared with cuvae's training step at the same precision
        trains = {d.get("precision", "fp32"): d for d in mine
                  if d.get("framework") == "cuvae" and d["mode"] == "train" and "skipped" not in d}
        train = trains.get("fp32")
        cfg = configs[name]
        w(f"### {name}: {describe_model(cfg)}, batch {cfg['train']['batch_size']}")
        w("")
        w("| run | precision | threads | BLAS kernels | samples/s | ms/step | GEMM TFLOP/s | peak memory | cuvae (same precision) ÷ run |")
        w("|---|---|---|---|---|---|---|---|---|")
        for d in mine:
            label = run_label(d, nproc)
            threads = "—" if d.get("threads") is None else str(d["threads"])
            if "skipped" in d:
                w(f"| {label} | {d.get('precision', '')} | — | — | skipped: {d['skipped']} | | | | |")
                continue
            same = trains.get(d.get("precision", "fp32"))
            r = ratio(same["samples_per_s"], d["samples_per_s"]) if same and d is not same else "—"
            if d.get("mode") == "gemm-only":
                r = f"GEMM share {100.0 * d['ms_per_step'] / train['ms_per_step']:.0f} %" if train else "—"
            elif d.get("mode", "").startswith("paired"):
                r = f"step ÷ GEMM {paired_ratio(d)} (GEMMs {d['gemm_ms_per_step']:.3f} ms/step)"
            core = d.get("blas_core") or ("cuBLAS" if d.get("framework") == "cuvae" and d.get("backend") == "cuda" else "—")
            w(f"| {label} | {d.get('precision', '')} | {threads} | {core} | {d['samples_per_s']:,.0f} | "
              f"{d['ms_per_step']:.3f} | {d['tflops']:.3f} | {mib(d.get('peak_memory_bytes'))} | {r} |")
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# bench.sh: the throughput suite behind `make bench`. Detects the device the
# cuvae binary uses (CUDA when usable, else the CPU), runs the matching suite
# (bench/configs/*.json on a GPU, bench/configs/cpu/*.json on the CPU): for each
# config `cuvae bench` (training steps, --gemm-only and, once, --paired; on CUDA also without
# graph capture and with train.precision tf32) and bench/torch_vae.py
# (eager and, where torch.compile exists, compile and max-autotune; fp32 / tf32
# / bf16 on CUDA, fp32 on the CPU). Raw JSON lines go to
# bench/results/<date>-<device>.jsonl and a new section is APPENDED to
# bench/RESULTS.md (earlier sections are never touched).
#
# Threads: nproc for both. cuvae runs one OpenMP pool of OMP_NUM_THREADS = nproc
# (OpenBLAS single-threaded inside it); PyTorch (which loads the same Debian
# OpenBLAS) gets OPENBLAS_NUM_THREADS = nproc and torch.set_num_threads(nproc), and
# on the CPU a second run with 1 intra-op thread (OpenBLAS still nproc), because its
# OpenMP pool and OpenBLAS's threads contend on a small machine.
#
# Environment knobs (all optional):
#   CUVAE=build/cuvae          the binary
#   PYTHON=...                 a python3 that imports torch (default: first of python3, /usr/bin/python3)
#   BENCH_REPEATS=N            repeats of every run, best one tabulated (default 3 on CPU, 1 on GPU)
#   BENCH_TORCH_MODES=eager,compile,max-autotune
#   BENCH_TORCH_PRECISIONS=fp32,tf32,bf16   (CUDA; the CPU runs fp32 only)
#   BENCH_CONFIGS="a.json b.json"            override the suite
#   BENCH_RESULTS_MD=bench/RESULTS.md BENCH_RESULTS_DIR=bench/results
# Relative paths given (CUVAE with a '/', BENCH_CONFIGS, BENCH_RESULTS_*) are the caller's; the
# defaults are the repository's.
set -euo pipefail
caller=$PWD
from_caller() { case "$1" in /*) echo "$1" ;; *) echo "$caller/$1" ;; esac; }
case "${CUVAE:-}" in */*) CUVAE=$(from_caller "$CUVAE") ;; esac
[ -n "${BENCH_RESULTS_MD:-}" ] && BENCH_RESULTS_MD=$(from_caller "$BENCH_RESULTS_MD")
[ -n "${BENCH_RESULTS_DIR:-}" ] && BENCH_RESULTS_DIR=$(from_caller "$BENCH_RESULTS_DIR")
if [ -n "${BENCH_CONFIGS:-}" ]; then
    configs_given=""
    for c in $BENCH_CONFIGS; do configs_given="$configs_given $(from_caller "$c")"; done
    BENCH_CONFIGS=${configs_given# }
fi
cd "$(dirname "$0")/.."

CUVAE=${CUVAE:-build/cuvae}
RESULTS_MD=${BENCH_RESULTS_MD:-bench/RESULTS.md}
RESULTS_DIR=${BENCH_RESULTS_DIR:-bench/results}
NPROC=$(nproc)
export OPENBLAS_NUM_THREADS=$NPROC OMP_NUM_THREADS=$NPROC

if [ ! -x "$CUVAE" ]; then
    echo "bench: $CUVAE not found (run make first)" >&2
    exit 2
fi

# ---- which device does cuvae use? ---------------------------------------------
probe=$("$CUVAE" bench bench/configs/examples_b128.json --steps 1 --warmup 0 2>/dev/null) || {
    echo "bench: $CUVAE bench failed on bench/configs/examples_b128.json" >&2
    "$CUVAE" bench bench/configs/examples_b128.json --steps 1 --warmup 0 >/dev/null || true
    exit 2
}
backend=$(echo "$probe" | sed -E 's/.*"backend": "([a-z]+)".*/\1/')
device=$(echo "$probe" | sed -E 's/.*"device": "([^"]*)".*/\1/')

if [ "$backend" = cuda ]; then
    suite=$(ls bench/configs/*.json)
    repeats=${BENCH_REPEATS:-1}
    torch_device=cuda
    torch_env=""
    precisions=${BENCH_TORCH_PRECISIONS:-fp32,tf32,bf16}
else
    suite=$(ls bench/configs/cpu/*.json)
    repeats=${BENCH_REPEATS:-3}
    torch_device=cpu
    precisions=fp32
    # PyTorch's OpenMP threads spin-wait between ops and starve OpenBLAS's own
    # threads on a small machine (10x slower at b128 here): let them sleep.
    # PyTorch loads the same OpenBLAS: give it the kernel family cuvae chose
    # (cuvae sets OPENBLAS_CORETYPE itself when OpenBLAS does not recognise the CPU)
    # glibc hands each freed tensor over 128 KiB-32 MiB back to the kernel and the next step's
    # allocation takes page faults on it again (cuvae allocates once): on a VM where page faults
    # are dear (2026-12-02, an AMD EPYC VM) PyTorch's examples step took 30 ms with them, 8.4
    # without. Raising glibc's thresholds keeps the memory in the process, what the
    # jemalloc / tcmalloc of PyTorch's CPU tuning guide do.
    probe_core=$(echo "$probe" | sed -nE 's/.*"blas_core": "([^"]*)".*/\1/p')
    torch_malloc="MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=1073741824"
    torch_env="OMP_WAIT_POLICY=PASSIVE $torch_malloc${probe_core:+ OPENBLAS_CORETYPE=$probe_core}"
    device="CPU: $(lscpu | sed -nE 's/^Model name: +//p' | head -1), $NPROC cores"
fi
suite=${BENCH_CONFIGS:-$suite}
# every config read before anything is timed or written (a misspelt path ended in a traceback and a
# results file holding only its header)
for c in $suite; do
    if [ ! -f "$c" ] || [ ! -r "$c" ]; then
        echo "bench: BENCH_CONFIGS: $c: not a readable file (the configs are bench/configs/*.json, bench/configs/cpu/*.json)" >&2
        exit 2
    fi
done
modes=${BENCH_TORCH_MODES:-eager,compile,max-autotune}

# steps per config: each run a few seconds here, enough to be steady
steps_for() {
    local name
    name=$(basename "$1" .json)
    case "$backend:$name" in
        cuda:lecture_b128|cuda:examples_b128) echo "500 50" ;;
        cuda:large_b8192) echo "40 5" ;;
        cuda:latent4096_b8192) echo "25 5" ;;
        cpu:large_b1024) echo "6 2" ;;
        cpu:*) echo "100 10" ;;
        *) echo "20 3" ;;
    esac
}

# ---- python with torch --------------------------------------------------------
# (on a GPU, a torch that sees it: Debian's python3-torch is a CPU build)
torch_check='import torch'
[ "$torch_device" = cuda ] && torch_check='import torch; assert torch.cuda.is_available()'
if [ -z "${PYTHON:-}" ]; then
    for p in python3 /usr/bin/python3; do
        if command -v "$p" >/dev/null 2>&1 && "$p" -c "$torch_check" >/dev/null 2>&1; then
            PYTHON=$p
            break
        fi
    done
fi
torch_version=""
if [ -n "${PYTHON:-}" ] && ! "$PYTHON" -c 'import torch' >/dev/null 2>&1; then
    echo "bench: error: PYTHON=$PYTHON cannot import torch (install python3-torch, or give a python3 that has it)" >&2
    exit 2
fi
if [ -n "${PYTHON:-}" ] && ! "$PYTHON" -c "$torch_check" >/dev/null 2>&1; then
    echo "bench: error: PYTHON=$PYTHON has a torch that cannot use the GPU cuvae runs on (a CPU build?): give a python3 whose torch.cuda.is_available()" >&2
    exit 2
fi
if [ -n "${PYTHON:-}" ]; then
    torch_version=$("$PYTHON" -c 'import torch; print(torch.__version__ + (" (CUDA " + torch.version.cuda + ")" if torch.version.cuda else " (CPU build)"))')
else
    echo "bench: no python3 with torch found: PyTorch columns will be missing" >&2
fi

# ---- metadata -----------------------------------------------------------------
date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
slug=$(echo "$device" | tr 'A-Z' 'a-z' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//' | cut -c1-60)
mkdir -p "$RESULTS_DIR"
jsonl="$RESULTS_DIR/$(date -u +%Y%m%dT%H%M%SZ)-$slug.jsonl"
driver=""; cuda=""
if [ "$backend" = cuda ]; then
    driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 || true)
    cuda_driver=$(nvidia-smi 2>/dev/null | sed -nE 's/.*CUDA Version: ([0-9.]+).*/\1/p' | head -1 || true)
    nvcc_version=$(nvcc --version 2>/dev/null | sed -nE 's/.*release ([0-9.]+).*/\1/p' | head -1 || true)
    cuda="driver supports ${cuda_driver:-?}; toolkit (nvcc) ${nvcc_version:-not found}"
fi
openblas=$(dpkg-query -W -f='${Package} ${Version}' 'libopenblas0-pthread' 2>/dev/null || true)
git_rev=$(git rev-parse --short HEAD 2>/dev/null || true)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then git_rev="$git_rev (+ uncommitted changes)"; fi
if [ -n "${MAKELEVEL:-}" ]; then command_line="make bench  # scripts/bench.sh"; else command_line="bash scripts/bench.sh"; fi
for v in OPENBLAS_CORETYPE BENCH_REPEATS BENCH_TORCH_MODES BENCH_TORCH_PRECISIONS BENCH_CONFIGS CUVAE PYTHON; do
    if [ -n "${!v:-}" ]; then command_line="$v=\"${!v}\" $command_line"; fi
done
if [ "$backend" = cpu ]; then
    blas_core=$(echo "$probe" | sed -nE 's/.*"blas_core": "([^"]*)".*/\1/p')
    threads_note="OPENBLAS_NUM_THREADS=$NPROC for both (same system OpenBLAS, kernel family ${blas_core:-?}${OPENBLAS_CORETYPE:+, forced by OPENBLAS_CORETYPE}, the same for both); cuvae: one OpenMP pool of $NPROC threads (OMP_NUM_THREADS; OpenBLAS single-threaded inside it, GEMMs split by cuvae); PyTorch: torch.set_num_threads($NPROC) with OMP_WAIT_POLICY=PASSIVE, and a second run with torch.set_num_threads(1) (OpenBLAS still $NPROC); PyTorch with glibc's $torch_malloc (freed tensors stay in the process, as jemalloc / tcmalloc keep them; cuvae allocates once)"
else
    threads_note="GPU runs (host OPENBLAS_NUM_THREADS=$NPROC, unused by the timed loop)"
fi
timing_note="steady state after warmup, data resident on the device, synchronized only around the timed loop; best of $repeats repeat(s) per row; --paired once per config with 4x the steps, synchronized around each block; steps per config: $(for c in $suite; do echo -n "$(basename "$c" .json) $(steps_for "$c" | cut -d' ' -f1), "; done | sed 's/, $//')"

PY=${PYTHON:-python3}
"$PY" - "$jsonl" "$device" "$backend" "$date_utc" "$(lscpu | sed -nE 's/^Model name: +//p' | head -1)" \
    "$NPROC" "$threads_note" "$driver" "$cuda" "$torch_version" "$openblas" "$git_rev" \
    "$command_line" "$timing_note" <<'EOF'
import json, sys
keys = ["jsonl", "device", "backend", "date", "cpu_model", "nproc", "threads_note", "driver",
        "cuda", "torch", "openblas", "git", "command", "timing_note"]
meta = {"kind": "meta", **dict(zip(keys, sys.argv[1:]))}
meta["nproc"] = int(meta["nproc"])
with open(meta["jsonl"], "w") as f:
    f.write(json.dumps(meta) + "\n")
EOF

echo "bench: $device ($backend); $(echo $suite | wc -w) configs, $repeats repeat(s); raw lines -> $jsonl" >&2

# ---- the suite ----------------------------------------------------------------
# The host's steal and all CPU time so far (/proc/stat, in ticks): "steal total", or nothing.
cpu_ticks() {
    awk '/^cpu /{t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t}' /proc/stat 2>/dev/null   # (guest time is in user already)
}

# run_json CONFIG FRAMEWORK MODE COMMAND...: appends the command's JSON lines, each with
# "steal_percent": the share of the machine's CPU time its host took (steal) while the
# command ran (a busy host makes the timings noisy); a failing run is recorded as a
# "skipped" line carrying its last stderr line.
run_json() {
    local config=$1 framework=$2 mode=$3
    shift 3
    local out err_file rc=0 why name before after
    err_file=$(mktemp)
    before=$(cpu_ticks)
    out=$("$@" 2>"$err_file") || rc=$?
    after=$(cpu_ticks)
    local annotated
    if [ -n "$out" ] && [ -n "$before" ] && [ -n "$after" ] && annotated=$(echo "$out" | "$PY" -c '
import json, sys
s0, t0 = map(int, sys.argv[1].split()); s1, t1 = map(int, sys.argv[2].split())
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        d = json.loads(line)
    except ValueError:
        print(line)
        continue
    if isinstance(d, dict) and t1 > t0:
        d["steal_percent"] = round(100.0 * (s1 - s0) / (t1 - t0), 1)
    print(json.dumps(d))' "$before" "$after") && [ -n "$annotated" ]; then
        out=$annotated   # (if that failed, the line goes in without the steal)
    fi
    if [ -n "$out" ]; then echo "$out" | tee -a "$jsonl"; fi
    if [ "$rc" -ne 0 ]; then
        why="exit status $rc: $(grep -v '^[[:space:]]*$' "$err_file" | tail -1 | cut -c1-300)"
        echo "bench: $framework $mode on $config failed: $why" >&2
        name=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["name"])' "$config")
        "$PY" -c 'import json, sys; print(json.dumps({"config": sys.argv[1], "framework": sys.argv[2], "mode": sys.argv[3], "precision": "fp32", "skipped": sys.argv[4]}))' \
            "$name" "$framework" "$mode" "$why" | tee -a "$jsonl"
    fi
    rm -f "$err_file"
}

for config in $suite; do
    read -r steps warmup <<<"$(steps_for "$config")"
    echo "bench: $config ($steps steps after $warmup warmup)" >&2
    for r in $(seq 1 "$repeats"); do
        run_json "$config" cuvae train "$CUVAE" bench "$config" --steps "$steps" --warmup "$warmup"
        # the GEMMs of the same step alone (recorded from a real step, any model): the step's limit
        run_json "$config" cuvae gemm-only "$CUVAE" bench "$config" --steps "$steps" --warmup "$warmup" --gemm-only
        if [ "$backend" = cuda ]; then
            # the same step without graph capture (what the graph saves), and on TF32 tensor cores
            run_json "$config" cuvae train-eager "$CUVAE" bench "$config" --steps "$steps" --warmup "$warmup" \
                --set train.cuda_graph=false
            run_json "$config" cuvae train-tf32 "$CUVAE" bench "$config" --steps "$steps" --warmup "$warmup" \
                --set train.precision=tf32
        fi
        if [ -n "${PYTHON:-}" ]; then
            torch_modes=$modes
            # compiled modes are timed in the first repeat only (compiling is slow)
            if [ "$r" -gt 1 ]; then torch_modes=eager; fi
            run_json "$config" pytorch "$torch_modes" env $torch_env "$PYTHON" bench/torch_vae.py "$config" \
                --steps "$steps" --warmup "$warmup" --device "$torch_device" --modes "$torch_modes" \
                --precisions "$precisions" --threads "$NPROC"
            if [ "$backend" = cpu ] && [ "$NPROC" -gt 1 ]; then
                run_json "$config" pytorch eager env $torch_env "$PYTHON" bench/torch_vae.py "$config" \
                    --steps "$steps" --warmup "$warmup" --device cpu --modes eager --precisions fp32 --threads 1
            fi
        fi
    done
    # the step and its GEMMs alternating in one process: their ratio, steady on a host that
    # slows this machine for a while (which moves the separate runs above apart)
    run_json "$config" cuvae paired "$CUVAE" bench "$config" --steps "$((4 * steps))" --warmup "$warmup" --paired
done

# ---- append the section -------------------------------------------------------
if [ ! -f "$RESULTS_MD" ]; then
    cat >"$RESULTS_MD" <<'EOF'
# cuvae throughput benchmarks

Written by `make bench` (scripts/bench.sh): each run APPENDS one section (device, date,
versions, the command) with tables generated by bench/report.py from the raw JSON lines kept
in bench/results/. Sections are never edited by hand. Columns: samples/s of steady-state
training steps (gather, forward, backward, loss, Adam) with the data resident on the device;
GEMM TFLOP/s counts the forward + backward GEMMs (2·B·in·out each; the first layer has no
input gradient); "cuvae GEMM-only" runs the same GEMMs back to back with the BLAS alone, the
practical limit of a step, and GEMM share = its time ÷ cuvae's step time.
EOF
fi
{
    echo
    "$PY" bench/report.py "$jsonl" $suite
} >>"$RESULTS_MD"
echo "bench: appended a section to $RESULTS_MD" >&2

#!/usr/bin/env bash
# gpu_run.sh: runs the test suite, the benchmarks and the long IWAE run ON the
# GPU machine, from the repository root, with binaries built elsewhere and
# bundled by scripts/gpu_bundle.sh.
#
# Usage, through the device tool (after `make && bash scripts/gpu_bundle.sh` here):
#   command: bash scripts/gpu_run.sh [STAGE...]     (default: tests sanitizer)
#   carry:   [".device", "build/cuvae", "data/mnist"]   (about 20 + 5 + 10 MB of the 64 MiB; the test
#            binaries travel in .device/tests.tar.xz, unpacked into build/tests here)
# Stages, run in the order given (one device call is at most 10 minutes):
#   tests      tests/run_tests.sh (CPU<->CUDA parity, graph == eager, ...)
#   sanitizer  compute-sanitizer on build/tests/test_cuda_parity
#   bench      scripts/bench.sh: the GPU suite, cuvae vs PyTorch; bench/RESULTS.md and the
#              raw JSON lines are copied to $OUT/bench/ (commit them here afterwards)
#   dist       data parallel without MPI: one rank via the NCCL id file == one process (bit-exact),
#              two ranks on the one GPU (NCCL_MULTI_RANK_GPU_ENABLE) against it; $OUT/dist/
#   iwae       configs/iwae_vae1.json (Burda et al.'s 3,280 epochs), trained for at most
#              $IWAE_SECONDS (default 540) into runs/iwae, resumed when runs/iwae holds a
#              resume file; runs/iwae comes back as $OUT/iwae. Next call: copy it back to
#              runs/iwae here and carry [".device", "build/cuvae", "data/mnist", "runs/iwae"].
# It unpacks .device/lib.tar.xz, puts those libraries and the CUDA 13 libraries
# it finds there (the toolkit next to nvcc, /usr/local/cuda*, or PyTorch's
# nvidia-* wheels) on LD_LIBRARY_PATH, prints nvidia-smi, runs
# tests/run_tests.sh, then compute-sanitizer (memcheck and racecheck; override
# with CUVAE_SANITIZERS="memcheck") on build/tests/test_cuda_parity when
# available. With $OUT set (the device tool sets it) every log is also written
# there and comes back. Exits non-zero when a test or a sanitizer check fails.
# CUVAE_REQUIRE_CUDA=1 is exported (override with 0): there an unusable CUDA
# backend fails test_cuda_parity instead of skipping it, so a broken GPU setup
# cannot pass as "all skipped".
set -uo pipefail
self=$(readlink -f "$0")
cd "$(dirname "$0")/.."

# the stages, checked before anything runs (a misspelt one after minutes of device time is lost time)
known_stages=" tests sanitizer bench iwae dist "
for stage in "$@"; do
    case "$stage" in
        -h|--help) sed -n '2,/^set -uo/p' "$self" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    esac
    known=false
    case "$stage" in
        ""|*" "*) ;;   # (no stage: none, or two words in one argument)
        *) case "$known_stages" in *" $stage "*) known=true ;; esac ;;
    esac
    if ! $known; then
        echo "gpu_run: unknown stage '$stage' (tests, sanitizer, bench, iwae, dist; --help): nothing run" >&2
        exit 2
    fi
done

LOG_DIR=${OUT:-}
log_path() { if [ -n "$LOG_DIR" ]; then echo "$LOG_DIR/$1"; else echo /dev/null; fi; }
[ -n "$LOG_DIR" ] && mkdir -p "$LOG_DIR"

# ---- libraries ---------------------------------------------------------------
LIB_DIR=$PWD/.device/lib
if [ -f .device/lib.tar.xz ]; then
    rm -rf "$LIB_DIR"
    if ! tar -C .device -xJf .device/lib.tar.xz 2>/dev/null; then
        # no xz binary: Python's tarfile reads it too
        python3 -c 'import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            .device/lib.tar.xz .device || { echo "gpu_run: cannot unpack .device/lib.tar.xz" >&2; exit 1; }
    fi
elif [ ! -d "$LIB_DIR" ]; then
    echo "gpu_run: warning: no .device bundle (run scripts/gpu_bundle.sh here and carry .device)" >&2
fi
# the test binaries gpu_bundle.sh packed (debug sections stripped) into build/tests
if [ -f .device/tests.tar.xz ]; then
    mkdir -p build
    if ! tar -C build -xJf .device/tests.tar.xz 2>/dev/null; then
        python3 -c 'import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
            .device/tests.tar.xz build || { echo "gpu_run: cannot unpack .device/tests.tar.xz" >&2; exit 1; }
    fi
fi
lib_path=$LIB_DIR

# CUDA 13 libraries: every directory holding one of them, toolkit first
candidates=()
if command -v nvcc >/dev/null 2>&1; then
    cuda_root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
    candidates+=("$cuda_root/lib64" "$cuda_root/targets/x86_64-linux/lib")
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda-*/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    candidates+=("$d")
done
if command -v python3 >/dev/null 2>&1; then
    site=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
    for s in $site; do
        for d in "$s"/nvidia/*/lib "$s"/nvidia/cu13/lib; do candidates+=("$d"); done
    done
fi
for d in "${candidates[@]}"; do
    [ -d "$d" ] || continue
    for lib in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudart.so.13 libnccl.so.2; do
        if [ -e "$d/$lib" ]; then
            case ":$lib_path:" in *":$d:"*) ;; *) lib_path=$lib_path:$d ;; esac
            break
        fi
    done
done
export LD_LIBRARY_PATH=$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export CUVAE_REQUIRE_CUDA=${CUVAE_REQUIRE_CUDA:-1}

{
    echo "== gpu_run: $(date -u +%FT%TZ) on $(hostname)"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    nvidia-smi || echo "gpu_run: nvidia-smi failed"
    command -v nvcc >/dev/null 2>&1 && nvcc --version | tail -2
    missing=$(ldd build/tests/test_cuda_parity 2>/dev/null | grep "not found" || true)
    if [ -n "$missing" ]; then echo "gpu_run: missing libraries:"; echo "$missing"; fi
} 2>&1 | tee "$(log_path environment.log)"

status=0
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(tests sanitizer)

run_tests() {
    echo "== tests/run_tests.sh"
    bash tests/run_tests.sh 2>&1 | tee "$(log_path tests.log)"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
}

run_bench() {
    echo "== scripts/bench.sh"
    bash scripts/bench.sh 2>&1 | tee "$(log_path bench.log)"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    if [ -n "$LOG_DIR" ]; then
        mkdir -p "$LOG_DIR/bench/results"
        cp bench/RESULTS.md "$LOG_DIR/bench/"
        cp bench/results/*.jsonl "$LOG_DIR/bench/results/" 2>/dev/null || true
    fi
}

run_iwae() {
    local resume=()
    [ -f runs/iwae/resume.safetensors ] && resume=(--resume)
    echo "== iwae: build/cuvae train configs/iwae_vae1.json --out runs/iwae ${resume[*]} (at most ${IWAE_SECONDS:-540} s)"
    local start=$SECONDS rc
    # on the GPU or not at all (device auto would train on the CPU where CUDA is broken, unsaid)
    timeout --signal=TERM "${IWAE_SECONDS:-540}" build/cuvae train configs/iwae_vae1.json --out runs/iwae \
        --set device=cuda "${resume[@]}" 2>&1 | grep --line-buffered -v '%  ' | tee -a "$(log_path iwae.log)"
    rc=${PIPESTATUS[0]}
    echo "iwae: exit $rc after $((SECONDS - start)) s (124: time limit; resume next call)" | tee -a "$(log_path iwae.log)"
    [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || status=1
    if [ -n "$LOG_DIR" ]; then
        mkdir -p "$LOG_DIR/iwae"
        cp runs/iwae/* "$LOG_DIR/iwae/" 2>/dev/null || true
    fi
}

# Data parallel on the real GPU, without MPI (the GPU machine has no Open MPI): one
# rank through the NCCL id file must equal one process bit for bit; two ranks on the
# one GPU (NCCL_MULTI_RANK_GPU_ENABLE, NCCL >= 2.30) must give its loss curve and
# parameters within float tolerances. Logs and the comparison go to $OUT/dist/.
run_dist() {
    local d; d=$(mktemp -d)
    local dist_log="$d/dist.log"
    local small=(configs/examples_vae.json --set data.train_limit=6000 --set data.test_limit=1000 --set train.epochs=2
                 --set eval.iw_samples=0 --set train.epoch_images=false --set device=cuda)
    {
        echo "== dist: one process"
        build/cuvae train "${small[@]}" --out "$d/one" 2>&1 | grep -E "^epoch 2/2:|^cuvae: (eval|/)"
        echo "== dist: one rank without MPI (NCCL, the id through a file)"
        CUVAE_WORLD_SIZE=1 CUVAE_RANK=0 CUVAE_NCCL_ID_FILE="$d/id1" build/cuvae train "${small[@]}" --out "$d/r1" 2>&1 \
            | grep -E "NCCL|^epoch 2/2:|^cuvae: (eval|/)"
        if cmp -s "$d/one/model.safetensors" "$d/r1/model.safetensors"; then echo "dist: 1 rank == one process (bit-exact)"
        else echo "dist: FAIL 1 rank differs from one process"; fi
        echo "== dist: two ranks on the one GPU (NCCL_MULTI_RANK_GPU_ENABLE=1)"
        for r in 0 1; do
            NCCL_MULTI_RANK_GPU_ENABLE=1 CUVAE_DIST_TIMEOUT=120 CUVAE_WORLD_SIZE=2 CUVAE_RANK=$r CUVAE_LOCAL_RANK=$r \
                CUVAE_NCCL_ID_FILE="$d/id2" build/cuvae train "${small[@]}" --out "$d/r2" >"$d/rank$r.log" 2>&1 &
        done
        wait
        grep -hE "NCCL|^epoch 2/2:|^cuvae: " "$d/rank0.log" "$d/rank1.log" | head -12
        python3 - "$d/one" "$d/r2" <<'EOF'
import json, struct, sys
def params(path):
    b = open(path + '/model.safetensors', 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    return {k: struct.unpack('<%df' % ((v['data_offsets'][1] - v['data_offsets'][0]) // 4),
                             b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]])
            for k, v in h.items() if k != '__metadata__'}
try:
    a, b = [[json.loads(l) for l in open(p + '/log.jsonl')] for p in sys.argv[1:3]]
    loss = max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(a, b) for k in ('train_loss', 'test_loss'))
    pa, pb = params(sys.argv[1]), params(sys.argv[2])
    worst = max(max(abs(x - y) for x, y in zip(pa[k], pb[k])) for k in pa)
    ok = len(a) == len(b) and loss < 1e-4 and worst < 1e-3
    print('dist: %s 2 ranks vs one process: loss curve relative %.2e, parameters absolute %.2e'
          % ('ok' if ok else 'FAIL', loss, worst))
except Exception as e:
    print('dist: FAIL 2 ranks: no comparable run (%s)' % e)
EOF
    } 2>&1 | tee "$dist_log"
    grep -q "dist: FAIL" "$dist_log" && status=1
    if [ -n "$LOG_DIR" ]; then mkdir -p "$LOG_DIR/dist"; cp "$d"/*.log "$LOG_DIR/dist/" 2>/dev/null || true; fi
}

run_sanitizer() {
sanitizer=$(command -v compute-sanitizer || true)
if [ -z "$sanitizer" ]; then
    for d in "${candidates[@]}"; do
        for c in "$d/../bin/compute-sanitizer" "$d/../compute-sanitizer/compute-sanitizer"; do
            if [ -z "$sanitizer" ] && [ -x "$c" ]; then sanitizer=$c; fi
        done
    done
fi
if [ -n "$sanitizer" ] && [ -x build/tests/test_cuda_parity ]; then
    for tool in ${CUVAE_SANITIZERS:-memcheck racecheck}; do
        echo "== compute-sanitizer --tool $tool build/tests/test_cuda_parity"
        "$sanitizer" --tool "$tool" --error-exitcode 99 build/tests/test_cuda_parity 2>&1 \
            | tee "$(log_path "sanitizer_$tool.log")"
        rc=${PIPESTATUS[0]}
        if [ "$rc" -ne 0 ]; then echo "gpu_run: compute-sanitizer $tool: exit $rc"; status=1; fi
    done
else
    echo "gpu_run: compute-sanitizer not found (or no build/tests/test_cuda_parity): skipped"
fi
}

for stage in "${stages[@]}"; do
    case "$stage" in
        tests) run_tests ;;
        sanitizer) run_sanitizer ;;
        bench) run_bench ;;
        iwae) run_iwae ;;
        dist) run_dist ;;
    esac
done

echo "gpu_run: exit $status"
exit $status

#!/usr/bin/env bash
# run_tests.sh: runs every test binary in build/tests, the CUDA parity tests
# and the emulator's self-test on the emulated CUDA device (build-emu/: streams
# deferred, then blocks in reverse order, then build-emu-san/ under ASan +
# UBSan: these three at the same time, as each keeps one core busy for minutes),
# and every tests/cli_*.sh (beside those three); then prints the closing line
# "N passed, N failed, N skipped" (sum of all), and each test's time.
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0; skipped=0; crashed=0
run_one() {
    local name="$1"; shift
    echo "== $name"
    local out rc start=$SECONDS
    out=$("$@" 2> >(cat >&2)); rc=$?
    echo "$out"
    echo "  ($name took $((SECONDS - start)) s)"
    count_one "$name" "$out" "$rc"
}
# Tests that run at once (start_one NAME COMMAND...; then finish_started): the emulated
# CUDA parity runs, one core each, minutes each, started before the scripts and beside them.
# Their output is shown, and counted, after the scripts, in the order they were started.
started_dir=$(mktemp -d)
# an interrupted run (Ctrl-C, a CI timeout) stops the runs it started, then cleans up
stop_started() {
    local pid
    for pid in $(jobs -p); do pkill -TERM -P "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; done
    wait
    rm -rf "$started_dir"
}
trap stop_started EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
started_names=()
start_one() {
    local name="$1"; shift
    local i=${#started_names[@]}
    started_names+=("$name")
    ( start=$SECONDS
      "$@" > "$started_dir/$i.out" 2> "$started_dir/$i.err"
      echo $? > "$started_dir/$i.rc"
      echo $((SECONDS - start)) > "$started_dir/$i.seconds" ) &
}
finish_started() {
    wait
    local i
    for i in "${!started_names[@]}"; do
        local name="${started_names[$i]}"
        echo "== $name"
        cat "$started_dir/$i.err" >&2
        cat "$started_dir/$i.out"
        echo "  ($name took $(cat "$started_dir/$i.seconds" 2>/dev/null || echo '?') s, at the same time as the tests run since its start)"
        # no exit status: the run was killed before it ended (255: counted as a failure)
        count_one "$name" "$(cat "$started_dir/$i.out")" "$(cat "$started_dir/$i.rc" 2>/dev/null || echo 255)"
    done
    started_names=()
}
# Adds a test's closing line (NAME: N passed, N failed, N skipped) to the totals.
count_one() {
    local name="$1" out="$2" rc="$3"
    local line
    line=$(echo "$out" | grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -1)
    if [ -z "$line" ]; then
        echo "  FAIL $name: exited $rc without a summary line (crash?)"
        failed=$((failed + 1)); crashed=$((crashed + 1)); return
    fi
    local p f s
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -E 's/.* ([0-9]+) skipped$/\1/')
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "  FAIL $name: exit code $rc"; failed=$((failed + 1))
    fi
}
# `make test SANITIZE=1`: the unit tests and the training, error, fault, autoregressive,
# gan and aae scripts on build-san/ (ASan + UBSan); the rest of the suite is `make test`.
if [ "${SANITIZE:-0}" = 1 ]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    export CUVAE="${BUILD:-build-san}/cuvae"
    export CUVAE_SANITIZED=1   # scripts skip what sanitizers cannot run (ulimit -v)
    for t in "${BUILD:-build-san}"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.d) continue;; esac
        # CUDA parity under sanitizers runs on the emulated device in `make test`
        case "$t" in */test_cuda_parity) continue;; esac
        run_one "$(basename "$t") (ASan + UBSan)" "$t"
    done
    # (and the newer kinds end to end: their eval, sample and plot paths)
    # (cli_distributed: the sanitized build has no MPI; it checks the refusal of a launch as ranks)
    for s in tests/cli_train.sh tests/cli_errors.sh tests/cli_faults.sh tests/cli_autoregressive.sh tests/cli_gan.sh \
             tests/cli_aae.sh tests/cli_distributed.sh tests/cli_files.sh; do
        run_one "$(basename "$s") (ASan + UBSan)" bash "$s"
    done
    echo "$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
    exit
fi
for t in "${BUILD:-build}"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue;; esac
    run_one "$(basename "$t")" "$t"
done
# On a GPU (scripts/gpu_run.sh sets CUVAE_REQUIRE_CUDA=1) the parity tests run once more with
# every grid-stride kernel's grid capped at 3 blocks, as the emulated reverse-order run does below
real_parity="${BUILD:-build}/tests/test_cuda_parity"
if [ "${CUVAE_REQUIRE_CUDA:-}" = 1 ] && [ -x "$real_parity" ]; then
    run_one "test_cuda_parity (grid capped at 3 blocks)" env PARITY_GRID_MAX_BLOCKS=3 "$real_parity"
fi
# The emulated CUDA device (tests/cuemu; `make emu` builds it). Its results are
# labelled "(emulated CUDA, ...)" line by line.
emu="${BUILD_EMU:-build-emu}"
if [ -x "$emu/tests/test_cuda_parity" ] && [ -x "$emu/tests/test_cuemu" ]; then
    run_one "test_cuemu (emulated CUDA self-test)" "$emu/tests/test_cuemu"
    run_one "test_cuemu (emulated CUDA self-test, ucontext fibers)" "$emu/tests/test_cuemu_ucontext"
    start_one "test_cuda_parity (emulated CUDA, deferred)" env CUEMU_MODE=deferred "$emu/tests/test_cuda_parity"
    # the second run also caps every grid-stride kernel at 3 blocks: each grid-stride and
    # row loop then takes several turns, as it does on large inputs at the real 65535
    start_one "test_cuda_parity (emulated CUDA, deferred, blocks in reverse order, grid capped at 3 blocks)" \
        env CUEMU_MODE=deferred CUEMU_ORDER=reverse PARITY_GRID_MAX_BLOCKS=3 "$emu/tests/test_cuda_parity"
else
    echo "== emulated CUDA"
    echo "  skip emulated CUDA tests: $emu/ not built (make emu needs the CUDA headers)"
    skipped=$((skipped + 1))
fi
if [ -x "$emu-san/tests/test_cuda_parity" ] && [ -x "$emu-san/tests/test_cuemu" ]; then
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
    run_one "test_cuemu (emulated CUDA self-test, ASan + UBSan)" "$emu-san/tests/test_cuemu"
    start_one "test_cuda_parity (emulated CUDA, ASan + UBSan)" "$emu-san/tests/test_cuda_parity"
else
    echo "== emulated CUDA under sanitizers"
    echo "  skip emulated CUDA tests under ASan + UBSan: $emu-san/ not built"
    skipped=$((skipped + 1))
fi
# (the scripts run beside the emulated parity runs, which until 2026-12-07 were waited for first: the
# suite's longest, 3 to 4 minutes with three of them on two cores, the scripts then not yet started)
for s in tests/cli_*.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s")" bash "$s"
done
finish_started
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

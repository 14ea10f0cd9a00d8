#!/usr/bin/env bash
# run.sh SECONDS TARGET...: runs each libFuzzer target (build-fuzz/fuzz_TARGET)
# for SECONDS from its seed corpus tests/fuzz/corpus/TARGET (read only: new
# inputs go to build-fuzz/corpus/TARGET), as many targets at a time as there
# are cores (each fuzzer is one process on one core, up to 2 GB; FUZZ_JOBS=N sets
# how many run at a time). A target passes when it ran
# the whole time without a crash, a sanitizer report or a broken property; its
# execution count is printed. Closing line: "N passed, N failed, 0 skipped".
set -u
cd "$(dirname "$0")/../.."
seconds="$1"; shift
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
passed=0; failed=0
mkdir -p build-fuzz/crashes
run_target() {
    local t="$1" work="build-fuzz/corpus/$1"
    mkdir -p "$work"
    "build-fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/crashes/${t}-" "$work" "tests/fuzz/corpus/$t" > "build-fuzz/fuzz_$t.log" 2>&1
    echo $? > "build-fuzz/fuzz_$t.rc"
}
running=0
for t in "$@"; do
    rm -f "build-fuzz/fuzz_$t.rc"
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
    run_target "$t" &
    running=$((running + 1))
done
wait
for t in "$@"; do
    log="build-fuzz/fuzz_$t.log"
    rc=$(cat "build-fuzz/fuzz_$t.rc" 2>/dev/null || echo "none")
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    if [ "$rc" = 0 ] && [ -n "$runs" ]; then
        echo "  ok   fuzz_$t: ${runs} inputs in ${seconds} s, no crash, no sanitizer report" >&2
        passed=$((passed + 1))
    else
        echo "  FAIL fuzz_$t (exit $rc); the input is in build-fuzz/crashes/; log tail:" >&2
        tail -25 "$log" >&2
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]

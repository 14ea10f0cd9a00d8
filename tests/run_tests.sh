#!/usr/bin/env bash
# run_tests.sh: runs every test binary in build/tests and every tests/cli_*.sh,
# then prints the closing line "N passed, N failed, N skipped" (sum of all).
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0; skipped=0; crashed=0
run_one() {
    local name="$1"; shift
    echo "== $name"
    local out rc
    out=$("$@" 2> >(cat >&2)); rc=$?
    echo "$out"
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
for t in "${BUILD:-build}"/tests/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue;; esac
    run_one "$(basename "$t")" "$t"
done
for s in tests/cli_*.sh; do
    [ -f "$s" ] || continue
    run_one "$(basename "$s")" bash "$s"
done
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# cli_scripts.sh: the Makefile's and scripts/'s own behaviour, without running their long jobs:
# `make help`; a changed ARCH rebuilds (make -n); scripts/gpu_run.sh checks its stages before
# anything runs, prints its usage, and its iwae stage never trains on the CPU; scripts/bench.sh
# refuses a missing config before writing anything; scripts/gpu_bundle.sh packs the test binaries
# stripped and keeps the carry list under the device tool's 64 MiB.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# ---- Makefile
# (the make calls below leave out the MAKEFLAGS of a `make test` that started the suite: a
# `make test ARCH=x86-64` would pass its ARCH down and hide the change asked for; and JOBS, which a
# `make test JOBS=1` puts in the environment)
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u JOBS make --no-print-directory "$@"; }
mk help > "$tmp/help" 2>&1 && grep -q "^make test " "$tmp/help" && grep -q "ARCH=" "$tmp/help" \
    && ok "make help lists the targets and options" || bad "make help: $(head -3 "$tmp/help")"
# the targets that install first build in a sub-make with one job per core, or JOBS (make -n prints
# the sub-make's line; deps and data are printed, not run)
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # (nproc alone follows OMP_NUM_THREADS)
mk -n run > "$tmp/jobs_default" 2>&1; mk -n JOBS=3 test > "$tmp/jobs3" 2>&1; mk -n JOBS=0 test-only > "$tmp/jobs0" 2>&1
grep -qx "make --no-print-directory -j$cores all" "$tmp/jobs_default" && grep -qx "make --no-print-directory -j3 all emu" "$tmp/jobs3" \
    && grep -qx "make --no-print-directory -j$cores all emu" "$tmp/jobs0" \
    && ok "make run / test / test-only build with one job per core ($cores; JOBS=0 too), JOBS=3 with 3" \
    || bad "build jobs: $(grep -h -- '-j' "$tmp/jobs_default" "$tmp/jobs3" "$tmp/jobs0" | head -3)"
# (make -n runs nothing: it says what a changed ARCH would do)
if mk -q build/cuvae 2>/dev/null; then
    mk -n ARCH=x86-64 build/cuvae > "$tmp/arch" 2>&1
    grep -q -- "-march=x86-64 .*-c src/main.c" "$tmp/arch" \
        && ok "make ARCH=x86-64 after a default build compiles again with -march=x86-64 (it said 'up to date')" \
        || bad "make ARCH=x86-64: $(head -3 "$tmp/arch")"
else
    skip "make ARCH=x86-64 rebuilds" "build/cuvae is not up to date with the default flags (this run's build is another)"
fi

# ---- gpu_run.sh (in a copy of the layout it expects: it works from its repository root)
mkdir -p "$tmp/repo/scripts" "$tmp/repo/build"
cp scripts/gpu_run.sh "$tmp/repo/scripts/"
ln -s "$PWD/configs" "$tmp/repo/configs"; ln -s "$PWD/data" "$tmp/repo/data"
ln -s "$(readlink -f "$CUVAE")" "$tmp/repo/build/cuvae"
(cd "$tmp" && bash repo/scripts/gpu_run.sh tests sanitzer > "$tmp/stage.out" 2>&1); rc=$?
(cd "$tmp" && bash repo/scripts/gpu_run.sh "tests sanitizer" > "$tmp/stage2.out" 2>&1); rc2=$?
[ "$rc" -eq 2 ] && grep -q "unknown stage 'sanitzer' .*nothing run" "$tmp/stage.out" && ! grep -q "^== " "$tmp/stage.out" \
    && [ "$rc2" -eq 2 ] && grep -q "unknown stage 'tests sanitizer'" "$tmp/stage2.out" \
    && ok "gpu_run.sh: a misspelt stage (or two in one word) refused before any stage runs (exit 2)" \
    || bad "gpu_run.sh tests sanitzer: exit $rc / $rc2, $(head -3 "$tmp/stage.out" "$tmp/stage2.out")"
(cd "$tmp/repo/scripts" && bash gpu_run.sh --help > "$tmp/usage" 2>&1); rc=$?   # (a relative $0)
[ "$rc" -eq 0 ] && grep -q "Stages, run in the order given" "$tmp/usage" && ! grep -q "nvidia-smi failed" "$tmp/usage" \
    && ok "gpu_run.sh --help prints its usage (exit 0)" || bad "gpu_run.sh --help: exit $rc, $(head -2 "$tmp/usage")"
if [ -s data/mnist/train-images-idx3-ubyte.gz ]; then
    # no GPU here: the iwae stage must fail, not train on the CPU (device auto did, exit 0)
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
        skip "gpu_run.sh iwae without a GPU" "this machine has a GPU (the stage would train)"
    else
        (cd "$tmp/repo" && OUT="$tmp/gout" IWAE_SECONDS=60 bash scripts/gpu_run.sh iwae > "$tmp/iwae.out" 2>&1); rc=$?
        [ "$rc" -ne 0 ] && grep -q "^gpu_run: exit 1" "$tmp/iwae.out" && ! grep -q "backend cpu" "$tmp/iwae.out" \
            && [ ! -e "$tmp/repo/runs/iwae/log.jsonl" ] \
            && ok "gpu_run.sh iwae without a usable GPU: fails (exit $rc), nothing trained on the CPU" \
            || bad "gpu_run.sh iwae without a GPU: exit $rc, $(grep -E 'cuvae:|iwae:' "$tmp/iwae.out" | head -3)"
    fi
else
    skip "gpu_run.sh iwae without a GPU" "data/mnist missing (run make data)"
fi

# ---- bench.sh: a config that is not there, before anything is timed or written
mkdir -p "$tmp/results"
BENCH_CONFIGS="bench/configs/cpu/nosuch.json" BENCH_RESULTS_DIR="$tmp/results" BENCH_RESULTS_MD="$tmp/R.md" \
    CUVAE="$CUVAE" bash scripts/bench.sh > "$tmp/bench.out" 2>&1; rc=$?
[ "$rc" -eq 2 ] && grep -q "bench: BENCH_CONFIGS: .*nosuch.json: not a readable file" "$tmp/bench.out" \
    && ! grep -q Traceback "$tmp/bench.out" && [ -z "$(ls "$tmp/results")" ] && [ ! -e "$tmp/R.md" ] \
    && ok "bench.sh: a missing BENCH_CONFIGS file refused in one line (exit 2), no results file started" \
    || bad "bench.sh nosuch.json: exit $rc, $(tail -2 "$tmp/bench.out"), results: $(ls "$tmp/results")"
# ... and a PYTHON that cannot import torch (a fresh machine's python3): one line, not a traceback
printf '#!/bin/sh\necho "ModuleNotFoundError: No module named torch" >&2; exit 1\n' > "$tmp/notorch"; chmod +x "$tmp/notorch"
PYTHON="$tmp/notorch" BENCH_CONFIGS="bench/configs/cpu/examples_b128.json" BENCH_RESULTS_DIR="$tmp/results" \
    BENCH_RESULTS_MD="$tmp/R.md" CUVAE="$CUVAE" bash scripts/bench.sh > "$tmp/bench.out" 2>&1; rc=$?
[ "$rc" -eq 2 ] && [ "$(grep -c . "$tmp/bench.out")" -eq 1 ] \
    && grep -q "bench: error: PYTHON=$tmp/notorch cannot import torch (install python3-torch" "$tmp/bench.out" \
    && [ -z "$(ls "$tmp/results")" ] && [ ! -e "$tmp/R.md" ] \
    && ok "bench.sh: a PYTHON without torch refused in one line (exit 2), no results file started" \
    || bad "bench.sh PYTHON without torch: exit $rc, $(tail -2 "$tmp/bench.out"), results: $(ls "$tmp/results")"

# ---- gpu_bundle.sh (in the copy: it writes .device/ where it runs)
if [ -x build/cuvae ] && ls build/tests/test_* >/dev/null 2>&1 && command -v objcopy >/dev/null && command -v xz >/dev/null; then
    cp scripts/gpu_bundle.sh "$tmp/repo/scripts/"
    mkdir -p "$tmp/repo/build/tests"
    rm "$tmp/repo/build/cuvae"; cp build/cuvae "$tmp/repo/build/cuvae"
    for t in build/tests/test_*; do case "$t" in *.d) ;; *) cp "$t" "$tmp/repo/build/tests/" ;; esac; done
    (cd "$tmp/repo" && bash scripts/gpu_bundle.sh > "$tmp/bundle.out" 2>&1); rc=$?
    n_tests=$(ls "$tmp/repo/build/tests" | wc -l)
    n_packed=$(tar -tJf "$tmp/repo/.device/tests.tar.xz" 2>/dev/null | grep -c '^tests/test_')
    stripped_debug=$(tar -xJOf "$tmp/repo/.device/tests.tar.xz" tests/test_config 2>/dev/null > "$tmp/tc" && \
                     objdump -h "$tmp/tc" > "$tmp/tc.h" && grep -q '\.text' "$tmp/tc.h" && grep -c '\.debug_info' "$tmp/tc.h")   # (a section list: 0)
    [ "$rc" -eq 0 ] && [ "$n_packed" -eq "$n_tests" ] && [ "$stripped_debug" = 0 ] \
        && grep -q 'carry \[".device", "build/cuvae", "data/mnist"\]' "$tmp/bundle.out" \
        && ok "gpu_bundle.sh: the $n_tests test binaries packed without debug sections; carry .device, build/cuvae, data/mnist" \
        || bad "gpu_bundle.sh: exit $rc, $n_packed of $n_tests packed, debug sections $stripped_debug: $(tail -3 "$tmp/bundle.out")"
else
    skip "gpu_bundle.sh" "build/ has no binaries, or objcopy / xz missing"
fi

cli_finish cli_scripts

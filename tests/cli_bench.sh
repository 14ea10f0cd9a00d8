#!/usr/bin/env bash
# cli_bench.sh: `cuvae bench` through the real binary, and the start-up tuning:
# OpenBLAS never stays on its generic fallback kernels on a CPU with AVX2, a
# kernel family the user sets is kept, and OMP_WAIT_POLICY is set to PASSIVE.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
field() { echo "$1" | sed -nE "s/.*\"$2\": \"?([^\",}]*)\"?.*/\1/p"; }
out=$(env -u OPENBLAS_CORETYPE -u OMP_WAIT_POLICY "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 2 --warmup 1 --set device=cpu 2>/dev/null)
for key in samples_per_s ms_per_step tflops peak_memory_bytes gemm_flops_per_step; do
    v=$(field "$out" $key)
    awk -v v="$v" 'BEGIN { exit !(v + 0 > 0) }' && ok "bench reports $key > 0 ($v)" || bad "bench $key: '$v' in $out"
done
core=$(field "$out" blas_core)
if grep -qw avx2 /proc/cpuinfo; then
    [ -n "$core" ] && [ "$core" != Prescott ] && [ "$core" != Core2 ] \
        && ok "OpenBLAS kernels for this CPU: $core" || bad "OpenBLAS left on generic kernels: '$core'"
else
    skip "OpenBLAS kernel choice" "CPU without AVX2"
fi
out=$(OPENBLAS_CORETYPE=Haswell "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 --warmup 0 --set device=cpu 2>/dev/null)
[ "$(field "$out" blas_core)" = Haswell ] && ok "user's OPENBLAS_CORETYPE kept" || bad "OPENBLAS_CORETYPE=Haswell gave $(field "$out" blas_core)"
# the re-executed process carries the variables (seen through /proc of a running child)
policy=$(env -u OMP_WAIT_POLICY "$CUVAE" bench bench/configs/cpu/large_b1024.json --steps 40 --warmup 0 --set device=cpu >/dev/null 2>&1 & pid=$!; sleep 1; tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep '^OMP_WAIT_POLICY='; wait $pid)
[ "$policy" = "OMP_WAIT_POLICY=PASSIVE" ] && ok "OMP_WAIT_POLICY=PASSIVE set at start-up" || bad "OMP_WAIT_POLICY: '$policy'"
expect_error "bench bad --steps" 2 "steps" -- "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 0
cli_finish cli_bench

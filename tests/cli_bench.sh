#!/usr/bin/env bash
# cli_bench.sh: `cuvae bench` through the real binary, and the start-up tuning:
# OpenBLAS never stays on its generic fallback kernels on a CPU with AVX2, a
# kernel family the user sets is kept; one thread pool, sized by OMP_NUM_THREADS (else
# OPENBLAS_NUM_THREADS, else the cores), whose size does not change the numbers.
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
# one thread pool: OMP_NUM_THREADS sizes it, else OPENBLAS_NUM_THREADS, else one thread per core,
# at most OMP_THREAD_LIMIT;
# OMP_WAIT_POLICY is left to the user (with one pool, idle threads may spin)
threads_of() { field "$("$@" "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 --warmup 0 --set device=cpu 2>/dev/null)" threads; }
[ "$(threads_of env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=2)" = 1 ] && ok "OMP_NUM_THREADS=1 sizes the pool" || bad "OMP_NUM_THREADS=1 gave $(threads_of env OMP_NUM_THREADS=1)"
[ "$(threads_of env -u OMP_NUM_THREADS OPENBLAS_NUM_THREADS=1)" = 1 ] && ok "OPENBLAS_NUM_THREADS=1 sizes the pool without OMP_NUM_THREADS" || bad "OPENBLAS_NUM_THREADS=1 gave $(threads_of env -u OMP_NUM_THREADS OPENBLAS_NUM_THREADS=1)"
[ "$(threads_of env OMP_NUM_THREADS=3 OMP_THREAD_LIMIT=1)" = 1 ] && ok "OMP_THREAD_LIMIT=1 caps the pool (and the threads the device line names)" || bad "OMP_NUM_THREADS=3 OMP_THREAD_LIMIT=1 gave $(threads_of env OMP_NUM_THREADS=3 OMP_THREAD_LIMIT=1)"
[ "$(threads_of env -u OMP_NUM_THREADS -u OPENBLAS_NUM_THREADS)" = "$(nproc)" ] && ok "one thread per core by default ($(nproc))" || bad "default pool: $(threads_of env -u OMP_NUM_THREADS -u OPENBLAS_NUM_THREADS) threads, $(nproc) cores"
# (the process's environment read while it runs: "gone" when it ended within the second)
policy=$(env -u OMP_WAIT_POLICY "$CUVAE" bench bench/configs/cpu/large_b1024.json --steps 40 --warmup 0 --set device=cpu >/dev/null 2>&1 & pid=$!; sleep 1
         environment=$( { tr '\0' '\n' < /proc/$pid/environ; } 2>/dev/null )
         if [ -z "$environment" ]; then echo gone; else echo "$environment" | grep '^OMP_WAIT_POLICY=' || echo unset; fi; wait $pid)
case $policy in
    unset) ok "OMP_WAIT_POLICY not set at start-up" ;;
    gone) skip "OMP_WAIT_POLICY at start-up" "the bench ended within 1 s: no process left to read" ;;
    *) bad "OMP_WAIT_POLICY set at start-up: '$policy'" ;;
esac
# the GEMMs are split over the pool by rows or columns only: the numbers do not depend on it
loss_of() { field "$(OMP_NUM_THREADS=$1 "$CUVAE" bench bench/configs/cpu/$2.json --steps 20 --warmup 0 --set device=cpu 2>/dev/null)" train_loss; }
for cfg in examples_b128 lecture_b128; do
    one=$(loss_of 1 $cfg); two=$(loss_of 2 $cfg); three=$(loss_of 3 $cfg)
    [ -n "$one" ] && [ "$one" = "$two" ] && [ "$one" = "$three" ] \
        && ok "$cfg: the same loss on 1, 2 and 3 threads ($one)" || bad "$cfg: loss on 1 / 2 / 3 threads: $one / $two / $three"
done
# the CPU's convolutions: oneDNN's where the build has it (CUVAE_CPU_CONV=im2col: the layers'
# own im2col / GEMM path), named in the device; a CUVAE_CPU_CONV of another name is refused.
# oneDNN's weight gradient goes in chunks of images, one thread each: the conv model's loss does
# not depend on the pool's size either (its linear layers' GEMM slices only with OpenBLAS's
# SkylakeX-family kernels, which cuvae picks on AVX-512: checked there)
conv_of() { env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=$1 "$CUVAE" bench bench/configs/cpu/conv_b128.json --steps $2 --warmup 0 --set device=cpu 2>/dev/null; }
conv_out=$(conv_of 2 1)
case "$conv_out" in   # (the device, "CPU (OpenBLAS ... kernels, oneDNN convolutions, N threads)")
    *"oneDNN convolutions"*)
        case "$(field "$conv_out" blas_core)" in
            SkylakeX|Cooperlake|SapphireRapids)
                one=$(field "$(conv_of 1 12)" train_loss); two=$(field "$(conv_of 2 12)" train_loss)
                three=$(field "$(conv_of 3 12)" train_loss)
                [ -n "$one" ] && [ "$one" = "$two" ] && [ "$one" = "$three" ] \
                    && ok "conv_b128 (oneDNN): the same loss on 1, 2 and 3 threads ($one)" \
                    || bad "conv_b128 (oneDNN): loss on 1 / 2 / 3 threads: $one / $two / $three" ;;
            *) skip "conv_b128 loss on 1, 2 and 3 threads" "OpenBLAS $(field "$conv_out" blas_core) kernels round GEMM slices by the thread count" ;;
        esac
        plain=$(CUVAE_CPU_CONV=im2col "$CUVAE" bench bench/configs/cpu/conv_b128.json --steps 1 --warmup 0 --set device=cpu 2>/dev/null)
        case "$plain" in
            *"im2col convolutions"*) ok "CUVAE_CPU_CONV=im2col: the layers' im2col path" ;;
            *) bad "CUVAE_CPU_CONV=im2col: $plain" ;;
        esac ;;
    *"im2col convolutions"*)
        skip "oneDNN convolutions" "this build has no oneDNN (make ONEDNN=0, or no libdnnl-dev)"
        expect_error "CUVAE_CPU_CONV=onednn refused without oneDNN" 2 \
            "^cuvae: CUVAE_CPU_CONV=onednn: this build has no oneDNN .*CUVAE_CPU_CONV=im2col$" -- \
            env CUVAE_CPU_CONV=onednn "$CUVAE" bench bench/configs/cpu/conv_b128.json --steps 1 --set device=cpu ;;
    *) bad "conv bench device: $conv_out" ;;
esac
expect_error "CUVAE_CPU_CONV=fast refused" 2 "^cuvae: CUVAE_CPU_CONV: 'fast' is not one of onednn, im2col$" -- \
    env CUVAE_CPU_CONV=fast "$CUVAE" bench bench/configs/cpu/conv_b128.json --steps 1 --set device=cpu
# a pool far past the cores is refused in one line (libgomp crashed or hung creating tens of
# thousands of threads), whichever variable asked for it
expect_error "OMP_NUM_THREADS=100000 refused" 2 \
    "^cuvae: OMP_NUM_THREADS=100000: the CPU backend's pool takes at most [0-9]+ threads here \\(8 a core on [0-9]+ cores, and at least 1024\\); set fewer$" -- \
    env OMP_NUM_THREADS=100000 "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 --set device=cpu
expect_error "OPENBLAS_NUM_THREADS=100000 refused" 2 "^cuvae: OPENBLAS_NUM_THREADS=100000: .* set fewer$" -- \
    env -u OMP_NUM_THREADS OPENBLAS_NUM_THREADS=100000 "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 \
    --set device=cpu
# a thread count neither library can read is refused, not replaced by every core (libgomp
# warns in a line of its own about an OMP_NUM_THREADS it cannot read, then goes on; ours ends it)
for value in abc 0 -2 1x 3, 99999999999999999999; do
    err=$(env OMP_NUM_THREADS="$value" "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 --set device=cpu \
          2>&1 >/dev/null); rc=$?
    others=$(printf '%s\n' "$err" | grep . | grep -vc "^libgomp: Invalid value for environment variable OMP_NUM_THREADS$")
    if [ $rc -eq 2 ] && [ "$others" -eq 1 ] && printf '%s\n' "$err" | tail -1 | grep -qxF \
        "cuvae: OMP_NUM_THREADS=$value: not a thread count (a positive integer, or a comma-separated list of them); OpenMP would ignore it"; then
        ok "OMP_NUM_THREADS=$value refused"
    else
        bad "OMP_NUM_THREADS=$value: exit $rc, stderr: $err"
    fi
done
for value in abc 0 -1 99999999999999999999; do   # OMP_THREAD_LIMIT likewise (libgomp went on with every core)
    err=$(env OMP_THREAD_LIMIT="$value" "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 --set device=cpu \
          2>&1 >/dev/null); rc=$?
    [ $rc -eq 2 ] && printf '%s\n' "$err" | tail -1 | grep -qxF \
        "cuvae: OMP_THREAD_LIMIT=$value: not a thread count (a positive integer); OpenMP would ignore it" \
        && ok "OMP_THREAD_LIMIT=$value refused" || bad "OMP_THREAD_LIMIT=$value: exit $rc, stderr: $err"
done
"$CUVAE" --help | grep -q "^  OMP_NUM_THREADS       the CPU backend's one thread pool" && "$CUVAE" --help | grep -q "^  CUVAE_CPU_CONV " \
    && ok "--help names the thread-pool and convolution variables" || bad "--help lacks the environment variables"
expect_error "OPENBLAS_NUM_THREADS=abc refused" 2 \
    "^cuvae: OPENBLAS_NUM_THREADS=abc: not a thread count \\(a positive integer\\); OpenBLAS would ignore it$" -- \
    env -u OMP_NUM_THREADS OPENBLAS_NUM_THREADS=abc "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 \
    --set device=cpu
[ "$(threads_of env OMP_NUM_THREADS=" 1 , 2")" = 1 ] && ok "OMP_NUM_THREADS ' 1 , 2' (a nesting list) is read as libgomp reads it" \
    || bad "OMP_NUM_THREADS=' 1 , 2' gave $(threads_of env OMP_NUM_THREADS=" 1 , 2")"
case "$(env OMP_NUM_THREADS=1 "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 --warmup 0 --set device=cpu \
        --set train.batch_size=8 2>/dev/null)" in
    *'convolutions, 1 thread)"'*) ok "the device of a one-thread pool says \"1 thread\"" ;;
    *) bad "one-thread device string" ;;
esac
# train.precision tf32 on the CPU: bench says what train and eval say (the JSON's precision is fp32)
tf32_err=$(mktemp)
tf32_out=$("$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 1 --warmup 0 --set device=cpu \
    --set train.precision=tf32 2>"$tf32_err")
grep -q 'train.precision "tf32" is a GPU tensor-core format: the CPU computes in fp32' "$tf32_err" \
    && [ "$(field "$tf32_out" precision)" = fp32 ] \
    && ok "bench with train.precision tf32 on the CPU: the fp32 note, and fp32 in the JSON" \
    || bad "bench tf32 on the CPU: stderr $(head -c 300 "$tf32_err"), out $tf32_out"
rm -f "$tf32_err"
# --paired: the step and its GEMMs alternating in one process; bench/report.py puts its ratio
# (median of the pairs, with the quartiles) in the summary row, beside the separate runs' ratio
raw=$(mktemp)
echo '{"kind": "meta", "device": "test", "backend": "cpu", "date": "now", "nproc": 2}' >"$raw"
for mode in "" --gemm-only --paired; do
    "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 8 --warmup 1 --set device=cpu $mode 2>/dev/null >>"$raw"
done
paired=$(grep '"mode": "paired"' "$raw")
median=$(field "$paired" step_over_gemm); q1=$(field "$paired" step_over_gemm_q1); q3=$(field "$paired" step_over_gemm_q3)
awk -v a="$q1" -v m="$median" -v b="$q3" 'BEGIN { exit !(a > 0 && a <= m && m <= b) }' \
    && ok "bench --paired: step / GEMM $median [$q1, $q3] over $(field "$paired" pairs) pairs of $(field "$paired" block_steps)" \
    || bad "bench --paired line: $paired"
expect_error "bench --paired --steps 3: refused (fewer than 4 pairs, quartiles of 1-3 ratios)" 2 \
    "^cuvae: bench: --paired needs --steps 4 or more \(4 pairs of one step a block at least\), got 3$" -- \
    "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 3 --paired --set device=cpu
row=$(python3 bench/report.py "$raw" bench/configs/cpu/examples_b128.json 2>&1 | grep '^| cpu_examples_b128 ')
# (formatted by Python as report.py does: bash's printf rounds a tie such as 1.1050 the other way)
want=$(echo "$paired" | python3 -c 'import json, sys; d = json.load(sys.stdin); r = [format(d[k], ".2f") for k in ("step_over_gemm", "step_over_gemm_q1", "step_over_gemm_q3")]; print("%s× [%s–%s], %d pairs" % (r[0], r[1], r[2], d["pairs"]))')
case "$row" in
    "") bad "report.py: no summary row for cpu_examples_b128" ;;
    *"$want"*) [ -n "$want" ] && ok "report.py: the paired ratio in the summary row ($want)" || bad "report.py: no paired ratio to look for" ;;
    *) bad "report.py summary row without '$want': $row" ;;
esac
# bench/cpu_history.py: the run's row carries the same paired ratio, and the goal counts follow it
history=$(python3 bench/cpu_history.py "$raw" 2>&1)
want_row=$(echo "$paired" | python3 -c 'import json, sys; d = json.load(sys.stdin); print("%.2f× [%.2f–%.2f]" % (d["step_over_gemm"], d["step_over_gemm_q1"], d["step_over_gemm_q3"]))')
want_met=$(echo "$paired" | python3 -c 'import json, sys; print(int(json.load(sys.stdin)["step_over_gemm"] <= 1.25))')
if [ "$(echo "$history" | grep -c '^| now | ')" = 1 ] && echo "$history" | grep -qF "| $want_row |" \
    && echo "$history" | grep -qF "examples_b128: step ≤ 1.25× its GEMMs (median of the pairs, unrounded) in $want_met of 1 runs"; then
    ok "cpu_history.py: one row with the paired ratio ($want_row), goal count $want_met of 1"
else
    bad "cpu_history.py over one run: $history"
fi
# ... and over the committed results, one row per CPU run that has paired lines
runs_paired=$(grep -l '"mode": "paired"' bench/results/*.jsonl | xargs grep -l '"backend": "cpu"' | wc -l)
rows=$(python3 bench/cpu_history.py bench/results | grep -cE '^\| 20[0-9]{2}-')
[ "$runs_paired" -gt 0 ] && [ "$rows" = "$runs_paired" ] \
    && ok "cpu_history.py over bench/results: $rows rows, one per paired CPU run" \
    || bad "cpu_history.py over bench/results: $rows rows for $runs_paired paired CPU runs"
rm -f "$raw"
expect_error "bench bad --steps" 2 "steps" -- "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 0
# stdout that cannot be written: the write's own error in the one line, exit 2 (the line had
# said "Input/output error" for both: errno was lost between bench's flush and main's check)
expect_error "bench > /dev/full: 'No space left on device', exit 2" 2 \
    "^cuvae: cannot write to standard output: No space left on device$" -- \
    sh -c '"$0" bench bench/configs/cpu/examples_b128.json --set train.batch_size=16 --steps 4 --warmup 0 > /dev/full' "$CUVAE"
expect_error "bench with stdout closed: 'Bad file descriptor', exit 2" 2 \
    "^cuvae: cannot write to standard output: Bad file descriptor$" -- \
    sh -c '"$0" bench bench/configs/cpu/examples_b128.json --set train.batch_size=16 --steps 4 --warmup 0 >&-' "$CUVAE"
expect_error "bench of a diverging config: one line, exit 2 (not a nan in the JSON)" 2 "training diverged in the timed steps" -- \
    "$CUVAE" bench configs/mnist_vae.json --set model.encoder=[32] --set model.decoder=[32] --set device=cpu \
    --steps 20 --warmup 2 --set train.lr=1e10
# train_loss at the KL schedule (it took loss.w_kl whatever the schedule until 2026-12-05): the
# capacity objective gamma |KL - C| moves with gamma, a warm-up weight moves the KL's share
tl() { field "$("$CUVAE" bench "$1" --set device=cpu --steps 2 --warmup 1 --set "$2" 2>/dev/null)" train_loss; }
g10=$(tl configs/lectures/capacity_vae_dim10.json loss.capacity.gamma=10)
g1000=$(tl configs/lectures/capacity_vae_dim10.json loss.capacity.gamma=1000)
w0=$(tl configs/lectures/beta_vae_dim10.json loss.kl_warmup_epochs=0)
w1000=$(tl configs/lectures/beta_vae_dim10.json loss.kl_warmup_epochs=1000)
awk -v a="$g10" -v b="$g1000" -v c="$w0" -v d="$w1000" 'BEGIN { exit !(a > 0 && b > a + 100 && c > 0 && d > 0 && c != d) }' \
    && ok "bench train_loss follows the KL schedule (capacity gamma 10: $g10, 1000: $g1000; warm-up 0: $w0, 1000 epochs: $w1000)" \
    || bad "bench train_loss against the schedule: gamma 10 '$g10', 1000 '$g1000'; warm-up 0 '$w0', 1000 '$w1000'"
expect_error "bench: a batch of one through a flat batch norm: refused, as train refuses it" 2 \
    "--set train.batch_size=1 \(over configs/lectures/dcgan.json\): model.generator\[1\] \(batch_norm\) normalises each feature over the batch: a batch of one example has no statistics" -- \
    "$CUVAE" bench configs/lectures/dcgan.json --set device=cpu --steps 1 --warmup 0 --set train.batch_size=1
# the PyTorch peer reads what cuvae reads: a "base" chain (ae_dim2 -> vae_dim2) and a model.input_shape
# (the RGB conv template), and times the same GEMM work
if /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
    peer_err=$(mktemp); trap 'rm -f "$peer_err"' EXIT
    for config in configs/lectures/ae_dim2.json configs/files_rgb_conv_vae.json; do
        ours=$("$CUVAE" bench "$config" --set device=cpu --steps 2 --warmup 0 2>/dev/null | sed -nE 's/.*"gemm_flops_per_step": ([0-9]+).*/\1/p')
        peer=$(OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_vae.py "$config" --device cpu --steps 2 --warmup 0 --modes eager \
               --threads 1 2>"$peer_err" | sed -nE 's/.*"gemm_flops_per_step": ([0-9]+).*/\1/p')
        [ -n "$ours" ] && [ "$ours" = "$peer" ] \
            && ok "bench/torch_vae.py on $(basename "$config"): runs, the same GEMM FLOPs per step as cuvae ($ours)" \
            || bad "bench/torch_vae.py on $config: cuvae '$ours', peer '$peer': $(tail -1 "$peer_err")"
    done
else
    skip "bench/torch_vae.py on base / input_shape configs" "/usr/bin/python3 has no torch / numpy (Debian python3-torch)"
fi
cli_finish cli_bench

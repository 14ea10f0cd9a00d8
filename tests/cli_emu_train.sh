#!/usr/bin/env bash
# cli_emu_train.sh: the whole host orchestration on the emulated CUDA device
# (build-emu/cuvae, tests/cuemu): a short `cuvae train` with CUDA graphs on
# and epsilon fused, dynamic binarization and a KL warm-up (so the step state,
# graph capture and replay, the in-kernel draws and eval all run), against
# the same run on the CPU backend: per-epoch losses and the checkpoint agree
# within tolerance. Then eval and sample on the emulated device, and --resume
# there: 1 + 1 epochs == 2 epochs, bit for bit. Every line says "(emulated CUDA)".
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
EMU=${BUILD_EMU:-build-emu}/cuvae
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -x "$EMU" ]; then
    skip "emulated CUDA training run" "$EMU not built (make emu needs the CUDA headers)"; cli_finish cli_emu_train; exit
fi
if [ ! -s data/mnist/train-images-idx3-ubyte.gz ]; then
    skip "emulated CUDA training run" "data/mnist missing (run make data)"; cli_finish cli_emu_train; exit
fi
L="(emulated CUDA)"
common=(--set data.train_limit=1024 --set data.test_limit=256 --set model.latent_dim=8
        --set data.binarize=dynamic --set loss.kl_warmup_epochs=1 --set train.epsilon=fused)
CUEMU_STATS=1 "$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda \
    --set train.cuda_graph=true --set train.epochs=2 --out "$tmp/gpu" 2>"$tmp/gpu.err" \
    || bad "training on the emulated device $L: $(grep -v '^  ' "$tmp/gpu.err" | tail -2)"
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set device=cpu --set train.epochs=2 \
    --out "$tmp/cpu" 2>"$tmp/cpu.err" || bad "training on the CPU: $(tail -1 "$tmp/cpu.err")"
grep -q "backend cuda: cuemu: emulated CUDA device" "$tmp/gpu.err" && ok "ran on the emulated device $L" \
    || bad "the run did not use the emulated CUDA backend $L"
stats=$(grep "cuemu: stats:" "$tmp/gpu.err")
captured=$(echo "$stats" | sed -E 's/.* ([0-9]+) graphs captured.*/\1/')
launches=$(echo "$stats" | sed -E 's/.* ([0-9]+) graph launches.*/\1/')
echo "  $stats" >&2
[ -n "$captured" ] && [ "$captured" -ge 1 ] && [ -n "$launches" ] && [ "$launches" -ge 10 ] \
    && ok "training steps were captured and replayed as CUDA graphs $L" || bad "no graph replay $L: $stats"
for key in train_loss test_loss test_rec test_kl; do
    paste -d' ' <(sed -E "s/.*\"$key\": ([-0-9.e]+).*/\1/" "$tmp/gpu/log.jsonl") \
                <(sed -E "s/.*\"$key\": ([-0-9.e]+).*/\1/" "$tmp/cpu/log.jsonl") > "$tmp/$key"
    if [ "$(wc -l < "$tmp/$key")" -eq 2 ] && awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * ($2 < 0 ? -$2 : $2) + 1e-4) bad = 1 }
            END { exit bad }' "$tmp/$key"; then
        ok "$key per epoch matches the CPU backend $L"
    else
        bad "$key differs from the CPU backend $L: $(tr '\n' ';' < "$tmp/$key")"
    fi
done
# the checkpoints: same tensors; entries within the rounding of 16 Adam steps
cmp_out=$(python3 - "$tmp/gpu/model.safetensors" "$tmp/cpu/model.safetensors" <<'PY'
import json, struct, sys
from array import array
def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__": continue
        a = array("f"); a.frombytes(data[t["data_offsets"][0]:t["data_offsets"][1]]); out[name] = a
    return out
g, c = load(sys.argv[1]), load(sys.argv[2])
if sorted(g) != sorted(c): print("different tensors"); sys.exit(1)
total = loose = wrong = 0; worst = 0.0
for name in g:
    for x, y in zip(g[name], c[name]):
        d = abs(x - y); total += 1; worst = max(worst, d)
        if d > 1e-3 * abs(y) + 1e-4: loose += 1
        if d > 2 * 16 * 1e-3 + 1e-5: wrong += 1
print("%d parameters, %d beyond rtol 1e-3 atol 1e-4, worst |diff| %.3g" % (total, loose, worst))
sys.exit(0 if loose <= total // 1000 + 5 and wrong == 0 else 1)
PY
) && ok "checkpoint matches the CPU backend's $L: $cmp_out" || bad "checkpoint differs $L: $cmp_out"
# eval and sample on the emulated device
ev=$("$EMU" eval "$tmp/gpu/model.safetensors" --set device=cuda --set data.test_limit=256 2>"$tmp/ev.err")
ev_loss=$(echo "$ev" | sed -E 's/.*"test_loss": ([0-9.]+).*/\1/')
logged=$(tail -1 "$tmp/gpu/log.jsonl" | sed -E 's/.*"test_loss": ([0-9.]+).*/\1/')
awk -v a="$ev_loss" -v b="$logged" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d < 1e-3) }' \
    && ok "eval on the emulated device reproduces the logged test loss $L ($ev_loss)" \
    || bad "eval $ev_loss vs logged $logged $L: $(tail -1 "$tmp/ev.err")"
# train.precision "tf32" (the emulator rounds GEMM inputs to TF32 as a GPU does): eval takes the
# checkpoint's precision, so it gives the eval.json's test loss to the printed digit, and a --set
# train.precision=fp32 changes it (eval, sample and plot used fp32 whatever the checkpoint said)
"$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda --set train.precision=tf32 --set train.epochs=1 \
    --out "$tmp/tf32" 2>/dev/null
own=$(sed -E 's/.*"test_loss": ([0-9.]+).*/\1/' "$tmp/tf32/eval.json" 2>/dev/null)
tf32=$("$EMU" eval "$tmp/tf32/model.safetensors" --set device=cuda 2>/dev/null | sed -E 's/.*"test_loss": ([0-9.]+).*/\1/')
fp32=$("$EMU" eval "$tmp/tf32/model.safetensors" --set device=cuda --set train.precision=fp32 2>/dev/null \
       | sed -E 's/.*"test_loss": ([0-9.]+).*/\1/')
[ -n "$own" ] && [ "$tf32" = "$own" ] && [ -n "$fp32" ] && [ "$fp32" != "$own" ] \
    && ok "eval of a tf32 checkpoint computes in tf32: the eval.json's test loss ($own; in fp32 $fp32) $L" \
    || bad "tf32 eval: eval.json $own, eval $tf32, eval fp32 $fp32 $L"
"$EMU" sample "$tmp/gpu/model.safetensors" -n 16 -o "$tmp/s.png" --set device=cuda 2>/dev/null
head -c 8 "$tmp/s.png" 2>/dev/null | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" \
    && ok "sample on the emulated device writes a PNG $L" || bad "sample PNG $L"
# --resume on the emulated device: bit-identical to the uninterrupted run
"$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda --set train.epochs=1 --out "$tmp/res" 2>/dev/null
"$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda --set train.epochs=2 --out "$tmp/res" \
    --resume 2>"$tmp/res.err" || bad "resume $L: $(tail -1 "$tmp/res.err")"
cmp -s "$tmp/res/model.safetensors" "$tmp/gpu/model.safetensors" \
    && ok "1 epoch + --resume to 2 == 2 epochs, bit for bit $L" || bad "resumed checkpoint differs $L"
# bench --paired with CUDA graphs: the GEMMs are recorded on the first (eager) step -- the
# later steps launch the captured graph, whose GEMMs no wrapper sees -- so the GEMM blocks
# replay the step's 11 GEMMs
out=$("$EMU" bench configs/examples_vae.json --set device=cuda --set train.cuda_graph=true --set train.batch_size=16 \
    --steps 8 --warmup 2 --paired 2>"$tmp/bench.err")
calls=$(echo "$out" | sed -nE 's/.*"gemm_calls_per_step": ([0-9]+).*/\1/p')
echo "$out" | grep -q '"mode": "paired"' && echo "$out" | grep -q '"cuda_graph": true' && [ "$calls" = 11 ] \
    && ok "bench --paired with CUDA graphs replays the step's 11 GEMMs $L" \
    || bad "bench --paired with CUDA graphs $L: ${out:-$(tail -1 "$tmp/bench.err")}"
# CUVAE_REQUIRE_CUDA=1 (what a GPU run sets): the emulator never stands in for a GPU
out=$(CUVAE_REQUIRE_CUDA=1 "${BUILD_EMU:-build-emu}/tests/test_cuda_parity" 2>&1); rc=$?
[ "$rc" -ne 0 ] && echo "$out" | grep -q "FAIL cuda_required" && echo "$out" | grep -q "does not stand in for a GPU" \
    && ok "CUVAE_REQUIRE_CUDA=1: the parity suite on the emulator fails (cuda_required)" \
    || bad "CUVAE_REQUIRE_CUDA=1 did not fail the emulated parity suite (exit $rc)"
CUVAE_REQUIRE_CUDA=1 "$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda --set train.epochs=1 \
    --out "$tmp/required" 2>"$tmp/required.err"; rc=$?
[ "$rc" -eq 2 ] && grep -q 'device "cuda" requested but unusable: no NVIDIA GPU/driver found' "$tmp/required.err" \
    && ok "CUVAE_REQUIRE_CUDA=1: device cuda on the emulator is refused (exit 2)" \
    || bad "CUVAE_REQUIRE_CUDA=1 train: exit $rc: $(tail -1 "$tmp/required.err")"
# a driver older than the build's CUDA (CUEMU_DRIVER_VERSION: the runtime's answer on such a
# machine) is said as that, not as "no GPU": device cuda refused, device auto on the CPU
why="the NVIDIA driver supports CUDA up to 12.4, and this build needs [0-9]+\.[0-9]+ \(its runtime\): update the driver"
CUEMU_DRIVER_VERSION=12040 "$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda --set train.epochs=1 \
    --out "$tmp/old_driver" 2>"$tmp/old_driver.err"; rc=$?
[ "$rc" -eq 2 ] && grep -qE "device \"cuda\" requested but unusable: $why" "$tmp/old_driver.err" \
    && ok "a driver too old for the build: device cuda refused, saying so (exit 2) $L" \
    || bad "old driver, device cuda: exit $rc: $(tail -1 "$tmp/old_driver.err")"
CUEMU_DRIVER_VERSION=12040 "$EMU" train configs/examples_vae.json "${common[@]}" --set device=auto --set train.epochs=1 \
    --out "$tmp/old_driver_auto" 2>"$tmp/old_driver_auto.err"; rc=$?
[ "$rc" -eq 0 ] && grep -qE "device auto: $why.*, using the CPU" "$tmp/old_driver_auto.err" \
    && ok "a driver too old for the build: device auto trains on the CPU, saying why $L" \
    || bad "old driver, device auto: exit $rc: $(grep device "$tmp/old_driver_auto.err" | tail -1)"
# no driver at all (what the runtime says on a machine without a GPU, this one included): no GPU
CUEMU_DRIVER_VERSION=0 "$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda --set train.epochs=1 \
    --out "$tmp/no_driver" 2>"$tmp/no_driver.err"; rc=$?
[ "$rc" -eq 2 ] && grep -q 'device "cuda" requested but unusable: no NVIDIA GPU/driver found$' "$tmp/no_driver.err" \
    && ok "no driver installed: said as no GPU, not as an old driver $L" \
    || bad "no driver, device cuda: exit $rc: $(tail -1 "$tmp/no_driver.err")"
# the emulator's own variables: a value it cannot use is said, not silently replaced (CUEMU_TIMEOUT=abc
# ran the watchdog at 120 s unsaid; CUEMU_STATS=yes printed nothing)
CUEMU_TIMEOUT=abc CUEMU_STATS=yes "$EMU" train configs/examples_vae.json "${common[@]}" --set device=cuda \
    --set data.train_limit=256 --set train.epochs=1 --out "$tmp/env_vars" 2>"$tmp/env_vars.err"; rc=$?
[ "$rc" -eq 0 ] && grep -qx "cuemu: CUEMU_TIMEOUT=abc is not a number of seconds above 0; using 120" "$tmp/env_vars.err" \
    && grep -qx "cuemu: CUEMU_STATS=yes is neither 1 nor 0; no statistics" "$tmp/env_vars.err" \
    && ok "CUEMU_TIMEOUT=abc and CUEMU_STATS=yes: each said in one line, the run goes on $L" \
    || bad "emulator variables: exit $rc: $(grep cuemu: "$tmp/env_vars.err" | head -3)"
# ---- a run trained on the CPU (device "auto") and stopped at step 6,900, where Adam's beta1^t =
# 0.9^6900 is subnormal and the CPU backend holds it flushed to 0 (FTZ + DAZ), resumes on the CUDA
# backend, whose process does not flush: until 2026-12-07 resume.c's recomputed 0.9^t (a subnormal)
# differed from the file's 0 ("beta1_power / beta2_power do not match 6900 steps"; steps ~6,720 to
# 7,070 for beta1 0.9, ~708 k to 745 k for beta2 0.999). The control: the same run stopped at a
# normal step.
xr=(--set data.train_limit=3450 --set data.test_limit=100 --set device=auto --set train.batch_size=1
    --set model.encoder=[16] --set model.decoder=[16] --set model.latent_dim=4 --set train.epoch_images=false
    --set eval.iw_samples=0)
# (the first runs on the CPU: where $CUVAE finds a real GPU they would not, and prove nothing)
"$CUVAE" train configs/examples_vae.json "${xr[@]}" --set train.epochs=1 --out "$tmp/xr1" 2>"$tmp/xr1.err"; rc1=$?
"$CUVAE" train configs/examples_vae.json "${xr[@]}" --set train.epochs=2 --out "$tmp/xr2" 2>"$tmp/xr2.err"; rc2=$?
if [ "$rc1$rc2" = 00 ] && ! grep -q "using the CPU" "$tmp/xr2.err"; then
    skip "a CPU run resumed on the CUDA backend" "$CUVAE found a GPU for device auto: the first runs did not run on the CPU"
else
    cp -r "$tmp/xr2" "$tmp/xr2_unflushed"   # (for the case after the next two)
    [ "$rc1" -eq 0 ] && "$EMU" train configs/examples_vae.json "${xr[@]}" --set train.epochs=2 --out "$tmp/xr1" --resume \
            >/dev/null 2>"$tmp/xr1r.err" \
        && ok "a CPU run stopped at step 3,450 resumes on the CUDA backend $L" \
        || bad "CPU -> CUDA resume at step 3,450 $L: $(cat "$tmp/xr1.err" "$tmp/xr1r.err" 2>/dev/null | grep cuvae: | tail -1)"
    stored=$(python3 -c 'import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
print(json.loads(raw[8:8 + n])["__metadata__"]["beta1_power"])' "$tmp/xr2/resume.safetensors" 2>/dev/null)
    [ "$rc2" -eq 0 ] && [ "$stored" = 0x0p+0 ] \
        && "$EMU" train configs/examples_vae.json "${xr[@]}" --set train.epochs=3 --out "$tmp/xr2" --resume >/dev/null 2>"$tmp/xr2r.err" \
        && ok "a CPU run stopped at step 6,900 (beta1^t flushed to 0 there: $stored) resumes on the CUDA backend $L" \
        || bad "CPU -> CUDA resume at step 6,900 $L: beta1_power '$stored', $(cat "$tmp/xr2.err" "$tmp/xr2r.err" 2>/dev/null | grep cuvae: | tail -1)"
    # the same file with beta1_power as a process that does not flush writes it (0.9^6900, a subnormal
    # double; re-signed), resumed on the CUDA backend: compared flushed on both sides, taken
    resign "$tmp/xr2_unflushed/resume.safetensors" "$tmp/xr2_unflushed/resume.safetensors" "
p = 1.0
for _ in range(int(meta['step'])): p *= 0.9
meta['beta1_power'] = p.hex()"
    [ "$rc2" -eq 0 ] && "$EMU" train configs/examples_vae.json "${xr[@]}" --set train.epochs=3 --out "$tmp/xr2_unflushed" --resume \
            >/dev/null 2>"$tmp/xr2u.err" \
        && ok "a step-6,900 resume file whose beta1_power is the unflushed subnormal (a GPU's) resumes on the CUDA backend $L" \
        || bad "unflushed subnormal beta1_power on the CUDA backend $L: $(tail -1 "$tmp/xr2u.err")"
fi
cli_finish cli_emu_train

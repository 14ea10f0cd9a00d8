#!/usr/bin/env bash
# cli_autoregressive.sh: kinds "made" (MADE) and "pixelcnn" (deck 004) through the real
# binary. MADE: a short run lowers
# the exact -log p(x), eval of the checkpoint reproduces it, --resume is bit-identical to
# an uninterrupted run, sample draws pixel by pixel and plot draws samples and the curve,
# the effective config reads back the same, scripts/cuvae_torch.py loads the checkpoint
# (MaskedLinear with its mask buffer, strict=True) and gives the same -log p(x) to 1e-5,
# and every bad MADE config is one clear line, exit 2. PixelCNN (masked convolutions, a
# residual block): the same run / eval / resume / sample / PyTorch checks, and its bad networks.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/t10k-images-idx3-ubyte.gz ]; then
    skip "made" "data/mnist missing (run make data)"; cli_finish cli_autoregressive; exit
fi
# falls LABEL LOG BOUND WHAT: the test loss of epoch 2 below epoch 1's, and epoch 1's below BOUND
falls() {
    local first second
    first=$(sed -nE 's/^epoch 1\/2: .*test loss ([0-9.]+).*/\1/p' "$2")
    second=$(sed -nE 's/^epoch 2\/2: .*test loss ([0-9.]+).*/\1/p' "$2")
    is_number "$first" && is_number "$second" && awk -v a="$first" -v b="$second" -v c="$3" 'BEGIN { exit !(b < a && a < c) }' \
        && ok "$1: exact $4 falls ($first -> $second nats/example, below $3)" || bad "$1: test $4 $first -> $second"
}
# resumes LABEL CONFIG FULL_RUN DIR [--set ...]: 1 epoch, then resumed to 2 == 2 uninterrupted, bit for bit
resumes() {
    local label=$1 cfg=$2 full=$3 dir=$4
    shift 4
    "$CUVAE" train "$cfg" "$@" --set train.epochs=1 --out "$dir" 2>/dev/null \
        && "$CUVAE" train "$cfg" "$@" --out "$dir" --resume 2>"$dir.err" \
        && cmp -s "$full/model.safetensors" "$dir/model.safetensors" \
        && ok "$label: 1 + resumed 1 epochs == 2 epochs, bit-identical" || bad "$label resume: $(tail -1 "$dir.err")"
}
# torch_agrees LABEL RUN DATA_DIR N WHAT [TOLERANCE]: PyTorch (tests/torch_check.py, through
# cuvae_torch.py) gives the run's exact test -log p to TOLERANCE relative (default 1e-5)
torch_agrees() {
    local torch_out ours theirs tolerance=${6:-1e-5}
    torch_out=$($PY tests/torch_check.py "$2/model.safetensors" "$3" "$4") || { bad "$1: torch_check.py failed"; return; }
    ours=$(file_number "$2/eval.json" test_loss)
    theirs=$(echo "$torch_out" | sed -E 's/.*"nll": ([-0-9.e+]+).*/\1/')
    echo "  $1: cuvae $ours | torch $torch_out" >&2
    awk -v a="$ours" -v b="$theirs" -v t="$tolerance" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t * b) }' \
        && ok "$1: PyTorch ($5, strict=True) gives the same exact -log p ($tolerance)" || bad "$1: torch $theirs vs cuvae $ours"
}
"$CUVAE" --help | grep -q "made and pixelcnn (no latent" && "$CUVAE" --help | grep -q "masked_conv2d_a" \
    && "$CUVAE" sample --help | grep -q "A made or pixelcnn draws" && "$CUVAE" sample --help | grep -q -- "--prior PRIOR" \
    && ok "--help names kinds made and pixelcnn and their layers; sample --help says how they sample" || bad "--help"
cat > "$tmp/made.json" <<'JSON'
{
  "name": "made_small",
  "data": {"dataset": "mnist", "dir": "data/mnist", "binarize": "dynamic", "train_limit": 2000, "test_limit": 500},
  "model": {"kind": "made", "input_dim": 784, "network": [200], "ordering": "random"},
  "train": {"epochs": 2, "batch_size": 50, "lr": 0.002, "seed": 4, "epoch_images": false},
  "device": "cpu"
}
JSON
if "$CUVAE" train "$tmp/made.json" --out "$tmp/run" 2>"$tmp/run.err"; then
    ok "MADE trains on the CPU"
    falls made "$tmp/run.err" 543 "-log p(x)"   # 784 ln 2: a coin per pixel
    grep -q "= -log p(x), nats/example (exact)" "$tmp/run.err" && grep -q '"exact_nll": ' "$tmp/run/eval.json" \
        && grep -q '"bits_per_dim": ' "$tmp/run/eval.json" && ! grep -qE '"(latent_dim|active_units|kl_per_dim)"' "$tmp/run/eval.json" \
        && ok "the epoch line and eval.json say the loss is the exact -log p(x) (and bits/dim; no latent statistics)" \
        || bad "made units: $(grep -E '^epoch 2/2' "$tmp/run.err")"
    [ "$(file_number "$tmp/run/eval.json" rec_bce_at_mean)" = "$(file_number "$tmp/run/eval.json" exact_nll)" ] \
        && grep -q '"rec_mse_at_mean": null' "$tmp/run/eval.json" \
        && ok "a made's rec_bce_at_mean is its exact -log p(x), its rec_mse_at_mean null (README)" \
        || bad "made at-mean fields: $(grep -oE '"rec_(bce|mse)_at_mean": [^,]*' "$tmp/run/eval.json")"
    "$CUVAE" eval "$tmp/run/model.safetensors" -o "$tmp/eval.json" >/dev/null 2>&1
    [ "$(file_number "$tmp/eval.json" test_loss)" = "$(file_number "$tmp/run/eval.json" test_loss)" ] \
        && ok "eval of the checkpoint reproduces the run's -log p(x) (the masks are saved)" \
        || bad "eval $(file_number "$tmp/eval.json" test_loss) vs run $(file_number "$tmp/run/eval.json" test_loss)"
    expect_error "eval --set model.masks refused on a made" 2 'model.safetensors: --set: a made.s masks come from its model.masks, model.ordering and train.seed \(1, random, 4 in this checkpoint\)' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --set model.masks=4
    expect_error "sample --set model.ordering refused on a made" 2 'a made.s masks come from its model.masks' -- \
        "$CUVAE" sample "$tmp/run/model.safetensors" --set model.ordering=natural -o "$tmp/x.png"
    expect_error "eval --z refused (no latent)" 2 'eval: --z chooses how a VAE.s z is drawn; a made or pixelcnn has no latent' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --z mean
    expect_error "plot --tsne-points refused (no latent scatter)" 2 'plot: --tsne-points shapes the latent scatter of the encoded test set; kind "made" has no encoder' -- \
        "$CUVAE" plot "$tmp/run" --tsne-points 100
    expect_error "plot --latent-range refused (no latent scatter)" 2 'plot: --latent-range sets the axes of the latent scatter of the encoded test set; kind "made"' -- \
        "$CUVAE" plot "$tmp/run" --latent-range -3:3
    expect_error "eval --iw refused (exact likelihood)" 2 'eval --iw: kind "made" has an exact -log p\(x\)' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --iw 5
    "$CUVAE" sample "$tmp/run/model.safetensors" -n 9 -o "$tmp/s.png" 2>"$tmp/s.err" && [ -s "$tmp/s.png" ] \
        && grep -q "drawn one at a time" "$tmp/s.err" \
        && ok "sample draws the pixels one at a time" || bad "sample: $(tail -1 "$tmp/s.err")"
    "$CUVAE" plot "$tmp/run" 2>"$tmp/plot.err" && [ -s "$tmp/run/figures/samples.png" ] \
        && [ -s "$tmp/run/figures/loss_curves.png" ] && [ ! -e "$tmp/run/figures/reconstructions.png" ] \
        && ok "plot draws samples and the -log p(x) curve (nothing reconstructed)" \
        || bad "plot: $(tail -1 "$tmp/plot.err")"
    "$CUVAE" train "$tmp/run/config.json" --out "$tmp/again" --set train.epochs=0 2>/dev/null \
        && cmp -s <(grep -v '"epochs"' "$tmp/run/config.json") <(grep -v '"epochs"' "$tmp/again/config.json") \
        && tr -d ' \n' < "$tmp/run/config.json" | grep -q '"network":\[{"masked_linear":200},{"relu":{}},{"masked_linear":784}\]' \
        && ok "the effective config writes the widths out as layers and reads back the same" \
        || bad "effective config: $(grep network "$tmp/run/config.json")"
else
    bad "MADE training: $(tail -2 "$tmp/run.err")"
fi
resumes MADE "$tmp/made.json" "$tmp/run" "$tmp/res"

# model.masks 4 (connectivity-agnostic): a new mask set every step, chosen on the device from
# the step count, so resuming mid-run is still bit-identical; the test loss is the ensemble's
"$CUVAE" train "$tmp/made.json" --set model.masks=4 --out "$tmp/m4" 2>"$tmp/m4.err" || bad "made masks 4: $(tail -1 "$tmp/m4.err")"
resumes "MADE with 4 mask sets" "$tmp/made.json" "$tmp/m4" "$tmp/m4r" --set model.masks=4
if [ -s "$tmp/m4/eval.json" ]; then
    "$CUVAE" eval "$tmp/m4/model.safetensors" -o "$tmp/m4eval.json" >/dev/null 2>&1
    [ "$(file_number "$tmp/m4eval.json" test_loss)" = "$(file_number "$tmp/m4/eval.json" test_loss)" ] \
        && ok "eval reproduces the 4-mask ensemble's -log p(x) ($(file_number "$tmp/m4/eval.json" test_loss))" \
        || bad "ensemble eval $(file_number "$tmp/m4eval.json" test_loss) vs run $(file_number "$tmp/m4/eval.json" test_loss)"
fi
# model.masks 4: sampling draws with mask set 0 and puts back the set in use (src/model_made.c,
# model_made_sample). The epoch's progress images sample between model.safetensors and
# resume.safetensors: a set left at 0 would put other masks in the resume file than a run without
# images (3 steps of batch 50: the last step's set is not 0), and --resume of the finished run would
# find the model file "of other weights" and write it again with set 0 (a new crc32)
for images in true false; do
    rm -rf "$tmp/m4img_$images"
    "$CUVAE" train "$tmp/made.json" --set model.masks=4 --set data.train_limit=150 --set data.test_limit=100 \
        --set train.epochs=1 --set train.epoch_images=$images --out "$tmp/m4img_$images" 2>"$tmp/m4img.err" \
        || bad "made masks 4, epoch_images $images: $(tail -1 "$tmp/m4img.err")"
done
[ -s "$tmp/m4img_true/progress/samples_epoch_001.png" ] \
    && same_tensors "$tmp/m4img_true/resume.safetensors" "$tmp/m4img_false/resume.safetensors" \
    && same_tensors "$tmp/m4img_true/model.safetensors" "$tmp/m4img_false/model.safetensors" \
    && ok "made masks 4: the epoch's samples leave the masks in use (resume file as a run's without images)" \
    || bad "made masks 4: the resume file differs with epoch images (masks not restored after sampling?)"
cp "$tmp/m4img_true/model.safetensors" "$tmp/m4img_model_before"
"$CUVAE" train "$tmp/made.json" --set model.masks=4 --set data.train_limit=150 --set data.test_limit=100 \
    --set train.epochs=1 --set train.epoch_images=true --out "$tmp/m4img_true" --resume >/dev/null 2>"$tmp/m4img_resume.err"; rc=$?
[ "$rc" -eq 0 ] && cmp -s "$tmp/m4img_model_before" "$tmp/m4img_true/model.safetensors" \
    && ok "made masks 4: --resume of the finished run leaves its model.safetensors as it was" \
    || bad "made masks 4: --resume of a finished run: exit $rc, model.safetensors rewritten: $(tail -1 "$tmp/m4img_resume.err")"

# PyTorch: the checkpoint as nn.Sequential(MaskedLinear, ReLU, MaskedLinear), strict=True; on
# MNIST thresholded at 128 (0 / 255 pixels, which binarization leaves as they are) both give
# the same exact -log p(x)
if $PY -c "import torch, numpy" 2>/dev/null; then
    mkdir -p "$tmp/binary"
    $PY - data/mnist "$tmp/binary" <<'PY'
import gzip, sys
src, dst = sys.argv[1], sys.argv[2]
for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
    raw = bytearray(gzip.open(f"{src}/{name}.gz").read())
    if "images" in name:
        raw[16:] = bytes(255 if b >= 128 else 0 for b in raw[16:])
    with gzip.open(f"{dst}/{name}.gz", "wb") as f:
        f.write(bytes(raw))
PY
    if "$CUVAE" train "$tmp/made.json" --set data.dir="$tmp/binary" --set train.epochs=1 --out "$tmp/bin" 2>/dev/null; then
        torch_agrees made "$tmp/bin" "$tmp/binary" 500 MaskedLinear
    else
        bad "made: training on the thresholded set failed"
    fi
    # no hidden layer (the FVSBN) in the natural order: every mask set is the same, so the ensemble
    # is one model evaluated 4 times: said (it was unsaid; a note, so such checkpoints still read)
    "$CUVAE" train configs/lectures/fvsbn.json --set data.dir="$tmp/binary" --set data.train_limit=200 \
        --set data.test_limit=100 --set train.epochs=0 --set model.masks=4 --set device=cpu --out "$tmp/fvsbn4" 2>"$tmp/fvsbn4.err"
    grep -qx 'cuvae: note: model.masks 4 of a network with no hidden layer in the natural ordering are one mask (strictly lower triangular) 4 times: each step and the evaluation.s ensemble use that one mask (model.ordering "random" gives each set its own ordering)' "$tmp/fvsbn4.err" \
        && "$CUVAE" eval "$tmp/fvsbn4/model.safetensors" >/dev/null 2>&1 \
        && ok "made: masks 4 of an FVSBN in the natural order: a note says they are one mask; its checkpoint evaluates" \
        || bad "FVSBN masks 4: $(grep note "$tmp/fvsbn4.err") $(tail -1 "$tmp/fvsbn4.err")"
    # the lecture's FVSBN (configs/lectures/fvsbn.json): a MADE with no hidden layer, one logistic
    # regression per pixel on the pixels before it -- its one mask strictly lower triangular
    if "$CUVAE" train configs/lectures/fvsbn.json --set data.dir="$tmp/binary" --set data.train_limit=2000 \
        --set data.test_limit=500 --set train.epochs=2 --set train.epoch_images=false --set device=cpu \
        --out "$tmp/fvsbn" 2>"$tmp/fvsbn.err"; then
        falls FVSBN "$tmp/fvsbn.err" 543 "-log p(x)"
        $PY - "$tmp/fvsbn/model.safetensors" <<'PY' && ok "FVSBN: its mask is strictly lower triangular (pixel d sees the pixels before it, in row-by-row order)" || bad "FVSBN mask"
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
names = sorted(k for k in header if k != "__metadata__")
assert names == ["network.0.bias", "network.0.mask", "network.0.weight"], names
info = header["network.0.mask"]
assert info["dtype"] == "F32" and info["shape"] == [784, 784], info
start, end = info["data_offsets"]
mask = np.frombuffer(raw[8 + n + start:8 + n + end], dtype="<f4").reshape(784, 784)
assert np.array_equal(mask, np.tril(np.ones((784, 784), np.float32), -1))
PY
        torch_agrees fvsbn "$tmp/fvsbn" "$tmp/binary" 500 MaskedLinear
    else
        bad "fvsbn: training failed: $(tail -1 "$tmp/fvsbn.err")"
    fi
else
    skip "made in PyTorch" "python3-torch not installed (apt-get install python3-torch)"
fi

# bad MADE configs: one line naming the key or layer, exit 2
base='{"name": "m", "data": {"dataset": "mnist", "dir": "data/mnist", "binarize": "static"},
 "model": {"kind": "made", "input_dim": 784, "network": [50]}, "train": {"epochs": 1, "batch_size": 10, "lr": 0.001}}'
echo "$base" > "$tmp/base.json"
expect_error "made: latent_dim refused" 2 'model: kind "made" has no "latent_dim": it is one autoregressive network' -- \
    "$CUVAE" train "$tmp/base.json" --set model.latent_dim=2 --out "$tmp/x"
expect_error "made: a conv layer refused" 2 'model.network\[0\] \(linear\): a MADE is masked_linear layers and activations only' -- \
    "$CUVAE" train "$tmp/base.json" --set 'model.network=[{"linear": 50}, "relu", {"masked_linear": 784}]' --out "$tmp/x"
expect_error "made: must end in the logits" 2 'model.network: must end in \{"masked_linear": 784\}' -- \
    "$CUVAE" train "$tmp/base.json" --set 'model.network=[{"masked_linear": 784}, "sigmoid"]' --out "$tmp/x"
expect_error "made: grey pixels refused" 2 'data.binarize: kind "made" models binary pixels' -- \
    "$CUVAE" train "$tmp/base.json" --set data.binarize=none --out "$tmp/x"
expect_error "made: mse refused" 2 'loss.reconstruction: kind "made" is trained on its exact -log p\(x\): only "bce"' -- \
    "$CUVAE" train "$tmp/base.json" --set loss.reconstruction=mse --out "$tmp/x"
expect_error "made: KL weight refused" 2 'loss.w_kl: kind "made" has no KL term' -- \
    "$CUVAE" train "$tmp/base.json" --set loss.w_kl=0.5 --out "$tmp/x"
expect_error "made: gaussian refused" 2 'model.output: kind "made" models binary pixels: only "bernoulli"' -- \
    "$CUVAE" train "$tmp/base.json" --set model.output=gaussian --out "$tmp/x"
expect_error "made: iw refused" 2 'eval.iw_samples: kind "made" has an exact -log p\(x\)' -- \
    "$CUVAE" train "$tmp/base.json" --set eval.iw_samples=10 --out "$tmp/x"
expect_error "made: bad ordering" 2 'model.ordering: must be one of "natural", "random"' -- \
    "$CUVAE" train "$tmp/base.json" --set model.ordering=snake --out "$tmp/x"
expect_error "made: masks 0 refused" 2 'model.masks: must be >= 1, got 0' -- \
    "$CUVAE" train "$tmp/base.json" --set model.masks=0 --out "$tmp/x"
expect_error "network is made's" 2 'model: "network" is for kind "made" or "pixelcnn" \(got "vae"\)' -- \
    "$CUVAE" train configs/examples_vae.json --set 'model.network=[5]' --out "$tmp/x"

# ---- PixelCNN ------------------------------------------------------------------------
cat > "$tmp/pcnn.json" <<'JSON'
{
  "name": "pixelcnn_small",
  "data": {"dataset": "mnist", "dir": "data/mnist", "binarize": "dynamic", "train_limit": 1000, "test_limit": 300},
  "model": {"kind": "pixelcnn", "input_dim": 784,
    "network": [{"masked_conv2d_a": 16, "kernel": 7}, "relu",
                {"conv2d": 8, "kernel": 1}, "relu", {"masked_conv2d_b": 8, "kernel": 3}, "relu",
                {"conv2d": 16, "kernel": 1}, {"residual": 5}, "relu", {"conv2d": 1, "kernel": 1}]},
  "train": {"epochs": 2, "batch_size": 50, "lr": 0.003, "seed": 4, "epoch_images": false},
  "device": "cpu"
}
JSON
if "$CUVAE" train "$tmp/pcnn.json" --out "$tmp/pc" 2>"$tmp/pc.err"; then
    falls PixelCNN "$tmp/pc.err" 543 "-log p(x)"
    "$CUVAE" eval "$tmp/pc/model.safetensors" -o "$tmp/pc_eval.json" >/dev/null 2>&1
    [ "$(file_number "$tmp/pc_eval.json" test_loss)" = "$(file_number "$tmp/pc/eval.json" test_loss)" ] \
        && ok "PixelCNN: eval of the checkpoint reproduces the run's -log p(x)" \
        || bad "pixelcnn eval $(file_number "$tmp/pc_eval.json" test_loss) vs run $(file_number "$tmp/pc/eval.json" test_loss)"
    "$CUVAE" sample "$tmp/pc/model.safetensors" -n 4 -o "$tmp/pc_s.png" 2>/dev/null && [ -s "$tmp/pc_s.png" ] \
        && ok "PixelCNN: sample draws pixel by pixel" || bad "pixelcnn sample"
    "$CUVAE" train "$tmp/pc/config.json" --out "$tmp/pc_again" --set train.epochs=0 2>/dev/null \
        && cmp -s <(grep -v '"epochs"' "$tmp/pc/config.json") <(grep -v '"epochs"' "$tmp/pc_again/config.json") \
        && tr -d ' \n' < "$tmp/pc/config.json" | grep -q '{"masked_conv2d_a":16,"kernel":7,"padding":3}' \
        && ok "PixelCNN: the effective config (padding written out) reads back the same" \
        || bad "pixelcnn effective config"
else
    bad "PixelCNN training: $(tail -2 "$tmp/pc.err")"
fi
# bench --gemm-only and --paired on a PixelCNN: with the CPU's oneDNN every call the step records
# is a convolution (no linear layer); the replay runs them, its FLOPs the step's
for mode in --gemm-only --paired; do
    if "$CUVAE" bench "$tmp/pcnn.json" --set train.batch_size=8 --steps 4 --warmup 0 $mode >"$tmp/pc_bench.json" \
            2>"$tmp/pc_bench.err" \
        && $PY -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(not (d["gemm_calls_per_step"] +
d["conv_calls_per_step"] > 0 and d["gemm_flops_replayed"] == d["gemm_flops_per_step"] > 0))' "$tmp/pc_bench.json"; then
        ok "PixelCNN: bench $mode replays the step's library calls ($(tr -d '\n' < "$tmp/pc_bench.json" |
            sed -E 's/.*"gemm_calls_per_step": ([0-9]+), "conv_calls_per_step": ([0-9]+).*/\1 GEMMs, \2 convolutions/'))"
    else
        bad "PixelCNN bench $mode: $(head -c 300 "$tmp/pc_bench.err") $(head -c 300 "$tmp/pc_bench.json")"
    fi
done
resumes PixelCNN "$tmp/pcnn.json" "$tmp/pc" "$tmp/pcr"
if $PY -c "import torch, numpy" 2>/dev/null && [ -d "$tmp/binary" ]; then
    if "$CUVAE" train "$tmp/pcnn.json" --set data.dir="$tmp/binary" --set train.epochs=1 --out "$tmp/pcbin" 2>/dev/null; then
        torch_agrees pixelcnn "$tmp/pcbin" "$tmp/binary" 300 "MaskedConv2d, Residual"
    else
        bad "pixelcnn: training on the thresholded set failed"
    fi
else
    skip "pixelcnn in PyTorch" "python3-torch not installed (apt-get install python3-torch)"
fi
pbase='{"name": "p", "data": {"dataset": "mnist", "dir": "data/mnist", "binarize": "static"},
 "model": {"kind": "pixelcnn", "input_dim": 784, "network": [{"masked_conv2d_a": 4, "kernel": 3}, "relu", {"conv2d": 1, "kernel": 1}]},
 "train": {"epochs": 1, "batch_size": 10, "lr": 0.001}}'
echo "$pbase" > "$tmp/pbase.json"
expect_error "pixelcnn: type B first refused" 2 'model.network\[0\] \(masked_conv2d_b\): the first masked convolution must be type A' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_b": 4, "kernel": 3}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "pixelcnn: a 3x3 plain conv refused" 2 'model.network\[2\] \(conv2d\): a PixelCNN.s plain convolutions must be 1x1' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 4, "kernel": 3}, "relu", {"conv2d": 1, "kernel": 3, "padding": 1}]' --out "$tmp/x"
expect_error "pixelcnn: batch norm refused" 2 'model.network\[1\] \(batch_norm\): a PixelCNN is masked convolutions' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 4, "kernel": 3}, {"batch_norm": {}}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "pixelcnn: must end in logits" 2 'model.network: must end in 1 channel of logits \(1, 28, 28\)' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 4, "kernel": 3}, "relu"]' --out "$tmp/x"
expect_error "pixelcnn: the right shape after an activation: told the loss takes logits" 2 \
    'model.network: ends in sigmoid, an activation: the loss takes the raw logits' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 1, "kernel": 3}, "sigmoid"]' --out "$tmp/x"
expect_error "pixelcnn: a 1x1 type-A kernel (an all-zero mask) refused" 2 'model.network\[0\].kernel: 1 leaves a type-A mask nothing \(it hides the centre pixel\)' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 4, "kernel": 1}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "pixelcnn: even kernel refused" 2 'model.network\[0\].kernel: must be odd' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 4, "kernel": 4}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "pixelcnn: padding that shrinks refused" 2 'model.network\[0\] \(masked_conv2d_a\): kernel 5 with padding 0 changes the image size' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 4, "kernel": 5, "padding": 0}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "pixelcnn: residual shape mismatch" 2 'model.network\[2\] \(residual\): adds the input of layer 0, \(1, 28, 28\), to its own input \(4, 28, 28\)' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"masked_conv2d_a": 4, "kernel": 3}, "relu", {"residual": 2}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "pixelcnn: a residual back to the type-A input refused" 2 'model.network\[2\] \(residual\): adds the input of layer 1, which comes before the type-A convolution.s output' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"conv2d": 4, "kernel": 1}, {"masked_conv2d_a": 4, "kernel": 3}, {"residual": 1}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "pixelcnn: a residual before type A refused" 2 'model.network\[1\] \(residual\): adds the input of layer 0, which comes before' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[{"conv2d": 1, "kernel": 1}, {"residual": 1}, {"masked_conv2d_a": 4, "kernel": 3}, {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "masked layers only in made / pixelcnn" 2 'model.decoder\[0\] \(masked_linear\): a masked layer belongs to kind "made" or "pixelcnn"' -- \
    "$CUVAE" train configs/examples_vae.json --set 'model.decoder=[{"masked_linear": 64}, "relu", {"linear": 784}]' --out "$tmp/x"
expect_error "pixelcnn: widths refused" 2 'model.network: kind "pixelcnn" needs a layer list' -- \
    "$CUVAE" train "$tmp/pbase.json" --set 'model.network=[64]' --out "$tmp/x"
expect_error "pixelcnn: ordering refused" 2 'model: "ordering" is not a key of kind "pixelcnn"' -- \
    "$CUVAE" train "$tmp/pbase.json" --set model.ordering=random --out "$tmp/x"

# ---- PixelCNN prior over a VQ-VAE's codes ------------------------------------------------
cat > "$tmp/vq.json" <<'JSON'
{"name": "vq_small", "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 1000, "test_limit": 300},
 "model": {"kind": "vq_vae", "input_dim": 784, "latent_dim": 8,
   "encoder": [{"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu",
               {"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu", {"conv2d": 8, "kernel": 1}],
   "codebook": {"size": 32, "update": "ema", "restart_dead": 0.05},
   "decoder": [{"conv_transpose2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu",
               {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1}], "output": "bernoulli"},
 "train": {"epochs": 1, "batch_size": 50, "lr": 0.002, "seed": 2, "epoch_images": false}, "device": "cpu"}
JSON
"$CUVAE" train "$tmp/vq.json" --out "$tmp/vq" 2>/dev/null || bad "the prior's VQ-VAE did not train"
cat > "$tmp/prior.json" <<JSON
{"name": "prior_small", "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 1000, "test_limit": 300},
 "model": {"kind": "pixelcnn", "input_dim": 49, "prior_of": "$tmp/vq/model.safetensors",
   "network": [{"masked_conv2d_a": 32, "kernel": 5}, "relu", {"conv2d": 16, "kernel": 1}, "relu",
               {"masked_conv2d_b": 16, "kernel": 3}, "relu", {"conv2d": 32, "kernel": 1}, {"residual": 5},
               "relu", {"conv2d": 32, "kernel": 1}]},
 "train": {"epochs": 2, "batch_size": 50, "lr": 0.003, "seed": 2}, "device": "cpu"}
JSON
if "$CUVAE" train "$tmp/prior.json" --out "$tmp/prior" 2>"$tmp/prior.err"; then
    falls "prior over VQ codes" "$tmp/prior.err" 169.8 "-log p(codes)"   # 49 ln 32: uniform codes
    grep -q "= -log p(codes), nats/example (exact)" "$tmp/prior.err" \
        && grep -q "nats per code position (49 positions)" "$tmp/prior.err" && grep -q '"nll_per_position": ' "$tmp/prior/eval.json" \
        && grep -q '"rec_bce_at_mean": "nats/example (categorical cross-entropy summed over the code positions)"' "$tmp/prior/eval.json" \
        && ok "prior: -log p(codes) reported per image and per code position" || bad "prior: $(grep eval: "$tmp/prior.err")"
    "$CUVAE" eval "$tmp/prior/model.safetensors" -o "$tmp/prior_eval.json" >/dev/null 2>&1
    [ "$(file_number "$tmp/prior_eval.json" test_loss)" = "$(file_number "$tmp/prior/eval.json" test_loss)" ] \
        && ok "prior: eval re-encodes the test set through the VQ-VAE and reproduces the run's -log p(codes)" \
        || bad "prior eval $(file_number "$tmp/prior_eval.json" test_loss) vs $(file_number "$tmp/prior/eval.json" test_loss)"
    # the report's loss column: the prior's cross-entropy over the codes, not its config's pixel BCE
    echo '{"title": "t", "sections": [{"title": "s", "runs": ["prior"], "figures": []}]}' > "$tmp/prior_index.json"
    "$CUVAE" report "$tmp/prior_index.json" "$tmp" 2>"$tmp/report.err" \
        && grep -q "<td>categorical cross-entropy over the codes (sum over positions)</td>" "$tmp/index.html" \
        && ! grep -q "over pixels" "$tmp/index.html" \
        && ok "prior: the report names its loss as the codes' cross-entropy" || bad "prior report: $(tail -1 "$tmp/report.err")"
    expect_error "prior: eval --iw refused, naming p(codes)" 2 'eval --iw: kind "pixelcnn" has an exact -log p\(codes\)' -- \
        "$CUVAE" eval "$tmp/prior/model.safetensors" --iw 5
    "$CUVAE" sample "$tmp/prior/model.safetensors" -n 9 -o "$tmp/prior_s.png" 2>"$tmp/prior_s.err" \
        && grep -q "codes drawn from the PixelCNN prior, decoded by its VQ-VAE" "$tmp/prior_s.err" \
        && $PY -c "import struct,sys; d=open(sys.argv[1],'rb').read(); w,h=struct.unpack('>II',d[16:24]); sys.exit(not (w > 28*3 and h > 28*3))" "$tmp/prior_s.png" \
        && ok "prior: sample draws code grids and decodes them into 28x28 images through the VQ-VAE" \
        || bad "prior sample: $(tail -1 "$tmp/prior_s.err")"
    "$CUVAE" sample "$tmp/vq/model.safetensors" --prior "$tmp/prior/model.safetensors" -n 4 -o "$tmp/vq_prior.png" \
        2>"$tmp/vq_prior.err" && grep -q "codes drawn from the PixelCNN prior" "$tmp/vq_prior.err" \
        && "$CUVAE" sample "$tmp/vq/model.safetensors" -n 4 -o "$tmp/vq_uniform.png" 2>"$tmp/vq_uniform.err" \
        && grep -q "codes drawn uniformly" "$tmp/vq_uniform.err" \
        && ok "sample on the VQ-VAE: --prior draws its codes from the prior, without it uniformly" \
        || bad "sample --prior: $(tail -1 "$tmp/vq_prior.err")"
    # a prior whose logits overflow (every weight 3e38, re-signed): refused by sample (its own draws and
    # through --prior), not decoded into images from codes drawn out of NaN softmaxes, exit 0
    resign "$tmp/prior/model.safetensors" "$tmp/prior_ov.safetensors" "
for name in header:
    if name.endswith('weight'):
        b, e = header[name]['data_offsets']; data[b:e] = struct.pack('<f', 3e38) * ((e - b) // 4)"
    "$CUVAE" sample "$tmp/prior_ov.safetensors" -n 4 -o "$tmp/pov.png" >/dev/null 2>"$tmp/pov.err"; rc=$?
    "$CUVAE" sample "$tmp/vq/model.safetensors" --prior "$tmp/prior_ov.safetensors" -n 4 -o "$tmp/pov2.png" >/dev/null 2>"$tmp/pov2.err"; rc2=$?
    [ "$rc" -eq 2 ] && [ "$rc2" -eq 2 ] && tail -1 "$tmp/pov.err" | grep -q "the prior's logits are not finite" \
        && tail -1 "$tmp/pov2.err" | grep -q "the prior's logits are not finite" && [ ! -e "$tmp/pov.png" ] && [ ! -e "$tmp/pov2.png" ] \
        && ok "sample: a prior whose logits overflow refused, alone and as --prior; no image" \
        || bad "prior overflow: exit $rc / $rc2, $(tail -1 "$tmp/pov.err") / $(tail -1 "$tmp/pov2.err")"
    expect_error "sample --prior given a made, not a prior" 2 \
        "sample: --prior .*/run/model.safetensors is a \"made\", not a PixelCNN prior over a VQ-VAE's codes" -- \
        "$CUVAE" sample "$tmp/vq/model.safetensors" --prior "$tmp/run/model.safetensors" -o "$tmp/x.png"
    expect_error "sample --prior given the VQ-VAE itself" 2 "sample: --prior .*/vq/model.safetensors is a \"vq_vae\", not a PixelCNN prior" -- \
        "$CUVAE" sample "$tmp/vq/model.safetensors" --prior "$tmp/vq/model.safetensors" -o "$tmp/x.png"
    expect_error "sample --prior with --set model.prior_of (CKPT is the VQ-VAE: it would be dropped)" 2 \
        "sample: --set model.prior_of with --prior: the prior decodes through CKPT \(.*/vq/model.safetensors\) here" -- \
        "$CUVAE" sample "$tmp/vq/model.safetensors" --prior "$tmp/prior/model.safetensors" --set model.prior_of=/nowhere \
        -o "$tmp/x.png"
    expect_error "sample --prior needs a VQ-VAE" 2 'sample: --prior needs a vq_vae checkpoint, .* is a "pixelcnn"' -- \
        "$CUVAE" sample "$tmp/prior/model.safetensors" --prior "$tmp/prior/model.safetensors" -o "$tmp/x.png"
    # (a gnuplot wrapper keeps the scripts: the loss curve's legend says whose likelihood it is)
    mkdir -p "$tmp/gpwrap" "$tmp/gpscripts"
    printf '#!/bin/sh\nfor a; do script="$a"; done\n[ -f "$script" ] && cp "$script" "%s/script.$$"\nexec %s "$@"\n' "$tmp/gpscripts" "$(command -v gnuplot)" \
        > "$tmp/gpwrap/gnuplot"
    chmod +x "$tmp/gpwrap/gnuplot"
    PATH="$tmp/gpwrap:$PATH" "$CUVAE" plot "$tmp/prior" 2>/dev/null && [ -s "$tmp/prior/figures/samples.png" ] \
        && grep -q 'test (exact -log p(codes))' "$tmp"/gpscripts/script.* \
        && ok "prior: plot draws its decoded samples; its curve's legend says -log p(codes) (it said p(x))" \
        || bad "prior plot: $(grep -ho 'test (exact[^"]*' "$tmp"/gpscripts/script.* | head -1)"
    # the VQ-VAE's codebook usage says the codes its test set uses (as eval counts them) of the codebook's size
    PATH="$tmp/gpwrap:$PATH" "$CUVAE" plot "$tmp/vq" 2>"$tmp/vq_plot.err"
    "$CUVAE" eval "$tmp/vq/model.safetensors" -o "$tmp/vq_usage_eval.json" >/dev/null 2>&1
    usage=$(python3 -c 'import json, sys; e = json.load(open(sys.argv[1])); print("%d of %d codes used" % (e["codes_used"], e["codebook_size"]))' \
        "$tmp/vq_usage_eval.json" 2>/dev/null)
    size=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"]["codebook"]["size"])' "$tmp/vq.json")
    [ -n "$usage" ] && [ "${usage##* of }" = "$size codes used" ] \
        && grep -q "Codebook usage on the test set: $usage, perplexity" "$tmp"/gpscripts/script.* \
        && ok "vq_vae: plot's codebook usage title: $usage (as eval counts them)" \
        || bad "vq_vae codebook usage title: $(grep -ho 'Codebook usage[^"]*' "$tmp"/gpscripts/script.* | head -1), eval: $usage; $(tail -1 "$tmp/vq_plot.err")"
    if $PY -c "import torch, numpy" 2>/dev/null; then
        # the codes come from each side's float32 argmin over the VQ-VAE's distances: a position whose
        # two nearest codes tie to the last bits may take either (cli_torch.sh), and one flip of the
        # 14,700 here moved the mean by 1.1e-5 under OpenBLAS's Haswell kernels: 1e-4
        torch_agrees prior "$tmp/prior" data/mnist 300 "the VQ-VAE's codes, one-hot, the prior's network" 1e-4
    else
        skip "prior in PyTorch" "python3-torch not installed (apt-get install python3-torch)"
    fi
else
    bad "prior training: $(tail -2 "$tmp/prior.err")"
fi
resumes prior "$tmp/prior.json" "$tmp/prior" "$tmp/prior_r"
benched=""
for run in run pc prior; do   # cuvae bench on each kind (its random resident data: codes < K for the prior)
    "$CUVAE" bench "$tmp/$run/config.json" --steps 3 --warmup 1 2>/dev/null | grep -qE '"train_loss": [0-9]' \
        && benched="$benched $run"
done
[ "$benched" = " run pc prior" ] && ok "cuvae bench runs MADE, PixelCNN and the prior" || bad "bench ran only:$benched"
# another VQ-VAE with the same K and grid: its codes mean other things, so the prior refuses it
if "$CUVAE" train "$tmp/vq.json" --set train.seed=9 --out "$tmp/vq2" 2>/dev/null && [ -s "$tmp/prior/config.json" ]; then
    grep -q '"prior_crc32": "[0-9a-f]\{8\}"' "$tmp/prior/config.json" && ok "prior: the effective config names its VQ-VAE's crc32" \
        || bad "prior: no prior_crc32 in $(grep prior "$tmp/prior/config.json")"
    expect_error "prior: sample --prior with another VQ-VAE refused (naming --prior, not a --set never given)" 2 '^cuvae: sample: .*/vq2/model.safetensors --prior .*/prior/model.safetensors: model.prior_of: .*/vq2/model.safetensors is not the VQ-VAE this prior is for' -- \
        "$CUVAE" sample "$tmp/vq2/model.safetensors" --prior "$tmp/prior/model.safetensors" -o "$tmp/x.png"
    expect_error "prior: eval against another VQ-VAE refused" 2 'is not the VQ-VAE this prior is for' -- \
        "$CUVAE" eval "$tmp/prior/model.safetensors" --set model.prior_of="$tmp/vq2/model.safetensors"
    # prior_of / prior_crc32 given as "" (read as absent until 2026-12-04: an image pixelcnn trained) or not hex
    expect_error "prior: model.prior_of \"\" refused" 2 'model.prior_of: is "": give the VQ-VAE checkpoint' -- \
        "$CUVAE" train "$tmp/prior.json" --set 'model.prior_of=""' --out "$tmp/x"
    expect_error "prior: model.prior_crc32 not 8 hex digits refused" 2 'model.prior_crc32: expected 8 lowercase hex digits .*got "xyz"' -- \
        "$CUVAE" train "$tmp/prior.json" --set 'model.prior_crc32="xyz"' --out "$tmp/x"
    # a --set model.prior_crc32 that is not the crc32 of --set model.prior_of's VQ-VAE: the message is
    # prior_of's, but the config reads without the crc32's --set alone: that one is named (prior_of's was)
    expect_error "prior: --set prior_crc32 beside a --set prior_of it does not match: the crc32's --set named" 2 \
        '^cuvae: --set model.prior_crc32=deadbeef \(over .*prior.json\): model.prior_of: .*/vq2/model.safetensors is not the VQ-VAE' -- \
        "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/vq2/model.safetensors" --set model.prior_crc32=deadbeef --out "$tmp/x"
    # the prior's VQ-VAE moved: eval, sample and plot follow --set model.prior_of to the copy
    mv "$tmp/vq" "$tmp/vq_moved"
    expect_error "prior: its VQ-VAE moved, no --set: said as moved, how to give it (not 'train it first')" 2 \
        'model.prior_of: .*/vq/model.safetensors: cannot open: No such file or directory \(the VQ-VAE this prior was trained on has moved: give it with --set model.prior_of=CKPT\)' -- \
        "$CUVAE" eval "$tmp/prior/model.safetensors"
    "$CUVAE" plot "$tmp/prior" --set model.prior_of="$tmp/vq_moved/model.safetensors" >/dev/null 2>"$tmp/plotmoved.err" \
        && [ -s "$tmp/prior/figures/samples.png" ] && ok "prior: plot follows --set model.prior_of to a moved VQ-VAE" \
        || bad "prior: plot with a moved VQ-VAE: $(tail -1 "$tmp/plotmoved.err")"
    cp "$tmp/vq_moved/model.safetensors" "$tmp/vq_copy"   # (a name sample -o takes: no other extension)
    expect_error "prior: sample -o onto the VQ-VAE the prior reads: refused (it would be replaced by a PNG)" 2 \
        "sample: -o .*/vq_copy is the file sample reads" -- \
        "$CUVAE" sample "$tmp/prior/model.safetensors" --set model.prior_of="$tmp/vq_copy" -n 4 -o "$tmp/vq_copy"
    expect_error "sample -o with an extension other than .png: refused" 2 "sample: -o .*/s.jpg: sample writes a PNG image; give a name ending in .png" -- \
        "$CUVAE" sample "$tmp/prior/model.safetensors" --set model.prior_of="$tmp/vq_copy" -n 4 -o "$tmp/s.jpg"
    "$CUVAE" eval "$tmp/prior/model.safetensors" --set model.prior_of="$tmp/vq_moved/model.safetensors" --set train.seed=3 \
        2>"$tmp/evalmoved.err" | grep -q '"test_loss"' && ok "prior: eval follows --set model.prior_of to a moved VQ-VAE (with a --set train.seed)" \
        || bad "prior: eval with a moved VQ-VAE: $(tail -1 "$tmp/evalmoved.err")"
    # sample VQ --prior PRIOR: the VQ-VAE is CKPT, wherever it is now (the prior's stored path is gone)
    "$CUVAE" sample "$tmp/vq_moved/model.safetensors" --prior "$tmp/prior/model.safetensors" -n 4 -o "$tmp/moved_prior.png" \
        2>"$tmp/movedprior.err" && [ -s "$tmp/moved_prior.png" ] \
        && ok "prior: sample VQ --prior PRIOR with the VQ-VAE moved (CKPT is the VQ-VAE, not the stored path)" \
        || bad "prior: sample --prior with a moved VQ-VAE: $(tail -1 "$tmp/movedprior.err")"
    expect_error "prior: sample --prior with another VQ-VAE as CKPT, its own moved away: refused naming CKPT" 2 \
        '^cuvae: sample: .*/vq2/model.safetensors --prior .*/prior/model.safetensors: model.prior_of: .*/vq2/model.safetensors is not the VQ-VAE this prior is for' -- \
        "$CUVAE" sample "$tmp/vq2/model.safetensors" --prior "$tmp/prior/model.safetensors" -o "$tmp/x.png"
    mkdir -p "$tmp/vq" && cp "$tmp/vq2/model.safetensors" "$tmp/vq/model.safetensors"   # another VQ-VAE at the stored path
    "$CUVAE" sample "$tmp/vq_moved/model.safetensors" --prior "$tmp/prior/model.safetensors" -n 4 -o "$tmp/moved_prior2.png" \
        2>"$tmp/movedprior2.err" && cmp -s "$tmp/moved_prior.png" "$tmp/moved_prior2.png" \
        && ok "prior: sample VQ --prior PRIOR with another VQ-VAE at the stored path: CKPT decodes, the same image" \
        || bad "prior: sample --prior, another VQ-VAE at the stored path: $(tail -1 "$tmp/movedprior2.err")"
    rm -rf "$tmp/vq"
    mv "$tmp/vq_moved" "$tmp/vq"
else
    bad "a second VQ-VAE did not train"
fi
# a VQ-VAE trained on binarized images: its prior encodes the bits it read (drawn once, with the
# VQ-VAE's seed), in training and in eval alike. Two VQ-VAEs of 0 epochs have the same weights
# whatever their data.binarize; priors of 0 epochs over them differ only in the codes they read
for b in none static; do
    "$CUVAE" train "$tmp/vq.json" --set data.binarize=$b --set train.epochs=0 --out "$tmp/vq0_$b" 2>/dev/null
    "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/vq0_$b/model.safetensors" --set train.epochs=0 \
        --out "$tmp/prior0_$b" 2>/dev/null
done
grey=$(file_number "$tmp/prior0_none/eval.json" test_loss); bits=$(file_number "$tmp/prior0_static/eval.json" test_loss)
is_number "$grey" && is_number "$bits" && [ "$grey" != "$bits" ] \
    && ok "prior over a VQ-VAE of binarized images encodes bits, not grey levels (-log p(codes) $bits vs $grey at the same weights)" \
    || bad "prior over binarized images: -log p(codes) '$bits' with bits, '$grey' with grey levels (want two different numbers)"
"$CUVAE" eval "$tmp/prior0_static/model.safetensors" -o "$tmp/prior0_eval.json" >/dev/null 2>&1
is_number "$bits" && [ "$(file_number "$tmp/prior0_eval.json" test_loss)" = "$bits" ] \
    && ok "... and eval encodes the same bits as training" || bad "prior over bits: eval $(file_number "$tmp/prior0_eval.json" test_loss) vs $bits"
"$CUVAE" train "$tmp/vq.json" --set 'model.encoder=[{"flatten":{}},{"linear":32},"relu",{"linear":8}]' \
    --set 'model.decoder=[{"linear":784}]' --set train.epochs=1 --set data.train_limit=100 --out "$tmp/vq_flat" 2>/dev/null
expect_error "prior: a VQ-VAE of flat codes (a 1 x 1 grid): refused as such, not with an input_dim it cannot take" 2 \
    'model.prior_of: .*/vq_flat/model.safetensors encodes an image to one code \(its encoder ends flat, a 1 x 1 grid\)' -- \
    "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/vq_flat/model.safetensors" --out "$tmp/x"
expect_error "prior: a missing checkpoint: said, with how to get one" 2 'model.prior_of: .*/nothing.safetensors: cannot open: No such file or directory \(train that VQ-VAE first, with --out at that folder, or give yours with --set model.prior_of=CKPT\)' -- \
    "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/nothing.safetensors" --out "$tmp/x"
expect_error "prior: not a VQ-VAE" 2 'model.prior_of: .* is a "pixelcnn" checkpoint, not a vq_vae' -- \
    "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/prior/model.safetensors" --out "$tmp/x"
expect_error "prior: input_dim must be the grid" 2 'model.input_dim: must be 49, the positions of the VQ-VAE.s code grid \(7 x 7\), got 784' -- \
    "$CUVAE" train "$tmp/prior.json" --set model.input_dim=784 --out "$tmp/x"
expect_error "prior: K output channels" 2 'model.network: must end in 32 channels of logits \(32, 7, 7\)' -- \
    "$CUVAE" train "$tmp/prior.json" --set 'model.network=[{"masked_conv2d_a": 8, "kernel": 3}, "relu", {"conv2d": 1, "kernel": 1}]' --out "$tmp/x"
expect_error "prior: no binarization" 2 'data.binarize: a prior over a VQ-VAE.s codes reads the images as the VQ-VAE does' -- \
    "$CUVAE" train "$tmp/prior.json" --set data.binarize=dynamic --out "$tmp/x"
expect_error "prior: made cannot" 2 'model.prior_of: a prior over a VQ-VAE.s codes is a "pixelcnn"' -- \
    "$CUVAE" train "$tmp/base.json" --set model.prior_of=x --out "$tmp/x"
# ---- a PixelCNN prior reads its VQ-VAE's codes as bytes: a codebook of more than 256 codes is
# refused before anything is trained (the prior's 300 output channels would accept it: without the
# check it trained, exit 0, codes 256..299 aliased onto 0..43). An untrained VQ-VAE is enough.
python3 - configs/lectures/vq_vae_k256_prior.json "$tmp/prior300.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["model"]["network"][-1] = {"conv2d": 300, "kernel": 1}   # logits for 300 codes
json.dump(c, open(sys.argv[2], "w"))
PY
if "$CUVAE" train configs/lectures/vq_vae_k256.json --set data.dir=data/mnist --set data.train_limit=200 \
       --set data.test_limit=100 --set device=cpu --set train.epochs=0 --set train.epoch_images=false \
       --set model.codebook.size=300 --out "$tmp/vq300" >/dev/null 2>"$tmp/vq300.err"; then
    expect_error "prior over a VQ-VAE of 300 codes: refused (codes travel as bytes)" 2 \
        "model.prior_of: .*/vq300/model.safetensors: its codebook has 300 codes; a prior takes at most 256 \(codes travel as bytes\)" -- \
        "$CUVAE" train "$tmp/prior300.json" --set data.dir=data/mnist --set data.train_limit=200 \
        --set data.test_limit=100 --set device=cpu --set train.epochs=1 --set train.epoch_images=false \
        --set model.prior_of="$tmp/vq300/model.safetensors" --out "$tmp/prior300"
    [ ! -e "$tmp/prior300" ] && ok "... and no run folder made" || bad "prior over 300 codes: $tmp/prior300 was made"
else
    bad "an untrained VQ-VAE of 300 codes: $(tail -1 "$tmp/vq300.err")"
fi
cli_finish cli_autoregressive

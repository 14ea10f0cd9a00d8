#!/usr/bin/env bash
# cli_layers.sh: models whose encoder / decoder are layer lists (convolutions,
# batch norm, activations, flatten, reshape), and VQ-VAEs, through the real binary: training
# lowers the loss, eval of the checkpoint reproduces the run's test loss (the
# running statistics travel with the weights), --resume is bit-identical to an
# uninterrupted run, sample and plot work, the effective config reads back the
# same, and every bad layer list is one clear line naming the layer, exit 2.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/t10k-images-idx3-ubyte.gz ]; then
    skip "layer-list models" "data/mnist missing (run make data)"; cli_finish cli_layers; exit
fi

"$CUVAE" --help | grep -q "layer lists:" && "$CUVAE" --help | grep -q "vq_vae" \
    && "$CUVAE" sample --help | grep -q "vq_vae decodes codes drawn uniformly" \
    && ok "--help names the model kinds and layer lists; sample --help the VQ-VAE's samples" || bad "--help"
# a small DCGAN-style conv VAE (the lecture's architecture with fewer channels)
cat > "$tmp/conv.json" <<'JSON'
{
  "name": "conv_small",
  "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 768, "test_limit": 256},
  "model": {
    "kind": "vae", "input_dim": 784, "latent_dim": 8,
    "encoder": [{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, {"leaky_relu": 0.2},
                {"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, {"batch_norm": {}}, {"leaky_relu": 0.2},
                "flatten"],
    "decoder": [{"linear": 784}, {"reshape": [16, 7, 7]}, {"batch_norm": {}}, "relu",
                {"conv_transpose2d": 8, "kernel": 4, "stride": 2, "padding": 1}, {"batch_norm": {"momentum": 0.2}},
                "relu", {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1}],
    "output": "bernoulli"
  },
  "train": {"epochs": 2, "batch_size": 64, "lr": 0.002, "seed": 3, "epoch_images": false},
  "device": "cpu"
}
JSON
if "$CUVAE" train "$tmp/conv.json" --out "$tmp/run" 2>"$tmp/run.err"; then
    ok "conv VAE with batch norm trains on the CPU"
    first=$(sed -nE 's/^epoch 1\/2: .*test loss ([0-9.]+).*/\1/p' "$tmp/run.err")
    second=$(sed -nE 's/^epoch 2\/2: .*test loss ([0-9.]+).*/\1/p' "$tmp/run.err")
    is_number "$first" && is_number "$second" && awk -v a="$first" -v b="$second" 'BEGIN { exit !(b < a && a < 545) }' \
        && ok "test loss falls ($first -> $second nats/example)" || bad "test loss $first -> $second"
    "$CUVAE" eval "$tmp/run/model.safetensors" -o "$tmp/eval.json" >/dev/null 2>&1
    [ "$(file_number "$tmp/eval.json" test_loss)" = "$(file_number "$tmp/run/eval.json" test_loss)" ] \
        && ok "eval of the checkpoint reproduces the run's test loss (running statistics saved)" \
        || bad "eval $(file_number "$tmp/eval.json" test_loss) vs run $(file_number "$tmp/run/eval.json" test_loss)"
    "$CUVAE" sample "$tmp/run/model.safetensors" -n 16 -o "$tmp/s.png" 2>/dev/null && [ -s "$tmp/s.png" ] \
        && ok "sample decodes through the conv decoder" || bad "sample"
    "$CUVAE" plot "$tmp/run" 2>"$tmp/plot.err" && ls "$tmp/run"/figures/*.png >/dev/null 2>&1 \
        && ok "plot draws the run's figures" || bad "plot: $(tail -1 "$tmp/plot.err")"
    # the effective config stored in the run reads back to itself
    "$CUVAE" train "$tmp/run/config.json" --out "$tmp/again" --set train.epochs=0 2>/dev/null \
        && cmp -s <(grep -v '"epochs"' "$tmp/run/config.json") <(grep -v '"epochs"' "$tmp/again/config.json") \
        && ok "the effective config (layers with defaults filled in) reads back the same" \
        || bad "effective config round trip: $(diff "$tmp/run/config.json" "$tmp/again/config.json" | head -3)"
    grep -q '"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1, "output_padding": 0' "$tmp/run/config.json" \
        && grep -q '"batch_norm": {"momentum": 0.1, "eps": 1e-05}' "$tmp/run/config.json" \
        && ok "the effective config says every layer option" || bad "effective config layers"
else
    bad "conv VAE training: $(tail -2 "$tmp/run.err")"
fi

# --resume: 1 epoch, then resumed to 2 == 2 uninterrupted epochs, bit for bit
"$CUVAE" train "$tmp/conv.json" --set train.epochs=1 --out "$tmp/res" 2>/dev/null \
    && "$CUVAE" train "$tmp/conv.json" --out "$tmp/res" --resume 2>"$tmp/res.err" \
    && cmp -s "$tmp/run/model.safetensors" "$tmp/res/model.safetensors" \
    && ok "conv VAE: 1 + resumed 1 epochs == 2 epochs, bit-identical (batch-norm buffers resumed)" \
    || bad "conv resume: $(tail -1 "$tmp/res.err")"

# bad layer lists: one line naming the layer (index and kind) and the shapes, exit 2
expect_error "unknown layer" 2 'model.encoder\[1\]: unknown layer "conv3d"; layers: linear, conv2d' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 3}, "conv3d"]' --out "$tmp/r"
expect_error "unknown option" 2 'model.encoder\[0\].kernal: unknown option of conv2d \(it takes: kernel, stride, padding\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernal": 3}, "flatten"]' --out "$tmp/r"
# an option the kind does not take is unknown whatever its value (PyTorch's bias=False is no option here)
expect_error "unknown option with a boolean value: unknown, not 'must be a number'" 2 'model.encoder\[1\].bias: unknown option: linear takes none' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=["flatten", {"linear": 8, "bias": false}]' --out "$tmp/r"
expect_error "a known option with a boolean value: must be a number" 2 'model.encoder\[0\].kernel: must be a number, got a boolean' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": true}, "flatten"]' --out "$tmp/r"
expect_error "a value listing 4 numbers" 2 'model.encoder\[0\].reshape: lists 4 numbers; a layer.s value is at most 3' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"reshape": [1, 2, 3, 4]}, "flatten"]' --out "$tmp/r"
expect_error "an empty list as a layer's value" 2 'model.encoder\[1\].flatten: an empty list' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 3}, {"flatten": []}]' --out "$tmp/r"
# a reshape's sizes whose product wraps modulo 2^64 (to 26 values): refused as too large, not accepted
expect_error "a reshape of more than 2^31 - 1 values (a product that wraps)" 2 'model.encoder\[2\] \(reshape\): cannot reshape \(26\) \(26 values\) to \(3785993, 1764119, 2761926\) \(more than 2147483647 values an example\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=["flatten", {"linear": 26}, {"reshape": [3785993, 1764119, 2761926]}, "flatten"]' --out "$tmp/r"
expect_error "missing kernel" 2 'model.encoder\[0\].kernel: missing \(conv2d needs it\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8}, "flatten"]' --out "$tmp/r"
expect_error "fractional stride" 2 'model.encoder\[0\].stride: must be an integer, got 1.5' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 3, "stride": 1.5}, "flatten"]' --out "$tmp/r"
expect_error "kernel larger than its input" 2 'model.encoder\[2\] \(conv2d\): kernel 9 is larger than its input \(8, 7, 7\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 4, "stride": 4}, "relu", {"conv2d": 8, "kernel": 9}, "flatten"]' --out "$tmp/r"
expect_error "reshape that does not divide" 2 'model.decoder\[1\] \(reshape\): cannot reshape \(700\) \(700 values\) to \(16, 7, 7\) \(784 values\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 700}, {"reshape": [16, 7, 7]}, {"conv_transpose2d": 1, "kernel": 4, "stride": 4}]' --out "$tmp/r"
expect_error "decoder output is not the data's shape" 2 'model.decoder: its output \(1, 32, 32\) is not the data.s shape \(1, 28, 28\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 256}, {"reshape": [16, 4, 4]}, {"conv_transpose2d": 1, "kernel": 8, "stride": 8}]' --out "$tmp/r"
expect_error "decoder ending in an activation (a second sigmoid on bernoulli logits)" 2 'model.decoder\[1\] \(sigmoid\): the decoder ends in the output.s logits, so not in an activation or batch norm' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 784}, "sigmoid"]' --out "$tmp/r"
expect_error "decoder ending in batch norm before a reshape" 2 'model.decoder\[1\] \(batch_norm\): the decoder ends in the output.s values' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.output=gaussian' --set 'loss.reconstruction=mse' \
    --set 'model.decoder=[{"linear": 784}, {"batch_norm": {}}, {"reshape": [1, 28, 28]}]' --out "$tmp/r"
# a gaussian output: the reason is its own, not the bernoulli's sigmoid (which it was, 2026-12-05)
expect_error "gaussian decoder ending in an activation: the gaussian's reason" 2 'model.decoder\[1\] \(sigmoid\): the decoder ends in the output.s values, so not in an activation or batch norm \(model.output "gaussian": the decoder.s last layer gives the mean itself' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.output=gaussian' --set 'loss.reconstruction=mse' \
    --set 'model.decoder=[{"linear": 784}, "sigmoid"]' --out "$tmp/r"
# model.input_dim against model.input_shape: said before the layer lists are built against the
# shape (the decoder's message compared (1, 28, 28) with (1, 28, 28))
expect_error "input_dim against input_shape with layer lists: that conflict, named" 2 'model.input_dim: is 785 but model.input_shape \[1, 28, 28\] holds 784 values \(give one of them\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set model.input_dim=785 --set 'model.input_shape=[1, 28, 28]' --out "$tmp/r"
expect_error "encoder not flat" 2 'model.encoder: ends in \(8, 14, 14\); end it with \{"flatten": \{\}\}' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}]' --out "$tmp/r"
expect_error "linear on an image" 2 'model.encoder\[0\] \(linear\): needs a flat input, got \(1, 28, 28\); put \{"flatten": \{\}\} before it' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"linear": 64}]' --out "$tmp/r"
expect_error "output_padding not below stride" 2 'model.decoder\[2\].output_padding: must be smaller than the stride \(2\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 784}, {"reshape": [16, 7, 7]}, {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "output_padding": 2}]' --out "$tmp/r"
expect_error "two kinds in one object" 2 'model.encoder\[0\]: names two layers \("conv2d" and "relu"\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 3, "relu": {}}, "flatten"]' --out "$tmp/r"
expect_error "a width among layers" 2 'model.encoder\[1\]: a width among layer objects; write \{"linear": 64\}' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=["flatten", 64]' --out "$tmp/r"
expect_error "activation unused with two layer lists" 2 'model.activation: unused' -- \
    "$CUVAE" train "$tmp/conv.json" --set model.activation=tanh --out "$tmp/r"
expect_error "cvae with layer lists" 2 'model.kind: "cvae" needs encoder and decoder as lists of widths' -- \
    "$CUVAE" train "$tmp/conv.json" --set model.kind=cvae --out "$tmp/r"
expect_error "an output of 2^32 + 784 values an example (not taken modulo 2^32)" 2 'model.decoder\[2\] \(conv_transpose2d\): output \(5, 52, 16519108\) holds 4294968080 values an example, more than 2147483647' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 1032442}, {"reshape": [1, 1, 1032442]}, {"conv_transpose2d": 5, "kernel": 37, "stride": 16, "output_padding": 15}, "flatten"]' --out "$tmp/r"
expect_error "a convolution output of 2^32 + 1024 values before a flatten" 2 'model.encoder\[3\] \(conv_transpose2d\): output \(1024, 1985, 2113\) holds 4294968320 values an example' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=["flatten", {"linear": 4092}, {"reshape": [1, 62, 66]}, {"conv_transpose2d": 1024, "kernel": 33, "stride": 32}, "flatten"]' --out "$tmp/r"
expect_error "a transposed convolution 13 billion positions wide (no int overflow)" 2 'model.encoder\[4\] \(conv_transpose2d\): output \(1, 1, 13136560129\) from input \(1, 1, 205258753\) is more than 2147483647 values an example' -- \
    "$CUVAE" train "$tmp/conv.json" --out "$tmp/r" --set 'model.encoder=[{"reshape": [1, 1, 784]}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, "flatten"]'
# a batch whose image positions are more GEMM columns than an int holds: refused before any allocation
"$CUVAE" train "$tmp/conv.json" --set data.train_limit=1024 --set train.batch_size=1000 --out "$tmp/r" \
    --set 'model.encoder=[{"reshape": [1, 1, 784]}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, "flatten"]' \
    2>"$tmp/cols.err"; rc=$?
[ $rc -eq 2 ] && tail -1 "$tmp/cols.err" | grep -qE '^cuvae: --set train.batch_size=1000 \(over .*\): model.encoder\[2\] \(conv_transpose2d\): a batch of 1000 examples of 3207169 positions is more than 2147483647 GEMM columns \(32-bit sizes\): lower train.batch_size' \
    && [ ! -e "$tmp/r" ] && ok "a batch of more GEMM columns than 32 bits hold: refused, naming the layer, before the run folder" \
    || bad "GEMM columns over 32 bits: exit $rc, $(tail -1 "$tmp/cols.err")"
# ... where the batch is the evaluation's (1000 test examples at a time), it says so, not train.batch_size
expect_error "the evaluation's batch over the GEMM columns: names the evaluation and data.test_limit" 2 '^cuvae: [^ ]*conv.json: model.encoder\[2\] \(conv_transpose2d\): a batch of 1000 examples of 3207169 positions .*: the evaluation takes up to 1000 test examples at a time .*lower data.test_limit' -- \
    "$CUVAE" train "$tmp/conv.json" --set data.train_limit=8 --set data.test_limit=1000 --set train.batch_size=4 --out "$tmp/r" \
    --set 'model.encoder=[{"reshape": [1, 1, 784]}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, {"conv_transpose2d": 1, "kernel": 1, "stride": 64}, "flatten"]'
# batch_norm over flat features: a training batch of one example has no statistics
flat_bn='model.encoder=["flatten", {"linear": 16}, {"batch_norm": {}}, "relu"]'
"$CUVAE" train "$tmp/conv.json" --set "$flat_bn" --set train.batch_size=1 --set train.epochs=1 --out "$tmp/r" 2>"$tmp/bn1.err"; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c . "$tmp/bn1.err")" -eq 1 ] && tail -1 "$tmp/bn1.err" | grep -qE '^cuvae: --set train.batch_size=1 \(over [^ ]+\.json\): model.encoder\[2\] \(batch_norm\) normalises each feature over the batch: a batch of one example has no statistics \(train.batch_size 1, 768 training examples\); use 2 or more$' \
    && [ ! -e "$tmp/r" ] && ok "flat batch_norm with train.batch_size 1: refused (PyTorch's BatchNorm1d refuses it too)" \
    || bad "flat batch_norm, batch 1: exit $rc, $(tail -1 "$tmp/bn1.err")"
# ... and where the batch is one because the data hold one example: the --set that gave the data is named
expect_error "flat batch_norm on one training example: names the data's --set, not train.batch_size" 2 \
    '^cuvae: --set data.train_limit=1 \(over [^ ]+\.json\): model.encoder\[2\] \(batch_norm\) normalises each feature over the batch: a batch of one example has no statistics \(train.batch_size 64, 1 training example\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set "$flat_bn" --set data.train_limit=1 --set train.epochs=1 --out "$tmp/r"
# ... and where data.validation held out all but one: that --set is named, and what it held out
expect_error "flat batch_norm on the one example data.validation left: names data.validation" 2 \
    '^cuvae: --set data.validation=0.5 \(over [^ ]+\.json\): model.encoder\[2\] \(batch_norm\) normalises each feature over the batch: a batch of one example has no statistics \(train.batch_size 64, 1 training example once data.validation held out 1\); use 2 or more$' -- \
    "$CUVAE" train "$tmp/conv.json" --set "$flat_bn" --set data.train_limit=2 --set data.validation=0.5 --set train.epochs=1 --out "$tmp/r"
"$CUVAE" train "$tmp/conv.json" --set "$flat_bn" --set data.train_limit=65 --set train.batch_size=32 --set train.epochs=1 --out "$tmp/bn_tail" 2>"$tmp/bn_tail.err" \
    && grep -q "^cuvae: the last example of each epoch's order is left out: alone in a batch it would give model.encoder\[2\] (batch_norm) no statistics$" "$tmp/bn_tail.err" \
    && [ "$(grep -c '"epoch"' "$tmp/bn_tail/log.jsonl")" -eq 1 ] \
    && ok "flat batch_norm, 65 examples in batches of 32: the lone last example is left out, said once" \
    || bad "flat batch_norm, a last batch of one: $(tail -1 "$tmp/bn_tail.err")"
"$CUVAE" train "$tmp/conv.json" --set train.batch_size=1 --set data.train_limit=8 --set train.epochs=1 --out "$tmp/bn_img" 2>"$tmp/bn_img.err" \
    && ! grep -q "left out\|no statistics" "$tmp/bn_img.err" \
    && ok "batch_norm over images with train.batch_size 1: trained (statistics over the positions)" \
    || bad "image batch_norm, batch 1: $(tail -1 "$tmp/bn_img.err")"
expect_error "an unknown layer name first (not read as a width)" 2 'model.encoder\[0\]: unknown layer "gelu"; layers: linear' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=["gelu", "flatten"]' --out "$tmp/r"
expect_error "a width given as a string" 2 'model.encoder\[0\]: must be an integer, got a string' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=["64"]' --out "$tmp/r"
expect_error "batch_norm with a value" 2 'model.encoder\[0\].batch_norm: takes no value' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"batch_norm": 3}, "flatten"]' --out "$tmp/r"
# a checkpoint whose tensors do not match the graph names the tensor and both shapes
if [ -s "$tmp/run/model.safetensors" ]; then
    # (eval refuses --set of model keys: the stored config is edited instead, its crc32
    # recomputed as cuvae does: the data, then each other metadata key and value with its NUL)
    python3 - "$tmp/run/model.safetensors" "$tmp/k3.safetensors" <<'PY'
import json, struct, sys, zlib
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); meta = header["__metadata__"]; del meta["crc32"]
config = json.loads(meta["config"]); config["model"]["encoder"][0]["kernel"] = 3; meta["config"] = json.dumps(config)
crc = zlib.crc32(raw[8 + n:])
for key, value in meta.items():
    crc = zlib.crc32(value.encode() + b"\0", zlib.crc32(key.encode() + b"\0", crc))
meta["crc32"] = "%08x" % crc
text = json.dumps(header).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
    expect_error "checkpoint tensor shape mismatch" 2 'tensor encoder.0.weight: shape \[8, 1, 4, 4\], model needs \[8, 1, 3, 3\]' -- \
        "$CUVAE" eval "$tmp/k3.safetensors"
fi
# a VQ-VAE: codes from a conv encoder, EMA codebook with dead-code restart
cat > "$tmp/vq.json" <<'JSON'
{
  "name": "vq_small",
  "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 768, "test_limit": 256},
  "model": {
    "kind": "vq_vae", "input_dim": 784, "latent_dim": 8,
    "encoder": [{"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu",
                {"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu", {"conv2d": 8, "kernel": 1}],
    "codebook": {"size": 32, "update": "ema", "restart_dead": 0.05},
    "decoder": [{"conv_transpose2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu",
                {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1}],
    "output": "bernoulli"
  },
  "train": {"epochs": 2, "batch_size": 64, "lr": 0.002, "seed": 3, "epoch_images": false},
  "device": "cpu"
}
JSON
if "$CUVAE" train "$tmp/vq.json" --out "$tmp/vq" 2>"$tmp/vq.err"; then
    grep -q "^epoch 2/2: .*(rec [0-9.]* nats + VQ [0-9.]* squared distance)" "$tmp/vq.err" \
        && grep -q "codes used, perplexity" "$tmp/vq.err" \
        && ok "VQ-VAE trains; the second term is labelled VQ (not KL), codes used and perplexity reported" \
        || bad "VQ-VAE messages: $(grep -E '^epoch 2/2|eval:' "$tmp/vq.err")"
    "$CUVAE" eval "$tmp/vq/model.safetensors" -o "$tmp/vq_eval.json" >/dev/null 2>&1
    [ "$(file_number "$tmp/vq_eval.json" test_loss)" = "$(file_number "$tmp/vq/eval.json" test_loss)" ] \
        && grep -q '"codes_used": [0-9]*, "perplexity": [0-9.]*' "$tmp/vq_eval.json" \
        && grep -q '"rec_mse_over_variance": [0-9.]*' "$tmp/vq_eval.json" \
        && ok "VQ-VAE: eval of the checkpoint reproduces the run (codebook and EMA statistics saved)" \
        || bad "VQ-VAE eval $(file_number "$tmp/vq_eval.json" test_loss) vs $(file_number "$tmp/vq/eval.json" test_loss)"
    # its forward is deterministic: the BCE at the codes is the rec term itself (it was null)
    python3 -c 'import json, sys; e = json.load(open(sys.argv[1])); b = e["rec_bce_at_mean"]
sys.exit(not (isinstance(b, float) and abs(b - e["rec"]) <= 1e-6 * abs(e["rec"]) and e["rec_mse_at_mean"] > 0))' "$tmp/vq_eval.json" \
        && ok "VQ-VAE eval.json: rec_bce_at_mean is the rec term ($(file_number "$tmp/vq_eval.json" rec_bce_at_mean)), rec_mse_at_mean given" \
        || bad "VQ-VAE eval.json at-mean errors: $(grep -o '"rec[a-z_]*": [^,]*' "$tmp/vq_eval.json" | head -3 | tr '\n' ' ')"
    expect_error "VQ-VAE eval --z: refused (no z is drawn; it printed the VQ term as kl)" 2 \
        "eval: --z chooses how a VAE.s z is drawn; a vq_vae.s codes are deterministic" -- \
        "$CUVAE" eval "$tmp/vq/model.safetensors" --z mean
    expect_error "VQ-VAE plot --z mean: refused as eval --z is (it was taken and ignored)" 2 \
        "plot: --z mean places the means of q\(z\|x\) in the latent scatter; a vq_vae.s codes are deterministic" -- \
        "$CUVAE" plot "$tmp/vq" --z mean
    "$CUVAE" sample "$tmp/vq/model.safetensors" -n 16 -o "$tmp/vqs.png" 2>"$tmp/vqs.err" && [ -s "$tmp/vqs.png" ] \
        && grep -q "codes drawn uniformly" "$tmp/vqs.err" \
        && ok "VQ-VAE sample decodes uniformly drawn codes and says so" || bad "VQ-VAE sample: $(cat "$tmp/vqs.err")"
    "$CUVAE" plot "$tmp/vq" 2>"$tmp/vqplot.err" && [ -s "$tmp/vq/figures/codebook_usage.png" ] \
        && [ -s "$tmp/vq/figures/samples.png" ] && [ -s "$tmp/vq/figures/reconstructions.png" ] \
        && ok "VQ-VAE plot: samples, reconstructions, codebook usage" || bad "VQ-VAE plot: $(tail -1 "$tmp/vqplot.err")"
    # its figures have no latent scatter: the options that shape one are refused, saying so
    # (--latent-range was dropped unsaid on 2-value codes, or refused as "a t-SNE" on others)
    for opt in "--latent-range -1:1" "--tsne-points 500"; do
        "$CUVAE" plot "$tmp/vq" $opt 2>"$tmp/vqopt.err"; rc=$?
        [ $rc -eq 2 ] && grep -qx "cuvae: plot: ${opt%% *} [a-zA-Z -]* a latent scatter; a vq_vae's figures have no latent scatter" "$tmp/vqopt.err" \
            && ok "VQ-VAE plot ${opt%% *}: refused (no latent scatter)" || bad "VQ-VAE plot $opt: rc $rc: $(tail -1 "$tmp/vqopt.err")"
    done
    "$CUVAE" train "$tmp/vq.json" --set train.epochs=1 --out "$tmp/vqres" 2>/dev/null \
        && "$CUVAE" train "$tmp/vq.json" --out "$tmp/vqres" --resume 2>"$tmp/vqres.err" \
        && cmp -s "$tmp/vq/model.safetensors" "$tmp/vqres/model.safetensors" \
        && ok "VQ-VAE: 1 + resumed 1 epochs == 2 epochs, bit-identical (EMA statistics resumed)" \
        || bad "VQ-VAE resume: $(tail -1 "$tmp/vqres.err")"
else
    bad "VQ-VAE training: $(tail -2 "$tmp/vq.err")"
fi
sed '/"codebook"/d' "$tmp/vq.json" > "$tmp/vq_nocodebook.json"
expect_error "vq_vae without a codebook" 2 'model.codebook: missing \(vq_vae needs e.g. \{"size": 256\}\)' -- \
    "$CUVAE" train "$tmp/vq_nocodebook.json" --out "$tmp/r"
expect_error "codebook on a vae" 2 'model.codebook: only for kind "vq_vae" \(got "vae"\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.codebook={"size": 8}' --out "$tmp/r"
expect_error "KL weight on a vq_vae" 2 'loss.w_kl: a VQ-VAE has no KL term' -- \
    "$CUVAE" train "$tmp/vq.json" --set loss.w_kl=1 --out "$tmp/r"
expect_error "encoder channels are not the code size" 2 'model.encoder: ends in \(16, 7, 7\), but the codes have model.latent_dim = 8 values' -- \
    "$CUVAE" train "$tmp/vq.json" --set model.latent_dim=8 --set 'model.encoder=[{"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu", {"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}]' --out "$tmp/r"
expect_error "vq_vae with width lists" 2 'model.kind: "vq_vae" needs encoder and decoder as layer lists' -- \
    "$CUVAE" train "$tmp/vq.json" --set 'model.encoder=[64]' --out "$tmp/r"
expect_error "EMA options with the loss update" 2 'model.codebook: decay, eps and restart_dead are the EMA update' -- \
    "$CUVAE" train "$tmp/vq.json" --set 'model.codebook={"size": 32, "decay": 0.9}' --out "$tmp/r"
expect_error "importance sampling on a vq_vae" 2 'eval.iw_samples: needs a variational model \(kind vae or cvae\), got kind "vq_vae"' -- \
    "$CUVAE" train "$tmp/vq.json" --set eval.iw_samples=10 --out "$tmp/r"
expect_error "codebook of one code" 2 'model.codebook.size: must be >= 2, got 1' -- \
    "$CUVAE" train "$tmp/vq.json" --set 'model.codebook={"size": 1}' --out "$tmp/r"
# null removes a key a base config (or the file, for --set) sets: a child switching the codebook
# to the loss update leaves out the base's EMA keys; layer lists over a width-list config leave
# out its activation
printf '{"base": "%s", "name": "vq_loss_child", "train": {"epochs": 1},\n "model": {"codebook": {"update": "loss", "restart_dead": null}}}\n' \
    "$tmp/vq.json" > "$tmp/vq_loss_child.json"
if "$CUVAE" train "$tmp/vq_loss_child.json" --set data.train_limit=128 --set data.test_limit=64 --out "$tmp/vq_loss" \
        >/dev/null 2>"$tmp/vq_loss.err" &&
   grep -q '"codebook": {"size": 32, "beta": 0.25, "update": "loss"}' "$tmp/vq_loss/config.json"; then
    ok "a child config's null removes its base's key (restart_dead under the loss update): trains, config.json without it"
else
    bad "null in a child config: $(tail -1 "$tmp/vq_loss.err")"
fi
if "$CUVAE" train configs/mnist_vae.json --set 'model.encoder=[{"flatten": {}}, {"linear": 32}]' \
        --set 'model.decoder=[{"linear": 784}]' --set model.activation=null --set device=cpu --set train.epochs=1 \
        --set data.train_limit=128 --set data.test_limit=64 --set eval.iw_samples=0 --out "$tmp/null_set" \
        >/dev/null 2>"$tmp/null_set.err" && ! grep -q '"activation"' "$tmp/null_set/config.json"; then
    ok "--set model.activation=null: layer lists over a width-list config"
else
    bad "--set model.activation=null: $(tail -1 "$tmp/null_set.err")"
fi
expect_error "a leaky_relu slope that is 0 in float32" 2 \
    'model.encoder\[1\].leaky_relu: the negative slope 1e-300 rounds to 0 in float32' -- \
    "$CUVAE" train "$tmp/vq.json" --set 'model.encoder=[{"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, {"leaky_relu": 1e-300}, {"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}]' --out "$tmp/r"
expect_error "a restart_dead threshold that is 0 in float32 (no restart would ever happen)" 2 \
    'model.codebook.restart_dead: 1e-300 rounds to 0 in float32' -- \
    "$CUVAE" train "$tmp/vq.json" --set model.codebook.restart_dead=1e-300 --out "$tmp/r"
expect_error "--set KEY=null of a key the config does not have" 2 \
    '\-\-set model.codebook.decay=null: null removes a key, and the config has no "model.codebook.decay"' -- \
    "$CUVAE" train "$tmp/vq.json" --set model.codebook.decay=null --out "$tmp/r"
# a residual layer's span: at least 1 (0 would add the layer's own input to itself, y = 2 x) and
# reaching back no further than the network's input (a span past it has no tensor to add)
expect_error "a residual of span 0 refused (it would add its own input to itself)" 2 \
    'model.decoder\[1\].residual: the number of layers it spans must be integers in \[1, ' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 784}, {"residual": 0}, {"linear": 784}]' --out "$tmp/r"
expect_error "a residual reaching before the network's input refused (its span one too many)" 2 \
    'model.decoder\[1\] \(residual\): 2 reaches before the network.s first layer \(at most 1 here\)' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 8}, {"residual": 2}, {"linear": 784}]' --out "$tmp/r"
# a reshape's shape is [C, H, W] or [N]: two sizes are neither (no 2-D example shape exists)
expect_error "a reshape to two sizes refused" 2 \
    'model.decoder\[1\].reshape: needs the shape of one example, \[C, H, W\] or \[N\], got 2 numbers' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 784}, {"reshape": [28, 28]}, {"linear": 784}]' --out "$tmp/r"
# leaky_relu's slope is in [0, 1] (a negative one flips the sign its backward reads from the output)
expect_error "a negative leaky_relu slope refused" 2 \
    'model.encoder\[1\].leaky_relu: the negative slope must be numbers in \[0, 1\], got -0.5' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, {"leaky_relu": -0.5}, "flatten"]' --out "$tmp/r"
# leaky_relu without a slope takes PyTorch's default, 0.01, and the effective config says it
if "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, "leaky_relu", {"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, {"leaky_relu": {}}, "flatten"]' \
        --set train.epochs=0 --out "$tmp/leaky_default" >/dev/null 2>"$tmp/leaky_default.err"; then
    [ "$(grep -o '"leaky_relu": [-0-9.e]*' "$tmp/leaky_default/config.json" | sort | uniq -c | sed 's/^ *//')" = '2 "leaky_relu": 0.01' ] \
        && ok "leaky_relu without a slope: PyTorch's default 0.01, said in the effective config" \
        || bad "leaky_relu default slope: want both 0.01, config has $(grep -o '"leaky_relu": [^,}]*' "$tmp/leaky_default/config.json" | tr '\n' ' ')"
else
    bad "leaky_relu without a slope: $(tail -1 "$tmp/leaky_default.err")"
fi
# a one-number value given as a list ({"linear": [784]}): refused, not read as its first number
expect_error "a linear width given as a list refused" 2 \
    'model.decoder\[1\].linear: needs the output width as a number, not a list' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.decoder=[{"linear": 32}, {"linear": [784]}]' --out "$tmp/r"
cli_finish cli_layers

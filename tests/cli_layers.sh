#!/usr/bin/env bash
# cli_layers.sh: models whose encoder / decoder are layer lists (convolutions,
# batch norm, activations, flatten, reshape) through the real binary: training
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
field() { sed -E "s/.*\"$2\": ([-0-9.e+]+).*/\1/" "$1"; }
if "$CUVAE" train "$tmp/conv.json" --out "$tmp/run" 2>"$tmp/run.err"; then
    ok "conv VAE with batch norm trains on the CPU"
    first=$(grep -E "^epoch 1/2:" "$tmp/run.err" | sed -E 's/.*test loss ([0-9.]+).*/\1/')
    second=$(grep -E "^epoch 2/2:" "$tmp/run.err" | sed -E 's/.*test loss ([0-9.]+).*/\1/')
    awk -v a="$first" -v b="$second" 'BEGIN { exit !(b < a && a < 545) }' \
        && ok "test loss falls ($first -> $second nats/example)" || bad "test loss $first -> $second"
    "$CUVAE" eval "$tmp/run/model.safetensors" -o "$tmp/eval.json" >/dev/null 2>&1
    [ "$(field "$tmp/eval.json" test_loss)" = "$(field "$tmp/run/eval.json" test_loss)" ] \
        && ok "eval of the checkpoint reproduces the run's test loss (running statistics saved)" \
        || bad "eval $(field "$tmp/eval.json" test_loss) vs run $(field "$tmp/run/eval.json" test_loss)"
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
expect_error "batch_norm with a value" 2 'model.encoder\[0\].batch_norm: takes no value' -- \
    "$CUVAE" train "$tmp/conv.json" --set 'model.encoder=[{"batch_norm": 3}, "flatten"]' --out "$tmp/r"
# a checkpoint whose tensors do not match the graph names the tensor and both shapes
if [ -s "$tmp/run/model.safetensors" ]; then
    expect_error "checkpoint tensor shape mismatch" 2 'tensor encoder.0.weight: shape \[8, 1, 4, 4\], model needs \[8, 1, 3, 3\]' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --set 'model.encoder=[{"conv2d": 8, "kernel": 3, "stride": 2, "padding": 1}, {"leaky_relu": 0.2}, {"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, {"batch_norm": {}}, {"leaky_relu": 0.2}, "flatten"]'
fi
cli_finish cli_layers

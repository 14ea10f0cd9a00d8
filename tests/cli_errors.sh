#!/usr/bin/env bash
# cli_errors.sh: bad input through the real binary: one clear stderr line and
# exit status 2, never a crash. (Parser-level cases are in test_config.c.)
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$CUVAE" --version | grep -qE '^cuvae [0-9]+\.[0-9]+\.[0-9]+' && ok "--version" || bad "--version"
for c in train eval sample; do
    "$CUVAE" $c --help | grep -q "usage: cuvae $c" && ok "$c --help" || bad "$c --help"
done
"$CUVAE" --help | grep -q "nats per example" && ok "--help mentions units" || bad "--help"
expect_error "no command" 2 "usage: cuvae" -- "$CUVAE"
expect_error "unknown command" 2 'unknown command "frobnicate"' -- "$CUVAE" frobnicate
expect_error "unknown option" 2 "train: unknown option --bogus" -- "$CUVAE" train configs/mnist_vae.json --bogus
expect_error "missing config" 2 "nope.json" -- "$CUVAE" train "$tmp/nope.json"

cp configs/mnist_vae.json "$tmp/c.json"
expect_error "latent_dim 0 via --set" 2 "c.json: model.latent_dim: must be >= 1, got 0" -- \
    "$CUVAE" train "$tmp/c.json" --set model.latent_dim=0 --out "$tmp/r"
expect_error "unknown key via --set" 2 "model.latnt_dim" -- \
    "$CUVAE" train "$tmp/c.json" --set model.latnt_dim=3 --out "$tmp/r"
expect_error "wrong type" 2 "train.epochs" -- "$CUVAE" train "$tmp/c.json" --set 'train.epochs="ten"' --out "$tmp/r"
expect_error "bad enum" 2 "model.activation" -- "$CUVAE" train "$tmp/c.json" --set model.activation=swish --out "$tmp/r"
expect_error "bce with gaussian output" 2 "loss.reconstruction" -- \
    "$CUVAE" train "$tmp/c.json" --set model.output=gaussian --out "$tmp/r"
printf '{"name": "x", ' > "$tmp/broken.json"
expect_error "JSON syntax error" 2 "broken.json" -- "$CUVAE" train "$tmp/broken.json"
expect_error "missing data dir" 2 "$tmp/nodata/train-images-idx3-ubyte" -- \
    "$CUVAE" train "$tmp/c.json" --set data.dir="$tmp/nodata" --out "$tmp/r"
expect_error "input_dim mismatch with data" 2 "model.input_dim" -- \
    "$CUVAE" train "$tmp/c.json" --set model.input_dim=100 --out "$tmp/r"
expect_error "device cuda without GPU" 2 'device "cuda"' -- \
    "$CUVAE" train "$tmp/c.json" --set device=cuda --set data.train_limit=10 --set data.test_limit=10 --out "$tmp/r"

# checkpoints
expect_error "eval missing checkpoint" 2 "$tmp/none.safetensors" -- "$CUVAE" eval "$tmp/none.safetensors"
head -c 100 /dev/urandom > "$tmp/garbage.safetensors"
expect_error "eval garbage checkpoint" 2 "garbage.safetensors" -- "$CUVAE" eval "$tmp/garbage.safetensors"
expect_error "sample bad -n" 2 "sample: -n" -- "$CUVAE" sample "$tmp/x.safetensors" -n 0

cli_finish cli_errors

#!/usr/bin/env bash
# cli_gan.sh: kind "gan" (deck 002, DCGAN practice) through the real binary: a short CPU run
# logs the two players' losses and writes the Parzen-window estimate to eval.json (sigma chosen
# on the validation split, every candidate listed); training moves the Parzen estimate up from
# the untrained generator's; eval of the checkpoint reproduces it; --resume is bit-identical to an
# uninterrupted run; sample and plot draw the generator's samples, the samples over training and
# the D / G curves; scripts/cuvae_torch.py loads the checkpoint (strict=True) and its
# discriminator gives the same loss on the test images; every bad gan config is one line, exit 2.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/t10k-images-idx3-ubyte.gz ]; then
    skip "gan" "data/mnist missing (run make data)"; cli_finish cli_gan; exit
fi
parzen() { sed -E 's/.*"parzen": \{"log_likelihood": ([-0-9.e+]+).*/\1/' "$1"; }
"$CUVAE" --help | grep -q "gan (model.generator and model.discriminator" \
    && "$CUVAE" sample --help >/dev/null 2>&1; "$CUVAE" --help | grep -q "gan: the generator from z" \
    && ok "--help names kind gan and how it samples" || bad "--help"
cat > "$tmp/gan.json" <<'JSON'
{
  "name": "gan_small",
  "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 2200, "test_limit": 300, "validation": 0.1},
  "model": {"kind": "gan", "input_dim": 784, "latent_dim": 32,
            "generator": [{"linear": 784}, {"batch_norm": {}}, "relu", {"reshape": [16, 7, 7]},
                          {"conv_transpose2d": 8, "kernel": 4, "stride": 2, "padding": 1}, {"batch_norm": {}}, "relu",
                          {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1}, "sigmoid"],
            "discriminator": [{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, {"leaky_relu": 0.2},
                              {"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, {"batch_norm": {}},
                              {"leaky_relu": 0.2}, "flatten", {"linear": 1}],
            "label_smoothing": [0.1, 0.3]},
  "train": {"epochs": 2, "batch_size": 32, "lr": 0.0005, "beta1": 0.5, "seed": 3},
  "eval": {"parzen_samples": 1000},
  "device": "cpu"
}
JSON
if "$CUVAE" train "$tmp/gan.json" --out "$tmp/run" 2>"$tmp/run.err"; then
    # bench counts the trainable parameters, as train does (not the whole arena)
    trained=$(grep -o "model gan, [0-9]* parameters" "$tmp/run.err" | grep -o "[0-9]*" | head -1)
    benched=$("$CUVAE" bench "$tmp/gan.json" --steps 1 --warmup 0 2>/dev/null | grep -o '"n_params": [0-9]*' | grep -o "[0-9]*$")
    [ -n "$trained" ] && [ "$trained" = "$benched" ] && ok "bench's n_params is train's parameter count ($trained)" \
        || bad "bench n_params '$benched', train '$trained'"
    ok "a gan trains on the CPU"
    # deck 002's label smoothing: each real image's target drawn in [0.7, 0.9] every step
    tr -d ' \n' < "$tmp/run/config.json" | grep -q '"label_smoothing":\[0.1,0.3\]' \
        && grep -q "the real images. target t drawn in (0.7, 0.9\] every step, one per image (model.label_smoothing \[0.1, 0.3\])" "$tmp/run.err" \
        && ok "label_smoothing [0.1, 0.3]: said at the start, kept as a range in config.json" \
        || bad "label_smoothing range: $(grep -o '"label_smoothing": [^"]*' "$tmp/run/config.json") $(grep -i target "$tmp/run.err")"
    grep -q '"train_d_loss": ' "$tmp/run/log.jsonl" && grep -q '"train_g_loss": ' "$tmp/run/log.jsonl" \
        && grep -q '"val_d_loss_fake": ' "$tmp/run/log.jsonl" && grep -qE "^epoch 2/2: train D loss [0-9.]+, G loss" "$tmp/run.err" \
        && ok "log.jsonl and the epoch line carry the discriminator's and the generator's losses" \
        || bad "gan log: $(tail -1 "$tmp/run/log.jsonl")"
    ! grep -qE '"(latent_dim|active_units|mu_variance)"' "$tmp/run/eval.json" \
        && ok "eval.json: no encoder, no latent statistics" || bad "eval.json of a gan: $(head -c 300 "$tmp/run/eval.json")"
    grep -q '"parzen": {"log_likelihood": ' "$tmp/run/eval.json" && grep -q '"sigma_candidates": \[' "$tmp/run/eval.json" \
        && grep -q '"samples": 1000, "test_examples": 300, "validation_examples": 220' "$tmp/run/eval.json" \
        && grep -q "a weak metric" "$tmp/run/eval.json" \
        && ok "eval.json: the Parzen estimate, its sigma chosen among the candidates on 220 validation images" \
        || bad "eval.json: $(cut -c1-300 "$tmp/run/eval.json")"
    [ ! -e "$tmp/run/best.safetensors" ] && ls "$tmp/run/progress/samples_epoch_002.png" >/dev/null 2>&1 \
        && [ ! -e "$tmp/run/progress/reconstruction_epoch_001.png" ] \
        && ok "no best.safetensors (no validation loss says the generator improved); per-epoch samples, no reconstructions" \
        || bad "run files: $(ls "$tmp/run" "$tmp/run/progress" | tr '\n' ' ')"
    "$CUVAE" train "$tmp/gan.json" --set train.epochs=0 --out "$tmp/init" 2>/dev/null
    trained=$(parzen "$tmp/run/eval.json"); untrained=$(parzen "$tmp/init/eval.json")
    awk -v a="$trained" -v b="$untrained" 'BEGIN { exit !(a > b + 50) }' \
        && ok "training raises the Parzen estimate ($untrained -> $trained nats per test image)" \
        || bad "Parzen untrained $untrained, trained $trained"
    "$CUVAE" eval "$tmp/run/model.safetensors" -o "$tmp/eval.json" >/dev/null 2>&1
    [ "$(parzen "$tmp/eval.json")" = "$trained" ] && [ "$(file_number "$tmp/eval.json" d_loss_real)" = "$(file_number "$tmp/run/eval.json" d_loss_real)" ] \
        && ok "eval of the checkpoint reproduces the Parzen estimate and the discriminator's test loss" \
        || bad "eval $(parzen "$tmp/eval.json") vs run $trained"
    expect_error "eval --iw refused" 2 'eval --iw: a gan has no likelihood bound to estimate' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --iw 5
    expect_error "eval --z refused" 2 'eval: --z chooses how a VAE.s z is drawn; a gan has no encoder' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --z mean
    # the Parzen sigma is chosen on the split the run held out: --set of its fraction or of the
    # training limit would carve one holding trained-on images (taken silently until 2026-12-06)
    expect_error "eval --set data.validation refused (sigma's split would hold trained-on images)" 2 \
        'eval: .*/run/model.safetensors: --set data.validation / data.train_limit: the Parzen sigma is chosen on the validation split the run held out \(data.validation 0.1 of the first 2200 training images\)' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --set data.validation=0.5
    expect_error "eval --set data.train_limit refused" 2 'another split would hold images the gan trained on' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --set data.train_limit=500
    "$CUVAE" eval "$tmp/run/model.safetensors" --set data.validation=0.1 --set data.test_limit=300 -o "$tmp/eval_same.json" >/dev/null 2>&1 \
        && [ "$(parzen "$tmp/eval_same.json")" = "$trained" ] \
        && ok "eval --set data.validation to the run's own value: the same Parzen estimate" \
        || bad "eval --set data.validation=0.1: $(parzen "$tmp/eval_same.json" 2>&1)"
    "$CUVAE" train "$tmp/gan.json" --set train.epochs=1 --out "$tmp/resumed" 2>/dev/null \
        && "$CUVAE" train "$tmp/gan.json" --out "$tmp/resumed" --resume 2>"$tmp/resumed.err" \
        && cmp -s "$tmp/run/model.safetensors" "$tmp/resumed/model.safetensors" \
        && ok "gan: 1 + resumed 1 epochs == 2 epochs, bit-identical (both Adam regions, the z stream, the drawn real targets)" \
        || bad "gan resume: $(tail -1 "$tmp/resumed.err")"
    "$CUVAE" sample "$tmp/run/model.safetensors" -n 16 -o "$tmp/s.png" 2>"$tmp/s.err" && [ -s "$tmp/s.png" ] \
        && grep -q "the generator from z ~ N(0, I)" "$tmp/s.err" \
        && ok "sample draws the generator's images" || bad "sample: $(tail -1 "$tmp/s.err")"
    # the Parzen estimate's keys on commands that compute none: refused (they were taken unsaid)
    expect_error "sample --set eval.parzen_examples: refused (sample draws no Parzen estimate)" 2 \
        '^cuvae: sample: --set eval.parzen_examples: sample draws no Parzen-window estimate' -- \
        "$CUVAE" sample "$tmp/run/model.safetensors" -n 4 -o "$tmp/p.png" --set eval.parzen_examples=5
    expect_error "plot --set eval.parzen_samples: refused (plot computes none)" 2 \
        '^cuvae: plot: --set eval.parzen_samples: plot draws no Parzen-window estimate' -- \
        "$CUVAE" plot "$tmp/run" --set eval.parzen_samples=10
    expect_error "plot --set eval={...} with an escaped parzen key: refused as the plain one" 2 \
        '^cuvae: plot: --set eval: plot draws no Parzen-window estimate' -- \
        "$CUVAE" plot "$tmp/run" --set 'eval={"parzen\u005fsamples": 10}'
    "$CUVAE" train "$tmp/gan.json" --set train.epochs=0 --set eval.iw_batch=5 --out "$tmp/iw_batch" 2>"$tmp/iw_batch.err"
    grep -qx 'cuvae: note: eval.iw_batch 5 sizes the importance-weighted bound, which kind "gan" has none of: it is not read' "$tmp/iw_batch.err" \
        && ok "eval.iw_batch on a gan: a note says it is not read" || bad "eval.iw_batch on a gan: $(grep iw_batch "$tmp/iw_batch.err")"
    "$CUVAE" train "$tmp/gan.json" --set train.epochs=0 --set train.epsilon=stored --out "$tmp/eps_stored" 2>"$tmp/eps_stored.err"
    grep -qx 'cuvae: note: train.epsilon "stored" chooses how the reparametrization'"'"'s noise is drawn, which kind "gan" has none of: it is not read' "$tmp/eps_stored.err" \
        && ok "train.epsilon stored on a gan: a note says it is not read" || bad "train.epsilon on a gan: $(grep epsilon "$tmp/eps_stored.err")"
    expect_error "plot --z sample on a gan: refused (no encoder)" 2 'plot: --z sample scatters draws z ~ q\(z\|x\); kind "gan" has no encoder' -- \
        "$CUVAE" plot "$tmp/run" --z sample
    if "$CUVAE" plot "$tmp/run" 2>"$tmp/plot.err"; then
        [ -s "$tmp/run/figures/samples.png" ] && [ -s "$tmp/run/figures/samples_over_training.png" ] \
            && [ -s "$tmp/run/figures/loss_curves.png" ] && [ ! -e "$tmp/run/figures/reconstructions.png" ] \
            && ok "plot draws samples, samples over training (one row per epoch) and the D / G curves" \
            || bad "plot: $(ls "$tmp/run/figures" | tr '\n' ' ')"
        # the samples over training take whichever epochs have an image, any count: every
        # train.epoch_images_every-th, past epoch 4096 (the figure looked at epochs 1..4096 alone)
        png_height() { od -An -tu1 -j20 -N4 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }'; }
        cp -r "$tmp/run" "$tmp/run_late" && rm -rf "$tmp/run_late/figures"
        mv "$tmp/run_late/progress/samples_epoch_002.png" "$tmp/run_late/progress/samples_epoch_5000.png"
        cp "$tmp/run_late/progress/samples_epoch_5000.png" "$tmp/run_late/progress/samples_epoch_5000.png.tmp.1"
        if "$CUVAE" plot "$tmp/run_late" >/dev/null 2>"$tmp/plot_late.err"; then
            [ "$(png_height "$tmp/run_late/figures/samples_over_training.png")" = "$(png_height "$tmp/run/figures/samples_over_training.png")" ] \
                && ok "samples over training: epochs 1 and 5000 give its two rows (an image past epoch 4096 read, a temp file not)" \
                || bad "samples over training past epoch 4096: height $(png_height "$tmp/run_late/figures/samples_over_training.png") against $(png_height "$tmp/run/figures/samples_over_training.png")"
        else
            bad "plot with an epoch-5000 image: $(tail -1 "$tmp/plot_late.err")"
        fi
    elif ! command -v gnuplot >/dev/null 2>&1; then   # (a failing gnuplot is a failure: its message names it too)
        skip "gan plot" "gnuplot is not installed"
    else
        bad "plot: $(tail -1 "$tmp/plot.err")"
    fi
    if $PY -c "import torch" 2>/dev/null; then
        torch_out=$($PY tests/torch_check.py "$tmp/run/model.safetensors" data/mnist 300) || bad "gan: torch_check.py failed"
        ours=$(file_number "$tmp/run/eval.json" d_loss_real); ours_fake=$(file_number "$tmp/run/eval.json" d_loss_fake)
        theirs=$(echo "$torch_out" | sed -E 's/.*"d_loss_real": ([-0-9.e+]+).*/\1/')
        theirs_fake=$(echo "$torch_out" | sed -E 's/.*"d_loss_fake": ([-0-9.e+]+).*/\1/')
        echo "  gan: cuvae $ours, $ours_fake | torch $torch_out" >&2
        close() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b + 1e-6) }'; }   # (eval.json has 6 decimals)
        close "$ours" "$theirs" && close "$ours_fake" "$theirs_fake" \
            && echo "$torch_out" | grep -q '"samples_in_range": true' \
            && ok "PyTorch (generator and discriminator nn.Sequential, strict=True; z redrawn from cuvae's Philox stream by cuvae_torch.philox_normals): the same discriminator losses on the test images and on the generator's images (1e-5)" \
            || bad "torch $theirs, $theirs_fake vs cuvae $ours, $ours_fake"
    else
        skip "gan torch" "python3-torch is not installed"
    fi
else
    bad "gan train: $(tail -2 "$tmp/run.err")"
fi
# bad configs: one line naming the key or layer, exit 2
gan_with() { sed "$1" "$tmp/gan.json" > "$tmp/bad.json"; }
gan_with 's/"sigmoid"\]/"relu"]/'
expect_error "a generator that does not end in sigmoid or tanh" 2 'model.generator\[8\] \(relu\): a generator ends in "sigmoid"' -- \
    "$CUVAE" train "$tmp/bad.json" --out "$tmp/bad"
gan_with 's/{"linear": 1}\]/{"linear": 1}, "sigmoid"]/'
expect_error "a discriminator ending in a sigmoid (its loss applies one)" 2 'model.discriminator\[[0-9]+\] \(sigmoid\): the discriminator ends in one logit, so not in an activation' -- \
    "$CUVAE" train "$tmp/bad.json" --out "$tmp/bad"
gan_with 's/{"linear": 1}\]/{"linear": 2}]/'
expect_error "a discriminator with two outputs" 2 'model.discriminator: ends in \(2\); it must end in one logit' -- \
    "$CUVAE" train "$tmp/bad.json" --out "$tmp/bad"
gan_with 's/"validation": 0.1/"validation": 0/'
expect_error "no validation split" 2 'data.validation: kind "gan" chooses its Parzen window.s sigma on a validation split' -- \
    "$CUVAE" train "$tmp/bad.json" --out "$tmp/bad"
expect_error "a masked layer in the discriminator" 2 'model.discriminator\[0\] \(masked_conv2d_b\): a masked layer belongs to kind "made" or "pixelcnn" \(kind "gan" has no use for its mask\)' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.discriminator=[{"masked_conv2d_b": 2, "kernel": 3}, "flatten", {"linear": 1}]' --out "$tmp/bad"
expect_error "a masked layer in the generator" 2 'model.generator\[0\] \(masked_linear\): a masked layer belongs to kind "made" or "pixelcnn"' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.generator=[{"masked_linear": 784}, "sigmoid"]' --out "$tmp/bad"
expect_error "a loss section" 2 'loss: kind "gan" has no loss section' -- \
    "$CUVAE" train "$tmp/gan.json" --set loss.w_rec=2 --out "$tmp/bad"
expect_error "an encoder key" 2 'model: kind "gan" has no "encoder"' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.encoder=[10]' --out "$tmp/bad"
expect_error "label smoothing out of range" 2 'model.label_smoothing: must be in \[0, 0.5\)' -- \
    "$CUVAE" train "$tmp/gan.json" --set model.label_smoothing=0.7 --out "$tmp/bad"
expect_error "a label smoothing range past 0.5" 2 'model.label_smoothing: must be in \[0, 0.5\) \(real targets become 1 - it; a range.s ends too\), got 0.6' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.label_smoothing=[0.1, 0.6]' --out "$tmp/bad"
expect_error "a label smoothing range upside down" 2 'model.label_smoothing: a range \[min, max\] needs min < max, got \[0.3, 0.1\]' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.label_smoothing=[0.3, 0.1]' --out "$tmp/bad"
expect_error "a label smoothing range of one number" 2 'model.label_smoothing: a range is \[min, max\], two numbers .*, got 1$' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.label_smoothing=[0.1]' --out "$tmp/bad"
expect_error "a label smoothing range whose float32 targets are equal" 2 'model.label_smoothing: \[0.1, 0.10000000001\]: the targets 1 - max and 1 - min are the same float32 number' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.label_smoothing=[0.1, 0.10000000001]' --out "$tmp/bad"
"$CUVAE" train "$tmp/gan.json" --set 'model.label_smoothing=[0, 0.3]' --set train.epochs=0 --out "$tmp/ls0" 2>"$tmp/ls0.err"
grep -q "D is the discriminator's loss -t log D(x) - (1 - t) log(1 - D(x)) - log(1 - D(G(z))).*target t drawn in (0.7, 1\]" "$tmp/ls0.err" \
    && ok "label_smoothing [0, 0.3]: the opening note gives the smoothed loss and its targets" \
    || bad "label_smoothing [0, 0.3] note: $(grep "model gan" "$tmp/ls0.err")"
expect_error "a label smoothing range holding a string" 2 'model.label_smoothing\[1\]: must be a number, got a string' -- \
    "$CUVAE" train "$tmp/gan.json" --set 'model.label_smoothing=[0.1, "0.3"]' --out "$tmp/bad"
expect_error "train.grad_clip" 2 'train.grad_clip: is not supported for kind "gan"' -- \
    "$CUVAE" train "$tmp/gan.json" --set train.grad_clip=1 --out "$tmp/bad"
expect_error "train.early_stopping" 2 'train.early_stopping: kind "gan" has no validation loss to watch' -- \
    "$CUVAE" train "$tmp/gan.json" --set train.early_stopping=2 --out "$tmp/bad"
expect_error "eval.iw_samples" 2 'eval.iw_samples: needs a variational model' -- \
    "$CUVAE" train "$tmp/gan.json" --set eval.iw_samples=5 --out "$tmp/bad"
expect_error "model.init unknown" 2 'model.init: must be one of "dcgan", "pytorch"' -- \
    "$CUVAE" train "$tmp/gan.json" --set model.init=xavier --out "$tmp/bad"
cli_finish cli_gan

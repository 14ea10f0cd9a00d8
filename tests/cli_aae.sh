#!/usr/bin/env bash
# cli_aae.sh: kind "aae" (deck 002, Makhzani et al. 2015) through the real binary: a short CPU run
# with the 2-D mixture prior lowers the reconstruction while logging the discriminator's loss on z,
# writes the Parzen-window estimate (sigma on the validation split) beside the AE's numbers, keeps
# best.safetensors by the validation reconstruction; eval of the checkpoint reproduces it;
# --resume is bit-identical (its three optimizers, the second set of encoder moments included);
# sample decodes prior draws; plot draws the encoded test set and prior draws on shared axes;
# scripts/cuvae_torch.py loads it (strict=True) with the same reconstruction at z = mu; bad aae
# configs are one line, exit 2.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/t10k-images-idx3-ubyte.gz ]; then
    skip "aae" "data/mnist missing (run make data)"; cli_finish cli_aae; exit
fi
parzen() { sed -E 's/.*"parzen": \{"log_likelihood": ([-0-9.e+]+).*/\1/' "$1"; }
cat > "$tmp/aae.json" <<'JSON'
{
  "name": "aae_small",
  "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 3300, "test_limit": 400, "validation": 0.1},
  "model": {"kind": "aae", "input_dim": 784, "encoder": [200], "latent_dim": 2, "decoder": [200],
            "activation": "relu", "discriminator": [{"linear": 64}, "relu", {"linear": 1}], "prior": "mixture"},
  "loss": {"reconstruction": "bce", "reduction": "sum"},
  "train": {"epochs": 3, "batch_size": 50, "lr": 0.001, "beta1": 0.5, "seed": 2},
  "eval": {"parzen_samples": 800},
  "device": "cpu"
}
JSON
"$CUVAE" --help | grep -q "(an AE whose codes a discriminator on z pushes toward model.prior" \
    && ok "--help names kind aae" || bad "--help lacks aae"
if "$CUVAE" train "$tmp/aae.json" --out "$tmp/run" 2>"$tmp/run.err"; then
    # bench counts the trainable parameters, as train does (not the whole arena)
    trained=$(grep -o "model aae, [0-9]* parameters" "$tmp/run.err" | grep -o "[0-9]*" | head -1)
    benched=$("$CUVAE" bench "$tmp/aae.json" --steps 1 --warmup 0 2>/dev/null | grep -o '"n_params": [0-9]*' | grep -o "[0-9]*$")
    [ -n "$trained" ] && [ "$trained" = "$benched" ] && ok "bench's n_params is train's parameter count ($trained)" \
        || bad "bench n_params '$benched', train '$trained'"
    ok "an aae trains on the CPU"
    first=$(sed -nE 's/^epoch 1\/3: .*\| val rec ([0-9.]+).*/\1/p' "$tmp/run.err")
    last=$(sed -nE 's/^epoch 3\/3: .*\| val rec ([0-9.]+).*/\1/p' "$tmp/run.err")
    is_number "$first" && is_number "$last" && awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a && a < 543) }' \
        && grep -qE "^epoch 3/3: train rec [0-9.]+ nats, D loss [0-9.]+ nats" "$tmp/run.err" \
        && ok "the validation reconstruction falls ($first -> $last nats) with the discriminator's loss logged" \
        || bad "aae rec $first -> $last: $(grep -E '^epoch 3/3' "$tmp/run.err")"
    grep -q '"val_d_loss": ' "$tmp/run/log.jsonl" && grep -q '"d_loss": ' "$tmp/run/eval.json" \
        && grep -q '"parzen": {"log_likelihood": ' "$tmp/run/eval.json" \
        && grep -q '"samples": 800, "test_examples": 400, "validation_examples": 330' "$tmp/run/eval.json" \
        && [ -s "$tmp/run/best.safetensors" ] \
        && ok "log.jsonl and eval.json carry the discriminator's loss and the Parzen estimate; best.safetensors kept" \
        || bad "aae outputs: $(cut -c1-300 "$tmp/run/eval.json")"
    "$CUVAE" eval "$tmp/run/model.safetensors" -o "$tmp/eval.json" >/dev/null 2>&1
    [ "$(parzen "$tmp/eval.json")" = "$(parzen "$tmp/run/eval.json")" ] && [ "$(file_number "$tmp/eval.json" rec)" = "$(file_number "$tmp/run/eval.json" rec)" ] \
        && ok "eval of the checkpoint reproduces the reconstruction and the Parzen estimate" \
        || bad "eval $(parzen "$tmp/eval.json") vs run $(parzen "$tmp/run/eval.json")"
    # dynamic binarization: the validation split that picks sigma is binarized once, at eval as in training
    "$CUVAE" train "$tmp/aae.json" --set data.binarize=dynamic --set train.epochs=1 --out "$tmp/dyn" 2>/dev/null \
        && "$CUVAE" eval "$tmp/dyn/model.safetensors" -o "$tmp/dyn_eval.json" >/dev/null 2>&1 \
        && [ "$(parzen "$tmp/dyn_eval.json")" = "$(parzen "$tmp/dyn/eval.json")" ] \
        && ok "dynamic binarization: eval reproduces the run's Parzen estimate" \
        || bad "dynamic: eval $(parzen "$tmp/dyn_eval.json") vs run $(parzen "$tmp/dyn/eval.json")"
    expect_error "eval --z refused" 2 'eval: --z chooses how a VAE.s z is drawn; an aae.s codes are deterministic' -- \
        "$CUVAE" eval "$tmp/run/model.safetensors" --z mean
    "$CUVAE" train "$tmp/aae.json" --set train.epochs=1 --out "$tmp/resumed" 2>/dev/null \
        && "$CUVAE" train "$tmp/aae.json" --out "$tmp/resumed" --resume 2>"$tmp/resumed.err" \
        && cmp -s "$tmp/run/model.safetensors" "$tmp/resumed/model.safetensors" \
        && ok "aae: 1 + resumed 2 epochs == 3 epochs, bit-identical (three optimizers' state)" \
        || bad "aae resume: $(tail -1 "$tmp/resumed.err")"
    "$CUVAE" sample "$tmp/run/model.safetensors" -n 16 -o "$tmp/s.png" 2>"$tmp/s.err" && [ -s "$tmp/s.png" ] \
        && grep -q "samples from the prior's draws (10 Gaussians in 2-D), decoded" "$tmp/s.err" \
        && ok "sample decodes draws of the mixture prior" || bad "sample: $(tail -1 "$tmp/s.err")"
    if "$CUVAE" plot "$tmp/run" 2>"$tmp/plot.err"; then
        [ -s "$tmp/run/figures/prior_samples.png" ] && [ -s "$tmp/run/figures/latent_scatter.png" ] \
            && [ -s "$tmp/run/figures/samples.png" ] && grep -q "latent scatter axes" "$tmp/plot.err" \
            && ok "plot draws the encoded test set and prior draws on shared axes, and samples" \
            || bad "plot: $(ls "$tmp/run/figures" | tr '\n' ' ')"
        # axes narrower than the prior's draws: how many are left out is said, as for the codes
        "$CUVAE" plot "$tmp/run" --latent-range -0.5:0.5 2>"$tmp/plot_narrow.err" \
            && grep -qE "^cuvae: prior draws: [0-9]+ of the [0-9]+ draws lie outside the axes and are not drawn$" "$tmp/plot_narrow.err" \
            && ok "plot --latent-range narrower than the prior draws says how many it leaves out" \
            || bad "plot --latent-range, prior draws: $(grep -E 'prior|outside' "$tmp/plot_narrow.err" | head -2)"
    elif ! command -v gnuplot >/dev/null 2>&1; then   # (a failing gnuplot is a failure: its message names it too)
        skip "aae plot" "gnuplot is not installed"
    else
        bad "plot: $(tail -1 "$tmp/plot.err")"
    fi
    if $PY -c "import torch" 2>/dev/null; then
        torch_out=$($PY tests/torch_check.py "$tmp/run/model.safetensors" data/mnist 400) || bad "aae: torch_check.py failed"
        ours=$(file_number "$tmp/run/eval.json" rec_bce_at_mean)
        theirs=$(echo "$torch_out" | sed -E 's/.*"rec_at_mean": ([-0-9.e+]+).*/\1/')
        echo "  aae: cuvae $ours | torch $torch_out" >&2
        ours_d=$(file_number "$tmp/run/eval.json" d_loss)
        theirs_d=$(echo "$torch_out" | sed -E 's/.*"d_loss": ([-0-9.e+]+).*/\1/')
        awk -v a="$ours" -v b="$theirs" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b) }' \
            && awk -v a="$ours_d" -v b="$theirs_d" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * b + 1e-6) }' \
            && ok "PyTorch (the AE and its discriminator, strict=True; prior draws redrawn from cuvae's Philox stream): the same reconstruction at z = mu and discriminator loss (1e-5)" \
            || bad "torch rec $theirs, D $theirs_d vs cuvae $ours, $ours_d"
    else
        skip "aae torch" "python3-torch is not installed"
    fi
else
    bad "aae train: $(tail -2 "$tmp/run.err")"
fi
expect_error "mixture prior needs a 2-D latent" 2 'model.prior: "mixture" is Makhzani et al..s mixture of 10 Gaussians in 2-D: it needs model.latent_dim 2 \(got 8\)' -- \
    "$CUVAE" train "$tmp/aae.json" --set model.latent_dim=8 --out "$tmp/bad"
expect_error "a masked layer in the discriminator" 2 'model.discriminator\[0\] \(masked_linear\): a masked layer belongs to kind "made" or "pixelcnn" \(kind "aae" has no use for its mask\)' -- \
    "$CUVAE" train "$tmp/aae.json" --set 'model.discriminator=[{"masked_linear": 1}]' --out "$tmp/bad"
expect_error "an empty discriminator" 2 'model.discriminator: a layer list on z' -- \
    "$CUVAE" train "$tmp/aae.json" --set 'model.discriminator=[]' --out "$tmp/bad"
expect_error "a discriminator with 3 outputs" 2 'aae.json\): model.discriminator: ends in \(3\); it must end in one logit' -- \
    "$CUVAE" train "$tmp/aae.json" --set 'model.discriminator=[{"linear": 3}]' --out "$tmp/bad"
expect_error "a discriminator ending in batch norm" 2 'model.discriminator\[1\] \(batch_norm\): the discriminator ends in one logit, so not in an activation' -- \
    "$CUVAE" train "$tmp/aae.json" --set 'model.discriminator=[{"linear": 1}, {"batch_norm": {}}]' --out "$tmp/bad"
expect_error "a KL weight" 2 'loss.w_kl: an adversarial autoencoder has no KL term' -- \
    "$CUVAE" train "$tmp/aae.json" --set loss.w_kl=0.5 --out "$tmp/bad"
expect_error "no validation split" 2 'data.validation: kind "aae" chooses its Parzen window.s sigma' -- \
    "$CUVAE" train "$tmp/aae.json" --set data.validation=0 --out "$tmp/bad"
expect_error "a discriminator on a vae" 2 'model: "discriminator" is for kind "gan" or "aae" \(got "vae"\)' -- \
    "$CUVAE" train "$tmp/aae.json" --set model.kind=vae --out "$tmp/bad"
expect_error "unknown prior" 2 'model.prior: must be one of "gaussian", "mixture"' -- \
    "$CUVAE" train "$tmp/aae.json" --set model.prior=laplace --out "$tmp/bad"
# a batch that is not a multiple of the mixture's 10 components draws them unequally: train says so
"$CUVAE" train configs/lectures/aae_mixture.json --set train.batch_size=15 --set data.train_limit=300 --set data.test_limit=100 \
    --set train.epochs=1 --set eval.parzen_samples=100 --set device=cpu --out "$tmp/b15" >/dev/null 2>"$tmp/b15.err" \
    && grep -q "^cuvae: note: the mixture prior draws row i of a batch from component i mod 10: with batch 15, components 0-4 get 2 draw(s) a batch and 5-9 get 1" "$tmp/b15.err" \
    && ok "batch 15 with the mixture prior: a note says which components are drawn more" || bad "batch 15 note: $(grep mixture "$tmp/b15.err" | head -1)"
# a diverged aae: the advice names the lr only (train.grad_clip is refused for an aae)
"$CUVAE" train configs/lectures/aae_mixture.json --set data.train_limit=300 --set data.test_limit=100 --set train.epochs=1 \
    --set eval.parzen_samples=100 --set device=cpu --set train.optimizer=sgd --set train.lr=1e30 --out "$tmp/diverged" \
    >/dev/null 2>"$tmp/diverged.err"; rc=$?
[ $rc -eq 2 ] && tail -1 "$tmp/diverged.err" | grep -q "try a lower train.lr (it was 1e+30)$" \
    && ok "a diverged aae: the advice is the lr, not train.grad_clip (refused for an aae)" \
    || bad "diverged aae: rc $rc, $(tail -1 "$tmp/diverged.err")"
cli_finish cli_aae

#!/usr/bin/env bash
# cli_lectures.sh: the lecture pipeline at a small scale (1,000 training images,
# 1 epoch per config): every config trains, every run gets its figures, the page
# exists, every image it references is a valid PNG, it has one section per
# experiment, and its numbers agree with `cuvae eval` on the same checkpoints.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
if [ ! -s data/mnist/train-images-idx3-ubyte.gz ]; then
    skip "lectures page" "data/mnist missing (run make data)"; cli_finish cli_lectures; exit
fi
if ! command -v gnuplot >/dev/null; then
    skip "lectures page" "gnuplot not installed (make deps)"; cli_finish cli_lectures; exit
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
CUVAE="$CUVAE" LECTURES_OUT="$tmp/lectures" \
    LECTURES_SET="--set data.train_limit=1000 --set data.test_limit=500 --set train.epochs=1 --set device=cpu" \
    bash scripts/lectures.sh > "$tmp/log" 2>&1 && ok "make lectures pipeline (small)" || { bad "lectures.sh: $(tail -3 "$tmp/log")"; cli_finish cli_lectures; exit; }
page="$tmp/lectures/index.html"
check=$(python3 tests/check_page.py "$page") && ok "page images valid: $check" || bad "page: $check"
n_configs=$(ls configs/lectures/*.json | grep -vc index.json)
n_runs=$(ls -d "$tmp"/lectures/*/ | wc -l)
[ "$n_runs" -eq "$n_configs" ] && ok "one run per config ($n_runs)" || bad "$n_runs runs for $n_configs configs"
sections=$(grep -c "<h2>" "$page")
[ "$sections" -eq 14 ] && ok "14 experiment sections" || bad "$sections sections"
for run in vae_dim2 cvae_dim2 ae_dim10; do
    ev=$("$CUVAE" eval "$tmp/lectures/$run/model.safetensors" 2>/dev/null)
    loss=$(echo "$ev" | sed -E 's/.*"test_loss": ([0-9.]+).*/\1/')
    shown=$(printf "%.2f" "$loss")
    # nats for a summed BCE; an AE's loss is its reconstruction alone (MSE/pixel here); else mixed
    unit=$(echo "$ev" | grep -q '"units": "nats/example"' && echo "nats" ||
           { [ $run = ae_dim10 ] && echo "MSE/pixel" || echo "mixed units"; })
    [ $run = ae_dim10 ] && shown=$(printf "%.4f" "$loss")
    grep -A0 "<code>$run</code>" "$page" | grep -q "<td>$shown <small>$unit</small></td>" \
        && ok "$run: page shows cuvae eval's test loss $shown ($unit)" || bad "$run: page lacks test loss $shown $unit"
done
vq_used=$(sed -E 's/.*"codes_used": ([0-9]+).*/\1/' "$tmp/lectures/vq_vae_k256/eval.json")
grep -A0 "<code>vq_vae_k256</code>" "$page" | grep -q "<td>$vq_used / 256 codes (perplexity [0-9.]*)</td>" \
    && [ -s "$tmp/lectures/vq_vae_k256/figures/codebook_usage.png" ] \
    && ok "vq_vae_k256: page shows its codes used ($vq_used of 256) and the codebook usage figure" \
    || bad "vq_vae_k256 row or codebook figure"
for run in fvsbn made_h500; do
    made_nll=$(printf "%.2f" "$(sed -E 's/.*"exact_nll": ([0-9.]+).*/\1/' "$tmp/lectures/$run/eval.json")")
    grep -A0 "<code>$run</code>" "$page" | grep -q "<td>$made_nll (exact, [0-9.]* bits/dim)</td>" \
        && [ -s "$tmp/lectures/$run/figures/samples.png" ] \
        && ok "$run: page shows its exact -log p(x) ($made_nll nats) and its samples" \
        || bad "$run row or samples"
done
grep -q '"prior_of": "'"$tmp"'/lectures/vq_vae_k256/model.safetensors"' "$tmp/lectures/vq_vae_k256_prior/config.json" \
    && grep -A0 "<code>vq_vae_k256_prior</code>" "$page" | grep -q "nats per code position" \
    && [ -s "$tmp/lectures/vq_vae_k256_prior/figures/samples.png" ] \
    && ok "vq_vae_k256_prior: a prior over this lecture set's VQ-VAE; the page shows its -log p(codes) per position and its samples" \
    || bad "vq_vae_k256_prior: $(grep prior_of "$tmp/lectures/vq_vae_k256_prior/config.json")"
grep -A0 "<code>dcgan</code>" "$page" | grep -q "<td>Parzen -\?[0-9.]* ± [0-9.]* (σ " \
    && [ -s "$tmp/lectures/dcgan/figures/samples_over_training.png" ] && [ -s "$tmp/lectures/dcgan/figures/loss_curves.png" ] \
    && ok "dcgan: page shows its Parzen estimate, its samples over training and its D / G curves" \
    || bad "dcgan row or figures: $(grep -A0 "<code>dcgan</code>" "$page" | cut -c1-300)"
grep -A0 "<code>aae_mixture</code>" "$page" | grep -q "<td>Parzen -\?[0-9.]* ± [0-9.]* (σ " \
    && grep -A0 "<code>aae_mixture</code>" "$page" | grep -q "nats, D on z" \
    && [ -s "$tmp/lectures/aae_mixture/figures/prior_samples.png" ] && [ -s "$tmp/lectures/aae_mixture/figures/latent_scatter.png" ] \
    && ok "aae_mixture: page shows its discriminator loss and Parzen estimate, prior draws beside the encoded test set" \
    || bad "aae_mixture row or figures: $(grep -A0 "<code>aae_mixture</code>" "$page" | cut -c1-300)"
for fig in samples latent_histograms; do
    [ -s "$tmp/lectures/ae_dim2/figures/$fig.png" ] || bad "ae_dim2 lacks $fig"
done
[ -s "$tmp/lectures/vae_dim2/figures/manifold.png" ] && [ ! -e "$tmp/lectures/vae_dim10/figures/manifold.png" ] \
    && ok "manifold only for latent dim 2" || bad "manifold figures"
# the VAE's manifold spans the prior's 5%..95% quantiles; the AE's (no prior) its codes' range
grep -q "manifold grid: z1 in \[-1.645, 1.645\], z2 in \[-1.645, 1.645\] (prior quantiles" "$tmp/lectures/vae_dim2.plot.log" \
    && ok "VAE manifold over the prior's quantiles" || bad "VAE manifold: $(grep manifold "$tmp/lectures/vae_dim2.plot.log")"
ae_grid=$(grep "manifold grid:" "$tmp/lectures/ae_dim2.plot.log")
if [ -s "$tmp/lectures/ae_dim2/figures/manifold.png" ] && echo "$ae_grid" | grep -q "(AE codes, 1st..99th percentile)" &&
   ! echo "$ae_grid" | grep -q "1.645"; then
    ok "AE manifold over its codes' range: ${ae_grid#*grid: }"
else
    bad "AE manifold: $ae_grid"
fi
# plot announces how many figures it will draw, and draws that many (its progress reads true)
announced_ok=0; announced_bad=""
for log in "$tmp"/lectures/*.plot.log; do
    said=$(sed -nE 's/^cuvae: plot: drawing ([0-9]+) figures.*/\1/p' "$log")
    drawn=$(grep -c "^cuvae: wrote .*\.png$" "$log")
    if [ -n "$said" ] && [ "$said" -eq "$drawn" ]; then announced_ok=$((announced_ok + 1)); else announced_bad+=" $(basename "$log"):$said/$drawn"; fi
done
[ -z "$announced_bad" ] && ok "plot's announced figure count matches what it drew ($announced_ok runs)" \
    || bad "plot announced/drawn:$announced_bad"
# every figure fills its panel (small image grids are scaled up to the panel's width)
grep -q "table.figures img{width:100%;height:auto" "$page" && ok "figures fill their panels" || bad "figure width rule missing"
# the ablation's three scatters were drawn on one shared pair of axes, each of one draw
# z ~ q(z|x) per test image (the deck's KL-only N(0, I) cloud; its means sit at one point)
titles=$(for r in kl_only_dim2 mse_only_dim2 vae_dim2; do grep -h "latent scatter axes" "$tmp/lectures/$r.plot.log"; done)
if [ "$(echo "$titles" | grep -c "latent scatter axes .* for the z ~ q(z|x), one draw each$")" -eq 3 ] &&
   [ "$(echo "$titles" | sort -u | wc -l)" -eq 1 ]; then
    ok "ablation scatters of draws z ~ q(z|x) share axes: $(echo "$titles" | head -1)"
else
    bad "ablation scatters: '$titles'"
fi
[ -s "$tmp/lectures/cvae_dim2/figures/class_rows.png" ] && ok "cvae class rows" || bad "cvae class rows missing"
[ ! -e "$tmp/lectures/cvae_dim2/figures/manifold.png" ] \
    && grep -q "no manifold.png: a cvae's decoder takes a class besides z" "$tmp/lectures/cvae_dim2.plot.log" \
    && ok "cvae (latent dim 2): no manifold, and plot says why" || bad "cvae manifold: $(grep manifold "$tmp/lectures/cvae_dim2.plot.log")"
cli_finish cli_lectures

#!/usr/bin/env bash
# cli_train.sh: a short real training run on an MNIST subset on the CPU:
# the test loss must drop from its value at initialisation (~543 nats, logits
# near 0: 784 ln 2) to below 60% of it; `cuvae eval` must reproduce the logged
# test loss; sample writes a PNG; the same seed gives a bit-identical checkpoint.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/train-images-idx3-ubyte.gz ]; then
    skip "mnist training run" "data/mnist missing (run make data)"; cli_finish cli_train; exit
fi
common=(--set data.train_limit=3000 --set data.test_limit=500 --set device=cpu --set model.latent_dim=8)
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set train.epochs=0 --out "$tmp/init" 2>"$tmp/init.err" \
    || bad "epochs=0 run: $(tail -1 "$tmp/init.err")"
# its closing line lists exactly the files it wrote
listed=$(tail -1 "$tmp/init.err" | sed -E 's/.*\((.*)\)$/\1/' | tr -d ' ' | tr ',' '\n' | sort | tr '\n' ' ')
[ "$listed" = "$(ls "$tmp/init" | sort | tr '\n' ' ')" ] && ok "epochs=0: the closing line lists the files written ($listed)" \
    || bad "epochs=0 lists '$listed', wrote '$(ls "$tmp/init" | tr '\n' ' ')'"
init_loss=$("$CUVAE" eval "$tmp/init/model.safetensors" --set data.test_limit=500 | sed -nE 's/.*"test_loss": ([0-9.]+).*/\1/p')
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set train.epochs=3 --out "$tmp/a" 2>"$tmp/a.err" \
    || bad "training run: $(tail -1 "$tmp/a.err")"
# the closing line times the whole run (set-up included) and, of it, training and evaluation
took=$(sed -nE 's/^cuvae: done in ([0-9.]+) s \(training and evaluation ([0-9.]+) s\); outputs in .*/\1 \2/p' "$tmp/a.err")
[ -n "$took" ] && awk -v a="${took% *}" -v b="${took#* }" 'BEGIN { exit !(a >= b && b > 0) }' \
    && ok "done line: the whole run ${took% *} s, of it training and evaluation ${took#* } s" \
    || bad "done line: $(grep 'done in' "$tmp/a.err")"
last=$(tail -1 "$tmp/a/log.jsonl")
test_loss=$(echo "$last" | sed -nE 's/.*"test_loss": ([0-9.]+).*/\1/p')
echo "  init test loss $init_loss -> after 3 epochs $test_loss nats/example" >&2
[ -n "$init_loss" ] && [ -n "$test_loss" ] && awk -v a="$init_loss" -v b="$test_loss" 'BEGIN { exit !(a > 500 && a < 600 && b < 0.6 * a) }' \
    && ok "test loss drops below 60% of init" || bad "test loss $init_loss -> $test_loss"
[ "$(wc -l < "$tmp/a/log.jsonl")" -eq 3 ] && ok "log.jsonl has one line per epoch" || bad "log.jsonl lines"
missing=""
for key in epoch train_loss test_loss test_rec test_kl seconds samples_per_s; do
    grep -q "\"$key\"" "$tmp/a/log.jsonl" 2>/dev/null || missing="$missing $key"
done
[ -z "$missing" ] && ok "log.jsonl keys" || bad "log.jsonl lacks$missing"
ev=$("$CUVAE" eval "$tmp/a/model.safetensors" --set data.test_limit=500)
ev_loss=$(echo "$ev" | sed -E 's/.*"test_loss": ([0-9.]+).*/\1/')
awk -v a="$ev_loss" -v b="$test_loss" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-3) }' \
    && ok "eval reproduces the logged test loss ($ev_loss)" || bad "eval $ev_loss vs log $test_loss"
# ... to the last digit, and so when the run also computed the importance-weighted bound in
# batches of eval.iw_batch rows (its test loss took the test set 7 rows at a time, eval's 256)
# (this size and seed gave 435.253978 against eval's 435.253979)
"$CUVAE" train configs/examples_vae.json --set data.train_limit=512 --set data.test_limit=256 --set device=cpu \
    --set train.epochs=1 --set eval.iw_samples=10 --set eval.iw_batch=7 --set eval.iw_examples=50 --out "$tmp/iw7" \
    2>"$tmp/iw7.err" || bad "iw_batch 7 run: $(tail -1 "$tmp/iw7.err")"
logged=$(grep -o '"test_loss": [0-9.]*' "$tmp/iw7/log.jsonl"); in_eval=$(grep -o '"test_loss": [0-9.]*' "$tmp/iw7/eval.json")
again=$("$CUVAE" eval "$tmp/iw7/model.safetensors" --set data.test_limit=256 2>/dev/null | grep -o '"test_loss": [0-9.]*')
[ -n "$logged" ] && [ "$logged" = "$again" ] && [ "$logged" = "$in_eval" ] \
    && ok "eval.iw_batch 7: eval gives the logged test loss to the last digit ($again)" \
    || bad "eval.iw_batch 7: log '$logged', eval.json '$in_eval', eval '$again'"
echo "$ev" | grep -q '"units": "nats/example"' && ok "eval states units" || bad "eval units"
echo "$ev" | grep -q '"at_mean_units": {"rec_bce_at_mean": "nats/example (binary cross-entropy summed over pixels)", "rec_mse_at_mean": "squared error summed over pixels, per example"}' \
    && ok "eval states the units of the at-mean errors" || bad "eval at_mean_units: $ev"
"$CUVAE" sample "$tmp/a/model.safetensors" -n 16 -o "$tmp/s.png" 2>/dev/null
head -c 8 "$tmp/s.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" && ok "sample writes a PNG" || bad "sample PNG"
# png_size FILE: its IHDR width and height
png_size() { python3 -c "import struct, sys; d = open(sys.argv[1], 'rb').read(24); print('%dx%d' % struct.unpack('>II', d[16:24]))" "$1" 2>/dev/null; }
# -n 10 draws a grid ceil(sqrt(10)) = 4 tiles wide and 3 down: 28-pixel tiles, 2-pixel gaps and borders
"$CUVAE" sample "$tmp/a/model.safetensors" -n 10 -o "$tmp/s10.png" 2>/dev/null
[ "$(png_size "$tmp/s10.png")" = "122x92" ] && ok "sample -n 10: a grid of 4 columns and 3 rows (122 x 92 pixels)" \
    || bad "sample -n 10: the grid is $(png_size "$tmp/s10.png"), want 122x92 (4 columns, ceil(sqrt(10)))"
if command -v gnuplot >/dev/null; then
    "$CUVAE" sample "$tmp/a/model.safetensors" -n 16 --title "After 3 epochs" -o "$tmp/titled.png" 2>/dev/null
    head -c 8 "$tmp/titled.png" | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" && ok "sample --title writes a titled PNG" \
        || bad "sample --title"
    # a long title in capitals (wider letters) widens the canvas to hold it: 74 capitals at 15 pixels
    # and more each (DejaVu Sans at 15 points in pngcairo: about 13.7 pixels a capital)
    caps="MNIST VAE SAMPLES, EPOCH 1, LATENT DIM 2, BCE + KL, ADAM LR 0.001, SEED 1"
    "$CUVAE" sample "$tmp/a/model.safetensors" -n 16 --title "$caps" -o "$tmp/caps.png" 2>/dev/null
    w=$(python3 -c "import struct,sys; print(struct.unpack('>I', open(sys.argv[1],'rb').read()[16:20])[0])" "$tmp/caps.png" 2>/dev/null)
    [ -n "$w" ] && [ "$w" -ge 900 ] && ok "sample --title in capitals widens the canvas to hold it ($w pixels)" \
        || bad "sample --title in capitals: canvas '$w' pixels wide"
else
    skip "sample --title" "gnuplot not installed"
fi
[ -d "$tmp/a" ] && ! ls -A "$tmp/a" | grep -q tmp && ok "no temp files left" || bad "temp files left in run dir (or no run dir): $(ls -A "$tmp/a" 2>&1 | tr '\n' ' ')"
# Fashion-MNIST scatters name the classes in their legend: a gnuplot wrapper keeps the scripts
if command -v gnuplot >/dev/null && [ -s data/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
    mkdir -p "$tmp/gpwrap" "$tmp/gpscripts"
    printf '#!/bin/sh\nfor a; do script="$a"; done\n[ -f "$script" ] && cp "$script" "%s/script.$$"\nexec %s "$@"\n' "$tmp/gpscripts" "$(command -v gnuplot)" \
        > "$tmp/gpwrap/gnuplot"
    chmod +x "$tmp/gpwrap/gnuplot"
    "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.dataset=fashion-mnist --set data.dir=data/fashion-mnist \
        --set data.train_limit=300 --set data.test_limit=200 --set model.latent_dim=2 --set train.epochs=1 \
        --out "$tmp/fashion" 2>/dev/null
    PATH="$tmp/gpwrap:$PATH" "$CUVAE" plot "$tmp/fashion" 2>"$tmp/fashion.plot.err" || bad "fashion plot: $(tail -1 "$tmp/fashion.plot.err")"
    legend=$(grep -l "latent_scatter" "$tmp"/gpscripts/script.* 2>/dev/null | head -1)
    [ -n "$legend" ] && grep -q '"T-shirt/top"' "$legend" && grep -q '"Ankle boot"' "$legend" \
        && ok "Fashion-MNIST scatter legend names the classes (T-shirt/top ... Ankle boot)" \
        || bad "Fashion-MNIST legend: $(grep -ho 'title "[^"]*"' $legend 2>/dev/null | head -3 | tr '\n' ' ')"
else
    skip "Fashion-MNIST legend" "gnuplot or data/fashion-mnist missing"
fi
"$CUVAE" plot "$tmp/a" --latent-range -3:3 2>"$tmp/range.err"; rc=$?
[ "$rc" -eq 2 ] && grep -q "plot: --latent-range sets the axes of a 2-D latent scatter; this model's latent dim is 8" "$tmp/range.err" \
    && ok "plot --latent-range on a latent-dim-8 run: refused, says why" || bad "--latent-range dim 8: exit $rc, $(tail -1 "$tmp/range.err")"
[ ! -e "$tmp/a/figures" ] || [ -z "$(ls "$tmp/a/figures")" ] && ok "... and no figure drawn" || bad "figures drawn despite the refusal"
# latent dim 1: no latent scatter (the histograms show its one axis); the t-SNE options say so
if command -v gnuplot >/dev/null; then
    "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.train_limit=300 --set data.test_limit=200 \
        --set model.latent_dim=1 --set train.epochs=1 --set train.epoch_images=false --out "$tmp/l1" 2>/dev/null
    "$CUVAE" plot "$tmp/l1" --tsne-points 50 2>"$tmp/l1.err"; rc=$?
    [ "$rc" -eq 2 ] && grep -qx "cuvae: plot: --tsne-points shapes the t-SNE of the latent scatter; this model's latent dim is 1, which has no latent scatter (latent_histograms.png shows it)" "$tmp/l1.err" \
        && ok "plot --tsne-points on a latent-dim-1 run: refused, says there is no scatter" || bad "--tsne-points dim 1: exit $rc, $(tail -1 "$tmp/l1.err")"
    "$CUVAE" plot "$tmp/l1" 2>"$tmp/l1.err" && [ -s "$tmp/l1/figures/latent_histograms.png" ] && [ ! -e "$tmp/l1/figures/latent_scatter.png" ] \
        && ok "plot on a latent-dim-1 run: histograms, no scatter" || bad "plot dim 1: $(tail -1 "$tmp/l1.err")"
    # an empty log.jsonl: no curves, said, the earlier plot's curves removed (figures/ never mixes
    # runs), and the count announced is the count drawn
    [ -e "$tmp/l1/figures/loss_curves.png" ] && [ -e "$tmp/l1/figures/loss_terms.png" ] || bad "plot dim 1 drew no curves"
    : > "$tmp/l1/log.jsonl"
    "$CUVAE" plot "$tmp/l1" 2>"$tmp/l1.err"
    said=$(grep -o "drawing [0-9]* figures" "$tmp/l1.err" | grep -o "[0-9]*"); drawn=$(grep -c "^cuvae: wrote" "$tmp/l1.err")
    grep -q "log.jsonl holds no epoch yet: loss curves skipped; the earlier plot's removed" "$tmp/l1.err" && [ -n "$said" ] && [ "$said" -eq "$drawn" ] \
        && [ ! -e "$tmp/l1/figures/loss_curves.png" ] && [ ! -e "$tmp/l1/figures/loss_terms.png" ] \
        && ok "plot with an empty log.jsonl: curves skipped and said, the earlier ones removed; $drawn figures announced and drawn" \
        || bad "plot, empty log: announced $said, drew $drawn: $(tail -1 "$tmp/l1.err")"
    # a test set too small for some figures: each skipped and said (an earlier plot's copy removed), the
    # count announced the count drawn
    "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.train_limit=300 --set data.test_limit=1 \
        --set model.latent_dim=3 --set train.epochs=1 --set train.epoch_images=false --set eval.iw_samples=0 \
        --out "$tmp/t1" 2>/dev/null
    mkdir -p "$tmp/t1/figures"; cp "$tmp/l1/figures/latent_histograms.png" "$tmp/t1/figures/interpolation.png"
    "$CUVAE" plot "$tmp/t1" 2>"$tmp/t1.err"; rc=$?
    said=$(grep -o "drawing [0-9]* figures" "$tmp/t1.err" | grep -o "[0-9]*"); drawn=$(grep -c "^cuvae: wrote" "$tmp/t1.err")
    [ "$rc" -eq 0 ] && grep -qx "cuvae: plot: no latent_scatter.png: its t-SNE needs at least 5 test images, the run's test set has 1 (data.test_limit)" "$tmp/t1.err" \
        && grep -qx "cuvae: plot: no interpolation.png: it needs at least 2 test images, the run's test set has 1 (data.test_limit); the earlier plot's one removed" "$tmp/t1.err" \
        && [ ! -e "$tmp/t1/figures/interpolation.png" ] && [ ! -e "$tmp/t1/figures/latent_scatter.png" ] && [ -n "$said" ] && [ "$said" -eq "$drawn" ] \
        && ok "plot on a 1-image test set: t-SNE and interpolation skipped and said, the stale copy removed, $drawn figures announced and drawn" \
        || bad "plot, 1 test image: exit $rc, announced $said, drew $drawn: $(tail -1 "$tmp/t1.err")"
    # a t-SNE of 10 codes: the perplexity (30) lowered to (10 - 2) / 3 and said, the title giving the
    # value used (it printed "3"); the default --tsne-points is not "asked" (only a given one is)
    "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.train_limit=300 --set data.test_limit=10 \
        --set model.latent_dim=3 --set train.epochs=1 --set train.epoch_images=false --set eval.iw_samples=0 \
        --out "$tmp/t10" 2>/dev/null
    "$CUVAE" plot "$tmp/t10" 2>"$tmp/t10.err"; rc=$?
    "$CUVAE" plot "$tmp/t10" --tsne-points 2000 2>"$tmp/t10b.err"; rc_b=$?
    [ "$rc" -eq 0 ] && [ "$rc_b" -eq 0 ] && [ -s "$tmp/t10/figures/latent_scatter.png" ] \
        && grep -qx "cuvae: t-SNE: perplexity 2.67, (points - 2) / 3 for 10 points (30 needs more than 91)" "$tmp/t10.err" \
        && ! grep -q "points asked" "$tmp/t10.err" \
        && grep -qx "cuvae: t-SNE: 2000 points asked, the test set has 10: using 10" "$tmp/t10b.err" \
        && ok "t-SNE of 10 codes: the lowered perplexity said; 'points asked' only for a given --tsne-points" \
        || bad "t-SNE of 10 codes: exit $rc / $rc_b: $(grep t-SNE "$tmp/t10.err" "$tmp/t10b.err" | tr '\n' ' ')"
    # test images without the class pairs 0-1, 2-3, ... (MNIST's first two are a 7 and a 2): the
    # interpolation runs between test images 0 and 1
    "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.train_limit=300 --set data.test_limit=2 \
        --set model.latent_dim=2 --set train.epochs=1 --set train.epoch_images=false --set eval.iw_samples=0 \
        --out "$tmp/t2" 2>/dev/null
    "$CUVAE" plot "$tmp/t2" 2>"$tmp/t2.err"; rc=$?
    said=$(grep -o "drawing [0-9]* figures" "$tmp/t2.err" | grep -o "[0-9]*"); drawn=$(grep -c "^cuvae: wrote" "$tmp/t2.err")
    [ "$rc" -eq 0 ] && [ -s "$tmp/t2/figures/interpolation.png" ] && [ -n "$said" ] && [ "$said" -eq "$drawn" ] \
        && ok "plot with no class pair in the test set: the interpolation between test images 0 and 1; $drawn figures announced and drawn" \
        || bad "plot, no class pair: exit $rc, announced $said, drew $drawn: $(tail -1 "$tmp/t2.err")"
    "$CUVAE" plot "$tmp/t2" --latent-range 1e20:2e20 2>"$tmp/t2range.err"
    grep -q "^cuvae: latent scatter: 2 of the 2 points lie outside the axes and are not drawn (none is: widen --latent-range)$" "$tmp/t2range.err" \
        && ok "plot --latent-range that misses every code: said, not an empty scatter unsaid" \
        || bad "--latent-range missing the codes: $(grep scatter "$tmp/t2range.err")"
    # plot --z sample: a KL-only run's scatter of one z ~ q(z|x) per image is the N(0, I) cloud of the
    # lecture's slide, where its means collapse to a point; the draws are the evaluation's (the same twice)
    "$CUVAE" train configs/lectures/kl_only_dim2.json --set device=cpu --set data.train_limit=2000 \
        --set data.test_limit=500 --set train.epochs=2 --set train.epoch_images=false --set eval.iw_samples=0 \
        --out "$tmp/klz" 2>/dev/null
    "$CUVAE" plot "$tmp/klz" 2>"$tmp/klz_mean.err"
    "$CUVAE" plot "$tmp/klz" --z sample 2>"$tmp/klz_draw.err"
    "$CUVAE" plot "$tmp/klz" --z sample 2>"$tmp/klz_draw2.err"
    width() { sed -nE 's/^cuvae: latent scatter extent: z1 \[(\S+), (\S+)\].*/\1 \2/p' "$1" | awk '{print $2 - $1}'; }
    wm=$(width "$tmp/klz_mean.err"); wd=$(width "$tmp/klz_draw.err")
    if [ -n "$wm" ] && [ -n "$wd" ] && awk -v m="$wm" -v d="$wd" 'BEGIN {exit !(m < 0.5 && d > 3.5 && d < 7)}' &&
       [ -s "$tmp/klz/figures/latent_scatter.png" ] &&
       [ "$(grep extent "$tmp/klz_draw.err")" = "$(grep extent "$tmp/klz_draw2.err")" ]; then
        ok "plot --z sample: a KL-only run's draws z ~ q(z|x) span $wd in z1 (the N(0, I) cloud), its means $wm; the same draws twice"
    else bad "plot --z sample: widths mean '$wm', draws '$wd': $(grep -h extent "$tmp"/klz_*.err)"; fi
    "$CUVAE" train configs/lectures/ae_dim2.json --set device=cpu --set data.train_limit=300 --set data.test_limit=50 \
        --set train.epochs=1 --set train.epoch_images=false --out "$tmp/aez" 2>/dev/null
    expect_error "plot --z sample on an AE: refused (a deterministic encoder)" 2 \
        'plot: --z sample scatters draws z ~ q\(z\|x\); kind "ae" has a deterministic encoder: its codes are the scatter' -- \
        "$CUVAE" plot "$tmp/aez" --z sample
else
    skip "latent dim 1 plots" "gnuplot missing"
    skip "plot --latent-range that misses every code" "gnuplot missing"
    skip "plot --z sample" "gnuplot missing"
fi
expect_error "plot --z with another value: refused" 2 'plot: --z: expected sample or mean, got "draws"' -- \
    "$CUVAE" plot "$tmp/a" --z draws
# the logged KL weight is the one the epoch's last step trained with: one step an epoch (full
# batch) and a 2-epoch warm-up train epoch 1 at weight 0 (train_loss = train_rec), epoch 2 at 1/2
"$CUVAE" train configs/examples_vae.json --set device=cpu --set data.train_limit=256 --set data.test_limit=64 \
    --set train.batch_size=256 --set loss.kl_warmup_epochs=2 --set train.epochs=2 --set train.epoch_images=false \
    --set eval.iw_samples=0 --out "$tmp/warm" 2>"$tmp/warm.err"
w1=$(sed -n 1p "$tmp/warm/log.jsonl"); w2=$(sed -n 2p "$tmp/warm/log.jsonl")
field() { echo "$1" | sed -nE "s/.*\"$2\": ([-0-9.e]+).*/\1/p"; }   # (empty where the key is missing)
[ "$(field "$w1" kl_weight)" = "0" ] && [ -n "$(field "$w1" train_loss)" ] && [ "$(field "$w1" train_loss)" = "$(field "$w1" train_rec)" ] \
    && [ "$(field "$w2" kl_weight)" = "0.5" ] && grep -q "epoch 1/2: train objective [0-9.]* (1 rec + 0 KL)" "$tmp/warm.err" \
    && ok "KL warm-up: the logged and printed weight is the one the epoch's last step used (0, then 0.5)" \
    || bad "KL warm-up weights: $w1 / $w2; $(grep '^epoch 1' "$tmp/warm.err")"
# the per-epoch grids: one sample and one reconstruction PNG per epoch
n_png=0
for e in 001 002 003; do
    for kind in samples reconstruction; do
        head -c 8 "$tmp/a/progress/${kind}_epoch_$e.png" 2>/dev/null | od -An -tx1 | grep -q "89 50 4e 47 0d 0a 1a 0a" && n_png=$((n_png + 1))
    done
done
[ "$n_png" -eq 6 ] && [ "$(ls "$tmp/a/progress" | wc -l)" -eq 6 ] && ok "progress/: a sample and a reconstruction grid per epoch" \
    || bad "progress/ holds $(ls "$tmp/a/progress" 2>/dev/null | tr '\n' ' ')"
# the reconstruction grid: 8 test images in a row above their 8 reconstructions (242 x 62 pixels),
# the samples 8 x 8 (242 x 242)
[ "$(png_size "$tmp/a/progress/reconstruction_epoch_003.png")" = "242x62" ] \
    && [ "$(png_size "$tmp/a/progress/samples_epoch_003.png")" = "242x242" ] \
    && ok "progress/: the reconstructions under their 8 test images (two rows of 8), the samples 8 x 8" \
    || bad "progress/ grids: reconstructions $(png_size "$tmp/a/progress/reconstruction_epoch_003.png") (want 242x62), samples $(png_size "$tmp/a/progress/samples_epoch_003.png") (want 242x242)"
# train.epoch_images_every N: the grids of every N-th epoch and of the last only (a long run's progress/
# grew by two images an epoch)
"$CUVAE" train configs/examples_vae.json --set data.train_limit=200 --set data.test_limit=50 --set device=cpu \
    --set train.batch_size=100 --set train.epochs=7 --set train.epoch_images_every=3 --out "$tmp/every" 2>"$tmp/every.err"
[ "$(ls "$tmp/every/progress" 2>/dev/null | tr '\n' ' ')" = "reconstruction_epoch_003.png reconstruction_epoch_006.png reconstruction_epoch_007.png samples_epoch_003.png samples_epoch_006.png samples_epoch_007.png " ] \
    && ok "train.epoch_images_every 3 over 7 epochs: the grids of epochs 3, 6 and 7" \
    || bad "epoch_images_every: progress/ holds $(ls "$tmp/every/progress" 2>/dev/null | tr '\n' ' ') $(tail -1 "$tmp/every.err")"
# ... and of the epoch early stopping ends the run with (lr 1e-30: the validation loss never improves)
"$CUVAE" train configs/examples_vae.json --set data.train_limit=200 --set data.test_limit=50 --set device=cpu \
    --set train.batch_size=100 --set data.validation=0.25 --set train.epochs=9 --set train.early_stopping=1 \
    --set train.lr=1e-30 --set train.epoch_images_every=4 --out "$tmp/every_es" 2>"$tmp/every_es.err"
grep -q "early stopping after epoch 2" "$tmp/every_es.err" && [ "$(ls "$tmp/every_es/progress" | tr '\n' ' ')" = "reconstruction_epoch_002.png samples_epoch_002.png " ] \
    && ok "train.epoch_images_every 4, early stopping after epoch 2: that epoch's grids" \
    || bad "epoch_images_every with early stopping: $(ls "$tmp/every_es/progress" | tr '\n' ' ') $(grep early "$tmp/every_es.err")"
# the progress images may change on --resume (a run begun before the key existed takes it)
"$CUVAE" train configs/examples_vae.json --set data.train_limit=200 --set data.test_limit=50 --set device=cpu \
        --set train.batch_size=100 --set train.epochs=9 --set train.epoch_images_every=1 --out "$tmp/every" --resume 2>"$tmp/every_res.err" \
    && [ "$(ls "$tmp/every/progress" | grep -c "samples")" -eq 5 ] \
    && ok "--resume with another train.epoch_images_every: taken (epochs 8 and 9 drawn at 1)" \
    || bad "--resume with epoch_images_every changed: $(tail -1 "$tmp/every_res.err"); $(ls "$tmp/every/progress" | tr '\n' ' ')"
"$CUVAE" train configs/examples_vae.json --set data.train_limit=200 --set data.test_limit=50 --set device=cpu \
    --set train.epochs=0 --set train.epoch_images=false --set train.epoch_images_every=5 --out "$tmp/every_off" 2>"$tmp/every_off.err"
grep -qx "cuvae: note: train.epoch_images_every 5: train.epoch_images is false, so no progress images are written at all" "$tmp/every_off.err" \
    && ok "train.epoch_images_every with epoch_images false: a note" || bad "epoch_images_every without images: $(grep note "$tmp/every_off.err")"
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set train.epochs=1 --out "$tmp/b1" 2>/dev/null
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set train.epochs=1 --out "$tmp/b2" 2>/dev/null
cmp -s "$tmp/b1/model.safetensors" "$tmp/b2/model.safetensors" && ok "same seed, bit-identical checkpoint" \
    || bad "same seed gave different checkpoints"
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set train.epochs=1 --set train.seed=2 --out "$tmp/b3" 2>/dev/null
[ -s "$tmp/b1/model.safetensors" ] && [ -s "$tmp/b3/model.safetensors" ] \
    && ! cmp -s "$tmp/b1/model.safetensors" "$tmp/b3/model.safetensors" \
    && ok "different seed, different checkpoint" || bad "different seed: the same checkpoint, or a run failed"
# --resume: 1 epoch, then resumed to 3 == 3 uninterrupted epochs, bit for bit (the step
# state carries the draw offsets, Adam's bias corrections and the KL warm-up position)
res=(--set data.train_limit=1000 --set data.test_limit=200 --set device=cpu --set model.latent_dim=8
     --set data.binarize=dynamic --set loss.kl_warmup_epochs=2)
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=3 --out "$tmp/full" 2>/dev/null
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=1 --out "$tmp/res" 2>/dev/null
echo '{"epoch": 2, "a line written before a crash": true}' >> "$tmp/res/log.jsonl"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=3 --out "$tmp/res" --resume 2>"$tmp/res.err" \
    || bad "resume: $(tail -1 "$tmp/res.err")"
grep -q "resuming .* after epoch 1 of 3" "$tmp/res.err" && ok "resume says where it continues" || bad "resume message"
cmp -s "$tmp/full/model.safetensors" "$tmp/res/model.safetensors" && ok "1 + resumed 2 epochs == 3 epochs, bit-identical" \
    || bad "resumed run differs from the uninterrupted one"
cmp -s "$tmp/full/resume.safetensors" "$tmp/res/resume.safetensors" && ok "resume files identical too" || bad "resume files differ"
strip_time() { sed -E 's/"seconds": [0-9.]+, "samples_per_s": [0-9.]+, //' "$1"; }
[ "$(strip_time "$tmp/full/log.jsonl")" = "$(strip_time "$tmp/res/log.jsonl")" ] \
    && ok "resumed log.jsonl == uninterrupted (the line after the resume point dropped)" || bad "resumed log differs"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=4 --set train.lr=0.01 --out "$tmp/res" --resume 2>"$tmp/res2.err"
rc=$?
[ $rc -eq 2 ] && grep -q "another config.*lr" "$tmp/res2.err" && ok "resume refuses a changed config, naming the key" \
    || bad "changed config on resume: rc $rc: $(tail -1 "$tmp/res2.err")"
# ... saying how to go on as the run began (a shipped config changed by an upgrade): its config.json
cp -r "$tmp/res" "$tmp/res_cfg"
grep -q "(to go on with the config the run began with, a shipped one that changed since say, give the run folder's config.json as CONFIG)" "$tmp/res2.err" \
    && "$CUVAE" train "$tmp/res_cfg/config.json" --set train.epochs=4 --out "$tmp/res_cfg" --resume 2>"$tmp/res_cfg.err" \
    && grep -q "resuming .* after epoch 3 of 4" "$tmp/res_cfg.err" \
    && ok "... and says to give the run's config.json, which resumes it" || bad "resume with the run's config.json: $(tail -1 "$tmp/res_cfg.err")"
# --resume of a finished run whose model.safetensors is gone or damaged: written again from the
# resume state (the same parameters), bit-identical, not an eval.json beside no model
cp -r "$tmp/res" "$tmp/res_intact"; inode=$(stat -c %i "$tmp/res_intact/model.safetensors")
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=3 --out "$tmp/res_intact" --resume 2>"$tmp/res_intact.err" \
    && [ "$(stat -c %i "$tmp/res_intact/model.safetensors")" = "$inode" ] \
    && ok "--resume of a finished run with its model intact: the file left as it is (a prior may pin its crc32)" \
    || bad "--resume of a finished run, model intact: $(tail -1 "$tmp/res_intact.err")"
cp -r "$tmp/res" "$tmp/res_nomodel"; rm "$tmp/res_nomodel/model.safetensors"
cp -r "$tmp/res" "$tmp/res_cut"; truncate -s 1000 "$tmp/res_cut/model.safetensors"
for d in res_nomodel res_cut; do
    "$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=3 --out "$tmp/$d" --resume 2>"$tmp/$d.err" \
        && cmp -s "$tmp/full/model.safetensors" "$tmp/$d/model.safetensors" \
        && ok "--resume of a finished run ($d): model.safetensors written again from the resume state, bit-identical" \
        || bad "--resume of a finished run ($d): $(tail -1 "$tmp/$d.err")"
done
# a resume file of another run copied into the folder (the command that run's): refused, naming
# the folder's config.json, the folder unchanged (it would have continued under the folder's log)
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=1 --set train.seed=9 --out "$tmp/res_seed9" 2>/dev/null
cp -r "$tmp/res" "$tmp/res_foreign"; cp "$tmp/res_seed9/resume.safetensors" "$tmp/res_foreign/"
cp -r "$tmp/res_foreign" "$tmp/res_foreign.before"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=4 --set train.seed=9 --out "$tmp/res_foreign" --resume 2>"$tmp/res_foreign.err"; rc=$?
[ $rc -eq 2 ] && tail -1 "$tmp/res_foreign.err" | grep -q "res_foreign/config.json: written by a run with another config (stored line .*seed.*), not the one the resume file holds" \
    && diff -r "$tmp/res_foreign" "$tmp/res_foreign.before" >/dev/null \
    && ok "--resume with another run's resume file in the folder: refused, naming config.json, the folder unchanged" \
    || bad "--resume with another run's resume file: rc $rc, $(tail -1 "$tmp/res_foreign.err")"
# ... and where the folder's config.json does not read as a run config at all (one bad value): refused
# the same way, the folder unchanged (the run wrote its own config.json over it until 2026-12-05)
cp -r "$tmp/res" "$tmp/res_badcfg"; sed -i 's/"lr": [0-9.e-]*/"lr": "fast"/' "$tmp/res_badcfg/config.json"
cp -r "$tmp/res_badcfg" "$tmp/res_badcfg.before"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=4 --out "$tmp/res_badcfg" --resume 2>"$tmp/res_badcfg.err"; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c . "$tmp/res_badcfg.err")" -eq 1 ] \
    && grep -q "res_badcfg/config.json.*train.lr.*(the run folder's config.json, which --resume keeps as the run wrote it)" "$tmp/res_badcfg.err" \
    && diff -r "$tmp/res_badcfg" "$tmp/res_badcfg.before" >/dev/null \
    && ok "--resume with a folder config.json that does not read (a bad value): refused, naming it, the folder unchanged" \
    || bad "--resume with an unreadable folder config.json: rc $rc, $(tail -1 "$tmp/res_badcfg.err")"
# progress/ that is not a folder: refused before an epoch is trained (it would have rewritten
# config.json, the log and the model, then failed on the epoch's images), the run unchanged
cp -r "$tmp/res" "$tmp/res_prog"; rm -r "$tmp/res_prog/progress"; echo x > "$tmp/res_prog/progress"
cp -r "$tmp/res_prog" "$tmp/res_prog.before"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=4 --out "$tmp/res_prog" --resume 2>"$tmp/res_prog.err"; rc=$?
[ $rc -eq 2 ] && tail -1 "$tmp/res_prog.err" | grep -q "res_prog/progress: not a folder (a run keeps its images there): move it away$" \
    && diff -r "$tmp/res_prog" "$tmp/res_prog.before" >/dev/null \
    && ok "--resume with progress/ a file: refused before training, the run unchanged" \
    || bad "--resume with progress/ a file: rc $rc, $(tail -1 "$tmp/res_prog.err")"
# ... or a link to a folder that does not exist (stat fails on it: it was missed until 2026-12-04)
cp -r "$tmp/res" "$tmp/res_link"; rm -r "$tmp/res_link/progress"; ln -s "$tmp/nonexistent_dir" "$tmp/res_link/progress"
cp -a "$tmp/res_link" "$tmp/res_link.before"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=4 --out "$tmp/res_link" --resume 2>"$tmp/res_link.err"; rc=$?
[ $rc -eq 2 ] && tail -1 "$tmp/res_link.err" | grep -q "res_link/progress: a link to a folder that does not exist (a run keeps its images there): mend it or remove it$" \
    && diff -r --no-dereference "$tmp/res_link" "$tmp/res_link.before" >/dev/null \
    && ok "--resume with progress/ a dangling link: refused before training, the run unchanged" \
    || bad "--resume with progress/ a dangling link: rc $rc, $(tail -1 "$tmp/res_link.err")"
# figures/ a dangling link (a share not mounted): the run writes nothing there, so it resumes
cp -r "$tmp/res" "$tmp/res_figlink"; rm -rf "$tmp/res_figlink/figures"; ln -s "$tmp/nonexistent_share" "$tmp/res_figlink/figures"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=4 --out "$tmp/res_figlink" --resume >/dev/null 2>"$tmp/res_figlink.err" \
    && [ -L "$tmp/res_figlink/figures" ] && ok "--resume with figures/ a dangling link (train writes nothing there): resumed" \
    || bad "--resume with figures/ a dangling link: $(tail -1 "$tmp/res_figlink.err")"
# a refusal on device auto (no GPU here: the CPU) is its one line: the fallback's note is said
# with the run's notes, once every check has passed (it came first, a second line)
expect_error "--resume refused on device auto: one line (the CPU fallback's note not said)" 2 \
    "res.*: written by a run with another config" -- \
    "$CUVAE" train configs/examples_vae.json "${res[@]}" --set train.epochs=4 --set train.lr=0.5 --set device=auto \
    --out "$tmp/res" --resume
# a length shorter than the epochs done names the key it came from: train.full_epochs under
# --full (where --set train.epochs is refused), else train.epochs
for how in "--set train.epochs=2" "--full --set train.full_epochs=2"; do
    key=${how##*--set }; key=${key%%=*}
    "$CUVAE" train configs/examples_vae.json "${res[@]}" $how --out "$tmp/full" --resume 2>"$tmp/short.err"; rc=$?
    [ $rc -eq 2 ] && grep -q "full/resume.safetensors: the run has finished 3 epochs; $key 2 would end it before them (--set $key=3 or more)$" "$tmp/short.err" \
        && ok "resume with fewer epochs than done ($how): refused, naming $key" || bad "short resume ($how): rc $rc: $(tail -1 "$tmp/short.err")"
done
# a cosine run extended: the rest on the longer curve (the lr rises), said in a note
cos_small=(--set data.train_limit=256 --set data.test_limit=64 --set device=cpu --set train.lr_schedule=cosine)
"$CUVAE" train configs/examples_vae.json "${cos_small[@]}" --set train.epochs=2 --out "$tmp/cos_extended" 2>/dev/null
"$CUVAE" train configs/examples_vae.json "${cos_small[@]}" --set train.epochs=4 --out "$tmp/cos_extended" --resume 2>"$tmp/cos_extended.err"
lrs=$(sed -E 's/.*"lr": ([^,}]*).*/\1/' "$tmp/cos_extended/log.jsonl" | tr '\n' ' ')
grep -q "^cuvae: note: train.epochs 2 -> 4 with lr_schedule cosine: the lr follows the 4-epoch curve from here" "$tmp/cos_extended.err" \
    && awk -v l="$lrs" 'BEGIN { split(l, v, " "); exit !(v[3] > v[2] && v[4] < v[3]) }' \
    && ok "an extended cosine run: a note, and the lr rises onto the 4-epoch curve (lr by epoch: $lrs)" \
    || bad "extended cosine run: lr $lrs, $(grep note "$tmp/cos_extended.err")"
# figures of the model before a resumption that trains further: removed, said (eval.json goes too)
# (every figure plot drew, and only those: an image of the user's there stays)
"$CUVAE" plot "$tmp/cos_extended" >/dev/null 2>&1 || bad "plot of cos_extended failed"
drawn=$(ls "$tmp/cos_extended/figures" | tr '\n' ' ')
echo png > "$tmp/cos_extended/figures/my_notes.png"
"$CUVAE" train configs/examples_vae.json "${cos_small[@]}" --set train.epochs=5 --out "$tmp/cos_extended" --resume 2>"$tmp/cos_fig.err"
[ "$(ls "$tmp/cos_extended/figures")" = my_notes.png ] && [ "$(echo $drawn | wc -w)" -ge 5 ] \
    && grep -q "^cuvae: removed cuvae plot's figures in .*cos_extended/figures/, drawn from the model before this resumption .*other images there are left" "$tmp/cos_fig.err" \
    && ok "--resume that trains further removes the earlier model's figures ($drawn), saying so; the user's image stays" \
    || bad "--resume and stale figures: $(ls "$tmp/cos_extended/figures") / $(grep removed "$tmp/cos_fig.err")"
# the data files changed under the run (same config): refused, naming the resume file
mkdir -p "$tmp/swapdata" && cp data/mnist/* "$tmp/swapdata/"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set data.dir="$tmp/swapdata" --set train.epochs=1 \
    --out "$tmp/swap" 2>/dev/null
# (one pixel of a later training image changed: the files of another named dataset are refused
# before the resume point is read, below)
python3 - "$tmp/swapdata" <<'PY'
import gzip, os, sys
path = os.path.join(sys.argv[1], "train-images-idx3-ubyte.gz")
data = bytearray(gzip.open(path).read())
data[16 + 784 * 20 + 400] ^= 0xFF
os.remove(path)
open(path[:-3], "wb").write(bytes(data))
PY
"$CUVAE" train configs/examples_vae.json "${res[@]}" --set data.dir="$tmp/swapdata" --set train.epochs=2 \
    --out "$tmp/swap" --resume 2>"$tmp/swap.err"; rc=$?
[ $rc -eq 2 ] && grep -q "resume.safetensors: the run trained on other data (its training set's CRC-32 [0-9a-f]*, now" "$tmp/swap.err" \
    && ok "resume on other data files (same config) is refused" || bad "resume on other data: rc $rc: $(tail -1 "$tmp/swap.err")"
"$CUVAE" train configs/examples_vae.json "${res[@]}" --out "$tmp/nothing" --resume 2>"$tmp/res3.err"
rc=$?
[ $rc -eq 2 ] && grep -q "resume.safetensors: nothing to resume" "$tmp/res3.err" && ok "resume without a resume file: clear error" \
    || bad "resume without file: rc $rc: $(tail -1 "$tmp/res3.err")"
# data.dataset over the other named dataset's files (a --set data.dataset with data.dir left as it
# was): refused, saying what the files are -- it would train on one and label it as the other
if [ -s data/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    for pair in "fashion-mnist:data/mnist:MNIST" "mnist:data/fashion-mnist:Fashion-MNIST"; do
        IFS=: read -r name dir holds <<< "$pair"
        "$CUVAE" train configs/examples_vae.json "${common[@]}" --set data.dataset="$name" --set data.dir="$dir" \
            --out "$tmp/mismatch" 2>"$tmp/mismatch.err"; rc=$?
        [ $rc -eq 2 ] && grep -q "^cuvae: data.dir $dir holds $holds's training images (train-images-idx3-ubyte: its first image matches), but data.dataset is \"$name\": set data.dir to the $name files" "$tmp/mismatch.err" \
            && [ ! -e "$tmp/mismatch" ] \
            && ok "data.dataset $name over $holds's files: refused, naming both" \
            || bad "data.dataset $name over $dir: rc $rc: $(tail -1 "$tmp/mismatch.err")"
    done
    # one split's files copied from the other dataset: the test images are checked too; and a
    # training set cut under 10 images, or eval (which reads the test files alone), still checks
    mkdir -p "$tmp/mixed"; cp data/mnist/train-* "$tmp/mixed/"; cp data/fashion-mnist/t10k-* "$tmp/mixed/"
    "$CUVAE" train configs/examples_vae.json "${common[@]}" --set data.dir="$tmp/mixed" --out "$tmp/mismatch" 2>"$tmp/mismatch.err"; rc=$?
    [ $rc -eq 2 ] && grep -q "^cuvae: data.dir $tmp/mixed holds Fashion-MNIST's test images (t10k-images-idx3-ubyte: its first image matches), but data.dataset is \"mnist\"" "$tmp/mismatch.err" \
        && [ ! -e "$tmp/mismatch" ] && ok "MNIST training files beside Fashion-MNIST's test files: refused, naming the test file" \
        || bad "mixed splits: rc $rc: $(tail -1 "$tmp/mismatch.err")"
    "$CUVAE" train configs/examples_vae.json "${common[@]}" --set data.dataset=fashion-mnist --set data.train_limit=9 \
        --out "$tmp/mismatch" 2>"$tmp/mismatch.err"; rc=$?
    [ $rc -eq 2 ] && grep -q "holds MNIST's training images" "$tmp/mismatch.err" && ok "... with data.train_limit 9 too" \
        || bad "data.train_limit 9 over the other dataset: rc $rc: $(tail -1 "$tmp/mismatch.err")"
    "$CUVAE" eval "$tmp/full/model.safetensors" --set data.dataset=fashion-mnist 2>"$tmp/mismatch.err"; rc=$?
    [ $rc -eq 2 ] && grep -q "holds MNIST's test images (t10k-images-idx3-ubyte" "$tmp/mismatch.err" && ok "... and by eval --set data.dataset" \
        || bad "eval --set data.dataset over the other dataset: rc $rc: $(tail -1 "$tmp/mismatch.err")"
else
    skip "data.dataset over the other dataset's files" "data/fashion-mnist missing (run make data)"
fi
# AE and dynamic binarization paths train too
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set model.kind=ae --set train.epochs=1 --out "$tmp/ae" 2>"$tmp/ae.err" \
    && grep -q '"test_kl": 0.000000' "$tmp/ae/log.jsonl" && ok "ae trains, KL is 0" || bad "ae run: $(tail -1 "$tmp/ae.err")"
[ "$(ls "$tmp/ae/progress")" = "reconstruction_epoch_001.png" ] && ok "an ae writes reconstructions only (no N(0, I) samples)" \
    || bad "ae progress/: $(ls "$tmp/ae/progress" | tr '\n' ' ')"
"$CUVAE" train configs/examples_vae.json "${common[@]}" --set data.binarize=dynamic --set train.epochs=1 \
    --set train.epoch_images=false --out "$tmp/dyn" 2>"$tmp/dyn.err" \
    && ok "dynamic binarization trains" || bad "dynamic run: $(tail -1 "$tmp/dyn.err")"
[ ! -e "$tmp/dyn/progress" ] && ok "train.epoch_images=false writes no grids" || bad "epoch_images=false wrote progress/"
# eval and plot read the test files alone: a data.dir holding only t10k-* gives the same report
# and figures (a binarized run: its test bits drawn as with all four files)
mkdir -p "$tmp/t10k_only"; cp data/mnist/t10k-* "$tmp/t10k_only/"
"$CUVAE" eval "$tmp/dyn/model.safetensors" 2>/dev/null | sed 's/"seconds": [0-9.]*//' > "$tmp/eval_all.json"
"$CUVAE" eval "$tmp/dyn/model.safetensors" --set data.dir="$tmp/t10k_only" 2>"$tmp/eval_t10k.err" \
    | sed 's/"seconds": [0-9.]*//' > "$tmp/eval_t10k.json"
[ -s "$tmp/eval_all.json" ] && grep -q '"binarized": true' "$tmp/eval_all.json" && cmp -s "$tmp/eval_all.json" "$tmp/eval_t10k.json" \
    && ok "eval with data.dir holding the two test files alone: the same report" \
    || bad "eval from t10k files alone: $(tail -1 "$tmp/eval_t10k.err")"
if command -v gnuplot >/dev/null; then
    "$CUVAE" plot "$tmp/dyn" >/dev/null 2>&1 && (cd "$tmp/dyn/figures" && md5sum ./*.png) > "$tmp/plot_all.md5"
    rm -rf "$tmp/dyn/figures"
    "$CUVAE" plot "$tmp/dyn" --set data.dir="$tmp/t10k_only" >/dev/null 2>"$tmp/plot_t10k.err" \
        && (cd "$tmp/dyn/figures" && md5sum ./*.png) > "$tmp/plot_t10k.md5"
    [ -s "$tmp/plot_all.md5" ] && cmp -s "$tmp/plot_all.md5" "$tmp/plot_t10k.md5" \
        && ok "plot with the two test files alone: the same figures ($(wc -l < "$tmp/plot_all.md5") images)" \
        || bad "plot from t10k files alone: $(tail -1 "$tmp/plot_t10k.err")"
    # the user's ~/.gnuplot does not change the figures (gnuplot -d; a decimal comma and a log axis there did)
    mkdir -p "$tmp/home"; printf 'set decimalsign ","\nset logscale y\nset datafile separator ","\n' > "$tmp/home/.gnuplot"
    rm -rf "$tmp/dyn/figures"
    HOME="$tmp/home" "$CUVAE" plot "$tmp/dyn" >/dev/null 2>"$tmp/plot_home.err" \
        && (cd "$tmp/dyn/figures" && md5sum ./*.png) > "$tmp/plot_home.md5"
    [ -s "$tmp/plot_all.md5" ] && cmp -s "$tmp/plot_all.md5" "$tmp/plot_home.md5" \
        && ok "plot with a ~/.gnuplot that sets a decimal comma, a log axis and a comma separator: the same figures" \
        || bad "plot under a ~/.gnuplot: $(tail -1 "$tmp/plot_home.err")"
else
    skip "plot from the test files alone, and under a ~/.gnuplot" "gnuplot not installed"
fi
# eval draws do not depend on the batch size: odd batch and odd latent dimension
"$CUVAE" train configs/examples_vae.json --set data.train_limit=140 --set data.test_limit=99 --set device=cpu \
    --set model.latent_dim=3 --set train.batch_size=7 --set train.epochs=1 --out "$tmp/odd" 2>"$tmp/odd.err" \
    || bad "batch 7 / latent 3: the run failed: $(tail -1 "$tmp/odd.err")"
logged=$(sed -nE 's/.*"test_loss": ([0-9.]+).*/\1/p' "$tmp/odd/log.jsonl" 2>/dev/null)
evald=$("$CUVAE" eval "$tmp/odd/model.safetensors" 2>/dev/null | sed -nE 's/.*"test_loss": ([0-9.]+).*/\1/p')
[ -n "$logged" ] && [ -n "$evald" ] && awk -v a="$logged" -v b="$evald" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-3) }' \
    && ok "eval == logged test loss with batch 7, latent 3 ($evald)" || bad "batch 7 / latent 3: log '$logged' vs eval '$evald'"
# sizes: latent 4097 (odd, > 4096), a hidden layer of 8192, batch 50 over 130 examples (partial last batch of 30)
"$CUVAE" train configs/examples_vae.json --set data.train_limit=130 --set data.test_limit=70 --set device=cpu \
    --set model.latent_dim=4097 --set model.encoder=[1024] --set model.decoder=[64] --set train.batch_size=50 \
    --set train.epochs=1 --out "$tmp/big_latent" 2>"$tmp/bl.err" && grep -q '"test_loss"' "$tmp/big_latent/eval.json" \
    && ok "latent 4097, partial last batch" || bad "latent 4097: $(tail -1 "$tmp/bl.err")"
"$CUVAE" train configs/examples_vae.json --set data.train_limit=130 --set data.test_limit=70 --set device=cpu \
    --set model.latent_dim=1 --set model.encoder=[8192] --set model.decoder=[8192] --set train.batch_size=64 \
    --set train.epochs=1 --out "$tmp/wide" 2>"$tmp/w.err" && grep -q '"latent_dim": 1' "$tmp/wide/eval.json" \
    && ok "hidden 8192, latent 1" || bad "hidden 8192: $(tail -1 "$tmp/w.err")"
# data.validation: a seeded held-out part of the training set is watched each epoch (val_* in
# the log), best.safetensors follows its lowest loss, the test set is evaluated at the end
val=(--set data.train_limit=1000 --set data.test_limit=200 --set device=cpu --set model.latent_dim=8
     --set data.validation=0.1)
"$CUVAE" train configs/examples_vae.json "${val[@]}" --set train.epochs=3 --out "$tmp/val" 2>"$tmp/val.err" \
    || bad "validation run: $(tail -1 "$tmp/val.err")"
grep -q "train 900 (100 more held out for validation, seeded)" "$tmp/val.err" && ok "validation: 10% held out, said so" \
    || bad "validation split not announced"
[ "$(grep -c '"val_loss"' "$tmp/val/log.jsonl")" -eq 3 ] && ! grep -q '"test_loss"' "$tmp/val/log.jsonl" \
    && grep -q '"test_loss"' "$tmp/val/eval.json" && ok "validation: val_* per epoch, the test set at the end (eval.json)" \
    || bad "validation log / eval keys"
# 0.5 of an odd set holds out at most half (0.5 of 3 held out 2)
"$CUVAE" train configs/examples_vae.json --set data.train_limit=3 --set data.test_limit=50 --set device=cpu \
    --set model.latent_dim=8 --set data.validation=0.5 --set train.epochs=1 --out "$tmp/val3" 2>"$tmp/val3.err"
grep -q "train 2 (1 more held out for validation, seeded)" "$tmp/val3.err" && ok "validation 0.5 of 3 examples: 1 held out, 2 trained" \
    || bad "validation 0.5 of 3: $(grep -o 'train [0-9]* ([^)]*)' "$tmp/val3.err") $(tail -1 "$tmp/val3.err")"
# best.safetensors holds the epoch of the lowest val_loss, not the last: 20 examples at lr 0.05
# overfit, so the validation loss turns back up within 6 epochs; the best epoch's weights are
# those of a run of that many epochs (its config says other epochs: the tensors are compared)
over=(--set data.train_limit=40 --set data.test_limit=50 --set device=cpu --set data.validation=0.5
      --set train.batch_size=4 --set train.lr=0.05 --set train.epoch_images=false --set eval.iw_samples=0)
"$CUVAE" train configs/examples_vae.json "${over[@]}" --set train.epochs=6 --out "$tmp/over" 2>"$tmp/over.err" \
    || bad "overfitting run: $(tail -1 "$tmp/over.err")"
best_epoch=$(sed -nE 's/.*"epoch": ([0-9]+), .*"val_loss": ([0-9.]+).*/\2 \1/p' "$tmp/over/log.jsonl" 2>/dev/null | sort -n | head -1 | cut -d' ' -f2)
if [ "$best_epoch" = 6 ]; then
    skip "best.safetensors is the epoch of the lowest val_loss" "the validation loss fell in every epoch on this machine ($(grep -o '"val_loss": [0-9.]*' "$tmp/over/log.jsonl" | tr '\n' ' '))"
else
    [ -n "$best_epoch" ] && "$CUVAE" train configs/examples_vae.json "${over[@]}" --set train.epochs="$best_epoch" \
        --out "$tmp/over_best" 2>/dev/null
    [ -n "$best_epoch" ] && same_tensors "$tmp/over/best.safetensors" "$tmp/over_best/model.safetensors" \
        && ! same_tensors "$tmp/over/best.safetensors" "$tmp/over/model.safetensors" \
        && ok "best.safetensors holds the weights of the epoch with the lowest val_loss ($best_epoch of 6), not the last" \
        || bad "best.safetensors: best epoch '$best_epoch' of 6, or its weights are not that epoch's"
fi
"$CUVAE" train configs/examples_vae.json "${val[@]}" --set train.epochs=1 --out "$tmp/valres" 2>/dev/null
"$CUVAE" train configs/examples_vae.json "${val[@]}" --set train.epochs=3 --out "$tmp/valres" --resume 2>/dev/null
cmp -s "$tmp/valres/best.safetensors" "$tmp/val/best.safetensors" && cmp -s "$tmp/valres/model.safetensors" "$tmp/val/model.safetensors" \
    && ok "validation: 1 epoch + --resume to 3 == 3 epochs (model and best), bit for bit" || bad "validation resume differs"
# early stopping: a learning rate too small to change any weight leaves the validation loss flat
"$CUVAE" train configs/examples_vae.json "${val[@]}" --set train.epochs=6 --set train.lr=1e-30 \
    --set train.early_stopping=2 --out "$tmp/es" 2>"$tmp/es.err"
[ "$(wc -l < "$tmp/es/log.jsonl")" -eq 3 ] && grep -q "^cuvae: early stopping after epoch 3: the validation loss has not improved for 2 epochs (best .* at epoch 1" "$tmp/es.err" \
    && [ -s "$tmp/es/eval.json" ] && ok "early stopping after 2 epochs without improvement, said so, test set evaluated" \
    || bad "early stopping: $(wc -l < "$tmp/es/log.jsonl") epochs, $(grep early "$tmp/es.err")"
# --resume of a run that stopped early stays stopped (evaluates, trains no further epoch)
cp "$tmp/es/model.safetensors" "$tmp/es.model"
"$CUVAE" train configs/examples_vae.json "${val[@]}" --set train.epochs=6 --set train.lr=1e-30 \
    --set train.early_stopping=2 --out "$tmp/es" --resume 2>"$tmp/es2.err"; rc=$?
[ "$rc" -eq 0 ] && [ "$(wc -l < "$tmp/es/log.jsonl")" -eq 3 ] && cmp -s "$tmp/es.model" "$tmp/es/model.safetensors" \
    && grep -q "^cuvae: the run stopped early after epoch 3 .*not training further" "$tmp/es2.err" && [ -s "$tmp/es/eval.json" ] \
    && ok "--resume of an early-stopped run: no further epoch, said so, evaluated" \
    || bad "--resume after early stopping: exit $rc, $(wc -l < "$tmp/es/log.jsonl") epochs, $(grep -i early "$tmp/es2.err")"
# ... and --set train.early_stopping=0, as that message says, trains it on to train.epochs
"$CUVAE" train configs/examples_vae.json "${val[@]}" --set train.epochs=5 --set train.lr=1e-30 \
    --set train.early_stopping=0 --out "$tmp/es" --resume 2>"$tmp/es3.err"; rc=$?
[ "$rc" -eq 0 ] && [ "$(wc -l < "$tmp/es/log.jsonl")" -eq 5 ] \
    && ok "--resume with train.early_stopping=0 (as the message says) trains the early-stopped run on to 5 epochs" \
    || bad "--resume with early_stopping=0: exit $rc, $(wc -l < "$tmp/es/log.jsonl") epochs, $(tail -1 "$tmp/es3.err")"
# learning-rate schedules: cosine decay with a linear warm-up, computed per step on the device;
# the log shows the lr of each epoch's last step
sched=(--set data.train_limit=1000 --set data.test_limit=100 --set device=cpu --set model.latent_dim=8
       --set train.batch_size=50 --set train.lr_schedule=cosine --set train.warmup_steps=30 --set train.lr_min=0.0001)
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=3 --out "$tmp/cos" 2>"$tmp/cos.err" \
    || bad "cosine run: $(tail -1 "$tmp/cos.err")"
lrs=$(sed -E 's/.*"lr": ([0-9.e+-]+).*/\1/' "$tmp/cos/log.jsonl" | tr '\n' ' ')
awk -v l="$lrs" 'BEGIN { n = split(l, a, " "); exit !(n == 3 && a[1] < 0.001 && a[2] < a[1] && a[3] > 0.0000999 && a[3] < 0.000101) }' \
    && ok "cosine + warm-up: lr per epoch $lrs (decays to lr_min)" || bad "cosine lr per epoch: $lrs"
# a warm-up longer than the run is said (20 steps of 50 over 1,000 examples)
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=1 --set loss.kl_warmup_epochs=2 \
    --out "$tmp/longwarm" 2>"$tmp/longwarm.err" || bad "long warm-up run: $(tail -1 "$tmp/longwarm.err")"
grep -q "^cuvae: note: train.warmup_steps 30 is longer than the run's 20 steps: the run ends inside the warm-up, at 0.667 of the learning rate its schedule gives$" "$tmp/longwarm.err" \
    && grep -q "^cuvae: note: loss.kl_warmup_epochs 2 ends after the run's last step (1 epoch): the KL weight reaches only 0.475 of loss.w_kl, at the last step$" "$tmp/longwarm.err" \
    && ok "a warm-up longer than the run (lr, KL weight) gets a note" || bad "long warm-up notes: $(grep note "$tmp/longwarm.err")"
# a KL warm-up as long as the run ends after its last step (the ramp reads the steps done before
# each step: 19 of 20 at the last); one that ends before the last step gets no note
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=1 --set train.warmup_steps=0 --set loss.kl_warmup_epochs=1 \
    --out "$tmp/samewarm" 2>"$tmp/samewarm.err" || bad "warm-up as long as the run: $(tail -1 "$tmp/samewarm.err")"
grep -q "^cuvae: note: loss.kl_warmup_epochs 1 ends after the run's last step (1 epoch): the KL weight reaches only 0.95 of loss.w_kl, at the last step$" "$tmp/samewarm.err" \
    && grep -q '"kl_weight": 0.95[,}]' "$tmp/samewarm/log.jsonl" \
    && ok "a KL warm-up as long as the run gets the note (the log's kl_weight 0.95 at the last step)" \
    || bad "warm-up as long as the run: $(grep note "$tmp/samewarm.err"; cat "$tmp/samewarm/log.jsonl")"
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=1 --set train.warmup_steps=0 --set loss.kl_warmup_epochs=0.9 \
    --out "$tmp/shortwarm" 2>"$tmp/shortwarm.err" || bad "warm-up shorter than the run: $(tail -1 "$tmp/shortwarm.err")"
! grep -q "note: loss.kl_warmup_epochs" "$tmp/shortwarm.err" && grep -q '"kl_weight": 1[,}]' "$tmp/shortwarm/log.jsonl" \
    && ok "a KL warm-up ending before the last step: no note, the weight is w_kl at the end" \
    || bad "warm-up of 0.9 epochs: $(grep note "$tmp/shortwarm.err"; cat "$tmp/shortwarm/log.jsonl")"
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=1 --set train.warmup_steps=0 \
    --set 'loss.capacity={"max_nats": 25, "epochs": 4, "gamma": 100}' --out "$tmp/longcap" 2>"$tmp/longcap.err" \
    || bad "long capacity ramp run: $(tail -1 "$tmp/longcap.err")"
grep -q "^cuvae: note: loss.capacity.epochs 4 ends after the run's last step (1 epoch): the target C reaches only 0.2375 of loss.capacity.max_nats, at the last step$" "$tmp/longcap.err" \
    && ok "a capacity ramp longer than the run gets a note" || bad "long capacity ramp note: $(grep note "$tmp/longcap.err")"
# eval.iw_examples without eval.iw_samples limits a bound the run does not compute: said (it
# was accepted silently); the runs without it say nothing of it
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=0 --set eval.iw_examples=5 \
    --out "$tmp/iwex" 2>"$tmp/iwex.err" || bad "iw_examples run: $(tail -1 "$tmp/iwex.err")"
grep -q "^cuvae: note: eval.iw_examples 5 is read only with eval.iw_samples > 0 (the run's final importance-weighted bound): this run computes none$" "$tmp/iwex.err" \
    && ! grep -q "note: eval.iw_examples" "$tmp/longwarm.err" && ok "eval.iw_examples without eval.iw_samples gets a note" \
    || bad "iw_examples note: $(grep note "$tmp/iwex.err")"
# a KL schedule on a KL term weighed 0, a capacity term weighed 0: each said (a note: runs and
# checkpoints of such configs exist and must still read)
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=0 --set loss.w_kl=0 --set loss.kl_warmup_epochs=2 \
    --set loss.free_bits=1 --out "$tmp/klzero" 2>"$tmp/klzero.err" || bad "w_kl 0 run: $(tail -1 "$tmp/klzero.err")"
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=0 \
    --set 'loss.capacity={"max_nats": 25, "epochs": 5, "gamma": 0}' --out "$tmp/gzero" 2>"$tmp/gzero.err" \
    || bad "capacity gamma 0 run: $(tail -1 "$tmp/gzero.err")"
grep -q "^cuvae: note: loss.kl_warmup_epochs ramps the KL weight up to loss.w_kl, which is 0: it changes nothing here$" "$tmp/klzero.err" \
    && grep -q "^cuvae: note: loss.free_bits acts on the KL term, whose weight loss.w_kl is 0: it changes nothing here$" "$tmp/klzero.err" \
    && ! grep -q "reaches only" "$tmp/klzero.err" \
    && grep -q "^cuvae: note: loss.capacity.gamma is 0: the capacity term gamma |KL - C| is 0" "$tmp/gzero.err" \
    && ok "KL schedules on a KL term weighed 0, a capacity gamma of 0: a note each" \
    || bad "w_kl 0 notes: $(grep note "$tmp/klzero.err" "$tmp/gzero.err")"
! grep -q "^cuvae: note: .*warm" "$tmp/cos.err" && ok "a warm-up inside the run gets none" \
    || bad "cosine run noted: $(grep "^cuvae: note: .*warm" "$tmp/cos.err")"
"$CUVAE" train configs/examples_vae.json "${sched[@]}" --set train.epochs=3 --set train.lr_schedule=step \
    --set train.lr_step_epochs=1 --set train.lr_gamma=0.5 --set train.warmup_steps=0 --set train.lr_min=0 \
    --out "$tmp/steplr" 2>/dev/null
[ "$(sed -E 's/.*"lr": ([0-9.e+-]+).*/\1/' "$tmp/steplr/log.jsonl" | tr '\n' ' ')" = "0.001 0.0005 0.00025 " ] \
    && ok "step schedule: lr 0.001, 0.0005, 0.00025" || bad "step schedule lr: $(sed -E 's/.*"lr": ([0-9.e+-]+).*/\1/' "$tmp/steplr/log.jsonl" | tr '\n' ' ')"
# the optimizers users expect: each trains (test loss well below its value at initialisation)
for opt in "adamw --set train.weight_decay=0.01" "sgd --set train.lr=0.0003 --set train.momentum=0.9" \
           "adam --set train.grad_clip=50"; do
    name=${opt%% *}; case "$opt" in *grad_clip*) name="adam+grad_clip";; esac
    "$CUVAE" train configs/examples_vae.json "${common[@]}" --set train.epochs=2 --set train.optimizer=$opt \
        --out "$tmp/opt_$name" 2>"$tmp/opt.err" || { bad "$name: $(tail -1 "$tmp/opt.err")"; continue; }
    loss=$(tail -1 "$tmp/opt_$name/log.jsonl" | sed -nE 's/.*"test_loss": ([0-9.]+).*/\1/p')
    [ -n "$loss" ] && awk -v a="$init_loss" -v b="$loss" 'BEGIN { exit !(b < 0.7 * a) }' && ok "$name trains: test loss $init_loss -> $loss" \
        || bad "$name: test loss $init_loss -> $loss"
done
# a checkpoint's relative data.dir read from another working folder: the message says so (it
# said only "run make data", though the data are there)
bin_abs="$(cd "$(dirname "$CUVAE")" && pwd)/$(basename "$CUVAE")"
ckpt_abs="$(cd "$tmp/opt_$name" && pwd)/model.safetensors"
(cd "$tmp" && "$bin_abs" eval "$ckpt_abs") >/dev/null 2>"$tmp/reldir.err"; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c . "$tmp/reldir.err")" -eq 1 ] \
    && grep -q 'not found: data.dir "data/mnist" is relative to the working folder, .*; run from the folder it was given in, or --set data.dir=PATH' "$tmp/reldir.err" \
    && ok "eval from another working folder: a relative data.dir is named as such" \
    || bad "relative data.dir from elsewhere: rc $rc, $(tail -1 "$tmp/reldir.err")"
# eval, sample and plot of a tf32 run on the CPU say it computes in fp32, as train does
"$CUVAE" eval "$ckpt_abs" --set train.precision=tf32 >/dev/null 2>"$tmp/tf32_eval.err"; rc=$?
[ $rc -eq 0 ] && grep -q '^cuvae: train.precision "tf32" is a GPU tensor-core format: the CPU computes in fp32$' "$tmp/tf32_eval.err" \
    && ok "eval --set train.precision=tf32 on the CPU: says it computes in fp32" || bad "tf32 eval note: rc $rc, $(head -2 "$tmp/tf32_eval.err")"
# ---- Adam's running beta1^t (0.9^t, a double) turns subnormal near step 6,720 and 0 past 7,070.
# The CPU backend flushes subnormals (FTZ + DAZ, host doubles too), so its resume.safetensors says 0
# there; a backend that does not flush doubles (a GPU's) writes the subnormal. A run stopped at step
# 6,900 resumes bit-identically from either value (resume.c compares the products as flushed). Batch
# 1 keeps it a few seconds.
uf=(--set data.train_limit=3450 --set data.test_limit=100 --set device=cpu --set train.batch_size=1
    --set model.encoder=[16] --set model.decoder=[16] --set model.latent_dim=4 --set train.epoch_images=false
    --set eval.iw_samples=0)
strip_times() { sed 's/"seconds": [0-9.]*, "samples_per_s": [0-9.]*, //' "$1"; }
"$CUVAE" train configs/examples_vae.json "${uf[@]}" --set train.epochs=3 --out "$tmp/uf3" 2>"$tmp/uf3.err"; rc3=$?
"$CUVAE" train configs/examples_vae.json "${uf[@]}" --set train.epochs=2 --out "$tmp/uf" 2>"$tmp/uf.err"; rc2=$?
cp -r "$tmp/uf" "$tmp/ufsub"
python3 - "$tmp/uf/resume.safetensors" "$tmp/ufsub/resume.safetensors" <<'PY'; rcp=$?
import json, struct, sys, zlib
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); data = raw[8 + n:]; meta = header["__metadata__"]
assert meta["step"] == "6900" and meta["beta1_power"] == "0x0p+0", (meta["step"], meta["beta1_power"])
p = 1.0
for _ in range(6900): p *= 0.9                      # unflushed: 0x0.0000002437f03p-1022
meta["beta1_power"] = p.hex()
crc = zlib.crc32(data)                              # re-signed as cuvae signs (see cli_damaged.sh)
for key, value in sorted(meta.items(), key=lambda kv: kv[0].encode()):
    if key not in ("crc32", "crc32_entries"): crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
meta.pop("crc32_entries", None); meta["crc32"] = "%08x" % (crc & 0xffffffff)
text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + data)
PY
"$CUVAE" train configs/examples_vae.json "${uf[@]}" --set train.epochs=3 --out "$tmp/uf" --resume 2>"$tmp/ufr.err"; rca=$?
"$CUVAE" train configs/examples_vae.json "${uf[@]}" --set train.epochs=3 --out "$tmp/ufsub" --resume 2>"$tmp/ufsubr.err"; rcb=$?
[ "$rc3$rc2$rcp$rca" = 0000 ] && cmp -s "$tmp/uf/model.safetensors" "$tmp/uf3/model.safetensors" \
    && [ "$(strip_times "$tmp/uf/log.jsonl")" = "$(strip_times "$tmp/uf3/log.jsonl")" ] \
    && ok "Adam past beta1^t's underflow: 2 epochs (step 6,900, beta1_power flushed to 0) + --resume to 3 == 3 epochs, bit for bit" \
    || bad "resume across beta1^t's underflow: exits $rc3 $rc2 $rcp $rca, $(tail -1 "$tmp/ufr.err")"
[ "$rcb" -eq 0 ] && cmp -s "$tmp/ufsub/model.safetensors" "$tmp/uf3/model.safetensors" \
    && ok "... and from a resume file holding the unflushed subnormal beta1_power (as a GPU writes it): accepted, bit for bit" \
    || bad "resume from a subnormal beta1_power: exit $rcb, $(tail -1 "$tmp/ufsubr.err")"
cli_finish cli_train

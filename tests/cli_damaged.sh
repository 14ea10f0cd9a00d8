#!/usr/bin/env bash
# cli_damaged.sh: eval, sample, plot and report given damaged or odd run folders and
# checkpoints, the cases a hostile-user hunt found slipping through on 2026-12-05: each is
# refused with one line naming the file and key (exit 2), or (report) shown as "–" where
# eval.json holds null, as the README says -- never "nan" on the page, a point left off a
# curve unsaid, a figure drawn into another run, or a wrong reason for a failed write.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/t10k-images-idx3-ubyte.gz ]; then
    skip "damaged run folders and checkpoints" "data/mnist missing (run make data)"; cli_finish cli_damaged; exit
fi
small=(--set data.dir=data/mnist --set device=cpu --set data.train_limit=512 --set data.test_limit=256
       --set train.epochs=1 --set train.epoch_images=false)
for run in vae_dim2 cvae_dim2 made_h500; do
    "$CUVAE" train configs/lectures/$run.json "${small[@]}" --out "$tmp/R/$run" 2>"$tmp/$run.err" \
        || { bad "train $run: $(tail -1 "$tmp/$run.err")"; cli_finish cli_damaged; exit; }
done
ok "three small runs trained (vae_dim2 with its MSE loss, cvae_dim2, made_h500)"

# a cvae's __metadata__.data_classes (the classes its data had, when fewer than the model's):
# a value that is not a whole number 1..9 was read by strtol ("3x" as 3) or dropped unsaid
for value in abc 3x -1 0 10; do
    resign "$tmp/R/cvae_dim2/model.safetensors" "$tmp/dc_$value.safetensors" "meta['data_classes'] = '$value'"
    expect_error "sample: data_classes \"$value\" in a cvae checkpoint: refused, naming the key" 2 \
        "dc_$value.safetensors: __metadata__.data_classes: expected the classes of the run's data, a whole number 1..9 \(the model has 10\), got \"$value\"" -- \
        "$CUVAE" sample "$tmp/dc_$value.safetensors" -n 4 -o "$tmp/dc.png"
done
expect_error "sample --class: the same key checked there" 2 "dc_3x.safetensors: __metadata__.data_classes: expected" -- \
    "$CUVAE" sample "$tmp/dc_3x.safetensors" -n 4 --class 2 -o "$tmp/dc.png"
resign "$tmp/R/cvae_dim2/model.safetensors" "$tmp/dc_3.safetensors" "meta['data_classes'] = '3'"
"$CUVAE" sample "$tmp/dc_3.safetensors" -n 4 -o "$tmp/dc3.png" 2>/dev/null && [ -s "$tmp/dc3.png" ] \
    && ok "... a valid one (3) still samples" || bad "sample of data_classes 3 failed"
expect_error "... and --class beyond it is refused as untrained" 2 "--class 5: the run's data had labels 0..2 only" -- \
    "$CUVAE" sample "$tmp/dc_3.safetensors" -n 4 --class 5 -o "$tmp/dc3.png"

# an MSE-loss VAE whose last layer overflows (finite weights): its test loss stays finite (an MSE
# of sigmoids), so eval printed a report with rec_bce_at_mean null where sample refused the model
resign "$tmp/R/vae_dim2/model.safetensors" "$tmp/overflow.safetensors" "
for name in ('decoder.2.weight', 'decoder.2.bias'):
    b, e = header[name]['data_offsets']; data[b:e] = struct.pack('<f', 3e38) * ((e - b) // 4)"
expect_error "eval: an MSE model whose outputs overflow: refused as diverged, not a report with a null" 2 \
    "eval: .*/overflow.safetensors: the reconstruction error at z = μ is not finite though the test loss is \(the decoder's outputs overflow\): the model has diverged" -- \
    "$CUVAE" eval "$tmp/overflow.safetensors"
# a MADE whose outputs overflow (finite weights 3e38): eval refused it ("-nan" in its line), while
# sample and plot drew its "samples" -- every draw u <= sigmoid(NaN) false, a black grid -- exit 0.
resign "$tmp/R/made_h500/model.safetensors" "$tmp/made_overflow.safetensors" "
for name in ('network.0.weight', 'network.2.weight'):
    b, e = header[name]['data_offsets']; data[b:e] = struct.pack('<f', 3e38) * ((e - b) // 4)"
expect_error "eval: a MADE whose outputs overflow: refused, the NaN without a sign" 2 \
    "eval: .*/made_overflow.safetensors: the test loss is not finite \(nan\): the model has diverged" -- \
    "$CUVAE" eval "$tmp/made_overflow.safetensors" -o "$tmp/made_overflow_eval.json"
# The draw stops at the first logit not finite: 1,000 samples refused at once, in one line (until 2026-12-07
# afternoon each was drawn to its end first: about 3,000 forward passes, 20-60 s on the 2-core VM, with a
# progress line past 10 s; under load even 4 samples took 3 s)
expect_error "sample: a MADE whose outputs overflow: refused at once, not a black grid" 2 \
    "^cuvae: sample: .*/made_overflow.safetensors: the model's logits are not finite: the model has diverged" -- \
    "$CUVAE" sample "$tmp/made_overflow.safetensors" -n 1000 -o "$tmp/made_overflow.png"
[ ! -e "$tmp/made_overflow.png" ] && ok "... and no grid written" || bad "sample wrote a grid of a MADE whose outputs overflow"
# ... where only some of its logits overflow: every drawn logit is checked, not the last of each pass: only
# pixel 400's output row overflows (rows 0 and 1 are masked out); and where they are +-inf without a NaN
# (the output layer's weights alone at 3e38: isnan would let them through)
resign "$tmp/R/made_h500/model.safetensors" "$tmp/made_row400.safetensors" "
b, e = header['network.2.weight']['data_offsets']; H = header['network.2.weight']['shape'][1]
data[b + 4 * 400 * H:b + 4 * 401 * H] = struct.pack('<f', 3e38) * H"
resign "$tmp/R/made_h500/model.safetensors" "$tmp/made_inf.safetensors" "
b, e = header['network.2.weight']['data_offsets']; data[b:e] = struct.pack('<f', 3e38) * ((e - b) // 4)"
for case in row400 inf; do
    expect_error "sample: a MADE overflowing $([ $case = inf ] && echo "to +-inf without a NaN" || echo "at one pixel only"): refused" 2 \
        "^cuvae: sample: .*/made_$case.safetensors: the model's logits are not finite: the model has diverged" -- \
        "$CUVAE" sample "$tmp/made_$case.safetensors" -n 4 -o "$tmp/made_$case.png"
    [ ! -e "$tmp/made_$case.png" ] || bad "sample wrote a grid of a MADE overflowing ($case)"
done
if command -v gnuplot >/dev/null; then
    rm -rf "$tmp/made_ov"; mkdir "$tmp/made_ov"
    cp "$tmp/R/made_h500/config.json" "$tmp/R/made_h500/log.jsonl" "$tmp/made_ov/"
    cp "$tmp/made_overflow.safetensors" "$tmp/made_ov/model.safetensors"
    "$CUVAE" plot "$tmp/made_ov" >/dev/null 2>"$tmp/made_ov.err"; rc=$?
    [ "$rc" -eq 2 ] && tail -1 "$tmp/made_ov.err" | grep -q "^cuvae: plot: samples.png: the decoder gives outputs that are not finite: the model has diverged$" \
        && [ ! -e "$tmp/made_ov/figures/samples.png" ] \
        && ok "plot: a MADE whose outputs overflow: refused at samples.png, none drawn" \
        || bad "plot of a MADE whose outputs overflow: exit $rc, $(tail -1 "$tmp/made_ov.err")"
fi

# ---- plot
expect_error "plot \"\": refused (it read /model.safetensors and would draw into /figures)" 2 "plot: RUN_DIR: the name is empty" -- \
    "$CUVAE" plot ""
expect_error "eval \"\": refused the same way" 2 "eval: CKPT: the name is empty" -- "$CUVAE" eval ""
if command -v gnuplot >/dev/null; then
    # a value of log.jsonl that overflows (1e400) or is null: one line, before plot says what it draws
    for value in 1e400 null '"x"'; do
        rm -rf "$tmp/log_$value"; mkdir "$tmp/log_$value"
        cp "$tmp/R/vae_dim2/config.json" "$tmp/R/vae_dim2/model.safetensors" "$tmp/log_$value/"
        sed -E "1s/\"test_loss\": [-0-9.e+]+/\"test_loss\": $value/" "$tmp/R/vae_dim2/log.jsonl" > "$tmp/log_$value/log.jsonl"
        want='line 1: missing number "test_loss"'; [ "$value" = 1e400 ] && want='line 1: "test_loss" is not a finite number'
        expect_error "plot: log.jsonl's test_loss $value: one line, before any other" 2 "log.jsonl: $want" -- \
            "$CUVAE" plot "$tmp/log_$value"
        [ -z "$(ls "$tmp/log_$value/figures" 2>/dev/null)" ] && ok "... and no figure drawn" || bad "figures drawn over a damaged log"
    done
    # figures/ a file, or a link into another run's figures/ (that run's figures would be mixed with these)
    "$CUVAE" plot "$tmp/R/vae_dim2" 2>/dev/null || bad "plot of the vae run"
    figures_md5() { (cd "$1" && md5sum -- *) | md5sum; }   # (each file's content and name, not the names alone)
    before=$(figures_md5 "$tmp/R/vae_dim2/figures")
    mkdir -p "$tmp/linked"; cp "$tmp/R/cvae_dim2/"{config.json,log.jsonl,model.safetensors} "$tmp/linked/"
    ln -s "$tmp/R/vae_dim2/figures" "$tmp/linked/figures"
    expect_error "plot: figures/ a link into another run: refused, naming both" 2 \
        "linked/figures: leads to .*/R/vae_dim2/figures, a folder of the run in .*/R/vae_dim2 \(plot would mix that run's figures with this one's\): remove the link" -- \
        "$CUVAE" plot "$tmp/linked"
    [ -n "$(ls "$tmp/R/vae_dim2/figures")" ] && [ "$(figures_md5 "$tmp/R/vae_dim2/figures")" = "$before" ] && [ ! -e "$tmp/R/vae_dim2/figures/class_rows.png" ] \
        && ok "... and the other run's figures are as they were" || bad "plot drew into the other run's figures"
    rm "$tmp/linked/figures"; ln -s "$tmp/R/made_h500" "$tmp/linked/figures"
    expect_error "plot: figures/ a link to another run's folder itself: refused" 2 \
        "linked/figures: leads to .*/R/made_h500, the folder of a run \(plot would draw this run's figures among that run's files\): remove the link" -- \
        "$CUVAE" plot "$tmp/linked"
    # a folder beside a config.json of the user's (a project folder) is no run's: drawn into
    mkdir -p "$tmp/proj/figs"; echo '{}' > "$tmp/proj/config.json"
    rm "$tmp/linked/figures"; ln -s "$tmp/proj/figs" "$tmp/linked/figures"
    "$CUVAE" plot "$tmp/linked" 2>/dev/null && [ -s "$tmp/proj/figs/class_rows.png" ] \
        && ok "plot: figures/ a link to a folder beside a project's config.json is drawn into" || bad "plot through a project link"
    # ... and a folder named figures beside a project's config.json that is no run's (a note)
    mkdir -p "$tmp/proj2/figures"; echo '{"note": "my project"}' > "$tmp/proj2/config.json"
    rm "$tmp/linked/figures"; ln -s "$tmp/proj2/figures" "$tmp/linked/figures"
    "$CUVAE" plot "$tmp/linked" 2>/dev/null && [ -s "$tmp/proj2/figures/class_rows.png" ] \
        && ok "plot: figures/ a link to a project's figures/ beside a config.json that is no run's: drawn into" \
        || bad "plot through a project's figures link"
    rm "$tmp/linked/figures"; mkdir -p "$tmp/scratch"; ln -s "$tmp/scratch" "$tmp/linked/figures"
    "$CUVAE" plot "$tmp/linked" 2>/dev/null && [ -s "$tmp/scratch/class_rows.png" ] \
        && ok "plot: figures/ a link to a folder outside any run (a scratch disk) is drawn into" || bad "plot through a scratch link"
    rm "$tmp/linked/figures"; echo x > "$tmp/linked/figures"
    expect_error "plot: figures a file: one line, before plot says what it draws" 2 \
        "linked/figures: not a folder \(plot draws the run's figures there\): move it away" -- "$CUVAE" plot "$tmp/linked"
    rm "$tmp/linked/figures"; ln -s "$tmp/nowhere" "$tmp/linked/figures"
    expect_error "plot: figures a link to nowhere: refused" 2 "linked/figures: a link to a folder that does not exist" -- \
        "$CUVAE" plot "$tmp/linked"
    rm "$tmp/linked/figures"; ln -s figures "$tmp/linked/figures"
    expect_error "plot: figures a link to itself: its own reason" 2 "linked/figures: Too many levels of symbolic links" -- \
        "$CUVAE" plot "$tmp/linked"
    # a decoder finite at the test images' codes but not at the prior's draws (finite weights): the
    # encoder's mean is 0 for every image (mu.* zeroed), where decoder.0 (weights 3e38) gives its bias;
    # z ~ N(0, I) overflows it. The check on the first test images passes, so samples.png is the figure
    # that finds it (after the loss curves, drawn first): exit 2, its last line says so, no samples.png
    # drawn black
    rm -rf "$tmp/dec_overflow"; mkdir "$tmp/dec_overflow"
    cp "$tmp/R/vae_dim2/config.json" "$tmp/R/vae_dim2/log.jsonl" "$tmp/dec_overflow/"
    resign "$tmp/R/vae_dim2/model.safetensors" "$tmp/dec_overflow/model.safetensors" "
for name, value in (('mu.weight', 0.0), ('mu.bias', 0.0), ('decoder.0.weight', 3e38)):
    b, e = header[name]['data_offsets']; data[b:e] = struct.pack('<f', value) * ((e - b) // 4)"
    "$CUVAE" plot "$tmp/dec_overflow" >"$tmp/dec_overflow.out" 2>"$tmp/dec_overflow.err"; rc=$?
    if [ "$rc" -eq 2 ] && [ ! -s "$tmp/dec_overflow.out" ] \
       && [ "$(tail -1 "$tmp/dec_overflow.err")" = "cuvae: plot: samples.png: the decoder gives outputs that are not finite: the model has diverged" ] \
       && [ ! -e "$tmp/dec_overflow/figures/samples.png" ]; then
        ok "plot: a decoder that overflows on the prior's draws only: refused at samples.png (exit 2), none drawn black"
    else
        bad "plot of a decoder overflowing on z ~ N(0, I): exit $rc, $(tail -1 "$tmp/dec_overflow.err"), figures: $(ls "$tmp/dec_overflow/figures" 2>/dev/null | tr '\n' ' ')"
    fi
else
    skip "plot of damaged run folders (11 cases)" "gnuplot not installed"
fi

# a plot refused for its options makes no figures/ folder (it made an empty one first)
if command -v gnuplot >/dev/null; then
    expect_error "plot --tsne-points on a 2-D latent: refused" 2 "plot: --tsne-points shapes the t-SNE" -- \
        "$CUVAE" plot "$tmp/R/vae_dim2" --tsne-points 10
    mkdir -p "$tmp/nofig"; cp "$tmp/R/vae_dim2/"{config.json,log.jsonl,model.safetensors} "$tmp/nofig/"
    "$CUVAE" plot "$tmp/nofig" --tsne-points 10 2>/dev/null
    [ ! -e "$tmp/nofig/figures" ] && ok "... and leaves no figures/ folder behind" || bad "a refused plot made figures/"
    # the checkpoint replaced while plot draws (a train writing an epoch; here a gnuplot wrapper
    # replaces it at the first figure): refused, the figures of two models removed
    mkdir -p "$tmp/replwrap"
    # (not at plot's probe of the terminal, gnuplot -e, which runs before plot reads the checkpoint)
    printf '#!/bin/sh\ncase " $* " in *" -e "*) exec %s "$@" ;; esac\nif [ ! -e "%s/replaced" ]; then touch "%s/replaced"; cp "%s/model.safetensors" "%s/m.new" && mv "%s/m.new" "%s/model.safetensors"; fi\nexec %s "$@"\n' \
        "$(command -v gnuplot)" "$tmp/replwrap" "$tmp/replwrap" "$tmp/nofig" "$tmp/nofig" "$tmp/nofig" "$tmp/nofig" "$(command -v gnuplot)" > "$tmp/replwrap/gnuplot"
    chmod +x "$tmp/replwrap/gnuplot"
    PATH="$tmp/replwrap:$PATH" "$CUVAE" plot "$tmp/nofig" >/dev/null 2>"$tmp/repl.err"; rc=$?
    [ $rc -eq 2 ] && [ -e "$tmp/replwrap/replaced" ] \
        && tail -1 "$tmp/repl.err" | grep -q "^cuvae: plot: .*nofig/model.safetensors was replaced while plot drew (a train is writing .*nofig): the figures would mix two epochs and are removed; run plot again$" \
        && [ -z "$(ls "$tmp/nofig/figures" 2>/dev/null | grep '\.png$')" ] \
        && ok "plot: a checkpoint replaced while plot draws: refused, its figures removed" \
        || bad "plot with the checkpoint replaced mid-way: exit $rc, $(tail -1 "$tmp/repl.err"), left: $(ls "$tmp/nofig/figures" 2>/dev/null | tr '\n' ' ')"
else
    skip "a refused plot makes no figures/" "gnuplot not installed"
fi

# ---- report: eval.json's nulls shown as "–", never "nan"; a run's config.json checked as a config
python3 - "$tmp/R/made_h500/eval.json" <<'PY'
import json, sys
p = sys.argv[1]; j = json.load(open(p)); j["exact_nll"] = None; j["bits_per_dim"] = None; json.dump(j, open(p, "w"))
PY
python3 - "$tmp/R/cvae_dim2/eval.json" <<'PY'
import json, sys
p = sys.argv[1]; j = json.load(open(p)); j["iw"] = {"k": None, "examples": None, "neg_log_px": 450.0}; json.dump(j, open(p, "w"))
PY
printf '{"title": "T", "sections": [{"title": "S", "text": "x", "runs": ["made_h500", "cvae_dim2"], "figures": []}]}' > "$tmp/index.json"
"$CUVAE" report "$tmp/index.json" "$tmp/R" 2>"$tmp/report.err"; rc=$?
if [ $rc -eq 0 ] && ! grep -qi "nan" "$tmp/R/index.html" && grep -q "<td>– (exact, – bits/dim)</td>" "$tmp/R/index.html" \
   && grep -q "<td>450.00 (K = –, – ex." "$tmp/R/index.html"; then
    ok "report: eval.json's nulls (exact_nll, bits_per_dim, iw.k, iw.examples) shown as –, no nan"
else
    bad "report nulls: exit $rc, $(grep -o '<td>[^<]*\(nan\|exact\|K = \)[^<]*</td>' "$tmp/R/index.html" | head -3) $(tail -1 "$tmp/report.err")"
fi
cp -r "$tmp/R/vae_dim2" "$tmp/R/badcfg"
python3 - "$tmp/R/badcfg/config.json" <<'PY'
import json, sys
p = sys.argv[1]; j = json.load(open(p)); j["loss"]["w_rec"] = "ten"; json.dump(j, open(p, "w"))
PY
printf '{"sections": [{"runs": ["badcfg"], "figures": []}]}' > "$tmp/badcfg_index.json"
expect_error "report: a run's config.json that is no config (w_rec \"ten\"): refused, naming the key" 2 \
    "badcfg/config.json: loss.w_rec: must be a finite number \(as cuvae writes it\)" -- "$CUVAE" report "$tmp/badcfg_index.json" "$tmp/R"
# a VQ-VAE's row gives its commitment weight beta (it fell into the one-term branch: no w_kl either)
mkdir -p "$tmp/R/vq"; cp configs/lectures/vq_vae_k256.json "$tmp/R/vq/config.json"
printf '{"test_loss": 80.5, "rec": 79.0, "vq": 1.5, "codes_used": 200, "codebook_size": 256, "perplexity": 150.2}\n' > "$tmp/R/vq/eval.json"
printf '{"sections": [{"runs": ["vq"], "figures": []}]}' > "$tmp/vq_index.json"
"$CUVAE" report "$tmp/vq_index.json" "$tmp/R" 2>"$tmp/vq_report.err" && grep -q "(sum over pixels), 1 / β 0.25</td>" "$tmp/R/index.html" \
    && ok "report: a VQ-VAE's row gives w_rec / β" || bad "report VQ row: $(grep -o '<td>bce[^<]*</td>' "$tmp/R/index.html") $(tail -1 "$tmp/vq_report.err")"
# the page names the build that wrote it, as --version does (the commit: which build made a page)
version_commit=$("$CUVAE" --version | sed -nE 's/^cuvae ([0-9.]+) \(commit ([^;]+);.*/\1, commit \2/p')
[ -n "$version_commit" ] && grep -q "Generated by <code>cuvae report</code> (cuvae $version_commit) on " "$tmp/R/index.html" \
    && ok "report: the footer names the build ($version_commit)" || bad "report footer: $(grep -o 'Generated by[^.]*' "$tmp/R/index.html")"
# a capacity-annealed VAE's row gives γ and C, which replace w_kl (it showed "1 / 1", a plain VAE's)
mkdir -p "$tmp/R/capacity"
printf '{"model": {"kind": "vae"}, "loss": {"reconstruction": "bce", "reduction": "sum", "w_rec": 1, "w_kl": 1, "capacity": {"max_nats": 25, "epochs": 6, "gamma": 10}}}\n' > "$tmp/R/capacity/config.json"
printf '{"test_loss": 120.5, "rec": 100.0, "kl": 20.5}\n' > "$tmp/R/capacity/eval.json"
printf '{"sections": [{"runs": ["capacity"], "figures": []}]}' > "$tmp/capacity_index.json"
"$CUVAE" report "$tmp/capacity_index.json" "$tmp/R" 2>"$tmp/capacity_report.err" \
    && grep -q "(sum over pixels), 1 / γ 10 |KL − C|, C → 25 nats over 6 epochs</td>" "$tmp/R/index.html" \
    && ok "report: a capacity-annealed VAE's row gives γ and C, not the unused w_kl" \
    || bad "report capacity row: $(grep -o '<td>bce[^<]*</td>' "$tmp/R/index.html") $(tail -1 "$tmp/capacity_report.err")"
# ... and each of the capacity's numbers is checked as the other weights are (epochs "ten" showed as "–")
mkdir -p "$tmp/R/capten"; cp "$tmp/R/capacity/eval.json" "$tmp/R/capten/"
sed 's/"epochs": 6/"epochs": "ten"/' "$tmp/R/capacity/config.json" > "$tmp/R/capten/config.json"
printf '{"sections": [{"runs": ["capten"], "figures": []}]}' > "$tmp/capten_index.json"
expect_error "report: a capacity's epochs \"ten\": refused, naming the key" 2 \
    "capten/config.json: loss.capacity.epochs: must be a finite number \(as cuvae writes it\)" -- \
    "$CUVAE" report "$tmp/capten_index.json" "$tmp/R"
# a VAE's row read from its eval.json: the loss's reduction (mean), its active units out of its latent
# dim (in that order), and a figure linked and shown from RUN/figures/NAME.png
mkdir -p "$tmp/R/units/figures"
printf '{"model": {"kind": "vae"}, "loss": {"reconstruction": "mse", "reduction": "mean", "w_rec": 3, "w_kl": 0.5}}\n' \
    > "$tmp/R/units/config.json"
printf '{"test_loss": 0.5, "rec": 0.25, "kl": 0.25, "rec_mse_at_mean": 12.25, "active_units": 3, "latent_dim": 20}\n' \
    > "$tmp/R/units/eval.json"
printf 'not a png; report only links it\n' > "$tmp/R/units/figures/samples.png"
printf '{"sections": [{"runs": ["units"], "figures": ["samples", "manifold"]}]}' > "$tmp/units_index.json"
"$CUVAE" report "$tmp/units_index.json" "$tmp/R" 2>"$tmp/units_report.err"; rc=$?
row=$(grep -o '<tr><td><a href="units/config.json">.*' "$tmp/R/index.html" | head -1)
if [ $rc -eq 0 ] && echo "$row" | grep -q "<td>mse (mean over pixels), 3 / 0.5</td>" && echo "$row" | grep -q "<td>3 / 20</td>" \
   && echo "$row" | grep -q "<td>12.25</td>" \
   && grep -q '<td><a href="units/figures/samples.png"><img src="units/figures/samples.png" alt="samples (' "$tmp/R/index.html" \
   && grep -q '<td class="missing">not produced for this run</td>' "$tmp/R/index.html"; then
    ok "report: a VAE's row gives its reduction, active units / latent dim, MSE; its figure linked, a missing one said"
else
    bad "report units row: exit $rc, $row $(grep -o '<td><a href="units/figures[^>]*><img[^>]*>' "$tmp/R/index.html") $(tail -1 "$tmp/units_report.err")"
fi
# a run with its config.json but no eval.json: "not evaluated", not a row of dashes
mkdir -p "$tmp/R/noeval"; cp "$tmp/R/units/config.json" "$tmp/R/noeval/"
printf '{"sections": [{"runs": ["noeval", "units"], "figures": []}]}' > "$tmp/noeval_index.json"
"$CUVAE" report "$tmp/noeval_index.json" "$tmp/R" 2>"$tmp/noeval_report.err" \
    && grep -q '<tr><td><a href="noeval/config.json"><code>noeval</code></a></td><td colspan="8">not evaluated (eval.json missing)</td></tr>' "$tmp/R/index.html" \
    && ok "report: a run without eval.json is shown as not evaluated" \
    || bad "report noeval row: $(grep -o '<tr><td><a href="noeval.*' "$tmp/R/index.html" | head -c 300) $(tail -1 "$tmp/noeval_report.err")"
# an index of one run that is not in RUNS_DIR is refused as one of many is (the page would be all "missing")
printf '{"sections": [{"runs": ["ghost"], "figures": []}]}' > "$tmp/ghost_index.json"
expect_error "report: an index of one run, not in RUNS_DIR: refused" 2 "ghost_index.json: none of its 1 runs is in .*/R \(no RUN/config.json there\)" -- \
    "$CUVAE" report "$tmp/ghost_index.json" "$tmp/R"
# ... and of three runs, one there: the note counts the two missing ones and names them
printf '{"sections": [{"runs": ["ghost", "units", "ghost2"], "figures": []}]}' > "$tmp/ghosts_index.json"
"$CUVAE" report "$tmp/ghosts_index.json" "$tmp/R" 2>"$tmp/ghosts.err" \
    && grep -q "^cuvae: report: 2 of 3 runs not in .*/R (shown as missing): ghost, ghost2$" "$tmp/ghosts.err" \
    && ok "report: 2 of 3 runs missing: the note counts and names them" || bad "report missing-runs note: $(head -1 "$tmp/ghosts.err")"
# ... but a prior whose VQ-VAE is not where report runs is still a run of the page (its config is
# not loaded whole), and a number too large for a short cell is printed whole, not cut
mkdir -p "$tmp/R/prior"; cp configs/lectures/vq_vae_k256_prior.json "$tmp/R/prior/config.json"
printf '{"test_loss": 77.6, "rec": 77.6, "exact_nll": 1.234567e40, "nll_per_position": 1.58}\n' > "$tmp/R/prior/eval.json"
printf '{"sections": [{"runs": ["prior"], "figures": []}]}' > "$tmp/prior_index.json"
"$CUVAE" report "$tmp/prior_index.json" "$tmp/R" 2>"$tmp/prior_report.err" \
    && grep -q "<td>12345670000000000[0-9]\{24\}\.00 (exact, of the codes" "$tmp/R/index.html" \
    && ok "report: a prior whose VQ-VAE is elsewhere is a row; 1.234567e40 printed whole (41 digits)" \
    || bad "report prior row: $(tail -1 "$tmp/prior_report.err") $(grep -o '<td>[0-9.]* (exact[^<]*' "$tmp/R/index.html")"
# a write that fails part way (ulimit -f): the reason is the write's, not a later call's errno
if [ -z "${CUVAE_SANITIZED:-}" ]; then
    # (the page's buffer fills and fails early; the figures looked for after it -- none drawn here --
    # left ENOENT in errno, which the message gave: "No such file or directory")
    python3 -c 'import json, sys; json.dump({"title": "T", "sections": [{"title": "S%d" % i, "text": "x" * 300,
        "runs": ["vae_dim2", "cvae_dim2", "made_h500"], "figures": ["samples"]} for i in range(6)]}, open(sys.argv[1], "w"))' \
        "$tmp/big_index.json"
    cp "$tmp/R/index.html" "$tmp/page_before.html"
    expect_error "report: a page over ulimit -f: 'File too large', the earlier page kept" 2 \
        "R/index.html: write failed: File too large" -- bash -c "ulimit -f 1; exec \"$CUVAE\" report \"$tmp/big_index.json\" \"$tmp/R\""
    cmp -s "$tmp/R/index.html" "$tmp/page_before.html" && ok "... the earlier index.html untouched" || bad "index.html changed"
    "$CUVAE" sample "$tmp/R/vae_dim2/model.safetensors" -n 64 -o "$tmp/kept.png" 2>/dev/null; cp "$tmp/kept.png" "$tmp/kept_before.png"
    expect_error "sample -o a PNG over ulimit -f: the write's reason, not libpng's 'Write Error'; the file kept" 2 \
        "kept.png: write failed: File too large" -- \
        bash -c "ulimit -f 2; exec \"$CUVAE\" sample \"$tmp/R/vae_dim2/model.safetensors\" -n 64 --seed 4 -o \"$tmp/kept.png\""
    cmp -s "$tmp/kept.png" "$tmp/kept_before.png" && ok "... the earlier PNG untouched" || bad "kept.png changed"
    # plot's scratch data in TMPDIR over ulimit -f (the sample grid, the biggest, fails; the loss
    # curves before it fit): the failed write's reason, and no scratch file left
    mkdir -p "$tmp/plot_tmp"; cp -r "$tmp/R/vae_dim2" "$tmp/plot_limited"
    (ulimit -f 32; TMPDIR="$tmp/plot_tmp" exec "$CUVAE" plot "$tmp/plot_limited") 2>"$tmp/plot_limited.err"; rc=$?
    [ $rc -eq 2 ] && tail -1 "$tmp/plot_limited.err" \
        | grep -q "^cuvae: .*plot_limited/figures/samples.png: cannot write plot data to .*plot_tmp: File too large$" \
        && [ -z "$(ls -A "$tmp/plot_tmp")" ] \
        && ok "plot: its scratch data over ulimit -f names the write's reason ('File too large'), nothing left in TMPDIR" \
        || bad "plot over ulimit -f: rc $rc, $(tail -1 "$tmp/plot_limited.err") / $(ls -A "$tmp/plot_tmp")"
else
    skip "report and sample over ulimit -f" "sanitized build"
fi
# a temp file a killed sample -o left (NAME.tmp.PID of a process gone): the next write of NAME removes it
dead_pid=$(sh -c 'echo $$'); echo partial > "$tmp/again.png.tmp.$dead_pid"
"$CUVAE" sample "$tmp/R/vae_dim2/model.safetensors" -n 4 -o "$tmp/again.png" 2>"$tmp/again.err"
[ ! -e "$tmp/again.png.tmp.$dead_pid" ] && [ -s "$tmp/again.png" ] \
    && grep -q "^cuvae: removed .*again.png.tmp.$dead_pid, left by a write that was killed$" "$tmp/again.err" \
    && ok "sample -o NAME removes the NAME.tmp.PID a killed write left, saying so" \
    || bad "stale temp of sample -o: $(ls "$tmp" | grep again) $(tail -1 "$tmp/again.err")"
# a run folder whose name holds a tab and an escape: plot draws into it (gnuplot given the exact path),
# and its lines stay one line each
tabbed="$tmp/tab"$'\t'"esc"$'\x1b'"run"
cp -r "$tmp/R/vae_dim2" "$tabbed"; rm -rf "$tabbed/figures"; mkdir -p "$tmp/tab esc run/figures"
"$CUVAE" plot "$tabbed" 2>"$tmp/tabbed.err"; rc=$?
[ $rc -eq 0 ] && [ -s "$tabbed/figures/samples.png" ] && [ -z "$(ls -A "$tmp/tab esc run/figures")" ] \
    && grep -q '^cuvae: wrote .*tab\\tesc\\x1brun/figures/samples.png$' "$tmp/tabbed.err" \
    && ! grep -q $'\t\|\x1b' "$tmp/tabbed.err" \
    && ok "plot of a folder named with a tab and an ESC: drawn into it, its lines escaped" \
    || bad "plot of a tab-named folder: rc $rc, $(ls "$tabbed/figures" 2>&1 | head -2) / $(tail -1 "$tmp/tabbed.err")"

# ---- buffers a file may not carry (a hostile-user hunt, 2026-12-06): a batch norm's running
# variance below 0 (cuvae evaluated it, a following ReLU turning the NaN into 0, where PyTorch gave
# NaN), a MADE's mask not the one its config makes (the "exact" -log p(x) of an all-ones mask sees
# each pixel itself), a VQ codebook's EMA count below 0: each refused naming the tensor and element
"$CUVAE" train configs/lectures/conv_vae_dim16.json "${small[@]}" --out "$tmp/R/conv" 2>"$tmp/conv.err" \
    || bad "train conv: $(tail -1 "$tmp/conv.err")"
resign "$tmp/R/conv/model.safetensors" "$tmp/negvar.safetensors" "
b, e = header['decoder.2.running_var']['data_offsets']; data[b + 20:b + 24] = struct.pack('<f', -1.0)"
expect_error "eval: a batch norm's running_var below 0 is refused by tensor and element" 2 \
    "negvar.safetensors: tensor decoder.2.running_var, element 5 is -1: a variance is never negative" -- \
    "$CUVAE" eval "$tmp/negvar.safetensors"
resign "$tmp/R/made_h500/model.safetensors" "$tmp/mask.safetensors" "
b, e = header['network.0.mask']['data_offsets']; data[b:e] = struct.pack('<f', 1.0) * ((e - b) // 4)"
expect_error "eval: a MADE's mask set to all ones is refused (the config makes its masks)" 2 \
    "mask.safetensors: tensor network.0.mask, element [0-9]+ is 1 where the model's own is 0" -- \
    "$CUVAE" eval "$tmp/mask.safetensors"
# ... and a mask whose last element alone differs (the comparison reaches the tensor's end)
resign "$tmp/R/made_h500/model.safetensors" "$tmp/masklast.safetensors" "
b, e = header['network.0.mask']['data_offsets']; v = struct.unpack('<f', data[e - 4:e])[0]
data[e - 4:e] = struct.pack('<f', 1.0 - v)"
last=$(python3 -c "import json, struct, sys; raw = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
b, e = json.loads(raw[8:8 + n])['network.0.mask']['data_offsets']; print((e - b) // 4 - 1)" "$tmp/masklast.safetensors")
expect_error "eval: a MADE's mask edited in its last element only is refused, naming that element" 2 \
    "masklast.safetensors: tensor network.0.mask, element $last is [01] where the model's own is [01]" -- \
    "$CUVAE" eval "$tmp/masklast.safetensors"
"$CUVAE" eval "$tmp/R/made_h500/model.safetensors" > /dev/null 2>&1 && "$CUVAE" eval "$tmp/R/conv/model.safetensors" > /dev/null 2>&1 \
    && ok "... the files as trained still evaluate" || bad "the trained made / conv checkpoints no longer evaluate"
"$CUVAE" train configs/lectures/made_h500.json "${small[@]}" --set model.masks=3 --out "$tmp/R/made3" 2>"$tmp/made3.err" \
    && "$CUVAE" eval "$tmp/R/made3/model.safetensors" > /dev/null 2>"$tmp/made3e.err" \
    && ok "a MADE of 3 mask sets evaluates (its file holds the set of its last step)" \
    || bad "made masks=3: $(tail -1 "$tmp/made3.err") $(tail -1 "$tmp/made3e.err")"
"$CUVAE" train configs/lectures/vq_vae_k256.json "${small[@]}" --set data.train_limit=256 --out "$tmp/vqrun" 2>"$tmp/vq.err" \
    || bad "train vq: $(tail -1 "$tmp/vq.err")"
resign "$tmp/vqrun/model.safetensors" "$tmp/vqcount.safetensors" "
b, e = header['quantizer.ema_counts']['data_offsets']; data[b + 12:b + 16] = struct.pack('<f', -2.0)"
expect_error "eval: a VQ codebook's EMA count below 0 is refused" 2 \
    "vqcount.safetensors: tensor quantizer.ema_counts, element 3 is -2: a count is never negative" -- \
    "$CUVAE" eval "$tmp/vqcount.safetensors"
if /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
    for file in negvar mask; do   # (the made's mask: cuvae_torch does not redraw a made's degrees)
        /usr/bin/python3 scripts/cuvae_torch.py "$tmp/$file.safetensors" > /dev/null 2>"$tmp/torch_$file.err"
        rc=$?
        if [ $file = negvar ]; then
            [ $rc -eq 2 ] && grep -q "negvar.safetensors: tensor decoder.2.running_var, element 5 is -1: a variance is never negative" "$tmp/torch_$file.err" \
                && ok "cuvae_torch refuses the negative running_var as cuvae does" || bad "cuvae_torch negvar: rc $rc $(tail -1 "$tmp/torch_$file.err")"
        else
            [ $rc -eq 0 ] && ok "cuvae_torch loads a MADE's masks as they are (the README says cuvae alone checks them)" \
                || bad "cuvae_torch made mask: rc $rc $(tail -1 "$tmp/torch_$file.err")"
        fi
    done
else
    skip "cuvae_torch's buffer checks" "python3-torch or python3-numpy missing"
fi

# ---- headers other writers produce: __metadata__ in another key order (the checksum covers the
# pairs in key order since 2026-12-06: a file re-serialised with sorted keys read as damaged),
# whitespace before the header's '{' (read as a JSON config when the length's low byte is '{');
# what JSON forbids and cJSON reads -- a leading zero, a raw tab in a string -- refused as Python does
rewrite() {   # rewrite IN OUT EDIT: the header rewritten by python (EDIT on header / text), data untouched
python3 - "$1" "$2" "$3" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; header = json.loads(raw[8:8 + n])
text, pad = None, True
exec(sys.argv[3])
if text is None: text = json.dumps(header)
text = text.encode()
if pad: text += b" " * (-(8 + len(text)) % 8)   # (cuvae reads unaligned tensors too)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
}
rewrite "$tmp/R/vae_dim2/model.safetensors" "$tmp/sorted.safetensors" \
    "header['__metadata__'] = dict(sorted(header['__metadata__'].items(), reverse=True))"
"$CUVAE" eval "$tmp/sorted.safetensors" > "$tmp/sorted.json" 2>"$tmp/sorted.err" \
    && "$CUVAE" eval "$tmp/R/vae_dim2/model.safetensors" > "$tmp/orig.json" 2>/dev/null && cmp -s "$tmp/sorted.json" "$tmp/orig.json" \
    && ok "__metadata__ in another key order: read, the same evaluation" || bad "reordered metadata: $(tail -1 "$tmp/sorted.err")"
rewrite "$tmp/R/vae_dim2/model.safetensors" "$tmp/spaced.safetensors" \
    "pad = False; text = ' ' * ((123 - len(json.dumps(header))) % 256 + 512) + json.dumps(header)"
low_byte=$(od -An -tu1 -N1 "$tmp/spaced.safetensors" | tr -d ' ')
[ "$low_byte" = 123 ] && "$CUVAE" eval "$tmp/spaced.safetensors" > /dev/null 2>"$tmp/spaced.err" \
    && ok "a header after 512+ spaces, its length's low byte '{': read as a checkpoint" \
    || bad "spaced header (first byte $low_byte): $(tail -1 "$tmp/spaced.err")"
rewrite "$tmp/R/vae_dim2/model.safetensors" "$tmp/zero.safetensors" \
    "text = json.dumps(header).replace('\"shape\": [2, ', '\"shape\": [02, ', 1)"
expect_error "a header number with a leading zero is refused (not JSON), as in a config file" 2 \
    "zero.safetensors: header byte [0-9]+: 02 is not a JSON number \(no leading zeros" -- "$CUVAE" eval "$tmp/zero.safetensors"
rewrite "$tmp/R/vae_dim2/model.safetensors" "$tmp/tab.safetensors" \
    "text = json.dumps(header).replace('\"format\"', '\"for\tmat\"', 1)"
expect_error "a raw tab inside a header string is refused (not JSON), as in a config file" 2 \
    "tab.safetensors: header byte [0-9]+: a raw control character \(0x09\) in a string: JSON needs it escaped" -- \
    "$CUVAE" eval "$tmp/tab.safetensors"
# a resume file of a build before the training set's and the log's CRC-32 (2026-12-01 / 12-04) and
# before files named their build (2026-12-07): it resumes, and says which checks it cannot make (the
# log check was skipped unsaid)
resign "$tmp/R/vae_dim2/resume.safetensors" "$tmp/old_resume.safetensors" "meta.pop('data_crc32'); meta.pop('log_crc32'); meta.pop('written_by')"
cp -r "$tmp/R/vae_dim2" "$tmp/oldres" && mv "$tmp/old_resume.safetensors" "$tmp/oldres/resume.safetensors"
if "$CUVAE" train configs/lectures/vae_dim2.json "${small[@]}" --set train.epochs=2 --out "$tmp/oldres" --resume 2>"$tmp/oldres.err" \
    && grep -q "^cuvae: note: .*oldres/resume.safetensors holds no CRC-32 of the training set (written before 2026-12-01, 07:20Z): the data are not checked against the run's$" "$tmp/oldres.err" \
    && grep -q "^cuvae: note: .*oldres/resume.safetensors holds no CRC-32 of log.jsonl's lines (written before 2026-12-04, 01:51Z): log.jsonl is continued as it is, its 1 line not checked against the run's$" "$tmp/oldres.err" \
    && [ "$(wc -l < "$tmp/oldres/log.jsonl")" = 2 ]; then
    ok "a resume file without the data's and the log's CRC-32 resumes, saying the checks it cannot make"
else
    bad "old resume file: $(grep -v "^epoch" "$tmp/oldres.err" | tail -3)"
fi
# the build that wrote a checkpoint or resume file is in its __metadata__.written_by (what
# `cuvae --version` says)
build=$("$CUVAE" --version | sed -E 's/^(cuvae [^ ]+) \(commit ([^;]+);.*/\1 (commit \2)/')
meta_value() { python3 -c 'import json, struct, sys; raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
print(json.loads(raw[8:8 + n])["__metadata__"].get(sys.argv[2], "(none)"))' "$1" "$2"; }
written_by() { meta_value "$1" written_by; }
[ "$(written_by "$tmp/R/vae_dim2/model.safetensors")" = "$build" ] && [ "$(written_by "$tmp/R/vae_dim2/resume.safetensors")" = "$build" ] \
    && ok "model.safetensors and resume.safetensors name the build that wrote them ($build)" \
    || bad "written_by: '$(written_by "$tmp/R/vae_dim2/model.safetensors")' / '$(written_by "$tmp/R/vae_dim2/resume.safetensors")', want '$build'"
other="cuvae 0.0.9 (commit 1234abc)"   # a run of another build: both its files re-signed as that build's
for f in model resume; do
    resign "$tmp/R/vae_dim2/$f.safetensors" "$tmp/other_$f.safetensors" "meta['written_by'] = '$other'"
done
cp -r "$tmp/R/vae_dim2" "$tmp/otherbuild" && cp "$tmp/other_model.safetensors" "$tmp/otherbuild/model.safetensors" \
    && cp "$tmp/other_resume.safetensors" "$tmp/otherbuild/resume.safetensors"
if "$CUVAE" train configs/lectures/vae_dim2.json "${small[@]}" --set train.epochs=2 --out "$tmp/otherbuild" --resume 2>"$tmp/otherbuild.err" \
    && grep -qF "cuvae: note: $tmp/otherbuild/resume.safetensors was written by $other; this is $build: the run goes on with this build" "$tmp/otherbuild.err" \
    && [ "$(written_by "$tmp/otherbuild/model.safetensors")" = "$build" ] && [ "$(written_by "$tmp/otherbuild/resume.safetensors")" = "$build" ]; then
    ok "a run another build goes on training: said; both its files then name this build"
else
    bad "resumed by another build: $(grep -v "^epoch" "$tmp/otherbuild.err" | tail -2) / $(written_by "$tmp/otherbuild/model.safetensors") / $(written_by "$tmp/otherbuild/resume.safetensors")"
fi
# ... a name longer than cuvae keeps (255 bytes) is cut at a character and marked "...": the note
# stays one line of well-formed UTF-8
resign "$tmp/R/vae_dim2/resume.safetensors" "$tmp/long_resume.safetensors" "meta['written_by'] = 'cuvae \u00e9' * 60"
cp -r "$tmp/R/vae_dim2" "$tmp/longname" && mv "$tmp/long_resume.safetensors" "$tmp/longname/resume.safetensors"
"$CUVAE" train configs/lectures/vae_dim2.json "${small[@]}" --set train.epochs=2 --out "$tmp/longname" --resume 2>"$tmp/longname.err"
if grep "was written by" "$tmp/longname.err" | python3 -c 'import sys
line = sys.stdin.buffer.read().decode("utf-8")   # (not UTF-8: an exception, exit 1)
text = line.split("was written by ", 1)[1].split("; this is ", 1)[0]
sys.exit(0 if line.count("\n") == 1 and text.endswith("...") and len(text.encode()) <= 255 and text.startswith("cuvae \u00e9cuvae") else 1)'; then
    ok "a written_by past 255 bytes: the note cut at a character and marked, one UTF-8 line"
else
    bad "long written_by: $(grep "was written by" "$tmp/longname.err" | cut -c1-120)"
fi
# ... with no epoch left: nothing trains, nothing said of builds, and a lost model.safetensors is
# written again as the resume file's build wrote it: the same tensors and metadata, so the same
# crc32 as that build's file (which may pin a prior; the re-signed copy here lacks crc32_entries)
same_content() { python3 -c 'import json, struct, sys
def parts(path):
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]; header = json.loads(raw[8:8 + n])
    meta = {k: v for k, v in header.pop("__metadata__").items() if k not in ("crc32", "crc32_entries")}
    return meta, header, raw[8 + n:]
sys.exit(0 if parts(sys.argv[1]) == parts(sys.argv[2]) else 1)' "$1" "$2"; }
cp -r "$tmp/R/vae_dim2" "$tmp/otherdone" && cp "$tmp/other_resume.safetensors" "$tmp/otherdone/resume.safetensors" \
    && rm "$tmp/otherdone/model.safetensors"
if "$CUVAE" train configs/lectures/vae_dim2.json "${small[@]}" --out "$tmp/otherdone" --resume 2>"$tmp/otherdone.err" \
    && ! grep -q "was written by" "$tmp/otherdone.err" && [ "$(written_by "$tmp/otherdone/model.safetensors")" = "$other" ] \
    && same_content "$tmp/otherdone/model.safetensors" "$tmp/other_model.safetensors"; then
    ok "another build's finished run resumed: no note; its lost model.safetensors written again as that build's (its name, tensors and metadata)"
else
    bad "finished run of another build: $(tail -2 "$tmp/otherdone.err") / $(written_by "$tmp/otherdone/model.safetensors")"
fi
# ... and a run of this build, or of a build before files named theirs (oldres above), resumes unsaid
cp -r "$tmp/R/vae_dim2" "$tmp/samebuild"
if "$CUVAE" train configs/lectures/vae_dim2.json "${small[@]}" --set train.epochs=2 --out "$tmp/samebuild" --resume 2>"$tmp/samebuild.err" \
    && ! grep -q "was written by" "$tmp/samebuild.err" && ! grep -q "was written by" "$tmp/oldres.err"; then
    ok "a run resumed by its own build, or from a file that names no build: no note of builds"
else
    bad "same-build resume: $(grep "written by" "$tmp/samebuild.err" "$tmp/oldres.err" | head -2)"
fi
# ---- a resume.safetensors edited and re-signed (its CRC-32 recomputed, so only resume.c's own checks
# stand between it and a silently wrong run): every field train --resume reads is refused by file
# and key, one line, exit 2, the run's files unchanged (found unrun by a coverage measurement,
# 2026-12-07: with the lr and best checks removed, lr 0 and best 5 resumed and trained, exit 0)
drop_tensor() {   # drop_tensor IN OUT NAME: NAME and its bytes removed, the others' offsets shifted, re-signed
python3 - "$1" "$tmp/dropped.st" "$3" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); data = raw[8 + n:]
a, b = h.pop(sys.argv[3])["data_offsets"]
for k, v in h.items():
    if k != "__metadata__" and v["data_offsets"][0] >= b:
        v["data_offsets"] = [v["data_offsets"][0] - (b - a), v["data_offsets"][1] - (b - a)]
text = json.dumps(h).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + data[:a] + data[b:])
PY
resign "$tmp/dropped.st" "$2" "pass"
}
# resume_refused NAME PATTERN EDIT: the vae_dim2 run with its resume file edited by EDIT (python on
# header / meta / data), resumed to 2 epochs: refused with PATTERN, the folder's files unchanged
resume_refused() {
    local name="$1" pattern="$2" edit="$3"
    rm -rf "$tmp/rm"; cp -r "$tmp/R/vae_dim2" "$tmp/rm"
    resign "$tmp/R/vae_dim2/resume.safetensors" "$tmp/rm/resume.safetensors" "$edit"
    local before; before=$(cd "$tmp/rm" && md5sum config.json log.jsonl model.safetensors resume.safetensors)
    expect_error "resume: $name" 2 "^cuvae: $tmp/rm/resume.safetensors: $pattern" -- \
        "$CUVAE" train configs/lectures/vae_dim2.json "${small[@]}" --set train.epochs=2 --out "$tmp/rm" --resume
    [ "$(cd "$tmp/rm" && md5sum config.json log.jsonl model.safetensors resume.safetensors)" = "$before" ] \
        || bad "resume: $name: the refused run's files changed"
}
resume_refused "a negative Adam second moment" "tensor adam.v: element 3 is negative \(-1\): a second moment cannot be" \
    "off = header['adam.v']['data_offsets'][0] + 12; data[off:off + 4] = struct.pack('<f', -1.0)"
resume_refused "beta1_power above 1" "__metadata__: beta1_power 1.5 and beta2_power .* must lie in \[0, 1\]" "meta['beta1_power'] = '1.5'"
resume_refused "beta2_power above 1" "__metadata__: beta1_power .* and beta2_power 2 must lie in \[0, 1\]" "meta['beta2_power'] = '2'"
# (a negative one was refused as "not a finite number" until 2026-12-07: the range is the reason)
resume_refused "a negative beta2_power" "__metadata__: beta1_power .* and beta2_power -0.5 must lie in \[0, 1\]" "meta['beta2_power'] = '-0.5'"
# ... and "-0", which compares >= 0, and a negative subnormal, which does too under the CPU's DAZ
resume_refused "a beta1_power of -0" "__metadata__: beta1_power -0 and beta2_power .* must lie in \[0, 1\]" "meta['beta1_power'] = '-0'"
resume_refused "a negative subnormal beta2_power" "__metadata__: beta1_power .* and beta2_power -4.94066e-324 must lie in \[0, 1\]" \
    "meta['beta2_power'] = '-0x0.0000000000001p-1022'"
resume_refused "an lr of 0" "__metadata__.lr: 0 is not a learning rate \(> 0, a float\)" "meta['lr'] = '0'"
resume_refused "an lr past float32" "__metadata__.lr: 1e\+39 is not a learning rate" "meta['lr'] = '1e39'"
resume_refused "a best epoch not yet finished" "__metadata__.best: epoch 5 is not one of the 1 finished" "meta['best'] = '5,0'"
resume_refused "a best epoch that is not whole" "__metadata__.best: epoch 0.5 is not one of the 1 finished" "meta['best'] = '0.5,0'"
resume_refused "a step count that fits no epoch" "__metadata__: epoch 1, step 5 and steps_in_epoch 0 do not fit 4 steps an epoch" "meta['step'] = '5'"
# a minus sign before a count (strtoull would take "-1" as 2^64 - 1: the run resumed on another
# random stream, exit 0, without the check)
resume_refused "an eps_offset of -1" '__metadata__.eps_offset: not a non-negative integer: "-1"' "meta['eps_offset'] = '-1'"
resume_refused "a step of -1" '__metadata__.step: not a non-negative integer: "-1"' "meta['step'] = '-1'"
resume_refused "a step of \" -1\" (strtoull skips the blank)" '__metadata__.step: not a non-negative integer: " -1"' "meta['step'] = ' -1'"
resume_refused "Adam's bias correction of another step count" "__metadata__: beta1_power / beta2_power do not match 4 steps of train.beta1 / beta2" \
    "meta['beta1_power'] = '0.5'"
resume_refused "a model checkpoint's format" '__metadata__.format: expected "cuvae-resume-1"' "meta['format'] = 'cuvae-1'"
resume_refused "no config" "__metadata__.config: missing" "meta.pop('config')"
resume_refused "a data CRC that is not 8 hex digits" '__metadata__.data_crc32: expected 8 hex digits, got "xyz"' "meta['data_crc32'] = 'xyz'"
resume_refused "a log CRC of 5 digits" '__metadata__.log_crc32: expected 8 hex digits, got "12345"' "meta['log_crc32'] = '12345'"
resume_refused "epoch_sums of 3 numbers" '__metadata__.epoch_sums: expected 4 finite numbers, got "1,2,3"' "meta['epoch_sums'] = '1,2,3'"
resume_refused "a non-finite loss accumulator" '__metadata__.loss_acc: expected 3 finite numbers' "meta['loss_acc'] = 'inf,0,0'"
# a tensor missing (its bytes gone too, re-signed): from the resume file, and from a model checkpoint
rm -rf "$tmp/rm"; cp -r "$tmp/R/vae_dim2" "$tmp/rm"; drop_tensor "$tmp/R/vae_dim2/resume.safetensors" "$tmp/rm/resume.safetensors" adam.m
expect_error "resume: tensor adam.m missing" 2 "^cuvae: $tmp/rm/resume.safetensors: tensor adam.m: missing$" -- \
    "$CUVAE" train configs/lectures/vae_dim2.json "${small[@]}" --set train.epochs=2 --out "$tmp/rm" --resume
drop_tensor "$tmp/R/vae_dim2/model.safetensors" "$tmp/nobias.safetensors" decoder.0.bias
expect_error "eval: a checkpoint without one of its tensors" 2 "^cuvae: $tmp/nobias.safetensors: tensor decoder.0.bias: missing$" -- \
    "$CUVAE" eval "$tmp/nobias.safetensors"
expect_error "sample: a checkpoint without one of its tensors" 2 "^cuvae: $tmp/nobias.safetensors: tensor decoder.0.bias: missing$" -- \
    "$CUVAE" sample "$tmp/nobias.safetensors" -o "$tmp/nobias.png"
resign "$tmp/R/vae_dim2/model.safetensors" "$tmp/nocfg.safetensors" "meta.pop('config')"
expect_error "eval: a checkpoint without its config" 2 "^cuvae: $tmp/nocfg.safetensors: __metadata__.config: missing$" -- \
    "$CUVAE" eval "$tmp/nocfg.safetensors"
cli_finish cli_damaged

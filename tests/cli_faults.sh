#!/usr/bin/env bash
# cli_faults.sh: what a careless or hostile user, a killed process or a full
# disk can do to a run, through the real binary (CPU backend). Each case must
# end with one clear error line (exit 2) or a consistent run folder that
# --resume continues bit-exactly; nothing outside the chosen folder is touched.
#   kill -9 at random moments (some land mid-checkpoint), then --resume
#   stale temp files of killed writes cleaned by the next run
#   a full disk: the log on /dev/full, checkpoints over a file-size limit
#   a read-only output folder (skipped where it cannot be made)
#   truncated / corrupted data and checkpoint files, NaN weights, inf in resume metadata
#   path escape through the config name, symlinked and special-file outputs, HTML in report
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/train-images-idx3-ubyte.gz ]; then
    skip "fault tests" "data/mnist missing (run make data)"; cli_finish cli_faults; exit
fi
small=(--set data.train_limit=2000 --set data.test_limit=200 --set device=cpu --set model.latent_dim=8
       --set data.binarize=dynamic)
train() { "$CUVAE" train configs/examples_vae.json "${small[@]}" "$@"; }
# expect_fail NAME EXIT PATTERN -- command...: the command exits EXIT and its last
# stderr line (after any progress lines) is one "cuvae: ..." line matching PATTERN
expect_fail() {
    local name="$1" want="$2" pattern="$3"; shift 4
    "$@" >/dev/null 2>"$tmp/last.err"; local rc=$?
    local last; last=$(tail -1 "$tmp/last.err")
    if [ "$rc" -eq "$want" ] && echo "$last" | grep -q '^cuvae: ' && echo "$last" | grep -qE -- "$pattern"; then
        ok "$name"
    else
        bad "$name: exit $rc (want $want), last line: $last"
    fi
}

# ---- kill -9 at random points, then --resume: the same final model as an uninterrupted run
train --set train.epochs=4 --out "$tmp/ref" 2>/dev/null || bad "reference run failed"
ref_start=$(date +%s.%N)
train --set train.epochs=4 --out "$tmp/timing" 2>/dev/null
run_seconds=$(awk -v a="$ref_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
consistent=0; kills=0
for trial in 1 2 3 4 5 6 7 8; do
    out="$tmp/k$trial"
    delay=$(awk -v s="$run_seconds" -v t="$trial" 'BEGIN { srand(t * 7919); printf "%.3f", rand() * s }')
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=4 --out "$out" 2>/dev/null &   # not the function: $! must be cuvae itself
    pid=$!
    sleep "$delay"
    kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
    wait "$pid" 2>/dev/null
    # continue: --resume when an epoch finished, else start again; twice killed is fine too
    if [ -f "$out/resume.safetensors" ]; then
        train --set train.epochs=4 --out "$out" --resume 2>"$out.err" || bad "trial $trial: resume failed: $(tail -1 "$out.err")"
    else
        train --set train.epochs=4 --out "$out" --overwrite 2>"$out.err" || bad "trial $trial: restart failed: $(tail -1 "$out.err")"
    fi
    if cmp -s "$out/model.safetensors" "$tmp/ref/model.safetensors" && [ -z "$(ls "$out" | grep '\.tmp\.')" ]; then
        consistent=$((consistent + 1))
    else
        bad "trial $trial (killed after ${delay} s): final model differs or temp files remain"
    fi
done
if [ "$consistent" -eq 8 ]; then   # (fewer: each trial that differed is a failure above)
    [ "$kills" -gt 0 ] && ok "kill -9 at 8 random moments ($kills landed), then --resume: bit-identical to an uninterrupted run" \
        || skip "kill -9 then --resume" "no kill landed before its run ended (timing): nothing was interrupted"
fi

# ---- a run beside a staged --overwrite run that stopped in its first epoch (no resume file):
# a plain train says to start that one again or remove it (--resume would refuse it)
cp -r "$tmp/ref" "$tmp/st1"; mkdir "$tmp/st1/.new-run"; cp "$tmp/ref/config.json" "$tmp/st1/.new-run/"
expect_error "a plain train beside a staged run that stopped in its first epoch: names it, not --resume" 2 \
    "st1 already holds a run \(config.json, .*\), and .*st1/.new-run an --overwrite run that stopped in its first epoch: start it again with --overwrite, or remove .*st1/.new-run to continue the run with --resume" -- \
    train --set train.epochs=4 --out "$tmp/st1"
# ... and --resume refuses it as it says: nothing to resume there, the earlier run and the staged one kept
st1_before=$( (cd "$tmp/st1" && find . -type f -print0 | sort -z | xargs -0 md5sum) )
expect_error "--resume beside a staged run that stopped in its first epoch: refused, nothing to resume" 2 \
    "st1/.new-run holds an --overwrite run that stopped in its first epoch \(nothing to resume\): start it again with --overwrite, or remove .*st1/.new-run to continue the earlier run in .*st1$" -- \
    train --set train.epochs=5 --out "$tmp/st1" --resume
[ "$( (cd "$tmp/st1" && find . -type f -print0 | sort -z | xargs -0 md5sum) )" = "$st1_before" ] \
    && ok "... the folder is as it was" || bad "a refused --resume beside a staged run changed the folder"
# --overwrite removes the staged run, saying how far it got: its log's lines (2 here)
head -2 "$tmp/ref/log.jsonl" > "$tmp/st1/.new-run/log.jsonl"
train --set train.epochs=1 --out "$tmp/st1" --overwrite 2>"$tmp/st1.err" \
    && grep -q "^cuvae: removing .*st1/.new-run, the files of an earlier --overwrite run that did not finish (2 epochs done)$" "$tmp/st1.err" \
    && ok "--overwrite over a staged run: removes it, saying its 2 epochs" || bad "--overwrite over a staged run: $(grep removing "$tmp/st1.err")"
# ---- --overwrite trains in OUT/.new-run: killed after its first epoch, the earlier run is as it was,
# and --resume continues the staged run, then replaces the earlier one with it (a kill that lands
# in the commit itself: the next train finishes the commit, then resumes the finished run)
train --set train.epochs=4 --set train.seed=7 --out "$tmp/ow_ref" 2>/dev/null
cp -r "$tmp/ref" "$tmp/ow"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=4 --set train.seed=7 --out "$tmp/ow" \
    --overwrite 2>/dev/null &   # not the function: $! must be cuvae itself
pid=$!
for _ in $(seq 4000); do
    [ -s "$tmp/ow/.new-run/resume.safetensors" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
done
if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    [ -s "$tmp/ow/.new-run/resume.safetensors" ] && diff -r -x .new-run "$tmp/ref" "$tmp/ow" >/dev/null \
        && ok "kill -9 of an --overwrite run after its first epoch: the earlier run is as it was" \
        || bad "kill -9 of an --overwrite run changed the earlier run"
    # a plain train there is refused, saying what --resume would continue: the staged run
    expect_error "a plain train beside a staged --overwrite run: refused, --resume continues the staged one" 2 \
        "ow already holds a run \(config.json, .*\), and .*ow/.new-run an --overwrite run that did not finish: --resume continues that one" -- \
        train --set train.epochs=4 --set train.seed=7 --out "$tmp/ow"
    train --set train.epochs=4 --set train.seed=7 --out "$tmp/ow" --resume 2>"$tmp/ow.err"
    cmp -s "$tmp/ow/model.safetensors" "$tmp/ow_ref/model.safetensors" && [ ! -e "$tmp/ow/.new-run" ] \
        && cmp -s "$tmp/ow/eval.json" "$tmp/ow_ref/eval.json" && grep -qE "resuming the --overwrite run staged in .*/ow/.new-run|finishing the replacement of the run in .*/ow" "$tmp/ow.err" \
        && ok "--resume continues the killed --overwrite run and it replaces the earlier one (bit-identical to an uninterrupted run)" \
        || bad "--resume of a killed --overwrite run: $(tail -1 "$tmp/ow.err")"
else
    wait "$pid" 2>/dev/null
    skip "kill -9 of an --overwrite run" "the run ended before its first epoch was seen"
fi
# the replacement happens when training ends, before the final evaluation: SIGTERM during that
# evaluation leaves the new run in place (its eval.json for cuvae eval to redo). (SIGTERM: a
# background job of this shell ignores SIGINT, and the evaluation runs with the handlers it had.)
cp -r "$tmp/ref" "$tmp/evalstop"; rm -rf "$tmp/evalstop/progress"
train --set train.epochs=4 --set eval.iw_samples=3000 --out "$tmp/evalstop_ref" 2>/dev/null   # (the checkpoint holds the config)
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=4 --set eval.iw_samples=3000 --out "$tmp/evalstop" \
    --overwrite 2>"$tmp/evalstop.err" &
pid=$!
for _ in $(seq 6000); do grep -q "importance-weighted" "$tmp/evalstop.err" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.005; done
if kill -TERM "$pid" 2>/dev/null; then
    wait "$pid"; rc=$?
    [ "$rc" -eq 143 ] && cmp -s "$tmp/evalstop/model.safetensors" "$tmp/evalstop_ref/model.safetensors" && [ ! -e "$tmp/evalstop/eval.json" ] \
        && [ ! -e "$tmp/evalstop/.new-run" ] && [ -n "$(ls "$tmp/evalstop/progress" 2>/dev/null)" ] \
        && ok "SIGTERM in an --overwrite run's final evaluation: the trained run has replaced the earlier one (no eval.json)" \
        || bad "SIGTERM in the final evaluation of an --overwrite run: exit $rc, $(ls -a "$tmp/evalstop" | tr '\n' ' ')"
else
    wait "$pid"
    skip "SIGTERM in an --overwrite run's final evaluation" "the run ended before the evaluation was seen"
fi
# two trains into one folder at once: the second is refused (a lock on the folder), the first ends well
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=4 --out "$tmp/busy" 2>/dev/null &
pid=$!
for _ in $(seq 4000); do [ -s "$tmp/busy/config.json" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.005; done
if kill -0 "$pid" 2>/dev/null; then
    expect_fail "a second train into a folder another train is writing: refused" 2 "busy: another cuvae train is writing a run there" -- \
        train --set train.epochs=4 --out "$tmp/busy" --overwrite
    wait "$pid"; rc=$?
    [ "$rc" -eq 0 ] && cmp -s "$tmp/busy/model.safetensors" "$tmp/ref/model.safetensors" \
        && ok "the first train ends undisturbed (bit-identical to the reference)" || bad "the first train: exit $rc"
else
    wait "$pid"
    skip "two trains into one folder" "the first ended before the second started"
fi
# a forged commit marker naming a file outside the run: refused, nothing moved or removed
mkdir -p "$tmp/forged/.new-run"; printf '\n../victim\n' > "$tmp/forged/.new-run/COMMIT"; echo keep > "$tmp/victim"
expect_fail "a commit marker naming a file outside the run is refused" 2 "forged/.new-run/COMMIT: not a list of a run.s files" -- \
    train --out "$tmp/forged" --resume
[ "$(cat "$tmp/victim")" = keep ] && ok "the file the forged marker named is untouched" || bad "forged marker: victim changed"
# a commit marker cut short (its last name without its newline, as a crash mid-write leaves it): refused,
# the run's files kept (the names it lists are not all there is to keep)
cp -r "$tmp/ref" "$tmp/cutmark"; mkdir -p "$tmp/cutmark/.new-run"
printf '\nconfig.json\nmodel.safetensors' > "$tmp/cutmark/.new-run/COMMIT"
expect_fail "a commit marker whose last line has no newline is refused" 2 "cutmark/.new-run/COMMIT: not a list of a run.s files" -- \
    train --out "$tmp/cutmark" --resume
cmp -s "$tmp/cutmark/model.safetensors" "$tmp/ref/model.safetensors" && cmp -s "$tmp/cutmark/log.jsonl" "$tmp/ref/log.jsonl" \
    && cmp -s "$tmp/cutmark/resume.safetensors" "$tmp/ref/resume.safetensors" \
    && ok "... the run's checkpoints and log are kept" || bad "a cut-short commit marker removed or changed the run's files"
# progress/ a link to a folder on another file system: the new run's images are copied there
shm=$(mktemp -d -p /dev/shm 2>/dev/null)
if [ -n "$shm" ] && [ "$(stat -c %d "$shm")" != "$(stat -c %d "$tmp")" ]; then
    cp -r "$tmp/ref" "$tmp/xdev"; rm -rf "$tmp/xdev/progress"; ln -s "$shm" "$tmp/xdev/progress"; touch "$shm/old_epoch.png"
    train --set train.epochs=2 --out "$tmp/xdev" --overwrite 2>"$tmp/xdev.err"
    [ -L "$tmp/xdev/progress" ] && [ -s "$shm/samples_epoch_002.png" ] && [ ! -e "$shm/old_epoch.png" ] \
        && [ ! -e "$tmp/xdev/.new-run" ] && ok "--overwrite with progress/ a link to another file system: images copied there" \
        || bad "--overwrite across file systems: $(tail -1 "$tmp/xdev.err")"
    rm -rf "$shm"
else
    [ -n "$shm" ] && rm -rf "$shm"
    skip "--overwrite with progress/ on another file system" "/dev/shm is missing or on the same file system as $tmp"
fi
# snapshot DIR / unchanged DIR: every file under DIR (its checksums and count) recorded, then
# compared: a refused command must leave the folder byte for byte as it was
snapshot() { (cd "$1" && find . -type f | sort | xargs sha256sum) > "$tmp/snapshot.sum"; }
unchanged() {
    (cd "$1" && sha256sum --quiet -c "$tmp/snapshot.sum" >/dev/null 2>&1) \
        && [ "$(find "$1" -type f | wc -l)" -eq "$(wc -l < "$tmp/snapshot.sum")" ]
}
# progress/ a file, or a link to nowhere, in the earlier run: --overwrite checks the places its
# commit will move files to before it trains (nothing staged, the earlier run as it was); eval.json
# (a file of the earlier run the replacement removes) taken by a folder: checked too
d="$tmp/noplace_evaldir"; cp -r "$tmp/ref" "$d"; rm "$d/eval.json"; mkdir "$d/eval.json"
snapshot "$d"
expect_fail "--overwrite with eval.json a folder: refused before it trains" 2 \
    "noplace_evaldir/eval.json: a folder, where a run's file goes \(the replacement puts the new run's there, or removes the earlier run's\) \(--overwrite puts the new run there when it ends: mend it first; .*noplace_evaldir is as it was, nothing was staged\)$" -- \
    train --set train.epochs=4 --set train.seed=7 --out "$d" --overwrite
unchanged "$d" && [ ! -e "$d/.new-run" ] \
    && ok "--overwrite refused before it trains (eval.json a folder): the earlier run byte for byte as it was, nothing staged" \
    || bad "--overwrite with eval.json a folder: the earlier run changed or a run was staged"
for kind in file link; do
    d="$tmp/noplace_$kind"; cp -r "$tmp/ref" "$d"; rm -rf "$d/progress"
    if [ $kind = file ]; then echo x > "$d/progress"; want="progress: not a folder"
    else ln -s "$tmp/nowhere" "$d/progress"; want="progress: a link to a folder that does not exist"; fi
    snapshot "$d"
    expect_fail "--overwrite with progress a $kind (no folder): refused before it trains, says how to mend it" 2 \
        "$want \(--overwrite puts the new run there when it ends: mend it first; .*noplace_$kind is as it was, nothing was staged\)$" -- \
        train --set train.epochs=4 --set train.seed=7 --out "$d" --overwrite
    unchanged "$d" \
        && { [ $kind = file ] || [ -L "$d/progress" ]; } && [ ! -e "$d/.new-run" ] \
        && ok "--overwrite refused before it trains (progress a $kind): the earlier run byte for byte as it was, nothing staged" \
        || bad "--overwrite refused before it trains (progress a $kind): the earlier run changed or a run was staged"
done
# an image name of progress/ taken by a folder: refused before it trains too (the run's images
# could go there); a file named progress in a staging folder left by a killed run: refused
# before it trains (the new run's images go there)
d="$tmp/noplace_png"; cp -r "$tmp/ref" "$d"; img=$(ls "$d/progress" | head -1); rm "$d/progress/$img"; mkdir "$d/progress/$img"
expect_fail "--overwrite with a progress image's name taken by a folder: refused before it trains" 2 \
    "noplace_png/progress/$img: a folder, where the new run may put an image \(--overwrite puts .* nothing was staged\)$" -- \
    train --set train.epochs=4 --set train.seed=7 --out "$d" --overwrite
d="$tmp/noplace_stagedfile"; cp -r "$tmp/ref" "$d"; mkdir "$d/.new-run"; echo x > "$d/.new-run/progress"
snapshot "$d"
expect_fail "--overwrite with a file named progress in its staging folder: refused before it trains" 2 \
    "noplace_stagedfile/.new-run/progress: not a folder \(cuvae stages the new run's images there\): move it away$" -- \
    train --set train.epochs=4 --set train.seed=7 --out "$d" --overwrite
unchanged "$d" \
    && ok "... the earlier run and the staging folder as they were" || bad "a refused staging changed the folder"
# a run file marked immutable or append-only (chattr +i / +a) cannot be renamed over or removed:
# refused before it trains, not half way through the replacement (the earlier run as it was)
d="$tmp/noplace_immutable"; cp -r "$tmp/ref" "$d"
if command -v chattr >/dev/null && chattr +i "$d/resume.safetensors" 2>/dev/null; then
    snapshot "$d"
    expect_fail "--overwrite with resume.safetensors immutable (chattr +i): refused before it trains" 2 \
        "noplace_immutable/resume.safetensors: marked immutable \(chattr \+i\): it can be neither replaced nor removed, .*nothing was staged\)$" -- \
        train --set train.epochs=4 --set train.seed=7 --out "$d" --overwrite
    unchanged "$d" && [ ! -e "$d/.new-run" ] \
        && ok "... the earlier run byte for byte as it was, nothing staged" || bad "a refused --overwrite (immutable file) changed the run"
    chattr -i "$d/resume.safetensors"
    chattr +a "$d/eval.json"
    expect_fail "--overwrite with eval.json append-only (chattr +a, the replacement removes it): refused before it trains" 2 \
        "noplace_immutable/eval.json: marked append-only \(chattr \+a\)" -- \
        train --set train.epochs=4 --set train.seed=7 --set train.epoch_images=false --out "$d" --overwrite
    chattr -a "$d/eval.json"
    # a folder marked append-only: its files can be neither renamed over nor removed either
    chattr +a "$d/progress"
    expect_fail "--overwrite with progress/ append-only (chattr +a on the folder): refused before it trains" 2 \
        "noplace_immutable/progress: a folder marked append-only \(chattr \+a\): files can be added to it but not replaced or removed" -- \
        train --set train.epochs=4 --set train.seed=7 --out "$d" --overwrite
    chattr -a "$d/progress"
    unchanged "$d" && [ ! -e "$d/.new-run" ] \
        && ok "... the earlier run byte for byte as it was, nothing staged" || bad "a refused --overwrite (append-only folder) changed the run"
    # an earlier plot figure that cannot be removed: the replacement goes on and names it (it stayed unsaid)
    mkdir -p "$d/figures"; cp "$d/progress/$(ls "$d/progress" | head -1)" "$d/figures/samples.png"; chattr +i "$d/figures/samples.png"
    train --set train.epochs=1 --set train.seed=7 --out "$d" --overwrite >/dev/null 2>"$tmp/immutable_figure.err"; rc=$?
    chattr -i "$d/figures/samples.png"
    [ $rc -eq 0 ] && grep -q "figures/samples.png: cannot remove it (Operation not permitted): an earlier run's image stays beside this run's" "$tmp/immutable_figure.err" \
        && ok "an earlier figure that cannot be removed: the run replaces the rest and names it" \
        || bad "immutable earlier figure: exit $rc, $(tail -1 "$tmp/immutable_figure.err")"
else
    skip "--overwrite over an immutable run file" "chattr +i is not possible here (not root, or $tmp's file system has no such flag)"
fi
# progress/ made a file while the --overwrite run trains: the commit checks every file's place
# before it moves anything, so the earlier run stays as it was and the new run stays staged
d="$tmp/noplace_late"; cp -r "$tmp/ref" "$d"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=4 --set train.seed=7 --out "$d" \
    --overwrite 2>"$tmp/late.err" &   # not the function: $! must be cuvae itself
pid=$!
for _ in $(seq 4000); do
    [ -s "$d/.new-run/resume.safetensors" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.005
done
if kill -0 "$pid" 2>/dev/null && [ -s "$d/.new-run/resume.safetensors" ]; then
    rm -rf "$d/progress"; echo x > "$d/progress"
    (cd "$d" && find . -path ./.new-run -prune -o -type f -print | sort | xargs sha256sum) > "$tmp/noplace.sum"
    wait "$pid"; rc=$?
    last=$(tail -1 "$tmp/late.err")
    [ "$rc" -eq 2 ] && echo "$last" | grep -qE "noplace_late/progress: not a folder \(--overwrite: the earlier run in .*noplace_late is as it was; this run is kept in .*noplace_late/\.new-run: once that is mended, train --resume with the same config puts it in place\)$" \
        && ok "progress/ made a file while --overwrite trains: refused at its commit, says how to mend it" \
        || bad "progress/ made a file while --overwrite trains: exit $rc, last line: $last"
    (cd "$d" && sha256sum --quiet -c "$tmp/noplace.sum" >/dev/null 2>&1) && [ -s "$d/.new-run/model.safetensors" ] && [ ! -e "$d/.new-run/COMMIT" ] \
        && [ "$(find "$d" -path "$d/.new-run" -prune -o -type f -print | wc -l)" -eq "$(wc -l < "$tmp/noplace.sum")" ] \
        && ok "... the earlier run byte for byte as it was, the new run staged" \
        || bad "refused commit: the earlier run changed or the new run is not staged"
    rm "$d/progress"
    train --set train.epochs=4 --set train.seed=7 --out "$d" --resume 2>"$tmp/noplace.err"
    cmp -s "$d/model.safetensors" "$tmp/ow_ref/model.safetensors" && cmp -s "$d/eval.json" "$tmp/ow_ref/eval.json" \
        && diff <(ls "$d/progress") <(ls "$tmp/ow_ref/progress") >/dev/null && [ ! -e "$d/.new-run" ] \
        && ok "mended, --resume puts the staged run in place (model, eval.json and images as an uninterrupted run's)" \
        || bad "--resume of a run staged after a refused commit: $(tail -1 "$tmp/noplace.err")"
else
    wait "$pid" 2>/dev/null
    skip "progress/ made a file while --overwrite trains" "the run ended before its first epoch was seen"
fi
# --resume of a staged run checks the places of its commit before it trains, as --overwrite does
d="$tmp/noplace_staged"; cp -r "$tmp/ref" "$d"; cp -r "$tmp/ow_ref" "$d/.new-run"; rm -rf "$d/progress"; echo x > "$d/progress"
snapshot "$d"
expect_fail "--resume of a staged run with progress a file: refused before it trains" 2 \
    "noplace_staged/progress: not a folder \(the --overwrite run staged in .*noplace_staged/\.new-run goes there when it ends: mend it, then train --resume again; that run and the earlier one in .*noplace_staged are as they were\)$" -- \
    train --set train.epochs=6 --set train.seed=7 --out "$d" --resume
unchanged "$d" \
    && ok "... the staged run and the earlier run byte for byte as they were" || bad "a refused --resume of a staged run changed the folder"
# a commit killed after moving some files (staged by hand here: the marker lists the new run's
# files, two of them already moved): the next train into the folder finishes it
cp -r "$tmp/ref" "$tmp/half"; mkdir -p "$tmp/half/figures"; touch "$tmp/half/figures/samples.png"
cp -r "$tmp/ow_ref" "$tmp/half/.new-run"
( cd "$tmp/half/.new-run" && { printf '\n'; ls *.json *.jsonl *.safetensors; ls progress/*.png; } > COMMIT )
mv "$tmp/half/.new-run/config.json" "$tmp/half/.new-run/log.jsonl" "$tmp/half/"
expect_fail "eval of a run whose replacement was killed half way: refused, says how to finish it" 2 \
    "half/model.safetensors: the replacement of this run by an --overwrite run stopped half way .*--out .*half --resume finishes it" -- \
    "$CUVAE" eval "$tmp/half/model.safetensors"
ln -s "$tmp/half/model.safetensors" "$tmp/half_link.safetensors"
expect_fail "... and through a link to that checkpoint (the folder the link points into)" 2 \
    "half_link.safetensors: the replacement of this run by an --overwrite run stopped half way .*--out .*half --resume finishes it" -- \
    "$CUVAE" sample "$tmp/half_link.safetensors" -o "$tmp/half_link.png"
printf '{"title": "t", "intro": "i", "sections": [{"title": "s", "text": "x", "runs": ["half"], "figures": []}]}\n' > "$tmp/half_index.json"
expect_fail "... and report of that run (its eval.json the earlier run's, its config.json the new one's): refused" 2 \
    "half/(config|eval)\.json: the replacement of this run by an --overwrite run stopped half way .*--out .*half --resume finishes it" -- \
    "$CUVAE" report "$tmp/half_index.json" "$tmp"
# a run folder cloned with links (cp -rs), or a progress/ linked to another run's: train would write
# through the links into that run (its config, log, checkpoints; its images replaced and removed)
cp -rs "$tmp/ref" "$tmp/linked_clone"
snapshot "$tmp/ref"
expect_fail "--resume of a folder cloned with links (cp -rs): refused, naming the link and the run it leads into" 2 \
    "linked_clone/config\.json: a link to .*/ref/config\.json, a file of the run in .*/ref \(train would write this run's config\.json there\): replace the link by a copy \(cp -L\) or remove it$" -- \
    train --set train.epochs=6 --out "$tmp/linked_clone" --resume
mkdir "$tmp/linked_progress"; ln -s "$tmp/ref/progress" "$tmp/linked_progress/progress"
expect_fail "--overwrite into a folder whose progress/ links to another run's: refused" 2 \
    "linked_progress/progress: leads to .*/ref/progress, a folder of the run in .*/ref \(train would replace that run's images with this one's\): remove the link" -- \
    train --set train.epochs=1 --out "$tmp/linked_progress" --overwrite
unchanged "$tmp/ref" && ok "... the run the links lead into byte for byte as it was" || bad "a refused run wrote through a link into $tmp/ref"
cp -r "$tmp/ref" "$tmp/fig_victim"; mkdir -p "$tmp/fig_victim/figures"
cp "$tmp/ref/progress/samples_epoch_001.png" "$tmp/fig_victim/figures/samples.png"
mkdir "$tmp/linked_figures"; cp "$tmp/ref/config.json" "$tmp/ref/resume.safetensors" "$tmp/ref/log.jsonl" "$tmp/linked_figures/"
ln -s "$tmp/fig_victim/figures" "$tmp/linked_figures/figures"
snapshot "$tmp/fig_victim"
expect_fail "--resume of a folder whose figures/ links to another run's (it removes plot's figures there): refused" 2 \
    "linked_figures/figures: leads to .*/fig_victim/figures, a folder of the run in .*/fig_victim \(train would remove that run's figures\): remove the link" -- \
    train --set train.epochs=6 --out "$tmp/linked_figures" --resume
unchanged "$tmp/fig_victim" && ok "... that run's figures as they were" || bad "a refused run removed figures through a link"
snapshot "$tmp/ref"
# --overwrite of the clone is what replaces it: the commit renames over its links, their targets untouched
if train --set train.epochs=1 --set train.seed=3 --out "$tmp/linked_clone" --overwrite 2>/dev/null &&
   [ ! -L "$tmp/linked_clone/model.safetensors" ] && unchanged "$tmp/ref"; then
    ok "--overwrite of the linked clone: its own files now, the run its links led into untouched"
else bad "--overwrite of a linked clone failed or changed $tmp/ref"; fi
# --out a link that leads nowhere: said so (it blamed config.json's temp file, after the checks)
ln -s "$tmp/nowhere" "$tmp/dangling_out"
expect_fail "--out a link to a folder that does not exist: said so" 2 \
    "dangling_out: a link to .*/nowhere, which does not exist \(a folder is made there\): mend it or remove it$" -- \
    train --set train.epochs=1 --out "$tmp/dangling_out"
# the run folder removed while it trains, and a new run started there: the first stops at its next
# epoch's end (it wrote by name into the new run's folder until 2026-12-06: two runs' files mixed)
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=400 --set train.epoch_images=false \
    --out "$tmp/removed" 2>"$tmp/removed_first.err" &
pid=$!
for _ in $(seq 600); do [ -f "$tmp/removed/resume.safetensors" ] && break; sleep 0.05; done
if [ -f "$tmp/removed/resume.safetensors" ] && kill -0 "$pid" 2>/dev/null; then
    # (moved away in one rename: an rm -rf racing the run's writes can fail on a file the run just made,
    # leaving the folder in place; removed or moved, the path no longer leads to the locked folder)
    mv "$tmp/removed" "$tmp/removed_away"
    train --set train.epochs=1 --set train.seed=7 --out "$tmp/removed" 2>/dev/null
    wait "$pid"; rc=$?
    rm -rf "$tmp/removed_away"
    # (checked before an epoch's writes: moved during them, a write fails on the path instead; either
    # way the run stops, exit 2, and writes nothing into the new folder)
    if [ "$rc" -eq 2 ] && tail -1 "$tmp/removed_first.err" | grep -qE "removed: the run folder was removed or replaced while this run trained \((removed|moved or replaced)\): nothing more is written there|removed/[a-z_.]+: .*No such file or directory" &&
       train --set train.epochs=2 --set train.seed=7 --out "$tmp/removed" --resume 2>/dev/null; then
        ok "run folder removed mid-run and a new run made there: the first stops (exit 2), the new run's folder is its own (resumes)"
    else
        bad "run folder removed mid-run: first run exit $rc, $(tail -1 "$tmp/removed_first.err")"
    fi
else
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    skip "run folder removed mid-run" "the run ended before its first epoch was seen"
fi
# --out into a run's staging folder or its image folders: refused (the run's lock is on the run's
# folder, and a --resume of the run would take the staged folder for its own)
for inside in half/.new-run half/progress half/figures/; do
    expect_fail "--out $inside: refused (a folder the run keeps)" 2 \
        "$inside: (a run's staging folder \(cuvae's own, for --overwrite\)|the (progress|figures)/ folder of the run in .*/half): write the run elsewhere with --out DIR$" -- \
        train --set train.epochs=1 --out "$tmp/$inside"
done
# ... however the path is spelt: ending in /., through a link, or "." from inside (resolved first)
ln -s "$tmp/half/progress" "$tmp/progress_link"
for inside in half/.new-run/. progress_link; do
    expect_fail "--out $inside: refused (the folder it resolves to is one the run keeps)" 2 \
        "$inside: (a run's staging folder \(cuvae's own, for --overwrite\)|the progress/ folder of the run in .*/half): write the run elsewhere with --out DIR$" -- \
        train --set train.epochs=1 --out "$tmp/$inside"
done
rm "$tmp/progress_link"
expect_fail "--out . inside a run's progress/: refused" 2 \
    "^cuvae: \.: the progress/ folder of the run in .*/half: write the run elsewhere with --out DIR$" -- \
    bash -c 'cd "$1/half/progress" && shift && exec "$@"' _ "$tmp" "$(realpath "$CUVAE")" train "$PWD/configs/examples_vae.json" \
    "${small[@]}" --set data.dir="$PWD/data/mnist" --set train.epochs=1 --out .
# ... and from a run folder whose path is long (1,500 bytes: folder paths held in 1,200 bytes were cut
# short until 2026-12-06, and a run there went into the other run's progress/, a sample replaced its image)
deep="$tmp/deep"; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do deep="$deep/$(printf 'd%.0s' $(seq 100))"; done
mkdir -p "$deep" && cp -r "$tmp/ref" "$deep/run"
expect_fail "--out . inside the progress/ of a run 1,500 bytes deep: refused" 2 \
    "^cuvae: \.: the progress/ folder of the run in /" -- \
    bash -c 'cd "$1/run/progress" && shift && exec "$@"' _ "$deep" "$(realpath "$CUVAE")" train "$PWD/configs/examples_vae.json" \
    "${small[@]}" --set data.dir="$PWD/data/mnist" --set train.epochs=1 --out .
first_image=$(ls "$deep/run/progress" | head -1)
expect_fail "... and sample -o over one of its images from inside progress/: refused" 2 \
    "^cuvae: sample: -o $first_image would replace an image of the run in /" -- \
    bash -c 'cd "$1/run/progress" && shift && exec "$@"' _ "$deep" "$(realpath "$CUVAE")" sample ../model.safetensors -o "$first_image"
rm -rf "$tmp/deep"
train --set train.epochs=4 --set train.seed=7 --out "$tmp/half" --resume 2>"$tmp/half.err"
cmp -s "$tmp/half/model.safetensors" "$tmp/ow_ref/model.safetensors" && [ ! -e "$tmp/half/.new-run" ] \
    && [ ! -e "$tmp/half/figures/samples.png" ] && diff <(ls "$tmp/half/progress") <(ls "$tmp/ow_ref/progress") >/dev/null \
    && grep -q "finishing the replacement of the run in .*/half" "$tmp/half.err" \
    && ok "a commit killed half way is finished by the next train (the earlier run's figures go, the new run's images come)" \
    || bad "half-done commit: $(tail -1 "$tmp/half.err")"

# ---- kill -9 in the middle of a checkpoint write: the moment its temp file exists
# (a wide model, so that a checkpoint takes tens of milliseconds to write)
wide=(--set 'model.encoder=[4096]' --set 'model.decoder=[4096]' --set data.train_limit=256 --set train.epochs=3)
train "${wide[@]}" --out "$tmp/wide_ref" 2>/dev/null || bad "wide reference run failed"
for nth in 1 4; do
    landed=""
    for attempt in 1 2 3; do
        out="$tmp/mid$nth.$attempt"
        "$CUVAE" train configs/examples_vae.json "${small[@]}" "${wide[@]}" --out "$out" 2>/dev/null &
        pid=$!
        seen=0
        while kill -0 "$pid" 2>/dev/null; do
            if compgen -G "$out/*.safetensors.tmp.*" >/dev/null; then
                seen=$((seen + 1))
                if [ "$seen" -ge "$nth" ]; then kill -9 "$pid"; break; fi
                while compgen -G "$out/*.safetensors.tmp.*" >/dev/null; do :; done   # that write is done
            fi
        done
        wait "$pid" 2>/dev/null
        stale=$(ls "$out" | grep -c '\.tmp\.')
        [ "$stale" -ge 1 ] && { landed=$out; break; }
    done
    if [ -z "$landed" ]; then
        skip "kill -9 during checkpoint write $nth" "3 kills all arrived after the write had finished"
        continue
    fi
    if [ -f "$landed/resume.safetensors" ]; then
        train "${wide[@]}" --out "$landed" --resume 2>"$landed.err"
    else
        train "${wide[@]}" --out "$landed" --overwrite 2>"$landed.err"
    fi
    if cmp -s "$landed/model.safetensors" "$tmp/wide_ref/model.safetensors" && [ -z "$(ls "$landed" | grep '\.tmp\.')" ]; then
        ok "kill -9 during checkpoint write $nth (its temp file left behind): the next run cleans it and ends bit-identical"
    else
        bad "kill during write $nth: final model differs or temp files remain: $(tail -1 "$landed.err")"
    fi
done

# ---- Ctrl-C (SIGINT) and SIGTERM: stop at a step boundary, save, say how to continue (exit
# 128 + signal); --resume then ends bit-identical, log.jsonl too (but for its timings)
steps=(--set train.batch_size=16 --set train.epochs=3)
train "${steps[@]}" --out "$tmp/int_ref" 2>/dev/null
start=$(date +%s.%N); train "${steps[@]}" --out "$tmp/int_timing" 2>/dev/null
int_seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
untimed() { sed -E 's/"seconds": [0-9.]+, "samples_per_s": [0-9.]+, //' "$1"; }
for sig in INT TERM; do
    want=$([ $sig = INT ] && echo 130 || echo 143)
    for attempt in 1 2 3 4 5 6; do   # until the signal lands inside an epoch (step > 0)
        out="$tmp/int_$sig.$attempt"
        # SIGTERM's run replaces an earlier run (with an eval.json): stopped half way, it stays
        # staged and the earlier run in place until --resume has finished it
        [ $sig = TERM ] && cp -r "$tmp/ref" "$out"
        # SIGTERM's run was started with --overwrite: the hint says to use --resume in its place
        # (env --default-signal: a background job of this script, or a script started with SIGINT
        # ignored, would start cuvae with SIGINT ignored, which it keeps)
        env --default-signal=INT "$CUVAE" train configs/examples_vae.json "${small[@]}" "${steps[@]}" --out "$out" \
            $([ $sig = TERM ] && echo --overwrite) 2>"$out.err" &
        pid=$!
        # the signal goes in epoch 2 (INT) or 3 (TERM): when the epoch before has printed its
        # summary line, plus a little (a fraction of the measured run time would depend on the
        # machine's load staying the same between the timing run and this one)
        before=$([ $sig = INT ] && echo 1 || echo 2)
        for _ in $(seq 2000); do
            grep -q "^epoch $before/3:" "$out.err" 2>/dev/null && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.005
        done
        # (0, 2, 4, 7, 10, 14 % of the timed run: the epoch's files are written after its line, and
        # a signal that lands while they are is taken at step 0 of the next epoch; 0 first, as the
        # timed run may have met a busier machine than this one, and ended before a later signal)
        sleep "$(awk -v s="$int_seconds" -v a="$attempt" 'BEGIN { split("0 0.02 0.04 0.07 0.10 0.14", f, " "); printf "%.3f", s * f[a] }')"
        kill -"$sig" "$pid"
        wait "$pid"; rc=$?
        grep -q "after step [1-9][0-9]* of 125" "$out.err" && break
        # the run ended before the signal (a fast machine): the attempt before, which it stopped, stands
        if ! grep -q "^cuvae: interrupted" "$out.err" && [ "$attempt" -gt 1 ]; then
            out="$tmp/int_$sig.$((attempt - 1))"; rc=$previous_rc; break
        fi
        previous_rc=$rc
    done
    last=$(tail -1 "$out.err")
    hint=$([ $sig = TERM ] && echo "the same command, --resume in place of --overwrite" || echo "the same command and --resume")
    saved=$([ $sig = TERM ] && echo "int_TERM\.[0-9]/\.new-run/resume\.safetensors \(the earlier run in the folder stays as it was until this one ends; remove the \.new-run folder to keep that one instead\)" \
            || echo "int_INT\.[0-9]/resume\.safetensors")
    if [ "$rc" -eq "$want" ] && echo "$last" | grep -qE "^cuvae: interrupted \(SIG$sig\) in epoch [0-9]+ after step [0-9]+ of 125: the state is saved in .*$saved; continue with $hint$"; then
        ok "SIG$sig: exit $rc, one line saying where the state is and how to continue"
        notice=$([ $sig = INT ] && echo "^cuvae: stopping at the next step boundary to save the run \(press Ctrl-C again to quit at once\)$" \
                 || echo "^cuvae: SIGTERM: stopping at the next step boundary to save the run \(a second SIGTERM quits at once\)$")
        grep -qE "$notice" "$out.err" && ok "SIG$sig: the notice names what a second one does" \
            || bad "SIG$sig: no notice matching $notice"
        [ $sig = TERM ] && { diff -r -x .new-run "$tmp/ref" "$out" >/dev/null && [ -s "$out/.new-run/resume.safetensors" ] \
            && ok "SIGTERM of an --overwrite run: the earlier run is as it was (eval.json and all), the stopped run staged in .new-run" \
            || bad "SIGTERM of an --overwrite run: the earlier run changed, or nothing is staged: $(ls -a "$out" "$out/.new-run" 2>&1 | tr '\n' ' ')"; }
    else
        bad "SIG$sig: exit $rc (want $want), last line: $last"
    fi
    # stopped in epoch 2: train.epochs=1 (the epochs it finished) would end it before that epoch
    if [ $sig = INT ] && grep -q "in epoch 2 after step [1-9][0-9]* of 125" "$out.err"; then
        expect_fail "--resume of a run stopped in epoch 2 with train.epochs=1 (the epochs it finished): refused" 2 \
            "int_INT\.[0-9]/resume.safetensors: the run is in epoch 2 \(step [0-9]+ of 125\); train.epochs 1 would end it before that epoch \(--set train.epochs=2 or more\)$" -- \
            train "${steps[@]}" --set train.epochs=1 --out "$out" --resume
    elif [ $sig = TERM ] && grep -q "in epoch 3 after step [1-9][0-9]* of 125" "$out.err"; then
        # stopped inside epoch 3 with 2 finished: the advice counts the epoch it is in (it said 2, itself refused)
        expect_fail "--resume of a run stopped in epoch 3 with train.epochs=1: the advice is 3" 2 \
            "int_TERM\.[0-9]/\.new-run/resume.safetensors: the run has finished 2 epochs and is in the next; train.epochs 1 would end it before them \(--set train.epochs=3 or more\) \(--overwrite: the earlier run in .*int_TERM\.[0-9] is as it was;" -- \
            train "${steps[@]}" --set train.epochs=1 --out "$out" --resume
    elif [ $sig = INT ]; then
        skip "--resume of a run stopped in epoch 2 with train.epochs=1" \
            "the signal landed $(grep -o 'in epoch [0-9]* after step [0-9]* of 125' "$out.err" | head -1) (a busy machine): the case needs a run stopped inside epoch 2"
    fi
    train "${steps[@]}" --out "$out" --resume 2>"$out.res.err" || bad "SIG$sig: --resume failed: $(tail -1 "$out.res.err")"
    if cmp -s "$out/model.safetensors" "$tmp/int_ref/model.safetensors" &&
       [ "$(untimed "$out/log.jsonl")" = "$(untimed "$tmp/int_ref/log.jsonl")" ]; then
        ok "SIG$sig $(grep -o 'in epoch [0-9]* after step [0-9]* of 125' "$out.err" | head -1), then --resume: model and log bit-identical to an uninterrupted run"
    else
        bad "SIG$sig then --resume: the model or the log differs"
    fi
    # the resumed epoch's rate counts the examples of the steps it timed, not the whole epoch's:
    # samples_per_s x seconds is the examples of the steps left, times seconds / training seconds
    # (the epoch's seconds include its test evaluation: a few per cent here); before, the whole
    # epoch's 2000 examples over the part's time
    stopped=$(grep -o 'in epoch [0-9]* after step [0-9]* of 125' "$out.err" | head -1)
    ep=$(echo "$stopped" | awk '{print $3}'); st=$(echo "$stopped" | awk '{print $6}')
    rate_line=$(sed -n "${ep}p" "$out/log.jsonl")
    if [ -n "$ep" ] && awk -v line="$rate_line" -v st="$st" 'BEGIN {
            match(line, /"seconds": [0-9.]+/); s = substr(line, RSTART + 11, RLENGTH - 11)
            match(line, /"samples_per_s": [0-9.]+/); r = substr(line, RSTART + 17, RLENGTH - 17)
            want = 2000 * (125 - st) / 125; got = r * s
            exit !(s > 0 && got > want * 0.97 && got < want * 1.4) }'; then
        ok "SIG$sig: the resumed epoch's samples_per_s counts the $((2000 * (125 - st) / 125)) examples it trained"
    else bad "SIG$sig: the resumed epoch's rate: $rate_line (stopped after step $st of 125)"; fi
done

# ---- a run started with SIGINT ignored (as a background job of any non-interactive shell is)
# keeps it ignored: Ctrl-C in the terminal leaves it training
out="$tmp/int_ignored"
env --ignore-signal=INT "$CUVAE" train configs/examples_vae.json "${small[@]}" "${steps[@]}" --out "$out" 2>"$out.err" &
pid=$!
for _ in $(seq 2000); do grep -q "^epoch 1/3:" "$out.err" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.005; done
if kill -INT "$pid" 2>/dev/null; then
    wait "$pid"; rc=$?
    if [ "$rc" -eq 0 ] && ! grep -q "stopping at the next step boundary\|^cuvae: interrupted" "$out.err" \
       && cmp -s "$out/model.safetensors" "$tmp/int_ref/model.safetensors"; then
        ok "SIGINT to a run started with SIGINT ignored: it stays ignored (the run finishes, the model identical)"
    else
        bad "SIGINT to a run started with SIGINT ignored: exit $rc, $(tail -1 "$out.err")"
    fi
else
    wait "$pid"
    skip "SIGINT to a run started with SIGINT ignored" "the run ended before its first epoch was seen"
fi

# ---- SIGHUP (the terminal closed) stops a run at a step boundary as SIGTERM does: saved, said,
# exit 129 (it killed the run without a word, saving nothing; started under nohup it stays ignored)
out="$tmp/hup"
env --default-signal=HUP "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=400 --out "$out" 2>"$out.err" &
pid=$!
for _ in $(seq 4000); do grep -q "^epoch 1/400:" "$out.err" 2>/dev/null && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.005; done
# (two in a row, as a closed terminal sends them: the shell's, then the kernel's as the shell exits)
kill -HUP "$pid" 2>/dev/null; kill -HUP "$pid" 2>/dev/null; wait "$pid"; rc=$?
if [ "$rc" -eq 129 ] && grep -qx "cuvae: SIGHUP: stopping at the next step boundary to save the run (SIGINT or SIGTERM quits at once)" "$out.err" \
   && tail -1 "$out.err" | grep -qE "^cuvae: interrupted \(SIGHUP\) in epoch [0-9]+ after step [0-9]+ of [0-9]+: the state is saved in .*hup/resume\.safetensors; continue with the same command and --resume$" \
   && [ -s "$out/resume.safetensors" ]; then
    ok "SIGHUP twice: stops at a step boundary, the state saved, one line, exit 129"
else bad "SIGHUP: exit $rc, $(tail -1 "$out.err")"; fi

# ---- a second signal while the state is being saved quits at once, and removes the temp file
# of that write (it was left beside the resume file, 18 MB of 54)
out="$tmp/twice"
big=(--set device=cpu --set data.train_limit=640 --set data.test_limit=64 --set train.batch_size=64
     --set train.epochs=200 --set train.epoch_images=false --set eval.iw_samples=0)
env --default-signal=INT "$CUVAE" train bench/configs/cpu/large_b1024.json "${big[@]}" --out "$out" 2>"$out.err" &
pid=$!
# (once the first epoch's resume file is in place: a second signal during any later write keeps it)
for _ in $(seq 4000); do [ -e "$out/resume.safetensors" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.005; done
seen=""
if kill -INT "$pid" 2>/dev/null; then
    for _ in $(seq 20000); do
        if compgen -G "$out/resume.safetensors.tmp.*" >/dev/null; then kill -INT "$pid"; seen=1; break; fi
        kill -0 "$pid" 2>/dev/null || break
    done
fi
wait "$pid"; rc=$?
if [ -z "$seen" ]; then
    skip "a second SIGINT during the save" "no save was seen under way (timing: the write ended between two looks)"
elif grep -q "^cuvae: interrupted" "$out.err"; then   # (the second signal came after the save: not this case)
    skip "a second SIGINT during the save" "the save had ended when the second signal came (timing)"
elif [ "$rc" -eq 130 ] && [ -z "$(ls -A "$out" | grep '\.tmp\.')" ] && [ -s "$out/resume.safetensors" ]; then
    ok "a second SIGINT while resume.safetensors is written: exit 130 at once, its temp file removed, the last saved state kept"
else bad "a second SIGINT during the save: exit $rc, left: $(ls -A "$out" | tr '\n' ' ')"; fi

# ---- a signal while the last epoch is being evaluated and saved: training is over, so the
# process says the model is saved and the final evaluation skipped (exit 130), not silence.
# Timed: tries a few delays; if none lands in that window the case is skipped, not passed.
late=(--set data.train_limit=64 --set data.test_limit=10000 --set train.batch_size=64 --set train.epochs=1
      --set eval.iw_samples=0 --set model.latent_dim=8)
"$CUVAE" train configs/examples_vae.json --set device=cpu "${late[@]}" --out "$tmp/late_ref" 2>/dev/null
start=$(date +%s.%N); "$CUVAE" train configs/examples_vae.json --set device=cpu "${late[@]}" --out "$tmp/late_t" 2>/dev/null
late_seconds=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
landed=""
for f in 0.55 0.65 0.6 0.7 0.5 0.75 0.45 0.8 0.4 0.85; do
    out="$tmp/late_$f"
    env --default-signal=INT "$CUVAE" train configs/examples_vae.json --set device=cpu "${late[@]}" --out "$out" 2>"$out.err" &
    pid=$!
    sleep "$(awk -v s="$late_seconds" -v f="$f" 'BEGIN { printf "%.3f", s * f }')"
    kill -INT "$pid"
    wait "$pid"; rc=$?
    if grep -q "after training finished" "$out.err"; then landed="$out"; break; fi
done
if [ -z "$landed" ]; then
    skip "SIGINT while the last epoch is saved" "no attempt landed in that window on this machine (timing)"
else
    last=$(tail -1 "$landed.err")
    if [ "$rc" -eq 130 ] && echo "$last" | grep -qE "^cuvae: interrupted \(SIGINT\) after training finished: the model is saved in .*model.safetensors; the final evaluation was skipped \(run cuvae eval .*model.safetensors\)$" &&
       cmp -s "$landed/model.safetensors" "$tmp/late_ref/model.safetensors" && [ ! -e "$landed/eval.json" ]; then
        ok "SIGINT while the last epoch is saved: exit 130, the model saved (identical), says the evaluation was skipped"
    else
        bad "SIGINT while the last epoch is saved: exit $rc, $last"
    fi
fi

# ---- stale temp files of a killed write are removed by the next run
cp -r "$tmp/ref" "$tmp/stale"
head -c 1000 "$tmp/ref/model.safetensors" > "$tmp/stale/model.safetensors.tmp.999999999"
head -c 10 "$tmp/ref/log.jsonl" > "$tmp/stale/eval.json.tmp.999999998"
head -c 10 "$tmp/ref/log.jsonl" > "$tmp/stale/progress/samples_epoch_001.png.tmp.999999997"
echo mine > "$tmp/stale/progress/notes.tmp.999999996"   # not a name cuvae writes: kept
train --set train.epochs=5 --out "$tmp/stale" --resume 2>"$tmp/stale.err" || bad "resume with stale temps: $(tail -1 "$tmp/stale.err")"
if [ -z "$(ls "$tmp/stale" "$tmp/stale/progress" | grep '\.tmp\.' | grep -v '^notes\.tmp\.999999996$')" ] \
   && [ -s "$tmp/stale/progress/notes.tmp.999999996" ] && grep -q "removed .*model.safetensors.tmp.999999999, left by a write that was killed" "$tmp/stale.err" \
   && grep -q "removed .*progress/samples_epoch_001.png.tmp.999999997" "$tmp/stale.err"; then
    ok "stale temp files of killed writes removed (and said so)"
else
    bad "stale temp files: $(ls "$tmp/stale") / $(grep removed "$tmp/stale.err")"
fi

# ---- a full disk
mkdir -p "$tmp/full"; ln -s /dev/full "$tmp/full/log.jsonl"
expect_fail "log.jsonl linked to a device, no run: refused before anything is written" 2 "full holds log.jsonl, which train writes, but no run" -- \
    train --set train.epochs=1 --out "$tmp/full"
[ ! -e "$tmp/full/config.json" ] && ok "... and nothing was written" || bad "config.json written despite the refused log"
# a run whose eval.json links to a device: --resume refuses it before training
cp -r "$tmp/ref" "$tmp/fullrun"; rm -f "$tmp/fullrun/eval.json"; ln -s /dev/full "$tmp/fullrun/eval.json"
before=$(md5sum "$tmp/fullrun/model.safetensors")
expect_fail "--resume with eval.json linked to a device: refused before anything is written" 2 "eval.json: links to /dev/full, which is not a regular file" -- \
    train --set train.epochs=5 --out "$tmp/fullrun" --resume
[ "$(md5sum "$tmp/fullrun/model.safetensors")" = "$before" ] && [ -L "$tmp/fullrun/eval.json" ] \
    && ok "... and the run is as it was" || bad "a refused --resume changed the run"
# the log's own write failing (EFBIG under a file-size limit, like a full disk): the resumed
# run's log is padded to the limit, so the next epoch's line cannot be appended
cp -r "$tmp/ref" "$tmp/logfull"
python3 - "$tmp/logfull/log.jsonl" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
pad = 8 * 1024 - sum(len(l) + 1 for l in lines)   # bash counts ulimit -f in KiB
lines[0] += " " * pad
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PY
(ulimit -f 8; trap '' XFSZ; exec "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=5 \
    --out "$tmp/logfull" --resume) >/dev/null 2>"$tmp/logfull.err"; rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/logfull.err" | grep -q "log.jsonl: cannot write: File too large" \
    && ok "a log write that fails (file-size limit): exit 2 naming log.jsonl" || bad "log write failure: exit $rc, $(tail -1 "$tmp/logfull.err")"
cp -r "$tmp/ref" "$tmp/fsize"
before=$(md5sum < "$tmp/fsize/model.safetensors")
(ulimit -f 1000; exec "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=5 \
    --out "$tmp/fsize" --resume) 2>"$tmp/fsize.err"; rc=$?
if [ "$rc" -eq 2 ] && tail -1 "$tmp/fsize.err" | grep -q "model.safetensors: write failed: File too large (.*fsize keeps the run's last saved state: once that is mended, train --resume with the same config continues from there)$" &&
   [ "$(md5sum < "$tmp/fsize/model.safetensors")" = "$before" ] && [ -z "$(ls "$tmp/fsize" | grep '\.tmp\.')" ] &&
   cmp -s "$tmp/fsize/log.jsonl" "$tmp/ref/log.jsonl"; then
    ok "a checkpoint over the file-size limit (SIGXFSZ not ignored by the caller): exit 2 naming the file, the previous checkpoint intact, no temp left, the log without the unsaved epoch's line"
else
    bad "file-size limit: exit $rc, $(tail -1 "$tmp/fsize.err")"
fi
train --set train.epochs=5 --out "$tmp/fsize" --resume >/dev/null 2>"$tmp/fsize2.err" && [ "$(wc -l < "$tmp/fsize/log.jsonl")" -eq 5 ] \
    && ok "... and, as the line says, --resume without the limit continues it" || bad "--resume after the file-size limit: $(tail -1 "$tmp/fsize2.err")"

# ---- a read-only output folder
ro="$tmp/ro"; mkdir -p "$ro"
made_ro=""
if [ "$(id -u)" -ne 0 ]; then
    cp -r "$tmp/ref/." "$ro/"; ln -s "$tmp/ro_link_target.json" "$ro/link.json"; chmod a-w "$ro"; made_ro=chmod
elif mount -t tmpfs -o size=64m tmpfs "$ro" 2>/dev/null; then
    cp -r "$tmp/ref/." "$ro/"; ln -s "$tmp/ro_link_target.json" "$ro/link.json"
    mount -o remount,ro "$ro" 2>/dev/null && made_ro=mount
fi
if [ -n "$made_ro" ]; then
    expect_fail "read-only output folder: exit 2 naming the file" 2 "ro/.*(Read-only file system|Permission denied)" -- \
        train --set train.epochs=5 --out "$ro" --resume
    # eval -o there: refused before the evaluation (it ran the whole job, then failed on the write)
    expect_error "eval -o into a read-only folder: refused at once" 2 "eval: -o .*ro/e.json: cannot write in the folder .*ro: (Read-only file system|Permission denied)" -- \
        "$CUVAE" eval "$tmp/ref/model.safetensors" -o "$ro/e.json"
    # ... but a link there to a file in a folder it can write: written there (the file is the target)
    "$CUVAE" eval "$tmp/ref/model.safetensors" -o "$ro/link.json" >/dev/null 2>"$tmp/ro_link.err" \
        && grep -q '"test_loss"' "$tmp/ro_link_target.json" && ok "eval -o a link in a read-only folder to a writable one: written" \
        || bad "eval -o through a link out of a read-only folder: $(tail -1 "$tmp/ro_link.err")"
    [ "$made_ro" = mount ] && umount "$ro" 2>/dev/null
else
    skip "read-only output folder" "running as root without permission to mount a read-only tmpfs"
fi

# ---- a umask that takes the owner's own permissions (0277, 0777, 0477): what cuvae writes could not be
# written again (a log appended to, a resumed run) or read back, and a folder it makes could not be
# entered (until 2026-12-07 a run failed on its first file and left its empty folder; into an existing
# folder it ended "done" with files it could not resume): train and plot refuse at once in one line
# naming the umask, nothing made. Root writes whatever the mode, so as root the runs are another
# user's (setpriv, uid 65534). (test_make_dirs checks the folder-level refusal beneath it.)
um=$(mktemp -d); chmod 1777 "$um"
as_user=()
[ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if [ "$(id -u)" -eq 0 ] && [ ${#as_user[@]} -eq 0 ]; then
    skip "a umask that takes the owner's permissions" "running as root without setpriv to run as another user"
elif ! "${as_user[@]}" sh -c 'test -r configs/examples_vae.json && test -r data/mnist/train-images-idx3-ubyte.gz &&
        test -x "$1" && test -w "$2" && test -x "$2"' sh "$CUVAE" "$um" 2>/dev/null; then
    skip "a umask that takes the owner's permissions" "uid 65534 cannot read this checkout, run $CUVAE or write in $um"
else
    (umask 0077; "${as_user[@]}" "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=1 \
        --out "$um/run0077") >/dev/null 2>"$tmp/umask.err"; rc=$?
    [ "$rc" -eq 0 ] && [ -s "$um/run0077/model.safetensors" ] && [ "$(stat -c %a "$um/run0077")" = 700 ] \
        && ok "umask 0077 (the owner's permissions kept): the run written, its folder 700" \
        || bad "umask 0077: exit $rc, $(tail -1 "$tmp/umask.err")"
    for mask in 0277 0777 0477; do
        (umask $mask; "${as_user[@]}" "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=1 \
            --out "$um/deep/run$mask") >/dev/null 2>"$tmp/umask.err"; rc=$?
        folders=$(printf '%04o' $((0755 & ~mask))); files=$(printf '%04o' $((0644 & ~mask)))
        [ "$rc" -eq 2 ] && [ ! -e "$um/deep" ] && [ "$(grep -c . "$tmp/umask.err")" -eq 1 ] \
            && grep -q "^cuvae: $um/deep/run$mask: the umask $mask takes the owner's own permissions from what cuvae writes there (folders $folders, files $files)" "$tmp/umask.err" \
            && ok "train under umask $mask: refused at once in one line naming it, exit 2, nothing made" \
            || bad "train under umask $mask: exit $rc, left: $(ls -A "$um" | tr '\n' ' '), $(tail -1 "$tmp/umask.err")"
    done
    if command -v gnuplot >/dev/null; then
        (umask 0277; "${as_user[@]}" "$CUVAE" plot "$um/run0077") >/dev/null 2>"$tmp/umask.err"; rc=$?
        [ "$rc" -eq 2 ] && [ ! -e "$um/run0077/figures" ] \
            && grep -q "^cuvae: $um/run0077: the umask 0277 takes the owner's own permissions" "$tmp/umask.err" \
            && ok "plot under umask 0277: refused in one line, no figures/ made" \
            || bad "plot under umask 0277: exit $rc, $(tail -1 "$tmp/umask.err")"
    else
        skip "plot under umask 0277" "gnuplot is not installed"
    fi
fi
rm -rf "$um"

# ---- a reader of the progress lines that goes away (`| head`): the run goes on and ends whole (until
# 2026-12-06 SIGPIPE killed it after its first line, leaving a folder of one config.json)
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/piped" 2>&1 | head -c1 >/dev/null
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && [ -s "$tmp/piped/model.safetensors" ] && [ -s "$tmp/piped/eval.json" ] \
    && ok "train 2>&1 | head -c1: the run ends whole (exit 0)" || bad "train into a closed pipe: exit $rc, $(ls "$tmp/piped" | tr '\n' ' ')"

# ---- eval -o into the eval.json of a run a train is writing: refused (an eval of an earlier epoch's
# model stayed beside the final model, both exiting 0); the run's files deleted while it trains
# (rm -rf DIR/*): exit 2 (it went on appending to a deleted log and said its outputs were there)
train --set train.epochs=2 --out "$tmp/evlock" 2>/dev/null
train --set train.epochs=400 --out "$tmp/evlock" --resume >/dev/null 2>&1 &   # (not waited for: killed below)
pid=$!
for i in $(seq 200); do [ "$(wc -l < "$tmp/evlock/log.jsonl")" -ge 3 ] && break; sleep 0.1; done
# (an epoch's save during eval's read is refused first, "replaced while this command read it": again)
for try in 1 2 3 4 5 6 7 8 9 10; do
    "$CUVAE" eval "$tmp/evlock/model.safetensors" -o "$tmp/evlock/eval.json" >/dev/null 2>"$tmp/evlock.err"; rc=$?
    grep -q "replaced while this command read it" "$tmp/evlock.err" || break
done
[ "$rc" -eq 2 ] && tail -1 "$tmp/evlock.err" | grep -q "^cuvae: eval: -o .*evlock/eval.json: a cuvae train is writing the run in .*evlock (the run's eval.json is its to write)" \
    && ok "eval -o into the eval.json of a run a train is writing: refused" \
    || bad "eval -o into a run a train is writing: exit $rc, $(tail -1 "$tmp/evlock.err")"
for i in $(seq 200); do [ "$(wc -l < "$tmp/evlock/log.jsonl")" -ge 5 ] && break; sleep 0.1; done
rm -rf "$tmp/evlock/"* 2>/dev/null
wait $pid; rc=$?
[ "$rc" -eq 2 ] && ok "the run's files deleted while it trains: exit 2" || bad "rm -rf DIR/* while training: exit $rc"

# ---- one system call failing at a chosen file (tests/fault_inject.c, LD_PRELOAD; built beside cuvae):
# the save points and the --overwrite commit take the error path of a failing disk for real
fault_inject="${FAULT_INJECT:-$(dirname "$CUVAE")/tests/fault_inject.so}"
with_fault() {   # with_fault SPEC command...: the command with CUVAE_FAULT=SPEC (see fault_inject.c)
    local spec="$1"; shift
    env CUVAE_FAULT="$spec" LD_PRELOAD="$fault_inject" \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$@"
}
if [ -f "$fault_inject" ] && with_fault "open:nothing" "$CUVAE" --version >/dev/null 2>&1; then
    # the commit marker cannot be written (a full disk at the end of the run): nothing moves, the earlier
    # run stays as it was, the new run stays staged, and --resume puts it in place (until 2026-12-06 the
    # line said the run was partly replaced)
    train --set train.epochs=2 --set train.seed=7 --out "$tmp/fi_ref" 2>/dev/null
    for case in marker first_move; do
        d="$tmp/fi_$case"; cp -r "$tmp/ref" "$d"; snapshot "$d"
        spec="open:fi_marker/.new-run/COMMIT"; [ $case = first_move ] && spec="rename:fi_first_move/config.json"
        expect_fail "--overwrite whose commit fails before anything moves ($case): the earlier run as it was, the new one staged" 2 \
            "\(--overwrite: the earlier run in .*fi_$case is as it was; this run is kept in .*fi_$case/.new-run: once that is mended, train --resume with the same config puts it in place\)$" -- \
            with_fault "$spec" "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --set train.seed=7 \
            --out "$d" --overwrite
        was=0   # the earlier run's files as they were, none added beside them (the staged run aside)
        (cd "$d" && sha256sum --quiet -c "$tmp/snapshot.sum" >/dev/null 2>&1) || was=1
        [ "$(find "$d" -path "$d/.new-run" -prune -o -type f -print | wc -l)" -eq "$(wc -l < "$tmp/snapshot.sum")" ] || was=1
        [ -e "$d/.new-run/COMMIT" ] && was=1
        "$CUVAE" eval "$d/model.safetensors" >/dev/null 2>&1 || was=1   # (no marker: the earlier run is readable)
        train --set train.epochs=2 --set train.seed=7 --out "$d" --resume >/dev/null 2>"$d.err"
        [ $was -eq 0 ] && cmp -s "$d/model.safetensors" "$tmp/fi_ref/model.safetensors" && [ ! -e "$d/.new-run" ] \
            && ok "... and --resume then replaces it, bit-identical to an uninterrupted run" \
            || bad "commit failing before a move ($case): earlier run changed, marker left, or --resume: $(tail -1 "$d.err")"
    done
    # a commit that fails after its first move (a rename of a later file): the line says the run is
    # partly replaced and that the next train finishes it; the next train does (the new run's files
    # only, bit-identical to the uninterrupted one, no .new-run)
    for f in model.safetensors log.jsonl; do
        d="$tmp/fi_late_${f%%.*}"; cp -r "$tmp/ref" "$d"
        expect_fail "--overwrite whose commit fails at $f, after a move: 'partly replaced', what to do" 2 \
            "fi_late_${f%%.*}/.new-run/$f: cannot move it to .*fi_late_${f%%.*}/$f \(--overwrite\): No space left on device \(the run in .*fi_late_${f%%.*} is partly replaced: once that is mended, the next train into it finishes the replacement\)$" -- \
            with_fault "rename:fi_late_${f%%.*}/$f" "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 \
            --set train.seed=7 --out "$d" --overwrite
        train --set train.epochs=2 --set train.seed=7 --out "$d" >/dev/null 2>"$d.err"
        grep -q "^cuvae: finishing the replacement of the run in .*fi_late_${f%%.*} by the --overwrite run staged in .*/.new-run" "$d.err" \
            && cmp -s "$d/model.safetensors" "$tmp/fi_ref/model.safetensors" && [ "$(wc -l < "$d/log.jsonl")" -eq 2 ] \
            && [ ! -e "$d/.new-run" ] && [ ! -e "$d/eval.json" ] \
            && ok "... and the next train finishes the replacement: the new run's files only (its 2 log lines), its model bit-identical" \
            || bad "finishing a partly replaced run ($f): $(grep -v '^epoch' "$d.err" | head -2)"
    done
    # the log's fsync fails in epoch 2 (an I/O error): the line says what the folder holds, and --resume
    # continues it to the model an uninterrupted run trains
    expect_fail "log.jsonl's fsync failing in epoch 2: exit 2, what the folder holds and how to continue" 2 \
        "log.jsonl: cannot write: fsync: Input/output error \(.*fi_log keeps the run's last saved state: once that is mended, train --resume with the same config continues from there\)$" -- \
        with_fault "fsync:fi_log/log.jsonl:2:5" "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=4 --out "$tmp/fi_log"
    train --set train.epochs=4 --out "$tmp/fi_log" --resume >/dev/null 2>"$tmp/fi_log.err" \
        && cmp -s "$tmp/fi_log/model.safetensors" "$tmp/ref/model.safetensors" \
        && ok "... and --resume ends on the uninterrupted run's model, bit-identical" \
        || bad "--resume after the log's fsync failed: $(tail -1 "$tmp/fi_log.err")"
else
    skip "system calls failing at a chosen file" "$fault_inject is not built or cannot be preloaded (make builds it)"
fi

# ---- a full disk under cuvae plot: gnuplot's truncated output must not replace a good figure
small_fs="$tmp/smallfs"; mkdir -p "$small_fs"
if ! command -v gnuplot >/dev/null; then
    skip "plot on a full disk" "gnuplot is not installed"
elif [ "$(id -u)" -ne 0 ]; then
    skip "plot on a full disk" "needs root to mount a 16 MB tmpfs (running as uid $(id -u))"
elif ! mount -t tmpfs -o size=16m tmpfs "$small_fs" 2>/dev/null; then
    skip "plot on a full disk" "root, but the mount of a 16 MB tmpfs was refused (no CAP_SYS_ADMIN here)"
else
    cp -r "$tmp/ref" "$small_fs/run"
    "$CUVAE" plot "$small_fs/run" --tsne-points 100 2>/dev/null
    before=$(md5sum < "$small_fs/run/figures/samples.png")
    free_kb=$(df -k --output=avail "$small_fs" | tail -1)
    head -c $(( (free_kb - 40) * 1024 )) /dev/zero > "$small_fs/filler" 2>/dev/null
    "$CUVAE" plot "$small_fs/run" --tsne-points 100 >/dev/null 2>"$tmp/plotfull.err"; rc=$?
    # (gnuplot exits 0 when its write fails: the reason is found from the file system, said since 2026-12-06)
    if [ "$rc" -eq 2 ] && tail -1 "$tmp/plotfull.err" | grep -qE "(incomplete|write failed|wrote no image).*No space left on device" &&
       [ "$(md5sum < "$small_fs/run/figures/samples.png")" = "$before" ]; then
        ok "plot on a full disk: exit 2, the reason named (No space left on device), the previous figures kept whole"
    else
        bad "plot on a full disk: exit $rc, $(tail -1 "$tmp/plotfull.err")"
    fi
    umount "$small_fs"
fi

# ---- damaged data files (a copy of MNIST with one file damaged)
mkdir -p "$tmp/data"
cp data/mnist/*.gz "$tmp/data/"
f="$tmp/data/t10k-labels-idx1-ubyte.gz"
size=$(stat -c %s "$f")
cp "$f" "$tmp/labels.gz"
head -c $((size - 4)) "$tmp/labels.gz" > "$f"
expect_error "gzip trailer cut: exit 2, names the file and offset" 2 "t10k-labels-idx1-ubyte.gz: gzip stream truncated at byte $((size - 4))" -- \
    "$CUVAE" train configs/examples_vae.json --set data.dir="$tmp/data" --set device=cpu --out "$tmp/d1"
{ cat "$tmp/labels.gz"; printf 'junk'; } > "$f"
expect_error "bytes after the gzip stream: exit 2" 2 "t10k-labels-idx1-ubyte.gz: trailing data at byte $size" -- \
    "$CUVAE" train configs/examples_vae.json --set data.dir="$tmp/data" --set device=cpu --out "$tmp/d1"
# one flipped byte in the middle of the deflate data (it inflates on past the header's size):
# reported as the damaged stream it is, not as trailing data
cp "$tmp/labels.gz" "$f"
/usr/bin/python3 - "$tmp/data/t10k-images-idx3-ubyte.gz" <<'PY'
import sys
path = sys.argv[1]
data = bytearray(open(path, 'rb').read())
data[len(data) // 2] ^= 0xFF
open(path, 'wb').write(data)
PY
expect_error "a flipped byte inside a gzip stream: a corrupt stream, at its compressed byte" 2 "t10k-images-idx3-ubyte.gz: corrupt gzip stream at byte [0-9]+ of the compressed file" -- \
    "$CUVAE" train configs/examples_vae.json --set data.dir="$tmp/data" --set device=cpu --out "$tmp/d1"
[ ! -e "$tmp/d1" ] && ok "a run refused for bad data creates no folder" || bad "a refused run created $tmp/d1"

# ---- damaged checkpoints and resume files
ck="$tmp/ck"; cp -r "$tmp/ref" "$ck"
python3 - "$ck/model.safetensors" "$ck/flipped.safetensors" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read()); data[-5] ^= 0x40
open(sys.argv[2], "wb").write(data)
PY
expect_error "eval: a flipped bit in a checkpoint" 2 "flipped.safetensors: checksum mismatch" -- "$CUVAE" eval "$ck/flipped.safetensors"
expect_error "sample: a flipped bit in a checkpoint" 2 "flipped.safetensors: checksum mismatch" -- \
    "$CUVAE" sample "$ck/flipped.safetensors" -o "$tmp/s.png"
head -c 3000 "$ck/model.safetensors" > "$ck/truncated.safetensors"
expect_error "eval: a truncated checkpoint" 2 \
    "truncated.safetensors: (tensor '[^']+': data_offsets \[[0-9]+, [0-9]+\] out of range \(data size [0-9]+ bytes\)|header length [0-9]+ exceeds the file size \(3000 bytes\))$" -- "$CUVAE" eval "$ck/truncated.safetensors"
cp "$ck/resume.safetensors" "$tmp/resume.orig"
python3 - "$ck/resume.safetensors" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read()); data[-9] ^= 0x01
open(sys.argv[1], "wb").write(data)
PY
expect_fail "--resume: a flipped bit in resume.safetensors" 2 "resume.safetensors: checksum mismatch" -- \
    train --set train.epochs=5 --out "$ck" --resume
# NaN weights and inf metadata, written with a valid checksum (a run that diverged, an edited file)
python3 - "$ck/model.safetensors" "$ck/nan.safetensors" "$tmp/resume.orig" "$ck/resume.safetensors" <<'PY'
import json, struct, sys, zlib
def load(path):
    raw = open(path, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), bytearray(raw[8 + n:])
def save(path, header, data):
    meta = header["__metadata__"]
    crc = zlib.crc32(bytes(data))
    for key, value in meta.items():   # the metadata in file order, the crc itself left out
        if key != "crc32": crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
    meta["crc32"] = "%08x" % (crc & 0xffffffff)
    text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
h, d = load(sys.argv[1]); begin = h["decoder.0.weight"]["data_offsets"][0]
d[begin + 12:begin + 16] = struct.pack("<f", float("nan")); save(sys.argv[2], h, d)
h, d = load(sys.argv[3]); h["__metadata__"]["lr"] = "inf"; save(sys.argv[4], h, d)
PY
expect_error "eval: NaN weights named by tensor and element" 2 "nan.safetensors: tensor decoder.0.weight: element 3 is NaN" -- \
    "$CUVAE" eval "$ck/nan.safetensors"
# a stored config naming a base (an edited checkpoint, re-signed): refused by name, no other file
# read to build the model (the base exists and would read)
cp "$ck/config.json" "$tmp/stored_base.json"
python3 - "$ck/model.safetensors" "$ck/based.safetensors" "$tmp/stored_base.json" <<'PY'
import json, struct, sys, zlib
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); data = raw[8 + n:]
meta = header["__metadata__"]; config = json.loads(meta["config"])
config["base"] = sys.argv[3]; meta["config"] = json.dumps(config)
crc = zlib.crc32(data)
for key, value in meta.items():
    if key != "crc32": crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
meta["crc32"] = "%08x" % (crc & 0xffffffff)
text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + data)
PY
expect_error "eval: a checkpoint whose stored config names a base: refused, naming the checkpoint" 2 \
    "based.safetensors \(__metadata__.config\): base: a stored config is complete and names no base config" -- \
    "$CUVAE" eval "$ck/based.safetensors"
# a run that diverges while its loss stays finite (a batch norm's running variance or Adam's
# second moments overflow, as the VQ-VAE at lr 1e6 does here): refused at the checkpoint, exit 2,
# not a run that "succeeds" with files eval, sample and --resume then refuse. (On another CPU
# the loss itself may be the first to overflow, or its reconstruction term pass 10 times a coin
# flip's first: any of the divergence messages is right.)
"$CUVAE" train configs/lectures/vq_vae_k256.json --set device=cpu --set data.train_limit=500 --set data.test_limit=100 \
    --set train.epochs=1 --set train.lr=1e6 --set train.epoch_images=false --out "$tmp/finite_div" >/dev/null 2>"$tmp/finite_div.err"; rc=$?
if [ "$rc" -eq 2 ] && [ ! -e "$tmp/finite_div/model.safetensors" ] && [ ! -e "$tmp/finite_div/resume.safetensors" ] \
   && [ ! -e "$tmp/finite_div/eval.json" ] && [ ! -s "$tmp/finite_div/log.jsonl" ] \
   && tail -1 "$tmp/finite_div.err" | grep -qE "training diverged in epoch 1: (tensor .*|Adam's [mv], element [0-9]+) is (infinite|NaN) though the loss is finite|training diverged at epoch 1|epoch 1: training diverged: the test reconstruction term is .* more than 10 times what predicting 1/2"; then
    ok "a run whose state overflows with a finite loss: exit 2 saying it diverged; no log line, checkpoint nor eval.json for that epoch"
else
    bad "finite-loss divergence: exit $rc, $(tail -1 "$tmp/finite_div.err"), files: $(ls "$tmp/finite_div" 2>/dev/null | tr '\n' ' ')"
fi
# finite weights whose outputs overflow (a diverged run): the codes are inf, the loss not finite
# (and the same for the decoder's first layer: finite codes, pixels that overflow)
# (and the last one's: +-inf, which a sigmoid would turn into plain 0 and 1 pixels)
for tensor in mu.weight decoder.0.weight decoder.1.weight; do
python3 - "$ck/model.safetensors" "$ck/huge_$tensor.safetensors" "$tensor" <<'PY'
import json, struct, sys, zlib
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
begin, end = header[sys.argv[3]]["data_offsets"]
data[begin:end] = struct.pack("<f", 3e38) * ((end - begin) // 4)
meta = header["__metadata__"]; crc = zlib.crc32(bytes(data))
for key, value in meta.items():
    if key != "crc32": crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
meta["crc32"] = "%08x" % (crc & 0xffffffff)
text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
PY
done
mv "$ck/huge_mu.weight.safetensors" "$ck/huge.safetensors"
expect_error "eval: finite weights whose outputs overflow: refused, not a report of nulls" 2 \
    "eval: .*/huge.safetensors: the test loss is not finite \((nan|inf|-nan)\): the model has diverged" -- \
    "$CUVAE" eval "$ck/huge.safetensors"
expect_error "eval --z mean of the same: refused" 2 "eval: .*/huge.safetensors: the test loss is not finite" -- \
    "$CUVAE" eval "$ck/huge.safetensors" --z mean
if command -v gnuplot >/dev/null 2>&1; then
    mkdir -p "$tmp/hugerun"; cp "$ck/config.json" "$ck/log.jsonl" "$tmp/hugerun/"; cp "$ck/huge.safetensors" "$tmp/hugerun/model.safetensors"
    expect_error "plot of a model whose codes overflow: refused before any figure, naming the checkpoint" 2 \
        "plot: .*/hugerun/model.safetensors: the encoder gives test image 0 a code that is not finite \(z1 = inf\)" -- \
        "$CUVAE" plot "$tmp/hugerun"
    [ -z "$(ls "$tmp/hugerun/figures" 2>/dev/null)" ] && ok "... and drew nothing" || bad "figures drawn for an overflowing model"
    # a run folder's config.json is cuvae's complete config: one naming a base is refused, not followed
    mkdir -p "$tmp/basedrun"; cp "$ck/model.safetensors" "$ck/log.jsonl" "$tmp/basedrun/"
    python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c["base"] = sys.argv[1]; json.dump(c, open(sys.argv[2], "w"))' \
        "$ck/config.json" "$tmp/basedrun/config.json"
    expect_error "plot: a run's config.json naming a base: refused, naming it" 2 \
        "basedrun/config.json: base: a stored config is complete and names no base config" -- "$CUVAE" plot "$tmp/basedrun"
    for tensor in decoder.0.weight decoder.1.weight; do
        cp "$ck/huge_$tensor.safetensors" "$tmp/hugerun/model.safetensors"
        expect_error "plot of a model whose decoder overflows on finite codes ($tensor): refused before any figure" 2 \
            "plot: .*/hugerun/model.safetensors: the decoder gives the first test images' codes outputs that are not finite" -- \
            "$CUVAE" plot "$tmp/hugerun"
        [ -z "$(ls "$tmp/hugerun/figures" 2>/dev/null)" ] && ok "... and drew nothing" || bad "figures drawn for an overflowing decoder"
    done
else
    skip "plot of an overflowing model" "gnuplot not installed"
fi
for tensor in decoder.0.weight decoder.1.weight; do   # (NaN outputs, and +-inf ones)
    expect_error "sample of a model whose decoder overflows ($tensor): refused, not drawn" 2 \
        "sample: .*/huge_$tensor.safetensors: the decoder's output for sample [0-9]+ is not finite \((nan|-nan|inf|-inf)\): the model has diverged" -- \
        "$CUVAE" sample "$ck/huge_$tensor.safetensors" -n 4 -o "$tmp/huge_samples.png"
    [ ! -e "$tmp/huge_samples.png" ] && ok "... and wrote no PNG" || bad "sample wrote a PNG of an overflowing decoder"
done
expect_fail "--resume: inf in the resume metadata" 2 "resume.safetensors: __metadata__.lr: not a finite number" -- \
    train --set train.epochs=5 --out "$ck" --resume
python3 - "$tmp/resume.orig" "$ck/resume.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); header["__metadata__"]["eps_offset"] = "0"   # the old checksum kept
text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
expect_fail "--resume: edited resume metadata (the checksum covers it)" 2 "resume.safetensors: checksum mismatch" -- \
    train --set train.epochs=5 --out "$ck" --resume
cmp -s "$ck/model.safetensors" "$tmp/ref/model.safetensors" && ok "refused resumes left the run's checkpoint untouched" \
    || bad "a refused resume changed model.safetensors"

# ---- inputs that are not regular files never hang; sizes that do not fit fail before the folder
mkfifo "$tmp/in.fifo"
expect_fail "eval of a FIFO: refused at once" 2 "in.fifo: not a regular file" -- timeout 10 "$CUVAE" eval "$tmp/in.fifo"
expect_fail "train with a FIFO as its config: refused at once" 2 "in.fifo: not a regular file" -- timeout 10 "$CUVAE" train "$tmp/in.fifo"
expect_fail "bench with a FIFO as its config: refused at once" 2 "in.fifo: not a regular file" -- timeout 10 "$CUVAE" bench "$tmp/in.fifo"
printf '{"base": "%s"}' "$tmp/in.fifo" > "$tmp/fifo_base.json"
expect_fail "a config whose base is a FIFO: refused at once" 2 "in.fifo: not a regular file" -- timeout 10 "$CUVAE" train "$tmp/fifo_base.json"
expect_fail "report with a FIFO as its index: refused at once" 2 "in.fifo: not a regular file" -- timeout 10 "$CUVAE" report "$tmp/in.fifo" "$tmp/fifo_page"
mkdir -p "$tmp/fifodata"; cp data/mnist/*.gz "$tmp/fifodata/"; rm "$tmp/fifodata/t10k-labels-idx1-ubyte.gz"
mkfifo "$tmp/fifodata/t10k-labels-idx1-ubyte.gz"
expect_fail "a data file that is a FIFO: refused at once" 2 "t10k-labels-idx1-ubyte.gz: not a regular file" -- \
    timeout 10 "$CUVAE" train configs/examples_vae.json --set data.dir="$tmp/fifodata" --set device=cpu --out "$tmp/fifo_run"
if [ -n "${CUVAE_SANITIZED:-}" ]; then
    skip "an evaluation model too big for memory" "ASan reserves more virtual memory than the ulimit -v this test sets"
else
    # (K = 50,000 over the 200 test images: the bound needs its whole 4,194,304-row batch, 13 GB)
    cp -r "$tmp/ref" "$tmp/bigeval"
    (ulimit -v 4000000; exec "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=1 --overwrite \
        --set eval.iw_samples=50000 --set eval.iw_batch=4194304 --out "$tmp/bigeval") >/dev/null 2>"$tmp/bigeval.err"; rc=$?
    [ "$rc" -eq 2 ] && tail -1 "$tmp/bigeval.err" | grep -q "out of host memory" && cmp -s "$tmp/bigeval/model.safetensors" "$tmp/ref/model.safetensors" \
        && [ -s "$tmp/bigeval/eval.json" ] && ok "an evaluation model too big for memory fails before --overwrite touches the run" \
        || bad "big eval model: exit $rc, $(tail -1 "$tmp/bigeval.err")"
fi
# A memory cgroup's limit (a container's, a batch job's), which /proc/meminfo does not show: a model
# larger than it is refused in one line before the folder is made, where the kernel used to kill the
# process (exit 137, no message) at its first touch of the memory; a small run within it trains.
# make_memory_cgroup BYTES: a new cgroup limited to BYTES in $cg_dir, else its reason in $cg_why
make_memory_cgroup() {
    cg_dir="" cg_why=""
    if [ "$(id -u)" != 0 ]; then cg_why="making a cgroup needs root"; return 1; fi
    local dir
    if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then   # v1's memory controller
        dir=/sys/fs/cgroup/memory/cuvae_test_$$
        mkdir "$dir" 2>/dev/null && echo "$1" > "$dir/memory.limit_in_bytes" 2>/dev/null && { cg_dir=$dir; return 0; }
    elif grep -qw memory /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null; then   # v2 with the memory controller
        dir=/sys/fs/cgroup/cuvae_test_$$
        mkdir "$dir" 2>/dev/null && echo "$1" > "$dir/memory.max" 2>/dev/null && { cg_dir=$dir; return 0; }
    fi
    [ -n "${dir:-}" ] && rmdir "$dir" 2>/dev/null
    cg_why="no cgroup memory controller this process may make a cgroup in (v1 /sys/fs/cgroup/memory, or v2 with memory in cgroup.subtree_control)"
    return 1
}
# in_cgroup COMMAND...: COMMAND run inside $cg_dir (exit 125: the process could not be moved there)
in_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs" 2>/dev/null || exit 125; exec "$@"' "$cg_dir" "$@"; }
if make_memory_cgroup 1000000000; then
    # 784-20000-20000-8: 6.7 GB of parameters, gradients and Adam's moments
    in_cgroup "$CUVAE" train configs/examples_vae.json "${small[@]}" --set 'model.encoder=[20000,20000]' \
        --set train.epochs=1 --out "$tmp/cgroup_big" >/dev/null 2>"$tmp/cgroup_big.err"; rc=$?
    if [ "$rc" -eq 125 ]; then
        skip "a model larger than its cgroup's memory limit" "cannot move a process into $cg_dir"
    else
        [ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/cgroup_big.err")" -eq 1 ] &&
            grep -q "^cuvae: out of host memory: .* exceed the [0-9]* bytes its cgroup's memory limit leaves" "$tmp/cgroup_big.err" &&
            grep -qF "$cg_dir/memory." "$tmp/cgroup_big.err" &&
            [ ! -e "$tmp/cgroup_big" ] \
            && ok "a model larger than its cgroup's memory limit (1 GB): one line naming the cgroup's limit file, exit 2, no folder" \
            || bad "a model larger than its cgroup's memory limit: exit $rc (137: killed), $(tail -1 "$tmp/cgroup_big.err")"
        in_cgroup "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=1 --out "$tmp/cgroup_small" \
            >/dev/null 2>"$tmp/cgroup_small.err" && [ -s "$tmp/cgroup_small/model.safetensors" ] \
            && ok "a small run within the same cgroup's limit trains" \
            || bad "a small run in a 1 GB cgroup: $(tail -1 "$tmp/cgroup_small.err")"
        # the cgroup file system found where /proc/self/mountinfo says it is mounted, not at /sys/fs/cgroup
        # alone: in a mount namespace of its own (unshare -m), the hierarchy bound at a folder of ours and
        # unmounted from its usual place; the refusal names the limit file under the new place
        hierarchy=$(dirname "$cg_dir")   # (v1: /sys/fs/cgroup/memory; v2: /sys/fs/cgroup)
        mkdir -p "$tmp/cgmount"
        # (exit 125: no mount namespace here, or no bind mount in it -- root without CAP_SYS_ADMIN, seccomp)
        in_cgroup sh -c 'unshare -m true 2>/dev/null || exit 125; exec "$@"' sh \
            unshare -m sh -c 'mount --bind "$0" "$1" && umount -l "$0" || exit 125; shift; exec "$@"' \
            "$hierarchy" "$tmp/cgmount" "$CUVAE" train configs/examples_vae.json "${small[@]}" \
            --set 'model.encoder=[20000,20000]' --set train.epochs=1 --out "$tmp/cgroup_moved" >/dev/null 2>"$tmp/cgroup_moved.err"; rc=$?
        if [ "$rc" -eq 125 ]; then
            skip "a cgroup hierarchy mounted elsewhere" "unshare -m / mount --bind not permitted here: $(tail -1 "$tmp/cgroup_moved.err")"
        else
            [ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/cgroup_moved.err")" -eq 1 ] &&
                grep -q "^cuvae: out of host memory: .* exceed the [0-9]* bytes its cgroup's memory limit leaves" "$tmp/cgroup_moved.err" &&
                grep -qF "$tmp/cgmount/$(basename "$cg_dir")/memory." "$tmp/cgroup_moved.err" && [ ! -e "$tmp/cgroup_moved" ] \
                && ok "the cgroup hierarchy mounted elsewhere (a mount namespace): found from mountinfo, its limit file named there" \
                || bad "a cgroup hierarchy mounted elsewhere: exit $rc (137: killed), $(tail -1 "$tmp/cgroup_moved.err")"
        fi
        if [ -n "${CUVAE_SANITIZED:-}" ]; then
            skip "a model whose first save does not fit its cgroup" "ASan's shadow memory and redzones move the sizes"
        else
            # 784-20000-8-20000-784: 31.9 M parameters, 0.85 GB with Adam, the evaluation model and the
            # process; each epoch's files copy 3 x 31.9 M floats (0.38 GB) more, which the build before
            # this check only found at its first save, killed after a whole epoch (exit 137)
            in_cgroup "$CUVAE" train configs/examples_vae.json "${small[@]}" --set 'model.encoder=[20000]' \
                --set 'model.decoder=[20000]' --set train.epochs=1 --out "$tmp/cgroup_copy" >/dev/null 2>"$tmp/cgroup_copy.err"; rc=$?
            [ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/cgroup_copy.err")" -eq 1 ] &&
                grep -q "^cuvae: out of host memory: saving the run's state copies its parameters and Adam's two moments to the host (382569600 bytes: 3 x 31880800 floats), more than the [0-9]* bytes its cgroup's memory limit leaves" "$tmp/cgroup_copy.err" &&
                [ ! -e "$tmp/cgroup_copy" ] \
                && ok "a model whose first save would not fit its cgroup: refused before training, one line, exit 2, no folder" \
                || bad "a model whose first save does not fit its cgroup: exit $rc, $(tail -1 "$tmp/cgroup_copy.err")"
        fi
    fi
    rmdir "$cg_dir" 2>/dev/null
else
    skip "a model larger than its cgroup's memory limit" "$cg_why"
fi
# Memory another process of the same cgroup takes once training has started (the checks before the
# run passed): the save copy is checked again at each epoch's end, so the run ends in one line, exit 2,
# the last finished epoch's files kept, where the kernel would kill it (exit 137) at the copy.
if [ -n "${CUVAE_SANITIZED:-}" ]; then
    skip "memory taken by another process mid-run" "ASan's shadow memory and redzones move the sizes"
elif make_memory_cgroup 1300000000; then
    # the 784-20000-8-20000-784 model above: about 0.88 GB of the 1.3 GB in use while it trains,
    # 0.38 GB more for each save's copy; a 200 MB process started once epoch 1's files are written
    # (not before: beside epoch 1's copy the cgroup would be over its limit, and the kernel kills)
    in_cgroup "$CUVAE" train configs/examples_vae.json "${small[@]}" --set 'model.encoder=[20000]' \
        --set 'model.decoder=[20000]' --set train.epochs=3 --out "$tmp/cgroup_late" >/dev/null 2>"$tmp/cgroup_late.err" &
    pid=$!
    for _ in $(seq 3000); do
        [ -e "$tmp/cgroup_late/resume.safetensors" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    sleep 0.5   # (the copy is freed right after the file's rename)
    in_cgroup /usr/bin/env python3 -c 'import time; taken = bytearray(b"\x01") * (200 << 20); time.sleep(60)' &
    hog=$!
    wait "$pid"; rc=$?
    kill "$hog" 2>/dev/null; wait "$hog" 2>/dev/null
    if [ "$rc" -eq 125 ]; then
        skip "memory taken by another process mid-run" "cannot move a process into $cg_dir"
    else
        [ "$rc" -eq 2 ] && tail -1 "$tmp/cgroup_late.err" | grep -q "^cuvae: out of host memory: saving the run's state copies its parameters and Adam's two moments to the host (382569600 bytes: 3 x 31880800 floats), more than the [0-9]* bytes its cgroup's memory limit leaves .* (at the end of epoch 2; " &&
            [ "$(wc -l < "$tmp/cgroup_late/log.jsonl")" -eq 1 ] && [ -s "$tmp/cgroup_late/model.safetensors" ] &&
            [ -s "$tmp/cgroup_late/resume.safetensors" ] \
            && ok "memory taken by another process during epoch 2: refused at its end in one line, exit 2, epoch 1's files kept" \
            || bad "memory taken mid-run: exit $rc (137: killed), $(tail -1 "$tmp/cgroup_late.err")"
    fi
    rmdir "$cg_dir" 2>/dev/null
else
    skip "memory taken by another process mid-run" "$cg_why"
fi
# OpenBLAS's work buffers (128 MiB of address space for each thread, and one for its own) that
# an address-space limit leaves no room for: one line at the start, exit 2, no folder. OpenBLAS
# retries a buffer it cannot map forever: before, such a run spun at 100 % of every core (at
# ulimit -v 1200000 with 2 threads), or trained, by luck, when few GEMM slices ran at once.
if [ -n "${CUVAE_SANITIZED:-}" ]; then
    skip "OpenBLAS's buffers over the address-space limit" "ASan reserves more virtual memory than the ulimit -v this test sets"
else
    (ulimit -v 3000000; OMP_NUM_THREADS=64 exec timeout -s KILL 120 "$CUVAE" train configs/examples_vae.json "${small[@]}" \
        --set train.epochs=1 --out "$tmp/blasroom") >/dev/null 2>"$tmp/blasroom.err"; rc=$?
    [ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/blasroom.err")" -eq 1 ] && [ ! -e "$tmp/blasroom" ] \
        && grep -q "^cuvae: backend cpu: OpenBLAS needs a 128 MiB work buffer for each of the 64 threads and one for its own (8320 MiB of address space), and the process's address-space limit (ulimit -v 3000000) leaves no room" "$tmp/blasroom.err" \
        && ok "OpenBLAS's buffers over the address-space limit: one line at the start, exit 2" \
        || bad "OpenBLAS's buffers over the address-space limit: exit $rc, $(head -c 600 "$tmp/blasroom.err")"
fi
# The conv VAE (oneDNN's convolutions) under address-space limits in 4 MB steps across the
# band where its run stops fitting (found first: the smallest limit, in 4 MB steps, at which
# it trains, by bisection; the band is the 240 MB below it and the 40 MB above): every run
# trains (exit 0) or stops with a cuvae error line (exit 2), never a crash or a hang. Before, some
# limits of this band aborted inside oneDNN (a C++ exception in one of its OpenMP threads, when
# that thread's first malloc could not map its arena) or segfaulted in oneDNN creating a
# primitive, and lower ones spun in OpenBLAS.
if [ -n "${CUVAE_SANITIZED:-}" ]; then
    skip "the conv VAE under address-space limits" "ASan reserves more virtual memory than the ulimit -v this test sets"
else
    conv_run_under() {   # conv_run_under KIB: the run's exit status under ulimit -v KIB
        (ulimit -v "$1"; exec timeout -s KILL 30 "$CUVAE" train configs/lectures/conv_vae_dim16.json --set device=cpu \
            --set train.epochs=1 --set data.train_limit=512 --set data.test_limit=128 --out "$tmp/ulimit_run" --overwrite) \
            >/dev/null 2>"$tmp/ulimit.err"
    }
    low=250; high=2000   # in 4 MB steps: 1 GB refused (no room for the libraries), 8 GB trains
    if conv_run_under $((low * 4000)) || ! conv_run_under $((high * 4000)); then
        bad "the conv VAE under address-space limits: 1 GB did not fail or 8 GB did not train"
    else
        while [ $((high - low)) -gt 1 ]; do
            mid=$(((low + high) / 2))
            if conv_run_under $((mid * 4000)); then high=$mid; else low=$mid; fi
        done
        ulimit_bad=""; ulimit_trained=0; ulimit_refused=0
        for step in $(seq $((high - 60)) $((high + 10))); do
            conv_run_under $((step * 4000)); rc=$?
            if [ "$rc" -eq 0 ]; then
                ulimit_trained=$((ulimit_trained + 1))
            elif [ "$rc" -eq 2 ] && tail -1 "$tmp/ulimit.err" | grep -q "^cuvae: "; then   # (which step ran out: any)
                ulimit_refused=$((ulimit_refused + 1))
            else
                ulimit_bad="$ulimit_bad $((step * 4000)): exit $rc ($(tail -1 "$tmp/ulimit.err" | head -c 120));"
            fi
        done
        [ -z "$ulimit_bad" ] && [ "$ulimit_trained" -gt 0 ] && [ "$ulimit_refused" -gt 0 ] \
            && ok "the conv VAE under 71 address-space limits around $((high * 4000)) KiB: $ulimit_trained trained, $ulimit_refused refused in one line, no crash" \
            || bad "the conv VAE under address-space limits around $((high * 4000)) KiB ($ulimit_trained trained, $ulimit_refused refused):$ulimit_bad"
    fi
fi
cp -r "$tmp/stale" "$tmp/evaldir"; rm "$tmp/evaldir/eval.json"; mkdir "$tmp/evaldir/eval.json"
expect_error "--resume into a folder whose eval.json is a folder: one line (the run's notes are not said)" 2 \
    "evaldir/eval.json: not a regular file \(outputs are regular files" -- \
    train --set train.epochs=6 --out "$tmp/evaldir" --resume
# --resume refused before it touches the folder: a run file's place that holds no regular file,
# a log that does not hold the finished epochs' lines (kept, then appended to, it would give a
# log plot refuses); the folder is left as it was, byte for byte
folder_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 md5sum | md5sum); }
for case in model_folder garbage_log no_log short_log one_line_short log_without_newline edited_log; do
    rm -rf "$tmp/rl"; cp -r "$tmp/stale" "$tmp/rl"
    case $case in
        model_folder) rm "$tmp/rl/model.safetensors"; mkdir "$tmp/rl/model.safetensors"
                      want="rl/model.safetensors: not a regular file" ;;
        garbage_log) echo garbage > "$tmp/rl/log.jsonl"; want="rl/log.jsonl: line 1: not a JSON object" ;;
        no_log) rm "$tmp/rl/log.jsonl"; want="rl/log.jsonl: missing, but the run has finished 5 epochs .*--overwrite" ;;
        short_log) head -3 "$tmp/stale/log.jsonl" > "$tmp/rl/log.jsonl"
                   want="rl/log.jsonl: 3 lines, but the run has finished 5 epochs" ;;
        one_line_short) head -4 "$tmp/stale/log.jsonl" > "$tmp/rl/log.jsonl"
                        want="rl/log.jsonl: 4 lines, but the run has finished 5 epochs" ;;
        log_without_newline) head -5 "$tmp/stale/log.jsonl" | head -c -1 > "$tmp/rl/log.jsonl"
                             want="rl/log.jsonl: line 5: no newline at its end" ;;
        # the right count of lines, in order, but not this run's (the resume file keeps their CRC-32)
        edited_log) sed -i -E '3s/"train_loss": [0-9.]+/"train_loss": 99.000000/' "$tmp/rl/log.jsonl"
                    want="rl/log.jsonl: its 5 lines \(CRC-32 [0-9a-f]{8}\) are not the ones this run wrote \(.*resume.safetensors holds [0-9a-f]{8}\): lines of another run, or edited" ;;
    esac
    before=$(folder_sum "$tmp/rl")
    expect_error "--resume with $case: one line before the run is touched" 2 "$want" -- \
        train --set train.epochs=6 --out "$tmp/rl" --resume
    [ "$(folder_sum "$tmp/rl")" = "$before" ] && ok "--resume with $case: the folder is as it was" \
        || bad "--resume with $case changed the folder"
done
# ... the log of a run of one epoch too (its one line is as much the run's as five)
train --set train.epochs=1 --set data.train_limit=200 --out "$tmp/rl1" 2>/dev/null && rm "$tmp/rl1/log.jsonl"
expect_error "--resume of a one-epoch run whose log is gone: refused" 2 \
    "rl1/log.jsonl: missing, but the run has finished 1 epoch \(its resume state\).*--overwrite" -- \
    train --set train.epochs=2 --set data.train_limit=200 --out "$tmp/rl1" --resume
# a folder holding a finished run's files but model.safetensors a folder (or a link to nothing), and
# no resume file: a plain train and --resume both name what is in the way (they said "continue it
# with --resume" and "nothing to resume", each sending the user to the other; with the link,
# --resume trained an epoch before it failed)
rm -rf "$tmp/rl"; mkdir -p "$tmp/rl"; cp "$tmp/ref/config.json" "$tmp/ref/log.jsonl" "$tmp/rl/"
for setup in "a folder:not a regular file \(outputs are regular files" "a link to nothing:a link to a file that does not exist"; do
    rm -rf "$tmp/rl/model.safetensors"
    case $setup in "a folder"*) mkdir "$tmp/rl/model.safetensors" ;; *) ln -s "$tmp/nowhere/x" "$tmp/rl/model.safetensors" ;; esac
    for mode in plain resume; do
        flag=(); [ $mode = resume ] && flag=(--resume)
        expect_error "a $mode train into a folder whose model.safetensors is ${setup%%:*}: names it" 2 \
            "rl/model.safetensors: ${setup#*:}" -- train --set train.epochs=6 --out "$tmp/rl" "${flag[@]}"
    done
done
# ... but a log changed only in its timings and spaces is still the run's: resumed
rm -rf "$tmp/rl"; cp -r "$tmp/stale" "$tmp/rl"
sed -i -E 's/"seconds":/"seconds" :/; s/"samples_per_s": [0-9.]+/"samples_per_s":   1.5e+04/; s/, "/,  "/g' "$tmp/rl/log.jsonl"
train --set train.epochs=6 --out "$tmp/rl" --resume >/dev/null 2>"$tmp/rl.err" && [ "$(wc -l < "$tmp/rl/log.jsonl")" -eq 6 ] \
    && ok "--resume with a log changed only in its timings and spaces: resumed" \
    || bad "--resume with re-timed log: $(tail -1 "$tmp/rl.err")"
expect_error "--resume with fewer epochs than the run has finished: one line (the run's notes are not said)" 2 "the run has finished 5 epochs; train.epochs 2 would end it" -- \
    train --set train.epochs=2 --out "$tmp/stale" --resume
mkdir -p "$tmp/first"; cp "$tmp/ref/config.json" "$tmp/first/"
expect_fail "--resume of a run killed in its first epoch says to use --overwrite" 2 "nothing to resume .*start the run again with --overwrite" -- \
    train --set train.epochs=4 --out "$tmp/first" --resume

# ---- names, links and special files
mkdir -p "$tmp/cwd/runs"
bin="$(cd "$(dirname "$CUVAE")" && pwd)/$(basename "$CUVAE")"; top=$PWD
(cd "$tmp/cwd" && "$bin" train "$top/configs/examples_vae.json" --set name=../../escaped --set device=cpu 2>/dev/null)
rc=$?
[ "$rc" -eq 2 ] && [ ! -e "$tmp/escaped" ] && [ -z "$(ls "$tmp/cwd/runs")" ] \
    && ok "--set name=../../x refused (exit 2), nothing written" || bad "path escape: exit $rc"
expect_error "a --set key with a newline: one line, escaped" 2 'model\.lat\\nent: unknown key' -- \
    "$CUVAE" train configs/examples_vae.json --set "$(printf 'model.lat\nent=3')"
printf 'old' > "$tmp/target.png"; ln -s "$tmp/target.png" "$tmp/link.png"
"$CUVAE" sample "$tmp/ref/model.safetensors" -n 4 -o "$tmp/link.png" 2>/dev/null
[ -L "$tmp/link.png" ] && head -c 4 "$tmp/target.png" | od -An -c | grep -q "P   N   G" \
    && ok "-o through a symlink: the link stays, its target is replaced" || bad "symlink output replaced the link"
mkfifo "$tmp/fifo"
if command -v gnuplot >/dev/null; then
    expect_fail "plot: a figure path that is a FIFO is refused, not replaced" 2 "samples.png: not a regular file" -- \
        sh -c "mkdir -p '$tmp/ref/figures' && mkfifo '$tmp/ref/figures/samples.png' && exec \"$CUVAE\" plot '$tmp/ref'"
    [ -p "$tmp/ref/figures/samples.png" ] && ok "the FIFO is still there" || bad "plot replaced the FIFO"
    rm -f "$tmp/ref/figures/samples.png"
else
    skip "plot: a figure path that is a FIFO is refused" "gnuplot not installed"
    skip "the FIFO is still there" "gnuplot not installed"
fi
expect_fail "-o onto a FIFO (not a regular file) refused" 2 "fifo: not a regular file" -- \
    "$CUVAE" eval "$tmp/ref/model.safetensors" --set data.test_limit=20 -o "$tmp/fifo"

# ---- HTML in run names and config strings
mkdir -p "$tmp/page/r1"
sed 's/"description": "[^"]*"/"description": "<script>alert(1)<\/script> \& more"/' "$tmp/ref/config.json" > "$tmp/page/r1/config.json"
printf '{"title": "<b>t</b>", "sections": [{"title": "s<i>", "text": "x", "runs": ["r1"], "figures": ["samples"]}]}' > "$tmp/index.json"
"$CUVAE" report "$tmp/index.json" "$tmp/page" 2>/dev/null
if ! grep -q "<script>\|<b>t</b>\|s<i>" "$tmp/page/index.html" && grep -q "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" "$tmp/page/index.html"; then
    ok "report escapes titles, descriptions and config strings"
else
    bad "report: unescaped HTML in the page"
fi
printf '{"sections": [{"runs": ["javascript:alert(1)"], "figures": []}]}' > "$tmp/index2.json"
expect_error "report: a run name that is not a plain name" 2 'sections\[0\].runs\[0\]: must be a plain name' -- \
    "$CUVAE" report "$tmp/index2.json" "$tmp/page"
# a malformed index or run file: one line naming the key or the file (they were dropped or shown as missing)
n=0
for idx in '{"title": 5, "sections": []}|title: expected a string' \
           '{"titel": "x", "sections": []}|titel: unknown key' \
           '{"sections": [], "sections": []}|sections: given twice' \
           '{"sections": [1]}|sections\[0\]: expected an object' \
           '{"sections": [{"runs": ["r1"]}]}|sections\[0\]: needs "runs" and "figures" arrays' \
           '{"sections": [{"runs": ["r1"], "figures": [], "figurs": []}]}|sections\[0\].figurs: unknown key'; do
    n=$((n + 1)); printf '%s' "${idx%%|*}" > "$tmp/bad_index$n.json"
    expect_error "report: bad index ($(echo "${idx##*|}" | tr -d '\\'))" 2 "bad_index$n.json: ${idx##*|}" -- \
        "$CUVAE" report "$tmp/bad_index$n.json" "$tmp/page"
done
# a figure named with its .png, or misspelt: every cell would read "not produced"; a RUNS_DIR
# that is missing or a file: said as such, not as runs missing from it
printf '{"sections": [{"runs": ["r1"], "figures": ["samples.png"]}]}' > "$tmp/png_index.json"
expect_error "report: a figure named with .png" 2 'png_index.json: sections\[0\].figures\[0\]: "samples.png": give the figure.s name without .png \("samples"' -- \
    "$CUVAE" report "$tmp/png_index.json" "$tmp/page"
# a run or a figure twice in one section (a table row or a figure shown twice); in two sections: allowed
printf '{"sections": [{"runs": ["r1", "r2", "r1"], "figures": ["samples"]}]}' > "$tmp/twice_index.json"
expect_error "report: a run twice in one section" 2 'twice_index.json: sections\[0\].runs\[2\]: "r1" is given twice in this section \(also runs\[0\]\)' -- \
    "$CUVAE" report "$tmp/twice_index.json" "$tmp/page"
printf '{"sections": [{"runs": ["r1"], "figures": ["samples", "samples"]}]}' > "$tmp/twice_index.json"
expect_error "report: a figure twice in one section" 2 'twice_index.json: sections\[0\].figures\[1\]: "samples" is given twice in this section \(also figures\[0\]\)' -- \
    "$CUVAE" report "$tmp/twice_index.json" "$tmp/page"
printf '{"sections": [{"runs": ["r1"], "figures": ["samples"]}, {"runs": ["r1"], "figures": ["samples"]}]}' > "$tmp/twice_index.json"
if "$CUVAE" report "$tmp/twice_index.json" "$tmp/page" 2>/dev/null && [ "$(grep -c 'r1' "$tmp/page/index.html")" -ge 2 ]; then
    ok "report: the same run in two sections is shown in both"
else
    bad "report: the same run in two sections refused or shown once"
fi
printf '{"sections": [{"runs": ["r1"], "figures": ["smaples"]}]}' > "$tmp/typo_index.json"
expect_error "report: a figure cuvae plot does not draw and no run holds" 2 'typo_index.json: sections\[0\].figures\[0\]: "smaples" is not a figure cuvae plot draws.*\(cuvae plot draws samples, ' -- \
    "$CUVAE" report "$tmp/typo_index.json" "$tmp/page"
expect_error "report: a RUNS_DIR that does not exist" 2 "report: RUNS_DIR .*/nopage: No such file or directory" -- \
    "$CUVAE" report "$tmp/index.json" "$tmp/nopage"
expect_error "report: a RUNS_DIR that is a file" 2 "report: RUNS_DIR .*/index.json: not a folder" -- \
    "$CUVAE" report "$tmp/index.json" "$tmp/index.json"
cp "$tmp/ref/eval.json" "$tmp/page/r1/eval.json"
printf '{"test_loss": 1,' > "$tmp/page/r1/eval.json"
expect_error "report: a truncated eval.json is named, not shown as missing" 2 "r1/eval.json: not valid JSON" -- \
    "$CUVAE" report "$tmp/index.json" "$tmp/page"
rm "$tmp/page/r1/eval.json"; mkdir "$tmp/page/r1/eval.json"
expect_error "report: an eval.json that is a folder is named, not shown as missing" 2 "r1/eval.json: not a regular file" -- \
    "$CUVAE" report "$tmp/index.json" "$tmp/page"
rmdir "$tmp/page/r1/eval.json"
printf '{"title": "a\\u0000b", "sections": []}' > "$tmp/nul_index.json"
expect_error "report: a \\u0000 in the index (it would cut the title short): refused" 2 "nul_index.json: byte [0-9]+: .u0000" -- \
    "$CUVAE" report "$tmp/nul_index.json" "$tmp/page"
printf '{"title": "a\tb", "sections": []}' > "$tmp/tab_index.json"
expect_error "report: a raw tab inside a string of the index (JSON wants it escaped): refused" 2 \
    "tab_index.json: byte 12: a raw control character \(0x09\) in a string" -- "$CUVAE" report "$tmp/tab_index.json" "$tmp/page"
# the page replaces RUNS_DIR/index.html: never the index read, nor a run's file through a link
cp "$tmp/index.json" "$tmp/page/index.html"
expect_error "report: the page would replace the index it reads: refused" 2 "report: page .*/page/index.html is the file report reads: move it away \(report writes RUNS_DIR/index.html\)" -- \
    "$CUVAE" report "$tmp/page/index.html" "$tmp/page"
rm "$tmp/page/index.html"; ln -s r1/config.json "$tmp/page/index.html"; before=$(md5sum < "$tmp/page/r1/config.json")
expect_error "report: index.html a link to a run's config.json: refused, the file kept" 2 "links to .*/r1/config.json and would replace a run.s config.json: move it away" -- \
    "$CUVAE" report "$tmp/index.json" "$tmp/page"
[ "$(md5sum < "$tmp/page/r1/config.json")" = "$before" ] && ok "... the run's config.json unchanged" || bad "report wrote through the link"
rm "$tmp/page/index.html"
cli_finish cli_faults

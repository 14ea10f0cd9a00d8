#!/usr/bin/env bash
# cli_errors.sh: bad input through the real binary: one clear stderr line and
# exit status 2, never a crash. (Parser-level cases are in test_config.c.)
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$CUVAE" --version | grep -qE '^cuvae [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{7,40}(-dirty)?|unknown); ' \
    && ok "--version, with the commit built" || bad "--version: $("$CUVAE" --version)"
"$CUVAE" --version | grep -qE 'data parallel: (MPI, NCCL|MPI|NCCL \(GPU ranks without MPI\)|no MPI, one process)\)$' \
    && ok "--version says MPI / NCCL" || bad "--version: $("$CUVAE" --version)"
for c in train eval sample plot report bench; do
    "$CUVAE" $c --help | grep -q "usage: cuvae $c" && ok "$c --help" || bad "$c --help"
    "$CUVAE" help $c | grep -q "usage: cuvae $c" && ok "help $c" || bad "help $c"
done
"$CUVAE" --help | grep -q "KL is in nats; the reconstruction term is in nats for a" && ok "--help says the units" || bad "--help"
# units: nats only where the term is a log-likelihood in nats (deck-001's per-pixel mean MSE is not)
"$CUVAE" train configs/lectures/vae_dim2.json --set data.train_limit=300 --set data.test_limit=50 --set train.epochs=1 \
    --set device=cpu --out "$tmp/units" 2>"$tmp/units.err"
grep -q "rec is the mean squared error per pixel (not nats" "$tmp/units.err" && grep -q "MSE/pixel + KL .* nats)" "$tmp/units.err" \
    && ! grep -q "^epoch 1/1: .*nats/example" "$tmp/units.err" \
    && grep -q '"units": {"rec": "mean squared error per pixel' "$tmp/units/eval.json" \
    && ok "a per-pixel MSE run is not labelled nats (stderr and eval.json)" || bad "units of an MSE run: $(grep '^epoch' "$tmp/units.err")"
expect_error "no command" 2 "usage: cuvae" -- "$CUVAE"
expect_error "unknown command" 2 'unknown command "frobnicate"' -- "$CUVAE" frobnicate
expect_error "help of an unknown command" 2 'help: unknown command "frobnicate"' -- "$CUVAE" help frobnicate
expect_error "help with two arguments" 2 "help: unexpected argument x" -- "$CUVAE" help train x
expect_error "--help with a command and more" 2 "help: unexpected argument x" -- "$CUVAE" --help train x
for h in --help -h; do   # cuvae --help COMMAND: the command's options, as cuvae help COMMAND
    [ "$("$CUVAE" $h train 2>&1)" = "$("$CUVAE" train --help)" ] && [ "$("$CUVAE" $h bench 2>&1)" = "$("$CUVAE" bench --help)" ] \
        && ok "cuvae $h COMMAND prints that command's help" || bad "cuvae $h train: $("$CUVAE" $h train 2>&1 | head -1)"
done
expect_error "unknown option" 2 "train: unknown option --bogus" -- "$CUVAE" train configs/mnist_vae.json --bogus
expect_error "missing config" 2 "nope.json" -- "$CUVAE" train "$tmp/nope.json"
expect_error "--out with an empty name" 2 "train: --out: the directory name is empty" -- "$CUVAE" train configs/mnist_vae.json --out ""
expect_error "--out / (an unset variable before the slash): refused" 2 "train: --out /: the root folder; give the run.s own folder" -- "$CUVAE" train configs/mnist_vae.json --out /
expect_error "--full with --set train.epochs (one of them would be dropped)" 2 "train: --full trains train.full_epochs \(7\) and --set train.epochs=3 asks for another length" -- \
    "$CUVAE" train configs/mnist_vae.json --set train.full_epochs=7 --set train.epochs=3 --full
expect_error "an option given twice (the last would win unsaid)" 2 "train: --out given twice" -- \
    "$CUVAE" train configs/mnist_vae.json --out "$tmp/a" --out "$tmp/b"
expect_error "a flag given twice in a row (no value between)" 2 "train: --full given twice" -- \
    "$CUVAE" train "$tmp/nope.json" --full --full
expect_error "bench --steps given twice" 2 "bench: --steps given twice" -- \
    "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps 3 --steps 5
# one --set key given twice: the last is used, as documented (scripts put an override after common ones)
"$CUVAE" bench configs/mnist_vae.json --steps 1 --warmup 0 --set device=cpu --set train.batch_size=8 \
    --set train.batch_size=16 >"$tmp/twice.out" 2>"$tmp/twice.err"
grep -q '"batch": 16' "$tmp/twice.out" && ok "a --set key given twice: the last is used" || bad "--set twice: $(tail -1 "$tmp/twice.err")"
expect_error "a bad value from --set is named by the --set, not blamed on the file" 2 \
    "cuvae: --set train.batch_size=0 \(over configs/mnist_vae.json\): train.batch_size: must be >= 1, got 0" -- \
    "$CUVAE" train configs/mnist_vae.json --set train.batch_size=0 --out "$tmp/bs0"
expect_error "bench --steps with a sign" 2 'bench: --steps: expected an integer from 1 to 100000000, got "\+3"' -- \
    "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps +3
expect_error "bench --steps with no value: said as missing, not as an empty number" 2 'bench: --steps needs a number \(--steps N\)$' -- \
    "$CUVAE" bench bench/configs/cpu/examples_b128.json --steps
expect_error "--out followed by an option (not a folder named --overwrite)" 2 \
    "train: --out needs a directory, got the option --overwrite \(a name starting with '-': ./--overwrite\)" -- \
    "$CUVAE" train configs/mnist_vae.json --out --overwrite
[ ! -e ./--overwrite ] && ok "no folder named --overwrite" || { bad "a folder named --overwrite"; rm -rf ./--overwrite; }
expect_error "eval -o followed by an option" 2 "eval: -o needs a file name, got the option --z" -- \
    "$CUVAE" eval "$tmp/x.safetensors" -o --z mean
expect_error "eval -o with an empty name" 2 "eval: -o: the file name is empty" -- "$CUVAE" eval "$tmp/x.safetensors" -o ""
expect_error "sample -o with an empty name" 2 "sample: -o: the file name is empty" -- "$CUVAE" sample "$tmp/x.safetensors" -o ""
# a folder whose config.json is another program's is not a run: neither replaced nor --overwrite'n
mkdir -p "$tmp/proj/figures"; echo '{"lr": 3}' > "$tmp/proj/config.json"; echo png > "$tmp/proj/figures/paper.png"
for flag in "" --overwrite --resume; do
    expect_error "train into a folder with another program's config.json ${flag:-(no flag)}" 2 \
        "proj/config.json: not a cuvae run's config \(a JSON object with data, model and train\)" -- \
        "$CUVAE" train configs/mnist_vae.json --out "$tmp/proj" $flag
done
[ "$(cat "$tmp/proj/config.json")" = '{"lr": 3}' ] && [ -s "$tmp/proj/figures/paper.png" ] \
    && ok "the folder's config.json and images are untouched" || bad "a foreign folder was changed"
expect_error "--version with an argument" 2 "--version: unexpected argument extra" -- "$CUVAE" --version extra
# "--" ends the options (POSIX): a config, checkpoint or run folder named -x is the argument after it
cp configs/mnist_vae.json "$tmp/-dash.json"
cuvae_abs=$(cd "$(dirname "$CUVAE")" && pwd)/$(basename "$CUVAE")
(cd "$tmp" && "$cuvae_abs" train --set train.epochs=0 --set data.train_limit=50 --set data.test_limit=20 --set device=cpu \
    --set "data.dir=$OLDPWD/data/mnist" --out "$tmp/dash" -- -dash.json >/dev/null 2>"$tmp/dash.err") && [ -s "$tmp/dash/config.json" ] \
    && ok "train -- -dash.json: the config named after --" || bad "train -- -dash.json: $(tail -1 "$tmp/dash.err")"
expect_error "train -- with two arguments after it" 2 "^cuvae: train: unexpected argument b.json$" -- "$CUVAE" train -- a.json b.json
expect_error "train with CONFIG before -- and another after it" 2 "^cuvae: train: unexpected argument b.json$" -- \
    "$CUVAE" train a.json -- b.json
expect_error "train -- -h: a file named -h, not the help" 2 "^cuvae: -h: cannot open" -- "$CUVAE" train -- -h
expect_error "bench: an option after -- is an argument" 2 "^cuvae: bench: unexpected argument --steps$" -- \
    "$CUVAE" bench -- "$tmp/-dash.json" --steps 2
expect_error "train.seed past 2^53 - 1 (2^53 + 1 reads as 2^53): refused, not rounded" 2 "train.seed: must be <= 9007199254740991" -- \
    "$CUVAE" train configs/mnist_vae.json --set train.seed=9007199254740993

cp configs/mnist_vae.json "$tmp/c.json"
expect_error "latent_dim 0 via --set" 2 "--set model.latent_dim=0 \(over .*c.json\): model.latent_dim: must be >= 1, got 0" -- \
    "$CUVAE" train "$tmp/c.json" --set model.latent_dim=0 --out "$tmp/r"
expect_error "a --set key with a leading space: named by the --set, not blamed on the file" 2 \
    "^cuvae: --set  data.dir=/x \(over .*c.json\):  data: unknown key" -- "$CUVAE" train "$tmp/c.json" --set ' data.dir=/x' --out "$tmp/r"
# errors found after the data load name their --set however long the options are (over 1 KB in
# all they were blamed on the file), and more than cuvae keeps is refused, not dropped
long_dir="$PWD/data$(printf '/.%.0s' $(seq 200))/mnist"
expect_error "--set options of 1.4 KB: an error found after the data load names its --set" 2 \
    "^cuvae: --set train.batch_size=1 \(over configs/mnist_vae.json\): model.encoder\[2\] \(batch_norm\) normalises each feature over the batch" -- \
    "$CUVAE" train configs/mnist_vae.json --set "description=$(printf 'x%.0s' $(seq 500))" --set "data.dir=$long_dir" \
    --set 'model.encoder=[{"flatten":{}},{"linear":64},{"batch_norm":{}},{"relu":{}}]' --set data.train_limit=256 \
    --set train.batch_size=1 --set device=cpu --out "$tmp/long_sets"
many_sets=(); for i in $(seq 40); do many_sets+=(--set "data.dir=$long_dir"); done
expect_error "--set options over 16 KB in all: refused, saying why" 2 \
    "^cuvae: --set options: [0-9]+ bytes in all, more than the 16383 cuvae keeps to name them in its messages" -- \
    "$CUVAE" train configs/mnist_vae.json "${many_sets[@]}" --out "$tmp/many_sets"
expect_error "unknown key via --set" 2 "model\.latnt_dim: unknown key \(allowed here: kind, input_dim, input_shape, encoder, latent_dim," -- \
    "$CUVAE" train "$tmp/c.json" --set model.latnt_dim=3 --out "$tmp/r"
expect_error "wrong type" 2 "train\.epochs: must be an integer, got a string$" -- "$CUVAE" train "$tmp/c.json" --set 'train.epochs="ten"' --out "$tmp/r"
expect_error "bad enum" 2 'model\.activation: must be one of "relu", "tanh", "leaky_relu"; got "swish"$' -- "$CUVAE" train "$tmp/c.json" --set model.activation=swish --out "$tmp/r"
expect_error "bce with gaussian output" 2 'loss\.reconstruction: "bce" needs model\.output "bernoulli" \(got "gaussian"\); use "mse"' -- \
    "$CUVAE" train "$tmp/c.json" --set model.output=gaussian --out "$tmp/r"
"$CUVAE" train "$tmp/c.json" --set 'description=[WIP] beta {test}' --set train.epochs=0 --set data.train_limit=50 \
    --set data.test_limit=20 --set device=cpu --out "$tmp/wip" >/dev/null 2>"$tmp/wip.err" \
    && grep -q '"description": "\[WIP\] beta {test}"' "$tmp/wip/config.json" \
    && ok "--set of a plain string starting with [ (not JSON: taken as the string)" || bad "--set description=[WIP]: $(tail -1 "$tmp/wip.err")"
expect_error "--set of broken JSON (not taken for a string)" 2 \
    "--set model.encoder: the value is not valid JSON \(an array, object or quoted string must be JSON" -- \
    "$CUVAE" train "$tmp/c.json" --set 'model.encoder=[32,]' --out "$tmp/r"
printf '{"base": "", "name": "x"}' > "$tmp/empty_base.json"
expect_error "an empty base" 2 "empty_base.json: base: must be the file name of another config, got an empty string" -- \
    "$CUVAE" train "$tmp/empty_base.json"
python3 -c 'print("[" * 1001 + "]" * 1001)' > "$tmp/deep.json"
expect_error "JSON nested past cJSON's limit: said so" 2 "deep.json: line 1, column [0-9]+ \(byte [0-9]+\): nested more than 1000 levels deep" -- \
    "$CUVAE" train "$tmp/deep.json"
printf '{"title": "t", "intro": "i", "sections": []}}' > "$tmp/index_junk.json"
expect_error "--set followed by an option (a forgotten value)" 2 "sample: --set needs key.path=value, got the option --set" -- \
    "$CUVAE" sample "$tmp/x.safetensors" --set --set device=cpu
expect_error "bench --set followed by an option" 2 "bench: --set needs key.path=value, got the option --steps" -- \
    "$CUVAE" bench configs/examples_vae.json --set --steps 3
expect_error "report: an index with text after its JSON" 2 "index_junk.json: not valid JSON \(at byte 44\)" -- \
    "$CUVAE" report "$tmp/index_junk.json" "$tmp"
expect_error "report -- INDEX RUNS_DIR: the two arguments after --" 2 "index_junk.json: not valid JSON \(at byte 44\)" -- \
    "$CUVAE" report -- "$tmp/index_junk.json" "$tmp"
expect_error "report INDEX RUNS_DIR --: the end of the options after them" 2 "index_junk.json: not valid JSON \(at byte 44\)" -- \
    "$CUVAE" report "$tmp/index_junk.json" "$tmp" --
expect_error "report with a third argument beside --" 2 "^cuvae: report: expected INDEX.json RUNS_DIR" -- \
    "$CUVAE" report "$tmp/index_junk.json" -- "$tmp" x
# an option's value is no option: sample --title -h is a title, not the help
expect_error "sample --title -h: a title, not the help" 2 "nope.safetensors" -- \
    "$CUVAE" sample "$tmp/nope.safetensors" --title -h
printf '{"name": "x", ' > "$tmp/broken.json"
expect_error "JSON syntax error" 2 "broken.json" -- "$CUVAE" train "$tmp/broken.json"
expect_error "missing data dir" 2 "$tmp/nodata/train-images-idx3-ubyte\(\.gz\): not found \(run \`make data\`\)$" -- \
    "$CUVAE" train "$tmp/c.json" --set data.dir="$tmp/nodata" --out "$tmp/r"
expect_error "input_dim mismatch with data" 2 "train-images-idx3-ubyte(\.gz)?: images are 28x28 = 784 pixels but model\.input_dim is 100$" -- \
    "$CUVAE" train "$tmp/c.json" --set model.input_dim=100 --out "$tmp/r"
expect_error "model.input_shape that is not MNIST's (1, 28, 28)" 2 \
    "train-images-idx3-ubyte(\.gz)?: images are 1 x 28 x 28 \(C x H x W\) but model.input_shape is \[4, 14, 14\]" -- \
    "$CUVAE" train "$tmp/c.json" --set 'model.input_shape=[4,14,14]' \
    --set 'model.encoder=[{"conv2d":4,"kernel":14},"flatten"]' --set data.train_limit=100 --set data.test_limit=50 --out "$tmp/r"
expect_error "device cuda without GPU" 2 'device "cuda" requested but unusable: ' -- \
    "$CUVAE" train "$tmp/c.json" --set device=cuda --set data.train_limit=10 --set data.test_limit=10 --out "$tmp/r"

# checkpoints
expect_error "eval missing checkpoint" 2 "$tmp/none.safetensors: cannot open: No such file or directory$" -- "$CUVAE" eval "$tmp/none.safetensors"
head -c 100 /dev/urandom > "$tmp/garbage.safetensors"
expect_error "eval garbage checkpoint" 2 "garbage.safetensors: header length [0-9]+ exceeds the file size \(100 bytes\)$" -- "$CUVAE" eval "$tmp/garbage.safetensors"
expect_error "sample bad -n" 2 "sample: -n" -- "$CUVAE" sample "$tmp/x.safetensors" -n 0
for narrow in "1:1.0000000001" "1e-30:1.0000000001e-30"; do   # (gnuplot would fail after the other figures)
    expect_error "plot --latent-range $narrow (one value at the axes' precision)" 2 \
        "plot: --latent-range: $narrow is narrower than a millionth of its ends \(the codes are float32\): no axis to draw" -- \
        "$CUVAE" plot "$tmp" --latent-range "$narrow"
done
expect_error "sample --title with a newline" 2 "sample: --title: expected one non-empty line" -- \
    "$CUVAE" sample "$tmp/x.safetensors" --title "$(printf 'a\nb')"
expect_error "sample --title that is not UTF-8 (gnuplot would draw mojibake)" 2 "sample: --title: byte 3 is not valid UTF-8" -- \
    "$CUVAE" sample "$tmp/x.safetensors" --title "$(printf 'ab\377\376')"
for tiny in "1e-320:2e-320" "0:1e-300" "-1e-39:1"; do   # (a subnormal read as 0 by the CPU: the range was ignored)
    expect_error "plot --latent-range $tiny (an end below float32's smallest normal)" 2 \
        "plot: --latent-range: $tiny has an end below 1.18e-38 in magnitude, float32's smallest normal number" -- \
        "$CUVAE" plot "$tmp" --latent-range "$tiny"
done
# (equal ends, "0:0" too: LO < HI is strict, not left to the narrowness check, which 0:0 passes)
for bad_range in "1:0" "2:2" "0:0" "0:" ":1" "a:b" "0:1:2" "nan:1" "-inf:1" "1e400:2"; do
    expect_error "plot --latent-range $bad_range" 2 "plot: --latent-range: expected LO:HI with LO < HI, both within \\+-1e30" -- \
        "$CUVAE" plot "$tmp" --latent-range "$bad_range"
done
# a bad CUVAE_GNUPLOT_TIMEOUT: refused before the command's work (it was found at the first figure)
expect_error "plot with CUVAE_GNUPLOT_TIMEOUT=0" 2 "^cuvae: CUVAE_GNUPLOT_TIMEOUT=0: expected the seconds a gnuplot may take" -- \
    env CUVAE_GNUPLOT_TIMEOUT=0 "$CUVAE" plot "$tmp/no_such_run"
expect_error "sample --title with CUVAE_GNUPLOT_TIMEOUT=5s" 2 "^cuvae: CUVAE_GNUPLOT_TIMEOUT=5s: expected the seconds" -- \
    env CUVAE_GNUPLOT_TIMEOUT=5s "$CUVAE" sample "$tmp/no_such.safetensors" --title t
# a gnuplot that runs but cannot draw PNGs (`set terminal pngcairo` fails: exit 1): refused up front,
# not found at the first figure
mkdir -p "$tmp/nopngcairo"
printf '#!/bin/sh\necho "unknown or ambiguous terminal type" >&2\nexit 1\n' > "$tmp/nopngcairo/gnuplot"
chmod +x "$tmp/nopngcairo/gnuplot"
expect_error "plot with a gnuplot that has no pngcairo terminal" 2 "plot: gnuplot with the pngcairo terminal is needed" -- \
    env PATH="$tmp/nopngcairo:$PATH" "$CUVAE" plot "$tmp/no_such_run"
# a working folder deleted under the shell: a relative path names nothing (ENOENT), said why
gone_note="\(the working folder was deleted while this shell was in it: cd to an existing one\)$"
for case in "train configs/mnist_vae.json|configs/mnist_vae.json: cannot open: No such file or directory" \
            "train $PWD/configs/mnist_vae.json --set data.dir=$PWD/data/mnist --set data.train_limit=64 --set data.test_limit=32 --set device=cpu|runs: cannot create directory: No such file or directory" \
            "sample $tmp/wip/model.safetensors|samples.png: cannot create temp file samples.png.tmp.[0-9]+: No such file or directory" \
            "report $PWD/configs/lectures/index.json runs|report: RUNS_DIR runs: No such file or directory" \
            "train $PWD/configs/mnist_vae.json --set data.dir=$PWD/data/mnist --resume --out rr|rr/resume.safetensors: cannot be read" \
            "eval $tmp/wip/model.safetensors|data/mnist/t10k-images-idx3-ubyte\(.gz\): not found: data.dir \"data/mnist\" is relative to the working folder"; do
    args=${case%%|*}; want=${case#*|}
    mkdir -p "$tmp/gone"
    # shellcheck disable=SC2086
    got=$(cd "$tmp/gone" && rmdir "$tmp/gone" && "$cuvae_abs" $args 2>&1 >/dev/null; echo "rc=$?")
    if printf '%s\n' "$got" | grep -qE "^cuvae: $want $gone_note" && printf '%s\n' "$got" | grep -q "^rc=2$"; then
        ok "deleted working folder, cuvae ${args%% *}: said (${want%%:*})"
    else
        bad "deleted working folder, cuvae $args: $got"
    fi
done
mkdir -p "$tmp/gone2/sub"   # (a path through "..", which a deleted folder still has, names something: no note)
got=$(cd "$tmp/gone2/sub" && rmdir "$tmp/gone2/sub" && "$cuvae_abs" train ../nope.json 2>&1 >/dev/null)
[ "$got" = "cuvae: ../nope.json: cannot open: No such file or directory" ] \
    && ok "deleted working folder, a path through ..: no note (it resolves)" || bad "deleted folder, ../nope.json: $got"
# a RUN_DIR too long for the figures' paths: said (it was read through a truncated path, its error cut off)
long_run="$tmp/$(printf 'r%.0s' {1..200})/$(printf 'r%.0s' {1..200})/$(printf 'r%.0s' {1..200})/$(printf 'r%.0s' {1..200})"
expect_error "plot of a RUN_DIR over 699 bytes" 2 \
    "^cuvae: plot: RUN_DIR is [0-9]+ bytes long, more than the 699 plot takes: give a shorter path to it \(cd into the folder and run cuvae plot \.\)$" -- \
    "$CUVAE" plot "$long_run"
expect_error "sample --title too long for a grid" 2 "sample: --title: expected one non-empty line of at most 200" -- \
    "$CUVAE" sample "$tmp/x.safetensors" --title "$(printf 'x%.0s' {1..201})"
expect_error "a validation split that leaves nothing to train on names the config and key" 2 \
    "^cuvae: --set data.validation=0.5 \(over configs/examples_vae.json\): data.validation 0.5 of 1 training examples leaves none to train on" -- \
    "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.train_limit=1 --set data.validation=0.5 \
    --out "$tmp/valnone"

# found by review: each one a reproducer
small=(--set data.train_limit=200 --set data.test_limit=100 --set device=cpu --set train.epochs=2)
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.lr=1e30 --out "$tmp/diverge" 2>"$tmp/div.err"
rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/div.err" | grep -q "^cuvae: training diverged at epoch 1.*; try a lower train.lr (it was 1e+30) or a gradient clip (train.grad_clip, e.g. 1)$" \
    && ok "divergence stops training (exit 2, last line says why, the lr it had, and the clip it lacked)" || bad "divergence: exit $rc, $(tail -1 "$tmp/div.err")"
grep -q "nan" "$tmp/diverge/log.jsonl" 2>/dev/null && bad "log.jsonl holds nan" || ok "no nan written to log.jsonl"
# a blow-up that stays finite (a small model, SGD at lr 1e4, clipped): the test rec is ~1e15 nats, far over ln 2 a pixel
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set model.encoder=[64] --set model.decoder=[64] --set model.latent_dim=4 \
    --set train.optimizer=sgd --set train.lr=1e4 --set train.grad_clip=1 \
    --out "$tmp/diverge_finite" 2>"$tmp/divf.err"
rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l < "$tmp/divf.err")" -ge 1 ] && tail -1 "$tmp/divf.err" | grep -q "^cuvae: epoch 1: training diverged: the test reconstruction term is .* nats, more than 10 times what predicting 1/2 for every pixel gives (543.427).*; try a lower train.lr (it was 10000)$" \
    && [ ! -e "$tmp/diverge_finite/eval.json" ] \
    && ok "a finite blow-up is caught at the epoch's end (exit 2, no eval.json)" || bad "finite divergence: exit $rc, $(tail -1 "$tmp/divf.err")"
[ ! -e "$tmp/diverge/eval.json" ] && ok "diverged run leaves no eval.json" || bad "diverged run wrote eval.json"
# a squared-error blow-up that stays finite (a Gaussian decoder at lr 10; an AE at lr 3): until
# 2026-12-06 only a Bernoulli term had this check, and these runs ended with exit 0 and a test SSE of 1e13
for args in "model.kind=vae train.lr=10" "model.kind=ae train.lr=3"; do
    read -r kind_set lr_set <<< "$args"
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --set "$kind_set" --set "$lr_set" --set model.output=gaussian \
        --set loss.reconstruction=mse --out "$tmp/diverge_mse" --overwrite 2>"$tmp/divm.err"
    rc=$?
    [ "$rc" -eq 2 ] && tail -1 "$tmp/divm.err" | grep -q "^cuvae: epoch 1: training diverged: the test reconstruction term is .* SSE, more than 10 times what predicting 1/2 for every pixel gives at most (196); .*try a lower train.lr" \
        && [ ! -e "$tmp/diverge_mse/eval.json" ] \
        && ok "a finite squared-error blow-up is caught at the epoch's end ($kind_set, $lr_set: exit 2, no eval.json)" \
        || bad "finite mse divergence ($args): exit $rc, $(tail -1 "$tmp/divm.err")"
done
# a huge loss weight is named before the learning rate in the advice
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set loss.w_rec=1e30 --out "$tmp/diverge_w" 2>"$tmp/divw.err"
rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/divw.err" | grep -q "training diverged.*; try a smaller loss.w_rec (it was 1e+30), a lower train.lr (it was 0.001) or a gradient clip (train.grad_clip, e.g. 1)$" \
    && ok "divergence from a loss weight of 1e30 names loss.w_rec first" || bad "w_rec divergence: exit $rc, $(tail -1 "$tmp/divw.err")"
# SIGTERM reaching a run that diverged since its last loss read (lr 1e6, batch 1, no read for
# 1e7 steps): said as a divergence (until 2026-12-06 the resume file's writer refused its NaN
# parameters with "its loss stayed finite"); nothing but config.json and the empty log written
# SIGTERM a run on one example a step that reads no loss for 1e7 steps (so nothing checks its
# values before the signal), a second after its log exists; returns its exit status.
# Usage: sigterm_unread_run OUT ERRFILE --set KEY=VALUE...
sigterm_unread_run() {
    local out=$1 err=$2 pid; shift 2
    rm -rf "$out"
    "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.test_limit=100 --set train.batch_size=1 \
        --set train.log_interval=10000000 "$@" --out "$out" >/dev/null 2>"$err" &
    pid=$!
    for _ in $(seq 100); do [ -e "$out/log.jsonl" ] && break; sleep 0.1; done
    sleep 1
    kill -TERM "$pid"
    wait "$pid"
}
sigterm_unread_run "$tmp/diverge_term" "$tmp/divt.err" --set train.lr=1e6
rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/divt.err" | grep -q "^cuvae: training diverged in epoch 1 by step [0-9]* (found when SIGTERM stopped it): the loss is not finite (rec [^,]*, KL [^)]*); .*try a lower train.lr (it was 1e+06)" \
    && ! grep -q -- "-nan" "$tmp/divt.err" \
    && [ ! -e "$tmp/diverge_term/resume.safetensors" ] && [ ! -e "$tmp/diverge_term/model.safetensors" ] \
    && ok "SIGTERM after a divergence stops as a divergence (exit 2, no resume file, nan without a sign)" \
    || bad "SIGTERM after divergence: exit $rc, $(tail -1 "$tmp/divt.err")"
# the test loss not finite at an epoch's end while every training step's loss was (src/train.c, the
# check after eval_elbo_ranks): one step per epoch (128 examples, batch 128) at SGD lr 1e30. The step's
# loss is read before its update, from the initial weights: finite; the update leaves weights of ~1e30
# (finite too), whose test loss is NaN. Refused as a divergence, before the epoch's log line and files
# (until this check, the NaN weights would reach the state check with another message)
for watched in test val; do
    extra=(); [ "$watched" = val ] && extra=(--set data.train_limit=256 --set data.validation=0.5)
    rm -rf "$tmp/diverge_eval"
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --set data.train_limit=128 --set train.epochs=1 \
        --set train.optimizer=sgd --set train.lr=1e30 "${extra[@]}" --out "$tmp/diverge_eval" >/dev/null 2>"$tmp/dive.err"
    rc=$?
    [ "$rc" -eq 2 ] && tail -1 "$tmp/dive.err" | grep -q "^cuvae: epoch 1: the $watched loss is not finite (nan); .*/diverge_eval/model.safetensors, if written, holds the last finished epoch; try a lower train.lr (it was 1e+30) or a gradient clip (train.grad_clip, e.g. 1)$" \
        && ! grep -q "training diverged at epoch" "$tmp/dive.err" && ! grep -q -- "-nan" "$tmp/dive.err" \
        && [ ! -s "$tmp/diverge_eval/log.jsonl" ] && [ ! -e "$tmp/diverge_eval/model.safetensors" ] \
        && [ ! -e "$tmp/diverge_eval/resume.safetensors" ] && [ ! -e "$tmp/diverge_eval/eval.json" ] \
        && ok "a $watched loss not finite after finite training steps: exit 2, said at the epoch's end, nothing of the epoch written" \
        || bad "$watched loss not finite at the epoch's end: exit $rc, $(tail -1 "$tmp/dive.err"), files: $(ls "$tmp/diverge_eval" 2>/dev/null | tr '\n' ' ')"
done
# Adam's second moment overflowing while the loss stays finite: loss.w_rec 1e25 makes gradients of
# ~1e25, whose squares (~1e50) are inf in float; the update m / (sqrt(v) + eps) is then 0, so the
# weights, the loss and the test loss stay finite. (1) At the epoch's end the state check
# (checkpoint_first_non_finite, src/checkpoint.c) refuses it, naming Adam's v and the weight to
# blame first; nothing of the epoch written. (2) SIGTERM mid-epoch: the same check before the resume
# file is written says it as a divergence, with the same advice (until 2026-12-07 the file's writer,
# safetensors_check_finite_before_write, refused it advising a lower train.lr), exit 2, no file.
rm -rf "$tmp/diverge_adam"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set data.train_limit=128 --set train.epochs=1 \
    --set loss.w_rec=1e25 --out "$tmp/diverge_adam" >/dev/null 2>"$tmp/diva.err"
rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/diva.err" | grep -q "^cuvae: training diverged in epoch 1: Adam's v, element [0-9]* is infinite though the loss is finite; .*/diverge_adam/model.safetensors, if written, holds the last finished epoch; try a smaller loss.w_rec (it was 1e+25), a lower train.lr (it was 0.001) or a gradient clip (train.grad_clip, e.g. 1)$" \
    && [ ! -s "$tmp/diverge_adam/log.jsonl" ] && [ ! -e "$tmp/diverge_adam/model.safetensors" ] \
    && [ ! -e "$tmp/diverge_adam/resume.safetensors" ] && [ ! -e "$tmp/diverge_adam/eval.json" ] \
    && ok "Adam's v overflowing with a finite loss: exit 2 at the epoch's end naming it and loss.w_rec; nothing of the epoch written" \
    || bad "Adam state overflow at the epoch's end: exit $rc, $(tail -1 "$tmp/diva.err"), files: $(ls "$tmp/diverge_adam" 2>/dev/null | tr '\n' ' ')"
sigterm_unread_run "$tmp/diverge_adam_term" "$tmp/divat.err" --set loss.w_rec=1e25
rc=$?
[ "$rc" -eq 2 ] && tail -1 "$tmp/divat.err" | grep -q "^cuvae: training diverged in epoch 1 by step [0-9]* (found when SIGTERM stopped it): Adam.s v, element [0-9]* is infinite though the loss is finite; .*try a smaller loss.w_rec (it was 1e+25)" \
    && [ ! -e "$tmp/diverge_adam_term/resume.safetensors" ] && [ ! -e "$tmp/diverge_adam_term/model.safetensors" ] \
    && [ -z "$(ls "$tmp/diverge_adam_term" | grep -v -e '^config.json$' -e '^log.jsonl$')" ] \
    && ok "SIGTERM after Adam's v overflowed (finite loss): exit 2 as a divergence naming loss.w_rec, no resume file written with inf" \
    || bad "SIGTERM after a state overflow: exit $rc, $(tail -1 "$tmp/divat.err"), files: $(ls -a "$tmp/diverge_adam_term" 2>/dev/null | tr '\n' ' ')"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/rerun" 2>/dev/null
cp -r "$tmp/rerun" "$tmp/rerun2"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.lr=1e30 --out "$tmp/rerun2" --overwrite 2>"$tmp/rerun2.err"
rc=$?
[ "$rc" -eq 2 ] && diff -r -x .new-run "$tmp/rerun" "$tmp/rerun2" >/dev/null \
    && tail -1 "$tmp/rerun2.err" | grep -q "(--overwrite: the earlier run in .*rerun2 is as it was; this run's files are in .*rerun2/.new-run, and no state of it was saved to resume: start it again with --overwrite; remove that folder to keep the earlier run instead)$" \
    && ok "a failed --overwrite re-run leaves the earlier run as it was and says where its own files are, and how to keep the earlier one" \
    || bad "failed --overwrite: exit $rc, earlier run changed or message: $(tail -1 "$tmp/rerun2.err")"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.lr=1e30 --out "$tmp/fresh_ow" --overwrite 2>"$tmp/fresh_ow.err"
tail -1 "$tmp/fresh_ow.err" | grep -q "(--overwrite: the folder .*fresh_ow is as it was, no earlier run in it; this run's files are in .*fresh_ow/.new-run, and no state of it was saved to resume: start it again with --overwrite)$" \
    && ok "a failed --overwrite run into a new folder does not speak of an earlier run" \
    || bad "failed --overwrite into a new folder: $(tail -1 "$tmp/fresh_ow.err")"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.seed=9 --out "$tmp/rerun2" --overwrite 2>"$tmp/rerun2.err"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.seed=9 --out "$tmp/rerun3" 2>/dev/null
[ ! -e "$tmp/rerun2/.new-run" ] && cmp -s "$tmp/rerun2/model.safetensors" "$tmp/rerun3/model.safetensors" \
    && cmp -s "$tmp/rerun2/eval.json" "$tmp/rerun3/eval.json" && grep -q "removing .*rerun2/.new-run" "$tmp/rerun2.err" \
    && ok "the next --overwrite clears the failed run's .new-run and replaces the earlier run (same files as a fresh run)" \
    || bad "--overwrite after a failed one: $(tail -1 "$tmp/rerun2.err")"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.lr=1e30 --out "$tmp/fresh_div" --overwrite 2>/dev/null
expect_error "a plain run into a folder whose .new-run holds an unfinished --overwrite run" 2 \
    "fresh_div/.new-run holds an --overwrite run that did not finish: continue it with --resume, start it again with --overwrite" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/fresh_div"
mkdir -p "$tmp/rerun2/.new-run"; echo mine > "$tmp/rerun2/.new-run/notes.txt"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.seed=9 --out "$tmp/rerun2" --overwrite 2>"$tmp/rerun2.err"
rc=$?
[ "$rc" -eq 0 ] && cmp -s "$tmp/rerun2/model.safetensors" "$tmp/rerun3/model.safetensors" \
    && grep -q "rerun2/.new-run stays: it holds files cuvae did not write (notes.txt)" "$tmp/rerun2.err" && [ -s "$tmp/rerun2/.new-run/notes.txt" ] \
    && ok "a file of the user's in .new-run: the run is still replaced, the file kept and named" \
    || bad "user file in .new-run: exit $rc, $(tail -1 "$tmp/rerun2.err")"
expect_error "a folder holding a run is refused without --resume or --overwrite" 2 \
    "rerun already holds a run \(config.json, model.safetensors, resume.safetensors\): continue it with --resume" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/rerun"
expect_error "--resume with --overwrite" 2 "choose one" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/rerun" --resume --overwrite
# no run there, but files a run writes (the user's own, or a run whose checkpoints were deleted):
# refused, not replaced unasked; --overwrite replaces them
mkdir -p "$tmp/notrun/progress"; echo notes > "$tmp/notrun/log.jsonl"; echo '{"mine": 1}' > "$tmp/notrun/eval.json"
expect_error "a folder with a log.jsonl but no run: refused, naming the file" 2 \
    "notrun holds log.jsonl, which train writes, but no run \(no config.json, model.safetensors or resume.safetensors\): move it, .* --overwrite" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/notrun"
rm "$tmp/notrun/log.jsonl" "$tmp/notrun/eval.json"; echo img > "$tmp/notrun/progress/samples_epoch_001.png"
expect_error "a folder with progress images but no run: refused" 2 "notrun holds PNG images in progress/, which train writes" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/notrun"
[ "$(cat "$tmp/notrun/progress/samples_epoch_001.png")" = img ] && [ ! -e "$tmp/notrun/config.json" ] \
    && ok "... and the folder is as it was" || bad "a refused run into a folder without a run changed it"
# a folder holding a resume file alone is a run too (one of the three files that make one): its
# progress/ is no place for another run
mkdir -p "$tmp/resumeonly/progress"; cp "$tmp/rerun/resume.safetensors" "$tmp/resumeonly/"
expect_error "train --out the progress/ of a folder holding only resume.safetensors: refused" 2 \
    "resumeonly/progress: the progress/ folder of the run in .*resumeonly: write the run elsewhere" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/resumeonly/progress"
# configs must be UTF-8 text without NUL characters (cJSON would cut strings short at one)
printf '{"name": "x"}\0{"garbage":' > "$tmp/nul.json"
expect_error "a NUL byte in a config file" 2 "nul.json: byte 13: a NUL byte" -- "$CUVAE" train "$tmp/nul.json"
expect_error "bench given a checkpoint for its config: says so" 2 "rerun/model.safetensors: a checkpoint \(.safetensors\), not a config" -- \
    "$CUVAE" bench "$tmp/rerun/model.safetensors"
expect_error "Latin-1 in a --set value" 2 "byte 16: not valid UTF-8" -- \
    "$CUVAE" train configs/examples_vae.json --set "$(printf 'description="caf\351"')"
expect_error "a \\u0000 escape in a config string" 2 'u0000 \(a NUL character\) is not allowed' -- \
    "$CUVAE" train configs/examples_vae.json --set 'data.dir="data/mnist\u0000/../x"'
# what users give instead of a checkpoint, and clamped or ignored settings: said plainly
expect_error "eval on a run folder" 2 "rerun is a folder; give a checkpoint, e.g. .*/rerun/model.safetensors" -- \
    "$CUVAE" eval "$tmp/rerun"
expect_error "eval on a resume file" 2 "resume.safetensors is a resume file \\(for train --resume\\), not a model checkpoint" -- \
    "$CUVAE" eval "$tmp/rerun/resume.safetensors"
expect_error "sample on a config file" 2 "mnist_vae.json looks like a JSON file \\(a config\\?\\)" -- \
    "$CUVAE" sample configs/mnist_vae.json
"$CUVAE" train configs/lectures/cvae_dim2.json "${small[@]}" --set train.epochs=1 --out "$tmp/cvae" 2>/dev/null
expect_error "sample --class beyond the classes" 2 "sample: --class 10: the model has classes 0..9" -- \
    "$CUVAE" sample "$tmp/cvae/model.safetensors" --class 10 -o "$tmp/c.png"
# ... on device auto too (no GPU here): one line, said before the device starts
expect_error "sample --class beyond the classes on device auto: one line" 2 "sample: --class 10: the model has classes 0..9" -- \
    "$CUVAE" sample "$tmp/cvae/model.safetensors" --class 10 -o "$tmp/c.png" --set device=auto
expect_error "sample --class of a model without classes on device auto: one line" 2 "sample: --class needs a cvae checkpoint" -- \
    "$CUVAE" sample "$tmp/rerun/model.safetensors" --class 3 -o "$tmp/c.png" --set device=auto
"$CUVAE" sample "$tmp/cvae/model.safetensors" --class 3 -n 4 -o "$tmp/c3.png" 2>"$tmp/c3.err" \
    && grep -q "wrote .*/c3.png (4 samples from z ~ N(0, I), class 3)" "$tmp/c3.err" \
    && "$CUVAE" sample "$tmp/cvae/model.safetensors" -n 4 -o "$tmp/call.png" 2>"$tmp/call.err" \
    && grep -q "wrote .*/call.png (4 samples from z ~ N(0, I), sample i of class i mod 10)" "$tmp/call.err" \
    && ok "sample on a cvae says which class its samples are of" || bad "cvae sample line: $(tail -1 "$tmp/c3.err") / $(tail -1 "$tmp/call.err")"
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=1 --set train.batch_size=500 --full \
    --out "$tmp/clamped" 2>"$tmp/clamped.err"
grep -q "^cuvae: --full: configs/examples_vae.json sets no train.full_epochs; training train.epochs = 1$" "$tmp/clamped.err" \
    && ok "--full without train.full_epochs says so" || bad "--full without full_epochs: silent"
grep -q "^cuvae: train.batch_size 500 is larger than the 200 training examples: batches of 200$" "$tmp/clamped.err" \
    && ok "a batch larger than the data says so" || bad "batch clamp: silent"
mkdir -p "$tmp/noruns"
# (distinct names: a run may be in several sections)
n_index_runs=$(python3 -c 'import json, sys; print(len({r for x in json.load(open(sys.argv[1]))["sections"] for r in x["runs"]}))' configs/lectures/index.json)
expect_error "report on a folder with none of the runs" 2 "index.json: none of its $n_index_runs runs is in .*noruns" -- \
    "$CUVAE" report configs/lectures/index.json "$tmp/noruns"
# an AE's report row: one loss weight, no KL number
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=1 --set model.kind=ae --set eval.iw_samples=0 \
    --out "$tmp/aepage/ae" 2>/dev/null
printf '{"sections": [{"runs": ["ae"], "figures": []}]}' > "$tmp/ae_index.json"
"$CUVAE" report "$tmp/ae_index.json" "$tmp/aepage" 2>"$tmp/aepage.err"
row=$(grep -o '<td>ae</td>.*' "$tmp/aepage/index.html" 2>/dev/null | head -1)
echo "$row" | grep -q "<td>– (an AE)</td>" && echo "$row" | grep -q "sum over pixels), 1</td>" \
    && ok "report: an AE's row shows one loss weight and no KL" || bad "report AE row: $row $(tail -1 "$tmp/aepage.err")"
# a vae's IW number says what eval says of it (grey levels: not an NLL); an eval -o with --z mean
# says its losses are at z = mu; a run not in the folder is shown missing, without a link
"$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=1 --set eval.iw_samples=5 \
    --out "$tmp/aepage/vae" 2>/dev/null
printf '{"sections": [{"runs": ["vae", "ghost"], "figures": []}]}' > "$tmp/vae_index.json"
"$CUVAE" report "$tmp/vae_index.json" "$tmp/aepage" 2>"$tmp/vaepage.err"
grep -q "; not binary data: not an NLL)</td>" "$tmp/aepage/index.html" \
    && grep -q '<tr><td><code>ghost</code></td><td colspan="8">missing (no config.json' "$tmp/aepage/index.html" \
    && ! grep -q 'href="ghost/config.json"' "$tmp/aepage/index.html" && grep -q "1 of 2 runs not in" "$tmp/vaepage.err" \
    && ok "report: an IW bound of grey data says it is not an NLL; a missing run is shown missing, unlinked" \
    || bad "report IW / missing run: $(grep -o 'K = [^<]*' "$tmp/aepage/index.html") $(tail -1 "$tmp/vaepage.err")"
"$CUVAE" eval "$tmp/aepage/vae/model.safetensors" --z mean -o "$tmp/aepage/vae/eval.json" >/dev/null 2>&1
"$CUVAE" report "$tmp/vae_index.json" "$tmp/aepage" 2>/dev/null
grep -q "; at z = μ (eval --z mean)" "$tmp/aepage/index.html" && ok "report: an eval --z mean result is labelled z = μ" \
    || bad "report --z mean row: $(grep -o '<td>[0-9.]* <small>[^<]*</small></td>' "$tmp/aepage/index.html" | head -2)"
# an eval.json whose numbers are of another type (or overflow) would show as "–", read as "not
# evaluated": refused, naming the key
cp "$tmp/aepage/ae/eval.json" "$tmp/ae_eval.json"
for bad_value in '"abc"' '[1]' '1e400'; do
    sed "s/\"test_loss\": [^,]*/\"test_loss\": $bad_value/" "$tmp/ae_eval.json" > "$tmp/aepage/ae/eval.json"
    expect_error "report: eval.json's test_loss as $bad_value: refused, naming the key" 2 \
        "aepage/ae/eval.json: \"test_loss\" must be a finite number or null \(as cuvae writes it\)" -- \
        "$CUVAE" report "$tmp/ae_index.json" "$tmp/aepage"
done
cp "$tmp/ae_eval.json" "$tmp/aepage/ae/eval.json"
# plot of a run with a long log (more epochs than the first allocation holds) and more latent dims
# than the histogram panels: every epoch's point reaches the loss curves' data, and the histograms
# show the first 16 dims, saying so. (A gnuplot wrapper keeps each script and the data it reads.)
if command -v gnuplot >/dev/null; then
    mkdir -p "$tmp/gpwrap" "$tmp/gpkept" "$tmp/gptmp"
    printf '#!/bin/sh\nfor a; do script="$a"; done\nif [ -f "$script" ]; then cp "$script" "%s/script.$$"\n  for d in $(grep -o "cuvae_plot_[A-Za-z0-9._-]*_data_[A-Za-z0-9]*" "$script"); do cp "%s/$d" "%s/data.$$"; done\nfi\nexec %s "$@"\n' \
        "$tmp/gpkept" "$tmp/gptmp" "$tmp/gpkept" "$(command -v gnuplot)" > "$tmp/gpwrap/gnuplot"
    chmod +x "$tmp/gpwrap/gnuplot"
    rm -rf "$tmp/longlog"; mkdir "$tmp/longlog"
    cp "$tmp/aepage/vae/config.json" "$tmp/aepage/vae/model.safetensors" "$tmp/longlog/"
    python3 - "$tmp/aepage/vae/log.jsonl" "$tmp/longlog/log.jsonl" <<'PY'
import json, sys
line = json.loads(open(sys.argv[1]).readline())
with open(sys.argv[2], "w") as out:
    for epoch in range(1, 71):
        line["epoch"] = epoch; line["train_loss"] = 500.0 - epoch; out.write(json.dumps(line) + "\n")
PY
    latent=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"]["latent_dim"])' "$tmp/longlog/config.json")
    shown=$(( latent < 16 ? latent : 16 ))
    TMPDIR="$tmp/gptmp" PATH="$tmp/gpwrap:$PATH" "$CUVAE" plot "$tmp/longlog" >/dev/null 2>"$tmp/longlog.err"; rc=$?
    curves=$(grep -l 'longlog/figures/loss_curves.png' "$tmp"/gpkept/script.* 2>/dev/null | head -1)
    curves_data="$tmp/gpkept/data.${curves##*.}"
    epochs=$(awk 'NF { print $1 }' "$curves_data" 2>/dev/null | tr '\n' ' ')
    [ $rc -eq 0 ] && [ -n "$curves" ] && [ "$epochs" = "$(seq -s ' ' 1 70) " ] \
        && ok "plot of a 70-epoch log: the loss curves hold epochs 1..70" \
        || bad "plot of a 70-epoch log: exit $rc, epochs [$(echo "$epochs" | head -c 200)] $(tail -1 "$tmp/longlog.err")"
    hist=$(grep -l 'longlog/figures/latent_histograms.png' "$tmp"/gpkept/script.* 2>/dev/null | head -1)
    panels=$(grep -c "^set title 'z_{" "$hist" 2>/dev/null)
    [ "$latent" -gt 16 ] && [ "$panels" = "$shown" ] && grep -q "the first $shown of $latent dimensions" "$hist" \
        && ok "plot: latent dim $latent: the histograms show the first $shown dims and say so" \
        || bad "plot histograms of latent dim $latent: $panels panels, $(grep -o 'multiplot title "[^"]*"' "$hist" 2>/dev/null)"
    # the t-SNE's perplexity 30 needs more than 91 points (90 others): 91 points take (91 - 2) / 3, 92 keep 30
    "$CUVAE" plot "$tmp/longlog" --tsne-points 91 >/dev/null 2>"$tmp/tsne91.err"; rc91=$?
    "$CUVAE" plot "$tmp/longlog" --tsne-points 92 >/dev/null 2>"$tmp/tsne92.err"; rc92=$?
    [ $rc91 -eq 0 ] && [ $rc92 -eq 0 ] \
        && grep -q "^cuvae: t-SNE: perplexity 29.7, (points - 2) / 3 for 91 points (30 needs more than 91)$" "$tmp/tsne91.err" \
        && ! grep -q "t-SNE: perplexity" "$tmp/tsne92.err" && grep -q "^cuvae: t-SNE of 92 codes took" "$tmp/tsne92.err" \
        && ok "plot: t-SNE of 91 points lowers the perplexity to 29.7, of 92 keeps 30" \
        || bad "plot t-SNE perplexity at 91 / 92 points: exit $rc91 / $rc92, $(grep perplexity "$tmp/tsne91.err") / $(grep perplexity "$tmp/tsne92.err")"
    # the t-SNE needs 5 test images (plot --help): 5 draw the scatter, 4 skip it, saying so
    "$CUVAE" plot "$tmp/longlog" --set data.test_limit=5 >/dev/null 2>"$tmp/tsne5.err"; rc5=$?
    "$CUVAE" plot "$tmp/longlog" --set data.test_limit=4 >/dev/null 2>"$tmp/tsne4.err"; rc4=$?
    [ $rc5 -eq 0 ] && [ $rc4 -eq 0 ] && grep -q "wrote .*longlog/figures/latent_scatter.png$" "$tmp/tsne5.err" \
        && ! grep -q "no latent_scatter.png" "$tmp/tsne5.err" \
        && grep -q "^cuvae: plot: no latent_scatter.png: its t-SNE needs at least 5 test images, the run's test set has 4 (data.test_limit)" "$tmp/tsne4.err" \
        && ok "plot: 5 test images draw the t-SNE scatter, 4 skip it" \
        || bad "plot t-SNE at 5 / 4 test images: exit $rc5 / $rc4, $(grep -h 'latent_scatter' "$tmp/tsne5.err" "$tmp/tsne4.err" | head -2)"
else
    skip "plot of a long log and a wide latent" "gnuplot not installed"
fi
expect_error "eval --iw on an ae's checkpoint names --iw" 2 \
    '^cuvae: eval --iw: needs a variational model \(kind vae or cvae\), got kind "ae"' -- \
    "$CUVAE" eval "$tmp/aepage/ae/model.safetensors" --iw 5
expect_error "eval --iw on an ae with device auto: the one line, before the device is chosen (no device line first)" 2 \
    '^cuvae: eval --iw: needs a variational model' -- \
    "$CUVAE" eval "$tmp/aepage/ae/model.safetensors" --iw 5 --set device=auto
expect_error "iw on an ae is refused before training" 2 "eval.iw_samples: needs a variational model" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --set model.kind=ae --set eval.iw_samples=5 --out "$tmp/r"
expect_error "iw without a likelihood is refused before training" 2 "eval.iw_samples: needs a decoder likelihood" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --set loss.reconstruction=mse --set eval.iw_samples=5 --out "$tmp/r"
expect_error "iw_batch capped" 2 "eval\.iw_batch: must be <= 4194304, got 2000000000$" -- \
    "$CUVAE" train configs/examples_vae.json "${small[@]}" --set eval.iw_batch=2000000000 --out "$tmp/r"
expect_error "input_dim capped" 2 "model\.input_dim: must be <= 16777216, got 2147483647$" -- \
    "$CUVAE" train configs/examples_vae.json --set model.input_dim=2147483647 --out "$tmp/r"
long=$(printf 'd%.0s' $(seq 1 720))
expect_error "--out too long" 2 "train: --out: path too long" -- "$CUVAE" train configs/examples_vae.json --out "$tmp/$long"
expect_error "empty --seed" 2 "sample: --seed" -- "$CUVAE" sample "$tmp/x.safetensors" --seed ""
for s in 18446744073709551616 9007199254740992 " 5" +5; do   # out of range (no saturation), or not plain digits
    expect_error "sample --seed '$s' refused" 2 "sample: --seed: expected an integer 0..9007199254740991" -- \
        "$CUVAE" sample "$tmp/x.safetensors" --seed "$s"
done
expect_error "empty --iw" 2 "eval: --iw" -- "$CUVAE" eval "$tmp/x.safetensors" --iw ""
expect_error "--iw with a leading space (strtol alone takes it)" 2 'eval: --iw: expected a count from 1 to 10000000, got " 5"' -- \
    "$CUVAE" eval "$tmp/x.safetensors" --iw " 5"
expect_error "--iw 0 refused (not a silent 'no bound')" 2 'eval: --iw: expected a count from 1 to 10000000, got "0" \(leave --iw out for no importance-weighted bound\)' -- \
    "$CUVAE" eval "$tmp/x.safetensors" --iw 0
expect_error "--iw-examples 0 refused (not a silent 'all')" 2 'eval: --iw-examples: expected a count from 1 to 10000000, got "0" \(leave --iw-examples out' -- \
    "$CUVAE" eval "$tmp/x.safetensors" --iw 5 --iw-examples 0
expect_error "sample -n with a sign" 2 'sample: -n: expected 1..10000, got "\+5"' -- "$CUVAE" sample "$tmp/x.safetensors" -n +5
expect_error "plot --latent-range in hex (strtod alone takes it)" 2 'plot: --latent-range: expected LO:HI with LO < HI, both within \+-1e30, got "0x1:2"' -- \
    "$CUVAE" plot "$tmp/x" --latent-range 0x1:2
if [ -s "$tmp/rerun/model.safetensors" ]; then
    expect_error "--iw-examples without --iw" 2 "needs --iw" -- "$CUVAE" eval "$tmp/rerun/model.safetensors" --iw-examples 5
    # a valid checkpoint whose header length's low byte is '{' (123): another writer's padding
    python3 - "$tmp/rerun/model.safetensors" "$tmp/brace.safetensors" <<'PY'
import struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
text = raw[8:8 + n].rstrip(b" "); text += b" " * ((123 - len(text)) % 256)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
    "$CUVAE" eval "$tmp/brace.safetensors" --set data.test_limit=50 >/dev/null 2>"$tmp/brace.err" \
        && ok "a checkpoint whose first byte is '{' (header length 123 mod 256) is read, not taken for JSON" \
        || bad "header length 123 mod 256: $(tail -1 "$tmp/brace.err")"
    "$CUVAE" eval "$tmp/rerun/model.safetensors" --iw 2 --iw-examples 100000 --set data.test_limit=40 \
        >"$tmp/iwcap.json" 2>"$tmp/iwcap.err"
    grep -q "importance sampling: 100000 examples asked for, the test set has 40: using 40" "$tmp/iwcap.err" \
        && grep -q '"examples": 40, .*"conditional_on_label": false' "$tmp/iwcap.json" \
        && ok "--iw-examples past the test set: said and capped; the iw block says it is not conditional" \
        || bad "iw cap: $(tail -1 "$tmp/iwcap.err")"
    # eval / sample / plot evaluate the weights as trained: model, loss and train keys are refused
    expect_error "eval --set model.activation refused (same shapes, another model)" 2 \
        "model.safetensors: --set model.activation: the model, loss and training keys are the checkpoint's .*eval, sample and plot take --set of data.\* \(not sample\), eval.\*, device, train.seed, train.precision, model.prior_of, name and description" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --set model.activation=tanh
    expect_error "sample --set loss.w_kl refused" 2 "--set loss.w_kl: the model, loss and training keys" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" --set loss.w_kl=2 -o "$tmp/x.png"
    expect_error "plot --set train.lr refused" 2 "--set train.lr: the model, loss and training keys" -- \
        "$CUVAE" plot "$tmp/rerun" --set train.lr=0.5
    "$CUVAE" eval "$tmp/rerun/model.safetensors" --set train.seed=3 --set data.test_limit=30 --set eval.iw_batch=50 --set name=relabelled \
        --set device=cpu >/dev/null 2>"$tmp/seed.err" && ok "eval takes --set of train.seed, data.*, eval.* and device" \
        || bad "eval --set train.seed: $(tail -1 "$tmp/seed.err")"
    expect_error "eval --set eval.iw_samples (eval's own option is --iw)" 2 \
        "eval: --set eval.iw_samples / eval.iw_examples: the importance-sampled bound of cuvae eval is --iw K" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --set eval.iw_samples=3
    expect_error "eval --set eval.iw_examples" 2 "eval: --set eval.iw_samples / eval.iw_examples: the importance-sampled bound" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --iw 2 --set eval.iw_examples=3
    expect_error "eval --set of the whole eval object with iw_samples" 2 "eval: --set eval.iw_samples / eval.iw_examples" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --set 'eval={"iw_samples": 50}'
    ln -s "$tmp/rerun/config.json" "$tmp/to_config.json"
    expect_error "eval -o through a link to a run's config.json" 2 \
        "eval: -o .*/to_config.json links to .*/rerun/config.json and would replace a run's config.json" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" -o "$tmp/to_config.json"
    expect_error "--iw with --z mean (it would be dropped)" 2 "eval: --iw K draws K samples of z per example; it cannot be combined with --z mean" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --z mean --iw 5
    "$CUVAE" eval "$tmp/rerun/model.safetensors" --z mean -o "$tmp/zmean.json" >/dev/null 2>&1
    grep -q '"z": "mean"' "$tmp/zmean.json" 2>/dev/null && grep -q '^{"name": "' "$tmp/zmean.json" \
        && ok "eval --z mean -o writes the file, with the run's name" || bad "eval --z mean -o: $(head -c 200 "$tmp/zmean.json")"
    # -o never replaces what the command reads, nor a run's files
    cp "$tmp/rerun/model.safetensors" "$tmp/keep.safetensors"
    expect_error "sample --set eval.iw_samples (it draws no bound): refused as eval refuses it" 2 \
        "sample: --set eval.iw_samples: sample draws no importance-weighted bound" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" --set eval.iw_samples=5 -o "$tmp/x.png"
    expect_error "sample --set eval.iw_batch: refused too (it is read by eval --iw only)" 2 \
        "sample: --set eval.iw_batch: sample draws no importance-weighted bound" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" --set eval.iw_batch=5 -o "$tmp/x.png"
    expect_error "eval of a vae --set data.train_limit (it evaluates on the test images alone)" 2 \
        "eval: .*/rerun/model.safetensors: --set data.validation / data.train_limit: eval of a vae evaluates on the test images alone" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --set data.train_limit=7
    expect_error "eval of a vae --set data.validation: refused too" 2 "eval of a vae evaluates on the test images alone" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --set data.validation=0.3
    "$CUVAE" eval "$tmp/rerun/model.safetensors" --set 'data={"dataset": "mnist", "dir": "data/mnist", "test_limit": 50}' \
        -o "$tmp/data_object.json" >/dev/null 2>"$tmp/data_object.err" && grep -q '"examples": 50' "$tmp/data_object.json" \
        && ok "eval of a vae --set data={...} without the split's keys: evaluated (they are not read)" \
        || bad "eval --set data={...}: $(tail -1 "$tmp/data_object.err")"
    expect_error "sample --set data.dir (it reads no data)" 2 \
        "sample: --set data.dir: sample reads no data \\(its images are the model's draws\\); data.\\* is read by eval and plot" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" --set data.dir=/nonexistent -o "$tmp/x.png"
    expect_error "sample --set data={...}: refused too" 2 "sample: --set data: sample reads no data" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" --set 'data={"train_limit": 7}' -o "$tmp/x.png"
    expect_error "sample --prior with an empty name" 2 "sample: --prior: the file name is empty" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" --prior "" -o "$tmp/x.png"
    expect_error "sample -o FILE.safetensors (it writes a PNG)" 2 "sample: -o .*/other.safetensors: sample writes a PNG image; give a name ending in .png" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" -o "$tmp/other.safetensors"
    cp "$tmp/rerun/model.safetensors" "$tmp/kept.safetensors"
    expect_error "eval -o FILE.safetensors (it writes JSON): refused, the file kept" 2 "eval: -o .*/kept.safetensors: eval writes a JSON object; give a name ending in .json" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" -o "$tmp/kept.safetensors"
    cmp -s "$tmp/rerun/model.safetensors" "$tmp/kept.safetensors" && ok "eval -o FILE.safetensors left the file as it was" \
        || bad "eval -o FILE.safetensors changed the file"
    expect_error "sample -o the checkpoint it reads" 2 "sample: -o .*/rerun/model.safetensors is the file sample reads" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" -o "$tmp/rerun/model.safetensors"
    expect_error "eval -o the checkpoint it reads" 2 "eval: -o .*/rerun/model.safetensors is the file eval reads" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" -o "$tmp/rerun/model.safetensors"
    ln -s "$tmp/rerun/model.safetensors" "$tmp/link.safetensors"
    expect_error "sample -o the checkpoint under another name (a link to it)" 2 \
        "sample: -o .*/rerun/model.safetensors is the same file as .*/link.safetensors, which sample reads" -- \
        "$CUVAE" sample "$tmp/link.safetensors" -o "$tmp/rerun/model.safetensors"
    # ... nor a data file it reads (a link named like a JSON file to a copy of the test images)
    cp -r data/mnist "$tmp/mnist_copy"; ln -s "$tmp/mnist_copy/t10k-images-idx3-ubyte.gz" "$tmp/data_link.json"
    expect_error "eval -o a data file it reads (through a link): refused, the data kept" 2 \
        "eval: -o .*/data_link.json is the same file as .*/mnist_copy/t10k-images-idx3-ubyte.gz, which eval reads" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --set data.dir="$tmp/mnist_copy" -o "$tmp/data_link.json"
    cmp -s data/mnist/t10k-images-idx3-ubyte.gz "$tmp/mnist_copy/t10k-images-idx3-ubyte.gz" \
        && ok "eval -o onto its test images left them as they were" || bad "eval -o onto its test images changed them"
    expect_error "eval -o a run's resume file" 2 "eval: -o .*/rerun/resume.safetensors would replace a run's resume.safetensors" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" -o "$tmp/rerun/resume.safetensors"
    expect_error "sample -o a run's config.json" 2 "sample: -o .*/rerun/config.json would replace a run's config.json" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" -o "$tmp/rerun/config.json"
    expect_error "eval -o into a missing folder: said before the evaluation runs" 2 \
        "eval: -o .*/nofolder/e.json: the folder .*/nofolder does not exist" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --iw 50 -o "$tmp/nofolder/e.json"
    expect_error "eval -o another run's eval.json (report would show this checkpoint's numbers as that run's)" 2 \
        "eval: -o .*/rerun3/eval.json would replace the eval.json of the run in .*/rerun3, which .*/rerun/model.safetensors is not from" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" -o "$tmp/rerun3/eval.json"
    first_progress=$(ls "$tmp/rerun/progress" | head -1)
    expect_error "sample -o a run's progress image" 2 \
        "sample: -o .*/rerun/progress/$first_progress would replace an image of the run in .*/rerun \(its progress/\)" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" -o "$tmp/rerun/progress/$first_progress"
    # ... or one of its figures (cuvae plot's, which report shows as the run's)
    figures_made=0; [ -d "$tmp/rerun/figures" ] || { mkdir "$tmp/rerun/figures"; figures_made=1; }
    cp "$tmp/rerun/progress/$first_progress" "$tmp/rerun/figures/samples.png"
    expect_error "sample -o a run's figure" 2 \
        "sample: -o .*/rerun/figures/samples.png would replace an image of the run in .*/rerun \(its figures/\)" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" -o "$tmp/rerun/figures/samples.png"
    cmp -s "$tmp/rerun/progress/$first_progress" "$tmp/rerun/figures/samples.png" && ok "... the figure is kept" \
        || bad "sample -o a run's figure replaced it"
    rm -f "$tmp/rerun/figures/samples.png"; [ $figures_made = 1 ] && rmdir "$tmp/rerun/figures"
    expect_error "eval -o a folder: said before the evaluation runs" 2 "eval: -o .*/rerun: not a regular file" -- \
        "$CUVAE" eval "$tmp/rerun/model.safetensors" --iw 50 -o "$tmp/rerun"
    expect_error "sample -o /dev/null: said before the sampling" 2 "sample: -o /dev/null: not a regular file" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" -o /dev/null
    # without -o, sample writes samples.png in the current folder: checked the same way, first
    mkdir -p "$tmp/samples_here/samples.png"
    expect_error "sample without -o where samples.png is a folder: said before the sampling, as the default -o" 2 \
        "sample: -o \(default\) samples.png: not a regular file" -- \
        env -C "$tmp/samples_here" "$(realpath "$(command -v "$CUVAE")")" sample "$tmp/rerun/model.safetensors"
    expect_error "sample --seed with --set train.seed (one would be dropped)" 2 \
        "sample: --seed and --set train.seed both seed the draws: give one" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" --seed 3 --set train.seed=1 -o "$tmp/x.png"
    cmp -s "$tmp/rerun/model.safetensors" "$tmp/keep.safetensors" && ok "the refused -o left the checkpoint as it was" \
        || bad "a refused -o changed the checkpoint"
    "$CUVAE" eval "$tmp/rerun/model.safetensors" --set data.test_limit=30 -o "$tmp/rerun/eval.json" >/dev/null 2>&1 \
        && grep -q '"test_loss"' "$tmp/rerun/eval.json" && ok "eval -o the run's eval.json rewrites it" \
        || bad "eval -o the run's eval.json"
    expect_error "sample -o a run's eval.json (a PNG where the run's numbers were)" 2 \
        "sample: -o .*/rerun/eval.json would replace a run's eval.json" -- \
        "$CUVAE" sample "$tmp/rerun/model.safetensors" -o "$tmp/rerun/eval.json"
    grep -q '"test_loss"' "$tmp/rerun/eval.json" && ok "... and the eval.json is left as it was" || bad "sample -o changed eval.json"
    rm -f "$tmp/rerun/log.jsonl"
    if command -v gnuplot >/dev/null; then
        expect_error "plot given the checkpoint, not its run folder" 2 \
            "plot: .*/rerun/model.safetensors is a file; give the run folder that holds it \(e.g. .*/rerun\)" -- \
            "$CUVAE" plot "$tmp/rerun/model.safetensors"
        for opt in --tsne-points --tsne-iterations; do
            expect_error "plot $opt on a 2-D latent (drawn with no t-SNE: it would be ignored)" 2 \
                "plot: $opt shapes the t-SNE of the latent scatter; this model's latent dim is 2, drawn directly" -- \
                "$CUVAE" plot "$tmp/units" $opt 50
        done
        "$CUVAE" plot "$tmp/rerun" 2>"$tmp/plot.err" && grep -q "loss curves skipped" "$tmp/plot.err" \
            && ok "plot without log.jsonl draws the rest" || bad "plot without log.jsonl: $(tail -1 "$tmp/plot.err")"
        # SIGTERM (or Ctrl-C) to plot at several moments: no temp file left, neither beside the
        # figures nor gnuplot's scratch files in TMPDIR (the signal ends plot: exit 143 / 130)
        mkdir -p "$tmp/plot_tmpdir"; left=""; codes=""
        for delay in 0.1 0.3 0.6; do
            TMPDIR="$tmp/plot_tmpdir" "$CUVAE" plot "$tmp/rerun" >/dev/null 2>&1 & pid=$!
            # (SIGTERM: a background job of a script has SIGINT ignored)
            sleep $delay; kill -TERM $pid 2>/dev/null; wait $pid; codes="$codes $?"
            left="$left$(ls "$tmp/rerun/figures" 2>/dev/null | grep '\.tmp\.')$(ls "$tmp/plot_tmpdir")"
        done
        [ -z "$left" ] && echo "$codes" | grep -qE '^( (0|143))+$' && echo "$codes" | grep -q 143 \
            && ok "plot interrupted at several moments: no temp file left (exits:$codes)" \
            || bad "plot interrupted: left '$left', exits:$codes"
        # SIGKILL (nothing can catch it) leaves plot's scratch files in TMPDIR: the next plot removes
        # those of processes of this machine that no longer run, saying so; never a running one's, another
        # machine's (a shared TMPDIR), nor a name cuvae does not write
        mkdir -p "$tmp/plot_killdir"
        host=$(printf %s "$(uname -n)" | tr -c 'A-Za-z0-9.' '-' | cut -c1-40)
        for delay in 0.5 1.5 2.5; do
            TMPDIR="$tmp/plot_killdir" "$CUVAE" plot "$tmp/rerun" >/dev/null 2>&1 & pid=$!
            sleep $delay; kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
        done
        sh -c 'exit 0' & dead=$!; wait $dead   # (a pid whose process has ended: one more killed plot's file)
        kept="cuvae_plot_${host}_$$_data_live cuvae_plot_data_old cuvae_plot_${host}_0${dead}_data_x cuvae_plot_${host}_+${dead}_data_x cuvae_plot_other-host_${dead}_data_x"
        for name in $kept "cuvae_plot_${host}_${dead}_script_Ab12Cd"; do touch "$tmp/plot_killdir/$name"; done
        killed_left=$(ls "$tmp/plot_killdir" | grep -c "^cuvae_plot_${host}_[1-9][0-9]*_[a-z]*_")
        TMPDIR="$tmp/plot_killdir" "$CUVAE" plot "$tmp/rerun" >/dev/null 2>"$tmp/plot_kill.err"
        [ "$(ls "$tmp/plot_killdir" | sort | tr '\n' ' ')" = "$(printf '%s\n' $kept | sort | tr '\n' ' ')" ] \
            && [ "$(grep -c "left by a plot that was killed" "$tmp/plot_kill.err")" -eq $((killed_left - 1)) ] \
            && ok "plot killed with SIGKILL: the next plot removes its scratch files in TMPDIR ($((killed_left - 1)), one made up, $((killed_left - 2)) left by 3 kills); not a running process's, another host's, nor odd names" \
            || bad "scratch files after SIGKILL: left $(ls "$tmp/plot_killdir" | tr '\n' ' '), $(grep -c "left by a plot" "$tmp/plot_kill.err") said of $((killed_left - 1))"
        rm -rf "$tmp/rerun/figures"
        # plot_refuses_log WHAT ERROR LINE...: plot over a log.jsonl of these lines is refused in one
        # line matching ERROR, exit 2, before any figure or folder
        plot_refuses_log() {
            local what=$1 want=$2 rc; shift 2
            printf '%s\n' "$@" > "$tmp/rerun/log.jsonl"
            "$CUVAE" plot "$tmp/rerun" >/dev/null 2>"$tmp/plot.err"; rc=$?
            [ "$rc" -eq 2 ] && [ "$(grep -c . "$tmp/plot.err")" -eq 1 ] && grep -q "$want" "$tmp/plot.err" \
                && [ ! -e "$tmp/rerun/figures" ] \
                && ok "$what: refused in one line ($want), exit 2, before any figure or folder" \
                || bad "$what: exit $rc, $(tail -1 "$tmp/plot.err")"
        }
        epoch_line() { echo "{\"epoch\": $1, \"train_loss\": 2, \"test_loss\": 2, \"test_rec\": 1, \"test_kl\": 1}"; }
        plot_refuses_log "plot with a truncated log.jsonl" "log.jsonl: line 1: not a JSON object" '{"epoch": 1, "train_loss": '
        plot_refuses_log "plot with epochs out of order (two logs joined)" "log.jsonl: line 2: epoch 1 where epoch 2 belongs" \
            "$(epoch_line 1)" "$(epoch_line 1)"
        # ... or with an epoch missing (epoch 3 on line 2: the curve would join 1 to 3 unsaid)
        plot_refuses_log "plot with a log that skips an epoch" "log.jsonl: line 2: epoch 3 where epoch 2 belongs" \
            "$(epoch_line 1)" "$(epoch_line 3)"
        rm -f "$tmp/rerun/log.jsonl"
        cp -r "$tmp/rerun" "$tmp/mixed"
        sed -i 's/"latent_dim": [0-9]*/"latent_dim": 7/' "$tmp/mixed/config.json"   # another run's config
        expect_error "plot: a checkpoint that is not the run's (config.json differs)" 2 \
            "model.safetensors: written by a run with another config \(stored line [0-9]+: .*latent_dim.*not the one in config.json" -- \
            "$CUVAE" plot "$tmp/mixed"
    else
        for case in "plot given the checkpoint" "plot --tsne-points on a 2-D latent" "plot --tsne-iterations on a 2-D latent" \
                    "plot without log.jsonl" "plot interrupted" "plot with a truncated log.jsonl" \
                    "plot with epochs out of order" "plot with a log that skips an epoch" \
                    "plot: a checkpoint that is not the run's"; do
            skip "$case" "gnuplot not installed"
        done
    fi
else
    bad "setup: the re-run checkpoint is missing"
fi

# a dangling link named like a data file is said, never read past (the plain file beside it was
# read without a word, and with no plain file it read "not found")
mkdir -p "$tmp/dangling_data"
for f in data/mnist/*-ubyte.gz; do ln -sf "$(realpath "$f")" "$tmp/dangling_data/"; done
ln -sf "$tmp/nowhere.gz" "$tmp/dangling_data/t10k-labels-idx1-ubyte.gz"
gunzip -c data/mnist/t10k-labels-idx1-ubyte.gz > "$tmp/dangling_data/t10k-labels-idx1-ubyte"
expect_error "a dangling NAME.gz link beside NAME: said, not read past" 2 \
    "dangling_data/t10k-labels-idx1-ubyte.gz: cannot be read \(a dangling link, or a loop of links\?\)" -- \
    "$CUVAE" train configs/examples_vae.json --set data.dir="$tmp/dangling_data" --out "$tmp/dangling_run"
ln -sf "$(realpath data/mnist/t10k-labels-idx1-ubyte.gz)" "$tmp/dangling_data/t10k-labels-idx1-ubyte.gz"
ln -sf "$tmp/nowhere" "$tmp/dangling_data/t10k-labels-idx1-ubyte"
expect_error "a dangling NAME link beside NAME.gz: said, not read past" 2 \
    "dangling_data/t10k-labels-idx1-ubyte: cannot be read \(a dangling link, or a loop of links\?\) beside .*/t10k-labels-idx1-ubyte.gz" -- \
    "$CUVAE" train configs/examples_vae.json --set data.dir="$tmp/dangling_data" --out "$tmp/dangling_run"
expect_error "data.dir a file: says it is not a folder" 2 'data.dir README.md: not a folder' -- \
    "$CUVAE" train configs/examples_vae.json --set data.dir=README.md --out "$tmp/notdir"
# an objective that is 0 whatever the weights trains nothing; factors that round to 1 in float32
expect_error "an ae with w_rec 0: refused" 2 "loss.w_rec: is 0, and an autoencoder's objective is w_rec rec alone" -- \
    "$CUVAE" train configs/lectures/ae_dim2.json --set loss.w_rec=0 --out "$tmp/zero_ae"
expect_error "a vae with w_rec and w_kl 0: refused" 2 "loss: w_rec and w_kl are both 0: the objective w_rec rec \+ w_kl KL would be 0" -- \
    "$CUVAE" train configs/mnist_vae.json --set loss.w_rec=0 --set loss.w_kl=0 --out "$tmp/zero_vae"
expect_error "a vae with w_rec 0 and capacity gamma 0: refused" 2 "loss: w_rec and capacity.gamma are both 0" -- \
    "$CUVAE" train configs/lectures/capacity_vae_dim10.json --set loss.w_rec=0 --set loss.capacity.gamma=0 --out "$tmp/zero_vae"
for kind in made_h500 pixelcnn_binary; do
    expect_error "$kind with w_rec 0: refused" 2 "loss.w_rec: is 0, and kind \"(made|pixelcnn)\" trains w_rec \(-log p\(x\)\) alone" -- \
        "$CUVAE" train configs/lectures/$kind.json --set loss.w_rec=0 --out "$tmp/zero_ae"
done
expect_error "a vq_vae with w_rec 0, beta 0 and the ema update: refused" 2 \
    "^cuvae: --set loss.w_rec=0 --set model.codebook.beta=0 \(over configs/lectures/vq_vae_k256.json\): loss: w_rec is 0 with model.codebook.beta 0 and the ema update: the encoder and decoder would get no gradient" -- \
    "$CUVAE" train configs/lectures/vq_vae_k256.json --set loss.w_rec=0 --set model.codebook.beta=0 --set model.codebook.update=ema --out "$tmp/zero_ae"
"$CUVAE" train configs/lectures/kl_only_dim2.json --set data.train_limit=200 --set data.test_limit=100 --set train.epochs=1 \
    --set device=cpu --set eval.iw_samples=0 --out "$tmp/kl_only" >/dev/null 2>"$tmp/kl_only.err" \
    && ok "w_rec 0 with a KL term still trains (the lecture's KL-only run)" || bad "kl_only: $(tail -1 "$tmp/kl_only.err")"
grep -q "note: loss.w_rec is 0: the decoder gets no gradient and keeps its initial weights .*only the encoder and its KL term train" "$tmp/kl_only.err" \
    && ok "... and says that its decoder keeps its initial weights" || bad "kl_only: no w_rec 0 note: $(grep note "$tmp/kl_only.err")"
"$CUVAE" train configs/lectures/vq_vae_k256.json --set loss.w_rec=0 --set data.train_limit=100 --set data.test_limit=50 \
    --set train.epochs=1 --set device=cpu --set train.epoch_images=false --out "$tmp/vq_w0" >/dev/null 2>"$tmp/vq_w0.err"
grep -q "note: loss.w_rec is 0: the decoder gets no gradient .*only the encoder and its codebook train" "$tmp/vq_w0.err" \
    && ok "a vq_vae with w_rec 0 trains and says that its decoder keeps its initial weights" \
    || bad "vq_vae w_rec 0: $(grep -E 'note|cuvae:' "$tmp/vq_w0.err" | tail -1)"
[ ! -e "$tmp/zero_ae" ] && [ ! -e "$tmp/zero_vae" ] && ok "... the refused runs made no folder" || bad "a refused zero-objective run made a folder"
expect_error "SGD momentum that rounds to 1 in float32" 2 "train.momentum: 0.99999999 rounds to 1 in float32, the type SGD computes in" -- \
    "$CUVAE" train configs/mnist_vae.json --set train.optimizer=sgd --set train.momentum=0.99999999 --out "$tmp/m1"
expect_error "an EMA decay that rounds to 1 in float32" 2 "model.codebook.decay: 0.99999999 rounds to 1 in float32, the type the EMA update computes in" -- \
    "$CUVAE" train configs/lectures/vq_vae_k256.json --set model.codebook.decay=0.99999999 --out "$tmp/d1"
expect_error "a codebook beta below float32's range: says so (not 'must be >= 0')" 2 "model.codebook.beta: 1e-50 rounds to 0 in float32" -- \
    "$CUVAE" train configs/lectures/vq_vae_k256.json --set model.codebook.beta=1e-50 --out "$tmp/b1"
# a CUDA build on a machine without a GPU (no /dev/nvidia*): device auto falls back saying
# "no NVIDIA GPU/driver found" (the runtime's "insufficient driver" with no driver at all is not
# an old driver), device cuda is refused saying the same
if ! "$CUVAE" --version | grep -q "cuda backends"; then
    skip "no-GPU messages of a CUDA build" "this build has no CUDA backend"
elif ls /dev/nvidia* >/dev/null 2>&1; then
    skip "no-GPU messages of a CUDA build" "this machine has an NVIDIA device"
else
    "$CUVAE" train configs/examples_vae.json --set data.train_limit=256 --set data.test_limit=64 --set train.epochs=1 \
        --set device=auto --out "$tmp/nogpu" 2>"$tmp/nogpu.err"; rc=$?
    [ $rc -eq 0 ] && grep -qx "cuvae: device auto: no NVIDIA GPU/driver found, using the CPU" "$tmp/nogpu.err" \
        && ok "no GPU: device auto says so and trains on the CPU" || bad "no GPU, device auto: rc $rc: $(grep device "$tmp/nogpu.err" | head -1)"
    expect_error "no GPU: device cuda refused, saying so" 2 'device "cuda" requested but unusable: no NVIDIA GPU/driver found$' -- \
        "$CUVAE" train configs/examples_vae.json --set device=cuda --out "$tmp/nogpu_cuda"
fi
cli_finish cli_errors

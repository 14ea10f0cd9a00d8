#!/usr/bin/env bash
# lectures.sh: `make lectures`: trains every config in configs/lectures/
# (train writes eval.json), draws its figures (cuvae plot), and writes one page,
# runs/lectures/index.html (cuvae report configs/lectures/index.json).
# FULL=1 trains for each config's train.full_epochs (lecture length; meant for a GPU).
# LECTURES_OUT (default runs/lectures), LECTURES_SET (extra "--set k=v" words, used by
# the tests to shrink the runs), CUVAE (default build/cuvae); relative paths given are taken from the
# caller's directory (the defaults from the repository's).
# A prior over a VQ-VAE's codes (model.prior_of "runs/lectures/RUN/model.safetensors") reads
# the checkpoint of RUN in this lecture set ($OUT/RUN): configs sort after the run they model.
set -euo pipefail
# a relative LECTURES_OUT or CUVAE path (one with a '/') given by the caller is the caller's
caller=$PWD
from_caller() { case "$1" in /*) echo "$1" ;; */*) echo "$caller/$1" ;; *) echo "$1" ;; esac; }
[ -n "${CUVAE:-}" ] && CUVAE=$(from_caller "$CUVAE")
[ -n "${LECTURES_OUT:-}" ] && case "$LECTURES_OUT" in /*) ;; *) LECTURES_OUT=$caller/$LECTURES_OUT ;; esac
cd "$(dirname "$0")/.."
CUVAE=${CUVAE:-build/cuvae}
OUT=${LECTURES_OUT:-runs/lectures}
read -r -a extra <<< "${LECTURES_SET:-}"
full=()
[ "${FULL:-0}" = "1" ] && full=(--full)
shared_runs=(kl_only_dim2 mse_only_dim2 vae_dim2)
is_ablation() { local r; for r in "${shared_runs[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }
mkdir -p "$OUT"
start=$(date +%s)
for cfg in configs/lectures/*.json; do
    name=$(basename "$cfg" .json)
    [ "$name" = "index" ] && continue
    echo "== lectures: $name ($(($(date +%s) - start)) s so far)"
    prior=()
    of=$(sed -nE 's/.*"prior_of": "runs\/lectures\/([^/"]+)\/model\.safetensors".*/\1/p' "$cfg")
    [ -n "$of" ] && prior=(--set "model.prior_of=$OUT/$of/model.safetensors")
    "$CUVAE" train "$cfg" --out "$OUT/$name" --overwrite "${full[@]}" "${extra[@]}" "${prior[@]}" 2> "$OUT/$name.train.log" \
        || { tail -3 "$OUT/$name.train.log" >&2; exit 1; }
    grep -E "^epoch [0-9]+/[0-9]+:|eval:" "$OUT/$name.train.log" | tail -2
    z=()
    is_ablation "$name" && z=(--z sample)
    "$CUVAE" plot "$OUT/$name" "${z[@]}" 2> "$OUT/$name.plot.log" || { tail -3 "$OUT/$name.plot.log" >&2; exit 1; }
done
# The ablation's scatters (KL only, reconstruction only, both) share axes so they can be
# compared: the union of the codes' extents that plot printed, then those scatters redrawn.
# They place one z ~ q(z|x) per test image (plot --z sample), as deck 001's slide does: KL
# alone makes every q(z|x) N(0, I), a cloud of draws whose means sit at one point.
range=$(for name in "${shared_runs[@]}"; do grep "latent scatter extent:" "$OUT/$name.plot.log"; done |
        sed -E 's/.*z1 \[([^,]+), ([^]]+)\], z2 \[([^,]+), ([^]]+)\].*/\1 \2 \3 \4/' |
        awk 'NR == 1 { lo = $1; hi = $2 } { for (i = 1; i <= 4; i += 2) { if ($i < lo) lo = $i; if ($(i+1) > hi) hi = $(i+1) } }
             END { if (NR) { pad = 0.05 * (hi - lo); if (pad <= 0) pad = 1; printf "%.4g:%.4g", lo - pad, hi + pad } }')
if [ -n "$range" ]; then
    echo "== lectures: ablation scatters share axes [$range]"
    for name in "${shared_runs[@]}"; do
        "$CUVAE" plot "$OUT/$name" --z sample --latent-range "$range" 2> "$OUT/$name.plot.log" \
            || { tail -3 "$OUT/$name.plot.log" >&2; exit 1; }
    done
fi
"$CUVAE" report configs/lectures/index.json "$OUT"
echo "lectures: done in $(($(date +%s) - start)) s; open $OUT/index.html"

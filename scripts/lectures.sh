#!/usr/bin/env bash
# lectures.sh: `make lectures`: trains every config in configs/lectures/
# (train writes eval.json), draws its figures (cuvae plot), and writes one page,
# runs/lectures/index.html (cuvae report configs/lectures/index.json).
# FULL=1 trains for each config's train.full_epochs (lecture length; meant for a GPU).
# LECTURES_OUT (default runs/lectures), LECTURES_SET (extra "--set k=v" words, used by
# the tests to shrink the runs), CUVAE (default build/cuvae).
set -euo pipefail
cd "$(dirname "$0")/.."
CUVAE=${CUVAE:-build/cuvae}
OUT=${LECTURES_OUT:-runs/lectures}
read -r -a extra <<< "${LECTURES_SET:-}"
full=()
[ "${FULL:-0}" = "1" ] && full=(--full)
mkdir -p "$OUT"
start=$(date +%s)
for cfg in configs/lectures/*.json; do
    name=$(basename "$cfg" .json)
    [ "$name" = "index" ] && continue
    echo "== lectures: $name ($(($(date +%s) - start)) s so far)"
    "$CUVAE" train "$cfg" --out "$OUT/$name" --overwrite "${full[@]}" "${extra[@]}" 2> "$OUT/$name.train.log" \
        || { tail -3 "$OUT/$name.train.log" >&2; exit 1; }
    grep -E "^epoch [0-9]+/[0-9]+:|eval:" "$OUT/$name.train.log" | tail -2
    "$CUVAE" plot "$OUT/$name" 2> "$OUT/$name.plot.log" || { tail -3 "$OUT/$name.plot.log" >&2; exit 1; }
done
"$CUVAE" report configs/lectures/index.json "$OUT"
echo "lectures: done in $(($(date +%s) - start)) s; open $OUT/index.html"

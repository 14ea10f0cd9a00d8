#!/usr/bin/env bash
# cli_torch.sh: a cuvae checkpoint (VAE, AE, CVAE) loaded into a PyTorch model of the same shape
# (tests/torch_check.py) gives the same KL and reconstruction (z = mu) to 1e-4
# relative, and a sampled test loss within 5 standard errors of the Monte-Carlo
# difference of two one-sample ELBO estimates (the epsilon draws differ), plus 0.05 nats.
# Skipped, and counted so, when Debian's python3-torch is not installed.
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
torch_or_skip cli_torch "pytorch checkpoint parity" data/mnist/t10k-images-idx3-ubyte.gz
field() { echo "$1" | sed -E "s/.*\"$2\": ([-0-9.e+]+).*/\1/"; }
close() { awk -v a="$1" -v b="$2" -v r="$3" -v t="$4" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; exit !(d <= t + r * m) }'; }
for variant in "vae relu" "vae tanh" "ae relu" "cvae leaky_relu"; do
    set -- $variant
    "$CUVAE" train configs/examples_vae.json --set model.kind=$1 --set model.activation=$2 \
        --set data.train_limit=2000 --set data.test_limit=2000 --set device=cpu --set train.epochs=1 \
        --out "$tmp/$1_$2" 2>/dev/null || { bad "$variant: training failed"; continue; }
    ckpt="$tmp/$1_$2/model.safetensors"
    mean=$("$CUVAE" eval "$ckpt" --z mean --set data.test_limit=2000)
    sample=$("$CUVAE" eval "$ckpt" --set data.test_limit=2000)
    torch_out=$($PY tests/torch_check.py "$ckpt" data/mnist 2000) || { bad "$variant: torch_check.py failed"; continue; }
    echo "  $variant: cuvae kl $(field "$mean" kl) rec@mu $(field "$mean" rec) loss $(field "$sample" test_loss) | torch $torch_out" >&2
    close "$(field "$mean" kl)" "$(field "$torch_out" kl)" 1e-4 1e-5 && ok "$variant: same KL" || bad "$variant: KL differs"
    close "$(field "$mean" rec)" "$(field "$torch_out" rec_at_mean)" 1e-4 1e-4 && ok "$variant: same rec at z = mu" || bad "$variant: rec differs"
    tol=$(awk -v s="$(field "$torch_out" diff_std_error)" 'BEGIN { print 5 * s + 0.05 }')
    close "$(field "$sample" test_loss)" "$(field "$torch_out" test_loss)" 0 "$tol" \
        && ok "$variant: sampled test loss within $tol nats (5 MC std errors)" || bad "$variant: test loss differs by more than $tol"
done
# A DCGAN-style conv VAE with batch norm (layer lists), loaded by scripts/cuvae_torch.py as
# nn.Conv2d / nn.BatchNorm2d / nn.ConvTranspose2d modules with strict=True: KL and the
# reconstruction at z = mu agree to 1e-5 relative (eval mode: running statistics).
cat > "$tmp/conv.json" <<'JSON'
{"name": "conv_torch", "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 3000, "test_limit": 2000},
 "model": {"kind": "vae", "input_dim": 784, "latent_dim": 8,
   "encoder": [{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, {"leaky_relu": 0.2},
               {"conv2d": 16, "kernel": 3, "stride": 2, "padding": 1}, {"batch_norm": {}}, {"leaky_relu": 0.2}, "flatten"],
   "decoder": [{"linear": 784}, {"reshape": [16, 7, 7]}, {"batch_norm": {"momentum": 0.3}}, "relu",
               {"conv_transpose2d": 8, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1},
               {"batch_norm": {}}, "tanh", {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1}],
   "output": "bernoulli"},
 "train": {"epochs": 1, "batch_size": 50, "lr": 0.002, "seed": 2, "epoch_images": false}, "device": "cpu"}
JSON
if "$CUVAE" train "$tmp/conv.json" --out "$tmp/conv" 2>/dev/null; then
    ckpt="$tmp/conv/model.safetensors"
    mean=$("$CUVAE" eval "$ckpt" --z mean)
    torch_out=$($PY tests/torch_check.py "$ckpt" data/mnist 2000) || bad "conv vae: torch_check.py failed"
    echo "  conv vae: cuvae kl $(field "$mean" kl) rec@mu $(field "$mean" rec) | torch $torch_out" >&2
    close "$(field "$mean" kl)" "$(field "$torch_out" kl)" 1e-5 1e-6 && ok "conv vae + batch norm: same KL (1e-5)" || bad "conv vae: KL differs"
    close "$(field "$mean" rec)" "$(field "$torch_out" rec_at_mean)" 1e-5 1e-6 \
        && ok "conv vae + batch norm: same rec at z = mu (1e-5)" || bad "conv vae: rec differs"
    # run as a script, the loader refuses what cuvae refuses in one CheckpointError line, exit 2: here a
    # __metadata__ value that is not a string (more files below, in one Python process)
    $PY - "$ckpt" "$tmp/edited_meta.safetensors" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); header["__metadata__"]["format"] = 1
text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
    expect_error "cuvae_torch.py CKPT whose __metadata__.format is a number: one CheckpointError line, exit 2" 2 \
        "^cuvae_torch: .*: metadata 'format': value is not a string" -- $PY scripts/cuvae_torch.py "$tmp/edited_meta.safetensors"
else
    bad "conv vae: training failed"
fi
# Files cuvae refuses, edited from the conv VAE and the cvae above (the checksums recomputed unless
# the edit is of them, so only the content is wrong): a layer option cuvae does not know, a tensor of
# another shape, the container, the metadata, layer options out of range, ... cuvae_torch.py's main()
# gives exit 2 and one line saying what cuvae eval says (both checked for the same words), and loads
# the file cuvae accepts (crc32 and crc32_entries in uppercase hex). One Python process for them all.
if [ -s "$tmp/conv/model.safetensors" ]; then
    $PY - "$tmp" "$tmp/conv/model.safetensors" "$tmp/cvae_leaky_relu/model.safetensors" > "$tmp/refusals.txt" <<'PY'
import contextlib, io, json, os, struct, sys, zlib
sys.path.insert(0, "scripts")
from cuvae_torch import main
out, conv, cvae = sys.argv[1:4]
CASES = [   # name, source, edit (of h: header, meta, model: the config's, data; dup: a tensor twice), cuvae's words
    ("option", conv, 'model["encoder"][0]["dilation"] = 2', "model.encoder[0].dilation: unknown option of conv2d"),
    ("shape", conv, 'h["encoder.0.weight"]["shape"].reverse()',
     "tensor encoder.0.weight: shape [4, 4, 1, 8], model needs [8, 1, 4, 4]"),
    ("fmt_missing", conv, 'del meta["format"]', '__metadata__.format: expected "cuvae-1", got nothing'),
    ("fmt_other", conv, 'meta["format"] = "cuvae-2"', '__metadata__.format: expected "cuvae-1", got "cuvae-2"'),
    ("nocrc", conv, 'del meta["crc32"], meta["crc32_entries"]', "__metadata__.crc32, which is missing"),
    ("upper", conv, "upper = True", ""),   # crc32 and crc32_entries in uppercase hex: cuvae reads them
    ("overlap", conv, 'h["logvar.bias"]["data_offsets"] = h["mu.bias"]["data_offsets"]', "have overlapping data_offsets"),
    ("hole", conv, "data += bytes(16)", "belong to no tensor (after the last tensor"),
    ("dup_tensor", conv, 'dup = "mu.bias"', "duplicate key 'mu.bias' in header"),
    ("shape_ovf", conv, 'h["extra"] = {"dtype": "F32", "shape": [2 ** 32, 2 ** 32], "data_offsets": [len(data)] * 2}',
     "tensor 'extra': shape is too large"),
    ("lin_kernel", conv, 'model["decoder"][0]["kernel"] = 3', "model.decoder[0].kernel: unknown option: linear takes none"),
    ("bn_eps_neg", conv, 'model["encoder"][3] = {"batch_norm": {"eps": -1}}', "model.encoder[3].eps: must be in [1e-12, 1], got -1"),
    ("lrelu_str", conv, 'model["encoder"][1] = {"leaky_relu": "0.2"}',
     "model.encoder[1].leaky_relu: must be a number, a list of numbers or an object of options, got a string"),
    ("stride0", conv, 'model["encoder"][0]["stride"] = 0', "model.encoder[0].stride: must be in [1, 64], got 0"),
    ("latneg", conv, 'model["latent_dim"] = -1', "model.latent_dim: must be >= 1, got -1"),
    ("classes_bad", cvae, 'meta["data_classes"] = "abc"', "__metadata__.data_classes: expected the classes of the run's data"),
]
for name, source, edit, words in CASES:
    if not os.path.exists(source):
        print(f"{name}\x1fnone\x1f\x1f{words}\x1f{source} (not trained)")
        continue
    raw = open(source, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:]); meta = h["__metadata__"]
    cfg = json.loads(meta["config"]); model = cfg["model"]; dup = None; upper = False
    exec(edit)
    meta["config"] = json.dumps(cfg)
    if "crc32" in meta:   # only the content is wrong: crc32 recomputed, crc32_entries left out (or uppercase)
        if upper:
            meta["crc32_entries"] = meta["crc32_entries"].upper()
        else:
            meta.pop("crc32_entries", None)
        meta.pop("crc32")
        crc = zlib.crc32(bytes(data))
        for key, value in meta.items():
            crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
        meta["crc32"] = ("%08X" if upper else "%08x") % crc
    text = json.dumps(h)
    if dup:
        text = text[:-1] + f", {json.dumps(dup)}: {json.dumps(h[dup])}}}"
    text = text.encode() + b" " * (-(8 + len(text)) % 8)
    path = f"{out}/refused_{name}.safetensors"
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + bytes(data))
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["cuvae_torch.py", path])
    except BaseException as e:   # (a traceback is the bug this guards against)
        rc, err = "raised", io.StringIO(f"{type(e).__name__}: {e}".replace("\n", " "))
    said = err.getvalue().rstrip("\n")
    print(f"{name}\x1f{rc}\x1f{said.count(chr(10)) + 1 if said else 0}\x1f{words}\x1f{said}")   # (\x1f: fields may be empty)
PY
    while IFS=$'\x1f' read -r name rc _; do   # cuvae eval on each, two at a time (its first stderr line)
        [ "$rc" = none ] || { "$CUVAE" eval "$tmp/refused_$name.safetensors" --set data.test_limit=100 2>&1 >/dev/null \
            | head -1 > "$tmp/refused_$name.txt" & }
        [ "$(jobs -r | wc -l)" -lt 2 ] || wait -n
    done < "$tmp/refusals.txt"
    wait
    while IFS=$'\x1f' read -r name rc lines words said; do
        if [ "$rc" = none ]; then skip "cuvae_torch.py, $name" "$said"; continue; fi
        ours=$(cat "$tmp/refused_$name.txt")
        if [ -z "$words" ]; then   # cuvae accepts it: so does the loader
            [ "$rc" = 0 ] && [ -z "$ours" ] && ok "cuvae_torch.py loads the $name checkpoint, as cuvae eval does" \
                || bad "cuvae_torch.py, $name: exit $rc: $said | cuvae eval: $ours"
            continue
        fi
        [ "$rc" = 2 ] && [ "$lines" = 1 ] && [[ "$said" == "cuvae_torch: "*"$words"* ]] && [[ "$ours" == "cuvae: "*"$words"* ]] \
            && ok "cuvae_torch.py: $name: one CheckpointError line, exit 2, in cuvae eval's words ($words)" \
            || bad "cuvae_torch.py, $name: exit $rc, $lines lines: $said | cuvae eval: $ours"
    done < "$tmp/refusals.txt"
    [ "$(grep -c . "$tmp/refusals.txt")" -eq 16 ] || bad "cuvae_torch.py refusals: $(grep -c . "$tmp/refusals.txt") of 16 cases ran"
fi
# A VQ-VAE (EMA codebook with dead-code restart): PyTorch picks the same code at every
# position of every test image (the code histograms are equal), and gives the same
# reconstruction and VQ term to 1e-5 relative.
cat > "$tmp/vq.json" <<'JSON'
{"name": "vq_torch", "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 3000, "test_limit": 2000},
 "model": {"kind": "vq_vae", "input_dim": 784, "latent_dim": 8,
   "encoder": [{"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu",
               {"conv2d": 16, "kernel": 4, "stride": 2, "padding": 1}, {"batch_norm": {}}, "relu", {"conv2d": 8, "kernel": 1}],
   "codebook": {"size": 32, "update": "ema", "restart_dead": 0.05},
   "decoder": [{"conv_transpose2d": 16, "kernel": 4, "stride": 2, "padding": 1}, "relu",
               {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1}],
   "output": "bernoulli"},
 "train": {"epochs": 1, "batch_size": 50, "lr": 0.002, "seed": 2, "epoch_images": false}, "device": "cpu"}
JSON
if "$CUVAE" train "$tmp/vq.json" --out "$tmp/vq" 2>/dev/null; then
    ckpt="$tmp/vq/model.safetensors"
    "$CUVAE" eval "$ckpt" -o "$tmp/vq_eval.json" >/dev/null 2>&1
    torch_out=$($PY tests/torch_check.py "$ckpt" data/mnist 2000) || bad "vq-vae: torch_check.py failed"
    echo "$torch_out" > "$tmp/vq_torch.json"
    $PY - "$tmp/vq_eval.json" "$tmp/vq_torch.json" <<'PY' && ok "vq-vae: PyTorch chooses the same codes (code histograms equal but for near-tie flips, at most 1 in 10,000 positions) and gives the same rec and VQ term (1e-5)" || bad "vq-vae: differs from PyTorch"
import json, sys
ours, theirs = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
# Both sides compute the distances in float32 with their own summation order (cuvae's GEMM
# slices, PyTorch's convolution), so a position whose two nearest codes tie to the last bits
# may choose either: with OpenBLAS's Haswell kernels one of the 98,000 positions here did.
positions = sum(theirs["code_counts"])
flips = sum(abs(a - b) for a, b in zip(ours["code_counts"], theirs["code_counts"])) // 2
print(f"  vq-vae: cuvae rec {ours['rec']:.6f} vq {ours['vq']:.6f} codes used {ours['codes_used']} | "
      f"torch rec {theirs['rec']:.6f} vq {theirs['vq']:.6f} | {flips} of {positions} positions' codes differ "
      f"(from the histograms)", file=sys.stderr)
close = lambda a, b: abs(a - b) <= 1e-5 * abs(b) + 1e-6
sys.exit(0 if len(ours["code_counts"]) == len(theirs["code_counts"]) and flips <= positions // 10000
         and close(ours["rec"], theirs["rec"]) and close(ours["vq"], theirs["vq"]) else 1)
PY
else
    bad "vq-vae: training failed"
fi
# A PixelCNN prior over the VQ-VAE's codes whose network starts with a 1x1 convolution and ends in a
# residual connection: its K (32 codes) is the channels of the last convolution. PyTorch gives
# eval's exact -log p(codes) (1e-5); so does the file whose stored config leaves out the masked
# convolution's padding (cuvae's default, (kernel - 1) / 2, not 0); and after model.double().
cat > "$tmp/prior.json" <<JSON
{"name": "prior_torch", "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 1000, "test_limit": 500},
 "model": {"kind": "pixelcnn", "input_dim": 49, "prior_of": "$tmp/vq/model.safetensors",
   "network": [{"conv2d": 32, "kernel": 1}, {"masked_conv2d_a": 32, "kernel": 3}, "relu",
               {"conv2d": 32, "kernel": 1}, {"residual": 2}]},
 "train": {"epochs": 1, "batch_size": 50, "lr": 0.002, "seed": 2, "epoch_images": false}, "device": "cpu"}
JSON
if [ -s "$tmp/vq/model.safetensors" ] && "$CUVAE" train "$tmp/prior.json" --out "$tmp/prior" 2>/dev/null; then
    torch_out=$($PY - "$tmp/prior/model.safetensors" "$tmp/prior_nopad.safetensors" <<'PY'
import json, struct, sys, zlib
import numpy as np
import torch
sys.path.insert(0, "scripts"); sys.path.insert(0, "tests")
from cuvae_torch import load
from torch_check import read_idx_images
src, dst = sys.argv[1:3]
raw = open(src, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n]); data = raw[8 + n:]; meta = h["__metadata__"]
cfg = json.loads(meta["config"]); del cfg["model"]["network"][1]["padding"]; meta["config"] = json.dumps(cfg)
meta.pop("crc32_entries"); meta.pop("crc32")
crc = zlib.crc32(data)
for key, value in meta.items():
    crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
meta["crc32"] = "%08x" % crc
text = json.dumps(h).encode(); text += b" " * (-(8 + len(text)) % 8)
open(dst, "wb").write(struct.pack("<Q", len(text)) + text + data)
prior, nopad = load(src), load(dst)
x = torch.from_numpy(read_idx_images("data/mnist/t10k-images-idx3-ubyte.gz")[:500].reshape(500, -1).astype(np.float32)) / 255
with torch.no_grad():
    codes, _ = load(prior.cfg["model"]["prior_of"]).encode(x)
    nll = [-m.log_prob(codes).double().mean().item() for m in (prior, nopad, prior.double())]
print(json.dumps({"nll": nll[0], "nll_nopad": nll[1], "nll_double": nll[2], "K": prior.net_shape[0],
                  "padding": list(nopad.network[1].padding)}))
PY
) || bad "pixelcnn prior: the PyTorch check failed"
    ours=$("$CUVAE" eval "$tmp/prior/model.safetensors")
    echo "  pixelcnn prior: cuvae -log p $(field "$ours" test_loss) | torch $torch_out" >&2
    close "$(field "$ours" test_loss)" "$(field "$torch_out" nll)" 1e-5 1e-6 \
        && ok "pixelcnn prior ending in a residual: PyTorch's exact -log p(codes) is eval's (1e-5)" \
        || bad "pixelcnn prior: -log p differs"
    close "$(field "$ours" test_loss)" "$(field "$torch_out" nll_nopad)" 1e-5 1e-6 && echo "$torch_out" | grep -q '"padding": \[1, 1\]' \
        && ok "pixelcnn prior, stored config without the masked convolution's padding: cuvae's default (1, 1), eval's -log p" \
        || bad "pixelcnn prior without padding: -log p differs or the padding is not (1, 1)"
    close "$(field "$torch_out" nll_double)" "$(field "$torch_out" nll)" 1e-5 1e-6 \
        && ok "pixelcnn prior after model.double(): the same -log p (the one-hot codes in the network's dtype)" \
        || bad "pixelcnn prior after model.double(): differs"
else
    bad "pixelcnn prior: training failed (or no VQ-VAE)"
fi
# the way back: cuvae_torch.save writes a loaded model (its weights changed in PyTorch or not) as a
# checkpoint cuvae reads -- unchanged, the same evaluation to the byte; halved, what PyTorch computes
if [ -s "$tmp/vae_relu/model.safetensors" ]; then
    back=$(cd "$tmp" && $PY - "$OLDPWD" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1] + "/scripts"); sys.path.insert(0, sys.argv[1] + "/tests")
import torch
from cuvae_torch import load, save
model = load("vae_relu/model.safetensors")
save(model, "same.safetensors")
with torch.no_grad():
    for p in model.parameters():
        p.mul_(0.5)
save(model, "half.safetensors")
again = load("half.safetensors")
same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
import torch.nn.utils.prune as prune   # a pruned module's weight_orig + weight_mask: refused, then saved
linear = next(m for m in again.modules() if isinstance(m, torch.nn.Linear))
prune.l1_unstructured(linear, "weight", 0.5)
try:
    save(again, "pruned.safetensors")
    refused = ""
except ValueError as e:
    refused = str(e)
prune.remove(linear, "weight")
save(again, "pruned.safetensors")
import struct
def written_by(path):
    raw = open(path, "rb").read()
    return json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]["written_by"]
first, second = written_by("same.safetensors"), written_by("pruned.safetensors")   # (pruned: saved twice over)
print(json.dumps({"reloaded_equal": same, "prune_refused": "prune.remove() first" in refused,
                  "written_by": first.startswith("scripts/cuvae_torch.py (PyTorch ") and
                  ", from a checkpoint written by cuvae " in first and first.endswith(")") and second == first,
                  "pruned_zeros": int((load("pruned.safetensors").state_dict()["encoder.0.weight"] == 0).sum())}))
PY
) || bad "cuvae_torch.save: the PyTorch side failed"
    orig=$("$CUVAE" eval "$tmp/vae_relu/model.safetensors" --z mean --set data.test_limit=2000)
    same=$("$CUVAE" eval "$tmp/same.safetensors" --z mean --set data.test_limit=2000 2>"$tmp/same.err")
    [ -n "$same" ] && [ "$same" = "$orig" ] && ok "cuvae_torch.save of an unchanged model: cuvae's evaluation of it is the original's" \
        || bad "save unchanged: $(tail -1 "$tmp/same.err")"
    half=$("$CUVAE" eval "$tmp/half.safetensors" --z mean --set data.test_limit=2000 2>"$tmp/half.err")
    torch_half=$($PY tests/torch_check.py "$tmp/half.safetensors" data/mnist 2000 2>/dev/null)
    echo "$back" | grep -q '"reloaded_equal": true' && [ -n "$half" ] && [ "$half" != "$orig" ] \
        && close "$(field "$half" kl)" "$(field "$torch_half" kl)" 1e-4 1e-5 \
        && close "$(field "$half" rec)" "$(field "$torch_half" rec_at_mean)" 1e-4 1e-4 \
        && echo "$back" | grep -q '"written_by": true' \
        && ok "weights halved in PyTorch, saved: cuvae reads them (KL and rec at z = mu as PyTorch's), load() gets them back; the file names cuvae_torch.py and the build it came from as its writer" \
        || bad "save halved: $(tail -1 "$tmp/half.err") / $back / $torch_half"
    echo "$back" | grep -q '"prune_refused": true' && ! echo "$back" | grep -q '"pruned_zeros": 0[,}]' \
        && "$CUVAE" eval "$tmp/pruned.safetensors" --z mean --set data.test_limit=200 > /dev/null 2>"$tmp/pruned.err" \
        && ok "a module pruned in PyTorch: save says prune.remove() first; after it, saved with its zeros and read by cuvae" \
        || bad "save pruned: $back $(tail -1 "$tmp/pruned.err")"
fi
cli_finish cli_torch

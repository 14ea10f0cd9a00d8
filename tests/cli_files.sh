#!/usr/bin/env bash
# cli_files.sh: data.dataset "files" (src/dataset_files.c), your own images,
# through the real binary (CPU backend), on sets tests/make_image_data.py
# generates here:
#   every format (PNG class folders, a flat PNG folder, float32 NHWC .npy, uint8
#     NCHW .npy, .safetensors with labels, gzip IDX of shape (N, H, W, C)) decodes
#     to the same images: one epoch on each gives the same losses
#   non-square grey .npy with a labels .npy; an explicit test set; the carved
#     test set announced
#   malformed inputs: one clear line naming the file (and offset), exit 2
#   a convolutional VAE trains on the generated RGB folder end to end; its
#     progress images, sample grid and figures are RGB PNGs; legends use the
#     class folders' names
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if ! python3 tests/make_image_data.py "$tmp/data" 2>"$tmp/gen.err"; then
    bad "generating the test images: $(tail -1 "$tmp/gen.err")"; cli_finish cli_files; exit
fi
D="$tmp/data"
base=(--set device=cpu --set data.dataset=files --set model.input_shape=[3,16,16] --set model.encoder=[64]
      --set model.decoder=[64] --set model.latent_dim=4 --set train.batch_size=16 --set train.epochs=1
      --set eval.iw_samples=0 --set train.epoch_images=false --set data.binarize=none)
train() { "$CUVAE" train configs/examples_vae.json "${base[@]}" "$@"; }
# (configs/examples_vae.json gives data.dir; dataset "files" refuses it: drop it through a copy)
python3 - configs/examples_vae.json "$tmp/base.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["data"] = {"dataset": "files", "train": "unset"}
c["model"].pop("input_dim", None)
json.dump(c, open(sys.argv[2], "w"))
EOF
train() { "$CUVAE" train "$tmp/base.json" "${base[@]}" "$@"; }

# ---- every format, the same images -----------------------------------------------
first=""
# (the flat folder holds the images in the arrays' order; the class folders group them by class)
for source in rgb_flat rgb_nhwc_f32.npy rgb_nchw.npy rgb.safetensors rgb_nhwc.idx.gz rgb_folder; do
    if train --set data.train="$D/$source" --out "$tmp/run_$source" >"$tmp/$source.out" 2>&1; then
        line=$(sed 's/"seconds": [0-9.]*, "samples_per_s": [0-9.]*, //' "$tmp/run_$source/log.jsonl")
        if [ -z "$first" ]; then first="$line"; ok "$source: trains (one epoch)"
        elif [ "$source" = rgb_folder ]; then ok "$source: trains (class sub-folders: the same images by class)"
        elif [ "$line" = "$first" ]; then ok "$source: trains, the same losses as rgb_flat (the same images)"
        else bad "$source: losses differ from rgb_flat's: $line vs $first"; fi
    else
        bad "$source: $(grep '^cuvae: ' "$tmp/$source.out" | tail -1)"
    fi
done
grep -q "data.test not given: 6 of the 64 images of $D/rgb_folder held out as the test set" "$tmp/rgb_folder.out" \
    && ok "the carved test set is announced" || bad "no line about the carved test set"
grep -q '"train": "'"$D"'/rgb_folder"' "$tmp/run_rgb_folder/config.json" && grep -q '"input_shape": \[3, 16, 16\]' \
    "$tmp/run_rgb_folder/config.json" && ok "the effective config keeps data.train and model.input_shape" \
    || bad "config.json lacks data.train or model.input_shape"
# (a cvae conditioned on the labels: a run that read other labels would end at another loss)
grey_cvae=(--set model.input_shape=[1,12,20] --set model.kind=cvae --set model.condition=label)
if train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/grey_npy_labels.npy" "${grey_cvae[@]}" \
        --out "$tmp/grey" >"$tmp/grey.out" 2>&1; then
    ok "non-square grey (1 x 12 x 20) .npy with int64 labels trains a cvae conditioned on them"
else bad "grey .npy: $(grep '^cuvae: ' "$tmp/grey.out" | tail -1)"; fi
# labels of every little-endian integer dtype read the same (uint32 and uint64 too); big-endian is
# refused with how to save it
python3 - "$D" <<'PY'
import struct, sys   # (no numpy on a fresh machine: .npy version 1.0 by hand)
raw = open(sys.argv[1] + "/grey_npy_labels.npy", "rb").read()
assert b"'<i8'" in raw[:128], raw[:128]
start = 10 + struct.unpack("<H", raw[8:10])[0]
labels = struct.unpack(f"<{(len(raw) - start) // 8}q", raw[start:])
for descr, code, name in [("<u4", "<%dI", "u4"), ("<u8", "<%dQ", "u8"), (">i4", ">%di", "i4_be")]:
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len(labels)},), }}"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    body = struct.pack(code % len(labels), *labels)
    open(f"{sys.argv[1]}/labels_{name}.npy", "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
                                                          + header.encode() + body)
PY
grey_loss=$(grep -o "test loss [0-9.]*" "$tmp/grey.out" | tail -1)
for dt in u4 u8; do
    l=$(train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/labels_$dt.npy" "${grey_cvae[@]}" \
            --out "$tmp/grey_$dt" 2>&1 | grep -o "test loss [0-9.]*" | tail -1)
    [ -n "$l" ] && [ "$l" = "$grey_loss" ] && ok "'<$dt' labels are read (values checked 0..255) and the cvae conditioned on them matches the int64 one ($l)" \
        || bad "'<$dt' labels: '$l' vs '$grey_loss'"
done
# uint16 labels are read whole (a 300 refused, not taken as its low byte 44), and float32 pixels
# off the 1/255 grid are rounded to the nearest byte (p - 0.4 of a step is p, not p - 1): the same
# run as the uint8 images they round to
python3 - "$D" <<'PY'
import struct, sys
d = sys.argv[1]
def npy(path, descr, shape, body):
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body)
raw = open(d + "/grey_npy_labels.npy", "rb").read()
start = 10 + struct.unpack("<H", raw[8:10])[0]
labels = list(struct.unpack(f"<{(len(raw) - start) // 8}q", raw[start:]))
labels[5] = 300
npy(d + "/labels_u2_300.npy", "<u2", f"({len(labels)},)", struct.pack(f"<{len(labels)}H", *labels))
raw = open(d + "/grey_npy.npy", "rb").read()
assert b"'|u1'" in raw[:128] and b"12, 20)" in raw[:128], raw[:128]
start = 10 + struct.unpack("<H", raw[8:10])[0]
pixels = raw[start:]
off = [max(p - 0.4, 0.0) / 255.0 for p in pixels]
npy(d + "/grey_f32_off_grid.npy", "<f4", f"({len(pixels) // 240}, 12, 20)", struct.pack(f"<{len(off)}f", *off))
PY
expect_error "uint16 labels: a 300 refused (not read as its low byte)" 2 \
    "labels_u2_300.npy: label 300 of example 5 \(byte [0-9]+\) is outside 0..255" -- \
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/labels_u2_300.npy" \
    --set model.input_shape=[1,12,20] --out "$tmp/x"
l=$(train --set data.train="$D/grey_f32_off_grid.npy" --set data.train_labels="$D/grey_npy_labels.npy" "${grey_cvae[@]}" \
        --out "$tmp/grey_f32" 2>&1 | grep -o "test loss [0-9.]*" | tail -1)
[ -n "$l" ] && [ "$l" = "$grey_loss" ] && ok "float32 pixels 0.4 of a step below the bytes round to them: the uint8 run ($l)" \
    || bad "float32 off the grid: '$l' vs '$grey_loss'"
expect_error "big-endian labels: refused, saying how to save them" 2 \
    "labels_i4_be.npy: unsupported dtype '>i4' \(.*; this one is big-endian: save with .astype\(a.dtype.newbyteorder\('<'\)\)\)" -- \
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/labels_i4_be.npy" \
          --set model.input_shape=[1,12,20] --out "$tmp/x"
if train --set data.train="$D/rgb_nhwc_f32.npy" --set data.test="$D/rgb_nchw.npy" --out "$tmp/explicit" \
        >"$tmp/explicit.out" 2>&1 && ! grep -q "data.test not given" "$tmp/explicit.out" &&
   grep -q "train 64, test 64 examples of 768 pixels" "$tmp/explicit.out"; then
    ok "an explicit test set (another format): 64 + 64 images"
else bad "explicit test set: $(grep '^cuvae: ' "$tmp/explicit.out" | tail -1)"; fi

# ---- bad input: one line naming the file, exit 2 -------------------------------------
expect_error "no such data.train" 2 "nowhere.npy: No such file or directory \(data.train\)" -- \
    train --set data.train="$D/nowhere.npy" --out "$tmp/x"
expect_error "wrong .npy magic" 2 "magic.npy: not a .npy file \(bad magic at byte 0" -- \
    train --set data.train="$D/bad/magic.npy" --out "$tmp/x"
expect_error "truncated .npy: the offset" 2 "truncated.npy: truncated at byte 128: the header's shape needs 16384 bytes of data, found 16379" -- \
    train --set data.train="$D/bad/truncated.npy" --out "$tmp/x"
expect_error "unsupported dtype (float64)" 2 "float64.npy: unsupported dtype '<f8'" -- \
    train --set data.train="$D/bad/float64.npy" --out "$tmp/x"
expect_error "float32 outside [0, 1]: element and byte" 2 "range.npy: float32 value 1.5 of element 2 \(byte 136\) is outside \[0, 1\]" -- \
    train --set data.train="$D/bad/range.npy" --out "$tmp/x"
expect_error "ambiguous layout: asks for data.layout" 2 "ambiguous.npy: shape \(2, 3, 4, 3\) is ambiguous.*data.layout" -- \
    train --set data.train="$D/bad/ambiguous.npy" --out "$tmp/x"
expect_error "safetensors without images" 2 "no_images.safetensors: no tensor named \"images\"" -- \
    train --set data.train="$D/bad/no_images.safetensors" --out "$tmp/x"
expect_error "safetensors with a misspelt labels tensor: refused, not trained unlabelled" 2 \
    "misspelt_labels.safetensors: tensor \"label\" is neither \"images\" nor \"labels\"" -- \
    train --set data.train="$D/bad/misspelt_labels.safetensors" --out "$tmp/x"
expect_error "safetensors F64" 2 "f64.safetensors: tensor 'images': unsupported dtype F64" -- \
    train --set data.train="$D/bad/f64.safetensors" --out "$tmp/x"
expect_error "mixed sizes: the first file that differs" 2 "mixed/b/y.png: 8 x 8 RGB, but .*mixed/a/x.png is 16 x 16 RGB" -- \
    train --set data.train="$D/bad/mixed" --out "$tmp/x"
expect_error "a class folder without images" 2 "empty_class/b: no .png images in this class folder" -- \
    train --set data.train="$D/bad/empty_class" --out "$tmp/x"
expect_error "labels of the wrong length" 2 "labels_short.npy: 63 labels for 64 images" -- \
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/bad/labels_short.npy" \
          --set model.input_shape=[1,12,20] --out "$tmp/x"
expect_error "float32 just above 1: said with its digits" 2 "above_one.npy: float32 value 1.00000012 of element 1 \(byte 132\) is outside \[0, 1\]" -- \
    train --set data.train="$D/bad/above_one.npy" --out "$tmp/x"
expect_error "a uint64 label past int64: said as the file holds it" 2 "labels_u64_big.npy: label 9223372036854775813 of example 63 \(byte 632\) is outside 0..255" -- \
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/bad/labels_u64_big.npy" \
          --set model.input_shape=[1,12,20] --out "$tmp/x"
expect_error "signed int8 labels: -1 is refused, not read as 255" 2 "labels_int8.npy: label -1 of example 63 \(byte 191\) is outside 0..255" -- \
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/bad/labels_int8.npy" \
          --set model.input_shape=[1,12,20] --out "$tmp/x"
expect_error "a .npy size of 2^63: too large, not a wrapped byte count" 2 "shape_2p63.npy: 'shape' is too large\$" -- \
    train --set data.train="$D/bad/shape_2p63.npy" --out "$tmp/x"
expect_error "bool images are refused" 2 "bool_images.npy: images must be uint8 \(0..255\) or float32 \(in \[0, 1\]\); found bool" -- \
    train --set data.train="$D/bad/bool_images.npy" --out "$tmp/x"
expect_error "images beside class folders" 2 "loose: holds both .png images \(x.png, ...\) and class folders \(cls, ...\)" -- \
    train --set data.train="$D/bad/loose" --out "$tmp/x"
for case in "garbage_header:entry 4: expected a quoted key" "no_commas:after key 'descr': expected ',' or '}'" \
            "fortran_zero:key 'fortran_order': must be True or False" \
            "one_tuple:key 'shape': \(n\) is a number in Python; a 1-tuple is \(n,\)" \
            "leading_zero:key 'shape': a size with a leading zero is a syntax error in Python" \
            "double_quotes:entry 1: a key in double quotes; cuvae reads the header numpy.save writes" \
            "long_suffix:key 'shape': a size written with Python 2's long suffix \(L\)"; do
    expect_error "a malformed .npy header (${case%%:*}) is refused as NumPy refuses it" 2 \
        "${case%%:*}.npy: malformed header at byte 10: ${case#*:}" -- train --set data.train="$D/bad/${case%%:*}.npy" --out "$tmp/x"
done
expect_error "a structured dtype: a well-formed header, an unsupported dtype" 2 \
    "structured.npy: unsupported dtype \(a structured dtype: fields\) \(images: uint8" -- train --set data.train="$D/bad/structured.npy" --out "$tmp/x"
expect_error "a .npy version other than 1.0, 2.0 or 3.0 (NumPy refuses it too)" 2 "version_1_1.npy: unsupported .npy version 1.1 \(byte 6\)" -- \
    train --set data.train="$D/bad/version_1_1.npy" --out "$tmp/x"
expect_error "a .npy header with another key (NumPy refuses it too)" 2 "extra_key.npy: header at byte 10 has keys besides 'descr', 'fortran_order' and 'shape'" -- \
    train --set data.train="$D/bad/extra_key.npy" --out "$tmp/x"
# PNG pixel values are read as stored: a 16-bit file as v / 257 (libpng's simplified API
# would take 16-bit data for linear light and convert it to sRGB), and no gAMA chunk changes
# them (sRGB's 1/2.2, one within 5 % of it, linear light's 1.0)
python3 - "$D/depth" <<'PY'
import os, struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
def png(path, values, depth, extra=b""):   # 8 x 8 grey
    rows = b"".join(b"\0" + (b"".join(struct.pack(">H", v) for v in values[y * 8:y * 8 + 8]) if depth == 16
                              else bytes(values[y * 8:y * 8 + 8])) for y in range(8))
    ihdr = struct.pack(">IIBBBBB", 8, 8, depth, 0, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(rows))
                           + chunk(b"IEND", b""))
for name in ["d8", "d16", "srgb_gamma", "near_srgb_gamma", "linear_gamma"]:
    os.makedirs(os.path.join(sys.argv[1], name), exist_ok=True)
for i in range(24):
    v = [(x * 13 + y * 29 + i * 7) % 256 for y in range(8) for x in range(8)]
    png(f"{sys.argv[1]}/d8/{i:02d}.png", v, 8)
    png(f"{sys.argv[1]}/d16/{i:02d}.png", [a * 257 for a in v], 16)
    png(f"{sys.argv[1]}/srgb_gamma/{i:02d}.png", v, 8, chunk(b"gAMA", struct.pack(">I", 45455)))
    png(f"{sys.argv[1]}/linear_gamma/{i:02d}.png", v, 8, chunk(b"gAMA", struct.pack(">I", 100000)))
    # within 5 % of sRGB's 45455 (libpng's simplified API left such values as they are)
    png(f"{sys.argv[1]}/near_srgb_gamma/{i:02d}.png", v, 8, chunk(b"gAMA", struct.pack(">I", 46500)))
PY
depth_loss() {
    train --set data.train="$D/depth/$1" --set model.input_shape=[1,8,8] --set train.batch_size=4 \
        --out "$tmp/depth_$1" 2>&1 | grep -o "test loss [0-9.]*"
}
l8=$(depth_loss d8); l16=$(depth_loss d16); lsrgb=$(depth_loss srgb_gamma); lnear=$(depth_loss near_srgb_gamma)
llinear=$(depth_loss linear_gamma)
[ -n "$l8" ] && [ "$l8" = "$l16" ] && [ "$l8" = "$lsrgb" ] && [ "$l8" = "$lnear" ] && [ "$l8" = "$llinear" ] \
    && ok "PNG values as stored: 16-bit v*257 and 8-bit with a gAMA of 0.45455, 0.465 or 1.0 train exactly as the 8-bit v ($l8)" \
    || bad "PNG bit depth / gAMA: 8-bit '$l8', 16-bit '$l16', sRGB gAMA '$lsrgb', gAMA 0.465 '$lnear', gAMA 1.0 '$llinear'"
# --set data.dataset switches the data source: the config's keys of the other kind (data.dir, or
# data.train / test / ...) are dropped, so an MNIST config trains on a file and a files model is
# evaluated on MNIST (a checkpoint's stored data.dir or data.train could not be removed before)
"$CUVAE" train configs/examples_vae.json --set data.dataset=files --set data.train="$D/grey_npy.npy" \
    --set model.input_shape=[1,12,20] --set model.input_dim=240 --set device=cpu --set train.epochs=1 \
    --set train.epoch_images=false --set eval.iw_samples=0 --out "$tmp/switch_files" > "$tmp/switch_files.log" 2>&1; rc1=$?
python3 - "$tmp/grey28.npy" <<'PY'
import random, struct, sys
random.seed(5)
h = "{'descr': '|u1', 'fortran_order': False, 'shape': (40, 28, 28), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()
                              + bytes(random.randrange(256) for _ in range(40 * 784)))
PY
"$CUVAE" train "$tmp/base.json" --set data.train="$tmp/grey28.npy" --set model.input_shape=[1,28,28] --set device=cpu \
    --set model.encoder=[16] --set model.decoder=[16] --set train.epochs=1 --set train.epoch_images=false \
    --set eval.iw_samples=0 --out "$tmp/switch_src" > /dev/null 2>&1
"$CUVAE" eval "$tmp/switch_src/model.safetensors" --set data.dataset=mnist --set data.dir=data/mnist \
    --set data.test_limit=100 > "$tmp/switch_eval.json" 2>"$tmp/switch_eval.err"; rc2=$?
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && grep -q '"examples": 100' "$tmp/switch_eval.json" \
    && ok "--set data.dataset switches the source: an MNIST config trains on a file, a files model is evaluated on MNIST" \
    || bad "dataset switch: train exit $rc1 ($(tail -1 "$tmp/switch_files.log")), eval exit $rc2 ($(tail -1 "$tmp/switch_eval.err"))"
# eval.json's "binarized" says what the data are, not what data.binarize did: images already
# binary (every value 0 or 255) trained with binarize "none" are binary data, and the
# importance-weighted bound of a Bernoulli decoder on them is an NLL; grey levels are not
python3 - "$tmp/binary.npy" <<'PY'
import random, struct, sys
random.seed(3)
h = "{'descr': '|u1', 'fortran_order': False, 'shape': (48, 8, 8), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()
                              + bytes(random.choice((0, 255)) for _ in range(48 * 64)))
PY
train --set data.train="$tmp/binary.npy" --set model.input_shape=[1,8,8] --set train.batch_size=4 \
    --set eval.iw_samples=5 --out "$tmp/binary" > "$tmp/binary.log" 2>&1
train --set data.train="$D/depth/d8" --set model.input_shape=[1,8,8] --set train.batch_size=4 \
    --set eval.iw_samples=5 --out "$tmp/grey_iw" > "$tmp/grey_iw.log" 2>&1
grep -q '"binarized": true' "$tmp/binary/eval.json" && grep -q '"is_nll_of_binary_data": true' "$tmp/binary/eval.json" \
    && grep -q "binary data: an NLL" "$tmp/binary.log" \
    && grep -q '"binarized": false' "$tmp/grey_iw/eval.json" && grep -q '"is_nll_of_binary_data": false' "$tmp/grey_iw/eval.json" \
    && ok "binarized / is_nll_of_binary_data from the data: 0/255 images with binarize none are binary, grey levels not" \
    || bad "binary data: $(grep -o '"binarized": [a-z]*' "$tmp/binary/eval.json" "$tmp/grey_iw/eval.json" 2>&1 | tr '\n' ' ')"
# 2-channel data train (an explicit layout) but are no image: the run says so up front, writes
# no progress images and does not list them; sample and plot refuse, naming the shape
python3 - "$tmp/two_channels.npy" <<'PY'
import struct, sys
h = "{'descr': '|u1', 'fortran_order': False, 'shape': (40, 2, 8, 8), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()
                              + bytes((i * 7) % 256 for i in range(40 * 128)))
PY
train --set data.train="$tmp/two_channels.npy" --set data.layout=nchw --set model.input_shape=[2,8,8] \
    --set train.batch_size=4 --set train.epoch_images=true --out "$tmp/two_channels" > "$tmp/two_channels.log" 2>&1
grep -q "note: no progress images (train.epoch_images): the model's input is 2 x 8 x 8 (model.input_shape): an image needs 1 (grey) or 3 (RGB) channels" "$tmp/two_channels.log" \
    && grep "cuvae: done" "$tmp/two_channels.log" | grep -qv "progress" && [ ! -e "$tmp/two_channels/progress" ] \
    && ok "2-channel data: trained, no progress images, said up front and not listed in the done line" \
    || bad "2-channel data: $(grep -E 'note|done|error' "$tmp/two_channels.log")"
expect_error "sample on a 2-channel model: refused, naming its shape" 2 \
    "sample: the model's input is 2 x 8 x 8 \(model.input_shape\): an image needs 1 \(grey\) or 3 \(RGB\) channels" -- \
    "$CUVAE" sample "$tmp/two_channels/model.safetensors" -o "$tmp/two_channels.png"
# something named like an image that is none would go missing unsaid: refused
for kind in dangling fifo folder; do
    cp -r "$D/depth/d8" "$D/depth/$kind"
    case $kind in
        dangling) ln -s "$D/depth/nowhere.png" "$D/depth/$kind/99.png"; what="cannot be read \(a dangling link\?\)" ;;
        fifo) mkfifo "$D/depth/$kind/99.png"; what="is not a regular file" ;;
        folder) mkdir "$D/depth/$kind/99.png"; what="is a folder" ;;
    esac
    expect_error "a $kind named like a PNG image in the data folder" 2 "depth/$kind/99.png: named like a PNG image but $what" -- \
        train --set data.train="$D/depth/$kind" --set model.input_shape=[1,8,8] --out "$tmp/x"
done
# a PNG cut short or with bytes after its IEND chunk (libpng's simplified API reads both without
# a word): refused, naming the byte, as the IDX and array readers refuse the same damage
for kind in cut_iend cut_inside trailing; do
    cp -r "$D/depth/d8" "$D/depth/$kind"; f=$(ls "$D/depth/$kind"/*.png | head -1); size=$(stat -c %s "$f")
    case $kind in
        cut_iend) head -c $((size - 12)) "$D/depth/d8/$(basename "$f")" > "$f"
                  what="truncated: the file ends at byte $((size - 12)), before its IEND chunk" ;;
        cut_inside) head -c $((size - 1)) "$D/depth/d8/$(basename "$f")" > "$f"
                    what="truncated: the file \($((size - 1)) bytes\) ends inside the chunk at byte $((size - 12))" ;;
        trailing) printf 'junk' >> "$f"; what="4 bytes of trailing data after the IEND chunk, at byte $size" ;;
    esac
    expect_error "a PNG image $kind: refused, naming the byte" 2 "$kind/$(basename "$f"): $what" -- \
        train --set data.train="$D/depth/$kind" --set model.input_shape=[1,8,8] --out "$tmp/x"
done
# what a PNG folder does not use is refused, not ignored: data.layout (each file says its own),
# and a folder inside a class folder (ImageFolder would walk into it; cuvae reads each class
# folder's images directly, so its images would go missing unsaid); .png matches in any case
expect_error "data.layout on a PNG folder: refused, not ignored" 2 \
    "d8: data.layout \"nchw\" orders the axes of an array file; a PNG folder's images are read as their files say" -- \
    train --set data.train="$D/depth/d8" --set data.layout=nchw --set model.input_shape=[1,8,8] --out "$tmp/x"
mkdir -p "$D/depth/nested/a/sub" "$D/depth/nested/b"
cp "$D/depth/d8/0"*.png "$D/depth/nested/a/"; cp "$D/depth/d8/1"*.png "$D/depth/nested/b/"; cp "$D/depth/d8/20.png" "$D/depth/nested/a/sub/"
expect_error "a folder inside a class folder: refused, naming it" 2 \
    "nested/a/sub: a folder inside the class folder .*nested/a: cuvae reads the .png images directly in each class folder" -- \
    train --set data.train="$D/depth/nested" --set model.input_shape=[1,8,8] --out "$tmp/x"
# a cvae on 2 class folders: plot's class_rows.png draws the 2 trained classes (named), not the
# model's 10 rows; it is shorter than the same figure of a 10-folder run
if command -v gnuplot >/dev/null 2>&1; then
    rm -rf "$D/depth/nested/a/sub"
    mkdir -p "$D/depth/ten"; for k in 0 1 2 3 4 5 6 7 8 9; do mkdir "$D/depth/ten/c$k"; cp "$D/depth/d8/0$k.png" "$D/depth/d8/1$k.png" "$D/depth/ten/c$k/"; done
    for set in nested ten; do
        train --set data.train="$D/depth/$set" --set model.input_shape=[1,8,8] --set model.kind=cvae \
            --set model.condition=label --set train.batch_size=4 --out "$tmp/cvae_$set" >/dev/null 2>&1
        "$CUVAE" plot "$tmp/cvae_$set" >/dev/null 2>&1
    done
    h2=$(python3 -c "import struct,sys; print(struct.unpack('>I', open(sys.argv[1],'rb').read()[20:24])[0])" "$tmp/cvae_nested/figures/class_rows.png" 2>/dev/null)
    h10=$(python3 -c "import struct,sys; print(struct.unpack('>I', open(sys.argv[1],'rb').read()[20:24])[0])" "$tmp/cvae_ten/figures/class_rows.png" 2>/dev/null)
    [ -n "$h2" ] && [ -n "$h10" ] && [ "$h2" -lt "$h10" ] \
        && ok "class_rows.png of a cvae on 2 class folders draws 2 rows (height $h2 against $h10 for 10)" \
        || bad "class_rows.png heights: 2 classes '$h2', 10 classes '$h10'"
    # a 2-D latent of 10 class folders: the scatter tells the 10 classes apart (colours, and a legend of
    # their folders' names); only more than 10 are drawn in one colour
    mkdir -p "$tmp/gpwrap" "$tmp/gpkept"
    printf '#!/bin/sh\nfor a; do script="$a"; done\n[ -f "$script" ] && cp "$script" "%s/script.$$"\nexec %s "$@"\n' \
        "$tmp/gpkept" "$(command -v gnuplot)" > "$tmp/gpwrap/gnuplot"
    chmod +x "$tmp/gpwrap/gnuplot"
    train --set data.train="$D/depth/ten" --set model.input_shape=[1,8,8] --set model.latent_dim=2 \
        --set train.batch_size=4 --out "$tmp/vae_ten" >/dev/null 2>&1
    PATH="$tmp/gpwrap:$PATH" "$CUVAE" plot "$tmp/vae_ten" >/dev/null 2>"$tmp/vae_ten_plot.err"
    scatter=$(grep -l 'vae_ten/figures/latent_scatter.png' "$tmp"/gpkept/script.* 2>/dev/null | head -1)
    legend=$(grep -o 'title "c[0-9]*" noenhanced' "$scatter" 2>/dev/null | sed -E 's/title "([^"]*)".*/\1/' | tr '\n' ' ')
    [ "$legend" = "c0 c1 c2 c3 c4 c5 c6 c7 c8 c9 " ] && ! grep -q "drawn in one colour" "$tmp/vae_ten_plot.err" \
        && ok "latent scatter of 10 class folders: a legend of the 10 folders' names" \
        || bad "latent scatter of 10 class folders: legend '$legend', $(tail -1 "$tmp/vae_ten_plot.err")"
else
    skip "class_rows.png of a 2-class cvae" "gnuplot not installed"
fi
cp -r "$D/depth/d8" "$D/depth/any_case"; mv "$D/depth/any_case/23.png" "$D/depth/any_case/23.Png"
train --set data.train="$D/depth/any_case" --set model.input_shape=[1,8,8] --set train.batch_size=4 \
    --out "$tmp/any_case" > "$tmp/any_case.log" 2>&1
grep -q "of the 24 images of" "$tmp/any_case.log" && ok "a .Png file is read as an image (24 of 24)" \
    || bad ".Png: $(grep 'images of' "$tmp/any_case.log")"
# a .safetensors data file with its own labels tensor and a data.train_labels file: one would be
# dropped unsaid, so both are refused
expect_error "a .safetensors file's own labels and data.train_labels: refused" 2 \
    "rgb.safetensors: holds its own labels tensor, and data.train_labels .*grey_npy_labels.npy would replace it: drop one of them" -- \
    train --set data.train="$D/rgb.safetensors" --set data.train_labels="$D/grey_npy_labels.npy" --out "$tmp/x"
# damage libpng's simplified API reads without a word: a palette index past the PLTE chunk's
# entries (read as black) and image data beyond the image (a warning): refused, naming the
# pixel / the damage; a sound palette file reads as its colours
python3 - "$D/depth" <<'PY'
import os, struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
def png(path, rows, color_type, extra=b""):   # 8 x 8, 8 bits
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, color_type, 0, 0, 0)
    raw = b"".join(b"\0" + bytes(rows[y * 8:y * 8 + 8]) for y in range(8))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))
def png_extra_data(path, rows):   # a grey image whose image data runs 8 bytes past it
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0)
    raw = b"".join(b"\0" + bytes(rows[y * 8:y * 8 + 8]) for y in range(8)) + bytes(8)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                           + chunk(b"IEND", b""))
palette = bytes(v for i in range(16) for v in (i * 16, 255 - i * 16, i * 8))   # 16 entries
for name in ["palette_ok", "palette_trns", "palette_rgb", "palette_bad", "idat_extra"]:
    os.makedirs(os.path.join(sys.argv[1], name), exist_ok=True)
for i in range(24):
    idx = [(x + y * 3 + i) % 16 for y in range(8) for x in range(8)]
    png(f"{sys.argv[1]}/palette_ok/{i:02d}.png", idx, 3, chunk(b"PLTE", palette))
    # with a tRNS chunk, every entry opaque: the same colours
    png(f"{sys.argv[1]}/palette_trns/{i:02d}.png", idx, 3, chunk(b"PLTE", palette) + chunk(b"tRNS", bytes([255] * 16)))
    rgb = [palette[3 * k + c] for k in idx for c in range(3)]   # the same colours as RGB pixels
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    raw = b"".join(b"\0" + bytes(rgb[y * 24:y * 24 + 24]) for y in range(8))
    open(f"{sys.argv[1]}/palette_rgb/{i:02d}.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    if i == 5: idx[8 * 2 + 3] = 40   # pixel (x 3, y 2)
    png(f"{sys.argv[1]}/palette_bad/{i:02d}.png", idx, 3, chunk(b"PLTE", palette))
    png_extra_data(f"{sys.argv[1]}/idat_extra/{i:02d}.png", [(x * 13 + y * 29 + i * 7) % 256 for y in range(8) for x in range(8)])
PY
# damage libpng decodes past that changes pixels: a tRNS chunk with a bad CRC (dropped with a
# warning: its transparent pixels would read opaque), a tRNS after the image data (ignored without
# a word), a second run of IDAT chunks (skipped without a word): refused, naming it
python3 - "$D/depth" <<'PY'
import os, struct, sys, zlib
def chunk(kind, data, crc=None):
    c = zlib.crc32(kind + data) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", c)
ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
rows = zlib.compress(b"".join(b"\0" + bytes((x * 13 + y * 29) % 256 for x in range(8)) for y in range(8)))
trns = struct.pack(">H", 29)
cases = {"trns_bad_crc": ihdr + chunk(b"tRNS", trns, crc=0) + chunk(b"IDAT", rows),
         "trns_late": ihdr + chunk(b"IDAT", rows) + chunk(b"tRNS", trns),
         "idat_two_runs": ihdr + chunk(b"IDAT", rows[:20]) + chunk(b"tEXt", b"a\0b") + chunk(b"IDAT", rows[20:])}
for name, body in cases.items():
    os.makedirs(os.path.join(sys.argv[1], name), exist_ok=True)
    open(os.path.join(sys.argv[1], name, "00.png"), "wb").write(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
PY
for case in "trns_bad_crc:damaged chunk \(libpng: tRNS: CRC error\)" \
            "trns_late:damaged: the tRNS chunk at byte [0-9]+ comes after the image data \(IDAT\), which it must precede" \
            "idat_two_runs:damaged: the IDAT chunk at byte [0-9]+ comes after the image data \(IDAT\), which must be one run of chunks"; do
    expect_error "a PNG with ${case%%:*} (libpng decodes past it; pixels would change): refused" 2 \
        "${case%%:*}/00.png: ${case#*:}" -- \
        train --set data.train="$D/depth/${case%%:*}" --set model.input_shape=[1,8,8] --out "$tmp/x"
done
palette_loss() {
    train --set data.train="$D/depth/$1" --set model.input_shape=[3,8,8] --set train.batch_size=4 \
        --out "$tmp/$1" 2>&1 | grep -o "test loss [0-9.]*" | tail -1
}
lp=$(palette_loss palette_ok); lrgb=$(palette_loss palette_rgb); ltrns=$(palette_loss palette_trns)
[ -n "$lp" ] && [ "$lp" = "$lrgb" ] && [ "$lp" = "$ltrns" ] \
    && ok "palette PNGs (16 entries; also with an opaque tRNS chunk) train exactly as the same colours in RGB files ($lp)" \
    || bad "palette PNGs: '$lp', with tRNS '$ltrns', against RGB '$lrgb'"
expect_error "a palette index past the PLTE chunk (libpng reads it as black): refused, naming the pixel" 2 \
    "palette_bad/05.png: pixel \(x 3, y 2\) is palette index 40, past the 16 entries of its PLTE chunk" -- \
    train --set data.train="$D/depth/palette_bad" --set model.input_shape=[3,8,8] --out "$tmp/x"
expect_error "image data beyond the image (libpng warns and reads on): refused" 2 \
    "idat_extra/00.png: damaged image data \(libpng: IDAT: Too much image data\)" -- \
    train --set data.train="$D/depth/idat_extra" --set model.input_shape=[1,8,8] --out "$tmp/x"
expect_error "data.layout on (N, H, W) images: refused, not ignored" 2 "grey_npy.npy: data.layout \"nhwc\" places a channel axis, but the images are \(N, H, W\)" -- \
    train --set data.train="$D/grey_npy.npy" --set data.layout=nhwc --set model.input_shape=[1,12,20] --out "$tmp/x"
# a VQ-VAE on images without variance: its MSE / variance is n/a (null), never a bare nan
python3 - "$tmp/zeros.npy" <<'PY'
import struct, sys
h = "{'descr': '|u1', 'fortran_order': False, 'shape': (64, 28, 28), }"
h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
open(sys.argv[1], "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + bytes(64 * 784))
PY
"$CUVAE" train bench/configs/cpu/vq_b128.json --set "data={\"dataset\": \"files\", \"train\": \"$tmp/zeros.npy\"}" \
    --set train.batch_size=16 --set train.epochs=1 --out "$tmp/vzero" 2>"$tmp/vzero.err"
grep -q "MSE / data variance n/a (the test images have no variance)" "$tmp/vzero.err" \
    && grep -q '"rec_mse_over_variance": null' "$tmp/vzero/eval.json" && ! grep -qi "nan" "$tmp/vzero.err" \
    && ok "VQ-VAE on constant images: MSE / variance n/a (eval.json null), no nan printed" \
    || bad "constant images: $(grep 'eval:' "$tmp/vzero.err")"
mkfifo "$tmp/fifo.npy"
expect_error "a FIFO as the data file: refused, no hang" 2 "fifo.npy: not a regular file" -- \
    timeout 20 "$CUVAE" train "$tmp/base.json" "${base[@]}" --set data.train="$tmp/fifo.npy" --out "$tmp/x"
expect_error "RGB without model.input_shape" 2 "images are 3 x 16 x 16 \(C x H x W\), but model.input_dim 768 alone means square grey images: a model of these gives model.input_shape \[3, 16, 16\]" -- \
    "$CUVAE" train "$tmp/base.json" --set device=cpu --set model.input_dim=768 --set data.train="$D/rgb_folder" --out "$tmp/x"
expect_error "input_shape against the data" 2 "images are 3 x 16 x 16 \(C x H x W\) but model.input_shape is \[1, 16, 48\]" -- \
    train --set data.train="$D/rgb_folder" --set model.input_shape=[1,16,48] --out "$tmp/x"
expect_error "binarizing RGB" 2 "data.binarize: binarization is for grey images; .*rgb_folder has 3 channels" -- \
    train --set data.train="$D/rgb_folder" --set data.binarize=dynamic --out "$tmp/x"
python3 - "$D" <<'PY'
import struct, sys   # the int64 labels with one 12 among them
raw = bytearray(open(sys.argv[1] + "/grey_npy_labels.npy", "rb").read())
start = 10 + struct.unpack("<H", raw[8:10])[0]
raw[start + 8 * 5:start + 8 * 6] = struct.pack("<q", 12)
open(sys.argv[1] + "/labels_12.npy", "wb").write(raw)
raw[start + 8 * 5:start + 8 * 6] = struct.pack("<q", 10)   # the first label past 10 classes
open(sys.argv[1] + "/labels_10.npy", "wb").write(raw)
PY
expect_error "a cvae whose labels file holds a label past its 10 classes: names that file" 2 \
    "labels_12.npy: holds label 12, but the cvae has 10 classes \(labels 0..9\)" -- \
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/labels_12.npy" --set model.input_shape=[1,12,20] \
    --set model.kind=cvae --set model.condition=label --out "$tmp/x"
expect_error "... and a label equal to the class count (10 of 10 classes: the count is the largest label + 1)" 2 \
    "labels_10.npy: holds label 10, but the cvae has 10 classes \(labels 0..9\)" -- \
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/labels_10.npy" --set model.input_shape=[1,12,20] \
    --set model.kind=cvae --set model.condition=label --out "$tmp/x"
# ... wherever that label is: one in the test set carved out of the training files named no file
# (": holds label 12"); each of the 64 positions tried, the carve's 6 or so among them
python3 - "$D" <<'PY'
import struct, sys
raw = open(sys.argv[1] + "/grey_npy_labels.npy", "rb").read()
start = 10 + struct.unpack("<H", raw[8:10])[0]
for i in range(64):
    one = bytearray(raw)
    one[start + 8 * i:start + 8 * (i + 1)] = struct.pack("<q", 12)
    open(sys.argv[1] + "/labels_12_at_%d.npy" % i, "wb").write(one)
PY
unnamed=""
for i in $(seq 0 63); do
    train --set data.train="$D/grey_npy.npy" --set data.train_labels="$D/labels_12_at_$i.npy" \
        --set model.input_shape=[1,12,20] --set model.kind=cvae --set model.condition=label --out "$tmp/x" 2>"$tmp/label_at.err"
    grep -q "^cuvae: .*labels_12_at_$i.npy: holds label 12, but the cvae has 10 classes" "$tmp/label_at.err" || unnamed="$unnamed $i"
done
[ -z "$unnamed" ] && ok "a cvae label past its classes at any of 64 positions (in the carved test set too): the labels file named" \
    || bad "label 12 at positions$unnamed: $(tail -1 "$tmp/label_at.err")"
expect_error "a cvae on unlabelled images" 2 "rgb_flat: a cvae is conditioned on labels and these images have none" -- \
    train --set data.train="$D/rgb_flat" --set model.kind=cvae --set model.condition=label --out "$tmp/x"
expect_error "data.dir with dataset files" 2 "data.dir: dataset \"files\" reads data.train" -- \
    train --set data.train="$D/rgb_folder" --set data.dir=data/mnist --out "$tmp/x"
expect_error "data.train with mnist" 2 "data.train: is a key of dataset \"files\"" -- \
    "$CUVAE" train configs/examples_vae.json --set data.train=x --out "$tmp/x"
expect_error "test_fraction with a test set" 2 "data.test_fraction: carves a test set out of the training set only when data.test is not given" -- \
    train --set data.train="$D/rgb_folder" --set data.test="$D/rgb_folder" --set data.test_fraction=0.2 --out "$tmp/x"

# data.format "auto": a name in another case, or none, is known by its first bytes; one PNG
# file is refused as such (not read as IDX)
cp "$D/rgb_nchw.npy" "$tmp/rgb_upper.NPY"; cp "$D/rgb_nchw.npy" "$tmp/rgb_npy_noext"; cp "$D/rgb.safetensors" "$tmp/rgb_st.bin"
for source in rgb_upper.NPY rgb_npy_noext rgb_st.bin; do
    if train --set data.train="$tmp/$source" --out "$tmp/run_$source" >"$tmp/$source.out" 2>&1 \
        && [ "$(sed 's/"seconds": [0-9.]*, "samples_per_s": [0-9.]*, //' "$tmp/run_$source/log.jsonl")" = "$first" ]; then
        ok "$source: read as what it is (name in any case, else first bytes), the same losses as rgb_flat"
    else
        bad "$source: $(grep '^cuvae: ' "$tmp/$source.out" | tail -1)"
    fi
done
# an IDX labels file whose first bytes could open a safetensors header (65,536 labels, the first
# one 123 = '{'): read as IDX (the header length they would give is past the file's end)
python3 - "$tmp" <<'PY'
import struct, sys
n = 65536
open(sys.argv[1] + "/img65536.idx", "wb").write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 4, 4) + bytes(16 * n))
open(sys.argv[1] + "/lab65536.idx", "wb").write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes([123]) + bytes(n - 1))
PY
"$CUVAE" train "$tmp/base.json" --set device=cpu --set data.dataset=files --set model.input_dim=16 --set model.encoder=[8] \
    --set model.decoder=[8] --set model.latent_dim=2 --set train.epochs=1 --set eval.iw_samples=0 --set train.epoch_images=false \
    --set data.binarize=none --set data.train="$tmp/img65536.idx" --set data.train_labels="$tmp/lab65536.idx" \
    --set data.train_limit=64 --out "$tmp/idx65536" >"$tmp/idx65536.out" 2>&1 \
    && ok "IDX labels starting 00 00 08 01 00 01 00 00 7b (safetensors-like bytes): read as IDX" \
    || bad "IDX labels misread: $(grep '^cuvae: ' "$tmp/idx65536.out" | tail -1)"
one_png=$(ls "$D/rgb_flat" | head -1)
expect_error "one PNG file as data.train: said so, not read as IDX" 2 \
    "rgb_flat/$one_png: one PNG image; data.train takes a folder of them" -- \
    train --set data.train="$D/rgb_flat/$one_png" --out "$tmp/x"
# float32 pixels off the 1/255 grid: rounded to 8 bits as every image is, and train says so
python3 - "$D/rgb_nhwc_f32.npy" "$tmp/rgb_off.npy" <<'PY'
import array, struct, sys
raw = open(sys.argv[1], "rb").read()
start = 12 + struct.unpack("<I", raw[8:12])[0] if raw[6] >= 2 else 10 + struct.unpack("<H", raw[8:10])[0]
values = array.array("f", raw[start:])
moved = array.array("f", (min(v + 0.4 / 255, 1.0) for v in values))
open(sys.argv[2], "wb").write(raw[:start] + moved.tobytes())
PY
train --set data.train="$tmp/rgb_off.npy" --out "$tmp/run_off" >"$tmp/off.out" 2>&1
grep -qE "^cuvae: note: .*rgb_off.npy: float32 pixels are kept as 8 bits, round\(255 v\) / 255, as every image is: [0-9]+ of its 49152 values are not multiples of 1/255 \(moved by up to 0.0016\)$" "$tmp/off.out" \
    && [ "$(sed 's/"seconds": [0-9.]*, "samples_per_s": [0-9.]*, //' "$tmp/run_off/log.jsonl")" = "$first" ] \
    && ! grep -q "float32 pixels are kept" "$tmp/rgb_nhwc_f32.npy.out" \
    && ok "float32 pixels off the 1/255 grid: rounded (the same losses) and said in a note; k / 255 values: no note" \
    || bad "float32 rounding note: $(grep 'note' "$tmp/off.out")"
# a test set labelled another way than the training set: said so
expect_error "class folders for training, a labelled array for testing: refused, saying why" 2 \
    "rgb_folder is labelled by its class folders, .*rgb.safetensors by a labels array: cuvae does not match numbers to folder names" -- \
    train --set data.train="$D/rgb_folder" --set data.test="$D/rgb.safetensors" --out "$tmp/x"
# a .npy header with a key given twice
python3 - "$D/rgb_nchw.npy" "$tmp/dup_key.npy" <<'PY'
import struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<H", raw[8:10])[0]
header = raw[10:10 + n].decode("latin1").replace("{'descr': '|u1', ", "{'descr': '|u1', 'descr': '|u1', ")
header = header.rstrip("\n").rstrip(" ")
header += " " * (-(10 + len(header) + 1) % 64) + "\n"
open(sys.argv[2], "wb").write(raw[:8] + struct.pack("<H", len(header)) + header.encode("latin1") + raw[10 + n:])
PY
expect_error "a .npy header with a key given twice: named" 2 "dup_key.npy: malformed header at byte 10: key 'descr' given twice" -- \
    train --set data.train="$tmp/dup_key.npy" --out "$tmp/x"
# a .npy header with a NUL byte after its dict (np.load refuses it; a C string would end there)
python3 - "$D/rgb_nchw.npy" "$tmp/nul_header.npy" <<'PY'
import struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<H", raw[8:10])[0]
header = raw[10:10 + n].decode("latin1").rstrip("\n").rstrip(" ") + "\x00junk"
header += " " * (-(10 + len(header) + 1) % 64) + "\n"
open(sys.argv[2], "wb").write(raw[:8] + struct.pack("<H", len(header)) + header.encode("latin1") + raw[10 + n:])
PY
expect_error "a .npy header with a NUL byte after the dict: refused at its byte" 2 \
    "nul_header.npy: malformed header: a NUL byte at byte [0-9]+ \(NumPy's header is text\)" -- \
    train --set data.train="$tmp/nul_header.npy" --out "$tmp/x"
# a class folder that is a dangling link, or a loop of links, among the class folders: refused, named
mkdir -p "$tmp/lost_class"
cp -r "$D/rgb_folder/$(ls "$D/rgb_folder" | head -1)" "$tmp/lost_class/"
ln -s "$tmp/no_such_disk/dog" "$tmp/lost_class/dog"
expect_error "a class folder that is a dangling link: refused, not trained without the class" 2 \
    "lost_class/dog: cannot be followed \(a dangling link\): a class folder that is missing" -- \
    train --set data.train="$tmp/lost_class" --out "$tmp/x"
rm "$tmp/lost_class/dog"; ln -s loop_b "$tmp/lost_class/loop_a"; ln -s loop_a "$tmp/lost_class/loop_b"
expect_error "class folders beside a loop of links: refused, named" 2 \
    "lost_class/loop_[ab]: cannot be followed \(a loop of links\)" -- train --set data.train="$tmp/lost_class" --out "$tmp/x"
# a cvae on 2 class folders: sample draws those 2 classes, and refuses --class of an untrained one
mkdir -p "$D/depth/two/a" "$D/depth/two/b"; cp "$D/depth/d8/0"*.png "$D/depth/two/a/"; cp "$D/depth/d8/1"*.png "$D/depth/two/b/"
if train --set data.train="$D/depth/two" --set model.input_shape=[1,8,8] --set model.kind=cvae --set model.condition=label \
    --set train.batch_size=4 --out "$tmp/cvae_two" >/dev/null 2>&1; then
    expect_error "sample --class of a class the cvae's data did not have: refused" 2 \
        "sample: --class 5: the run's data had labels 0..1 only; the model's classes 2..9 were never trained" -- \
        "$CUVAE" sample "$tmp/cvae_two/model.safetensors" --class 5 -o "$tmp/c5.png"
    "$CUVAE" sample "$tmp/cvae_two/model.safetensors" -n 4 -o "$tmp/two.png" 2>"$tmp/two.err" \
        && grep -q "sample i of class i mod 2" "$tmp/two.err" \
        && ok "sample of a cvae trained on 2 classes draws classes 0 and 1 (i mod 2)" || bad "2-class sample: $(cat "$tmp/two.err")"
    # ... and draws them: sample 2 (class 2 mod 2 = 0) is sample 2 of --class 0 (the same z, the same
    # class), tile for tile; sample 1 (class 1) is not
    "$CUVAE" sample "$tmp/cvae_two/model.safetensors" -n 4 --class 0 -o "$tmp/two_c0.png" 2>/dev/null
    python3 - "$tmp/two.png" "$tmp/two_c0.png" 2>"$tmp/tiles.err" <<'PY' \
        && ok "... sample 2 of the 2-class cvae is of class 0 (i mod 2), as sample 2 of --class 0" \
        || bad "2-class sample: sample 2 is not of class 0 (i mod 2): $(tail -1 "$tmp/tiles.err")"
import struct, sys, zlib
def pixels(path):   # an 8-bit grey or RGB PNG as libpng writes it (any row filter): width, height, bpp, rows
    d = open(path, "rb").read(); assert d[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(d):
        n, kind = struct.unpack(">I", d[pos:pos + 4])[0], d[pos + 4:pos + 8]; body = d[pos + 8:pos + 8 + n]; pos += 12 + n
        if kind == b"IHDR": w, h, depth, ct = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT": idat += body
    bpp = {0: 1, 2: 3}[ct]; raw = zlib.decompress(idat); stride = w * bpp; rows = []; prev = bytearray(stride); i = 0
    for y in range(h):
        f = raw[i]; line = bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0; b = prev[x]; c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line)); prev = line
    return w, h, bpp, rows
def tile(rows, bpp, i):   # tile i of a 2 x 2 grid of 8 x 8 images, 2-pixel gaps
    top, left = (i // 2) * 10 + 2, (i % 2) * 10 + 2
    return [r[left * bpp:(left + 8) * bpp] for r in rows[top:top + 8]]
(w, h, bpp, mixed), (w0, h0, bpp0, zero) = pixels(sys.argv[1]), pixels(sys.argv[2])
assert (w, h) == (w0, h0) == (22, 22), (w, h, w0, h0)
same = [tile(mixed, bpp, i) == tile(zero, bpp0, i) for i in range(4)]
if same != [True, False, True, False]: sys.exit("tiles equal to --class 0's: %s, want [True, False, True, False]" % same)
PY
else
    bad "a cvae on 2 class folders did not train"
fi
# 12 class folders for a cvae's 10 classes: said as folders (it read "holds label 10, but the cvae has 10 classes")
mkdir -p "$D/depth/twelve"; for k in 00 01 02 03 04 05 06 07 08 09 10 11; do mkdir -p "$D/depth/twelve/c$k"; cp "$D/depth/d8/00.png" "$D/depth/twelve/c$k/"; done
expect_error "a cvae on 12 class folders: refused, counting the folders" 2 \
    'twelve: 12 class folders \("c00" .. "c11"\), but a cvae has 10 classes: give it at most 10' -- \
    train --set data.train="$D/depth/twelve" --set model.input_shape=[1,8,8] --set model.kind=cvae --set model.condition=label \
    --set train.batch_size=4 --out "$tmp/x"

# a PixelCNN prior over a VQ-VAE of non-square grey images (12 x 20: a 6 x 10 grid of codes):
# it trains (its data are the VQ-VAE's images), and its samples are drawn 12 x 20
cat > "$tmp/vq_rect.json" <<JSON
{"name": "vq_rect", "data": {"dataset": "files", "train": "$D/grey_npy.npy"},
 "model": {"kind": "vq_vae", "input_shape": [1, 12, 20], "latent_dim": 4, "output": "bernoulli", "codebook": {"size": 8},
           "encoder": [{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, "relu", {"conv2d": 4, "kernel": 1}],
           "decoder": [{"conv_transpose2d": 8, "kernel": 4, "stride": 2, "padding": 1}, "relu", {"conv2d": 1, "kernel": 1}]},
 "loss": {"reconstruction": "bce", "reduction": "sum"},
 "train": {"epochs": 1, "batch_size": 16, "lr": 0.001, "seed": 3, "epoch_images": false}, "device": "cpu"}
JSON
cat > "$tmp/vq_rect_prior.json" <<JSON
{"name": "vq_rect_prior", "data": {"dataset": "files", "train": "$D/grey_npy.npy"},
 "model": {"kind": "pixelcnn", "input_dim": 60, "prior_of": "$tmp/vq_rect/model.safetensors",
           "network": [{"masked_conv2d_a": 8, "kernel": 3}, "relu", {"conv2d": 8, "kernel": 1}]},
 "train": {"epochs": 1, "batch_size": 16, "lr": 0.001, "seed": 3, "epoch_images": false}, "device": "cpu"}
JSON
if "$CUVAE" train "$tmp/vq_rect.json" --out "$tmp/vq_rect" >"$tmp/vq_rect.out" 2>&1 \
    && "$CUVAE" train "$tmp/vq_rect_prior.json" --out "$tmp/vq_rect_prior" >"$tmp/vq_rect_prior.out" 2>&1 \
    && "$CUVAE" sample "$tmp/vq_rect_prior/model.safetensors" -n 1 -o "$tmp/vq_rect_sample.png" 2>/dev/null; then
    size=$(python3 -c "import struct,sys; print('%d x %d' % struct.unpack('>II', open(sys.argv[1],'rb').read()[16:24]))" "$tmp/vq_rect_sample.png")
    [ "$size" = "24 x 16" ] && ok "a PixelCNN prior over a 12 x 20 VQ-VAE trains, and its sample is 12 x 20 (a ${size} grid)" \
        || bad "prior sample of a 12 x 20 VQ-VAE: a $size PNG, want 24 x 16 (20 + 2 + 2 wide, 12 + 2 + 2 high)"
else
    bad "a PixelCNN prior over a 12 x 20 VQ-VAE: $(cat "$tmp/vq_rect.out" "$tmp/vq_rect_prior.out" 2>/dev/null | grep '^cuvae: ' | tail -1)"
fi

# ---- a conv VAE on the RGB folder, end to end, figures in colour ---------------------
conv=(--set data.train="$D/rgb_folder" --set model.input_shape=[3,16,16] --set model.latent_dim=8
      --set 'model.decoder=[{"linear":1024},{"reshape":[64,4,4]},{"batch_norm":{}},{"relu":{}},{"conv_transpose2d":32,"kernel":4,"stride":2,"padding":1},{"batch_norm":{}},{"relu":{}},{"conv_transpose2d":3,"kernel":4,"stride":2,"padding":1}]'
      --set train.epochs=2 --set train.batch_size=16 --set device=cpu --set eval.iw_samples=10)
png_colour() { python3 -c "import sys; b=open(sys.argv[1],'rb').read(26); sys.exit(0 if b[:8]==b'\x89PNG\r\n\x1a\n' and b[25]==2 else 1)" "$1"; }
if "$CUVAE" train configs/files_rgb_conv_vae.json "${conv[@]}" --out "$tmp/conv" >"$tmp/conv.out" 2>&1; then
    ok "the conv VAE template trains on a generated RGB folder (2 epochs, IW bound K = 10)"
    png_colour "$tmp/conv/progress/samples_epoch_002.png" && png_colour "$tmp/conv/progress/reconstruction_epoch_002.png" \
        && ok "progress images are RGB PNGs" || bad "progress images are not RGB"
    if "$CUVAE" sample "$tmp/conv/model.safetensors" -n 16 -o "$tmp/conv/s.png" 2>"$tmp/sample.err" &&
       png_colour "$tmp/conv/s.png"; then ok "cuvae sample: an RGB grid"
    else bad "sample: $(tail -1 "$tmp/sample.err")"; fi
    if "$CUVAE" eval "$tmp/conv/model.safetensors" >"$tmp/eval.json" 2>"$tmp/eval.err" &&
       grep -q '"examples": 6,' "$tmp/eval.json" &&
       grep -q "6 of the 64 images of $D/rgb_folder held out as the test set" "$tmp/eval.err"; then
        ok "cuvae eval carves the same 6 test images again from the checkpoint's config"
    else bad "eval: $(tail -1 "$tmp/eval.err")"; fi
    # scripts/cuvae_torch.py builds the RGB model from model.input_shape (it guessed 1 x side x
    # side from input_dim, and failed) and gives cuvae eval's reconstruction at z = mu on the
    # same 64 images (the NCHW array of the folder's images, as the data)
    if /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then   # (Debian's python3-torch, as cli_torch.sh)
        "$CUVAE" eval "$tmp/conv/model.safetensors" \
            --set "data={\"dataset\": \"files\", \"train\": \"$D/rgb_nchw.npy\", \"test\": \"$D/rgb_nchw.npy\"}" \
            >"$tmp/eval_all.json" 2>/dev/null
        want=$(sed -E 's/.*"rec_bce_at_mean": ([0-9.]+).*/\1/' "$tmp/eval_all.json")
        got=$(/usr/bin/python3 - "$tmp/conv/model.safetensors" "$D/rgb_nchw.npy" <<'PY' 2>&1
import sys
sys.path.insert(0, "scripts")
import numpy as np, torch
import torch.nn.functional as F
from cuvae_torch import load
model = load(sys.argv[1])
x = torch.from_numpy(np.load(sys.argv[2]).reshape(64, -1).astype(np.float32)) / 255.0
with torch.no_grad():
    mu, _ = model.encode(x)
    print("%.6f" % F.binary_cross_entropy_with_logits(model.decode(mu), x, reduction="none").sum(1).double().mean().item())
PY
)
        python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 1e-4 * abs(a) else 1)" \
            "$want" "$got" 2>/dev/null \
            && ok "cuvae_torch.py loads the RGB conv model (model.input_shape) with eval's reconstruction at z = mu ($got)" \
            || bad "cuvae_torch.py on the RGB model: eval $want, PyTorch $got"
    else
        skip "cuvae_torch.py on the RGB model" "/usr/bin/python3 has no torch / numpy (Debian python3-torch)"
    fi
    if command -v gnuplot >/dev/null 2>&1; then
        if "$CUVAE" plot "$tmp/conv" >"$tmp/plot.out" 2>&1; then
            ok "cuvae plot on the RGB run: $(grep -c 'wrote' "$tmp/plot.out") figures"
            python3 - "$tmp/conv/figures/samples.png" <<'EOF' && ok "figures/samples.png has colour" || bad "figures/samples.png is grey"
import struct, sys, zlib
b = open(sys.argv[1], 'rb').read()
sys.exit(0 if b[25] in (2, 6) else 1)
EOF
        else bad "plot: $(grep '^cuvae: ' "$tmp/plot.out" | tail -1)"; fi
    else
        skip "cuvae plot on the RGB run" "gnuplot not installed"
    fi
    # one image more in the folder: eval and plot would carve another test set, which may hold
    # images the model trained on: refused (the image goes again before the emulated run below)
    class_dir=$(ls -d "$D"/rgb_folder/*/ | head -1)
    cp "$class_dir$(ls "$class_dir" | head -1)" "${class_dir}zz_extra.png"
    # (stderr: the error alone; the line announcing the carved test set comes once it is checked)
    changed_refused() {
        "$@" >/dev/null 2>"$tmp/changed.err"; local rc=$?
        [ "$rc" -eq 2 ] && [ "$(grep -c . "$tmp/changed.err")" -eq 1 ] && tail -1 "$tmp/changed.err" | grep -qE \
            "conv/model.safetensors: the test set held out of data.train now \([0-9]+ of 65 images\) is not the one the run held out .*give the test images as data.test"
    }
    changed_refused "$CUVAE" eval "$tmp/conv/model.safetensors" \
        && ok "eval after data.train changed (its carved test set is not the run's): refused, exit 2" \
        || bad "eval after data.train changed: $(tail -1 "$tmp/changed.err")"
    # ... and its advice works: --set data.test gives the test set (the stored data.test_fraction,
    # the carve it replaces, no longer refuses it)
    "$CUVAE" eval "$tmp/conv/model.safetensors" --set data.test="$D/rgb_folder" >"$tmp/advice.json" 2>"$tmp/advice.err" \
        && grep -q '"examples": 65,' "$tmp/advice.json" \
        && ok "the refusal's advice: eval --set data.test=FOLDER evaluates on it (65 images)" \
        || bad "eval --set data.test after the refusal: $(tail -1 "$tmp/advice.err")"
    if command -v gnuplot >/dev/null 2>&1; then
        changed_refused "$CUVAE" plot "$tmp/conv" && ok "plot after data.train changed: refused, exit 2" \
            || bad "plot after data.train changed: $(tail -1 "$tmp/changed.err")"
    else
        skip "plot after data.train changed" "gnuplot not installed"
    fi
    rm -f "${class_dir}zz_extra.png"
    "$CUVAE" eval "$tmp/conv/model.safetensors" >/dev/null 2>&1 && ok "the folder as it was: eval runs again" \
        || bad "eval after the extra image went"
    # --set train.seed seeds eval's draws; the carved test set stays the one the run held out
    # (carved with the checkpoint's own seed), so it is not refused as another test set
    seeded=$("$CUVAE" eval "$tmp/conv/model.safetensors" --set train.seed=12345 2>"$tmp/seeded.err")
    plain=$("$CUVAE" eval "$tmp/conv/model.safetensors" 2>/dev/null)
    examples_of() { echo "$1" | sed -nE 's/.*"examples": ([0-9]+).*/\1/p'; }
    [ -n "$seeded" ] && [ -n "$(examples_of "$seeded")" ] && [ "$(examples_of "$seeded")" = "$(examples_of "$plain")" ] \
        && grep -q "held out as the test set" "$tmp/seeded.err" \
        && ok "eval --set train.seed on a carved test set: the run's test images, other draws" \
        || bad "eval --set train.seed on a carved test set: $(tail -1 "$tmp/seeded.err")"
else
    bad "conv VAE on the RGB folder: $(grep '^cuvae: ' "$tmp/conv.out" | tail -1)"
fi
# the same run through the CUDA backend's real sources on the emulated device
emu="${BUILD_EMU:-build-emu}/cuvae"
if [ -x "$emu" ] && [ -f "$tmp/conv/log.jsonl" ]; then
    if "$emu" train configs/files_rgb_conv_vae.json "${conv[@]}" --set device=cuda --set eval.iw_samples=0 \
            --out "$tmp/conv_emu" >"$tmp/conv_emu.out" 2>&1; then
        if diff=$(python3 - "$tmp/conv/log.jsonl" "$tmp/conv_emu/log.jsonl" <<'EOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
worst = max(abs(x[k] - y[k]) / abs(x[k]) for x, y in zip(a, b) for k in ("train_loss", "test_loss"))
print("largest relative difference %.1e" % worst)
sys.exit(0 if len(a) == len(b) and worst < 1e-3 else 1)
EOF
        ); then ok "(emulated CUDA) the conv VAE on the RGB folder: the CPU run's losses ($diff)"
        else bad "(emulated CUDA) the conv VAE's losses differ from the CPU run's: $diff"; fi
    else
        bad "(emulated CUDA) conv VAE on the RGB folder: $(grep '^cuvae: ' "$tmp/conv_emu.out" | tail -1)"
    fi
elif [ ! -x "$emu" ]; then
    skip "(emulated CUDA) the conv VAE on the RGB folder" "$emu not built (make emu)"
else
    skip "(emulated CUDA) the conv VAE on the RGB folder" "the CPU run it compares with failed (above)"
fi
# ---- arrays that parse but cannot be these images, and test sets that do not match the training
# set: one line naming the file, exit 2 (unrun by any test until 2026-12-07; without its check a
# fortran_order array trained transposed unsaid, a 12 x 12 test set trained against 16 x 16 images,
# labels on one side only crashed)
python3 - "$D" "$tmp/mm" <<'PY'
import os, struct, sys
d, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
def npy(path, descr, shape, payload, fortran=False):
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape)
    h += " " * (-(10 + len(h) + 1) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + payload)
raw = open(d + "/rgb_nhwc_f32.npy", "rb").read()          # (64, 16, 16, 3) float32
pixels = raw[-64 * 16 * 16 * 3 * 4:]   # (the data end the file; its header is v1 or v2)
npy(out + "/fortran.npy", "<f4", "(64, 16, 16, 3)", pixels, fortran=True)
npy(out + "/test_12x12.npy", "<f4", "(8, 12, 12, 3)", bytes(8 * 12 * 12 * 3 * 4))
npy(out + "/labels.npy", "<i8", "(64,)", bytes(64 * 8))
npy(out + "/labels_f32.npy", "<f4", "(64,)", bytes(64 * 4))
npy(out + "/labels_2d.npy", "<i8", "(64, 1)", bytes(64 * 8))
npy(out + "/rank2.npy", "<f4", "(64, 768)", pixels)
npy(out + "/zero.npy", "<f4", "(0, 16, 16, 3)", b"")
npy(out + "/scalar.npy", "<f4", "()", struct.pack("<f", 0.5))
npy(out + "/rank5.npy", "<f4", "(2, 2, 2, 2, 2)", bytes(32 * 4))
PY
M="$tmp/mm"
mm=0   # (each check its own --out: one that wrongly trains leaves no run in the next one's way)
expect_error "fortran_order: refused (not read transposed)" 2 "fortran.npy: fortran_order arrays are not supported \(save with np.ascontiguousarray\)" -- \
    train --set data.train="$M/fortran.npy" --out "$M/run$((mm += 1))"
expect_error "test images of another size than the training images" 2 \
    "test_12x12.npy: test images are 3 x 12 x 12 \(C x H x W\) but the training images \(.*rgb_nhwc_f32.npy\) are 3 x 16 x 16" -- \
    train --set data.train="$D/rgb_nhwc_f32.npy" --set data.test="$M/test_12x12.npy" --out "$M/run$((mm += 1))"
expect_error "labels for the training set only" 2 "rgb_nhwc_f32.npy has labels but .*rgb_nchw.npy has none: give both or neither" -- \
    train --set data.train="$D/rgb_nhwc_f32.npy" --set data.train_labels="$M/labels.npy" --set data.test="$D/rgb_nchw.npy" --out "$M/run$((mm += 1))"
expect_error "a class-folder training set, a flat test folder" 2 "rgb_folder has labels but .*rgb_flat has none: give both or neither" -- \
    train --set data.train="$D/rgb_folder" --set data.test="$D/rgb_flat" --out "$M/run$((mm += 1))"
mkdir -p "$M/other_classes/cat_red" "$M/other_classes/zebra"
cp "$D"/rgb_folder/cat_red/* "$M/other_classes/cat_red/"; cp "$D"/rgb_folder/dog_green/* "$M/other_classes/zebra/"
expect_error "test class folders named otherwise than the training ones" 2 \
    "other_classes: its class folders differ from those of .*rgb_folder \(the same names give the same labels\)" -- \
    train --set data.train="$D/rgb_folder" --set data.test="$M/other_classes" --out "$M/run$((mm += 1))"
expect_error "float32 labels" 2 "labels_f32.npy: labels must be integers, found float32" -- \
    train --set data.train="$D/rgb_nhwc_f32.npy" --set data.train_labels="$M/labels_f32.npy" --out "$M/run$((mm += 1))"
expect_error "labels of rank 2" 2 "labels_2d.npy: labels must be a 1-D array \(N\), found rank 2" -- \
    train --set data.train="$D/rgb_nhwc_f32.npy" --set data.train_labels="$M/labels_2d.npy" --out "$M/run$((mm += 1))"
expect_error "images of rank 2" 2 "rank2.npy: images must be \(N, H, W\), \(N, H, W, C\) or \(N, C, H, W\); found rank 2" -- \
    train --set data.train="$M/rank2.npy" --out "$M/run$((mm += 1))"
expect_error "no images (a zero size)" 2 "zero.npy: no images \(shape has a zero size\)" -- \
    train --set data.train="$M/zero.npy" --out "$M/run$((mm += 1))"
expect_error "a scalar array" 2 "scalar.npy: a scalar array: want" -- train --set data.train="$M/scalar.npy" --out "$M/run$((mm += 1))"
expect_error "an array of rank 5" 2 "rank5.npy: 'shape' in the header must be 1 to 4 non-negative sizes" -- \
    train --set data.train="$M/rank5.npy" --out "$M/run$((mm += 1))"
expect_error "a labels file that is not there" 2 "nope.npy: No such file or directory \(data.train_labels\)" -- \
    train --set data.train="$D/rgb_nhwc_f32.npy" --set data.train_labels="$M/nope.npy" --out "$M/run$((mm += 1))"
expect_error "data.format png given a file" 2 "rgb_nhwc_f32.npy: data.format \"png\" reads a folder of .png files" -- \
    train --set data.train="$D/rgb_nhwc_f32.npy" --set data.format=png --out "$M/run$((mm += 1))"
expect_error "a labels file beside class folders" 2 "rgb_folder: a PNG folder's labels are its class sub-folders; drop the labels file" -- \
    train --set data.train="$D/rgb_folder" --set data.train_labels="$M/labels.npy" --out "$M/run$((mm += 1))"
cli_finish cli_files

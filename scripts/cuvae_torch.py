#!/usr/bin/env python3
"""cuvae_torch.py: a cuvae checkpoint as a torch.nn.Module, in one line.

    from cuvae_torch import load, save
    model = load("runs/conv_vae_dim16/model.safetensors")   # eval mode, weights loaded strict=True
    save(model, "edited.safetensors")                        # back into a file cuvae reads

The model is built from the config cuvae stores inside the checkpoint:
  - layer-list encoder / decoder (model.encoder / model.decoder as layer objects):
    nn.Sequential of nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm1d/2d, nn.Linear,
    activations, nn.Flatten and reshapes, so the state_dict names are cuvae's
    (encoder.3.weight, encoder.3.running_mean, ...);
  - the width-list shorthand: nn.ModuleList of nn.Linear (encoder.i, decoder.i count
    linears; the activation in between), as cuvae names them;
  - heads mu and logvar (nn.Linear) between them; for a vq_vae the quantizer instead
    (quantizer.embedding: nn.Embedding(K, D), its EMA statistics as buffers);
  - a made: one nn.Sequential `network` of MaskedLinear (an nn.Linear with a `mask` buffer,
    forward F.linear(x, W * mask, b)) and activations: network.0.weight, network.0.mask, ...;
  - a pixelcnn: `network` of MaskedConv2d (type A / B, the mask a buffer), nn.Conv2d 1x1,
    activations and Residual entries (a LayerList: an nn.ModuleList whose forward adds the
    skipped input back, with nn.Sequential's names);
  - an aae: the AE (encoder, mu head, decoder) and nn.Sequential `discriminator` on z (one logit);
  - a gan: nn.Sequential `generator` (z -> image) and `discriminator` (image -> one logit);
    model.generate(z) -> images (N, input_dim) in [0, 1] (a tanh generator's (v + 1) / 2),
    model.discriminate(images in [0, 1]) -> logits (N,);
model.encode(x) -> (mu, logvar or None), for a VQ-VAE (codes, z_e); model.decode(z) -> logits or
values (N, input_dim) (a VQ-VAE decodes its codes); a cvae's encode(x, y) and decode(z, y) take
the labels one-hot, (N, 10) floats; a MADE or PixelCNN: model(x) -> the logits (N, input_dim)
of p(x_d = 1 | x_<d), model.log_prob(x) -> log p(x) (N,) in nats of binary x; a PixelCNN prior
over a VQ-VAE's codes: model(codes) -> logits (N, h * w, K), model.log_prob(codes) (N,);
x is (N, input_dim) in [0, 1], an image flattened C, H, W as model.input_shape says.
A file cuvae would refuse raises CheckpointError (a ValueError) with one line naming it, in cuvae's
words where cuvae has them: the container as src/safetensors.c reads it (header, tensor entries,
data_offsets that neither overlap nor leave a byte unused, crc32 / crc32_entries), the
__metadata__ (format "cuvae-1"; a resume file is named as such; a cvae's data_classes), the
model section of the stored config as src/config.c and the layer kinds (src/layer_*.c) check it
(each layer kind's value and options, their types and ranges, the shapes through each network),
the tensors' names and shapes, finite values. The model is built on PyTorch's meta device until
the file's tensors are found to be its own, so a config asking for more than the file holds
allocates nothing. (The stored config's data, loss, train and eval sections do not shape the
model and are not checked here; a prior's model.prior_of file is not read.) cuvae does not store
PyTorch's num_batches_tracked counters (unused when momentum is set, as here); load() fills them
with 0 so the state_dict is complete for strict=True.

The way back: save(model, path) writes a model from load() -- its weights changed in PyTorch,
fine-tuned -- as a cuvae checkpoint (the same config and metadata, the checksums cuvae
verifies; __metadata__.written_by names this script and the build that wrote the file load()
read), which cuvae eval, sample and plot read.

Run as a script: cuvae_torch.py CKPT prints the module.
Needs numpy and torch (Debian: python3-numpy, python3-torch); reads safetensors itself.
"""
import json
import math
import os
import string
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn

CHECKPOINT_FORMAT = "cuvae-1"
ST_MAX_RANK, ST_MAX_NAME, META_KEY_SIZE = 4, 128, 64   # include/cuvae/safetensors.h, src/safetensors.c
MAX_EXACT_JSON_INT = 2 ** 53
INT64_MAX = 2 ** 63 - 1


class CheckpointError(ValueError):
    """A file that is not a cuvae checkpoint this reader can load (said in one line)."""


class ConfigError(ValueError):
    """A stored config cuvae's loader refuses, said as cuvae says it: "model.encoder[0].stride: must be
    in [1, 64], got 0" (load() puts the file's name in front)."""


class _Object(dict):
    """A JSON object as cJSON reads it: the first of a key given twice is the one found; the first such
    key is kept in `duplicate` (cuvae refuses it)."""
    duplicate = None


def _object(pairs):
    obj = _Object()
    for key, value in pairs:
        if key not in obj:
            obj[key] = value
        elif obj.duplicate is None:
            obj.duplicate = key
    return obj


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _whole_characters(value):
    """Raises a ValueError when a JSON text's strings hold half a UTF-16 surrogate pair ("\\ud800"
    alone), which cJSON refuses as invalid JSON and Python reads as an unprintable string."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ValueError("a \\u escape of half a UTF-16 surrogate pair") from None


def _shown(name):
    """A name fit for a one-line message, as cuvae prints it: control characters as '?', cut with "..."."""
    text = "".join("?" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch for ch in name)
    return text if len(text) < 80 else text[:76] + "..."


def _element_count(shape):
    """Elements of a shape, or -1 when its byte size (4 per element) would not fit an int64 (cuvae's
    element_count, in Python's exact integers)."""
    if any(d == 0 for d in shape):
        return 0
    count = 1
    for d in shape:
        if count > INT64_MAX // 4 // d:
            return -1
        count *= d
    return count


def _offset(value):
    """A header number as cuvae takes it: a non-negative integer exactly representable as a double."""
    return type(value) is int and 0 <= value <= MAX_EXACT_JSON_INT


def _hex8(text):
    """An 8-digit hex checksum as cuvae parses it (strtoul base 16: either case), or None."""
    return int(text, 16) if len(text) == 8 and all(ch in string.hexdigits for ch in text) else None


def _crc_entries(header, data_start):
    """cuvae's __metadata__.crc32_entries: CRC-32 over the tensor entries in the order of their
    data, each name NUL dtype NUL "rank,dim,..." NUL begin NUL (src/safetensors.c, crc_entries)."""
    crc = 0
    for name, info in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        shape = info["shape"]
        for text in (name, info["dtype"], ",".join(str(v) for v in [len(shape)] + list(shape)),
                     str(info["data_offsets"][0])):
            crc = zlib.crc32(text.encode() + b"\0", crc)
    return crc


def _read_header(path, blob):
    """The header JSON of a safetensors file, checked as src/safetensors.c parse_file checks it:
    (its __metadata__ or None, the tensor entries by name, the data bytes)."""
    if len(blob) < 8:
        raise CheckpointError(f"{path}: file is {len(blob)} bytes, too short for a safetensors header")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > len(blob) - 8:
        raise CheckpointError(f"{path}: header length {header_len} exceeds the file size ({len(blob)} bytes) "
                              "(truncated, or not a safetensors file: a config is cuvae's JSON)")
    if header_len == 0:
        raise CheckpointError(f"{path}: empty header")
    text = blob[8:8 + header_len]
    if b"\0" in text:
        raise CheckpointError(f"{path}: header contains a NUL byte")
    i = 0
    while i < len(text):   # (cuvae's json_escaped_nul: cJSON would end the string there)
        if text[i:i + 1] == b"\\" and text[i + 1:i + 6] == b"u0000" and i + 5 < len(text):
            raise CheckpointError(f"{path}: header byte {i}: a string holds \\u0000 (NUL), which names and "
                                  "metadata may not contain")
        i += 2 if text[i:i + 1] == b"\\" else 1

    def whole_numbers_only(number):
        raise CheckpointError(f"{path}: header: {number[:40]} is not written as an integer (shapes and data_offsets "
                              "are whole numbers, without a fraction or exponent)")
    try:
        header = json.loads(text, object_pairs_hook=_object, parse_float=whole_numbers_only,
                            parse_constant=_no_constant)
        _whole_characters(header)
    except (ValueError, RecursionError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{path}: header is not valid JSON ({e}): not a safetensors file") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: header is not a JSON object")
    if header.duplicate is not None:
        raise CheckpointError(f"{path}: duplicate key '{_shown(header.duplicate)}' in header")
    data = blob[8 + header_len:]
    meta, entries = None, {}
    for name, entry in header.items():
        if name == "__metadata__":
            if entry is None:
                continue
            if not isinstance(entry, dict):
                raise CheckpointError(f"{path}: header: __metadata__ is not an object")
            for key, value in entry.items():
                if len(key.encode()) >= META_KEY_SIZE:
                    raise CheckpointError(f"{path}: metadata key '{_shown(key)}' is longer than {META_KEY_SIZE - 1} "
                                          "bytes")
                if not isinstance(value, str):
                    raise CheckpointError(f"{path}: metadata '{_shown(key)}': value is not a string (__metadata__ "
                                          "holds strings only: the file is damaged or was edited)")
            if entry.duplicate is not None:
                raise CheckpointError(f"{path}: duplicate metadata key '{_shown(entry.duplicate)}'")
            meta = entry
            continue
        shown = _shown(name)
        if name == "":
            raise CheckpointError(f"{path}: header: empty tensor name")
        if len(name.encode()) >= ST_MAX_NAME:
            raise CheckpointError(f"{path}: tensor name '{shown}' is longer than {ST_MAX_NAME - 1} bytes")
        if not isinstance(entry, dict):
            raise CheckpointError(f"{path}: tensor '{shown}': entry is not an object")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(dtype, str):
            raise CheckpointError(f"{path}: tensor '{shown}': missing or non-string dtype")
        if dtype != "F32":
            raise CheckpointError(f"{path}: tensor '{shown}': unsupported dtype {_shown(dtype)[:31]} (only F32)")
        if not isinstance(shape, list):
            raise CheckpointError(f"{path}: tensor '{shown}': missing or non-array shape")
        if len(shape) > ST_MAX_RANK:
            raise CheckpointError(f"{path}: tensor '{shown}': rank {len(shape)} exceeds the maximum {ST_MAX_RANK}")
        for d, size in enumerate(shape):
            if not _offset(size):
                raise CheckpointError(f"{path}: tensor '{shown}': shape[{d}] is not a non-negative integer")
        count = _element_count(shape)
        if count < 0:
            raise CheckpointError(f"{path}: tensor '{shown}': shape is too large")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_offset(v) for v in offsets):
            raise CheckpointError(f"{path}: tensor '{shown}': data_offsets must be two non-negative integers")
        begin, end = offsets
        if begin > end or end > len(data):
            raise CheckpointError(f"{path}: tensor '{shown}': data_offsets [{begin}, {end}] out of range (data size "
                                  f"{len(data)} bytes)")
        if end - begin != 4 * count:
            raise CheckpointError(f"{path}: tensor '{shown}': data_offsets span {end - begin} bytes but shape needs "
                                  f"{4 * count}")
        entries[name] = entry
    # the tensors' bytes neither overlap nor leave a hole, nor anything after them
    if not entries and data:
        raise CheckpointError(f"{path}: {len(data)} bytes of data but no tensor (the format has no unused bytes)")
    ranges = sorted(((info["data_offsets"][0], info["data_offsets"][1], name) for name, info in entries.items()),
                    key=lambda r: r[:2])   # (stable: ties in the order of the header, as cuvae sorts them)
    for (_, end_a, name_a), (begin_b, _, name_b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            raise CheckpointError(f"{path}: tensors '{_shown(name_a)}' and '{_shown(name_b)}' have overlapping "
                                  "data_offsets")
    for i in range(len(ranges) + 1):
        expected = ranges[i - 1][1] if i > 0 else 0
        found = ranges[i][0] if i < len(ranges) else len(data)
        if ranges and found != expected:
            where = "a hole between data_offsets" if i < len(ranges) else "after the last tensor"
            raise CheckpointError(f"{path}: bytes {expected}..{found - 1} of the data section (from byte "
                                  f"{8 + header_len}) belong to no tensor ({where}; the format has no unused bytes)")
    return meta, entries, data


def read_safetensors(path):
    """The tensors (name -> torch.Tensor) and __metadata__ of a cuvae safetensors file, checked as
    cuvae checks it (src/safetensors.c): the header, each tensor entry (F32, shape, data_offsets
    inside the data), offsets that neither overlap nor leave unused bytes, __metadata__.crc32 (the
    data and the other metadata) and crc32_entries (names, dtypes, shapes, offsets), finite values.
    Raises CheckpointError naming the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror}") from None
    meta, header, data = _read_header(path, blob)
    meta = meta if meta is not None else {}
    if "crc32" in meta:   # every file cuvae writes; verified as cuvae verifies it
        want = _hex8(meta["crc32"])
        if want is None:
            raise CheckpointError(f"{path}: __metadata__.crc32: expected 8 hex digits")
        def metadata_crc(pairs):
            crc = zlib.crc32(data)
            for key, value in pairs:
                if key != "crc32":
                    crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
            return crc
        # the metadata in key order (cuvae's files since 2026-12-06), or in file order (before)
        crc = metadata_crc(sorted(meta.items(), key=lambda pair: pair[0].encode()))
        if crc != want and metadata_crc(meta.items()) == want:
            crc = want
        if crc != want:
            raise CheckpointError(f"{path}: checksum mismatch: __metadata__.crc32 is {meta['crc32']} but the tensor "
                                  f"data and metadata give {crc:08x} (the file is damaged or was edited)")
        if "crc32_entries" in meta:   # (absent: written before the key was)
            want = _hex8(meta["crc32_entries"])
            if want is None:
                raise CheckpointError(f"{path}: __metadata__.crc32_entries: expected 8 hex digits")
            crc = _crc_entries(header, 8)
            if crc != want:
                raise CheckpointError(f"{path}: checksum mismatch: __metadata__.crc32_entries is "
                                      f"{meta['crc32_entries']} but the header's tensor entries (names, dtypes, "
                                      f"shapes, offsets) give {crc:08x} (the file is damaged or was edited)")
    elif meta.get("format", "").startswith("cuvae"):
        raise CheckpointError(f"{path}: __metadata__.format is \"{meta['format'][:40]}\", a file cuvae writes with a "
                              "__metadata__.crc32, which is missing (the file is damaged or was edited)")
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        if not np.isfinite(array).all():
            where = int(np.flatnonzero(~np.isfinite(array.reshape(-1)))[0])
            raise CheckpointError(f"{path}: tensor {name}: element {where} is {array.reshape(-1)[where]} (a diverged "
                                  "run's weights; cuvae refuses them too)")
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, meta


class Reshape(nn.Module):
    """{"reshape": [C, H, W]}: each example to this shape (no parameters)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape((x.shape[0],) + self.shape)

    def extra_repr(self):
        return str(self.shape)


class MaskedLinear(nn.Linear):
    """{"masked_linear": N}: nn.Linear whose weight is multiplied by a fixed 0/1 mask (a
    buffer, saved with the model), as in MADE (Germain et al. 2015)."""

    def __init__(self, in_features, out_features, device=None):
        super().__init__(in_features, out_features, device=device)
        self.register_buffer("mask", torch.ones(out_features, in_features, device=device))

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MaskedConv2d(nn.Conv2d):
    """{"masked_conv2d_a": N, "kernel": k} / {"masked_conv2d_b": ...}: PixelCNN's stride-1
    convolution whose weight is multiplied by a fixed mask (a buffer): kernel rows above the
    centre and the centre row left of it, and for type B the centre itself."""

    def __init__(self, in_channels, out_channels, kernel, padding, type_b, device=None):
        super().__init__(in_channels, out_channels, kernel, padding=padding, device=device)
        self.type_b = type_b
        self.register_buffer("mask", self.own_mask(device))

    def own_mask(self, device=None):
        """The mask the layer's kind makes (a checkpoint's must equal it, as cuvae checks)."""
        out_channels, in_channels, kernel, _ = self.weight.shape
        mask = torch.zeros(out_channels, in_channels, kernel, kernel, device=device)
        c = kernel // 2
        mask[:, :, :c, :] = 1
        mask[:, :, c, :c + (1 if self.type_b else 0)] = 1
        return mask

    def forward(self, x):
        return nn.functional.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class Residual(nn.Module):
    """{"residual": n}: adds the input of the layer n positions back (no parameters)."""

    def __init__(self, span):
        super().__init__()
        self.span = span

    def extra_repr(self):
        return f"adds the input of the layer {self.span} back"


class LayerList(nn.ModuleList):
    """A cuvae layer list: the layers in order (state_dict names network.0.weight, ... as
    nn.Sequential's), with residual connections."""

    def forward(self, x):
        inputs = []
        for i, layer in enumerate(self):
            inputs.append(x)
            x = x + inputs[i - layer.span] if isinstance(layer, Residual) else layer(x)
        return x


# cuvae's limits (include/cuvae/config.h, network.h; src/config.c)
MAX_WIDTH = 65536
MAX_INPUT_DIM = 1 << 24
MAX_HIDDEN = 16                  # widths of the shorthand
MAX_LAYERS = 64                  # layers of a layer list
MAX_EXAMPLE_VALUES = 2147483647  # values of one example at any layer
LAYER_MAX_ARGS, LAYER_MAX_OPTIONS, OPTION_KEY_SIZE = 3, 6, 16

# Each layer kind, in cuvae's order (src/layers.c), with its value -- (fewest numbers, most, integers?,
# lo, hi, what it is) -- and its options -- (key, required, default, lo, hi, integer?) -- as src/layer_*.c
# check them: a conv2d's padding defaults to 0, a masked convolution's to (kernel - 1) / 2.
_CHANNELS = (1, 1, True, 1, 1 << 16, "the output channels")
_WIDTH = (1, 1, True, 1, 1 << 20, "the output width")
_NO_VALUE = (0, 0, False, 0, 0, "")
_CONV = (("kernel", True, 0, 1, 64, True), ("stride", False, 1, 1, 64, True), ("padding", False, 0, 0, 64, True))
_MASKED_CONV = (("kernel", True, 0, 1, 63, True), ("padding", False, 0, 0, 31, True))
LAYER_KINDS = {
    "linear": (_WIDTH, ()),
    "conv2d": (_CHANNELS, _CONV),
    "conv_transpose2d": (_CHANNELS, _CONV + (("output_padding", False, 0, 0, 63, True),)),
    "batch_norm": (_NO_VALUE, (("momentum", False, 0.1, 0, 1, False), ("eps", False, 1e-5, 1e-12, 1, False))),
    "relu": (_NO_VALUE, ()),
    "leaky_relu": ((1, 1, False, 0, 1, "the negative slope"), ()),
    "tanh": (_NO_VALUE, ()),
    "sigmoid": (_NO_VALUE, ()),
    "flatten": (_NO_VALUE, ()),
    "reshape": ((1, 3, True, 1, 1 << 24, "the shape's sizes"), ()),
    "masked_linear": (_WIDTH, ()),
    "residual": ((1, 1, True, 1, MAX_LAYERS - 1, "the number of layers it spans"), ()),
    "masked_conv2d_a": (_CHANNELS, _MASKED_CONV),
    "masked_conv2d_b": (_CHANNELS, _MASKED_CONV),
}
ACTIVATION_KINDS = ("relu", "leaky_relu", "tanh", "sigmoid")
CHANNEL_KINDS = ("conv2d", "conv_transpose2d", "masked_conv2d_a", "masked_conv2d_b")
MODEL_KINDS = ("vae", "ae", "cvae", "vq_vae", "made", "pixelcnn", "gan", "aae")
ACTIVATIONS = ("relu", "tanh", "leaky_relu")   # model.activation of the width-list shorthand


class _LayerProblem(Exception):
    """(option key or "" for the kind's value, message) of a layer kind's check."""


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value):
    return math.isfinite(value) and value == math.floor(value)


def _type_name(value):
    """cuvae's name of a JSON value's type (src/config.c type_name)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    return "a string" if isinstance(value, str) else "an array" if isinstance(value, list) else "an object"


def _number_text(value):
    """A number as cuvae prints a config's (format_double): whole numbers plainly, else the shortest
    text that reads back."""
    if not math.isfinite(value):
        return "%g" % value
    return "%.0f" % value if value == math.floor(value) and abs(value) < 1e16 else repr(float(value))


def _kind_check(kind, args, args_list, options):
    """cuvae's check of one layer (src/layer_*.c, src/layers.c): its value (a number, a tuple for a
    reshape, or None) and its options in the kind's order with the defaults filled in. Raises
    _LayerProblem(key, message)."""
    (fewest, most, integer, lo, hi, what), rules = LAYER_KINDS[kind]
    if kind == "leaky_relu" and not args:   # PyTorch's default slope
        args = [0.01]
    if kind == "reshape":
        if len(args) not in (1, 3):
            raise _LayerProblem("", f"needs the shape of one example, [C, H, W] or [N], got {len(args)} "
                                f"number{'' if len(args) == 1 else 's'}")
    if not fewest <= len(args) <= most:
        if most == 0:
            message = (f"takes no value, got {len(args)} number{'' if len(args) == 1 else 's'}; write "
                       f'{{"{kind}": {{}}}}')
        elif fewest == most == 1:
            message = f'needs {what} as its value, e.g. {{"{kind}": 32}}'
        else:
            message = f"needs {what}: {fewest} to {most} numbers, got {len(args)}"
        raise _LayerProblem("", message)
    for v in args:
        if (integer and not _is_integer(v)) or not lo <= v <= hi:
            raise _LayerProblem("", "%s must be %s in [%.10g, %.10g], got %.10g"
                                % (what, "integers" if integer else "numbers", lo, hi, v))
    if args_list and fewest == most == 1:
        raise _LayerProblem("", f"needs {what} as a number, not a list")
    given = dict(options)
    if kind.startswith("masked_conv2d") and "padding" not in given:   # the same image size
        k = given.get("kernel", 0)
        if k >= 1 and _is_integer(k) and len(options) < LAYER_MAX_OPTIONS:
            given["padding"] = math.floor((k - 1) / 2)
    for key, _ in options:
        if all(rule[0] != key for rule in rules):
            if not rules:
                raise _LayerProblem(key, f"unknown option: {kind} takes none")
            raise _LayerProblem(key, f"unknown option of {kind} (it takes: {', '.join(r[0] for r in rules)})")
    ordered = {}
    for key, required, default, low, high, whole in rules:
        if required and key not in given:
            raise _LayerProblem(key, f"missing ({kind} needs it)")
        v = given.get(key, default)
        if whole and not _is_integer(v):
            raise _LayerProblem(key, "must be an integer, got %g" % v)
        if not low <= v <= high:
            raise _LayerProblem(key, "must be in [%.10g, %.10g], got %.10g" % (low, high, v))
        ordered[key] = int(v) if whole else float(v)
    if kind == "conv_transpose2d" and ordered["output_padding"] >= ordered["stride"]:
        raise _LayerProblem("output_padding", "must be smaller than the stride (%g), as in PyTorch" % ordered["stride"])
    if kind.startswith("masked_conv2d"):
        if ordered["kernel"] % 2 == 0:
            raise _LayerProblem("kernel", f"must be odd (the mask is centred on a pixel), got {ordered['kernel']}")
        if ordered["kernel"] == 1 and kind == "masked_conv2d_a":
            raise _LayerProblem("kernel", "1 leaves a type-A mask nothing (it hides the centre pixel): the layer "
                                "would see no input; use 3 or more")
    if kind == "reshape":
        return tuple(int(v) for v in args), ordered
    if not args:
        return None, ordered
    return (int(args[0]) if integer else float(args[0])), ordered


def layer_spec(item, path="layer"):
    """(kind, value, options) of one layer of a cuvae layer list -- {"conv2d": 32, "kernel": 4},
    {"batch_norm": {"eps": 1e-5}} or a bare "relu" -- checked as cuvae's config loader checks it
    (src/config.c get_layer_spec), the options with the kind's defaults. `path` names the layer in
    a ConfigError (model.encoder[2])."""
    value, has_value = None, False
    if isinstance(item, str):
        if item not in LAYER_KINDS:
            raise ConfigError(f'{path}: unknown layer "{item}"; layers: {", ".join(LAYER_KINDS)}')
        kind = item
    elif isinstance(item, dict):
        kind = None
        for key in item:
            if key in LAYER_KINDS:
                if kind is not None:
                    raise ConfigError(f'{path}: names two layers ("{kind}" and "{key}"); one layer per object')
                kind = key
        if kind is None:
            if item:
                raise ConfigError(f'{path}: no layer kind among its keys (first key "{next(iter(item))}"); layers: '
                                  f'{", ".join(LAYER_KINDS)}')
            raise ConfigError(f'{path}: an empty object; a layer is e.g. {{"linear": 256}}; layers: '
                              f'{", ".join(LAYER_KINDS)}')
        value, has_value = item[kind], True
    else:
        raise ConfigError(f'{path}: must be a layer object such as {{"linear": 256}} or a layer name such as '
                          f'"relu", got {_type_name(item)}')
    key_path = f"{path}.{kind}"
    args, args_list, options_object = [], False, None
    if has_value and _is_number(value):
        args = [value]
    elif has_value and isinstance(value, list):
        if not value:
            raise ConfigError(f"{key_path}: an empty list: give the layer's value (e.g. {{\"linear\": 256}}), or {{}} "
                              "for a layer that takes none")
        if len(value) > LAYER_MAX_ARGS:
            raise ConfigError(f"{key_path}: lists {len(value)} numbers; a layer's value is at most {LAYER_MAX_ARGS} "
                              "(reshape's [C, H, W])")
        for v in value:
            if not _is_number(v):
                raise ConfigError(f"{key_path}: must list numbers, got {_type_name(v)}")
        args, args_list = list(value), True
    elif has_value and isinstance(value, dict):
        options_object = value
    elif has_value:
        raise ConfigError(f"{key_path}: must be a number, a list of numbers or an object of options, got "
                          f"{_type_name(value)}")
    # the options: the keys of an object value, then the sibling keys; one that is not a number is
    # held as NaN (every option check refuses it) and said once the kind knows the option
    options, wrong_type = [], None
    for holder, prefix in ((options_object, key_path), (item if isinstance(item, dict) else None, path)):
        for key, v in (holder or {}).items():
            if holder is item and key == kind:
                continue
            option_path = f"{prefix}.{key}"
            if not _is_number(v) and wrong_type is None:
                wrong_type = f"{option_path}: must be a number, got {_type_name(v)}"
            if any(known == key for known, _ in options):
                raise ConfigError(f"{option_path}: given twice")
            if len(options) == LAYER_MAX_OPTIONS or len(key.encode()) >= OPTION_KEY_SIZE:
                raise ConfigError(f"{option_path}: unknown option of {kind}")
            options.append((key, v if _is_number(v) else math.nan))
    try:
        value, checked = _kind_check(kind, args, args_list, options)
    except _LayerProblem as problem:
        key, message = problem.args
        if wrong_type and not message.startswith("unknown option"):
            raise ConfigError(wrong_type) from None
        raise ConfigError(f"{path}.{key}: {message}" if key else f"{key_path}: {message}") from None
    if wrong_type:
        raise ConfigError(wrong_type)
    return kind, value, checked


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def build_sequential(specs, shape, name="layers", device=None):
    """nn.Sequential of a cuvae layer list over per-example input `shape`; returns it and the
    output shape. Each layer is checked as cuvae checks it (layer_spec; specs already checked are
    (kind, value, options) tuples), and so is each layer's input (src/network.c, src/layer_*.c):
    a ConfigError names it as model.<name>[i]. Options left out take cuvae's defaults."""
    if not 1 <= len(specs) <= MAX_LAYERS:
        raise ConfigError(f"model.{name}: needs 1 to {MAX_LAYERS} layers, got {len(specs)}")
    modules, inputs = [], []
    for i, spec in enumerate(specs):
        where = f"model.{name}[{i}]"
        kind, value, options = spec if isinstance(spec, tuple) else layer_spec(spec, where)

        def refuse(message):
            raise ConfigError(f"{where} ({kind}): {message}")
        inputs.append(shape)
        if kind in ("linear", "masked_linear"):
            if len(shape) != 1:
                refuse(f'needs a flat input, got {_shape_text(shape)}; put {{"flatten": {{}}}} before it')
            modules.append((nn.Linear if kind == "linear" else MaskedLinear)(shape[0], value, device=device))
            shape = (value,)
        elif kind in CHANNEL_KINDS:
            if len(shape) != 3:
                refuse(f'needs an image input (C, H, W), got ({shape[0]}); put {{"reshape": [C, H, W]}} before it')
            c, h, w = shape
            k, p = options["kernel"], options["padding"]
            s = options.get("stride", 1)
            if kind == "conv_transpose2d":
                q = options["output_padding"]
                out_h, out_w = (h - 1) * s - 2 * p + k + q, (w - 1) * s - 2 * p + k + q
                if out_h > MAX_EXAMPLE_VALUES or out_w > MAX_EXAMPLE_VALUES:
                    refuse(f"output ({value}, {out_h}, {out_w}) from input {_shape_text(shape)} is more than "
                           f"{MAX_EXAMPLE_VALUES} values an example")
                if out_h < 1 or out_w < 1:
                    refuse(f"output ({value}, {out_h}, {out_w}) from input {_shape_text(shape)} is empty: padding {p} "
                           "is too large")
                modules.append(nn.ConvTranspose2d(c, value, k, stride=s, padding=p, output_padding=q, device=device))
            else:
                if k > h + 2 * p or k > w + 2 * p:
                    refuse(f"kernel {k} is larger than its input {_shape_text(shape)} with padding {p}")
                out_h, out_w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
                if kind == "conv2d":
                    modules.append(nn.Conv2d(c, value, k, stride=s, padding=p, device=device))
                elif (out_h, out_w) != (h, w):
                    refuse(f"kernel {k} with padding {p} changes the image size ({h}, {w}) to ({out_h}, {out_w}); a "
                           f"masked convolution keeps it (padding (kernel - 1) / 2 = {(k - 1) // 2})")
                else:
                    modules.append(MaskedConv2d(c, value, k, p, kind == "masked_conv2d_b", device=device))
            shape = (value, out_h, out_w)
        elif kind == "residual":
            if value > i:
                refuse(f"{value} reaches before the network's first layer (at most {i} here)")
            if inputs[i - value] != shape:
                refuse(f"adds the input of layer {i - value}, {_shape_text(inputs[i - value])}, to its own input "
                       f"{_shape_text(shape)}: the shapes must match")
            modules.append(Residual(value))
        elif kind == "batch_norm":
            norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            modules.append(norm(shape[0], eps=options["eps"], momentum=options["momentum"], device=device))
        elif kind in ACTIVATION_KINDS:
            modules.append({"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[kind]() if kind != "leaky_relu"
                           else nn.LeakyReLU(value))
        elif kind == "flatten":
            if math.prod(shape) > MAX_EXAMPLE_VALUES:
                refuse(f"input {_shape_text(shape)} holds {math.prod(shape)} values an example, more than "
                       f"{MAX_EXAMPLE_VALUES}")
            modules.append(nn.Flatten())
            shape = (math.prod(shape),)
        elif kind == "reshape":
            if math.prod(value) > MAX_EXAMPLE_VALUES:
                refuse(f"cannot reshape {_shape_text(shape)} ({math.prod(shape)} values) to {_shape_text(value)} "
                       f"(more than {MAX_EXAMPLE_VALUES} values an example)")
            if math.prod(value) != math.prod(shape):
                refuse(f"cannot reshape {_shape_text(shape)} ({math.prod(shape)} values) to {_shape_text(value)} "
                       f"({math.prod(value)} values)")
            modules.append(Reshape(value))
            shape = tuple(value)
        if any(d < 1 for d in shape):
            refuse(f"output {_shape_text(shape)} is empty")
        if math.prod(shape) > MAX_EXAMPLE_VALUES:
            refuse(f"output {_shape_text(shape)} holds {math.prod(shape)} values an example, more than "
                   f"{MAX_EXAMPLE_VALUES}")
    if any(isinstance(m, Residual) for m in modules):
        return LayerList(modules), shape
    return nn.Sequential(*modules), shape


def philox_normals(seed, start, n):
    """cuvae's N(0, 1) stream (include/cuvae/philox.h): numbers start .. start + n - 1 of stream
    `seed`, as float32 (N,). Philox4x32-10 (counter = (block, 0, 1, 0), key = seed), Box-Muller on
    a block's words (2h, 2h + 1) for number 2 block + h -- so a script can redraw cuvae's z."""
    index = np.arange(start, start + n, dtype=np.uint64)
    block = index // np.uint64(2)
    c = [block & np.uint64(0xFFFFFFFF), block >> np.uint64(32), np.full_like(block, 1), np.zeros_like(block)]
    k0, k1 = np.uint64(seed & 0xFFFFFFFF), np.uint64((seed >> 32) & 0xFFFFFFFF)
    mask = np.uint64(0xFFFFFFFF)
    for _ in range(10):
        p0 = np.uint64(0xD2511F53) * c[0]
        p1 = np.uint64(0xCD9E8D57) * c[2]
        c = [((p1 >> np.uint64(32)) ^ c[1] ^ k0) & mask, p1 & mask, ((p0 >> np.uint64(32)) ^ c[3] ^ k1) & mask,
             p0 & mask]
        k0 = (k0 + np.uint64(0x9E3779B9)) & mask
        k1 = (k1 + np.uint64(0xBB67AE85)) & mask
    half = (index & np.uint64(1)).astype(bool)
    w1 = np.where(half, c[2], c[0])
    w2 = np.where(half, c[3], c[1])
    unit = lambda w: (((w >> np.uint64(8)).astype(np.float32) + np.float32(1.0)) * np.float32(1.0 / 16777216.0))
    u1, u2 = unit(w1), unit(w2)
    return (np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(np.float32(6.28318530717958647692) * u2)).astype(np.float32)


def input_shape(input_dim):
    """cuvae's shape of one example without model.input_shape: (1, side, side) for a square,
    else (input_dim,)."""
    side = math.isqrt(input_dim)
    return (1, side, side) if side * side == input_dim else (input_dim,)


def example_shape(m):
    """One example's shape: the config's model.input_shape [C, H, W] (RGB, non-square, or more
    channels), else from input_dim as cuvae derives it."""
    shape = m.get("input_shape")
    return tuple(int(v) for v in shape) if shape else input_shape(int(m["input_dim"]))


def example_dim(m):
    return int(np.prod(m["input_shape"])) if m.get("input_shape") else m["input_dim"]


def is_layer_list(value):
    """Whether model.encoder (decoder, network, ...) is a layer list, as cuvae tells it from widths: its
    first entry a layer object or a word."""
    return (isinstance(value, list) and len(value) > 0 and
            (isinstance(value[0], dict) or (isinstance(value[0], str) and value[0][:1] != "" and
                                            value[0][0] in string.ascii_letters)))


# ---- the model section of a stored config, checked as src/config.c checks it ----

def _get(obj, path, key, required=False):
    full = f"{path}.{key}" if path else key
    if key not in obj:
        if required:
            raise ConfigError(f"{full}: missing required key")
        return None, full
    return obj[key], full


def _check_integer(value, full, lo, hi):
    if not _is_number(value):
        raise ConfigError(f"{full}: must be an integer, got {_type_name(value)}")
    if not _is_integer(value):
        raise ConfigError(f"{full}: must be an integer, got {_number_text(value)}")
    if value < lo:
        raise ConfigError(f"{full}: must be >= {lo}, got {_number_text(value)}")
    if value > hi:
        raise ConfigError(f"{full}: must be <= {hi}, got {_number_text(value)}")
    return int(value)


def _get_int(obj, path, key, lo, hi, default=None, required=False):
    value, full = _get(obj, path, key, required)
    return default if value is None and key not in obj else _check_integer(value, full, lo, hi)


def _get_number(obj, path, key, default):
    value, full = _get(obj, path, key)
    if key not in obj:
        return default
    if not _is_number(value):
        raise ConfigError(f"{full}: must be a number, got {_type_name(value)}")
    if not math.isfinite(value):
        raise ConfigError(f"{full}: must be a finite number")
    if value != 0 and abs(value) < sys.float_info.min:
        raise ConfigError(f"{full}: {value:g} is subnormal (below {sys.float_info.min:g}), which cuvae's CPU "
                          "arithmetic flushes to 0")
    return float(value)


def _check_float32(value, full):
    if value != 0 and abs(value) < 1.17549435e-38:
        raise ConfigError(f"{full}: {_number_text(value)} rounds to 0 in float32, the type it is computed in (the "
                          "smallest normal float is 1.17549435e-38)")
    if abs(value) > 3.4028234663852886e+38:
        raise ConfigError(f"{full}: {_number_text(value)} overflows float32, the type it is computed in (the largest "
                          "float is 3.40282347e+38)")


def _get_choice(obj, path, key, names, default):
    value, full = _get(obj, path, key)
    if key not in obj:
        return default
    listed = ", ".join(f'"{n}"' for n in names)
    if not isinstance(value, str):
        raise ConfigError(f"{full}: must be a string, one of {listed}; got {_type_name(value)}")
    if value not in names:
        raise ConfigError(f'{full}: must be one of {listed}; got "{value[:64]}"')
    return value


def _get_string(obj, path, key, size):
    value, full = _get(obj, path, key)
    if key not in obj:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{full}: must be a string, got {_type_name(value)}")
    if len(value.encode()) >= size:
        raise ConfigError(f"{full}: too long ({len(value.encode())} bytes, at most {size - 1})")
    return value


def _check_keys(obj, path, allowed):
    for key in obj:
        if key not in allowed:
            raise ConfigError(f"{path + '.' if path else ''}{key}: unknown key (allowed here: {', '.join(allowed)})")


def _layers_or_widths(model, key, allow_empty):
    """model.<key>: a layer list (checked layer by layer: a list of (kind, value, options)) or widths
    (a list of ints), as src/config.c get_layers_or_widths reads it."""
    item, full = _get(model, "model", key, required=True)
    if is_layer_list(item):
        if len(item) > MAX_LAYERS:
            raise ConfigError(f"{full}: at most {MAX_LAYERS} layers, got {len(item)}")
        specs = []
        for i, layer in enumerate(item):
            if _is_number(layer):
                raise ConfigError(f'{full}[{i}]: a width among layer objects; write {{"linear": {layer:g}}} (or give '
                                  "only widths)")
            specs.append(layer_spec(layer, f"{full}[{i}]"))
        return specs
    if not isinstance(item, list):
        raise ConfigError(f"{full}: must be an array of integers (layer widths), got {_type_name(item)}")
    if not item and not allow_empty:
        raise ConfigError(f"{full}: must not be empty (at least one hidden layer)")
    if len(item) > MAX_HIDDEN:
        raise ConfigError(f"{full}: at most {MAX_HIDDEN} hidden layers, got {len(item)}")
    return [_check_integer(w, f"{full}[{i}]", 1, MAX_WIDTH) for i, w in enumerate(item)]


def _is_specs(value):
    return bool(value) and isinstance(value[0], tuple)


def _check_duplicates(value, path):
    """A key twice in one object of the config (cuvae refuses it; Python's json would keep the last)."""
    if isinstance(value, dict):
        if getattr(value, "duplicate", None) is not None:
            raise ConfigError(f"{path + '.' if path else ''}{value.duplicate}: duplicate key")
        for key, child in value.items():
            _check_duplicates(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            _check_duplicates(child, f"{path}[{i}]")


def read_config(text):
    """A stored config (__metadata__.config) as a dict, its model section checked as cuvae's config
    loader checks it (check_model). Raises ConfigError."""
    try:
        cfg = json.loads(text, object_pairs_hook=_object, parse_constant=_no_constant)
        _whole_characters(cfg)
    except json.JSONDecodeError as e:
        raise ConfigError(f"line {e.lineno}, column {e.colno} (byte {e.pos}): invalid JSON ({e.msg})") from None
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"invalid JSON ({e})") from None
    check_model(cfg)
    return cfg


def check_model(cfg):
    """The model section of a config as src/config.c parse_config reads it (keys, kinds, integers
    and their ranges, layer lists, the codebook, ...): a dict of what the model is built from --
    kind, input_dim, shape (one example's), latent_dim, activation, the networks as checked layer
    lists ((kind, value, options) tuples) or widths, and so on. The top level's sections are
    checked for presence; the data, loss, train and eval sections themselves are not (they do not
    shape the model). Raises ConfigError."""
    _check_duplicates(cfg, "")
    if not isinstance(cfg, dict):
        raise ConfigError(f"top level: must be a JSON object, got {_type_name(cfg)}")
    _check_keys(cfg, "", ("name", "description", "data", "model", "loss", "train", "eval", "device"))
    for key in ("data", "model", "train", "loss", "eval"):
        section, full = _get(cfg, "", key, required=key in ("data", "model", "train"))
        if key in cfg and not isinstance(section, dict):
            raise ConfigError(f"{full}: must be an object, got {_type_name(section)}")
    model = cfg["model"]
    _check_keys(model, "model", ("kind", "input_dim", "input_shape", "encoder", "latent_dim", "decoder", "activation",
                                 "output", "condition", "codebook", "network", "ordering", "masks", "prior_of",
                                 "prior_crc32", "generator", "discriminator", "label_smoothing", "init", "prior"))
    _get(model, "model", "kind", required=True)
    kind = _get_choice(model, "model", "kind", MODEL_KINDS, "vae")
    m = {"kind": kind, "input_shape": None}
    if "input_shape" in model:
        shape = model["input_shape"]
        if not isinstance(shape, list) or len(shape) != 3:
            raise ConfigError("model.input_shape: must be [channels, height, width], e.g. [3, 32, 32]")
        m["input_shape"] = tuple(_check_integer(v, f"model.input_shape[{k}]", 1, MAX_INPUT_DIM)
                                 for k, v in enumerate(shape))
        for k in range(1, 4):
            if math.prod(m["input_shape"][:k]) > MAX_INPUT_DIM:
                raise ConfigError(f"model.input_shape: holds more than {MAX_INPUT_DIM} values per example")
        given = model.get("input_dim")
        if _is_number(given) and given != math.prod(m["input_shape"]):
            raise ConfigError(f"model.input_dim: is {_number_text(given)} but model.input_shape "
                              f"[{', '.join(str(v) for v in m['input_shape'])}] holds {math.prod(m['input_shape'])} "
                              "values (give one of them)")
    required_dim = m["input_shape"] is None
    shape_dim = math.prod(m["input_shape"]) if m["input_shape"] else None
    if kind in ("made", "pixelcnn"):
        _check_autoregressive(model, m, required_dim, shape_dim)
    elif kind == "gan":
        _check_gan(model, m, required_dim, shape_dim)
    else:
        _check_latent(model, m, required_dim, shape_dim)
    m["shape"] = m["input_shape"] or input_shape(m["input_dim"])
    return m


def _check_autoregressive(model, m, required_dim, shape_dim):
    kind = m["kind"]
    made = kind == "made"
    for key in ("encoder", "latent_dim", "decoder", "condition", "codebook", "generator", "discriminator",
                "label_smoothing", "init", "prior"):
        if key in model:
            raise ConfigError(f'model: kind "{kind}" has no "{key}": it is one autoregressive network, model.network '
                              f'({"e.g. [500]" if made else "masked convolutions, see the README"})')
    if not made:
        for key, why in (("ordering", "its order is the raster order, fixed by its masked convolutions"),
                         ("masks", "its order is the raster order, fixed by its masked convolutions"),
                         ("activation", "its network names its activations as layers")):
            if key in model:
                raise ConfigError(f'model: "{key}" is not a key of kind "pixelcnn" ({why})')
    m["input_dim"] = _get_int(model, "model", "input_dim", 2, MAX_INPUT_DIM, shape_dim, required=required_dim)
    network = _layers_or_widths(model, "network", True)
    if not made and not _is_specs(network):
        raise ConfigError('model.network: kind "pixelcnn" needs a layer list, e.g. [{"masked_conv2d_a": 64, '
                          '"kernel": 7}, "relu", ..., {"conv2d": 1, "kernel": 1}]')
    if _is_specs(network) and "activation" in model:
        raise ConfigError('model.activation: unused: model.network is a layer list, which names its activations as '
                          'layers (e.g. "relu")')
    m["activation"] = _get_choice(model, "model", "activation", ACTIVATIONS, "relu")
    if not _is_specs(network):   # widths: the masked MLP they stand for
        items = []
        for w in network:
            items += [{"masked_linear": w}, m["activation"]]
        network = [layer_spec(item, f"model.network[{i}]")
                   for i, item in enumerate(items + [{"masked_linear": m["input_dim"]}])]
    m["network"] = network
    if made and "prior_of" in model:
        raise ConfigError('model.prior_of: a prior over a VQ-VAE\'s codes is a "pixelcnn"')
    m["prior_of"] = _get_string(model, "model", "prior_of", 512)
    crc = _get_string(model, "model", "prior_crc32", 16)
    if m["prior_of"] == "":
        raise ConfigError('model.prior_of: is "": give the VQ-VAE checkpoint whose codes the prior models, or leave '
                          'the key out (a pixelcnn over the images)')
    if crc is not None and crc != "none" and (len(crc) != 8 or any(ch not in "0123456789abcdef" for ch in crc)):
        raise ConfigError("model.prior_crc32: expected 8 lowercase hex digits (the crc32 in the VQ-VAE checkpoint's "
                          f'metadata), got "{crc[:40]}"')
    if crc and not m["prior_of"]:
        raise ConfigError("model.prior_crc32: names the VQ-VAE of model.prior_of, which is not given")
    _get_choice(model, "model", "ordering", ("natural", "random"), "natural")
    _get_int(model, "model", "masks", 1, 64, 1)
    if _get_choice(model, "model", "output", ("bernoulli", "gaussian"), "bernoulli") != "bernoulli":
        raise ConfigError(f'model.output: kind "{kind}" models binary pixels: only "bernoulli"')


def _check_gan(model, m, required_dim, shape_dim):
    for key in ("encoder", "decoder", "activation", "output", "condition", "codebook", "network", "ordering", "masks",
                "prior_of", "prior_crc32", "prior"):
        if key in model:
            raise ConfigError(f'model: kind "gan" has no "{key}": it is model.generator (z -> image) and '
                              "model.discriminator (image -> one logit)")
    m["input_dim"] = _get_int(model, "model", "input_dim", 1, MAX_INPUT_DIM, shape_dim, required=required_dim)
    m["latent_dim"] = _get_int(model, "model", "latent_dim", 1, MAX_WIDTH, 100)
    m["generator"] = _layers_or_widths(model, "generator", False)
    if not _is_specs(m["generator"]):
        raise ConfigError('model.generator: a layer list, e.g. [{"linear": 6272}, {"reshape": [128, 7, 7]}, ..., '
                          '"sigmoid"]')
    m["discriminator"] = _layers_or_widths(model, "discriminator", False)
    if not _is_specs(m["discriminator"]):
        raise ConfigError('model.discriminator: a layer list, e.g. [{"conv2d": 64, "kernel": 4, "stride": 2}, '
                          '{"leaky_relu": 0.2}, ..., {"flatten": {}}, {"linear": 1}]')
    smoothing = model.get("label_smoothing")
    if isinstance(smoothing, list):
        if len(smoothing) != 2:
            raise ConfigError("model.label_smoothing: a range is [min, max], two numbers (each real image's target "
                              f"drawn in (1 - max, 1 - min] every step), got {len(smoothing)}")
        lo, hi = (_get_number({"v": v}, "", "v", 0.0) for v in smoothing)
        if not lo < hi:
            raise ConfigError(f"model.label_smoothing: a range [min, max] needs min < max, got [{_number_text(lo)}, "
                              f"{_number_text(hi)}] (one number gives every real image the same target)")
    else:
        lo = hi = _get_number(model, "model", "label_smoothing", 0.0)
    if not (lo >= 0 and hi < 0.5):
        raise ConfigError("model.label_smoothing: must be in [0, 0.5) (real targets become 1 - it; a range's ends "
                          f"too), got {_number_text(lo if lo < 0 else hi)}")
    _get_choice(model, "model", "init", ("dcgan", "pytorch"), "dcgan")


def _check_latent(model, m, required_dim, shape_dim):
    kind = m["kind"]
    aae = kind == "aae"
    for key, kinds in (("generator", '"gan"'), ("discriminator", '"gan" or "aae"'), ("label_smoothing", '"gan"'),
                       ("init", '"gan"'), ("network", '"made" or "pixelcnn"'), ("ordering", '"made"'),
                       ("masks", '"made"'), ("prior_of", '"pixelcnn" (a prior)'),
                       ("prior_crc32", '"pixelcnn" (a prior)')):
        if key in model and not (aae and key == "discriminator"):
            raise ConfigError(f'model: "{key}" is for kind {kinds} (got "{kind}")')
    m["input_dim"] = _get_int(model, "model", "input_dim", 1, MAX_INPUT_DIM, shape_dim, required=required_dim)
    m["encoder"] = _layers_or_widths(model, "encoder", False)
    m["latent_dim"] = _get_int(model, "model", "latent_dim", 1, MAX_WIDTH, required=True)
    m["decoder"] = _layers_or_widths(model, "decoder", True)
    if _is_specs(m["encoder"]) and _is_specs(m["decoder"]) and "activation" in model:
        raise ConfigError("model.activation: unused: encoder and decoder are layer lists, which name their "
                          'activations as layers (e.g. {"relu": {}})')
    m["activation"] = _get_choice(model, "model", "activation", ACTIVATIONS, "relu")
    m["output"] = _get_choice(model, "model", "output", ("bernoulli", "gaussian"), "bernoulli")
    condition = _get_choice(model, "model", "condition", ("none", "label"), "label" if kind == "cvae" else "none")
    if kind == "cvae" and condition != "label":
        raise ConfigError('model.condition: kind "cvae" needs condition "label"')
    if kind != "cvae" and condition != "none":
        raise ConfigError(f'model.condition: "label" needs model.kind "cvae" (got "{kind}")')
    m["classes"] = 10 if condition == "label" else 0
    if m["classes"] and (_is_specs(m["encoder"]) or _is_specs(m["decoder"])):
        raise ConfigError('model.kind: "cvae" needs encoder and decoder as lists of widths: the label condition is '
                          "not wired into layer lists yet")
    if not aae and "prior" in model:
        raise ConfigError(f'model.prior: is the prior of kind "aae" (got "{kind}")')
    if aae:
        m["discriminator"] = _layers_or_widths(model, "discriminator", True)
        if not _is_specs(m["discriminator"]):
            raise ConfigError('model.discriminator: a layer list on z, e.g. [{"linear": 512}, "relu", {"linear": 512}, '
                              '"relu", {"linear": 1}]')
        if _get_choice(model, "model", "prior", ("gaussian", "mixture"), "gaussian") == "mixture" and \
                m["latent_dim"] != 2:
            raise ConfigError("model.prior: \"mixture\" is Makhzani et al.'s mixture of 10 Gaussians in 2-D: it needs "
                              f"model.latent_dim 2 (got {m['latent_dim']})")
    codebook = model.get("codebook")
    if "codebook" in model and not isinstance(codebook, dict):
        raise ConfigError(f"model.codebook: must be an object, got {_type_name(codebook)}")
    if kind == "vq_vae":
        if codebook is None:
            raise ConfigError('model.codebook: missing (vq_vae needs e.g. {"size": 256})')
        _check_keys(codebook, "model.codebook", ("size", "beta", "update", "decay", "eps", "restart_dead"))
        m["codebook_size"] = _get_int(codebook, "model.codebook", "size", 2, 65536, required=True)
        beta = _get_number(codebook, "model.codebook", "beta", 0.25)
        m["ema"] = _get_choice(codebook, "model.codebook", "update", ("loss", "ema"), "loss") == "ema"
        decay = _get_number(codebook, "model.codebook", "decay", 0.99)
        eps = _get_number(codebook, "model.codebook", "eps", 1e-5)
        if not beta >= 0:
            raise ConfigError(f"model.codebook.beta: must be >= 0, got {_number_text(beta)}")
        _check_float32(beta, "model.codebook.beta")
        if not 0 < decay < 1:
            raise ConfigError(f"model.codebook.decay: must be in (0, 1), got {_number_text(decay)}")
        _check_float32(decay, "model.codebook.decay")
        if np.float32(decay) >= 1:
            raise ConfigError(f"model.codebook.decay: {_number_text(decay)} rounds to 1 in float32, the type the EMA "
                              "update computes in (at most 0.99999994)")
        if not eps > 0:
            raise ConfigError(f"model.codebook.eps: must be > 0, got {_number_text(eps)}")
        _check_float32(eps, "model.codebook.eps")
        restart = _get_number(codebook, "model.codebook", "restart_dead", 0.0)
        if not 0 <= restart < 1:
            raise ConfigError("model.codebook.restart_dead: must be in [0, 1) (a fraction of the mean code count), got "
                              f"{_number_text(restart)}")
        if not m["ema"] and any(key in codebook for key in ("decay", "eps", "restart_dead")):
            raise ConfigError('model.codebook: decay, eps and restart_dead are the EMA update\'s; unused with update '
                              '"loss"')
        if not _is_specs(m["encoder"]) or not _is_specs(m["decoder"]):
            raise ConfigError('model.kind: "vq_vae" needs encoder and decoder as layer lists (e.g. convolutions down '
                              "to (latent_dim, 7, 7) and back)")
    elif codebook is not None:
        raise ConfigError(f'model.codebook: only for kind "vq_vae" (got "{kind}")')


def _refuse_masked(kind, name, specs):
    """masked_linear / masked_conv2d_* belong to made / pixelcnn (src/model.c model_refuse_masked_layers)."""
    for i, (layer, _, _) in enumerate(specs):
        if layer.startswith("masked_"):
            raise ConfigError(f'model.{name}[{i}] ({layer}): a masked layer belongs to kind "made" or "pixelcnn" (kind '
                              f'"{kind}" has no use for its mask)')


def _check_raw_output(name, specs, role, advice):
    """A network's last layer that computes (not a view) is no activation or batch norm (src/network.c)."""
    last = len(specs) - 1
    while last > 0 and specs[last][0] in ("flatten", "reshape"):
        last -= 1
    if specs[last][0] in ACTIVATION_KINDS + ("batch_norm",):
        raise ConfigError(f"model.{name}[{last}] ({specs[last][0]}): {role}, so not in an activation or batch "
                          f"norm{advice}")


def _fits(out, want, dim):
    return math.prod(out) == dim and (len(out) == 1 or out == want)


def _check_pixelcnn(specs, out, want, prior):
    """src/model_made.c check_pixelcnn: masked convolutions (type A first), 1x1 convolutions, residual
    connections that start after the type-A output, activations; out (K or 1, h, w) logits."""
    first_a = -1
    for i, (kind, value, options) in enumerate(specs):
        if kind == "residual" and (first_a < 0 or i - value - 1 < first_a):
            raise ConfigError(f"model.network[{i}] (residual): adds the input of layer {i - value}, which comes before "
                              "the type-A convolution's output: each pixel would reach its own logit; span only layers "
                              "after the first masked_conv2d_a")
        if kind in ("masked_conv2d_a", "masked_conv2d_b"):
            if first_a < 0 and kind == "masked_conv2d_b":
                raise ConfigError(f"model.network[{i}] (masked_conv2d_b): the first masked convolution must be type A "
                                  "(masked_conv2d_a), which hides each pixel from its own output")
            first_a = i if first_a < 0 else first_a
        elif kind == "conv2d":
            if (options["kernel"], options["stride"], options["padding"]) != (1, 1, 0):
                raise ConfigError(f"model.network[{i}] (conv2d): a PixelCNN's plain convolutions must be 1x1 (kernel "
                                  "1, stride 1, padding 0): a wider one sees later pixels; use masked_conv2d_b")
        elif kind != "residual" and kind not in ACTIVATION_KINDS:
            raise ConfigError(f"model.network[{i}] ({kind}): a PixelCNN is masked convolutions, 1x1 convolutions, "
                              "residual connections and activations only")
    if first_a < 0:
        raise ConfigError("model.network: needs a masked convolution (masked_conv2d_a first)")
    if out != want or specs[-1][0] in ACTIVATION_KINDS:
        if out == want:
            raise ConfigError(f"model.network: ends in {specs[-1][0]}, an activation: the loss takes the raw logits "
                              "(it applies the sigmoid / softmax itself); remove the last layer")
        per = "one per code of the VQ-VAE, per position" if prior else "one per pixel"
        raise ConfigError(f"model.network: must end in {want[0]} channel{'s' if want[0] > 1 else ''} of logits "
                          f"{_shape_text(want)} ({per}), e.g. {{\"conv2d\": {want[0]}, \"kernel\": 1}}; it ends "
                          f"in {_shape_text(out)} ({specs[-1][0]})")


class VectorQuantizer(nn.Module):
    """A VQ-VAE's codebook (nn.Embedding(K, D), cuvae's quantizer.embedding.weight) and, for the
    EMA update, its statistics as buffers (ema_counts (K), ema_sums (K, D))."""

    def __init__(self, size, dim, ema, device=None):
        super().__init__()
        self.embedding = nn.Embedding(size, dim, device=device)
        if ema:
            self.register_buffer("ema_counts", torch.zeros(size, device=device))
            self.register_buffer("ema_sums", torch.zeros(size, dim, device=device))

    def codes(self, z_e):
        """z_e (N, D, H, W) or (N, D) -> the nearest code per position, (N, H, W) or (N,)."""
        e = self.embedding.weight
        flat = z_e.movedim(1, -1).reshape(-1, e.shape[1]) if z_e.dim() == 4 else z_e
        distance = (e * e).sum(1)[None, :] - 2.0 * flat @ e.t()   # ||z||^2 is the same for every code
        codes = distance.argmin(1)
        return codes.reshape(z_e.shape[0], *z_e.shape[2:]) if z_e.dim() == 4 else codes

    def lookup(self, codes):
        """codes -> z_q with the channels first, the decoder's input."""
        z_q = self.embedding(codes)
        return z_q.movedim(-1, 1) if z_q.dim() == 4 else z_q


class CuvaeModel(nn.Module):
    """encoder -> (mu, logvar) heads -> decoder, with cuvae's tensor names. Built from a config
    (a dict) as cuvae builds it, after check_model; the networks' shapes are checked as cuvae checks
    them (ConfigError). device="meta" builds it without allocating its tensors (load() does, then
    moves it to the CPU once the file's tensors are found to be its own)."""

    def __init__(self, cfg, device=None):
        super().__init__()
        m = check_model(cfg)
        self.cfg = cfg
        kind = m["kind"]
        self.variational = kind in ("vae", "cvae")
        self.vq = kind == "vq_vae"
        self.made = kind in ("made", "pixelcnn")   # autoregressive: log_prob(x) is exact
        self.gan = kind == "gan"
        self.input_dim = m["input_dim"]
        self.prior = bool(m.get("prior_of"))
        self.shape = m["shape"]
        if self.gan:   # generator z -> image, discriminator image -> one logit
            _refuse_masked(kind, "generator", m["generator"])
            _refuse_masked(kind, "discriminator", m["discriminator"])
            self.generator, out = build_sequential(m["generator"], (m["latent_dim"],), "generator", device)
            if not _fits(out, self.shape, self.input_dim):
                raise ConfigError(f"model.generator: its output {_shape_text(out)} is not the data's shape "
                                  f"{_shape_text(self.shape)} (or {self.input_dim} values)")
            end = m["generator"][-1][0]
            if end not in ("sigmoid", "tanh"):
                raise ConfigError(f'model.generator[{len(m["generator"]) - 1}] ({end}): a generator ends in "sigmoid" '
                                  '(images in [0, 1]) or "tanh" (in [-1, 1]), the range the discriminator sees the '
                                  "real images in")
            self.discriminator, out = build_sequential(m["discriminator"], self.shape, "discriminator", device)
            if math.prod(out) != 1:
                raise ConfigError(f"model.discriminator: ends in {_shape_text(out)}; it must end in one logit (e.g. "
                                  '{"flatten": {}}, {"linear": 1})')
            _check_raw_output("discriminator", m["discriminator"], "the discriminator ends in one logit",
                              ' (its loss applies the sigmoid); end it with {"linear": 1}')
            self.tanh = end == "tanh"
            return
        if self.made:   # one masked network from the pixels to their logits
            network = m["network"]
            if kind == "pixelcnn" and self.prior:   # a prior over a VQ-VAE's codes: the one-hot codes (K, h, w)
                # K, the codes of the VQ-VAE (model.prior_of, not read here), is the network's input channels
                # and its output's: the last layer that sets a channel count says it (the tensors must agree)
                channels = [value for layer, value, _ in network if layer in CHANNEL_KINDS]
                if not channels:
                    raise ConfigError("model.network: needs a masked convolution (masked_conv2d_a first)")
                side = math.isqrt(self.input_dim)
                if side * side != self.input_dim:
                    raise ConfigError("a prior over a non-square code grid: not supported here")
                self.net_shape = (channels[-1], side, side)
            elif kind == "pixelcnn":
                self.net_shape = self.shape
                if len(self.net_shape) != 3:
                    raise ConfigError(f"model.input_dim: {self.input_dim} is not a square image; a PixelCNN needs one")
            else:
                self.net_shape = (self.input_dim,)
            self.network, out = build_sequential(network, self.net_shape, "network", device)
            if kind == "pixelcnn":
                _check_pixelcnn(network, out, self.net_shape, self.prior)
            else:
                for i, (layer, _, _) in enumerate(network):
                    if layer != "masked_linear" and layer not in ACTIVATION_KINDS:
                        raise ConfigError(f"model.network[{i}] ({layer}): a MADE is masked_linear layers and "
                                          "activations only (any other layer would connect pixels the masks keep "
                                          "apart)")
                if network[-1][0] != "masked_linear" or out != (self.input_dim,):
                    raise ConfigError(f'model.network: must end in {{"masked_linear": {self.input_dim}}}, the logit of '
                                      "every pixel")
            return
        self.classes = m["classes"]   # the one-hot label joins x and z
        act = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "leaky_relu": nn.LeakyReLU(0.01)}[m["activation"]]
        self.act = act
        self.encoder_is_list = _is_specs(m["encoder"])
        self.decoder_is_list = _is_specs(m["decoder"])
        if kind == "aae":
            _refuse_masked(kind, "discriminator", m["discriminator"])
        L = m["latent_dim"]
        if self.encoder_is_list:
            _refuse_masked(kind, "encoder", m["encoder"])
            self.encoder, out = build_sequential(m["encoder"], self.shape, "encoder", device)
            if self.vq and out[0] != L:
                raise ConfigError(f"model.encoder: ends in {_shape_text(out)}, but the codes have model.latent_dim = "
                                  f"{L} values: its output must be ({L}, H, W) or ({L})")
            if not self.vq and len(out) != 1:
                raise ConfigError(f'model.encoder: ends in {_shape_text(out)}; end it with {{"flatten": {{}}}} (or a '
                                  "linear layer) so the mu / logvar heads read a flat vector")
            features = out[0]
        else:
            widths = [self.input_dim + self.classes] + m["encoder"]
            self.encoder = nn.ModuleList(nn.Linear(a, b, device=device) for a, b in zip(widths[:-1], widths[1:]))
            features = widths[-1]
        if self.vq:   # no heads: the quantiser between encoder and decoder
            self.quantizer = VectorQuantizer(m["codebook_size"], L, m["ema"], device)
            latent = out
        else:
            self.mu = nn.Linear(features, L, device=device)
            if self.variational:
                self.logvar = nn.Linear(features, L, device=device)
            latent = (L,)
        if self.decoder_is_list:
            _refuse_masked(kind, "decoder", m["decoder"])
            self.decoder, out = build_sequential(m["decoder"], latent, "decoder", device)
            if not _fits(out, self.shape, self.input_dim):
                raise ConfigError(f"model.decoder: its output {_shape_text(out)} is not the data's shape "
                                  f"{_shape_text(self.shape)} (or {self.input_dim} values)")
            if m["output"] == "bernoulli":
                _check_raw_output("decoder", m["decoder"], "the decoder ends in the output's logits",
                                  ' (model.output "bernoulli" applies the sigmoid inside the loss); end it with a '
                                  "linear or convolution layer")
            else:
                _check_raw_output("decoder", m["decoder"], "the decoder ends in the output's values",
                                  ' (model.output "gaussian": the decoder\'s last layer gives the mean itself, any '
                                  "real value); end it with a linear or convolution layer")
        else:
            widths = [L + self.classes] + m["decoder"] + [self.input_dim]
            self.decoder = nn.ModuleList(nn.Linear(a, b, device=device) for a, b in zip(widths[:-1], widths[1:]))
        if kind == "aae":   # the discriminator on z (one logit)
            self.discriminator, out = build_sequential(m["discriminator"], (L,), "discriminator", device)
            if math.prod(out) != 1:
                raise ConfigError(f"model.discriminator: ends in {_shape_text(out)}; it must end in one logit (e.g. "
                                  '{"linear": 1})')
            _check_raw_output("discriminator", m["discriminator"], "the discriminator ends in one logit",
                              ' (its loss applies the sigmoid); end it with {"linear": 1}')

    def generate(self, z):
        """A gan: z (N, latent_dim) -> images (N, input_dim) in [0, 1]."""
        g = self.generator(z).reshape(z.shape[0], self.input_dim)
        return (g + 1) / 2 if self.tanh else g

    def discriminate(self, images):
        """A gan: images (N, input_dim) in [0, 1] -> the discriminator's logits (N,)."""
        x = images * 2 - 1 if self.tanh else images
        return self.discriminator(x.reshape((x.shape[0],) + self.shape)).reshape(x.shape[0])

    def forward(self, x):
        """A MADE or PixelCNN: x (N, input_dim) binary -> logits (N, input_dim), output d seeing
        x_<d only. A PixelCNN prior over a VQ-VAE's codes: codes (N, h, w) or (N, h * w)
        (integers) -> logits (N, h * w, K) over the K codes at each position."""
        if not self.made:
            raise TypeError("forward(x) is a MADE's or a PixelCNN's; a VAE has encode() and decode()")
        if self.prior:
            K, h, w = self.net_shape
            codes = x.long().reshape(x.shape[0], h, w)
            dtype = next(self.network.parameters()).dtype   # (the model's: float32, or float64 after .double())
            onehot = nn.functional.one_hot(codes, K).permute(0, 3, 1, 2).to(dtype)   # (N, K, h, w)
            return self.network(onehot).permute(0, 2, 3, 1).reshape(x.shape[0], h * w, K)
        return self.network(x.reshape((x.shape[0],) + self.net_shape)).reshape(x.shape[0], self.input_dim)

    def log_prob(self, x):
        """A MADE or PixelCNN: the exact log p(x) (N,) in nats of binary x (N, input_dim) (the
        Bernoulli likelihood: grey levels give a number, not a log-probability). A prior: of the
        codes (N, h, w) or (N, h * w)."""
        if self.prior:
            codes = x.long().reshape(x.shape[0], -1)
            logp = nn.functional.log_softmax(self.forward(codes), dim=-1)   # (N, h * w, K)
            return logp.gather(-1, codes[..., None]).squeeze(-1).sum(1)
        return -nn.functional.binary_cross_entropy_with_logits(self.forward(x), x, reduction="none").sum(1)

    def encode(self, x, y=None):
        """x (N, input_dim) -> mu (N, L), logvar (N, L) or None (an autoencoder); a VQ-VAE:
        its codes (N, H, W) and z_e (N, D, H, W)."""
        if self.classes and y is None:
            raise TypeError("a cvae's encode(x, y) needs y: the labels one-hot, (N, 10) floats")
        if self.vq:
            z_e = self.encoder(x.reshape((x.shape[0],) + self.shape))
            return self.quantizer.codes(z_e), z_e
        if self.encoder_is_list:
            h = self.encoder(x.reshape((x.shape[0],) + self.shape))
        else:
            h = torch.cat([x, y], dim=1) if self.classes else x
            for layer in self.encoder:
                h = self.act(layer(h))
        return self.mu(h), (self.logvar(h) if self.variational else None)

    def decode(self, z, y=None):
        """z (N, L) -> logits (bernoulli) or values (gaussian), (N, input_dim). A VQ-VAE
        decodes codes (N, H, W) (integers) or z_q (N, D, H, W)."""
        if self.classes and y is None:
            raise TypeError("a cvae's decode(z, y) needs y: the labels one-hot, (N, 10) floats")
        if self.vq and not torch.is_floating_point(z):
            z = self.quantizer.lookup(z)
        if self.decoder_is_list:
            return self.decoder(z).reshape(z.shape[0], self.input_dim)
        h = torch.cat([z, y], dim=1) if self.classes else z
        for i, layer in enumerate(self.decoder):
            h = layer(h)
            if i < len(self.decoder) - 1:
                h = self.act(h)
        return h


def _check_buffers(path, model, tensors):
    """The buffers cuvae checks when it loads a file (model_check_loaded_buffers): a batch norm's
    running variance and a VQ codebook's EMA counts not negative, a masked convolution's mask the
    one its kind makes. (A made's masks follow from cuvae's own random degrees, which this reader
    does not redraw: cuvae checks them, this reader takes them as they are.)"""
    def first(bad):
        return int(np.flatnonzero(bad.reshape(-1))[0])
    for name, value in tensors.items():
        array = np.asarray(value)
        if name.endswith(".running_var") or name == "quantizer.ema_counts":
            bad = ~(array >= 0)
            if bad.any():
                k = first(bad)
                what = "a variance" if name.endswith(".running_var") else "a count"
                raise CheckpointError(f"{path}: tensor {name}, element {k} is {array.reshape(-1)[k]:g}: {what} is never "
                                      "negative (the file was edited?)")
    for module_name, module in model.named_modules():
        if isinstance(module, MaskedConv2d):
            name = f"{module_name}.mask"
            got, want = np.asarray(tensors[name]), module.own_mask("cpu").numpy()
            if not np.array_equal(got, want):
                k = first(got != want)
                raise CheckpointError(f"{path}: tensor {name}, element {k} is {got.reshape(-1)[k]:g} where the model's "
                                      f"own is {want.reshape(-1)[k]:g} (it follows from the config: the file was "
                                      "edited, or is of another model)")


def load(path):
    """The checkpoint at path as a CuvaeModel in eval mode (weights loaded strict=True).
    Raises CheckpointError (a ValueError) naming the file, in one line, for anything cuvae would
    refuse, in the order cuvae eval checks: the file, its __metadata__.format and config, the
    model the config describes, the tensors (names, shapes), a cvae's data_classes."""
    tensors, meta = read_safetensors(path)
    fmt = meta.get("format")
    if fmt == "cuvae-resume-1":
        raise CheckpointError(f"{path} is a resume file (for cuvae train --resume), not a model checkpoint; give the "
                              "run's model.safetensors")
    if fmt != CHECKPOINT_FORMAT:
        raise CheckpointError(f'{path}: __metadata__.format: expected "{CHECKPOINT_FORMAT}", got '
                              + (f'"{fmt}"' if fmt is not None else "nothing"))
    if "config" not in meta:
        raise CheckpointError(f"{path}: __metadata__.config: missing")
    source = f"{path} (__metadata__.config)"
    try:
        model = CuvaeModel(read_config(meta["config"]), device="meta")   # (allocates nothing yet)
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}") from None
    except Exception as e:   # a case the checks above do not foresee: still one line, never a traceback
        raise CheckpointError(f"{source}: not a model this reader can build ({type(e).__name__}: {e})") from None
    state = model.state_dict()
    names = [name for name in state if not name.endswith("num_batches_tracked")]
    for name in names:   # in cuvae's order; (load_state_dict would raise a RuntimeError)
        if name not in tensors:
            raise CheckpointError(f"{path}: tensor {name}: missing")
        want = list(state[name].shape)
        if list(tensors[name].shape) != want:
            raise CheckpointError(f"{path}: tensor {name}: shape {list(tensors[name].shape)}, model needs {want}")
    for name in tensors:
        if name not in names:
            raise CheckpointError(f"{path}: tensor '{_shown(name)[:64]}' is not one of the model's (the file holds "
                                  f"{len(tensors)} tensors, the model has {len(names)}: a checkpoint of another "
                                  "model?)")
    _check_buffers(path, model, tensors)
    if getattr(model, "classes", 0) and "data_classes" in meta:   # a cvae trained on labels 0..K-1 only
        stored = meta["data_classes"]
        value = int(stored) if stored and len(stored) <= 9 and all(ch in string.digits for ch in stored) else 0
        if not 1 <= value < model.classes:
            raise CheckpointError(f"{path}: __metadata__.data_classes: expected the classes of the run's data, a whole "
                                  f"number 1..{model.classes - 1} (the model has {model.classes}), got \"{stored}\" "
                                  "(damaged, or not cuvae's)")
    try:
        model = model.to_empty(device="cpu")
        for name, value in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensors[name] = torch.zeros((), dtype=value.dtype)
        model.load_state_dict(tensors, strict=True)
    except Exception as e:   # (after the checks above, not expected)
        raise CheckpointError(f"{path}: its tensors do not load into its config's model ({type(e).__name__}: "
                              f"{e})".replace("\n", " ")) from None
    model.cuvae_metadata = dict(meta)   # (save() writes it back, these tensors)
    model.cuvae_tensor_names = list(names)
    return model.eval()


def save(model, path):
    """Writes model -- a CuvaeModel from load(), its weights changed in PyTorch or not -- as a cuvae
    checkpoint that cuvae eval / sample / plot read: its tensors as F32 in state_dict order
    (PyTorch's num_batches_tracked counters left out: cuvae keeps none), the __metadata__ load()
    read (the stored config, format, ...), and crc32_entries and crc32 computed as
    src/safetensors.c computes them. Written to PATH.tmp.PID and renamed into place (a failed
    write leaves an earlier file as it was). Raises ValueError for a model load() did not make or
    a tensor that is not finite (cuvae refuses those)."""
    meta = getattr(model, "cuvae_metadata", None)
    if meta is None:
        raise ValueError("save: the model has no cuvae metadata (make it with cuvae_torch.load)")
    state = {name: value for name, value in model.state_dict().items() if not name.endswith("num_batches_tracked")}
    if set(state) != set(model.cuvae_tensor_names):
        other = [name for name in state if name not in model.cuvae_tensor_names] or \
                [name for name in model.cuvae_tensor_names if name not in state]
        raise ValueError(f"save: the model's tensors are not the ones load() read (first: {other[0] if other else '?'}); "
                         "torch.nn.utils.prune renames weight to weight_orig + weight_mask: prune.remove() first")
    header, chunks, offset = {}, [], 0
    for name in model.cuvae_tensor_names:   # (cuvae's order, whatever order state_dict has now)
        value = state[name]
        array = np.ascontiguousarray(value.detach().to("cpu", torch.float32).numpy(), dtype="<f4")
        if not np.isfinite(array).all():
            raise ValueError(f"save: tensor {name} holds a value that is not finite (cuvae would refuse the file)")
        raw = array.tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    data = b"".join(chunks)
    meta = {key: value for key, value in meta.items() if key not in ("crc32", "crc32_entries")}
    # the writer, as cuvae's own files name theirs (and the build that wrote the one load() read)
    earlier = meta.get("written_by", "")
    if earlier.startswith("scripts/cuvae_torch.py"):   # saved back before: keep the build it came from
        earlier = earlier.partition(", from a checkpoint written by ")[2]
        earlier = earlier[:-1] if earlier.endswith(")") else earlier   # (the closing one of this script's)
    source = f", from a checkpoint written by {earlier}" if earlier else ""
    meta["written_by"] = f"scripts/cuvae_torch.py (PyTorch {torch.__version__}{source})"[:1000]
    meta["crc32_entries"] = "%08x" % _crc_entries(header, 8)
    crc = zlib.crc32(data)
    for key, value in sorted(meta.items(), key=lambda pair: pair[0].encode()):   # (key order, as cuvae)
        crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
    meta["crc32"] = "%08x" % crc
    text = json.dumps({"__metadata__": meta, **header}, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    temp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(temp, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print("usage: cuvae_torch.py CKPT   (prints the checkpoint's torch.nn.Module; as a module: "
              "from cuvae_torch import load)", file=sys.stdout if len(argv) == 2 else sys.stderr)
        return 0 if len(argv) == 2 else 2
    try:
        print(load(argv[1]))
    except CheckpointError as e:
        print(f"cuvae_torch: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

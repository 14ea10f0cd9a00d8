#!/usr/bin/env python3
"""cuvae_torch.py: a cuvae checkpoint as a torch.nn.Module, in one line.

    from cuvae_torch import load
    model = load("runs/conv_vae_dim16/model.safetensors")   # eval mode, weights loaded strict=True

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
A file cuvae would refuse (a damaged or edited checkpoint: its crc32 / crc32_entries; NaN
weights; a resume file) raises CheckpointError (a ValueError) with one line naming it. cuvae does not store PyTorch's num_batches_tracked
counters (unused when momentum is set, as here); load() fills them with 0 so the
state_dict is complete for strict=True.

Run as a script: cuvae_torch.py CKPT prints the module.
Needs numpy and torch (Debian: python3-numpy, python3-torch); reads safetensors itself.
"""
import json
import math
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn


class CheckpointError(ValueError):
    """A file that is not a cuvae checkpoint this reader can load (said in one line)."""


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


def read_safetensors(path):
    """The tensors (name -> torch.Tensor) and __metadata__ of a cuvae safetensors file, checked as
    cuvae checks it: the header, __metadata__.crc32 (the data and the other metadata) and
    crc32_entries (names, dtypes, shapes, offsets), F32 tensors inside the data, finite values.
    Raises CheckpointError naming the file and what is wrong."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read: {e.strerror}") from None
    if len(blob) < 8:
        raise CheckpointError(f"{path}: {len(blob)} bytes: too short for a safetensors file")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > len(blob) - 8:
        raise CheckpointError(f"{path}: the header claims {header_len} bytes, the file holds {len(blob) - 8} after "
                              "its length (truncated, or not a safetensors file: a config is cuvae's JSON)")
    try:
        header = json.loads(blob[8:8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: the header is not valid JSON ({e}): not a safetensors file") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the header is not a JSON object: not a safetensors file")
    data = blob[8 + header_len:]
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise CheckpointError(f"{path}: __metadata__ is not an object of strings (the file is damaged or was edited)")
    for name, info in header.items():
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(v) is int for v in offsets)
                or not isinstance(shape, list) or not all(type(v) is int and v >= 0 for v in shape)):
            raise CheckpointError(f"{path}: tensor {name}: its header entry is not {{dtype, shape, data_offsets}} "
                                  "as safetensors writes it (the file is damaged or was edited)")
    if "crc32" in meta:   # every file cuvae writes; verified as cuvae verifies it
        crc = zlib.crc32(data)
        for key, value in meta.items():
            if key != "crc32":
                crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
        if "%08x" % crc != meta["crc32"]:
            raise CheckpointError(f"{path}: checksum mismatch: __metadata__.crc32 is {meta['crc32']} but the tensor "
                                  f"data and metadata give {crc:08x} (the file is damaged or was edited)")
        if "crc32_entries" in meta and "%08x" % _crc_entries(header, 8 + header_len) != meta["crc32_entries"]:
            raise CheckpointError(f"{path}: checksum mismatch: __metadata__.crc32_entries: the header's tensor entries "
                                  "(names, dtypes, shapes, offsets) do not give it (the file is damaged or was edited)")
    elif str(meta.get("format", "")).startswith("cuvae"):
        raise CheckpointError(f"{path}: __metadata__.format says cuvae wrote it, but its __metadata__.crc32 is missing "
                              "(the file is damaged or was edited)")
    tensors = {}
    for name, info in header.items():
        if info.get("dtype") != "F32":
            raise CheckpointError(f"{path}: tensor {name}: dtype {info.get('dtype')}, cuvae writes F32")
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != 4 * count:
            raise CheckpointError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] do not hold its shape "
                                  f"{info['shape']} in the {len(data)} data bytes (truncated or damaged)")
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

    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class MaskedConv2d(nn.Conv2d):
    """{"masked_conv2d_a": N, "kernel": k} / {"masked_conv2d_b": ...}: PixelCNN's stride-1
    convolution whose weight is multiplied by a fixed mask (a buffer): kernel rows above the
    centre and the centre row left of it, and for type B the centre itself."""

    def __init__(self, in_channels, out_channels, kernel, padding, type_b):
        super().__init__(in_channels, out_channels, kernel, padding=padding)
        mask = torch.zeros(out_channels, in_channels, kernel, kernel)
        c = kernel // 2
        mask[:, :, :c, :] = 1
        mask[:, :, c, :c + (1 if type_b else 0)] = 1
        self.register_buffer("mask", mask)

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


KINDS = ("linear", "masked_linear", "masked_conv2d_a", "masked_conv2d_b", "residual", "conv2d", "conv_transpose2d", "batch_norm", "relu", "leaky_relu", "tanh", "sigmoid",
         "flatten", "reshape")
# cuvae's defaults (PyTorch's): what a hand-written config may leave out
DEFAULTS = {"stride": 1, "padding": 0, "output_padding": 0, "momentum": 0.1, "eps": 1e-5}
OPTIONS = set(DEFAULTS) | {"kernel"}   # the layer options cuvae knows (another one is refused, as cuvae does)
MODEL_KINDS = ("vae", "ae", "cvae", "vq_vae", "made", "pixelcnn", "gan", "aae")
ACTIVATIONS = ("relu", "tanh", "leaky_relu")   # model.activation of the width-list shorthand


def layer_parts(spec):
    """(kind, value, options) of one layer of a cuvae layer list: {"conv2d": 32, "kernel": 4},
    {"batch_norm": {"eps": 1e-5}} or a bare "relu"; options include the defaults."""
    if isinstance(spec, str):
        spec = {spec: {}}
    kinds = [k for k in spec if k in KINDS]
    if len(kinds) != 1:
        raise ValueError(f"not one layer: {spec}")
    kind = kinds[0]
    value = spec[kind]
    options = dict(DEFAULTS)
    if isinstance(value, dict):
        options.update(value)
        value = None
    options.update({k: v for k, v in spec.items() if k != kind})
    unknown = sorted(set(options) - OPTIONS)
    if unknown:
        raise ValueError(f"layer {kind}: unknown option {unknown[0]!r} (cuvae refuses it)")
    if kind == "leaky_relu" and value is None:
        value = 0.01
    return kind, value, options


def build_sequential(specs, shape):
    """nn.Sequential of a cuvae layer list over per-example input `shape`; returns it and
    the output shape. Options left out take cuvae's (and PyTorch's) defaults."""
    modules = []
    for spec in specs:
        kind, value, spec = layer_parts(spec)
        if kind in ("linear", "masked_linear"):
            modules.append((nn.Linear if kind == "linear" else MaskedLinear)(shape[0], value))
            shape = (value,)
        elif kind in ("conv2d", "conv_transpose2d"):
            k, s, p = spec["kernel"], spec["stride"], spec["padding"]
            c, h, w = shape
            if kind == "conv2d":
                modules.append(nn.Conv2d(c, value, k, stride=s, padding=p))
                shape = (value, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
            else:
                q = spec["output_padding"]
                modules.append(nn.ConvTranspose2d(c, value, k, stride=s, padding=p, output_padding=q))
                shape = (value, (h - 1) * s - 2 * p + k + q, (w - 1) * s - 2 * p + k + q)
        elif kind in ("masked_conv2d_a", "masked_conv2d_b"):
            k = spec["kernel"]
            p = spec.get("padding", (k - 1) // 2)
            modules.append(MaskedConv2d(shape[0], value, k, p, kind == "masked_conv2d_b"))
            shape = (value,) + tuple(shape[1:])
        elif kind == "residual":
            modules.append(Residual(value))
        elif kind == "batch_norm":
            norm = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            modules.append(norm(shape[0], eps=spec["eps"], momentum=spec["momentum"]))
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "leaky_relu":
            modules.append(nn.LeakyReLU(value))
        elif kind == "tanh":
            modules.append(nn.Tanh())
        elif kind == "sigmoid":
            modules.append(nn.Sigmoid())
        elif kind == "flatten":
            modules.append(nn.Flatten())
            shape = (math.prod(shape),)
        elif kind == "reshape":
            modules.append(Reshape(value))
            shape = tuple(value)
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
    return tuple(shape) if shape else input_shape(m["input_dim"])


def example_dim(m):
    return int(np.prod(m["input_shape"])) if m.get("input_shape") else m["input_dim"]


def is_layer_list(value):
    return len(value) > 0 and not isinstance(value[0], (int, float))


class VectorQuantizer(nn.Module):
    """A VQ-VAE's codebook (nn.Embedding(K, D), cuvae's quantizer.embedding.weight) and, for the
    EMA update, its statistics as buffers (ema_counts (K), ema_sums (K, D))."""

    def __init__(self, size, dim, ema):
        super().__init__()
        self.embedding = nn.Embedding(size, dim)
        if ema:
            self.register_buffer("ema_counts", torch.zeros(size))
            self.register_buffer("ema_sums", torch.zeros(size, dim))

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
    """encoder -> (mu, logvar) heads -> decoder, with cuvae's tensor names."""

    def __init__(self, cfg):
        super().__init__()
        m = cfg["model"]
        self.cfg = cfg
        self.variational = m["kind"] in ("vae", "cvae")
        self.vq = m["kind"] == "vq_vae"
        self.made = m["kind"] in ("made", "pixelcnn")   # autoregressive: log_prob(x) is exact
        self.gan = m["kind"] == "gan"
        self.input_dim = example_dim(m)
        self.prior = bool(m.get("prior_of"))
        if self.gan:   # generator z -> image, discriminator image -> one logit
            self.shape = example_shape(m)
            self.generator, _ = build_sequential(m["generator"], (m["latent_dim"],))
            self.discriminator, _ = build_sequential(m["discriminator"], self.shape)
            self.tanh = layer_parts(m["generator"][-1])[0] == "tanh"
            return
        if self.made:   # one masked network from the pixels to their logits
            self.net_shape = example_shape(m) if m["kind"] == "pixelcnn" else (self.input_dim,)
            if m.get("prior_of"):   # a prior over a VQ-VAE's codes: the one-hot codes (K, h, w)
                K = layer_parts(m["network"][-1])[1]   # the last layer's channels
                side = math.isqrt(m["input_dim"])
                if side * side != m["input_dim"]:
                    raise ValueError("a prior over a non-square code grid: not supported here")
                self.net_shape = (K, side, side)
            self.network, _ = build_sequential(m["network"], self.net_shape)
            return
        self.classes = 10 if m["kind"] == "cvae" else 0   # the one-hot label joins x and z
        self.shape = example_shape(m)
        act = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "leaky_relu": nn.LeakyReLU(0.01)}.get(m.get("activation"))
        self.act = act
        self.encoder_is_list = is_layer_list(m["encoder"])
        self.decoder_is_list = is_layer_list(m["decoder"])
        if self.encoder_is_list:
            self.encoder, out = build_sequential(m["encoder"], self.shape)
            features = out[0]
        else:
            widths = [self.input_dim + self.classes] + m["encoder"]
            self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
            features = widths[-1]
        if self.vq:   # no heads: the quantiser between encoder and decoder
            codebook = m["codebook"]
            self.quantizer = VectorQuantizer(codebook["size"], m["latent_dim"], codebook.get("update") == "ema")
            self.decoder, _ = build_sequential(m["decoder"], out)
            return
        self.mu = nn.Linear(features, m["latent_dim"])
        if self.variational:
            self.logvar = nn.Linear(features, m["latent_dim"])
        if self.decoder_is_list:
            self.decoder, _ = build_sequential(m["decoder"], (m["latent_dim"],))
        else:
            widths = [m["latent_dim"] + self.classes] + m["decoder"] + [self.input_dim]
            self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        if m["kind"] == "aae":   # the discriminator on z (one logit)
            self.discriminator, _ = build_sequential(m["discriminator"], (m["latent_dim"],))

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
            onehot = nn.functional.one_hot(codes, K).permute(0, 3, 1, 2).float()   # (N, K, h, w)
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


def load(path):
    """The checkpoint at path as a CuvaeModel in eval mode (weights loaded strict=True).
    Raises CheckpointError (a ValueError) naming the file for anything cuvae would refuse."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") == "cuvae-resume-1":
        raise CheckpointError(f"{path} is a resume file (for cuvae train --resume), not a model checkpoint; give the "
                              "run's model.safetensors")
    if "config" not in meta:
        raise CheckpointError(f"{path}: no __metadata__.config: not a cuvae checkpoint")
    try:
        cfg = json.loads(meta["config"])
        model_cfg = cfg["model"]
        if model_cfg.get("kind") not in MODEL_KINDS:
            raise ValueError(f"model.kind {model_cfg.get('kind')!r} is none of {', '.join(MODEL_KINDS)}")
        if model_cfg.get("activation", "relu") not in ACTIVATIONS:
            raise ValueError(f"model.activation {model_cfg.get('activation')!r} is none of {', '.join(ACTIVATIONS)}")
        model = CuvaeModel(cfg)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise CheckpointError(f"{path}: __metadata__.config is not a config this reader knows "
                              f"({type(e).__name__}: {e})") from None
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in tensors:
            tensors[name] = torch.zeros_like(value)
    expected, found = set(model.state_dict()), set(tensors)
    if expected != found:
        raise CheckpointError(f"{path}: its tensors are not its config's model's: missing "
                              f"{sorted(expected - found)[:4]}, unexpected {sorted(found - expected)[:4]}")
    for name, value in model.state_dict().items():   # (load_state_dict would raise a RuntimeError)
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise CheckpointError(f"{path}: tensor {name}: shape {list(tensors[name].shape)}, model needs "
                                  f"{list(value.shape)}")
    model.load_state_dict(tensors, strict=True)
    return model.eval()


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

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
values (N, input_dim) (a VQ-VAE decodes its codes); a MADE or PixelCNN: model(x) -> the logits (N, input_dim)
of p(x_d = 1 | x_<d), model.log_prob(x) -> log p(x) (N,) in nats;
x is (N, input_dim) in [0, 1]. cuvae does not store PyTorch's num_batches_tracked
counters (unused when momentum is set, as here); load() fills them with 0 so the
state_dict is complete for strict=True.

Run as a script: cuvae_torch.py CKPT prints the module.
Needs numpy and torch (Debian: python3-numpy, python3-torch); reads safetensors itself.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn as nn


def read_safetensors(path):
    """The tensors (name -> torch.Tensor) and __metadata__ of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name}: dtype {info['dtype']}, cuvae writes F32")
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
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
    """cuvae's shape of one example: (1, side, side) for a square, else (input_dim,)."""
    side = math.isqrt(input_dim)
    return (1, side, side) if side * side == input_dim else (input_dim,)


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
        self.input_dim = m["input_dim"]
        if self.gan:   # generator z -> image, discriminator image -> one logit
            self.shape = input_shape(m["input_dim"])
            self.generator, _ = build_sequential(m["generator"], (m["latent_dim"],))
            self.discriminator, _ = build_sequential(m["discriminator"], self.shape)
            self.tanh = layer_parts(m["generator"][-1])[0] == "tanh"
            return
        if self.made:   # one masked network from the pixels to their logits
            self.net_shape = input_shape(m["input_dim"]) if m["kind"] == "pixelcnn" else (m["input_dim"],)
            if m.get("prior_of"):   # a prior over a VQ-VAE's codes: the one-hot codes (K, h, w)
                K = layer_parts(m["network"][-1])[1]   # the last layer's channels
                side = math.isqrt(m["input_dim"])
                if side * side != m["input_dim"]:
                    raise ValueError("a prior over a non-square code grid: not supported here")
                self.net_shape = (K, side, side)
            self.network, _ = build_sequential(m["network"], self.net_shape)
            return
        self.classes = 10 if m["kind"] == "cvae" else 0   # the one-hot label joins x and z
        self.input_dim = m["input_dim"]
        self.shape = input_shape(m["input_dim"])
        act = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "leaky_relu": nn.LeakyReLU(0.01)}.get(m.get("activation"))
        self.act = act
        self.encoder_is_list = is_layer_list(m["encoder"])
        self.decoder_is_list = is_layer_list(m["decoder"])
        if self.encoder_is_list:
            self.encoder, out = build_sequential(m["encoder"], self.shape)
            features = out[0]
        else:
            widths = [m["input_dim"] + self.classes] + m["encoder"]
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
            widths = [m["latent_dim"] + self.classes] + m["decoder"] + [m["input_dim"]]
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
        """A MADE: x (N, input_dim) binary -> logits (N, input_dim), output d seeing x_<d only."""
        if not self.made:
            raise TypeError("forward(x) is a MADE's or a PixelCNN's; a VAE has encode() and decode()")
        return self.network(x.reshape((x.shape[0],) + self.net_shape)).reshape(x.shape[0], self.input_dim)

    def log_prob(self, x):
        """A MADE: the exact log p(x) (N,) in nats of binary x (N, input_dim)."""
        return -nn.functional.binary_cross_entropy_with_logits(self.forward(x), x, reduction="none").sum(1)

    def encode(self, x, y=None):
        """x (N, input_dim) -> mu (N, L), logvar (N, L) or None (an autoencoder); a VQ-VAE:
        its codes (N, H, W) and z_e (N, D, H, W)."""
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
    """The checkpoint at path as a CuvaeModel in eval mode (weights loaded strict=True)."""
    tensors, meta = read_safetensors(path)
    if "config" not in meta:
        raise ValueError(f"{path}: no __metadata__.config: not a cuvae checkpoint")
    model = CuvaeModel(json.loads(meta["config"]))
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked") and name not in tensors:
            tensors[name] = torch.zeros_like(value)
    model.load_state_dict(tensors, strict=True)
    return model.eval()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: cuvae_torch.py CKPT")
    print(load(sys.argv[1]))

#!/usr/bin/env python3
"""torch_check.py: loads a cuvae checkpoint into a PyTorch model of the same
shape (plain nn.Linear layers, weights by name) and recomputes, on the MNIST
test set, the KL term and the reconstruction term at z = mu (both
deterministic) and the sampled negative ELBO. Prints them as one JSON line.

usage: torch_check.py CKPT DATA_DIR [TEST_LIMIT]
Needs only numpy + torch (Debian python3-torch); reads safetensors and IDX itself.
"""
import gzip
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, meta


def read_idx_images(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    rank = raw[3]
    dims = struct.unpack(">" + "I" * rank, raw[4:4 + 4 * rank])
    return np.frombuffer(raw[4 + 4 * rank:], dtype=np.uint8).reshape(dims)


class TorchVAE(nn.Module):
    """The cuvae MLP: trunk -> (mu, logvar) heads -> decoder, nn.Linear layout."""

    def __init__(self, cfg):
        super().__init__()
        m = cfg["model"]
        self.variational = m["kind"] in ("vae", "cvae")
        # cvae: the one-hot label joins the encoder input and z ([x ; y], [z ; y])
        self.classes = 10 if m["kind"] == "cvae" else 0
        act = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "leaky_relu": nn.LeakyReLU(0.01)}[m["activation"]]
        self.act = act
        widths = [m["input_dim"] + self.classes] + m["encoder"]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.mu = nn.Linear(widths[-1], m["latent_dim"])
        if self.variational:
            self.logvar = nn.Linear(widths[-1], m["latent_dim"])
        dec = [m["latent_dim"] + self.classes] + m["decoder"] + [m["input_dim"]]
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dec[:-1], dec[1:]))

    def encode(self, x, y=None):
        if self.classes:
            x = torch.cat([x, y], dim=1)
        for layer in self.encoder:
            x = self.act(layer(x))
        return self.mu(x), (self.logvar(x) if self.variational else None)

    def decode(self, z, y=None):
        if self.classes:
            z = torch.cat([z, y], dim=1)
        for i, layer in enumerate(self.decoder):
            z = layer(z)
            if i < len(self.decoder) - 1:
                z = self.act(z)
        return z


def reconstruction(out, x, cfg):
    per_pixel = {
        ("bce", "bernoulli"): lambda: F.binary_cross_entropy_with_logits(out, x, reduction="none"),
        ("mse", "bernoulli"): lambda: (torch.sigmoid(out) - x) ** 2,
        ("mse", "gaussian"): lambda: (out - x) ** 2,
    }[(cfg["loss"]["reconstruction"], cfg["model"]["output"])]()
    rec = per_pixel.sum(dim=1)
    return rec / x.shape[1] if cfg["loss"]["reduction"] == "mean" else rec


def main():
    ckpt, data_dir = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    torch.manual_seed(0)
    tensors, meta = read_safetensors(ckpt)
    cfg = json.loads(meta["config"])
    model = TorchVAE(cfg)
    state = model.state_dict()
    assert set(state) == set(tensors), (sorted(state), sorted(tensors))
    model.load_state_dict(tensors, strict=True)
    images = read_idx_images(f"{data_dir}/t10k-images-idx3-ubyte.gz")
    labels = read_idx_images(f"{data_dir}/t10k-labels-idx1-ubyte.gz")
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32)) / 255.0
    y = F.one_hot(torch.from_numpy(labels.astype(np.int64)), 10).float()
    with torch.no_grad():
        mu, logvar = model.encode(x, y)
        if logvar is not None:
            kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            kl = torch.zeros(len(x))
            z = mu
        rec_mean = reconstruction(model.decode(mu, y), x, cfg)
        rec_sample = reconstruction(model.decode(z, y), x, cfg)
        # Monte-Carlo noise of a one-sample ELBO: two more independent draws per
        # example estimate Var_eps(loss | x); the difference of two independent
        # one-sample estimates (cuvae's and this one) has variance 2 E[Var] / N.
        if logvar is not None:
            z2 = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
            rec_2 = reconstruction(model.decode(z2, y), x, cfg)
            var_per_example = 0.5 * (rec_2 - rec_sample).double() ** 2
            diff_std_error = (2.0 * var_per_example.mean().item() / len(x)) ** 0.5
        else:
            diff_std_error = 0.0
    print(json.dumps({
        "kl": kl.double().mean().item(),
        "rec_at_mean": rec_mean.double().mean().item(),
        "test_loss": (rec_sample + kl).double().mean().item(),
        "diff_std_error": diff_std_error,
        "examples": len(x),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()

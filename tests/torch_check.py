#!/usr/bin/env python3
"""torch_check.py: loads a cuvae checkpoint into PyTorch with scripts/cuvae_torch.py
(nn.Linear / nn.Conv2d / nn.BatchNorm2d ... modules, weights by name) and recomputes, on the MNIST
test set, the KL term and the reconstruction term at z = mu (both
deterministic) and the sampled negative ELBO. Prints them as one JSON line.

usage: torch_check.py CKPT DATA_DIR [TEST_LIMIT]
Needs only numpy + torch (Debian python3-torch); reads safetensors and IDX itself.
"""
import gzip
import json
import struct
import sys

import os

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from cuvae_torch import load, philox_normals  # noqa: E402  (the script users run, tested here)

EVAL_SEED_SALT = 0x5EEDE7A1   # src/eval.c: the evaluation's z stream is train.seed ^ this
PRIOR_SEED_SALT = 0xAAE9819F  # src/model_aae.c: an aae's prior draws use its z stream's seed ^ this


def read_idx_images(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    rank = raw[3]
    dims = struct.unpack(">" + "I" * rank, raw[4:4 + 4 * rank])
    return np.frombuffer(raw[4 + 4 * rank:], dtype=np.uint8).reshape(dims)


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
    model = load(ckpt)   # strict=True: every tensor of the checkpoint, and only those
    cfg = model.cfg
    images = read_idx_images(f"{data_dir}/t10k-images-idx3-ubyte.gz")
    labels = read_idx_images(f"{data_dir}/t10k-labels-idx1-ubyte.gz")
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32)) / 255.0
    y = F.one_hot(torch.from_numpy(labels.astype(np.int64)), 10).float()
    prior_of = cfg["model"].get("prior_of")
    if prior_of:   # a PixelCNN prior: the VQ-VAE's codes of the test images, their exact -log p
        vq = load(prior_of)
        with torch.no_grad():
            codes, _ = vq.encode(x)                                    # (N, h, w)
            K = model.net_shape[0]
            onehot = F.one_hot(codes, K).permute(0, 3, 1, 2).float()    # (N, K, h, w)
            logits = model.network(onehot)
            nll = F.cross_entropy(logits, codes, reduction="none").flatten(1).sum(1)
        print(json.dumps({"nll": nll.double().mean().item(), "examples": len(x), "torch": torch.__version__}))
        return
    if model.gan:   # a gan, eval mode: the discriminator's BCE on the test images (target 1) and on
        # the generator's images of the z cuvae's evaluation draws (its Philox stream, target 0)
        L = cfg["model"]["latent_dim"]
        z = torch.from_numpy(philox_normals(cfg["train"]["seed"] ^ EVAL_SEED_SALT, 0, len(x) * L).reshape(len(x), L))
        with torch.no_grad():
            d_loss_real = F.softplus(-model.discriminate(x))
            samples = model.generate(z)
            d_loss_fake = F.softplus(model.discriminate(samples))
        print(json.dumps({"d_loss_real": d_loss_real.double().mean().item(),
                          "d_loss_fake": d_loss_fake.double().mean().item(), "examples": len(x),
                          "samples_in_range": bool(samples.min() >= 0 and samples.max() <= 1),
                          "torch": torch.__version__}))
        return
    if model.made:   # a MADE: the exact -log p(x) of the (already binary) test images
        with torch.no_grad():
            nll = -model.log_prob(x)
        print(json.dumps({"nll": nll.double().mean().item(), "examples": len(x), "torch": torch.__version__}))
        return
    if model.vq:   # a VQ-VAE: the chosen codes, the reconstruction from them, the VQ term
        with torch.no_grad():
            codes, z_e = model.encode(x)
            rec = reconstruction(model.decode(codes), x, cfg)
            z_q = model.quantizer.lookup(codes)
            codebook = cfg["model"]["codebook"]
            beta = codebook.get("beta", 0.25)
            weight = beta if codebook.get("update") == "ema" else 1.0 + beta
            vq = weight * ((z_e - z_q) ** 2).flatten(1).sum(1)
        counts = torch.bincount(codes.flatten(), minlength=codebook["size"])
        print(json.dumps({"rec": rec.double().mean().item(), "vq": vq.double().mean().item(),
                          "code_counts": counts.tolist(), "examples": len(x), "torch": torch.__version__}))
        return
    extra = {}
    if cfg["model"]["kind"] == "aae":   # its discriminator on the codes (target 0) and on cuvae's evaluation
        # prior draws (the Philox stream train.seed ^ EVAL_SEED_SALT ^ PRIOR_SEED_SALT, target 1)
        L = cfg["model"]["latent_dim"]
        prior = philox_normals(cfg["train"]["seed"] ^ EVAL_SEED_SALT ^ PRIOR_SEED_SALT, 0, len(x) * L).reshape(len(x), L)
        if cfg["model"].get("prior") == "mixture":   # layer_math.h mixture_point, component i mod 10
            k = np.arange(len(x)) % 10
            px, py = np.float32(0.70710678) * prior[:, 0] + np.float32(1.4), np.float32(0.31622777) * prior[:, 1]
            angle = (np.float32(6.283185307179586) * k.astype(np.float32) / np.float32(10)).astype(np.float32)
            prior = np.stack([np.cos(angle) * px - np.sin(angle) * py, np.sin(angle) * px + np.cos(angle) * py], 1)
        with torch.no_grad():
            codes, _ = model.encode(x, y)
            d_loss = F.softplus(model.discriminator(codes)).squeeze(1) + \
                F.softplus(-model.discriminator(torch.from_numpy(prior.astype(np.float32)))).squeeze(1)
        extra["d_loss"] = d_loss.double().mean().item()
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
        **extra,
    }))


if __name__ == "__main__":
    main()

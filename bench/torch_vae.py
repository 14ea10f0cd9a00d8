#!/usr/bin/env python3
"""torch_vae.py: the PyTorch peer of `cuvae bench`. Builds the same model from a
cuvae config JSON the natural PyTorch way (nn.Linear trunk, separate mu and
logvar heads like pytorch/examples, nn.Linear decoder; default nn.Linear init),
the same loss (reconstruction summed over pixels + KL, mean over the batch,
w_rec / w_kl), torch.optim.Adam(lr, betas, eps) with its default
implementation, and times steady-state training steps on a random uint8
dataset resident on the device (batches gathered through a random permutation
and divided by 255 inside the step).

Modes: eager, compile (torch.compile default), max-autotune
(torch.compile(mode="max-autotune")); compiled modes compile the loss
function (forward + loss; backward through AOTAutograd), the optimizer step
stays eager. Precisions on CUDA: fp32 (TF32 off), tf32, bf16 (autocast);
on the CPU only fp32.

Prints one JSON line per (mode, precision) with the keys of `cuvae bench` plus
"framework", "torch_version", "mode", "precision"; a mode that cannot run
prints a line with "skipped": reason instead of timings.

usage: torch_vae.py CONFIG [--steps N] [--warmup N] [--device auto|cpu|cuda]
                    [--modes eager,compile,max-autotune] [--precisions fp32,tf32,bf16]
                    [--threads N] [--set key.path=value]...
"""
import argparse
import ctypes
import gc
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import cuvae_torch  # noqa: E402  (builds layer lists as PyTorch modules)

ALL_MODES = ["eager", "compile", "max-autotune"]
ALL_PRECISIONS = ["fp32", "tf32", "bf16"]


def apply_override(cfg, assignment):
    """--set a.b=value, the value parsed as JSON when it parses (like cuvae)."""
    key, sep, text = assignment.partition("=")
    if not sep:
        raise SystemExit(f"torch_vae.py: --set expects key.path=value, got {assignment!r}")
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


class VAE(nn.Module):
    """cuvae's MLP: trunk -> mu, logvar heads -> decoder (logits or values); or, for
    layer lists (model.encoder / model.decoder of layer objects), nn.Sequential of
    nn.Conv2d, nn.BatchNorm2d ... built by scripts/cuvae_torch.py, the same modules
    a PyTorch user writes."""

    def __init__(self, m):
        super().__init__()
        self.variational = m["kind"] == "vae"
        self.act = {"relu": nn.ReLU(), "tanh": nn.Tanh(),
                    "leaky_relu": nn.LeakyReLU(0.01)}[m.get("activation", "relu")]
        self.input_dim = m["input_dim"]
        self.shape = cuvae_torch.example_shape(m)
        self.encoder_is_list = cuvae_torch.is_layer_list(m["encoder"])
        self.decoder_is_list = cuvae_torch.is_layer_list(m["decoder"])
        if self.encoder_is_list:
            self.encoder, out = cuvae_torch.build_sequential(m["encoder"], self.shape)
            features = out[0]
        else:
            widths = [m["input_dim"]] + list(m["encoder"])
            self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
            features = widths[-1]
        self.mu = nn.Linear(features, m["latent_dim"])
        self.logvar = nn.Linear(features, m["latent_dim"]) if self.variational else None
        if self.decoder_is_list:
            self.decoder, _ = cuvae_torch.build_sequential(m["decoder"], (m["latent_dim"],))
        else:
            dec = [m["latent_dim"]] + list(m.get("decoder", [])) + [m["input_dim"]]
            self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dec[:-1], dec[1:]))

    def forward(self, x):
        if self.encoder_is_list:
            h = self.encoder(x.reshape((x.shape[0],) + self.shape))
        else:
            h = x
            for layer in self.encoder:
                h = self.act(layer(h))
        mu = self.mu(h)
        if self.variational:
            logvar = self.logvar(h)
            z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        else:
            logvar, z = None, mu
        if self.decoder_is_list:
            return self.decoder(z).reshape(z.shape[0], self.input_dim), mu, logvar
        for i, layer in enumerate(self.decoder):
            z = layer(z)
            if i < len(self.decoder) - 1:
                z = self.act(z)
        return z, mu, logvar


class VQVAE(nn.Module):
    """cuvae's vq_vae the way a PyTorch user writes it: the layer-list encoder and decoder
    (cuvae_torch), a codebook nn.Embedding(K, D) initialised U(-1/K, 1/K), the nearest code by
    ||e||^2 - 2 z.e and argmin, the straight-through estimator, loss rec + VQ term
    ((1 + beta) ||z_e - e||^2 for the "loss" update, beta ||z_e - sg[e]||^2 with EMA), and for
    EMA the codebook update (decay, Laplace eps) and dead-code restart after each step."""

    def __init__(self, m):
        super().__init__()
        self.shape = cuvae_torch.example_shape(m)
        self.input_dim = m["input_dim"]
        self.encoder, out = cuvae_torch.build_sequential(m["encoder"], self.shape)
        self.decoder, _ = cuvae_torch.build_sequential(m["decoder"], out)
        cb = m["codebook"]
        self.K, self.D = cb["size"], m["latent_dim"]
        self.beta = float(cb.get("beta", 0.25))
        self.ema = cb.get("update", "loss") == "ema"
        self.decay, self.eps = float(cb.get("decay", 0.99)), float(cb.get("eps", 1e-5))
        self.restart = float(cb.get("restart_dead", 0.0))
        self.embedding = nn.Embedding(self.K, self.D)
        nn.init.uniform_(self.embedding.weight, -1.0 / self.K, 1.0 / self.K)
        if self.ema:
            self.embedding.weight.requires_grad_(False)
            self.register_buffer("counts", torch.zeros(self.K))
            self.register_buffer("sums", self.embedding.weight.detach().clone())
        self.last = None

    def forward(self, x):
        z_e = self.encoder(x.reshape((x.shape[0],) + self.shape))
        flat = z_e.movedim(1, -1).reshape(-1, self.D) if z_e.dim() == 4 else z_e
        e = self.embedding.weight
        codes = ((e * e).sum(1)[None, :] - 2.0 * flat @ e.t()).argmin(1)
        z_q = e[codes]
        per_position = ((flat - z_q.detach()) ** 2).sum(1) * self.beta
        if not self.ema:
            per_position = per_position + ((flat.detach() - z_q) ** 2).sum(1)
        vq = per_position.reshape(x.shape[0], -1).sum(1)
        z_st = flat + (z_q - flat).detach()
        z_in = z_st.reshape(z_e.shape[0], *z_e.shape[2:], self.D).movedim(-1, 1) if z_e.dim() == 4 else z_st
        self.last = (codes, flat.detach())
        return self.decoder(z_in).reshape(x.shape[0], self.input_dim), vq

    @torch.no_grad()
    def after_step(self):
        if not self.ema or self.last is None:
            return
        codes, flat = self.last
        onehot = F.one_hot(codes, self.K).type(flat.dtype)
        self.counts.mul_(self.decay).add_((1 - self.decay) * onehot.sum(0))
        self.sums.mul_(self.decay).add_((1 - self.decay) * onehot.t() @ flat)
        total = self.counts.sum()
        smoothed = (self.counts + self.eps) / (total + self.K * self.eps) * total
        self.embedding.weight.copy_(self.sums / smoothed[:, None])
        if self.restart > 0:
            dead = self.counts < self.restart * flat.shape[0] / self.K
            if dead.any():
                pick = torch.randint(0, flat.shape[0], (int(dead.sum()),), device=flat.device)
                self.embedding.weight[dead] = flat[pick]
                self.sums[dead] = flat[pick]
                self.counts[dead] = 1.0


def make_loss_fn(model, cfg, autocast_device=None):
    """loss(x_uint8) = mean over the batch of w_rec * rec + w_kl * KL. With
    autocast_device the model runs under bf16 autocast; the losses in fp32."""
    loss_cfg, m = cfg["loss"], cfg["model"]
    rec_kind = (loss_cfg.get("reconstruction", "bce"), m.get("output", "bernoulli"))
    mean_pixels = loss_cfg.get("reduction", "sum") == "mean"
    w_rec, w_kl = float(loss_cfg.get("w_rec", 1.0)), float(loss_cfg.get("w_kl", 1.0))

    def loss_fn(x_u8):
        x = x_u8.float() / 255.0
        if isinstance(model, VQVAE):   # rec + the VQ term, mean over the batch
            out, vq = model(x)
            if rec_kind == ("bce", "bernoulli"):
                rec = F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(1)
            elif rec_kind == ("mse", "bernoulli"):
                rec = ((torch.sigmoid(out) - x) ** 2).sum(1)
            else:
                rec = ((out - x) ** 2).sum(1)
            if mean_pixels:
                rec = rec / x.shape[1]
            return (w_rec * rec + vq).mean()
        if autocast_device is not None:
            with torch.autocast(device_type=autocast_device, dtype=torch.bfloat16):
                out, mu, logvar = model(x)
        else:
            out, mu, logvar = model(x)
        out = out.float()
        if rec_kind == ("bce", "bernoulli"):
            rec = F.binary_cross_entropy_with_logits(out, x, reduction="sum")
        elif rec_kind == ("mse", "bernoulli"):
            rec = F.mse_loss(torch.sigmoid(out), x, reduction="sum")
        else:
            rec = F.mse_loss(out, x, reduction="sum")
        if mean_pixels:
            rec = rec / x.shape[1]
        loss = w_rec * rec
        if logvar is not None:
            mu, logvar = mu.float(), logvar.float()
            kl = 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar)
            loss = loss + w_kl * kl
        return loss / x.shape[0]

    return loss_fn


def sequential_gemm_flops(model, shape):
    """Per-example forward GEMM flops of the Linear / Conv2d / ConvTranspose2d modules
    of an nn.Sequential, one entry per module (0 for the others; 2 M N K each, as cuvae
    counts its im2col GEMMs)."""
    flops = []

    def hook(module, inputs, output):
        x = inputs[0]
        if not isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            flops.append(0)   # one entry per module: entry 0 is the first layer's
        elif isinstance(module, nn.Linear):
            flops.append(2 * module.in_features * module.out_features)
        elif isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            flops.append(2 * module.out_channels * module.in_channels * k * output.shape[2] * output.shape[3])
        elif isinstance(module, nn.ConvTranspose2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            flops.append(2 * module.in_channels * module.out_channels * k * x.shape[2] * x.shape[3])

    handles = [child.register_forward_hook(hook) for child in model]
    was_training = model.training
    with torch.no_grad():
        device = next(model.parameters()).device
        model.eval()(torch.zeros((2,) + tuple(shape), device=device))
    model.train(was_training)
    for h in handles:
        h.remove()
    return flops


def gemm_flops_per_step(m, batch, model=None):
    """Same count as cuvae: 2*B*in*out per forward GEMM, per weight gradient, and
    per input gradient except the first layer's. The two heads count as cuvae's
    one fused (2L, H) head. Layer lists: their modules' GEMMs (model given)."""
    latent = m["latent_dim"]
    if isinstance(model, VQVAE):   # the encoder's, decoder's and code search's GEMMs (as cuvae counts)
        enc = sequential_gemm_flops(model.encoder, model.shape)
        with torch.no_grad():
            device = next(model.encoder.parameters()).device
            out_shape = model.encoder.eval()(torch.zeros((2,) + tuple(model.shape), device=device)).shape[1:]
        model.encoder.train()
        dec = sequential_gemm_flops(model.decoder, out_shape)
        positions = int(out_shape[1:].numel()) if len(out_shape) > 1 else 1
        search = 2 * positions * model.K * model.D   # the nearest-code scores z_e . codebook^T
        return batch * (enc[0] * 2 + sum(f * 3 for f in enc[1:]) + sum(f * 3 for f in dec) + search)
    if model is not None and (model.encoder_is_list or model.decoder_is_list):
        heads = 2 * latent if m["kind"] == "vae" else latent
        enc = (sequential_gemm_flops(model.encoder, model.shape) if model.encoder_is_list
               else [2 * a * b for a, b in zip([m["input_dim"]] + m["encoder"][:-1], m["encoder"])])
        dec_widths = [latent] + list(m.get("decoder", [])) + [m["input_dim"]]
        dec = (sequential_gemm_flops(model.decoder, (latent,)) if model.decoder_is_list
               else [2 * a * b for a, b in zip(dec_widths[:-1], dec_widths[1:])])
        per_example = [enc[0] * 2] + [f * 3 for f in enc[1:]] + [3 * 2 * model.mu.in_features * heads]
        per_example += [f * 3 for f in dec]
        return batch * sum(per_example)
    widths = [m["input_dim"]] + list(m["encoder"])
    layers = list(zip(widths[:-1], widths[1:]))
    layers.append((widths[-1], 2 * latent if m["kind"] == "vae" else latent))
    dec = [latent] + list(m.get("decoder", [])) + [m["input_dim"]]
    layers += list(zip(dec[:-1], dec[1:]))
    flops = 0
    for i, (a, b) in enumerate(layers):
        flops += 2 * 2 * batch * a * b + (2 * batch * a * b if i > 0 else 0)
    return flops


def blas_core():
    """The OpenBLAS kernel family torch's BLAS calls run on (Debian's torch links
    the system libopenblas), or None when it is not OpenBLAS."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None


def set_precision(device, precision):
    if device.type == "cuda":
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        if hasattr(torch, "set_float32_matmul_precision"):
            torch.set_float32_matmul_precision("high" if tf32 else "highest")


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_one(cfg, device, mode, precision, args):
    m, t = cfg["model"], cfg["train"]
    batch = int(t["batch_size"])
    torch.manual_seed(int(t.get("seed", 1)))
    gc.collect()   # the previous mode's model and compiled graphs
    if hasattr(torch, "_dynamo"):
        torch._dynamo.reset()
    set_precision(device, precision)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    model = (VQVAE(m) if m["kind"] == "vq_vae" else VAE(m)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(t["lr"]),
                                 betas=(float(t.get("beta1", 0.9)), float(t.get("beta2", 0.999))),
                                 eps=float(t.get("adam_eps", 1e-8)))
    # random resident dataset, a whole number of batches: max(4 * batch, 1024) like cuvae bench
    passes = max(4, -(-1024 // batch))
    n = passes * batch
    data = torch.randint(0, 256, (n, m["input_dim"]), dtype=torch.uint8, device=device)
    perm = torch.randperm(n, device=device)
    loss_acc = torch.zeros((), dtype=torch.float64, device=device)

    loss_fn = make_loss_fn(model, cfg, device.type if precision == "bf16" else None)
    if mode != "eager":
        loss_fn = torch.compile(loss_fn, mode=None if mode == "compile" else "max-autotune")

    def step(i):
        start = (i % passes) * batch
        x_u8 = data[perm[start:start + batch]]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x_u8)
        loss.backward()
        optimizer.step()
        if isinstance(model, VQVAE):
            model.after_step()   # the EMA codebook update, as cuvae's step does on the device
        loss_acc.add_(loss.detach())

    compile_start = time.perf_counter()
    for i in range(args.warmup):
        step(i)
    synchronize(device)
    warmup_s = time.perf_counter() - compile_start
    loss_acc.zero_()
    start = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    synchronize(device)
    seconds = time.perf_counter() - start
    mean_loss = loss_acc.item() / args.steps

    flops = gemm_flops_per_step(m, batch, model)
    if device.type == "cuda":
        device_name = torch.cuda.get_device_name(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        device_name = f"CPU (PyTorch, {torch.get_num_threads()} threads)"
        peak = None
    return {
        "config": cfg["name"], "framework": "pytorch", "torch_version": torch.__version__,
        "mode": mode, "precision": precision, "device": device_name, "backend": device.type,
        "batch": batch, "steps": args.steps, "warmup": args.warmup,
        "ms_per_step": 1000.0 * seconds / args.steps,
        "samples_per_s": batch * args.steps / seconds,
        "tflops": flops * args.steps / seconds / 1e12,
        "gemm_flops_per_step": flops, "peak_memory_bytes": peak,
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "blas_core": blas_core() if device.type == "cpu" else None,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY") if device.type == "cpu" else None,
        "train_loss": mean_loss, "warmup_seconds": round(warmup_s, 3),
        "cuda_version": torch.version.cuda, "dataset_examples": n,
    }


def skipped(cfg, device, mode, precision, why):
    return {"config": cfg["name"], "framework": "pytorch", "torch_version": torch.__version__,
            "mode": mode, "precision": precision, "backend": device.type, "skipped": why}


def merge_over(base, over):
    """cuvae's "base" merge (src/config.c, merge_over): objects merge key by key, any other value
    (numbers, strings, arrays) replaces the base's."""
    for key, value in over.items():
        if isinstance(base.get(key), dict) and isinstance(value, dict):
            merge_over(base[key], value)
        else:
            base[key] = value
    return base


def load_config(path, depth=0):
    """A cuvae config with its "base" chain resolved (relative to each config's folder)."""
    with open(path) as f:
        cfg = json.load(f)
    base = cfg.pop("base", None)
    if base is None:
        return cfg
    if depth >= 8:
        sys.exit(f"torch_vae.py: {path}: more than 8 levels of base configs (a cycle?)")
    base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
    return merge_over(load_config(base_path, depth + 1), cfg)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: the config's)")
    p.add_argument("--modes", default=",".join(ALL_MODES))
    p.add_argument("--precisions", default=None, help="default: fp32,tf32,bf16 on CUDA, fp32 on CPU")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    p.add_argument("--set", action="append", default=[], dest="overrides")
    args = p.parse_args()
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be >= 1 and --warmup >= 0")

    cfg = load_config(args.config)
    for assignment in args.overrides:
        apply_override(cfg, assignment)
    m = cfg.get("model", {})
    if m.get("input_shape") and "input_dim" not in m:   # (cuvae derives it: C * H * W)
        m["input_dim"] = int(cuvae_torch.example_dim(m))
    if cfg["model"].get("kind", "vae") not in ("vae", "ae", "vq_vae"):
        p.error(f"model.kind {cfg['model']['kind']!r} is not benchmarked")
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    choice = args.device or cfg.get("device", "auto")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        p.error("device cuda requested but torch.cuda.is_available() is False")
    device = torch.device(choice)

    modes = [s for s in args.modes.split(",") if s]
    precisions = args.precisions.split(",") if args.precisions else (
        ALL_PRECISIONS if device.type == "cuda" else ["fp32"])
    for mode in modes:
        if mode not in ALL_MODES:
            p.error(f"unknown mode {mode!r} (expected {', '.join(ALL_MODES)})")
    for precision in precisions:
        if precision not in ALL_PRECISIONS:
            p.error(f"unknown precision {precision!r} (expected {', '.join(ALL_PRECISIONS)})")

    for mode in modes:
        for precision in precisions:
            if device.type == "cpu" and precision != "fp32":
                line = skipped(cfg, device, mode, precision, "CPU runs fp32 only")
            elif mode != "eager" and not hasattr(torch, "compile"):
                line = skipped(cfg, device, mode, precision,
                               f"torch.compile does not exist in torch {torch.__version__}")
            else:
                try:
                    line = run_one(cfg, device, mode, precision, args)
                except Exception as e:  # a compile failure must not hide the other modes
                    if mode == "eager":
                        raise
                    first = (str(e).strip().splitlines() or [""])[0][:300]
                    line = skipped(cfg, device, mode, precision, f"{type(e).__name__}: {first}")
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

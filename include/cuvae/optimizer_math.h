// optimizer_math.h: one element of each optimizer's update, written once and
// compiled twice -- by gcc for the CPU backend's loops and by nvcc for
// kernels/adam.cu and kernels/sgd.cu (CUVAE_HOST_DEVICE) -- so both backends
// do the same fp32 arithmetic in the same order (PyTorch's semantics). Every
// multiply-add is an explicit fmaf or a separately rounded product: a plain
// a * b + c leaves the contraction to the compiler, and gcc and nvcc fuse different
// products of the same expression (one rounding apart). The fmaf calls are where gcc
// put them, so the CPU's bits did not change.
#ifndef CUVAE_OPTIMIZER_MATH_H
#define CUVAE_OPTIMIZER_MATH_H

#include <math.h>
#include "cuvae/backend.h"      // OptimizerParams
#include "cuvae/host_device.h"

// adamw's decoupled decay factor for a step of learning rate lr (1 for adam)
static inline CUVAE_HOST_DEVICE float optimizer_decoupled_decay(OptimizerParams o, float lr) {
    return o.decoupled ? fmaf(-lr, o.weight_decay, 1.0f) : 1.0f;
}

// Adam / AdamW, in this order:
//   g += wd * p (adam's L2 weight decay)   or   p *= decay (adamw, decoupled)
//   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
//   p -= step_size * (m / (sqrt(v) / sqrt_bc2 + eps))      (PyTorch's addcdiv order)
// adam_moments stores the new m and v and returns m / (sqrt(v) / sqrt_bc2 + eps).
static inline CUVAE_HOST_DEVICE float adam_moments(float g, float *m, float *v, OptimizerParams o,
                                                   float sqrt_bc2) {
    float m_new = fmaf(o.beta1, *m, (1.0f - o.beta1) * g);
    float v_new = fmaf(o.beta2, *v, (1.0f - o.beta2) * g * g);
    *m = m_new;
    *v = v_new;
    float denom = sqrtf(v_new) / sqrt_bc2 + o.eps;
    return m_new / denom;
}

// p - step_size * ratio, as one fma
static inline CUVAE_HOST_DEVICE float adam_step(float p, float step_size, float ratio) {
    return fmaf(-step_size, ratio, p);
}

// true when the weight decay of adam_element changes nothing this step: then
// *p = adam_step(*p, step_size, adam_moments(...)) is the whole update (the CPU's vectorised loop)
static inline CUVAE_HOST_DEVICE bool adam_without_decay(OptimizerParams o, float decay) {
    return o.decoupled ? decay == 1.0f : o.weight_decay == 0.0f;
}

// adam's L2 weight decay folded into the gradient: g + wd * p
static inline CUVAE_HOST_DEVICE float adam_l2_gradient(float g, float p, float weight_decay) {
    return fmaf(weight_decay, p, g);
}

// adamw's decoupled decay of the parameter, rounded on its own: p * decay
static inline CUVAE_HOST_DEVICE float adamw_decayed_param(float p, float decay) { return p * decay; }

static inline CUVAE_HOST_DEVICE void adam_element(float *p, float g, float *m, float *v, OptimizerParams o,
                                                  float decay, float step_size, float sqrt_bc2) {
    if (!o.decoupled && o.weight_decay != 0.0f) g = adam_l2_gradient(g, *p, o.weight_decay);
    if (decay != 1.0f) *p = adamw_decayed_param(*p, decay);
    float ratio = adam_moments(g, m, v, o, sqrt_bc2);
    // *p read after m and v are stored (they may alias it): the decayed p is rounded before
    // the update, never contracted with it into one fma
    *p = adam_step(*p, step_size, ratio);
}

// SGD (no dampening, not Nesterov):  g += wd * p;  buf = momentum * buf + g, g = buf
// (when momentum != 0; buf starts at 0);  p -= lr * g
static inline CUVAE_HOST_DEVICE void sgd_element(float *p, float g, float *buf, OptimizerParams o, float lr) {
    if (o.weight_decay != 0.0f) g = fmaf(o.weight_decay, *p, g);
    if (o.momentum != 0.0f) {
        *buf = fmaf(o.momentum, *buf, g);
        g = *buf;
    }
    *p = fmaf(-lr, g, *p);
}

#endif

// layer_math.h: the per-element arithmetic of the layer and model ops -- activations
// (with a leaky_relu slope), the convolution's im2col / col2im index maps, batch norm's
// input gradient, the VQ-VAE's nearest code, dead-code restart and EMA codebook update,
// a pixel's code, a categorical draw's position, the AAE's mixture prior point --
// written once and compiled twice: by gcc for the CPU backend's loops and by nvcc for
// kernels/bias_activation.cu, kernels/conv.cu, kernels/batch_norm.cu,
// kernels/vector_quantizer.cu, kernels/categorical.cu and kernels/mixture_prior.cu
// (CUVAE_HOST_DEVICE), so both backends agree.
#ifndef CUVAE_LAYER_MATH_H
#define CUVAE_LAYER_MATH_H

#include <math.h>
#include "cuvae/config.h"       // Activation
#include "cuvae/host_device.h"
#include "cuvae/philox.h"       // philox_uniform_at

// The Gaussian posterior's per-dimension math (kernels/reparam.cu and the CPU's loops):
// z = mu + exp(logvar / 2) * eps
static inline CUVAE_HOST_DEVICE float reparam_z(float mu, float logvar, float eps) {
    return mu + expf(0.5f * logvar) * eps;
}

// twice one dimension's KL(N(mu, var) || N(0, 1)): mu^2 + var - 1 - logvar, var = exp(logvar)
static inline CUVAE_HOST_DEVICE float kl_twice(float mu, float logvar, float var) {
    return mu * mu + var - 1.0f - logvar;
}

// dL/dlogvar of one dimension: the reparametrization's dz * eps * sigma / 2 and the KL's
// coef * (var - 1) / 2 (sigma = exp(logvar / 2), var = exp(logvar); dL/dmu is dz + coef * mu)
static inline CUVAE_HOST_DEVICE float reparam_dlogvar(float dz, float eps, float sigma, float coef, float var) {
    return dz * eps * 0.5f * sigma + coef * 0.5f * (var - 1.0f);
}

// model.activation's leaky_relu: its negative slope (a leaky_relu layer gives its own)
#define LEAKY_RELU_SLOPE 0.01f

// act(v); slope is leaky_relu's negative slope (ignored by the others)
static inline CUVAE_HOST_DEVICE float activation_value(float v, int act, float slope) {
    switch (act) {
    case ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ACT_TANH: return tanhf(v);
    case ACT_LEAKY_RELU: return v > 0.0f ? v : slope * v;
    case ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}

// dy * act'(.) written through the activation's output y (a positive slope keeps
// the sign of the input, so y > 0 decides leaky_relu's branch)
static inline CUVAE_HOST_DEVICE float activation_gradient(float dy, float y, int act, float slope) {
    switch (act) {
    case ACT_RELU: return y > 0.0f ? dy : 0.0f;
    case ACT_TANH: return dy * (1.0f - y * y);
    case ACT_LEAKY_RELU: return y > 0.0f ? dy : slope * dy;
    case ACT_SIGMOID: return dy * y * (1.0f - y);
    default: return dy;
    }
}

// The geometry of a 2-D convolution over an image (C, H, W) with a square kernel:
// output grid (OH, OW) = ((H + 2 padding - kernel) / stride + 1, same for W).
// A transposed convolution uses the geometry of the convolution it transposes:
// its output image is (C, H, W) and its input grid is (OH, OW).
typedef struct {
    int C, H, W;
    int kernel, stride, padding;
    int OH, OW;
} ConvGeometry;

// im2col's value for column row r = (c kernel + i) kernel + j and output pixel
// (oh, ow) of one image x (C, H, W): the input pixel it reads, or 0 outside.
static inline CUVAE_HOST_DEVICE float im2col_value(const float *x, ConvGeometry g, int r, int oh, int ow) {
    int j = r % g.kernel;
    int i = (r / g.kernel) % g.kernel;
    int c = r / (g.kernel * g.kernel);
    int h = oh * g.stride - g.padding + i;
    int w = ow * g.stride - g.padding + j;
    if (h < 0 || h >= g.H || w < 0 || w >= g.W) return 0.0f;
    return x[((size_t)c * g.H + h) * g.W + w];
}

// col2im's value at pixel (c, h, w) of image b: the sum, in the fixed order
// i, j ascending, of the col (C k k, B OH OW) entries im2col copied from it.
static inline CUVAE_HOST_DEVICE float col2im_value(const float *col, ConvGeometry g, int B, int b,
                                                   int c, int h, int w) {
    const size_t columns = (size_t)B * g.OH * g.OW;
    float sum = 0.0f;
    for (int i = 0; i < g.kernel; i++) {
        int hh = h + g.padding - i;   // = oh * stride
        if (hh < 0 || hh % g.stride != 0) continue;
        int oh = hh / g.stride;
        if (oh >= g.OH) continue;
        for (int j = 0; j < g.kernel; j++) {
            int ww = w + g.padding - j;
            if (ww < 0 || ww % g.stride != 0) continue;
            int ow = ww / g.stride;
            if (ow >= g.OW) continue;
            size_t r = ((size_t)c * g.kernel + i) * g.kernel + j;
            sum += col[r * columns + ((size_t)b * g.OH + oh) * g.OW + ow];
        }
    }
    return sum;
}

// Batch norm's gradient for one element, from the channel's sums over its n values:
// dx = gamma invstd (dy - sum_dy / n - xhat sum_dy_xhat / n)
static inline CUVAE_HOST_DEVICE float batch_norm_input_gradient(float dy, float xhat, float gamma,
                                                                float invstd, float mean_dy,
                                                                float mean_dy_xhat) {
    return gamma * invstd * (dy - mean_dy - xhat * mean_dy_xhat);
}

// The vector quantiser's nearest code for one row: argmin_k norms[k] - 2 scores[k]
// (the squared distance less ||z||^2), the lowest k on ties.
static inline CUVAE_HOST_DEVICE int vq_nearest_code(const float *scores, const float *norms, int K) {
    int best = 0;
    float best_value = norms[0] - 2.0f * scores[0];
    for (int k = 1; k < K; k++) {
        float value = norms[k] - 2.0f * scores[k];
        if (value < best_value) {
            best_value = value;
            best = k;
        }
    }
    return best;
}

// The column a dead code k restarts from at this step: floor(u N), u uniform in [0, 1).
static inline CUVAE_HOST_DEVICE int vq_restart_column(uint64_t seed, int64_t step, int K, int k, int N) {
    int n = (int)(philox_uniform_at(seed, (uint64_t)step * (uint64_t)K + (uint64_t)k) * (float)N);
    return n < N ? n : N - 1;
}

// The class a value of x holds when x carries integer codes as code / 255 (the dataset's
// uint8 -> [0, 1] gather): a PixelCNN prior's targets and one-hot inputs.
static inline CUVAE_HOST_DEVICE int code_of_value(float v) { return (int)(v * 255.0f + 0.5f); }

// One position of the categorical loss over logits l[k * stride], k < K: returns
// -log softmax(l)[target] and, if g != NULL, writes g[k * stride] = scale (softmax_k - [k == target]).
static inline CUVAE_HOST_DEVICE float categorical_position(const float *l, float *g, int K, int stride,
                                                          int target, float scale) {
    // the data path gives codes < K (a prior's K is its VQ-VAE's); never read past the logits
    target = target < 0 ? 0 : target >= K ? K - 1 : target;
    float top = l[0];
    for (int k = 1; k < K; k++) top = l[(size_t)k * stride] > top ? l[(size_t)k * stride] : top;
    float sum = 0.0f;
    for (int k = 0; k < K; k++) sum += expf(l[(size_t)k * stride] - top);
    const float lse = top + logf(sum);
    if (g)
        for (int k = 0; k < K; k++)
            g[(size_t)k * stride] = scale * (expf(l[(size_t)k * stride] - lse) - (k == target ? 1.0f : 0.0f));
    return lse - l[(size_t)target * stride];
}

// An adversarial autoencoder's 2-D mixture prior (Makhzani et al. 2015 give no numbers; the centres
// and rotation of the public reimplementations, whose x_var 0.5 and y_var 0.1 are used there as
// standard deviations, here as variances): component k of `components` is N((MIXTURE_RADIUS, 0),
// diag(MIXTURE_X_STD^2, MIXTURE_Y_STD^2)) rotated by 2 pi k / components -- ten elongated petals
// around the origin.
// (e0, e1) are N(0, 1) draws, overwritten with the point.
#define MIXTURE_COMPONENTS 10
#define MIXTURE_RADIUS 1.4f
#define MIXTURE_X_STD 0.70710678f   // sqrt(0.5)
#define MIXTURE_Y_STD 0.31622777f   // sqrt(0.1)
static inline CUVAE_HOST_DEVICE void mixture_point(int k, int components, float *e0, float *e1) {
    const float x = MIXTURE_X_STD * *e0 + MIXTURE_RADIUS, y = MIXTURE_Y_STD * *e1;
    const float angle = 6.283185307179586f * (float)k / (float)components;
    const float c = cosf(angle), s = sinf(angle);
    *e0 = c * x - s * y;
    *e1 = s * x + c * y;
}

// One exponential-moving-average step of the EMA codebook's statistics (counts and sums):
// decay old + (1 - decay) batch, its fused multiply-add written out. The plain expression
// leaves the contraction to the compiler, and gcc fuses the first product where nvcc fuses the
// second: one rounding apart, so the backends' statistics would differ in the last bit.
static inline CUVAE_HOST_DEVICE float vq_ema_step(float decay, float old, float batch) {
    return fmaf(decay, old, (1.0f - decay) * batch);
}

// The EMA codebook's Laplace-smoothed count of one code: (count + eps) / (total + K eps) * total.
static inline CUVAE_HOST_DEVICE float vq_smoothed_count(float count, float total, int K, float eps) {
    return (count + eps) / (total + (float)K * eps) * total;
}

#endif

// kernels.h: the extern "C" launchers of kernels/*.cu, one fused op each, called
// by src/backend_cuda.c. Plain C types only, so gcc can include this with
// -I$(CUDA_HOME)/include. Every launcher enqueues its kernel(s) on `stream`,
// checks the launch with CUDA_CHECK(cudaGetLastError()) and never synchronises.
// All pointers are device pointers; matrices are row-major; shapes in comments.
// The exact semantics of each op are those of include/cuvae/backend.h.
#ifndef CUVAE_KERNELS_H
#define CUVAE_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>
#include "cuvae/philox.h"       // EpsSource
#include "cuvae/step_state.h"
#include "cuvae/backend.h"      // OptimizerParams

#ifdef __cplusplus
extern "C" {
#endif

// step_state_begin / step_state_end (step_state.h) on the device, one thread.
void launch_step_begin(StepState *state, StepPlan plan, cudaStream_t stream);
void launch_step_end(StepState *state, StepPlan plan, int rows, cudaStream_t stream);

// out (n) = philox_normal_at(seed, offset + (device_offset ? *device_offset : 0) + i).
void launch_fill_normal(float *out, size_t n, uint64_t seed, uint64_t offset,
                        const uint64_t *device_offset, cudaStream_t stream);

// out (n) = philox_uniform_between(seed, offset + (device_offset ? *device_offset : 0) + i, lo, hi).
void launch_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t offset,
                         const uint64_t *device_offset, float lo, float hi, cudaStream_t stream);

// x (B, D) = data[row] / 255.0f, row = perm ? perm[r] : r, r = start + state->batch_start + b
// (state may be NULL: 0). data (N, D) uint8, perm (N) int32 or NULL. binarize: x = u < p ? 1 : 0,
// u = philox_uniform_at(binarize_seed, state->uniform_offset + b D + d).
void launch_gather_batch(float *x, const uint8_t *data, const int32_t *perm, int start,
                         const StepState *state, int B, int D, int binarize,
                         uint64_t binarize_seed, cudaStream_t stream);

// y (B, N) = act(y + bias (N)), in place. act is an Activation (config.h).
void launch_bias_activation_forward(float *y, const float *bias, int B, int N, int act,
                                    cudaStream_t stream);

// dy (B, N) *= act'(.) written through the activation output y (B, N). act: Activation.
void launch_activation_backward(float *dy, const float *y, int B, int N, int act,
                                cudaStream_t stream);

// dbias (N) = sum over rows of dy (B, N). Fixed summation order (deterministic).
void launch_bias_grad(float *dbias, const float *dy, int B, int N, cudaStream_t stream);

// z (B, L) = mu + expf(0.5f * logvar) * eps, with h (B, 2L) = [mu | logvar], eps from its source.
void launch_reparam_forward(float *z, const float *h, EpsSource eps, int B, int L,
                            cudaStream_t stream);

// kl_row (B) always; dh (B, 2L) if not NULL; dz (B, L) may be NULL, eps empty.
// kl_coef (L) = d(loss)/d(KL_bj) per dimension, read only when dh is not NULL.
void launch_kl_reparam_backward(float *dh, float *kl_row, const float *h, EpsSource eps,
                                const float *dz, int B, int L, const float *kl_coef,
                                cudaStream_t stream);

// kl_dim_sum (L) = sum over rows of 0.5 (mu^2 + exp(lv) - 1 - lv), h (B, 2L). Fixed order.
void launch_kl_statistics(float *kl_dim_sum, const float *h, int B, int L, cudaStream_t stream);

// kl_coef (L) from the schedule state->kl (device memory); kl_dim_sum (L)
// may be NULL when neither capacity nor free_bits > 0. One block.
void launch_kl_coefficients(float *kl_coef, const float *kl_dim_sum, int B, int L,
                            const StepState *state, cudaStream_t stream);

// logw (B) = rec_scale * rec_row + rec_const + sum_j (-0.5 z^2 + 0.5 eps^2 + 0.5 lv),
// z = mu + exp(0.5 lv) eps; h (B, 2L), eps (B, L).
void launch_importance_log_weight(float *logw, const float *rec_row, const float *h,
                                  const float *eps, int B, int L, float rec_scale,
                                  float rec_const, cudaStream_t stream);

// onehot (B, C) = one-hot of labels[row] (uint8, N), row as in launch_gather_batch.
void launch_gather_onehot(float *onehot, const uint8_t *labels, const int32_t *perm, int start,
                          const StepState *state, int B, int C, cudaStream_t stream);

// rec_row (B) always; d_out (B, D) if not NULL. kind is a RecLoss (backend.h).
void launch_reconstruction_loss(float *d_out, float *rec_row, const float *out,
                                const float *x, int B, int D, int kind, float pixel_weight,
                                float grad_scale, cudaStream_t stream);

// acc (3) double: acc[0] += sum rec_row (B), acc[1] += sum kl_row (B) (if not NULL),
// acc[2] += B. One block, fixed order.
void launch_accumulate_loss(double *acc, const float *rec_row, const float *kl_row, int B,
                            cudaStream_t stream);

// Adam / AdamW over n floats, step_size = state->adam_step_size, sqrt_bc2 =
// state->adam_sqrt_bc2 and lr_now read on the device (step_begin folded them in double).
// Per element:  g += wd * p (adam's L2)  or  p *= 1 - lr_now * wd (adamw)
//               m = beta1 * m + (1.0f - beta1) * g
//               v = beta2 * v + (1.0f - beta2) * g * g
//               p -= step_size * (m / (sqrtf(v) / sqrt_bc2 + eps))
void launch_adam_update(float *params, const float *grads, float *m, float *v, size_t n,
                        OptimizerParams o, const StepState *state, cudaStream_t stream);

// Gradient-norm clipping (backend.h grad_clip): GRAD_CLIP_BLOCKS blocks of 256
// threads sum squares in double into scratch[1..], one thread adds them in order
// into scratch[0] = the norm, and a third kernel scales grads when it is too large.
void launch_grad_clip(float *grads, size_t n, float max_norm, double *scratch, cudaStream_t stream);

// SGD with momentum over n floats, lr = state->lr_now read on the device:
//   g += wd * p;  buf = momentum * buf + g (momentum > 0);  p -= lr * buf (or g)
void launch_sgd_update(float *params, const float *grads, float *buf, size_t n, OptimizerParams o,
                       const StepState *state, cudaStream_t stream);

// ---- layer-graph ops (kernels/bias_activation.cu, conv.cu, batch_norm.cu) ----
// y (n) = act(x); dx (n) = dy act'(.) through y. act: Activation, slope: leaky_relu's.
void launch_activation_forward(float *y, const float *x, size_t n, int act, float slope,
                               cudaStream_t stream);
void launch_activation_gradient(float *dx, const float *dy, const float *y, size_t n, int act,
                                float slope, cudaStream_t stream);
// y (n) = a * b elementwise (y == a allowed).
void launch_multiply(float *y, const float *a, const float *b, size_t n, cudaStream_t stream);
// y (n) = a + b elementwise (y == a allowed).
void launch_add(float *y, const float *a, const float *b, size_t n, cudaStream_t stream);
// col (C k k, B OH OW) <-> x (B, C, H, W) (layer_math.h); col2im overwrites x.
void launch_im2col(float *col, const float *x, ConvGeometry g, int B, cudaStream_t stream);
void launch_col2im(float *x, const float *col, ConvGeometry g, int B, cudaStream_t stream);
// out (N1, N0, S) = in (N0, N1, S) with the leading axes swapped.
void launch_swap_leading_axes(float *out, const float *in, int N0, int N1, int S,
                              cudaStream_t stream);
// y (B, C, S) += bias (C); dbias (C) = sum over b, s of dy (B, C, S) (double, fixed tree).
void launch_channel_bias_forward(float *y, const float *bias, int B, int C, int S,
                                 cudaStream_t stream);
void launch_channel_bias_grad(float *dbias, const float *dy, int B, int C, int S,
                              cudaStream_t stream);
// Batch norm over (B, C, S) per channel, backend.h's batch_norm_forward / _backward.
void launch_batch_norm_forward(float *y, float *mean, float *invstd, float *running_mean,
                               float *running_var, const float *x, const float *gamma,
                               const float *beta, int B, int C, int S, int training,
                               float momentum, float eps, cudaStream_t stream);
void launch_batch_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                                const float *x, const float *gamma, const float *mean,
                                const float *invstd, int B, int C, int S, cudaStream_t stream);

// ---- vector quantiser (kernels/vector_quantizer.cu), backend.h's vq_* ----
void launch_vq_code_norms(float *norms, const float *codebook, int K, int D, cudaStream_t stream);
void launch_vq_argmin(int32_t *codes, const float *scores, const float *norms, int N, int K,
                      cudaStream_t stream);
void launch_vq_quantize(float *zqt, float *loss_row, const float *zt, const float *codebook,
                        const int32_t *codes, int B, int S, int D, float weight, cudaStream_t stream);
void launch_vq_backward(float *dzt, float *dcodebook, const float *dzqt, const float *zt,
                        const float *codebook, const int32_t *codes, int N, int K, int D,
                        float commit_coef, float codebook_coef, cudaStream_t stream);
// The categorical loss over codes and the codes' one-hot (kernels/categorical.cu; backend.h).
void launch_categorical_loss(float *d_out, float *rec_row, const float *logits, const float *x, int B, int K,
                             int S, float grad_scale, cudaStream_t stream);
void launch_codes_onehot(float *out, const float *x, int B, int K, int S, cudaStream_t stream);
// z (B, 2) N(0, 1) draws -> the mixture prior's points, row b of component b mod components
// (kernels/mixture_prior.cu).
void launch_mixture_prior(float *z, int B, int components, cudaStream_t stream);
// dst (n) = bank row (state->step mod n_slices) (kernels/select_slice.cu).
void launch_select_slice(float *dst, const float *bank, size_t n, int n_slices, const StepState *state,
                         cudaStream_t stream);
void launch_vq_restart_dead(float *codebook, float *counts, float *sums, const float *zt, int N, int K,
                            int D, float threshold, uint64_t seed, const StepState *state, cudaStream_t stream);
void launch_vq_ema_update(float *codebook, float *counts, float *sums, const float *zt,
                          const int32_t *codes, int N, int K, int D, float decay, float eps,
                          cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif

// backend.h: the seam between the model and the hardware. Model, training and
// eval code call only these function pointers; backend_cpu.c is the readable
// reference implementation (the specification), backend_cuda.c + kernels/*.cu
// the GPU one, tested against it op by op.
//
// All matrices are row-major float32. "Device pointers" are whatever the
// backend's alloc returns (host memory for the CPU backend).
// No op may synchronise with the host except download() and synchronize():
// a training step is a fixed sequence of ops so it can be captured in a CUDA graph.
#ifndef CUVAE_BACKEND_H
#define CUVAE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "cuvae/config.h"

// Reconstruction loss forms (chosen from model.output + loss.reconstruction).
typedef enum {
    RECLOSS_BCE_LOGITS = 0,   // out = logits a: l = max(a,0) - a*x + log1p(exp(-|a|)); dl/da = sigmoid(a) - x
    RECLOSS_MSE_SIGMOID,      // out = logits a, s = sigmoid(a): l = (s - x)^2; dl/da = 2(s - x) s (1 - s)
    RECLOSS_MSE_IDENTITY,     // out = y: l = (y - x)^2; dl/dy = 2(y - x)
} RecLoss;

// How the KL term enters the loss this step (values computed on the host from
// the step counter; the batch statistics they need stay on the device).
typedef struct {
    float weight;             // w_kl (after warmup) when capacity is off
    float free_bits;          // per-dimension floor in nats (0 = off)
    int capacity;             // 1: gamma * |KL_batch_mean - target| replaces weight * KL
    float capacity_target;    // C at this step, nats
    float capacity_gamma;
} KlSchedule;

typedef struct Backend Backend;
struct Backend {
    const char *name;          // "cpu" | "cuda"
    char device_name[256];     // e.g. "CPU (OpenBLAS, 2 threads)" | "NVIDIA H100 80GB HBM3"
    void *impl;                // backend-private state

    // ---- memory -----------------------------------------------------------
    void *(*alloc)(Backend *be, size_t bytes);     // zero-filled; aborts with a message on OOM
    void (*free)(Backend *be, void *ptr);
    void (*upload)(Backend *be, void *dst, const void *src_host, size_t bytes);
    void (*download)(Backend *be, void *dst_host, const void *src, size_t bytes);  // waits for prior work
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);           // device to device
    void (*zero)(Backend *be, void *ptr, size_t bytes);
    void (*synchronize)(Backend *be);
    size_t (*peak_memory)(Backend *be);            // bytes allocated at peak through alloc()
    void (*destroy)(Backend *be);

    // ---- GEMM -------------------------------------------------------------
    // C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
    // A is stored (M, K) with leading dim lda, or (K, M) when trans_a; same for B.
    void (*gemm)(Backend *be, bool trans_a, bool trans_b, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

    // ---- random numbers ---------------------------------------------------
    // out[i] = draw number (offset + i) of the stream named by seed. The CPU and
    // CUDA streams differ (CPU: cuvae Philox; CUDA: cuRAND Philox); parity tests
    // feed both the same uploaded epsilon instead.
    void (*fill_normal)(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset);
    void (*fill_uniform)(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset);  // in (0, 1]

    // ---- fused ops (one kernel each on CUDA) ------------------------------
    // x (B, D) = data[row] / 255.0f (an IEEE division) with row = perm ? perm[start + b] : start + b.
    // data (N, D) uint8 resident on the device; perm (N) int32.
    // If uniform (B, D) != NULL the pixel is binarized: x = (uniform < p) ? 1 : 0.
    void (*gather_batch)(Backend *be, float *x, const uint8_t *data, const int32_t *perm,
                         int start, int B, int D, const float *uniform);

    // y (B, N) = act(y + bias (N)), in place.
    void (*bias_activation_forward)(Backend *be, float *y, const float *bias, int B, int N,
                                    Activation act);
    // dy (B, N) *= act'(.) expressed through the activation's output y (B, N), in place.
    void (*activation_backward)(Backend *be, float *dy, const float *y, int B, int N,
                                Activation act);
    // dbias (N) = sum over b of dy (B, N). Overwrites. Fixed summation order.
    void (*bias_grad)(Backend *be, float *dbias, const float *dy, int B, int N);

    // h (B, 2L) holds [mu | logvar] per row; eps (B, L).
    // z (B, L) = mu + exp(0.5 * logvar) * eps
    void (*reparam_forward)(Backend *be, float *z, const float *h, const float *eps, int B, int L);

    // KL reduction fused with its gradient and the reparametrization backward.
    // kl_row (B)  = 0.5 * sum_j (mu^2 + exp(lv) - 1 - lv)             (always written)
    // if dh (B, 2L) != NULL, with c = kl_coef (L) = d(loss)/d(KL_bj) per dimension:
    //   dh[b, j]     = dz[b, j]                                + c[j] * mu
    //   dh[b, L + j] = dz[b, j] * eps[b, j] * 0.5 * exp(0.5 lv) + c[j] * 0.5 * (exp(lv) - 1)
    // dz (B, L) and eps may be NULL (treated as 0: KL-only gradient).
    void (*kl_reparam_backward)(Backend *be, float *dh, float *kl_row, const float *h,
                                const float *eps, const float *dz, int B, int L,
                                const float *kl_coef);

    // kl_dim_sum (L) = sum over b of 0.5 * (mu^2 + exp(lv) - 1 - lv). Overwrites. Fixed order.
    void (*kl_statistics)(Backend *be, float *kl_dim_sum, const float *h, int B, int L);

    // kl_coef (L) from the schedule, all on the device (kl_dim_sum may be NULL
    // when neither free bits nor capacity is on):
    //   capacity:  c_j = gamma * sign(sum_j kl_dim_sum_j / B - target) / B
    //   free bits: c_j = (kl_dim_sum_j / B > free_bits) ? weight / B : 0
    //   plain:     c_j = weight / B
    void (*kl_coefficients)(Backend *be, float *kl_coef, const float *kl_dim_sum, int B, int L,
                            KlSchedule schedule);

    // Reconstruction loss and its gradient in one pass over out (B, D) and x (B, D):
    // rec_row (B)   = pixel_weight * sum_d l(out[b, d], x[b, d])          (always written)
    // d_out (B, D)  = grad_scale * pixel_weight * dl/dout                 (if d_out != NULL)
    // pixel_weight is 1 (reduction "sum") or 1/D ("mean").
    void (*reconstruction_loss)(Backend *be, float *d_out, float *rec_row, const float *out,
                                const float *x, int B, int D, RecLoss kind,
                                float pixel_weight, float grad_scale);

    // onehot (B, C) = one-hot of labels[row], row = perm ? perm[start + b] : start + b.
    void (*gather_onehot)(Backend *be, float *onehot, const uint8_t *labels, const int32_t *perm,
                          int start, int B, int C);

    // Importance log-weight per row: log p(x|z) + log p(z) - log q(z|x) with
    // log p(x|z) = rec_scale * rec_row + rec_const and z = mu + exp(lv / 2) eps:
    // logw[b] = rec_scale * rec_row[b] + rec_const
    //           + sum_j (-0.5 z^2 + 0.5 eps^2 + 0.5 lv)        (the log 2 pi terms cancel)
    void (*importance_log_weight)(Backend *be, float *logw, const float *rec_row, const float *h,
                                  const float *eps, int B, int L, float rec_scale, float rec_const);

    // acc[0] += sum rec_row, acc[1] += sum kl_row (skipped if NULL), acc[2] += B.
    // acc (3) is double, on the device; deterministic summation order.
    void (*accumulate_loss)(Backend *be, double *acc, const float *rec_row, const float *kl_row, int B);

    // Adam (PyTorch semantics, no weight decay) over n floats of a flat arena, step >= 1:
    // m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
    // p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
    void (*adam_update)(Backend *be, float *params, const float *grads, float *m, float *v,
                        size_t n, float lr, float beta1, float beta2, float eps, int step);
};

Backend *backend_cpu_create(void);

// Threading set-up read by the libraries when they load, so call it first thing
// in main(): OpenBLAS picks its kernels from the CPU model and falls back to its
// slowest generic ones on CPUs it does not recognise (virtual machines report a
// generic model): then OPENBLAS_CORETYPE is set from the CPU's features
// (AVX-512 -> SkylakeX, AVX2 -> Haswell). OMP_WAIT_POLICY=PASSIVE keeps idle
// OpenMP threads from spinning against OpenBLAS's. Variables the user set are
// kept. If anything was set, the program re-executes itself once.
void backend_cpu_select_blas_kernels(char **argv);

// True when this binary was built with the CUDA backend.
bool backend_cuda_compiled(void);
// NULL (and err filled) when not compiled in or no usable GPU.
Backend *backend_cuda_create(char *err, size_t errlen);

// device: auto -> CUDA when usable else CPU (printing one line on stderr saying why);
// cpu -> CPU; cuda -> CUDA or NULL with a clear error.
Backend *backend_create(DeviceChoice choice, char *err, size_t errlen);

#endif

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
#include "cuvae/philox.h"      // EpsSource
#include "cuvae/step_state.h"
#include "cuvae/layer_math.h"   // ConvGeometry

// Reconstruction loss forms (chosen from model.output + loss.reconstruction).
typedef enum {
    RECLOSS_BCE_LOGITS = 0,   // out = logits a: l = max(a,0) - a*x + log1p(exp(-|a|)); dl/da = sigmoid(a) - x
    RECLOSS_MSE_SIGMOID,      // out = logits a, s = sigmoid(a): l = (s - x)^2; dl/da = 2(s - x) s (1 - s)
    RECLOSS_MSE_IDENTITY,     // out = y: l = (y - x)^2; dl/dy = 2(y - x)
} RecLoss;

// Ranges queue_update holds (a model queues one per decoder layer, then the rest).
#define UPDATE_QUEUE_RANGES 64

// Doubles of device scratch grad_clip needs (partial sums of the blocks, then the norm).
#define GRAD_CLIP_BLOCKS 128
#define GRAD_CLIP_SCRATCH (GRAD_CLIP_BLOCKS + 2)

// An optimizer's constants (train.*), passed by value to the update ops.
typedef struct {
    float beta1, beta2, eps;   // adam, adamw
    float momentum;            // sgd (0: plain SGD)
    float weight_decay;        // adam, sgd: L2, added to the gradient; adamw: decoupled
    int32_t decoupled;         // 1: adamw's p *= 1 - lr wd, applied before the Adam step
} OptimizerParams;

// One queued optimizer update (queue_update's arguments), as both backends keep it.
typedef struct {
    float *params;
    float *grads;            // the CPU backend clears them (Backend.updates_clear_gradients)
    float *m, *v;            // sgd: m is the momentum buffer, v unused
    size_t n;
    const StepState *state;
    OptimizerParams o;
    bool sgd;
} UpdateRange;

// Backend-wide settings taken from the config (train.*).
typedef struct {
    Precision precision;      // GEMM precision: fp32 (true fp32, the default) | tf32
    bool cuda_graphs;         // capture each distinct step once and replay it
} BackendOptions;

typedef struct Backend Backend;
struct Backend {
    const char *name;          // "cpu" | "cuda"
    char device_name[256];     // e.g. "CPU (OpenBLAS, 2 threads)" | "NVIDIA H100 80GB HBM3"
    void *impl;                // backend-private state
    // Whether the optimizer updates (adam_update, sgd_update, queue_update) leave each
    // gradient they read at 0. The CPU's do: OpenBLAS clears C in a pass of its own before a
    // GEMM with beta = 0, so the next backward's weight gradients are GEMMs with beta = 1 onto
    // those zeros instead (Model.grads_clear), the same values. CUDA's do not (cuBLAS folds
    // beta = 0 into its GEMM; a captured step's beta could not follow the host's flag anyway).
    bool updates_clear_gradients;
    // Whether the ranks' collectives can run without MPI (CUDA: NCCL, its id through
    // CUVAE_NCCL_ID_FILE); the CPU's go over MPI only, so train refuses it in such a launch.
    bool collectives_without_mpi;

    // ---- memory -----------------------------------------------------------
    void *(*alloc)(Backend *be, size_t bytes);     // zero-filled; aborts with a message on OOM
    void (*free)(Backend *be, void *ptr);
    void (*upload)(Backend *be, void *dst, const void *src_host, size_t bytes);
    void (*download)(Backend *be, void *dst_host, const void *src, size_t bytes);  // waits for prior work
    void (*copy)(Backend *be, void *dst, const void *src, size_t bytes);           // device to device
    void (*zero)(Backend *be, void *ptr, size_t bytes);
    void (*synchronize)(Backend *be);
    size_t (*peak_memory)(Backend *be);            // bytes allocated at peak through alloc()
    // bytes alloc() may still get (0: unknown); where source is not NULL, into it a few words saying
    // where the number comes from, to follow "more than the N MiB" in an error (a cgroup's limit file)
    size_t (*memory_available)(Backend *be, char *source, size_t source_size);
    void (*destroy)(Backend *be);

    // ---- GEMM -------------------------------------------------------------
    // C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
    // A is stored (M, K) with leading dim lda, or (K, M) when trans_a; same for B.
    void (*gemm)(Backend *be, bool trans_a, bool trans_b, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

    // ---- settings and the training step ---------------------------------
    void (*configure)(Backend *be, const BackendOptions *options);

    // The per-step values (step_state.h), on the device: step_state_begin /
    // step_state_end run there (one thread on CUDA), never on the host.
    void (*step_begin)(Backend *be, StepState *state, StepPlan plan);
    void (*step_end)(Backend *be, StepState *state, StepPlan plan, int rows);

    // Runs the ops enqueue(ctx) issues. With options.cuda_graphs the CUDA
    // backend captures them into a graph the first time a key is seen and
    // replays that graph afterwards; so enqueue must issue the same ops with the
    // same arguments every time for a key, and no host<->device transfer. The
    // CPU backend just calls enqueue.
    // The first call for a (ctx, key) runs eagerly (a warm-up: cuBLAS and kernel
    // loading happen outside any capture); the second captures and launches.
    // drop_steps(ctx) releases the graphs of ctx, NULL all of them: call it
    // before ctx or the buffers its ops use go away, and whenever a value frozen
    // into the graph changes (configure and model_begin_training do).
    void (*run_step)(Backend *be, int key, void (*enqueue)(void *ctx), void *ctx);
    void (*drop_steps)(Backend *be, const void *ctx);
    int (*graph_count)(Backend *be);   // graphs held now (0 on the CPU)

    // ---- random numbers ---------------------------------------------------
    // out[i] = normal number offset + base + i of stream `seed`, with base =
    // *device_offset when device_offset != NULL, else 0: philox_normal_at (philox.h)
    // on CUDA, rng_normal_at (rng.h: the same Philox words and Box-Muller, glibc's
    // vector logf / cosf) on the CPU; the two within a few ulp of each other.
    void (*fill_normal)(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset,
                        const uint64_t *device_offset);
    // out[i] = philox_uniform_between(seed, offset + base + i, lo, hi), in (lo, hi], base as above.
    void (*fill_uniform)(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset,
                         const uint64_t *device_offset, float lo, float hi);

    // ---- fused ops (one kernel each on CUDA) ------------------------------
    // x (B, D) = data[row] / 255.0f (an IEEE division), row = perm ? perm[r] : r,
    // r = start + (state ? state->batch_start : 0) + b. data (N, D) uint8 resident on
    // the device; perm (N) int32. With binarize the pixel is drawn: x = (u < p) ? 1 : 0,
    // u = philox_uniform_at(binarize_seed, (state ? state->uniform_offset + start D : 0) + b D + d)
    // (a data-parallel rank's shard starts at row `start` of the step's global batch).
    void (*gather_batch)(Backend *be, float *x, const uint8_t *data, const int32_t *perm,
                         int start, const StepState *state, int B, int D, bool binarize,
                         uint64_t binarize_seed);

    // y (B, N) = act(y + bias (N)), in place.
    void (*bias_activation_forward)(Backend *be, float *y, const float *bias, int B, int N,
                                    Activation act);
    // dy (B, N) *= act'(.) expressed through the activation's output y (B, N), in place.
    void (*activation_backward)(Backend *be, float *dy, const float *y, int B, int N,
                                Activation act);
    // dbias (N) = sum over b of dy (B, N). Overwrites. Fixed summation order.
    void (*bias_grad)(Backend *be, float *dbias, const float *dy, int B, int N);
    // activation_backward, then bias_grad of its result: the same numbers as the two ops, in
    // one pass over dy where the backend can (the CPU's; CUDA runs the two kernels).
    void (*activation_backward_bias_grad)(Backend *be, float *dy, float *dbias, const float *y, int B,
                                          int N, Activation act);

    // h (B, 2L) holds [mu | logvar] per row; eps (B, L) from the source.
    // z (B, L) = mu + exp(0.5 * logvar) * eps
    void (*reparam_forward)(Backend *be, float *z, const float *h, EpsSource eps, int B, int L);
    // Says that the next reparam_forward will take eps (B, L) from this drawing source (its
    // offset as it will be then): a backend may draw the numbers ahead, where a thread would
    // otherwise wait (the CPU's: beside the next GEMM too small to split, the encoder's head).
    // Changes no result; a no-op where the draw costs nothing apart (CUDA fuses it).
    void (*draw_eps_ahead)(Backend *be, EpsSource eps, int B, int L);

    // KL reduction fused with its gradient and the reparametrization backward.
    // kl_row (B)  = 0.5 * sum_j (mu^2 + exp(lv) - 1 - lv)             (always written)
    // if dh (B, 2L) != NULL, with c = kl_coef (L) = d(loss)/d(KL_bj) per dimension:
    //   dh[b, j]     = dz[b, j]                                + c[j] * mu
    //   dh[b, L + j] = dz[b, j] * eps[b, j] * 0.5 * exp(0.5 lv) + c[j] * 0.5 * (exp(lv) - 1)
    // dz (B, L) may be NULL and eps empty (treated as 0: KL-only gradient).
    void (*kl_reparam_backward)(Backend *be, float *dh, float *kl_row, const float *h,
                                EpsSource eps, const float *dz, int B, int L,
                                const float *kl_coef);

    // kl_dim_sum (L) = sum over b of 0.5 * (mu^2 + exp(lv) - 1 - lv). Overwrites. Fixed order.
    void (*kl_statistics)(Backend *be, float *kl_dim_sum, const float *h, int B, int L);

    // kl_coef (L) from the schedule state->kl, all on the device (kl_dim_sum may
    // be NULL when neither free bits nor capacity is on):
    //   capacity:  c_j = gamma * sign(sum_j kl_dim_sum_j / B - target) / B
    //   free bits: c_j = (kl_dim_sum_j / B > free_bits) ? weight / B : 0
    //   plain:     c_j = weight / B
    void (*kl_coefficients)(Backend *be, float *kl_coef, const float *kl_dim_sum, int B, int L,
                            const StepState *state);

    // Reconstruction loss and its gradient in one pass over out (B, D) and x (B, D):
    // rec_row (B)   = pixel_weight * sum_d l(out[b, d], x[b, d])          (always written)
    // d_out (B, D)  = grad_scale * pixel_weight * dl/dout                 (if d_out != NULL)
    // pixel_weight is 1 (reduction "sum") or 1/D ("mean").
    void (*reconstruction_loss)(Backend *be, float *d_out, float *rec_row, const float *out,
                                const float *x, int B, int D, RecLoss kind,
                                float pixel_weight, float grad_scale);

    // The categorical loss of a prior over codes: logits (B, K, S), targets x (B, S) holding
    // codes as code / 255 (code_of_value). rec_row[b] = sum_s -log softmax_k(logits[b, :, s])[x_bs]
    // (nats, fixed order); d_out (B, K, S) = grad_scale (softmax - one-hot) unless NULL.
    void (*categorical_loss)(Backend *be, float *d_out, float *rec_row, const float *logits, const float *x,
                             int B, int K, int S, float grad_scale);
    // out (B, K, S) = one-hot over k of the codes in x (B, S) (code_of_value).
    void (*codes_onehot)(Backend *be, float *out, const float *x, int B, int K, int S);

    // onehot (B, C) = one-hot of labels[row], row as in gather_batch.
    void (*gather_onehot)(Backend *be, float *onehot, const uint8_t *labels, const int32_t *perm,
                          int start, const StepState *state, int B, int C);

    // Importance log-weight per row: log p(x|z) + log p(z) - log q(z|x) with
    // log p(x|z) = rec_scale * rec_row + rec_const and z = mu + exp(lv / 2) eps:
    // logw[b] = rec_scale * rec_row[b] + rec_const
    //           + sum_j (-0.5 z^2 + 0.5 eps^2 + 0.5 lv)        (the log 2 pi terms cancel)
    void (*importance_log_weight)(Backend *be, float *logw, const float *rec_row, const float *h,
                                  const float *eps, int B, int L, float rec_scale, float rec_const);

    // acc[0] += sum rec_row, acc[1] += sum kl_row (skipped if NULL), acc[2] += B.
    // acc (3) is double, on the device; deterministic summation order.
    void (*accumulate_loss)(Backend *be, double *acc, const float *rec_row, const float *kl_row, int B);

    // Gradient-norm clipping (torch.nn.utils.clip_grad_norm_), all on the device:
    // norm = sqrt(sum g^2) over the n floats (in double, a fixed order);
    // if max_norm / (norm + 1e-6) < 1, g *= that. scratch holds GRAD_CLIP_SCRATCH
    // doubles (partial sums; scratch[0] the norm afterwards).
    void (*grad_clip)(Backend *be, float *grads, size_t n, float max_norm, double *scratch);

    // ---- data parallel (distributed.h) -------------------------------------
    // buf (n) = its sum over the ranks, in place, in order with the other ops:
    // MPI on the CPU; NCCL on the training stream on CUDA (so a captured step holds
    // it). One rank: unchanged. Called only when the run is launched by mpirun/srun.
    void (*all_reduce_sum)(Backend *be, float *buf, size_t n);

    // Adam / AdamW (PyTorch semantics) over n floats of a flat arena, the
    // learning rate and bias corrections from state (step_begin): per element, in fp32,
    // adam with weight decay:  g += wd p                        (L2)
    // adamw:                   p *= 1 - state->lr_now wd        (decoupled, first)
    // m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
    // p -= state->adam_step_size * (m / (sqrt(v) / state->adam_sqrt_bc2 + eps))
    void (*adam_update)(Backend *be, float *params, float *grads, float *m, float *v,
                        size_t n, const StepState *state, OptimizerParams o);

    // ---- layer-graph ops (layers.c) ----------------------------------------
    // y (n) = act(x) elementwise (y == x allowed); slope: leaky_relu's negative slope.
    void (*activation_forward)(Backend *be, float *y, const float *x, size_t n, Activation act,
                               float slope);
    // dx (n) = dy * act'(.) written through the output y (n) (dx == dy allowed).
    void (*activation_gradient)(Backend *be, float *dx, const float *dy, const float *y, size_t n,
                                Activation act, float slope);
    // y (n) = a (n) * b (n) elementwise (y == a allowed): a masked layer's W * mask,
    // and its gradient dW * mask.
    void (*multiply)(Backend *be, float *y, const float *a, const float *b, size_t n);
    // y (n) = a (n) + b (n) elementwise (y == a allowed): a residual connection, and the
    // gradient it sends back to the skipped layers' input.
    void (*add)(Backend *be, float *y, const float *a, const float *b, size_t n);
    // col (C k k, B OH OW) from x (B, C, H, W) (layer_math.h im2col_value): row
    // (c k + i) k + j, column (b OH + oh) OW + ow holds x[b, c, oh s - p + i, ow s - p + j]
    // or 0 outside the image.
    void (*im2col)(Backend *be, float *col, const float *x, ConvGeometry g, int B);
    // x (B, C, H, W) = the adjoint of im2col: each pixel the sum of the col entries
    // that read it (col2im_value, fixed order). Overwrites.
    void (*col2im)(Backend *be, float *x, const float *col, ConvGeometry g, int B);
    // A tuning hint, not an op: how many chunks of images a conv layer's GEMM -> col2im path
    // (a transposed conv's forward, a conv's input gradient) takes for a batch of B, so the
    // columns the GEMM writes (floats_per_image an image, `inner` its inner dimension) are
    // still in cache when col2im reads them: B / chunks images a chunk, the first B % chunks
    // one more. 1: the whole batch at once (CUDA). The GEMM's entries and col2im's sums do
    // not depend on the other images, so the chunks change no bit where the GEMM gives the
    // same bits for any split of its columns (the CPU's col2im_chunks says when).
    int (*col2im_chunks)(Backend *be, size_t floats_per_image, int inner, int B);
    // Whole convolutions from a library (the CPU's oneDNN, conv_onednn.h); NULL where the
    // backend has none (CUDA, or a CPU build without oneDNN): the conv layers then compose
    // im2col / GEMM / col2im (above, below). Shapes as conv2d's: x (B, g.C, g.H, g.W),
    // y (B, C_out, g.OH, g.OW), W (C_out, g.C, k, k); a transposed conv runs them with its
    // roles swapped (layer_conv.c). All overwrite.
    // y = conv(x, W) + bias (bias NULL: none)
    void (*conv_forward)(Backend *be, float *y, const float *x, const float *W, const float *bias,
                         ConvGeometry g, int C_out, int B);
    // dx = the input gradient of conv(x, W) for dy
    void (*conv_backward_data)(Backend *be, float *dx, const float *dy, const float *W, ConvGeometry g,
                               int C_out, int B);
    // dW (C_out, g.C, k, k) and, unless NULL, dbias (C_out) for x and dy
    void (*conv_backward_weights)(Backend *be, float *dW, float *dbias, const float *x, const float *dy,
                                  ConvGeometry g, int C_out, int B);
    // out (N1, N0, S) = in (N0, N1, S) with its two leading axes swapped.
    void (*swap_leading_axes)(Backend *be, float *out, const float *in, int N0, int N1, int S);
    // y (B, C, S) += bias[c], in place.
    void (*channel_bias_forward)(Backend *be, float *y, const float *bias, int B, int C, int S);
    // dbias (C) = sum over b and s of dy (B, C, S). Overwrites; fixed order.
    void (*channel_bias_grad)(Backend *be, float *dbias, const float *dy, int B, int C, int S);
    // Batch norm over x (B, C, S) per channel c (its n = B S values), y (B, C, S):
    //   training: mean[c], var[c] (biased) of this batch, sums in double, fixed order;
    //             running_mean = (1 - momentum) running_mean + momentum mean,
    //             running_var  = (1 - momentum) running_var + momentum var n / (n - 1)
    //   eval:     mean = running_mean, var = running_var (running stats untouched)
    //   invstd[c] = 1 / sqrt(var + eps); y = (x - mean) invstd gamma[c] + beta[c]
    // mean (C) and invstd (C) are written in both modes (the backward reads them).
    void (*batch_norm_forward)(Backend *be, float *y, float *mean, float *invstd,
                               float *running_mean, float *running_var, const float *x,
                               const float *gamma, const float *beta, int B, int C, int S,
                               bool training, float momentum, float eps);
    // The backward of a training-mode batch_norm_forward, xhat = (x - mean) invstd:
    //   dbeta[c] = sum dy;  dgamma[c] = sum dy xhat   (double sums, fixed order; overwrite)
    //   dx = gamma invstd (dy - dbeta / n - xhat dgamma / n)   (batch_norm_input_gradient)
    void (*batch_norm_backward)(Backend *be, float *dx, float *dgamma, float *dbeta,
                                const float *dy, const float *x, const float *gamma,
                                const float *mean, const float *invstd, int B, int C, int S);

    // ---- vector quantiser (VQ-VAE) -------------------------------------------
    // The N = B S code vectors are the columns of zt (D, N) (column n = b S + s);
    // the codebook is (K, D), row k the code e_k.
    // norms (K) = ||e_k||^2 (in double, rounded).
    void (*vq_code_norms)(Backend *be, float *norms, const float *codebook, int K, int D);
    // codes[n] = argmin_k norms[k] - 2 scores[n, k] (the lowest k on ties), scores (N, K) =
    // z_n . e_k from a GEMM: the nearest code by squared distance.
    void (*vq_argmin)(Backend *be, int32_t *codes, const float *scores, const float *norms, int N, int K);
    // zqt (D, N): column n = e_codes[n]; loss_row (B) = weight * sum over the example's S
    // columns and D rows of (zt - zqt)^2 (double sums, fixed order; always written).
    void (*vq_quantize)(Backend *be, float *zqt, float *loss_row, const float *zt, const float *codebook,
                        const int32_t *codes, int B, int S, int D, float weight);
    // Straight-through backward: dzt (D, N) = dzqt + commit_coef 2 (zt - e_codes[n]);
    // if dcodebook (K, D) != NULL: dcodebook[k] = codebook_coef sum over n with codes[n] = k
    // of 2 (e_k - z_n) (n ascending; overwrites; 0 for unused codes).
    void (*vq_backward)(Backend *be, float *dzt, float *dcodebook, const float *dzqt, const float *zt,
                        const float *codebook, const int32_t *codes, int N, int K, int D,
                        float commit_coef, float codebook_coef);
    // The EMA codebook update (van den Oord et al. 2017, appendix; Laplace-smoothed counts):
    //   counts_k = decay counts_k + (1 - decay) n_k,  sums_k = decay sums_k + (1 - decay) sum_{codes[n]=k} z_n
    //   c_k = (counts_k + eps) / (sum_j counts_j + K eps) * sum_j counts_j;  e_k = sums_k / c_k
    void (*vq_ema_update)(Backend *be, float *codebook, float *counts, float *sums, const float *zt,
                          const int32_t *codes, int N, int K, int D, float decay, float eps);
    // Dead-code restart (EMA codebooks): every code k with counts[k] < threshold becomes
    // column n = floor(u N) of zt, u = philox_uniform_at(seed, state->step K + k), with
    // counts[k] = 1 and sums[k] = that column (so the next EMA update keeps it there).
    void (*vq_restart_dead)(Backend *be, float *codebook, float *counts, float *sums, const float *zt,
                            int N, int K, int D, float threshold, uint64_t seed, const StepState *state);

    // dst (n) = bank (n_slices, n) row state->step mod n_slices, the step read on the
    // device (MADE: the mask set of this step, so a captured step changes masks per replay).
    void (*select_slice)(Backend *be, float *dst, const float *bank, size_t n, int n_slices,
                         const StepState *state);

    // SGD with momentum (PyTorch semantics: no dampening, not Nesterov): per element,
    // g += wd p (L2);  buf = momentum buf + g (buf starts at 0);  p -= state->lr_now buf
    // (momentum 0: p -= lr_now g, buf untouched).
    void (*sgd_update)(Backend *be, float *params, float *grads, float *buf, size_t n,
                       const StepState *state, OptimizerParams o);

    // An optimizer update started inside a backward, on a range whose gradient is final:
    // the update adam_update does (sgd: sgd_update's, buf in m, v unused), which the backend
    // may run at any point up to finish_updates -- the CPU backend runs it in pieces on the
    // threads that a GEMM too small to split leaves idle, and on a thread whose slice of a
    // split GEMM is done while the other slices run; CUDA launches the queued ranges
    // at finish_updates, adjacent ones as one kernel. No op issued in between may touch the
    // ranges' params, grads or moments. Every element gets the same arithmetic as
    // adam_update / sgd_update, so the results are the same bit for bit. A full queue
    // (UPDATE_QUEUE_RANGES ranges) is run before the next one joins it; adam_update and
    // sgd_update finish the queue before their own update; step_end aborts if any range is
    // left unfinished.
    void (*queue_update)(Backend *be, float *params, float *grads, float *m, float *v,
                         size_t n, const StepState *state, OptimizerParams o, bool sgd);
    void (*finish_updates)(Backend *be);

    // An adversarial autoencoder's mixture prior: z (B, 2) of N(0, 1) draws becomes, row by row,
    // a point of component (row mod components) (mixture_point, layer_math.h), in place.
    void (*mixture_prior)(Backend *be, float *z, int B, int components);
};

// The CPU backend runs one OpenMP thread pool for its loops and its GEMMs (OpenBLAS
// single-threaded inside it): OMP_NUM_THREADS threads, else OPENBLAS_NUM_THREADS, else
// one per core. backend_cpu_threads() is that number once the backend exists.
Backend *backend_cpu_create(void);
int backend_cpu_threads(void);
// Whether OpenBLAS kernel family `core` (openblas_get_corename()) is one of the SkylakeX
// family, whose GEMM entry is one dot product over K however the columns or rows are cut:
// there a split GEMM gives the whole GEMM's bits, however its slices are cut; the Haswell /
// Zen kernels round a slice's tail rows or columns differently (within rounding).
bool backend_cpu_blas_splits_exact(const char *core);
// What the CPU backend's queued optimizer updates did so far (tests check that a training
// step queues its decoder's updates and that the overlap happens): ranges queued through
// queue_update, chunks of them run beside GEMMs (unsplit ones, or the last slices of split
// ones), and split GEMMs whose last slice was cut short for updates queued before them (only
// with OpenBLAS kernels that give the same bits for any cut); and epsilon draws announced by
// draw_eps_ahead and made beside a GEMM too small to split.
typedef struct {
    size_t ranges_queued;
    size_t chunks_beside_gemms;
    size_t gemms_cut_for_updates;
    size_t eps_draws_beside_gemms;
} CpuUpdateCounts;
CpuUpdateCounts backend_cpu_update_counts(Backend *be);
// Whether the CPU backend's im2col / col2im take geometry g with a batch of B images through
// stacked phase planes (one masked run per tap and block of images) rather than one plane an
// image (tests check that both ways are exercised).
bool backend_cpu_im2col_stacked(ConvGeometry g, int B);

// Set-up read by OpenBLAS when it loads, so call it first thing in main(): OpenBLAS
// picks its kernels from the CPU model and falls back to its slowest generic ones on
// CPUs it does not recognise (virtual machines report a generic model): then
// OPENBLAS_CORETYPE is set from the CPU's features (AVX-512 -> SkylakeX, AVX2 ->
// Haswell). A variable the user set is kept. If it was set, the program re-executes
// itself once.
void backend_cpu_select_blas_kernels(char **argv);

// True when this binary was built with the CUDA backend.
bool backend_cuda_compiled(void);
// True when its CUDA backend was built with NCCL (the GPU all-reduce of data parallel).
bool backend_nccl_compiled(void);
// NULL (and err filled) when not compiled in or no usable GPU.
Backend *backend_cuda_create(char *err, size_t errlen);
// True when backend_cuda_create's last failure holds for every rank of a data-parallel run (some
// ranks had their GPUs and others not, or two ranks one GPU): no rank falls back to the CPU.
bool backend_cuda_refused_for_all_ranks(void);

// Applies cfg's train.precision and train.cuda_graph to be.
void backend_configure_from(Backend *be, const Config *cfg);
// The note a command prints when cfg asks for what the backend does not have (train.precision
// "tf32" on the CPU, which computes in fp32), one line with its newline; NULL when none.
const char *backend_precision_note(const Backend *be, const Config *cfg);

// device: auto -> CUDA when usable else CPU (printing one line on stderr saying why);
// cpu -> CPU; cuda -> CUDA or NULL with a clear error.
Backend *backend_create(DeviceChoice choice, char *err, size_t errlen);
// The same, the auto fallback's line written into note (emptied when there is none) for the
// caller to say once its checks have passed (train: a refusal is then its one line).
Backend *backend_create_noting(DeviceChoice choice, char *note, size_t notelen, char *err, size_t errlen);

#endif

// step_state.h: everything about a training step that changes from one step to
// the next, kept in device memory so a captured CUDA graph replays exactly an
// eager step. StepPlan holds the constants (fixed when the graph is captured);
// StepState the per-step values, advanced on the device by step_begin/step_end.
//
// The math below is written once and compiled twice: by gcc for the CPU
// backend and by nvcc for the one-thread kernels of kernels/step_state.cu
// (CUVAE_HOST_DEVICE), so both backends evolve the state bit for bit alike
// (double multiplies, divisions and sqrt are correctly rounded on both).
#ifndef CUVAE_STEP_STATE_H
#define CUVAE_STEP_STATE_H

#include <math.h>
#include <stdint.h>
#include "cuvae/host_device.h"

// How the KL term enters the loss at one step (read by kl_coefficients).
typedef struct {
    float weight;             // w_kl (after warmup) when capacity is off
    float free_bits;          // per-dimension floor in nats (0 = off)
    int32_t capacity;         // 1: gamma * |KL_batch_mean - target| replaces weight * KL
    float capacity_target;    // C at this step, nats
    float capacity_gamma;
} KlSchedule;

// The KL schedule of a config (loss.*), as a function of the epoch position.
typedef struct {
    double w_kl;
    double warmup_epochs;     // 0 = off
    int32_t capacity;         // 0 / 1
    double capacity_max_nats;
    double capacity_epochs;
    double capacity_gamma;
    double free_bits;
} KlPlan;

// The per-step part of the learning-rate schedule (the per-epoch part --
// constant, burda, step -- is StepState.lr, written by the host at epoch starts).
typedef struct {
    int32_t warmup_steps;     // lr ramps linearly over the first steps: (step + 1) / warmup_steps (0 = off)
    int32_t cosine;           // 1: cosine decay from the epoch lr to min_lr over total_steps
    int64_t total_steps;      // the run's steps (epochs x steps per epoch)
    double min_lr;
} LrPlan;

// Constants of a training run (passed by value to the step kernels).
typedef struct {
    int64_t steps_per_epoch;
    int32_t batch;            // full batch: a step's rows start at (step % steps_per_epoch) * batch
    int32_t latent_dim;       // epsilon draws per row
    int32_t input_dim;        // binarization draws per row
    double beta1, beta2;      // Adam, for the bias corrections
    KlPlan kl;
    LrPlan lr;
} StepPlan;

// Device-resident per-step values. Zero-filled (plus beta powers 1 and the
// learning rate) before the first step; the host writes only `lr`, at epoch starts.
typedef struct {
    int64_t step;             // optimizer steps completed before this one
    uint64_t eps_offset;      // draw index of this step's first epsilon
    uint64_t uniform_offset;  // draw index of this step's first binarization uniform
    double beta1_power;       // beta1^step, beta2^step (running products)
    double beta2_power;
    float lr;                 // this epoch's learning rate
    // written by step_begin for the ops of this step:
    float lr_now;             // the learning rate of this step (lr after warm-up and cosine decay)
    float adam_step_size;     // lr_now / (1 - beta1^t), t = step + 1
    float adam_sqrt_bc2;      // sqrt(1 - beta2^t)
    int32_t batch_start;      // first row of this step's batch in the epoch permutation
    KlSchedule kl;
} StepState;

// The schedule at a (fractional) epoch position = completed steps / steps per epoch:
// warmup ramps w_kl linearly from 0, capacity ramps C linearly to its maximum.
static inline CUVAE_HOST_DEVICE KlSchedule kl_schedule_at(KlPlan plan, double epoch_position) {
    KlSchedule s;
    double weight = plan.w_kl;
    if (plan.warmup_epochs > 0 && epoch_position < plan.warmup_epochs)
        weight *= epoch_position / plan.warmup_epochs;
    s.weight = (float)weight;
    s.free_bits = (float)plan.free_bits;
    s.capacity = plan.capacity;
    s.capacity_target = 0.0f;
    s.capacity_gamma = 0.0f;
    if (plan.capacity) {
        double ramp = epoch_position / plan.capacity_epochs;
        s.capacity_target = (float)(plan.capacity_max_nats * (ramp < 1.0 ? ramp : 1.0));
        s.capacity_gamma = (float)plan.capacity_gamma;
    }
    return s;
}

static inline CUVAE_HOST_DEVICE void step_state_reset(StepState *s, float lr) {
    s->step = 0;
    s->eps_offset = 0;
    s->uniform_offset = 0;
    s->beta1_power = 1.0;
    s->beta2_power = 1.0;
    s->lr = lr;
    s->lr_now = 0.0f;
    s->adam_step_size = 0.0f;
    s->adam_sqrt_bc2 = 0.0f;
    s->batch_start = 0;
    s->kl.weight = 0.0f;
    s->kl.free_bits = 0.0f;
    s->kl.capacity = 0;
    s->kl.capacity_target = 0.0f;
    s->kl.capacity_gamma = 0.0f;
}

// cos(pi t) for t in [0, 1], from + and * only, each multiply-add an explicit
// fma: the host and the device compute it bit for bit alike (libm's cos and
// CUDA's differ in the last bits). Error below 1e-16.
static inline CUVAE_HOST_DEVICE double schedule_cos_pi(double t) {
    double sign = 1.0;
    if (t > 0.5) {   // cos(pi t) = -cos(pi (1 - t))
        t = 1.0 - t;
        sign = -1.0;
    }
    const double x = 3.141592653589793 * t;   // in [0, pi / 2]
    const double y = x * x;
    // (-1)^k / (2k)!, k = 11 down to 0
    const double coef[12] = {1.0, -0.5, 4.1666666666666664e-02, -1.3888888888888889e-03,
                             2.4801587301587302e-05, -2.7557319223985893e-07, 2.08767569878681e-09,
                             -1.1470745597729725e-11, 4.7794773323873853e-14, -1.5619206968586225e-16,
                             4.1103176233121648e-19, -8.8967913924505741e-22};
    double r = coef[11];
    for (int k = 10; k >= 0; k--) r = fma(r, y, coef[k]);
    return sign * r;
}

// The learning rate of this step: the epoch's lr, decayed along a cosine to
// min_lr over the run, and ramped up linearly over the first warmup steps.
static inline CUVAE_HOST_DEVICE double step_learning_rate(const StepState *s, LrPlan plan) {
    double lr = (double)s->lr;
    if (plan.cosine && plan.total_steps > 0) {
        double t = s->step < plan.total_steps ? (double)s->step / (double)plan.total_steps : 1.0;
        double half_range = (lr - plan.min_lr) * 0.5;
        lr = fma(half_range, 1.0 + schedule_cos_pi(t), plan.min_lr);
    }
    if (plan.warmup_steps > 0 && s->step < plan.warmup_steps)
        lr = lr * ((double)(s->step + 1) / (double)plan.warmup_steps);
    return lr;
}

// Before the ops of a step: the values they read. Adam's bias corrections in
// double, folded into two floats (PyTorch: step_size = lr / bc1, denom =
// sqrt(v) / sqrt(bc2) + eps).
// 1 - beta^t is one fused multiply-add, written out: left to the compilers,
// gcc would contract it and nvcc might not, and the backends would differ.
static inline CUVAE_HOST_DEVICE void step_state_begin(StepState *s, StepPlan plan) {
    double bias_correction1 = fma(-s->beta1_power, plan.beta1, 1.0);   // 1 - beta1^t
    double bias_correction2 = fma(-s->beta2_power, plan.beta2, 1.0);   // 1 - beta2^t
    double lr = step_learning_rate(s, plan.lr);
    s->lr_now = (float)lr;
    s->adam_step_size = (float)(lr / bias_correction1);
    s->adam_sqrt_bc2 = (float)sqrt(bias_correction2);
    s->batch_start = (int32_t)((s->step % plan.steps_per_epoch) * plan.batch);
    s->kl = kl_schedule_at(plan.kl, (double)s->step / (double)plan.steps_per_epoch);
}

// After the ops of a step of `rows` examples: advance the counters.
static inline CUVAE_HOST_DEVICE void step_state_end(StepState *s, StepPlan plan, int32_t rows) {
    s->step += 1;
    s->beta1_power *= plan.beta1;
    s->beta2_power *= plan.beta2;
    s->eps_offset += (uint64_t)rows * (uint64_t)plan.latent_dim;
    s->uniform_offset += (uint64_t)rows * (uint64_t)plan.input_dim;
}

#endif

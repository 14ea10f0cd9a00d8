// model.h: the models (kinds vae, ae, cvae, vq_vae, made, pixelcnn, gan, aae): one Model struct,
// each kind's operations (ModelOps, defined in the kind's own file), one flat parameter arena
// [params | grads | adam m | adam v], forward and backward written once as calls on the backend.
#ifndef CUVAE_MODEL_H
#define CUVAE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "cuvae/config.h"
#include "cuvae/backend.h"
#include "cuvae/network.h"

#define CUVAE_MAX_LAYERS (2 * CUVAE_MAX_HIDDEN + 2)

typedef struct {
    int in, out;             // W is (out, in + cond) row-major like torch.nn.Linear; b is (out)
    int cond;                // CVAE: extra input columns for the one-hot label (0 otherwise);
                             // the layer computes W [x ; onehot] + b as two GEMMs
    Activation act;          // applied after the bias (ACT_NONE for heads and output)
    size_t weight_offset;    // in floats, into the params region of the arena
    size_t bias_offset;
} Layer;

typedef enum {
    EPS_SAMPLE = 0,   // training: draws at the device-resident offset (state->eps_offset),
                      // in the kernels (train.epsilon fused) or into m->eps first (stored)
    EPS_DRAW,         // draws at the host offset m->rng_offset, in the kernels (evaluation)
    EPS_GIVEN,        // use model->eps as it is (parity tests, importance sampling)
    EPS_ZERO,         // z = mu (deterministic decode)
} EpsMode;

// One tensor of a checkpoint, as PyTorch names it: a slice of the parameter (or buffer) region.
#define MODEL_TENSOR_NAME 128
#define MODEL_TENSOR_RANK 4
#define MODEL_MAX_TENSORS (2 * CUVAE_MAX_LAYERS + 2 + 3 * CUVAE_MAX_NET_LAYERS * 4)   // (an aae has three networks)
typedef struct {
    char name[MODEL_TENSOR_NAME];
    bool buffer;        // in the buffer region (running statistics, masks, EMA), not the parameters
    size_t offset;      // floats into params (or buffers)
    int rank;
    int64_t shape[MODEL_TENSOR_RANK];
} ModelTensor;

// What one model kind does, written in its own file (model_latent.c: vae, ae, cvae; model_vq.c,
// model_made.c, model_gan.c, model_aae.c) and registered by its row in model_kind.c. model.c
// holds what every kind shares (the arena, the buffers every kind has, the loss accumulator, the
// optimizer) and calls these. Every kind gives check_networks, build, init, forward, loss,
// gemm_flops, list_tensors, and backward or train_step; a NULL optional hook does what its comment
// says.
typedef struct Model Model;
typedef struct ModelOps {
    // The config's networks built without allocating anything (config_load): 0, or -1 with err
    // naming the layer and the shapes.
    int (*check_networks)(const Config *cfg, char *err, size_t errlen);
    // Builds the kind's networks and layers into m (n_params, n_buffers, head, input_shape): 0, or
    // -1 with err (model_create then frees m->encoder_net and m->decoder_net).
    int (*build)(Model *m, char *err, size_t errlen);
    void (*alloc)(Model *m);     // the kind's own device memory (NULL: none)
    void (*release)(Model *m);   // and its release (NULL: none)
    // The initial parameters and buffers (host copies of the whole regions), drawn from rng in the
    // kind's fixed order.
    void (*init)(Model *m, float *params, float *buffers, Rng *rng);
    size_t (*parameter_count)(const Model *m);   // the trainable parameters (NULL: m->n_params)
    // model_forward / model_loss: from m->x (B rows) to the outputs; their per-example losses.
    void (*forward)(Model *m, int B, EpsMode eps_mode);
    void (*loss)(Model *m, int B);
    // After the output's loss and gradient dY (B, D) (already scaled by w_rec / rows): every
    // parameter gradient; spare is a (B, max width) buffer dY does not use. NULL: the kind trains
    // by train_step alone.
    void (*backward)(Model *m, int B, float *dY, float *spare);
    // One whole training step on m->x, its own phases and optimizers (NULL: forward, backward and
    // one update of the arena, step.c).
    void (*train_step)(Model *m, int B, float w_rec);
    // Outputs (host, n floats) into pixels in [0, 1] in place (NULL: model.output's: the sigmoid of
    // a Bernoulli decoder's logits, a Gaussian's means as they are).
    void (*to_pixels)(const Model *m, float *values, size_t n);
    // n latents to decode into samples (host, (n, latent_dim)), seeded (NULL: z ~ N(0, I)).
    void (*draw_latents)(Model *m, float *z, int n, uint64_t seed);
    // Masks the kind writes into the buffers (NULL: none, or the layers' own): how many sets, and
    // set `set` into the host buffer region.
    int (*mask_sets)(const Model *m);
    void (*write_masks)(const Model *m, int set, float *buffers);
    // A checkpoint's buffers (host) checked beyond the networks' own checks: 0, or -1 with what
    // (NULL: nothing more).
    int (*check_loaded_buffers)(const Model *m, const float *buffers, char *what, size_t whatlen);
    // The GEMM flops of one training step of B rows, as bench counts them (2 B in out for every
    // forward, weight-gradient and input-gradient GEMM, but no input gradient for the data).
    uint64_t (*gemm_flops)(const Model *m, int B);
    // The checkpoint's tensors (out: MODEL_MAX_TENSORS, zeroed), in the file's order; the count.
    int (*list_tensors)(const Model *m, ModelTensor *out);
} ModelOps;

typedef struct Model {
    Config cfg;
    Backend *be;
    const ModelOps *ops;     // the kind's (model_kind_info(cfg.model.kind)->ops)

    // Layers in order: encoder trunk [0, n_trunk), head (index head),
    // decoder [head + 1, n_layers). The head emits [mu | logvar] (2L) for a VAE
    // and mu (L) for an AE. The last decoder layer emits input_dim logits/outputs.
    int n_layers;
    int n_trunk;
    int head;
    Layer layers[CUVAE_MAX_LAYERS];
    // Encoder / decoder given as layer lists (model.encoder / model.decoder of layer
    // objects): networks around the layers above. With encoder_net the trunk is the
    // network (n_trunk = 0) and the head reads its output; with decoder_net the
    // decoder is the network (no layers after the head). NULL: the shorthand MLP.
    Network *encoder_net, *decoder_net;
    TensorShape input_shape;  // one example: (1, side, side) for square images, else (input_dim)
    size_t n_buffers;         // running statistics (batch norm): not trained, saved with the model
    float *buffers;           // (n_buffers) on the device
    bool training_mode;       // batch norm uses batch statistics (set by the training step)
    bool forward_only;        // model_create_forward_only: no backward ever runs
    bool queue_updates;       // the backward queues each decoder layer's optimizer update
                              // (model_backward_and_step)
    // Every gradient in the arena is 0: set at creation (the arena is zero-filled) and by the
    // updates of the whole arena (model_backward_and_step, model_optimizer_step) where the
    // backend's updates clear the gradients they read (be->updates_clear_gradients, the CPU's);
    // cleared by every backward and by model_forget_clear_gradients. While it holds, the next
    // backward's linear weight gradients are GEMMs with beta = 1 onto those zeros
    // (weight_grads_onto_zeros, for that backward): the same values as beta = 0, without
    // OpenBLAS's pass clearing C first.
    bool grads_clear;
    bool weight_grads_onto_zeros;
    // vq_vae (model_vq.c): the vector quantiser between the encoder and the decoder, no
    // heads (n_layers = 0, head = -1). The encoder's output (B, D, S) holds S code vectors of
    // D = model.latent_dim values per example; latent_dim here is their total D S (z = z_q).
    bool vq;
    int vq_dim, vq_size, vq_positions;      // D, K, S
    TensorShape vq_shape;                   // the encoder's output shape (D, H, W) or (D)
    float *codebook;                        // (K, D): in params ("loss" update) or buffers (EMA)
    size_t codebook_offset;                 // floats into params or buffers
    size_t ema_offset;                      // EMA: counts (K) then sums (K, D), into buffers
    float *vq_zt, *vq_zqt, *vq_dzt;         // (D, B S) code vectors as columns
    float *vq_scores;                       // (B S, K) z . e_k
    float *vq_norms;                        // (K) ||e_k||^2
    int32_t *vq_codes;                      // (B S) the chosen codes of the last forward
    // made (model_made.c): no encoder, heads or latent (latent_dim 0); decoder_net is the
    // masked network "net" from the pixels x to their logits.
    bool autoregressive;
    int prior_classes;                       // pixelcnn prior over a VQ-VAE's codes: K (else 0); x holds
                                             // codes / 255 (B, S), the network reads their one-hot
    float *x_onehot;                         // (B, K, S)
    int made_masks;                          // mask sets (model.masks)
    float *made_mask_bank;                   // (made_masks, n_buffers) when made_masks > 1
    float *made_saved_masks;                 // (n_buffers) the masks in use, kept around an ensemble
    // gan (model_gan.c): decoder_net is the generator (z (L) -> image), encoder_net the discriminator
    // (image -> one logit); parameters [generator | discriminator], two optimizer regions.
    bool gan;
    bool gan_tanh;                           // the generator ends in tanh: real images are seen as 2 x - 1
    size_t gan_disc_offset;                  // floats: the discriminator's region (a multiple of 4)
    float *gan_targets;                      // (3, max_batch): real (1 - smoothing, or drawn each step), fake (0),
                                             // generator (1)
    float *gan_real;                         // (B, D) 2 x - 1 (gan_tanh)
    float *gan_minus_one;                    // (B, D) of -1 (gan_tanh)
    float *gan_saved_grads;                  // (discriminator params) the real half of its gradient
    // aae (model_aae.c): the AE above plus a discriminator on z
    bool aae;
    Network *aae_discriminator;              // z (L) -> one logit, parameters from aae_disc_offset
    size_t aae_disc_offset, aae_encoder_params, aae_ae_params, aae_moments_offset;
    float *aae_prior;                        // (B, L) this step's prior draws
    float *aae_g_row;                        // (B) the encoder's regularization loss per example
    int latent_dim;
    int input_dim;
    bool variational;        // model_kind's draws_z: vae / cvae sample z (a KL term), a gan's generator
                             // takes z ~ N(0, I) (its own forward); ae: z = mu, no KL
    int n_classes;           // cvae: size of the one-hot condition, else 0
    RecLoss rec_loss;
    float pixel_weight;      // 1 or 1/D

    size_t n_params;
    size_t arena_stride;     // n_params rounded up to a multiple of 4
    float *arena;            // (4 * arena_stride) on the device; (arena_stride) for a forward-only model
    float *params, *grads, *adam_m, *adam_v;   // views into arena (grads and the moments NULL: forward-only)
    StepState *state;        // (1) on the device: the per-step values (step_state.h)
    StepPlan plan;           // their constants (model_begin_training sets steps_per_epoch)
    bool kl_needs_stats;     // capacity or free bits: kl_statistics runs every step
    EpsSource eps_source;    // where the last forward's epsilon came from (backward reuses it)

    int max_batch;
    float *x;                // (B, D) input batch
    float *acts[CUVAE_MAX_LAYERS];   // acts[i] (B, layers[i].out): output of layer i
    float *z;                // (B, L) latent sample (aliases the head output for an AE)
    float *eps;              // (B, L) stored epsilon, allocated on first use (model_eps_buffer)
    bool binarize;           // dynamic binarization of each training batch
    uint64_t binarize_seed;
    float *grad_a, *grad_b;  // (B, max width) ping-pong buffers for backward
    float *grad_h;           // (B, 2L) gradient of the head output
    float *onehot;           // (B, C) cvae condition, NULL otherwise
    float *kl_coef;          // (L) d(loss)/d(KL_bj) per dimension for this step
    float *kl_dim_sum;       // (L) batch sums of the per-dimension KL
    float *rec_row;          // (B)
    float *kl_row;           // (B)
    double *loss_acc;        // (3) device: sum rec, sum kl, examples
    double *grad_clip_scratch;   // (GRAD_CLIP_SCRATCH) device, when train.grad_clip > 0

    uint64_t rng_seed;       // seed of the epsilon stream
    uint64_t rng_offset;     // draw index base of EPS_DRAW (evaluation)
    // data parallel (distributed.h): set by the training step while it enqueues its ops
    int shard_start;         // rows of the step's global batch before this rank's shard (0: one process)
    int global_rows;         // rows of the whole global batch, the loss's mean is over them (0: B)
    bool data_parallel;      // gradients (and KL statistics) are summed over the ranks every step
    uint32_t carved_test_crc32;   // the test set the run held out of data.train (Dataset.carved_crc32),
                                  // stored in its checkpoints; 0: none carved
    int data_classes;   // a cvae trained on data of fewer classes than its n_classes (dataset "files"):
                        // those classes, stored in its checkpoints (sample draws only them); else 0
} Model;

// One example's shape: model.input_shape (C, H, W) when given, else from
// input_dim: (1, side, side) when it is a square (a grey image), else (input_dim).
TensorShape model_input_shape(const Config *cfg);
// The image an example is, for figures: (channels 1 or 3, rows, cols); false when the
// input is not an image cuvae can draw (a flat vector, or another channel count).
bool model_image_shape(const Model *m, int *channels, int *rows, int *cols);
// Why model_image_shape is false, for a message: "the model's input is 2 x 28 x 28
// (model.input_shape): an image needs 1 (grey) or 3 (RGB) channels", or "... (784 values, no
// model.input_shape) is not an image".
void model_not_image_reason(const Model *m, char *out, size_t n);
// Builds the layer-list encoder / decoder of cfg without allocating anything:
// 0, or -1 with the error naming the layer index and the shapes (config_load calls it).
int model_check_networks(const Config *cfg, char *err, size_t errlen);

// Builds the layer list from cfg, allocates the arena and activations for up to
// max_batch rows. Parameters are zero until model_init_params / checkpoint load.
int model_create(Model *m, const Config *cfg, Backend *be, int max_batch, char *err, size_t errlen);
// The same for a model that only runs forwards (evaluation, sampling, figures): without the
// buffers layers keep from a forward for their backward (NetLayer.kept).
int model_create_forward_only(Model *m, const Config *cfg, Backend *be, int max_batch, char *err,
                              size_t errlen);

// The trainable parameters (an aae's arena also holds its encoder's second Adam moments, a
// gan's some alignment padding: n_params counts those floats too).
size_t model_parameter_count(const Model *m);
// Writes "model.<list>[i] (batch_norm)" and returns true when a layer of the model normalises
// each feature over the batch alone (network_flat_batch_norm): training batches need 2+ examples.
bool model_flat_batch_norm(const Model *m, char *where, size_t wherelen);
// -1 with err "ORIGIN: <that layer> normalises each feature over the batch: a batch of one
// example has no statistics (DETAIL); use 2 or more" (train and bench refuse such a step).
int model_batch_of_one_error(const char *origin, const char *flat_norm, const char *detail, char *err,
                             size_t errlen);
// -1 with err naming the first masked layer (masked_linear / masked_conv2d_*) of model.<key>
// (specs, n): they belong to kinds made and pixelcnn, which write their masks.
int model_refuse_masked_layers(const char *kind, const char *key, const LayerSpec *specs, int n, char *err,
                               size_t errlen);
void model_destroy(Model *m);

// PyTorch-default Linear init: W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), seeded.
void model_init_params(Model *m, uint64_t seed);
// The model's buffer region as a checkpoint gave it (host, n_buffers floats), checked against what
// the model itself would hold: a batch norm's running variance not negative, a mask (a made's --
// any of its mask sets -- or a PixelCNN's) as the config makes it, a VQ codebook's EMA counts not
// negative. 0, or -1 with what ("decoder.2.running_var, element 5 is -1: ...").
int model_check_loaded_buffers(Model *m, const float *buffers, char *what, size_t whatlen);

// The kinds' operations (their rows in model_kind.c name them).
extern const ModelOps model_latent_ops, model_vq_ops, model_made_ops, model_pixelcnn_ops, model_gan_ops,
    model_aae_ops;
// The pieces the kinds build with. The encoder's layer list over the data's shape, ending flat (the
// heads read it), or with code_channels > 0 in that many channels (a VQ-VAE's code vectors); the
// decoder's from latent ((L), or the code grid) to the data's shape: 0, or -1 with err.
int model_build_encoder_network(Network *net, const Config *cfg, int code_channels, char *err, size_t errlen);
int model_build_decoder_network(Network *net, const Config *cfg, TensorShape latent, size_t param_base,
                                size_t buffer_base, char *err, size_t errlen);
// check_networks of the encoder / decoder kinds: no masked layer, both lists build.
int model_check_encoder_decoder(const Config *cfg, int code_channels, char *err, size_t errlen);
// model_latent.c's hooks, for the kinds built on them (aae).
int model_latent_build(Model *m, char *err, size_t errlen);
void model_latent_init(Model *m, float *params, float *buffers, Rng *rng);
void model_latent_forward(Model *m, int B, EpsMode eps_mode);
void model_latent_loss(Model *m, int B);
void model_latent_backward(Model *m, int B, float *dY, float *spare);
// The encoder's share of it (its network, trunk and head).
uint64_t model_latent_encoder_gemm_flops(const Model *m, int B);
// The rows a step's loss is the mean over: the global batch's (data parallel), else B.
int model_mean_rows(const Model *m, int B);
// rec_row: the output's loss per example (the reconstruction, or a prior's categorical -log p).
void model_output_loss(Model *m, int B);
uint64_t model_latent_gemm_flops(const Model *m, int B);
int model_latent_list_tensors(const Model *m, ModelTensor *out);
// A network's tensors with nn.Sequential names "<net>.<index>.<tensor>" (net->name); the count.
int model_list_network_tensors(const Network *net, ModelTensor *out);
// Every tensor of m's checkpoint, named, in the file's order (the kind's list_tensors); the count.
int model_list_tensors(const Model *m, ModelTensor *out);
// Queues the optimizer update of the arena's [offset, offset + n) (its moments at the same offsets)
// on the backend (be->queue_update).
void model_queue_optimizer_update(Model *m, size_t offset, size_t n);

// Forward from m->x (B rows): trunk, head, reparametrize, decoder -> logits in
// model_output(m) (the kind's forward). Computes no loss.
void model_forward(Model *m, int B, EpsMode eps_mode);

// After model_forward: per-example unweighted losses into rec_row / kl_row
// (nats; kl_row is 0 for an AE). Forward only (evaluation).
void model_loss(Model *m, int B);

// After model_forward: the fused loss + gradient pass and the backward of the
// training loss mean_b (w_rec * rec + w_kl * KL). Writes rec_row / kl_row like
// model_loss and fills m->grads. Sets state->kl to a plain weight w_kl first
// (an upload: not for the training loop).
void model_backward(Model *m, int B, float w_rec, float w_kl);
// The same with the KL schedule already in state->kl (step_begin wrote it):
// warmup weight, capacity, free bits. Device ops only.
void model_backward_scheduled(Model *m, int B, float w_rec);
// model_backward_scheduled then model_optimizer_step, with each linear decoder layer's update
// queued (be->queue_update) as soon as its gradient is written, so the CPU backend runs it
// on a thread the encoder's small GEMMs leave idle. The same values bit for bit (the update
// is elementwise). Only where nothing needs the whole gradient before the update: no
// clipping, one rank (step.c).
void model_backward_and_step(Model *m, int B, float w_rec);
// Gradients are written outside model_backward_scheduled (the GAN's and AAE's phases, the
// bench's GEMM replay): the next backward writes every gradient afresh (m->grads_clear false).
void model_forget_clear_gradients(Model *m);
// Sets every gradient to 0, as the updates of the whole arena leave them (m->grads_clear
// where the backend's updates clear them: the bench, after its untimed GEMM replays).
void model_clear_gradients(Model *m);
// Writes a KL schedule into state->kl (an upload).
void model_set_kl_schedule(Model *m, KlSchedule kl);

// The KL plan of a config (loss.*) and its schedule at a (fractional) epoch
// position = completed steps / steps per epoch (kl_schedule_at, step_state.h).
KlPlan model_kl_plan(const Config *cfg);
KlSchedule model_kl_schedule(const Config *cfg, double epoch_position);
// The weighted objective summed over `count` examples whose reconstruction and KL terms sum to
// rec and kl_sum, at the KL schedule of epoch_position: w_rec rec + weight kl_sum, or with
// loss.capacity w_rec rec + gamma |kl_sum / count - C| count (train's log and bench's train_loss).
double model_weighted_loss_sum(const Config *cfg, double w_rec, double rec, double kl_sum, double count,
                               double epoch_position);

// Resets the step state for a run of steps_per_epoch steps an epoch at
// learning rate lr (uploads: call before the loop).
void model_begin_training(Model *m, long steps_per_epoch, float lr);
// The learning rate of the epoch starting now (one 4-byte upload, between steps).
void model_set_learning_rate(Model *m, float lr);
// Copies the step state to the host (a download).
void model_read_step_state(Model *m, StepState *out);

// The stored-epsilon buffer (B, L), allocated the first time it is asked for.
float *model_eps_buffer(Model *m);

// Adds this batch's rec_row / kl_row to m->loss_acc (on the device).
void model_accumulate_loss(Model *m, int B);
// Reads and clears the accumulator: the only host<->device read of a log interval.
void model_read_loss(Model *m, double *rec_sum, double *kl_sum, double *count);
// The device loss accumulator (3 doubles) without resetting it, and back (resume).
void model_peek_loss_accumulator(Model *m, double acc[3]);
void model_set_loss_accumulator(Model *m, const double acc[3]);

// The optimizer step over the arena (train.optimizer: adam, adamw or sgd) with the
// learning rate and bias corrections of state (step_begin).
void model_optimizer_step(Model *m);
// The same over n floats of the arena from offset (a multiple of 4) with the Adam moments (or SGD
// buffer) from moment_offset (a multiple of 4; = offset but for an aae's second encoder optimizer).
void model_optimizer_step_range(Model *m, size_t offset, size_t n, size_t moment_offset);
// What a network's layers run against for B rows (the model's regions, its training mode).
NetRun model_net_run(Model *m, int B);
// train.grad_clip > 0: the gradient's global norm clipped to it (on the device), else nothing.
void model_clip_gradients(Model *m);

// The decoder's output (B, D): logits (bernoulli) or values (gaussian).
float *model_output(Model *m);
// The head output (B, 2L) [mu | logvar] for a VAE, (B, L) for an AE.
float *model_head(Model *m);

// vq_vae (model_vq.c; its ModelOps model_vq_ops).
// The codes of the last forward (B S) to the host.
void model_vq_read_codes(Model *m, int B, int32_t *codes);
// n quantized latents z (n, D S) (host) of codes drawn uniformly and independently per
// position (seeded): a VQ-VAE's samples until a prior over the codes exists.
void model_vq_uniform_latents(Model *m, float *z, int n, uint64_t seed);
// made, pixelcnn (model_made.c; model_made_ops, model_pixelcnn_ops). The network of model.network
// over (input_dim) with its checks (a MADE: masked_linear and activations only, ending in input_dim
// logits; a PixelCNN: masked convolutions); buffers from buffer_base.
int model_made_build(Network *net, const Config *cfg, size_t buffer_base, char *err, size_t errlen);
// degree (D): 1 + the position of each pixel in mask set `set`'s ordering (model.ordering, seeded).
void model_made_input_degrees(const Config *cfg, int set, int32_t *degree);
// Whether a MADE's model.masks sets are all one mask: no hidden layer (an FVSBN) in the natural
// ordering, so the "ensemble" is one model evaluated model.masks times (train says so).
bool model_made_mask_sets_alike(const Model *m);
// The layers' masks = bank set `set` (a device copy; outside the step).
void model_made_use_set(Model *m, int set);
// From m->x (B rows): rec_row = -log p(x) per example, of the ensemble of all mask sets
// (one forward per set; the masks in use are restored), or of the one mask.
void model_made_ensemble_loss(Model *m, int B);
// n binary samples (n, D) (host), drawn pixel by pixel in set 0's ordering (D forward passes);
// for a prior, n code grids (n, S) as code / 255, each code drawn from its softmax. false when a
// logit was not finite (finite weights whose outputs overflow: the draws are not the model's), the
// draw stopped after that position (the positions not drawn stay 0)
bool model_made_sample(Model *m, int n, uint64_t seed, float *pixels);

// Adversarial training (model_gan.c; gan and aae): the targets in m->gan_targets (3, max_batch):
// row ADV_TARGET_REAL = 1 - smoothing, ADV_TARGET_FAKE = 0, ADV_TARGET_ONE = 1.
enum { ADV_TARGET_REAL = 0, ADV_TARGET_FAKE, ADV_TARGET_ONE, ADV_N_TARGETS };
void model_adversarial_targets(Model *m, float smoothing);
// A discriminator's GEMM flops in an adversarial step: two forward + weight-gradient passes without
// an input gradient (its update), one with it (the gradient it passes back to the other player).
uint64_t model_discriminator_gemm_flops(const Network *net, int B);
// A discriminator network on input (B, ...): rows[b] = BCE(logit_b, target) in nats; with
// d_logits (B), its gradient of mean_b rows. Returns the logits.
const float *model_discriminate(Model *m, Network *discriminator, const NetRun *run, const float *input,
                               int target, float *rows, float *d_logits);

// gan (model_gan.c; model_gan_ops). Builds the generator (over z (latent_dim), ending in sigmoid or
// tanh, out to the data's shape) and the discriminator (over the data's shape, out to one logit; its
// parameters from the generator's rounded up to 4 floats): 0, or -1 with err naming the layer.
int model_gan_build(Network *generator, Network *discriminator, const Config *cfg, char *err, size_t errlen);
// The two halves of a step (tests check them against finite differences): the discriminator's
// loss and gradient (rec_row; fakes of z at the step's offset), then the generator's (kl_row).
void model_gan_discriminator_gradient(Model *m, int B);
void model_gan_generator_gradient(Model *m, int B);
// Evaluation on held-out images m->x, after model_forward (which generated the fakes):
// rec_row = the discriminator's BCE on them (target 1), kl_row = its BCE on the fakes (target 0).
void model_gan_loss(Model *m, int B);

// Latents to decode into samples (host, (n, latent_dim)): z ~ N(0, I), or for a VQ-VAE
// uniformly drawn codes (model_vq_uniform_latents).
void model_draw_latents(Model *m, float *z, int n, uint64_t seed);
// Decoder outputs (count floats, on the host) into pixel values in place: a gan's generator range
// mapped to [0, 1], a Bernoulli decoder's logits through the sigmoid; a Gaussian's means as they are.
void model_outputs_to_pixels(Model *m, float *pixels, size_t count);

// A non-variational model's encoder alone (the trunk and head) from m->x into m->z (B, L).
void model_encode(Model *m, int B);
// Its backward from dz in m->grad_h (B, L): the encoder's parameter gradients (head, trunk, network).
void model_encode_backward(Model *m, int B);

// aae (model_aae.c): an AE plus m->aae_discriminator over z (one logit). Its regions:
// [encoder | decoder | discriminator | the encoder's second Adam moments]: reconstruction
// updates [0, aae_encoder_params + decoder), the discriminator its region, the regularization
// phase the encoder with the moments at aae_moments_offset (its own optimizer, as in the paper).
int model_aae_check_discriminator(const Config *cfg, char *err, size_t errlen);
// The two gradients the step applies after the reconstruction (tests): the discriminator's on z
// = m->z against prior draws at the step's offset (kl_row), then the encoder's regularization
// gradient -log D(z) through the discriminator (aae_g_row).
void model_aae_discriminator_gradient(Model *m, int B);
void model_aae_regularization_gradient(Model *m, int B);
// n prior draws (n, L) (host), seeded: N(0, I) or the 2-D mixture.
void model_aae_prior_host(const Model *m, float *z, int n, uint64_t seed);

// Decodes z (B, L) already in m->z through the decoder only.
void model_decode(Model *m, int B);
// Decodes n latent points z (n, L) (host), with labels (n) for a cvae or NULL,
// into pixels (n, D) (host) in the data's range: sigmoid of the logits for a
// Bernoulli decoder, the values for a Gaussian one. Any n (in batches of max_batch).
// Returns whether every output before the sigmoid was finite (a diverged decoder's +-inf would
// read as a plain 1 or 0 after it).
bool model_decode_pixels(Model *m, const float *z, const uint8_t *labels, int n, float *pixels);

// Host <-> device of the parameter region (n_params floats).
void model_get_params(Model *m, float *host);
void model_set_params(Model *m, const float *host);
// Host <-> device of the buffer region (n_buffers floats: running statistics).
void model_get_buffers(Model *m, float *host);
void model_set_buffers(Model *m, const float *host);
// Copies parameters and buffers from one model to another of the same config (device to
// device when both are on one backend, in its stream order).
void model_copy_weights(Model *dst, Model *src);

#endif

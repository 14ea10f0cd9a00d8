// config.h: the validated run configuration (JSON via cJSON), --set overrides,
// and the effective-config dump saved with every run and checkpoint.
#ifndef CUVAE_CONFIG_H
#define CUVAE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "cuvae/model_kind.h"   // ModelKind

#define CUVAE_MAX_HIDDEN 16
#define CUVAE_MAX_GRAPH_LAYERS 64   // layers of an encoder / decoder / network given as layer objects
#define LAYER_MAX_OPTIONS 6
#define LAYER_MAX_ARGS 3
#define MAX_MADE_MASKS 64     // model.masks of a MADE

// ACT_SIGMOID: layer graphs only (model.activation accepts relu, tanh, leaky_relu)
typedef enum { ACT_NONE = 0, ACT_RELU, ACT_TANH, ACT_LEAKY_RELU, ACT_SIGMOID } Activation;
typedef enum { ORDERING_NATURAL = 0, ORDERING_RANDOM } Ordering;
typedef enum { CONDITION_NONE = 0, CONDITION_LABEL } Condition;
typedef enum { OUTPUT_BERNOULLI = 0, OUTPUT_GAUSSIAN } OutputKind;
typedef enum { REC_BCE = 0, REC_MSE } ReconstructionKind;
typedef enum { REDUCTION_SUM = 0, REDUCTION_MEAN } Reduction;
typedef enum { BINARIZE_NONE = 0, BINARIZE_DYNAMIC, BINARIZE_STATIC } Binarize;
typedef enum { DEVICE_AUTO = 0, DEVICE_CPU, DEVICE_CUDA } DeviceChoice;
typedef enum { LR_CONSTANT = 0, LR_BURDA, LR_STEP, LR_COSINE } LrSchedule;
typedef enum { PRECISION_FP32 = 0, PRECISION_TF32, PRECISION_BF16 } Precision;
typedef enum { EPSILON_FUSED = 0, EPSILON_STORED } EpsilonMode;

// One layer object of model.encoder / model.decoder, e.g.
// {"conv2d": 32, "kernel": 4, "stride": 2, "padding": 1}: the kind (its key), the
// kind's value (a number, a list for reshape, nothing for {} / a bare "relu"),
// and its options (sibling keys, or the keys of an object value), defaults filled
// in by the kind's check (network.h) so the effective config says everything.
#define CONFIG_DEFAULT_IW_BATCH 4096   // eval.iw_batch when not given

typedef struct {
    char kind[24];
    int n_args;
    bool args_list;          // the value was written as a list ([64, 7, 7])
    double args[LAYER_MAX_ARGS];
    int n_options;
    char option_keys[LAYER_MAX_OPTIONS][16];
    double option_values[LAYER_MAX_OPTIONS];
} LayerSpec;

// The options of a spec: its value for key, or fallback when absent.
double layer_spec_option(const LayerSpec *spec, const char *key, double fallback);

typedef enum { DATA_FORMAT_AUTO, DATA_FORMAT_PNG, DATA_FORMAT_NPY, DATA_FORMAT_SAFETENSORS,
               DATA_FORMAT_IDX } DataFormat;
typedef enum { DATA_LAYOUT_AUTO, DATA_LAYOUT_NHWC, DATA_LAYOUT_NCHW } DataLayout;

typedef struct {
    char name[128];            // "name"
    char description[512];     // "description" (optional, one line)
    char source[512];          // where it came from: config path, or "CKPT (metadata)"
    char sets[16384];          // the --set overrides applied, one "key=value" a line (for messages;
                               // more than fits is refused; a newline in one, JSON whitespace, a space)

    struct {
        char dataset[32];      // "mnist" | "fashion-mnist" | "files" (your own data, dataset_files.c)
        char dir[512];         // mnist / fashion-mnist: directory holding the four IDX(.gz) files
        // "files": the training images (a PNG folder, .npy, .safetensors or IDX file), the test
        // images ("" = carve test_fraction of the training set, seeded), optional label arrays
        char train[512], test[512], train_labels[512], test_labels[512];
        DataFormat format;     // auto (from the path) | png | npy | safetensors | idx
        DataLayout layout;     // 4-D arrays: auto | nhwc | nchw
        double test_fraction;  // the carved test set when data.test is "" (default 0.1)
        Binarize binarize;     // none | dynamic | static
        int train_limit;       // 0 = all; else first N training examples
        int test_limit;        // 0 = all; else first N test examples
        double validation;     // fraction of the training set held out for validation (0 = none)
    } data;

    struct {
        ModelKind kind;        // vae | ae | cvae | vq_vae | made | pixelcnn | gan | aae
        Condition condition;   // cvae: "label" (one-hot label joined to encoder input and z)
        int n_classes;         // classes of the condition (10 for mnist / fashion-mnist), 0 if none
        int input_dim;
        int input_shape[3];    // model.input_shape (C, H, W); all 0 when not given (square grey from input_dim)
        int n_encoder;                   // number of trunk layers
        int encoder[CUVAE_MAX_HIDDEN];   // trunk widths
        int latent_dim;
        int n_decoder;                   // number of hidden decoder layers
        int decoder[CUVAE_MAX_HIDDEN];   // hidden decoder widths (output layer is implicit)
        Activation activation;           // relu | tanh | leaky_relu (slope 0.01)
        // encoder / decoder given as lists of layer objects (n_layers > 0; the widths
        // above are then unused): the encoder ends in a flat feature vector that the
        // mu / logvar heads read; the decoder maps z to the whole output (the data's shape)
        int n_encoder_layers;
        LayerSpec encoder_layers[CUVAE_MAX_GRAPH_LAYERS];
        int n_decoder_layers;
        LayerSpec decoder_layers[CUVAE_MAX_GRAPH_LAYERS];
        // made / pixelcnn: model.network (made: masked_linear layers and activations, widths
        // expanded; pixelcnn: masked convolutions, 1x1 convolutions, residual connections) is held
        // in decoder_layers (there is no encoder, latent_dim is 0); made's input ordering
        Ordering ordering;               // natural (pixel order) | random (seeded by train.seed)
        char prior_of[512];              // pixelcnn: a VQ-VAE checkpoint whose codes it models ("" = pixels)
        char prior_crc32[16];            //   which VQ-VAE it is (its checkpoint's crc32), checked when given
        int prior_classes;               //   derived from it: K codes, (prior_h, prior_w) positions
        int prior_h, prior_w;
        int masks;                       // mask sets (default 1): > 1 trains each step with the next
                                         // set (connectivity-agnostic) and evaluates their ensemble
        OutputKind output;               // bernoulli (logits) | gaussian (identity)
        struct {                         // vq_vae: model.codebook
            int size;                    // K codes of latent_dim values each
            double beta;                 // commitment weight (default 0.25)
            bool ema;                    // update "ema" (decay, Laplace eps) instead of "loss"
            double decay;                // default 0.99
            double eps;                  // default 1e-5
            double restart_dead;         // EMA: restart codes whose count < this x the mean count (0 = off)
        } codebook;
        // gan (Goodfellow et al. 2014, DCGAN practice of Radford et al. 2015): model.generator (z (latent_dim)
        // -> the data's shape, ending in sigmoid or tanh) is held in decoder_layers, model.discriminator
        // (the data's shape -> one logit) in encoder_layers
        struct {
            double label_smoothing;      // one-sided: real targets 1 - this (default 0); with a range, its min
            double label_smoothing_max;  // a range [min, max]: each real target drawn in [1 - max, 1 - min]
                                         // every step; == label_smoothing for one number
            bool dcgan_init;             // model.init "dcgan" (default): weights N(0, 0.02), batch norm
                                         // weight N(1, 0.02), biases 0; "pytorch": the layers' defaults
        } gan;
        // aae (Makhzani et al. 2015): an AE (encoder, latent_dim, decoder as for kind "ae") and
        // model.discriminator (a layer list from z (latent_dim) to one logit), held in gan_layers
        int n_discriminator_layers;
        LayerSpec discriminator_layers[CUVAE_MAX_GRAPH_LAYERS];
        bool prior_mixture;              // model.prior "gaussian" (default) | "mixture": 10 Gaussians in 2-D
    } model;

    struct {
        ReconstructionKind reconstruction;  // bce | mse
        Reduction reduction;                // sum | mean (over pixels)
        double w_rec;
        double w_kl;               // beta of a beta-VAE
        double kl_warmup_epochs;   // KL weight ramps linearly 0 -> w_kl over these epochs (0 = off)
        bool has_capacity;         // capacity annealing (Burgess et al. 2018):
        double capacity_max_nats;  //   loss = w_rec rec + gamma |KL - C|, C ramps 0 -> max_nats
        double capacity_epochs;    //   over these epochs; replaces w_kl * KL
        double capacity_gamma;
        double free_bits;          // per-dimension KL floor in nats (Kingma et al. 2016), 0 = off
    } loss;

    struct {
        int epochs;
        int batch_size;
        char optimizer[16];    // "adam" | "adamw" | "sgd"
        double weight_decay;   // adam, sgd: L2 on the gradient; adamw: decoupled (default 0)
        double momentum;       // sgd (default 0)
        double grad_clip;      // clip the gradient's global L2 norm to this (default 0 = off)
        double lr;
        double beta1, beta2, adam_eps;   // defaults 0.9, 0.999, 1e-8
        uint64_t seed;
        int log_interval;      // steps between progress reads of the device loss (default 100)
        int early_stopping;    // stop after this many epochs without a better validation loss (0 = off)
        int full_epochs;       // lecture-length epochs used by `make lectures FULL=1` (0 = epochs)
        bool epochs_from_full; // not a key: `train --full` set epochs from full_epochs (messages name it)
        LrSchedule lr_schedule;  // constant | burda (lr * 10^(-i/7) for 3^i epochs, i = 0..7)
                                 // | step (lr * lr_gamma every lr_step_epochs) | cosine (per step, to lr_min)
        int lr_step_epochs;      // step: epochs between decays (default 10)
        double lr_gamma;         // step: the factor (default 0.1)
        double lr_min;           // cosine: the floor (default 0)
        int warmup_steps;        // linear warm-up over the first steps (default 0 = off)
        Precision precision;   // fp32 (default) | tf32 (CUDA GEMMs on TF32 tensor cores);
                               // bf16 is recognised but refused: not implemented yet
        EpsilonMode epsilon;   // fused (default): drawn inside the reparam kernels, regenerated
                               // in backward | stored: drawn into a (B, L) buffer first
        bool cuda_graph;       // capture the training step in a CUDA graph (default true)
        bool epoch_images;     // write DIR/progress/ sample and reconstruction grids every epoch (default true)
        int epoch_images_every;   // ... every this many epochs, and after the last (default 1)
    } train;

    struct {
        int iw_samples;        // K of the importance-weighted -log p(x) after training (0 = off)
        int iw_examples;       // test examples it uses (0 = all)
        int iw_batch;          // rows (examples x samples) per batch (default CONFIG_DEFAULT_IW_BATCH)
        int parzen_samples;    // gan: generator samples of the Parzen-window estimate (default 10000)
        int parzen_examples;   // gan: test examples it scores (0 = all)
    } eval;

    DeviceChoice device;       // "auto" | "cpu" | "cuda"
} Config;

// Loads and validates a config file, applying "key.path=value" overrides
// (values parsed as JSON when they parse, else taken as strings).
// On error writes "<path>: <key.path>: <problem>" and returns -1.
// JSON text as cuvae reads it: UTF-8, and no \u0000 escape (cJSON would cut the string there
// silently). -1 with err naming source and the byte.
int config_check_json_text(const char *json, const char *source, char *err, size_t errlen);

int config_load(Config *cfg, const char *path, const char *const *overrides,
                int n_overrides, char *err, size_t errlen);
// config_load of a config cuvae wrote (a run folder's config.json): complete, so one naming a
// "base" is refused, as a checkpoint's stored config is (config_from_string).
int config_load_stored(Config *cfg, const char *path, const char *const *overrides,
                       int n_overrides, char *err, size_t errlen);

// Same from a JSON string; `source` names it in error messages.
int config_from_string(Config *cfg, const char *json, const char *source,
                       const char *const *overrides, int n_overrides,
                       char *err, size_t errlen);

// What gave a key's value, for a message found after loading (a batch too small for the data,
// say): "--set train.batch_size=1 (over configs/x.json)" when a --set gave that key (or a key
// around or inside it), else cfg->source. Written into buf (n bytes), which is returned.
const char *config_key_origin(const Config *cfg, const char *key, char *buf, size_t n);

// The effective configuration as pretty JSON (malloc'd; caller frees).
// Feeding it back to config_from_string yields an identical Config (but for source and sets).
char *config_to_json(const Config *cfg);

// 0 when a and b are the same run's configs (they may differ in its length: train.epochs,
// train.full_epochs), else -1 with err "<what>: written by a run with another config (stored
// line N: ...)<advice>", the line being a's first that differs.
int config_same_run(const Config *a, const Config *b, const char *what, const char *advice, char *err,
                    size_t errlen);
// The keys that name data files (data.dir, data.train, data.test, data.train_labels,
// data.test_labels, and model.prior_of: a prior's data are its VQ-VAE's codes), where set, replaced
// by one placeholder: for comparisons of two configs made
// where the data read are compared themselves (ranks on machines that keep the same files in
// other folders). The placeholder keeps the lines those keys take in config_to_json.
void config_hide_data_paths(Config *cfg);

const char *activation_name(Activation a);

// The learning rate of an epoch (1-based) under cfg's schedule.
double config_learning_rate(const Config *cfg, int epoch);

#endif

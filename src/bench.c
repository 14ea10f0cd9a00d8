// bench.c: `cuvae bench CONFIG`: times steady-state training steps (the same
// fixed sequence of backend ops as train.c: gather, forward, fused loss +
// backward, loss accumulation, Adam) on a random uint8 dataset already resident
// on the device, or with --gemm-only the GEMMs of a step alone, back to back
// (the practical limit of a step). Prints one JSON line on stdout.
#include "cuvae/bench.h"
#include "cuvae/backend.h"
#include "cuvae/cli_args.h"
#include "cuvae/common.h"
#include "cuvae/config.h"
#include "cuvae/model.h"
#include "cuvae/rng.h"
#include "cuvae/step.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_MAX_OVERRIDES 64
#define BENCH_DEFAULT_STEPS 100
#define BENCH_DEFAULT_WARMUP 10
#define BENCH_MIN_EXAMPLES 1024
#define RNG_STREAM_BENCH_DATA 2000
#define RNG_STREAM_BENCH_PERM 2001

static const char *USAGE_BENCH =
    "usage: cuvae bench CONFIG [--steps N] [--warmup N] [--set key.path=value]... [--gemm-only]\n"
    "\n"
    "Times N steady-state training steps (gather, forward, backward, loss, Adam) after\n"
    "the warmup steps, on random uint8 images (a whole number of batches, at least 4 and at\n"
    "least 1024 examples) already resident on the device: no dataset files are read. The\n"
    "device synchronizes only before and after the timed loop. Prints one JSON line:\n"
    "  {\"config\", \"mode\", \"device\", \"backend\", \"batch\", \"steps\", \"ms_per_step\",\n"
    "   \"samples_per_s\", \"tflops\", \"gemm_flops_per_step\", \"peak_memory_bytes\", \"threads\", ...}\n"
    "tflops counts the GEMM FLOPs of forward + backward (2*B*in*out per GEMM; the first\n"
    "layer computes no input gradient). train_loss: the mean weighted objective of the timed\n"
    "steps (gan: discriminator + generator loss; aae: reconstruction + discriminator); a\n"
    "run whose loss is not finite (diverged) prints no line and exits 2.\n"
    "\n"
    "  --steps N      timed steps (default 100)\n"
    "  --warmup N     untimed steps first (default 10)\n"
    "  --set k=v      override a config key, e.g. --set train.batch_size=1024 --set device=cpu\n"
    "  --gemm-only    run only the GEMMs a training step issues (recorded from one real step),\n"
    "                 back to back: the practical limit of a training step\n";

typedef struct {
    const char *config_path;
    const char *overrides[BENCH_MAX_OVERRIDES];
    int n_overrides;
    long steps;
    long warmup;
    bool gemm_only;
} BenchArgs;

static int bench_fail(const char *message) {
    fprintf(stderr, "cuvae: %s\n", message);
    return 2;
}

static int parse_count(const char *text, long min, long *out) {
    char *end;
    long v = strtol(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || end == text || *end || v < min || v > 100000000L) return -1;
    *out = v;
    return 0;
}

static bool bench_takes_value(const char *option) {
    return strcmp(option, "--steps") == 0 || strcmp(option, "--warmup") == 0 || strcmp(option, "--set") == 0;
}

static int parse_bench_args(int argc, char **argv, BenchArgs *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->steps = BENCH_DEFAULT_STEPS;
    a->warmup = BENCH_DEFAULT_WARMUP;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        if (option_given_once(argc, argv, i, bench_takes_value, "bench", err, errlen) != 0) return -1;
        if (strcmp(arg, "--steps") == 0) {
            if (!has_value || parse_count(argv[++i], 1, &a->steps) != 0)
                return set_error(err, errlen, "bench: --steps: expected an integer >= 1, got \"%s\"",
                                 has_value ? argv[i] : "");
        } else if (strcmp(arg, "--warmup") == 0) {
            if (!has_value || parse_count(argv[++i], 0, &a->warmup) != 0)
                return set_error(err, errlen, "bench: --warmup: expected an integer >= 0, got \"%s\"",
                                 has_value ? argv[i] : "");
        } else if (strcmp(arg, "--set") == 0) {
            if (!has_value) return set_error(err, errlen, "bench: --set needs key.path=value");
            if (a->n_overrides == BENCH_MAX_OVERRIDES) return set_error(err, errlen, "bench: too many --set");
            a->overrides[a->n_overrides++] = argv[++i];
        } else if (strcmp(arg, "--gemm-only") == 0) {
            a->gemm_only = true;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return set_error(err, errlen, "bench: unknown option %s (see cuvae bench --help)", arg);
        } else if (!a->config_path) {
            a->config_path = arg;
        } else {
            return set_error(err, errlen, "bench: unexpected argument %s", arg);
        }
    }
    if (!a->config_path) return set_error(err, errlen, "bench: missing CONFIG (see cuvae bench --help)");
    return 0;
}

// The shorthand layers [first, last] of m: forward, dW and dX (none for the data, layer 0 without
// an encoder network) and a CVAE layer's one-hot columns (one more forward and dW GEMM).
static uint64_t layers_gemm_flops(const Model *m, int B, int first, int last) {
    uint64_t flops = 0;
    for (int i = first; i <= last; i++) {
        const Layer *layer = &m->layers[i];
        uint64_t one = 2ull * (uint64_t)B * (uint64_t)layer->in * (uint64_t)layer->out;
        flops += one;             // forward: Y = X W^T
        flops += one;             // backward: dW = dY^T X
        if (i > 0 || m->encoder_net) flops += one;  // backward: dX = dY W (none for the data)
        flops += 2ull * 2ull * (uint64_t)B * (uint64_t)layer->cond * (uint64_t)layer->out;
    }
    return flops;
}

// A discriminator's share of an adversarial step: two forward + weight-gradient passes without
// an input gradient (its update), one with it (the gradient it passes back to the other player).
static uint64_t discriminator_gemm_flops(const Network *net, int B) {
    return 2 * network_gemm_flops(net, B, true) + network_gemm_flops(net, B, false);
}

uint64_t bench_gemm_flops_per_step(const Model *m, int B) {
    if (m->gan)   // the generator from z (no dz), the discriminator three times
        return network_gemm_flops(m->decoder_net, B, true) + discriminator_gemm_flops(m->encoder_net, B);
    // the encoder (network, trunk and head) and the decoder (into z; a made's network from the data)
    uint64_t encoder = m->encoder_net && !m->autoregressive ? network_gemm_flops(m->encoder_net, B, true) : 0;
    if (m->head >= 0) encoder += layers_gemm_flops(m, B, 0, m->head);
    uint64_t decoder = m->decoder_net ? network_gemm_flops(m->decoder_net, B, m->autoregressive)
                                      : layers_gemm_flops(m, B, m->head + 1, m->n_layers - 1);
    uint64_t flops = encoder + decoder;
    if (m->vq)   // the nearest-code search: scores (B S, K) = z_e (B S, D) . codebook^T
        flops += 2ull * (uint64_t)B * (uint64_t)m->vq_positions * (uint64_t)m->vq_size * (uint64_t)m->vq_dim;
    if (m->aae)   // the encoder again (phase 2's forward, phase 3's backward), the discriminator on z
        flops += encoder + discriminator_gemm_flops(m->aae_discriminator, B);
    return flops;
}

// --gemm-only: the GEMMs one real training step issues (any model: MLP, layer graph, GAN, ...),
// recorded by a wrapper around be->gemm, then replayed back to back with the same shapes,
// transposes and buffers. The replay leaves out what runs between them, so its values drift
// from a real step's (no bias, activation or loss); the timing does not depend on them
// (subnormals are flushed on the CPU).
typedef struct {
    bool trans_a, trans_b;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} GemmCall;

static struct {
    GemmCall *calls;
    int count, capacity;
    void (*gemm)(Backend *, bool, bool, int, int, int, float, const float *, int, const float *, int, float,
                 float *, int);
} recorded;

static void recording_gemm(Backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (recorded.count == recorded.capacity) {
        int capacity = recorded.capacity ? 2 * recorded.capacity : 64;
        GemmCall *calls = xmalloc((size_t)capacity * sizeof(GemmCall));
        if (recorded.count) memcpy(calls, recorded.calls, (size_t)recorded.count * sizeof(GemmCall));
        free(recorded.calls);
        recorded.calls = calls;
        recorded.capacity = capacity;
    }
    recorded.calls[recorded.count++] = (GemmCall){trans_a, trans_b, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
    recorded.gemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Runs one training step with be->gemm recording its calls.
static void record_step_gemms(TrainStep *loop, Backend *be, int B) {
    recorded.gemm = be->gemm;
    be->gemm = recording_gemm;
    train_step_run(loop, B);
    be->gemm = recorded.gemm;
}

static void replay_step_gemms(Backend *be) {
    for (int i = 0; i < recorded.count; i++) {
        const GemmCall *c = &recorded.calls[i];
        be->gemm(be, c->trans_a, c->trans_b, c->M, c->N, c->K, c->alpha, c->A, c->lda, c->B, c->ldb, c->beta,
                 c->C, c->ldc);
    }
}

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

// The result line (JSON) of a run that stayed finite.
static void print_result(const BenchArgs *a, const Config *cfg, Backend *be, Model *model, int B, int n,
                         double seconds, double loss, int gemm_calls, uint64_t replayed_flops) {
    const uint64_t flops = bench_gemm_flops_per_step(model, B);
    const double ms_per_step = 1000.0 * seconds / (double)a->steps;
    const double samples_per_s = (double)B * (double)a->steps / seconds;
    const double tflops = (double)flops * (double)a->steps / seconds / 1e12;
    const bool is_cpu = strcmp(be->name, "cpu") == 0;

    printf("{\"config\": ");
    print_json_string(cfg->name);
    const bool graphs = strcmp(be->name, "cuda") == 0 && cfg->train.cuda_graph;
    printf(", \"mode\": \"%s\", \"device\": ",
           a->gemm_only ? "gemm-only" : (strcmp(be->name, "cuda") == 0 && !graphs ? "train-eager" : "train"));
    print_json_string(be->device_name);
    printf(", \"backend\": \"%s\", \"framework\": \"cuvae\", \"precision\": \"%s\", "
           "\"epsilon\": \"%s\", \"cuda_graph\": %s, "
           "\"batch\": %d, \"steps\": %ld, \"warmup\": %ld, \"ms_per_step\": %.6f, "
           "\"samples_per_s\": %.2f, \"tflops\": %.6f, \"gemm_flops_per_step\": %llu, "
           "\"peak_memory_bytes\": %zu, ",
           be->name, is_cpu ? "fp32" : (cfg->train.precision == PRECISION_TF32 ? "tf32" : "fp32"),
           cfg->train.epsilon == EPSILON_FUSED ? "fused" : "stored",
           graphs ? "true" : "false", B, a->steps, a->warmup, ms_per_step, samples_per_s, tflops,
           (unsigned long long)flops, be->peak_memory(be));
    if (is_cpu) {
        // the OpenBLAS kernel family matters: an unknown CPU falls back to a slow generic one
        printf("\"threads\": %d, \"blas_core\": ", backend_cpu_threads());
        print_json_string(openblas_get_corename());
        printf(", ");
    } else {
        printf("\"threads\": null, \"blas_core\": null, ");
    }
    if (a->gemm_only)   // what the replay ran: the calls one step issues and their FLOPs
        printf("\"train_loss\": null, \"gemm_calls_per_step\": %d, \"gemm_flops_replayed\": %llu, ", gemm_calls,
               (unsigned long long)replayed_flops);
    else printf("\"train_loss\": %.4f, ", loss);
    printf("\"dataset_examples\": %d, \"n_params\": %zu}\n", n, model->n_params);
    fflush(stdout);
}

int bench_command(int argc, char **argv) {
    char err[1024];
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE_BENCH, stdout);
            return 0;
        }
    BenchArgs a;
    if (parse_bench_args(argc, argv, &a, err, sizeof err) != 0) return bench_fail(err);
    Config cfg;
    if (config_load(&cfg, a.config_path, a.overrides, a.n_overrides, err, sizeof err) != 0)
        return bench_fail(err);
    Backend *be = backend_create(cfg.device, err, sizeof err);
    if (!be) return bench_fail(err);
    backend_configure_from(be, &cfg);

    const int B = cfg.train.batch_size;
    Model model;
    if (model_create(&model, &cfg, be, B, err, sizeof err) != 0) {
        be->destroy(be);
        return bench_fail(err);
    }
    model_init_params(&model, cfg.train.seed);

    // a random resident dataset: a whole number of batches, at least 4 and at least 1024 examples
    const int D = model.input_dim;
    long passes = (BENCH_MIN_EXAMPLES + B - 1) / B;
    if (passes < 4) passes = 4;
    const int n = (int)(passes * B);
    const int n_classes = model.n_classes > 0 ? model.n_classes : 10;
    uint8_t *host_data = xmalloc((size_t)n * D);
    uint8_t *host_labels = xmalloc((size_t)n);
    int32_t *host_perm = xmalloc((size_t)n * sizeof(int32_t));
    Rng rng;
    rng_init(&rng, cfg.train.seed, RNG_STREAM_BENCH_DATA);
    for (size_t k = 0; k < (size_t)n * D; k++) host_data[k] = (uint8_t)(rng_u32(&rng) & 0xff);
    if (model.prior_classes)   // a prior over codes: its data are codes < K
        for (size_t k = 0; k < (size_t)n * D; k++) host_data[k] = (uint8_t)(host_data[k] % model.prior_classes);
    for (int k = 0; k < n; k++) host_labels[k] = (uint8_t)(rng_u32(&rng) % (uint32_t)n_classes);
    rng_init(&rng, cfg.train.seed, RNG_STREAM_BENCH_PERM);
    rng_permutation(&rng, host_perm, n);
    uint8_t *data = be->alloc(be, (size_t)n * D);
    uint8_t *labels = be->alloc(be, (size_t)n);
    int32_t *perm = be->alloc(be, (size_t)n * sizeof(int32_t));
    be->upload(be, data, host_data, (size_t)n * D);
    be->upload(be, labels, host_labels, (size_t)n);
    be->upload(be, perm, host_perm, (size_t)n * sizeof(int32_t));
    free(host_data);
    free(host_labels);
    free(host_perm);

    // the dataset is n / B batches: the step state wraps around it like epochs
    model_begin_training(&model, n / B, (float)config_learning_rate(&cfg, 1));
    TrainStep loop = {.model = &model, .images = data, .labels = labels, .perm = perm,
                      .w_rec = (float)cfg.loss.w_rec};

    double seconds;
    double loss = 0.0;
    int gemm_calls = 0;
    uint64_t replayed_flops = 0;
    if (a.gemm_only) {
        record_step_gemms(&loop, be, B);
        for (long s = 0; s < a.warmup; s++) replay_step_gemms(be);
        be->synchronize(be);
        double t0 = wall_seconds();
        for (long s = 0; s < a.steps; s++) replay_step_gemms(be);
        be->synchronize(be);
        seconds = wall_seconds() - t0;
        gemm_calls = recorded.count;
        for (int i = 0; i < recorded.count; i++)
            replayed_flops += 2ull * (uint64_t)recorded.calls[i].M * (uint64_t)recorded.calls[i].N *
                              (uint64_t)recorded.calls[i].K;
        free(recorded.calls);
        memset(&recorded, 0, sizeof recorded);
    } else {
        for (long s = 0; s < a.warmup; s++) train_step_run(&loop, B);
        double rec, kl, count;
        model_read_loss(&model, &rec, &kl, &count);   // clears the accumulator; synchronizes
        be->synchronize(be);
        double t0 = wall_seconds();
        for (long s = 0; s < a.steps; s++) train_step_run(&loop, B);
        be->synchronize(be);
        seconds = wall_seconds() - t0;
        model_read_loss(&model, &rec, &kl, &count);
        loss = count > 0 ? (cfg.loss.w_rec * rec + cfg.loss.w_kl * kl) / count : 0.0;
    }

    int rc = 0;
    if (isfinite(loss)) {
        print_result(&a, &cfg, be, &model, B, n, seconds, loss, gemm_calls, replayed_flops);
    } else {   // a diverged run's timing means nothing, and nan is not JSON
        fprintf(stderr, "cuvae: bench %s: training diverged in the timed steps (the loss is not finite); try a lower "
                "train.lr\n", cfg.name);
        rc = CUVAE_EXIT_BAD_INPUT;
    }

    train_step_release(&loop);
    be->free(be, data);
    be->free(be, labels);
    be->free(be, perm);
    model_destroy(&model);
    be->destroy(be);
    return rc;
}

// bench.c: `cuvae bench CONFIG`: times steady-state training steps (the same
// fixed sequence of backend ops as train.c: gather, forward, fused loss +
// backward, loss accumulation, Adam) on a random uint8 dataset already resident
// on the device, or with --gemm-only the GEMMs of a step alone, back to back
// (the practical limit of a step), or with --paired both in one process, alternating
// blocks, for their ratio on a machine whose speed drifts. Prints one JSON line on stdout.
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
#define PAIRED_BLOCK_SECONDS 0.02   // --paired: a block of training steps about this long (one probe step)
#define PAIRED_MIN_PAIRS 4

static const char *USAGE_BENCH =
    "usage: cuvae bench CONFIG [--steps N] [--warmup N] [--set key.path=value]... [--gemm-only | --paired]\n"
    "\n"
    "Times N steady-state training steps (gather, forward, backward, loss, Adam) after\n"
    "the warmup steps, on random uint8 images (a whole number of batches, at least 4 and at\n"
    "least 1024 examples) already resident on the device: no dataset files are read. The\n"
    "device synchronizes only before and after the timed loop. Prints one JSON line:\n"
    "  {\"config\", \"mode\", \"device\", \"backend\", \"batch\", \"steps\", \"ms_per_step\",\n"
    "   \"samples_per_s\", \"tflops\", \"gemm_flops_per_step\", \"peak_memory_bytes\", \"threads\", ...}\n"
    "tflops counts the GEMM FLOPs of forward + backward (2*B*in*out per GEMM; the first\n"
    "layer computes no input gradient). train_loss: the mean weighted objective of the timed\n"
    "steps, its KL at the schedule of the last one (warm-up weight, capacity), as train logs\n"
    "an interval (with loss.free_bits the KL without its floor, as train's objective says;\n"
    "gan: discriminator + generator loss; aae: reconstruction + discriminator);\n"
    "a run whose loss is not finite (diverged) prints no line and exits 2.\n"
    "\n"
    "  --steps N      timed steps (default 100)\n"
    "  --warmup N     untimed steps first (default 10)\n"
    "  --set k=v      override a config key, e.g. --set train.batch_size=1024 --set device=cpu\n"
    "  --gemm-only    run only the GEMMs a training step issues (recorded from one real step),\n"
    "                 back to back: the practical limit of a training step (on the CPU with\n"
    "                 oneDNN, a conv layer's whole oneDNN convolutions stand for its GEMMs;\n"
    "                 CUVAE_CPU_CONV=im2col runs them as im2col + GEMM instead)\n"
    "  --paired       both in one process: blocks of training steps and blocks of their GEMMs\n"
    "                 alone, alternating (train first in even pairs, GEMMs first in odd ones),\n"
    "                 a block as many steps as one probe training step says fill 20 ms (fewer\n"
    "                 where N needs them for 4 pairs, N >= 4; a GEMM block, as many replays, is\n"
    "                 shorter);\n"
    "                 2 more untimed training steps (the recorded one, the probe) and N warmup\n"
    "                 replays come before the pairs; adds\n"
    "                 \"gemm_ms_per_step\", \"pairs\", \"block_steps\" and \"step_over_gemm\" (the\n"
    "                 median of the pairs' ratios) with its quartiles. A host that slows the\n"
    "                 machine for a while slows both halves of a pair: the ratio stays steady\n"
    "                 where two separate runs would differ. \"steps\" is the timed training steps,\n"
    "                 N rounded down to whole blocks\n";

typedef struct {
    const char *config_path;
    const char *overrides[BENCH_MAX_OVERRIDES];
    int n_overrides;
    long steps;
    long warmup;
    bool gemm_only;
    bool paired;
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
        if (strcmp(arg, "--") == 0) {   // the end of the options: what follows is CONFIG
            if (i + 2 < argc || (i + 1 < argc && a->config_path))
                return set_error(err, errlen, "bench: unexpected argument %s", argv[i + 2 < argc ? i + 2 : i + 1]);
            if (i + 1 < argc) a->config_path = argv[i + 1];
            break;
        }
        if (option_given_once(argc, argv, i, bench_takes_value, "bench", err, errlen) != 0) return -1;
        if ((strcmp(arg, "--steps") == 0 || strcmp(arg, "--warmup") == 0) && !has_value)
            return set_error(err, errlen, "bench: %s needs a number (%s N)", arg, arg);
        if (strcmp(arg, "--steps") == 0) {
            if (!has_value || parse_count(argv[++i], 1, &a->steps) != 0)
                return set_error(err, errlen, "bench: --steps: expected an integer from 1 to 100000000, got \"%s\"",
                                 has_value ? argv[i] : "");
        } else if (strcmp(arg, "--warmup") == 0) {
            if (!has_value || parse_count(argv[++i], 0, &a->warmup) != 0)
                return set_error(err, errlen, "bench: --warmup: expected an integer from 0 to 100000000, got \"%s\"",
                                 has_value ? argv[i] : "");
        } else if (strcmp(arg, "--set") == 0) {
            if (!has_value) return set_error(err, errlen, "bench: --set needs key.path=value");
            if (strncmp(argv[i + 1], "--", 2) == 0)   // (no key starts with "-": an option where key=value goes)
                return set_error(err, errlen, "bench: --set needs key.path=value, got the option %s", argv[i + 1]);
            if (a->n_overrides == BENCH_MAX_OVERRIDES) return set_error(err, errlen, "bench: too many --set");
            a->overrides[a->n_overrides++] = argv[++i];
        } else if (strcmp(arg, "--gemm-only") == 0) {
            a->gemm_only = true;
        } else if (strcmp(arg, "--paired") == 0) {
            a->paired = true;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return set_error(err, errlen, "bench: unknown option %s (see cuvae bench --help)", arg);
        } else if (!a->config_path) {
            a->config_path = arg;
        } else {
            return set_error(err, errlen, "bench: unexpected argument %s", arg);
        }
    }
    if (!a->config_path) return set_error(err, errlen, "bench: missing CONFIG (see cuvae bench --help)");
    if (a->gemm_only && a->paired)
        return set_error(err, errlen, "bench: --gemm-only and --paired exclude each other (--paired runs both)");
    if (a->paired && a->steps < PAIRED_MIN_PAIRS)   // (quartiles of fewer ratios say nothing)
        return set_error(err, errlen, "bench: --paired needs --steps %d or more (%d pairs of one step a block at "
                         "least), got %ld", PAIRED_MIN_PAIRS, PAIRED_MIN_PAIRS, (long)a->steps);
    return 0;
}

uint64_t bench_gemm_flops_per_step(const Model *m, int B) { return m->ops->gemm_flops(m, B); }

// --gemm-only: the GEMMs one real training step issues (any model: MLP, layer graph, GAN, ...),
// recorded by a wrapper around be->gemm, then replayed back to back with the same shapes,
// transposes and buffers; with them the whole convolutions a backend runs from a library (the
// CPU's oneDNN: Backend.conv_forward ...), which stand for a conv layer's GEMMs. The replay
// leaves out what runs between them, so its values drift from a real step's (no bias,
// activation or loss); the timing does not depend on them (subnormals are flushed on the CPU).
typedef enum { CALL_GEMM, CALL_CONV_FORWARD, CALL_CONV_BACKWARD_DATA, CALL_CONV_BACKWARD_WEIGHTS } CallKind;

typedef struct {
    CallKind kind;
    bool trans_a, trans_b;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
    // a convolution: A, B its inputs, C (and C2: a bias or its gradient, or NULL) its outputs
    ConvGeometry g;
    int C_out, images;
    float *C2;
} LibraryCall;

static struct {
    LibraryCall *calls;
    int count, capacity, convs;
    void (*gemm)(Backend *, bool, bool, int, int, int, float, const float *, int, const float *, int, float,
                 float *, int);
    void (*conv_forward)(Backend *, float *, const float *, const float *, const float *, ConvGeometry, int, int);
    void (*conv_backward_data)(Backend *, float *, const float *, const float *, ConvGeometry, int, int);
    void (*conv_backward_weights)(Backend *, float *, float *, const float *, const float *, ConvGeometry, int,
                                  int);
} recorded;

static void record_call(LibraryCall call) {
    if (recorded.count == recorded.capacity) {
        int capacity = recorded.capacity ? 2 * recorded.capacity : 64;
        LibraryCall *calls = xmalloc((size_t)capacity * sizeof(LibraryCall));
        if (recorded.count) memcpy(calls, recorded.calls, (size_t)recorded.count * sizeof(LibraryCall));
        free(recorded.calls);
        recorded.calls = calls;
        recorded.capacity = capacity;
    }
    recorded.calls[recorded.count++] = call;
    if (call.kind != CALL_GEMM) recorded.convs++;
}

static void recording_gemm(Backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    record_call((LibraryCall){.kind = CALL_GEMM, .trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K,
                              .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta, .A = A, .B = B,
                              .C = C});
    recorded.gemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void recording_conv_forward(Backend *be, float *y, const float *x, const float *W, const float *bias,
                                   ConvGeometry g, int C_out, int B) {
    record_call((LibraryCall){.kind = CALL_CONV_FORWARD, .A = x, .B = W, .C = y, .C2 = (float *)bias, .g = g,
                              .C_out = C_out, .images = B});
    recorded.conv_forward(be, y, x, W, bias, g, C_out, B);
}

static void recording_conv_backward_data(Backend *be, float *dx, const float *dy, const float *W, ConvGeometry g,
                                         int C_out, int B) {
    record_call((LibraryCall){.kind = CALL_CONV_BACKWARD_DATA, .A = dy, .B = W, .C = dx, .g = g, .C_out = C_out,
                              .images = B});
    recorded.conv_backward_data(be, dx, dy, W, g, C_out, B);
}

static void recording_conv_backward_weights(Backend *be, float *dW, float *dbias, const float *x, const float *dy,
                                            ConvGeometry g, int C_out, int B) {
    record_call((LibraryCall){.kind = CALL_CONV_BACKWARD_WEIGHTS, .A = x, .B = dy, .C = dW, .C2 = dbias, .g = g,
                              .C_out = C_out, .images = B});
    recorded.conv_backward_weights(be, dW, dbias, x, dy, g, C_out, B);
}

// Runs one training step with be->gemm (and the library convolutions) recording their calls.
static void record_step_gemms(TrainStep *loop, Backend *be, int B) {
    recorded.gemm = be->gemm;
    recorded.conv_forward = be->conv_forward;
    recorded.conv_backward_data = be->conv_backward_data;
    recorded.conv_backward_weights = be->conv_backward_weights;
    be->gemm = recording_gemm;
    if (be->conv_forward) {
        be->conv_forward = recording_conv_forward;
        be->conv_backward_data = recording_conv_backward_data;
        be->conv_backward_weights = recording_conv_backward_weights;
    }
    train_step_run(loop, B);
    be->gemm = recorded.gemm;
    be->conv_forward = recorded.conv_forward;
    be->conv_backward_data = recorded.conv_backward_data;
    be->conv_backward_weights = recorded.conv_backward_weights;
}

// (The replayed weight-gradient GEMMs, beta 1 where the step's accumulate onto cleared
// gradients, leave sums in the model's gradients: the next step writes them afresh.)
static void replay_step_gemms(Model *model, Backend *be) {
    model_forget_clear_gradients(model);
    for (int i = 0; i < recorded.count; i++) {
        const LibraryCall *c = &recorded.calls[i];
        switch (c->kind) {
        case CALL_GEMM:
            be->gemm(be, c->trans_a, c->trans_b, c->M, c->N, c->K, c->alpha, c->A, c->lda, c->B, c->ldb, c->beta,
                     c->C, c->ldc);
            break;
        case CALL_CONV_FORWARD: be->conv_forward(be, c->C, c->A, c->B, c->C2, c->g, c->C_out, c->images); break;
        case CALL_CONV_BACKWARD_DATA: be->conv_backward_data(be, c->C, c->A, c->B, c->g, c->C_out, c->images); break;
        case CALL_CONV_BACKWARD_WEIGHTS:
            be->conv_backward_weights(be, c->C, c->C2, c->A, c->B, c->g, c->C_out, c->images);
            break;
        }
    }
}

// FLOPs of the recorded calls (one step's GEMMs; a convolution counts as the GEMM it stands for)
static uint64_t recorded_flops(void) {
    uint64_t flops = 0;
    for (int i = 0; i < recorded.count; i++) {
        const LibraryCall *c = &recorded.calls[i];
        if (c->kind == CALL_GEMM) flops += 2ull * (uint64_t)c->M * (uint64_t)c->N * (uint64_t)c->K;
        else
            flops += 2ull * (uint64_t)c->images * (uint64_t)c->C_out * (uint64_t)c->g.C * (uint64_t)c->g.kernel *
                     (uint64_t)c->g.kernel * (uint64_t)c->g.OH * (uint64_t)c->g.OW;
    }
    return flops;
}

static void forget_recorded(void) {
    free(recorded.calls);
    memset(&recorded, 0, sizeof recorded);
}

// Seconds of `steps` training steps, or of `steps` replays of their GEMMs, synchronized
// before and after.
static double timed_block(TrainStep *loop, Backend *be, int B, long steps, bool gemms_alone) {
    be->synchronize(be);
    const double t0 = wall_seconds();
    for (long s = 0; s < steps; s++) {
        if (gemms_alone) replay_step_gemms(loop->model, be);
        else train_step_run(loop, B);
    }
    be->synchronize(be);
    const double seconds = wall_seconds() - t0;
    // untimed: the gradients the replays left, cleared as a step's updates leave them, so that
    // the training block after this one starts from a steady step (--paired)
    if (gemms_alone) model_clear_gradients(loop->model);
    return seconds;
}

// --paired: alternating blocks of training steps and of their GEMMs alone.
typedef struct {
    long block_steps;                   // steps (or replays) a block
    int pairs;
    double train_seconds, gemm_seconds;  // totals over the pairs
    double ratio_q1, ratio_median, ratio_q3;   // of train / GEMMs, pair by pair
} PairedTiming;

// Block length from the time of one (untimed) training step: as many steps as fill
// PAIRED_BLOCK_SECONDS at that time, and few enough for PAIRED_MIN_PAIRS pairs where `steps`
// allows.
static long paired_block_steps(TrainStep *loop, Backend *be, int B, long steps) {
    const double one = timed_block(loop, be, B, 1, false);
    long block = one > 0 ? (long)ceil(PAIRED_BLOCK_SECONDS / one) : 1;
    if (block > steps / PAIRED_MIN_PAIRS) block = steps / PAIRED_MIN_PAIRS;
    return block < 1 ? 1 : block;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// q-quantile of n sorted values (linear between neighbours)
static double sorted_quantile(const double *v, int n, double q) {
    const double position = q * (double)(n - 1);
    const int i = (int)position;
    return i + 1 < n ? v[i] + (position - (double)i) * (v[i + 1] - v[i]) : v[i];
}

// steps / block pairs: even pairs run the training block first, odd pairs the GEMMs first
// (neither half always gets the caches the other left).
static PairedTiming run_pairs(TrainStep *loop, Backend *be, int B, long steps, long block) {
    PairedTiming p;
    memset(&p, 0, sizeof p);
    p.block_steps = block;
    p.pairs = (int)(steps / block);
    double *ratios = xmalloc((size_t)p.pairs * sizeof(double));
    for (int k = 0; k < p.pairs; k++) {
        const bool gemms_first = k % 2 == 1;
        const double first = timed_block(loop, be, B, block, gemms_first);
        const double second = timed_block(loop, be, B, block, !gemms_first);
        const double train = gemms_first ? second : first, gemms = gemms_first ? first : second;
        p.train_seconds += train;
        p.gemm_seconds += gemms;
        ratios[k] = train / gemms;
    }
    qsort(ratios, (size_t)p.pairs, sizeof(double), compare_doubles);
    p.ratio_q1 = sorted_quantile(ratios, p.pairs, 0.25);
    p.ratio_median = sorted_quantile(ratios, p.pairs, 0.5);
    p.ratio_q3 = sorted_quantile(ratios, p.pairs, 0.75);
    free(ratios);
    return p;
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
// paired: NULL unless --paired (then seconds is its training blocks' total).
static void print_result(const BenchArgs *a, const Config *cfg, Backend *be, Model *model, int B, int n,
                         long steps, double seconds, double loss, int gemm_calls, int conv_calls, uint64_t replayed_flops,
                         const PairedTiming *paired) {
    const uint64_t flops = bench_gemm_flops_per_step(model, B);
    const double ms_per_step = 1000.0 * seconds / (double)steps;
    const double samples_per_s = (double)B * (double)steps / seconds;
    const double tflops = (double)flops * (double)steps / seconds / 1e12;
    const bool is_cpu = strcmp(be->name, "cpu") == 0;

    printf("{\"config\": ");
    print_json_string(cfg->name);
    const bool graphs = strcmp(be->name, "cuda") == 0 && cfg->train.cuda_graph;
    printf(", \"mode\": \"%s\", \"device\": ",
           a->gemm_only ? "gemm-only"
           : paired     ? (strcmp(be->name, "cuda") == 0 && !graphs ? "paired-eager" : "paired")
                        : (strcmp(be->name, "cuda") == 0 && !graphs ? "train-eager" : "train"));
    print_json_string(be->device_name);
    printf(", \"backend\": \"%s\", \"framework\": \"cuvae\", \"precision\": \"%s\", "
           "\"epsilon\": \"%s\", \"cuda_graph\": %s, "
           "\"batch\": %d, \"steps\": %ld, \"warmup\": %ld, \"ms_per_step\": %.6f, "
           "\"samples_per_s\": %.2f, \"tflops\": %.6f, \"gemm_flops_per_step\": %llu, "
           "\"peak_memory_bytes\": %zu, ",
           be->name, is_cpu ? "fp32" : (cfg->train.precision == PRECISION_TF32 ? "tf32" : "fp32"),
           cfg->train.epsilon == EPSILON_FUSED ? "fused" : "stored",
           graphs ? "true" : "false", B, steps, a->warmup, ms_per_step, samples_per_s, tflops,
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
        printf("\"train_loss\": null, \"gemm_calls_per_step\": %d, \"conv_calls_per_step\": %d, "
               "\"gemm_flops_replayed\": %llu, ", gemm_calls, conv_calls, (unsigned long long)replayed_flops);
    else printf("\"train_loss\": %.4f, ", loss);
    if (paired)
        printf("\"gemm_ms_per_step\": %.6f, \"gemm_calls_per_step\": %d, \"conv_calls_per_step\": %d, "
               "\"gemm_flops_replayed\": %llu, "
               "\"pairs\": %d, \"block_steps\": %ld, \"step_over_gemm\": %.4f, \"step_over_gemm_q1\": %.4f, "
               "\"step_over_gemm_q3\": %.4f, ",
               1000.0 * paired->gemm_seconds / (double)steps, gemm_calls, conv_calls, (unsigned long long)replayed_flops,
               paired->pairs, paired->block_steps, paired->ratio_median, paired->ratio_q1, paired->ratio_q3);
    printf("\"dataset_examples\": %d, \"n_params\": %zu}\n", n, model_parameter_count(model));
    flush_stdout();
}

int bench_command(int argc, char **argv) {
    char err[1024];
    if (args_want_help(argc, argv, bench_takes_value)) {
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
    if (backend_precision_note(be, &cfg)) fputs(backend_precision_note(be, &cfg), stderr);   // (tf32 on the CPU)

    const int B = cfg.train.batch_size;
    Model model;
    if (model_create(&model, &cfg, be, B, err, sizeof err) != 0) {
        be->destroy(be);
        return bench_fail(err);
    }
    // a batch_norm over flat features has no statistics for a batch of one example: train refuses
    // that step, and bench does not time it
    char flat_norm[96], origin[1800];
    if (B < 2 && model_flat_batch_norm(&model, flat_norm, sizeof flat_norm)) {
        model_batch_of_one_error(config_key_origin(&cfg, "train.batch_size", origin, sizeof origin), flat_norm,
                                 "train.batch_size 1; train refuses it too", err, sizeof err);
        model_destroy(&model);
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
    long steps = a.steps;
    int gemm_calls = 0, conv_calls = 0;
    uint64_t replayed_flops = 0;
    PairedTiming paired;
    if (a.gemm_only) {
        record_step_gemms(&loop, be, B);
        for (long s = 0; s < a.warmup; s++) replay_step_gemms(&model, be);
        seconds = timed_block(&loop, be, B, a.steps, true);
        gemm_calls = recorded.count - recorded.convs;
        conv_calls = recorded.convs;
        replayed_flops = recorded_flops();
        forget_recorded();
    } else {
        // --paired: two more untimed training steps, the recorded one and the block-length probe.
        // The GEMMs are recorded on the first step: on CUDA the later ones launch the captured
        // graph, whose GEMMs no wrapper sees.
        long block = 0;
        if (a.paired) record_step_gemms(&loop, be, B);
        for (long s = 0; s < a.warmup; s++) train_step_run(&loop, B);
        if (a.paired) {
            for (long s = 0; s < a.warmup; s++) replay_step_gemms(&model, be);
            block = paired_block_steps(&loop, be, B, a.steps);
        }
        double rec, kl, count;
        model_read_loss(&model, &rec, &kl, &count);   // clears the accumulator; synchronizes
        if (a.paired) {
            paired = run_pairs(&loop, be, B, a.steps, block);
            seconds = paired.train_seconds;
            steps = (long)paired.pairs * block;
            gemm_calls = recorded.count - recorded.convs;
            conv_calls = recorded.convs;
            replayed_flops = recorded_flops();
            forget_recorded();
        } else {
            seconds = timed_block(&loop, be, B, a.steps, false);
        }
        model_read_loss(&model, &rec, &kl, &count);
        // at the KL schedule of the last timed step (warm-up weight, capacity), as train logs an
        // interval (the dataset's n / B batches an epoch)
        loss = count > 0 ? model_weighted_loss_sum(&cfg, cfg.loss.w_rec, rec, kl, count,
                                                   (double)(loop.steps_run - 1) / (double)(n / B)) / count
                         : 0.0;
    }

    int rc = 0;
    // (a step issues GEMMs or library convolutions, a PixelCNN on the CPU only the latter: a bug if neither)
    if ((a.gemm_only || a.paired) && gemm_calls + conv_calls == 0) {
        fprintf(stderr, "cuvae: bench %s: no GEMM or library convolution was recorded from the training step: "
                "nothing to replay\n", cfg.name);
        rc = CUVAE_EXIT_BAD_INPUT;
    } else if (a.paired && !(isfinite(paired.ratio_q1) && isfinite(paired.ratio_q3))) {
        fprintf(stderr, "cuvae: bench %s: --paired: a block of GEMMs took no measurable time\n", cfg.name);
        rc = CUVAE_EXIT_BAD_INPUT;
    } else if (isfinite(loss)) {
        print_result(&a, &cfg, be, &model, B, n, steps, seconds, loss, gemm_calls, conv_calls, replayed_flops,
                     a.paired ? &paired : NULL);
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

// test_bench.c: `cuvae bench` through bench_command on a tiny CPU config
// written to a temp dir: the JSON line it prints (stdout captured into a file)
// has every field, positive timings, and the GEMM FLOP count of the formula
// computed here independently and the FLOPs the model's GEMMs actually do (a
// counting gemm wrapper); --gemm-only replays exactly a step's GEMMs (MLP and
// a conv VQ-VAE); --paired alternates both in one process without changing the
// training (its loss equals a plain run's); bad arguments return 2.
#include "cuvae/backend.h"
#include "cuvae/bench.h"
#include "cuvae/common.h"
#include "cuvae/config.h"
#include "cuvae/model.h"
#include "cuvae/step.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static char tmp_dir[256];
static char config_path[512];

// 784-16-2 VAE, decoder [16], batch 8
static const char *TINY_CONFIG =
    "{\"name\": \"bench_tiny\", \"description\": \"test_bench\",\n"
    " \"data\": {\"dataset\": \"mnist\", \"dir\": \"data/mnist\", \"binarize\": \"none\",\n"
    "          \"train_limit\": 0, \"test_limit\": 0},\n"
    " \"model\": {\"kind\": \"vae\", \"input_dim\": 784, \"encoder\": [16], \"latent_dim\": 2,\n"
    "           \"decoder\": [16], \"activation\": \"relu\", \"output\": \"bernoulli\"},\n"
    " \"loss\": {\"reconstruction\": \"bce\", \"reduction\": \"sum\", \"w_rec\": 1, \"w_kl\": 1},\n"
    " \"train\": {\"epochs\": 1, \"batch_size\": 8, \"optimizer\": \"adam\", \"lr\": 0.001, \"seed\": 1,\n"
    "           \"beta1\": 0.9, \"beta2\": 0.999, \"adam_eps\": 1e-8, \"log_interval\": 100},\n"
    " \"device\": \"cpu\"}\n";

// GEMM FLOPs of one step, written out for the layers of TINY_CONFIG at batch B:
// 784->16, 16->4 (mu | logvar), 2->16, 16->784. Forward and dW for every layer,
// dX for all but the first.
static unsigned long long expected_flops(unsigned long long B, int encoder, int latent) {
    unsigned long long l0 = 784ull * encoder, l1 = (unsigned long long)encoder * 2 * latent;
    unsigned long long l2 = (unsigned long long)latent * 16, l3 = 16ull * 784;
    unsigned long long forward = 2 * B * (l0 + l1 + l2 + l3);
    unsigned long long weight_grads = 2 * B * (l0 + l1 + l2 + l3);
    unsigned long long input_grads = 2 * B * (l1 + l2 + l3);
    return forward + weight_grads + input_grads;
}

// Runs bench_command with stdout redirected into a file; returns its status and
// the captured text (malloc'd) in *out.
static int run_captured(int argc, char **argv, char **out) {
    char path[600];
    snprintf(path, sizeof path, "%s/stdout.txt", tmp_dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0) {
        *out = NULL;
        return -1;
    }
    dup2(fd, 1);
    close(fd);
    int rc = bench_command(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    char err[256];
    *out = read_text_file(path, NULL, err, sizeof err);
    return rc;
}

static double number_field(const cJSON *json, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, key);
    CHECK(cJSON_IsNumber(item), "field %s missing or not a number", key);
    return cJSON_IsNumber(item) ? item->valuedouble : -1.0;
}

static void check_line(const char *text, const char *mode, unsigned long long flops, int steps) {
    CHECK(text != NULL, "no output captured");
    if (!text) return;
    CHECK(strchr(text, '\n') == text + strlen(text) - 1, "expected exactly one line, got: %s", text);
    cJSON *json = cJSON_Parse(text);
    CHECK(json != NULL, "output is not JSON: %s", text);
    if (!json) return;
    const char *strings[] = {"config", "mode", "device", "backend"};
    for (int i = 0; i < 4; i++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, strings[i]);
        CHECK(cJSON_IsString(item) && item->valuestring[0], "field %s missing or empty", strings[i]);
    }
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(json, "config")->valuestring, "bench_tiny") == 0, "config name");
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(json, "mode")->valuestring, mode) == 0, "mode %s", mode);
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(json, "backend")->valuestring, "cpu") == 0, "backend cpu");
    const char *positive[] = {"batch", "steps", "ms_per_step", "samples_per_s", "tflops",
                              "gemm_flops_per_step", "peak_memory_bytes", "threads"};
    for (int i = 0; i < 8; i++) {
        double v = number_field(json, positive[i]);
        CHECK(v > 0, "field %s must be positive, got %g", positive[i], v);
    }
    CHECK(number_field(json, "batch") == 8, "batch 8");
    CHECK(number_field(json, "steps") == steps, "steps %d", steps);
    CHECK(number_field(json, "gemm_flops_per_step") == (double)flops,
          "gemm_flops_per_step %.0f, expected %llu", number_field(json, "gemm_flops_per_step"), flops);
    // tflops, ms_per_step and samples_per_s describe the same timing
    double ms = number_field(json, "ms_per_step");
    CHECK(test_close(number_field(json, "samples_per_s"), 8.0 * 1000.0 / ms, 1e-3, 0),
          "samples_per_s = batch / step time");
    // (tflops is printed with 6 decimals: a tiny model on a slow machine is a few 1e-6, so the
    // printed value can be off by half a unit of the last decimal)
    CHECK(test_close(number_field(json, "tflops"), (double)flops / (ms * 1e-3) / 1e12, 1e-3, 5e-7),
          "tflops = flops / step time (%g printed, %g from ms_per_step)", number_field(json, "tflops"),
          (double)flops / (ms * 1e-3) / 1e12);
    cJSON_Delete(json);
}

static void test_train_mode(void) {
    char *argv[] = {config_path, "--steps", "3", "--warmup", "1"};
    char *out;
    int rc = run_captured(5, argv, &out);
    CHECK(rc == 0, "bench returned %d", rc);
    check_line(out, "train", expected_flops(8, 16, 2), 3);
    free(out);
}

static void test_gemm_only_mode(void) {
    char *argv[] = {config_path, "--steps", "3", "--warmup", "0", "--gemm-only"};
    char *out;
    int rc = run_captured(6, argv, &out);
    CHECK(rc == 0, "bench --gemm-only returned %d", rc);
    check_line(out, "gemm-only", expected_flops(8, 16, 2), 3);
    free(out);
}

// A small VQ-VAE of convolutions (layer lists, batch norm, the nearest-code GEMM)
static const char *VQ_CONFIG =
    "{\"name\": \"bench_vq\", \"description\": \"test_bench\",\n"
    " \"data\": {\"dataset\": \"mnist\", \"dir\": \"data/mnist\", \"binarize\": \"none\"},\n"
    " \"model\": {\"kind\": \"vq_vae\", \"input_dim\": 784,\n"
    "   \"encoder\": [{\"conv2d\": 8, \"kernel\": 4, \"stride\": 2, \"padding\": 1}, {\"batch_norm\": {}},\n"
    "               {\"relu\": {}}, {\"conv2d\": 4, \"kernel\": 1}],\n"
    "   \"latent_dim\": 4, \"codebook\": {\"size\": 16},\n"
    "   \"decoder\": [{\"conv_transpose2d\": 1, \"kernel\": 4, \"stride\": 2, \"padding\": 1}],\n"
    "   \"output\": \"bernoulli\"},\n"
    " \"loss\": {\"reconstruction\": \"bce\", \"reduction\": \"sum\", \"w_rec\": 1},\n"
    " \"train\": {\"epochs\": 1, \"batch_size\": 8, \"optimizer\": \"adam\", \"lr\": 0.001, \"seed\": 1},\n"
    " \"device\": \"cpu\"}\n";

static const char *string_field(const cJSON *json, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(json, key);
    return cJSON_IsString(item) ? item->valuestring : "";
}

// Writes VQ_CONFIG next to the tiny config; its path in path.
static void write_vq_config(char *path, size_t size) {
    snprintf(path, size, "%s/vq.json", tmp_dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs(VQ_CONFIG, f);
    fclose(f);
}

// --gemm-only replays exactly the GEMMs a step issues (recorded from a real step): their
// FLOPs equal the formula's, for an MLP (11 calls: 4 forward, 4 dW, 3 dX) and a layer graph
static void test_gemm_only_replays_the_steps_gemms(void) {
    char vq_path[600];
    write_vq_config(vq_path, sizeof vq_path);
    char *paths[] = {config_path, vq_path};
    for (int c = 0; c < 2; c++) {
        char *argv[] = {paths[c], "--steps", "2", "--warmup", "0", "--gemm-only"};
        char *out;
        int rc = run_captured(6, argv, &out);
        CHECK(rc == 0, "%s: bench --gemm-only returned %d", paths[c], rc);
        cJSON *json = out ? cJSON_Parse(out) : NULL;
        CHECK(json != NULL, "%s: output is not JSON: %s", paths[c], out ? out : "(null)");
        if (json) {
            // a library convolution (the CPU's oneDNN) replays as one call for its GEMMs
            double calls = number_field(json, "gemm_calls_per_step") + number_field(json, "conv_calls_per_step");
            double replayed = number_field(json, "gemm_flops_replayed");
            double formula = number_field(json, "gemm_flops_per_step");
            CHECK(replayed == formula && formula > 0, "%s: replayed %.0f GEMM FLOPs, the step's are %.0f",
                  paths[c], replayed, formula);
            if (c == 0) CHECK(calls == 11, "MLP: %.0f GEMM calls replayed, want 11", calls);
            else CHECK(calls >= 8, "VQ-VAE: %.0f GEMM calls replayed", calls);
            cJSON_Delete(json);
        }
        free(out);
    }
    unlink(vq_path);
}

// The train_loss a run printed, as printed (4 decimals); "" if none.
static void printed_loss(const char *out, char *loss, size_t size) {
    const char *at = out ? strstr(out, "\"train_loss\": ") : NULL;
    loss[0] = '\0';
    if (at) snprintf(loss, size, "%.*s", (int)strcspn(at, ","), at);
}

// --paired: blocks of steps and of their GEMMs alternating in one process. The line has the
// train fields (check_line: the timed training steps, a whole number of blocks) and the pairs'
// ratio with its quartiles; the replays between the blocks do not change the training: the
// loss equals a plain run's with the two extra untimed steps (recording, block probe) as warmup.
// For the MLP and the conv VQ-VAE.
static void test_paired_mode(void) {
    char vq_path[600];
    write_vq_config(vq_path, sizeof vq_path);
    char *paths[] = {config_path, vq_path};
    for (int c = 0; c < 2; c++) {
        char *argv[] = {paths[c], "--steps", "9", "--warmup", "1", "--paired"};
        char *out;
        int rc = run_captured(6, argv, &out);
        CHECK(rc == 0, "%s: bench --paired returned %d", paths[c], rc);
        cJSON *json = out ? cJSON_Parse(out) : NULL;
        CHECK(json != NULL, "%s: output is not JSON: %s", paths[c], out ? out : "(null)");
        if (!json) {
            free(out);
            continue;
        }
        const double steps = number_field(json, "steps"), pairs = number_field(json, "pairs");
        const double block = number_field(json, "block_steps");
        CHECK(strcmp(string_field(json, "mode"), "paired") == 0, "mode \"%s\"", string_field(json, "mode"));
        // 9 steps leave room for 4 pairs of 2 (a block is at least 20 ms, at most 9 / 4 steps)
        CHECK(block >= 1 && block <= 2 && pairs == floor(9 / block) && steps == pairs * block,
              "%s: %.0f pairs of %.0f steps for %.0f timed steps", paths[c], pairs, block, steps);
        if (c == 0) check_line(out, "paired", expected_flops(8, 16, 2), (int)steps);
        const double q1 = number_field(json, "step_over_gemm_q1"), median = number_field(json, "step_over_gemm");
        const double q3 = number_field(json, "step_over_gemm_q3"), gemm_ms = number_field(json, "gemm_ms_per_step");
        CHECK(q1 > 0 && q1 <= median && median <= q3, "%s: quartiles %g <= %g <= %g", paths[c], q1, median, q3);
        CHECK(gemm_ms > 0, "%s: gemm_ms_per_step %g", paths[c], gemm_ms);
        // the GEMM blocks replayed the step's GEMMs, counted and by their FLOPs below (not by the
        // ratio's size: on a loaded host a tiny model's step block can wait thousands of times
        // its GEMMs' microseconds -- 3596x once in CI -- so a bound on it is a timed test)
        const double calls = number_field(json, "gemm_calls_per_step") + number_field(json, "conv_calls_per_step");
        CHECK(c == 0 ? calls == 11 : calls >= 8, "%s: %.0f GEMM calls replayed a step", paths[c], calls);
        CHECK(number_field(json, "gemm_flops_replayed") == number_field(json, "gemm_flops_per_step"),
              "%s: the replay ran the step's GEMMs", paths[c]);
        char steps_text[32];
        snprintf(steps_text, sizeof steps_text, "%.0f", steps);
        char *plain_argv[] = {paths[c], "--steps", steps_text, "--warmup", "3"};
        char *plain;
        rc = run_captured(5, plain_argv, &plain);
        CHECK(rc == 0, "%s: plain bench returned %d", paths[c], rc);
        char loss[64], plain_loss[64];
        printed_loss(out, loss, sizeof loss);
        printed_loss(plain, plain_loss, sizeof plain_loss);
        CHECK(loss[0] && strcmp(loss, plain_loss) == 0, "%s: paired %s, plain %s", paths[c], loss, plain_loss);
        cJSON_Delete(json);
        free(out);
        free(plain);
    }
    unlink(vq_path);
}

static void test_overrides(void) {
    // --set reaches the model: a wider encoder changes the FLOP count
    char *argv[] = {config_path, "--steps", "2", "--warmup", "0", "--set", "model.encoder=[32]"};
    char *out;
    int rc = run_captured(7, argv, &out);
    CHECK(rc == 0, "bench --set returned %d", rc);
    check_line(out, "train", expected_flops(8, 32, 2), 2);
    free(out);
}

// A CPU backend whose gemm counts 2*M*N*K before calling the real one.
static unsigned long long counted_flops;
static void (*real_gemm)(Backend *, bool, bool, int, int, int, float, const float *, int,
                         const float *, int, float, float *, int);
static void counting_gemm(Backend *be, bool ta, bool tb, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C,
                          int ldc) {
    counted_flops += 2ull * (unsigned long long)M * N * K;
    real_gemm(be, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static void test_flops_match_model(void) {
    // the formula against the GEMMs model_forward + model_backward really issue,
    // for a VAE with two trunk layers, an AE and a label-conditional VAE
    const char *kinds[][2] = {{"model.kind=vae", "model.condition=none"},
                              {"model.kind=ae", "model.condition=none"},
                              {"model.kind=cvae", "model.condition=label"}};
    for (int kind = 0; kind < 3; kind++) {
        const char *overrides[5] = {"model.encoder=[24,12]", "model.decoder=[12,24]", "model.latent_dim=3",
                                    kinds[kind][0], kinds[kind][1]};
        Config cfg;
        char err[512];
        CHECK(config_load(&cfg, config_path, overrides, 5, err, sizeof err) == 0, "config: %s", err);
        Backend *be = backend_cpu_create();
        real_gemm = be->gemm;
        be->gemm = counting_gemm;
        be->conv_forward = NULL;   // the conv layers' GEMMs, composed (the CPU's library convolutions
        be->conv_backward_data = NULL;   // count as those GEMMs: the replay tests check them)
        be->conv_backward_weights = NULL;
        Model m;
        CHECK(model_create(&m, &cfg, be, 5, err, sizeof err) == 0, "model: %s", err);
        model_init_params(&m, 1);
        counted_flops = 0;
        model_forward(&m, 5, EPS_SAMPLE);
        model_backward(&m, 5, 1.0f, 1.0f);
        unsigned long long formula = bench_gemm_flops_per_step(&m, 5);
        CHECK(counted_flops == formula, "%s: model did %llu GEMM FLOPs, formula says %llu",
              kinds[kind][0], counted_flops, formula);
        model_destroy(&m);
        be->destroy(be);
    }
}

// The whole training step (step.c) of the kinds with their own steps or networks: the GEMMs it
// issues equal the formula (a gan's discriminator runs three times, an aae's encoder twice and
// its discriminator three times, a made's network takes no input gradient).
static void test_flops_match_whole_steps(void) {
    const char *configs[] = {
        "{\"name\": \"g\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"validation\": 0.1},"
        " \"model\": {\"kind\": \"gan\", \"input_dim\": 16, \"latent_dim\": 3, \"generator\": [{\"linear\": 8}, \"relu\","
        " {\"linear\": 16}, {\"reshape\": [1, 4, 4]}, \"sigmoid\"], \"discriminator\": [{\"conv2d\": 2, \"kernel\": 3,"
        " \"padding\": 1}, \"relu\", \"flatten\", {\"linear\": 1}]}, \"train\": {\"epochs\": 1, \"batch_size\": 5, \"lr\": 0.001}}",
        "{\"name\": \"a\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"validation\": 0.1},"
        " \"model\": {\"kind\": \"aae\", \"input_dim\": 16, \"encoder\": [7], \"latent_dim\": 2, \"decoder\": [6],"
        " \"discriminator\": [{\"linear\": 4}, \"relu\", {\"linear\": 1}], \"prior\": \"mixture\"},"
        " \"train\": {\"epochs\": 1, \"batch_size\": 5, \"lr\": 0.001}}",
        "{\"name\": \"m\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"binarize\": \"dynamic\"},"
        " \"model\": {\"kind\": \"made\", \"input_dim\": 16, \"network\": [9]},"
        " \"train\": {\"epochs\": 1, \"batch_size\": 5, \"lr\": 0.001}}",
    };
    for (int k = 0; k < 3; k++) {
        Config cfg;
        char err[512];
        CHECK(config_from_string(&cfg, configs[k], "flops test", NULL, 0, err, sizeof err) == 0, "config: %s", err);
        Backend *be = backend_cpu_create();
        real_gemm = be->gemm;
        be->gemm = counting_gemm;
        be->conv_forward = NULL;   // the conv layers' GEMMs, composed (the CPU's library convolutions
        be->conv_backward_data = NULL;   // count as those GEMMs: the replay tests check them)
        be->conv_backward_weights = NULL;
        Model m;
        CHECK(model_create(&m, &cfg, be, 5, err, sizeof err) == 0, "model: %s", err);
        model_init_params(&m, 1);
        uint8_t *images = be->alloc(be, 5 * 16);
        int32_t *perm = be->alloc(be, 5 * sizeof(int32_t));
        for (int i = 0; i < 5; i++) perm[i] = i;
        model_begin_training(&m, 1, 1e-3f);
        TrainStep t = {.model = &m, .images = images, .labels = NULL, .perm = perm, .w_rec = 1.0f};
        counted_flops = 0;
        train_step_run(&t, 5);
        train_step_release(&t);
        unsigned long long formula = bench_gemm_flops_per_step(&m, 5);
        CHECK(counted_flops == formula, "%s: the step did %llu GEMM FLOPs, formula says %llu",
              model_kind_name(cfg.model.kind), counted_flops, formula);
        be->free(be, images);
        be->free(be, perm);
        model_destroy(&m);
        be->destroy(be);
    }
}

static void test_cvae_runs(void) {
    // a conditional model gathers labels each step; both modes run
    char *argv[] = {config_path, "--steps", "2", "--warmup", "1", "--set", "model.kind=cvae",
                    "--set", "model.condition=label", NULL};
    for (int gemm_only = 0; gemm_only < 2; gemm_only++) {
        argv[9] = "--gemm-only";
        char *out;
        int rc = run_captured(gemm_only ? 10 : 9, argv, &out);
        CHECK(rc == 0, "cvae bench (gemm_only %d) returned %d", gemm_only, rc);
        CHECK(out && strstr(out, "\"samples_per_s\""), "cvae bench printed a result");
        free(out);
    }
}

static void test_bad_args(void) {
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.json", tmp_dir);
    char *cases[][4] = {
        {"--steps", "3", NULL, NULL},                 // no CONFIG
        {config_path, "--steps", "0", NULL},          // steps < 1
        {config_path, "--steps", "x", NULL},          // not a number
        {config_path, "--steps", NULL, NULL},         // missing value
        {config_path, "--warmup", "-1", NULL},        // negative warmup
        {config_path, "--frobnicate", NULL, NULL},    // unknown option
        {config_path, "extra.json", NULL, NULL},      // two positionals
        {missing, NULL, NULL, NULL},                  // config that does not exist
        {config_path, "--set", "model.latent_dim=0", NULL},   // invalid override
        {config_path, "--paired", "--gemm-only", NULL},       // --paired runs both
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int argc = 0;
        while (argc < 4 && cases[c][argc]) argc++;
        char *out;
        int rc = run_captured(argc, cases[c], &out);
        CHECK(rc == 2, "case %zu: expected exit status 2, got %d", c, rc);
        CHECK(out && out[0] == '\0', "case %zu: nothing on stdout, got \"%s\"", c, out ? out : "(null)");
        free(out);
    }
    char *help[] = {"--help"};
    char *out;
    int rc = run_captured(1, help, &out);
    CHECK(rc == 0, "--help returns 0");
    CHECK(out && strstr(out, "usage: cuvae bench"), "--help prints the usage");
    free(out);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/cuvae_test_bench_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(config_path, sizeof config_path, "%s/tiny.json", tmp_dir);
    FILE *f = fopen(config_path, "w");
    if (!f) {
        perror(config_path);
        return 1;
    }
    fputs(TINY_CONFIG, f);
    fclose(f);

    test_run("bench_train_mode", test_train_mode);
    test_run("bench_gemm_only_mode", test_gemm_only_mode);
    test_run("bench_gemm_only_replays_the_steps_gemms", test_gemm_only_replays_the_steps_gemms);
    test_run("bench_paired_mode", test_paired_mode);
    test_run("bench_set_override", test_overrides);
    test_run("bench_flops_match_model", test_flops_match_model);
    test_run("bench_flops_match_whole_steps", test_flops_match_whole_steps);
    test_run("bench_cvae_runs", test_cvae_runs);
    test_run("bench_bad_args", test_bad_args);

    char path[600];
    snprintf(path, sizeof path, "%s/stdout.txt", tmp_dir);
    unlink(path);
    unlink(config_path);
    rmdir(tmp_dir);
    return test_finish("test_bench");
}

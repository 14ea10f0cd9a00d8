// test_model.c: whole-model gradient checks on the CPU backend (finite
// differences of the full loss w.r.t. sampled parameters, VAE and AE, every
// loss form), layer layout, and that Adam steps lower the loss.
#include "cuvae/backend.h"
#include "cuvae/checkpoint.h"
#include "cuvae/safetensors.h"
#include "cuvae/common.h"
#include "cuvae/layer_kind.h"
#include "cuvae/model.h"
#include "cuvae/prior.h"
#include "cuvae/step.h"
#include "cuvae/rng.h"
#include "test.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static Backend *cpu;

// The config a test's JSON text gives (a failed CHECK, naming `what`, if it is refused).
static Config config_parsed(const char *json, const char *what) {
    Config cfg;
    char err[1024], label[64];
    snprintf(label, sizeof label, "%s test", what);
    CHECK(config_from_string(&cfg, json, label, NULL, 0, err, sizeof err) == 0, "%s config: %s", what, err);
    return cfg;
}

static Config small_config(ModelKind kind, Activation act, ReconstructionKind rec, OutputKind out,
                           Reduction red, int n_decoder) {
    Config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "test");
    c.model.kind = kind;
    c.model.input_dim = 6;
    c.model.n_encoder = 2;
    c.model.encoder[0] = 5;
    c.model.encoder[1] = 4;
    c.model.latent_dim = 3;
    c.model.n_decoder = n_decoder;
    c.model.decoder[0] = 4;
    c.model.decoder[1] = 5;
    c.model.activation = act;
    c.model.output = out;
    c.loss.reconstruction = rec;
    c.loss.reduction = red;
    c.loss.w_rec = 1.3;
    c.loss.w_kl = 0.7;
    c.train.batch_size = 3;
    c.train.lr = 1e-2;
    c.train.beta1 = 0.9;
    c.train.beta2 = 0.999;
    c.train.adam_eps = 1e-8;
    c.train.seed = 5;
    return c;
}

// The scheduled training loss at the current parameters, fixed eps, x, labels:
// mean_b w_rec rec_b + KL term, where the KL term is
//   plain:     w * mean_b KL_b
//   free bits: w * sum_j max(free_bits, mean_b KL_bj)
//   capacity:  gamma * |mean_b KL_b - C|
static double full_loss(Model *m, int B, KlSchedule kl) {
    model_forward(m, B, EPS_GIVEN);
    model_loss(m, B);
    float rec[8], h[64];
    int L = m->latent_dim;
    cpu->download(cpu, rec, m->rec_row, B * sizeof(float));
    double total = 0;
    for (int b = 0; b < B; b++) total += m->cfg.loss.w_rec * rec[b];
    total /= B;
    if (!m->variational) return total;
    cpu->download(cpu, h, model_head(m), (size_t)B * 2 * L * sizeof(float));
    double dim_mean[8] = {0}, kl_mean = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++) {
            double mu = h[b * 2 * L + j], lv = h[b * 2 * L + L + j];
            double v = 0.5 * (mu * mu + exp(lv) - 1 - lv) / B;
            dim_mean[j] += v;
            kl_mean += v;
        }
    if (kl.capacity) return total + kl.capacity_gamma * fabs(kl_mean - kl.capacity_target);
    if (kl.free_bits > 0) {
        for (int j = 0; j < L; j++) total += kl.weight * fmax(kl.free_bits, dim_mean[j]);
        return total;
    }
    return total + kl.weight * kl_mean;
}

static void gradient_check_scheduled(Config cfg, KlSchedule kl, const char *label) {
    const int B = 3;
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, B, err, sizeof err) == 0, "%s: model_create: %s", label, err);
    model_init_params(&m, 11);
    Rng rng;
    rng_init(&rng, 77, 1);
    const int D = m.input_dim, L = m.latent_dim;
    float *x = xmalloc((size_t)B * D * sizeof(float)), *eps = xmalloc((size_t)B * L * sizeof(float));
    for (int i = 0; i < B * D; i++) x[i] = rng_uniform(&rng);
    x[0] = 0.0f; x[1] = 1.0f;
    if (m.prior_classes)   // a prior's inputs are codes (code / 255)
        for (int i = 0; i < B * D; i++) x[i] = (float)(rng_u32(&rng) % (uint32_t)m.prior_classes) / 255.0f;
    for (int i = 0; i < B * L; i++) eps[i] = rng_normal(&rng);
    cpu->upload(cpu, m.x, x, (size_t)B * D * sizeof(float));
    if (m.variational) cpu->upload(cpu, model_eps_buffer(&m), eps, (size_t)B * L * sizeof(float));
    free(x);
    free(eps);
    m.training_mode = true;   // batch norm (layer lists): the batch statistics, as in training
    if (m.onehot) {
        uint8_t labels[3] = {2, 0, 2};
        cpu->gather_onehot(cpu, m.onehot, labels, NULL, 0, NULL, B, m.n_classes);
    }

    model_forward(&m, B, EPS_GIVEN);
    model_set_kl_schedule(&m, kl);
    model_backward_scheduled(&m, B, (float)cfg.loss.w_rec);
    float *grads = xmalloc(m.n_params * sizeof(float));
    float *params = xmalloc(m.n_params * sizeof(float));
    cpu->download(cpu, grads, m.grads, m.n_params * sizeof(float));
    model_get_params(&m, params);

    // every parameter of this small model
    int bad = 0;
    double max_err = 0;
    for (size_t k = 0; k < m.n_params; k++) {
        const float h = 1e-2f;
        float saved = params[k];
        params[k] = saved + h;
        model_set_params(&m, params);
        double fp = full_loss(&m, B, kl);
        params[k] = saved - h;
        model_set_params(&m, params);
        double fm = full_loss(&m, B, kl);
        params[k] = saved;
        double fd = (fp - fm) / (2.0 * h);
        double e = fabs(fd - grads[k]) / (1e-2 + fabs(fd));
        if (e > max_err) max_err = e;
        if (!test_close(grads[k], fd, 2e-2, 2e-3)) {
            if (bad++ < 5) CHECK(0, "%s: param %zu grad %g vs fd %g", label, k, grads[k], fd);
        }
    }
    model_set_params(&m, params);
    CHECK(bad == 0, "%s: %d of %zu gradients off (max rel err %g)", label, bad, m.n_params, max_err);
    free(grads);
    free(params);
    model_destroy(&m);
}

static void gradient_check(Config cfg, const char *label) {
    KlSchedule kl;
    memset(&kl, 0, sizeof kl);
    kl.weight = (float)cfg.loss.w_kl;
    gradient_check_scheduled(cfg, kl, label);
}

static void test_vae_tanh_bce_sum(void) {
    gradient_check(small_config(MODEL_VAE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2), "vae tanh bce sum");
}
static void test_vae_leaky_mse_sigmoid_mean(void) {
    gradient_check(small_config(MODEL_VAE, ACT_LEAKY_RELU, REC_MSE, OUTPUT_BERNOULLI, REDUCTION_MEAN, 2), "vae leaky mse-sigmoid mean");
}
static void test_vae_no_hidden_decoder(void) {
    gradient_check(small_config(MODEL_VAE, ACT_TANH, REC_MSE, OUTPUT_GAUSSIAN, REDUCTION_SUM, 0), "vae gaussian, no hidden decoder");
}
static void test_ae_tanh_gaussian(void) {
    gradient_check(small_config(MODEL_AE, ACT_TANH, REC_MSE, OUTPUT_GAUSSIAN, REDUCTION_SUM, 2), "ae tanh gaussian");
}
static void test_ae_bce_one_hidden(void) {
    gradient_check(small_config(MODEL_AE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 1), "ae bce one hidden");
}

static void test_cvae_label_condition(void) {
    Config cfg = small_config(MODEL_VAE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    cfg.model.kind = MODEL_CVAE;
    cfg.model.condition = CONDITION_LABEL;
    cfg.model.n_classes = 4;
    gradient_check(cfg, "cvae tanh bce");
    cfg.model.n_decoder = 0;   // condition joins the output layer's input directly
    gradient_check(cfg, "cvae, no hidden decoder");
}

static void test_free_bits_gradient(void) {
    Config cfg = small_config(MODEL_VAE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    KlSchedule kl;
    memset(&kl, 0, sizeof kl);
    kl.weight = 0.9f;
    kl.free_bits = 0.05f;   // some dimensions above, some below the floor at init
    gradient_check_scheduled(cfg, kl, "free bits");
}

static void test_capacity_gradient(void) {
    Config cfg = small_config(MODEL_VAE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    KlSchedule kl;
    memset(&kl, 0, sizeof kl);
    kl.capacity = 1;
    kl.capacity_gamma = 10.0f;
    kl.capacity_target = 5.0f;    // above the KL at init: pushes KL up
    gradient_check_scheduled(cfg, kl, "capacity below target");
    kl.capacity_target = 0.0f;    // below: pushes KL down
    gradient_check_scheduled(cfg, kl, "capacity above target");
}

// A small config with layer-list encoder / decoder over 8x8 images (input_dim 64).
static Config graph_config(const char *kind, const char *encoder, const char *decoder, const char *output) {
    char json[4096];
    snprintf(json, sizeof json,
             "{\"name\": \"graph\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\"},"
             " \"model\": {\"kind\": \"%s\", \"input_dim\": 64, \"latent_dim\": 3, \"encoder\": %s,"
             " \"decoder\": %s, \"output\": \"%s\"},"
             " \"loss\": {\"reconstruction\": \"%s\", \"w_rec\": 1.3, \"w_kl\": 0.7},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}",
             kind, encoder, decoder, output, strcmp(output, "gaussian") == 0 ? "mse" : "bce");
    return config_parsed(json, "graph");
}

#define CONV_ENCODER "[{\"conv2d\": 3, \"kernel\": 3, \"stride\": 2, \"padding\": 1}, {\"batch_norm\": {}}," \
    " \"tanh\", {\"conv2d\": 4, \"kernel\": 2}, \"tanh\", \"flatten\"]"
#define CONV_DECODER "[{\"linear\": 18}, {\"reshape\": [2, 3, 3]}, {\"batch_norm\": {\"momentum\": 0.3}}, \"tanh\"," \
    " {\"conv_transpose2d\": 2, \"kernel\": 3, \"stride\": 2, \"padding\": 1, \"output_padding\": 1}," \
    " \"sigmoid\", {\"conv_transpose2d\": 1, \"kernel\": 3}]"

// every parameter of conv / batch-norm / activation / view layers, by finite differences
// (smooth activations only: a step of 1e-2 across a relu kink is not a derivative;
// relu and leaky_relu are checked op by op in test_layer_ops away from the kink)
static void test_graph_vae_gradients(void) {
    gradient_check(graph_config("vae", CONV_ENCODER, CONV_DECODER, "bernoulli"), "conv vae bce");
    gradient_check(graph_config("ae", CONV_ENCODER, CONV_DECODER, "gaussian"), "conv ae gaussian mse");
    // a layer-list encoder with the shorthand decoder, and the other way round
    Config mixed = graph_config("vae", CONV_ENCODER, "[7]", "bernoulli");
    mixed.model.activation = ACT_TANH;
    gradient_check(mixed, "conv encoder, mlp decoder");
    gradient_check(graph_config("vae", "[9]", "[{\"linear\": 5}, {\"batch_norm\": {}}, \"tanh\", {\"linear\": 64}]",
                                "bernoulli"), "mlp encoder, layer-list decoder with 1-d batch norm");
    // residual connections: around two layers inside, and back to the network's input (z: the
    // gradient to z, and so to the encoder, must include the skip)
    gradient_check(graph_config("vae", "[9]", "[{\"linear\": 6}, \"tanh\", {\"linear\": 6}, \"tanh\","
                                " {\"residual\": 2}, {\"linear\": 3}, \"sigmoid\", {\"residual\": 7}, {\"linear\": 64}]",
                                "bernoulli"), "residual blocks (inside, and from the network input)");
}

// conv2d keeps its forward's columns for the weight gradient (layer_conv.c) where they are small
// next to its activations, conv_transpose2d its swapped input x': the gradients from what they
// kept are the bits of those from an im2col (a swap) of x again, and a layer whose columns are
// large keeps none.
static void conv_grads(Model *m, int B, bool drop_kept, float *grads) {
    model_forward(m, B, EPS_GIVEN);
    if (drop_kept) {
        for (int i = 0; i < m->encoder_net->n_layers; i++) m->encoder_net->layers[i].kept_input = NULL;
        for (int i = 0; i < m->decoder_net->n_layers; i++) m->decoder_net->layers[i].kept_input = NULL;
    }
    model_backward(m, B, 1.3f, 0.7f);
    cpu->download(cpu, grads, m->grads, m->n_params * sizeof(float));
}

// The conv VAE of CONV_ENCODER / CONV_DECODER for batch B in training mode, its parameters
// from seed, its input x (B, 64) and eps (B, 8) drawn from data_seed, uploaded and returned.
static void conv_test_model(Model *m, int B, uint64_t seed, uint64_t data_seed, float *x, float *eps) {
    Config cfg = graph_config("vae", CONV_ENCODER, CONV_DECODER, "bernoulli");
    char err[256];
    CHECK(model_create(m, &cfg, cpu, B, err, sizeof err) == 0, "model_create: %s", err);
    model_init_params(m, seed);
    Rng rng;
    rng_init(&rng, data_seed, 1);
    for (int i = 0; i < B * m->input_dim; i++) x[i] = rng_uniform(&rng);
    for (int i = 0; i < B * m->latent_dim; i++) eps[i] = rng_normal(&rng);
    cpu->upload(cpu, m->x, x, (size_t)B * m->input_dim * sizeof(float));
    cpu->upload(cpu, model_eps_buffer(m), eps, (size_t)B * m->latent_dim * sizeof(float));
    m->training_mode = true;
}

// The CPU backend with its library convolutions (oneDNN) switched off, so the conv layers run
// their own im2col / GEMM / col2im path (what CUDA runs, and the CPU without oneDNN); back on.
static Backend cpu_with_library;
static void composed_convolutions_only(void) {
    cpu_with_library = *cpu;
    cpu->conv_forward = NULL;
    cpu->conv_backward_data = NULL;
    cpu->conv_backward_weights = NULL;
}
static void library_convolutions_again(void) { *cpu = cpu_with_library; }

// With the library convolutions (where the build has them), the conv VAE's output and every
// gradient are those of the composed path within float rounding; a forward-only model's
// output too.
static void test_conv_library_matches_composed(void) {
    if (!cpu->conv_forward) {
        test_skip("conv_library_matches_composed", "this build has no oneDNN: the composed path is the only one");
        return;
    }
    const int B = 4;
    float x[4 * 64], eps[4 * 8], out[2][4 * 64];
    float *grads[2];
    for (int run = 0; run < 2; run++) {   // 0: the library, 1: composed
        if (run == 1) composed_convolutions_only();
        Model m;
        conv_test_model(&m, B, 13, 80, x, eps);
        grads[run] = xmalloc(m.n_params * sizeof(float));
        conv_grads(&m, B, false, grads[run]);
        cpu->download(cpu, out[run], model_output(&m), sizeof out[run]);
        int differ = 0;
        for (int i = 0; run == 1 && i < B * m.input_dim; i++) differ += !test_close(out[1][i], out[0][i], 1e-5, 1e-6);
        for (size_t i = 0; run == 1 && i < m.n_params; i++) differ += !test_close(grads[1][i], grads[0][i], 1e-4, 1e-5);
        CHECK(differ == 0, "%d output or gradient values of the library convolutions differ from the composed ones", differ);
        model_destroy(&m);
        if (run == 1) library_convolutions_again();
    }
    free(grads[0]);
    free(grads[1]);
}

// (the composed path: columns are kept only there)
static void test_conv_columns_kept(void) {
    composed_convolutions_only();
    const int B = 3;
    Config cfg = graph_config("vae", CONV_ENCODER, CONV_DECODER, "bernoulli");
    Model m;
    char err[256];
    float x[3 * 64], eps[3 * 8];
    conv_test_model(&m, B, 11, 78, x, eps);
    const NetLayer *first = &m.encoder_net->layers[0];   // conv2d 3 x 3 / 2 over (1, 8, 8): 144 floats
    CHECK(first->kept != NULL && first->kept_floats == 144, "the first conv2d keeps its columns: %zu floats",
          first->kept_floats);
    const NetLayer *transposed = &m.decoder_net->layers[4];   // conv_transpose2d 2 -> 2 over (2, 3, 3)
    CHECK(transposed->kept != NULL && transposed->kept_floats == 18, "conv_transpose2d keeps x': %zu floats",
          transposed->kept_floats);
    float *kept = xmalloc(m.n_params * sizeof(float)), *again = xmalloc(m.n_params * sizeof(float));
    conv_grads(&m, B, false, kept);
    CHECK(first->kept_input == m.x && first->kept_B == B, "the forward tagged the kept columns with its input");
    CHECK(transposed->kept_input == m.decoder_net->outputs[3] && transposed->kept_B == B,
          "the forward tagged the kept x' with its input");
    conv_grads(&m, B, true, again);
    CHECK(memcmp(kept, again, m.n_params * sizeof(float)) == 0,
          "gradients from the kept columns differ from those of im2col again");

    // a forward-only model (evaluation) keeps nothing and holds no gradients or optimizer moments
    // (only its parameters: a quarter of a training model's arena); its forward is the same bits
    Model f;
    CHECK(model_create_forward_only(&f, &cfg, cpu, B, err, sizeof err) == 0, "forward-only model: %s", err);
    float *params = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m, params);
    model_set_params(&f, params);
    cpu->upload(cpu, f.x, x, (size_t)B * f.input_dim * sizeof(float));
    cpu->upload(cpu, model_eps_buffer(&f), eps, (size_t)B * f.latent_dim * sizeof(float));
    f.training_mode = true;
    for (int i = 0; i < f.encoder_net->n_layers; i++)
        CHECK(f.encoder_net->layers[i].kept == NULL, "forward-only encoder layer %d keeps a buffer", i);
    for (int i = 0; i < f.decoder_net->n_layers; i++)
        CHECK(f.decoder_net->layers[i].kept == NULL, "forward-only decoder layer %d keeps a buffer", i);
    float out_m[3 * 64], out_f[3 * 64];
    model_forward(&m, B, EPS_GIVEN);
    cpu->download(cpu, out_m, model_output(&m), sizeof out_m);
    CHECK(f.grads == NULL && f.adam_m == NULL && f.adam_v == NULL, "a forward-only model holds gradients or moments");
    model_forward(&f, B, EPS_GIVEN);
    cpu->download(cpu, out_f, model_output(&f), sizeof out_f);
    CHECK(memcmp(out_m, out_f, sizeof out_m) == 0, "the forward-only model's output differs");
    free(params);
    model_destroy(&f);
    free(kept);
    free(again);
    model_destroy(&m);

    // 7 x 7 over (1, 8, 8): 3,136 column floats an example against 64 + 128 of activations
    cfg = graph_config("vae", "[{\"conv2d\": 2, \"kernel\": 7, \"padding\": 3}, \"tanh\", \"flatten\"]",
                       CONV_DECODER, "bernoulli");
    CHECK(model_create(&m, &cfg, cpu, B, err, sizeof err) == 0, "model_create: %s", err);
    CHECK(m.encoder_net->layers[0].kept == NULL && m.encoder_net->layers[0].kept_floats == 0,
          "a 7 x 7 conv2d keeps %zu column floats an example", m.encoder_net->layers[0].kept_floats);
    model_destroy(&m);
    library_convolutions_again();
}

// The GEMM -> col2im paths (conv_transpose2d's forward, conv2d's input gradient) in chunks of
// images (Backend.col2im_chunks, forced here to 1, 2, 3 and B chunks): the output and every
// gradient the same bits as the whole batch at once with OpenBLAS's SkylakeX-family kernels
// (a GEMM entry does not depend on the other columns), within rounding with its others.
static int forced_chunks = 1;
static int forced_col2im_chunks(Backend *be, size_t floats_per_image, int inner, int B) {
    (void)be;
    (void)floats_per_image;
    (void)inner;
    return forced_chunks < B ? forced_chunks : B;
}

static void test_conv_col2im_chunks(void) {   // (the composed path's)
    composed_convolutions_only();
    const int B = 5;
    Model m;
    float x[5 * 64], eps[5 * 8];
    conv_test_model(&m, B, 12, 79, x, eps);
    const char *core = openblas_get_corename();
    const bool bitwise = backend_cpu_blas_splits_exact(core);
    int (*const policy)(Backend *, size_t, int, int) = cpu->col2im_chunks;
    cpu->col2im_chunks = forced_col2im_chunks;
    const int chunk_counts[] = {1, 2, 3, B};   // images 5 / 3, 2 / 2, 2, 1 / 1 each
    float *want = xmalloc(m.n_params * sizeof(float)), *got = xmalloc(m.n_params * sizeof(float));
    float out_want[5 * 64], out_got[5 * 64];
    for (size_t t = 0; t < sizeof chunk_counts / sizeof chunk_counts[0]; t++) {
        forced_chunks = chunk_counts[t];
        conv_grads(&m, B, false, t == 0 ? want : got);
        cpu->download(cpu, t == 0 ? out_want : out_got, model_output(&m), sizeof out_want);
        if (t == 0) continue;
        int differ = 0;
        for (int i = 0; i < B * m.input_dim; i++)
            differ += bitwise ? memcmp(&out_want[i], &out_got[i], sizeof(float)) != 0
                              : !test_close(out_got[i], out_want[i], 1e-5, 1e-6);
        for (size_t i = 0; i < m.n_params; i++)
            differ += bitwise ? memcmp(&want[i], &got[i], sizeof(float)) != 0 : !test_close(got[i], want[i], 1e-4, 1e-5);
        CHECK(differ == 0, "%d chunks: %d output or gradient values differ from the whole batch's (%s, OpenBLAS %s "
              "kernels)", chunk_counts[t], differ, bitwise ? "bit for bit" : "within rounding", core ? core : "?");
    }
    cpu->col2im_chunks = policy;
    free(want);
    free(got);
    model_destroy(&m);
    library_convolutions_again();
}

// A small MADE over input_dim 6 (masked_linear layers and activations).
static Config made_config_masks(const char *network, const char *ordering, int masks) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"made\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"binarize\": \"static\"},"
             " \"model\": {\"kind\": \"made\", \"input_dim\": 6, \"network\": %s, \"ordering\": \"%s\","
             " \"masks\": %d}, \"loss\": {\"w_rec\": 1.3},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}", network, ordering,
             masks);
    return config_parsed(json, "made");
}

static Config made_config(const char *network, const char *ordering) {
    return made_config_masks(network, ordering, 1);
}

// every weight and bias of a MADE (masked ones included: their gradient must be 0,
// as the finite difference through W * mask is)
static void test_made_gradients(void) {
    gradient_check(made_config("[{\"masked_linear\": 7}, \"tanh\", {\"masked_linear\": 6}]", "natural"),
                   "made one hidden layer");
    gradient_check(made_config("[{\"masked_linear\": 5}, \"sigmoid\", {\"masked_linear\": 8}, \"tanh\","
                               " {\"masked_linear\": 6}]", "random"), "made two hidden layers, random order");
    gradient_check(made_config_masks("[{\"masked_linear\": 7}, \"tanh\", {\"masked_linear\": 6}]", "random", 3),
                   "made with 3 mask sets (set 0 at step 0)");
}

// The autoregressive property, directly: changing input pixel d changes no output o
// whose position in the ordering is <= d's (o may depend on pixels before it only),
// and the masks are not empty: some later output does change.
static void test_made_autoregressive(void) {
    const char *networks[2] = {"[{\"masked_linear\": 12}, \"relu\", {\"masked_linear\": 6}]",
                               "[{\"masked_linear\": 9}, \"tanh\", {\"masked_linear\": 11}, \"leaky_relu\","
                               " {\"masked_linear\": 6}]"};
    const char *orderings[2] = {"natural", "random"};
    for (int t = 0; t < 4 + 3; t++) {   // then the 3 mask sets of a connectivity-agnostic MADE
        const int set = t < 4 ? 0 : t - 4;
        Config cfg = t < 4 ? made_config(networks[t / 2], orderings[t % 2])
                           : made_config_masks(networks[1], "random", 3);
        Model m;
        char err[512];
        CHECK(model_create(&m, &cfg, cpu, 1, err, sizeof err) == 0, "create: %s", err);
        model_init_params(&m, 9);
        if (t >= 4) model_made_use_set(&m, set);
        const int D = 6;
        int32_t degree[6];
        model_made_input_degrees(&cfg, set, degree);
        float x[6] = {1, 0, 1, 1, 0, 1}, base[6], out[6];
        cpu->upload(cpu, m.x, x, sizeof x);
        model_forward(&m, 1, EPS_ZERO);
        cpu->download(cpu, base, model_output(&m), sizeof base);
        int later_changed = 0;
        for (int d = 0; d < D; d++) {
            float y[6];
            memcpy(y, x, sizeof y);
            y[d] = 1.0f - y[d];
            cpu->upload(cpu, m.x, y, sizeof y);
            model_forward(&m, 1, EPS_ZERO);
            cpu->download(cpu, out, model_output(&m), sizeof out);
            for (int o = 0; o < D; o++) {
                if (degree[o] <= degree[d])
                    CHECK(out[o] == base[o], "case %d (mask set %d): output %d (position %d) moved with input "
                          "%d (position %d)", t, set, o, degree[o], d, degree[d]);
                else
                    later_changed += out[o] != base[o];
            }
        }
        CHECK(later_changed > 0, "case %d (mask set %d): no output depends on any input", t, set);
        // the first pixel in the ordering depends on nothing: its logit is a constant
        model_destroy(&m);
    }
    // the ordering is a permutation: degrees 1..D each once
    Config cfg = made_config(networks[0], "random");
    int32_t degree[6], other[6];
    model_made_input_degrees(&cfg, 0, degree);
    model_made_input_degrees(&cfg, 1, other);
    CHECK(memcmp(degree, other, sizeof degree) != 0, "mask set 1 has its own random ordering");
    int seen = 0;
    for (int d = 0; d < 6; d++) seen |= 1 << (degree[d] - 1);
    CHECK(seen == 63, "random ordering is a permutation of 1..6");
}

// model.masks > 1: the ensemble's -log p(x) = -log mean_k p_k(x) lies between the best
// single set's and the sets' mean (Jensen), example by example; the masks in use are
// restored after it; a training forward takes set (step mod masks).
static void test_made_mask_ensemble(void) {
    Config cfg = made_config_masks("[{\"masked_linear\": 9}, \"tanh\", {\"masked_linear\": 6}]", "random", 4);
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 4);
    float x[18] = {1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0};
    cpu->upload(cpu, m.x, x, sizeof x);
    float single[4][3], ensemble[3];
    float *before = xmalloc(m.n_buffers * sizeof(float)), *after = xmalloc(m.n_buffers * sizeof(float));
    for (int k = 0; k < 4; k++) {
        model_made_use_set(&m, k);
        model_forward(&m, 3, EPS_ZERO);
        model_loss(&m, 3);
        cpu->download(cpu, single[k], m.rec_row, sizeof single[k]);
    }
    model_get_buffers(&m, before);
    model_made_ensemble_loss(&m, 3);
    cpu->download(cpu, ensemble, m.rec_row, sizeof ensemble);
    model_get_buffers(&m, after);
    CHECK(memcmp(before, after, m.n_buffers * sizeof(float)) == 0, "the masks in use are restored");
    for (int b = 0; b < 3; b++) {
        double lo = single[0][b], mean = 0, spread = 0;
        for (int k = 0; k < 4; k++) {
            lo = fmin(lo, single[k][b]);
            mean += single[k][b] / 4.0;
            spread = fmax(spread, fabs(single[k][b] - single[0][b]));
        }
        CHECK(ensemble[b] >= lo - 1e-4 && ensemble[b] <= mean + 1e-4, "example %d: ensemble %g outside [%g, %g]",
              b, ensemble[b], lo, mean);
        CHECK(spread > 1e-3, "example %d: the mask sets give the same likelihood", b);
    }
    // a training forward at step 6 uses set 6 mod 4 = 2
    StepState s;
    model_read_step_state(&m, &s);
    s.step = 6;
    cpu->upload(cpu, m.state, &s, sizeof s);
    m.training_mode = true;
    model_forward(&m, 3, EPS_ZERO);
    m.training_mode = false;
    model_get_buffers(&m, after);
    model_made_use_set(&m, 2);
    model_get_buffers(&m, before);
    CHECK(memcmp(before, after, m.n_buffers * sizeof(float)) == 0, "step 6 trains with mask set 2");
    free(before);
    free(after);
    model_destroy(&m);
}

// model.masks > 1: sampling draws with mask set 0 (src/model_made.c, model_made_sample) and puts the
// set in use back -- the buffers a checkpoint or resume file then saves (train's progress images sample
// between model.safetensors and resume.safetensors). With set 2 in use: the samples are set 0's (the
// same draws as with set 0 in use), and set 2 is in use again after them.
static void test_made_sample_restores_masks(void) {
    Config cfg = made_config_masks("[{\"masked_linear\": 9}, \"tanh\", {\"masked_linear\": 6}]", "random", 4);
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 4);
    float *set2 = xmalloc(m.n_buffers * sizeof(float)), *after = xmalloc(m.n_buffers * sizeof(float));
    float from_set0[5 * 6], from_set2[5 * 6];
    model_made_use_set(&m, 0);
    model_made_sample(&m, 5, 17, from_set0);
    model_made_use_set(&m, 2);
    model_get_buffers(&m, set2);
    model_made_sample(&m, 5, 17, from_set2);
    model_get_buffers(&m, after);
    CHECK(memcmp(set2, after, m.n_buffers * sizeof(float)) == 0, "sampling left other masks in use than set 2");
    CHECK(memcmp(from_set0, from_set2, sizeof from_set0) == 0, "the samples depend on the set in use (want set 0's)");
    free(set2);
    free(after);
    model_destroy(&m);
}

// A MADE's sampling draws pixel d as 1 with probability sigmoid(logit_d): with the last
// layer's weights 0 and its biases +30 (p = 1 in float) every pixel comes out 1, with -30
// (p ~ 1e-13) every pixel 0 -- a comparison turned around would give the opposite images.
static void test_made_sample_follows_the_logits(void) {
    Config cfg = made_config("[{\"masked_linear\": 7}, \"tanh\", {\"masked_linear\": 6}]", "natural");
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 3);
    const NetLayer *last = &m.decoder_net->layers[m.decoder_net->n_layers - 1];
    const size_t n_weights = (size_t)last->conf.linear.out * last->conf.linear.in;
    float *params = xmalloc(m.n_params * sizeof(float));
    const int n = 7, D = 6;   // more samples than the batch: two batches
    float pixels[7 * 6];
    for (int sign = 1; sign >= -1; sign -= 2) {
        model_get_params(&m, params);
        for (size_t k = 0; k < n_weights; k++) params[last->param_offset + k] = 0.0f;
        for (int o = 0; o < last->conf.linear.out; o++) params[last->param_offset + n_weights + o] = 30.0f * sign;
        model_set_params(&m, params);
        model_made_sample(&m, n, 11, pixels);
        int ones = 0;
        for (int i = 0; i < n * D; i++) ones += pixels[i] == 1.0f;
        CHECK(ones == (sign > 0 ? n * D : 0), "biases %+d: %d of %d pixels are 1 (want %s)", 30 * sign, ones, n * D,
              sign > 0 ? "all" : "none");
    }
    free(params);
    model_destroy(&m);
}

// The masks of a natural-order MADE (input d has degree d + 1), read back from its buffers:
// each hidden unit k of degree m(k) in [1, D - 1] sees exactly the inputs 0 .. m(k) - 1 (a
// prefix of 1 to D - 1 ones: none would leave it a constant, all would let some output see
// itself through it), and output o sees unit k exactly when its degree o + 1 > m(k). With
// 200 units every degree 1 .. D - 1 is drawn (so both ends of the range are checked).
static void test_made_natural_masks(void) {
    const char *json =
        "{\"name\": \"made\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"binarize\": \"static\"},"
        " \"model\": {\"kind\": \"made\", \"input_dim\": 10, \"network\": [{\"masked_linear\": 200}, \"relu\","
        " {\"masked_linear\": 10}], \"ordering\": \"natural\"},"
        " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}";
    Config cfg = config_parsed(json, "made natural masks");
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 3);
    const int D = 10, H = 200;
    const NetLayer *first = &m.decoder_net->layers[0], *last = &m.decoder_net->layers[m.decoder_net->n_layers - 1];
    CHECK(first->conf.linear.in == D && first->conf.linear.out == H && last->conf.linear.in == H &&
          last->conf.linear.out == D, "layer sizes");
    float *buffers = xmalloc(m.n_buffers * sizeof(float));
    model_get_buffers(&m, buffers);
    const float *hidden = buffers + first->buffer_offset, *output = buffers + last->buffer_offset;
    int degree[200], seen[10] = {0};
    for (int k = 0; k < H; k++) {
        int ones = 0;
        while (ones < D && hidden[(size_t)k * D + ones] == 1.0f) ones++;
        for (int j = ones; j < D; j++)
            CHECK(hidden[(size_t)k * D + j] == 0.0f, "hidden unit %d: input %d after the prefix of %d is %g", k, j,
                  ones, hidden[(size_t)k * D + j]);
        CHECK(ones >= 1 && ones <= D - 1, "hidden unit %d sees %d inputs (want 1 .. %d)", k, ones, D - 1);
        degree[k] = ones;
        if (ones >= 0 && ones < D) seen[ones]++;
    }
    for (int d = 1; d < D; d++) CHECK(seen[d] > 0, "no hidden unit of degree %d among %d", d, H);
    for (int o = 0; o < D; o++)
        for (int k = 0; k < H; k++) {
            const float want = o + 1 > degree[k] ? 1.0f : 0.0f;
            CHECK(output[(size_t)o * H + k] == want, "output %d, hidden unit %d (degree %d): mask %g, want %g", o, k,
                  degree[k], output[(size_t)o * H + k], want);
        }
    free(buffers);
    model_destroy(&m);
}

// A tiny VQ-VAE over 8x8 images (a conv encoder to codes of dimension 3 on a 4x4 grid, a
// transposed conv decoder), its model.codebook object given: K = 5 unless it says otherwise.
static Config tiny_vq_config(const char *codebook, const char *label) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"name\": \"vq\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\"}, \"model\": {"
             "\"kind\": \"vq_vae\", \"input_dim\": 64, \"latent_dim\": 3, \"encoder\": [{\"conv2d\": 3, \"kernel\": 4,"
             " \"stride\": 2, \"padding\": 1}], \"codebook\": %s,"
             " \"decoder\": [{\"conv_transpose2d\": 1, \"kernel\": 4, \"stride\": 2, \"padding\": 1}]},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01}}", codebook);
    return config_parsed(json, label);
}

// B images of U(0, 1) pixels (a fixed stream) into a model's input.
static void upload_uniform_pixels(Model *m, int B) {
    float *x = xmalloc((size_t)B * (size_t)m->input_dim * sizeof(float));
    Rng rng;
    rng_init(&rng, 8, 0);
    for (size_t i = 0; i < (size_t)B * (size_t)m->input_dim; i++) x[i] = rng_uniform(&rng);
    cpu->upload(cpu, m->x, x, (size_t)B * (size_t)m->input_dim * sizeof(float));
    free(x);
}

// A VQ-VAE's per-example VQ term (kl_row after a forward) against a recomputation from the
// encoder output z_e (the quantiser's columns) and the chosen codes z_q: with the codebook
// trained by the loss it is (1 + beta) ||z_e - z_q||^2 (codebook + commitment); with the
// EMA codebook it is the commitment beta ||z_e - z_q||^2 alone. z_q rows are codebook rows.
static void test_vq_term_per_update(void) {
    for (int ema = 0; ema < 2; ema++) {
        Config cfg = tiny_vq_config(ema ? "{\"size\": 5, \"beta\": 0.4, \"update\": \"ema\"}"
                                        : "{\"size\": 5, \"beta\": 0.4, \"update\": \"loss\"}",
                                    ema ? "vq ema" : "vq loss");
        Model m;
        char err[512];
        CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
        model_init_params(&m, 6);
        const int B = 3, D = m.vq_dim, S = m.vq_positions, N = B * S;
        CHECK(D == 3 && S == 16, "vq shape: D %d, S %d", D, S);
        upload_uniform_pixels(&m, B);
        model_forward(&m, B, EPS_ZERO);
        float zt[3 * 48], zq[3 * 48], kl[3];
        cpu->download(cpu, zt, m.vq_zt, sizeof zt);   // z_e (D, B S)
        cpu->download(cpu, zq, m.z, sizeof zq);       // z_q (B, D, S)
        cpu->download(cpu, kl, m.kl_row, sizeof kl);
        const double beta = 0.4, weight = ema ? beta : 1.0 + beta;
        for (int b = 0; b < B; b++) {
            double sum = 0.0;
            for (int d = 0; d < D; d++)
                for (int s = 0; s < S; s++) {
                    double diff = (double)zt[(size_t)d * N + (size_t)b * S + s] - (double)zq[((size_t)b * D + d) * S + s];
                    sum += diff * diff;
                }
            CHECK(sum > 1e-6, "%s: example %d: z_e equals z_q", ema ? "ema" : "loss", b);
            CHECK(fabs(kl[b] - weight * sum) <= 1e-5 * (1.0 + weight * sum),
                  "%s: example %d: VQ term %.8g, want %.8g x ||z_e - z_q||^2 = %.8g", ema ? "ema" : "loss", b,
                  kl[b], weight, weight * sum);
        }
        model_destroy(&m);
    }
}

// The EMA codebook's dead-code restart: after the EMA update, a code whose count is under
// restart_dead x N / K (a fraction of the mean count over the batch's N = B S vectors) restarts
// at one of the batch's vectors with count 1; one above it keeps its EMA count. Counts set by
// hand between a training forward and its backward (decay 0.5, restart_dead 0.5, K = 5, N = 48:
// the threshold 4.8): the code the fewest vectors picked (at most 9 of 48) at 0, so 0 + half its
// batch count is under 4.8 and it must restart; the others at 30, so 15 + half theirs: above the
// threshold, and under restart_dead x N = 24 for any code fewer than 18 vectors picked.
static void test_vq_restart_dead_threshold(void) {
    Config cfg = tiny_vq_config("{\"size\": 5, \"beta\": 0.4, \"update\": \"ema\", \"decay\": 0.5, \"restart_dead\": 0.5}",
                                "vq restart");
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 6);
    const int B = 3, K = m.vq_size, N = B * m.vq_positions;
    CHECK(K == 5 && N == 48, "vq shape: K %d, N %d", K, N);
    upload_uniform_pixels(&m, B);
    m.training_mode = true;
    model_forward(&m, B, EPS_ZERO);
    int32_t codes[48];
    cpu->download(cpu, codes, m.vq_codes, sizeof codes);
    int picked[5] = {0}, rarest = 0, out_of_range = 0;
    for (int n = 0; n < N; n++) {
        if (codes[n] < 0 || codes[n] >= K) out_of_range++;
        else picked[codes[n]]++;
    }
    CHECK(out_of_range == 0, "%d codes outside 0..%d", out_of_range, K - 1);
    for (int k = 1; k < K; k++)
        if (picked[k] < picked[rarest]) rarest = k;
    float preset[5];
    for (int k = 0; k < K; k++) preset[k] = k == rarest ? 0.0f : 30.0f;
    cpu->upload(cpu, m.buffers + m.ema_offset, preset, sizeof preset);
    model_backward(&m, B, 1.0f, 1.0f);
    m.training_mode = false;
    float counts[5];
    cpu->download(cpu, counts, m.buffers + m.ema_offset, sizeof counts);
    for (int k = 0; k < K; k++) {
        const float ema = 0.5f * preset[k] + 0.5f * (float)picked[k];   // the EMA update's count
        const bool dead = ema < 0.5f * (float)N / (float)K;
        CHECK(dead ? counts[k] == 1.0f : fabsf(counts[k] - ema) <= 1e-5f * ema,
              "code %d: count %.6g after the step (EMA count %.6g, %d of %d vectors; threshold 0.5 x %d / %d = %.3g: %s)",
              k, counts[k], ema, picked[k], N, N, K, 0.5 * N / K, dead ? "restarted at 1" : "kept");
        CHECK(dead == (k == rarest), "code %d (picked %d times): EMA count %.6g, meant to be %s 4.8", k, picked[k],
              ema, k == rarest ? "under" : "over");
    }
    // (of the 4 kept codes, at most 2 take 18 or more of the 48 vectors: the others' EMA counts are
    // under restart_dead x N = 24, where a threshold without the / K would restart them)
    model_destroy(&m);
}

// A small PixelCNN over 8x8 images (input_dim 64): a type-A 5x5, a residual block with a
// type-B 3x3 between 1x1 convolutions, the 1x1 logits.
#define PIXELCNN_NET(ACT) "[{\"masked_conv2d_a\": 4, \"kernel\": 5}, \"" ACT "\", {\"conv2d\": 3, \"kernel\": 1}, \"" ACT "\"," \
    " {\"masked_conv2d_b\": 3, \"kernel\": 3}, \"" ACT "\", {\"conv2d\": 4, \"kernel\": 1}, {\"residual\": 5}, \"" ACT "\"," \
    " {\"conv2d\": 1, \"kernel\": 1}]"

static Config pixelcnn_config(const char *network) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"pixelcnn\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"binarize\": \"static\"},"
             " \"model\": {\"kind\": \"pixelcnn\", \"input_dim\": 64, \"network\": %s},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}", network);
    return config_parsed(json, "pixelcnn");
}

// every parameter of a PixelCNN with a residual block (masked weights: zero gradient)
static void test_pixelcnn_gradients(void) {
    gradient_check(pixelcnn_config(PIXELCNN_NET("tanh")), "pixelcnn (type A, residual block with type B)");
}

// The receptive field, directly: flipping pixel p moves no output at a raster position <= p
// (type A hides a pixel from its own output; type B and the residual path keep it so), and some
// later output moves. Checked for every p of an 8x8 image, with trained-like random weights.
static void test_pixelcnn_receptive_field(void) {
    Config cfg = pixelcnn_config(PIXELCNN_NET("relu"));
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 1, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 21);
    float x[64], base[64], out[64];
    Rng rng;
    rng_init(&rng, 3, 1);
    for (int i = 0; i < 64; i++) x[i] = rng_uniform(&rng) < 0.5f ? 1.0f : 0.0f;
    cpu->upload(cpu, m.x, x, sizeof x);
    model_forward(&m, 1, EPS_ZERO);
    cpu->download(cpu, base, model_output(&m), sizeof base);
    int leaks = 0, later_changed = 0, first_leak = -1;
    for (int p = 0; p < 64; p++) {
        float y[64];
        memcpy(y, x, sizeof y);
        y[p] = 1.0f - y[p];
        cpu->upload(cpu, m.x, y, sizeof y);
        model_forward(&m, 1, EPS_ZERO);
        cpu->download(cpu, out, model_output(&m), sizeof out);
        for (int o = 0; o < 64; o++) {
            if (o <= p && out[o] != base[o]) {
                if (leaks++ == 0) first_leak = p * 64 + o;
            }
            if (o > p) later_changed += out[o] != base[o];
        }
    }
    CHECK(leaks == 0, "%d outputs moved with a pixel at or after them (first: pixel %d -> output %d)", leaks,
          first_leak / 64, first_leak % 64);
    CHECK(later_changed > 64, "only %d later outputs depend on earlier pixels", later_changed);
    model_destroy(&m);
}

// A tiny VQ-VAE checkpoint over 8x8 images (codes on a 4x4 grid, K = 5) at path, for priors.
static void write_vq_checkpoint(const char *path) {
    Config cfg = tiny_vq_config("{\"size\": 5}", "vq");
    char err[512];
    Model m;
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "vq create: %s", err);
    model_init_params(&m, 2);
    CHECK(checkpoint_save(&m, path, err, sizeof err) == 0, "vq save: %s", err);
    model_destroy(&m);
}

// A fresh temp file (path: a mkstemp template, filled in) holding write_vq_checkpoint's VQ-VAE.
static bool temp_vq_checkpoint(char *path) {
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return false;
    close(fd);
    write_vq_checkpoint(path);
    return true;
}

// A checkpoint holding every tensor of the model and one more (its checksum right): refused,
// naming the tensor that is not the model's.
static void test_checkpoint_extra_tensor(void) {
    char path[] = "/tmp/cuvae_test_extra_XXXXXX";
    if (!temp_vq_checkpoint(path)) return;
    char err[512] = "";
    StFile f;
    CHECK(safetensors_read(path, &f, err, sizeof err) == 0, "read: %s", err);
    StTensor tensors[64];
    StMeta meta[8];
    int n_meta = 0;
    const float extra_values[3] = {1.0f, 2.0f, 3.0f};
    for (int i = 0; i < f.n_tensors && i < 63; i++) tensors[i] = f.tensors[i];
    memset(&tensors[f.n_tensors], 0, sizeof tensors[0]);
    snprintf(tensors[f.n_tensors].name, sizeof tensors[0].name, "stray.weight");
    tensors[f.n_tensors].rank = 1;
    tensors[f.n_tensors].shape[0] = 3;
    tensors[f.n_tensors].data = extra_values;
    for (int i = 0; i < f.n_meta && n_meta < 8; i++)
        if (strcmp(f.meta[i].key, "crc32") != 0 && strcmp(f.meta[i].key, "crc32_entries") != 0)
            meta[n_meta++] = f.meta[i];   // (the writer adds them)
    CHECK(safetensors_write(path, tensors, f.n_tensors + 1, meta, n_meta, err, sizeof err) == 0, "write: %s", err);
    Config cfg;
    CHECK(checkpoint_read_config(path, &cfg, NULL, 0, err, sizeof err) == 0, "config: %s", err);
    Model m;
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    CHECK(checkpoint_load_params(&m, path, err, sizeof err) != 0, "a checkpoint with a stray tensor was loaded");
    CHECK(strstr(err, "tensor 'stray.weight' is not one of the model's") != NULL, "message: %s", err);
    model_destroy(&m);
    safetensors_free(&f);
    unlink(path);
}

// A VAE saved and loaded into a model of other initial weights: every parameter back, bit for
// bit (a tensor written from or read into the wrong place of the arena shows here); and a file
// whose one 2-D weight has a longer last dimension (its data sized to match, its checksum right)
// is refused naming the shapes, every dimension compared.
static void test_checkpoint_round_trip_and_shapes(void) {
    char path[] = "/tmp/cuvae_test_round_trip_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return;
    close(fd);
    Config cfg = small_config(MODEL_VAE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    char err[512] = "";
    Model saved, loaded;
    CHECK(model_create(&saved, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    CHECK(model_create(&loaded, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&saved, 11);
    model_init_params(&loaded, 12);
    const size_t bytes = saved.n_params * sizeof(float);
    CHECK(memcmp(saved.params, loaded.params, bytes) != 0, "two seeds gave the same weights");
    CHECK(checkpoint_save(&saved, path, err, sizeof err) == 0, "save: %s", err);
    CHECK(checkpoint_load_params(&loaded, path, err, sizeof err) == 0, "load: %s", err);
    size_t differing = 0, first = 0;
    for (size_t i = saved.n_params; i-- > 0;)
        if (memcmp(&saved.params[i], &loaded.params[i], sizeof(float)) != 0) {
            differing++;
            first = i;
        }
    CHECK(differing == 0, "%zu of %zu parameters differ after save and load (first at %zu)", differing,
          saved.n_params, first);
    StFile f;
    CHECK(safetensors_read(path, &f, err, sizeof err) == 0, "read: %s", err);
    StTensor tensors[64];
    StMeta meta[8];
    int n_meta = 0, widened = -1;
    float *wide = NULL;
    for (int i = 0; i < f.n_tensors && i < 64; i++) {
        tensors[i] = f.tensors[i];
        if (widened < 0 && tensors[i].rank == 2) {   // one column more, the values kept
            widened = i;
            const int64_t rows = tensors[i].shape[0], cols = tensors[i].shape[1];
            wide = xcalloc((size_t)(rows * (cols + 1)), sizeof(float));
            for (int64_t r = 0; r < rows; r++)
                memcpy(wide + r * (cols + 1), f.tensors[i].data + r * cols, (size_t)cols * sizeof(float));
            tensors[i].shape[1] = cols + 1;
            tensors[i].data = wide;
        }
    }
    for (int i = 0; i < f.n_meta && n_meta < 8; i++)
        if (strcmp(f.meta[i].key, "crc32") != 0 && strcmp(f.meta[i].key, "crc32_entries") != 0)
            meta[n_meta++] = f.meta[i];   // (the writer adds them)
    CHECK(widened >= 0, "no 2-D tensor in the VAE's checkpoint");
    char name[ST_MAX_NAME] = "";
    if (widened >= 0) snprintf(name, sizeof name, "%s", tensors[widened].name);
    CHECK(safetensors_write(path, tensors, f.n_tensors, meta, n_meta, err, sizeof err) == 0, "write: %s", err);
    safetensors_free(&f);
    free(wide);
    char want[200];
    snprintf(want, sizeof want, "tensor %s: shape [", name);
    CHECK(checkpoint_load_params(&loaded, path, err, sizeof err) != 0 && strstr(err, want) &&
              strstr(err, "model needs"), "a weight one column wider: %s", err);
    model_destroy(&saved);
    model_destroy(&loaded);
    unlink(path);
}

// A state that is not finite (src/checkpoint.c): checkpoint_first_non_finite names the first tensor
// and element (a weight's NaN before Adam's moments), or Adam's m / v; checkpoint_save refuses a
// weight that is not finite (its safetensors_check_finite_before_write: train.c's own check comes
// first, so this one is not reached from the CLI) and writes nothing; Adam's moments are not in a
// checkpoint, so an infinite one is no reason for it to refuse.
static void test_checkpoint_refuses_non_finite(void) {
    char dir[] = "/tmp/cuvae_test_non_finite_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[600], what[256] = "", err[1024] = "", want[1400];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    Config cfg = small_config(MODEL_VAE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    Model m;
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 11);
    CHECK(checkpoint_first_non_finite(&m, what, sizeof what) == 0, "a fresh model: %s", what);
    static ModelTensor slices[MODEL_MAX_TENSORS];
    const int n = model_list_tensors(&m, slices);
    CHECK(n >= 2 && !slices[1].buffer, "tensors: %d", n);
    float *params = xmalloc(m.n_params * sizeof(float)), *saved = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m, saved);
    memcpy(params, saved, m.n_params * sizeof(float));
    params[slices[1].offset + 2] = NAN;   // the second tensor's element 2, and an inf after it
    params[slices[1].offset + 3] = INFINITY;
    model_set_params(&m, params);
    char want_what[300];
    snprintf(want_what, sizeof want_what, "tensor %s, element 2 is NaN", slices[1].name);
    CHECK(checkpoint_first_non_finite(&m, what, sizeof what) == 1 && strcmp(what, want_what) == 0,
          "a NaN weight: \"%s\" (want \"%s\")", what, want_what);
    CHECK(checkpoint_save(&m, path, err, sizeof err) != 0, "a NaN weight was saved");
    snprintf(want, sizeof want, "%s: not written: tensor %s, element 2 is NaN: the run diverged (its loss stayed "
             "finite); the file holds the last finished epoch, if one was; try a lower train.lr", path, slices[1].name);
    CHECK(strcmp(err, want) == 0, "message: %s", err);
    CHECK(access(path, F_OK) != 0, "a refused save left %s", path);
    model_set_params(&m, saved);   // finite weights, Adam's m infinite at element 7
    float *moment = xcalloc(m.n_params, sizeof(float));
    moment[7] = -INFINITY;
    cpu->upload(cpu, m.adam_m, moment, m.n_params * sizeof(float));
    CHECK(checkpoint_first_non_finite(&m, what, sizeof what) == 1 && strcmp(what, "Adam's m, element 7 is infinite") == 0,
          "Adam's m: \"%s\"", what);
    CHECK(checkpoint_save(&m, path, err, sizeof err) == 0, "finite weights with an infinite Adam moment: %s", err);
    unlink(path);
    rmdir(dir);
    free(moment);
    free(params);
    free(saved);
    model_destroy(&m);
}

// A checkpoint replaced (atomically, as train's epochs and --overwrite do) after a command first
// read it: checkpoint_check_unchanged refuses, naming it; the same file untouched passes.
static void test_checkpoint_replaced_while_read(void) {
    char path[] = "/tmp/cuvae_test_replaced_XXXXXX";
    if (!temp_vq_checkpoint(path)) return;
    FileStamp first;
    file_stamp(path, &first);
    char err[512] = "";
    CHECK(first.known && checkpoint_check_unchanged(path, &first, err, sizeof err) == 0, "untouched: %s", err);
    char other[600];
    snprintf(other, sizeof other, "%s.new", path);
    write_vq_checkpoint(other);   // the same bytes, another file: a rename replaces the inode
    CHECK(rename(other, path) == 0, "rename");
    CHECK(checkpoint_check_unchanged(path, &first, err, sizeof err) != 0 &&
          strstr(err, "replaced while this command read it") != NULL, "replaced: %s", err);
    FileStamp none;
    file_stamp("/nonexistent/cuvae", &none);
    CHECK(!none.known && checkpoint_check_unchanged("/nonexistent/cuvae", &none, err, sizeof err) == 0,
          "a file that could not be stat'ed at first is not compared");
    unlink(path);
}

static Config prior_config(const char *vq_path);

// One command reads a checkpoint's metadata several times; the file is read and checked once
// while it stays the same file (read_metadata's cache), and a replacement is read again: its
// new config, or its damage, is what the next read says.
static void test_checkpoint_metadata_follows_the_file(void) {
    char path[] = "/tmp/cuvae_test_meta_XXXXXX";
    if (!temp_vq_checkpoint(path)) return;
    char err[512] = "";
    Config cfg;
    const unsigned long reads_before = checkpoint_metadata_reads();
    CHECK(checkpoint_read_config(path, &cfg, NULL, 0, err, sizeof err) == 0 && strcmp(cfg.name, "vq") == 0,
          "first read: %s", err);
    CHECK(checkpoint_read_config(path, &cfg, NULL, 0, err, sizeof err) == 0 && strcmp(cfg.name, "vq") == 0,
          "second read: %s", err);
    char crc[16];
    CHECK(checkpoint_metadata_value(path, "crc32", crc, sizeof crc, err, sizeof err) == 0 && strlen(crc) == 8,
          "crc32 from the kept metadata: '%s' %s", crc, err);
    CHECK(checkpoint_metadata_reads() - reads_before == 1, "the unchanged file was read %lu times for 3 reads of "
          "its metadata", checkpoint_metadata_reads() - reads_before);
    // a prior's config reads its VQ-VAE's inside each read of its own: both stay kept
    char prior_path[] = "/tmp/cuvae_test_meta_prior_XXXXXX";
    int fd = mkstemp(prior_path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        close(fd);
        Config prior_cfg = prior_config(path);
        Model prior;
        CHECK(model_create(&prior, &prior_cfg, cpu, 1, err, sizeof err) == 0, "prior: %s", err);
        model_init_params(&prior, 3);
        CHECK(checkpoint_save(&prior, prior_path, err, sizeof err) == 0, "prior save: %s", err);
        model_destroy(&prior);
        const unsigned long reads_prior = checkpoint_metadata_reads();
        for (int k = 0; k < 3; k++)
            CHECK(checkpoint_read_config(prior_path, &cfg, NULL, 0, err, sizeof err) == 0, "prior read: %s", err);
        CHECK(checkpoint_metadata_reads() - reads_prior == 1, "3 reads of a prior's config read %lu whole files "
              "(the prior once; its VQ-VAE kept)", checkpoint_metadata_reads() - reads_prior);
        unlink(prior_path);
    }
    // replaced (write then rename, as train does) by the same model under another name
    StFile f;
    CHECK(safetensors_read(path, &f, err, sizeof err) == 0, "read: %s", err);
    StMeta meta[8];
    int n_meta = 0;
    char *renamed = NULL;
    for (int i = 0; i < f.n_meta && n_meta < 8; i++) {
        if (strcmp(f.meta[i].key, "crc32") == 0 || strcmp(f.meta[i].key, "crc32_entries") == 0) continue;
        meta[n_meta] = f.meta[i];
        if (strcmp(f.meta[i].key, "config") == 0) {
            const char *at = strstr(f.meta[i].value, "\"name\": \"vq\"");
            CHECK(at != NULL, "the stored config names the run");
            if (at) {
                renamed = xmalloc(strlen(f.meta[i].value) + 8);
                snprintf(renamed, strlen(f.meta[i].value) + 8, "%.*s\"name\": \"vq_two\"%s",
                         (int)(at - f.meta[i].value), f.meta[i].value, at + strlen("\"name\": \"vq\""));
                meta[n_meta].value = renamed;
            }
        }
        n_meta++;
    }
    char other[600];
    snprintf(other, sizeof other, "%s.new", path);
    CHECK(safetensors_write(other, f.tensors, f.n_tensors, meta, n_meta, err, sizeof err) == 0, "write: %s", err);
    CHECK(rename(other, path) == 0, "rename");
    CHECK(checkpoint_read_config(path, &cfg, NULL, 0, err, sizeof err) == 0 && strcmp(cfg.name, "vq_two") == 0,
          "after the replacement the config read is the new file's (name '%s'): %s", cfg.name, err);
    // replaced by a damaged file: refused at every read, never the kept metadata
    FILE *out = fopen(other, "wb");
    CHECK(out != NULL, "open %s", other);
    if (out) {
        fwrite(f.buffer, 1, f.size / 2, out);   // (cut in half)
        fclose(out);
        CHECK(rename(other, path) == 0, "rename");
        for (int k = 0; k < 2; k++)
            CHECK(checkpoint_read_config(path, &cfg, NULL, 0, err, sizeof err) != 0,
                  "read %d of a truncated replacement succeeded", k + 1);
    }
    free(renamed);
    safetensors_free(&f);
    unlink(path);
}

static Config prior_config(const char *vq_path) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"prior\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\"},"
             " \"model\": {\"kind\": \"pixelcnn\", \"input_dim\": 16, \"prior_of\": \"%s\", \"network\":"
             " [{\"masked_conv2d_a\": 4, \"kernel\": 3}, \"tanh\", {\"masked_conv2d_b\": 4, \"kernel\": 3}, \"tanh\","
             " {\"residual\": 2}, {\"conv2d\": 5, \"kernel\": 1}]},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}", vq_path);
    return config_parsed(json, "prior");
}

// A PixelCNN prior over a VQ-VAE's codes: the config reads K = 5 and the 4x4 grid from the
// checkpoint; every parameter's gradient of the categorical loss by finite differences; and
// the receptive field: changing the code at position p moves no logit at a position <= p.
static void test_pixelcnn_prior(void) {
    char path[] = "/tmp/cuvae_test_vq_XXXXXX";
    if (!temp_vq_checkpoint(path)) return;
    Config cfg = prior_config(path);
    CHECK(cfg.model.prior_classes == 5 && cfg.model.prior_h == 4 && cfg.model.prior_w == 4,
          "prior of K %d on %d x %d", cfg.model.prior_classes, cfg.model.prior_h, cfg.model.prior_w);
    gradient_check(cfg, "pixelcnn prior over codes (categorical loss)");
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 1, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 8);
    float x[16], base[5 * 16], out[5 * 16];
    for (int s = 0; s < 16; s++) x[s] = (float)((s * 3) % 5) / 255.0f;
    cpu->upload(cpu, m.x, x, sizeof x);
    model_forward(&m, 1, EPS_ZERO);
    cpu->download(cpu, base, model_output(&m), sizeof base);
    int leaks = 0, later = 0;
    for (int p = 0; p < 16; p++) {
        float y[16];
        memcpy(y, x, sizeof y);
        y[p] = (float)(((p * 3) % 5 + 2) % 5) / 255.0f;
        cpu->upload(cpu, m.x, y, sizeof y);
        model_forward(&m, 1, EPS_ZERO);
        cpu->download(cpu, out, model_output(&m), sizeof out);
        for (int k = 0; k < 5; k++)
            for (int s = 0; s < 16; s++) {
                if (s <= p) leaks += out[k * 16 + s] != base[k * 16 + s];
                else later += out[k * 16 + s] != base[k * 16 + s];
            }
    }
    CHECK(leaks == 0, "%d logits moved with a code at or after their position", leaks);
    CHECK(later > 0, "no logit depends on an earlier code");
    model_destroy(&m);
    unlink(path);
}

// A uint8 .npy array (n, 8, 8) of a fixed pseudo-random stream (seed), written to a temp file.
static bool temp_npy_images(char *path, int n, uint64_t seed) {
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd < 0) return false;
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, 8, 8), }", n);
    while ((10 + len + 1) % 64 != 0) header[len++] = ' ';
    header[len++] = '\n';
    FILE *f = fdopen(fd, "wb");
    const unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                                     (unsigned char)(len >> 8)};
    fwrite(magic, 1, sizeof magic, f);
    fwrite(header, 1, (size_t)len, f);
    Rng rng;
    rng_init(&rng, seed, 0);
    for (int i = 0; i < n * 64; i++) fputc((int)(rng_u32(&rng) & 0xff), f);
    fclose(f);
    return true;
}

// A prior's data are its VQ-VAE's codes of the images: prior_dataset_load encodes both splits
// (600 test images: more than one of its batches of 500) and each image's codes are the ones the
// VQ-VAE itself gives that image (its pixels / 255, the forward in eval mode, the nearest codes).
static void test_prior_data_are_the_vq_codes(void) {
    char vq_path[] = "/tmp/cuvae_test_prior_vq_XXXXXX", train_path[] = "/tmp/cuvae_test_prior_train_XXXXXX",
         test_path[] = "/tmp/cuvae_test_prior_test_XXXXXX";
    enum { N_TRAIN = 40, N_TEST = 600 };
    if (!temp_vq_checkpoint(vq_path)) return;
    if (!temp_npy_images(train_path, N_TRAIN, 11) || !temp_npy_images(test_path, N_TEST, 12)) return;
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"prior\", \"data\": {\"dataset\": \"files\", \"train\": \"%s\", \"test\": \"%s\","
             " \"format\": \"npy\"},"
             " \"model\": {\"kind\": \"pixelcnn\", \"input_dim\": 16, \"prior_of\": \"%s\", \"network\":"
             " [{\"masked_conv2d_a\": 4, \"kernel\": 3}, \"tanh\", {\"conv2d\": 5, \"kernel\": 1}]},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}", train_path, test_path, vq_path);
    Config cfg = config_parsed(json, "prior over files");
    Dataset train, test;
    char err[1024] = "";
    const int rc = prior_dataset_load(&cfg, &train, &test, err, sizeof err);
    CHECK(rc == 0, "prior_dataset_load: %s", err);
    if (rc == 0) {
        CHECK(test.n == N_TEST && test.dim == 16 && train.n == N_TRAIN && train.dim == 16,
              "codes (n, 16): test %d x %d, train %d x %d", test.n, test.dim, train.n, train.dim);
        // the VQ-VAE's own codes of the same images
        Config vq_cfg = tiny_vq_config("{\"size\": 5}", "vq");
        Model vq;
        CHECK(model_create(&vq, &vq_cfg, cpu, N_TEST, err, sizeof err) == 0, "vq create: %s", err);
        CHECK(checkpoint_load_params(&vq, vq_path, err, sizeof err) == 0, "vq load: %s", err);
        vq.training_mode = false;
        float *x = xmalloc((size_t)N_TEST * 64 * sizeof(float));
        int32_t *codes = xmalloc((size_t)N_TEST * 16 * sizeof(int32_t));
        Rng rng;
        rng_init(&rng, 12, 0);
        for (int i = 0; i < N_TEST * 64; i++) x[i] = (float)(rng_u32(&rng) & 0xff) / 255.0f;
        cpu->upload(cpu, vq.x, x, (size_t)N_TEST * 64 * sizeof(float));
        model_forward(&vq, N_TEST, EPS_ZERO);
        model_vq_read_codes(&vq, N_TEST, codes);
        int differ = 0, first = -1, used[5] = {0};
        for (int i = 0; i < N_TEST * 16; i++) {
            used[codes[i]]++;
            if (test.images[i] != codes[i]) {
                differ++;
                if (first < 0) first = i;
            }
        }
        // (a near-tie between two codes may go the other way where the GEMMs of a 500-row and a 600-row
        // batch round differently: 3 of the 9,600 allowed, 0 here; pixels / 256 instead of / 255 moves 19)
        CHECK(differ <= 3, "%d of %d test codes are not the VQ-VAE's own (first: image %d position %d, %d where the "
              "VQ-VAE gives %d)", differ, N_TEST * 16, first / 16, first % 16, first >= 0 ? test.images[first] : 0,
              first >= 0 ? codes[first] : 0);
        int distinct = 0;
        for (int k = 0; k < 5; k++) distinct += used[k] > 0;
        CHECK(distinct > 1, "the images take more than one code (%d)", distinct);
        // and codes decode as the VQ-VAE decodes them: the first images' codes, through
        // prior_decode_codes, give the VQ-VAE's own reconstructions of those images
        enum { SHOWN = 4 };
        float *recon = xmalloc((size_t)SHOWN * 64 * sizeof(float)), *decoded = NULL;
        cpu->download(cpu, recon, model_output(&vq), (size_t)SHOWN * 64 * sizeof(float));
        model_outputs_to_pixels(&vq, recon, (size_t)SHOWN * 64);
        Config prior_cfg = prior_config(vq_path);
        int image[3] = {0, 0, 0};
        CHECK(prior_decode_codes(&prior_cfg, codes, SHOWN, &decoded, image, err, sizeof err) == 0, "decode: %s", err);
        if (decoded) {
            CHECK(image[0] == 1 && image[1] == 8 && image[2] == 8, "decoded images (%d, %d, %d), want (1, 8, 8)",
                  image[0], image[1], image[2]);
            double worst = 0.0;
            for (int i = 0; i < SHOWN * 64; i++) worst = fmax(worst, fabs((double)decoded[i] - recon[i]));
            CHECK(worst < 1e-5, "codes decoded by prior_decode_codes differ from the VQ-VAE's reconstruction of "
                  "the same images by up to %g", worst);
            free(decoded);
        }
        free(recon);
        free(x);
        free(codes);
        model_destroy(&vq);
        dataset_free(&train);
        dataset_free(&test);
    }
    unlink(vq_path);
    unlink(train_path);
    unlink(test_path);
}

static void test_graph_layout(void) {
    Config cfg = graph_config("vae", CONV_ENCODER, CONV_DECODER, "bernoulli");
    Model m;
    char err[512];
    CHECK(model_create(&m, &cfg, cpu, 4, err, sizeof err) == 0, "create: %s", err);
    // conv 1->3 k3 (27 + 3), bn (6), conv 3->4 k2 (48 + 4), heads 36 -> 2x3 (216 + 6),
    // linear 3->18 (54 + 18), bn (4), convT 2->2 k3 (36 + 2), convT 2->1 k3 (18 + 1)
    CHECK(m.n_params == 30 + 6 + 52 + 222 + 72 + 4 + 38 + 19, "n_params %zu", m.n_params);
    CHECK(m.n_buffers == 6 + 4, "n_buffers %zu", m.n_buffers);
    CHECK(m.encoder_net && m.encoder_net->out.rank == 1 && m.encoder_net->out.dim[0] == 36, "encoder output");
    CHECK(m.decoder_net && m.decoder_net->out.rank == 3 && m.decoder_net->out.dim[1] == 8, "decoder output");
    model_init_params(&m, 3);
    float *buffers = xmalloc(m.n_buffers * sizeof(float)), *params = xmalloc(m.n_params * sizeof(float));
    model_get_buffers(&m, buffers);
    model_get_params(&m, params);
    // batch norm: weight 1, bias 0, running mean 0, running var 1; conv U(+-1/sqrt(fan_in))
    CHECK(buffers[0] == 0 && buffers[3] == 1 && params[30] == 1 && params[33] == 0, "batch norm init");
    double maxabs = 0;
    for (int k = 0; k < 27; k++) maxabs = fmax(maxabs, fabs(params[k]));
    CHECK(maxabs <= 1 / 3.0 && maxabs > 0.2, "conv2d init bound 1/sqrt(9): max %g", maxabs);
    // training-mode forward moves the running statistics; eval-mode forward does not
    float x[4 * 64];
    for (int i = 0; i < 4 * 64; i++) x[i] = (float)(i % 7) / 7.0f;
    cpu->upload(cpu, m.x, x, sizeof x);
    m.training_mode = true;
    model_forward(&m, 4, EPS_ZERO);
    float *after = xmalloc(m.n_buffers * sizeof(float));
    model_get_buffers(&m, after);
    CHECK(memcmp(after, buffers, m.n_buffers * sizeof(float)) != 0, "training forward updates running stats");
    m.training_mode = false;
    model_forward(&m, 4, EPS_ZERO);
    model_get_buffers(&m, buffers);
    CHECK(memcmp(after, buffers, m.n_buffers * sizeof(float)) == 0, "eval forward leaves running stats");
    free(buffers); free(params); free(after);
    model_destroy(&m);
}

static void test_kl_schedule_values(void) {
    Config cfg = small_config(MODEL_VAE, ACT_TANH, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    cfg.loss.w_kl = 4.0;
    cfg.loss.kl_warmup_epochs = 2.0;
    CHECK(model_kl_schedule(&cfg, 0.0).weight == 0.0f, "warmup starts at 0");
    CHECK(model_kl_schedule(&cfg, 1.0).weight == 2.0f, "warmup half way");
    CHECK(model_kl_schedule(&cfg, 5.0).weight == 4.0f, "warmup done");
    cfg.loss.kl_warmup_epochs = 0;
    cfg.loss.has_capacity = true;
    cfg.loss.capacity_max_nats = 25;
    cfg.loss.capacity_epochs = 10;
    cfg.loss.capacity_gamma = 10;
    KlSchedule s = model_kl_schedule(&cfg, 4.0);
    CHECK(s.capacity == 1 && s.capacity_target == 10.0f && s.capacity_gamma == 10.0f, "capacity ramp");
    CHECK(model_kl_schedule(&cfg, 30.0).capacity_target == 25.0f, "capacity saturates");
    // the loss the log reports: w_rec rec + gamma |KL - C| an example (C = 25 here), the KL of an
    // example below C (3 nats) and above it (30); a plain VAE's w_rec rec + w_kl KL
    const double below = model_weighted_loss_sum(&cfg, 2.0, 100.0, 4 * 3.0, 4, 30.0);
    const double above = model_weighted_loss_sum(&cfg, 2.0, 100.0, 4 * 30.0, 4, 30.0);
    CHECK(below == 200.0 + 10.0 * 22.0 * 4 && above == 200.0 + 10.0 * 5.0 * 4,
          "capacity loss: KL below C %g (want 1080), above %g (want 400)", below, above);
    cfg.loss.has_capacity = false;
    CHECK(model_weighted_loss_sum(&cfg, 2.0, 100.0, 12.0, 4, 30.0) == 200.0 + 4.0 * 12.0, "w_rec rec + w_kl KL");
}

static void test_layout_and_init(void) {
    Config cfg = small_config(MODEL_VAE, ACT_RELU, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    cfg.model.input_dim = 784;
    cfg.model.n_encoder = 1;
    cfg.model.encoder[0] = 400;
    cfg.model.latent_dim = 20;
    cfg.model.n_decoder = 1;
    cfg.model.decoder[0] = 400;
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 4, err, sizeof err) == 0, "create: %s", err);
    // pytorch/examples VAE: 784-400-(20,20)-400-784 has 652,824 parameters
    CHECK(m.n_params == 652824, "n_params %zu", m.n_params);
    CHECK(m.n_layers == 4 && m.head == 1 && m.layers[1].out == 40, "layers");
    model_init_params(&m, 3);
    float *p = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m, p);
    float bound = 1.0f / sqrtf(784.0f);
    double maxabs = 0;
    for (size_t k = 0; k < 784 * 400; k++) if (fabs(p[k]) > maxabs) maxabs = fabs(p[k]);
    CHECK(maxabs <= bound && maxabs > 0.95 * bound, "encoder.0 init within U(+-1/sqrt(784)): max %g", maxabs);
    Model m2;
    model_create(&m2, &cfg, cpu, 4, err, sizeof err);
    model_init_params(&m2, 3);
    float *p2 = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m2, p2);
    CHECK(memcmp(p, p2, m.n_params * sizeof(float)) == 0, "same seed, same init");
    free(p); free(p2);
    model_destroy(&m);
    model_destroy(&m2);
}

static void test_adam_steps_lower_loss(void) {
    Config cfg = small_config(MODEL_VAE, ACT_RELU, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    Model m;
    char err[256];
    model_create(&m, &cfg, cpu, 3, err, sizeof err);
    model_init_params(&m, 1);
    float x[18];
    for (int i = 0; i < 18; i++) x[i] = (i % 3 == 0) ? 1.0f : 0.0f;
    cpu->upload(cpu, m.x, x, sizeof x);
    cpu->zero(cpu, model_eps_buffer(&m), 9 * sizeof(float));
    model_set_learning_rate(&m, 1e-2f);
    KlSchedule plain;
    memset(&plain, 0, sizeof plain);
    plain.weight = 0.7f;
    double first = full_loss(&m, 3, plain);
    for (int step = 0; step < 200; step++) {
        model_forward(&m, 3, EPS_GIVEN);
        model_backward(&m, 3, 1.3f, 0.7f);
        model_accumulate_loss(&m, 3);
        cpu->step_begin(cpu, m.state, m.plan);
        model_optimizer_step(&m);
        cpu->step_end(cpu, m.state, m.plan, 3);
    }
    double last = full_loss(&m, 3, plain);
    double rec, kl, count;
    model_read_loss(&m, &rec, &kl, &count);
    CHECK(count == 600, "accumulated %g examples", count);
    CHECK(last < 0.5 * first, "200 Adam steps: loss %g -> %g", first, last);
    model_destroy(&m);
}

// Runs `steps` training steps of the shared step sequence (step.c) on a tiny
// data set (10 examples, batches 4, 4, 2 per epoch, dynamic binarization,
// free bits), returning the parameters and the step state.
static void run_training_steps_of(Config cfg, int steps, float *params, StepState *state, double *examples) {
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 4, err, sizeof err) == 0, "model_create: %s", err);
    model_init_params(&m, 3);
    enum { N = 10 };
    const int D = m.input_dim;
    uint8_t *images = cpu->alloc(cpu, (size_t)N * D);
    uint8_t *labels = cpu->alloc(cpu, N);
    int32_t *perm = cpu->alloc(cpu, N * sizeof(int32_t));
    Rng rng;
    rng_init(&rng, 21, 4);
    for (int i = 0; i < N * D; i++) images[i] = (uint8_t)(rng_u32(&rng) & 0xff);
    for (int i = 0; i < N; i++) labels[i] = (uint8_t)(m.n_classes ? i % m.n_classes : 0);
    rng_permutation(&rng, perm, N);
    model_begin_training(&m, 3, 1e-2f);
    TrainStep t = {.model = &m, .images = images, .labels = m.n_classes ? labels : NULL, .perm = perm, .w_rec = 1.3f};
    for (int k = 0; k < steps; k++) train_step_run(&t, k % 3 == 2 ? 2 : 4);
    train_step_release(&t);
    model_get_params(&m, params);
    model_read_step_state(&m, state);
    double rec, kl;
    model_read_loss(&m, &rec, &kl, examples);
    cpu->free(cpu, images);
    cpu->free(cpu, labels);
    cpu->free(cpu, perm);
    model_destroy(&m);
}

static void run_training_steps(EpsilonMode mode, int steps, float *params, StepState *state,
                               double *examples) {
    Config cfg = small_config(MODEL_VAE, ACT_RELU, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    cfg.train.epsilon = mode;
    cfg.data.binarize = BINARIZE_DYNAMIC;
    cfg.loss.free_bits = 0.05;
    run_training_steps_of(cfg, steps, params, state, examples);
}

// The small models the 7-step comparisons train: "vae", "ae", "cvae" (4 classes) or
// "conv encoder" (a conv encoder with a linear decoder); ReLU, BCE summed, 2 decoder layers.
static Config step_comparison_config(const char *kind) {
    if (strcmp(kind, "conv encoder") == 0) return graph_config("vae", CONV_ENCODER, "[7]", "bernoulli");
    Config cfg = small_config(strcmp(kind, "ae") == 0 ? MODEL_AE : MODEL_VAE, ACT_RELU, REC_BCE, OUTPUT_BERNOULLI,
                              REDUCTION_SUM, 2);
    if (strcmp(kind, "cvae") == 0) {
        cfg.model.kind = MODEL_CVAE;
        cfg.model.condition = CONDITION_LABEL;
        cfg.model.n_classes = 4;
    }
    return cfg;
}

// The parameter count of the model a config builds (and its decoder's linear layers, if asked).
static size_t params_of(const Config *cfg, int *decoder_layers) {
    Model probe;
    char err[256];
    CHECK(model_create(&probe, cfg, cpu, 4, err, sizeof err) == 0, "model_create: %s", err);
    const size_t n = probe.n_params;
    if (decoder_layers) *decoder_layers = probe.n_layers - probe.head - 1;
    model_destroy(&probe);
    return n;
}

// The training forward announces its epsilon (draw_eps_ahead) before the encoder's head, whose
// GEMM, too small to split, the CPU backend runs beside the draw on 2 threads: the same bits as
// a backend that draws in reparam_forward (draw_eps_ahead a no-op), one draw beside a GEMM a
// step; none with stored epsilon (drawn by fill_normal) or on one thread.
static void ignore_eps_ahead(Backend *be, EpsSource eps, int B, int L) {
    (void)be;
    (void)eps;
    (void)B;
    (void)L;
}

static void test_eps_drawn_ahead_equals_drawn_in_step(void) {
    const int max_threads = omp_get_max_threads();
    const char *kinds[3] = {"vae", "cvae", "conv encoder"};
    for (int kind = 0; kind < 3; kind++)
        for (int threads = 1; threads <= 2; threads++)
            for (int stored = 0; stored <= 1; stored++) {
                Config cfg = step_comparison_config(kinds[kind]);
                cfg.train.epsilon = stored ? EPSILON_STORED : EPSILON_FUSED;
                omp_set_num_threads(threads);
                const size_t n = params_of(&cfg, NULL);
                float *ahead = xmalloc(n * sizeof(float)), *in_step = xmalloc(n * sizeof(float));
                StepState ahead_state, in_step_state;
                double ahead_examples, in_step_examples;
                const size_t before = backend_cpu_update_counts(cpu).eps_draws_beside_gemms;
                run_training_steps_of(cfg, 7, ahead, &ahead_state, &ahead_examples);
                const size_t beside = backend_cpu_update_counts(cpu).eps_draws_beside_gemms - before;
                void (*announce)(Backend *, EpsSource, int, int) = cpu->draw_eps_ahead;
                cpu->draw_eps_ahead = ignore_eps_ahead;
                run_training_steps_of(cfg, 7, in_step, &in_step_state, &in_step_examples);
                cpu->draw_eps_ahead = announce;
                const size_t want = threads > 1 && !stored && !omp_get_dynamic() ? 7 : 0;
                CHECK(beside == want, "%s, %d threads, %s epsilon: %zu of 7 steps drew beside a GEMM, want %zu",
                      kinds[kind], threads, stored ? "stored" : "fused", beside, want);
                CHECK(memcmp(ahead, in_step, n * sizeof(float)) == 0,
                      "%s, %d threads, %s epsilon: drawn ahead == drawn in reparam_forward (parameters after 7 steps)",
                      kinds[kind], threads, stored ? "stored" : "fused");
                CHECK(ahead_examples == in_step_examples && ahead_state.step == in_step_state.step,
                      "%s: the same steps", kinds[kind]);
                free(ahead);
                free(in_step);
            }
    omp_set_num_threads(max_threads);
}

// The training step queues each linear decoder layer's optimizer update inside the backward
// (model_backward_and_step) unless clipping needs the whole gradient first: with a clipping
// norm no gradient reaches (1e30) the step takes the other path (backward, then one update)
// and must give the same bits, for adam, adamw with decay and sgd with momentum, on a vae, an
// ae, a cvae (the condition's columns in the first decoder layer) and a conv encoder with a
// linear decoder. The backend's counts show which path each run took.
static void test_queued_updates_equal_plain_step(void) {
    const char *optimizers[3] = {"adam", "adamw", "sgd"}, *kinds[4] = {"vae", "ae", "cvae", "conv encoder"};
    for (int kind = 0; kind < 4; kind++)
        for (int o = 0; o < 3; o++) {
            Config cfg = step_comparison_config(kinds[kind]);
            cfg.data.binarize = BINARIZE_DYNAMIC;
            snprintf(cfg.train.optimizer, sizeof cfg.train.optimizer, "%s", optimizers[o]);
            cfg.train.weight_decay = o == 0 ? 0.0 : 0.05;
            cfg.train.momentum = o == 2 ? 0.9 : 0.0;
            int decoder_layers;
            const size_t n = params_of(&cfg, &decoder_layers);
            float *queued = xmalloc(n * sizeof(float)), *plain = xmalloc(n * sizeof(float));
            StepState queued_state, plain_state;
            double queued_examples, plain_examples;
            const size_t before = backend_cpu_update_counts(cpu).ranges_queued;
            run_training_steps_of(cfg, 7, queued, &queued_state, &queued_examples);
            const size_t between = backend_cpu_update_counts(cpu).ranges_queued;
            cfg.train.grad_clip = 1e30;
            run_training_steps_of(cfg, 7, plain, &plain_state, &plain_examples);
            const size_t after = backend_cpu_update_counts(cpu).ranges_queued;
            CHECK(between - before == 7 * ((size_t)decoder_layers + 1),
                  "%s, %s: %zu ranges queued in 7 steps, want 7 x (%d decoder layers + the rest)", kinds[kind],
                  optimizers[o], between - before, decoder_layers);
            CHECK(after == between, "%s, %s: the clipped run queued %zu ranges", kinds[kind], optimizers[o],
                  after - between);
            CHECK(memcmp(queued, plain, n * sizeof(float)) == 0, "%s, %s: queued updates == the plain step",
                  kinds[kind], optimizers[o]);
            CHECK(queued_examples == plain_examples && queued_state.step == 7 && plain_state.step == 7,
                  "%s, %s: the same steps", kinds[kind], optimizers[o]);
            free(queued);
            free(plain);
        }
}

// Gradient GEMMs with beta = 1 (Model.grads_clear): counted through a wrapper around cpu->gemm.
static void (*plain_gemm)(Backend *, bool, bool, int, int, int, float, const float *, int, const float *, int, float,
                          float *, int);
static size_t beta_one_gemms;
static const float *counted_grads, *counted_grads_end;   // GEMMs into the gradients only

static void counting_gemm(Backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                          int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (beta == 1.0f && C >= counted_grads && C < counted_grads_end) beta_one_gemms++;
    plain_gemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// What follows the noise written into the gradients (steps_with_stray_gradients).
typedef enum { NOISE_LEFT, NOISE_FORGOTTEN, NOISE_CLEARED } AfterNoise;

// 6 training steps of cfg (batches 4, 4, 2, ...), with after the second a backward and no
// update (a gradient check's: it leaves gradients behind), and after the fourth the gradients
// overwritten with noise (the bench's GEMM replay), then left, model_forget_clear_gradients or
// model_clear_gradients. The parameters after, and the GEMMs run with beta = 1.
static void steps_with_stray_gradients(Config cfg, AfterNoise after, float *params, size_t *beta_one) {
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 4, err, sizeof err) == 0, "model_create: %s", err);
    model_init_params(&m, 3);
    enum { N = 10 };
    uint8_t *images = cpu->alloc(cpu, (size_t)N * m.input_dim);
    uint8_t *labels = cpu->alloc(cpu, N);
    int32_t *perm = cpu->alloc(cpu, N * sizeof(int32_t));
    Rng rng;
    rng_init(&rng, 21, 4);
    for (int i = 0; i < N * m.input_dim; i++) images[i] = (uint8_t)(rng_u32(&rng) & 0xff);
    for (int i = 0; i < N; i++) labels[i] = (uint8_t)(m.n_classes ? i % m.n_classes : 0);
    rng_permutation(&rng, perm, N);
    model_begin_training(&m, 3, 1e-2f);
    TrainStep t = {.model = &m, .images = images, .labels = m.n_classes ? labels : NULL, .perm = perm, .w_rec = 1.3f};
    plain_gemm = cpu->gemm;
    cpu->gemm = counting_gemm;
    counted_grads = m.grads;
    counted_grads_end = m.grads + m.n_params;
    beta_one_gemms = 0;
    for (int k = 0; k < 6; k++) {
        train_step_run(&t, k % 3 == 2 ? 2 : 4);
        if (k == 1) {
            model_forward(&m, 4, EPS_SAMPLE);
            model_backward(&m, 4, 1.3f, 0.7f);
        }
        if (k == 3) {
            float *noise = xmalloc(m.n_params * sizeof(float));
            for (size_t i = 0; i < m.n_params; i++) noise[i] = rng_uniform_range(&rng, -1.0f, 1.0f);
            cpu->upload(cpu, m.grads, noise, m.n_params * sizeof(float));
            free(noise);
            if (after == NOISE_FORGOTTEN) model_forget_clear_gradients(&m);
            if (after == NOISE_CLEARED) model_clear_gradients(&m);
        }
    }
    cpu->gemm = plain_gemm;
    *beta_one = beta_one_gemms;
    train_step_release(&t);
    model_get_params(&m, params);
    cpu->free(cpu, images);
    cpu->free(cpu, labels);
    cpu->free(cpu, perm);
    model_destroy(&m);
}

// A network's linear and masked_linear layers (one weight-gradient GEMM each).
static size_t network_linear_layers(const Network *net) {
    size_t count = 0;
    for (int i = 0; net && i < net->n_layers; i++)
        count += net->layers[i].kind == &layer_linear || net->layers[i].kind == &layer_masked_linear;
    return count;
}

// The checks of test_weight_gradients_onto_cleared_gradients on one config (n parameters, a
// step's weight-gradient GEMMs).
static void onto_cleared_gradients(Config cfg, const char *name, size_t n, size_t weight_gemms) {
    float *onto_zeros = xmalloc(n * sizeof(float)), *plain = xmalloc(n * sizeof(float));
    float *unforgotten = xmalloc(n * sizeof(float)), *zeroed = xmalloc(n * sizeof(float));
    size_t beta_one_cleared, beta_one_plain, beta_one_unforgotten, beta_one_zeroed;
    steps_with_stray_gradients(cfg, NOISE_FORGOTTEN, onto_zeros, &beta_one_cleared);
    steps_with_stray_gradients(cfg, NOISE_LEFT, unforgotten, &beta_one_unforgotten);
    steps_with_stray_gradients(cfg, NOISE_CLEARED, zeroed, &beta_one_zeroed);
    cpu->updates_clear_gradients = false;
    steps_with_stray_gradients(cfg, NOISE_FORGOTTEN, plain, &beta_one_plain);
    cpu->updates_clear_gradients = true;
    // steps 1, 2, 4 and 6 and the stray backward onto zeros; step 3 after the stray backward,
    // 5 after the noise: beta 0
    CHECK(beta_one_cleared == 5 * weight_gemms, "%s: %zu weight-gradient GEMMs with beta 1, want 5 x %zu", name,
          beta_one_cleared, weight_gemms);
    CHECK(beta_one_plain == 0, "%s: %zu weight-gradient GEMMs with beta 1 with the backend's flag off", name,
          beta_one_plain);
    CHECK(memcmp(onto_zeros, plain, n * sizeof(float)) == 0, "%s: beta 1 onto cleared gradients == beta 0", name);
    CHECK(beta_one_unforgotten == 6 * weight_gemms && memcmp(unforgotten, plain, n * sizeof(float)) != 0,
          "%s: noise left in the gradients and not forgotten changed nothing (%zu GEMMs with beta 1, want 6 x %zu)",
          name, beta_one_unforgotten, weight_gemms);
    // model_clear_gradients zeroes the noise: step 5 onto zeros as well
    CHECK(beta_one_zeroed == 6 * weight_gemms && memcmp(zeroed, plain, n * sizeof(float)) == 0,
          "%s: after model_clear_gradients, %zu GEMMs with beta 1 (want 6 x %zu), or other parameters", name,
          beta_one_zeroed, weight_gemms);
    free(onto_zeros);
    free(plain);
    free(unforgotten);
    free(zeroed);
}

// The CPU's updates clear the gradients (Backend.updates_clear_gradients), so a training
// step's linear weight gradients are GEMMs with beta = 1 onto those zeros: on the first step
// (the arena starts zero-filled) and after every step, but not after a backward without an
// update or gradients written outside a backward (model_forget_clear_gradients; after
// model_clear_gradients, again). The
// parameters equal, bit for bit, a run whose weight gradients all use beta = 0 (the backend's
// flag off), on a vae, a cvae (the condition's columns, a GEMM of their own), a vae whose
// decoder is a layer list (linear layers of a network, batch norm between) and a MADE (masked
// linear layers), each with the updates queued inside the backward and with one update after
// it (clipping); noise left in the gradients and not forgotten changes them (the beta = 1
// GEMMs do accumulate).
static void test_weight_gradients_onto_cleared_gradients(void) {
    const char *names[4] = {"vae", "cvae", "vae, layer-list decoder", "made"};
    for (int kind = 0; kind < 4; kind++) {
        Config cfg = small_config(MODEL_VAE, ACT_RELU, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
        if (kind == 1) {
            cfg.model.kind = MODEL_CVAE;
            cfg.model.condition = CONDITION_LABEL;
            cfg.model.n_classes = 4;
        }
        if (kind == 2)
            cfg = graph_config("vae", "[9]", "[{\"linear\": 5}, {\"batch_norm\": {}}, \"tanh\", {\"linear\": 64}]",
                               "bernoulli");
        if (kind == 3) cfg = made_config("[{\"masked_linear\": 7}, \"relu\", {\"masked_linear\": 6}]", "natural");
        Model probe;
        char err[256];
        CHECK(model_create(&probe, &cfg, cpu, 4, err, sizeof err) == 0, "model_create: %s", err);
        const size_t n = probe.n_params;
        // a step's weight-gradient GEMMs: one a linear layer, two where it has a condition
        size_t weight_gemms = network_linear_layers(probe.encoder_net) + network_linear_layers(probe.decoder_net);
        for (int i = 0; i < probe.n_layers; i++) weight_gemms += probe.layers[i].cond ? 2 : 1;
        model_destroy(&probe);
        // and with a clipping norm no gradient reaches: the step's other path (the backward,
        // then model_optimizer_step over the whole arena)
        onto_cleared_gradients(cfg, names[kind], n, weight_gemms);
        cfg.train.grad_clip = 1e30;
        char name[96];
        snprintf(name, sizeof name, "%s, clipped (one update after the backward)", names[kind]);
        onto_cleared_gradients(cfg, name, n, weight_gemms);
    }
}

// train.grad_clip scales the whole gradient to the clipping norm before the update: one plain
// SGD step (no momentum, no decay, so the update is -lr g) clipped at c moves the parameters
// along the unclipped step's direction by lr c, so a clip twice as large moves them twice as
// far, and both far less than the unclipped step (whose gradient norm is far above c).
static void test_grad_clip_scales_the_step(void) {
    Config cfg = step_comparison_config("vae");
    snprintf(cfg.train.optimizer, sizeof cfg.train.optimizer, "sgd");
    cfg.train.momentum = 0.0;
    cfg.train.weight_decay = 0.0;
    const size_t n = params_of(&cfg, NULL);
    float *init = xmalloc(n * sizeof(float)), *plain = xmalloc(n * sizeof(float));
    float *small = xmalloc(n * sizeof(float)), *large = xmalloc(n * sizeof(float));
    StepState state;
    double examples;
    run_training_steps_of(cfg, 0, init, &state, &examples);
    run_training_steps_of(cfg, 1, plain, &state, &examples);
    cfg.train.grad_clip = 0.1;
    run_training_steps_of(cfg, 1, small, &state, &examples);
    cfg.train.grad_clip = 0.2;
    run_training_steps_of(cfg, 1, large, &state, &examples);
    double plain_sq = 0.0, small_sq = 0.0, large_sq = 0.0, small_dot_plain = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double dp = (double)plain[i] - init[i], ds = (double)small[i] - init[i], dl = (double)large[i] - init[i];
        plain_sq += dp * dp;
        small_sq += ds * ds;
        large_sq += dl * dl;
        small_dot_plain += ds * dp;
    }
    const double plain_norm = sqrt(plain_sq), small_norm = sqrt(small_sq), large_norm = sqrt(large_sq);
    // lr 1e-2: the unclipped step's gradient norm is plain_norm / lr
    CHECK(plain_norm / cfg.train.lr > 0.5, "the unclipped gradient's norm %g is well above the clips (0.1, 0.2)",
          plain_norm / cfg.train.lr);
    CHECK(test_close(small_norm, cfg.train.lr * 0.1, 1e-3, 0.0),
          "clipped at 0.1: the step's norm is lr x 0.1 = %g, got %g", cfg.train.lr * 0.1, small_norm);
    CHECK(test_close(large_norm / small_norm, 2.0, 1e-3, 0.0),
          "a clip twice as large moves the parameters twice as far: %g / %g", large_norm, small_norm);
    CHECK(small_dot_plain / (small_norm * plain_norm) > 0.9999,
          "the clipped step keeps the unclipped step's direction (cosine %g)",
          small_dot_plain / (small_norm * plain_norm));
    free(init);
    free(plain);
    free(small);
    free(large);
}

// train.epsilon fused (drawn in the kernels, regenerated in backward) and stored
// (drawn into a buffer) are the same computation: bit-identical after 7 steps.
static void test_training_step_fused_equals_stored(void) {
    Config cfg = small_config(MODEL_VAE, ACT_RELU, REC_BCE, OUTPUT_BERNOULLI, REDUCTION_SUM, 2);
    Model probe;
    char err[256];
    model_create(&probe, &cfg, cpu, 4, err, sizeof err);
    size_t n = probe.n_params;
    float *init = xmalloc(n * sizeof(float));
    model_init_params(&probe, 3);
    model_get_params(&probe, init);
    model_destroy(&probe);
    float *fused = xmalloc(n * sizeof(float)), *stored = xmalloc(n * sizeof(float));
    StepState fused_state, stored_state;
    double fused_examples, stored_examples;
    run_training_steps(EPSILON_FUSED, 7, fused, &fused_state, &fused_examples);
    run_training_steps(EPSILON_STORED, 7, stored, &stored_state, &stored_examples);
    CHECK(memcmp(fused, stored, n * sizeof(float)) == 0, "parameters: fused == stored");
    CHECK(memcmp(fused, init, n * sizeof(float)) != 0, "the steps changed the parameters");
    CHECK(fused_state.step == 7 && stored_state.step == 7, "7 steps counted on the device");
    CHECK(fused_examples == 4 + 4 + 2 + 4 + 4 + 2 + 4, "examples accumulated: %g", fused_examples);
    CHECK(fused_state.eps_offset == 24 * 3, "eps draws advanced by rows * L: %llu",
          (unsigned long long)fused_state.eps_offset);
    CHECK(fused_state.uniform_offset == 24 * 6, "binarization draws advanced by rows * D");
    free(init);
    free(fused);
    free(stored);
}

// A small gan over 4 x 4 images: z (3) -> generator -> (1, 4, 4); discriminator -> one logit.
// PyTorch init here: DCGAN's N(0, 0.02) weights are so small that a finite-difference step of
// 1e-2 before a batch norm (which divides by their scale) is no derivative (test_gan_layout_and_init
// checks the DCGAN init itself).
static Config gan_config_init(const char *generator_end, const char *smoothing, const char *init) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"gan\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"validation\": 0.1},"
             " \"model\": {\"kind\": \"gan\", \"input_dim\": 16, \"latent_dim\": 3,"
             " \"generator\": [{\"linear\": 8}, {\"batch_norm\": {}}, \"tanh\", {\"linear\": 16},"
             " {\"reshape\": [1, 4, 4]}, \"%s\"],"
             " \"discriminator\": [{\"conv2d\": 2, \"kernel\": 3, \"stride\": 2, \"padding\": 1}, {\"batch_norm\": {}},"
             " \"tanh\", \"flatten\", {\"linear\": 1}], \"label_smoothing\": %s, \"init\": \"%s\"},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}", generator_end, smoothing,
             init);
    return config_parsed(json, "gan");
}

static Config gan_config(const char *generator_end, const char *smoothing) {
    return gan_config_init(generator_end, smoothing, "pytorch");
}

// Checks grads[first, last) (downloaded by the caller after objective(m, B, which)) against
// central differences of objective at h and h / 2, Richardson-combined (error O(h^4): a batch
// norm over 3 rows curves the objective too much for one central difference).
typedef double (*RegionObjective)(Model *m, int B, bool which);
static void region_gradient_check(Model *m, int B, RegionObjective objective, bool which, float *params,
                                  const float *grads, size_t first, size_t last, const char *label, const char *region) {
    int bad = 0;
    for (size_t k = first; k < last; k++) {
        const float saved = params[k];
        double central[2];
        for (int r = 0; r < 2; r++) {
            const float h = r == 0 ? 1e-2f : 5e-3f;
            params[k] = saved + h;
            model_set_params(m, params);
            double fp = objective(m, B, which);
            params[k] = saved - h;
            model_set_params(m, params);
            double fm = objective(m, B, which);
            central[r] = (fp - fm) / (2.0 * h);
        }
        params[k] = saved;
        double fd = (4.0 * central[1] - central[0]) / 3.0;
        if (!test_close(grads[k], fd, 2e-2, 2e-3) && bad++ < 5)
            CHECK(0, "%s: %s param %zu grad %g vs fd %g", label, region, k, grads[k], fd);
    }
    model_set_params(m, params);
    CHECK(bad == 0, "%s: %d of %zu %s gradients off", label, bad, last - first, region);
}

// mean_b of the discriminator's loss (rows = rec_row) or the generator's (kl_row) at the current
// parameters, the same z (the step offset does not move) and reals
static double gan_objective(Model *m, int B, bool generator) {
    model_gan_discriminator_gradient(m, B);
    if (generator) model_gan_generator_gradient(m, B);
    float rows[8];
    cpu->download(cpu, rows, generator ? m->kl_row : m->rec_row, (size_t)B * sizeof(float));
    double total = 0.0;
    for (int b = 0; b < B; b++) total += rows[b];
    return total / B;
}

// The region [first, last) of the parameters whose gradient objective(m, B, which) computes.
typedef void (*PlayerRegion)(const Model *m, bool which, size_t *first, size_t *last);

// Both players' gradients of an adversarial model (which = false, then true) against finite
// differences of their own objectives over their own regions, on 3 rows of 16 uniform pixels,
// batch norm in training mode.
static void adversarial_gradient_check(Config cfg, const char *label, RegionObjective objective,
                                       PlayerRegion region, const char *names[2]) {
    const int B = 3;
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, B, err, sizeof err) == 0, "%s: model_create: %s", label, err);
    model_init_params(&m, 11);
    Rng rng;
    rng_init(&rng, 78, 1);
    float x[3 * 16];
    for (int i = 0; i < B * 16; i++) x[i] = rng_uniform(&rng);
    cpu->upload(cpu, m.x, x, sizeof x);
    m.training_mode = true;
    float *params = xmalloc(m.n_params * sizeof(float)), *grads = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m, params);
    for (int player = 0; player < 2; player++) {
        objective(&m, B, player == 1);
        cpu->download(cpu, grads, m.grads, m.n_params * sizeof(float));
        size_t first, last;
        region(&m, player == 1, &first, &last);
        region_gradient_check(&m, B, objective, player == 1, params, grads, first, last, label, names[player]);
    }
    free(params);
    free(grads);
    model_destroy(&m);
}

// a gan: the discriminator's region (real + fake BCE, smoothed targets), then the generator's
// (-log D(G(z)) through the discriminator)
static void gan_region(const Model *m, bool generator, size_t *first, size_t *last) {
    *first = generator ? 0 : m->gan_disc_offset;
    *last = generator ? m->decoder_net->n_params : m->n_params;
}

static void gan_gradient_check(Config cfg, const char *label) {
    const char *names[2] = {"discriminator", "generator"};
    adversarial_gradient_check(cfg, label, gan_objective, gan_region, names);
}

static void test_gan_gradients(void) {
    gan_gradient_check(gan_config("sigmoid", "0"), "gan, sigmoid generator");
    gan_gradient_check(gan_config("tanh", "0.1"), "gan, tanh generator (reals seen as 2x - 1), label smoothing 0.1");
    gan_gradient_check(gan_config("sigmoid", "[0.1, 0.3]"), "gan, real targets drawn in (0.7, 0.9]");
}

// model.label_smoothing [0.1, 0.3] (deck 002: "a random value, typically between 0.7 and 0.9"):
// each real image's target is drawn in (0.7, 0.9] by the discriminator's step, a new one every
// step (the offset step_end advances), the same again from the same step state; one number keeps
// every target at 1 - it.
static void test_gan_random_real_targets(void) {
    enum { B = 64 };
    Model m;
    char err[256];
    for (int ranged = 0; ranged < 2; ranged++) {
        Config cfg = gan_config("sigmoid", ranged ? "[0.1, 0.3]" : "0.2");
        CHECK(model_create(&m, &cfg, cpu, B, err, sizeof err) == 0, "model_create: %s", err);
        model_init_params(&m, 4);
        m.training_mode = true;
        float first[B], second[B], again[B];
        const float *real_targets = m.gan_targets + (size_t)ADV_TARGET_REAL * m.max_batch;
        model_gan_discriminator_gradient(&m, B);
        cpu->download(cpu, first, real_targets, sizeof first);
        const uint64_t offset = m.state->uniform_offset;
        m.state->uniform_offset += (uint64_t)B * (uint64_t)m.input_dim;   // as step_end does
        model_gan_discriminator_gradient(&m, B);
        cpu->download(cpu, second, real_targets, sizeof second);
        m.state->uniform_offset = offset;
        model_gan_discriminator_gradient(&m, B);
        cpu->download(cpu, again, real_targets, sizeof again);
        double lo = 1, hi = 0, sum = 0;
        int same_as_next_step = 0;
        for (int b = 0; b < B; b++) {
            lo = fmin(lo, first[b]);
            hi = fmax(hi, first[b]);
            sum += first[b];
            same_as_next_step += first[b] == second[b];
        }
        const bool repeatable = memcmp(first, again, sizeof first) == 0;
        if (ranged)
            CHECK(lo >= 0.7f && hi <= 0.9f && hi - lo > 0.15 && fabs(sum / B - 0.8) < 0.03 && same_as_next_step == 0 &&
                  repeatable, "real targets drawn in (0.7, 0.9]: min %g max %g mean %g, %d equal the next step's, "
                  "repeatable %d", lo, hi, sum / B, same_as_next_step, repeatable);
        else
            CHECK(lo == 0.8f && hi == 0.8f && same_as_next_step == B, "label_smoothing 0.2: targets in [%g, %g]", lo, hi);
        model_destroy(&m);
    }
}

// DCGAN init: weights N(0, 0.02) (std measured), batch norm weights N(1, 0.02), biases 0; the two
// regions [generator | discriminator] with the discriminator's on a 4-float boundary
static void test_gan_layout_and_init(void) {
    Config cfg = gan_config_init("sigmoid", "0", "dcgan");
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "model_create: %s", err);
    model_init_params(&m, 2);
    CHECK(m.gan_disc_offset % 4 == 0 && m.gan_disc_offset >= m.decoder_net->n_params &&
          m.gan_disc_offset < m.decoder_net->n_params + 4, "discriminator region at %zu (generator has %zu)",
          m.gan_disc_offset, m.decoder_net->n_params);
    CHECK(m.n_params == m.gan_disc_offset + m.encoder_net->n_params, "n_params %zu", m.n_params);
    float *p = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m, p);
    const NetLayer *linear = &m.decoder_net->layers[0], *norm = &m.decoder_net->layers[1];
    double sum = 0, sum_sq = 0;
    const int n = 8 * 3;
    for (int k = 0; k < n; k++) {
        sum += p[linear->param_offset + k];
        sum_sq += (double)p[linear->param_offset + k] * p[linear->param_offset + k];
    }
    double sd = sqrt(sum_sq / n - (sum / n) * (sum / n));
    CHECK(sd > 0.01 && sd < 0.03, "linear weight sd %g (want about 0.02)", sd);
    for (int k = 0; k < 8; k++) {
        CHECK(p[linear->param_offset + 24 + k] == 0.0f, "linear bias %d = %g", k, p[linear->param_offset + 24 + k]);
        CHECK(fabs(p[norm->param_offset + k] - 1.0f) < 0.1, "batch norm weight %d = %g", k, p[norm->param_offset + k]);
        CHECK(p[norm->param_offset + 8 + k] == 0.0f, "batch norm bias %d", k);
    }
    free(p);
    model_destroy(&m);
}

// A few hundred alternating steps on 4 x 4 images of two kinds (left or right half lit): the
// generator's samples come to look like them (each sample near one of the two, by L2), from noise
static void test_gan_learns(void) {
    Config cfg = gan_config("sigmoid", "0");
    cfg.train.lr = 0.005;
    cfg.train.beta1 = 0.5;
    enum { N = 64, D = 16, B = 16 };
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, B, err, sizeof err) == 0, "model_create: %s", err);
    model_init_params(&m, 3);
    uint8_t *images = cpu->alloc(cpu, N * D);
    int32_t *perm = cpu->alloc(cpu, N * sizeof(int32_t));
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++) images[i * D + d] = ((d % 4 < 2) == (i % 2 == 0)) ? 255 : 0;
    for (int i = 0; i < N; i++) perm[i] = i;
    model_begin_training(&m, N / B, (float)cfg.train.lr);
    TrainStep t = {.model = &m, .images = images, .labels = NULL, .perm = perm, .w_rec = 1.0f};
    float pixels[64 * D], z[64 * 3];
    double before = 0, after = 0;
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 1)
            for (int k = 0; k < 600; k++) train_step_run(&t, B);
        rng_fill_normal(z, 64 * 3, 99, 0);
        model_decode_pixels(&m, z, NULL, 64, pixels);
        double dist = 0;   // mean squared distance of each sample to the nearer pattern
        for (int i = 0; i < 64; i++) {
            double left = 0, right = 0;
            for (int d = 0; d < D; d++) {
                double a = (d % 4 < 2) ? 1.0 : 0.0;
                left += (pixels[i * D + d] - a) * (pixels[i * D + d] - a);
                right += (pixels[i * D + d] - (1 - a)) * (pixels[i * D + d] - (1 - a));
            }
            dist += fmin(left, right) / 64;
        }
        if (phase == 0) before = dist; else after = dist;
    }
    train_step_release(&t);
    CHECK(after < 0.25 * before && after < 1.0, "squared distance of samples to the data: %g -> %g", before, after);
    double rec, kl, count;
    model_read_loss(&m, &rec, &kl, &count);
    CHECK(count == 600 * B && isfinite(rec) && isfinite(kl), "accumulated %g examples, D %g G %g", count, rec, kl);
    cpu->free(cpu, images);
    cpu->free(cpu, perm);
    model_destroy(&m);
}

// A small aae over 16 pixels: encoder (shorthand widths or a conv layer list with batch norm),
// z (2), decoder [6], the discriminator on z, the mixture prior.
static Config aae_config(const char *encoder) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"name\": \"aae\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\", \"validation\": 0.1},"
             " \"model\": {\"kind\": \"aae\", \"input_dim\": 16, \"encoder\": %s, \"latent_dim\": 2, \"decoder\": [6],"
             " \"activation\": \"tanh\", \"discriminator\": [{\"linear\": 5}, \"tanh\", {\"linear\": 1}],"
             " \"prior\": \"mixture\"}, \"loss\": {\"w_rec\": 1.0},"
             " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01, \"seed\": 5}}", encoder);
    return config_parsed(json, "aae");
}

// mean_b of the discriminator's loss on the codes against the step's prior draws (kl_row), or of
// the encoder's regularization loss -log D(z) (aae_g_row), at the current parameters
static double aae_objective(Model *m, int B, bool regularization) {
    model_encode(m, B);
    model_aae_discriminator_gradient(m, B);
    if (regularization) model_aae_regularization_gradient(m, B);
    float rows[8];
    cpu->download(cpu, rows, regularization ? m->aae_g_row : m->kl_row, (size_t)B * sizeof(float));
    double total = 0.0;
    for (int b = 0; b < B; b++) total += rows[b];
    return total / B;
}

// The two adversarial gradients of an aae step: the discriminator's (prior draws against codes)
// over its region, the encoder's regularization gradient (through the discriminator, then the
// head, trunk and encoder network) over the encoder's region. (The reconstruction phase is the
// AE's gradient, checked above.)
static void aae_region(const Model *m, bool regularization, size_t *first, size_t *last) {
    *first = regularization ? 0 : m->aae_disc_offset;
    *last = regularization ? m->aae_encoder_params : m->aae_disc_offset + m->aae_discriminator->n_params;
}

static void aae_gradient_check(Config cfg, const char *label) {
    const char *names[2] = {"discriminator", "encoder"};
    adversarial_gradient_check(cfg, label, aae_objective, aae_region, names);
}

static void test_aae_gradients(void) {
    aae_gradient_check(aae_config("[5]"), "aae, mlp encoder");
    aae_gradient_check(aae_config("[{\"conv2d\": 2, \"kernel\": 3, \"stride\": 2, \"padding\": 1}, {\"batch_norm\": {}},"
                                  " \"tanh\", \"flatten\"]"), "aae, conv + batch norm encoder");
}

// Each Adam moment slot is written once in a step, by the update of its own parameter: after
// the first step from zero moments every slot holds m = (1 - beta1) g and v = (1 - beta2) g^2
// for one gradient g, so v = (1 - beta2) / (1 - beta1)^2 m^2 everywhere (a slot written twice,
// by two phases sharing moments, breaks it). Checked on the kinds with several optimizer phases
// in a step: the gan (generator, discriminator) and the aae (encoder + decoder, discriminator,
// the encoder again with its own moments at aae_moments_offset, which must then be written).
static void test_adversarial_moments_written_once(void) {
    for (int kind = 0; kind < 2; kind++) {
        Config cfg = kind == 0 ? gan_config("tanh", "0") : aae_config("[5]");
        const char *name = kind == 0 ? "gan" : "aae";
        Model m;
        char err[256];
        CHECK(model_create(&m, &cfg, cpu, 4, err, sizeof err) == 0, "%s: model_create: %s", name, err);
        model_init_params(&m, 3);
        enum { N = 8 };
        const int D = m.input_dim;
        uint8_t *images = cpu->alloc(cpu, (size_t)N * D);
        int32_t *perm = cpu->alloc(cpu, N * sizeof(int32_t));
        Rng rng;
        rng_init(&rng, 21, 4);
        for (int i = 0; i < N * D; i++) images[i] = (uint8_t)(rng_u32(&rng) & 0xff);
        rng_permutation(&rng, perm, N);
        model_begin_training(&m, 3, 1e-2f);
        TrainStep t = {.model = &m, .images = images, .labels = NULL, .perm = perm, .w_rec = 1.0f};
        train_step_run(&t, 4);
        train_step_release(&t);
        const size_t n = m.n_params;
        float *mo = xmalloc(n * sizeof(float)), *vo = xmalloc(n * sizeof(float));
        cpu->download(cpu, mo, m.adam_m, n * sizeof(float));
        cpu->download(cpu, vo, m.adam_v, n * sizeof(float));
        // the update's float factors (optimizer_math.h)
        const double one_b1 = 1.0f - (float)cfg.train.beta1, one_b2 = 1.0f - (float)cfg.train.beta2;
        const double ratio = one_b2 / (one_b1 * one_b1);
        size_t broken = 0, first_broken = 0, written_second = 0, written = 0;
        for (size_t i = 0; i < n; i++) {
            written += vo[i] != 0.0f;
            const double want = ratio * (double)mo[i] * (double)mo[i];
            if (fabs((double)vo[i] - want) > 1e-4 * want + 1e-30) {
                if (broken++ == 0) first_broken = i;
            }
            if (kind == 1 && i >= m.aae_moments_offset && i < m.aae_moments_offset + m.aae_encoder_params)
                written_second += vo[i] != 0.0f;
        }
        CHECK(broken == 0, "%s: %zu of %zu moment slots not of one gradient (first at %zu: m %.6g, v %.6g, want v %.6g)",
              name, broken, n, first_broken, mo[first_broken], vo[first_broken],
              ratio * (double)mo[first_broken] * (double)mo[first_broken]);
        CHECK(written > n / 2, "%s: %zu of %zu moment slots written", name, written, n);
        if (kind == 1)
            CHECK(written_second > m.aae_encoder_params / 2, "aae: %zu of the encoder's %zu second moments written",
                  written_second, m.aae_encoder_params);
        free(mo);
        free(vo);
        cpu->free(cpu, images);
        cpu->free(cpu, perm);
        model_destroy(&m);
    }
}

// The regions: [encoder | decoder] = the AE's parameters, the discriminator's on a 4-float
// boundary after them, then the encoder's second Adam moments; and the mixture prior's draws
// (component i mod 10 of draw i) against the rotation written out in double
static void test_aae_layout_and_prior(void) {
    Config cfg = aae_config("[5]");
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 3, err, sizeof err) == 0, "model_create: %s", err);
    const size_t encoder = (16 * 5 + 5) + (5 * 2 + 2), decoder = (2 * 6 + 6) + (6 * 16 + 16), disc = (2 * 5 + 5) + 6;
    CHECK(m.aae_encoder_params == encoder && m.aae_ae_params == encoder + decoder, "encoder %zu, ae %zu",
          m.aae_encoder_params, m.aae_ae_params);
    CHECK(m.aae_disc_offset % 4 == 0 && m.aae_disc_offset - m.aae_ae_params < 4 &&
          m.aae_discriminator->n_params == disc, "discriminator at %zu, %zu params", m.aae_disc_offset,
          m.aae_discriminator->n_params);
    CHECK(m.aae_moments_offset % 4 == 0 && m.aae_moments_offset >= m.aae_disc_offset + disc &&
          m.n_params >= m.aae_moments_offset + encoder, "second moments at %zu of %zu", m.aae_moments_offset, m.n_params);
    enum { N = 23 };
    float z[2 * N], e[2 * N];
    model_aae_prior_host(&m, z, N, 41);
    rng_fill_normal(e, 2 * N, 41, 0);
    for (int i = 0; i < N; i++) {
        double x = sqrt(0.5) * e[2 * i] + 1.4, y = sqrt(0.1) * e[2 * i + 1], a = 2 * M_PI * (i % 10) / 10.0;
        CHECK(test_close(z[2 * i], cos(a) * x - sin(a) * y, 1e-5, 1e-5) &&
              test_close(z[2 * i + 1], sin(a) * x + cos(a) * y, 1e-5, 1e-5), "draw %d: (%g, %g)", i, z[2 * i],
              z[2 * i + 1]);
    }
    float *dev = cpu->alloc(cpu, sizeof e);
    memcpy(dev, e, sizeof e);
    cpu->mixture_prior(cpu, dev, N, 10);
    CHECK(memcmp(dev, z, sizeof z) == 0, "the backend op draws the host's points");
    cpu->free(cpu, dev);
    model_destroy(&m);
}

// Each adversarial phase that writes gradients outside model_backward_scheduled (the GAN's
// discriminator and generator gradients, the AAE's discriminator and regularization gradients)
// clears Model.grads_clear, so that no later backward takes what it left for zeros.
static void test_adversarial_phases_clear_the_flag(void) {
    enum { B = 3 };
    char err[256];
    for (int kind = 0; kind < 2; kind++) {
        Config cfg = kind ? aae_config("[7]") : gan_config("sigmoid", "0.2");
        Model m;
        CHECK(model_create(&m, &cfg, cpu, B, err, sizeof err) == 0, "model_create: %s", err);
        model_init_params(&m, 4);
        m.training_mode = true;
        CHECK(m.grads_clear, "%s: a new model's gradients are clear", kind ? "aae" : "gan");
        for (int phase = 0; phase < 2; phase++) {
            m.grads_clear = true;
            if (kind == 0 && phase == 0) model_gan_discriminator_gradient(&m, B);
            if (kind == 0 && phase == 1) model_gan_generator_gradient(&m, B);
            if (kind == 1) model_encode(&m, B);
            if (kind == 1 && phase == 0) model_aae_discriminator_gradient(&m, B);
            if (kind == 1 && phase == 1) model_aae_regularization_gradient(&m, B);
            CHECK(!m.grads_clear, "%s: phase %d left Model.grads_clear set", kind ? "aae" : "gan", phase);
        }
        model_destroy(&m);
    }
}

// Every model kind's row names its operations, with the hooks model.c calls without a check
// (ModelOps: the required ones), and is found by its name; an unknown name and an out-of-range
// kind have none.
static void test_kind_table_gives_required_hooks(void) {
    for (int k = 0; k < MODEL_KIND_COUNT; k++) {
        const ModelKindInfo *info = model_kind_info((ModelKind)k);
        const ModelOps *ops = info->ops;
        CHECK(ops != NULL, "kind %s: no ModelOps", info->name);
        if (!ops) continue;
        CHECK(ops->check_networks && ops->build && ops->init && ops->forward && ops->loss && ops->gemm_flops &&
              ops->list_tensors, "kind %s: a required hook is NULL", info->name);
        CHECK(ops->backward || ops->train_step, "kind %s: neither a backward nor its own training step", info->name);
        CHECK(!ops->write_masks == !ops->mask_sets, "kind %s: mask sets without their writer (or the reverse)",
              info->name);
        CHECK(model_kind_info_named(info->name) == info, "kind %s: not found by its name", info->name);
    }
    CHECK(model_kind_info_named("diffusion") == NULL && model_kind_info_named(NULL) == NULL,
          "an unknown kind name found a row");
    CHECK(model_kind_info((ModelKind)MODEL_KIND_COUNT)->ops == NULL, "the out-of-range row has operations");
}

int main(void) {
    cpu = backend_cpu_create();
    test_run("kind_table_gives_required_hooks", test_kind_table_gives_required_hooks);
    test_run("aae_gradients", test_aae_gradients);
    test_run("aae_layout_and_prior", test_aae_layout_and_prior);
    test_run("adversarial_moments_written_once", test_adversarial_moments_written_once);
    test_run("gan_gradients", test_gan_gradients);
    test_run("gan_random_real_targets", test_gan_random_real_targets);
    test_run("gan_layout_and_init", test_gan_layout_and_init);
    test_run("gan_learns", test_gan_learns);
    test_run("vae_tanh_bce_sum", test_vae_tanh_bce_sum);
    test_run("vae_leaky_mse_sigmoid_mean", test_vae_leaky_mse_sigmoid_mean);
    test_run("vae_no_hidden_decoder", test_vae_no_hidden_decoder);
    test_run("ae_tanh_gaussian", test_ae_tanh_gaussian);
    test_run("ae_bce_one_hidden", test_ae_bce_one_hidden);
    test_run("cvae_label_condition", test_cvae_label_condition);
    test_run("free_bits_gradient", test_free_bits_gradient);
    test_run("capacity_gradient", test_capacity_gradient);
    test_run("kl_schedule_values", test_kl_schedule_values);
    test_run("graph_vae_gradients", test_graph_vae_gradients);
    test_run("graph_layout", test_graph_layout);
    test_run("conv_library_matches_composed", test_conv_library_matches_composed);
    test_run("conv_columns_kept", test_conv_columns_kept);
    test_run("conv_col2im_chunks", test_conv_col2im_chunks);
    test_run("made_gradients", test_made_gradients);
    test_run("made_autoregressive", test_made_autoregressive);
    test_run("made_mask_ensemble", test_made_mask_ensemble);
    test_run("made_sample_restores_masks", test_made_sample_restores_masks);
    test_run("made_sample_follows_the_logits", test_made_sample_follows_the_logits);
    test_run("made_natural_masks", test_made_natural_masks);
    test_run("vq_term_per_update", test_vq_term_per_update);
    test_run("vq_restart_dead_threshold", test_vq_restart_dead_threshold);
    test_run("pixelcnn_gradients", test_pixelcnn_gradients);
    test_run("pixelcnn_receptive_field", test_pixelcnn_receptive_field);
    test_run("pixelcnn_prior", test_pixelcnn_prior);
    test_run("prior_data_are_the_vq_codes", test_prior_data_are_the_vq_codes);
    test_run("checkpoint_extra_tensor", test_checkpoint_extra_tensor);
    test_run("checkpoint_round_trip_and_shapes", test_checkpoint_round_trip_and_shapes);
    test_run("checkpoint_refuses_non_finite", test_checkpoint_refuses_non_finite);
    test_run("checkpoint_replaced_while_read", test_checkpoint_replaced_while_read);
    test_run("checkpoint_metadata_follows_the_file", test_checkpoint_metadata_follows_the_file);
    test_run("layout_and_init", test_layout_and_init);
    test_run("adam_steps_lower_loss", test_adam_steps_lower_loss);
    test_run("training_step_fused_equals_stored", test_training_step_fused_equals_stored);
    test_run("queued_updates_equal_plain_step", test_queued_updates_equal_plain_step);
    test_run("grad_clip_scales_the_step", test_grad_clip_scales_the_step);
    test_run("eps_drawn_ahead_equals_drawn_in_step", test_eps_drawn_ahead_equals_drawn_in_step);
    test_run("weight_gradients_onto_cleared_gradients", test_weight_gradients_onto_cleared_gradients);
    test_run("adversarial_phases_clear_the_flag", test_adversarial_phases_clear_the_flag);
    cpu->destroy(cpu);
    return test_finish("test_model");
}

// test_model.c: whole-model gradient checks on the CPU backend (finite
// differences of the full loss w.r.t. sampled parameters, VAE and AE, every
// loss form), layer layout, and that Adam steps lower the loss.
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/model.h"
#include "cuvae/rng.h"
#include "test.h"

#include <stdlib.h>

static Backend *cpu;

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

// mean_b (w_rec rec_b + w_kl kl_b) at the current parameters, fixed eps and x
static double full_loss(Model *m, int B) {
    model_forward(m, B, EPS_GIVEN);
    model_loss(m, B);
    float rec[8], kl[8];
    cpu->download(cpu, rec, m->rec_row, B * sizeof(float));
    cpu->download(cpu, kl, m->kl_row, B * sizeof(float));
    double total = 0;
    for (int b = 0; b < B; b++) total += m->cfg.loss.w_rec * rec[b] + (m->variational ? m->cfg.loss.w_kl * kl[b] : 0.0);
    return total / B;
}

static void gradient_check(Config cfg, const char *label) {
    const int B = 3;
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, B, err, sizeof err) == 0, "%s: model_create: %s", label, err);
    model_init_params(&m, 11);
    Rng rng;
    rng_init(&rng, 77, 1);
    float x[18], eps[9];
    for (int i = 0; i < 18; i++) x[i] = rng_uniform(&rng);
    x[0] = 0.0f; x[1] = 1.0f;
    for (int i = 0; i < 9; i++) eps[i] = rng_normal(&rng);
    cpu->upload(cpu, m.x, x, sizeof x);
    if (m.variational) cpu->upload(cpu, m.eps, eps, sizeof eps);

    model_forward(&m, B, EPS_GIVEN);
    model_backward(&m, B, (float)cfg.loss.w_rec, (float)cfg.loss.w_kl);
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
        double fp = full_loss(&m, B);
        params[k] = saved - h;
        model_set_params(&m, params);
        double fm = full_loss(&m, B);
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
    cpu->zero(cpu, m.eps, 9 * sizeof(float));
    double first = full_loss(&m, 3);
    for (int step = 0; step < 200; step++) {
        model_forward(&m, 3, EPS_GIVEN);
        model_backward(&m, 3, 1.3f, 0.7f);
        model_accumulate_loss(&m, 3);
        model_adam_step(&m, 1e-2f);
    }
    double last = full_loss(&m, 3);
    double rec, kl, count;
    model_read_loss(&m, &rec, &kl, &count);
    CHECK(count == 600, "accumulated %g examples", count);
    CHECK(last < 0.5 * first, "200 Adam steps: loss %g -> %g", first, last);
    model_destroy(&m);
}

int main(void) {
    cpu = backend_cpu_create();
    test_run("vae_tanh_bce_sum", test_vae_tanh_bce_sum);
    test_run("vae_leaky_mse_sigmoid_mean", test_vae_leaky_mse_sigmoid_mean);
    test_run("vae_no_hidden_decoder", test_vae_no_hidden_decoder);
    test_run("ae_tanh_gaussian", test_ae_tanh_gaussian);
    test_run("ae_bce_one_hidden", test_ae_bce_one_hidden);
    test_run("layout_and_init", test_layout_and_init);
    test_run("adam_steps_lower_loss", test_adam_steps_lower_loss);
    cpu->destroy(cpu);
    return test_finish("test_model");
}

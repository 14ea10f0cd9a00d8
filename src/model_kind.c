// model_kind.c: implements model_kind.h, the table of model kinds: their traits and the
// registration of each kind's operations (ModelOps, in its own file).
#include "cuvae/model_kind.h"
#include "cuvae/model.h"   // the kinds' ModelOps

#include <stddef.h>
#include <string.h>

static const ModelKindInfo kinds[MODEL_KIND_COUNT] = {
    [MODEL_VAE] = {.name = "vae", .ops = &model_latent_ops, .gaussian_posterior = true, .draws_z = true, .second = "KL",
                   .second_unit = "nats", .second_units = "\"kl\": \"nats/example\""},
    [MODEL_AE] = {.name = "ae", .ops = &model_latent_ops, .iw_refusal = "needs a variational model (kind vae or cvae), got kind \"ae\""},
    [MODEL_CVAE] = {.name = "cvae", .ops = &model_latent_ops, .gaussian_posterior = true, .draws_z = true, .second = "KL",
                    .second_unit = "nats", .second_units = "\"kl\": \"nats/example\""},
    [MODEL_VQ_VAE] = {.name = "vq_vae", .ops = &model_vq_ops, .second = "VQ", .second_unit = "squared distance",
                      .second_units = "\"vq\": \"squared distance per example ((1 + beta) or beta (EMA) times "
                                      "||z_e - e||^2)\"",
                      .z_refusal = "a vq_vae's codes are deterministic (the nearest codebook vectors)",
                      .iw_refusal = "a vq_vae has no likelihood bound to estimate (no KL term)",
                      .data_parallel_refusal = "updates its codebook outside the gradient (EMA, dead-code restarts)"},
    [MODEL_MADE] = {.name = "made", .ops = &model_made_ops, .autoregressive = true,
                    .z_refusal = "a made or pixelcnn has no latent (its test loss is the exact -log p(x))"},
    [MODEL_PIXELCNN] = {.name = "pixelcnn", .ops = &model_pixelcnn_ops, .autoregressive = true,
                        .z_refusal = "a made or pixelcnn has no latent (its test loss is the exact -log p(x))"},
    [MODEL_GAN] = {.name = "gan", .ops = &model_gan_ops, .draws_z = true, .adversarial = true, .second = "G loss", .second_unit = "nats",
                   .z_refusal = "a gan has no encoder",
                   .iw_refusal = "a gan has no likelihood bound to estimate (its score is the Parzen-window estimate)",
                   .data_parallel_refusal = "trains its players in alternating phases, each with its own optimizer"},
    [MODEL_AAE] = {.name = "aae", .ops = &model_aae_ops, .adversarial = true, .second = "D loss", .second_unit = "nats",
                   .second_units = "\"d_loss\": \"nats/example (the discriminator's binary cross-entropy)\"",
                   .z_refusal = "an aae's codes are deterministic",
                   .iw_refusal = "needs a variational model (kind vae or cvae), got kind \"aae\"",
                   .data_parallel_refusal = "trains its players in alternating phases, each with its own optimizer"},
};

static const ModelKindInfo invalid_kind = {.name = "invalid"};

const ModelKindInfo *model_kind_info(ModelKind k) {
    if ((int)k < 0 || (int)k >= MODEL_KIND_COUNT) return &invalid_kind;
    return &kinds[k];
}

const char *model_kind_name(ModelKind k) { return model_kind_info(k)->name; }

const ModelKindInfo *model_kind_info_named(const char *name) {
    for (int k = 0; name && k < MODEL_KIND_COUNT; k++)
        if (strcmp(kinds[k].name, name) == 0) return &kinds[k];
    return NULL;
}

bool model_kind_autoregressive(ModelKind k) { return model_kind_info(k)->autoregressive; }

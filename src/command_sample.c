// command_sample.c: `cuvae sample CKPT`: a PNG grid of the model's draws (decoded latents, a MADE's
// or PixelCNN's pixels one at a time, a gan's generator, or codes a PixelCNN prior draws (--prior)
// decoded by its VQ-VAE).
#include "cuvae/commands.h"
#include "cuvae/checkpoint.h"
#include "cuvae/image.h"
#include "cuvae/plot.h"
#include "cuvae/prior.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int command_sample(int argc, char **argv) {
    char err[1024];
    Args a;
    if (parse_args(argc, argv, "sample", &a, err, sizeof err) != 0) return command_fail(err);
    if (a.title && plot_check_environment(err, sizeof err) != 0) return command_fail(err);
    Config cfg;
    Backend *be;
    Model m;
    if (a.prior) {   // CKPT is a vq_vae; PRIOR a pixelcnn over its codes: load the prior, decoding through CKPT
        static char prior_of[1200];
        for (int i = 0; i < a.n_overrides; i++)   // CKPT is the VQ-VAE here: another would be dropped
            if (strncmp(a.overrides[i], "model.prior_of=", 15) == 0) {
                snprintf(err, sizeof err, "sample: --set model.prior_of with --prior: the prior decodes through "
                         "CKPT (%s) here; give the VQ-VAE you mean as CKPT", a.positional);
                return command_fail(err);
            }
        Config vq_cfg;
        if (checkpoint_read_config(a.positional, &vq_cfg, NULL, 0, err, sizeof err) != 0) return command_fail(err);
        if (vq_cfg.model.kind != MODEL_VQ_VAE) {
            snprintf(err, sizeof err, "sample: --prior needs a vq_vae checkpoint, %s is a \"%s\"", a.positional,
                     model_kind_name(vq_cfg.model.kind));
            return command_fail(err);
        }
        Config stored_prior;   // as trained, before prior_of points it at CKPT
        snprintf(prior_of, sizeof prior_of, "model.prior_of=%s", a.positional);
        if (checkpoint_read_config(a.prior, &stored_prior, NULL, 0, err, sizeof err) != 0) {
            // a prior whose VQ-VAE has moved since (its stored model.prior_of no longer opens, or now holds
            // another file): CKPT is the VQ-VAE here, and it is checked against the prior's model.prior_crc32
            const char *at_ckpt[1] = {prior_of};
            char err_at_ckpt[1024];
            if (!strstr(err, "model.prior_of")) return command_fail(err);
            if (checkpoint_read_config(a.prior, &stored_prior, at_ckpt, 1, err_at_ckpt, sizeof err_at_ckpt) != 0) {
                const char *reason = strstr(err_at_ckpt, "): ");   // (not a --set of the user's: said so)
                char said[2400];
                snprintf(said, sizeof said, "sample: %s --prior %s: %s", a.positional, a.prior,
                         reason ? reason + 3 : err_at_ckpt);
                return command_fail(said);
            }
        }
        if (stored_prior.model.kind != MODEL_PIXELCNN || !stored_prior.model.prior_of[0]) {
            snprintf(err, sizeof err, "sample: --prior %s is a \"%s\"%s, not a PixelCNN prior over a VQ-VAE's codes "
                     "(a pixelcnn trained with model.prior_of)", a.prior, model_kind_name(stored_prior.model.kind),
                     stored_prior.model.kind == MODEL_PIXELCNN ? " over images" : "");
            return command_fail(err);
        }
        if (a.n_overrides == MAX_OVERRIDES) return command_fail("sample: too many --set");
        const char *vq_path = a.positional;
        a.overrides[a.n_overrides++] = prior_of;
        a.positional = a.prior;
        Config prior_cfg;
        if (checkpoint_read_config(a.positional, &prior_cfg, a.overrides, a.n_overrides, err, sizeof err) != 0) {
            // the model.prior_of given is --prior's CKPT, not a --set of the user's: said so
            const char *reason = strncmp(err, prior_of, strlen(prior_of)) == 0 || strncmp(err + 6, prior_of,
                                 strlen(prior_of)) == 0 ? strstr(err, "): ") : NULL;
            if (reason) {
                char said[1024];
                snprintf(said, sizeof said, "sample: %s --prior %s: %s", vq_path, a.prior, reason + 3);
                return command_fail(said);
            }
            return command_fail(err);
        }
        if (prior_cfg.model.prior_classes == 0) {
            snprintf(err, sizeof err, "sample: --prior %s is not a prior over a VQ-VAE's codes (no model.prior_of)",
                     a.prior);
            return command_fail(err);
        }
    }
    if (command_refuse_evaluation_sets("sample", a.overrides, a.n_overrides, err, sizeof err) != 0) return command_fail(err);
    for (int i = 0; i < a.n_overrides; i++) {   // sample reads no data: a --set of it would be taken and not read
        const char *set = a.overrides[i];
        if (strncmp(set, "data.", 5) == 0 || strncmp(set, "data=", 5) == 0) {
            snprintf(err, sizeof err, "sample: --set %.*s: sample reads no data (its images are the model's "
                     "draws); data.* is read by eval and plot", (int)strcspn(set, "="), set);
            return command_fail(err);
        }
    }
    if (command_check_output_not_prior_of("sample", a.output_png, a.positional, a.overrides,
                                  a.n_overrides, err, sizeof err) != 0)
        return command_fail(err);
    // --class against the checkpoint's classes: said before the device starts (its note would come first)
    Config peek;
    if (a.sample_class >= 0 &&
        checkpoint_read_config(a.positional, &peek, a.overrides, a.n_overrides, err, sizeof err) == 0) {
        const int classes = peek.model.condition == CONDITION_LABEL ? peek.model.n_classes : 0;
        if (classes == 0) return command_fail("sample: --class needs a cvae checkpoint (model.kind \"cvae\")");
        if (a.sample_class >= classes) {
            snprintf(err, sizeof err, "sample: --class %d: the model has classes 0..%d", a.sample_class, classes - 1);
            return command_fail(err);
        }
        int data_classes = 0;   // a cvae trained on labels 0..K-1 only
        if (checkpoint_data_classes(a.positional, classes, &data_classes, err, sizeof err) != 0) return command_fail(err);
        if (data_classes > 0 && a.sample_class >= data_classes) {
            snprintf(err, sizeof err, "sample: --class %d: the run's data had labels 0..%d only; the model's "
                     "classes %d..%d were never trained", a.sample_class, data_classes - 1, data_classes,
                     classes - 1);
            return command_fail(err);
        }
    }
    if (command_load_checkpoint_model(&a, a.n_samples, NULL, &cfg, &be, &m, err, sizeof err) != 0) return command_fail(err);
    int D = m.input_dim;
    float *prior_pixels = NULL;   // a prior: images decoded by its VQ-VAE from codes it draws
    int image[3] = {1, 1, 1};     // (their shape: the VQ-VAE's)
    if (m.prior_classes &&
        prior_sample_images(&m, a.n_samples, (a.seed >= 0 ? (uint64_t)a.seed : cfg.train.seed) ^ 0x5A3Bull,
                            &prior_pixels, image, err, sizeof err) != 0) {
        model_destroy(&m);
        be->destroy(be);
        return command_fail(err);
    }
    if (m.prior_classes) D = image[0] * image[1] * image[2];
    int channels = image[0], rows = image[1], cols = image[2];
    if (!m.prior_classes && !model_image_shape(&m, &channels, &rows, &cols)) {
        char why[200];
        model_not_image_reason(&m, why, sizeof why);
        snprintf(err, sizeof err, "sample: %s", why);
        model_destroy(&m);
        be->destroy(be);
        return command_fail(err);
    }
    uint64_t seed = a.seed >= 0 ? (uint64_t)a.seed : cfg.train.seed;
    // (--class was checked against the checkpoint's classes before the model was loaded)
    // (checkpoint loading read its data_classes: a cvae trained on labels 0..K-1 draws those)
    const int drawn_classes = m.data_classes > 0 && m.data_classes < m.n_classes ? m.data_classes : m.n_classes;
    if (m.n_classes > 0) {
        uint8_t *labels = xmalloc((size_t)a.n_samples);
        for (int i = 0; i < a.n_samples; i++)
            labels[i] = (uint8_t)(a.sample_class >= 0 ? a.sample_class : i % drawn_classes);
        uint8_t *labels_dev = be->alloc(be, (size_t)a.n_samples);
        be->upload(be, labels_dev, labels, (size_t)a.n_samples);
        be->gather_onehot(be, m.onehot, labels_dev, NULL, 0, NULL, a.n_samples, m.n_classes);
        be->free(be, labels_dev);
        free(labels);
    }
    const int m_classes = m.n_classes > 0 ? drawn_classes : 0;
    const bool m_was_vq = m.vq, m_was_made = m.autoregressive, m_was_prior = m.prior_classes > 0, m_was_gan = m.gan,
               m_was_aae = m.aae;
    float *pixels = prior_pixels ? prior_pixels : xmalloc((size_t)a.n_samples * D * sizeof(float));
    if (m.prior_classes) {
        // drawn above
    } else if (m.autoregressive) {   // made: pixel by pixel in the model's ordering
        if (!model_made_sample(&m, a.n_samples, seed ^ 0x5A3Bull, pixels)) {
            snprintf(err, sizeof err, "sample: %s: the model's logits are not finite: the model has diverged (its "
                     "weights are finite, its outputs overflow)", a.positional);
            free(pixels);
            model_destroy(&m);
            be->destroy(be);
            return command_fail(err);
        }
    } else if (m.ops->draw_latents) {   // drawn on the host: a VQ-VAE's codes uniformly (it has no prior of
                                        // its own: --prior gives one), an aae's prior (N(0, I) or the mixture)
        float *z = xmalloc((size_t)a.n_samples * m.latent_dim * sizeof(float));
        model_draw_latents(&m, z, a.n_samples, seed ^ 0x5A3Bull);
        be->upload(be, m.z, z, (size_t)a.n_samples * m.latent_dim * sizeof(float));
        free(z);
    } else {
        be->fill_normal(be, m.z, (size_t)a.n_samples * m.latent_dim, seed ^ 0x5A3Bull, 0, NULL);
    }
    if (!m.autoregressive) {
        model_decode(&m, a.n_samples);
        be->download(be, pixels, model_output(&m), (size_t)a.n_samples * D * sizeof(float));
        // an output that is not finite would be drawn black (NaN) or as a plain 0 or 1 (+-inf
        // after the sigmoid): a diverged decoder (finite weights whose outputs overflow), refused
        // as eval refuses its test loss
        for (size_t i = 0; i < (size_t)a.n_samples * D; i++)
            if (!isfinite(pixels[i])) {
                snprintf(err, sizeof err, "sample: %s: the decoder's output for sample %zu is not finite (%g): the "
                         "model has diverged", a.positional, i / (size_t)D, pixels[i]);
                free(pixels);
                model_destroy(&m);
                be->destroy(be);
                return command_fail(err);
            }
        model_outputs_to_pixels(&m, pixels, (size_t)a.n_samples * D);
    }
    int grid_cols = (int)ceil(sqrt((double)a.n_samples));
    int width, height;
    uint8_t *grid = image_grid_channels(pixels, a.n_samples, channels, rows, cols, grid_cols, 2, 128, &width, &height);
    const char *out = a.output_png ? a.output_png : "samples.png";
    int rc;
    if (a.title && !plot_available())
        rc = set_error(err, sizeof err, "sample: --title draws the grid through gnuplot, which is not "
                       "installed (apt-get install gnuplot-nox); without --title the grid is plain PNG");
    else if (a.title)
        rc = plot_image_channels(out, a.title, grid, width, height, channels, NULL, 0, 0, NULL, 0, 0, err, sizeof err);
    else
        rc = png_write(out, grid, width, height, channels, err, sizeof err);
    free(grid);
    free(pixels);
    model_destroy(&m);
    be->destroy(be);
    if (rc != 0) return command_fail(err);
    char conditioned[64] = "";   // a cvae's class: the one asked for, or sample i of class i mod classes
    if (m_classes > 0 && a.sample_class >= 0) snprintf(conditioned, sizeof conditioned, ", class %d", a.sample_class);
    else if (m_classes > 0) snprintf(conditioned, sizeof conditioned, ", sample i of class i mod %d", m_classes);
    say("wrote %s (%d sample%s from %s%s)", out, a.n_samples, a.n_samples == 1 ? "" : "s",
            m_was_prior ? "codes drawn from the PixelCNN prior, decoded by its VQ-VAE" :
            m_was_made ? "binary pixels drawn one at a time in the model's ordering" :
            m_was_vq ? "codes drawn uniformly at every position, not from a prior; --prior PRIOR.safetensors "
                       "draws them from a PixelCNN prior" :
            m_was_gan ? "the generator from z ~ N(0, I)" :
            m_was_aae ? (cfg.model.prior_mixture ? "the prior's draws (10 Gaussians in 2-D), decoded"
                                                 : "the prior's draws, N(0, I), decoded") : "z ~ N(0, I)",
            conditioned);
    return 0;
}

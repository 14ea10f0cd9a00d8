// prior.c: a PixelCNN prior over a VQ-VAE's codes (prior.h). The VQ-VAE is loaded from its
// checkpoint on a backend of its own (the device the prior's config names), run in eval mode.
#include "cuvae/prior.h"
#include "cuvae/backend.h"
#include "cuvae/checkpoint.h"
#include "cuvae/dataset.h"
#include "cuvae/common.h"
#include "cuvae/layer_math.h"
#include "cuvae/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRIOR_BATCH 500

int prior_code_grid(const char *path, int *K, int *h, int *w, char crc[16], char *err, size_t errlen) {
    Config vq;
    char why[700];
    if (checkpoint_read_config(path, &vq, NULL, 0, why, sizeof why) != 0)
        return set_error(err, errlen, "%s", why);
    if (checkpoint_metadata_value(path, "crc32", crc, 16, why, sizeof why) != 0)
        return set_error(err, errlen, "%s", why);
    if (!crc[0]) snprintf(crc, 16, "none");
    if (vq.model.kind != MODEL_VQ_VAE)
        return set_error(err, errlen, "%s is a \"%s\" checkpoint, not a vq_vae", path, model_kind_name(vq.model.kind));
    if (vq.model.codebook.size > 256)
        return set_error(err, errlen, "%s: its codebook has %d codes; a prior takes at most 256 (codes travel "
                         "as bytes)", path, vq.model.codebook.size);
    Network *net = xcalloc(1, sizeof *net);
    int rc = network_build(net, "encoder", vq.model.encoder_layers, vq.model.n_encoder_layers,
                           model_input_shape(&vq), 0, 0, why, sizeof why);
    if (rc == 0) {
        *K = vq.model.codebook.size;
        *h = net->out.rank == 3 ? net->out.dim[1] : 1;
        *w = net->out.rank == 3 ? net->out.dim[2] : 1;
    } else {
        set_error(err, errlen, "%s: %s", path, why);
    }
    free(net);
    return rc;
}

// The VQ-VAE of the prior's config, loaded for batches of up to max_batch.
static int open_vq(const Config *cfg, Backend **be, Model *vq, int max_batch, char *err, size_t errlen) {
    Config vq_cfg;
    if (checkpoint_read_config(cfg->model.prior_of, &vq_cfg, NULL, 0, err, errlen) != 0) return -1;
    vq_cfg.device = cfg->device;
    *be = backend_create(vq_cfg.device, err, errlen);
    if (!*be) return -1;
    backend_configure_from(*be, &vq_cfg);
    if (model_create_forward_only(vq, &vq_cfg, *be, max_batch, err, errlen) != 0 ||
        checkpoint_load_params(vq, cfg->model.prior_of, err, errlen) != 0) {
        if (vq->be) model_destroy(vq);
        (*be)->destroy(*be);
        return -1;
    }
    vq->training_mode = false;
    return 0;
}

// Replaces d's images by their codes (n, S) under the VQ-VAE.
static void encode_split(Model *vq, Dataset *d) {
    Backend *be = vq->be;
    const int S = vq->vq_positions, D = vq->input_dim;
    uint8_t *codes = xmalloc((size_t)(d->n > 0 ? d->n : 1) * S);
    float *x = xmalloc((size_t)PRIOR_BATCH * D * sizeof(float));
    int32_t *batch_codes = xmalloc((size_t)PRIOR_BATCH * S * sizeof(int32_t));
    for (int start = 0; start < d->n; start += PRIOR_BATCH) {
        const int B = d->n - start < PRIOR_BATCH ? d->n - start : PRIOR_BATCH;
        for (size_t i = 0; i < (size_t)B * D; i++) x[i] = d->images[(size_t)start * D + i] / 255.0f;
        be->upload(be, vq->x, x, (size_t)B * D * sizeof(float));
        model_forward(vq, B, EPS_ZERO);
        model_vq_read_codes(vq, B, batch_codes);
        for (size_t i = 0; i < (size_t)B * S; i++) codes[(size_t)start * S + i] = (uint8_t)batch_codes[i];
    }
    free(d->images);
    d->images = codes;
    d->dim = S;
    d->rows = 1;
    d->cols = S;
    free(x);
    free(batch_codes);
}

int prior_dataset_load(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen) {
    if (!cfg->model.prior_of[0]) return dataset_load(cfg, train, test, err, errlen);
    Config vq_cfg;
    if (checkpoint_read_config(cfg->model.prior_of, &vq_cfg, NULL, 0, err, errlen) != 0) return -1;
    Config data = *cfg;   // the images the VQ-VAE reads: its input size and shape (RGB, non-square)
    data.model.input_dim = vq_cfg.model.input_dim;
    memcpy(data.model.input_shape, vq_cfg.model.input_shape, sizeof data.model.input_shape);
    if (dataset_load(&data, train, test, err, errlen) != 0) return -1;
    if (test->dim != vq_cfg.model.input_dim) {   // (train's: checked)
        dataset_free(train);
        dataset_free(test);
        return set_error(err, errlen, "model.prior_of: the VQ-VAE reads %d values per image, the data set has %d",
                         vq_cfg.model.input_dim, test->dim);
    }
    // the images as the VQ-VAE read them: a VQ-VAE trained on binarized images encodes bits (drawn once,
    // with its seed: a static run's very bits, and its test set's; a dynamic run drew new training bits
    // every epoch, the prior takes one draw)
    if (vq_cfg.data.binarize != BINARIZE_NONE) dataset_binarize_once(&vq_cfg, train, test);
    Backend *be;
    Model vq;
    if (open_vq(cfg, &be, &vq, PRIOR_BATCH, err, errlen) != 0) {
        dataset_free(train);
        dataset_free(test);
        return -1;
    }
    if (train) encode_split(&vq, train);
    encode_split(&vq, test);
    model_destroy(&vq);
    be->destroy(be);
    return 0;
}

int prior_decode_codes(const Config *cfg, const int32_t *codes, int n, float **pixels, int image[3],
                       char *err, size_t errlen) {
    Backend *be;
    Model vq;
    if (open_vq(cfg, &be, &vq, PRIOR_BATCH, err, errlen) != 0) return -1;
    if (!model_image_shape(&vq, &image[0], &image[1], &image[2])) {
        model_destroy(&vq);
        be->destroy(be);
        return set_error(err, errlen, "%s: the VQ-VAE's inputs are not images (no model.input_shape, and input_dim %d "
                         "is not a square): its samples cannot be drawn", cfg->model.prior_of, vq.input_dim);
    }
    const int D = vq.vq_dim, K = vq.vq_size, S = vq.vq_positions;
    float *codebook = xmalloc((size_t)K * D * sizeof(float));
    be->download(be, codebook, vq.codebook, (size_t)K * D * sizeof(float));
    float *z = xmalloc((size_t)n * D * S * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int s = 0; s < S; s++) {
            const int k = codes[(size_t)i * S + s];
            for (int d = 0; d < D; d++) z[((size_t)i * D + d) * S + s] = codebook[(size_t)k * D + d];   // (D, S)
        }
    *pixels = xmalloc((size_t)n * vq.input_dim * sizeof(float));
    const bool finite = model_decode_pixels(&vq, z, NULL, n, *pixels);
    free(codebook);
    free(z);
    model_destroy(&vq);
    be->destroy(be);
    if (!finite) {   // (a diverged VQ-VAE: its +-inf outputs would be drawn as plain pixels)
        free(*pixels);
        *pixels = NULL;
        return set_error(err, errlen, "%s: the VQ-VAE's decoder gives outputs that are not finite: it has diverged",
                         cfg->model.prior_of);
    }
    return 0;
}

int prior_sample_images(Model *prior, int n, uint64_t seed, float **pixels, int image[3], char *err,
                        size_t errlen) {
    const int S = prior->input_dim;
    float *values = xmalloc((size_t)n * S * sizeof(float));
    if (!model_made_sample(prior, n, seed, values)) {
        free(values);
        return set_error(err, errlen, "the prior's logits are not finite: it has diverged (its weights are finite, "
                         "its outputs overflow)");
    }
    int32_t *codes = xmalloc((size_t)n * S * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)n * S; i++) codes[i] = code_of_value(values[i]);
    int rc = prior_decode_codes(&prior->cfg, codes, n, pixels, image, err, errlen);
    free(values);
    free(codes);
    return rc;
}

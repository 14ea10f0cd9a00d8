// eval.c: the dataset upload and the ELBO evaluation (test loss, rec, KL in
// nats per example) used after every epoch and by `cuvae eval`.
#include "cuvae/eval.h"

#include <string.h>

#define EVAL_SEED_SALT 0x5EEDE7A1ull
#define EVAL_BINARIZE_SEED_SALT 0xB1A7ull

void device_dataset_upload(Backend *be, const Dataset *host, DeviceDataset *out) {
    out->n = host->n;
    out->dim = host->dim;
    size_t image_bytes = (size_t)host->n * host->dim;
    out->images = be->alloc(be, image_bytes ? image_bytes : 1);
    out->labels = be->alloc(be, host->n ? (size_t)host->n : 1);
    be->upload(be, out->images, host->images, image_bytes);
    be->upload(be, out->labels, host->labels, (size_t)host->n);
}

void device_dataset_free(Backend *be, DeviceDataset *d) {
    be->free(be, d->images);
    be->free(be, d->labels);
    memset(d, 0, sizeof *d);
}

void eval_elbo(Model *m, const DeviceDataset *data, EpsMode eps_mode, ElboResult *out) {
    Backend *be = m->be;
    uint64_t saved_seed = m->rng_seed, saved_offset = m->rng_offset;
    m->rng_seed = m->cfg.train.seed ^ EVAL_SEED_SALT;
    m->rng_offset = 0;
    uint64_t binarize_seed = m->cfg.train.seed ^ EVAL_BINARIZE_SEED_SALT;
    bool dynamic = m->cfg.data.binarize == BINARIZE_DYNAMIC && m->uniform;
    for (int start = 0; start < data->n; start += m->max_batch) {
        int B = data->n - start < m->max_batch ? data->n - start : m->max_batch;
        if (dynamic)
            be->fill_uniform(be, m->uniform, (size_t)B * data->dim, binarize_seed,
                             (uint64_t)start * data->dim);
        be->gather_batch(be, m->x, data->images, NULL, start, B, data->dim,
                         dynamic ? m->uniform : NULL);
        model_forward(m, B, eps_mode);
        model_loss(m, B);
        model_accumulate_loss(m, B);
    }
    double rec, kl, count;
    model_read_loss(m, &rec, &kl, &count);
    m->rng_seed = saved_seed;
    m->rng_offset = saved_offset;
    out->examples = (long)count;
    out->rec = count > 0 ? rec / count : 0.0;
    out->kl = count > 0 ? kl / count : 0.0;
    out->loss = out->rec + out->kl;
}

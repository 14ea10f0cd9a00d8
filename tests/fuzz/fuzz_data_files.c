// fuzz_data_files.c: the readers of data.dataset "files" (dataset_files.c) on
// arbitrary bytes: the first byte picks .npy (even) or .safetensors (odd), the
// rest is the file. Properties: no crash or sanitizer report; a failure is one
// error line; an accepted set has n >= 1 images of channels x rows x cols = dim
// bytes each, every byte readable, and labels below n_classes.
#include "fuzz_common.h"
#include "cuvae/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *path = fuzz_input_file(data + 1, size - 1);
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.data.dataset, sizeof cfg.data.dataset, "files");
    snprintf(cfg.data.train, sizeof cfg.data.train, "%s", path);
    cfg.data.format = (data[0] & 1) ? DATA_FORMAT_SAFETENSORS : DATA_FORMAT_NPY;
    cfg.data.layout = (DataLayout)((data[0] >> 1) % 3);
    cfg.data.test_fraction = 0.5;
    cfg.train.seed = 1;
    Dataset train, test;
    char err[1024] = "";
    if (dataset_files_load(&cfg, &train, &test, err, sizeof err) != 0) {
        fuzz_check_error_line(err);
        return 0;
    }
    const Dataset *sets[2] = {&train, &test};
    for (int s = 0; s < 2; s++) {
        const Dataset *d = sets[s];
        if (d->n < 1 || d->channels * d->rows * d->cols != d->dim) abort();
        volatile unsigned sum = 0;
        for (size_t i = 0; i < (size_t)d->n * (size_t)d->dim; i++) sum += d->images[i];
        for (int i = 0; i < d->n; i++)
            if (d->n_classes > 0 && d->labels[i] >= d->n_classes) abort();
        (void)sum;
    }
    dataset_free(&train);
    dataset_free(&test);
    return 0;
}

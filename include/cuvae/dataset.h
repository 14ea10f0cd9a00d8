// dataset.h: named datasets (mnist, fashion-mnist) held on the host as uint8
// images + labels; static binarization.
#ifndef CUVAE_DATASET_H
#define CUVAE_DATASET_H

#include <stdint.h>
#include <stddef.h>
#include "cuvae/config.h"

typedef struct {
    int n;              // examples
    int rows, cols;     // image shape
    int dim;            // rows * cols
    uint8_t *images;    // (n, dim), 0..255
    uint8_t *labels;    // (n), 0..9
    int n_classes;      // 10
} Dataset;

// Loads train and test splits from cfg->data.dir: train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each
// plain or with ".gz". Applies train_limit / test_limit, checks image dim ==
// model.input_dim, image/label counts agree, labels < 10. Applies static
// binarization (seeded by train.seed) when asked: pixels become 0 or 255.
int dataset_load(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen);

// Static binarization: pixel p becomes 255 with probability p/255, else 0.
void dataset_binarize_static(Dataset *d, uint64_t seed, uint64_t stream);
// The one binarization of a test (or validation) set, static and dynamic runs alike:
// dataset_binarize_static(d, train.seed ^ TEST_SET_BINARIZE_SALT, TEST_SET_BINARIZE_STREAM).
#define TEST_SET_BINARIZE_SALT 0xB1A7ull
#define TEST_SET_BINARIZE_STREAM 103

// data.validation: moves round(fraction * n) examples (at least 1), chosen by a
// permutation seeded by seed, from train into val; both keep the data's order.
// -1 with err if nothing would be left to train on.
#define DATASET_VALIDATION_STREAM 3001
int dataset_split_validation(Dataset *train, Dataset *val, double fraction, uint64_t seed, char *err,
                             size_t errlen);

void dataset_free(Dataset *d);

#endif

// dataset.h: named datasets (mnist, fashion-mnist) held on the host as uint8
// images + labels; static binarization.
#ifndef CUVAE_DATASET_H
#define CUVAE_DATASET_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "cuvae/config.h"

typedef struct {
    int n;              // examples
    int channels;       // 1 (grey) or 3 (RGB), or the channels of an array file
    int rows, cols;     // image shape
    int dim;            // channels * rows * cols
    uint8_t *images;    // (n, channels, rows, cols), 0..255
    uint8_t *labels;    // (n): 0..9 (mnist), a class folder's index, a labels array's value; 0 when unlabelled
    int n_classes;      // 10 (mnist); class folders or the largest label + 1; 0 when unlabelled
    char **class_names; // (n_classes) the class folders' names, else NULL
    int carved, carved_from;   // a test set of `carved` images held out of `carved_from` training images
                               // (dataset "files" without data.test; before the limits), else 0
    uint32_t carved_crc32;     // dataset_crc32 of that carved test set (before the limits), else 0
    char rounding_note[1200];  // dataset "files": float32 pixels off the 1/255 grid, rounded (a "cuvae: note:"
                               // line), else ""
} Dataset;

// data.dataset "files" (dataset_files.c): train and test from data.train / data.test
// (or test carved from train with data.test_fraction), any format and shape.
#define DATASET_TEST_SPLIT_STREAM 3002
int dataset_files_load(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen);

// Loads train and test splits from cfg->data.dir: train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each
// plain or with ".gz". Applies train_limit / test_limit, checks image dim ==
// model.input_dim, image/label counts agree, labels < 10. Applies static
// binarization (seeded by train.seed) when asked: pixels become 0 or 255.
// train NULL: the test split alone (eval and plot) -- mnist and fashion-mnist read only the two
// t10k files; dataset "files" still reads data.train (a carved test set comes out of it, and
// the test set's shape, labels and classes are checked against it) and drops it.
int dataset_load(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen);

// The files cfg's data are read from, those that are there (for a writer that must not replace
// them): mnist and fashion-mnist, data.dir's four IDX files, plain and .gz; dataset "files",
// data.train, data.test and their labels where they are files (not folders). At most max; the count.
enum { DATASET_INPUT_FILES_MAX = 8, DATASET_INPUT_PATH = 1100 };
int dataset_input_files(const Config *cfg, char paths[][DATASET_INPUT_PATH], int max);

// The lines saying that the test set was carved out of the training images (data.test not
// given) and that float32 pixels were rounded to 8 bits (train may be NULL: the test set's
// alone, which a carved set shares with train), into lines, or "" when neither; the caller says
// them once its checks have passed.
void dataset_load_notes(const Config *cfg, const Dataset *train, const Dataset *test, char *lines, size_t n);

// Static binarization: pixel p becomes 255 with probability p/255, else 0.
void dataset_binarize_static(Dataset *d, uint64_t seed, uint64_t stream);
// The bits a data.binarize "static" run of config run reads: the training images drawn with its
// train.seed, the test images as below (a dynamic run's test set too). train may be NULL.
void dataset_binarize_once(const Config *run, Dataset *train, Dataset *test);
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
// The same split with its own random stream (the test set carved by dataset "files").
int dataset_split(Dataset *train, Dataset *held, double fraction, uint64_t seed, uint64_t stream, const char *what,
                  char *err, size_t errlen);

void dataset_free(Dataset *d);

// CRC-32 of the examples as training sees them (shape, pixels, labels): a resume file carries the
// one of its run, so a run is not continued on other data.
uint32_t dataset_crc32(const Dataset *d);

#endif

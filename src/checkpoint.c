// checkpoint.c: model parameters <-> safetensors with PyTorch names (the model's kind lists its
// tensors, model_list_tensors: the shorthand MLP's nn.Linear layers encoder.{i}, mu, logvar,
// decoder.{i}, i counting linears; layer-list networks by nn.Sequential index, encoder.3.weight,
// encoder.4.running_mean, ...); the effective config rides in __metadata__ so eval / sample
// rebuild the model from the checkpoint alone.
#include "cuvae/checkpoint.h"
#include "cuvae/common.h"
#include "cuvae/run_folder.h"
#include "cuvae/safetensors.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECKPOINT_FORMAT "cuvae-1"

_Static_assert(MODEL_TENSOR_NAME == ST_MAX_NAME && MODEL_TENSOR_RANK == ST_MAX_RANK,
               "a model tensor's name and shape fit a safetensors entry");

static size_t slice_count(const ModelTensor *s) {
    size_t n = 1;
    for (int d = 0; d < s->rank; d++) n *= (size_t)s->shape[d];
    return n;
}

static void format_shape(char *out, size_t outlen, int rank, const int64_t *shape) {
    size_t used = (size_t)snprintf(out, outlen, "[");
    for (int d = 0; d < rank && used < outlen; d++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (used < outlen) snprintf(out + used, outlen - used, "]");
}

void checkpoint_meta_written_by(StMeta *meta, int *n_meta, const char *written_by, char buf[CHECKPOINT_WRITTEN_BY_MAX]) {
    if (!written_by || !written_by[0]) return;
    snprintf(meta[*n_meta].key, sizeof meta[*n_meta].key, "written_by");
    snprintf(buf, CHECKPOINT_WRITTEN_BY_MAX, "%s", written_by);
    meta[(*n_meta)++].value = buf;
}

int checkpoint_save(Model *m, const char *path, char *err, size_t errlen) {
    return checkpoint_save_written_by(m, path, cuvae_build(), err, errlen);
}

int checkpoint_save_written_by(Model *m, const char *path, const char *written_by, char *err, size_t errlen) {
    float *host = xmalloc(m->n_params * sizeof(float));
    float *buffers = xmalloc((m->n_buffers ? m->n_buffers : 1) * sizeof(float));
    model_get_params(m, host);
    model_get_buffers(m, buffers);
    static ModelTensor slices[MODEL_MAX_TENSORS];
    int n = model_list_tensors(m, slices);
    static StTensor tensors[MODEL_MAX_TENSORS];
    for (int k = 0; k < n; k++) {
        memset(&tensors[k], 0, sizeof tensors[k]);
        memcpy(tensors[k].name, slices[k].name, ST_MAX_NAME);
        tensors[k].rank = slices[k].rank;
        for (int d = 0; d < slices[k].rank; d++) tensors[k].shape[d] = slices[k].shape[d];
        tensors[k].data = (slices[k].buffer ? buffers : host) + slices[k].offset;
    }
    char *config_json = config_to_json(&m->cfg);
    StMeta meta[5];
    int n_meta = 0;
    snprintf(meta[n_meta].key, sizeof meta[0].key, "config");
    meta[n_meta++].value = config_json;
    snprintf(meta[n_meta].key, sizeof meta[0].key, "format");
    meta[n_meta++].value = CHECKPOINT_FORMAT;
    char carved[16], classes[16];
    if (m->carved_test_crc32) {
        snprintf(meta[n_meta].key, sizeof meta[0].key, "carved_test_crc32");
        snprintf(carved, sizeof carved, "%08" PRIx32, m->carved_test_crc32);
        meta[n_meta++].value = carved;
    }
    if (m->data_classes) {
        snprintf(meta[n_meta].key, sizeof meta[0].key, "data_classes");
        snprintf(classes, sizeof classes, "%d", m->data_classes);
        meta[n_meta++].value = classes;
    }
    char written_by_text[CHECKPOINT_WRITTEN_BY_MAX];
    checkpoint_meta_written_by(meta, &n_meta, written_by, written_by_text);
    int rc = safetensors_check_finite_before_write(path, tensors, n, err, errlen);
    if (rc == 0) rc = safetensors_write(path, tensors, n, meta, n_meta, err, errlen);
    free(config_json);
    free(host);
    free(buffers);
    return rc;
}

static bool first_non_finite(const float *x, size_t n, size_t *at) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            *at = i;
            return true;
        }
    return false;
}

int checkpoint_first_non_finite(Model *m, char *what, size_t whatlen) {
    const size_t P = m->n_params;
    float *host = xmalloc(3 * P * sizeof(float));   // params, adam.m, adam.v
    float *buffers = xmalloc((m->n_buffers ? m->n_buffers : 1) * sizeof(float));
    model_get_params(m, host);
    model_get_buffers(m, buffers);
    m->be->download(m->be, host + P, m->adam_m, P * sizeof(float));
    m->be->download(m->be, host + 2 * P, m->adam_v, P * sizeof(float));
    static ModelTensor slices[MODEL_MAX_TENSORS];
    const int n = model_list_tensors(m, slices);
    int found = 0;
    size_t at = 0;
    for (int k = 0; k < n && !found; k++) {
        size_t count = 1;
        for (int d = 0; d < slices[k].rank; d++) count *= (size_t)slices[k].shape[d];
        const float *x = (slices[k].buffer ? buffers : host) + slices[k].offset;
        if (first_non_finite(x, count, &at)) {
            snprintf(what, whatlen, "tensor %s, element %zu is %s", slices[k].name, at, isnan(x[at]) ? "NaN" : "infinite");
            found = 1;
        }
    }
    for (int k = 1; k <= 2 && !found; k++)
        if (first_non_finite(host + (size_t)k * P, P, &at)) {
            snprintf(what, whatlen, "Adam's %s, element %zu is %s", k == 1 ? "m" : "v", at,
                     isnan(host[(size_t)k * P + at]) ? "NaN" : "infinite");
            found = 1;
        }
    free(host);
    free(buffers);
    return found;
}

// What the user gave instead of a checkpoint, said plainly: a run folder, a
// config file. -1 with err, or 0 when path may be a checkpoint.
static int not_a_checkpoint(const char *path, char *err, size_t errlen) {
    struct stat st;
    const bool stat_ok = stat(path, &st) == 0;
    if (stat_ok && S_ISDIR(st.st_mode))
        return set_error(err, errlen, "%s is a folder; give a checkpoint, e.g. %s/model.safetensors", path,
                         path);
    const uint64_t file_bytes = stat_ok ? (uint64_t)st.st_size : 0;
    FILE *f = open_regular_file(path, err, errlen);   // a FIFO would block a plain fopen
    if (!f) return -1;
    unsigned char head[8] = {0};
    const size_t got = fread(head, 1, sizeof head, f);
    // a safetensors file starts with its header's length (u64, little-endian), whose low byte may
    // be '{' too: then the length fits in the file and the JSON header follows it (after any JSON
    // whitespace another writer put first: read through it, within the header)
    uint64_t header_bytes = 0;
    for (int k = 7; k >= 0; k--) header_bytes = header_bytes << 8 | head[k];
    const bool length_fits = got == sizeof head && file_bytes >= 8 && header_bytes > 0 &&
                             header_bytes <= file_bytes - 8;
    int first = EOF;
    for (uint64_t k = 0; length_fits && k < header_bytes; k++) {
        first = getc(f);
        if (first != ' ' && first != '\t' && first != '\n' && first != '\r') break;
    }
    fclose(f);
    const bool safetensors_like = length_fits && first == '{';
    if (got > 0 && head[0] == '{' && !safetensors_like)
        return set_error(err, errlen, "%s looks like a JSON file (a config?); give a checkpoint such as "
                         "runs/NAME/model.safetensors", path);
    return 0;
}

// The keys a loaded checkpoint's config may take from --set: where the test data is and
// how it is read, the evaluation's own keys, the device, the seed of the evaluation's
// draws, the precision, and where a prior's VQ-VAE now is. The others (model shape,
// activation, output, loss, optimizer) are what the weights were trained with: an override
// would evaluate the weights as another model, with no error when the shapes agree.
static bool override_reads_checkpoint_config(const char *override) {
    static const char *const exact[] = {"device", "data", "eval", "train.seed", "train.precision",
                                        "model.prior_of", "name", "description"};   // (the last two: labels)
    static const char *const sections[] = {"data.", "eval."};
    const size_t key_len = strcspn(override, "=");
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (key_len == strlen(exact[i]) && strncmp(override, exact[i], key_len) == 0) return true;
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (strncmp(override, sections[i], strlen(sections[i])) == 0) return true;
    return false;
}

// The metadata of the checkpoints read last, each kept once its whole file was read and its CRC-32
// checked: one command reads a checkpoint's config several times (with and without its --set,
// for its data, its classes, its carved test set's CRC), and each read was a read and a check of
// the whole file (a 227 MB checkpoint read 5 times by eval). Valid while the file's stamp (device,
// inode, size, modification time) is the one taken before that read; the weights are read
// where they are loaded (read_params).
// (4 files: a prior's commands read the prior and its VQ-VAE in turn, one inside the other)
enum { METADATA_CACHE_FILES = 4 };
typedef struct {
    char path[4096];
    FileStamp stamp;
    StMeta *meta;            // NULL: an empty slot
    int n_meta;
    unsigned long last_used;
} MetadataCacheEntry;
static MetadataCacheEntry metadata_cache[METADATA_CACHE_FILES];
static unsigned long metadata_cache_clock;
static unsigned long checkpoint_file_reads;   // whole-file reads for metadata (checkpoint_metadata_reads)

unsigned long checkpoint_metadata_reads(void) { return checkpoint_file_reads; }

static void metadata_cache_entry_free(MetadataCacheEntry *e) {
    for (int i = 0; i < e->n_meta; i++) free(e->meta[i].value);
    free(e->meta);
    memset(e, 0, sizeof *e);
}

// The slot for path: its own while its stamp holds (a changed file's is emptied), else NULL.
static MetadataCacheEntry *metadata_cache_find(const char *path) {
    for (int k = 0; k < METADATA_CACHE_FILES; k++) {
        MetadataCacheEntry *e = &metadata_cache[k];
        if (!e->meta || strcmp(e->path, path) != 0) continue;
        if (file_stamp_changed(path, &e->stamp)) {
            metadata_cache_entry_free(e);
            return NULL;
        }
        return e;
    }
    return NULL;
}

// f: the checkpoint's metadata alone (no tensors), from the cache or from a read of the whole
// file, which checks it (the errors of safetensors_read). Freed with safetensors_free.
static int read_metadata(const char *path, StFile *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    MetadataCacheEntry *e = metadata_cache_find(path);
    if (!e) {
        FileStamp before;
        file_stamp(path, &before);
        StFile whole;
        checkpoint_file_reads++;
        if (safetensors_read(path, &whole, err, errlen) != 0) return -1;
        // kept only for a stamp known and unchanged across the read, and a path that fits; in an
        // empty slot or the one used longest ago
        if (before.known && !file_stamp_changed(path, &before) && strlen(path) < sizeof metadata_cache[0].path) {
            e = &metadata_cache[0];
            for (int k = 1; k < METADATA_CACHE_FILES && e->meta; k++)
                if (!metadata_cache[k].meta || metadata_cache[k].last_used < e->last_used) e = &metadata_cache[k];
            metadata_cache_entry_free(e);
            snprintf(e->path, sizeof e->path, "%s", path);
            e->stamp = before;
            e->meta = whole.meta;
            e->n_meta = whole.n_meta;
            whole.meta = NULL;
            whole.n_meta = 0;
        } else {   // not kept: this read's metadata is the answer
            f->meta = whole.meta;
            f->n_meta = whole.n_meta;
            whole.meta = NULL;
            whole.n_meta = 0;
        }
        safetensors_free(&whole);
        if (!e) return 0;
    }
    e->last_used = ++metadata_cache_clock;
    f->meta = xcalloc((size_t)(e->n_meta ? e->n_meta : 1), sizeof *f->meta);
    for (int i = 0; i < e->n_meta; i++) {
        snprintf(f->meta[i].key, sizeof f->meta[i].key, "%s", e->meta[i].key);
        const size_t bytes = strlen(e->meta[i].value) + 1;
        f->meta[i].value = xmalloc(bytes);
        memcpy(f->meta[i].value, e->meta[i].value, bytes);
    }
    f->n_meta = e->n_meta;
    return 0;
}

int checkpoint_metadata_value(const char *path, const char *key, char *out, size_t n, char *err, size_t errlen) {
    StFile f;
    if (n > 0) out[0] = '\0';
    if (read_metadata(path, &f, err, errlen) != 0) return -1;
    const char *value = safetensors_meta(&f, key);
    if (value && n > 0) snprintf(out, n, "%s", value);
    safetensors_free(&f);
    return 0;
}

int checkpoint_read_config(const char *path, Config *cfg, const char *const *overrides,
                           int n_overrides, char *err, size_t errlen) {
    if (not_a_checkpoint(path, err, errlen) != 0 || run_folder_check_whole(path, err, errlen) != 0) return -1;
    StFile f;
    if (read_metadata(path, &f, err, errlen) != 0) return -1;
    const char *format = safetensors_meta(&f, "format");
    const char *config_json = safetensors_meta(&f, "config");
    int rc = 0;
    if (format && strcmp(format, "cuvae-resume-1") == 0) {
        rc = set_error(err, errlen, "%s is a resume file (for train --resume), not a model checkpoint; "
                       "give the run's model.safetensors", path);
    } else if (!format || strcmp(format, CHECKPOINT_FORMAT) != 0) {
        rc = set_error(err, errlen, "%s: __metadata__.format: expected \"%s\", got %s%s%s", path,
                       CHECKPOINT_FORMAT, format ? "\"" : "", format ? format : "nothing",
                       format ? "\"" : "");
    } else if (!config_json) {
        rc = set_error(err, errlen, "%s: __metadata__.config: missing", path);
    } else {
        char source[600];
        snprintf(source, sizeof source, "%s (__metadata__.config)", path);
        rc = config_from_string(cfg, config_json, source, overrides, n_overrides, err, errlen);
        // a made's masks (and its mask bank) follow from these three: an override would pair the
        // saved weights with other masks, or sample in an order the masks do not follow
        Config stored;
        char why[16];
        if (rc == 0 && n_overrides > 0 && cfg->model.kind == MODEL_MADE &&
            config_from_string(&stored, config_json, source, NULL, 0, why, sizeof why) == 0 &&
            (stored.model.masks != cfg->model.masks || stored.model.ordering != cfg->model.ordering ||
             stored.train.seed != cfg->train.seed))
            rc = set_error(err, errlen, "%s: --set: a made's masks come from its model.masks, model.ordering and "
                           "train.seed (%d, %s, %llu in this checkpoint); they cannot change after training", path,
                           stored.model.masks, stored.model.ordering == ORDERING_RANDOM ? "random" : "natural",
                           (unsigned long long)stored.train.seed);
        for (int i = 0; rc == 0 && i < n_overrides; i++)
            if (!override_reads_checkpoint_config(overrides[i]))
                rc = set_error(err, errlen, "%s: --set %.*s: the model, loss and training keys are the checkpoint's "
                               "(its weights were trained with them); eval, sample and plot take --set of data.* (not "
                               "sample), eval.*, device, train.seed, train.precision, model.prior_of, name and "
                               "description", path,
                               (int)strcspn(overrides[i], "="), overrides[i]);
    }
    safetensors_free(&f);
    return rc;
}

int checkpoint_data_config(const char *path, const Config *cfg, const char *const *overrides, int n_overrides,
                           Config *data_cfg, char *err, size_t errlen) {
    // the stored config read with the command's overrides but its train.seed (a moved VQ-VAE
    // needs the --set model.prior_of the command was given to read at all)
    const char **kept = xmalloc((size_t)(n_overrides > 0 ? n_overrides : 1) * sizeof *kept);
    int n_kept = 0;
    for (int i = 0; i < n_overrides; i++) {
        const size_t key = strcspn(overrides[i], "=");
        if (!(key == 10 && strncmp(overrides[i], "train.seed", 10) == 0)) kept[n_kept++] = overrides[i];
    }
    Config stored;
    int rc = checkpoint_read_config(path, &stored, kept, n_kept, err, errlen);
    free(kept);
    if (rc != 0) return -1;
    *data_cfg = *cfg;
    data_cfg->train.seed = stored.train.seed;
    return 0;
}

int checkpoint_check_unchanged(const char *path, const FileStamp *since, char *err, size_t errlen) {
    if (!file_stamp_changed(path, since)) return 0;
    return set_error(err, errlen, "%s: replaced while this command read it (a train is writing that run): its "
                     "config and weights could come from two versions; run the command again", path);
}

int checkpoint_data_classes(const char *path, int n_classes, int *classes, char *err, size_t errlen) {
    *classes = 0;
    StFile f;
    char ignored[512];
    if (read_metadata(path, &f, ignored, sizeof ignored) != 0) return 0;
    const char *stored = safetensors_meta(&f, "data_classes");
    int rc = 0;
    if (stored) {
        bool digits = stored[0] != '\0' && strlen(stored) <= 9;
        for (const char *c = stored; *c && digits; c++) digits = *c >= '0' && *c <= '9';
        const long value = digits ? strtol(stored, NULL, 10) : 0;
        if (value >= 1 && value < n_classes) *classes = (int)value;
        else rc = set_error(err, errlen, "%s: __metadata__.data_classes: expected the classes of the run's data, a "
                            "whole number 1..%d (the model has %d), got \"%s\" (damaged, or not cuvae's)", path,
                            n_classes - 1, n_classes, stored);
    }
    safetensors_free(&f);
    return rc;
}

int checkpoint_check_carved_test_set(const char *path, const Dataset *test, char *err, size_t errlen) {
    if (!test->carved) return 0;
    StFile f;
    if (read_metadata(path, &f, err, errlen) != 0) return -1;
    const char *stored = safetensors_meta(&f, "carved_test_crc32");   // (absent: written before it was stored)
    int rc = 0;
    if (stored && strtoul(stored, NULL, 16) != test->carved_crc32)
        rc = set_error(err, errlen, "%s: the test set held out of data.train now (%d of %d images) is not the one the "
                       "run held out (crc32 %08" PRIx32 ", stored %.8s): the data or data.test_fraction changed since "
                       "training, so it may hold training images; give the test images as data.test", path,
                       test->carved, test->carved_from, test->carved_crc32, stored);
    safetensors_free(&f);
    return rc;
}

// The checkpoint's parameters and buffers into host (n_params floats) and buffers (n_buffers),
// checked against m's tensors (names, shapes, finite values).
static int read_params(Model *m, const char *path, float *host, float *buffers, char *err, size_t errlen) {
    StFile f;
    if (safetensors_read(path, &f, err, errlen) != 0) return -1;
    static ModelTensor slices[MODEL_MAX_TENSORS];
    int n = model_list_tensors(m, slices);
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        const StTensor *t = safetensors_find(&f, slices[k].name);
        if (!t) {
            rc = set_error(err, errlen, "%s: tensor %s: missing", path, slices[k].name);
            break;
        }
        bool same = t->rank == slices[k].rank;
        for (int d = 0; same && d < t->rank; d++) same = t->shape[d] == slices[k].shape[d];
        if (!same) {
            char want[96], got[96];
            format_shape(want, sizeof want, slices[k].rank, slices[k].shape);
            format_shape(got, sizeof got, t->rank, t->shape);
            rc = set_error(err, errlen, "%s: tensor %s: shape %s, model needs %s", path,
                           slices[k].name, got, want);
            break;
        }
        if (safetensors_check_finite(path, t, err, errlen) != 0) {
            rc = -1;
            break;
        }
        memcpy((slices[k].buffer ? buffers : host) + slices[k].offset, t->data,
               slice_count(&slices[k]) * sizeof(float));
    }
    char what[600];
    if (rc == 0 && model_check_loaded_buffers(m, buffers, what, sizeof what) != 0)
        rc = set_error(err, errlen, "%s: tensor %s", path, what);
    if (rc == 0 && f.n_tensors != n) {   // every model tensor was found: name the first other one
        int other = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            bool known = false;
            for (int k = 0; k < n && !known; k++) known = strcmp(f.tensors[i].name, slices[k].name) == 0;
            if (!known) {
                other = i;
                break;
            }
        }
        rc = set_error(err, errlen, "%s: tensor '%.64s' is not one of the model's (the file holds %d tensors, the "
                       "model has %d: a checkpoint of another model?)", path, f.tensors[other].name, f.n_tensors, n);
    }
    safetensors_free(&f);
    return rc;
}

int checkpoint_load_params(Model *m, const char *path, char *err, size_t errlen) {
    float *host = xcalloc(m->n_params, sizeof(float));
    float *buffers = xcalloc(m->n_buffers ? m->n_buffers : 1, sizeof(float));
    int rc = read_params(m, path, host, buffers, err, errlen);
    if (rc == 0) {
        model_set_params(m, host);
        model_set_buffers(m, buffers);
    }
    int data_classes = 0;   // (a cvae's trained classes; absent: all)
    if (rc == 0 && m->n_classes > 0 && checkpoint_data_classes(path, m->n_classes, &data_classes, err, errlen) != 0)
        rc = -1;
    if (rc == 0 && data_classes > 0) m->data_classes = data_classes;
    free(host);
    free(buffers);
    return rc;
}

bool checkpoint_holds_params(Model *m, const char *path) {
    char err[1024];
    float *host = xcalloc(m->n_params, sizeof(float)), *mine = xcalloc(m->n_params, sizeof(float));
    float *buffers = xcalloc(m->n_buffers ? m->n_buffers : 1, sizeof(float));
    float *my_buffers = xcalloc(m->n_buffers ? m->n_buffers : 1, sizeof(float));
    bool same = access(path, F_OK) == 0 && read_params(m, path, host, buffers, err, sizeof err) == 0;
    if (same) {
        model_get_params(m, mine);
        model_get_buffers(m, my_buffers);
        same = memcmp(host, mine, m->n_params * sizeof(float)) == 0 &&
               memcmp(buffers, my_buffers, m->n_buffers * sizeof(float)) == 0;
    }
    free(host);
    free(mine);
    free(buffers);
    free(my_buffers);
    return same;
}

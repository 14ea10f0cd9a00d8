// resume.c: the resume file (resume.h): arena tensors "params", "adam.m",
// "adam.v" and metadata {format, config, epoch, step, eps_offset,
// uniform_offset, beta1_power, beta2_power, lr, steps_in_epoch, epoch_sums,
// loss_acc, best, data_crc32, log_crc32, written_by} (doubles as exact hex floats).
#include "cuvae/resume.h"
#include "cuvae/checkpoint.h"
#include "cuvae/common.h"
#include "cuvae/safetensors.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESUME_FORMAT "cuvae-resume-1"
#define N_RESUME_META 15   // and written_by, the build writing the file (when main set it)

size_t resume_host_copy_bytes(const Model *m) {
    return (3 * m->n_params + m->n_buffers) * sizeof(float);
}

int resume_host_copy_fits(const Model *m, char *err, size_t errlen) {
    const size_t bytes = resume_host_copy_bytes(m);
    const HostMemory hm = host_memory_read();
    if (hm.available == 0 || bytes <= hm.available) return 0;   // (0: unknown)
    char source[4600];
    return set_error(err, errlen, "out of host memory: saving the run's state copies its parameters and Adam's "
                     "two moments to the host (%zu bytes: 3 x %zu floats%s), more than the %zu bytes %s once the "
                     "model is allocated; use a smaller model (model.encoder / decoder / latent_dim)", bytes,
                     m->n_params, m->n_buffers > 0 ? " and the layers' buffers" : "", hm.available,
                     host_memory_source(&hm, source, sizeof source));
}

int resume_save(Model *m, const ResumePoint *at, const char *path, char *err, size_t errlen) {
    if (resume_host_copy_fits(m, err, errlen) != 0) return -1;   // (where memory ran short since the start)
    const size_t P = m->n_params;
    float *arena = xmalloc(3 * P * sizeof(float));
    model_get_params(m, arena);
    m->be->download(m->be, arena + P, m->adam_m, P * sizeof(float));
    m->be->download(m->be, arena + 2 * P, m->adam_v, P * sizeof(float));
    StepState state;
    model_read_step_state(m, &state);
    double acc[3];
    model_peek_loss_accumulator(m, acc);

    StTensor tensors[4];
    const char *names[3] = {"params", "adam.m", "adam.v"};
    for (int k = 0; k < 3; k++) {
        memset(&tensors[k], 0, sizeof tensors[k]);
        snprintf(tensors[k].name, sizeof tensors[k].name, "%s", names[k]);
        tensors[k].rank = 1;
        tensors[k].shape[0] = (int64_t)P;
        tensors[k].data = arena + (size_t)k * P;
    }
    char values[N_RESUME_META - 2][160];
    snprintf(values[0], sizeof values[0], "%d", at->epochs_done);
    snprintf(values[1], sizeof values[1], "%" PRId64, state.step);
    snprintf(values[2], sizeof values[2], "%" PRIu64, state.eps_offset);
    snprintf(values[3], sizeof values[3], "%" PRIu64, state.uniform_offset);
    snprintf(values[4], sizeof values[4], "%a", state.beta1_power);   // hex: exact
    snprintf(values[5], sizeof values[5], "%a", state.beta2_power);
    snprintf(values[6], sizeof values[6], "%a", (double)state.lr);
    snprintf(values[7], sizeof values[7], "%" PRId64, at->steps_in_epoch);
    snprintf(values[8], sizeof values[8], "%a,%a,%a,%a", at->epoch_weighted, at->epoch_rec,
             at->epoch_kl, at->epoch_count);
    snprintf(values[9], sizeof values[9], "%a,%a,%a", acc[0], acc[1], acc[2]);
    snprintf(values[10], sizeof values[10], "%d,%a", at->best_epoch, at->best_epoch > 0 ? at->best_loss : 0.0);
    snprintf(values[11], sizeof values[11], "%08" PRIx32, at->data_crc32);
    snprintf(values[12], sizeof values[12], "%08" PRIx32, at->log_crc32);
    const char *keys[N_RESUME_META] = {"format", "config", "epoch", "step", "eps_offset",
                                       "uniform_offset", "beta1_power", "beta2_power", "lr",
                                       "steps_in_epoch", "epoch_sums", "loss_acc", "best", "data_crc32", "log_crc32"};
    char *config_json = config_to_json(&m->cfg);
    StMeta meta[N_RESUME_META + 1];
    for (int k = 0; k < N_RESUME_META; k++) {
        snprintf(meta[k].key, sizeof meta[k].key, "%s", keys[k]);
        meta[k].value = k == 0 ? RESUME_FORMAT : k == 1 ? config_json : values[k - 2];
    }
    int n_meta = N_RESUME_META;
    char written_by[CHECKPOINT_WRITTEN_BY_MAX];
    checkpoint_meta_written_by(meta, &n_meta, cuvae_build(), written_by);
    // batch norm's running statistics, when the model has any
    float *buffers = NULL;
    int n_tensors = 3;
    if (m->n_buffers) {
        buffers = xmalloc(m->n_buffers * sizeof(float));
        model_get_buffers(m, buffers);
        memset(&tensors[3], 0, sizeof tensors[3]);
        snprintf(tensors[3].name, sizeof tensors[3].name, "buffers");
        tensors[3].rank = 1;
        tensors[3].shape[0] = (int64_t)m->n_buffers;
        tensors[3].data = buffers;
        n_tensors = 4;
    }
    int rc = safetensors_check_finite_before_write(path, tensors, n_tensors, err, errlen);
    if (rc == 0) rc = safetensors_write(path, tensors, n_tensors, meta, n_meta, err, errlen);
    free(config_json);
    free(arena);
    free(buffers);
    return rc;
}

// A running product of Adam's betas as a backend that flushes subnormals holds it: the CPU backend
// sets FTZ / DAZ for the whole process, a GPU's doubles keep them (0.9^t is subnormal from step
// 6,720 to 7,070, 0.999^t from 708 k to 745 k steps); a run stopped on one may go on on the other.
static double flushed(double x) { return fabs(x) < DBL_MIN ? 0.0 : x; }

// A metadata number: integer (unsigned) or a C double (hex or decimal).
static int meta_number(const StFile *f, const char *path, const char *key, bool integer,
                       double *as_double, uint64_t *as_integer, char *err, size_t errlen) {
    const char *text = safetensors_meta(f, key);
    if (!text) return set_error(err, errlen, "%s: __metadata__.%s: missing", path, key);
    char *end = NULL;
    errno = 0;
    if (integer) *as_integer = strtoull(text, &end, 10);
    else *as_double = strtod(text, &end);
    // (strtoull takes "-1", and " -1" past its leading blanks, as 2^64 - 1: an integer starts with a digit;
    // a negative double is a number, and its key's own range check says what is wrong with it)
    if (end == text || *end != '\0' || errno != 0 || (integer && !isdigit((unsigned char)text[0])) ||
        (!integer && !isfinite(*as_double)))
        return set_error(err, errlen, "%s: __metadata__.%s: not a %s: \"%.40s\"", path, key,
                         integer ? "non-negative integer" : "finite number", text);
    return 0;
}

// A metadata list of n finite doubles "a,b,..."; absent -> zeros (older files).
static int meta_doubles(const StFile *f, const char *path, const char *key, int n, double *out,
                        char *err, size_t errlen) {
    const char *text = safetensors_meta(f, key);
    for (int i = 0; i < n; i++) out[i] = 0.0;
    if (!text) return 0;
    const char *p = text;
    for (int i = 0; i < n; i++) {
        char *end = NULL;
        errno = 0;
        out[i] = strtod(p, &end);
        if (end == p || errno != 0 || !isfinite(out[i]) || (*end != (i + 1 < n ? ',' : '\0')))
            return set_error(err, errlen, "%s: __metadata__.%s: expected %d finite numbers, got \"%.60s\"",
                             path, key, n, text);
        p = end + 1;
    }
    return 0;
}

int resume_load(Model *m, const char *path, bool other_data_paths, int64_t other_steps_per_epoch, ResumePoint *at,
                char *err, size_t errlen) {
    StFile f;
    if (safetensors_read(path, &f, err, errlen) != 0) return -1;
    const size_t P = m->n_params;
    int rc = 0;
    const char *format = safetensors_meta(&f, "format");
    const char *config_json = safetensors_meta(&f, "config");
    if (!format || strcmp(format, RESUME_FORMAT) != 0) {
        rc = set_error(err, errlen, "%s: __metadata__.format: expected \"%s\"", path, RESUME_FORMAT);
    } else if (!config_json) {
        rc = set_error(err, errlen, "%s: __metadata__.config: missing", path);
    } else {
        Config stored;
        char source[600];
        snprintf(source, sizeof source, "%s (__metadata__.config)", path);
        rc = config_from_string(&stored, config_json, source, NULL, 0, err, errlen);
        if (rc == 0) at->stored_epochs = stored.train.epochs;
        if (rc == 0) {
            Config *current = xmalloc(sizeof *current);   // m's config (its data paths hidden where asked)
            *current = m->cfg;
            if (other_data_paths) {
                config_hide_data_paths(&stored);
                config_hide_data_paths(current);
            }
            rc = config_same_run(&stored, current, path, "; only the run's length (train.epochs, "
                                 "train.full_epochs), train.early_stopping and the progress images "
                                 "(train.epoch_images, train.epoch_images_every) may change on --resume (to go on with "
                                 "the config the run began with, a shipped one that changed since say, give the run "
                                 "folder's config.json as CONFIG)", err, errlen);
            free(current);
        }
    }
    const char *names[3] = {"params", "adam.m", "adam.v"};
    const StTensor *tensors[3] = {NULL, NULL, NULL};
    for (int k = 0; rc == 0 && k < 3; k++) {
        tensors[k] = safetensors_find(&f, names[k]);
        if (!tensors[k])
            rc = set_error(err, errlen, "%s: tensor %s: missing", path, names[k]);
        else if (tensors[k]->rank != 1 || tensors[k]->shape[0] != (int64_t)P)
            rc = set_error(err, errlen, "%s: tensor %s: expected shape [%zu]", path, names[k], P);
        else
            rc = safetensors_check_finite(path, tensors[k], err, errlen);
    }
    const StTensor *buffers = NULL;
    if (rc == 0 && m->n_buffers) {
        buffers = safetensors_find(&f, "buffers");
        if (!buffers)
            rc = set_error(err, errlen, "%s: tensor buffers: missing (the model's running statistics)", path);
        else if (buffers->rank != 1 || buffers->shape[0] != (int64_t)m->n_buffers)
            rc = set_error(err, errlen, "%s: tensor buffers: expected shape [%zu]", path, m->n_buffers);
        else
            rc = safetensors_check_finite(path, buffers, err, errlen);
        char what[600];
        if (rc == 0 && model_check_loaded_buffers(m, buffers->data, what, sizeof what) != 0)
            rc = set_error(err, errlen, "%s: tensor buffers: %s", path, what);
    }
    for (size_t i = 0; rc == 0 && i < P; i++) {
        if (tensors[2]->data[i] < 0.0f)
            rc = set_error(err, errlen, "%s: tensor adam.v: element %zu is negative (%g): a second "
                           "moment cannot be", path, i, tensors[2]->data[i]);
    }
    uint64_t epoch_value = 0, step = 0, eps_offset = 0, uniform_offset = 0;
    double beta1_power = 0, beta2_power = 0, lr = 0;
    if (rc == 0) rc = meta_number(&f, path, "epoch", true, NULL, &epoch_value, err, errlen);
    if (rc == 0) rc = meta_number(&f, path, "step", true, NULL, &step, err, errlen);
    if (rc == 0) rc = meta_number(&f, path, "eps_offset", true, NULL, &eps_offset, err, errlen);
    if (rc == 0) rc = meta_number(&f, path, "uniform_offset", true, NULL, &uniform_offset, err, errlen);
    if (rc == 0) rc = meta_number(&f, path, "beta1_power", false, &beta1_power, NULL, err, errlen);
    if (rc == 0) rc = meta_number(&f, path, "beta2_power", false, &beta2_power, NULL, err, errlen);
    if (rc == 0) rc = meta_number(&f, path, "lr", false, &lr, NULL, err, errlen);
    // (signbit: under the CPU backend's DAZ a negative subnormal compares >= 0, and "-0" is one too)
    if (rc == 0 && (signbit(beta1_power) || signbit(beta2_power) || !(beta1_power <= 1.0 && beta2_power <= 1.0)))
        rc = set_error(err, errlen, "%s: __metadata__: beta1_power %g and beta2_power %g must lie in [0, 1]",
                       path, beta1_power, beta2_power);
    if (rc == 0 && !(lr > 0.0 && lr <= FLT_MAX))
        rc = set_error(err, errlen, "%s: __metadata__.lr: %g is not a learning rate (> 0, a float)", path, lr);
    uint64_t steps_in_epoch = 0;
    if (rc == 0 && safetensors_meta(&f, "steps_in_epoch"))
        rc = meta_number(&f, path, "steps_in_epoch", true, NULL, &steps_in_epoch, err, errlen);
    double sums[4], acc[3];
    if (rc == 0) rc = meta_doubles(&f, path, "epoch_sums", 4, sums, err, errlen);
    if (rc == 0) rc = meta_doubles(&f, path, "loss_acc", 3, acc, err, errlen);
    double best[2];   // epoch, loss
    if (rc == 0) rc = meta_doubles(&f, path, "best", 2, best, err, errlen);
    if (rc == 0 && !(best[0] >= 0 && best[0] <= (double)epoch_value && best[0] == floor(best[0])))
        rc = set_error(err, errlen, "%s: __metadata__.best: epoch %g is not one of the %llu finished",
                       path, best[0], (unsigned long long)epoch_value);
    // the steps an epoch had where the file was written: this run's, or (data parallel on another number
    // of ranks) the other count
    const uint64_t spe = (uint64_t)m->plan.steps_per_epoch;
    const uint64_t other = other_steps_per_epoch > 0 ? (uint64_t)other_steps_per_epoch : spe;
    uint64_t written_spe = 0;
    if (rc == 0 && epoch_value <= 100000000ull) {
        if (steps_in_epoch < spe && step == epoch_value * spe + steps_in_epoch) written_spe = spe;
        else if (steps_in_epoch < other && step == epoch_value * other + steps_in_epoch) written_spe = other;
    }
    if (rc == 0 && written_spe == 0) {
        char others[96] = "";
        if (other != spe)
            snprintf(others, sizeof others, " (nor the %llu of the same data on another number of ranks)",
                     (unsigned long long)other);
        rc = set_error(err, errlen, "%s: __metadata__: epoch %llu, step %llu and steps_in_epoch %llu do not "
                       "fit %lld steps an epoch%s", path, (unsigned long long)epoch_value,
                       (unsigned long long)step, (unsigned long long)steps_in_epoch,
                       (long long)m->plan.steps_per_epoch, others);
    }
    if (rc == 0 && step <= 100000000ull) {
        // the running products step_state_end forms, recomputed: they must agree to the bit with the
        // updates made -- step of them, or, where runs on other numbers of ranks may have taken turns
        // (their epochs one step apart), any count their epochs can add up to
        const uint64_t low = other == spe ? step : epoch_value * (other < spe ? other : spe) + steps_in_epoch;
        const uint64_t high = other == spe ? step : epoch_value * (other > spe ? other : spe) + steps_in_epoch;
        double p1 = 1.0, p2 = 1.0;
        bool matched = false;
        for (uint64_t i = 0; i <= high && !matched; i++) {
            matched = i >= low && flushed(p1) == flushed(beta1_power) && flushed(p2) == flushed(beta2_power);
            p1 *= m->plan.beta1;
            p2 *= m->plan.beta2;
        }
        if (!matched && low == high)
            rc = set_error(err, errlen, "%s: __metadata__: beta1_power / beta2_power do not match %llu steps "
                           "of train.beta1 / beta2", path, (unsigned long long)step);
        else if (!matched)
            rc = set_error(err, errlen, "%s: __metadata__: beta1_power / beta2_power do not match any of %llu to "
                           "%llu steps of train.beta1 / beta2", path, (unsigned long long)low,
                           (unsigned long long)high);
    }
    if (rc == 0) {   // continued at the same epoch and step within it, in this run's count
        at->stored_steps_per_epoch = (int64_t)written_spe;
        step = epoch_value * spe + steps_in_epoch;   // (steps_in_epoch may be spe: that epoch's steps are done)
    }
    if (rc == 0) {
        model_set_params(m, tensors[0]->data);
        if (buffers) model_set_buffers(m, buffers->data);
        m->be->upload(m->be, m->adam_m, tensors[1]->data, P * sizeof(float));
        m->be->upload(m->be, m->adam_v, tensors[2]->data, P * sizeof(float));
        StepState state;
        memset(&state, 0, sizeof state);
        step_state_reset(&state, (float)lr);
        state.step = (int64_t)step;
        state.eps_offset = eps_offset;
        state.uniform_offset = uniform_offset;
        state.beta1_power = beta1_power;
        state.beta2_power = beta2_power;
        m->be->upload(m->be, m->state, &state, sizeof state);
        model_set_loss_accumulator(m, acc);
        at->epochs_done = (int)epoch_value;
        at->steps_in_epoch = (int64_t)steps_in_epoch;
        at->epoch_weighted = sums[0];
        at->epoch_rec = sums[1];
        at->epoch_kl = sums[2];
        at->epoch_count = sums[3];
        at->best_epoch = (int)best[0];
        at->best_loss = best[1];
        const char *data_crc = safetensors_meta(&f, "data_crc32");   // (absent in older files)
        char *end = NULL;
        unsigned long value = data_crc ? strtoul(data_crc, &end, 16) : 0;
        if (data_crc && (strlen(data_crc) != 8 || *end || value > 0xFFFFFFFFul)) {
            rc = set_error(err, errlen, "%s: __metadata__.data_crc32: expected 8 hex digits, got \"%.20s\"", path,
                           data_crc);
        } else {
            at->data_crc32 = (uint32_t)value;
            at->data_crc32_known = data_crc != NULL;
        }
        const char *log_crc = safetensors_meta(&f, "log_crc32");   // (absent in older files)
        value = log_crc ? strtoul(log_crc, &end, 16) : 0;
        if (rc == 0 && log_crc && (strlen(log_crc) != 8 || *end || value > 0xFFFFFFFFul)) {
            rc = set_error(err, errlen, "%s: __metadata__.log_crc32: expected 8 hex digits, got \"%.20s\"", path,
                           log_crc);
        } else {
            at->log_crc32 = (uint32_t)value;
            at->log_crc32_known = log_crc != NULL;
        }
        const char *written_by = safetensors_meta(&f, "written_by");   // (absent in older files)
        snprintf(at->written_by, sizeof at->written_by, "%s", written_by ? written_by : "");
        if (written_by && strlen(written_by) >= sizeof at->written_by) {   // cut at a character, marked
            size_t end = sizeof at->written_by - 4;
            while (end > 0 && ((unsigned char)at->written_by[end] & 0xC0) == 0x80) end--;
            memcpy(at->written_by + end, "...", 4);
        }
    }
    safetensors_free(&f);
    return rc;
}

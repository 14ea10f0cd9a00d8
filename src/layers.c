// layers.c: the registry of layer kinds (one line each; the kinds live in
// src/layer_*.c) and the option / value checks they share.
#include "cuvae/layer_kind.h"
#include "cuvae/common.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const LayerKind *const registered_kinds[] = {
    &layer_linear,
    &layer_conv2d,
    &layer_conv_transpose2d,
    &layer_batch_norm,
    &layer_relu,
    &layer_leaky_relu,
    &layer_tanh,
    &layer_sigmoid,
    &layer_flatten,
    &layer_reshape,
    &layer_masked_linear,
    &layer_residual,
    &layer_masked_conv2d_a,
    &layer_masked_conv2d_b,
};
#define N_KINDS ((int)(sizeof registered_kinds / sizeof registered_kinds[0]))

const LayerKind *layer_kind_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < N_KINDS; i++)
        if (strcmp(registered_kinds[i]->name, name) == 0) return registered_kinds[i];
    return NULL;
}

const char *layer_kind_names(void) {
    static char names[1024];   // (a list that outgrew it ends in "...")
    if (!names[0]) {
        size_t used = 0;
        for (int i = 0; i < N_KINDS && used < sizeof names; i++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                     registered_kinds[i]->name);
        if (used >= sizeof names) snprintf(names + sizeof names - 4, 4, "...");
    }
    return names;
}

double layer_spec_option(const LayerSpec *spec, const char *key, double fallback) {
    for (int k = 0; k < spec->n_options; k++)
        if (strcmp(spec->option_keys[k], key) == 0) return spec->option_values[k];
    return fallback;
}

static int is_integer(double v) { return isfinite(v) && v == floor(v); }

int layer_apply_options(LayerSpec *spec, const OptionRule *rules, int n_rules, char *key, size_t keylen,
                        char *msg, size_t msglen) {
    for (int k = 0; k < spec->n_options; k++) {
        int known = 0;
        for (int r = 0; r < n_rules; r++) known |= strcmp(rules[r].key, spec->option_keys[k]) == 0;
        if (!known) {
            snprintf(key, keylen, "%s", spec->option_keys[k]);
            char list[160] = "";
            size_t used = 0;
            for (int r = 0; r < n_rules; r++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", r ? ", " : "", rules[r].key);
            if (n_rules == 0) snprintf(msg, msglen, "unknown option: %s takes none", spec->kind);
            else snprintf(msg, msglen, "unknown option of %s (it takes: %s)", spec->kind, list);
            return -1;
        }
    }
    LayerSpec ordered = *spec;
    ordered.n_options = 0;
    for (int r = 0; r < n_rules; r++) {
        double v = rules[r].fallback;
        int given = 0;
        for (int k = 0; k < spec->n_options; k++)
            if (strcmp(rules[r].key, spec->option_keys[k]) == 0) {
                v = spec->option_values[k];
                given = 1;
            }
        snprintf(key, keylen, "%s", rules[r].key);
        if (!given && rules[r].required) {
            snprintf(msg, msglen, "missing (%s needs it)", spec->kind);
            return -1;
        }
        if (rules[r].integer && !is_integer(v)) {
            snprintf(msg, msglen, "must be an integer, got %g", v);
            return -1;
        }
        if (!(v >= rules[r].lo && v <= rules[r].hi)) {
            snprintf(msg, msglen, "must be in [%.10g, %.10g], got %.10g", rules[r].lo, rules[r].hi, v);
            return -1;
        }
        if (v != 0.0 && fabs(v) < FLT_MIN) {   // the layers compute in float32
            snprintf(msg, msglen, "%.10g rounds to 0 in float32, the type it is computed in (the smallest normal "
                     "float is %.9g)", v, FLT_MIN);
            return -1;
        }
        snprintf(ordered.option_keys[ordered.n_options], sizeof ordered.option_keys[0], "%s", rules[r].key);
        ordered.option_values[ordered.n_options++] = v;
    }
    key[0] = '\0';
    *spec = ordered;
    return 0;
}

int layer_buffers_as_fresh(const NetLayer *layer, const float *buffers, const float *fresh, char *msg,
                           size_t msglen) {
    for (int t = 0; t < layer->n_tensors; t++) {
        const LayerTensor *tensor = &layer->tensors[t];
        if (!tensor->buffer) continue;
        size_t count = 1;
        for (int d = 0; d < tensor->rank; d++) count *= (size_t)tensor->shape[d];
        const float *got = buffers + layer->buffer_offset + tensor->offset;
        const float *want = fresh + layer->buffer_offset + tensor->offset;
        for (size_t k = 0; k < count; k++)
            if (got[k] != want[k]) {
                snprintf(msg, msglen, "%s, element %zu is %g where the model's own is %g (it follows from the "
                         "config: the file was edited, or is of another model)", tensor->name, k, (double)got[k],
                         (double)want[k]);
                return -1;
            }
    }
    return 0;
}

int layer_check_args(const LayerSpec *spec, int min_args, int max_args, bool integer, double lo,
                     double hi, const char *what, char *msg, size_t msglen) {
    if (spec->n_args < min_args || spec->n_args > max_args) {
        if (max_args == 0)
            snprintf(msg, msglen, "takes no value, got %d number%s; write {\"%s\": {}}", spec->n_args,
                     spec->n_args == 1 ? "" : "s", spec->kind);
        else if (min_args == max_args && max_args == 1)
            snprintf(msg, msglen, "needs %s as its value, e.g. {\"%s\": %s}", what, spec->kind, integer ? "32" : "0.2");
        else
            snprintf(msg, msglen, "needs %s: %d to %d numbers, got %d", what, min_args, max_args, spec->n_args);
        return -1;
    }
    for (int k = 0; k < spec->n_args; k++) {
        double v = spec->args[k];
        if ((integer && !is_integer(v)) || !(v >= lo && v <= hi)) {
            snprintf(msg, msglen, "%s must be %s in [%.10g, %.10g], got %.10g", what, integer ? "integers" : "numbers",
                     lo, hi, v);
            return -1;
        }
        if (v != 0.0 && fabs(v) < FLT_MIN) {   // the layers compute in float32
            snprintf(msg, msglen, "%s %.10g rounds to 0 in float32, the type it is computed in (the smallest normal "
                     "float is %.9g)", what, v, FLT_MIN);
            return -1;
        }
    }
    if (spec->args_list && max_args == 1 && min_args == 1) {
        snprintf(msg, msglen, "needs %s as a number, not a list", what);
        return -1;
    }
    return 0;
}

void layer_add_tensor(NetLayer *layer, const char *name, bool buffer, int rank, const int64_t *shape) {
    LayerTensor *t = &layer->tensors[layer->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->buffer = buffer;
    t->rank = rank;
    size_t count = 1;
    for (int d = 0; d < rank; d++) {
        t->shape[d] = shape[d];
        count *= (size_t)shape[d];
    }
    if (buffer) {
        t->offset = layer->n_buffers;
        layer->n_buffers += count;
    } else {
        t->offset = layer->n_params;
        layer->n_params += count;
    }
}

size_t tensor_shape_size(TensorShape s) {
    size_t n = 1;
    for (int d = 0; d < s.rank; d++) n *= (size_t)s.dim[d];
    return n;
}

void tensor_shape_format(TensorShape s, char *out, size_t outlen) {
    if (s.rank == 3) snprintf(out, outlen, "(%d, %d, %d)", s.dim[0], s.dim[1], s.dim[2]);
    else snprintf(out, outlen, "(%d)", s.dim[0]);
}

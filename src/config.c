// config.c: implements config.h. Parses a JSON run config with cJSON, applies
// "key.path=value" overrides to the parsed tree, validates every key (unknown
// keys, types, enumerations, ranges), fills a Config, and writes the effective
// config back out as pretty JSON that parses to the identical Config.
#include "cuvae/config.h"
#include "cuvae/network.h"
#include "cuvae/model.h"
#include "cuvae/prior.h"
#include "cuvae/common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <float.h>
#include <limits.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ----------------------------------------------------------------------------
// name tables, indexed by the enum values in config.h

static const char *const activation_names[] = {"none", "relu", "tanh", "leaky_relu"};
static const char *const prior_names[] = {"gaussian", "mixture"};
static const char *const gan_init_names[] = {"dcgan", "pytorch"};
static const char *const ordering_names[] = {"natural", "random"};
static const char *const made_only_keys[] = {"network", "ordering", "masks", "prior_of", "prior_crc32"};
static const char *const condition_names[] = {"none", "label"};
static const char *const output_names[] = {"bernoulli", "gaussian"};
static const char *const reconstruction_names[] = {"bce", "mse"};
static const char *const reduction_names[] = {"sum", "mean"};
static const char *const binarize_names[] = {"none", "dynamic", "static"};
static const char *const device_names[] = {"auto", "cpu", "cuda"};
static const char *const dataset_names[] = {"mnist", "fashion-mnist", "files"};
static const char *const format_names[] = {"auto", "png", "npy", "safetensors", "idx"};
static const char *const layout_names[] = {"auto", "nhwc", "nchw"};
// data.* of dataset "files" only
static const char *const files_keys[] = {"train", "test", "train_labels", "test_labels", "format", "layout",
                                         "test_fraction"};
static const char *const optimizer_names[] = {"adam", "adamw", "sgd"};
static const char *const lr_schedule_names[] = {"constant", "burda", "step", "cosine"};
static const char *const precision_names[] = {"fp32", "tf32", "bf16"};
static const char *const epsilon_names[] = {"fused", "stored"};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define MAX_WIDTH 65536
#define MAX_INPUT_DIM (1 << 24)   // pixels per example: keeps every size product in range
#define MAX_IW_BATCH (1 << 22)    // rows of one importance-sampling batch
// rows of one training batch: the row loops of kernels/*.cu (b += gridDim.x, b += 8 gridDim.x, b += 256)
// and the CPU backend's 2 b (mixture prior) and B + 31 (bias_grad) pass INT_MAX near INT_MAX rows
#define MAX_BATCH (1 << 30)
// the largest integer a JSON number (an IEEE double) holds exactly
#define MAX_SEED 9007199254740991.0   // 2^53 - 1: a larger JSON number may not be the integer written

double config_learning_rate(const Config *cfg, int epoch) {
    // cosine and warm-up are applied per step on the device (step_state.h) over this value
    if (cfg->train.lr_schedule == LR_CONSTANT || cfg->train.lr_schedule == LR_COSINE) return cfg->train.lr;
    if (cfg->train.lr_schedule == LR_STEP) {
        double lr = cfg->train.lr;
        for (int k = (epoch - 1) / cfg->train.lr_step_epochs; k > 0; k--) lr *= cfg->train.lr_gamma;
        return lr;
    }
    // Burda et al. 2015: stage i (0..7) lasts 3^i epochs at lr * 10^(-i/7); later epochs stay at stage 7
    long end = 0, stage_length = 1;
    for (int i = 0; i < 8; i++) {
        end += stage_length;
        if (epoch <= end) return cfg->train.lr * pow(10.0, -i / 7.0);
        stage_length *= 3;
    }
    return cfg->train.lr * pow(10.0, -1.0);
}

const char *activation_name(Activation a) {
    if (a == ACT_SIGMOID) return "sigmoid";
    if ((int)a < 0 || (int)a >= COUNT(activation_names)) return "invalid";
    return activation_names[a];
}


static const char *name_of(const char *const *names, int n, int value) {
    if (value < 0 || value >= n) return "invalid";
    return names[value];
}

// ----------------------------------------------------------------------------
// error reporting: every message is "<source>: <key.path>: <problem>"

typedef struct {
    const char *source;
    char *err;
    size_t errlen;
} Ctx;

static int fail(const Ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const Ctx *c, const char *path, const char *fmt, ...) {
    char problem[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    return set_error(c->err, c->errlen, "%s: %s: %s", c->source, path, problem);
}

// "parent.key", or just "key" at the top level
static void join_path(char *out, size_t outlen, const char *parent, const char *key) {
    if (parent[0] == '\0') snprintf(out, outlen, "%s", key);
    else snprintf(out, outlen, "%s.%s", parent, key);
}

static const char *type_name(const cJSON *item) {
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "an invalid value";
}

// Text that reads back as exactly v: whole numbers below 1e16 as plain
// integers, else the shortest "%.*g" that round trips (17 digits always do).
static void format_double(char *out, size_t outlen, double v) {
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(out, outlen, "%.0f", v);
        return;
    }
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(out, outlen, "%.*g", precision, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void copy_string(char *dst, size_t dstlen, const char *src) {
    size_t n = strlen(src);
    if (n >= dstlen) n = dstlen - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

// ----------------------------------------------------------------------------
// typed getters. Each looks up obj[key] (case-sensitive); when the key is
// absent it leaves the output untouched (the caller set the default) or, if
// required, reports "missing required key". Return 0 or -1.

static int check_keys(const Ctx *c, const cJSON *obj, const char *path,
                      const char *const *allowed, int n_allowed) {
    for (const cJSON *child = obj->child; child; child = child->next) {
        char child_path[256];
        join_path(child_path, sizeof child_path, path, child->string);
        int known = 0;
        for (int i = 0; i < n_allowed; i++)
            if (strcmp(child->string, allowed[i]) == 0) known = 1;
        if (!known) {
            char list[512] = "";
            size_t len = 0;
            for (int i = 0; i < n_allowed && len < sizeof list; i++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", allowed[i]);
            return fail(c, child_path, "unknown key (allowed here: %s)", list);
        }
        for (const cJSON *prev = obj->child; prev != child; prev = prev->next)
            if (strcmp(prev->string, child->string) == 0)
                return fail(c, child_path, "duplicate key");
    }
    return 0;
}

static int find(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                int required, const cJSON **out) {
    *out = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (*out == NULL && required) {
        char full[256];
        join_path(full, sizeof full, path, key);
        return fail(c, full, "missing required key");
    }
    return 0;
}

static int get_section_at(const Ctx *c, const cJSON *parent, const char *parent_path,
                          const char *key, int required, const cJSON **out) {
    if (find(c, parent, parent_path, key, required, out)) return -1;
    if (*out && !cJSON_IsObject(*out)) {
        char full[256];
        join_path(full, sizeof full, parent_path, key);
        return fail(c, full, "must be an object, got %s", type_name(*out));
    }
    return 0;
}

static int get_section(const Ctx *c, const cJSON *root, const char *key, int required,
                       const cJSON **out) {
    return get_section_at(c, root, "", key, required, out);
}

static int get_string(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                      int required, char *dst, size_t dstlen) {
    const cJSON *item;
    if (find(c, obj, path, key, required, &item)) return -1;
    if (!item) return 0;
    char full[256];
    join_path(full, sizeof full, path, key);
    if (!cJSON_IsString(item)) return fail(c, full, "must be a string, got %s", type_name(item));
    size_t n = strlen(item->valuestring);
    if (n >= dstlen)
        return fail(c, full, "too long (%zu bytes, at most %zu)", n, dstlen - 1);
    memcpy(dst, item->valuestring, n + 1);
    return 0;
}

// One of names[0..n); *index gets the position.
static int get_choice(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                      const char *const *names, int n, int *index) {
    const cJSON *item;
    if (find(c, obj, path, key, 0, &item)) return -1;
    if (!item) return 0;
    char full[256];
    join_path(full, sizeof full, path, key);
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%s\"", i ? ", " : "", names[i]);
    if (!cJSON_IsString(item))
        return fail(c, full, "must be a string, one of %s; got %s", list, type_name(item));
    for (int i = 0; i < n; i++) {
        if (strcmp(item->valuestring, names[i]) == 0) {
            *index = i;
            return 0;
        }
    }
    return fail(c, full, "must be one of %s; got \"%.64s\"", list, item->valuestring);
}

static int get_bool(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                    bool *out) {
    const cJSON *item;
    if (find(c, obj, path, key, 0, &item)) return -1;
    if (!item) return 0;
    char full[256];
    join_path(full, sizeof full, path, key);
    if (!cJSON_IsBool(item)) return fail(c, full, "must be true or false, got %s", type_name(item));
    *out = cJSON_IsTrue(item);
    return 0;
}

// item must be a number with an integral value in [lo, hi].
static int check_integer(const Ctx *c, const cJSON *item, const char *full, double lo, double hi,
                         double *out) {
    if (!cJSON_IsNumber(item)) return fail(c, full, "must be an integer, got %s", type_name(item));
    double v = item->valuedouble;
    char text[64];
    format_double(text, sizeof text, v);
    if (!isfinite(v))   // (JSON holds no inf: a number past the doubles, 1e400, parses to it)
        return fail(c, full, "must be an integer, got a number beyond the range of a double (%s)",
                    v > 0 ? "over 1.8e308" : "under -1.8e308");
    if (v != floor(v)) return fail(c, full, "must be an integer, got %s", text);
    if (v < lo) return fail(c, full, "must be >= %.0f, got %s", lo, text);
    if (v > hi) return fail(c, full, "must be <= %.0f, got %s", hi, text);
    *out = v;
    return 0;
}

static int get_int(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                   int required, int lo, int hi, int *out) {
    const cJSON *item;
    if (find(c, obj, path, key, required, &item)) return -1;
    if (!item) return 0;
    char full[256];
    join_path(full, sizeof full, path, key);
    double v = 0.0;
    if (check_integer(c, item, full, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

// A finite number; the caller checks its range.
// item (named full in messages) as a finite, non-subnormal number
static int number_value(const Ctx *c, const cJSON *item, const char *full, double *out) {
    if (!cJSON_IsNumber(item)) return fail(c, full, "must be a number, got %s", type_name(item));
    if (!isfinite(item->valuedouble)) return fail(c, full, "must be a finite number");
    // the CPU backend flushes subnormals to zero for the whole process (host doubles too):
    // such a value would pass the checks here and read as 0 once training starts
    if (item->valuedouble != 0.0 && fabs(item->valuedouble) < DBL_MIN)
        return fail(c, full, "%g is subnormal (below %g), which cuvae's CPU arithmetic flushes to 0",
                    item->valuedouble, DBL_MIN);
    *out = item->valuedouble;
    return 0;
}

static int get_number(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                      int required, double *out) {
    const cJSON *item;
    if (find(c, obj, path, key, required, &item)) return -1;
    if (!item) return 0;
    char full[256];
    join_path(full, sizeof full, path, key);
    return number_value(c, item, full, out);
}

// An array of layer widths, each 1..MAX_WIDTH, at most CUVAE_MAX_HIDDEN.
static int get_widths(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                      int allow_empty, int *widths, int *n_out) {
    const cJSON *item;
    if (find(c, obj, path, key, 1, &item)) return -1;
    char full[256];
    join_path(full, sizeof full, path, key);
    if (!cJSON_IsArray(item))
        return fail(c, full, "must be an array of integers (layer widths), got %s", type_name(item));
    int n = cJSON_GetArraySize(item);
    if (n == 0 && !allow_empty) return fail(c, full, "must not be empty (at least one hidden layer)");
    if (n > CUVAE_MAX_HIDDEN)
        return fail(c, full, "at most %d hidden layers, got %d", CUVAE_MAX_HIDDEN, n);
    int i = 0;
    for (const cJSON *w = item->child; w; w = w->next, i++) {
        char item_path[280];
        snprintf(item_path, sizeof item_path, "%s[%d]", full, i);
        double v = 0.0;
        if (check_integer(c, w, item_path, 1, MAX_WIDTH, &v)) return -1;
        widths[i] = (int)v;
    }
    *n_out = n;
    return 0;
}

// One layer object of a layer list (network.h): {"kind": value, option: number, ...},
// {"kind": {option: number, ...}} or a bare "kind". The kind's check fills defaults.
static int get_layer_spec(const Ctx *c, const cJSON *item, const char *path, LayerSpec *spec) {
    memset(spec, 0, sizeof *spec);
    const cJSON *value = NULL;
    if (cJSON_IsString(item)) {
        if (!layer_kind_find(item->valuestring))
            return fail(c, path, "unknown layer \"%s\"; layers: %s", item->valuestring, layer_kind_names());
        copy_string(spec->kind, sizeof spec->kind, item->valuestring);
    } else if (cJSON_IsObject(item)) {
        for (const cJSON *m = item->child; m; m = m->next) {
            if (!layer_kind_find(m->string)) continue;
            if (spec->kind[0])
                return fail(c, path, "names two layers (\"%s\" and \"%s\"); one layer per object",
                            spec->kind, m->string);
            copy_string(spec->kind, sizeof spec->kind, m->string);
            value = m;
        }
        if (!spec->kind[0]) {
            const char *first = item->child ? item->child->string : NULL;
            if (first)
                return fail(c, path, "no layer kind among its keys (first key \"%s\"); layers: %s", first,
                            layer_kind_names());
            return fail(c, path, "an empty object; a layer is e.g. {\"linear\": 256}; layers: %s",
                        layer_kind_names());
        }
    } else {
        return fail(c, path, "must be a layer object such as {\"linear\": 256} or a layer name such as "
                    "\"relu\", got %s", type_name(item));
    }
    char key_path[320];
    snprintf(key_path, sizeof key_path, "%s.%s", path, spec->kind);
    // the kind's value: a number, a list of numbers, or an object of options
    const cJSON *options_object = NULL;
    if (value && cJSON_IsNumber(value)) {
        spec->n_args = 1;
        spec->args[0] = value->valuedouble;
    } else if (value && cJSON_IsArray(value)) {
        int n = cJSON_GetArraySize(value);
        if (n < 1)
            return fail(c, key_path, "an empty list: give the layer's value (e.g. {\"linear\": 256}), or {} for a "
                        "layer that takes none");
        if (n > LAYER_MAX_ARGS)
            return fail(c, key_path, "lists %d numbers; a layer's value is at most %d (reshape's [C, H, W])", n,
                        LAYER_MAX_ARGS);
        spec->args_list = true;
        for (const cJSON *a = value->child; a; a = a->next) {
            if (!cJSON_IsNumber(a)) return fail(c, key_path, "must list numbers, got %s", type_name(a));
            spec->args[spec->n_args++] = a->valuedouble;
        }
    } else if (value && cJSON_IsObject(value)) {
        options_object = value;
    } else if (value) {
        return fail(c, key_path, "must be a number, a list of numbers or an object of options, got %s",
                    type_name(value));
    }
    // options: the keys of an object value, and the sibling keys. A value that is not a number is
    // said once the kind's check has found the option known ({"linear": 8, "bias": false} is an
    // unknown option, not a number expected): it is held as NaN, which every option check refuses.
    char wrong_type_path[400] = "";
    const char *wrong_type = NULL;
    for (int pass = 0; pass < 2; pass++) {
        const cJSON *holder = pass == 0 ? options_object : (cJSON_IsObject(item) ? item : NULL);
        if (!holder) continue;
        for (const cJSON *m = holder->child; m; m = m->next) {
            if (m == value) continue;
            char option_path[400];
            snprintf(option_path, sizeof option_path, "%s.%s", pass == 0 ? key_path : path, m->string);
            if (!cJSON_IsNumber(m) && !wrong_type) {
                wrong_type = type_name(m);
                snprintf(wrong_type_path, sizeof wrong_type_path, "%s", option_path);
            }
            for (int k = 0; k < spec->n_options; k++)
                if (strcmp(spec->option_keys[k], m->string) == 0)
                    return fail(c, option_path, "given twice");
            if (spec->n_options == LAYER_MAX_OPTIONS || strlen(m->string) >= sizeof spec->option_keys[0])
                return fail(c, option_path, "unknown option of %s", spec->kind);
            copy_string(spec->option_keys[spec->n_options], sizeof spec->option_keys[0], m->string);
            spec->option_values[spec->n_options++] = cJSON_IsNumber(m) ? m->valuedouble : NAN;
        }
    }
    char key[32] = "", msg[512] = "";
    if (layer_kind_find(spec->kind)->check(spec, key, sizeof key, msg, sizeof msg) != 0) {
        if (wrong_type && strncmp(msg, "unknown option", 14) != 0)
            return fail(c, wrong_type_path, "must be a number, got %s", wrong_type);
        if (key[0] == '\0') return fail(c, key_path, "%s", msg);
        char option_path[400];
        snprintf(option_path, sizeof option_path, "%s.%s", path, key);
        return fail(c, option_path, "%s", msg);
    }
    if (wrong_type) return fail(c, wrong_type_path, "must be a number, got %s", wrong_type);
    return 0;
}

// model.encoder / model.decoder: a list of widths (the shorthand) or of layers.
static int get_layers_or_widths(const Ctx *c, const cJSON *obj, const char *path, const char *key,
                                int allow_empty, int *widths, int *n_widths, LayerSpec *specs,
                                int *n_specs) {
    const cJSON *item;
    *n_widths = 0;
    *n_specs = 0;
    if (find(c, obj, path, key, 1, &item)) return -1;
    // a layer list starts with a layer object or a layer's name (a word: an unknown one is
    // refused as a layer, not as a width); anything else ("64" too) reads as widths
    bool layers = cJSON_IsArray(item) && item->child &&
                  (cJSON_IsObject(item->child) ||
                   (cJSON_IsString(item->child) && isalpha((unsigned char)item->child->valuestring[0])));
    if (!layers) return get_widths(c, obj, path, key, allow_empty, widths, n_widths);
    char full[256];
    join_path(full, sizeof full, path, key);
    int n = cJSON_GetArraySize(item);
    if (n > CUVAE_MAX_GRAPH_LAYERS)
        return fail(c, full, "at most %d layers, got %d", CUVAE_MAX_GRAPH_LAYERS, n);
    int i = 0;
    for (const cJSON *layer = item->child; layer; layer = layer->next, i++) {
        char item_path[280];
        snprintf(item_path, sizeof item_path, "%s[%d]", full, i);
        if (cJSON_IsNumber(layer))
            return fail(c, item_path, "a width among layer objects; write {\"linear\": %g} (or give only "
                        "widths)", layer->valuedouble);
        if (get_layer_spec(c, layer, item_path, &specs[i])) return -1;
    }
    *n_specs = n;
    return 0;
}

static int check_one_line(const Ctx *c, const char *path, const char *s) {
    if (strchr(s, '\n') || strchr(s, '\r')) return fail(c, path, "must be a single line");
    return 0;
}

// Values the arithmetic uses as float32 (learning rate, Adam's betas and eps,
// the loss weights and schedules) are checked in that type: a nonzero value
// below the smallest normal float (1.17549435e-38) would become 0 or a
// flushed subnormal, one above FLT_MAX infinity.
static int check_float32(const Ctx *c, const char *path, double v) {
    char text[64];
    format_double(text, sizeof text, v);
    if (v != 0.0 && fabs(v) < FLT_MIN)
        return fail(c, path, "%s rounds to 0 in float32, the type it is computed in (the smallest "
                    "normal float is 1.17549435e-38)", text);
    if (fabs(v) > FLT_MAX)
        return fail(c, path, "%s overflows float32, the type it is computed in (the largest float "
                    "is 3.40282347e+38)", text);
    return 0;
}

// A factor that must stay below 1 in float32, the type `user` computes in (Adam's betas, SGD's
// momentum, the EMA codebook's decay): 0.9999999999999999 rounds to 1.0f.
static int check_below_one_float32(const Ctx *c, const char *path, double v, const char *user) {
    if ((float)v >= 1.0f) {
        char text[64];
        format_double(text, sizeof text, v);
        return fail(c, path, "%s rounds to 1 in float32, the type %s computes in (at most "
                    "0.99999994)", text, user);
    }
    return 0;
}

// The run's name becomes a folder (runs/<name>): letters, digits, '.', '_' and
// '-' only, not starting with '.' or '-' (no "..", no '/', no absolute path).
static int check_plain_name(const Ctx *c, const char *path, const char *s) {
    if (!is_plain_name(s))
        return fail(c, path, "must be a plain name (letters, digits, '.', '_', '-'; not starting "
                    "with '.' or '-'), got \"%s\"; it names the folder runs/<name> (choose another "
                    "folder with --out DIR)", s);
    return 0;
}

// ----------------------------------------------------------------------------
// the schema

// model.* of the autoregressive kinds. "made" (Germain et al. 2015): input_dim, network
// (hidden widths with model.activation, expanded here to [masked_linear w, act, ...,
// masked_linear input_dim], or a list of masked_linear / activation layers), ordering, masks,
// output bernoulli. "pixelcnn" (van den Oord et al. 2016): input_dim, network (a layer list).
static int parse_autoregressive_model(Config *cfg, const cJSON *model, const Ctx *c) {
    static const char *const latent_keys[] = {"encoder", "latent_dim", "decoder", "condition", "codebook",
                                              "generator", "discriminator", "label_smoothing", "init", "prior"};
    const char *kind = model_kind_name(cfg->model.kind);
    const bool made = cfg->model.kind == MODEL_MADE;
    for (int k = 0; k < COUNT(latent_keys); k++)
        if (cJSON_GetObjectItemCaseSensitive(model, latent_keys[k]))
            return fail(c, "model", "kind \"%s\" has no \"%s\": it is one autoregressive network, "
                        "model.network (%s)", kind, latent_keys[k],
                        made ? "e.g. [500]" : "masked convolutions, see the README");
    if (!made) {
        static const char *const made_keys[] = {"ordering", "masks", "activation"};
        for (int k = 0; k < COUNT(made_keys); k++)
            if (cJSON_GetObjectItemCaseSensitive(model, made_keys[k]))
                return fail(c, "model", "\"%s\" is not a key of kind \"pixelcnn\" (%s)", made_keys[k],
                            k < 2 ? "its order is the raster order, fixed by its masked convolutions"
                                  : "its network names its activations as layers");
    }
    if (get_int(c, model, "model", "input_dim", !cfg->model.input_shape[0], 2, MAX_INPUT_DIM, &cfg->model.input_dim)) return -1;
    int widths[CUVAE_MAX_HIDDEN], n_widths = 0;
    if (get_layers_or_widths(c, model, "model", "network", 1, widths, &n_widths, cfg->model.decoder_layers,
                             &cfg->model.n_decoder_layers))
        return -1;
    if (!made && cfg->model.n_decoder_layers == 0)
        return fail(c, "model.network", "kind \"pixelcnn\" needs a layer list, e.g. [{\"masked_conv2d_a\": 64, "
                    "\"kernel\": 7}, \"relu\", ..., {\"conv2d\": 1, \"kernel\": 1}]");
    int choice = 0;   // "relu" in the list below
    if (cfg->model.n_decoder_layers > 0 && cJSON_GetObjectItemCaseSensitive(model, "activation"))
        return fail(c, "model.activation", "unused: model.network is a layer list, which names its "
                    "activations as layers (e.g. \"relu\")");
    if (get_choice(c, model, "model", "activation", activation_names + 1, COUNT(activation_names) - 1,
                   &choice))
        return -1;
    cfg->model.activation = (Activation)(ACT_RELU + choice);
    if (cfg->model.n_decoder_layers == 0) {   // widths: the masked MLP they stand for
        cJSON *list = cJSON_CreateArray();
        for (int i = 0; i <= n_widths; i++) {
            cJSON *layer = cJSON_CreateObject();
            cJSON_AddNumberToObject(layer, "masked_linear", i < n_widths ? widths[i] : cfg->model.input_dim);
            cJSON_AddItemToArray(list, layer);
            if (i < n_widths) cJSON_AddItemToArray(list, cJSON_CreateString(activation_name(cfg->model.activation)));
        }
        int i = 0;
        for (const cJSON *layer = list->child; layer; layer = layer->next, i++) {
            char path[64];
            snprintf(path, sizeof path, "model.network[%d]", i);
            if (get_layer_spec(c, layer, path, &cfg->model.decoder_layers[i])) {
                cJSON_Delete(list);
                return -1;
            }
        }
        cfg->model.n_decoder_layers = i;
        cJSON_Delete(list);
    }
    cfg->model.latent_dim = 0;
    if (made && cJSON_GetObjectItemCaseSensitive(model, "prior_of"))
        return fail(c, "model.prior_of", "a prior over a VQ-VAE's codes is a \"pixelcnn\"");
    if (get_string(c, model, "model", "prior_of", 0, cfg->model.prior_of, sizeof cfg->model.prior_of)) return -1;
    char expected_crc[16] = "";
    if (get_string(c, model, "model", "prior_crc32", 0, expected_crc, sizeof expected_crc)) return -1;
    // (given as "": refused, not read as absent; a pixelcnn over images leaves both keys out)
    if (cJSON_GetObjectItemCaseSensitive(model, "prior_of") && !cfg->model.prior_of[0])
        return fail(c, "model.prior_of", "is \"\": give the VQ-VAE checkpoint whose codes the prior models, or leave "
                    "the key out (a pixelcnn over the images)");
    if (cJSON_GetObjectItemCaseSensitive(model, "prior_crc32")) {
        const size_t n = strlen(expected_crc);
        // ("none": a VQ-VAE checkpoint written before checkpoints held a crc32)
        if ((n != 8 || strspn(expected_crc, "0123456789abcdef") != n) && strcmp(expected_crc, "none") != 0)
            return fail(c, "model.prior_crc32", "expected 8 lowercase hex digits (the crc32 in the VQ-VAE checkpoint's "
                        "metadata), got \"%.40s\"", expected_crc);
    }
    if (expected_crc[0] && !cfg->model.prior_of[0])
        return fail(c, "model.prior_crc32", "names the VQ-VAE of model.prior_of, which is not given");
    if (cfg->model.prior_of[0]) {   // a prior over the codes: K classes per position of the VQ-VAE's grid
        char why[900];
        if (prior_code_grid(cfg->model.prior_of, &cfg->model.prior_classes, &cfg->model.prior_h,
                            &cfg->model.prior_w, cfg->model.prior_crc32, why, sizeof why) != 0) {
            // not there: say how it comes to be (the lecture prior names make lectures' run); a trained
            // prior's (its checkpoint's config) was there when it trained: it has moved
            struct stat st;
            const bool absent = stat(cfg->model.prior_of, &st) != 0 && errno == ENOENT;
            const bool trained = strstr(c->source, "(__metadata__.config)") != NULL;   // (checkpoint_read_config)
            return fail(c, "model.prior_of", "%s%s", why,
                        !absent ? ""
                        : trained ? " (the VQ-VAE this prior was trained on has moved: give it with --set "
                                    "model.prior_of=CKPT)"
                                  : " (train that VQ-VAE first, with --out at that folder, or give yours with --set "
                                    "model.prior_of=CKPT)");
        }
        if (expected_crc[0] && strcmp(expected_crc, cfg->model.prior_crc32) != 0)
            return fail(c, "model.prior_of", "%s is not the VQ-VAE this prior is for (its crc32 is %s, "
                        "model.prior_crc32 says %s): its codes mean other things", cfg->model.prior_of,
                        cfg->model.prior_crc32, expected_crc);
        const int positions = cfg->model.prior_h * cfg->model.prior_w;
        if (positions < 2)   // (one position: nothing to order, and input_dim 1 is no image)
            return fail(c, "model.prior_of", "%s encodes an image to one code (its encoder ends flat, a 1 x 1 grid): "
                        "a PixelCNN prior orders the positions of a code grid of 2 or more; a prior over one code "
                        "is the codes' frequencies", cfg->model.prior_of);
        if (cfg->model.input_dim != positions)
            return fail(c, "model.input_dim", "must be %d, the positions of the VQ-VAE's code grid (%d x %d), "
                        "got %d", positions, cfg->model.prior_h, cfg->model.prior_w, cfg->model.input_dim);
    }
    choice = ORDERING_NATURAL;
    if (get_choice(c, model, "model", "ordering", ordering_names, COUNT(ordering_names), &choice)) return -1;
    cfg->model.ordering = (Ordering)choice;
    cfg->model.masks = 1;
    if (get_int(c, model, "model", "masks", 0, 1, MAX_MADE_MASKS, &cfg->model.masks)) return -1;
    choice = OUTPUT_BERNOULLI;
    if (get_choice(c, model, "model", "output", output_names, COUNT(output_names), &choice)) return -1;
    if (choice != OUTPUT_BERNOULLI)
        return fail(c, "model.output", "kind \"%s\" models binary pixels: only \"bernoulli\"", kind);
    cfg->model.output = OUTPUT_BERNOULLI;
    char problem[700];   // layers and shapes, before anything is allocated
    if (model_check_networks(cfg, problem, sizeof problem) != 0)
        return set_error(c->err, c->errlen, "%s: %s", c->source, problem);
    return 0;
}

// model.label_smoothing (one-sided, Salimans et al. 2016): a number s, every real image's target 1 - s;
// or [min, max], each real image's target drawn uniformly in (1 - max, 1 - min] every step (deck 002:
// "a random value, typically between 0.7 and 0.9" is [0.1, 0.3]). 0 <= min < max < 0.5.
static int parse_label_smoothing(Config *cfg, const cJSON *model, const Ctx *c) {
    const char *key = "model.label_smoothing";
    double *lo = &cfg->model.gan.label_smoothing, *hi = &cfg->model.gan.label_smoothing_max;
    *lo = *hi = 0.0;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(model, "label_smoothing");
    if (cJSON_IsArray(item)) {
        if (cJSON_GetArraySize(item) != 2)
            return fail(c, key, "a range is [min, max], two numbers (each real image's target drawn in "
                        "(1 - max, 1 - min] every step), got %d", cJSON_GetArraySize(item));
        char full[64];
        for (int k = 0; k < 2; k++) {
            snprintf(full, sizeof full, "%s[%d]", key, k);
            if (number_value(c, cJSON_GetArrayItem(item, k), full, k ? hi : lo)) return -1;
        }
        if (!(*lo < *hi)) {
            char text[2][64];
            format_double(text[0], sizeof text[0], *lo);
            format_double(text[1], sizeof text[1], *hi);
            return fail(c, key, "a range [min, max] needs min < max, got [%s, %s] (one number gives every real "
                        "image the same target)", text[0], text[1]);
        }
        if ((float)(1.0 - *hi) == (float)(1.0 - *lo)) {   // the targets are float32
            char text[2][64];
            format_double(text[0], sizeof text[0], *lo);
            format_double(text[1], sizeof text[1], *hi);
            return fail(c, key, "[%s, %s]: the targets 1 - max and 1 - min are the same float32 number, so nothing "
                        "would be drawn; give one number for a fixed target", text[0], text[1]);
        }
    } else {
        if (get_number(c, model, "model", "label_smoothing", 0, lo)) return -1;
        *hi = *lo;
    }
    if (!(*lo >= 0.0 && *hi < 0.5)) {
        char text[64];
        format_double(text, sizeof text, *lo < 0.0 ? *lo : *hi);
        return fail(c, key, "must be in [0, 0.5) (real targets become 1 - it; a range's ends too), got %s", text);
    }
    return 0;
}

// model.* of kind "gan": input_dim, latent_dim (z, default 100), generator (a layer list from z to
// the data's shape, ending in sigmoid or tanh), discriminator (a layer list from the data's shape
// to one logit), label_smoothing (one-sided), init.
static int parse_gan_model(Config *cfg, const cJSON *model, const Ctx *c) {
    static const char *const other_keys[] = {"encoder", "decoder", "activation", "output", "condition", "codebook",
                                             "network", "ordering", "masks", "prior_of", "prior_crc32", "prior"};
    for (int k = 0; k < COUNT(other_keys); k++)
        if (cJSON_GetObjectItemCaseSensitive(model, other_keys[k]))
            return fail(c, "model", "kind \"gan\" has no \"%s\": it is model.generator (z -> image) and "
                        "model.discriminator (image -> one logit)", other_keys[k]);
    if (get_int(c, model, "model", "input_dim", !cfg->model.input_shape[0], 1, MAX_INPUT_DIM, &cfg->model.input_dim)) return -1;
    cfg->model.latent_dim = 100;
    if (get_int(c, model, "model", "latent_dim", 0, 1, MAX_WIDTH, &cfg->model.latent_dim)) return -1;
    int widths[CUVAE_MAX_HIDDEN], n_widths = 0;
    if (get_layers_or_widths(c, model, "model", "generator", 0, widths, &n_widths, cfg->model.decoder_layers,
                             &cfg->model.n_decoder_layers))
        return -1;
    if (cfg->model.n_decoder_layers == 0)
        return fail(c, "model.generator", "a layer list, e.g. [{\"linear\": 6272}, {\"reshape\": [128, 7, 7]}, ..., "
                    "\"sigmoid\"]");
    if (get_layers_or_widths(c, model, "model", "discriminator", 0, widths, &n_widths, cfg->model.encoder_layers,
                             &cfg->model.n_encoder_layers))
        return -1;
    if (cfg->model.n_encoder_layers == 0)
        return fail(c, "model.discriminator", "a layer list, e.g. [{\"conv2d\": 64, \"kernel\": 4, \"stride\": 2}, "
                    "{\"leaky_relu\": 0.2}, ..., {\"flatten\": {}}, {\"linear\": 1}]");
    if (parse_label_smoothing(cfg, model, c)) return -1;
    int choice = 0;
    if (get_choice(c, model, "model", "init", gan_init_names, COUNT(gan_init_names), &choice)) return -1;
    cfg->model.gan.dcgan_init = choice == 0;
    cfg->model.output = OUTPUT_BERNOULLI;   // unused: the generator's last layer says its range
    char problem[700];   // shapes, before anything is allocated
    if (model_check_networks(cfg, problem, sizeof problem) != 0)
        return set_error(c->err, c->errlen, "%s: %s", c->source, problem);
    return 0;
}

// model.* of the latent-variable kinds (vae, ae, cvae, vq_vae): encoder, latent_dim,
// decoder (widths or layer lists), activation, output, condition, codebook.
static int parse_latent_model(Config *cfg, const cJSON *model, const Ctx *c) {
    static const char *const codebook_keys[] = {"size", "beta", "update", "decay", "eps", "restart_dead"};
    static const char *const codebook_updates[] = {"loss", "ema"};
    static const char *const gan_keys[] = {"generator", "discriminator", "label_smoothing", "init"};
    const bool aae = cfg->model.kind == MODEL_AAE;
    int choice;
    for (int k = 0; k < COUNT(gan_keys); k++)
        if (!(aae && k == 1) && cJSON_GetObjectItemCaseSensitive(model, gan_keys[k]))
            return fail(c, "model", "\"%s\" is for kind %s (got \"%s\")", gan_keys[k],
                        k == 1 ? "\"gan\" or \"aae\"" : "\"gan\"", model_kind_name(cfg->model.kind));
    for (int k = 0; k < COUNT(made_only_keys); k++)
        if (cJSON_GetObjectItemCaseSensitive(model, made_only_keys[k]))
            return fail(c, "model", "\"%s\" is for kind %s (got \"%s\")", made_only_keys[k],
                        k == 0 ? "\"made\" or \"pixelcnn\"" : k < 3 ? "\"made\"" : "\"pixelcnn\" (a prior)",
                        model_kind_name(cfg->model.kind));
    if (get_int(c, model, "model", "input_dim", !cfg->model.input_shape[0], 1, MAX_INPUT_DIM, &cfg->model.input_dim)) return -1;
    if (get_layers_or_widths(c, model, "model", "encoder", 0, cfg->model.encoder, &cfg->model.n_encoder,
                             cfg->model.encoder_layers, &cfg->model.n_encoder_layers))
        return -1;
    if (get_int(c, model, "model", "latent_dim", 1, 1, MAX_WIDTH, &cfg->model.latent_dim))
        return -1;
    if (get_layers_or_widths(c, model, "model", "decoder", 1, cfg->model.decoder, &cfg->model.n_decoder,
                             cfg->model.decoder_layers, &cfg->model.n_decoder_layers))
        return -1;
    if (cfg->model.n_encoder_layers > 0 && cfg->model.n_decoder_layers > 0 &&
        cJSON_GetObjectItemCaseSensitive(model, "activation"))
        return fail(c, "model.activation", "unused: encoder and decoder are layer lists, which name "
                    "their activations as layers (e.g. {\"relu\": {}})");
    choice = 0;  // "relu" in the list below
    if (get_choice(c, model, "model", "activation", activation_names + 1,
                   COUNT(activation_names) - 1, &choice))
        return -1;
    cfg->model.activation = (Activation)(ACT_RELU + choice);
    choice = OUTPUT_BERNOULLI;
    if (get_choice(c, model, "model", "output", output_names, COUNT(output_names), &choice))
        return -1;
    cfg->model.output = (OutputKind)choice;
    choice = cfg->model.kind == MODEL_CVAE ? CONDITION_LABEL : CONDITION_NONE;
    if (get_choice(c, model, "model", "condition", condition_names, COUNT(condition_names),
                   &choice))
        return -1;
    cfg->model.condition = (Condition)choice;
    if (cfg->model.kind == MODEL_CVAE && cfg->model.condition != CONDITION_LABEL)
        return fail(c, "model.condition", "kind \"cvae\" needs condition \"label\"");
    if (cfg->model.kind != MODEL_CVAE && cfg->model.condition != CONDITION_NONE)
        return fail(c, "model.condition", "\"label\" needs model.kind \"cvae\" (got \"%s\")",
                    model_kind_name(cfg->model.kind));
    cfg->model.n_classes = cfg->model.condition == CONDITION_LABEL ? 10 : 0;
    if (cfg->model.condition != CONDITION_NONE &&
        (cfg->model.n_encoder_layers > 0 || cfg->model.n_decoder_layers > 0))
        return fail(c, "model.kind", "\"cvae\" needs encoder and decoder as lists of widths: the label "
                    "condition is not wired into layer lists yet");
    // aae: the discriminator on z and the prior
    if (!aae && cJSON_GetObjectItemCaseSensitive(model, "prior"))
        return fail(c, "model.prior", "is the prior of kind \"aae\" (got \"%s\")", model_kind_name(cfg->model.kind));
    if (aae) {
        int widths[CUVAE_MAX_HIDDEN], n_widths = 0;
        if (get_layers_or_widths(c, model, "model", "discriminator", 1, widths, &n_widths,
                                 cfg->model.discriminator_layers, &cfg->model.n_discriminator_layers))
            return -1;
        if (cfg->model.n_discriminator_layers == 0)
            return fail(c, "model.discriminator", "a layer list on z, e.g. [{\"linear\": 512}, \"relu\", "
                        "{\"linear\": 512}, \"relu\", {\"linear\": 1}]");
        choice = 0;
        if (get_choice(c, model, "model", "prior", prior_names, COUNT(prior_names), &choice)) return -1;
        cfg->model.prior_mixture = choice == 1;
        char problem[700];   // its shapes, before anything is allocated
        if (model_aae_check_discriminator(cfg, problem, sizeof problem) != 0)
            return set_error(c->err, c->errlen, "%s: %s", c->source, problem);
        if (cfg->model.prior_mixture && cfg->model.latent_dim != 2)
            return fail(c, "model.prior", "\"mixture\" is Makhzani et al.'s mixture of 10 Gaussians in 2-D: it "
                        "needs model.latent_dim 2 (got %d)", cfg->model.latent_dim);
    }
    // vq_vae: the codebook
    const cJSON *codebook;
    if (get_section_at(c, model, "model", "codebook", 0, &codebook)) return -1;
    if (cfg->model.kind == MODEL_VQ_VAE) {
        if (!codebook) return fail(c, "model.codebook", "missing (vq_vae needs e.g. {\"size\": 256})");
        if (check_keys(c, codebook, "model.codebook", codebook_keys, COUNT(codebook_keys))) return -1;
        if (get_int(c, codebook, "model.codebook", "size", 1, 2, 65536, &cfg->model.codebook.size)) return -1;
        cfg->model.codebook.beta = 0.25;
        if (get_number(c, codebook, "model.codebook", "beta", 0, &cfg->model.codebook.beta)) return -1;
        choice = 0;
        if (get_choice(c, codebook, "model.codebook", "update", codebook_updates, COUNT(codebook_updates), &choice))
            return -1;
        cfg->model.codebook.ema = choice == 1;
        cfg->model.codebook.decay = 0.99;
        if (get_number(c, codebook, "model.codebook", "decay", 0, &cfg->model.codebook.decay)) return -1;
        cfg->model.codebook.eps = 1e-5;
        if (get_number(c, codebook, "model.codebook", "eps", 0, &cfg->model.codebook.eps)) return -1;
        char text[64];
        if (!(cfg->model.codebook.beta >= 0)) {
            format_double(text, sizeof text, cfg->model.codebook.beta);
            return fail(c, "model.codebook.beta", "must be >= 0, got %s", text);
        }
        if (check_float32(c, "model.codebook.beta", cfg->model.codebook.beta)) return -1;
        if (!(cfg->model.codebook.decay > 0 && cfg->model.codebook.decay < 1)) {
            format_double(text, sizeof text, cfg->model.codebook.decay);
            return fail(c, "model.codebook.decay", "must be in (0, 1), got %s", text);
        }
        if (check_float32(c, "model.codebook.decay", cfg->model.codebook.decay) ||
            check_below_one_float32(c, "model.codebook.decay", cfg->model.codebook.decay, "the EMA update"))
            return -1;
        if (!(cfg->model.codebook.eps > 0)) {
            format_double(text, sizeof text, cfg->model.codebook.eps);
            return fail(c, "model.codebook.eps", "must be > 0, got %s", text);
        }
        if (check_float32(c, "model.codebook.eps", cfg->model.codebook.eps)) return -1;
        cfg->model.codebook.restart_dead = 0.0;
        if (get_number(c, codebook, "model.codebook", "restart_dead", 0, &cfg->model.codebook.restart_dead))
            return -1;
        if (!(cfg->model.codebook.restart_dead >= 0 && cfg->model.codebook.restart_dead < 1)) {
            format_double(text, sizeof text, cfg->model.codebook.restart_dead);
            return fail(c, "model.codebook.restart_dead", "must be in [0, 1) (a fraction of the mean code count), got %s",
                        text);
        }
        if (check_float32(c, "model.codebook.restart_dead", cfg->model.codebook.restart_dead)) return -1;
        if (!cfg->model.codebook.ema && (cJSON_GetObjectItemCaseSensitive(codebook, "decay") ||
                                         cJSON_GetObjectItemCaseSensitive(codebook, "eps") ||
                                         cJSON_GetObjectItemCaseSensitive(codebook, "restart_dead")))
            return fail(c, "model.codebook", "decay, eps and restart_dead are the EMA update's; unused with update "
                        "\"loss\"");
        if (cfg->model.n_encoder_layers == 0 || cfg->model.n_decoder_layers == 0)
            return fail(c, "model.kind", "\"vq_vae\" needs encoder and decoder as layer lists (e.g. convolutions "
                        "down to (latent_dim, 7, 7) and back)");
    } else if (codebook) {
        return fail(c, "model.codebook", "only for kind \"vq_vae\" (got \"%s\")", model_kind_name(cfg->model.kind));
    }
    if (cfg->model.n_encoder_layers > 0 || cfg->model.n_decoder_layers > 0) {
        char problem[700];   // shapes, before anything is allocated
        if (model_check_networks(cfg, problem, sizeof problem) != 0)
            return set_error(c->err, c->errlen, "%s: %s", c->source, problem);
    }
    return 0;
}

// Where the images come from: data.dir (mnist, fashion-mnist) or, for "files",
// data.train / test / train_labels / test_labels / format / layout / test_fraction.
static int parse_data_source(Config *cfg, const cJSON *data, const Ctx *c) {
    const bool files = strcmp(cfg->data.dataset, "files") == 0;
    const cJSON *item;
    cfg->data.format = DATA_FORMAT_AUTO;
    cfg->data.layout = DATA_LAYOUT_AUTO;
    cfg->data.test_fraction = 0.1;
    if (!files) {
        for (size_t i = 0; i < COUNT(files_keys); i++) {
            if (find(c, data, "data", files_keys[i], 0, &item)) return -1;
            if (item) {
                char full[64];
                snprintf(full, sizeof full, "data.%s", files_keys[i]);
                return fail(c, full, "is a key of dataset \"files\" (your own images); dataset \"%s\" reads "
                            "data.dir", cfg->data.dataset);
            }
        }
        if (get_string(c, data, "data", "dir", 1, cfg->data.dir, sizeof cfg->data.dir)) return -1;
        if (cfg->data.dir[0] == '\0') return fail(c, "data.dir", "must not be empty");
        return 0;
    }
    if (find(c, data, "data", "dir", 0, &item)) return -1;
    if (item) return fail(c, "data.dir", "dataset \"files\" reads data.train (and data.test), not data.dir");
    if (get_string(c, data, "data", "train", 1, cfg->data.train, sizeof cfg->data.train)) return -1;
    if (cfg->data.train[0] == '\0') return fail(c, "data.train", "must not be empty");
    if (get_string(c, data, "data", "test", 0, cfg->data.test, sizeof cfg->data.test)) return -1;
    if (get_string(c, data, "data", "train_labels", 0, cfg->data.train_labels, sizeof cfg->data.train_labels))
        return -1;
    if (get_string(c, data, "data", "test_labels", 0, cfg->data.test_labels, sizeof cfg->data.test_labels))
        return -1;
    if (cfg->data.test_labels[0] && !cfg->data.test[0])
        return fail(c, "data.test_labels", "labels a test set: give data.test too (or neither: the test set is "
                    "then carved from the training set, with its labels)");
    int choice = DATA_FORMAT_AUTO;
    if (get_choice(c, data, "data", "format", format_names, COUNT(format_names), &choice)) return -1;
    cfg->data.format = (DataFormat)choice;
    choice = DATA_LAYOUT_AUTO;
    if (get_choice(c, data, "data", "layout", layout_names, COUNT(layout_names), &choice)) return -1;
    cfg->data.layout = (DataLayout)choice;
    if (find(c, data, "data", "test_fraction", 0, &item)) return -1;
    if (item && cfg->data.test[0])
        return fail(c, "data.test_fraction", "carves a test set out of the training set only when data.test is "
                    "not given: remove one of the two keys");
    if (get_number(c, data, "data", "test_fraction", 0, &cfg->data.test_fraction)) return -1;
    if (!(cfg->data.test_fraction > 0.0 && cfg->data.test_fraction <= 0.5)) {
        char text[32];
        format_double(text, sizeof text, cfg->data.test_fraction);
        return fail(c, "data.test_fraction", "must be a fraction of the training set in (0, 0.5], got %s", text);
    }
    return 0;
}

// model.input_dim given beside a model.input_shape that holds another number of values.
static int input_dim_conflict(const Config *cfg, const Ctx *c, double input_dim, int shape_dim) {
    char text[64];
    format_double(text, sizeof text, input_dim);
    return fail(c, "model.input_dim", "is %s but model.input_shape [%d, %d, %d] holds %d values (give one of them)",
                text, cfg->model.input_shape[0], cfg->model.input_shape[1], cfg->model.input_shape[2], shape_dim);
}

// model.input_shape: [channels, height, width] of one example; sets input_dim to their product.
static int parse_input_shape(Config *cfg, const cJSON *model, const Ctx *c) {
    memset(cfg->model.input_shape, 0, sizeof cfg->model.input_shape);
    const cJSON *item;
    if (find(c, model, "model", "input_shape", 0, &item)) return -1;
    if (!item) return 0;
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 3)
        return fail(c, "model.input_shape", "must be [channels, height, width], e.g. [3, 32, 32]");
    long product = 1;
    for (int k = 0; k < 3; k++) {
        char full[64];
        snprintf(full, sizeof full, "model.input_shape[%d]", k);
        double v = 0.0;
        if (check_integer(c, cJSON_GetArrayItem(item, k), full, 1, MAX_INPUT_DIM, &v)) return -1;
        cfg->model.input_shape[k] = (int)v;
        product *= (long)v;
        if (product > MAX_INPUT_DIM)
            return fail(c, "model.input_shape", "holds more than %d values per example", MAX_INPUT_DIM);
    }
    cfg->model.input_dim = (int)product;
    return 0;
}

static int parse_config(Config *cfg, const cJSON *root, const Ctx *c) {
    static const char *const top_keys[] = {"name", "description", "data", "model",
                                           "loss", "train", "eval", "device"};
    static const char *const data_keys[] = {"dataset", "dir", "binarize", "train_limit",
                                            "test_limit", "validation", "train", "test", "train_labels",
                                            "test_labels", "format", "layout", "test_fraction"};
    static const char *const model_keys[] = {"kind", "input_dim", "input_shape", "encoder", "latent_dim",
                                             "decoder", "activation", "output", "condition", "codebook",
                                             "network", "ordering", "masks", "prior_of", "prior_crc32",
                                             "generator", "discriminator", "label_smoothing", "init", "prior"};
    static const char *const loss_keys[] = {"reconstruction", "reduction", "w_rec", "w_kl",
                                            "kl_warmup_epochs", "capacity", "free_bits"};
    static const char *const capacity_keys[] = {"max_nats", "epochs", "gamma"};
    static const char *const train_keys[] = {"epochs", "batch_size", "optimizer", "weight_decay", "momentum",
                                             "grad_clip",
                                             "lr", "seed",
                                             "beta1", "beta2", "adam_eps", "log_interval", "early_stopping",
                                             "full_epochs", "lr_schedule", "lr_step_epochs", "lr_gamma",
                                             "lr_min", "warmup_steps", "precision",
                                             "epsilon", "cuda_graph", "epoch_images", "epoch_images_every"};
    static const char *const eval_keys[] = {"iw_samples", "iw_examples", "iw_batch", "parzen_samples",
                                            "parzen_examples"};
    const cJSON *data, *model, *loss, *train, *eval, *item;
    int choice;

    if (check_keys(c, root, "", top_keys, COUNT(top_keys))) return -1;
    if (get_section(c, root, "data", 1, &data)) return -1;
    if (check_keys(c, data, "data", data_keys, COUNT(data_keys))) return -1;
    if (get_section(c, root, "model", 1, &model)) return -1;
    if (check_keys(c, model, "model", model_keys, COUNT(model_keys))) return -1;
    if (get_section(c, root, "loss", 0, &loss)) return -1;
    if (loss && check_keys(c, loss, "loss", loss_keys, COUNT(loss_keys))) return -1;
    if (get_section(c, root, "train", 1, &train)) return -1;
    if (check_keys(c, train, "train", train_keys, COUNT(train_keys))) return -1;
    if (get_section(c, root, "eval", 0, &eval)) return -1;
    if (eval && check_keys(c, eval, "eval", eval_keys, COUNT(eval_keys))) return -1;

    // top level
    if (get_string(c, root, "", "name", 1, cfg->name, sizeof cfg->name)) return -1;
    if (cfg->name[0] == '\0') return fail(c, "name", "must not be empty");
    if (check_one_line(c, "name", cfg->name)) return -1;
    if (check_plain_name(c, "name", cfg->name)) return -1;
    if (get_string(c, root, "", "description", 0, cfg->description, sizeof cfg->description))
        return -1;
    if (check_one_line(c, "description", cfg->description)) return -1;

    // data
    choice = 0;
    if (find(c, data, "data", "dataset", 1, &item)) return -1;
    if (get_choice(c, data, "data", "dataset", dataset_names, COUNT(dataset_names), &choice))
        return -1;
    copy_string(cfg->data.dataset, sizeof cfg->data.dataset, dataset_names[choice]);
    if (parse_data_source(cfg, data, c)) return -1;
    choice = BINARIZE_NONE;
    if (get_choice(c, data, "data", "binarize", binarize_names, COUNT(binarize_names), &choice))
        return -1;
    cfg->data.binarize = (Binarize)choice;
    cfg->data.train_limit = 0;
    if (get_int(c, data, "data", "train_limit", 0, 0, INT_MAX, &cfg->data.train_limit)) return -1;
    cfg->data.test_limit = 0;
    if (get_int(c, data, "data", "test_limit", 0, 0, INT_MAX, &cfg->data.test_limit)) return -1;
    cfg->data.validation = 0.0;
    if (get_number(c, data, "data", "validation", 0, &cfg->data.validation)) return -1;
    if (!(cfg->data.validation >= 0.0 && cfg->data.validation <= 0.5)) {
        char text[64];
        format_double(text, sizeof text, cfg->data.validation);
        return fail(c, "data.validation", "must be a fraction of the training set in [0, 0.5], got %s", text);
    }

    // model
    if (find(c, model, "model", "kind", 1, &item)) return -1;
    choice = MODEL_VAE;
    const char *kind_names[MODEL_KIND_COUNT];   // model_kind.h's table
    for (int k = 0; k < MODEL_KIND_COUNT; k++) kind_names[k] = model_kind_name((ModelKind)k);
    if (get_choice(c, model, "model", "kind", kind_names, MODEL_KIND_COUNT, &choice)) return -1;
    cfg->model.kind = (ModelKind)choice;
    if (parse_input_shape(cfg, model, c)) return -1;
    const int shape_dim = cfg->model.input_dim;   // (when model.input_shape is given)
    // said before the layer lists are built against the shape: their messages would compare
    // the shape with itself
    const cJSON *given_dim = cJSON_GetObjectItemCaseSensitive(model, "input_dim");
    if (cfg->model.input_shape[0] && cJSON_IsNumber(given_dim) && given_dim->valuedouble != shape_dim)
        return input_dim_conflict(cfg, c, given_dim->valuedouble, shape_dim);
    if (model_kind_autoregressive(cfg->model.kind)) {
        if (parse_autoregressive_model(cfg, model, c)) return -1;
    } else if (cfg->model.kind == MODEL_GAN) {
        if (parse_gan_model(cfg, model, c)) return -1;
    } else if (parse_latent_model(cfg, model, c)) {
        return -1;
    }
    if (cfg->model.input_shape[0] && cfg->model.input_dim != shape_dim)
        return input_dim_conflict(cfg, c, cfg->model.input_dim, shape_dim);

    // loss (the whole section is optional; a gan has none)
    if (cfg->model.kind == MODEL_GAN && loss)
        return fail(c, "loss", "kind \"gan\" has no loss section: its losses are the non-saturating GAN's binary "
                    "cross-entropies from logits (model.label_smoothing softens the real targets)");
    cfg->loss.reconstruction = REC_BCE;
    cfg->loss.reduction = REDUCTION_SUM;
    cfg->loss.w_rec = 1.0;
    cfg->loss.w_kl = 1.0;
    if (loss) {
        choice = REC_BCE;
        if (get_choice(c, loss, "loss", "reconstruction", reconstruction_names,
                       COUNT(reconstruction_names), &choice))
            return -1;
        cfg->loss.reconstruction = (ReconstructionKind)choice;
        choice = REDUCTION_SUM;
        if (get_choice(c, loss, "loss", "reduction", reduction_names, COUNT(reduction_names),
                       &choice))
            return -1;
        cfg->loss.reduction = (Reduction)choice;
        if (get_number(c, loss, "loss", "w_rec", 0, &cfg->loss.w_rec)) return -1;
        if (get_number(c, loss, "loss", "w_kl", 0, &cfg->loss.w_kl)) return -1;
        if (get_number(c, loss, "loss", "kl_warmup_epochs", 0, &cfg->loss.kl_warmup_epochs))
            return -1;
        if (get_number(c, loss, "loss", "free_bits", 0, &cfg->loss.free_bits)) return -1;
        const cJSON *capacity;
        if (get_section_at(c, loss, "loss", "capacity", 0, &capacity)) return -1;
        if (capacity) {
            if (check_keys(c, capacity, "loss.capacity", capacity_keys, COUNT(capacity_keys)))
                return -1;
            cfg->loss.has_capacity = true;
            if (get_number(c, capacity, "loss.capacity", "max_nats", 1, &cfg->loss.capacity_max_nats))
                return -1;
            if (get_number(c, capacity, "loss.capacity", "epochs", 1, &cfg->loss.capacity_epochs))
                return -1;
            if (get_number(c, capacity, "loss.capacity", "gamma", 1, &cfg->loss.capacity_gamma))
                return -1;
        }
    }
    char text[64];
    if (cfg->loss.kl_warmup_epochs < 0) {
        format_double(text, sizeof text, cfg->loss.kl_warmup_epochs);
        return fail(c, "loss.kl_warmup_epochs", "must be >= 0, got %s", text);
    }
    if (cfg->loss.free_bits < 0) {
        format_double(text, sizeof text, cfg->loss.free_bits);
        return fail(c, "loss.free_bits", "must be >= 0, got %s", text);
    }
    if (cfg->loss.has_capacity) {
        if (cfg->loss.capacity_max_nats < 0) {
            format_double(text, sizeof text, cfg->loss.capacity_max_nats);
            return fail(c, "loss.capacity.max_nats", "must be >= 0, got %s", text);
        }
        if (!(cfg->loss.capacity_epochs > 0)) {
            format_double(text, sizeof text, cfg->loss.capacity_epochs);
            return fail(c, "loss.capacity.epochs", "must be > 0, got %s", text);
        }
        if (cfg->loss.capacity_gamma < 0) {
            format_double(text, sizeof text, cfg->loss.capacity_gamma);
            return fail(c, "loss.capacity.gamma", "must be >= 0, got %s", text);
        }
        if (cfg->loss.free_bits > 0)
            return fail(c, "loss.free_bits", "cannot be combined with loss.capacity");
        // the capacity objective gamma |KL - C| replaces w_kl KL, and C's own ramp the warm-up
        if (cfg->loss.kl_warmup_epochs > 0)
            return fail(c, "loss.kl_warmup_epochs", "cannot be combined with loss.capacity (its C ramps up from 0 "
                        "over capacity.epochs instead)");
        if (cfg->loss.w_kl != 1.0) {
            format_double(text, sizeof text, cfg->loss.w_kl);
            return fail(c, "loss.w_kl", "is %s, but loss.capacity weighs the KL by capacity.gamma instead "
                        "(gamma |KL - C|): leave w_kl at 1", text);
        }
    }
    if (cfg->model.kind == MODEL_AAE && loss) {
        static const char *const kl_keys[] = {"w_kl", "kl_warmup_epochs", "capacity", "free_bits"};
        for (int k = 0; k < COUNT(kl_keys); k++)
            if (cJSON_GetObjectItemCaseSensitive(loss, kl_keys[k])) {
                char path[64];
                snprintf(path, sizeof path, "loss.%s", kl_keys[k]);
                return fail(c, path, "an adversarial autoencoder has no KL term: a discriminator on z makes q(z) "
                            "match model.prior");
            }
    }
    if ((cfg->model.kind == MODEL_VQ_VAE || model_kind_autoregressive(cfg->model.kind)) && loss) {
        static const char *const kl_keys[] = {"w_kl", "kl_warmup_epochs", "capacity", "free_bits"};
        for (int k = 0; k < COUNT(kl_keys); k++)
            if (cJSON_GetObjectItemCaseSensitive(loss, kl_keys[k])) {
                char path[64];
                snprintf(path, sizeof path, "loss.%s", kl_keys[k]);
                if (model_kind_autoregressive(cfg->model.kind))
                    return fail(c, path, "kind \"%s\" has no KL term (its loss is the exact -log p(x), the sum "
                                "of the per-pixel Bernoulli terms)", model_kind_name(cfg->model.kind));
                return fail(c, path, "a VQ-VAE has no KL term (its loss is rec + ||sg[z_e] - e||^2 + beta "
                            "||z_e - sg[e]||^2; beta is model.codebook.beta)");
            }
    }
    if (model_kind_autoregressive(cfg->model.kind)) {   // the loss is the exact NLL: sum of per-pixel BCE
        const char *kind = model_kind_name(cfg->model.kind);
        if (cfg->loss.reconstruction != REC_BCE)
            return fail(c, "loss.reconstruction", "kind \"%s\" is trained on its exact -log p(x): only \"bce\"", kind);
        if (cfg->loss.reduction != REDUCTION_SUM)
            return fail(c, "loss.reduction", "kind \"%s\" is trained on its exact -log p(x): only \"sum\" "
                        "(nats per image)", kind);
        if (cfg->model.prior_of[0] && cfg->data.binarize != BINARIZE_NONE)
            return fail(c, "data.binarize", "a prior over a VQ-VAE's codes reads the images as the VQ-VAE does: "
                        "only \"none\"");
        if (!cfg->model.prior_of[0] && cfg->data.binarize == BINARIZE_NONE)
            return fail(c, "data.binarize", "kind \"%s\" models binary pixels: set \"static\" or "
                        "\"dynamic\" (the test set is binarized once, seeded, either way)", kind);
    }
    if (!model_kind_info(cfg->model.kind)->gaussian_posterior &&   // (the other kinds' loss keys: refused above)
        (cfg->loss.has_capacity || cfg->loss.free_bits > 0 || cfg->loss.kl_warmup_epochs > 0))
        return fail(c, "loss", "KL schedules (kl_warmup_epochs, capacity, free_bits) need a "
                               "variational model, got kind \"%s\"", model_kind_name(cfg->model.kind));
    if (cfg->loss.w_rec < 0) {
        format_double(text, sizeof text, cfg->loss.w_rec);
        return fail(c, "loss.w_rec", "must be >= 0, got %s", text);
    }
    if (cfg->loss.w_kl < 0) {
        format_double(text, sizeof text, cfg->loss.w_kl);
        return fail(c, "loss.w_kl", "must be >= 0, got %s", text);
    }
    if (check_float32(c, "loss.w_rec", cfg->loss.w_rec) || check_float32(c, "loss.w_kl", cfg->loss.w_kl) ||
        check_float32(c, "loss.free_bits", cfg->loss.free_bits))
        return -1;
    // an objective that is 0 whatever the weights trains nothing: refused, not run
    if (!model_kind_info(cfg->model.kind)->second && !model_kind_autoregressive(cfg->model.kind) &&
        cfg->loss.w_rec == 0)
        return fail(c, "loss.w_rec", "is 0, and an autoencoder's objective is w_rec rec alone: it would be 0 and "
                    "nothing would train");
    if (model_kind_info(cfg->model.kind)->gaussian_posterior && cfg->loss.w_rec == 0 &&
        cfg->loss.w_kl == 0 && !cfg->loss.has_capacity)
        return fail(c, "loss", "w_rec and w_kl are both 0: the objective w_rec rec + w_kl KL would be 0 and nothing "
                    "would train");
    if (model_kind_info(cfg->model.kind)->gaussian_posterior && cfg->loss.w_rec == 0 &&
        cfg->loss.has_capacity && cfg->loss.capacity_gamma == 0)
        return fail(c, "loss", "w_rec and capacity.gamma are both 0: the objective w_rec rec + gamma |KL - C| would "
                    "be 0 and nothing would train");
    if (model_kind_autoregressive(cfg->model.kind) && cfg->loss.w_rec == 0)
        return fail(c, "loss.w_rec", "is 0, and kind \"%s\" trains w_rec (-log p(x)) alone: it would be 0 and "
                    "nothing would train", model_kind_name(cfg->model.kind));
    if (cfg->model.kind == MODEL_VQ_VAE && cfg->loss.w_rec == 0 && cfg->model.codebook.ema &&
        cfg->model.codebook.beta == 0)
        return fail(c, "loss", "w_rec is 0 with model.codebook.beta 0 and the ema update: the encoder and decoder "
                    "would get no gradient (only the codebook's averages would move)");
    if (cfg->loss.has_capacity &&
        (check_float32(c, "loss.capacity.max_nats", cfg->loss.capacity_max_nats) ||
         check_float32(c, "loss.capacity.epochs", cfg->loss.capacity_epochs) ||
         check_float32(c, "loss.capacity.gamma", cfg->loss.capacity_gamma)))
        return -1;
    if (check_float32(c, "loss.kl_warmup_epochs", cfg->loss.kl_warmup_epochs)) return -1;
    if (cfg->loss.reconstruction == REC_BCE && cfg->model.output != OUTPUT_BERNOULLI)
        return fail(c, "loss.reconstruction",
                    "\"bce\" needs model.output \"bernoulli\" (got \"%s\"); use \"mse\" with "
                    "a gaussian output",
                    output_names[cfg->model.output]);

    // train
    if (get_int(c, train, "train", "epochs", 1, 0, INT_MAX, &cfg->train.epochs)) return -1;
    if (get_int(c, train, "train", "batch_size", 1, 1, MAX_BATCH, &cfg->train.batch_size))
        return -1;
    choice = 0;
    if (get_choice(c, train, "train", "optimizer", optimizer_names, COUNT(optimizer_names),
                   &choice))
        return -1;
    copy_string(cfg->train.optimizer, sizeof cfg->train.optimizer, optimizer_names[choice]);
    cfg->train.weight_decay = 0.0;
    if (get_number(c, train, "train", "weight_decay", 0, &cfg->train.weight_decay)) return -1;
    if (!(cfg->train.weight_decay >= 0.0)) {
        format_double(text, sizeof text, cfg->train.weight_decay);
        return fail(c, "train.weight_decay", "must be >= 0, got %s", text);
    }
    if (check_float32(c, "train.weight_decay", cfg->train.weight_decay)) return -1;
    cfg->train.momentum = 0.0;
    if (get_number(c, train, "train", "momentum", 0, &cfg->train.momentum)) return -1;
    if (!(cfg->train.momentum >= 0.0 && cfg->train.momentum < 1.0)) {
        format_double(text, sizeof text, cfg->train.momentum);
        return fail(c, "train.momentum", "must be in [0, 1), got %s", text);
    }
    if (check_float32(c, "train.momentum", cfg->train.momentum) ||
        check_below_one_float32(c, "train.momentum", cfg->train.momentum, "SGD"))
        return -1;
    cfg->train.grad_clip = 0.0;
    if (get_number(c, train, "train", "grad_clip", 0, &cfg->train.grad_clip)) return -1;
    if (!(cfg->train.grad_clip >= 0.0)) {
        format_double(text, sizeof text, cfg->train.grad_clip);
        return fail(c, "train.grad_clip", "must be >= 0 (a maximum gradient norm; 0 = off), got %s", text);
    }
    if (check_float32(c, "train.grad_clip", cfg->train.grad_clip)) return -1;
    if (cfg->train.momentum > 0.0 && strcmp(cfg->train.optimizer, "sgd") != 0)
        return fail(c, "train.momentum", "is SGD's; optimizer \"%s\" has beta1 instead", cfg->train.optimizer);
    if (get_number(c, train, "train", "lr", 1, &cfg->train.lr)) return -1;
    if (!(cfg->train.lr > 0)) {
        format_double(text, sizeof text, cfg->train.lr);
        return fail(c, "train.lr", "must be > 0, got %s", text);
    }
    if (check_float32(c, "train.lr", cfg->train.lr)) return -1;
    cfg->train.seed = 1;
    if (find(c, train, "train", "seed", 0, &item)) return -1;
    if (item) {
        double v = 0.0;
        if (check_integer(c, item, "train.seed", 0, MAX_SEED, &v)) return -1;
        cfg->train.seed = (uint64_t)v;
    }
    cfg->train.beta1 = 0.9;
    if (get_number(c, train, "train", "beta1", 0, &cfg->train.beta1)) return -1;
    if (!(cfg->train.beta1 >= 0 && cfg->train.beta1 < 1)) {
        format_double(text, sizeof text, cfg->train.beta1);
        return fail(c, "train.beta1", "must be in [0, 1), got %s", text);
    }
    if (check_float32(c, "train.beta1", cfg->train.beta1) ||
        check_below_one_float32(c, "train.beta1", cfg->train.beta1, "Adam"))
        return -1;
    cfg->train.beta2 = 0.999;
    if (get_number(c, train, "train", "beta2", 0, &cfg->train.beta2)) return -1;
    if (!(cfg->train.beta2 >= 0 && cfg->train.beta2 < 1)) {
        format_double(text, sizeof text, cfg->train.beta2);
        return fail(c, "train.beta2", "must be in [0, 1), got %s", text);
    }
    if (check_float32(c, "train.beta2", cfg->train.beta2) ||
        check_below_one_float32(c, "train.beta2", cfg->train.beta2, "Adam"))
        return -1;
    cfg->train.adam_eps = 1e-8;
    if (get_number(c, train, "train", "adam_eps", 0, &cfg->train.adam_eps)) return -1;
    if (!(cfg->train.adam_eps > 0)) {
        format_double(text, sizeof text, cfg->train.adam_eps);
        return fail(c, "train.adam_eps", "must be > 0, got %s", text);
    }
    if (check_float32(c, "train.adam_eps", cfg->train.adam_eps)) return -1;
    cfg->train.log_interval = 100;
    if (get_int(c, train, "train", "log_interval", 0, 1, INT_MAX, &cfg->train.log_interval))
        return -1;
    cfg->train.early_stopping = 0;
    if (get_int(c, train, "train", "early_stopping", 0, 0, 1000000, &cfg->train.early_stopping)) return -1;
    if (model_kind_info(cfg->model.kind)->adversarial && cfg->data.validation <= 0.0)
        return fail(c, "data.validation", "kind \"%s\" chooses its Parzen window's sigma on a validation split "
                    "carved from the training set: set it (e.g. 0.1)", model_kind_name(cfg->model.kind));
    if (model_kind_info(cfg->model.kind)->adversarial && cfg->train.grad_clip > 0.0)
        return fail(c, "train.grad_clip", "is not supported for kind \"%s\" (several optimizers over parameter "
                    "regions)", model_kind_name(cfg->model.kind));
    if (cfg->model.kind == MODEL_GAN && cfg->train.early_stopping > 0)
        return fail(c, "train.early_stopping", "kind \"gan\" has no validation loss to watch (its discriminator's "
                    "loss going down is not the generator getting better)");
    if (cfg->train.early_stopping > 0 && cfg->data.validation <= 0.0)
        return fail(c, "train.early_stopping", "watches the validation loss: set data.validation (e.g. 0.1)");
    choice = LR_CONSTANT;
    if (get_choice(c, train, "train", "lr_schedule", lr_schedule_names, COUNT(lr_schedule_names),
                   &choice))
        return -1;
    cfg->train.lr_schedule = (LrSchedule)choice;
    cfg->train.lr_step_epochs = 10;
    if (get_int(c, train, "train", "lr_step_epochs", 0, 1, 1000000, &cfg->train.lr_step_epochs)) return -1;
    cfg->train.lr_gamma = 0.1;
    if (get_number(c, train, "train", "lr_gamma", 0, &cfg->train.lr_gamma)) return -1;
    if (!(cfg->train.lr_gamma > 0.0 && cfg->train.lr_gamma <= 1.0)) {
        format_double(text, sizeof text, cfg->train.lr_gamma);
        return fail(c, "train.lr_gamma", "must be in (0, 1], got %s", text);
    }
    cfg->train.lr_min = 0.0;
    if (get_number(c, train, "train", "lr_min", 0, &cfg->train.lr_min)) return -1;
    if (!(cfg->train.lr_min >= 0.0 && cfg->train.lr_min < cfg->train.lr)) {
        format_double(text, sizeof text, cfg->train.lr_min);
        return fail(c, "train.lr_min", "must be in [0, train.lr), got %s", text);
    }
    if (check_float32(c, "train.lr_min", cfg->train.lr_min)) return -1;
    if (check_float32(c, "train.lr_gamma", cfg->train.lr_gamma)) return -1;
    // a setting the chosen schedule does not read would be ignored silently
    const char *schedule_name = lr_schedule_names[cfg->train.lr_schedule];
    if (cfg->train.lr_schedule != LR_STEP && cfg->train.lr_step_epochs != 10)
        return fail(c, "train.lr_step_epochs", "is read only by lr_schedule \"step\" (this config's is \"%s\")",
                    schedule_name);
    if (cfg->train.lr_schedule != LR_STEP && cfg->train.lr_gamma != 0.1)
        return fail(c, "train.lr_gamma", "is read only by lr_schedule \"step\" (this config's is \"%s\")",
                    schedule_name);
    if (cfg->train.lr_schedule != LR_COSINE && cfg->train.lr_min != 0.0)
        return fail(c, "train.lr_min", "is read only by lr_schedule \"cosine\" (this config's is \"%s\")",
                    schedule_name);
    cfg->train.warmup_steps = 0;
    if (get_int(c, train, "train", "warmup_steps", 0, 0, INT_MAX, &cfg->train.warmup_steps)) return -1;
    cfg->train.full_epochs = 0;
    if (get_int(c, train, "train", "full_epochs", 0, 0, INT_MAX, &cfg->train.full_epochs))
        return -1;
    choice = PRECISION_FP32;
    if (get_choice(c, train, "train", "precision", precision_names, COUNT(precision_names), &choice))
        return -1;
    cfg->train.precision = (Precision)choice;
    if (cfg->train.precision == PRECISION_BF16)
        return fail(c, "train.precision", "\"bf16\" is not implemented yet; use \"fp32\" or \"tf32\"");
    choice = EPSILON_FUSED;
    if (get_choice(c, train, "train", "epsilon", epsilon_names, COUNT(epsilon_names), &choice))
        return -1;
    cfg->train.epsilon = (EpsilonMode)choice;
    cfg->train.cuda_graph = true;
    if (get_bool(c, train, "train", "cuda_graph", &cfg->train.cuda_graph)) return -1;
    cfg->train.epoch_images = true;
    if (get_bool(c, train, "train", "epoch_images", &cfg->train.epoch_images)) return -1;
    cfg->train.epoch_images_every = 1;
    if (get_int(c, train, "train", "epoch_images_every", 0, 1, 1000000, &cfg->train.epoch_images_every)) return -1;

    // eval (optional section)
    cfg->eval.iw_samples = 0;
    cfg->eval.iw_examples = 0;
    cfg->eval.iw_batch = CONFIG_DEFAULT_IW_BATCH;
    cfg->eval.parzen_samples = 10000;
    cfg->eval.parzen_examples = 0;
    if (eval) {
        if (get_int(c, eval, "eval", "parzen_samples", 0, 1, 1000000, &cfg->eval.parzen_samples)) return -1;
        if (get_int(c, eval, "eval", "parzen_examples", 0, 0, INT_MAX, &cfg->eval.parzen_examples)) return -1;
        if (!model_kind_info(cfg->model.kind)->adversarial &&
            (cJSON_GetObjectItemCaseSensitive(eval, "parzen_samples") ||
                                             cJSON_GetObjectItemCaseSensitive(eval, "parzen_examples")))
            return fail(c, "eval", "parzen_samples and parzen_examples are the Parzen-window estimate of kinds "
                        "\"gan\" and \"aae\" (got \"%s\")", model_kind_name(cfg->model.kind));
        if (get_int(c, eval, "eval", "iw_samples", 0, 0, 1000000, &cfg->eval.iw_samples)) return -1;
        if (get_int(c, eval, "eval", "iw_examples", 0, 0, INT_MAX, &cfg->eval.iw_examples)) return -1;
        if (get_int(c, eval, "eval", "iw_batch", 0, 1, MAX_IW_BATCH, &cfg->eval.iw_batch)) return -1;
    }
    // the importance-weighted bound needs a likelihood: refuse now, not after training
    if (cfg->eval.iw_samples > 0 && model_kind_autoregressive(cfg->model.kind))
        return fail(c, "eval.iw_samples", "kind \"%s\" has an exact -log p(x) (its test loss); nothing to "
                    "estimate", model_kind_name(cfg->model.kind));
    if (cfg->eval.iw_samples > 0 && !model_kind_info(cfg->model.kind)->gaussian_posterior)
        return fail(c, "eval.iw_samples", "needs a variational model (kind vae or cvae), got kind \"%s\"",
                    model_kind_name(cfg->model.kind));
    if (cfg->eval.iw_samples > 0 && cfg->loss.reconstruction == REC_MSE &&
        cfg->model.output == OUTPUT_BERNOULLI)
        return fail(c, "eval.iw_samples", "needs a decoder likelihood: loss.reconstruction \"bce\", "
                                          "or \"mse\" with model.output \"gaussian\"");

    // device
    choice = DEVICE_AUTO;
    if (get_choice(c, root, "", "device", device_names, COUNT(device_names), &choice)) return -1;
    cfg->device = (DeviceChoice)choice;
    return 0;
}

// ----------------------------------------------------------------------------
// --set overrides, applied to the parsed tree before validation

// The line and column (from 1, a column per byte) of `where` in json.
static void line_and_column(const char *json, const char *where, int *line, int *column) {
    *line = 1;
    *column = 1;
    for (const char *p = json; p < where; p++) {
        if (*p == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

static int apply_override(cJSON *root, const char *text, char *err, size_t errlen) {
    const char *eq = strchr(text, '=');
    if (!eq) return set_error(err, errlen, "--set %s: expected key.path=value", text);
    size_t path_len = (size_t)(eq - text);
    if (path_len == 0) return set_error(err, errlen, "--set %s: empty key path", text);
    char path[256];
    if (path_len >= sizeof path) return set_error(err, errlen, "--set %s: key path too long", text);
    memcpy(path, text, path_len);
    path[path_len] = '\0';

    // check every segment of the path is non-empty before touching the tree
    for (size_t i = 0; i <= path_len; i++) {
        int at_end = (i == path_len || path[i] == '.');
        int empty = (i == 0 || path[i - 1] == '.');
        if (at_end && empty)
            return set_error(err, errlen, "--set %s: empty key in path \"%s\"", text, path);
    }

    // the value: JSON when it parses as JSON, otherwise the plain string
    const char *value_text = eq + 1;
    cJSON *value = cJSON_ParseWithOpts(value_text, NULL, 1);
    // a value that starts and ends like an array, an object or a quoted string was meant as
    // JSON: broken, it is an error (taken as a plain string it would fail later, blaming the file)
    // (a plain string may start with one of them: "[WIP] run 3" is a description, not JSON)
    const char *trimmed = value_text + strspn(value_text, " \t");
    size_t trimmed_len = strlen(trimmed);
    while (trimmed_len > 0 && (trimmed[trimmed_len - 1] == ' ' || trimmed[trimmed_len - 1] == '\t')) trimmed_len--;
    const char first = trimmed[0], last = trimmed_len ? trimmed[trimmed_len - 1] : '\0';
    int bad_length = 0;
    const long bad_number = value ? json_first_bad_number(value_text, &bad_length) : -1;
    if (bad_number >= 0 && (first == '[' || first == '{')) {
        cJSON_Delete(value);
        return set_error(err, errlen, "--set %s: %.*s is not a JSON number (no leading zeros, digits on both sides "
                         "of a '.')", path, bad_length > 40 ? 40 : bad_length, value_text + bad_number);
    }
    if (bad_number >= 0) {   // a lone 01 or 1. is not JSON: a plain string, as .5 and +1 are
        cJSON_Delete(value);
        value = NULL;
    }
    const long control = value ? json_raw_control_character(value_text) : -1;
    if (control >= 0) {
        cJSON_Delete(value);
        return set_error(err, errlen, "--set %s: a raw control character (0x%02x) in a string of the value: JSON needs it "
                         "escaped (\\t, \\n, \\u%04x)", path, (unsigned char)value_text[control],
                         (unsigned char)value_text[control]);
    }
    if (!value && trimmed_len >= 2 &&
        ((first == '[' && last == ']') || (first == '{' && last == '}') || (first == '"' && last == '"')))
        return set_error(err, errlen, "--set %s: the value is not valid JSON (an array, object or quoted string "
                         "must be JSON; a plain string needs no quotes)", path);
    if (!value) value = cJSON_CreateString(value_text);
    if (!value) return set_error(err, errlen, "--set %s: out of memory", text);

    // walk (creating missing objects) to the parent of the last segment; null removes the key
    const bool remove = cJSON_IsNull(value);
    cJSON *obj = root;
    char *segment = path;
    for (;;) {
        char *dot = strchr(segment, '.');
        if (!dot) break;
        *dot = '\0';
        cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, segment);
        if (!next && remove) {
            cJSON_Delete(value);
            return set_error(err, errlen, "--set %s: null removes a key, and the config has no \"%s\"", text, path);
        }
        if (!next) {
            next = cJSON_CreateObject();
            if (!next || !cJSON_AddItemToObject(obj, segment, next)) {
                cJSON_Delete(next);
                cJSON_Delete(value);
                return set_error(err, errlen, "--set %s: out of memory", text);
            }
        } else if (!cJSON_IsObject(next)) {
            cJSON_Delete(value);
            return set_error(err, errlen, "--set %s: \"%s\" is %s, not an object", text, path,
                             type_name(next));
        }
        *dot = '.';
        obj = next;
        segment = dot + 1;
    }
    if (remove) {
        cJSON_Delete(value);
        if (!cJSON_GetObjectItemCaseSensitive(obj, segment))
            return set_error(err, errlen, "--set %s: null removes a key, and the config has no \"%s\"", text, path);
        cJSON_DeleteItemFromObjectCaseSensitive(obj, segment);
        return 0;
    }
    int ok;
    if (cJSON_GetObjectItemCaseSensitive(obj, segment))
        ok = cJSON_ReplaceItemInObjectCaseSensitive(obj, segment, value);
    else
        ok = cJSON_AddItemToObject(obj, segment, value);
    if (!ok) {
        cJSON_Delete(value);
        return set_error(err, errlen, "--set %s: out of memory", text);
    }
    return 0;
}

// ----------------------------------------------------------------------------
// public API

static int syntax_error(const Ctx *c, const char *json, const char *where) {
    if (!where) where = json;
    int line, column;
    line_and_column(json, where, &line, &column);
    size_t offset = (size_t)(where - json);
    if (*where == '\0')
        return set_error(c->err, c->errlen,
                         "%s: line %d, column %d (byte %zu): invalid JSON near end of input",
                         c->source, line, column, offset);
    int n = 0;
    while (n < 24 && where[n] && where[n] != '\n' && where[n] != '\r') n++;
    int depth = 0;   // cJSON stops at CJSON_NESTING_LIMIT levels: say so rather than "invalid"
    bool in_string = false;
    for (const char *p = json; p < where; p++) {
        if (in_string) {
            if (*p == '\\' && p + 1 < where) p++;
            else if (*p == '"') in_string = false;
        } else if (*p == '"') {
            in_string = true;
        } else {
            depth += (*p == '[' || *p == '{') - (*p == ']' || *p == '}');
        }
    }
    if (depth >= CJSON_NESTING_LIMIT)
        return set_error(c->err, c->errlen, "%s: line %d, column %d (byte %zu): nested more than %d levels deep",
                         c->source, line, column, offset, CJSON_NESTING_LIMIT);
    // the commonest slip, a comma before a closing '}' or ']': cJSON stops somewhere after it
    // (past the closing bracket, or at the end of a one-line text), so it is named where it is
    in_string = false;
    for (const char *p = json; p <= where && *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_string = false;
        } else if (*p == '"') {
            in_string = true;
        } else if (*p == ',') {
            const char *next = p + 1;
            while (*next == ' ' || *next == '\t' || *next == '\n' || *next == '\r') next++;
            if (*next == '}' || *next == ']') {
                line_and_column(json, p, &line, &column);
                return set_error(c->err, c->errlen, "%s: line %d, column %d (byte %zu): a comma before '%c' (JSON "
                                 "allows no trailing comma)", c->source, line, column, (size_t)(p - json), *next);
            }
        }
    }
    return set_error(c->err, c->errlen, "%s: line %d, column %d (byte %zu): invalid JSON near '%.*s'",
                     c->source, line, column, offset, n, where);
}

// ---- "base": config inheritance ------------------------------------------------
// A config may name another as its base ("base": "vae_dim2.json", relative to
// its own folder): the base is read (recursively, at most MAX_BASE_DEPTH deep)
// and this config's keys are merged over it: objects merge key by key, null removes
// the base's key (as in a JSON merge patch, RFC 7396; a null with no key under it stays, and
// validation refuses it), any other value (numbers, strings, arrays) replaces the base's.
#define MAX_BASE_DEPTH 8

static void merge_over(cJSON *base, const cJSON *over) {
    const cJSON *item;
    cJSON_ArrayForEach(item, over) {
        cJSON *existing = cJSON_GetObjectItemCaseSensitive(base, item->string);
        if (existing && cJSON_IsNull(item)) {
            cJSON_DeleteItemFromObjectCaseSensitive(base, item->string);
            continue;
        }
        if (existing && cJSON_IsObject(existing) && cJSON_IsObject(item)) {
            merge_over(existing, item);
            continue;
        }
        cJSON *copy = cJSON_Duplicate(item, 1);
        if (existing) cJSON_ReplaceItemInObjectCaseSensitive(base, item->string, copy);
        else cJSON_AddItemToObject(base, item->string, copy);
    }
}

// Parses json (named source, in folder dir) with its bases merged under it.
// Returns the merged object, or NULL with err.
// JSON text is UTF-8, and a \u0000 escape would cut a string short silently.
int config_check_json_text(const char *json, const char *source, char *err, size_t errlen) {
    long bad = utf8_first_invalid(json);
    if (bad >= 0)
        return set_error(err, errlen, "%s: byte %ld: not valid UTF-8 (JSON text must be UTF-8; "
                         "save the file as UTF-8)", source, bad);
    const long nul = json_escaped_nul(json, strlen(json));
    if (nul >= 0)
        return set_error(err, errlen, "%s: byte %ld: \\u0000 (a NUL character) is not allowed in a string",
                         source, nul);
    return 0;
}

// A key twice in one object: refused in each file before files are merged
// (merging would keep one of them silently).
static int check_duplicates(const Ctx *c, const cJSON *obj, const char *path) {
    for (const cJSON *child = obj->child; child; child = child->next) {
        char child_path[256];
        join_path(child_path, sizeof child_path, path, child->string);
        for (const cJSON *prev = obj->child; prev != child; prev = prev->next)
            if (strcmp(prev->string, child->string) == 0)
                return fail(c, child_path, "duplicate key");
        if (cJSON_IsObject(child) && check_duplicates(c, child, child_path) != 0) return -1;
    }
    return 0;
}

// bases (out): the base files read, " over a.json over b.json", for error messages.
// from_file: the text is a file's, whose "base" names another file (dir: the folder it is read
// from, NULL: the working folder); a text that is no file (a checkpoint's stored config, complete)
// may not name one.
static cJSON *parse_with_bases(const char *json, const char *source, bool from_file, const char *dir, int depth,
                               char *bases, size_t baseslen, char *err, size_t errlen) {
    Ctx c = {source, err, errlen};
    if (config_check_json_text(json, source, err, errlen) != 0) return NULL;
    int bad_length = 0;
    const long bad_number = json_first_bad_number(json, &bad_length);
    if (bad_number >= 0) {
        set_error(err, errlen, "%s: byte %ld: %.*s is not a JSON number (no leading zeros, digits on both sides of "
                  "a '.')", source, bad_number, bad_length > 40 ? 40 : bad_length, json + bad_number);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        syntax_error(&c, json, end);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        fail(&c, "top level", "must be a JSON object, got %s", type_name(root));
        cJSON_Delete(root);
        return NULL;
    }
    if (check_duplicates(&c, root, "") != 0) {
        cJSON_Delete(root);
        return NULL;
    }
    const long control = json_raw_control_character(json);
    if (control >= 0) {
        int line, column;
        line_and_column(json, json + control, &line, &column);
        set_error(err, errlen, "%s: line %d, column %d (byte %ld): a raw control character (0x%02x) in a string: JSON "
                  "needs it escaped (\\t, \\n, \\u%04x)", source, line, column, control,
                  (unsigned char)json[control], (unsigned char)json[control]);
        cJSON_Delete(root);
        return NULL;
    }
    cJSON *base_name = cJSON_DetachItemFromObjectCaseSensitive(root, "base");
    if (!base_name) return root;
    cJSON *merged = NULL;
    if (!from_file) {
        char *named = cJSON_PrintUnformatted(base_name);   // (as JSON: escaped, one line)
        fail(&c, "base", "a stored config is complete and names no base config (this one names %s)",
             named ? named : type_name(base_name));
        free(named);
    } else if (!cJSON_IsString(base_name) || !base_name->valuestring[0]) {
        fail(&c, "base", "must be the file name of another config, got %s",
             cJSON_IsString(base_name) ? "an empty string" : type_name(base_name));
    } else if (depth >= MAX_BASE_DEPTH) {
        fail(&c, "base", "more than %d levels of base configs (a cycle?)", MAX_BASE_DEPTH);
    } else {
        char base_path[1024];
        if (base_name->valuestring[0] == '/' || !dir)
            snprintf(base_path, sizeof base_path, "%s", base_name->valuestring);
        else
            snprintf(base_path, sizeof base_path, "%s/%s", dir, base_name->valuestring);
        char why[768];
        size_t size = 0;
        char *text = read_text_file(base_path, &size, why, sizeof why);
        if (!text) {
            fail(&c, "base", "%s", why);
        } else if (strlen(text) != size) {
            set_error(err, errlen, "%s: byte %zu: a NUL byte (a config is JSON text)", base_path, strlen(text));
            free(text);
        } else {
            size_t used = strlen(bases);
            size_t add = strlen(base_path);
            if (used + 6 + add < baseslen) {   // " over " + the name + NUL; a longer chain is cut
                memcpy(bases + used, " over ", 6);
                memcpy(bases + used + 6, base_path, add + 1);
            }
            char base_dir[1024];
            snprintf(base_dir, sizeof base_dir, "%s", base_path);
            char *slash = strrchr(base_dir, '/');
            if (slash) *slash = '\0';
            merged = parse_with_bases(text, base_path, true, slash ? base_dir : NULL, depth + 1, bases, baseslen,
                                      err, errlen);
            free(text);
            if (merged) merge_over(merged, root);
        }
    }
    cJSON_Delete(base_name);
    cJSON_Delete(root);
    return merged;
}

// The length of an override's key path (the text before its '=', all of it without one).
static size_t override_key_length(const char *text) {
    const char *eq = strchr(text, '=');
    return eq ? (size_t)(eq - text) : strlen(text);
}

// "--set K=V", or "--set K=..." for a value over several lines or a long one (the message
// stays one line, and its reason is not pushed out of the buffer).
static void describe_override(char *out, size_t n, const char *override) {
    const size_t key = override_key_length(override);
    if (strpbrk(override, "\r\n") || strlen(override) > 100)
        snprintf(out, n, "--set %.*s=...", (int)(key < 64 ? key : 64), override);
    else
        snprintf(out, n, "--set %s", override);
    for (char *c = out; *c; c++)
        if (*c == '\n' || *c == '\r') *c = '?';   // (a key over several lines: the message stays one line)
}

static int config_from_text_named(Config *cfg, const char *json, const char *source, bool from_file,
                                  const char *dir, const char *const *overrides, int n_overrides,
                                  bool name_overrides, char *err, size_t errlen);

// Whether the config reads with every --set but overrides[skip].
static bool config_reads_without(const char *json, const char *source, bool from_file, const char *dir,
                                 const char *const *overrides, int n_overrides, int skip) {
    const char **others = xmalloc((size_t)n_overrides * sizeof *others);
    int n_others = 0;
    for (int j = 0; j < n_overrides; j++)
        if (j != skip) others[n_others++] = overrides[j];
    Config *trial = xmalloc(sizeof *trial);
    char trial_err[1024];
    const bool reads = config_from_text_named(trial, json, source, from_file, dir, others, n_others, false, trial_err,
                                              sizeof trial_err) == 0;
    free(trial);
    free(others);
    return reads;
}

// The --sets without which (each left out alone) the config reads, described one after another
// into named (empty: none).
static void name_sets_without_which_it_reads(const char *json, const char *source, bool from_file, const char *dir,
                                             const char *const *overrides, int n_overrides, char *named,
                                             size_t named_size) {
    named[0] = '\0';
    for (int i = 0; i < n_overrides; i++) {
        if (!config_reads_without(json, source, from_file, dir, overrides, n_overrides, i)) continue;
        char one[160];
        describe_override(one, sizeof one, overrides[i]);
        size_t used = strlen(named);
        snprintf(named + used, named_size - used, "%s%s", used ? " " : "", one);
    }
}

// A message about a key's value ("SOURCE: a.b[2]: why") whose value came from --set names the
// --set that gave it ("--set a.b=VALUE (over SOURCE): a.b[2]: why"), not the file. Any other
// message about keys ("SOURCE: eval: parzen_samples ... got kind ...", or a key checked against
// another: "SOURCE: model.decoder: its output (1, 28, 28) is not the data's shape" after --set
// model.input_shape=...) names the --sets without which the config reads (each tried left out),
// if any.
static void name_override_in_error(const char *json, bool from_file, const char *dir, const char *const *overrides,
                                   int n_overrides, const char *source, const char *label, char *err,
                                   size_t errlen) {
    const size_t label_length = strlen(label);
    if (strncmp(err, label, label_length) != 0 || strncmp(err + label_length, ": ", 2) != 0) return;
    const char *key = err + label_length + 2;
    char rest[1024], named[1024] = "";
    int matched = -1;   // the last --set of the message's key (or of a section around it)
    for (int i = n_overrides - 1; i >= 0 && matched < 0; i--) {
        const size_t n = override_key_length(overrides[i]);
        if (strncmp(key, overrides[i], n) == 0 && (key[n] == ':' || key[n] == '.' || key[n] == '[')) matched = i;
    }
    if (matched >= 0) {
        // that --set, unless the config still fails without it while it reads without another
        // (--set model.prior_crc32=X beside a --set model.prior_of whose crc32 is not X: the
        // message is prior_of's, the cause the crc32's)
        if (n_overrides > 1 && n_overrides <= 64 && !config_reads_without(json, source, from_file, dir, overrides,
                                                                          n_overrides, matched))
            name_sets_without_which_it_reads(json, source, from_file, dir, overrides, n_overrides, named,
                                             sizeof named);
        if (!named[0]) describe_override(named, sizeof named, overrides[matched]);
        snprintf(rest, sizeof rest, "%s", key);
        snprintf(err, errlen, "%s (over %s): %s", named, label, rest);
        return;
    }
    // (a key a --set spelt with a leading space, " data.dir=x": its section " data" is the key)
    const size_t lead = strspn(key, " "), section_length = lead + strcspn(key + lead, ":.[ ");
    if (key[section_length] == '\0' || !strchr(":.[", key[section_length]) || section_length == lead ||
        n_overrides < 1 || n_overrides > 64)
        return;
    name_sets_without_which_it_reads(json, source, from_file, dir, overrides, n_overrides, named, sizeof named);
    if (!named[0]) {   // no one --set alone: the config reads without them all? then those that give
        Config trial;  // the same error alone over the file (two that each cause it; device=cpu beside
        char trial_err[1024];   // them is not named), else all of them, together
        if (config_from_text_named(&trial, json, source, from_file, dir, NULL, 0, false, trial_err, sizeof trial_err) != 0)
            return;
        for (int pass = 0; pass < 2 && !named[0]; pass++)
            for (int i = 0; i < n_overrides; i++) {
                if (pass == 0 && (config_from_text_named(&trial, json, source, from_file, dir, &overrides[i], 1, false,
                                                         trial_err, sizeof trial_err) == 0 ||
                                  strcmp(trial_err, err) != 0))
                    continue;
                char one[160];
                describe_override(one, sizeof one, overrides[i]);
                size_t used = strlen(named);
                snprintf(named + used, sizeof named - used, "%s%s", used ? " " : "", one);
            }
    }
    snprintf(rest, sizeof rest, "%s", key);
    snprintf(err, errlen, "%s (over %s): %s", named, label, rest);
}

// config_from_string with the folder bases are read from (NULL: the working folder); with
// name_overrides, an error a --set caused names it.
// A --set data.dataset that switches between "files" and a named dataset (mnist, fashion-mnist)
// drops the config's keys of the other kind: data.dir, or files' data.train, test, ... So a
// checkpoint's model reads other data in eval, sample and plot (an MNIST model on your own
// images: its stored data.dir could not be removed), and a config trains on other data, with
// the --sets of the new source alone. (The last --set data.dataset wins, as they apply in order.)
// Likewise a --set data.test (a test set given) drops the config's data.test_fraction (the carve it
// replaces: a checkpoint's effective config always holds one), unless a --set gives that too.
static void drop_other_dataset_keys(cJSON *root, const char *const *overrides, int n_overrides) {
    const char *value = NULL;
    bool test_given = false, fraction_given = false;
    for (int i = 0; i < n_overrides; i++) {
        if (strncmp(overrides[i], "data.dataset=", 13) == 0) value = overrides[i] + 13;
        if (strncmp(overrides[i], "data.test=", 10) == 0)
            test_given = overrides[i][10] != '\0' && strcmp(overrides[i] + 10, "\"\"") != 0;
        if (strncmp(overrides[i], "data.test_fraction=", 19) == 0) fraction_given = true;
    }
    cJSON *data = root ? cJSON_GetObjectItemCaseSensitive(root, "data") : NULL;
    if (data && test_given && !fraction_given) cJSON_DeleteItemFromObjectCaseSensitive(data, "test_fraction");
    const cJSON *stored = data ? cJSON_GetObjectItemCaseSensitive(data, "dataset") : NULL;
    if (!value || !cJSON_IsString(stored)) return;
    const bool to_files = strcmp(value, "files") == 0 || strcmp(value, "\"files\"") == 0;
    if (to_files == (strcmp(stored->valuestring, "files") == 0)) return;
    if (to_files)
        cJSON_DeleteItemFromObjectCaseSensitive(data, "dir");
    else
        for (size_t k = 0; k < COUNT(files_keys); k++) cJSON_DeleteItemFromObjectCaseSensitive(data, files_keys[k]);
}

static int config_from_text_named(Config *cfg, const char *json, const char *source, bool from_file,
                                  const char *dir, const char *const *overrides, int n_overrides,
                                  bool name_overrides, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    Ctx c = {source ? source : "<string>", err, errlen};
    if (!json) return set_error(err, errlen, "%s: no JSON text", c.source);
    char bases[512] = "";
    cJSON *root = parse_with_bases(json, c.source, from_file, dir, 0, bases, sizeof bases, err, errlen);
    if (!root) {
        memset(cfg, 0, sizeof *cfg);
        return -1;
    }
    // a value may come from a base: messages about values name the files merged
    char label[1600];
    if (bases[0]) {
        snprintf(label, sizeof label, "%s (merged%s)", c.source, bases);
        c.source = label;
    }
    drop_other_dataset_keys(root, overrides, n_overrides);
    int rc = 0;
    for (int i = 0; rc == 0 && i < n_overrides; i++) {
        char what[96];
        snprintf(what, sizeof what, "--set %.*s", (int)(override_key_length(overrides[i]) < 64
                                                        ? override_key_length(overrides[i]) : 64), overrides[i]);
        rc = config_check_json_text(overrides[i], what, err, errlen);
        if (rc == 0) rc = apply_override(root, overrides[i], err, errlen);
    }
    if (rc == 0) rc = parse_config(cfg, root, &c);
    cJSON_Delete(root);
    if (rc != 0 && name_overrides)
        name_override_in_error(json, from_file, dir, overrides, n_overrides, source, c.source, err, errlen);

    if (rc != 0) {
        memset(cfg, 0, sizeof *cfg);
        return -1;
    }
    copy_string(cfg->source, sizeof cfg->source, source ? source : "<string>");
    size_t total = 0;
    for (int i = 0; i < n_overrides; i++) total += strlen(overrides[i]) + 1;
    if (total >= sizeof cfg->sets) {   // (errors found later name the --set a key came from)
        memset(cfg, 0, sizeof *cfg);
        return set_error(err, errlen, "--set options: %zu bytes in all, more than the %zu cuvae keeps to name them "
                         "in its messages: put the longest in the config file", total, sizeof cfg->sets - 1);
    }
    for (int i = 0; i < n_overrides; i++) {
        const size_t used = strlen(cfg->sets), add = strlen(overrides[i]);
        memcpy(cfg->sets + used, overrides[i], add);
        for (size_t k = used; k < used + add; k++)   // (outside a JSON string a newline is whitespace;
            if (cfg->sets[k] == '\n') cfg->sets[k] = ' ';   // inside one it was refused)
        memcpy(cfg->sets + used + add, "\n", 2);
    }
    return 0;
}

const char *config_key_origin(const Config *cfg, const char *key, char *buf, size_t n) {
    const size_t key_length = strlen(key);
    const char *found = NULL;
    size_t found_length = 0;
    for (const char *line = cfg->sets; *line;) {   // the last --set of the key wins, as applied
        const size_t length = strcspn(line, "\n");
        const size_t set_key = override_key_length(line) < length ? override_key_length(line) : length;
        const size_t common = set_key < key_length ? set_key : key_length;
        // the same key, one around it (--set train={...}) or one inside it (--set model.encoder[0].out=...)
        if (strncmp(line, key, common) == 0 &&
            (set_key == key_length || (set_key < key_length && (key[set_key] == '.' || key[set_key] == '[')) ||
             (set_key > key_length && (line[key_length] == '.' || line[key_length] == '[')))) {
            found = line;
            found_length = length;
        }
        line += length + (line[length] == '\n');
    }
    if (!found) {
        snprintf(buf, n, "%s", cfg->source);
        return buf;
    }
    char text[1100], named[1200];
    snprintf(text, sizeof text, "%.*s", (int)found_length, found);
    describe_override(named, sizeof named, text);
    snprintf(buf, n, "%s (over %s)", named, cfg->source);
    return buf;
}

static int config_from_text(Config *cfg, const char *json, const char *source, bool from_file, const char *dir,
                            const char *const *overrides, int n_overrides, char *err, size_t errlen) {
    return config_from_text_named(cfg, json, source, from_file, dir, overrides, n_overrides, true, err, errlen);
}

int config_from_string(Config *cfg, const char *json, const char *source,
                       const char *const *overrides, int n_overrides, char *err, size_t errlen) {
    return config_from_text(cfg, json, source, false, NULL, overrides, n_overrides, err, errlen);
}

// config_load, or config_load_stored (from_file false: a config cuvae wrote names no base).
static int config_load_file(Config *cfg, const char *path, bool from_file, const char *const *overrides,
                            int n_overrides, char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    size_t size = 0;
    char *text = read_text_file(path, &size, err, errlen);
    if (!text) return -1;
    if (strlen(text) != size) {
        if (ends_with(path, ".safetensors"))   // a checkpoint given for the config: say so
            set_error(err, errlen, "%s: a checkpoint (.safetensors), not a config: give the JSON config (a run's is "
                      "its config.json)", path);
        else
            set_error(err, errlen, "%s: byte %zu: a NUL byte (a config is JSON text)", path, strlen(text));
        free(text);
        return -1;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    int rc = config_from_text(cfg, text, path, from_file, slash ? dir : NULL, overrides, n_overrides, err, errlen);
    free(text);
    return rc;
}

int config_load(Config *cfg, const char *path, const char *const *overrides, int n_overrides,
                char *err, size_t errlen) {
    return config_load_file(cfg, path, true, overrides, n_overrides, err, errlen);
}

int config_load_stored(Config *cfg, const char *path, const char *const *overrides, int n_overrides,
                       char *err, size_t errlen) {
    return config_load_file(cfg, path, false, overrides, n_overrides, err, errlen);
}

// ----------------------------------------------------------------------------
// config_to_json, on common.c's TextBuffer

static void text_double(TextBuffer *t, double v) {
    if (!isfinite(v)) {  // not valid JSON; only an unvalidated Config gets here
        text_appendf(t, "null");
        return;
    }
    char s[64];
    format_double(s, sizeof s, v);
    text_appendf(t, "%s", s);
}

static void text_widths(TextBuffer *t, const int *widths, int n) {
    text_appendf(t, "[");
    for (int i = 0; i < n; i++) text_appendf(t, "%s%d", i ? ", " : "", widths[i]);
    text_appendf(t, "]");
}

// A layer list in the form get_layer_spec reads: [{"conv2d": 32, "kernel": 4, ...}, ...]
static void text_layers(TextBuffer *t, const LayerSpec *specs, int n) {
    text_appendf(t, "[");
    for (int i = 0; i < n; i++) {
        const LayerSpec *s = &specs[i];
        text_appendf(t, "%s\n      {\"%s\": ", i ? "," : "", s->kind);
        if (s->n_args == 0) {
            // options inside the value: {"batch_norm": {"momentum": 0.1, "eps": 1e-05}}
            text_appendf(t, "{");
            for (int k = 0; k < s->n_options; k++) {
                text_appendf(t, "%s\"%s\": ", k ? ", " : "", s->option_keys[k]);
                text_double(t, s->option_values[k]);
            }
            text_appendf(t, "}}");
            continue;
        }
        if (s->args_list) text_appendf(t, "[");
        for (int k = 0; k < s->n_args; k++) {
            if (k) text_appendf(t, ", ");
            text_double(t, s->args[k]);
        }
        if (s->args_list) text_appendf(t, "]");
        for (int k = 0; k < s->n_options; k++) {
            text_appendf(t, ", \"%s\": ", s->option_keys[k]);
            text_double(t, s->option_values[k]);
        }
        text_appendf(t, "}");
    }
    text_appendf(t, "%s]", n ? "\n    " : "");
}

// The config with the keys a resumed run may change (its length, and the patience of early
// stopping: an early-stopped run continues with train.early_stopping=0) neutralised.
static char *config_without_length(const Config *cfg) {
    Config copy = *cfg;
    copy.train.epochs = 0;
    copy.train.full_epochs = 0;
    copy.train.early_stopping = 0;
    copy.train.epoch_images = true;   // (what is drawn along the way, not what is trained)
    copy.train.epoch_images_every = 1;
    return config_to_json(&copy);
}

int config_same_run(const Config *a, const Config *b, const char *what, const char *advice, char *err,
                    size_t errlen) {
    char *stored = config_without_length(a), *current = config_without_length(b);
    int rc = 0;
    const char *line_start, *current_line;
    const int line = text_first_differing_line(stored, current, &line_start, &current_line);
    if (line > 0) {
        size_t n = strcspn(line_start, "\n");
        rc = set_error(err, errlen, "%s: written by a run with another config (stored line %d: %.*s)%s", what, line,
                       (int)(n > 80 ? 80 : n), line_start, advice);
    }
    free(stored);
    free(current);
    return rc;
}

void config_hide_data_paths(Config *cfg) {
    char *paths[] = {cfg->data.dir, cfg->data.train, cfg->data.test, cfg->data.train_labels, cfg->data.test_labels,
                     cfg->model.prior_of};   // (a prior's data: its VQ-VAE's codes of the images)
    for (size_t k = 0; k < sizeof paths / sizeof *paths; k++)
        if (paths[k][0]) strcpy(paths[k], "(a data path)");
}

char *config_to_json(const Config *cfg) {
    TextBuffer t = {0};

    text_appendf(&t, "{\n  \"name\": ");
    text_append_json_string(&t, cfg->name);
    text_appendf(&t, ",\n  \"description\": ");
    text_append_json_string(&t, cfg->description);

    text_appendf(&t, ",\n  \"data\": {\n    \"dataset\": ");
    text_append_json_string(&t, cfg->data.dataset);
    if (strcmp(cfg->data.dataset, "files") == 0) {
        const char *keys[] = {"train", "test", "train_labels", "test_labels"};
        const char *values[] = {cfg->data.train, cfg->data.test, cfg->data.train_labels, cfg->data.test_labels};
        for (int k = 0; k < 4; k++) {
            if (k > 0 && !values[k][0]) continue;
            text_appendf(&t, ",\n    \"%s\": ", keys[k]);
            text_append_json_string(&t, values[k]);
        }
        text_appendf(&t, ",\n    \"format\": \"%s\"", name_of(format_names, COUNT(format_names), cfg->data.format));
        text_appendf(&t, ",\n    \"layout\": \"%s\"", name_of(layout_names, COUNT(layout_names), cfg->data.layout));
        if (!cfg->data.test[0]) {
            text_appendf(&t, ",\n    \"test_fraction\": ");
            text_double(&t, cfg->data.test_fraction);
        }
    } else {
        text_appendf(&t, ",\n    \"dir\": ");
        text_append_json_string(&t, cfg->data.dir);
    }
    text_appendf(&t, ",\n    \"binarize\": \"%s\"",
                name_of(binarize_names, COUNT(binarize_names), cfg->data.binarize));
    text_appendf(&t, ",\n    \"train_limit\": %d", cfg->data.train_limit);
    text_appendf(&t, ",\n    \"test_limit\": %d", cfg->data.test_limit);
    text_appendf(&t, ",\n    \"validation\": ");
    text_double(&t, cfg->data.validation);
    text_appendf(&t, "\n  }");

    text_appendf(&t, ",\n  \"model\": {\n    \"kind\": \"%s\"",
                model_kind_name(cfg->model.kind));
    text_appendf(&t, ",\n    \"input_dim\": %d", cfg->model.input_dim);
    if (cfg->model.input_shape[0])
        text_appendf(&t, ",\n    \"input_shape\": [%d, %d, %d]", cfg->model.input_shape[0], cfg->model.input_shape[1],
                     cfg->model.input_shape[2]);
    if (model_kind_autoregressive(cfg->model.kind)) {   // one network (a made's widths written out as layers)
        text_appendf(&t, ",\n    \"network\": ");
        text_layers(&t, cfg->model.decoder_layers, cfg->model.n_decoder_layers);
        if (cfg->model.prior_of[0]) {
            text_appendf(&t, ",\n    \"prior_of\": ");
            text_append_json_string(&t, cfg->model.prior_of);
            text_appendf(&t, ",\n    \"prior_crc32\": ");
            text_append_json_string(&t, cfg->model.prior_crc32);
        }
        if (cfg->model.kind == MODEL_MADE) {
            text_appendf(&t, ",\n    \"ordering\": \"%s\"",
                        name_of(ordering_names, COUNT(ordering_names), cfg->model.ordering));
            text_appendf(&t, ",\n    \"masks\": %d", cfg->model.masks);
        }
        text_appendf(&t, ",\n    \"output\": \"bernoulli\"\n  }");
    } else if (cfg->model.kind == MODEL_GAN) {
        text_appendf(&t, ",\n    \"latent_dim\": %d", cfg->model.latent_dim);
        text_appendf(&t, ",\n    \"generator\": ");
        text_layers(&t, cfg->model.decoder_layers, cfg->model.n_decoder_layers);
        text_appendf(&t, ",\n    \"discriminator\": ");
        text_layers(&t, cfg->model.encoder_layers, cfg->model.n_encoder_layers);
        text_appendf(&t, ",\n    \"label_smoothing\": ");
        if (cfg->model.gan.label_smoothing_max > cfg->model.gan.label_smoothing) {
            text_appendf(&t, "[");
            text_double(&t, cfg->model.gan.label_smoothing);
            text_appendf(&t, ", ");
            text_double(&t, cfg->model.gan.label_smoothing_max);
            text_appendf(&t, "]");
        } else
            text_double(&t, cfg->model.gan.label_smoothing);
        text_appendf(&t, ",\n    \"init\": \"%s\"\n  }", cfg->model.gan.dcgan_init ? "dcgan" : "pytorch");
    } else {
        text_appendf(&t, ",\n    \"encoder\": ");
        if (cfg->model.n_encoder_layers > 0) text_layers(&t, cfg->model.encoder_layers, cfg->model.n_encoder_layers);
        else text_widths(&t, cfg->model.encoder, cfg->model.n_encoder);
        text_appendf(&t, ",\n    \"latent_dim\": %d", cfg->model.latent_dim);
        text_appendf(&t, ",\n    \"decoder\": ");
        if (cfg->model.n_decoder_layers > 0) text_layers(&t, cfg->model.decoder_layers, cfg->model.n_decoder_layers);
        else text_widths(&t, cfg->model.decoder, cfg->model.n_decoder);
        if (cfg->model.n_encoder_layers == 0 || cfg->model.n_decoder_layers == 0)
            text_appendf(&t, ",\n    \"activation\": \"%s\"", activation_name(cfg->model.activation));
        text_appendf(&t, ",\n    \"output\": \"%s\"",
                    name_of(output_names, COUNT(output_names), cfg->model.output));
        text_appendf(&t, ",\n    \"condition\": \"%s\"",
                    name_of(condition_names, COUNT(condition_names), cfg->model.condition));
        if (cfg->model.kind == MODEL_VQ_VAE) {
            text_appendf(&t, ",\n    \"codebook\": {\"size\": %d, \"beta\": ", cfg->model.codebook.size);
            text_double(&t, cfg->model.codebook.beta);
            text_appendf(&t, ", \"update\": \"%s\"", cfg->model.codebook.ema ? "ema" : "loss");
            if (cfg->model.codebook.ema) {
                text_appendf(&t, ", \"decay\": ");
                text_double(&t, cfg->model.codebook.decay);
                text_appendf(&t, ", \"eps\": ");
                text_double(&t, cfg->model.codebook.eps);
                text_appendf(&t, ", \"restart_dead\": ");
                text_double(&t, cfg->model.codebook.restart_dead);
            }
            text_appendf(&t, "}");
        }
        if (cfg->model.kind == MODEL_AAE) {
            text_appendf(&t, ",\n    \"discriminator\": ");
            text_layers(&t, cfg->model.discriminator_layers, cfg->model.n_discriminator_layers);
            text_appendf(&t, ",\n    \"prior\": \"%s\"", cfg->model.prior_mixture ? "mixture" : "gaussian");
        }
        text_appendf(&t, "\n  }");
    }

    if (cfg->model.kind != MODEL_GAN) {   // a gan has no loss section
    text_appendf(&t, ",\n  \"loss\": {\n    \"reconstruction\": \"%s\"",
                name_of(reconstruction_names, COUNT(reconstruction_names),
                        cfg->loss.reconstruction));
    text_appendf(&t, ",\n    \"reduction\": \"%s\"",
                name_of(reduction_names, COUNT(reduction_names), cfg->loss.reduction));
    text_appendf(&t, ",\n    \"w_rec\": ");
    text_double(&t, cfg->loss.w_rec);
    if (cfg->model.kind != MODEL_VQ_VAE && cfg->model.kind != MODEL_AAE &&
        !model_kind_autoregressive(cfg->model.kind)) {   // no KL term in these
        text_appendf(&t, ",\n    \"w_kl\": ");
        text_double(&t, cfg->loss.w_kl);
        text_appendf(&t, ",\n    \"kl_warmup_epochs\": ");
        text_double(&t, cfg->loss.kl_warmup_epochs);
        text_appendf(&t, ",\n    \"free_bits\": ");
        text_double(&t, cfg->loss.free_bits);
    }
    if (cfg->loss.has_capacity) {
        text_appendf(&t, ",\n    \"capacity\": {\"max_nats\": ");
        text_double(&t, cfg->loss.capacity_max_nats);
        text_appendf(&t, ", \"epochs\": ");
        text_double(&t, cfg->loss.capacity_epochs);
        text_appendf(&t, ", \"gamma\": ");
        text_double(&t, cfg->loss.capacity_gamma);
        text_appendf(&t, "}");
    }
    text_appendf(&t, "\n  }");
    }

    text_appendf(&t, ",\n  \"train\": {\n    \"epochs\": %d", cfg->train.epochs);
    text_appendf(&t, ",\n    \"batch_size\": %d", cfg->train.batch_size);
    text_appendf(&t, ",\n    \"optimizer\": ");
    text_append_json_string(&t, cfg->train.optimizer);
    text_appendf(&t, ",\n    \"weight_decay\": ");
    text_double(&t, cfg->train.weight_decay);
    text_appendf(&t, ",\n    \"momentum\": ");
    text_double(&t, cfg->train.momentum);
    text_appendf(&t, ",\n    \"grad_clip\": ");
    text_double(&t, cfg->train.grad_clip);
    text_appendf(&t, ",\n    \"lr\": ");
    text_double(&t, cfg->train.lr);
    text_appendf(&t, ",\n    \"seed\": %" PRIu64, cfg->train.seed);
    text_appendf(&t, ",\n    \"beta1\": ");
    text_double(&t, cfg->train.beta1);
    text_appendf(&t, ",\n    \"beta2\": ");
    text_double(&t, cfg->train.beta2);
    text_appendf(&t, ",\n    \"adam_eps\": ");
    text_double(&t, cfg->train.adam_eps);
    text_appendf(&t, ",\n    \"log_interval\": %d", cfg->train.log_interval);
    text_appendf(&t, ",\n    \"early_stopping\": %d", cfg->train.early_stopping);
    text_appendf(&t, ",\n    \"full_epochs\": %d", cfg->train.full_epochs);
    text_appendf(&t, ",\n    \"lr_schedule\": \"%s\"",
                name_of(lr_schedule_names, COUNT(lr_schedule_names), cfg->train.lr_schedule));
    text_appendf(&t, ",\n    \"lr_step_epochs\": %d", cfg->train.lr_step_epochs);
    text_appendf(&t, ",\n    \"lr_gamma\": ");
    text_double(&t, cfg->train.lr_gamma);
    text_appendf(&t, ",\n    \"lr_min\": ");
    text_double(&t, cfg->train.lr_min);
    text_appendf(&t, ",\n    \"warmup_steps\": %d", cfg->train.warmup_steps);
    text_appendf(&t, ",\n    \"precision\": \"%s\"",
                name_of(precision_names, COUNT(precision_names), cfg->train.precision));
    text_appendf(&t, ",\n    \"epsilon\": \"%s\"",
                name_of(epsilon_names, COUNT(epsilon_names), cfg->train.epsilon));
    text_appendf(&t, ",\n    \"cuda_graph\": %s", cfg->train.cuda_graph ? "true" : "false");
    text_appendf(&t, ",\n    \"epoch_images\": %s", cfg->train.epoch_images ? "true" : "false");
    text_appendf(&t, ",\n    \"epoch_images_every\": %d\n  }", cfg->train.epoch_images_every);
    text_appendf(&t, ",\n  \"eval\": {\n    \"iw_samples\": %d", cfg->eval.iw_samples);
    text_appendf(&t, ",\n    \"iw_examples\": %d", cfg->eval.iw_examples);
    text_appendf(&t, ",\n    \"iw_batch\": %d", cfg->eval.iw_batch);
    if (model_kind_info(cfg->model.kind)->adversarial) {
        text_appendf(&t, ",\n    \"parzen_samples\": %d", cfg->eval.parzen_samples);
        text_appendf(&t, ",\n    \"parzen_examples\": %d", cfg->eval.parzen_examples);
    }
    text_appendf(&t, "\n  }");

    text_appendf(&t, ",\n  \"device\": \"%s\"\n}\n",
                name_of(device_names, COUNT(device_names), cfg->device));
    return t.data;
}

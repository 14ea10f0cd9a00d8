// test_config.c: tests for src/config.c: the full schema, defaults, the
// config_to_json round trip, --set overrides, the shipped configs/*.json, and
// every validation error (table-driven: one edit of a valid config per row).
#include "cuvae/config.h"
#include "cuvae/eval.h"
#include "test.h"
#include <sys/stat.h>
#include <stdlib.h>

#include <math.h>

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// the schema example, every key present
static const char *FULL_EXAMPLE =
    "{ \"name\": \"mnist_vae\",\n"
    "  \"description\": \"optional one-line text\",\n"
    "  \"data\":  { \"dataset\": \"mnist\", \"dir\": \"data/mnist\", \"binarize\": \"none\",\n"
    "             \"train_limit\": 0, \"test_limit\": 0 },\n"
    "  \"model\": { \"kind\": \"vae\", \"input_dim\": 784, \"encoder\": [512, 256],\n"
    "             \"latent_dim\": 2, \"decoder\": [256, 512], \"activation\": \"relu\",\n"
    "             \"output\": \"bernoulli\" },\n"
    "  \"loss\":  { \"reconstruction\": \"bce\", \"reduction\": \"sum\", \"w_rec\": 1.0,\n"
    "             \"w_kl\": 1.0 },\n"
    "  \"train\": { \"epochs\": 10, \"batch_size\": 128, \"optimizer\": \"adam\", \"lr\": 0.001,\n"
    "             \"seed\": 1, \"beta1\": 0.9, \"beta2\": 0.999, \"adam_eps\": 1e-8,\n"
    "             \"log_interval\": 100 },\n"
    "  \"device\": \"auto\" }\n";

// only the required keys
static const char *MINIMAL =
    "{\"name\": \"tiny\",\n"
    " \"data\": {\"dataset\": \"fashion-mnist\", \"dir\": \"/tmp/fmnist\"},\n"
    " \"model\": {\"kind\": \"ae\", \"input_dim\": 784, \"encoder\": [64], \"latent_dim\": 8,\n"
    "           \"decoder\": []},\n"
    " \"train\": {\"epochs\": 0, \"batch_size\": 32, \"lr\": 0.5}}";

// unusual but valid values for the round trip
static const char *UNUSUAL =
    "{\"name\": \"odd.name_-2\",\n"
    " \"description\": \"tab\\there, backslash \\\\, unicode \\u00e9 \\u2713, ctrl \\u0001\",\n"
    " \"data\": {\"dataset\": \"fashion-mnist\", \"dir\": \"some dir/with space\",\n"
    "          \"binarize\": \"static\", \"train_limit\": 100, \"test_limit\": 50},\n"
    " \"model\": {\"kind\": \"ae\", \"input_dim\": 1,\n"
    "           \"encoder\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,65536],\n"
    "           \"latent_dim\": 65536, \"decoder\": [], \"activation\": \"leaky_relu\",\n"
    "           \"output\": \"gaussian\"},\n"
    " \"loss\": {\"reconstruction\": \"mse\", \"reduction\": \"mean\",\n"
    "          \"w_rec\": 1234567.891e10, \"w_kl\": 1.5e-38},\n"
    " \"train\": {\"epochs\": 0, \"batch_size\": 1, \"lr\": 0.30000000000000004,\n"
    "           \"seed\": 9007199254740991, \"beta1\": 0, \"beta2\": 0.99999994,\n"
    "           \"adam_eps\": 1.2e-38, \"log_interval\": 1},\n"
    " \"device\": \"cuda\"}";

// ----------------------------------------------------------------------------
// helpers

// Returns json with the key at `path` (dotted; missing objects created) set to
// the JSON text `value`, or deleted when value is NULL. Caller frees.
static char *edit_json(const char *json, const char *path, const char *value) {
    cJSON *root = cJSON_Parse(json);
    if (!root) return NULL;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    cJSON *obj = root;
    char *key = buf;
    char *dot;
    while ((dot = strchr(key, '.')) != NULL) {
        *dot = '\0';
        cJSON *next = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!next) next = cJSON_AddObjectToObject(obj, key);
        obj = next;
        key = dot + 1;
    }
    if (value == NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    } else {
        cJSON *item = cJSON_Parse(value);
        if (!item) {
            cJSON_Delete(root);
            return NULL;
        }
        if (cJSON_GetObjectItemCaseSensitive(obj, key))
            cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
        else
            cJSON_AddItemToObject(obj, key, item);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

// Replaces the first `from` in json with `to`. Caller frees.
static char *replace_text(const char *json, const char *from, const char *to) {
    const char *at = strstr(json, from);
    if (!at) return NULL;
    size_t head = (size_t)(at - json), n = strlen(json) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    memcpy(out, json, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static int is_zero(const Config *cfg) {
    const unsigned char *p = (const unsigned char *)cfg;
    for (size_t i = 0; i < sizeof *cfg; i++)
        if (p[i]) return 0;
    return 1;
}

// Checks config_to_json -> config_from_string reproduces cfg byte for byte,
// and that printing again gives the same text.
static void check_round_trip(const Config *cfg, const char *what) {
    char *json = config_to_json(cfg);
    Config back;
    char err[1024] = "";
    int rc = config_from_string(&back, json, cfg->source, NULL, 0, err, sizeof err);
    CHECK(rc == 0, "%s: re-parse failed: %s\n%s", what, err, json);
    if (rc == 0) {
        CHECK(memcmp(cfg, &back, sizeof back) == 0, "%s: struct differs after round trip", what);
        char *again = config_to_json(&back);
        CHECK(strcmp(json, again) == 0, "%s: text differs:\n%s\n---\n%s", what, json, again);
        free(again);
    }
    free(json);
}

// ----------------------------------------------------------------------------
// parsing and defaults

static void test_full_example(void) {
    Config cfg;
    char err[1024] = "";
    int rc = config_from_string(&cfg, FULL_EXAMPLE, "example.json", NULL, 0, err, sizeof err);
    CHECK(rc == 0, "parse failed: %s", err);
    CHECK(strcmp(cfg.name, "mnist_vae") == 0, "name %s", cfg.name);
    CHECK(strcmp(cfg.description, "optional one-line text") == 0, "description %s", cfg.description);
    CHECK(strcmp(cfg.source, "example.json") == 0, "source %s", cfg.source);
    CHECK(strcmp(cfg.data.dataset, "mnist") == 0, "dataset %s", cfg.data.dataset);
    CHECK(strcmp(cfg.data.dir, "data/mnist") == 0, "dir %s", cfg.data.dir);
    CHECK(cfg.data.binarize == BINARIZE_NONE, "binarize");
    CHECK(cfg.data.train_limit == 0 && cfg.data.test_limit == 0, "limits");
    CHECK(cfg.model.kind == MODEL_VAE, "kind");
    CHECK(cfg.model.input_dim == 784, "input_dim %d", cfg.model.input_dim);
    CHECK(cfg.model.n_encoder == 2 && cfg.model.encoder[0] == 512 && cfg.model.encoder[1] == 256,
          "encoder");
    CHECK(cfg.model.latent_dim == 2, "latent_dim %d", cfg.model.latent_dim);
    CHECK(cfg.model.n_decoder == 2 && cfg.model.decoder[0] == 256 && cfg.model.decoder[1] == 512,
          "decoder");
    CHECK(cfg.model.activation == ACT_RELU, "activation");
    CHECK(cfg.model.output == OUTPUT_BERNOULLI, "output");
    CHECK(cfg.loss.reconstruction == REC_BCE, "reconstruction");
    CHECK(cfg.loss.reduction == REDUCTION_SUM, "reduction");
    CHECK(cfg.loss.w_rec == 1.0 && cfg.loss.w_kl == 1.0, "weights");
    CHECK(cfg.train.epochs == 10 && cfg.train.batch_size == 128, "epochs/batch");
    CHECK(strcmp(cfg.train.optimizer, "adam") == 0, "optimizer %s", cfg.train.optimizer);
    CHECK(cfg.train.lr == 0.001, "lr %.17g", cfg.train.lr);
    CHECK(cfg.train.seed == 1, "seed");
    CHECK(cfg.train.beta1 == 0.9 && cfg.train.beta2 == 0.999 && cfg.train.adam_eps == 1e-8,
          "adam constants");
    CHECK(cfg.train.log_interval == 100, "log_interval");
    CHECK(cfg.device == DEVICE_AUTO, "device");
}

static void test_defaults(void) {
    Config cfg;
    char err[1024] = "";
    int rc = config_from_string(&cfg, MINIMAL, "minimal.json", NULL, 0, err, sizeof err);
    CHECK(rc == 0, "parse failed: %s", err);
    CHECK(strcmp(cfg.name, "tiny") == 0, "name");
    CHECK(cfg.description[0] == '\0', "description default");
    CHECK(strcmp(cfg.data.dataset, "fashion-mnist") == 0, "dataset");
    CHECK(cfg.data.binarize == BINARIZE_NONE, "binarize default");
    CHECK(cfg.data.train_limit == 0 && cfg.data.test_limit == 0, "limit defaults");
    CHECK(cfg.model.kind == MODEL_AE, "kind");
    CHECK(cfg.model.n_encoder == 1 && cfg.model.encoder[0] == 64, "encoder");
    CHECK(cfg.model.n_decoder == 0, "empty decoder allowed");
    CHECK(cfg.model.activation == ACT_RELU, "activation default");
    CHECK(cfg.model.output == OUTPUT_BERNOULLI, "output default");
    CHECK(cfg.loss.reconstruction == REC_BCE, "reconstruction default");
    CHECK(cfg.loss.reduction == REDUCTION_SUM, "reduction default");
    CHECK(cfg.loss.w_rec == 1.0 && cfg.loss.w_kl == 1.0, "weight defaults");
    CHECK(cfg.train.epochs == 0, "epochs 0 allowed");
    CHECK(strcmp(cfg.train.optimizer, "adam") == 0, "optimizer default");
    CHECK(cfg.train.lr == 0.5, "lr");
    CHECK(cfg.train.seed == 1, "seed default");
    CHECK(cfg.train.beta1 == 0.9 && cfg.train.beta2 == 0.999 && cfg.train.adam_eps == 1e-8,
          "adam defaults");
    CHECK(cfg.train.log_interval == 100, "log_interval default");
    CHECK(cfg.device == DEVICE_AUTO, "device default");
    // NULL source gets a placeholder name
    rc = config_from_string(&cfg, MINIMAL, NULL, NULL, 0, err, sizeof err);
    CHECK(rc == 0 && strcmp(cfg.source, "<string>") == 0, "NULL source -> <string>: %s",
          cfg.source);
}

static void test_enum_values(void) {
    // every accepted enumeration value lands on the right enum
    static const struct {
        const char *path, *value;
        int field, want;
    } rows[] = {
        {"data.binarize", "\"dynamic\"", 0, BINARIZE_DYNAMIC},
        {"data.binarize", "\"static\"", 0, BINARIZE_STATIC},
        {"model.activation", "\"tanh\"", 1, ACT_TANH},
        {"model.activation", "\"leaky_relu\"", 1, ACT_LEAKY_RELU},
        {"loss.reconstruction", "\"mse\"", 2, REC_MSE},
        {"loss.reduction", "\"mean\"", 3, REDUCTION_MEAN},
        {"device", "\"cpu\"", 4, DEVICE_CPU},
        {"device", "\"cuda\"", 4, DEVICE_CUDA},
        {"model.kind", "\"ae\"", 5, MODEL_AE},
    };
    for (int i = 0; i < (int)(sizeof rows / sizeof rows[0]); i++) {
        char *json = edit_json(FULL_EXAMPLE, rows[i].path, rows[i].value);
        Config cfg;
        char err[1024] = "";
        int rc = config_from_string(&cfg, json, "enum.json", NULL, 0, err, sizeof err);
        CHECK(rc == 0, "%s=%s: %s", rows[i].path, rows[i].value, err);
        int got = -1;
        switch (rows[i].field) {
        case 0: got = (int)cfg.data.binarize; break;
        case 1: got = (int)cfg.model.activation; break;
        case 2: got = (int)cfg.loss.reconstruction; break;
        case 3: got = (int)cfg.loss.reduction; break;
        case 4: got = (int)cfg.device; break;
        case 5: got = (int)cfg.model.kind; break;
        }
        CHECK(got == rows[i].want, "%s=%s: got %d want %d", rows[i].path, rows[i].value, got,
              rows[i].want);
        free(json);
    }
    // gaussian output with mse is a valid combination
    char *json = edit_json(FULL_EXAMPLE, "loss.reconstruction", "\"mse\"");
    char *json2 = edit_json(json, "model.output", "\"gaussian\"");
    Config cfg;
    char err[1024] = "";
    CHECK(config_from_string(&cfg, json2, "g.json", NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.model.output == OUTPUT_GAUSSIAN && cfg.loss.reconstruction == REC_MSE, "gaussian+mse");
    free(json);
    free(json2);
}

static void test_activation_name(void) {
    CHECK(strcmp(activation_name(ACT_NONE), "none") == 0, "none");
    CHECK(strcmp(activation_name(ACT_RELU), "relu") == 0, "relu");
    CHECK(strcmp(activation_name(ACT_TANH), "tanh") == 0, "tanh");
    CHECK(strcmp(activation_name(ACT_LEAKY_RELU), "leaky_relu") == 0, "leaky_relu");
}

static void test_shipped_configs(void) {
    Config cfg;
    char err[1024] = "";
    int rc = config_load(&cfg, "configs/mnist_vae.json", NULL, 0, err, sizeof err);
    CHECK(rc == 0, "configs/mnist_vae.json: %s", err);
    CHECK(strcmp(cfg.source, "configs/mnist_vae.json") == 0, "source %s", cfg.source);
    CHECK(strcmp(cfg.name, "mnist_vae") == 0, "name %s", cfg.name);
    CHECK(cfg.model.input_dim == 784 && cfg.model.latent_dim == 2, "mnist_vae dims");
    CHECK(cfg.model.n_encoder == 2 && cfg.model.encoder[0] == 512 && cfg.model.encoder[1] == 256,
          "mnist_vae encoder");
    CHECK(cfg.model.n_decoder == 2 && cfg.model.decoder[0] == 256 && cfg.model.decoder[1] == 512,
          "mnist_vae decoder");
    CHECK(cfg.train.epochs == 10 && cfg.train.batch_size == 128 && cfg.train.lr == 1e-3,
          "mnist_vae train");
    CHECK(cfg.loss.reconstruction == REC_BCE && cfg.loss.reduction == REDUCTION_SUM,
          "mnist_vae loss");
    if (rc == 0) check_round_trip(&cfg, "configs/mnist_vae.json");

    rc = config_load(&cfg, "configs/examples_vae.json", NULL, 0, err, sizeof err);
    CHECK(rc == 0, "configs/examples_vae.json: %s", err);
    CHECK(cfg.model.n_encoder == 1 && cfg.model.encoder[0] == 400, "examples encoder");
    CHECK(cfg.model.latent_dim == 20, "examples latent");
    CHECK(cfg.model.n_decoder == 1 && cfg.model.decoder[0] == 400, "examples decoder");
    CHECK(cfg.train.epochs == 10 && cfg.train.batch_size == 128 && cfg.train.lr == 1e-3,
          "examples train");
    if (rc == 0) check_round_trip(&cfg, "configs/examples_vae.json");
}

// ----------------------------------------------------------------------------
// config_to_json round trip

static void test_round_trip(void) {
    const char *texts[] = {FULL_EXAMPLE, MINIMAL, UNUSUAL};
    const char *names[] = {"full example", "minimal", "unusual"};
    for (int i = 0; i < 3; i++) {
        Config cfg;
        char err[1024] = "";
        int rc = config_from_string(&cfg, texts[i], names[i], NULL, 0, err, sizeof err);
        CHECK(rc == 0, "%s: %s", names[i], err);
        if (rc == 0) check_round_trip(&cfg, names[i]);
    }
    // the unusual values survive exactly
    Config cfg;
    char err[1024] = "";
    config_from_string(&cfg, UNUSUAL, "unusual", NULL, 0, err, sizeof err);
    CHECK(cfg.train.seed == UINT64_C(9007199254740991), "seed 2^53 - 1");
    CHECK(cfg.train.lr == 0.1 + 0.2, "lr 0.1+0.2");
    CHECK(cfg.train.adam_eps == 1.2e-38, "tiny eps");
    CHECK(cfg.model.n_encoder == CUVAE_MAX_HIDDEN, "16 encoder layers");
    CHECK(strcmp(cfg.description, "tab\there, backslash \\, unicode \xc3\xa9 \xe2\x9c\x93, ctrl \x01") == 0,
          "description escapes: %s", cfg.description);
    // a gan's label_smoothing: a range [min, max] (the DCGAN lecture's) and one number, both kept as given
    const char *smoothing[] = {NULL, "model.label_smoothing=0.25"};
    for (int k = 0; k < 2; k++) {
        int rc = config_load(&cfg, "configs/lectures/dcgan.json", smoothing[k] ? &smoothing[k] : NULL, k, err,
                             sizeof err);
        CHECK(rc == 0, "dcgan.json: %s", err);
        if (rc != 0) continue;
        const double lo = cfg.model.gan.label_smoothing, hi = cfg.model.gan.label_smoothing_max;
        CHECK(k ? lo == 0.25 && hi == 0.25 : lo == 0.1 && hi == 0.3, "label_smoothing read as [%g, %g]", lo, hi);
        if (k == 0) check_round_trip(&cfg, "dcgan, label_smoothing [0.1, 0.3]");   // (a --set config keeps its origin)
        char *json = config_to_json(&cfg);
        CHECK(strstr(json, k ? "\"label_smoothing\": 0.25," : "\"label_smoothing\": [0.1, 0.3],") != NULL,
              "config.json's label_smoothing: %s", strstr(json, "label_smoothing"));
        free(json);
    }
}

static void test_round_trip_random_doubles(void) {
    // doubles written by config_to_json must read back bit-exact
    Config cfg;
    char err[1024] = "";
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "rt", NULL, 0, err, sizeof err) == 0, "%s", err);
    uint64_t state = 88172645463325252ULL;
    for (int i = 0; i < 2000; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        double u = (double)(state >> 11) / 9007199254740992.0;  // [0, 1)
        int e = (int)(state % 40) - 30;
        cfg.train.lr = (u + 1e-300) * pow(10.0, e);
        cfg.train.beta1 = u;
        cfg.loss.w_kl = u * 1e6;
        cfg.train.seed = state >> 11;  // < 2^53
        char name[32];
        snprintf(name, sizeof name, "random %d", i);
        check_round_trip(&cfg, name);
        if (test_current_failures) break;
    }
}

// ----------------------------------------------------------------------------
// --set overrides

static void test_override_values(void) {
    const char *sets[] = {
        "train.lr=0.01",              // number
        "train.epochs=3",             // integer
        "train.optimizer=adam",       // not JSON: plain string
        "data.dir=/tmp/my mnist",     // plain string with a space
        "name=\"quoted-run\"",        // JSON string
        "description=\"true\"",       // JSON string that looks like a boolean
        "model.encoder=[400]",        // array
        "model.decoder=[]",           // empty array
        "loss.w_kl=0.5",              // nested number
        "train.seed=7",
        "train.seed=8",               // later wins (documented in the README)
    };
    Config cfg;
    char err[1024] = "";
    int rc = config_from_string(&cfg, FULL_EXAMPLE, "ovr.json", sets,
                                (int)(sizeof sets / sizeof sets[0]), err, sizeof err);
    CHECK(rc == 0, "%s", err);
    CHECK(cfg.train.lr == 0.01, "lr %g", cfg.train.lr);
    CHECK(cfg.train.epochs == 3, "epochs %d", cfg.train.epochs);
    CHECK(strcmp(cfg.train.optimizer, "adam") == 0, "optimizer %s", cfg.train.optimizer);
    CHECK(strcmp(cfg.data.dir, "/tmp/my mnist") == 0, "dir %s", cfg.data.dir);
    CHECK(strcmp(cfg.name, "quoted-run") == 0, "name %s", cfg.name);
    CHECK(strcmp(cfg.description, "true") == 0, "description %s", cfg.description);
    CHECK(cfg.model.n_encoder == 1 && cfg.model.encoder[0] == 400, "encoder");
    CHECK(cfg.model.n_decoder == 0, "decoder");
    CHECK(cfg.loss.w_kl == 0.5, "w_kl %g", cfg.loss.w_kl);
    CHECK(cfg.train.seed == 8, "seed %llu", (unsigned long long)cfg.train.seed);
    CHECK(strcmp(cfg.source, "ovr.json") == 0, "source %s", cfg.source);
}

static void test_override_creates_section(void) {
    // MINIMAL has no "loss" object: the override creates it, the rest default
    const char *sets[] = {"loss.w_kl=0.25", "device=cpu"};
    Config cfg;
    char err[1024] = "";
    int rc = config_from_string(&cfg, MINIMAL, "min.json", sets, 2, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    CHECK(cfg.loss.w_kl == 0.25 && cfg.loss.w_rec == 1.0, "loss weights");
    CHECK(cfg.loss.reconstruction == REC_BCE, "reconstruction default kept");
    CHECK(cfg.device == DEVICE_CPU, "device");
}

static void test_override_with_config_load(void) {
    const char *sets[] = {"model.latent_dim=16"};
    Config cfg;
    char err[1024] = "";
    int rc = config_load(&cfg, "configs/mnist_vae.json", sets, 1, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    CHECK(cfg.model.latent_dim == 16, "latent_dim %d", cfg.model.latent_dim);
}

// Numbers JSON's grammar does not allow (cJSON reads them): refused in a config file, naming the
// byte; a lone one in --set is a plain string (as .5 and +1 are), one inside an array or object an
// error. Valid numbers of every shape still read, and digits inside strings are not numbers.
// FULL_EXAMPLE with train.lr written as the literal text given; *at: the literal's byte offset.
static void example_with_lr_literal(char *text, size_t n, const char *literal, long *at) {
    char *json = edit_json(FULL_EXAMPLE, "train.lr", "0.001");
    char *lr = strstr(json, "0.001");
    *at = (long)(lr - json);
    snprintf(text, n, "%.*s%s%s", (int)(lr - json), json, literal, lr + 5);
    free(json);
}

static void test_json_number_grammar(void) {
    Config cfg;
    char err[1024] = "", text[4096];
    long at = 0;
    const char *bad[] = {"02", "-00.5", "1.", "1.e3", "00", "1e", "-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        example_with_lr_literal(text, sizeof text, bad[i], &at);
        err[0] = '\0';
        CHECK(config_from_string(&cfg, text, "x.json", NULL, 0, err, sizeof err) == -1, "%s accepted", bad[i]);
        char want[128];
        snprintf(want, sizeof want, "x.json: byte %ld: %s is not a JSON number", at, bad[i]);
        CHECK(strstr(err, want) == err, "%s: got \"%s\"", bad[i], err);
    }
    const char *good[] = {"0.5", "1e-3", "1E+3", "2.5e-10", "10", "0.0001", "1e0"};   // (lr > 0)
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        example_with_lr_literal(text, sizeof text, good[i], &at);
        CHECK(config_from_string(&cfg, text, "x.json", NULL, 0, err, sizeof err) == 0, "%s refused: %s", good[i], err);
    }
    const char *negative[] = {"model.encoder=[512, 256]", "loss.w_kl=0", "train.seed=0", "description=-00.5 v01"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", negative, 4, err, sizeof err) == 0, "%s", err);
    const char *in_string[] = {"name=run_01", "description=v1. of 02"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", in_string, 2, err, sizeof err) == 0, "%s", err);
    const char *lone[] = {"train.epochs=01"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", lone, 1, err, sizeof err) == -1 &&
          strstr(err, "train.epochs: must be an integer, got a string"), "--set train.epochs=01: got \"%s\"", err);
    const char *in_array[] = {"model.encoder=[512, 01]"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", in_array, 1, err, sizeof err) == -1 &&
          strstr(err, "--set model.encoder: 01 is not a JSON number"), "--set model.encoder=[512, 01]: got \"%s\"", err);
}

// config_key_origin: a key a --set gave (or one around or inside it) names the last such --set,
// any other key the file
static void test_key_origin(void) {
    const char *sets[] = {"train.batch_size=4", "train.batch_size=8", "model.encoder=[400]"};
    Config cfg;
    char err[1024] = "", buf[1800];
    const char *largest_batch[] = {"train.batch_size=1073741824"};   // the cap itself: accepted
    CHECK(config_load(&cfg, "configs/examples_vae.json", largest_batch, 1, err, sizeof err) == 0 &&
          cfg.train.batch_size == 1073741824, "train.batch_size 2^30: %s", err);
    CHECK(config_load(&cfg, "configs/examples_vae.json", sets, 3, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(config_key_origin(&cfg, "train.batch_size", buf, sizeof buf),
                 "--set train.batch_size=8 (over configs/examples_vae.json)") == 0, "got \"%s\"", buf);
    CHECK(strcmp(config_key_origin(&cfg, "train.batch", buf, sizeof buf), "configs/examples_vae.json") == 0,
          "a key that only starts like a --set's: got \"%s\"", buf);
    CHECK(strcmp(config_key_origin(&cfg, "train.epochs", buf, sizeof buf), "configs/examples_vae.json") == 0,
          "got \"%s\"", buf);
    CHECK(strcmp(config_key_origin(&cfg, "model.encoder[0]", buf, sizeof buf),
                 "--set model.encoder=[400] (over configs/examples_vae.json)") == 0, "a --set around it: got \"%s\"", buf);
    CHECK(strcmp(config_key_origin(&cfg, "model.enc", buf, sizeof buf), "configs/examples_vae.json") == 0,
          "a key a --set's only starts like: got \"%s\"", buf);
    CHECK(strcmp(config_key_origin(&cfg, "model", buf, sizeof buf),
                 "--set model.encoder=[400] (over configs/examples_vae.json)") == 0, "a key a --set is inside: got \"%s\"", buf);
    CHECK(config_load(&cfg, "configs/examples_vae.json", NULL, 0, err, sizeof err) == 0 && cfg.sets[0] == '\0',
          "no --set: sets \"%s\"", cfg.sets);
}

// a key checked against another (the decoder's output against model.input_shape): the message
// is about model.decoder, from the file, but names the --set without which the config reads
static void test_override_named_in_cross_key_error(void) {
    // (input_dim 25 alone makes the data (1, 5, 5): the --set input_shape, left out to the same
    // error, is a bystander as device=cpu is, and neither is named)
    const char *sets[] = {"train.epochs=2", "model.input_shape=[1,5,5]", "train.lr=0.01"};
    const char *shape_and_dim[] = {"device=cpu", "model.input_shape=[1,5,5]", "model.input_dim=25", "train.epochs=1"};
    Config cfg;
    char err[1024] = "";
    int rc = config_load(&cfg, "configs/lectures/conv_vae_dim16.json", shape_and_dim, 4, err, sizeof err);
    CHECK(rc == -1, "a decoder whose output is not input_shape: accepted");
    CHECK(strstr(err, "--set model.input_dim=25 (over configs/lectures/conv_vae_dim16.json): "
                      "model.decoder: its output (1, 28, 28) is not the data's shape (1, 5, 5) (or 25 values)") == err,
          "got \"%s\"", err);
    // two --sets that each cause the error, beside one that does not: the two are named (each gives
    // that error alone over the file), not device=cpu (leaving out either of the two gave the same
    // error, so a left-out test alone would name only the bystander)
    const char *two_culprits[] = {"device=cpu", "loss.free_bits=1", "loss.kl_warmup_epochs=2"};
    rc = config_load(&cfg, "configs/lectures/ae_dim2.json", two_culprits, 3, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "--set loss.free_bits=1 --set loss.kl_warmup_epochs=2 (over configs/lectures/ae_dim2.json "
                                  "(merged over configs/lectures/vae_dim2.json)): loss: KL schedules") == err,
          "two culprits and a bystander: got \"%s\"", err);
    // input_shape alone against the file's input_dim: that conflict is said first (the decoder's
    // message would compare shapes whose sizes disagree with input_dim)
    rc = config_load(&cfg, "configs/lectures/conv_vae_dim16.json", sets, 3, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "--set model.input_shape=[1,5,5] (over configs/lectures/conv_vae_dim16.json): "
                                  "model.input_dim: is 784 but model.input_shape [1, 5, 5] holds 25 values") == err,
          "input_dim against input_shape: got \"%s\"", err);
    // a nested key's message (model.codebook), and one about another section than the --set's
    // in a config merged over a base
    const char *codebook[] = {"model.codebook.update=loss"}, *output[] = {"model.output=gaussian"};
    rc = config_load(&cfg, "configs/lectures/vq_vae_k256.json", codebook, 1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "--set model.codebook.update=loss (over configs/lectures/vq_vae_k256.json): "
                                  "model.codebook: decay, eps and restart_dead") == err, "got \"%s\"", err);
    rc = config_load(&cfg, "configs/lectures/deck003_dim2.json", output, 1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "--set model.output=gaussian (over configs/lectures/deck003_dim2.json (merged over "
                                  "configs/lectures/vae_dim2.json)): loss.reconstruction: \"bce\" needs") == err,
          "got \"%s\"", err);
}

static void test_override_errors_in_values(void) {
    // overrides that parse but fail validation name the --set, the config source and the key
    static const struct {
        const char *set, *want;
    } rows[] = {
        {"model.latnt_dim=3", "--set model.latnt_dim=3 (over ovr.json): model.latnt_dim: unknown key"},
        {"extra.key=1", "--set extra.key=1 (over ovr.json): extra: unknown key"},   // (without it the config reads)
        {"train.lr=fast", "--set train.lr=fast (over ovr.json): train.lr: must be a number, got a string"},
        {"model.latent_dim=0", "--set model.latent_dim=0 (over ovr.json): model.latent_dim: must be >= 1, got 0"},
        {"model.encoder=[400", "--set model.encoder=[400 (over ovr.json): model.encoder: must be an array"},   // (a string)
        {"model.encoder=[400,]", "--set model.encoder: the value is not valid JSON"},   // (not taken for a string)
        {"name=\"a\"b\"", "--set name: the value is not valid JSON"},
        {"name={}", "--set name={} (over ovr.json): name: must be a string, got an object"},
        {"name=true", "--set name=true (over ovr.json): name: must be a string, got a boolean"},
        {"model.encoder=[400, 0]", "--set model.encoder=[400, 0] (over ovr.json): model.encoder[1]: must be >= 1"},
        {"loss.capacity={\"max_d\": 1\n, \"epochs\": 2}", "--set loss.capacity=... (over ovr.json): loss.capacity.max_d: unknown key"},   // (one line)
    };
    for (int i = 0; i < (int)(sizeof rows / sizeof rows[0]); i++) {
        Config cfg;
        char err[1024] = "";
        int rc = config_from_string(&cfg, FULL_EXAMPLE, "ovr.json", &rows[i].set, 1, err,
                                    sizeof err);
        CHECK(rc == -1, "--set %s: accepted", rows[i].set);
        CHECK(strstr(err, rows[i].want) != NULL, "--set %s: got \"%s\", want \"%s\"", rows[i].set,
              err, rows[i].want);
        CHECK(is_zero(&cfg), "--set %s: cfg not zeroed on error", rows[i].set);
    }
}

static void test_override_malformed(void) {
    static const struct {
        const char *set, *want;
    } rows[] = {
        {"train.lr", "expected key.path=value"},
        {"=3", "empty key path"},
        {"train..lr=1", "empty key"},
        {".lr=1", "empty key"},
        {"train.=1", "empty key"},
        {"name.first=x", "\"name\" is a string, not an object"},
        {"model.encoder.x=1", "\"model.encoder\" is an array, not an object"},
    };
    for (int i = 0; i < (int)(sizeof rows / sizeof rows[0]); i++) {
        Config cfg;
        char err[1024] = "";
        int rc = config_from_string(&cfg, FULL_EXAMPLE, "ovr.json", &rows[i].set, 1, err,
                                    sizeof err);
        char prefix[256];
        snprintf(prefix, sizeof prefix, "--set %s: ", rows[i].set);
        CHECK(rc == -1, "--set %s: accepted", rows[i].set);
        CHECK(strncmp(err, prefix, strlen(prefix)) == 0, "--set %s: message \"%s\" lacks prefix",
              rows[i].set, err);
        CHECK(strstr(err, rows[i].want) != NULL, "--set %s: got \"%s\", want \"%s\"", rows[i].set,
              err, rows[i].want);
    }
}

// ----------------------------------------------------------------------------
// validation errors: each row edits FULL_EXAMPLE (value is JSON text; NULL
// deletes the key) and names the key path and the problem the message must hold

typedef struct {
    const char *path;
    const char *value;
    const char *want_path;
    const char *want_problem;
} ErrorCase;

#define SEVENTEEN "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]"

static const ErrorCase error_cases[] = {
    // issue-3 keys: cvae condition, KL schedules, eval section, lr schedule
    {"model.condition", "\"label\"", "model.condition", "needs model.kind \"cvae\""},
    {"model.condition", "\"pixels\"", "model.condition", "must be one of"},
    {"loss.kl_warmup_epochs", "-1", "loss.kl_warmup_epochs", "must be >= 0"},
    {"loss.kl_warmup_epochs", "1e39", "loss.kl_warmup_epochs", "1e+39 overflows float32"},
    {"loss.capacity", "{\"max_nats\": 25, \"epochs\": 1e300, \"gamma\": 10}", "loss.capacity.epochs",
     "1e+300 overflows float32"},
    {"loss.free_bits", "-0.5", "loss.free_bits", "must be >= 0"},
    {"loss.capacity", "5", "loss.capacity", "must be an object"},
    {"loss.capacity", "{\"max_nats\": 25, \"epochs\": 10}", "loss.capacity.gamma", "missing required key"},
    {"loss.capacity", "{\"max_nats\": 25, \"epochs\": 0, \"gamma\": 10}", "loss.capacity.epochs", "must be > 0"},
    {"loss.capacity", "{\"max_nats\": -1, \"epochs\": 5, \"gamma\": 10}", "loss.capacity.max_nats", "must be >= 0"},
    {"loss.capacity", "{\"max_nats\": 5, \"epochs\": 5, \"gamma\": 10, \"c\": 1}", "loss.capacity.c", "unknown key"},
    {"eval.iw_samples", "-1", "eval.iw_samples", ">= 0"},
    {"eval.iw_batch", "0", "eval.iw_batch", ">= 1"},
    {"eval.k", "5", "eval.k", "unknown key"},
    {"train.lr_schedule", "\"linear\"", "train.lr_schedule", "must be one of"},
    {"train.lr_gamma", "0", "train.lr_gamma", "must be in (0, 1]"},
    {"train.optimizer", "\"rmsprop\"", "train.optimizer", "must be one of"},
    {"train.weight_decay", "-0.1", "train.weight_decay", "must be >= 0"},
    {"train.grad_clip", "-1", "train.grad_clip", "must be >= 0 (a maximum gradient norm; 0 = off)"},
    {"train.momentum", "1", "train.momentum", "must be in [0, 1)"},
    {"train.momentum", "0.9", "train.momentum", "is SGD's"},
    {"train.lr_gamma", "1.5", "train.lr_gamma", "must be in (0, 1]"},
    {"train.lr_min", "1", "train.lr_min", "must be in [0, train.lr)"},
    {"train.lr_min", "0.001", "train.lr_min", "must be in [0, train.lr)"},   // (train.lr itself: the open end)
    {"train.lr_step_epochs", "0", "train.lr_step_epochs", "must be >= 1"},
    {"train.lr_step_epochs", "5", "train.lr_step_epochs", "is read only by lr_schedule \"step\""},
    {"train.lr_gamma", "0.5", "train.lr_gamma", "is read only by lr_schedule \"step\""},
    {"train.lr_gamma", "1e-50", "train.lr_gamma", "float32"},
    {"train.lr_min", "0.0001", "train.lr_min", "is read only by lr_schedule \"cosine\""},
    {"train.warmup_steps", "-5", "train.warmup_steps", "must be >= 0"},
    {"train.full_epochs", "-2", "train.full_epochs", ">= 0"},
    // unknown keys at each level (and keys are case-sensitive)
    {"extra", "1", "extra", "unknown key"},
    {"Name", "\"x\"", "Name", "unknown key"},
    {"data.dirr", "\"x\"", "data.dirr", "unknown key"},
    {"model.latnt_dim", "2", "model.latnt_dim", "unknown key"},
    {"loss.kl_weight", "1", "loss.kl_weight", "unknown key"},
    // missing required keys
    {"name", NULL, "name", "missing required key"},
    {"data", NULL, "data", "missing required key"},
    {"model", NULL, "model", "missing required key"},
    {"train", NULL, "train", "missing required key"},
    {"data.dataset", NULL, "data.dataset", "missing required key"},
    {"data.dir", NULL, "data.dir", "missing required key"},
    {"model.kind", NULL, "model.kind", "missing required key"},
    {"model.input_dim", NULL, "model.input_dim", "missing required key"},
    {"model.encoder", NULL, "model.encoder", "missing required key"},
    {"model.latent_dim", NULL, "model.latent_dim", "missing required key"},
    {"model.decoder", NULL, "model.decoder", "missing required key"},
    {"train.epochs", NULL, "train.epochs", "missing required key"},
    {"train.batch_size", NULL, "train.batch_size", "missing required key"},
    {"train.lr", NULL, "train.lr", "missing required key"},
    // wrong types, one of each kind of field
    {"name", "5", "name", "must be a string, got a number"},
    {"description", "[]", "description", "must be a string, got an array"},
    {"data", "\"x\"", "data", "must be an object, got a string"},
    {"model", "[]", "model", "must be an object, got an array"},
    {"loss", "1", "loss", "must be an object, got a number"},
    {"train", "null", "train", "must be an object, got null"},
    {"data.dir", "true", "data.dir", "must be a string, got a boolean"},
    {"data.dataset", "1", "data.dataset", "must be a string"},
    {"data.train_limit", "\"5\"", "data.train_limit", "must be an integer, got a string"},
    {"model.input_dim", "\"784\"", "model.input_dim", "must be an integer, got a string"},
    {"model.encoder", "512", "model.encoder", "must be an array of integers"},
    {"model.decoder", "{}", "model.decoder", "must be an array of integers"},
    {"model.encoder", "[\"512\"]", "model.encoder[0]", "must be an integer, got a string"},
    {"model.activation", "1", "model.activation", "must be a string"},
    {"loss.w_kl", "true", "loss.w_kl", "must be a number, got a boolean"},
    {"train.lr", "\"0.001\"", "train.lr", "must be a number, got a string"},
    {"train.seed", "\"1\"", "train.seed", "must be an integer, got a string"},
    {"device", "0", "device", "must be a string"},
    // enumerations
    {"data.dataset", "\"cifar10\"", "data.dataset", "must be one of \"mnist\", \"fashion-mnist\", \"files\"; got \"cifar10\""},
    {"data.binarize", "\"yes\"", "data.binarize", "must be one of \"none\", \"dynamic\", \"static\""},
    {"model.kind", "\"diffusion\"", "model.kind", "must be one of \"vae\", \"ae\""},
    {"model.kind", "\"gan\"", "model", "kind \"gan\" has no \"encoder\""},
    {"model.generator", "[{\"linear\": 784}, \"sigmoid\"]", "model", "\"generator\" is for kind \"gan\""},
    {"eval.parzen_samples", "100", "eval", "the Parzen-window estimate of kinds \"gan\" and \"aae\""},
    {"model.prior", "\"mixture\"", "model.prior", "is the prior of kind \"aae\" (got \"vae\")"},
    {"model.activation", "\"sigmoid\"", "model.activation", "must be one of \"relu\", \"tanh\", \"leaky_relu\""},
    {"model.activation", "\"none\"", "model.activation", "must be one of"},
    {"model.output", "\"categorical\"", "model.output", "must be one of \"bernoulli\", \"gaussian\""},
    {"loss.reconstruction", "\"l1\"", "loss.reconstruction", "must be one of \"bce\", \"mse\""},
    {"loss.reduction", "\"batchmean\"", "loss.reduction", "must be one of \"sum\", \"mean\""},
    {"train.optimizer", "\"lbfgs\"", "train.optimizer", "must be one of \"adam\", \"adamw\", \"sgd\"; got \"lbfgs\""},
    {"device", "\"tpu\"", "device", "must be one of \"auto\", \"cpu\", \"cuda\""},
    {"device", "\"CPU\"", "device", "got \"CPU\""},
    // ranges
    {"model.latent_dim", "0", "model.latent_dim", "must be >= 1, got 0"},
    {"model.latent_dim", "65537", "model.latent_dim", "must be <= 65536, got 65537"},
    {"model.input_dim", "0", "model.input_dim", "must be >= 1, got 0"},
    {"model.input_dim", "-5", "model.input_dim", "must be >= 1, got -5"},
    {"model.encoder", "[512, 0]", "model.encoder[1]", "must be >= 1, got 0"},
    {"model.decoder", "[256, 70000]", "model.decoder[1]", "must be <= 65536, got 70000"},
    {"data.train_limit", "-1", "data.train_limit", "must be >= 0, got -1"},
    {"data.test_limit", "-1", "data.test_limit", "must be >= 0, got -1"},
    {"train.epochs", "-1", "train.epochs", "must be >= 0, got -1"},
    {"train.epochs", "3e9", "train.epochs", "must be <= 2147483647"},
    {"train.batch_size", "0", "train.batch_size", "must be >= 1, got 0"},
    // 2^30 rows at most: the kernels' row loops (b += 8 gridDim.x, ...) stay below INT_MAX
    {"train.batch_size", "1073741825", "train.batch_size", "must be <= 1073741824, got 1073741825"},
    {"train.lr", "0", "train.lr", "must be > 0, got 0"},
    {"train.lr", "-0.001", "train.lr", "must be > 0, got -0.001"},
    {"loss.w_rec", "-1", "loss.w_rec", "must be >= 0, got -1"},
    {"loss.w_kl", "-0.5", "loss.w_kl", "must be >= 0, got -0.5"},
    {"train.beta1", "1", "train.beta1", "must be in [0, 1), got 1"},
    {"train.beta1", "-0.1", "train.beta1", "must be in [0, 1), got -0.1"},
    {"train.beta2", "1.5", "train.beta2", "must be in [0, 1), got 1.5"},
    {"train.adam_eps", "0", "train.adam_eps", "must be > 0, got 0"},
    {"train.adam_eps", "5e-324", "train.adam_eps", "is subnormal (below 2.22507e-308), which cuvae's CPU arithmetic flushes to 0"},
    {"train.adam_eps", "1e-310", "train.adam_eps", "is subnormal"},
    {"data.validation", "1e-320", "data.validation", "9.99989e-321 is subnormal"},   // read as 0 once training starts
    {"train.adam_eps", "1e-300", "train.adam_eps", "rounds to 0 in float32"},
    {"train.lr", "1e-50", "train.lr", "1e-50 rounds to 0 in float32"},
    {"train.lr", "1e39", "train.lr", "overflows float32"},
    {"train.beta2", "0.99999998", "train.beta2", "rounds to 1 in float32"},
    {"train.beta1", "0.99999999", "train.beta1", "rounds to 1 in float32"},
    {"loss.w_kl", "1e-300", "loss.w_kl", "rounds to 0 in float32"},
    {"loss.w_rec", "1e300", "loss.w_rec", "overflows float32"},
    {"name", "\"../../elsewhere/x\"", "name", "must be a plain name"},
    {"data.validation", "0.6", "data.validation", "must be a fraction of the training set in [0, 0.5]"},
    {"data.validation", "-0.1", "data.validation", "must be a fraction"},
    {"train.early_stopping", "3", "train.early_stopping", "watches the validation loss: set data.validation"},
    {"train.early_stopping", "-1", "train.early_stopping", "must be >= 0"},
    {"name", "\"/abs/path\"", "name", "must be a plain name"},
    {"name", "\".hidden\"", "name", "must be a plain name"},
    {"train.log_interval", "0", "train.log_interval", "must be >= 1, got 0"},
    {"train.seed", "-1", "train.seed", "must be >= 0, got -1"},
    {"train.seed", "9007199254740994", "train.seed", "must be <= 9007199254740991"},
    {"train.precision", "\"bf16\"", "train.precision", "\"bf16\" is not implemented yet"},
    {"train.precision", "\"fp16\"", "train.precision", "must be one of \"fp32\", \"tf32\", \"bf16\""},
    {"train.epsilon", "\"buffer\"", "train.epsilon", "must be one of \"fused\", \"stored\""},
    {"train.cuda_graph", "1", "train.cuda_graph", "must be true or false, got a number"},
    // integers must be integral
    {"model.latent_dim", "2.5", "model.latent_dim", "must be an integer, got 2.5"},
    {"train.epochs", "1.5", "train.epochs", "must be an integer, got 1.5"},
    {"model.encoder", "[512.5]", "model.encoder[0]", "must be an integer, got 512.5"},
    {"train.seed", "1.5", "train.seed", "must be an integer, got 1.5"},
    // combination: bce needs a bernoulli output
    {"model.output", "\"gaussian\"", "loss.reconstruction", "\"bce\" needs model.output \"bernoulli\""},
    // hidden layer lists
    {"model.encoder", "[]", "model.encoder", "must not be empty"},
    {"model.encoder", SEVENTEEN, "model.encoder", "at most 16 hidden layers, got 17"},
    {"model.decoder", SEVENTEEN, "model.decoder", "at most 16 hidden layers, got 17"},
    // strings
    {"name", "\"\"", "name", "must not be empty"},
    {"data.dir", "\"\"", "data.dir", "must not be empty"},
    {"description", "\"two\\nlines\"", "description", "must be a single line"},
    {"name", "\"0123456789012345678901234567890123456789012345678901234567890123456789"
             "0123456789012345678901234567890123456789012345678901234567890123456789\"",
     "name", "too long (140 bytes, at most 127)"},
};

static int current_row;

static void check_error_message(const char *err, const char *source, const char *want_path,
                                const char *want_problem) {
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s: %s: ", source, want_path);
    CHECK(strncmp(err, prefix, strlen(prefix)) == 0, "message \"%s\" should start with \"%s\"",
          err, prefix);
    CHECK(strstr(err, want_problem) != NULL, "message \"%s\" should contain \"%s\"", err,
          want_problem);
    CHECK(strchr(err, '\n') == NULL, "message \"%s\" has a newline", err);
}

static void run_error_case(void) {
    const ErrorCase *ec = &error_cases[current_row];
    char *json = edit_json(FULL_EXAMPLE, ec->path, ec->value);
    CHECK(json != NULL, "bad test row");
    if (!json) return;
    Config cfg;
    char err[1024] = "";
    int rc = config_from_string(&cfg, json, "configs/case.json", NULL, 0, err, sizeof err);
    CHECK(rc == -1, "accepted: %s", json);
    check_error_message(err, "configs/case.json", ec->want_path, ec->want_problem);
    CHECK(is_zero(&cfg), "cfg not zeroed on error");
    free(json);
}

// whole-text cases: syntax, top level, duplicates, values cJSON can't print
typedef struct {
    const char *json;
    const char *want_where;  // what follows "<source>: "
    const char *want_problem;
} TextCase;

static const TextCase text_cases[] = {
    {"{\"name\": \"x\",\n  \"data\": }", "line 2, column 11 (byte 24)", "invalid JSON near '}'"},
    {"{\"name\": \"x\" \"data\": 1}", "line 1, column 14 (byte 13)", "invalid JSON near '\"data\": 1}'"},
    {"", "line 1, column 1 (byte 0)", "invalid JSON"},
    {"{} trailing", "line 1, column 4 (byte 3)", "invalid JSON near 'trailing'"},
    // a trailing comma: named where it is (cJSON stops after the closing bracket, or at the end)
    {"{\"name\": \"x\",\n \"data\": {\"dir\": \"d\",\n },\n \"train\": {}}", "line 2, column 21 (byte 34)",
     "a comma before '}' (JSON allows no trailing comma)"},
    {"{\"a\": [1, 2,]}", "line 1, column 12 (byte 11)", "a comma before ']' (JSON allows no trailing comma)"},
    {"{\"name\": \"a,}\" x}", "line 1, column 16 (byte 15)", "invalid JSON near 'x}'"},   // ",}" in a string
    {"[1, 2]", "top level", "must be a JSON object, got an array"},
    {"\"just a string\"", "top level", "must be a JSON object, got a string"},
    {"42", "top level", "must be a JSON object, got a number"},
    {"{\"name\": \"a\", \"name\": \"b\"}", "name", "duplicate key"},
    {"{\"name\": \"a\", \"data\": {\"dir\": \"x\", \"dir\": \"y\"}}", "data.dir", "duplicate key"},
};

static void run_text_case(void) {
    const TextCase *tc = &text_cases[current_row];
    Config cfg;
    char err[1024] = "";
    int rc = config_from_string(&cfg, tc->json, "bad.json", NULL, 0, err, sizeof err);
    CHECK(rc == -1, "accepted: %s", tc->json);
    check_error_message(err, "bad.json", tc->want_where, tc->want_problem);
}

static void test_error_infinite_number(void) {
    // 1e999 parses to infinity, which no field accepts
    char *json = replace_text(FULL_EXAMPLE, "\"lr\": 0.001", "\"lr\": 1e999");
    Config cfg;
    char err[1024] = "";
    int rc = config_from_string(&cfg, json, "inf.json", NULL, 0, err, sizeof err);
    CHECK(rc == -1, "accepted lr 1e999");
    check_error_message(err, "inf.json", "train.lr", "must be a finite number");
    free(json);
    json = replace_text(FULL_EXAMPLE, "\"latent_dim\": 2", "\"latent_dim\": 1e999");
    rc = config_from_string(&cfg, json, "inf.json", NULL, 0, err, sizeof err);
    CHECK(rc == -1, "accepted latent_dim 1e999");
    check_error_message(err, "inf.json", "model.latent_dim",
                        "must be an integer, got a number beyond the range of a double (over 1.8e308)");
    free(json);
}

static void test_error_exact_message(void) {
    // the documented message shape, byte for byte
    const char *set = "model.latent_dim=0";
    Config cfg;
    char err[1024] = "";
    config_from_string(&cfg, FULL_EXAMPLE, "configs/x.json", &set, 1, err, sizeof err);
    CHECK(strcmp(err, "--set model.latent_dim=0 (over configs/x.json): model.latent_dim: must be >= 1, got 0") == 0,
          "got \"%s\"", err);
    // a key given twice, the bad value first: the message names the --set whose value is used
    const char *twice[2] = {"model.latent_dim=0", "model.latent_dim=-1"};
    config_from_string(&cfg, FULL_EXAMPLE, "configs/x.json", twice, 2, err, sizeof err);
    CHECK(strncmp(err, "--set model.latent_dim=-1 (over configs/x.json): model.latent_dim:", 66) == 0,
          "a key set twice: got \"%s\"", err);
    // a small error buffer truncates instead of overflowing
    char small[16];
    config_from_string(&cfg, FULL_EXAMPLE, "configs/x.json", &set, 1, small, sizeof small);
    CHECK(strcmp(small, "configs/x.json:") == 0, "got \"%s\"", small);
}

static void test_error_missing_file(void) {
    Config cfg;
    char err[1024] = "";
    int rc = config_load(&cfg, "tests/fixtures/no_such_config.json", NULL, 0, err, sizeof err);
    CHECK(rc == -1, "missing file accepted");
    CHECK(strstr(err, "tests/fixtures/no_such_config.json") != NULL, "message names the file: %s",
          err);
    CHECK(strstr(err, "cannot open") != NULL, "message says why: %s", err);
    CHECK(is_zero(&cfg), "cfg not zeroed on error");
}

// the keys added for the lecture experiments, accepted and combined
static void test_lecture_keys(void) {
    Config cfg;
    char err[1024] = "";
    const char *cvae_overrides[] = {"model.kind=cvae"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", cvae_overrides, 1, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.model.kind == MODEL_CVAE && cfg.model.condition == CONDITION_LABEL && cfg.model.n_classes == 10,
          "cvae defaults to the label condition");
    const char *warmup[] = {"loss.kl_warmup_epochs=2.5"};   // (not with capacity: its C ramps instead)
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", warmup, 1, err, sizeof err) == 0 &&
          cfg.loss.kl_warmup_epochs == 2.5, "warm-up: %s", err);
    const char *sched[] = {"loss.capacity={\"max_nats\": 25, \"epochs\": 10, \"gamma\": 10}",
                           "eval.iw_samples=5000", "eval.iw_examples=1000", "train.lr_schedule=burda",
                           "train.full_epochs=3280"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", sched, 5, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.loss.has_capacity && cfg.loss.capacity_max_nats == 25 &&
          cfg.loss.capacity_epochs == 10 && cfg.loss.capacity_gamma == 10, "schedule values");
    CHECK(cfg.eval.iw_samples == 5000 && cfg.eval.iw_examples == 1000 && cfg.eval.iw_batch == 4096, "eval values");
    CHECK(cfg.train.lr_schedule == LR_BURDA && cfg.train.full_epochs == 3280, "train values");
    // round trip with every new key set
    char *json = config_to_json(&cfg);
    Config again;
    CHECK(config_from_string(&again, json, "dump", NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(&cfg, &again, sizeof cfg) == 0 || strcmp(cfg.source, again.source) != 0, "round trip");
    snprintf(again.source, sizeof again.source, "%s", cfg.source);
    memcpy(again.sets, cfg.sets, sizeof again.sets);   // (the --sets applied: none to the dump)
    CHECK(memcmp(&cfg, &again, sizeof cfg) == 0, "round trip with every new key");
    free(json);
    // Burda et al.'s schedule: stage i lasts 3^i epochs at lr 10^(-i/7)
    CHECK(config_learning_rate(&cfg, 1) == cfg.train.lr, "stage 0");
    CHECK(fabs(config_learning_rate(&cfg, 2) - cfg.train.lr * pow(10, -1.0 / 7)) < 1e-15, "stage 1 starts at epoch 2");
    CHECK(fabs(config_learning_rate(&cfg, 4) - cfg.train.lr * pow(10, -1.0 / 7)) < 1e-15, "stage 1 ends at epoch 4");
    CHECK(fabs(config_learning_rate(&cfg, 5) - cfg.train.lr * pow(10, -2.0 / 7)) < 1e-15, "stage 2 at epoch 5");
    CHECK(fabs(config_learning_rate(&cfg, 3280) - cfg.train.lr * pow(10, -1.0)) < 1e-15, "last epoch 3280");
    // combinations that make no sense
    const char *both[] = {"loss.free_bits=0.5", "loss.capacity={\"max_nats\": 25, \"epochs\": 10, \"gamma\": 10}"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", both, 2, err, sizeof err) == -1 &&
          strstr(err, "--set loss.free_bits=0.5 (over x.json): loss.free_bits: cannot be combined"),
          "free bits + capacity: %s", err);
    // capacity's gamma |KL - C| replaces w_kl KL and its ramp the warm-up: either would be ignored
    const char *cap_warmup[] = {"loss.kl_warmup_epochs=2", "loss.capacity={\"max_nats\": 25, \"epochs\": 10, \"gamma\": 10}"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", cap_warmup, 2, err, sizeof err) == -1 &&
          strstr(err, "loss.kl_warmup_epochs: cannot be combined with loss.capacity"), "warm-up + capacity: %s", err);
    const char *cap_beta[] = {"loss.w_kl=4", "loss.capacity={\"max_nats\": 25, \"epochs\": 10, \"gamma\": 10}"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", cap_beta, 2, err, sizeof err) == -1 &&
          strstr(err, "loss.w_kl: is 4, but loss.capacity weighs the KL by capacity.gamma instead"), "w_kl + capacity: %s", err);
    const char *ae_sched[] = {"model.kind=ae", "loss.kl_warmup_epochs=1"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", ae_sched, 2, err, sizeof err) == -1 &&
          strstr(err, "--set loss.kl_warmup_epochs=1 (over x.json): loss: KL schedules"), "ae + warmup: %s", err);
    // a message about a section's keys together names the --sets without which the config reads
    const char *vq_parzen[] = {"model.kind=ae", "eval.parzen_samples=20"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", vq_parzen, 2, err, sizeof err) == -1 &&
          strncmp(err, "--set eval.parzen_samples=20 (over x.json): eval: parzen_samples", 63) == 0,
          "parzen on an ae: %s", err);   // (not model.kind: without it the config is still wrong)
    // ... and none when the file alone is wrong: a --set that changes nothing is not blamed
    const char *ae_file[] = {"loss.free_bits=0"};
    const char *ae_json = "{\"name\": \"t\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"d\"}, \"model\": {\"kind\": \"ae\", "
                          "\"input_dim\": 784, \"encoder\": [8], \"latent_dim\": 2, \"decoder\": [8]}, "
                          "\"loss\": {\"kl_warmup_epochs\": 5}, \"train\": {\"epochs\": 1, \"batch_size\": 4, "
                          "\"lr\": 0.001}}";
    CHECK(config_from_string(&cfg, ae_json, "ae.json", ae_file, 1, err, sizeof err) == -1 &&
          strncmp(err, "ae.json: loss: KL schedules", 27) == 0, "a --set that changes nothing named: %s", err);
    const char *cvae_none[] = {"model.kind=cvae", "model.condition=none"};
    CHECK(config_from_string(&cfg, FULL_EXAMPLE, "x.json", cvae_none, 2, err, sizeof err) == -1 &&
          strstr(err, "--set model.condition=none (over x.json): model.condition: kind \"cvae\" needs"),
          "cvae without label: %s", err);
}

// ----------------------------------------------------------------------------
// The unit each loss is reported in: nats only for a Bernoulli NLL summed over pixels; an AE's
// loss is its reconstruction alone (no KL), so its total is in the reconstruction's unit.
static void test_loss_units(void) {
    struct { const char *sets[3]; bool nats, has_kl; const char *rec, *total; } cases[] = {
        {{"model.kind=\"vae\"", "loss.reconstruction=\"bce\"", "loss.reduction=\"sum\""}, true, true, "nats", "nats/example"},
        {{"model.kind=\"vae\"", "loss.reconstruction=\"mse\"", "loss.reduction=\"mean\""}, false, true, "MSE/pixel",
         "rec + KL in different units (not a log-likelihood)"},
        {{"model.kind=\"vae\"", "loss.reconstruction=\"bce\"", "loss.reduction=\"mean\""}, false, true, "nats/pixel",
         "rec + KL in different units (not a log-likelihood)"},
        {{"model.kind=\"ae\"", "loss.reconstruction=\"mse\"", "loss.reduction=\"mean\""}, false, false, "MSE/pixel", "MSE/pixel"},
        {{"model.kind=\"ae\"", "loss.reconstruction=\"bce\"", "loss.reduction=\"sum\""}, true, false, "nats", "nats/example"},
        {{"model.kind=\"ae\"", "loss.reconstruction=\"mse\"", "loss.reduction=\"sum\""}, false, false, "SSE",
         "SSE (the reconstruction alone)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Config cfg;
        char err[512] = "";
        if (config_from_string(&cfg, FULL_EXAMPLE, "units", cases[i].sets, 3, err, sizeof err) != 0) {
            CHECK(0, "case %zu: %s", i, err);
            continue;
        }
        LossUnits u = loss_units(&cfg);
        CHECK(u.nats == cases[i].nats && u.has_kl == cases[i].has_kl && strcmp(u.rec, cases[i].rec) == 0 &&
              strcmp(u.total, cases[i].total) == 0, "case %zu (%s %s %s): nats %d kl %d rec %s total %s", i,
              cases[i].sets[0], cases[i].sets[1], cases[i].sets[2], u.nats, u.has_kl, u.rec, u.total);
    }
}

// "base": config inheritance

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void test_base_configs(void) {
    char dir[] = "/tmp/cuvae_test_base_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return;
    }
    char path[1300], sub[700], err[1024] = "";
    snprintf(sub, sizeof sub, "%s/sub", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/base.json", dir);
    write_text(path, FULL_EXAMPLE);
    // a child in a subfolder: its base is found relative to its own folder
    snprintf(path, sizeof path, "%s/child.json", sub);
    write_text(path, "{\"base\": \"../base.json\", \"name\": \"child\", "
                     "\"model\": {\"latent_dim\": 7, \"encoder\": [33]}, \"train\": {\"lr\": 0.5}}");
    Config base, child;
    CHECK(config_from_string(&base, FULL_EXAMPLE, "full", NULL, 0, err, sizeof err) == 0, "%s", err);
    const char *override[1] = {"train.epochs=9"};
    int rc = config_load(&child, path, override, 1, err, sizeof err);
    CHECK(rc == 0, "child: %s", err);
    if (rc == 0) {
        CHECK(strcmp(child.name, "child") == 0, "name %s", child.name);
        CHECK(child.model.latent_dim == 7, "latent %d (object keys merge)", child.model.latent_dim);
        CHECK(child.model.n_encoder == 1 && child.model.encoder[0] == 33, "arrays replace");
        CHECK(child.model.n_decoder == base.model.n_decoder && child.model.decoder[0] == base.model.decoder[0],
              "untouched keys come from the base");
        CHECK(child.train.lr == 0.5 && child.train.batch_size == base.train.batch_size, "train merged");
        CHECK(child.train.epochs == 9, "--set applies after the merge");
        char *dump = config_to_json(&child);
        CHECK(strstr(dump, "\"base\"") == NULL, "the effective config holds no base key");
        free(dump);
    }
    // null removes a key the base sets (a JSON merge patch): the key's default again, nested too;
    // --set KEY=null removes one as well, and one that is not there is refused
    // (over a base whose beta2 and activation are not the defaults, so a skipped null would show)
    char *base2 = edit_json(FULL_EXAMPLE, "train.beta2", "0.99");
    char *base2b = base2 ? edit_json(base2, "model.activation", "\"tanh\"") : NULL;
    CHECK(base2b != NULL, "edit_json of the second base");
    snprintf(path, sizeof path, "%s/base2.json", dir);
    if (base2b) write_text(path, base2b);
    free(base2);
    free(base2b);
    snprintf(path, sizeof path, "%s/sub/removes.json", dir);
    write_text(path, "{\"base\": \"../base2.json\", \"description\": null, \"train\": {\"beta2\": null}}");
    const char *removals[1] = {"model.activation=null"};
    rc = config_load(&child, path, removals, 1, err, sizeof err);
    CHECK(rc == 0, "null in a child: %s", err);
    if (rc == 0) {
        Config defaults;
        CHECK(config_from_string(&defaults, MINIMAL, "minimal", NULL, 0, err, sizeof err) == 0, "%s", err);
        CHECK(child.description[0] == '\0' && base.description[0] != '\0', "description removed: \"%s\"",
              child.description);
        CHECK(child.train.beta2 == defaults.train.beta2 && defaults.train.beta2 != 0.99,
              "nested key removed: beta2 %g (the base's 0.99)", child.train.beta2);
        CHECK(child.model.activation == defaults.model.activation && defaults.model.activation != ACT_TANH,
              "--set model.activation=null: the default, not the base's tanh");
        CHECK(child.train.lr == base.train.lr, "the rest from the base");
        char *dump = config_to_json(&child);
        CHECK(strstr(dump, "null") == NULL, "the effective config holds no null: %s", dump);
        free(dump);
    }
    const char *absent[1] = {"train.no_such_key=null"};
    CHECK(config_load(&child, path, absent, 1, err, sizeof err) != 0 &&
              strstr(err, "--set train.no_such_key=null: null removes a key, and the config has no \"train.no_such_key\""),
          "--set of null for an absent key: %s", err);
    const char *absent_parent[1] = {"nothing.here=null"};
    CHECK(config_load(&child, path, absent_parent, 1, err, sizeof err) != 0 &&
              strstr(err, "null removes a key, and the config has no \"nothing\""),
          "--set of null under an absent object: %s", err);
    snprintf(path, sizeof path, "%s/null_not_in_base.json", dir);   // nothing to remove: refused
    write_text(path, "{\"base\": \"base.json\", \"loss\": {\"free_bits\": null}}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 &&
              strstr(err, "loss.free_bits: must be a number, got null"),
          "null with nothing under it: %s", err);
    // errors: each names the file and the key
    snprintf(path, sizeof path, "%s/missing.json", dir);
    write_text(path, "{\"base\": \"nope.json\", \"name\": \"x\"}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "missing.json: base: ") &&
          strstr(err, "nope.json: cannot"), "missing base: %s", err);
    snprintf(path, sizeof path, "%s/number.json", dir);
    write_text(path, "{\"base\": 3}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "number.json: base: must be the file name"),
          "base not a string: %s", err);
    snprintf(path, sizeof path, "%s/a.json", dir);
    write_text(path, "{\"base\": \"b.json\"}");
    snprintf(path, sizeof path, "%s/b.json", dir);
    write_text(path, "{\"base\": \"a.json\"}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "levels of base configs"),
          "a cycle: %s", err);
    snprintf(path, sizeof path, "%s/broken.json", dir);
    write_text(path, "{\"name\": ");
    snprintf(path, sizeof path, "%s/uses_broken.json", dir);
    write_text(path, "{\"base\": \"broken.json\"}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "broken.json: line 1"),
          "syntax error in a base names the base: %s", err);
    // a duplicate key in either file is refused before the merge (which would keep one silently)
    snprintf(path, sizeof path, "%s/dup_child.json", dir);
    write_text(path, "{\"base\": \"base.json\", \"train\": {\"lr\": 0.1, \"lr\": 0.2}}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "dup_child.json: train.lr: duplicate key"),
          "duplicate key in a config with a base: %s", err);
    snprintf(path, sizeof path, "%s/dup_base.json", dir);
    write_text(path, "{\"name\": \"a\", \"name\": \"b\"}");
    snprintf(path, sizeof path, "%s/uses_dup.json", dir);
    write_text(path, "{\"base\": \"dup_base.json\"}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "dup_base.json: name: duplicate key"),
          "duplicate key in a base names the base: %s", err);
    // a NUL byte in a base is refused like one in the config itself
    snprintf(path, sizeof path, "%s/nul_base.json", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite("{\"name\": \"a\0\"}", 1, 15, f);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/uses_nul.json", dir);
    write_text(path, "{\"base\": \"nul_base.json\"}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "nul_base.json: byte 11: a NUL byte"),
          "NUL byte in a base: %s", err);
    // a bad value may come from a base: the message names the files merged
    snprintf(path, sizeof path, "%s/bad_value.json", dir);
    write_text(path, "{\"base\": \"base.json\", \"train\": {\"lr\": -1}}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 && strstr(err, "bad_value.json (merged over ") &&
          strstr(err, "base.json): train.lr"), "a value error names the merged files: %s", err);
    // a text that is no file (a checkpoint's stored config, always complete) names no base: it
    // would read another file to build the model (the base exists here: refused all the same)
    snprintf(path, sizeof path, "{\"base\": \"%s/base.json\", \"name\": \"x\"}", dir);
    CHECK(config_from_string(&child, path, "ck.safetensors (__metadata__.config)", NULL, 0, err, sizeof err) != 0 &&
          strstr(err, "ck.safetensors (__metadata__.config): base: a stored config is complete and names no base config"),
          "a stored config with a base: %s", err);
    // a raw control character inside a string (JSON wants it escaped; cJSON takes it), in a
    // base too; escaped it reads
    snprintf(path, sizeof path, "%s/tab_base.json", dir);
    write_text(path, "{\"name\": \"a\tb\"}");
    snprintf(path, sizeof path, "%s/uses_tab.json", dir);
    write_text(path, "{\"base\": \"tab_base.json\"}");
    CHECK(config_load(&child, path, NULL, 0, err, sizeof err) != 0 &&
          strstr(err, "tab_base.json: line 1, column 12 (byte 11): a raw control character (0x09) in a string"),
          "a raw tab in a base: %s", err);
    char *raw = strdup(FULL_EXAMPLE);
    char *quote = raw ? strstr(raw, "\"name\": \"") : NULL;
    CHECK(quote != NULL, "FULL_EXAMPLE has a name");
    if (quote) {
        quote[9] = '\x1b';   // the name's first character
        CHECK(config_from_string(&child, raw, "esc.json", NULL, 0, err, sizeof err) != 0 &&
              strstr(err, "esc.json: line ") && strstr(err, "a raw control character (0x1b) in a string"),
              "a raw ESC in a string: %s", err);
    }
    free(raw);
    const char *tab_set[1] = {"description=\"a\tb\""}, *escaped_set[1] = {"description=\"a\\tb\""};
    CHECK(config_from_string(&child, FULL_EXAMPLE, "x.json", tab_set, 1, err, sizeof err) != 0 &&
          strstr(err, "--set description: a raw control character (0x09)"), "a raw tab in a --set JSON string: %s", err);
    CHECK(config_from_string(&child, FULL_EXAMPLE, "x.json", escaped_set, 1, err, sizeof err) == 0 &&
          strcmp(child.description, "a\tb") == 0, "an escaped tab in a --set JSON string is read: %s", err);
    test_remove_tree(dir);
}

// every lecture config with a base resolves (their effective configs are checked by cli_lectures)
static void test_lecture_configs_resolve(void) {
    const char *names[] = {"ae_dim2", "ae_dim10", "vae_dim10", "beta_vae_dim10", "capacity_vae_dim10", "cvae_dim2",
                           "deck003_dim2", "deck003_dim16", "kl_only_dim2", "mse_only_dim2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256], err[1024] = "";
        Config cfg;
        snprintf(path, sizeof path, "configs/lectures/%s.json", names[i]);
        CHECK(config_load(&cfg, path, NULL, 0, err, sizeof err) == 0, "%s: %s", path, err);
        CHECK(strcmp(cfg.name, names[i]) == 0, "%s: name %s", path, cfg.name);
    }
}

// set_error: one line whatever it quotes; printable UTF-8 as it is, control characters (C0, DEL, the C1
// controls such as U+009B, the terminal's one-byte ESC [), the line separators and bytes that are not
// well-formed UTF-8 as \xHH
// Half-open ranges refuse their open end itself (the tables above try values far outside):
// a gan's label_smoothing 0.5 (one number, and a range's top), a VQ codebook's restart_dead 1,
// a transposed convolution's output_padding equal to its stride.
static void test_bounds_at_their_open_ends(void) {
    Config cfg;
    char err[1024] = "";
    const char *smoothing_half[] = {"model.label_smoothing=0.5"}, *smoothing_range[] = {"model.label_smoothing=[0.1, 0.5]"};
    const char *restart_one[] = {"model.codebook.restart_dead=1"};
    int rc = config_load(&cfg, "configs/lectures/dcgan.json", smoothing_half, 1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "model.label_smoothing: must be in [0, 0.5)"), "label_smoothing 0.5: rc %d \"%s\"", rc,
          err);
    rc = config_load(&cfg, "configs/lectures/dcgan.json", smoothing_range, 1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "model.label_smoothing") && strstr(err, "must be in [0, 0.5)"),
          "label_smoothing [0.1, 0.5]: rc %d \"%s\"", rc, err);
    rc = config_load(&cfg, "configs/lectures/vq_vae_k256.json", restart_one, 1, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "model.codebook.restart_dead: must be in [0, 1)"), "restart_dead 1: rc %d \"%s\"", rc,
          err);
    const char *json =
        "{\"name\": \"conv\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\"}, \"model\": {"
        "\"kind\": \"vae\", \"input_dim\": 64, \"latent_dim\": 3, \"encoder\": [{\"conv2d\": 3, \"kernel\": 4,"
        " \"stride\": 2, \"padding\": 1}, \"flatten\"], \"decoder\": [{\"linear\": 48}, {\"reshape\": [3, 4, 4]},"
        " {\"conv_transpose2d\": 1, \"kernel\": 4, \"stride\": 2, \"padding\": 1, \"output_padding\": 2}]},"
        " \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01}}";
    rc = config_from_string(&cfg, json, "conv.json", NULL, 0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "output_padding") && strstr(err, "must be smaller than the stride (2)"),
          "output_padding = stride: rc %d \"%s\"", rc, err);
}

static void test_error_escapes(void) {
    char err[256];
    set_error(err, sizeof err, "%s", "a\nb\x1b[31mc\x7f");
    CHECK(strcmp(err, "a\\nb\\x1b[31mc\\x7f") == 0, "C0 and DEL: %s", err);
    set_error(err, sizeof err, "%s", "0005\xc2\x9b" "31mX.png \xc2\x85 \xe2\x80\xa8");
    CHECK(strcmp(err, "0005\\xc2\\x9b" "31mX.png \\xc2\\x85 \\xe2\\x80\\xa8") == 0, "C1 controls, U+2028: %s", err);
    set_error(err, sizeof err, "%s", "\x9b \xff\xfe \xc0\xaf \xed\xa0\x80 \xe2\x82");
    CHECK(strcmp(err, "\\x9b \\xff\\xfe \\xc0\\xaf \\xed\\xa0\\x80 \\xe2\\x82") == 0,
          "stray, invalid, overlong, surrogate and cut bytes: %s", err);
    set_error(err, sizeof err, "%s", "caf\xc3\xa9 \xc2\xa0 \xe2\x82\xac \xf0\x9f\x98\x80");
    CHECK(strcmp(err, "caf\xc3\xa9 \xc2\xa0 \xe2\x82\xac \xf0\x9f\x98\x80") == 0, "printable UTF-8 kept: %s", err);
    char small[5];
    set_error(small, sizeof small, "%s", "ab\xe2\x82\xac");   // room for "ab" and 2 bytes besides the NUL
    CHECK(strcmp(small, "ab") == 0, "a character that does not fit is left out whole: %s", small);
}

int main(void) {
    test_run("full example", test_full_example);
    test_run("lecture keys", test_lecture_keys);
    test_run("defaults", test_defaults);
    test_run("enum values", test_enum_values);
    test_run("activation_name", test_activation_name);
    test_run("shipped configs", test_shipped_configs);
    test_run("round trip", test_round_trip);
    test_run("round trip random doubles", test_round_trip_random_doubles);
    test_run("override values", test_override_values);
    test_run("override creates section", test_override_creates_section);
    test_run("override with config_load", test_override_with_config_load);
    test_run("override named in a cross-key error", test_override_named_in_cross_key_error);
    test_run("key origin for messages after loading", test_key_origin);
    test_run("JSON number grammar", test_json_number_grammar);
    test_run("override values rejected", test_override_errors_in_values);
    test_run("override malformed", test_override_malformed);

    char name[160];
    for (current_row = 0; current_row < (int)(sizeof error_cases / sizeof error_cases[0]);
         current_row++) {
        const ErrorCase *ec = &error_cases[current_row];
        snprintf(name, sizeof name, "error %s=%.40s", ec->path, ec->value ? ec->value : "(deleted)");
        test_run(name, run_error_case);
    }
    for (current_row = 0; current_row < (int)(sizeof text_cases / sizeof text_cases[0]);
         current_row++) {
        snprintf(name, sizeof name, "error text case %d", current_row);
        test_run(name, run_text_case);
    }
    test_run("error infinite number", test_error_infinite_number);
    test_run("error exact message", test_error_exact_message);
    test_run("error missing file", test_error_missing_file);
    test_run("loss units", test_loss_units);
    test_run("base configs", test_base_configs);
    test_run("lecture configs resolve their bases", test_lecture_configs_resolve);
    test_run("errors escape control characters", test_error_escapes);
    test_run("bounds at their open ends", test_bounds_at_their_open_ends);
    return test_finish("test_config");
}

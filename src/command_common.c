// command_common.c: implements the shared part of commands.h: the error exit, a checkpoint's model on
// a fresh backend, the checks of -o against a prior's VQ-VAE and of --set against the eval section.
#include "cuvae/commands.h"
#include "cuvae/checkpoint.h"
#include "cuvae/distributed.h"
#include "cuvae/run_folder.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

int command_fail(const char *message) {
    if (message[0]) dist_print_error(message);
    return CUVAE_EXIT_BAD_INPUT;
}

int command_load_checkpoint_model(const Args *a, int max_batch, const FileStamp *since, Config *cfg,
                                  Backend **be_out, Model *m, char *err, size_t errlen) {
    FileStamp first;
    if (!since) {
        file_stamp(a->positional, &first);
        since = &first;
    }
    if (checkpoint_read_config(a->positional, cfg, a->overrides, a->n_overrides, err, errlen) != 0) return -1;
    Backend *be = backend_create(cfg->device, err, errlen);
    if (!be) return -1;
    backend_configure_from(be, cfg);   // train.precision: the checkpoint's, as its eval.json was computed
    if (backend_precision_note(be, cfg)) fputs(backend_precision_note(be, cfg), stderr);
    if (model_create_forward_only(m, cfg, be, max_batch, err, errlen) != 0) {
        be->destroy(be);
        return -1;
    }
    if (checkpoint_load_params(m, a->positional, err, errlen) != 0 ||
        checkpoint_check_unchanged(a->positional, since, err, errlen) != 0) {
        model_destroy(m);
        be->destroy(be);
        return -1;
    }
    *be_out = be;
    return 0;
}

int command_check_output_not_prior_of(const char *command, const char *output, const char *checkpoint,
                                      const char *const *overrides, int n_overrides, char *err, size_t errlen) {
    Config c;
    char ignored[512];   // (a checkpoint that does not read is refused, naming it, when it is loaded)
    if (!output || checkpoint_read_config(checkpoint, &c, overrides, n_overrides, ignored, sizeof ignored) != 0 ||
        !c.model.prior_of[0])
        return 0;
    const char *inputs[1] = {c.model.prior_of};
    return run_folder_check_output(command, "-o", output, inputs, 1, err, errlen);
}

bool command_set_gives_key(const char *set, const char *section_name, const char *prefix) {
    const size_t length = strlen(prefix), section_length = strlen(section_name);
    if (strncmp(set, section_name, section_length) != 0) return false;
    if (set[section_length] == '.') return strncmp(set + section_length + 1, prefix, length) == 0;
    if (set[section_length] != '=') return false;
    cJSON *section = cJSON_Parse(set + section_length + 1);   // (not JSON: the config's own error names it later)
    bool gives = false;
    const cJSON *item;
    if (cJSON_IsObject(section))
        cJSON_ArrayForEach(item, section) gives = gives || strncmp(item->string, prefix, length) == 0;
    cJSON_Delete(section);
    return gives;
}

int command_refuse_evaluation_sets(const char *command, const char *const *overrides, int n, char *err,
                                   size_t errlen) {
    for (int i = 0; i < n; i++) {
        const char *set = overrides[i];
        const int key = (int)strcspn(set, "=");
        if (command_set_gives_key(set, "eval", "iw_"))
            return set_error(err, errlen, "%s: --set %.*s: %s draws no importance-weighted bound (eval.iw_samples / "
                             "eval.iw_examples are the training run's, eval.iw_batch is read by cuvae eval --iw K, which "
                             "gives one)", command, key, set, command);
        if (command_set_gives_key(set, "eval", "parzen_"))
            return set_error(err, errlen, "%s: --set %.*s: %s draws no Parzen-window estimate (eval.parzen_samples / "
                             "eval.parzen_examples are read by cuvae train and cuvae eval of a gan or an aae)", command,
                             key, set, command);
    }
    return 0;
}

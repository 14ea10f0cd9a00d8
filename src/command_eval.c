// command_eval.c: `cuvae eval CKPT`: the checks of its options against the checkpoint's run, the
// run's test data (a gan's validation split too), the model, the report (eval.c) as one JSON line
// on stdout and in -o's file.
#include "cuvae/commands.h"
#include "cuvae/checkpoint.h"
#include "cuvae/dataset.h"
#include "cuvae/eval.h"
#include "cuvae/prior.h"
#include "cuvae/run_folder.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int command_eval(int argc, char **argv) {
    char err[1024];
    Args a;
    if (parse_args(argc, argv, "eval", &a, err, sizeof err) != 0) return command_fail(err);
    char who[800];   // (a refusal of the model's numbers names the command and the checkpoint)
    snprintf(who, sizeof who, "eval: %s", a.positional);

    Config cfg, stored;
    FileStamp first_read;   // the data are chosen from this read; the weights must come from the same file
    file_stamp(a.positional, &first_read);
    if (checkpoint_read_config(a.positional, &cfg, a.overrides, a.n_overrides, err, sizeof err) != 0) return command_fail(err);
    if (command_check_output_not_prior_of("eval", a.json_out, a.positional, a.overrides, a.n_overrides,
                                  err, sizeof err) != 0)
        return command_fail(err);
    // the config's eval.iw_* are the training run's final evaluation: --set of them (in any
    // form) would be ignored here, where the bound is --iw K / --iw-examples N
    const bool stored_read =
        a.n_overrides > 0 && checkpoint_read_config(a.positional, &stored, NULL, 0, err, sizeof err) == 0;
    if (stored_read &&
        (stored.eval.iw_samples != cfg.eval.iw_samples || stored.eval.iw_examples != cfg.eval.iw_examples))
        return command_fail("eval: --set eval.iw_samples / eval.iw_examples: the importance-sampled bound of cuvae eval is "
                    "--iw K (--iw-examples N); eval.iw_samples and eval.iw_examples are the training run's");
    const bool gan = model_kind_info(cfg.model.kind)->adversarial;   // (the Parzen estimate)
    // a gan's Parzen sigma is chosen on the validation split its run held out: another fraction or
    // training limit would carve a "validation" split holding images the model trained on
    if (gan && stored_read &&
        (stored.data.validation != cfg.data.validation || stored.data.train_limit != cfg.data.train_limit)) {
        char images[48] = "all the";
        if (stored.data.train_limit > 0) snprintf(images, sizeof images, "the first %d", stored.data.train_limit);
        snprintf(err, sizeof err, "eval: %s: --set data.validation / data.train_limit: the Parzen sigma is chosen on "
                 "the validation split the run held out (data.validation %g of %s training images); another split "
                 "would hold images the %s trained on", a.positional, stored.data.validation, images,
                 model_kind_name(cfg.model.kind));
        return command_fail(err);
    }
    // any other kind's eval uses the test images alone (data_cfg below): the training split's keys
    // would be taken and not read
    bool sets_split = false;   // (a data={...} without them: the run's values, unread here anyway)
    for (int i = 0; i < a.n_overrides; i++)
        sets_split = sets_split || command_set_gives_key(a.overrides[i], "data", "train_limit") ||
                     command_set_gives_key(a.overrides[i], "data", "validation");
    if (!gan && stored_read && sets_split &&
        (stored.data.validation != cfg.data.validation || stored.data.train_limit != cfg.data.train_limit)) {
        snprintf(err, sizeof err, "eval: %s: --set data.validation / data.train_limit: eval of a %s evaluates on "
                 "the test images alone (the run's training images and its validation split are not used)",
                 a.positional, model_kind_name(cfg.model.kind));
        return command_fail(err);
    }
    const char *z_refusal = model_kind_info(cfg.model.kind)->z_refusal;
    if (a.z_mode && z_refusal) {
        snprintf(err, sizeof err, "eval: --z chooses how a VAE's z is drawn; %s", cfg.model.prior_of[0]
                 ? "a pixelcnn prior has no latent (its test loss is the exact -log p(codes))" : z_refusal);
        return command_fail(err);
    }
    if (eval_iw_applies(&cfg, a.iw_k, err, sizeof err) != 0) return command_fail(err);
    Dataset train_set, test_set, val_set;
    memset(&val_set, 0, sizeof val_set);
    Config data_cfg;   // the run's data: its carve, splits and binarization (train.seed) are the training run's
    if (checkpoint_data_config(a.positional, &cfg, a.overrides, a.n_overrides, &data_cfg, err, sizeof err) != 0) return command_fail(err);
    // the test split alone (mnist, fashion-mnist: the t10k files), a gan's training set too (its validation split)
    memset(&train_set, 0, sizeof train_set);
    if (prior_dataset_load(&data_cfg, gan ? &train_set : NULL, &test_set, err, sizeof err) != 0) return command_fail(err);
    char data_files[DATASET_INPUT_FILES_MAX][DATASET_INPUT_PATH];   // -o must not replace them either
    const char *inputs[1 + DATASET_INPUT_FILES_MAX] = {a.positional};   // (the checkpoint first, as parse_args gave it)
    const int n_data_files = dataset_input_files(&data_cfg, data_files, DATASET_INPUT_FILES_MAX);
    for (int i = 0; i < n_data_files; i++) inputs[1 + i] = data_files[i];
    if ((a.json_out && run_folder_check_output("eval", "-o", a.json_out, inputs, 1 + n_data_files, err,
                                               sizeof err) != 0) ||
        checkpoint_check_carved_test_set(a.positional, &test_set, err, sizeof err) != 0) {
        dataset_free(&train_set);
        dataset_free(&test_set);
        return command_fail(err);
    }
    char notes[3000];
    dataset_load_notes(&data_cfg, gan ? &train_set : NULL, &test_set, notes, sizeof notes);
    fputs(notes, stderr);
    if (gan) {   // the validation split the run held out (the same seed and fraction): sigma is chosen on it
        char why[512];
        if (dataset_split_validation(&train_set, &val_set, cfg.data.validation, data_cfg.train.seed, why,
                                     sizeof why) != 0) {
            dataset_free(&train_set);
            dataset_free(&test_set);
            snprintf(err, sizeof err, "eval: %s: %s", a.positional, why);
            return command_fail(err);
        }
        eval_prepare_test_set(&data_cfg, &val_set);   // binarized once, as the run saw it
    }
    dataset_free(&train_set);
    eval_prepare_test_set(&data_cfg, &test_set);
    int iw_k = a.iw_k >= 0 ? a.iw_k : 0;
    if (a.iw_examples > 0 && iw_k == 0) {
        dataset_free(&test_set);
        return command_fail("eval: --iw-examples needs --iw K");
    }
    if (iw_k > 0 && a.z_mode && strcmp(a.z_mode, "mean") == 0) {   // else --iw would be dropped unsaid
        dataset_free(&test_set);
        dataset_free(&val_set);
        return command_fail("eval: --iw K draws K samples of z per example; it cannot be combined with --z mean");
    }
    int batch = eval_model_rows(iw_k > 0 ? cfg.eval.iw_batch : 1000, test_set.n, iw_k, a.iw_examples,
                                gan ? cfg.eval.parzen_samples : 0);
    Backend *be;
    Model m;
    if (command_load_checkpoint_model(&a, batch, &first_read, &cfg, &be, &m, err, sizeof err) != 0) {
        dataset_free(&test_set);
        dataset_free(&val_set);
        return command_fail(err);
    }
    DeviceDataset test_dev;
    device_dataset_upload(be, &test_set, &test_dev);
    int rc = 0;
    char *json = NULL;
    if (a.z_mode && strcmp(a.z_mode, "mean") == 0) {
        ElboResult r;
        eval_elbo(&m, &test_dev, EPS_ZERO, &r);
        if (eval_check_finite(r.loss, false, false, who, err, sizeof err) != 0) rc = command_fail(err);
        TextBuffer t = {0};
        text_appendf(&t, "{\"name\": ");
        text_append_json_string(&t, cfg.name);
        text_appendf(&t, ", \"test_loss\": %.6f, \"rec\": %.6f, \"kl\": %.6f, \"examples\": %ld, \"units\": ",
                     r.loss, r.rec, r.kl, r.examples);
        loss_units_append_json(&t, &cfg);
        text_appendf(&t, ", \"z\": \"mean\", \"device\": \"%s\"}", be->name);
        json = rc == 0 ? t.data : NULL;
        if (rc != 0) free(t.data);
    } else {
        EvalReport report;
        if (eval_report(&m, &test_dev, iw_k, a.iw_examples, &report, err, sizeof err) != 0) {
            rc = command_fail(err);
        } else if (eval_check_finite(report.elbo.loss, report.outputs_overflow, report.vq_size > 0, who, err,
                                     sizeof err) != 0) {
            rc = command_fail(err);
            eval_report_free(&report);
        } else {
            if (gan) eval_parzen(&m, &val_set, &test_set, cfg.eval.parzen_samples, cfg.eval.parzen_examples, &report);
            json = eval_report_json(&report, &cfg, be->name);
            eval_report_free(&report);
        }
    }
    if (json) {
        printf("%s\n", json);
        if (a.json_out) {
            // -o into a run's folder (its eval.json): not while a train writes that run (which writes its
            // own eval.json at its end, and removes it when it resumes), and only from the checkpoint
            // as it was read (an epoch's save in between: numbers of the model before it)
            char folder[PATH_MAX + 256];
            path_folder(a.json_out, folder, sizeof folder);
            int lock_fd = -1;
            const int locked = run_folder_holds_run(folder) ? run_folder_lock(folder, &lock_fd, err, sizeof err) : 0;
            if (locked != 0 || checkpoint_check_unchanged(a.positional, &first_read, err, sizeof err) != 0) {
                char why[2 * PATH_MAX + 1400];
                if (locked == RUN_FOLDER_BUSY)
                    snprintf(why, sizeof why, "eval: -o %s: a cuvae train is writing the run in %s (the run's eval.json "
                             "is its to write): wait for it to end, or give another file name", a.json_out, folder);
                else
                    snprintf(why, sizeof why, "eval: -o %s: %s", a.json_out, err);
                rc = command_fail(why);
            } else {
                TextBuffer line = {0};
                text_appendf(&line, "%s\n", json);
                if (write_file_atomic(a.json_out, line.data, err, sizeof err) != 0) rc = command_fail(err);
                free(line.data);
            }
            if (lock_fd >= 0) close(lock_fd);
        }
        free(json);
    }
    device_dataset_free(be, &test_dev);
    model_destroy(&m);
    be->destroy(be);
    dataset_free(&test_set);
    dataset_free(&val_set);
    return rc;
}

// main.c: the command line: usage texts, dispatch of train, eval, sample, plot, report, bench
// (--help, --version), each command's argument handling, and the flow of eval and sample
// (load the checkpoint, run the model, write the report or the image grid); the work itself is
// in train.c, eval.c, figures.c, report.c, bench.c and model.c.
#include "cuvae/distributed.h"
#include "cuvae/prior.h"
#include "cuvae/backend.h"
#include "cuvae/bench.h"
#include "cuvae/checkpoint.h"
#include "cuvae/cli_args.h"
#include "cuvae/common.h"
#include "cuvae/config.h"
#include "cuvae/dataset.h"
#include "cuvae/eval.h"
#include "cuvae/figures.h"
#include "cuvae/image.h"
#include "cuvae/model.h"
#include "cuvae/plot.h"
#include "cuvae/report.h"
#include "cuvae/run_folder.h"
#include "cuvae/train.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#define EXIT_BAD_INPUT CUVAE_EXIT_BAD_INPUT

static const char *USAGE_MAIN =
    "usage: cuvae <command> [options]\n"
    "\n"
    "Trains variational autoencoders on a CUDA GPU when one is usable, else on the CPU.\n"
    "Losses are per example. KL is in nats; the reconstruction term is in nats for a\n"
    "Bernoulli likelihood summed over pixels (bce, sum), else in its own unit (nats per\n"
    "pixel, squared error), and rec + KL then adds different units.\n"
    "Models (config model.kind): vae, ae, cvae, vq_vae (its second term is VQ, a squared\n"
    "distance, not KL), made and pixelcnn (no latent: one model.network of masked layers, the\n"
    "loss the exact -log p(x) in nats), gan (model.generator and model.discriminator layer\n"
    "lists; two Adam regions; scored by the Parzen-window log-likelihood, a weak metric), aae\n"
    "(an AE whose codes a discriminator on z pushes toward model.prior: gaussian or mixture).\n"
    "model.encoder / model.decoder are widths (an MLP) or\n"
    "layer lists: linear, conv2d, conv_transpose2d, batch_norm, relu, leaky_relu, tanh,\n"
    "sigmoid, flatten, reshape, masked_linear, residual, masked_conv2d_a, masked_conv2d_b\n"
    "(README, \"Configs\"); scripts/cuvae_torch.py loads any checkpoint into PyTorch.\n"
    "\n"
    "commands (every option: cuvae <command> --help):\n"
    "  train CONFIG [--set key.path=value]... [--out DIR] [--full] [--resume | --overwrite]\n"
    "      train from a JSON config\n"
    "  eval CKPT [--iw K] [--iw-examples N] [-o FILE.json] [--z sample|mean] [--set key.path=value]...\n"
    "      test metrics as one JSON line\n"
    "  sample CKPT [-n N] [-o FILE.png] [--seed S] [--class C] [--prior PRIOR] [--title TEXT]\n"
    "         [--set key.path=value]...\n"
    "      PNG grid of decoded z ~ N(0, I) (vq_vae: uniformly drawn codes, or --prior's;\n"
    "      made, pixelcnn: pixels one by one; gan: the generator from z ~ N(0, I))\n"
    "  plot RUN_DIR [--tsne-points N] [--tsne-iterations N] [--latent-range LO:HI] [--z mean|sample]\n"
    "       [--set key.path=value]...\n"
    "      every figure of a run (PNG)\n"
    "  report INDEX.json RUNS_DIR\n"
    "      one HTML page over several runs\n"
    "  bench CONFIG [--steps N] [--warmup N] [--set key.path=value]... [--gemm-only | --paired]\n"
    "      training throughput as one JSON line\n"
    "\n"
    "  cuvae <command> --help (or cuvae help <command>, cuvae --help <command>)   options of one command\n"
    "  cuvae --version\n"
    "\n"
    "environment (README, \"CPU speed\" and \"Scaling out\"):\n"
    "  OMP_NUM_THREADS       the CPU backend's one thread pool (else OPENBLAS_NUM_THREADS, else a\n"
    "                        thread per core); a count neither library can read, or over the larger\n"
    "                        of 8 a core and 1024, is refused (exit 2)\n"
    "  OPENBLAS_CORETYPE     OpenBLAS's kernel family, kept as set\n"
    "  CUVAE_CPU_CONV        onednn (the default) or im2col: how the CPU runs convolutions\n"
    "  CUVAE_CUDA_DEVICE     the GPU to use (its index)\n"
    "\n"
    "Exit status: 0 on success, 2 on bad input (config, data, checkpoint, arguments) or a failed run.\n";

static const char *USAGE_TRAIN =
    "usage: cuvae train CONFIG [--set key.path=value]... [--out DIR] [--full] [--resume | --overwrite]\n"
    "\n"
    "  CONFIG            JSON config (see configs/ and README.md for every key)\n"
    "  --set k=v         override a config key, e.g. --set train.epochs=3 --set model.encoder=[400]\n"
    "                    (value parsed as JSON when it parses, else taken as a string)\n"
    "  --out DIR         output directory (default runs/<name>)\n"
    "  --full            train for train.full_epochs (the lecture-length run) when set\n"
    "  --resume          continue the run in DIR from DIR/resume.safetensors (same config;\n"
    "                    train.epochs may grow): bit-identical to an uninterrupted run;\n"
    "                    DIR/log.jsonl must hold the finished epochs' lines (checked first)\n"
    "  --overwrite       replace the run DIR holds (without it, a folder holding a run, or a\n"
    "                    file a run writes such as log.jsonl, is refused); the new run trains\n"
    "                    in DIR/.new-run and replaces the earlier one when its training ends\n"
    "\n"
    "Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed) stops at the next step boundary\n"
    "and saves the state in DIR/resume.safetensors (DIR/.new-run/ for an --overwrite run, the\n"
    "earlier run left as it was) (exit 130 / 143 / 129); the same command with --resume\n"
    "continues it, bit-identical to an uninterrupted run. A second Ctrl-C or SIGTERM quits\n"
    "at once, removing the temp file of a write under way (a second SIGHUP does not). A signal\n"
    "ignored when cuvae started (a script's background job: SIGINT) stays ignored.\n"
    "\n"
    "Writes DIR/config.json (effective config), DIR/log.jsonl (one line per epoch:\n"
    "epoch, train_loss (weighted training objective), test_loss = unweighted rec + KL,\n"
    "test_rec, test_kl, seconds, samples_per_s, train_rec, train_kl (unweighted epoch means),\n"
    "kl_weight, capacity (C of loss.capacity, else 0; kl_weight is 0 with it) and lr (those the\n"
    "epoch's last step used); per example, in the units\n"
    "train prints; a vq_vae's VQ term fills the kl fields) and\n"
    "DIR/model.safetensors\n"
    "and DIR/resume.safetensors (parameters, Adam state, step counters), both written\n"
    "atomically after every epoch.\n"
    "A run that diverges stops with exit 2 and one line: a loss that is not finite at the next\n"
    "loss read; at the end of an epoch, a test loss that is not finite, a Bernoulli\n"
    "reconstruction term over 10 times that of predicting 1/2 everywhere, or state that\n"
    "overflowed with the loss still finite (batch norm's running variance, Adam's moments)\n"
    "-- the files keep the last finished epoch.\n"
    "\n"
    "Data parallel: `mpirun -np N cuvae train CONFIG` (srun --mpi=pmix; or, on GPUs, srun without\n"
    "MPI or CUVAE_RANK / CUVAE_WORLD_SIZE / CUVAE_NCCL_ID_FILE) trains one model on\n"
    "N ranks, each on its shard of every global batch (train.batch_size), the gradients summed\n"
    "once per step (MPI on the CPU, NCCL on GPUs); rank 0 writes DIR. A failing rank ends all;\n"
    "a collective waiting over CUVAE_DIST_TIMEOUT seconds (300) ends the run. A launch variable\n"
    "that is not a whole number >= 0, or CUVAE_RANK without CUVAE_WORLD_SIZE, is refused.\n"
    "README: Scaling out.\n";

static const char *USAGE_EVAL =
    "usage: cuvae eval CKPT [--iw K] [--iw-examples N] [-o FILE.json] [--z sample|mean]\n"
    "                       [--set key.path=value]...\n"
    "\n"
    "Rebuilds the model from the config stored in the checkpoint (--set takes data.*, eval.*,\n"
    "device, train.seed, train.precision, model.prior_of, name, description, e.g. --set\n"
    "data.dir=elsewhere --set device=cpu; the model, loss and training keys are the ones the\n"
    "weights were trained with; eval.iw_samples / eval.iw_examples are the training run's: use\n"
    "--iw / --iw-examples; train.seed seeds the draws, the test images stay the run's, and a\n"
    "data.train_limit or data.validation other than the run's is refused) and\n"
    "prints one JSON line:\n"
    "  test_loss = rec + kl (unweighted negative ELBO, one z sample per example) over the\n"
    "  whole test set, per example (\"units\" says which); rec_bce_at_mean / rec_mse_at_mean (z = mu);\n"
    "  active_units (Var_x E_q[z_j] > 0.01; null for one test example), kl_per_dim, mu_variance\n"
    "  (the encoder's latent: not for made, pixelcnn, gan);\n"
    "  binarized (the test images are binary: every value 0 or 255, however they came to be);\n"
    "  with --iw K (1 to 10000000): iw = {k, examples, neg_log_px, bits_per_dim,\n"
    "  is_nll_of_binary_data, conditional_on_label, seconds}:\n"
    "  the importance-weighted estimate of -log p(x) with K samples per example\n"
    "  (log-mean-exp of log p(x|z) + log p(z) - log q(z|x); an NLL only for binary data).\n"
    "  --iw-examples N   use the first N test examples for --iw (default all)\n"
    "  -o FILE.json      also write the JSON there (its folder must exist; a regular file or a\n"
    "                    new one; never the checkpoint read, a run's config.json, log.jsonl or\n"
    "                    .safetensors files, nor the eval.json of a run the checkpoint is not in;\n"
    "                    a name with another extension than .json, e.g. .safetensors, is refused)\n"
    "  --z mean          print only the ELBO terms with z = mu instead (deterministic)\n"
    "A checkpoint whose test loss is not finite (finite weights, overflowing outputs) is refused.\n";

static const char *USAGE_SAMPLE =
    "usage: cuvae sample CKPT [-n N] [-o FILE.png] [--seed S] [--class C] [--prior PRIOR] [--title TEXT]\n"
    "                    [--set key.path=value]...\n"
    "\n"
    "Decodes N latent points z ~ N(0, I) (default 64) and writes them as a PNG grid\n"
    "(default samples.png). Bernoulli decoders show sigmoid(logits). For a cvae,\n"
    "--class C generates that class; without it sample i gets class i mod 10 (mod K for a\n"
    "cvae whose training labels stopped at K - 1 < 9; classes K.. are refused).\n"
    "A vq_vae decodes codes drawn uniformly and independently at every position (the VQ-VAE\n"
    "has no prior of its own), and says so; with --prior PRIOR (a pixelcnn trained with\n"
    "model.prior_of) it decodes code grids drawn from that prior. A made or pixelcnn draws\n"
    "binary pixels one at a time in its ordering (input_dim forward passes, with a progress\n"
    "line past 2 s); a prior's own\n"
    "checkpoint samples code grids and decodes them with the VQ-VAE it names.\n"
    "--seed S draws other samples (not together with --set train.seed); -o follows eval's -o\n"
    "rules (cuvae eval --help), never replaces a run's eval.json nor a prior's VQ-VAE either,\n"
    "nor a run's progress/ or figures/ images, and takes a name ending in .png (or with no\n"
    "extension) of a regular file or a new one.\n"
    "--set takes the keys eval takes (cuvae eval --help) but data.*, eval.iw_* and\n"
    "eval.parzen_*, which are refused (no data is read, no bound, no Parzen estimate here).\n"
    "A decoder output that is not finite (a diverged model) is refused, not drawn.\n";

static const char *USAGE_PLOT =
    "usage: cuvae plot RUN_DIR [--tsne-points N] [--tsne-iterations N] [--latent-range LO:HI]\n"
    "                  [--z mean|sample] [--set key.path=value]...\n"
    "\n"
    "Writes RUN_DIR/figures/: samples.png (z ~ N(0, I)), reconstructions.png (test images\n"
    "above their reconstructions), latent_scatter.png (encoded test set coloured by label:\n"
    "directly for latent dim 2, t-SNE of --tsne-points codes (default 2000) for 3 or more,\n"
    "none for latent dim 1;\n"
    "--latent-range fixes both axes of the direct scatter, so several runs can share them;\n"
    "a vae's or cvae's scatter places the means of q(z|x), or with --z sample one draw\n"
    "z ~ q(z|x) per image, the draws its logged test loss used: the N(0, I) cloud of a\n"
    "KL-only run, whose means collapse to a point),\n"
    "latent_histograms.png (per-dimension distribution vs N(0, 1)), manifold.png (latent dim 2:\n"
    "a VAE's grid through the inverse normal CDF, an AE's over its codes' range),\n"
    "interpolation.png, class_rows.png (cvae),\n"
    "loss_curves.png and loss_terms.png (from log.jsonl). Needs gnuplot (gnuplot-nox).\n"
    "A test set too small for a figure skips it, saying so (the t-SNE needs 5 test images, the\n"
    "interpolation 2); codes, or decoder outputs for the first test images' codes, that are not\n"
    "finite (a diverged model) are refused before any figure is drawn.\n"
    "--set takes the keys eval takes (cuvae eval --help); eval.iw_* and eval.parzen_* are\n"
    "refused (plot computes neither).\n";

static const char *USAGE_REPORT =
    "usage: cuvae report INDEX.json RUNS_DIR\n"
    "\n"
    "Writes RUNS_DIR/index.html: one section per entry of INDEX.json ({\"title\", \"intro\",\n"
    "\"sections\": [{\"title\", \"text\", \"runs\": [run names], \"figures\": [figure names]}]}),\n"
    "each with the runs' numbers (from RUNS_DIR/<run>/eval.json) and their figures side by side\n"
    "(RUNS_DIR/<run>/figures/<figure>.png). Relative links only: it opens from disk.\n";

// Prints the error line (an empty message: it was printed where it arose) and gives exit 2.
static int fail(const char *message) {
    if (message[0]) dist_print_error(message);
    return EXIT_BAD_INPUT;
}

static bool wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
    return false;
}

// train's options and config, the run folder's path. 0, or -1 with err.
static int train_options(int argc, char **argv, Args *a, Config *cfg, char *out_dir, size_t out_len, char *err,
                         size_t errlen) {
    if (parse_args(argc, argv, "train", a, err, errlen) != 0) return -1;
    if (config_load(cfg, a->positional, a->overrides, a->n_overrides, err, errlen) != 0) return -1;
    for (int i = 0; a->full && cfg->train.full_epochs > 0 && i < a->n_overrides; i++)
        if (strncmp(a->overrides[i], "train.epochs=", 13) == 0)   // else one of the two is dropped unsaid
            return set_error(err, errlen, "train: --full trains train.full_epochs (%d) and --set %s asks for "
                             "another length: give one of them", cfg->train.full_epochs, a->overrides[i]);
    if (a->full && cfg->train.full_epochs > 0) {
        cfg->train.epochs = cfg->train.full_epochs;
        cfg->train.epochs_from_full = true;
    }
    else if (a->full)
        fprintf(stderr, "cuvae: --full: %s sets no train.full_epochs; training train.epochs = %d\n",
                a->positional, cfg->train.epochs);
    int len = a->out_dir ? snprintf(out_dir, out_len, "%s", a->out_dir)
                         : snprintf(out_dir, out_len, "runs/%s", cfg->name);
    if (len < 0 || (size_t)len >= out_len)
        return set_error(err, errlen, "train: --out: path too long (%d bytes, at most %zu)", len, out_len - 1);
    return 0;
}

static int command_train(int argc, char **argv) {
    char err[1024];
    Args a;
    Config cfg;
    char out_dir[700];
    // launched as ranks, each reads the same options and config: a mistake in them said once
    if (dist_agree_on_failure(train_options(argc, argv, &a, &cfg, out_dir, sizeof out_dir, err, sizeof err), err,
                              sizeof err, "option check") != 0)
        return fail(err);
    int rc = train_run(&cfg, out_dir, a.resume, a.overwrite, err, sizeof err);
    if (rc > 0) {   // interrupted: the state is saved; say how to continue
        fprintf(stderr, "cuvae: %s\n", err);
        return rc;
    }
    if (rc != 0) return fail(err);
    return 0;
}

// Loads config + params from a checkpoint onto a fresh backend.
// since: the checkpoint as the command first read it (NULL: as this call first reads it); a
// checkpoint replaced since (a train writing that run) is refused, not mixed with the first.
static int load_checkpoint_model(const Args *a, int max_batch, const FileStamp *since, Config *cfg,
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

// -o of eval or sample on a prior (a pixelcnn over a VQ-VAE's codes) must not replace the
// VQ-VAE it reads either (model.prior_of, as the command's --set leave it).
static int check_output_not_prior_of(const char *command, const char *output, const char *checkpoint,
                                     const char *const *overrides, int n_overrides, char *err, size_t errlen) {
    Config c;
    char ignored[512];   // (a checkpoint that does not read is refused, naming it, when it is loaded)
    if (!output || checkpoint_read_config(checkpoint, &c, overrides, n_overrides, ignored, sizeof ignored) != 0 ||
        !c.model.prior_of[0])
        return 0;
    const char *inputs[1] = {c.model.prior_of};
    return run_folder_check_output(command, "-o", output, inputs, 1, err, errlen);
}

// Whether a --set gives a key of a section ("eval") starting with prefix ("iw_"): eval.iw_k=V, or
// eval={...} holding such a key (as the config reads it: "iw\u005fbatch" is iw_batch).
static bool set_gives_key(const char *set, const char *section_name, const char *prefix) {
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

static int command_eval(int argc, char **argv) {
    char err[1024];
    Args a;
    if (parse_args(argc, argv, "eval", &a, err, sizeof err) != 0) return fail(err);
    char who[800];   // (a refusal of the model's numbers names the command and the checkpoint)
    snprintf(who, sizeof who, "eval: %s", a.positional);

    Config cfg, stored;
    FileStamp first_read;   // the data are chosen from this read; the weights must come from the same file
    file_stamp(a.positional, &first_read);
    if (checkpoint_read_config(a.positional, &cfg, a.overrides, a.n_overrides, err, sizeof err) != 0) return fail(err);
    if (check_output_not_prior_of("eval", a.json_out, a.positional, a.overrides, a.n_overrides,
                                  err, sizeof err) != 0)
        return fail(err);
    // the config's eval.iw_* are the training run's final evaluation: --set of them (in any
    // form) would be ignored here, where the bound is --iw K / --iw-examples N
    const bool stored_read =
        a.n_overrides > 0 && checkpoint_read_config(a.positional, &stored, NULL, 0, err, sizeof err) == 0;
    if (stored_read &&
        (stored.eval.iw_samples != cfg.eval.iw_samples || stored.eval.iw_examples != cfg.eval.iw_examples))
        return fail("eval: --set eval.iw_samples / eval.iw_examples: the importance-sampled bound of cuvae eval is "
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
        return fail(err);
    }
    // any other kind's eval reads the test images alone (data_cfg below): the training split's keys
    // would be taken and not read
    bool sets_split = false;   // (a data={...} without them: the run's values, unread here anyway)
    for (int i = 0; i < a.n_overrides; i++)
        sets_split = sets_split || set_gives_key(a.overrides[i], "data", "train_limit") ||
                     set_gives_key(a.overrides[i], "data", "validation");
    if (!gan && stored_read && sets_split &&
        (stored.data.validation != cfg.data.validation || stored.data.train_limit != cfg.data.train_limit)) {
        snprintf(err, sizeof err, "eval: %s: --set data.validation / data.train_limit: eval of a %s reads the test "
                 "images alone (the run's training images and its validation split are not read)", a.positional,
                 model_kind_name(cfg.model.kind));
        return fail(err);
    }
    const char *z_refusal = model_kind_info(cfg.model.kind)->z_refusal;
    if (a.z_mode && z_refusal) {
        snprintf(err, sizeof err, "eval: --z chooses how a VAE's z is drawn; %s", cfg.model.prior_of[0]
                 ? "a pixelcnn prior has no latent (its test loss is the exact -log p(codes))" : z_refusal);
        return fail(err);
    }
    if (eval_iw_applies(&cfg, a.iw_k, err, sizeof err) != 0) return fail(err);
    Dataset train_set, test_set, val_set;
    memset(&val_set, 0, sizeof val_set);
    Config data_cfg;   // the run's data: its carve, splits and binarization (train.seed) are the training run's
    if (checkpoint_data_config(a.positional, &cfg, a.overrides, a.n_overrides, &data_cfg, err, sizeof err) != 0) return fail(err);
    if (!gan) data_cfg.data.train_limit = 1;   // eval needs only the test split (a gan: its validation split too)
    if (prior_dataset_load(&data_cfg, &train_set, &test_set, err, sizeof err) != 0) return fail(err);
    char data_files[DATASET_INPUT_FILES_MAX][DATASET_INPUT_PATH];   // -o must not replace them either
    const char *inputs[1 + DATASET_INPUT_FILES_MAX] = {a.positional};   // (the checkpoint first, as parse_args gave it)
    const int n_data_files = dataset_input_files(&data_cfg, data_files, DATASET_INPUT_FILES_MAX);
    for (int i = 0; i < n_data_files; i++) inputs[1 + i] = data_files[i];
    if ((a.json_out && run_folder_check_output("eval", "-o", a.json_out, inputs, 1 + n_data_files, err,
                                               sizeof err) != 0) ||
        checkpoint_check_carved_test_set(a.positional, &test_set, err, sizeof err) != 0) {
        dataset_free(&train_set);
        dataset_free(&test_set);
        return fail(err);
    }
    char notes[3000];
    dataset_load_notes(&data_cfg, &train_set, &test_set, notes, sizeof notes);
    fputs(notes, stderr);
    if (gan) {   // the validation split the run held out (the same seed and fraction): sigma is chosen on it
        char why[512];
        if (dataset_split_validation(&train_set, &val_set, cfg.data.validation, data_cfg.train.seed, why,
                                     sizeof why) != 0) {
            dataset_free(&train_set);
            dataset_free(&test_set);
            snprintf(err, sizeof err, "eval: %s: %s", a.positional, why);
            return fail(err);
        }
        eval_prepare_test_set(&data_cfg, &val_set);   // binarized once, as the run saw it
    }
    dataset_free(&train_set);
    eval_prepare_test_set(&data_cfg, &test_set);
    int iw_k = a.iw_k >= 0 ? a.iw_k : 0;
    if (a.iw_examples > 0 && iw_k == 0) {
        dataset_free(&test_set);
        return fail("eval: --iw-examples needs --iw K");
    }
    if (iw_k > 0 && a.z_mode && strcmp(a.z_mode, "mean") == 0) {   // else --iw would be dropped unsaid
        dataset_free(&test_set);
        dataset_free(&val_set);
        return fail("eval: --iw K draws K samples of z per example; it cannot be combined with --z mean");
    }
    int batch = eval_model_rows(iw_k > 0 ? cfg.eval.iw_batch : 1000, test_set.n, iw_k, a.iw_examples,
                                gan ? cfg.eval.parzen_samples : 0);
    Backend *be;
    Model m;
    if (load_checkpoint_model(&a, batch, &first_read, &cfg, &be, &m, err, sizeof err) != 0) {
        dataset_free(&test_set);
        dataset_free(&val_set);
        return fail(err);
    }
    DeviceDataset test_dev;
    device_dataset_upload(be, &test_set, &test_dev);
    int rc = 0;
    char *json = NULL;
    if (a.z_mode && strcmp(a.z_mode, "mean") == 0) {
        ElboResult r;
        eval_elbo(&m, &test_dev, EPS_ZERO, &r);
        if (eval_check_finite(r.loss, false, false, who, err, sizeof err) != 0) rc = fail(err);
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
            rc = fail(err);
        } else if (eval_check_finite(report.elbo.loss, report.outputs_overflow, report.vq_size > 0, who, err,
                                     sizeof err) != 0) {
            rc = fail(err);
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
            TextBuffer line = {0};
            text_appendf(&line, "%s\n", json);
            if (write_file_atomic(a.json_out, line.data, err, sizeof err) != 0) rc = fail(err);
            free(line.data);
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

// sample and plot compute no evaluation: a --set of the eval section (the importance-weighted
// bound's eval.iw_*, the Parzen-window estimate's eval.parzen_*) would be taken and not read. 0, or
// -1 with err naming the --set.
static int refuse_evaluation_sets(const char *command, const char *const *overrides, int n, char *err, size_t errlen) {
    for (int i = 0; i < n; i++) {
        const char *set = overrides[i];
        const int key = (int)strcspn(set, "=");
        if (set_gives_key(set, "eval", "iw_"))
            return set_error(err, errlen, "%s: --set %.*s: %s draws no importance-weighted bound (eval.iw_samples / "
                             "eval.iw_examples are the training run's, eval.iw_batch is read by cuvae eval --iw K, which "
                             "gives one)", command, key, set, command);
        if (set_gives_key(set, "eval", "parzen_"))
            return set_error(err, errlen, "%s: --set %.*s: %s draws no Parzen-window estimate (eval.parzen_samples / "
                             "eval.parzen_examples are read by cuvae train and cuvae eval of a gan or an aae)", command,
                             key, set, command);
    }
    return 0;
}

static int command_sample(int argc, char **argv) {
    char err[1024];
    Args a;
    if (parse_args(argc, argv, "sample", &a, err, sizeof err) != 0) return fail(err);
    Config cfg;
    Backend *be;
    Model m;
    if (a.prior) {   // CKPT is a vq_vae; PRIOR a pixelcnn over its codes: load the prior, decoding through CKPT
        static char prior_of[1200];
        for (int i = 0; i < a.n_overrides; i++)   // CKPT is the VQ-VAE here: another would be dropped
            if (strncmp(a.overrides[i], "model.prior_of=", 15) == 0) {
                snprintf(err, sizeof err, "sample: --set model.prior_of with --prior: the prior decodes through "
                         "CKPT (%s) here; give the VQ-VAE you mean as CKPT", a.positional);
                return fail(err);
            }
        Config vq_cfg;
        if (checkpoint_read_config(a.positional, &vq_cfg, NULL, 0, err, sizeof err) != 0) return fail(err);
        if (vq_cfg.model.kind != MODEL_VQ_VAE) {
            snprintf(err, sizeof err, "sample: --prior needs a vq_vae checkpoint, %s is a \"%s\"", a.positional,
                     model_kind_name(vq_cfg.model.kind));
            return fail(err);
        }
        Config stored_prior;   // as trained, before prior_of points it at CKPT
        snprintf(prior_of, sizeof prior_of, "model.prior_of=%s", a.positional);
        if (checkpoint_read_config(a.prior, &stored_prior, NULL, 0, err, sizeof err) != 0) {
            // a prior whose VQ-VAE has moved since (its stored model.prior_of no longer opens, or now holds
            // another file): CKPT is the VQ-VAE here, and it is checked against the prior's model.prior_crc32
            const char *at_ckpt[1] = {prior_of};
            char err_at_ckpt[1024];
            if (!strstr(err, "model.prior_of")) return fail(err);
            if (checkpoint_read_config(a.prior, &stored_prior, at_ckpt, 1, err_at_ckpt, sizeof err_at_ckpt) != 0) {
                const char *reason = strstr(err_at_ckpt, "): ");   // (not a --set of the user's: said so)
                char said[2400];
                snprintf(said, sizeof said, "sample: %s --prior %s: %s", a.positional, a.prior,
                         reason ? reason + 3 : err_at_ckpt);
                return fail(said);
            }
        }
        if (stored_prior.model.kind != MODEL_PIXELCNN || !stored_prior.model.prior_of[0]) {
            snprintf(err, sizeof err, "sample: --prior %s is a \"%s\"%s, not a PixelCNN prior over a VQ-VAE's codes "
                     "(a pixelcnn trained with model.prior_of)", a.prior, model_kind_name(stored_prior.model.kind),
                     stored_prior.model.kind == MODEL_PIXELCNN ? " over images" : "");
            return fail(err);
        }
        if (a.n_overrides == MAX_OVERRIDES) return fail("sample: too many --set");
        const char *vq_path = a.positional;
        a.overrides[a.n_overrides++] = prior_of;
        a.positional = a.prior;
        Config prior_cfg;
        if (checkpoint_read_config(a.positional, &prior_cfg, a.overrides, a.n_overrides, err, sizeof err) != 0) {
            // the model.prior_of given is --prior's CKPT, not a --set of the user's: said so
            const char *reason = strncmp(err, prior_of, strlen(prior_of)) == 0 || strncmp(err + 6, prior_of,
                                 strlen(prior_of)) == 0 ? strstr(err, "): ") : NULL;
            if (reason) {
                char said[1024];
                snprintf(said, sizeof said, "sample: %s --prior %s: %s", vq_path, a.prior, reason + 3);
                return fail(said);
            }
            return fail(err);
        }
        if (prior_cfg.model.prior_classes == 0) {
            snprintf(err, sizeof err, "sample: --prior %s is not a prior over a VQ-VAE's codes (no model.prior_of)",
                     a.prior);
            return fail(err);
        }
    }
    if (refuse_evaluation_sets("sample", a.overrides, a.n_overrides, err, sizeof err) != 0) return fail(err);
    for (int i = 0; i < a.n_overrides; i++) {   // sample reads no data: a --set of it would be taken and not read
        const char *set = a.overrides[i];
        if (strncmp(set, "data.", 5) == 0 || strncmp(set, "data=", 5) == 0) {
            snprintf(err, sizeof err, "sample: --set %.*s: sample reads no data (its images are the model's "
                     "draws); data.* is read by eval and plot", (int)strcspn(set, "="), set);
            return fail(err);
        }
    }
    if (check_output_not_prior_of("sample", a.output_png, a.positional, a.overrides,
                                  a.n_overrides, err, sizeof err) != 0)
        return fail(err);
    // --class against the checkpoint's classes: said before the device starts (its note would come first)
    Config peek;
    if (a.sample_class >= 0 &&
        checkpoint_read_config(a.positional, &peek, a.overrides, a.n_overrides, err, sizeof err) == 0) {
        const int classes = peek.model.condition == CONDITION_LABEL ? peek.model.n_classes : 0;
        if (classes == 0) return fail("sample: --class needs a cvae checkpoint (model.kind \"cvae\")");
        if (a.sample_class >= classes) {
            snprintf(err, sizeof err, "sample: --class %d: the model has classes 0..%d", a.sample_class, classes - 1);
            return fail(err);
        }
        int data_classes = 0;   // a cvae trained on labels 0..K-1 only
        if (checkpoint_data_classes(a.positional, classes, &data_classes, err, sizeof err) != 0) return fail(err);
        if (data_classes > 0 && a.sample_class >= data_classes) {
            snprintf(err, sizeof err, "sample: --class %d: the run's data had labels 0..%d only; the model's "
                     "classes %d..%d were never trained", a.sample_class, data_classes - 1, data_classes,
                     classes - 1);
            return fail(err);
        }
    }
    if (load_checkpoint_model(&a, a.n_samples, NULL, &cfg, &be, &m, err, sizeof err) != 0) return fail(err);
    int D = m.input_dim;
    float *prior_pixels = NULL;   // a prior: images decoded by its VQ-VAE from codes it draws
    int image[3] = {1, 1, 1};     // (their shape: the VQ-VAE's)
    if (m.prior_classes &&
        prior_sample_images(&m, a.n_samples, (a.seed >= 0 ? (uint64_t)a.seed : cfg.train.seed) ^ 0x5A3Bull,
                            &prior_pixels, image, err, sizeof err) != 0) {
        model_destroy(&m);
        be->destroy(be);
        return fail(err);
    }
    if (m.prior_classes) D = image[0] * image[1] * image[2];
    int channels = image[0], rows = image[1], cols = image[2];
    if (!m.prior_classes && !model_image_shape(&m, &channels, &rows, &cols)) {
        char why[200];
        model_not_image_reason(&m, why, sizeof why);
        snprintf(err, sizeof err, "sample: %s", why);
        model_destroy(&m);
        be->destroy(be);
        return fail(err);
    }
    uint64_t seed = a.seed >= 0 ? (uint64_t)a.seed : cfg.train.seed;
    // (--class was checked against the checkpoint's classes before the model was loaded)
    // (checkpoint loading read its data_classes: a cvae trained on labels 0..K-1 draws those)
    const int drawn_classes = m.data_classes > 0 && m.data_classes < m.n_classes ? m.data_classes : m.n_classes;
    if (m.n_classes > 0) {
        uint8_t *labels = xmalloc((size_t)a.n_samples);
        for (int i = 0; i < a.n_samples; i++)
            labels[i] = (uint8_t)(a.sample_class >= 0 ? a.sample_class : i % drawn_classes);
        uint8_t *labels_dev = be->alloc(be, (size_t)a.n_samples);
        be->upload(be, labels_dev, labels, (size_t)a.n_samples);
        be->gather_onehot(be, m.onehot, labels_dev, NULL, 0, NULL, a.n_samples, m.n_classes);
        be->free(be, labels_dev);
        free(labels);
    }
    const int m_classes = m.n_classes > 0 ? drawn_classes : 0;
    const bool m_was_vq = m.vq, m_was_made = m.autoregressive, m_was_prior = m.prior_classes > 0, m_was_gan = m.gan,
               m_was_aae = m.aae;
    float *pixels = prior_pixels ? prior_pixels : xmalloc((size_t)a.n_samples * D * sizeof(float));
    if (m.prior_classes) {
        // drawn above
    } else if (m.autoregressive) {   // made: pixel by pixel in the model's ordering
        model_made_sample(&m, a.n_samples, seed ^ 0x5A3Bull, pixels);
    } else if (m.vq || m.aae) {   // drawn on the host: a VQ-VAE's codes uniformly (it has no prior of its
                                  // own: --prior gives one), an aae's prior (N(0, I) or the 2-D mixture)
        float *z = xmalloc((size_t)a.n_samples * m.latent_dim * sizeof(float));
        model_draw_latents(&m, z, a.n_samples, seed ^ 0x5A3Bull);
        be->upload(be, m.z, z, (size_t)a.n_samples * m.latent_dim * sizeof(float));
        free(z);
    } else {
        be->fill_normal(be, m.z, (size_t)a.n_samples * m.latent_dim, seed ^ 0x5A3Bull, 0, NULL);
    }
    if (!m.autoregressive) {
        model_decode(&m, a.n_samples);
        be->download(be, pixels, model_output(&m), (size_t)a.n_samples * D * sizeof(float));
        // an output that is not finite would be drawn black (NaN) or as a plain 0 or 1 (+-inf
        // after the sigmoid): a diverged decoder (finite weights whose outputs overflow), refused
        // as eval refuses its test loss
        for (size_t i = 0; i < (size_t)a.n_samples * D; i++)
            if (!isfinite(pixels[i])) {
                snprintf(err, sizeof err, "sample: %s: the decoder's output for sample %zu is not finite (%g): the "
                         "model has diverged", a.positional, i / (size_t)D, pixels[i]);
                free(pixels);
                model_destroy(&m);
                be->destroy(be);
                return fail(err);
            }
        model_outputs_to_pixels(&m, pixels, (size_t)a.n_samples * D);
    }
    int grid_cols = (int)ceil(sqrt((double)a.n_samples));
    int width, height;
    uint8_t *grid = image_grid_channels(pixels, a.n_samples, channels, rows, cols, grid_cols, 2, 128, &width, &height);
    const char *out = a.output_png ? a.output_png : "samples.png";
    int rc;
    if (a.title && !plot_available())
        rc = set_error(err, sizeof err, "sample: --title draws the grid through gnuplot, which is not "
                       "installed (apt-get install gnuplot-nox); without --title the grid is plain PNG");
    else if (a.title)
        rc = plot_image_channels(out, a.title, grid, width, height, channels, NULL, 0, 0, NULL, 0, 0, err, sizeof err);
    else
        rc = png_write(out, grid, width, height, channels, err, sizeof err);
    free(grid);
    free(pixels);
    model_destroy(&m);
    be->destroy(be);
    if (rc != 0) return fail(err);
    char conditioned[64] = "";   // a cvae's class: the one asked for, or sample i of class i mod classes
    if (m_classes > 0 && a.sample_class >= 0) snprintf(conditioned, sizeof conditioned, ", class %d", a.sample_class);
    else if (m_classes > 0) snprintf(conditioned, sizeof conditioned, ", sample i of class i mod %d", m_classes);
    say("wrote %s (%d sample%s from %s%s)", out, a.n_samples, a.n_samples == 1 ? "" : "s",
            m_was_prior ? "codes drawn from the PixelCNN prior, decoded by its VQ-VAE" :
            m_was_made ? "binary pixels drawn one at a time in the model's ordering" :
            m_was_vq ? "codes drawn uniformly at every position, not from a prior; --prior PRIOR.safetensors "
                       "draws them from a PixelCNN prior" :
            m_was_gan ? "the generator from z ~ N(0, I)" :
            m_was_aae ? (cfg.model.prior_mixture ? "the prior's draws (10 Gaussians in 2-D), decoded"
                                                 : "the prior's draws, N(0, I), decoded") : "z ~ N(0, I)",
            conditioned);
    return 0;
}

static int command_plot(int argc, char **argv) {
    char err[1024];
    Args a;
    if (parse_args(argc, argv, "plot", &a, err, sizeof err) != 0) return fail(err);
    FigureOptions o;
    figures_default_options(&o);
    if (a.tsne_points) {
        o.tsne_points = a.tsne_points;
        o.tsne_points_given = true;
    }
    if (a.tsne_iterations) {
        o.tsne_iterations = a.tsne_iterations;
        o.tsne_iterations_given = true;
    }
    o.latent_range[0] = a.latent_range[0];
    o.latent_range[1] = a.latent_range[1];
    o.scatter_draws = a.z_mode && strcmp(a.z_mode, "sample") == 0;
    o.z_given = a.z_mode != NULL;
    if (refuse_evaluation_sets("plot", a.overrides, a.n_overrides, err, sizeof err) != 0) return fail(err);
    if (figures_write_all(a.positional, a.overrides, a.n_overrides, &o, err, sizeof err) != 0) return fail(err);
    return 0;
}

static int command_report(int argc, char **argv) {
    char err[1024];
    if (argc != 2) return fail("report: expected INDEX.json RUNS_DIR (see cuvae report --help)");
    if (report_write(argv[0], argv[1], err, sizeof err) != 0) return fail(err);
    say("wrote %s/index.html", argv[1]);
    return 0;
}

static int run_command(int argc, char **argv);

// Whatever a command printed on stdout (eval's JSON, bench's line) must have
// reached it: a full disk or a closed pipe is an error, not a silent success.
// Launched by mpirun / srun (distributed.h), `cuvae train` runs data-parallel; a
// rank that fails ends every rank (the others may be waiting in a collective).
int main(int argc, char **argv) {
    // over a file-size limit (ulimit -f) a write fails with EFBIG, which is reported with the
    // file's name and exit 2, the earlier file intact, where SIGXFSZ would kill the process
    signal(SIGXFSZ, SIG_IGN);
    backend_cpu_select_blas_kernels(argv);   // may start the process again: before MPI starts
    char err[512];
    if (dist_init(&argc, &argv, err, sizeof err) != 0) {
        fprintf(stderr, "cuvae: %s\n", err);
        return EXIT_BAD_INPUT;
    }
    int rc;
    if (dist_size() > 1 && (argc < 2 || strcmp(argv[1], "train") != 0)) {
        if (dist_is_writer())
            fprintf(stderr, "cuvae: launched as %d ranks: only `cuvae train` runs data-parallel; run `cuvae %s` "
                    "as one process\n", dist_size(), argc < 2 ? "" : argv[1]);
        rc = EXIT_BAD_INPUT;
    } else {
        rc = run_command(argc, argv);
    }
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        // the first failed write's own error where a flush_stdout kept it (a full disk: ENOSPC,
        // a closed stdout: EBADF), else this flush's
        const int write_errno = stdout_flush_errno() ? stdout_flush_errno() : (errno ? errno : EIO);
        fprintf(dist_error_stream(), "cuvae: cannot write to standard output: %s\n", strerror(write_errno));
        rc = EXIT_BAD_INPUT;
    }
    // a failure (not a stop asked by a signal, which every rank takes at the same step) ends every rank
    if (rc != 0 && rc < 128) dist_abort(rc);
    dist_finalize();
    return rc;
}

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "cuvae: missing command; usage: cuvae train|eval|sample ... (see cuvae --help)\n");
        return EXIT_BAD_INPUT;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc >= 3) {   // cuvae help COMMAND, cuvae --help COMMAND: that command's options
            const char *c = argv[2];
            if (argc > 3) {
                fprintf(stderr, "cuvae: help: unexpected argument %s (cuvae help COMMAND)\n", argv[3]);
                return EXIT_BAD_INPUT;
            }
            if (strcmp(c, "train") == 0) { fputs(USAGE_TRAIN, stdout); return 0; }
            if (strcmp(c, "eval") == 0) { fputs(USAGE_EVAL, stdout); return 0; }
            if (strcmp(c, "sample") == 0) { fputs(USAGE_SAMPLE, stdout); return 0; }
            if (strcmp(c, "plot") == 0) { fputs(USAGE_PLOT, stdout); return 0; }
            if (strcmp(c, "report") == 0) { fputs(USAGE_REPORT, stdout); return 0; }
            if (strcmp(c, "bench") == 0) {
                char *help_args[] = {"--help", NULL};
                return bench_command(1, help_args);
            }
            fprintf(stderr, "cuvae: help: unknown command \"%s\" (commands: train, eval, sample, plot, report, "
                    "bench)\n", c);
            return EXIT_BAD_INPUT;
        }
        fputs(USAGE_MAIN, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        if (argc > 2) {
            fprintf(stderr, "cuvae: --version: unexpected argument %s\n", argv[2]);
            return CUVAE_EXIT_BAD_INPUT;
        }
        const char *parallel = dist_mpi_compiled() && backend_nccl_compiled() ? "MPI, NCCL"
                               : dist_mpi_compiled() ? "MPI"
                               : backend_nccl_compiled() ? "NCCL (GPU ranks without MPI)" : "no MPI, one process";
        printf("cuvae %s (%s backend%s; data parallel: %s)\n", CUVAE_VERSION,
               backend_cuda_compiled() ? "cpu + cuda" : "cpu", backend_cuda_compiled() ? "s" : "", parallel);
        return 0;
    }
    const char *command = argv[1];
    int sub_argc = argc - 2;
    char **sub_argv = argv + 2;
    // a Ctrl-C removes the temp files of the writes under way (train's own handlers, while it
    // trains, stop at a step boundary first, and do the same on a second signal)
    if (strcmp(command, "eval") == 0 || strcmp(command, "sample") == 0 || strcmp(command, "plot") == 0 ||
        strcmp(command, "report") == 0 || strcmp(command, "train") == 0)
        temp_files_clean_on_signals();
    if (strcmp(command, "train") == 0) {
        if (wants_help(sub_argc, sub_argv)) { fputs(USAGE_TRAIN, stdout); return 0; }
        return command_train(sub_argc, sub_argv);
    }
    if (strcmp(command, "eval") == 0) {
        if (wants_help(sub_argc, sub_argv)) { fputs(USAGE_EVAL, stdout); return 0; }
        return command_eval(sub_argc, sub_argv);
    }
    if (strcmp(command, "sample") == 0) {
        if (wants_help(sub_argc, sub_argv)) { fputs(USAGE_SAMPLE, stdout); return 0; }
        return command_sample(sub_argc, sub_argv);
    }
    if (strcmp(command, "plot") == 0) {
        if (wants_help(sub_argc, sub_argv)) { fputs(USAGE_PLOT, stdout); return 0; }
        return command_plot(sub_argc, sub_argv);
    }
    if (strcmp(command, "bench") == 0) return bench_command(sub_argc, sub_argv);
    if (strcmp(command, "report") == 0) {
        if (wants_help(sub_argc, sub_argv)) { fputs(USAGE_REPORT, stdout); return 0; }
        return command_report(sub_argc, sub_argv);
    }
    fprintf(stderr, "cuvae: unknown command \"%s\" (see cuvae --help)\n", command);
    return EXIT_BAD_INPUT;
}

// main.c: the command line: usage texts and the dispatch of train, eval, sample, plot, report,
// bench (--help, --version), with train's, plot's and report's few lines of argument handling; eval's
// and sample's flows are command_eval.c's and command_sample.c's, the work itself train.c's,
// eval.c's, figures.c's, report.c's and bench.c's.
#include "cuvae/distributed.h"
#include "cuvae/backend.h"
#include "cuvae/bench.h"
#include "cuvae/cli_args.h"
#include "cuvae/commands.h"
#include "cuvae/common.h"
#include "cuvae/config.h"
#include "cuvae/figures.h"
#include "cuvae/report.h"
#include "cuvae/plot.h"
#include "cuvae/run_folder.h"
#include "cuvae/train.h"
#include "build_commit.h"   // (CUVAE_BUILD_COMMIT: scripts/build_commit.sh writes it into the build folder)

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>


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
    "  cuvae <command> --help (or -h, cuvae help <command>, cuvae --help <command>)   options of one command\n"
    "  cuvae --version\n"
    "  --                    ends a command's options: a CONFIG, CKPT or RUN_DIR named -x follows it\n"
    "\n"
    "environment (README, \"CPU speed\" and \"Scaling out\"):\n"
    "  OMP_NUM_THREADS       the CPU backend's one thread pool (else OPENBLAS_NUM_THREADS, else a\n"
    "                        thread per core; at most OMP_THREAD_LIMIT); a count neither library\n"
    "                        can read, or over the larger of 8 a core and 1024, is refused (exit 2),\n"
    "                        as is one whose OpenBLAS work buffers (128 MiB a thread) the memory\n"
    "                        cannot map\n"
    "  OPENBLAS_CORETYPE     OpenBLAS's kernel family, kept as set\n"
    "  CUVAE_CPU_CONV        onednn (the default) or im2col: how the CPU runs convolutions\n"
    "  CUVAE_CUDA_DEVICE     the GPU to use (its index)\n"
    "  CUVAE_GNUPLOT_TIMEOUT seconds a gnuplot call of plot / sample --title may take (default 300)\n"
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
    "atomically after every epoch; DIR/progress/*.png (train.epoch_images: the epoch's samples\n"
    "and reconstructions), DIR/best.safetensors with data.validation (the best epoch's model),\n"
    "and after the last epoch DIR/eval.json (cuvae eval's line).\n"
    "A run that diverges stops with exit 2 and one line: a loss that is not finite at the next\n"
    "loss read; at the end of an epoch, a test loss that is not finite, a reconstruction\n"
    "term (Bernoulli or squared error) over 10 times that of predicting 1/2 everywhere, or\n"
    "state that overflowed with the loss still finite (batch norm's running variance, Adam's\n"
    "moments)\n"
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
    "data.train_limit or data.validation other than the run's is refused), reads the run's test\n"
    "images alone (mnist, fashion-mnist: data.dir's two t10k files; a gan's and an aae's training\n"
    "files too, whose validation split chooses the Parzen sigma; dataset \"files\" data.train too,\n"
    "which a carved test set comes from) and prints one JSON line:\n"
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
    "  --z sample        the default: z drawn from q(z|x), one draw per example (seeded)\n"
    "  --z mean          print only the ELBO terms with z = mu instead (deterministic)\n"
    "A checkpoint whose test loss is not finite (finite weights, overflowing outputs) is refused.\n";

static const char *USAGE_SAMPLE =
    "usage: cuvae sample CKPT [-n N] [-o FILE.png] [--seed S] [--class C] [--prior PRIOR] [--title TEXT]\n"
    "                    [--set key.path=value]...\n"
    "\n"
    "Decodes N latent points z ~ N(0, I) (default 64) and writes them as a PNG grid\n"
    "(default samples.png). Bernoulli decoders show sigmoid(logits). An aae decodes draws of\n"
    "its model.prior (N(0, I) or the 10-Gaussian mixture); a gan's generator maps z ~ N(0, I).\n"
    "For a cvae,\n"
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
    "interpolation.png, class_rows.png (cvae), codebook_usage.png (vq_vae), prior_samples.png\n"
    "(aae with a 2-D latent: prior draws beside its codes), samples_over_training.png (gan,\n"
    "which has no encoder: samples.png, this and loss_curves.png only),\n"
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
    char out_dir[RUN_DIR_MAX_BYTES + 1];
    // launched as ranks, each reads the same options and config: a mistake in them said once
    if (dist_agree_on_failure(train_options(argc, argv, &a, &cfg, out_dir, sizeof out_dir, err, sizeof err), err,
                              sizeof err, "option check") != 0)
        return command_fail(err);
    int rc = train_run(&cfg, out_dir, a.resume, a.overwrite, err, sizeof err);
    if (rc > 0) {   // interrupted: the state is saved; say how to continue
        fprintf(stderr, "cuvae: %s\n", err);
        return rc;
    }
    if (rc != 0) return command_fail(err);
    return 0;
}

static int command_plot(int argc, char **argv) {
    char err[1024];
    Args a;
    if (parse_args(argc, argv, "plot", &a, err, sizeof err) != 0) return command_fail(err);
    if (plot_check_environment(err, sizeof err) != 0) return command_fail(err);
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
    if (command_refuse_evaluation_sets("plot", a.overrides, a.n_overrides, err, sizeof err) != 0) return command_fail(err);
    if (figures_write_all(a.positional, a.overrides, a.n_overrides, &o, err, sizeof err) != 0) return command_fail(err);
    return 0;
}

static int command_report(int argc, char **argv) {
    char err[1024];
    char *operands[2];   // report has no options: a "--" (the end of them) may stand anywhere, once
    int n_operands = 0;
    bool dashes = false;
    for (int i = 0; i < argc; i++) {
        if (!dashes && strcmp(argv[i], "--") == 0) {
            dashes = true;
        } else if (n_operands == 2) {
            return command_fail("report: expected INDEX.json RUNS_DIR (see cuvae report --help)");
        } else {
            operands[n_operands++] = argv[i];
        }
    }
    if (n_operands != 2) return command_fail("report: expected INDEX.json RUNS_DIR (see cuvae report --help)");
    argv = operands;
    if (report_write(argv[0], argv[1], "cuvae " CUVAE_VERSION ", commit " CUVAE_BUILD_COMMIT, err, sizeof err) != 0)
        return command_fail(err);
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
    // a reader that went away (`cuvae train ... 2>&1 | head`) makes a write fail with EPIPE, where
    // SIGPIPE would kill a training run after its first line, leaving a folder of one config.json:
    // the run goes on (its lines unseen), a command's stdout reports "Broken pipe" and exit 2
    signal(SIGPIPE, SIG_IGN);
    cuvae_set_build("cuvae " CUVAE_VERSION " (commit " CUVAE_BUILD_COMMIT ")");
    backend_cpu_select_blas_kernels(argv);   // may start the process again: before MPI starts
    char err[512];
    if (dist_init(&argc, &argv, err, sizeof err) != 0) {
        fprintf(stderr, "cuvae: %s\n", err);
        return CUVAE_EXIT_BAD_INPUT;
    }
    int rc;
    if (dist_size() > 1 && (argc < 2 || strcmp(argv[1], "train") != 0)) {
        if (dist_is_writer())
            fprintf(stderr, "cuvae: launched as %d ranks: only `cuvae train` runs data-parallel; run `cuvae %s` "
                    "as one process\n", dist_size(), argc < 2 ? "" : argv[1]);
        rc = CUVAE_EXIT_BAD_INPUT;
    } else {
        rc = run_command(argc, argv);
    }
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        // the first failed write's own error where a flush_stdout kept it (a full disk: ENOSPC,
        // a closed stdout: EBADF), else this flush's
        const int write_errno = stdout_flush_errno() ? stdout_flush_errno() : (errno ? errno : EIO);
        fprintf(dist_error_stream(), "cuvae: cannot write to standard output: %s\n", strerror(write_errno));
        rc = CUVAE_EXIT_BAD_INPUT;
    }
    // a failure (not a stop asked by a signal, which every rank takes at the same step) ends every rank
    if (rc != 0 && rc < 128) dist_abort(rc);
    dist_finalize();
    return rc;
}

static int run_command(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "cuvae: missing command; usage: cuvae train|eval|sample|plot|report|bench ... (see cuvae "
                        "--help)\n");
        return CUVAE_EXIT_BAD_INPUT;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc >= 3) {   // cuvae help COMMAND, cuvae --help COMMAND: that command's options
            const char *c = argv[2];
            if (argc > 3) {
                fprintf(stderr, "cuvae: help: unexpected argument %s (cuvae help COMMAND)\n", argv[3]);
                return CUVAE_EXIT_BAD_INPUT;
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
            return CUVAE_EXIT_BAD_INPUT;
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
        printf("cuvae %s (commit %s; %s backend%s; data parallel: %s)\n", CUVAE_VERSION, CUVAE_BUILD_COMMIT,
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
        if (args_want_help(sub_argc, sub_argv, args_option_takes_value)) { fputs(USAGE_TRAIN, stdout); return 0; }
        return command_train(sub_argc, sub_argv);
    }
    if (strcmp(command, "eval") == 0) {
        if (args_want_help(sub_argc, sub_argv, args_option_takes_value)) { fputs(USAGE_EVAL, stdout); return 0; }
        return command_eval(sub_argc, sub_argv);
    }
    if (strcmp(command, "sample") == 0) {
        if (args_want_help(sub_argc, sub_argv, args_option_takes_value)) { fputs(USAGE_SAMPLE, stdout); return 0; }
        return command_sample(sub_argc, sub_argv);
    }
    if (strcmp(command, "plot") == 0) {
        if (args_want_help(sub_argc, sub_argv, args_option_takes_value)) { fputs(USAGE_PLOT, stdout); return 0; }
        return command_plot(sub_argc, sub_argv);
    }
    if (strcmp(command, "bench") == 0) return bench_command(sub_argc, sub_argv);
    if (strcmp(command, "report") == 0) {
        if (args_want_help(sub_argc, sub_argv, NULL)) { fputs(USAGE_REPORT, stdout); return 0; }
        return command_report(sub_argc, sub_argv);
    }
    fprintf(stderr, "cuvae: unknown command \"%s\" (see cuvae --help)\n", command);
    return CUVAE_EXIT_BAD_INPUT;
}

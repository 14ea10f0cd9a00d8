// train.c: the training loop. Each step is a fixed sequence of backend ops
// (gather, forward, fused loss + backward, Adam, loss accumulation) with no
// device -> host read; the loss is read once per log interval.
#include "cuvae/prior.h"
#include "cuvae/train.h"
#include "cuvae/backend.h"
#include "cuvae/checkpoint.h"
#include "cuvae/common.h"
#include "cuvae/dataset.h"
#include "cuvae/distributed.h"
#include "cuvae/epoch_images.h"
#include "cuvae/eval.h"
#include "cuvae/model.h"
#include "cuvae/resume.h"
#include "cuvae/rng.h"
#include "cuvae/run_folder.h"
#include "cuvae/step.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <zlib.h>

#define RNG_STREAM_SHUFFLE 1000

// The end of a divergence message: what to change, with the value the run had.
// A loss weight or weight decay far outside what trains (1e6 and over; a weight decay of 1 and
// over) is named first: the learning rate is then not what to change.
static const char *divergence_advice(const Config *cfg, char *buf, size_t len) {
    // (a gan's or aae's phases each take the whole gradient: train.grad_clip is refused for them)
    const bool clip_allowed = !model_kind_info(cfg->model.kind)->adversarial;
    const double huge_weight = 1e6;
    const char *key = NULL;
    double value = 0.0;
    if (cfg->loss.w_rec >= huge_weight) key = "loss.w_rec", value = cfg->loss.w_rec;
    else if (!cfg->loss.has_capacity && cfg->loss.w_kl >= huge_weight) key = "loss.w_kl", value = cfg->loss.w_kl;
    else if (cfg->loss.has_capacity && cfg->loss.capacity_gamma >= huge_weight)
        key = "loss.capacity.gamma", value = cfg->loss.capacity_gamma;
    else if (cfg->train.weight_decay >= 1.0) key = "train.weight_decay", value = cfg->train.weight_decay;
    char first[96] = "";
    if (key) snprintf(first, sizeof first, "try a smaller %s (it was %g), ", key, value);
    snprintf(buf, len, "%s%s train.lr (it was %g)%s", first, key ? "a lower" : "try a lower", cfg->train.lr,
             cfg->train.grad_clip > 0 || !clip_allowed ? "" : " or a gradient clip (train.grad_clip, e.g. 1)");
    return buf;
}

static void format_duration(double seconds, char *buf, size_t len) {
    if (seconds < 0 || seconds > 1e7) seconds = 0;
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, len, "%ld:%02ld", s / 60, s % 60);
}


// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise.
static void print_progress(bool tty, int epoch, int epochs, long done, long total,
                           double samples_per_s, double eta_s, double loss) {
    char eta[32];
    format_duration(eta_s, eta, sizeof eta);
    double pct = total ? 100.0 * (double)done / (double)total : 100.0;
    if (tty) {
        char bar[31];
        int filled = (int)(pct / 100.0 * 30.0);
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\repoch %d/%d [%s] %5.1f%%  %8.0f samples/s  ETA %s  loss %.3f   ", epoch,
                epochs, bar, pct, samples_per_s, eta, loss);
    } else {
        fprintf(stderr, "epoch %d/%d %5.1f%%  %.0f samples/s  ETA %s  train loss %.3f\n",
                epoch, epochs, pct, samples_per_s, eta, loss);
    }
    fflush(stderr);
}

// Keeps the first `lines` lines of a log (a resumed run continues it after the
// epoch its resume file holds), rewritten atomically.
static int keep_log_lines(const char *path, int lines, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) return 0;   // a run stopped in its first epoch (run_log_check passed)
    if (!f) return set_error(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    TextBuffer kept = {0};
    char line[4096];
    int n = 0;
    while (n < lines && fgets(line, sizeof line, f)) {
        text_append(&kept, line);
        if (strchr(line, '\n')) n++;
    }
    fclose(f);
    int rc = write_file_atomic(path, kept.data ? kept.data : "", err, errlen);
    free(kept.data);
    return rc;
}

// ---- interrupts: SIGINT / SIGTERM / SIGHUP stop the run at the next step boundary ----
static volatile sig_atomic_t interrupt_signal;   // the signal that asked to stop, or 0

static void on_interrupt(int sig) {
    if (interrupt_signal) {   // asked twice: stop now, removing the temp file of a write under way --
        // except a second SIGHUP: a closed terminal sends two (the shell's, then the kernel's as the
        // shell exits), and nobody is there to ask twice
        if (sig != SIGHUP) temp_files_remove_and_die(sig);
        return;
    }
    interrupt_signal = sig;
    static const char on_int[] =
        "\ncuvae: stopping at the next step boundary to save the run (press Ctrl-C again to quit at once)\n";
    static const char on_term[] =
        "\ncuvae: SIGTERM: stopping at the next step boundary to save the run (a second SIGTERM quits at once)\n";
    static const char on_hup[] =
        "\ncuvae: SIGHUP: stopping at the next step boundary to save the run (SIGINT or SIGTERM quits at once)\n";
    const char *message = sig == SIGINT ? on_int : sig == SIGTERM ? on_term : on_hup;
    const size_t length = sig == SIGINT ? sizeof on_int - 1 : sig == SIGTERM ? sizeof on_term - 1 : sizeof on_hup - 1;
    ssize_t unused = write(2, message, length);
    (void)unused;
}

static const char *signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP"; }

typedef struct {
    struct sigaction old_int, old_term, old_hup;
} InterruptHandlers;

// A signal the process was started with ignored stays ignored (a shell's background job has
// SIGINT ignored so that the terminal's Ctrl-C leaves it running; nohup, SIGHUP), as in the
// final evaluation, which runs with the handlers the process had.
static void interrupts_catch(InterruptHandlers *saved) {
    interrupt_signal = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, NULL, &saved->old_int);
    sigaction(SIGTERM, NULL, &saved->old_term);
    sigaction(SIGHUP, NULL, &saved->old_hup);
    if (saved->old_int.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    if (saved->old_term.sa_handler != SIG_IGN) sigaction(SIGTERM, &sa, NULL);
    if (saved->old_hup.sa_handler != SIG_IGN) sigaction(SIGHUP, &sa, NULL);
}

static void interrupts_restore(const InterruptHandlers *saved) {
    sigaction(SIGINT, &saved->old_int, NULL);
    sigaction(SIGTERM, &saved->old_term, NULL);
    sigaction(SIGHUP, &saved->old_hup, NULL);
}

// The objective a step minimises at the KL schedule s, in words: "1 rec + 0.5 KL",
// "10 rec + 25 |KL - 3.2|" (capacity). Static storage.
static const char *objective_text(const Config *cfg, KlSchedule s) {
    static char text[160];
    if (cfg->model.kind == MODEL_GAN)
        snprintf(text, sizeof text, "discriminator loss + generator loss");
    else if (model_kind_autoregressive(cfg->model.kind))
        snprintf(text, sizeof text, "%g -log p(%s)", cfg->loss.w_rec, cfg->model.prior_of[0] ? "codes" : "x");
    else if (!model_kind_info(cfg->model.kind)->second)   // an AE: rec alone
        snprintf(text, sizeof text, "%g rec", cfg->loss.w_rec);
    else if (s.capacity)
        snprintf(text, sizeof text, "%g rec + %g |KL - %g|", cfg->loss.w_rec, (double)s.capacity_gamma,
                 (double)s.capacity_target);
    else
        snprintf(text, sizeof text, "%g rec + %g %s%s", cfg->loss.w_rec, (double)s.weight,
                 model_kind_info(cfg->model.kind)->second,
                 cfg->loss.free_bits > 0 ? ", the KL without its free-bits floor" : "");
    return text;
}

// Appends one line to the log, flushes it and syncs it to the disk (the resume file written after
// it holds the log's line count and CRC: a crash must not keep that file and lose the line it
// counts); -1 with err naming the file if the disk refused any of it (full, read-only, I/O error).
static int log_write_line(FILE *log, const char *path, const char *line, char *err, size_t errlen) {
    errno = 0;
    if (fputs(line, log) < 0 || fflush(log) != 0 || ferror(log))
        return set_error(err, errlen, "%s: cannot write: %s", path, strerror(errno ? errno : EIO));
    if (fsync(fileno(log)) != 0 && errno != EINVAL)   // (EINVAL: a file that cannot be synced, e.g. /dev/null)
        return set_error(err, errlen, "%s: cannot write: fsync: %s", path, strerror(errno));
    return 0;
}

// Launched as ranks (mpirun / srun), every rank builds the same model from the
// same seed and trains its shard of each batch: refuses what cannot run so yet.
static int data_parallel_check(Model *model, const Config *cfg, int batch, char *err, size_t errlen) {
    if (!dist_launched()) return 0;
    const char *why = model_kind_info(cfg->model.kind)->data_parallel_refusal
        ? model_kind_info(cfg->model.kind)->data_parallel_refusal
        : network_has_running_statistics(model->encoder_net) || network_has_running_statistics(model->decoder_net)
            ? "keeps running statistics (batch norm) that the ranks would keep apart" : NULL;
    char origin[1800];
    if (why)
        return set_error(err, errlen, "%s: model.kind %s %s: data-parallel training (%d ranks) does not support "
                         "it yet; train it as one process", config_key_origin(cfg, "model.kind", origin, sizeof origin),
                         model_kind_name(cfg->model.kind), why, dist_size());
    if (batch < dist_size() && batch < cfg->train.batch_size)   // the training set is the smaller
        return set_error(err, errlen, "the training set has %d example%s, fewer than the %d ranks (each rank trains on "
                         "a shard of every batch)%s", batch, batch == 1 ? "" : "s", dist_size(),
                         cfg->data.train_limit > 0 ? ": raise data.train_limit" : "");
    if (batch < dist_size())
        return set_error(err, errlen, "%s: batches of %d rows (train.batch_size %d) are fewer than the %d ranks "
                         "(each rank trains on a shard of the global batch)",
                         config_key_origin(cfg, "train.batch_size", origin, sizeof origin), batch, cfg->train.batch_size,
                         dist_size());
    model->data_parallel = true;
    return 0;
}

static int train_in_folder(const Config *cfg, const char *out_dir, bool resume, bool overwrite, int *lock_fd,
                           char *err, size_t errlen);
// The loss sums accumulated on the device since the last read (and zeroed there): data parallel,
// the global batch's, summed over the ranks.
static void read_loss_sums(Model *model, double *rec, double *kl_sum, double *count) {
    dist_wait_begin("device step (its gradient all-reduce)");   // (watched: a dead rank stalls it)
    model_read_loss(model, rec, kl_sum, count);
    dist_wait_end();
    if (model->data_parallel) {
        double sums[3] = {*rec, *kl_sum, *count};
        dist_sum_doubles(sums, 3, "loss sums");
        *rec = sums[0];
        *kl_sum = sums[1];
        *count = sums[2];
    }
}


// A refusal every rank takes together, said before any rank ends: over MPI once (rank 0's line, and
// the line of each rank whose message is not rank 0's: the rank that differs says why); without
// MPI each rank prints its line, then the ranks meet once more. Returns -1 with err emptied (the
// command prints nothing more).
static int said_by_every_rank(char *err, size_t errlen) {
    if (!dist_without_mpi()) return dist_agree_on_failure(-1, err, errlen, "refusal reported");
    dist_print_error(err);
    dist_any(true, "refusal reported");
    if (errlen > 0) err[0] = '\0';
    return -1;
}

// Rank 0's v on every rank: a sum to which rank 0 alone adds (in 16-bit halves, exact in doubles),
// over whichever transport the ranks use.
static uint32_t rank0_value(uint32_t v, const char *what) {
    double halves[2] = {0.0, 0.0};
    if (dist_rank() == 0) {
        halves[0] = (double)(v >> 16);
        halves[1] = (double)(v & 0xffffu);
    }
    dist_sum_doubles(halves, 2, what);
    return ((uint32_t)halves[0] << 16) | (uint32_t)halves[1];
}

// Launched as ranks, every rank must train the same run: its effective config (the config file
// with its --set options applied) is compared with rank 0's, by CRC-32; the rank that differs
// names its first line that is not rank 0's where MPI carries rank 0's text. The data keys that
// name files (data.dir, data.train, ...) are left out: the data read are compared themselves
// (ranks_share_data), so the same files under another folder on each machine are the same run.
// 0, or -1 with err.
static int ranks_share_config(const Config *cfg, char *err, size_t errlen) {
    if (dist_size() == 1) return 0;
    Config *compared = xmalloc(sizeof *compared);
    *compared = *cfg;
    config_hide_data_paths(compared);
    char *json = config_to_json(compared);
    free(compared);
    const uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)json, (uInt)strlen(json));
    const uint32_t crc0 = rank0_value(crc, "config check");
    const bool differs = crc != crc0;
    if (!dist_any(differs, "config check")) {
        free(json);
        return 0;
    }
    char line[160] = "", line0[160] = "";
    int line_no = 0;
    if (!dist_without_mpi()) {   // rank 0's text, to name the first line that differs
        uint64_t len0 = strlen(json) + 1;
        dist_broadcast_bytes(&len0, sizeof len0, "config check");
        char *json0 = xmalloc(len0);
        if (dist_rank() == 0) memcpy(json0, json, len0);
        dist_broadcast_bytes(json0, len0, "config check");
        const char *a, *b;
        line_no = text_first_differing_line(json, json0, &a, &b);
        if (line_no > 0) {   // (without the indentation)
            a += strspn(a, " ");
            b += strspn(b, " ");
            const size_t na = strcspn(a, "\n"), nb = strcspn(b, "\n");
            snprintf(line, sizeof line, "%.*s", (int)(na < 120 ? na : 120), a);
            snprintf(line0, sizeof line0, "%.*s", (int)(nb < 120 ? nb : 120), b);
        }
        free(json0);
    }
    free(json);
    if (!differs)
        set_error(err, errlen, "another rank's effective config is not rank 0's (its own line says where): every rank "
                  "must be launched with the same config file and --set options");
    else if (line[0] || line0[0])
        set_error(err, errlen, "its effective config is not rank 0's: line %d is `%s` where rank 0 has `%s`; every "
                  "rank must be launched with the same config file and --set options", line_no, line, line0);
    else
        set_error(err, errlen, "its effective config (CRC-32 %08" PRIx32 ") is not rank 0's (%08" PRIx32 "): every "
                  "rank must be launched with the same config file and --set options", crc, crc0);
    return said_by_every_rank(err, errlen);
}

// Launched as ranks, every rank must read rank 0's data: its training, validation and test sets
// (as trained and evaluated on: limited, carved, binarized once) are compared with rank 0's, by
// CRC-32. 0, or -1 with err.
static int ranks_share_data(const Dataset *train_set, const Dataset *val_set, const Dataset *test_set, char *err,
                            size_t errlen) {
    if (dist_size() == 1) return 0;
    const uint32_t crcs[3] = {dataset_crc32(train_set), dataset_crc32(val_set), dataset_crc32(test_set)};
    const uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)crcs, sizeof crcs);
    const uint32_t crc0 = rank0_value(crc, "data check");
    const bool differs = crc != crc0;
    if (!dist_any(differs, "data check")) return 0;
    if (differs)
        set_error(err, errlen, "its data (CRC-32 %08" PRIx32 " of the training, validation and test sets) are not "
                  "rank 0's (%08" PRIx32 "): the files the config's data keys name differ between the ranks", crc,
                  crc0);
    else
        set_error(err, errlen, "another rank's data are not rank 0's (its own line says so)");
    return said_by_every_rank(err, errlen);
}

// CRC-32 of n floats on the device (copied to the host a slice at a time), onto crc.
static uint32_t device_floats_crc32(Backend *be, const float *device, size_t n, uint32_t crc, float *slice,
                                    size_t slice_floats) {
    for (size_t first = 0; first < n; first += slice_floats) {
        const size_t count = n - first < slice_floats ? n - first : slice_floats;
        be->download(be, slice, device + first, count * sizeof(float));
        crc = (uint32_t)crc32(crc, (const Bytef *)slice, (uInt)(count * sizeof(float)));
    }
    return crc;
}

// Where a run starts, in words: "starts a new run", "resumes after epoch 3", "resumes in epoch 4 at
// step 120".
static void describe_start(bool resume, uint32_t epochs_done, uint32_t steps_in_epoch, char *out, size_t n) {
    if (!resume) snprintf(out, n, "starts a new run");
    else if (steps_in_epoch == 0) snprintf(out, n, "resumes after epoch %" PRIu32, epochs_done);
    else snprintf(out, n, "resumes in epoch %" PRIu32 " at step %" PRIu32, epochs_done + 1, steps_in_epoch);
}

// Launched as ranks, every rank must start from rank 0's point: all new runs, or all resuming the
// same state (a copy of the same resume.safetensors on each machine). Compared by the point (new,
// or the epoch and step resumed at) and the CRC-32 of the weights, optimizer moments and buffers
// as loaded; without it a rank resuming beside one starting anew (or another run's resume file
// on one machine) would sum gradients of different weights into rank 0's run, then wait for
// epochs the others never train. 0, or -1 with err.
static int ranks_share_start(Model *m, bool resume, const ResumePoint *at, char *err, size_t errlen) {
    if (dist_size() == 1) return 0;
    const size_t slice_floats = (size_t)1 << 20;
    float *slice = xmalloc(slice_floats * sizeof(float));
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    const float *arrays[3] = {m->params, m->adam_m, m->adam_v};   // (n_params) each
    for (int i = 0; i < 3; i++) crc = device_floats_crc32(m->be, arrays[i], m->n_params, crc, slice, slice_floats);
    if (m->n_buffers) crc = device_floats_crc32(m->be, m->buffers, m->n_buffers, crc, slice, slice_floats);
    free(slice);
    const uint32_t epochs = resume ? (uint32_t)at->epochs_done : 0;
    const uint32_t steps = resume ? (uint32_t)at->steps_in_epoch : 0;
    const uint32_t resume0 = rank0_value(resume ? 1u : 0u, "start check");
    const uint32_t epochs0 = rank0_value(epochs, "start check"), steps0 = rank0_value(steps, "start check");
    const uint32_t crc0 = rank0_value(crc, "start check");
    const bool same_point = (resume ? 1u : 0u) == resume0 && epochs == epochs0 && steps == steps0;
    const bool differs = !same_point || crc != crc0;
    if (!dist_any(differs, "start check")) return 0;
    char mine[96], rank0[96];
    describe_start(resume, epochs, steps, mine, sizeof mine);
    describe_start(resume0 != 0, epochs0, steps0, rank0, sizeof rank0);
    if (!differs)
        set_error(err, errlen, "another rank does not start where rank 0 does (its own line says how): every rank "
                  "must start a new run, or every rank resume the same one (--resume, each from a copy of the same "
                  "resume.safetensors)");
    else if (!same_point)
        set_error(err, errlen, "it %s where rank 0 %s: every rank must start a new run, or every rank resume the "
                  "same one (--resume, each from a copy of the same resume.safetensors)", mine, rank0);
    else
        set_error(err, errlen, "it %s as rank 0 does, but from another state (CRC-32 %08" PRIx32 " of its weights "
                  "and optimizer moments, rank 0's %08" PRIx32 "): %s", mine, crc, crc0,
                  resume ? "each rank's resume.safetensors must be a copy of rank 0's" :
                  "the ranks' builds or devices initialise differently");
    return said_by_every_rank(err, errlen);
}

int train_run(const Config *cfg, const char *out_dir, bool resume, bool overwrite, char *err,
              size_t errlen) {
    // one train at a time writes out_dir (rank 0's lock; taken once the folder exists), and a
    // replacement by an --overwrite run that was killed half way is finished first
    int lock_fd = -1;
    int rc = 0;
    if (dist_is_writer() && (check_umask_keeps_owner(out_dir, err, errlen) != 0 ||
                             run_folder_lock(out_dir, &lock_fd, err, errlen) != 0 ||
                             run_folder_recover(out_dir, err, errlen) != 0))
        rc = -1;
    if (rc == 0) rc = train_in_folder(cfg, out_dir, resume, overwrite, &lock_fd, err, errlen);
    if (lock_fd >= 0) close(lock_fd);
    return rc;
}

// A standard error as printed: "n/a" where it is undefined (one test example).
static const char *std_error_text(double std_error, char *buf, size_t len) {
    if (isfinite(std_error)) snprintf(buf, len, "%.2f", std_error);
    else snprintf(buf, len, "n/a (one test image)");
    return buf;
}

// --resume: true with err when run_dir/config.json reads as another run's config than cfg (the
// resume file's, checked against it before), or does not read as a run's config at all (the run
// would write its own over it, unsaid).
static bool folder_config_differs(const char *run_dir, const Config *cfg, char *err, size_t errlen) {
    char path[1100], why[1024];
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    Config stored;
    if (access(path, F_OK) != 0) return false;
    if (config_load_stored(&stored, path, NULL, 0, why, sizeof why) != 0) {
        set_error(err, errlen, "%s (the run folder's config.json, which --resume keeps as the run wrote it): the "
                  "resume file's run would write over it: restore the folder's config.json, or start again with "
                  "--overwrite", why);
        return true;
    }
    return config_same_run(&stored, cfg, path, ", not the one the resume file holds: the run folder and its "
                           "resume.safetensors are of two runs (restore the folder's own resume file, or start "
                           "again with --overwrite)", err, errlen) != 0;
}

// What a run refused before training holds by then, released (model and eval_model: NULL where not
// created yet).
static void release_refused_run(TextBuffer *notes, Model *model, Model *eval_model, Backend *be, Dataset *train_set,
                                Dataset *val_set, Dataset *test_set) {
    free(notes->data);
    if (eval_model) model_destroy(eval_model);
    if (model) model_destroy(model);
    be->destroy(be);
    dataset_free(train_set);
    dataset_free(val_set);
    dataset_free(test_set);
}

static int train_in_folder(const Config *cfg, const char *out_dir, bool resume, bool overwrite, int *lock_fd,
                           char *err, size_t errlen) {
    const double run_start = wall_seconds();   // (the "done in" line: the whole run, set-up included)
    char advice[160];   // a divergence message's last part (divergence_advice)
    // launched as ranks over MPI, every rank must train rank 0's run: checked first, before any rank
    // takes a path that meets the others in another collective (a rank on the CPU beside ranks that
    // compare their GPUs would wait for ever); without MPI the check needs the GPU's communicator,
    // and waits for the backend (below)
    if (!dist_without_mpi() && ranks_share_config(cfg, err, errlen) != 0) return -1;
    // validate everything that can fail on bad input before touching out_dir (launched as ranks,
    // each checks and loads alike: a failure they share said once, dist_agree_on_failure)
    int checked = run_folder_check(out_dir, resume, overwrite, err, errlen);
    // --resume continues an --overwrite run that was killed or failed (it stays staged)
    const int resume_staged = checked == 0 && resume ? run_folder_staged(out_dir, err, errlen) : 0;
    if (resume_staged < 0) checked = -1;
    if (dist_agree_on_failure(checked, err, errlen, "run folder check") != 0) return -1;
    Dataset train_set, test_set, val_set;
    memset(&val_set, 0, sizeof val_set);
    const int loaded = prior_dataset_load(cfg, &train_set, &test_set, err, errlen);
    if (dist_agree_on_failure(loaded, err, errlen, "data load") != 0) {
        if (loaded == 0) {   // another rank's failure
            dataset_free(&train_set);
            dataset_free(&test_set);
        }
        return -1;
    }
    eval_prepare_test_set(cfg, &test_set);
    const bool validating = cfg->data.validation > 0.0;
    if (validating) {
        char why[512];
        if (dataset_split_validation(&train_set, &val_set, cfg->data.validation, cfg->train.seed, why,
                                     sizeof why) != 0) {
            char origin[1800];
            set_error(err, errlen, "%s: %s", config_key_origin(cfg, "data.validation", origin, sizeof origin), why);
            dataset_free(&train_set);
            dataset_free(&test_set);
            return -1;
        }
        eval_prepare_test_set(cfg, &val_set);   // dynamic binarization: fixed once, like the test set
    }
    char device_note[600];   // (device auto's fallback to the CPU: said with the run's notes)
    Backend *be = backend_create_noting(cfg->device, device_note, sizeof device_note, err, errlen);
    if (!be) {
        dataset_free(&train_set);
        dataset_free(&val_set);
        dataset_free(&test_set);
        return -1;
    }
    backend_configure_from(be, cfg);
    if (dist_without_mpi() && !be->collectives_without_mpi) {   // (the CPU's collectives need MPI)
        set_error(err, errlen, "launched as %d rank%s without MPI: only the CUDA backend (NCCL) trains so; on the CPU "
                  "launch with mpirun or srun --mpi=pmix", dist_size(), dist_size() == 1 ? "" : "s");
        be->destroy(be);
        dataset_free(&train_set);
        dataset_free(&val_set);
        dataset_free(&test_set);
        return -1;
    }
    // what the run is (backend, data, model, ...): said once every check on the input has
    // passed, so that a refusal is the one line a run prints
    TextBuffer notes = {0};
    if (device_note[0]) text_appendf(&notes, "%s", device_note);
    char data_notes[3000];
    dataset_load_notes(cfg, &train_set, &test_set, data_notes, sizeof data_notes);
    text_append(&notes, data_notes);
    if (validating)
        text_appendf(&notes, "cuvae: backend %s: %s; train %d (%d more held out for validation, seeded), test %d "
                "examples of %d pixels\n", be->name, be->device_name, train_set.n, val_set.n, test_set.n,
                train_set.dim);
    else
        text_appendf(&notes, "cuvae: backend %s: %s; train %d, test %d examples of %d pixels\n", be->name,
                be->device_name, train_set.n, test_set.n, train_set.dim);
    if (backend_precision_note(be, cfg)) text_appendf(&notes, "%s", backend_precision_note(be, cfg));

    Model model;
    int batch = cfg->train.batch_size < train_set.n ? cfg->train.batch_size : train_set.n;
    if (batch < 1) batch = 1;
    if (batch < cfg->train.batch_size)
        text_appendf(&notes, "cuvae: train.batch_size %d is larger than the %d training examples: batches of %d\n",
                cfg->train.batch_size, train_set.n, batch);
    if (model_create(&model, cfg, be, batch, err, errlen) != 0) {
        release_refused_run(&notes, NULL, NULL, be, &train_set, &val_set, &test_set);
        return -1;
    }
    model_init_params(&model, cfg->train.seed);
    model.carved_test_crc32 = test_set.carved_crc32;   // checkpoints say which test set the run held out
    if (model.n_classes > 0 && train_set.n_classes > 0 && train_set.n_classes < model.n_classes)
        model.data_classes = train_set.n_classes;   // ... and which of a cvae's classes it trained
    // the model of the final evaluation (a larger batch), allocated now: memory that
    // does not fit must fail before the output folder is touched, not after training
    Model eval_model;
    const Dataset *resident[3] = {&train_set, &test_set, validating ? &val_set : NULL};
    if (data_parallel_check(&model, cfg, batch, err, errlen) != 0 ||
        device_datasets_fit(be, resident, 3, err, errlen) != 0 ||
        model_create_forward_only(&eval_model, cfg, be,
                     eval_model_rows(cfg->eval.iw_samples > 0 ? cfg->eval.iw_batch : 1000, test_set.n,
                                     cfg->eval.iw_samples, cfg->eval.iw_examples,
                                     model.gan || model.aae ? cfg->eval.parzen_samples : 0),
                     err, errlen) != 0) {
        release_refused_run(&notes, &model, NULL, be, &train_set, &val_set, &test_set);
        return -1;
    }
    // the copy each epoch's files take of the parameters and Adam's moments (3 P floats): refused now
    // where it does not fit, not killed at the first save after an epoch of training (rank 0 writes
    // the files; launched as ranks, the others stop with it). epochs = 0 takes no such copy.
    const int copy_fits = dist_is_writer() && cfg->train.epochs > 0 ? resume_host_copy_fits(&model, err, errlen) : 0;
    if (dist_agree_on_failure(copy_fits, err, errlen, "host memory check") != 0) {
        release_refused_run(&notes, &model, &eval_model, be, &train_set, &val_set, &test_set);
        return -1;
    }
    const LossUnits units = loss_units(cfg);
    if (cfg->loss.w_rec == 0 && !model.gan)   // (an ae, made or pixelcnn with w_rec 0 is refused: nothing trains)
        text_appendf(&notes, "cuvae: note: loss.w_rec is 0: the decoder gets no gradient and keeps its initial "
                     "weights (its samples and reconstructions are an untrained network's); only the encoder and "
                     "its %s train\n", model.aae ? "discriminator (the prior matching)" : model.vq ? "codebook"
                     : "KL term");
    if (model.aae && cfg->model.prior_mixture && batch % MIXTURE_COMPONENTS != 0) {   // said, not left unsaid
        const int each = batch / MIXTURE_COMPONENTS, extra = batch % MIXTURE_COMPONENTS;
        text_appendf(&notes, "cuvae: note: the mixture prior draws row i of a batch from component i mod %d: with "
                     "batch %d, components 0-%d get %d draw(s) a batch and %d-%d get %d (a multiple of %d "
                     "draws them equally)\n", MIXTURE_COMPONENTS, batch, extra - 1, each + 1, extra,
                     MIXTURE_COMPONENTS - 1, each, MIXTURE_COMPONENTS);
    }
    if (model.aae)
        text_appendf(&notes, "cuvae: model aae, %zu parameters (autoencoder %zu, discriminator on z %zu; and the "
                "encoder's second Adam moments); per example: rec is the %s, D the discriminator's loss -log D(z_prior) "
                "- log(1 - D(z)) (nats)\n", model_parameter_count(&model), model.aae_ae_params,
                model.aae_discriminator->n_params, units.rec_long);
    else if (model.gan) {
        const double lo = cfg->model.gan.label_smoothing, hi = cfg->model.gan.label_smoothing_max;
        char targets[160] = "";
        if (hi > lo)
            snprintf(targets, sizeof targets, "; the real images' target t drawn in (%g, %g] every step, one per "
                     "image (model.label_smoothing [%g, %g])", 1.0 - hi, 1.0 - lo, lo, hi);
        else if (lo > 0.0)
            snprintf(targets, sizeof targets, "; the real images' target t = %g (model.label_smoothing %g)", 1.0 - lo, lo);
        text_appendf(&notes, "cuvae: model gan, %zu parameters (generator %zu, discriminator %zu); per example: D is the "
                "discriminator's loss %s - log(1 - D(G(z))), G the generator's -log D(G(z)) (binary "
                "cross-entropies from logits, nats)%s\n", model_parameter_count(&model),
                model.decoder_net->n_params, model.encoder_net->n_params,
                hi > 0.0 ? "-t log D(x) - (1 - t) log(1 - D(x))" : "-log D(x)", targets);
    }
    else
        text_appendf(&notes, "cuvae: model %s, %zu parameters; per example: rec is the %s%s\n",
            model_kind_name(cfg->model.kind), model.n_params, units.rec_long,
            units.exact_nll ? " (no latent: the loss is the likelihood itself)" :
            !units.has_kl ? " (an AE: no KL term)" :
            cfg->model.kind == MODEL_VQ_VAE ? ", VQ the codebook + commitment squared distances (so rec + VQ is a training objective, not a likelihood)" :
            units.nats ? ", KL in nats" : ", KL in nats (so rec + KL adds different units)");
    int image_channels, image_rows, image_cols;   // (a prior's images come from its VQ-VAE)
    const bool progress_images = cfg->train.epoch_images &&
        (model.prior_classes || model_image_shape(&model, &image_channels, &image_rows, &image_cols));
    if (!cfg->train.epoch_images && cfg->train.epoch_images_every != 1)
        text_appendf(&notes, "cuvae: note: train.epoch_images_every %d: train.epoch_images is false, so no progress images "
                     "are written at all\n", cfg->train.epoch_images_every);
    if (cfg->train.epoch_images && !progress_images) {
        char why[200];
        model_not_image_reason(&model, why, sizeof why);
        text_appendf(&notes, "cuvae: note: no progress images (train.epoch_images): %s\n", why);
    }

    DeviceDataset train_dev, test_dev;
    DeviceDataset val_dev;
    memset(&val_dev, 0, sizeof val_dev);
    device_dataset_upload(be, &train_set, &train_dev);
    device_dataset_upload(be, &test_set, &test_dev);
    if (validating) device_dataset_upload(be, &val_set, &val_dev);
    // each epoch is judged on the validation set when there is one, else the test set
    const DeviceDataset *watched = validating ? &val_dev : &test_dev;
    const char *watched_key = validating ? "val" : "test";
    const char *watched_name = validating ? "val loss" : "test loss";
    int32_t *perm_host = xmalloc((size_t)(train_set.n ? train_set.n : 1) * sizeof(int32_t));
    int32_t *perm_dev = be->alloc(be, (size_t)(train_set.n ? train_set.n : 1) * sizeof(int32_t));

    TrainStep train_step = {0};   // set before the first step; released at done
    InterruptHandlers handlers;
    bool handlers_caught = false, handlers_restored = false;
    FILE *log = NULL;
    char path[1024];
    int rc = 0;
    char done_line[1500] = "";
    const int epochs = cfg->train.epochs;
    long steps_per_epoch = (train_set.n + batch - 1) / batch;
    const int ranks = dist_size();
    const bool writer = dist_is_writer();   // rank 0 alone writes the run folder
    if (model.data_parallel) {
        const int tail = train_set.n % batch;
        if (tail > 0 && tail < ranks) {   // a last batch some ranks would have no row of
            steps_per_epoch--;
            text_appendf(&notes, "cuvae: data parallel: the last %d examples of each epoch's order are left out "
                    "(fewer than the %d ranks)\n", tail, ranks);
        }
        int first_start, first_rows, last_start, last_rows;
        dist_shard(batch, 0, ranks, &first_start, &first_rows);
        dist_shard(batch, ranks - 1, ranks, &last_start, &last_rows);
        char shards[64];
        if (first_rows == last_rows) snprintf(shards, sizeof shards, "%d", first_rows);
        else snprintf(shards, sizeof shards, "%d to %d", last_rows, first_rows);
        text_appendf(&notes, "cuvae: data parallel: %d rank%s, global batch %d (shards of %s rows), the gradient "
                "summed over the ranks every step; rank 0 writes %s\n", ranks, ranks == 1 ? "" : "s", batch, shards,
                out_dir);
    }
    // --overwrite: the run is written to a staging folder until its training has ended
    // (run_folder.h); otherwise to out_dir itself
    char staging[RUN_DIR_MAX_BYTES + 21];   // (out_dir: at most RUN_DIR_MAX_BYTES, main.c)
    snprintf(staging, sizeof staging, "%s/%s", out_dir, RUN_FOLDER_STAGING);
    const char *run_dir = overwrite || resume_staged ? staging : out_dir;   // (out_dir once committed)
    bool staged = resume_staged && writer;   // a staging folder is written (and committed or kept at the end): rank 0 alone
    bool replaces_run = true;      // --overwrite: out_dir held a run (else the messages say it held none)
    bool commit_not_begun = false;   // the commit found a place it cannot write (nothing moved)
    bool refused_before_run = false;   // the places of a staged run's commit, checked before it trains
    bool save_failed = false;   // a file of the run could not be written (a full disk): the line says what is kept
    char resume_path[1100], final_resume_path[1100];
    snprintf(resume_path, sizeof resume_path, "%s/resume.safetensors", run_dir);
    snprintf(final_resume_path, sizeof final_resume_path, "%s/resume.safetensors", out_dir);
    // a batch_norm over flat features normalises each over the batch: one example has no
    // statistics (its output would be the bias; PyTorch's BatchNorm1d refuses it)
    char flat_norm[96];
    if (!model.data_parallel && model_flat_batch_norm(&model, flat_norm, sizeof flat_norm)) {
        if (batch < 2) {
            char origin[1800], detail[128];
            const bool split_to_one = val_set.n > 0 && cfg->data.train_limit != 1;   // data.validation left one
            if (split_to_one)
                snprintf(detail, sizeof detail, "train.batch_size %d, %d training example%s once data.validation "
                         "held out %d", cfg->train.batch_size, train_set.n, train_set.n == 1 ? "" : "s", val_set.n);
            else
                snprintf(detail, sizeof detail, "train.batch_size %d, %d training example%s", cfg->train.batch_size,
                         train_set.n, train_set.n == 1 ? "" : "s");
            // (the data's one example, when the batch size is larger: where they came from)
            rc = model_batch_of_one_error(config_key_origin(cfg, cfg->train.batch_size < 2 ? "train.batch_size"
                                                            : cfg->data.train_limit == 1 ? "data.train_limit"
                                                            : split_to_one               ? "data.validation"
                                                                                         : "data.train",
                                                            origin, sizeof origin),
                                          flat_norm, detail, err, errlen);
            goto done;
        }
        if (train_set.n % batch == 1) {   // the epoch's last batch would be one example: left out
            steps_per_epoch--;
            text_appendf(&notes, "cuvae: the last example of each epoch's order is left out: alone in a batch it would "
                    "give %s no statistics\n", flat_norm);
        }
    }
    model_begin_training(&model, steps_per_epoch, (float)config_learning_rate(cfg, 1));
    // eval.iw_examples limits the final importance-weighted bound, which eval.iw_samples 0 leaves out
    // (eval.iw_batch is read by a later cuvae eval --iw too, so it is kept unsaid)
    if (cfg->eval.iw_samples == 0 && cfg->eval.iw_examples > 0)
        text_appendf(&notes, "cuvae: note: eval.iw_examples %d is read only with eval.iw_samples > 0 (the run's final "
                     "importance-weighted bound): this run computes none\n", cfg->eval.iw_examples);
    // ... and a kind without the bound (gan, aae, ae, made, pixelcnn, vq_vae) reads no eval.iw_batch at all
    else if (cfg->eval.iw_batch != CONFIG_DEFAULT_IW_BATCH && !model_kind_info(cfg->model.kind)->gaussian_posterior)
        text_appendf(&notes, "cuvae: note: eval.iw_batch %d sizes the importance-weighted bound, which kind \"%s\" has "
                     "none of: it is not read\n", cfg->eval.iw_batch, model_kind_name(cfg->model.kind));
    // ε of the reparametrization z = μ + σ·ε: a kind without one (its z, if any, drawn otherwise)
    // reads no train.epsilon (a note, as above: such configs and their checkpoints exist)
    if (cfg->train.epsilon != EPSILON_FUSED && !model_kind_info(cfg->model.kind)->gaussian_posterior)
        text_appendf(&notes, "cuvae: note: train.epsilon \"stored\" chooses how the reparametrization's noise is "
                     "drawn, which kind \"%s\" has none of: it is not read\n", model_kind_name(cfg->model.kind));
    // a note, not a refusal: checkpoints of such configs exist, and must still read and resume
    if (model_made_mask_sets_alike(&model))
        text_appendf(&notes, "cuvae: note: model.masks %d of a network with no hidden layer in the natural ordering are "
                     "one mask (strictly lower triangular) %d times: each step and the evaluation's ensemble use that "
                     "one mask (model.ordering \"random\" gives each set its own ordering)\n", cfg->model.masks,
                     cfg->model.masks);
    // a warm-up longer than the run never reaches its target: said, not left unsaid (the ramps
    // of step_state.h at the run's last step)
    const long run_steps = steps_per_epoch * epochs;
    if (cfg->train.warmup_steps > 0 && run_steps > 0 && cfg->train.warmup_steps > run_steps)
        text_appendf(&notes, "cuvae: note: train.warmup_steps %d is longer than the run's %ld steps: the run ends inside "
                     "the warm-up, at %.3g of the learning rate its schedule gives\n", cfg->train.warmup_steps, run_steps,
                     (double)run_steps / cfg->train.warmup_steps);
    // a KL schedule on a KL term weighed 0, or a capacity term weighed 0, changes nothing: said (a note,
    // not a refusal: checkpoints and runs of such configs exist, and must still read and resume)
    if (model.variational && cfg->loss.w_kl == 0 && cfg->loss.kl_warmup_epochs > 0)
        text_appendf(&notes, "cuvae: note: loss.kl_warmup_epochs ramps the KL weight up to loss.w_kl, which is 0: it "
                     "changes nothing here\n");
    if (model.variational && cfg->loss.w_kl == 0 && cfg->loss.free_bits > 0)
        text_appendf(&notes, "cuvae: note: loss.free_bits acts on the KL term, whose weight loss.w_kl is 0: it changes "
                     "nothing here\n");
    if (model.variational && cfg->loss.has_capacity && cfg->loss.capacity_gamma == 0)
        text_appendf(&notes, "cuvae: note: loss.capacity.gamma is 0: the capacity term gamma |KL - C| is 0, and its "
                     "max_nats and epochs change nothing\n");
    // the ramps read the steps done before each step (step_state.h): the last step, run_steps - 1
    // steps in, is at last_position epochs, and a ramp as long as the run ends after it
    const double last_position = run_steps > 0 ? (double)(run_steps - 1) / steps_per_epoch : 0.0;
    if (model.variational && cfg->loss.w_kl != 0 && cfg->loss.kl_warmup_epochs > last_position && run_steps > 0)
        text_appendf(&notes, "cuvae: note: loss.kl_warmup_epochs %g ends after the run's last step (%d epoch%s): the KL "
                     "weight reaches only %.6g of loss.w_kl, at the last step\n", cfg->loss.kl_warmup_epochs, epochs,
                     epochs == 1 ? "" : "s", last_position / cfg->loss.kl_warmup_epochs);
    if (model.variational && cfg->loss.has_capacity && cfg->loss.capacity_gamma != 0 &&
        cfg->loss.capacity_epochs > last_position && run_steps > 0)
        text_appendf(&notes, "cuvae: note: loss.capacity.epochs %g ends after the run's last step (%d epoch%s): the target "
                     "C reaches only %.6g of loss.capacity.max_nats, at the last step\n", cfg->loss.capacity_epochs,
                     epochs, epochs == 1 ? "" : "s", last_position / cfg->loss.capacity_epochs);
    snprintf(path, sizeof path, "%s/log.jsonl", run_dir);
    int first_epoch = 1;
    ResumePoint at;
    memset(&at, 0, sizeof at);
    const uint32_t data_crc = dataset_crc32(&train_set);   // a resumed run must train on the same data
    uint32_t log_crc = (uint32_t)crc32(0L, Z_NULL, 0);   // of log.jsonl's lines so far (resume files keep it)
    if (dist_without_mpi() && ranks_share_config(cfg, err, errlen) != 0) {   // (over MPI: checked first, above)
        rc = -1;
        goto done;
    }
    if (ranks_share_data(&train_set, &val_set, &test_set, err, errlen) != 0) {   // and rank 0's data
        rc = -1;
        goto done;
    }
    if (resume) {
        if (access(resume_path, F_OK) != 0) {
            char config_path[1100];
            snprintf(config_path, sizeof config_path, "%s/config.json", out_dir);
            bool started = access(config_path, F_OK) == 0;   // a run that stopped in its first epoch
            if (working_folder_gone_note(resume_path)[0])
                rc = set_error(err, errlen, "%s: cannot be read%s", resume_path, working_folder_gone_note(resume_path));
            else
                rc = set_error(err, errlen, "%s: nothing to resume (a run writes it after every epoch and when "
                               "interrupted); %s", resume_path, started ? "start the run again with --overwrite"
                               : "train without --resume to start one");
            goto done;
        }
        // (a rank other than 0 may read rank 0's data under other paths: ranks_share_data compared them)
        // the steps an epoch has on another number of ranks: data parallel leaves out a last batch of
        // fewer rows than the ranks (above), so a run resumed on another number may count one more or less
        const long full_epoch_steps = (train_set.n + batch - 1) / batch;
        long other_steps_per_epoch = steps_per_epoch;
        if (train_set.n % batch > 0)
            other_steps_per_epoch = steps_per_epoch == full_epoch_steps ? full_epoch_steps - 1 : full_epoch_steps;
        if (other_steps_per_epoch < 1) other_steps_per_epoch = steps_per_epoch;
        if (resume_load(&model, resume_path, !dist_is_writer(), other_steps_per_epoch, &at, err, errlen) != 0) {
            rc = -1;
            goto done;
        }
        if (at.stored_steps_per_epoch != steps_per_epoch)
            text_appendf(&notes, "cuvae: note: %s was written with %lld steps an epoch, this run has %ld (the last "
                         "batch of %d example%s is %s on this number of ranks): the run goes on from the same epoch "
                         "and step in it\n", resume_path, (long long)at.stored_steps_per_epoch, steps_per_epoch,
                         train_set.n % batch, train_set.n % batch == 1 ? "" : "s",
                         steps_per_epoch < at.stored_steps_per_epoch ? "left out" : "trained");
        // the file's pending loss sums (the steps since the last log read) are the ranks' total:
        // rank 0 carries them on, the others start their interval at zero
        if (!dist_is_writer()) {
            const double zero_sums[3] = {0.0, 0.0, 0.0};
            model_set_loss_accumulator(&model, zero_sums);
        }
        if (writer && !at.data_crc32_known)   // (the log's check, below, is said where it is skipped)
            text_appendf(&notes, "cuvae: note: %s holds no CRC-32 of the training set (written before 2026-12-01, "
                         "07:20Z): the data are not checked against the run's\n", resume_path);
        if (at.data_crc32_known && at.data_crc32 != data_crc) {
            rc = set_error(err, errlen, "%s: the run trained on other data (its training set's CRC-32 %08" PRIx32
                           ", now %08" PRIx32 ": the files under the config's data keys changed, or this version of "
                           "cuvae selects other examples from them, a data.validation split rounded otherwise say); "
                           "restore the files, resume with the cuvae that began the run, or start a new run with "
                           "--overwrite or --out", resume_path, at.data_crc32, data_crc);
            goto done;
        }
        // the folder's config.json is the run's too (a resume file copied in from another run
        // would otherwise continue under this folder's log and replace its model); one that no
        // longer reads is rewritten by the run, as the resume file says
        if (writer && folder_config_differs(run_dir, cfg, err, errlen)) {
            rc = -1;
            goto done;
        }
        // the key the length came from (--full: train.full_epochs, where train.epochs is refused)
        const char *epochs_key = cfg->train.epochs_from_full ? "train.full_epochs" : "train.epochs";
        if (at.epochs_done > epochs) {   // (stopped inside the next epoch: that one is needed too)
            const int needed = at.epochs_done + (at.steps_in_epoch > 0 ? 1 : 0);
            rc = set_error(err, errlen, "%s: the run has finished %d epochs%s; %s %d would end it before them "
                           "(--set %s=%d or more)", resume_path, at.epochs_done,
                           at.steps_in_epoch > 0 ? " and is in the next" : "", epochs_key, epochs, epochs_key, needed);
            goto done;
        }
        if (at.epochs_done == epochs && at.steps_in_epoch > 0) {   // stopped in the epoch after the last
            rc = set_error(err, errlen, "%s: the run is in epoch %d (step %lld of %ld); %s %d would end it "
                           "before that epoch (--set %s=%d or more)", resume_path, epochs + 1,
                           (long long)at.steps_in_epoch, steps_per_epoch, epochs_key, epochs, epochs_key, epochs + 1);
            goto done;
        }
    }
    if (ranks_share_start(&model, resume, &at, err, errlen) != 0) {   // and rank 0's starting point
        rc = -1;
        goto done;
    }
    // each run file's place takes a regular file (the log is appended to, the others replaced by a
    // rename), and a resumed run's log holds the lines of the epochs its state has finished (they
    // are kept, the next epochs' appended): both checked here, or a run that failed on them after
    // an epoch would have rewritten config.json and removed eval.json. (--overwrite: run_dir is
    // the staging folder, emptied before the run writes there; the places in out_dir the run moves
    // its files to when it ends are checked instead, and again at that commit.)
    const bool staged_run = overwrite || resume_staged;
    if (staged_run && writer && run_folder_check_replaceable(out_dir, progress_images, err, errlen) != 0) {
        size_t used = strlen(err);
        if (overwrite)
            snprintf(err + used, errlen - used, " (--overwrite puts the new run there when it ends: mend it first; "
                     "%s is as it was, nothing was staged)", out_dir);
        else
            snprintf(err + used, errlen - used, " (the --overwrite run staged in %s goes there when it ends: mend it, "
                     "then train --resume again; that run and the earlier one in %s are as they were)", staging,
                     out_dir);
        refused_before_run = true;   // (the lines at the end would say it again)
        rc = -1;
        goto done;
    }
    if ((!overwrite && run_folder_check_outputs(run_dir, writer && progress_images, err, errlen) != 0) ||
        (resume && writer && run_log_check(path, at.epochs_done, &log_crc, err, errlen) != 0)) {
        rc = -1;
        goto done;
    }
    // lines of another run (the same count, in order) in the log: the resume file holds the CRC-32
    // of the lines this run wrote
    if (resume && writer && !at.log_crc32_known)
        text_appendf(&notes, "cuvae: note: %s holds no CRC-32 of log.jsonl's lines (written before 2026-12-04, "
                     "01:51Z): log.jsonl is continued as it is, its %d line%s not checked against the run's\n",
                     resume_path, at.epochs_done, at.epochs_done == 1 ? "" : "s");
    if (resume && writer && at.log_crc32_known && log_crc != at.log_crc32) {
        rc = set_error(err, errlen, "%s: its %d line%s (CRC-32 %08" PRIx32 ") are not the ones this run wrote "
                       "(%s holds %08" PRIx32 "): lines of another run, or edited? Restore the log, or start the "
                       "run again with --overwrite", path, at.epochs_done, at.epochs_done == 1 ? "" : "s", log_crc,
                       resume_path, at.log_crc32);
        goto done;
    }
    // Everything that can fail on bad input (data, config, sizes, memory, the
    // resume file) has passed: only now is the output folder touched, so a
    // failed run leaves an earlier run there as it was. (Data parallel: rank 0 alone, once every
    // rank has passed them: a rank that failed ends the job while rank 0 waits here.)
    if (dist_size() > 1) dist_any(false, "checks before the run folder is written");
    if (writer) {
        rc = make_dirs(out_dir, err, errlen);
        // (when out_dir is new: another train may have made it since the check above)
        if (rc == 0) rc = run_folder_lock(out_dir, lock_fd, err, errlen);
        if (rc == 0) rc = run_folder_check(out_dir, resume, overwrite, err, errlen);
        if (rc == 0) rc = run_folder_remove_temp_files(out_dir, err, errlen);   // with progress/, figures/
        snprintf(path, sizeof path, "%s/log.jsonl", run_dir);
        if (rc == 0 && overwrite) {
            replaces_run = run_folder_holds_run(out_dir);
            rc = run_folder_stage(staging, err, errlen);
            staged = rc == 0;
        }
        if (rc == 0 && resume_staged) {
            replaces_run = run_folder_holds_run(out_dir);
            rc = run_folder_remove_temp_files(staging, err, errlen);
            text_appendf(&notes, "cuvae: resuming the --overwrite run staged in %s: it replaces the run in %s when "
                         "it ends\n", staging, out_dir);
        }
    }
    if (rc == 0 && resume) {
        if (writer) rc = keep_log_lines(path, at.epochs_done, err, errlen);
        first_epoch = at.epochs_done + 1;
        if (rc == 0 && at.steps_in_epoch > 0)
            text_appendf(&notes, "cuvae: resuming %s in epoch %d of %d, after step %lld of %ld\n", out_dir,
                         first_epoch, epochs, (long long)at.steps_in_epoch, steps_per_epoch);
        else if (rc == 0)
            text_appendf(&notes, "cuvae: resuming %s after epoch %d of %d\n", out_dir, at.epochs_done, epochs);
        // the cosine curve spans the run's epochs: another number of them is another curve
        if (rc == 0 && cfg->train.lr_schedule == LR_COSINE && at.stored_epochs > 0 && at.stored_epochs != epochs)
            text_appendf(&notes, "cuvae: note: train.epochs %d -> %d with lr_schedule cosine: the lr follows the "
                         "%d-epoch curve from here, at its position after the steps done (above where the %d-epoch "
                         "curve had reached), not the %d-epoch curve from where it stopped\n", at.stored_epochs,
                         epochs, epochs, at.stored_epochs, at.stored_epochs);
    }
    if (rc == 0 && writer) {
        // a run that fails later must not leave an earlier evaluation beside its config
        char eval_path[1100];
        snprintf(eval_path, sizeof eval_path, "%s/eval.json", run_dir);
        if (unlink(eval_path) != 0 && errno != ENOENT)
            rc = set_error(err, errlen, "%s: cannot remove the previous evaluation: %s", eval_path,
                           strerror(errno));
    }
    // nor figures of the model before a resumed run trains it further
    // (a run that had stopped early trains no further: its figures stay)
    const bool had_stopped_early = validating && cfg->train.early_stopping > 0 && at.best_epoch > 0 &&
                                   at.steps_in_epoch == 0 && at.epochs_done - at.best_epoch >= cfg->train.early_stopping;
    // a run that another build goes on training: said, as the steps from here may differ in their last
    // bits from the ones the first build would have taken (a run with no step left trains nothing)
    if (rc == 0 && writer && resume && at.epochs_done < epochs && !had_stopped_early && at.written_by[0] &&
        cuvae_build() && strcmp(at.written_by, cuvae_build()) != 0) {
        char quoted[4 * CHECKPOINT_WRITTEN_BY_MAX];
        text_appendf(&notes, "cuvae: note: %s was written by %s; this is %s: the run goes on with this build (its "
                     "files will say so), bit for bit as one run of either build only where the two compute the "
                     "same\n", resume_path, one_line_text(at.written_by, quoted, sizeof quoted), cuvae_build());
    }
    if (rc == 0 && writer && resume && at.epochs_done < epochs && !had_stopped_early &&
        run_folder_remove_figures(run_dir))
        text_appendf(&notes, "cuvae: removed cuvae plot's figures in %s/figures/, drawn from the model before this "
                     "resumption (cuvae plot %s draws them again; other images there are left)\n", run_dir, out_dir);
    if (rc == 0 && notes.data) fputs(notes.data, stderr);   // every check has passed: what the run is
    free(notes.data);
    notes = (TextBuffer){0};
    // from the first file the run writes, SIGINT / SIGTERM / SIGHUP stop it at a step boundary, saved and
    // said (a signal in the start-up after config.json killed it without a word, leaving a folder
    // with a config.json and no state: refused by a plain train, nothing for --resume)
    if (rc == 0) {
        interrupts_catch(&handlers);
        handlers_caught = true;
    }
    if (rc == 0 && writer) {
        char config_path[1100];
        char *config_json = config_to_json(cfg);
        snprintf(config_path, sizeof config_path, "%s/config.json", run_dir);
        rc = write_file_atomic(config_path, config_json, err, errlen);
        char shown_out[600];   // (escaped: the line stays one line whatever the folder's name)
        if (rc == 0) fprintf(stderr, "cuvae: effective config (saved to %s/config.json%s):\n%s\n",
                             one_line_text(out_dir, shown_out, sizeof shown_out),
                             staged ? "; --overwrite: the run is staged in " RUN_FOLDER_STAGING " until it ends"
                                    : "", config_json);
        free(config_json);
    }
    if (rc != 0) goto done;
    if (writer) log = fopen(path, resume ? "a" : "w");   // through a symbolic link to a regular file
    if (writer && !log) {
        rc = set_error(err, errlen, "%s: cannot write: %s", path, strerror(errno));
        goto done;
    }
    char ckpt_path[1100], best_path[1100];
    snprintf(ckpt_path, sizeof ckpt_path, "%s/model.safetensors", run_dir);
    snprintf(best_path, sizeof best_path, "%s/best.safetensors", run_dir);
    char final_ckpt_path[1100];   // where the checkpoint is once the run ends (--overwrite moves it there)
    snprintf(final_ckpt_path, sizeof final_ckpt_path, "%s/model.safetensors", out_dir);

    bool tty = isatty(2);
    const long total_steps = steps_per_epoch * epochs;
    const float w_rec = (float)cfg->loss.w_rec;
    long global_step = (long)(first_epoch - 1) * steps_per_epoch + (long)at.steps_in_epoch;
    long steps_run = 0;   // by this process (the ETA)
    train_step = (TrainStep){.model = &model, .images = train_dev.images,
                             .labels = train_dev.labels, .perm = perm_dev,
                             .w_rec = w_rec};
    double train_start = wall_seconds();

    // a resumed run that had already stopped early stays stopped
    bool stopped_early = had_stopped_early && first_epoch <= epochs;
    if (stopped_early)
        fprintf(stderr, "cuvae: the run stopped early after epoch %d (no improvement for %d epochs since epoch %d); "
                "not training further (--set train.early_stopping=0 trains on); evaluating the saved model\n", at.epochs_done,
                at.epochs_done - at.best_epoch, at.best_epoch);

    for (int epoch = first_epoch; epoch <= epochs && !stopped_early; epoch++) {
        double epoch_start = wall_seconds();
        Rng shuffle;
        rng_init(&shuffle, cfg->train.seed, RNG_STREAM_SHUFFLE + (uint64_t)epoch);
        rng_permutation(&shuffle, perm_host, train_set.n);
        be->upload(be, perm_dev, perm_host, (size_t)train_set.n * sizeof(int32_t));

        // a run resumed mid-epoch continues the sums of its first epoch
        const bool continuing = epoch == first_epoch && at.steps_in_epoch > 0;
        double epoch_weighted = continuing ? at.epoch_weighted : 0.0;
        double epoch_rec = continuing ? at.epoch_rec : 0.0;
        double epoch_kl = continuing ? at.epoch_kl : 0.0;
        double epoch_count = continuing ? at.epoch_count : 0.0;
        model_set_learning_rate(&model, (float)config_learning_rate(cfg, epoch));
        double interval_start = wall_seconds();
        long interval_examples = 0;
        if (continuing && at.steps_in_epoch >= steps_per_epoch) {
            // resumed with this epoch's steps all done (a run of one step more an epoch, on another number
            // of ranks, stopped before its last): the loss sums it left pending are read as its last
            // step's would have been
            double rec, kl_sum, count;   // (data parallel: rank 0 holds the file's sums, the others none)
            read_loss_sums(&model, &rec, &kl_sum, &count);
            double weighted = model_weighted_loss_sum(cfg, w_rec, rec, kl_sum, count,
                                                      (double)(global_step - 1) / (double)steps_per_epoch);
            if (model.aae) weighted = w_rec * rec;
            epoch_weighted += weighted;
            epoch_rec += rec;
            epoch_kl += kl_sum;
            epoch_count += count;
        }
        for (long step = continuing ? (long)at.steps_in_epoch : 0; step < steps_per_epoch; step++) {
            // data parallel: the ranks agree at a step boundary (the signal may reach them apart): every
            // step over MPI (a host collective); without MPI the agreement goes over NCCL and waits for
            // the device, so only where the log interval reads the device anyway (the GPU step never syncs)
            const bool agree_now = !dist_without_mpi() || global_step % cfg->train.log_interval == 0;
            // the signal every rank reports: the largest number any rank received (SIGTERM over SIGINT
            // over SIGHUP), so that a SIGHUP that reached rank 0 alone is said as SIGHUP by every rank
            const int sig = !model.data_parallel ? (int)interrupt_signal
                            : agree_now         ? dist_max_int((int)interrupt_signal, "stop request")
                                                : 0;
            if (sig != 0) {
                double pending[3];   // the loss sums since the last read
                model_peek_loss_accumulator(&model, pending);
                if (model.data_parallel) {   // the resume file keeps every rank's pending loss sums, added up
                    dist_sum_doubles(pending, 3, "loss sums");
                    model_set_loss_accumulator(&model, pending);
                }
                // a run that diverged since the last read stops as one (its state is not saved)
                if (!isfinite(pending[0]) || !isfinite(pending[1])) {
                    rc = set_error(err, errlen,
                                   "training diverged in epoch %d by step %ld (found when %s stopped it): the loss "
                                   "is not finite (%s %g, %s %g); %s, if written, holds the last finished epoch; %s",
                                   epoch, step, signal_name(sig), model.gan ? "D loss" : "rec", nan_unsigned(pending[0]),
                                   units.second ? units.second : "KL", nan_unsigned(pending[1]), ckpt_path,
                                   divergence_advice(cfg, advice, sizeof advice));
                    goto done;
                }
                // a state that overflowed while the loss stayed finite (Adam's moments, a batch norm's
                // running variance): a divergence too, said as the epoch's end says it (its advice
                // names the setting to blame), not as the resume file's refused write (every rank
                // holds the same state: each finds the same, and stops)
                char non_finite[256];
                if (checkpoint_first_non_finite(&model, non_finite, sizeof non_finite)) {
                    rc = set_error(err, errlen, "training diverged in epoch %d by step %ld (found when %s stopped it): "
                                   "%s though the loss is finite; %s, if written, holds the last finished epoch; %s",
                                   epoch, step, signal_name(sig), non_finite, ckpt_path,
                                   divergence_advice(cfg, advice, sizeof advice));
                    goto done;
                }
                // the step boundary: save where the run is and how to continue
                ResumePoint here = {epoch - 1, step, epoch_weighted, epoch_rec, epoch_kl, epoch_count,
                                    at.best_epoch, at.best_loss, data_crc, true, 0, log_crc, true, steps_per_epoch, ""};
                if (writer && run_folder_check_still_locked(out_dir, *lock_fd, err, errlen) != 0) {
                    rc = -1;
                    goto done;
                }
                if (writer && resume_save(&model, &here, resume_path, err, errlen) != 0) {
                    save_failed = true;
                    rc = -1;
                    goto done;
                }
                rc = 128 + sig;
                if (model.data_parallel) dist_exit_agreed();   // (every rank stops here; rank 0 says so)
                // (an --overwrite run stays staged: the earlier run is replaced only by a run whose
                // training ended, never by one stopped half way)
                set_error(err, errlen, "interrupted (%s) in epoch %d after step %ld of %ld: the state is saved "
                          "in %s%s; continue with %s", signal_name(sig), epoch, step, steps_per_epoch,
                          staged ? resume_path : final_resume_path,
                          !staged ? "" : replaces_run ? " (the earlier run in the folder stays as it was until this one "
                                                        "ends; remove the .new-run folder to keep that one instead)"
                                                      : " (it moves into the folder when its training ends)",
                          overwrite ? "the same command, --resume in place of --overwrite"
                                    : "the same command and --resume");
                goto done;
            }
            int start = (int)(step * batch);
            int B = train_set.n - start < batch ? train_set.n - start : batch;
            train_step_run(&train_step, B);   // all per-step values live on the device
            global_step++;
            steps_run++;
            interval_examples += B;

            bool last_step = step == steps_per_epoch - 1;
            if (global_step % cfg->train.log_interval == 0 || last_step) {
                // the one device -> host read of a log interval
                double rec, kl_sum, count;
                read_loss_sums(&model, &rec, &kl_sum, &count);
                if (!isfinite(rec) || !isfinite(kl_sum)) {
                    rc = set_error(err, errlen,
                                   "training diverged at epoch %d, step %ld: the loss is not finite "
                                   "(%s %g, %s %g); %s, if written, holds the last finished epoch; %s",
                                   epoch, step + 1, model.gan ? "D loss" : "rec", nan_unsigned(rec),
                                   units.second ? units.second : "KL", nan_unsigned(kl_sum), ckpt_path, divergence_advice(cfg, advice, sizeof advice));
                    goto done;
                }
                // the objective at this step's schedule (free bits shown without the floor);
                // the host evaluates the same kl_schedule_at as the device did
                double weighted = model_weighted_loss_sum(cfg, w_rec, rec, kl_sum, count,
                                                          (double)(global_step - 1) / (double)steps_per_epoch);
                if (model.aae) weighted = w_rec * rec;   // (its second sum is the discriminator's loss)
                epoch_weighted += weighted;
                epoch_rec += rec;
                epoch_kl += kl_sum;
                epoch_count += count;
                double now = wall_seconds();
                double rate = interval_examples / (now - interval_start + 1e-12);
                double elapsed = now - train_start;
                double eta = elapsed / (double)steps_run * (double)(total_steps - global_step);
                if (!last_step || tty)
                    print_progress(tty, epoch, epochs, step + 1, steps_per_epoch, rate, eta,
                                   count > 0 ? weighted / count : 0.0);
                interval_start = now;
                interval_examples = 0;
            }
        }
        dist_wait_begin("device step (its gradient all-reduce)");
        be->synchronize(be);
        dist_wait_end();
        double train_seconds = wall_seconds() - epoch_start;
        ElboResult test;   // on the watched set: validation, or test
        // through the final evaluation's model (its batch): the logged test loss is the one eval.json
        // and `cuvae eval` give for the checkpoint (a GEMM of other rows may round a row otherwise).
        // Ranks share the set in blocks of that batch (up to 1,000 rows): a set of one block is
        // evaluated by rank 0 alone -- the price of the same row blocks as eval.json's
        model_copy_weights(&eval_model, &model);
        eval_elbo_ranks(&eval_model, watched, EPS_SAMPLE, &test);   // sharded over the ranks
        double seconds = wall_seconds() - epoch_start;
        double train_loss = epoch_count > 0 ? epoch_weighted / epoch_count : 0.0;
        // the schedule the epoch's last step trained with (step s of the run, counted from 1, sits at
        // position (s - 1) / steps_per_epoch), as the logged lr is the last step's
        KlSchedule epoch_end = model_kl_schedule(cfg, (double)(global_step - 1) / (double)steps_per_epoch);
        if (!isfinite(test.loss)) {
            rc = set_error(err, errlen, "epoch %d: the %s is not finite (%g); %s, if written, holds "
                           "the last finished epoch; %s", epoch, watched_name, nan_unsigned(test.loss),
                           ckpt_path, divergence_advice(cfg, advice, sizeof advice));
            goto done;
        }
        // A reconstruction term far above what predicting 1/2 for every pixel gives is a run that
        // diverged without overflowing: ln 2 a pixel for a Bernoulli term, whatever the targets; at
        // most 1/4 a pixel for a squared error (the targets are pixels in [0, 1]). (Not a gan's, whose
        // rec is no reconstruction, nor a prior's over VQ codes: categorical, ln K a code.)
        const bool bce = cfg->loss.reconstruction == REC_BCE;
        const double half_rec = (bce ? M_LN2 : 0.25) * (cfg->loss.reduction == REDUCTION_SUM ? cfg->model.input_dim : 1);
        if (!model.gan && !cfg->model.prior_of[0] && test.rec > 10.0 * half_rec) {
            rc = set_error(err, errlen, "epoch %d: training diverged: the %s reconstruction term is %g %s, more "
                           "than 10 times what predicting 1/2 for every pixel gives%s (%g); %s, if written, holds the "
                           "last finished epoch; %s", epoch, validating ? "validation" : "test",
                           test.rec, units.rec, bce ? "" : " at most",
                           half_rec, ckpt_path, divergence_advice(cfg, advice, sizeof advice));
            goto done;
        }
        // the copies below and the epoch's files take 3 P floats of host memory: checked again, as
        // other processes may have taken memory since the start (said, not killed at the copy)
        if (writer && resume_host_copy_fits(&model, err, errlen) != 0) {
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, " (at the end of epoch %d; %s, if written, holds the last finished "
                     "epoch)", epoch, ckpt_path);
            rc = -1;
            goto done;
        }
        // a state that overflowed while the loss stayed finite (a batch norm's running variance,
        // Adam's moments): stopped before the epoch's line, log line and files, which keep the
        // last finished epoch
        char non_finite[256];
        if (writer && checkpoint_first_non_finite(&model, non_finite, sizeof non_finite)) {
            rc = set_error(err, errlen, "training diverged in epoch %d: %s though the loss is finite; %s, if written, "
                           "holds the last finished epoch; %s", epoch, non_finite, ckpt_path,
                           divergence_advice(cfg, advice, sizeof advice));
            goto done;
        }
        // (a run resumed mid-epoch timed only the steps left: the examples of those)
        const long steps_timed = steps_per_epoch - (continuing ? (long)at.steps_in_epoch : 0);
        double samples_per_s = (double)train_set.n * ((double)steps_timed / (double)steps_per_epoch) /
                               (train_seconds + 1e-12);
        if (tty) fputc('\n', stderr);
        if (model.aae)
            fprintf(stderr, "epoch %d/%d: train rec %.4f %s, D loss %.4f nats | %s rec %.4f %s, D loss %.4f nats "
                    "(on its codes and as many prior draws) | %.1f s, %.0f samples/s\n", epoch, epochs,
                    epoch_count > 0 ? epoch_rec / epoch_count : 0.0, units.rec,
                    epoch_count > 0 ? epoch_kl / epoch_count : 0.0, watched_key, test.rec, units.rec, test.kl,
                    seconds, samples_per_s);
        else if (model.gan)
            fprintf(stderr, "epoch %d/%d: train D loss %.4f, G loss %.4f | %s: D loss on held-out images %.4f, on "
                    "fakes %.4f (nats/example) | %.1f s, %.0f samples/s\n", epoch, epochs,
                    epoch_count > 0 ? epoch_rec / epoch_count : 0.0, epoch_count > 0 ? epoch_kl / epoch_count : 0.0,
                    validating ? "val" : "test", test.rec, test.kl, seconds, samples_per_s);
        else if (units.exact_nll)
            fprintf(stderr, "epoch %d/%d: train objective %.4f (%s) | %s %.4f = -log p(%s), nats/example (exact) | "
                    "%.1f s, %.0f samples/s\n", epoch, epochs, train_loss, objective_text(cfg, epoch_end),
                    watched_name, test.loss, cfg->model.prior_of[0] ? "codes" : "x", seconds, samples_per_s);
        else if (!model_kind_info(cfg->model.kind)->second)
            fprintf(stderr, "epoch %d/%d: train objective %.4f (%s) | %s %.4f (rec, %s; an AE has no KL term) | "
                    "%.1f s, %.0f samples/s\n", epoch, epochs, train_loss, objective_text(cfg, epoch_end), watched_name,
                    test.loss, units.nats ? "nats/example" : units.rec, seconds, samples_per_s);
        else
            fprintf(stderr,
                    "epoch %d/%d: train objective %.4f (%s) | %s %.4f (rec %.4f %s + %s %.4f %s)%s | "
                    "%.1f s, %.0f samples/s\n",
                    epoch, epochs, train_loss, objective_text(cfg, epoch_end), watched_name, test.loss, test.rec,
                    units.rec, units.second ? units.second : "KL", test.kl, units.second_unit,
                    units.nats ? " nats/example" : "", seconds, samples_per_s);
        StepState last_step;   // the learning rate the epoch's last step used (once an epoch)
        model_read_step_state(&model, &last_step);
        char line[1024];
        if (model.aae)
            snprintf(line, sizeof line,
                     "{\"epoch\": %d, \"train_loss\": %.6f, \"%s_loss\": %.6f, \"%s_rec\": %.6f, "
                     "\"%s_d_loss\": %.6f, \"train_rec\": %.6f, \"train_d_loss\": %.6f, \"seconds\": %.3f, "
                     "\"samples_per_s\": %.1f, \"lr\": %.6g}\n",
                     epoch, train_loss, watched_key, test.rec, watched_key, test.rec, watched_key, test.kl,
                     epoch_count > 0 ? epoch_rec / epoch_count : 0.0, epoch_count > 0 ? epoch_kl / epoch_count : 0.0,
                     seconds, samples_per_s, (double)last_step.lr_now);
        else if (model.gan)
            snprintf(line, sizeof line,
                     "{\"epoch\": %d, \"train_d_loss\": %.6f, \"train_g_loss\": %.6f, \"%s_d_loss_real\": %.6f, "
                     "\"%s_d_loss_fake\": %.6f, \"seconds\": %.3f, \"samples_per_s\": %.1f, \"lr\": %.6g}\n",
                     epoch, epoch_count > 0 ? epoch_rec / epoch_count : 0.0,
                     epoch_count > 0 ? epoch_kl / epoch_count : 0.0, watched_key, test.rec, watched_key, test.kl,
                     seconds, samples_per_s, (double)last_step.lr_now);
        else
        snprintf(line, sizeof line,
                 "{\"epoch\": %d, \"train_loss\": %.6f, \"%s_loss\": %.6f, \"%s_rec\": %.6f, "
                 "\"%s_kl\": %.6f, \"seconds\": %.3f, \"samples_per_s\": %.1f, "
                 "\"train_rec\": %.6f, \"train_kl\": %.6f, \"kl_weight\": %.6g, \"capacity\": %.6g, "
                 "\"lr\": %.6g}\n",
                 epoch, train_loss, watched_key, test.loss, watched_key, test.rec, watched_key, test.kl,
                 seconds, samples_per_s,
                 epoch_count > 0 ? epoch_rec / epoch_count : 0.0,
                 epoch_count > 0 ? epoch_kl / epoch_count : 0.0,
                 epoch_end.capacity ? 0.0 : (double)epoch_end.weight,
                 epoch_end.capacity ? (double)epoch_end.capacity_target : 0.0, (double)last_step.lr_now);
        if (writer && run_folder_check_still_locked(out_dir, *lock_fd, err, errlen) != 0) {
            rc = -1;
            goto done;
        }
        // the log's length before this epoch's line (it is flushed after each line; the size, not
        // ftell, whose start position in an append stream C leaves to the implementation)
        struct stat log_stat;
        const long log_before_line = writer && fflush(log) == 0 && fstat(fileno(log), &log_stat) == 0
                                     ? (long)log_stat.st_size : -1;
        struct stat log_now;   // (an `rm -rf DIR/*` while the run trained: its lines would go to a file no one reads)
        if (writer && fstat(fileno(log), &log_now) == 0 && log_now.st_nlink == 0) {
            rc = set_error(err, errlen, "%s: removed while this run trained (the folder's run files were deleted): "
                           "the run stops here", path);
            goto done;
        }
        if (writer && log_write_line(log, path, line, err, errlen) != 0) {
            save_failed = true;
            rc = -1;
            goto done;
        }
        log_crc = run_log_line_crc(log_crc, line);
        // data.validation: best.safetensors follows the lowest validation loss
        // (a gan has no validation loss that says its generator got better: no best.safetensors)
        // (an aae: its validation reconstruction)
        const double watched_loss = model.aae ? test.rec : test.loss;
        bool improved = validating && !model.gan && (at.best_epoch == 0 || watched_loss < at.best_loss);
        if (improved) {
            at.best_epoch = epoch;
            at.best_loss = watched_loss;
        }
        ResumePoint epoch_end_point = {epoch, 0, 0.0, 0.0, 0.0, 0.0, at.best_epoch, at.best_loss, data_crc, true, 0,
                                       log_crc, true, steps_per_epoch, ""};
        // (the resume point last: a run killed before it redoes the epoch, images included)
        if (writer && checkpoint_save(&model, ckpt_path, err, errlen) != 0) {
            // the folder's model is still the epoch before: so is its log (cut back in place,
            // which needs no space on a full disk; --resume would cut it so too)
            if (log_before_line >= 0 && ftruncate(fileno(log), (off_t)log_before_line) != 0)
                fprintf(stderr, "cuvae: %s: cannot remove the line of epoch %d, whose model was not saved: %s\n", path,
                        epoch, strerror(errno));
            save_failed = true;
            rc = -1;
            goto done;
        }
        const bool stopping_early =
            cfg->train.early_stopping > 0 && epoch - at.best_epoch >= cfg->train.early_stopping && epoch < epochs;
        if (writer && ((improved && checkpoint_save(&model, best_path, err, errlen) != 0) ||
            (progress_images && (epoch % cfg->train.epoch_images_every == 0 || epoch == epochs || stopping_early) &&
             epoch_images_write(&model, &test_dev, test_set.labels, epoch, run_dir, err, errlen) != 0) ||
            resume_save(&model, &epoch_end_point, resume_path, err, errlen) != 0)) {
            save_failed = true;
            rc = -1;
            goto done;
        }
        // data parallel: the other ranks wait here while rank 0 writes the epoch's files, which a large
        // model's checkpoints or an autoregressive model's progress images (a forward pass a pixel)
        // can make long: a wait that says so where it times out
        if (model.data_parallel)
            dist_any(false, "wait for rank 0's epoch files (checkpoints, progress images; if they take longer, raise "
                     "CUVAE_DIST_TIMEOUT)");
        if (stopping_early) {
            fprintf(stderr, "cuvae: early stopping after epoch %d: the validation loss has not improved for %d "
                    "epochs (best %.4f at epoch %d, kept in %s/best.safetensors)\n", epoch, epoch - at.best_epoch,
                    at.best_loss, at.best_epoch, out_dir);
            break;
        }
    }
    // --resume of a run with no epoch left (finished, or stopped early): a model file that is
    // missing, damaged or of other weights is written again from the resume state (the same
    // parameters as the last epoch saved), so it does not stand beside an eval.json of other
    // weights; an intact one is left as it is (its crc32 may pin a prior trained on it). The file is
    // written as the build of the resume file wrote it (the epoch's two files come from one build):
    // the same bytes, so the same crc32
    if (resume && epochs > 0 && (first_epoch > epochs || stopped_early) && writer &&
        !checkpoint_holds_params(&model, ckpt_path) &&
        checkpoint_save_written_by(&model, ckpt_path, at.written_by, err, errlen) != 0) {
        rc = -1;
        goto done;
    }
    if (epochs == 0) {
        ElboResult test;
        model_copy_weights(&eval_model, &model);
        eval_elbo_ranks(&eval_model, &test_dev, EPS_SAMPLE, &test);
        if (units.exact_nll)
            fprintf(stderr, "epochs = 0: test loss %.4f = -log p(%s), nats/example (exact) at init\n", test.loss,
                    cfg->model.prior_of[0] ? "codes" : "x");
        else if (model.gan)
            fprintf(stderr, "epochs = 0: the discriminator's loss on the test images %.4f, on as many fakes %.4f "
                    "(nats/example) at init\n", test.rec, test.kl);
        else if (model.aae)
            fprintf(stderr, "epochs = 0: test rec %.4f %s, the discriminator's loss on the codes and as many prior "
                    "draws %.4f nats at init\n", test.rec, units.rec, test.kl);
        else if (!model_kind_info(cfg->model.kind)->second)
            fprintf(stderr, "epochs = 0: test loss %.4f (rec, %s; an AE has no KL term) at init\n", test.loss,
                    units.nats ? "nats/example" : units.rec);
        else
            fprintf(stderr, "epochs = 0: test loss %.4f (rec %.4f %s + %s %.4f %s) at init\n",
                    test.loss, test.rec, units.rec, units.second ? units.second : "KL", test.kl, units.second_unit);
        if (writer && checkpoint_save(&model, ckpt_path, err, errlen) != 0) {
            rc = -1;
            goto done;
        }
    }
    // Training is over and saved: an --overwrite run's files replace the earlier run's now,
    // before the final evaluation (which writes eval.json into out_dir; cuvae eval redoes it
    // if it fails or is stopped)
    if (staged) {
        FILE *closing = log;
        log = NULL;
        if (closing && fclose(closing) != 0) {
            rc = set_error(err, errlen, "%s: cannot write: %s", path, strerror(errno));
            goto done;
        }
        const int committed = run_folder_commit(out_dir, staging, err, errlen);
        if (committed == RUN_FOLDER_NOT_BEGUN) {   // nothing moved: the staged run is kept (see done)
            commit_not_begun = true;
            rc = -1;
            goto done;
        }
        if (committed != 0) {
            size_t used = strlen(err);
            snprintf(err + used, errlen - used, " (the run in %s is partly replaced: once that is mended, the "
                     "next train into it finishes the replacement)", out_dir);
            staged = false;   // (not kept: the marker says how to finish)
            rc = -1;
            goto done;
        }
        staged = false;
        run_dir = out_dir;
    }
    // the full evaluation of the final model, on a model with a larger batch. Training is
    // over and saved: Ctrl-C now just stops the process (cuvae eval can redo this part).
    interrupts_restore(&handlers);
    handlers_restored = true;
    // asked to stop while the last epoch was being saved (data parallel: agreed as at a step boundary,
    // every rank ending with the largest signal any got, said by rank 0)
    const int late_signal = model.data_parallel ? dist_max_int((int)interrupt_signal, "stop request")
                                                : (int)interrupt_signal;
    if (late_signal) {
        rc = 128 + late_signal;
        if (model.data_parallel) dist_exit_agreed();
        set_error(err, errlen, "interrupted (%s) after training finished: the model is saved in %s; the final "
                  "evaluation was skipped (run cuvae eval %s)", signal_name(late_signal),
                  final_ckpt_path, final_ckpt_path);
        goto done;
    }
    if (writer) {   // the final evaluation: rank 0's (the others are done)
        model_copy_weights(&eval_model, &model);
        EvalReport report;
        if (cfg->eval.iw_samples > 0)
            fprintf(stderr, "cuvae: importance-weighted -log p(x%s) with K = %d on %d test examples...\n",
                    cfg->model.condition == CONDITION_LABEL ? " | label" : "", cfg->eval.iw_samples, cfg->eval.iw_examples > 0 && cfg->eval.iw_examples < test_set.n ? cfg->eval.iw_examples : test_set.n);
        if (eval_report(&eval_model, &test_dev, cfg->eval.iw_samples, cfg->eval.iw_examples, &report,
                        err, errlen) != 0) {
            rc = -1;
            goto done;
        }
        // (eval refuses these numbers: eval.json is not written with them as nulls)
        if (eval_check_finite(report.elbo.loss, report.outputs_overflow, report.vq_size > 0,
                              "train: the final evaluation", err, errlen) != 0) {
            eval_report_free(&report);
            rc = -1;
            goto done;
        }
        if (eval_model.gan || eval_model.aae) {
            fprintf(stderr, "cuvae: Parzen-window log-likelihood: %d samples, sigma chosen on %d validation images, "
                    "scored on %d test images...\n", cfg->eval.parzen_samples, val_set.n,
                    cfg->eval.parzen_examples > 0 && cfg->eval.parzen_examples < test_set.n ? cfg->eval.parzen_examples
                                                                                         : test_set.n);
            eval_parzen(&eval_model, &val_set, &test_set, cfg->eval.parzen_samples, cfg->eval.parzen_examples,
                        &report);
        }
        char *json = eval_report_json(&report, cfg, be->name);
        char se[48];   // the Parzen estimate's standard error, as printed
        char eval_path[1100];
        snprintf(eval_path, sizeof eval_path, "%s/eval.json", run_dir);
        size_t len = strlen(json);
        char *line = xmalloc(len + 2);   // (exits naming the allocation when out of memory)
        memcpy(line, json, len);
        memcpy(line + len, "\n", 2);
        free(json);
        json = line;
        rc = run_folder_check_still_locked(out_dir, *lock_fd, err, errlen);
        if (rc == 0) rc = write_file_atomic(eval_path, json, err, errlen);
        if (report.aae)
            fprintf(stderr, "cuvae: eval: test rec %.4f %s, discriminator loss %.4f nats; Parzen-window "
                    "log-likelihood %.2f +- %s nats per test image (sigma %.4f; a weak metric)\n", report.elbo.rec,
                    units.rec, report.elbo.kl, report.parzen.mean_ll, std_error_text(report.parzen.std_error, se, sizeof se),
                    report.parzen.sigma);
        else if (report.gan)
            fprintf(stderr, "cuvae: eval: Parzen-window log-likelihood %.2f +- %s nats per test image (sigma %.4f; "
                    "a weak metric); discriminator loss on test images %.4f, on fakes %.4f\n", report.parzen.mean_ll,
                    std_error_text(report.parzen.std_error, se, sizeof se), report.parzen.sigma, report.elbo.rec,
                    report.elbo.kl);
        else if (report.exact_nll && report.prior_positions)
            fprintf(stderr, "cuvae: eval: test -log p(codes) %.4f nats/example (exact), %.4f nats per code position "
                    "(%d positions)\n", report.elbo.loss, report.elbo.loss / report.prior_positions,
                    report.prior_positions);
        else if (report.exact_nll)
            fprintf(stderr, "cuvae: eval: test -log p(x) %.4f nats/example (exact), %.4f bits/dim\n",
                    report.elbo.loss, report.bits_per_dim);
        else if (report.vq_size) {
            char ratio[64] = "n/a (the test images have no variance)";   // (eval.json: null)
            if (isfinite(report.rec_mse_normalized)) snprintf(ratio, sizeof ratio, "%.4f", report.rec_mse_normalized);
            fprintf(stderr, "cuvae: eval: test loss %.4f (%s), %d of %d codes used, perplexity %.1f, "
                    "MSE / data variance %s\n", report.elbo.loss, units.total, report.codes_used, report.vq_size,
                    report.perplexity, ratio);
        }
        else if (report.active_units >= 0)
            fprintf(stderr, "cuvae: eval: test loss %.4f %s, %d of %d active units\n",
                    report.elbo.loss, units.nats ? "nats/example" : units.has_kl ? "(rec + KL, different units)" : units.total,
                    report.active_units, report.latent_dim);
        else
            fprintf(stderr, "cuvae: eval: test loss %.4f %s, active units n/a (one test example)\n",
                    report.elbo.loss, units.nats ? "nats/example" : units.has_kl ? "(rec + KL, different units)" : units.total);
        if (report.iw_k > 0)
            fprintf(stderr, "cuvae: eval: -log p(x%s) ~ %.4f nats/example (K = %d, %ld examples, %s), %.4f bits/dim\n",
                    cfg->model.condition == CONDITION_LABEL ? " | label" : "", report.iw_nll, report.iw_k, report.iw_examples,
                    report.iw_is_nll ? "binary data: an NLL" : "not binary data: not an NLL",
                    report.iw_bits_per_dim);
        free(json);
        eval_report_free(&report);
        if (rc != 0) goto done;
    }
    // (printed once the files are in out_dir: after an --overwrite run's commit)
    char shown_dir[600];   // (escaped: the line stays one line whatever the folder's name)
    one_line_text(out_dir, shown_dir, sizeof shown_dir);
    // the whole run, and of it the training and evaluation (before them: data, checks, the model,
    // a resume file's load; it was the second alone until 2026-12-06)
    char took[96];
    const double now = wall_seconds();
    snprintf(took, sizeof took, "%.1f s (training and evaluation %.1f s)", now - run_start, now - train_start);
    if (epochs == 0)
        snprintf(done_line, sizeof done_line, "cuvae: done in %s; outputs in %s/ (config.json, log.jsonl, "
                 "eval.json, model.safetensors)\n", took, shown_dir);
    else
        snprintf(done_line, sizeof done_line, "cuvae: done in %s; outputs in %s/ (config.json, log.jsonl, "
                 "eval.json, model.safetensors, resume.safetensors%s)\n", took, shown_dir,
                validating && !model.gan && progress_images ? ", best.safetensors, progress/*.png"
                : validating && !model.gan ? ", best.safetensors" : progress_images ? ", progress/*.png" : "");

done:
    free(notes.data);   // (not said: the run was refused before they were)
    if (handlers_caught && !handlers_restored) interrupts_restore(&handlers);
    model_destroy(&eval_model);
    train_step_release(&train_step);
    if (log && fclose(log) != 0 && rc == 0)
        rc = set_error(err, errlen, "%s: cannot write: %s", path, strerror(errno));
    // --overwrite: a run whose training ended has replaced the earlier one (above); a failed one,
    // or one stopped by a signal with its state saved, is kept in the staging folder (--resume
    // continues it there) and the earlier run stays
    // (a staged run refused before it trained: its line already says where everything is)
    if (!refused_before_run && staged && rc < 0 && commit_not_begun) {
        size_t used = strlen(err);
        snprintf(err + used, errlen - used, " (--overwrite: %s %s is as it was; this run is kept in "
                 "%s: once that is mended, train --resume with the same config puts it in place)",
                 replaces_run ? "the earlier run in" : "the folder", out_dir, staging);
    } else if (!refused_before_run && staged && rc < 0) {
        size_t used = strlen(err);
        char why[1500];   // (run_folder_staged: 1 when the staged run has a resume file)
        const bool resumable = run_folder_staged(out_dir, why, sizeof why) == 1;
        snprintf(err + used, errlen - used, " (--overwrite: %s %s is as it was%s; this run's files are in %s, and "
                 "%s%s)", replaces_run ? "the earlier run in" : "the folder",
                 out_dir, replaces_run ? "" : ", no earlier run in it", staging,
                 resumable ? "train --resume continues them"
                           : "no state of it was saved to resume: start it again with --overwrite",
                 replaces_run ? "; remove that folder to keep the earlier run instead" : "");
    } else if (save_failed && !staged) {   // (a run of its own folder: what the folder holds now)
        size_t used = strlen(err);
        struct stat resume_stat;
        char gone[1200];   // (the folder moved or removed: its state went with it, or is gone)
        if (run_folder_check_still_locked(out_dir, *lock_fd, gone, sizeof gone) != 0)
            snprintf(err + used, errlen - used, " (the run folder %s was moved or removed while the run trained: the "
                     "state it had saved is where the folder went; train --resume there continues it)", out_dir);
        else if (stat(resume_path, &resume_stat) == 0)
            snprintf(err + used, errlen - used, " (%s keeps the run's last saved state: once that is mended, train "
                     "--resume with the same config continues from there)", run_dir);
        else
            snprintf(err + used, errlen - used, " (the folder holds no resume state of the run: once that is mended, start it "
                     "again with --overwrite)");
    }
    if (rc == 0) fputs(done_line, stderr);
    free(perm_host);
    be->free(be, perm_dev);
    device_dataset_free(be, &train_dev);
    device_dataset_free(be, &test_dev);
    if (validating) device_dataset_free(be, &val_dev);
    model_destroy(&model);
    be->destroy(be);
    dataset_free(&train_set);
    dataset_free(&val_set);
    dataset_free(&test_set);
    return rc;
}

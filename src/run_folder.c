// run_folder.c: the run folder's rules: refusing to replace a run unasked, and
// --overwrite's staging folder, its commit (with a marker that lets the next run
// finish a commit that was killed half way) and the resumption of a staged run
// (see run_folder.h).
#include "cuvae/run_folder.h"
#include "cuvae/common.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

// The files that make a folder a run (every run writes config.json first).
static const char *const RUN_FILES[] = {"config.json", "model.safetensors", "resume.safetensors"};
// A run's files: what a new run replaces.
static const char *const REPLACED_FILES[] = {"config.json", "log.jsonl", "eval.json", "model.safetensors",
                                             "resume.safetensors", "best.safetensors"};
#define N_REPLACED_FILES (sizeof REPLACED_FILES / sizeof REPLACED_FILES[0])
const PlotFigure plot_figures[PLOT_FIGURE_COUNT] = {
    {"samples", "samples (VAEs: decoded from z ~ N(0, I); VQ-VAE: uniformly drawn codes; MADE: pixel by pixel)"},
    {"reconstructions", "test images (odd rows) and reconstructions"},
    {"latent_scatter", "encoded test set by digit"},
    {"latent_histograms", "per-dimension distribution of codes"},
    {"manifold", "decoded 2-D latent grid"},
    {"interpolation", "latent interpolation"},
    {"class_rows", "class-conditional generation"},
    {"loss_curves", "loss per epoch (MADE: the exact -log p(x); GAN: the discriminator's and the generator's)"},
    {"samples_over_training", "samples of the same z, one row per epoch (GAN)"},
    {"prior_samples", "draws from the prior p(z), on the encoded test set's axes (AAE)"},
    {"loss_terms", "test rec and KL per epoch"},
    {"codebook_usage", "code frequencies on the test set (VQ-VAE)"},
};

// The run's image folders: train writes progress/, cuvae plot and make run figures/.
static const char *const IMAGE_DIRS[] = {"progress", "figures"};
#define N_IMAGE_DIRS (sizeof IMAGE_DIRS / sizeof IMAGE_DIRS[0])
// In the staging folder while its files replace the earlier run's: their names, one a line.
#define COMMIT_MARKER "COMMIT"

static int check_no_file_links_into_other_runs(const char *out_dir, char *err, size_t errlen);
static int check_no_image_links_into_other_runs(const char *out_dir, char *err, size_t errlen);

int run_folder_check_outputs(const char *run_dir, bool writes_progress, char *err, size_t errlen) {
    if (check_no_file_links_into_other_runs(run_dir, err, errlen) != 0 ||
        check_no_image_links_into_other_runs(run_dir, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < N_REPLACED_FILES; i++) {
        char path[1500], *resolved = NULL;
        snprintf(path, sizeof path, "%s/%s", run_dir, REPLACED_FILES[i]);
        if (output_path_resolve(path, &resolved, err, errlen) != 0) return -1;
        free(resolved);
    }
    for (size_t i = 0; i < N_IMAGE_DIRS; i++) {   // written into (progress/) or emptied (figures/)
        char path[1500];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", run_dir, IMAGE_DIRS[i]);
        if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
            return set_error(err, errlen, "%s: not a folder (a run keeps its images there): move it away", path);
        // progress/, where this run writes (figures/ it only empties of plot's images): else an epoch
        // would train, then fail on it
        if (!writes_progress || strcmp(IMAGE_DIRS[i], "progress") != 0) continue;
        if (stat(path, &st) != 0 && lstat(path, &st) == 0)
            return set_error(err, errlen, "%s: a link to a folder that does not exist (a run keeps its images "
                             "there): mend it or remove it", path);
        if (stat(path, &st) == 0 && access(path, W_OK | X_OK) != 0)
            return set_error(err, errlen, "%s: cannot write there (a run keeps its images there): %s", path,
                             strerror(errno));
    }
    return 0;
}

int run_log_check_line(const char *path, int line_number, const char *line, char *err, size_t errlen) {
    cJSON *j = cJSON_Parse(line);
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    int rc = 0;
    if (!cJSON_IsObject(j))
        rc = set_error(err, errlen, "%s: line %d: not a JSON object (a truncated or edited log?)", path, line_number);
    else if (!cJSON_IsNumber(epoch))
        rc = set_error(err, errlen, "%s: line %d: missing number \"epoch\"", path, line_number);
    else if (epoch->valuedouble != (double)line_number)
        rc = set_error(err, errlen, "%s: line %d: epoch %.10g where epoch %d belongs (the log holds one line an "
                       "epoch, in order: lines of another run, or edited?)", path, line_number, epoch->valuedouble,
                       line_number);
    cJSON_Delete(j);
    return rc;
}

uint32_t run_log_line_crc(uint32_t crc, const char *line) {
    static const char *const timings[2] = {"\"seconds\"", "\"samples_per_s\""};
    for (const char *p = line; *p;) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            p++;
            continue;
        }
        size_t skip_value = 0;
        for (int k = 0; k < 2; k++)
            if (strncmp(p, timings[k], strlen(timings[k])) == 0) skip_value = strlen(timings[k]);
        if (skip_value && p[skip_value + strspn(p + skip_value, " \t")] == ':') {   // the key counts, its number not
            crc = (uint32_t)crc32(crc, (const Bytef *)p, (uInt)skip_value);
            p += skip_value;
            p += strspn(p, " \t");
            crc = (uint32_t)crc32(crc, (const Bytef *)":", 1);
            p++;
            p += strspn(p, " \t");
            p += strspn(p, "0123456789.eE+-");
            continue;
        }
        crc = (uint32_t)crc32(crc, (const Bytef *)p, 1);
        p++;
    }
    return crc;
}

int run_log_check(const char *path, int lines, uint32_t *crc, char *err, size_t errlen) {
    if (crc) *crc = (uint32_t)crc32(0L, Z_NULL, 0);
    if (lines > 0 && access(path, F_OK) != 0)
        return set_error(err, errlen, "%s: missing, but the run has finished %d epoch%s (its resume state): "
                         "restore the log, or start the run again with --overwrite", path, lines,
                         lines == 1 ? "" : "s");
    if (lines == 0 || access(path, F_OK) != 0) return 0;
    char *text = read_text_file(path, NULL, err, errlen);
    if (!text) return -1;
    int rc = 0, n = 0;
    for (char *line = text, *next; rc == 0 && *line && (lines < 0 || n < lines); line = next) {
        next = strchr(line, '\n');
        const bool ended = next != NULL;
        if (next) *next++ = '\0';
        else next = line + strlen(line);
        if (*line == '\0' && lines < 0) continue;   // an empty line (plot skips it)
        rc = run_log_check_line(path, ++n, line, err, errlen);
        if (crc) *crc = run_log_line_crc(*crc, line);
        // resume keeps the lines and appends: a last line without its newline would run into the next
        if (rc == 0 && lines > 0 && !ended)
            rc = set_error(err, errlen, "%s: line %d: no newline at its end (a truncated log?)", path, n);
    }
    free(text);
    if (rc == 0 && lines > 0 && n < lines)
        rc = set_error(err, errlen, "%s: %d line%s, but the run has finished %d epochs (its resume state): "
                       "restore the log, or start the run again with --overwrite", path, n, n == 1 ? "" : "s", lines);
    return rc;
}

static bool file_exists(const char *dir, const char *name) {
    char path[2 * PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0;
}

int run_folder_lock(const char *out_dir, int *fd, char *err, size_t errlen) {
    if (*fd >= 0) return 0;
    int dir_fd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 && errno == ENOENT) return 0;
    if (dir_fd < 0 && errno == ENOTDIR)
        return set_error(err, errlen, "%s: not a folder (train writes a run folder there: --out DIR)", out_dir);
    if (dir_fd < 0) return set_error(err, errlen, "%s: cannot open the run folder: %s", out_dir, strerror(errno));
    if (flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        close(dir_fd);
        if (saved == EWOULDBLOCK) {
            set_error(err, errlen, "%s: another cuvae train is writing a run there; wait for it to end, or "
                      "write this one elsewhere with --out DIR", out_dir);
            return RUN_FOLDER_BUSY;
        }
        return set_error(err, errlen, "%s: cannot lock it: %s", out_dir, strerror(saved));
    }
    *fd = dir_fd;
    return 0;
}

int run_folder_check_still_locked(const char *out_dir, int fd, char *err, size_t errlen) {
    if (fd < 0) return 0;
    struct stat locked, now;
    const bool known = fstat(fd, &locked) == 0;   // (NFS: ESTALE once the folder is removed)
    if (known && stat(out_dir, &now) == 0 && now.st_dev == locked.st_dev && now.st_ino == locked.st_ino) return 0;
    return set_error(err, errlen, "%s: the run folder was removed or replaced while this run trained (%s): nothing "
                     "more is written there (another run's files may be in it now); the run's files so far went "
                     "with the folder", out_dir, !known || locked.st_nlink == 0 ? "removed" : "moved or replaced");
}

// A run's config.json (train writes the whole resolved config): a JSON object with the
// objects data, model and train. Another program's config.json is not a run to replace.
static bool is_run_config(const char *path) {
    char err[256];
    char *text = read_text_file(path, NULL, err, sizeof err);
    if (!text) return false;
    cJSON *root = cJSON_Parse(text);
    free(text);
    bool run = cJSON_IsObject(root) && cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "data")) &&
               cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "model")) &&
               cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "train"));
    cJSON_Delete(root);
    return run;
}

static bool is_png_name(const char *name) {
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".png") == 0 && !strchr(name, '\n');
}

// Whether folder dir (absent: no) holds a .png file.
static bool dir_holds_png(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d)) != NULL;) found = is_png_name(e->d_name);
    closedir(d);
    return found;
}

bool run_folder_holds_run(const char *out_dir) {
    for (size_t i = 0; i < sizeof RUN_FILES / sizeof RUN_FILES[0]; i++)
        if (file_exists(out_dir, RUN_FILES[i])) return true;
    return false;
}

// A resolved path's buffer: realpath gives up to PATH_MAX bytes (a folder's path held in 1,200
// bytes cut a longer one short, and the checks below then found no run where there was one).
#define RESOLVED_PATH (PATH_MAX + 256)

// path's parent folder ("." for a bare name, "/" at the root) and last name (NAME_MAX), trailing
// slashes dropped.
static void split_parent(const char *path, char parent[RESOLVED_PATH], char base[NAME_MAX + 1]) {
    snprintf(parent, RESOLVED_PATH, "%s", path);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    snprintf(base, NAME_MAX + 1, "%s", slash ? slash + 1 : parent);
    if (slash == parent) parent[1] = '\0';
    else if (slash) *slash = '\0';
    else snprintf(parent, RESOLVED_PATH, ".");
}

// check_not_inside_run on one spelling of the folder: path (out_dir as given, or resolved), said as out_dir.
static int check_path_not_inside_run(const char *path, const char *out_dir, char *err, size_t errlen) {
    char parent[RESOLVED_PATH], base[NAME_MAX + 1];
    split_parent(path, parent, base);
    if (strcmp(base, RUN_FOLDER_STAGING) == 0)
        return set_error(err, errlen, "%s: a run's staging folder (cuvae's own, for --overwrite): write the run "
                         "elsewhere with --out DIR", out_dir);
    for (size_t i = 0; i < N_IMAGE_DIRS; i++)
        if (strcmp(base, IMAGE_DIRS[i]) == 0 && run_folder_holds_run(parent))
            return set_error(err, errlen, "%s: the %s/ folder of the run in %s: write the run elsewhere with --out "
                             "DIR", out_dir, IMAGE_DIRS[i], parent);
    return 0;
}

// A folder a run keeps inside it (its staging folder, its image folders) is not a place for a
// run: -1 with err when out_dir is one, as given or resolved (a link to one, DIR/.new-run/., "."
// inside one; a folder not made yet: its parent resolved).
static int check_not_inside_run(const char *out_dir, char *err, size_t errlen) {
    if (check_path_not_inside_run(out_dir, out_dir, err, errlen) != 0) return -1;
    char resolved[RESOLVED_PATH + NAME_MAX + 2];
    char *real = realpath(out_dir, NULL);
    if (real) {
        snprintf(resolved, sizeof resolved, "%s", real);
    } else {   // not there yet: its parent's real path and its name
        char parent[RESOLVED_PATH], base[NAME_MAX + 1];
        split_parent(out_dir, parent, base);
        real = realpath(parent, NULL);
        if (!real) return 0;   // (nothing there to be inside of)
        snprintf(resolved, sizeof resolved, "%s/%s", strcmp(real, "/") == 0 ? "" : real, base);
    }
    free(real);
    return check_path_not_inside_run(resolved, out_dir, err, errlen);
}

int run_folder_check(const char *out_dir, bool resume, bool overwrite, char *err, size_t errlen) {
    if (resume && overwrite)
        return set_error(err, errlen, "train: --resume continues the run in %s and --overwrite replaces it: "
                         "choose one", out_dir);
    if (check_not_inside_run(out_dir, err, errlen) != 0) return -1;
    char config_path[1200];
    snprintf(config_path, sizeof config_path, "%s/config.json", out_dir);
    if (file_exists(out_dir, "config.json") && !is_run_config(config_path))
        return set_error(err, errlen, "%s: not a cuvae run's config (a JSON object with data, model and train): "
                         "train would replace it and --overwrite would remove the folder's images; write the "
                         "run elsewhere with --out DIR", config_path);
    // the name of a file that says a run is there taken by what is not a regular file (a folder, a FIFO)
    // is said first: else the advice below goes round (a plain train: "continue it with --resume";
    // --resume: "nothing to resume")
    for (size_t i = 0; i < sizeof RUN_FILES / sizeof RUN_FILES[0] && !overwrite; i++) {
        char path[1500], *resolved = NULL;
        snprintf(path, sizeof path, "%s/%s", out_dir, RUN_FILES[i]);
        if (output_path_resolve(path, &resolved, err, errlen) != 0) return -1;
        free(resolved);
        struct stat st;   // (a link to nothing: a run's file is not there, and its name is taken)
        if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode) && stat(path, &st) != 0)
            return set_error(err, errlen, "%s: a link to a file that does not exist (%s): remove the link or give it "
                             "its file", path, strerror(errno));
    }
    if (resume || overwrite) return 0;
    char found[256] = "";
    for (size_t i = 0; i < sizeof RUN_FILES / sizeof RUN_FILES[0]; i++)
        if (file_exists(out_dir, RUN_FILES[i])) {
            if (found[0]) strncat(found, ", ", sizeof found - strlen(found) - 1);
            strncat(found, RUN_FILES[i], sizeof found - strlen(found) - 1);
        }
    // (and an --overwrite run staged beside it: --resume continues that one, when it can)
    const bool staged = file_exists(out_dir, RUN_FOLDER_STAGING "/config.json");
    if (found[0] && staged && file_exists(out_dir, RUN_FOLDER_STAGING "/resume.safetensors"))
        return set_error(err, errlen, "%s already holds a run (%s), and %s/%s an --overwrite run that did not finish: "
                         "--resume continues that one (it replaces the run when it ends), --overwrite starts it "
                         "again; or write the new run elsewhere with --out DIR", out_dir, found, out_dir,
                         RUN_FOLDER_STAGING);
    if (found[0] && staged)
        return set_error(err, errlen, "%s already holds a run (%s), and %s/%s an --overwrite run that stopped in its "
                         "first epoch: start it again with --overwrite, or remove %s/%s to continue the run with "
                         "--resume; or write the new run elsewhere with --out DIR", out_dir, found, out_dir,
                         RUN_FOLDER_STAGING, out_dir, RUN_FOLDER_STAGING);
    if (found[0])
        return set_error(err, errlen, "%s already holds a run (%s): continue it with --resume, write the "
                         "new run elsewhere with --out DIR, or replace it with --overwrite", out_dir, found);
    if (staged)
        return set_error(err, errlen, "%s/%s holds an --overwrite run that did not finish: continue it with --resume, "
                         "start it again with --overwrite, or write the new run elsewhere with --out DIR", out_dir,
                         RUN_FOLDER_STAGING);
    // no run, but a file a run writes (a run whose checkpoints were deleted, the user's own
    // log.jsonl): train would replace it unasked
    const char *kept = NULL;
    for (size_t i = 0; i < N_REPLACED_FILES && !kept; i++)
        if (file_exists(out_dir, REPLACED_FILES[i])) kept = REPLACED_FILES[i];
    char progress[1200];
    snprintf(progress, sizeof progress, "%s/progress", out_dir);
    const bool progress_images = !kept && dir_holds_png(progress);
    if (kept || progress_images)
        return set_error(err, errlen, "%s holds %s, which train writes, but no run (no config.json, model.safetensors "
                         "or resume.safetensors): move %s, write the run elsewhere with --out DIR, or replace it with "
                         "--overwrite", out_dir, kept ? kept : "PNG images in progress/", kept ? "it" : "them");
    return 0;
}

// 1 when a and b are the same file or folder (device and inode), 0 when they are not, -1 when
// either cannot be stat'ed.
static int same_inode(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return -1;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// Whether `file` lies in `folder` (the same folder, by device and inode).
static bool same_folder_as_file(const char *folder, const char *file) {
    char file_folder[RESOLVED_PATH];
    path_folder(file, file_folder, sizeof file_folder);
    return same_inode(folder, file_folder) == 1;
}

// A folder that holds a run cuvae wrote: a checkpoint, a resume file, or a config.json of a run
// (is_run_config; a project's own config.json beside its folders is not one).
static bool holds_cuvae_run(const char *dir) {
    char config[PATH_MAX + 16];
    snprintf(config, sizeof config, "%s/config.json", dir);
    return file_exists(dir, "model.safetensors") || file_exists(dir, "resume.safetensors") ||
           (file_exists(dir, "config.json") && is_run_config(config));
}

// A folder of run_dir's (figures/, progress/), reached through a link, that is another run's folder
// itself or one of its image folders (a folder that merely sits beside some config.json is the user's
// to choose): refused, saying what writing there would do (as_folder: into that run's folder; as_images:
// into its image folder). 0, or -1 with err.
static int check_not_another_runs_folder(const char *run_dir, const char *path, const char *as_folder,
                                         const char *as_images, char *err, size_t errlen) {
    char *real = realpath(path, NULL);
    if (!real) return 0;
    char parent[PATH_MAX + 8], other[PATH_MAX + 8] = "";
    path_folder(real, parent, sizeof parent);
    const char *base = strrchr(real, '/') ? strrchr(real, '/') + 1 : real;
    if (holds_cuvae_run(real))
        snprintf(other, sizeof other, "%s", real);
    for (size_t i = 0; i < N_IMAGE_DIRS && !other[0]; i++)
        if (strcmp(base, IMAGE_DIRS[i]) == 0 && holds_cuvae_run(parent)) snprintf(other, sizeof other, "%s", parent);
    int rc = 0;
    if (other[0] && same_inode(other, run_dir) == 0)
        rc = strcmp(other, real) == 0
                 ? set_error(err, errlen, "%s: leads to %s, the folder of a run (%s): remove the link", path, real,
                             as_folder)
                 : set_error(err, errlen, "%s: leads to %s, a folder of the run in %s (%s): remove the link", path,
                             real, other, as_images);
    free(real);
    return rc;
}

// The run files of out_dir that train writes in place (the log appended, the others by name), where
// one is a link into another run's folder (a folder cloned with `cp -rs`): train would write through
// it into that run. (An --overwrite run's commit renames over such links and leaves their targets
// alone.) 0, or -1 with err.
static int check_no_file_links_into_other_runs(const char *out_dir, char *err, size_t errlen) {
    struct stat st;
    for (size_t i = 0; i < N_REPLACED_FILES; i++) {
        char path[1500];
        snprintf(path, sizeof path, "%s/%s", out_dir, REPLACED_FILES[i]);
        if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode)) continue;
        char *real = realpath(path, NULL);
        if (!real) continue;   // (a dangling link: the write replaces it, in out_dir)
        char folder[PATH_MAX + 8];
        path_folder(real, folder, sizeof folder);
        int rc = 0;
        if (holds_cuvae_run(folder) && same_inode(folder, out_dir) == 0)
            rc = set_error(err, errlen, "%s: a link to %s, a file of the run in %s (train would write this run's %s "
                           "there): replace the link by a copy (cp -L) or remove it", path, real, folder,
                           REPLACED_FILES[i]);
        free(real);
        if (rc != 0) return rc;
    }
    return 0;
}

// out_dir's image folders, progress/ (written into) and figures/ (emptied of plot's images), where
// one is a link to another run's folder or one of its image folders: train would replace or remove
// that run's images. 0, or -1 with err.
static int check_no_image_links_into_other_runs(const char *out_dir, char *err, size_t errlen) {
    static const char *const what[N_IMAGE_DIRS][2] = {
        {"train would write this run's images among that run's files",
         "train would replace that run's images with this one's"},
        {"train would remove the figures of that run's folder", "train would remove that run's figures"},
    };
    for (size_t i = 0; i < N_IMAGE_DIRS; i++) {
        char path[1500];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", out_dir, IMAGE_DIRS[i]);
        if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode)) continue;
        if (check_not_another_runs_folder(out_dir, path, what[i][0], what[i][1], err, errlen) != 0) return -1;
    }
    return 0;
}

int run_folder_check_figures(const char *run_dir, char *err, size_t errlen) {
    char path[1500];
    struct stat st;
    snprintf(path, sizeof path, "%s/figures", run_dir);
    if (lstat(path, &st) != 0) return 0;   // made by plot
    if (stat(path, &st) != 0)
        return errno == ENOENT ? set_error(err, errlen, "%s: a link to a folder that does not exist (plot draws the "
                                           "run's figures there): mend it or remove it", path)
                               : set_error(err, errlen, "%s: %s (plot draws the run's figures there)", path,
                                           strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return set_error(err, errlen, "%s: not a folder (plot draws the run's figures there): move it away", path);
    return check_not_another_runs_folder(run_dir, path, "plot would draw this run's figures among that run's files",
                                         "plot would mix that run's figures with this one's", err, errlen);
}

int run_folder_check_output(const char *command, const char *option, const char *output,
                            const char *const *inputs, int n_inputs, char *err, size_t errlen) {
    struct stat out_st;
    if (stat(output, &out_st) != 0) return 0;   // a new file replaces nothing
    // (report's page has no other name: RUNS_DIR/index.html)
    const char *advice = strcmp(option, "page") == 0 ? "move it away (report writes RUNS_DIR/index.html)"
                                                     : "give another file name";
    for (int i = 0; i < n_inputs; i++) {
        struct stat in_st;
        if (inputs[i] && stat(inputs[i], &in_st) == 0 && in_st.st_dev == out_st.st_dev &&
            in_st.st_ino == out_st.st_ino)
            return strcmp(output, inputs[i]) == 0
                       ? set_error(err, errlen, "%s: %s %s is the file %s reads: %s", command, option,
                                   output, command, advice)
                       : set_error(err, errlen, "%s: %s %s is the same file as %s, which %s reads: %s", command,
                                   option, output, inputs[i], command, advice);
    }
    // the name as given and, through links, the file's own name
    char *real = realpath(output, NULL);
    const char *names[2] = {output, real};
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (!names[k]) continue;
        const char *slash = strrchr(names[k], '/');
        const char *name = slash ? slash + 1 : names[k];
        char folder[RESOLVED_PATH];   // the folder the name is in
        path_folder(names[k], folder, sizeof folder);
        for (size_t i = 0; i < N_REPLACED_FILES && rc == 0; i++)
            if (strcmp(name, REPLACED_FILES[i]) == 0 && (strcmp(name, "eval.json") != 0 || strcmp(command, "eval") != 0))
                rc = k == 0 ? set_error(err, errlen, "%s: %s %s would replace a run's %s: %s", command, option,
                                        output, name, advice)
                            : set_error(err, errlen, "%s: %s %s links to %s and would replace a run's %s: %s",
                                        command, option, output, names[k], name, advice);
        // eval may rewrite its own run's eval.json, not another run's (report would show this
        // checkpoint's numbers as that run's)
        if (rc == 0 && strcmp(name, "eval.json") == 0 && strcmp(command, "eval") == 0 && n_inputs > 0 && inputs[0] &&
            run_folder_holds_run(folder) && !same_folder_as_file(folder, inputs[0]))
            rc = set_error(err, errlen, "%s: %s %s would replace the eval.json of the run in %s, which %s is not "
                           "from: %s", command, option, output, folder, inputs[0], advice);
        // a run's images: progress/ (train) and figures/ (plot) of a folder that holds a run
        const char *folder_name = strrchr(folder, '/') ? strrchr(folder, '/') + 1 : folder;
        if (rc == 0 && is_png_name(name) && (strcmp(folder_name, "progress") == 0 || strcmp(folder_name, "figures") == 0)) {
            char run_dir[RESOLVED_PATH];
            path_folder(folder, run_dir, sizeof run_dir);
            if (run_folder_holds_run(run_dir))
                rc = set_error(err, errlen, "%s: %s %s would replace an image of the run in %s (its %s/): give "
                               "another file name", command, option, output, run_dir, folder_name);
        }
    }
    free(real);
    return rc;
}

// The epochs a staged run finished: its log's lines.
static int staged_epochs(const char *staging) {
    char path[1200], why[16];
    snprintf(path, sizeof path, "%s/log.jsonl", staging);
    char *text = read_text_file(path, NULL, why, sizeof why);
    if (!text) return 0;
    int lines = 0;
    for (const char *p = text; *p; p++) lines += *p == '\n';
    free(text);
    return lines;
}

int run_folder_staged(const char *out_dir, char *err, size_t errlen) {
    char staging[1200];
    snprintf(staging, sizeof staging, "%s/%s", out_dir, RUN_FOLDER_STAGING);
    if (!file_exists(staging, "config.json")) return 0;   // none (or files no run wrote)
    if (file_exists(staging, "resume.safetensors")) return 1;
    return set_error(err, errlen, "%s holds an --overwrite run that stopped in its first epoch (nothing to resume): "
                     "start it again with --overwrite, or remove %s to continue the earlier run in %s", staging,
                     staging, out_dir);
}

// Removes dir's .png files (none when dir is absent); with keep, those keep lists.
static void remove_pngs(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!is_png_name(e->d_name)) continue;
        char file[1500];
        snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
        if (keep) {   // a line "<folder>/<name>" of the commit list
            const char *folder = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
            char line[1600];
            snprintf(line, sizeof line, "\n%s/%s\n", folder, e->d_name);
            if (strstr(keep, line)) continue;
        }
        if (unlink(file) != 0 && errno != ENOENT)   // (an image: the run goes on, and says it stays)
            say("%s: cannot remove it (%s): an earlier run's image stays beside this run's", file, strerror(errno));
    }
    closedir(d);
}

int run_folder_remove_figures(const char *run_dir) {
    int removed = 0;
    for (size_t i = 0; i < PLOT_FIGURE_COUNT; i++) {
        char path[1300];
        snprintf(path, sizeof path, "%s/figures/%s.png", run_dir, plot_figures[i].name);
        removed |= unlink(path) == 0;
        if (errno != ENOENT && access(path, F_OK) == 0)
            say("%s: cannot remove it (%s): the earlier model's figure stays beside this run", path, strerror(errno));
    }
    return removed;
}

// Removes a run's files and images from dir, but for those keep lists (keep NULL: all).
static int remove_run_files(const char *dir, const char *keep, char *err, size_t errlen) {
    for (size_t i = 0; i < N_REPLACED_FILES; i++) {
        char line[64], file[1200];
        snprintf(line, sizeof line, "\n%s\n", REPLACED_FILES[i]);
        if (keep && strstr(keep, line)) continue;
        snprintf(file, sizeof file, "%s/%s", dir, REPLACED_FILES[i]);
        if (unlink(file) != 0 && errno != ENOENT)
            return set_error(err, errlen, "%s: cannot remove it (--overwrite): %s", file, strerror(errno));
    }
    for (size_t k = 0; k < N_IMAGE_DIRS; k++) {
        char images[1200];
        snprintf(images, sizeof images, "%s/%s", dir, IMAGE_DIRS[k]);
        remove_pngs(images, keep);
    }
    return 0;
}

int run_folder_remove_temp_files(const char *staging, char *err, size_t errlen) {
    for (size_t k = 0; k < N_IMAGE_DIRS; k++) {
        char images[1200];
        snprintf(images, sizeof images, "%s/%s", staging, IMAGE_DIRS[k]);
        if (remove_stale_temp_files(images, err, errlen) != 0) return -1;
    }
    return remove_stale_temp_files(staging, err, errlen);
}

int run_folder_stage(const char *staging, char *err, size_t errlen) {
    struct stat st;
    char progress[1300];   // the new run's images go there: a file of that name would stop it after an epoch
    snprintf(progress, sizeof progress, "%s/progress", staging);
    if (lstat(staging, &st) == 0) {   // left by an --overwrite run that was killed or failed
        if (!S_ISDIR(st.st_mode))
            return set_error(err, errlen, "%s: not a folder (cuvae stages an --overwrite run there): move it "
                             "away", staging);
        if (lstat(progress, &st) == 0 && (stat(progress, &st) != 0 || !S_ISDIR(st.st_mode)))
            return set_error(err, errlen, "%s: not a folder (cuvae stages the new run's images there): move it "
                             "away", progress);
        int epochs = staged_epochs(staging);
        say("removing %s, the files of an earlier --overwrite run that did not finish (%d epoch%s done)", staging,
            epochs, epochs == 1 ? "" : "s");
        if (remove_run_files(staging, NULL, err, errlen) != 0 || run_folder_remove_temp_files(staging, err, errlen) != 0)
            return -1;
    }
    return make_dirs(staging, err, errlen);
}

// Moves one file of the staged run over the earlier run's. Across file systems (a
// progress/ folder that is a link to another disk) the file is copied, atomically.
static int move_file(const char *from, const char *to, bool *moved, char *err, size_t errlen) {
    struct stat st;
    if (lstat(from, &st) != 0 && errno == ENOENT) return 0;   // moved already (a commit finished after a kill)
    if (rename(from, to) == 0) {
        *moved = true;
        return 0;
    }
    if (errno != EXDEV)
        return set_error(err, errlen, "%s: cannot move it to %s (--overwrite): %s", from, to, strerror(errno));
    size_t size = 0;
    char *bytes = read_text_file(from, &size, err, errlen);
    if (!bytes) return -1;
    AtomicFile a;
    int rc = atomic_file_open(&a, to, err, errlen);
    if (rc == 0) {
        fwrite(bytes, 1, size, a.fp);
        rc = atomic_file_commit(&a, err, errlen);
    }
    free(bytes);
    if (rc == 0) unlink(from);
    if (rc == 0) *moved = true;
    return rc;
}

// The next name of a commit list ("\n"-framed lines) into name; false at the end or
// on a line without its "\n".
static bool next_listed_name(const char **line, char *name, size_t name_len) {
    const char *end = strchr(*line, '\n');
    if (!**line || !end) return false;
    snprintf(name, name_len, "%.*s", (int)(end - *line), *line);
    *line = end + 1;
    return true;
}

// The commit from its list (names relative to the run folder, each line "\n"-framed):
// the listed files moved over the earlier run's, the earlier run's files and images that
// are not listed removed, the staging folder emptied and removed. Each step can run again.
// *moved: whether any file moved (a failure before the first move has changed nothing).
static int finish_commit(const char *out_dir, const char *staging, const char *list, bool *moved, char *err,
                         size_t errlen) {
    *moved = false;
    const char *line = list + 1;   // (list starts with "\n")
    char name[600];
    while (next_listed_name(&line, name, sizeof name)) {
        char from[1800], to[1800];
        snprintf(from, sizeof from, "%s/%s", staging, name);
        snprintf(to, sizeof to, "%s/%s", out_dir, name);
        char *slash = strchr(name, '/');
        if (slash) {   // an image: its folder first
            char folder[1300];
            snprintf(folder, sizeof folder, "%s/%.*s", out_dir, (int)(slash - name), name);
            if (make_dirs(folder, err, errlen) != 0) return -1;
        }
        if (move_file(from, to, moved, err, errlen) != 0) return -1;
    }
    if (remove_run_files(out_dir, list, err, errlen) != 0) return -1;
    char any[1200];
    snprintf(any, sizeof any, "%s/config.json", out_dir);
    fsync_parent_directory(any);   // out_dir's entries (best effort)
    // the staging folder goes; what cuvae did not write there stays, and is named
    char marker[1200];
    snprintf(marker, sizeof marker, "%s/%s", staging, COMMIT_MARKER);
    unlink(marker);
    for (size_t k = 0; k < N_IMAGE_DIRS; k++) {
        char images[1200];
        snprintf(images, sizeof images, "%s/%s", staging, IMAGE_DIRS[k]);
        rmdir(images);
    }
    if (rmdir(staging) != 0 && errno != ENOENT) {
        char first[300] = "";
        int others = 0;
        DIR *d = opendir(staging);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            if (!first[0]) {
                snprintf(first, sizeof first, "%s", e->d_name);
                for (char *c = first; *c; c++)
                    if ((unsigned char)*c < 32) *c = '?';   // the message stays one line
            } else {
                others++;
            }
        }
        if (d) closedir(d);
        say("the run in %s is replaced; %s stays: it holds files cuvae did not write (%s%s); move them away if you "
            "want the folder gone", out_dir, staging, first[0] ? first : strerror(errno),
            others ? " and more" : "");
    }
    return 0;
}

// The inode flags of path (chattr's: FS_IMMUTABLE_FL, FS_APPEND_FL, ...), opened with open_flags
// added; 0 when it cannot be opened or asked (a file system without them: left to the commit).
static int inode_flags(const char *path, int open_flags) {
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | open_flags);
    int flags = 0;   // (FS_IOC_GETFLAGS fills an int)
    if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) flags = 0;
    if (fd >= 0) close(fd);
    return flags;
}

// Whether a folder the commit writes into is one it can write: an existing folder (or a
// link to one) with write access, or absent (made by the commit; its parent is out_dir).
static int check_commit_folder(const char *folder, char *err, size_t errlen) {
    struct stat st;
    if (stat(folder, &st) != 0) {
        if (errno == ENOENT && lstat(folder, &st) != 0) return 0;   // absent: made by the commit
        return set_error(err, errlen, "%s: %s", folder, errno == ENOENT ? "a link to a folder that does not exist"
                         : strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return set_error(err, errlen, "%s: not a folder", folder);
    if (access(folder, W_OK | X_OK) != 0) return set_error(err, errlen, "%s: cannot write there: %s", folder,
                                                           strerror(errno));
    // append-only (chattr +a): new names may come, none go -- the commit renames over and removes
    if (inode_flags(folder, O_DIRECTORY) & FS_APPEND_FL)
        return set_error(err, errlen, "%s: a folder marked append-only (chattr +a): files can be added to it but not "
                         "replaced or removed, which the replacement of the run does (chattr -a it)", folder);
    return 0;
}

// A file of the earlier run that the commit renames over or removes (path, in folder): -1 with
// err when the system would refuse that half way through the commit -- the file marked immutable
// or append-only (chattr +i / +a), or another user's file in a sticky folder (/tmp's rule) -- so
// the earlier run is never left partly replaced by what could be known before.
static int check_file_replaceable(const char *folder, const char *path, char *err, size_t errlen) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;   // absent: nothing to replace
    if (S_ISREG(st.st_mode)) {
        const int flags = inode_flags(path, O_NOFOLLOW);
        if (flags & (FS_IMMUTABLE_FL | FS_APPEND_FL))
            return set_error(err, errlen, "%s: marked %s (chattr +%c): it can be neither replaced nor removed, "
                             "which the replacement of the run does (chattr -%c it)", path,
                             flags & FS_IMMUTABLE_FL ? "immutable" : "append-only", flags & FS_IMMUTABLE_FL ? 'i' : 'a',
                             flags & FS_IMMUTABLE_FL ? 'i' : 'a');
    }
    struct stat dir;
    const uid_t me = geteuid();
    if (me != 0 && stat(folder, &dir) == 0 && (dir.st_mode & S_ISVTX) && st.st_uid != me && dir.st_uid != me)
        return set_error(err, errlen, "%s: another user's file in a folder with the sticky bit (%s): only its owner "
                         "can replace or remove it, which the replacement of the run does", path, folder);
    return 0;
}

// Every listed file's place in out_dir (see run_folder_commit), before anything moves.
static int check_commit_places(const char *out_dir, const char *list, char *err, size_t errlen) {
    if (check_commit_folder(out_dir, err, errlen) != 0) return -1;
    const char *line = list + 1;
    char name[600], checked[600] = "";
    while (next_listed_name(&line, name, sizeof name)) {
        char to[1800];
        const char *slash = strchr(name, '/');
        if (slash && strncmp(checked, name, (size_t)(slash - name) + 1) != 0) {   // an image: its folder, once
            char folder[1300];
            snprintf(folder, sizeof folder, "%s/%.*s", out_dir, (int)(slash - name), name);
            if (check_commit_folder(folder, err, errlen) != 0) return -1;
            snprintf(checked, sizeof checked, "%.*s", (int)(slash - name) + 1, name);
        }
        snprintf(to, sizeof to, "%s/%s", out_dir, name);
        struct stat st;
        if (lstat(to, &st) == 0 && S_ISDIR(st.st_mode))
            return set_error(err, errlen, "%s: a folder, where the new run's file goes", to);
        char folder[1300];
        snprintf(folder, sizeof folder, "%s/%.*s", out_dir, slash ? (int)(slash - name) : 0, name);
        if (check_file_replaceable(folder, to, err, errlen) != 0) return -1;
    }
    // the earlier run's files the new run has none of are removed: none may be a folder either
    for (size_t i = 0; i < N_REPLACED_FILES; i++) {
        char to[1300];
        snprintf(to, sizeof to, "%s/%s", out_dir, REPLACED_FILES[i]);
        struct stat st;
        if (lstat(to, &st) == 0 && S_ISDIR(st.st_mode))
            return set_error(err, errlen, "%s: a folder, where a run's file is (the replacement removes it)", to);
        if (check_file_replaceable(out_dir, to, err, errlen) != 0) return -1;
    }
    return 0;
}

int run_folder_check_replaceable(const char *out_dir, bool writes_progress, char *err, size_t errlen) {
    // the places run_folder_commit checks before anything moves, as far as they are known before the
    // run: out_dir, the run files (the new run's, or the earlier run's the replacement removes) and,
    // when the run writes images, progress/ and any .png name in it that a folder has taken
    if (check_commit_folder(out_dir, err, errlen) != 0) return -1;
    if (check_no_image_links_into_other_runs(out_dir, err, errlen) != 0) return -1;
    for (size_t i = 0; i < N_REPLACED_FILES; i++) {
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", out_dir, REPLACED_FILES[i]);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return set_error(err, errlen, "%s: a folder, where a run's file goes (the replacement puts the new "
                             "run's there, or removes the earlier run's)", path);
        if (check_file_replaceable(out_dir, path, err, errlen) != 0) return -1;
    }
    if (!writes_progress) return 0;
    char progress[1200];
    snprintf(progress, sizeof progress, "%s/progress", out_dir);
    if (check_commit_folder(progress, err, errlen) != 0) return -1;
    DIR *d = opendir(progress);
    int rc = 0;
    for (struct dirent *e; d && rc == 0 && (e = readdir(d)) != NULL;) {
        if (!is_png_name(e->d_name)) continue;
        char path[1600];
        snprintf(path, sizeof path, "%s/%s", progress, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            rc = set_error(err, errlen, "%s: a folder, where the new run may put an image", path);
        else
            rc = check_file_replaceable(progress, path, err, errlen);
    }
    if (d) closedir(d);
    return rc;
}

int run_folder_commit(const char *out_dir, const char *staging, char *err, size_t errlen) {
    // the new run's files, listed in the marker before the first one moves
    TextBuffer list = {0};
    text_append(&list, "\n");
    for (size_t i = 0; i < N_REPLACED_FILES; i++)
        if (file_exists(staging, REPLACED_FILES[i])) text_appendf(&list, "%s\n", REPLACED_FILES[i]);
    char progress[1200];
    snprintf(progress, sizeof progress, "%s/progress", staging);
    DIR *d = opendir(progress);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (is_png_name(e->d_name)) text_appendf(&list, "progress/%s\n", e->d_name);
    if (d) closedir(d);
    if (check_commit_places(out_dir, list.data, err, errlen) != 0) {
        free(list.data);
        return RUN_FOLDER_NOT_BEGUN;
    }
    // Ctrl-C / SIGTERM wait until the files are moved (a kill -9 leaves the marker: the
    // next train into out_dir finishes the commit)
    sigset_t stop, before;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &before);
    char marker[1200];
    snprintf(marker, sizeof marker, "%s/%s", staging, COMMIT_MARKER);
    // (a marker that could not be written is not there: nothing has moved yet)
    int rc = write_file_atomic(marker, list.data, err, errlen) != 0 ? RUN_FOLDER_NOT_BEGUN : 0;
    bool moved = false;
    if (rc == 0) rc = finish_commit(out_dir, staging, list.data, &moved, err, errlen);
    // the first move refused: nothing has changed, and without its marker the staged run is one to resume
    if (rc != 0 && rc != RUN_FOLDER_NOT_BEGUN && !moved && unlink(marker) == 0) rc = RUN_FOLDER_NOT_BEGUN;
    sigprocmask(SIG_SETMASK, &before, NULL);
    free(list.data);
    return rc;
}

// A commit list names only a run's files and progress images (a damaged or forged
// marker must not move or remove anything else).
static bool commit_list_valid(const char *list) {
    if (list[0] != '\n') return false;
    const char *line = list + 1;
    char name[600];
    while (next_listed_name(&line, name, sizeof name)) {
        bool known = strncmp(name, "progress/", 9) == 0 && is_png_name(name + 9) && !strchr(name + 9, '/') &&
                     name[9] != '.';
        for (size_t i = 0; i < N_REPLACED_FILES && !known; i++) known = strcmp(name, REPLACED_FILES[i]) == 0;
        if (!known) return false;
    }
    return *line == '\0';   // (not a last line without its "\n")
}

// The check of run_folder_check_whole in the folder of path (file as given, for the message).
static int check_commit_marker_beside(const char *file, const char *path, char *err, size_t errlen) {
    char marker[PATH_MAX + 64];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    if (slash == path) dir_len = 0;   // a file in /
    snprintf(marker, sizeof marker, "%.*s/%s/%s", dir_len, slash ? path : ".", RUN_FOLDER_STAGING, COMMIT_MARKER);
    struct stat st;
    if (lstat(marker, &st) != 0) return 0;
    return set_error(err, errlen, "%s: the replacement of this run by an --overwrite run stopped half way (%s): "
                     "cuvae train CONFIG --out %.*s --resume finishes it first", file, marker, dir_len,
                     slash ? path : ".");
}

int run_folder_check_whole(const char *file, char *err, size_t errlen) {
    if (check_commit_marker_beside(file, file, err, errlen) != 0) return -1;
    char *resolved = realpath(file, NULL);   // a link to a run's checkpoint: that run's folder too
    const int rc = resolved ? check_commit_marker_beside(file, resolved, err, errlen) : 0;
    free(resolved);
    return rc;
}

int run_folder_recover(const char *out_dir, char *err, size_t errlen) {
    char staging[1200], marker[1300];
    snprintf(staging, sizeof staging, "%s/%s", out_dir, RUN_FOLDER_STAGING);
    snprintf(marker, sizeof marker, "%s/%s", staging, COMMIT_MARKER);
    struct stat st;
    if (lstat(marker, &st) != 0) return 0;
    char *list = read_text_file(marker, NULL, err, errlen);
    if (!list) return -1;
    int rc;
    if (commit_list_valid(list)) {
        say("finishing the replacement of the run in %s by the --overwrite run staged in %s (the process that "
            "began it was killed, or a move failed)", out_dir, staging);
        bool moved;
        rc = finish_commit(out_dir, staging, list, &moved, err, errlen);
    } else {
        rc = set_error(err, errlen, "%s: not a list of a run's files (damaged, or not cuvae's): %s may be partly "
                       "replaced by the run in %s; keep the files of one of them, then remove %s", marker, out_dir,
                       staging, marker);
    }
    free(list);
    return rc;
}

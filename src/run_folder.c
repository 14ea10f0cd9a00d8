// run_folder.c: the run folder's rules: refusing to replace a run unasked, and
// --overwrite's staging folder and its commit (see run_folder.h).
#include "cuvae/run_folder.h"
#include "cuvae/common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// The files that make a folder a run (every run writes config.json first).
static const char *const RUN_FILES[] = {"config.json", "model.safetensors", "resume.safetensors"};
// A run's files: what a new run replaces.
static const char *const REPLACED_FILES[] = {"config.json", "log.jsonl", "eval.json", "model.safetensors",
                                             "resume.safetensors", "best.safetensors"};
#define N_REPLACED_FILES (sizeof REPLACED_FILES / sizeof REPLACED_FILES[0])
// The run's image folders: train writes progress/, cuvae plot and make run figures/.
static const char *const IMAGE_DIRS[] = {"progress", "figures"};

int run_folder_check(const char *out_dir, bool resume, bool overwrite, char *err, size_t errlen) {
    if (resume && overwrite)
        return set_error(err, errlen, "train: --resume continues the run in %s and --overwrite replaces it: "
                         "choose one", out_dir);
    if (resume || overwrite) return 0;
    char found[256] = "";
    for (size_t i = 0; i < sizeof RUN_FILES / sizeof RUN_FILES[0]; i++) {
        char file[1200];
        struct stat st;
        snprintf(file, sizeof file, "%s/%s", out_dir, RUN_FILES[i]);
        if (lstat(file, &st) == 0) {
            if (found[0]) strncat(found, ", ", sizeof found - strlen(found) - 1);
            strncat(found, RUN_FILES[i], sizeof found - strlen(found) - 1);
        }
    }
    if (found[0])
        return set_error(err, errlen, "%s already holds a run (%s): continue it with --resume, write the "
                         "new run elsewhere with --out DIR, or replace it with --overwrite", out_dir, found);
    return 0;
}

// Calls visit(dir, name, arg) for each .png file in dir (none when dir is absent).
static int for_each_png(const char *dir, int (*visit)(const char *, const char *, void *), void *arg) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".png") == 0) rc = visit(dir, e->d_name, arg);
    }
    closedir(d);
    return rc;
}

static int unlink_png(const char *dir, const char *name, void *arg) {
    (void)arg;
    char file[1500];
    snprintf(file, sizeof file, "%s/%s", dir, name);
    unlink(file);
    return 0;
}

// Removes a run's files and images from dir (other files are left alone).
static int remove_run_files(const char *dir, char *err, size_t errlen) {
    for (size_t i = 0; i < N_REPLACED_FILES; i++) {
        char file[1200];
        snprintf(file, sizeof file, "%s/%s", dir, REPLACED_FILES[i]);
        if (unlink(file) != 0 && errno != ENOENT)
            return set_error(err, errlen, "%s: cannot remove it (--overwrite): %s", file, strerror(errno));
    }
    for (size_t k = 0; k < sizeof IMAGE_DIRS / sizeof IMAGE_DIRS[0]; k++) {
        char images[1200];
        snprintf(images, sizeof images, "%s/%s", dir, IMAGE_DIRS[k]);
        for_each_png(images, unlink_png, NULL);
    }
    return 0;
}

int run_folder_stage(const char *staging, char *err, size_t errlen) {
    struct stat st;
    if (lstat(staging, &st) == 0) {   // left by an --overwrite run that was killed or failed
        if (!S_ISDIR(st.st_mode))
            return set_error(err, errlen, "%s: not a folder (cuvae stages an --overwrite run there): move it "
                             "away", staging);
        fprintf(stderr, "cuvae: removing %s, the files of an earlier --overwrite run that did not finish\n", staging);
        char progress[1200];
        snprintf(progress, sizeof progress, "%s/progress", staging);
        if (remove_run_files(staging, err, errlen) != 0 || remove_stale_temp_files(staging, err, errlen) != 0 ||
            remove_stale_temp_files(progress, err, errlen) != 0)
            return -1;
    }
    return make_dirs(staging, err, errlen);
}

typedef struct {
    const char *to_dir;
    char *err;
    size_t errlen;
} MoveTo;

static int move_png(const char *dir, const char *name, void *arg) {
    MoveTo *m = arg;
    char from[1500], to[1500];
    snprintf(from, sizeof from, "%s/%s", dir, name);
    snprintf(to, sizeof to, "%s/%s", m->to_dir, name);
    if (rename(from, to) != 0)
        return set_error(m->err, m->errlen, "%s: cannot move it to %s (--overwrite): %s", from, to, strerror(errno));
    return 0;
}

int run_folder_commit(const char *out_dir, const char *staging, char *err, size_t errlen) {
    // the earlier run's images first (the new run's progress images take their names)
    for (size_t k = 0; k < sizeof IMAGE_DIRS / sizeof IMAGE_DIRS[0]; k++) {
        char images[1200];
        snprintf(images, sizeof images, "%s/%s", out_dir, IMAGE_DIRS[k]);
        for_each_png(images, unlink_png, NULL);
    }
    // each file of the new run replaces the earlier one in one rename; the earlier
    // run's files the new run has none of go
    for (size_t i = 0; i < N_REPLACED_FILES; i++) {
        char from[1200], to[1200];
        snprintf(from, sizeof from, "%s/%s", staging, REPLACED_FILES[i]);
        snprintf(to, sizeof to, "%s/%s", out_dir, REPLACED_FILES[i]);
        if (rename(from, to) == 0) continue;
        if (errno != ENOENT)
            return set_error(err, errlen, "%s: cannot move it to %s (--overwrite): %s", from, to, strerror(errno));
        if (unlink(to) != 0 && errno != ENOENT)
            return set_error(err, errlen, "%s: cannot remove it (--overwrite): %s", to, strerror(errno));
    }
    char staged_progress[1200], progress[1200];
    snprintf(staged_progress, sizeof staged_progress, "%s/progress", staging);
    snprintf(progress, sizeof progress, "%s/progress", out_dir);
    struct stat st;
    if (stat(staged_progress, &st) == 0) {
        if (make_dirs(progress, err, errlen) != 0) return -1;
        MoveTo to = {progress, err, errlen};
        if (for_each_png(staged_progress, move_png, &to) != 0) return -1;
        rmdir(staged_progress);
    }
    fsync_parent_directory(progress);   // out_dir's entries (best effort)
    if (rmdir(staging) != 0)
        return set_error(err, errlen, "%s: cannot remove the staging folder (--overwrite): %s", staging,
                         strerror(errno));
    return 0;
}

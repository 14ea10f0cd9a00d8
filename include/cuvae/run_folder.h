// run_folder.h: the folder a training run writes. A new run may not replace an
// earlier one unasked; with --overwrite it trains in a staging folder inside it
// (OUT/.new-run) whose files replace the earlier run's only when the new run's training
// has ended, so a run that fails, is stopped (its state saved there for --resume) or is
// killed leaves the earlier one as it was.
#ifndef CUVAE_RUN_FOLDER_H
#define CUVAE_RUN_FOLDER_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#define RUN_FOLDER_STAGING ".new-run"

// The longest run folder path train --out and plot RUN_DIR take, in bytes (the paths of the
// files in it, and messages naming them, are built in fixed buffers).
enum { RUN_DIR_MAX_BYTES = 699 };

// One train at a time writes a run folder: an exclusive flock on out_dir, kept in *fd
// (start with -1; closing it releases the lock) until the process ends. 0 without a lock
// when out_dir does not exist yet (call again once it does); RUN_FOLDER_BUSY with err when
// another process holds it, -1 with err when it cannot be opened or locked.
enum { RUN_FOLDER_BUSY = -3 };
int run_folder_lock(const char *out_dir, int *fd, char *err, size_t errlen);
// Before a run writes into out_dir by name again: out_dir is still the folder it locked (fd), not
// removed or replaced since (another run may have made a new one there and be writing in it). 0
// (or fd < 0: no lock), or -1 with err.
int run_folder_check_still_locked(const char *out_dir, int fd, char *err, size_t errlen);

// -1 with err saying what to do when out_dir holds a run and neither resume nor
// overwrite was asked for (or both were).
int run_folder_check(const char *out_dir, bool resume, bool overwrite, char *err, size_t errlen);
// Whether out_dir holds a run: its config.json, model.safetensors or resume.safetensors.
bool run_folder_holds_run(const char *out_dir);

// -1 with err when `output` (the file `command`'s `option` writes) exists and is one of
// inputs (the files the command reads; NULL entries skipped) or a run's file (config.json,
// log.jsonl, model / resume / best .safetensors; eval.json only by eval): eval -o and
// sample -o replace their output, which must not be the checkpoint they read.
int run_folder_check_output(const char *command, const char *option, const char *output,
                            const char *const *inputs, int n_inputs, char *err, size_t errlen);

// Creates the staging folder OUT/RUN_FOLDER_STAGING (OUT exists), empty: the run
// files and images left there by an --overwrite run that was killed or failed go.
int run_folder_stage(const char *staging, char *err, size_t errlen);

// Removes the temp files of killed writes from a staging folder and its image folders
// (before a staged run is resumed or replaced).
int run_folder_remove_temp_files(const char *staging, char *err, size_t errlen);

// The images `cuvae plot` writes into RUN_DIR/figures/ (NAME.png), each with the caption
// `cuvae report` gives it. Any other image there is the user's.
typedef struct {
    const char *name;
    const char *caption;
} PlotFigure;
#define PLOT_FIGURE_COUNT 12
extern const PlotFigure plot_figures[PLOT_FIGURE_COUNT];

// Removes cuvae plot's figures (plot_figures) from run_dir/figures/: those of the model before a
// resumed run trains further (plot draws them again); the user's own images there stay. 1 when
// there were some, else 0.
int run_folder_remove_figures(const char *run_dir);

// Moves the staged run's files over the earlier run's (one rename each; a copy
// across file systems), removes the earlier run's files the new run does not have
// (its eval.json, best checkpoint, figures and progress images) and the staging
// folder. The list of files goes to a marker first, with SIGINT / SIGTERM held
// until the end: a commit killed half way is finished by run_folder_recover.
// Before the marker, every file's place is checked (its folder a writable folder, not
// append-only; the name not a folder; an earlier file one that may be replaced or removed):
// RUN_FOLDER_NOT_BEGUN when one is not, or when the marker cannot be written or the first
// move is refused (the marker then removed), with nothing moved.
enum { RUN_FOLDER_NOT_BEGUN = -2 };
int run_folder_commit(const char *out_dir, const char *staging, char *err, size_t errlen);

// -1 with err when file's folder is a run whose replacement by a staged run was
// killed half way (its files are of two runs): eval, sample and plot read no such run.
int run_folder_check_whole(const char *file, char *err, size_t errlen);

// Finishes a commit that a killed process began (the marker is there); 0 when
// there is none.
int run_folder_recover(const char *out_dir, char *err, size_t errlen);

// For --resume: 1 when out_dir's staging folder holds an --overwrite run that can
// be resumed (its resume.safetensors), 0 when it holds no run; -1 with err when it
// holds one that stopped before its first epoch ended.
int run_folder_staged(const char *out_dir, char *err, size_t errlen);

// -1 with err naming the file when one of run_dir's run files (config.json, log.jsonl,
// eval.json, the .safetensors) is there but is not a regular file or a link to one: a run
// writes each by renaming over it, checked before it touches the folder; or when progress/ or
// figures/ is there but is not a folder; or, when the run writes progress images
// (writes_progress), when progress/ is a link to a folder that does not exist or one it cannot
// write in.
int run_folder_check_outputs(const char *run_dir, bool writes_progress, char *err, size_t errlen);
// plot's check before it loads anything: -1 with err naming the place when run_dir/figures is
// there but is not a folder, is a link to nowhere, or leads into another run's folder (plot
// would mix that run's figures with this one's). A link elsewhere (a scratch disk) is taken.
int run_folder_check_figures(const char *run_dir, char *err, size_t errlen);
// --overwrite's check before the run: -1 with err naming the place when one of out_dir's run
// files is a folder, or (writes_progress) out_dir/progress is not a folder the run's images can
// be moved into (a file, a link to nowhere, no write access) -- what the commit at the run's
// end would refuse (it checks again then: the folder may change while the run trains).
int run_folder_check_replaceable(const char *out_dir, bool writes_progress, char *err, size_t errlen);

// A run's log.jsonl holds one line an epoch, in order: line n a JSON object with "epoch" n.
// -1 with err naming the file and line when line `line_number` of the log at path is not.
int run_log_check_line(const char *path, int line_number, const char *line, char *err, size_t errlen);
// The first `lines` lines of the log at path checked (all of them when lines < 0); when
// lines > 0, a log with fewer lines, or none, is -1 with err too (--resume: the lines of
// the epochs its resume state has finished). crc (may be NULL): run_log_line_crc of the
// lines checked (what the run wrote: resume files keep it).
int run_log_check(const char *path, int lines, uint32_t *crc, char *err, size_t errlen);
// crc continued over a log line as a run wrote it, but for its timings ("seconds",
// "samples_per_s": their values) and whitespace: the same for a resumed run as for an
// uninterrupted one, whose lines differ only there (their resume files stay bit-identical).
uint32_t run_log_line_crc(uint32_t crc, const char *line);

#endif

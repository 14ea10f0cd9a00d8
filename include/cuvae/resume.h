// resume.h: what a run needs to continue exactly where it stopped, in
// DIR/resume.safetensors: parameters, Adam moments (flat arena tensors), the
// device step state and loss accumulator, and where in the run it stopped
// (metadata, floats in exact hex). `cuvae train --resume` continues from it;
// the result is bit-identical to an uninterrupted run on the same backend
// (tests/cli_train.sh, tests/cli_faults.sh).
#ifndef CUVAE_RESUME_H
#define CUVAE_RESUME_H

#include <stddef.h>
#include <stdint.h>
#include "cuvae/checkpoint.h"
#include "cuvae/model.h"

// Where a run stopped: after `epochs_done` whole epochs and `steps_in_epoch`
// steps of the next one (0 at an epoch's end; > 0 when a run was interrupted
// mid-epoch), with that epoch's host-side loss sums so far. With the device's
// loss accumulator (saved too), the resumed epoch logs the same line.
typedef struct {
    int epochs_done;
    int64_t steps_in_epoch;
    double epoch_weighted, epoch_rec, epoch_kl, epoch_count;
    int best_epoch;           // data.validation: the epoch of best.safetensors (0 = none yet)
    double best_loss;         // its validation loss
    uint32_t data_crc32;      // dataset_crc32 of the training set the run trains on
    bool data_crc32_known;    // false for a file written before it was stored
    int stored_epochs;        // (resume_load) train.epochs of the run that wrote the file
    uint32_t log_crc32;       // CRC-32 of log.jsonl's lines of the epochs_done finished epochs
    bool log_crc32_known;     // false for a file written before it was stored
    int64_t stored_steps_per_epoch;   // (resume_load) the steps an epoch had in the run that wrote the file
    char written_by[CHECKPOINT_WRITTEN_BY_MAX];   // (resume_load) the build that wrote the file ("": none said)
} ResumePoint;

// Written atomically (safetensors_write): at every epoch's end after the model
// checkpoint, and when a run is interrupted (SIGINT / SIGTERM) at a step boundary.
int resume_save(Model *m, const ResumePoint *at, const char *path, char *err, size_t errlen);

// The host memory resume_save (and checkpoint_first_non_finite, the check before each epoch's
// files) takes for its copy of the parameters and Adam's two moments: 3 P floats and the
// buffers, bytes.
size_t resume_host_copy_bytes(const Model *m);
// 0 when that copy fits in the host memory left now (host_memory_read), else -1 with err
// saying so: a run is refused before it trains, not killed (Linux overcommits) at its first save;
// checked again before each epoch's copies and in resume_save (memory may have run short since).
int resume_host_copy_fits(const Model *m, char *err, size_t errlen);

// Loads into m, created from the run's config, and fills *at. The stored config
// must equal m's except train.epochs and train.full_epochs (and, with
// other_data_paths, the keys that name data files: config_hide_data_paths). Files
// written before mid-epoch points existed read as steps_in_epoch 0.
// other_steps_per_epoch: the steps an epoch of the same data and batch has on another number of
// ranks (data parallel leaves out a last batch of fewer rows than the ranks: one step less), or
// m's own count. A file written with it is continued at the same epoch and step within it: the
// step counter (batch positions, schedules) moves to m's count, the Adam bias corrections stay
// those of the updates made.
int resume_load(Model *m, const char *path, bool other_data_paths, int64_t other_steps_per_epoch, ResumePoint *at,
                char *err, size_t errlen);

#endif

// train.h: the training loop: epochs over a seeded shuffle, progress on
// stderr, log.jsonl, per-epoch test ELBO, atomic checkpoints.
#ifndef CUVAE_TRAIN_H
#define CUVAE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include "cuvae/config.h"

// Trains cfg, writing out_dir/{config.json, log.jsonl, model.safetensors,
// resume.safetensors} after every epoch and eval.json at the end. With resume,
// continues from out_dir/resume.safetensors (same config; train.epochs may
// grow). A folder that already holds a run is refused unless resume or
// overwrite (the new run is staged in out_dir/.new-run and replaces that run
// only when its training ends: run_folder.h). SIGINT / SIGTERM stop the
// run at the next step boundary with its state saved for --resume.
// Returns 0; -1 with a one-line err; or 128 + the signal when interrupted (err
// says where the state is and how to continue).
int train_run(const Config *cfg, const char *out_dir, bool resume, bool overwrite, char *err,
              size_t errlen);

#endif

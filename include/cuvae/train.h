// train.h: the training loop: epochs over a seeded shuffle, progress on
// stderr, log.jsonl, per-epoch test ELBO, atomic checkpoints.
#ifndef CUVAE_TRAIN_H
#define CUVAE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include "cuvae/config.h"

// Trains cfg, writing out_dir/{config.json, log.jsonl, model.safetensors,
// resume.safetensors} after every epoch and eval.json at the end. With resume,
// continues from out_dir/resume.safetensors (same config; train.epochs may grow).
// Returns 0, or -1 with a one-line err.
int train_run(const Config *cfg, const char *out_dir, bool resume, char *err, size_t errlen);

#endif

// train.h: the training loop: epochs over a seeded shuffle, progress on
// stderr, log.jsonl, per-epoch test ELBO, atomic checkpoints.
#ifndef CUVAE_TRAIN_H
#define CUVAE_TRAIN_H

#include <stddef.h>
#include "cuvae/config.h"

// Trains cfg, writing out_dir/{config.json, log.jsonl, model.safetensors}.
// Returns 0, or -1 with a one-line err.
int train_run(const Config *cfg, const char *out_dir, char *err, size_t errlen);

#endif

// resume.h: what a run needs to continue exactly where it stopped, in
// DIR/resume.safetensors: parameters, Adam moments (flat arena tensors), the
// device step state and the last finished epoch (metadata, floats in exact hex).
// `cuvae train --resume` continues from it; the result is bit-identical to an
// uninterrupted run on the same backend (tests/cli_train.sh).
#ifndef CUVAE_RESUME_H
#define CUVAE_RESUME_H

#include <stddef.h>
#include "cuvae/model.h"

// Written atomically (safetensors_write) after the epoch's model checkpoint.
int resume_save(Model *m, int epoch, const char *path, char *err, size_t errlen);

// Loads into m, created from the run's config; *epoch = the last finished epoch.
// The stored config must equal m's except train.epochs and train.full_epochs.
int resume_load(Model *m, const char *path, int *epoch, char *err, size_t errlen);

#endif

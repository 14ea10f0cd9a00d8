// checkpoint.h: model <-> safetensors, PyTorch nn.Linear names and layout:
// encoder.{i}.weight (out, in) / .bias, mu.*, logvar.*, decoder.{i}.* (last =
// output layer); __metadata__ = {"config": effective JSON, "format": "cuvae-1"}.
#ifndef CUVAE_CHECKPOINT_H
#define CUVAE_CHECKPOINT_H

#include <stddef.h>
#include "cuvae/model.h"

int checkpoint_save(Model *m, const char *path, char *err, size_t errlen);

// Reads the config stored in a checkpoint (overrides applied).
int checkpoint_read_config(const char *path, Config *cfg, const char *const *overrides,
                           int n_overrides, char *err, size_t errlen);

// Loads parameters into an already-created model of matching shapes.
int checkpoint_load_params(Model *m, const char *path, char *err, size_t errlen);

#endif

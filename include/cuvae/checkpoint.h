// checkpoint.h: model <-> safetensors, PyTorch nn.Linear names and layout:
// encoder.{i}.weight (out, in) / .bias, mu.*, logvar.*, decoder.{i}.* (last =
// output layer); __metadata__ = {"config": effective JSON, "format": "cuvae-1", and
// "carved_test_crc32" when the run held its test set out of data.train, "data_classes" when a
// cvae's data had fewer classes than the model, "written_by": the build that wrote the file}.
#ifndef CUVAE_CHECKPOINT_H
#define CUVAE_CHECKPOINT_H

#include <stddef.h>
#include "cuvae/common.h"
#include "cuvae/dataset.h"
#include "cuvae/model.h"
#include "cuvae/safetensors.h"

// The longest __metadata__.written_by kept (bytes, its NUL included); a longer one is cut at a
// character and ends in "...".
#define CHECKPOINT_WRITTEN_BY_MAX 256

// written_by names the build that wrote the file (cuvae_build()), none where main did not set it.
int checkpoint_save(Model *m, const char *path, char *err, size_t errlen);
// The same, naming written_by instead ("": no name): a file written again as an earlier build wrote it.
int checkpoint_save_written_by(Model *m, const char *path, const char *written_by, char *err, size_t errlen);

// Adds __metadata__.written_by = written_by (NULL or "": nothing) to meta[*n_meta], its value
// copied into buf (which must outlive the write).
void checkpoint_meta_written_by(StMeta *meta, int *n_meta, const char *written_by, char buf[CHECKPOINT_WRITTEN_BY_MAX]);

// Whether the state an epoch's files hold (parameters, buffers, Adam's moments) is all
// finite: 0, or 1 with `what` naming the first element that is not ("tensor
// decoder.1.running_var, element 0 is infinite"). A run can overflow there with a finite loss.
int checkpoint_first_non_finite(Model *m, char *what, size_t whatlen);

// -1 with err when test was carved out of data.train (dataset "files" without data.test)
// and differs from the test set the run that wrote the checkpoint at path held out (its
// __metadata__.carved_test_crc32): the data changed, and the new carve may hold images the
// model trained on. 0 otherwise (also for checkpoints that predate the check).
int checkpoint_check_carved_test_set(const char *path, const Dataset *test, char *err, size_t errlen);

// *classes = the classes a cvae checkpoint's training data had when fewer than its model's
// n_classes (its __metadata__.data_classes), else 0 (all of them; also an unreadable file: its
// loading says why). -1 with err naming the key when the value is not a whole number 1 ..
// n_classes - 1 (cuvae writes no other).
int checkpoint_data_classes(const char *path, int n_classes, int *classes, char *err, size_t errlen);
// __metadata__.KEY of the checkpoint at path into out (n bytes; "" when absent): its file read and
// checked once per command, as for checkpoint_read_config. 0, or -1 with err naming the file.
int checkpoint_metadata_value(const char *path, const char *key, char *out, size_t n, char *err, size_t errlen);
// How many times this process has read a checkpoint's whole file for its metadata (the tests:
// the same unchanged file is read once).
unsigned long checkpoint_metadata_reads(void);

// Reads the config stored in a checkpoint (overrides applied).
int checkpoint_read_config(const char *path, Config *cfg, const char *const *overrides,
                           int n_overrides, char *err, size_t errlen);

// data_cfg = cfg (the checkpoint's config with a command's overrides) with the training
// run's own train.seed: the seed that carved, split and binarized the run's data. A --set
// train.seed seeds eval's, sample's and plot's draws, not which images they test on.
int checkpoint_data_config(const char *path, const Config *cfg, const char *const *overrides, int n_overrides,
                           Config *data_cfg, char *err, size_t errlen);

// -1 with err when the checkpoint at path is no longer the file stamped in `since` (replaced
// by a train writing that run since the command first read it).
int checkpoint_check_unchanged(const char *path, const FileStamp *since, char *err, size_t errlen);

// Loads parameters into an already-created model of matching shapes.
int checkpoint_load_params(Model *m, const char *path, char *err, size_t errlen);
// True when path reads as a checkpoint of m's tensors holding exactly m's parameters and
// buffers, bit for bit (whatever its config says of the run's length).
bool checkpoint_holds_params(Model *m, const char *path);

#endif

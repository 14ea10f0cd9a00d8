// commands.h: the flows of `cuvae eval` (command_eval.c) and `cuvae sample` (command_sample.c)
// behind main.c's dispatch, and what the command files share (command_common.c): the error exit,
// a checkpoint's model on a fresh backend, the checks of -o and of --set.
#ifndef CUVAE_COMMANDS_H
#define CUVAE_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include "cuvae/backend.h"
#include "cuvae/cli_args.h"
#include "cuvae/common.h"
#include "cuvae/config.h"
#include "cuvae/model.h"

// argv excludes the command's name. The exit status: 0, or 2 with one "cuvae: ..." line on stderr.
int command_eval(int argc, char **argv);
int command_sample(int argc, char **argv);

// Prints the error line (an empty message: it was printed where it arose) and gives exit 2.
int command_fail(const char *message);
// Loads config + params from the checkpoint a->positional onto a fresh backend (a forward-only
// model of max_batch rows). since: the checkpoint as the command first read it (NULL: as this call
// first reads it); a checkpoint replaced since (a train writing that run) is refused, not mixed with
// the first. 0, or -1 with err.
int command_load_checkpoint_model(const Args *a, int max_batch, const FileStamp *since, Config *cfg,
                                  Backend **be_out, Model *m, char *err, size_t errlen);
// -o of eval or sample on a prior (a pixelcnn over a VQ-VAE's codes) must not replace the VQ-VAE it
// reads either (model.prior_of, as the command's --set leave it). 0, or -1 with err.
int command_check_output_not_prior_of(const char *command, const char *output, const char *checkpoint,
                                      const char *const *overrides, int n_overrides, char *err, size_t errlen);
// Whether a --set gives a key of a section ("eval") starting with prefix ("iw_"): eval.iw_k=V, or
// eval={...} holding such a key (as the config reads it: "iw\u005fbatch" is iw_batch).
bool command_set_gives_key(const char *set, const char *section_name, const char *prefix);
// sample and plot compute no evaluation: a --set of the eval section (eval.iw_*, eval.parzen_*)
// would be taken and not read. 0, or -1 with err naming the --set.
int command_refuse_evaluation_sets(const char *command, const char *const *overrides, int n, char *err,
                                   size_t errlen);

#endif

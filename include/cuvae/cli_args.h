// cli_args.h: the command-line options of cuvae's commands (train, eval,
// sample, plot), parsed into one struct. Bad options give one error line.
#ifndef CUVAE_CLI_ARGS_H
#define CUVAE_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#define MAX_OVERRIDES 64

// Common options: --set k=v (repeatable); the rest per command. Unknown options are errors.
typedef struct {
    const char *positional;
    const char *overrides[MAX_OVERRIDES];
    int n_overrides;
    const char *out_dir;
    const char *z_mode;
    const char *output_png;
    const char *title;        // sample --title: the grid drawn with a title (through gnuplot)
    int n_samples;
    long long seed;
    int iw_k;
    int iw_examples;
    const char *json_out;
    int sample_class;
    const char *prior;        // sample --prior PRIOR: a vq_vae's samples from codes drawn from that prior
    int tsne_points;
    int tsne_iterations;
    double latent_range[2];   // plot --latent-range LO:HI (0, 0: not given)
    bool full;
    bool resume;
    bool overwrite;
} Args;

// Parses argv (the arguments after the command name) for `command`. Returns 0,
// or -1 with one line in err naming the option.
int parse_args(int argc, char **argv, const char *command, Args *a, char *err, size_t errlen);

// Whether --help or -h is among the options before "--" (the end of the options; a file may
// be named -h after it); the value of an option takes_value names (NULL: none) is skipped.
bool args_want_help(int argc, char **argv, bool (*takes_value)(const char *option));

// Whether a train / eval / sample / plot option takes a value (--set, -o, --title, ...).
bool args_option_takes_value(const char *option);

// Options given once: -1 with "<command>: <option> given twice" when argv[i] (an option; --set
// may repeat) is among argv[0 .. i)'s options; takes_value says which options take a value.
int option_given_once(int argc, char **argv, int i, bool (*takes_value)(const char *option), const char *command,
                      char *err, size_t errlen);

#endif

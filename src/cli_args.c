// cli_args.c: parse_args (cli_args.h): the options of train, eval, sample
// and plot, checked one by one (counts in range, known values, one positional).
#include "cuvae/cli_args.h"
#include "cuvae/common.h"
#include "cuvae/run_folder.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

int option_given_once(int argc, char **argv, int i, bool (*takes_value)(const char *option), const char *command,
                      char *err, size_t errlen) {
    const char *arg = argv[i];
    if (arg[0] != '-' || arg[1] == '\0' || strcmp(arg, "--set") == 0) return 0;
    for (int k = 0; k < i && k < argc; k++) {   // options only: a value is skipped with its option
        if (strcmp(argv[k], arg) == 0)
            return set_error(err, errlen, "%s: %s given twice (the last would win unsaid): give it once", command,
                             arg);
        if (argv[k][0] == '-' && takes_value(argv[k])) k++;
    }
    return 0;
}

bool args_want_help(int argc, char **argv, bool (*takes_value)(const char *option)) {
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {   // (after "--", a file named -h)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
        if (takes_value && takes_value(argv[i])) i++;   // (a value, e.g. --title -h or -o --, is no option)
    }
    return false;
}

// The options of train / eval / sample / plot that take a value.
bool args_option_takes_value(const char *option) {
    static const char *const with_value[] = {"--set", "--out", "--z", "--iw", "--iw-examples", "-o", "--prior",
                                             "--class", "--title", "-n", "--seed", "--tsne-points",
                                             "--tsne-iterations", "--latent-range"};
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
        if (strcmp(option, with_value[k]) == 0) return true;
    return false;
}

// A count as digits only: strtol alone would take " 5", "+5" and "-0"
static bool plain_digits(const char *text) {
    return text[0] && strspn(text, "0123456789") == strlen(text);
}

// An option where a value was expected (a file named "-x" can be given as ./-x)
static bool is_option(const char *value) {
    return value[0] == '-' && value[1] != '\0';
}

static const char *option_hint(int argc, char **argv, int i) {
    static char hint[320];
    hint[0] = '\0';
    if (i + 1 < argc && is_option(argv[i + 1]))
        snprintf(hint, sizeof hint, ", got the option %.100s (a name starting with '-': ./%.60s)", argv[i + 1],
                 argv[i + 1]);
    return hint;
}

int parse_args(int argc, char **argv, const char *command, Args *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->n_samples = 64;
    a->seed = -1;
    a->sample_class = -1;
    a->iw_k = -1;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(arg, "--") == 0) {   // the end of the options: what follows is the positional argument
            if (i + 2 < argc || (i + 1 < argc && a->positional))
                return set_error(err, errlen, "%s: unexpected argument %s", command, argv[i + 2 < argc ? i + 2 : i + 1]);
            if (i + 1 < argc) a->positional = argv[i + 1];
            break;
        }
        if (option_given_once(argc, argv, i, args_option_takes_value, command, err, errlen) != 0) return -1;
        if (strcmp(arg, "--set") == 0) {
            if (!has_value) return set_error(err, errlen, "%s: --set needs key.path=value", command);
            if (strncmp(argv[i + 1], "--", 2) == 0)   // (no key starts with "-": an option where key=value goes)
                return set_error(err, errlen, "%s: --set needs key.path=value, got the option %s", command, argv[i + 1]);
            if (a->n_overrides == MAX_OVERRIDES) return set_error(err, errlen, "%s: too many --set", command);
            a->overrides[a->n_overrides++] = argv[++i];
        } else if (strcmp(arg, "--out") == 0 && strcmp(command, "train") == 0) {
            if (!has_value || is_option(argv[i + 1]))
                return set_error(err, errlen, "train: --out needs a directory%s", option_hint(argc, argv, i));
            a->out_dir = argv[++i];
            if (!a->out_dir[0]) return set_error(err, errlen, "train: --out: the directory name is empty");
            char *real = realpath(a->out_dir, NULL);   // (also /., /.., a link to /)
            const bool root = strspn(a->out_dir, "/") == strlen(a->out_dir) || (real && strcmp(real, "/") == 0);
            free(real);
            if (root)   // ("--out $RUNS/" with RUNS unset)
                return set_error(err, errlen, "train: --out %s: the root folder; give the run's own folder", a->out_dir);
        } else if (strcmp(arg, "--full") == 0 && strcmp(command, "train") == 0) {
            a->full = true;
        } else if (strcmp(arg, "--resume") == 0 && strcmp(command, "train") == 0) {
            a->resume = true;
        } else if (strcmp(arg, "--overwrite") == 0 && strcmp(command, "train") == 0) {
            a->overwrite = true;
        } else if (strcmp(arg, "--z") == 0 && (strcmp(command, "eval") == 0 || strcmp(command, "plot") == 0)) {
            if (!has_value) return set_error(err, errlen, "%s: --z needs sample or mean", command);
            a->z_mode = argv[++i];
            if (strcmp(a->z_mode, "sample") != 0 && strcmp(a->z_mode, "mean") != 0)
                return set_error(err, errlen, "%s: --z: expected sample or mean, got \"%s\"", command, a->z_mode);
        } else if ((strcmp(arg, "--iw") == 0 || strcmp(arg, "--iw-examples") == 0) &&
                   strcmp(command, "eval") == 0) {
            char *end;
            if (!has_value) return set_error(err, errlen, "eval: %s needs a count", arg);
            long v = strtol(argv[++i], &end, 10);
            // (0 is refused, not taken as "no bound" or "all": leave the option out for those)
            if (!plain_digits(argv[i]) || end == argv[i] || *end || v < 1 || v > 10000000)
                return set_error(err, errlen, "eval: %s: expected a count from 1 to 10000000, got \"%s\"%s", arg,
                                 argv[i], end != argv[i] && !*end && v == 0 ? strcmp(arg, "--iw") == 0
                                 ? " (leave --iw out for no importance-weighted bound)"
                                 : " (leave --iw-examples out to use every test example)" : "");
            if (strcmp(arg, "--iw") == 0) a->iw_k = (int)v;
            else a->iw_examples = (int)v;
        } else if (strcmp(arg, "-o") == 0 && strcmp(command, "eval") == 0) {
            if (!has_value || is_option(argv[i + 1]))
                return set_error(err, errlen, "eval: -o needs a file name%s", option_hint(argc, argv, i));
            a->json_out = argv[++i];
            if (!a->json_out[0]) return set_error(err, errlen, "eval: -o: the file name is empty");
        } else if (strcmp(arg, "--prior") == 0 && strcmp(command, "sample") == 0) {
            if (!has_value || is_option(argv[i + 1]))
                return set_error(err, errlen, "sample: --prior needs a prior's checkpoint%s", option_hint(argc, argv, i));
            a->prior = argv[++i];
            if (!a->prior[0]) return set_error(err, errlen, "sample: --prior: the file name is empty");
        } else if (strcmp(arg, "--class") == 0 && strcmp(command, "sample") == 0) {
            char *end;
            if (!has_value) return set_error(err, errlen, "sample: --class needs a label");
            long v = strtol(argv[++i], &end, 10);
            if (!plain_digits(argv[i]) || end == argv[i] || *end || v < 0 || v > 255)
                return set_error(err, errlen, "sample: --class: expected a class label (a whole number, 0 to 255), "
                                 "got \"%s\"", argv[i]);
            a->sample_class = (int)v;
        } else if ((strcmp(arg, "--tsne-points") == 0 || strcmp(arg, "--tsne-iterations") == 0) &&
                   strcmp(command, "plot") == 0) {
            char *end;
            if (!has_value) return set_error(err, errlen, "plot: %s needs a count", arg);
            long v = strtol(argv[++i], &end, 10);
            if (!plain_digits(argv[i]) || end == argv[i] || *end || v < 10 || v > 100000)
                return set_error(err, errlen, "plot: %s: expected 10..100000, got \"%s\"", arg, argv[i]);
            if (strcmp(arg, "--tsne-points") == 0) a->tsne_points = (int)v;
            else a->tsne_iterations = (int)v;
        } else if (strcmp(arg, "--latent-range") == 0 && strcmp(command, "plot") == 0) {
            char *end;
            if (!has_value) return set_error(err, errlen, "plot: --latent-range needs LO:HI");
            const char *text = argv[++i];
            const bool decimal = strspn(text, "0123456789.:+-eE") == strlen(text);   // (strtod takes hex too)
            double lo = decimal ? strtod(text, &end) : NAN, hi = NAN;
            if (!decimal) end = (char *)text;
            if (end != text && *end == ':') {
                const char *second = end + 1;
                hi = strtod(second, &end);
                if (end == second) hi = NAN;
            }
            if (*end || !isfinite(lo) || !isfinite(hi) || !(lo < hi) || fabs(lo) > 1e30 || fabs(hi) > 1e30)
                return set_error(err, errlen, "plot: --latent-range: expected LO:HI with LO < HI, both within "
                                 "+-1e30, got \"%s\"", text);
            // the codes are float32: an end below its smallest normal number reads as 0 (or a
            // subnormal, flushed to 0 on the CPU), so the range would silently be another
            if ((lo != 0.0 && fabs(lo) < FLT_MIN) || (hi != 0.0 && fabs(hi) < FLT_MIN))
                return set_error(err, errlen, "plot: --latent-range: %s has an end below %.3g in magnitude, float32's "
                                 "smallest normal number (the codes are float32): give 0 or a larger end", text,
                                 (double)FLT_MIN);
            // the codes are float32 and the axes are drawn from 9 digits: a narrower range is one value
            if (hi - lo < 1e-6 * fmax(fabs(lo), fabs(hi)))
                return set_error(err, errlen, "plot: --latent-range: %s is narrower than a millionth of its ends "
                                 "(the codes are float32): no axis to draw", text);
            a->latent_range[0] = lo;
            a->latent_range[1] = hi;
        } else if (strcmp(arg, "-n") == 0 && strcmp(command, "sample") == 0) {
            char *end;
            if (!has_value) return set_error(err, errlen, "sample: -n needs a count");
            long n = strtol(argv[++i], &end, 10);
            if (!plain_digits(argv[i]) || end == argv[i] || *end || n < 1 || n > 10000)
                return set_error(err, errlen, "sample: -n: expected 1..10000, got \"%s\"", argv[i]);
            a->n_samples = (int)n;
        } else if (strcmp(arg, "--title") == 0 && strcmp(command, "sample") == 0) {
            if (!has_value) return set_error(err, errlen, "sample: --title needs a text");
            a->title = argv[++i];
            if (!a->title[0] || strchr(a->title, '\n') || strlen(a->title) > 200)
                return set_error(err, errlen, "sample: --title: expected one non-empty line of at most 200 "
                                 "bytes (UTF-8: fewer characters when some take several bytes)");
            const long bad = utf8_first_invalid(a->title);   // (gnuplot draws the title as UTF-8)
            if (bad >= 0)
                return set_error(err, errlen, "sample: --title: byte %ld is not valid UTF-8 (the title is drawn as "
                                 "UTF-8 text)", bad + 1);
        } else if (strcmp(arg, "-o") == 0 && strcmp(command, "sample") == 0) {
            if (!has_value || is_option(argv[i + 1]))
                return set_error(err, errlen, "sample: -o needs a file name%s", option_hint(argc, argv, i));
            a->output_png = argv[++i];
            if (!a->output_png[0]) return set_error(err, errlen, "sample: -o: the file name is empty");
        } else if (strcmp(arg, "--seed") == 0 && strcmp(command, "sample") == 0) {
            char *end;
            if (!has_value) return set_error(err, errlen, "sample: --seed needs an integer");
            errno = 0;
            long long s = strtoll(argv[++i], &end, 10);
            if (argv[i][0] < '0' || argv[i][0] > '9' || end == argv[i] || *end || errno == ERANGE || s < 0 ||
                s > 9007199254740991LL)   // train.seed's range: 0 .. 2^53 - 1
                return set_error(err, errlen, "sample: --seed: expected an integer 0..9007199254740991, got \"%s\"",
                                 argv[i]);
            a->seed = s;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return set_error(err, errlen, "%s: unknown option %s (see cuvae %s --help)", command, arg, command);
        } else if (!a->positional) {
            a->positional = arg;
        } else {
            return set_error(err, errlen, "%s: unexpected argument %s", command, arg);
        }
    }
    const char *positional_name = strcmp(command, "train") == 0 ? "CONFIG" : strcmp(command, "plot") == 0 ? "RUN_DIR" : "CKPT";
    if (!a->positional)
        return set_error(err, errlen, "%s: missing %s (see cuvae %s --help)", command, positional_name, command);
    if (!a->positional[0])   // (plot "" would read /model.safetensors and draw into /figures)
        return set_error(err, errlen, "%s: %s: the name is empty", command, positional_name);
    // sample --seed and --set train.seed both choose the draws: one of them would be dropped
    for (int k = 0; a->seed >= 0 && k < a->n_overrides; k++)
        if (strncmp(a->overrides[k], "train.seed=", 11) == 0)
            return set_error(err, errlen, "sample: --seed and --set train.seed both seed the draws: give one");
    // an output whose folder is missing fails only after the work: said now
    const char *outputs[2] = {a->json_out, a->output_png};
    // sample without -o writes samples.png in the current folder: checked as that -o
    const char *option[2] = {"-o", "-o"};
    if (!outputs[1] && strcmp(command, "sample") == 0) {
        outputs[1] = "samples.png";
        option[1] = "-o (default)";
    }
    for (int k = 0; k < 2; k++) {
        if (!outputs[k]) continue;
        const char *slash = strrchr(outputs[k], '/');
        if (!slash || slash == outputs[k]) continue;   // the current folder, or /
        char folder[1024];
        snprintf(folder, sizeof folder, "%.*s", (int)(slash - outputs[k]), outputs[k]);
        struct stat st;
        if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode))
            return set_error(err, errlen, "%s: %s %s: the folder %s %s", command, option[k], outputs[k], folder,
                             stat(folder, &st) != 0 ? "does not exist" : "is not a folder");
    }
    // an output that is no regular file (a folder, /dev/null, a FIFO) is refused at the write,
    // after the work: said now
    for (int k = 0; k < 2; k++) {
        char *resolved = NULL, why[1024];
        if (!outputs[k]) continue;
        if (output_path_resolve(outputs[k], &resolved, why, sizeof why) != 0)
            return set_error(err, errlen, "%s: %s %s", command, option[k], why);
        // ... or whose file goes in a folder it cannot write in (read-only, no permission, missing): the
        // file is written through a temp file beside it — beside a link's target, where -o is a link
        const char *target = resolved ? resolved : outputs[k];
        const char *slash = strrchr(target, '/');
        char folder[1024];
        snprintf(folder, sizeof folder, "%.*s", slash ? (slash == target ? 1 : (int)(slash - target)) : 1,
                 slash ? target : ".");
        if (access(folder, W_OK | X_OK) != 0) {
            set_error(err, errlen, "%s: %s %s: cannot write in the folder %s%s: %s", command, option[k], outputs[k], folder,
                      resolved ? " (where the link's target is)" : "", strerror(errno));
            free(resolved);
            return -1;
        }
        free(resolved);
    }
    // eval -o and sample -o replace their file: never the checkpoints read, nor a run's files;
    // and a name with another extension than what is written (a PNG's .jpg or .safetensors, a
    // JSON's .safetensors or .png) is a mistake that would replace that file with other bytes
    const char *inputs[2] = {a->positional, a->prior};
    const char *extensions[2] = {".json", ".png"}, *written[2] = {"a JSON object", "a PNG image"};
    for (int k = 0; k < 2; k++) {
        if (!outputs[k]) continue;
        if (run_folder_check_output(command, option[k], outputs[k], inputs, 2, err, errlen) != 0) return -1;
        const char *slash = strrchr(outputs[k], '/');
        const char *dot = strrchr(slash ? slash + 1 : outputs[k], '.');
        if (dot && dot != (slash ? slash + 1 : outputs[k]) && strcasecmp(dot, extensions[k]) != 0)
            return set_error(err, errlen, "%s: %s %s: %s writes %s; give a name ending in %s", command, option[k], outputs[k],
                             command, written[k], extensions[k]);
    }
    return 0;
}

// fuzz_cli_args.c: the command-line parser (parse_args). Input: NUL-separated
// arguments; the first byte picks the command (train, eval, sample, plot).
// Properties: no crash or sanitizer report; a failure is one error line; an
// accepted parse has its positional argument and counts in their ranges.
#include "fuzz_common.h"
#include "cuvae/cli_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const commands[4] = {"train", "eval", "sample", "plot"};
    if (size == 0) return 0;
    const char *command = commands[data[0] % 4];
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    char *argv[64];
    int argc = 0;
    for (size_t i = 0; i < size - 1 && argc < 64; i += strlen(text + i) + 1) argv[argc++] = text + i;
    Args a;
    char err[1024] = "";
    if (parse_args(argc, argv, command, &a, err, sizeof err) != 0) {
        fuzz_check_error_line(err);
    } else if (!a.positional || a.n_samples < 1 || a.n_samples > 10000 || a.n_overrides > MAX_OVERRIDES) {
        abort();
    }
    free(text);
    return 0;
}

// fuzz_config.c: the config parser with --set overrides. Input: the config
// text, then NUL-separated override strings. Properties: a failure is one
// error line; an accepted config dumps to JSON that parses again to the same
// dump (the round trip of the effective config).
#include "fuzz_common.h"
#include "cuvae/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    const char *overrides[8];
    int n = 0;
    size_t first = strlen(text);
    for (size_t i = first + 1; i < size && n < 8; i += strlen(text + i) + 1) overrides[n++] = text + i;
    Config cfg;
    char err[1024] = "";
    if (config_from_string(&cfg, text, "fuzz.json", overrides, n, err, sizeof err) != 0) {
        fuzz_check_error_line(err);
    } else {
        char *dump = config_to_json(&cfg);
        Config again;
        if (config_from_string(&again, dump, "dump.json", NULL, 0, err, sizeof err) != 0) {
            fprintf(stderr, "fuzz: the dump of an accepted config is refused: %s\n%s\n", err, dump);
            abort();
        }
        char *dump2 = config_to_json(&again);
        if (strcmp(dump, dump2) != 0) {
            fprintf(stderr, "fuzz: round trip changed the config:\n%s\n---\n%s\n", dump, dump2);
            abort();
        }
        free(dump);
        free(dump2);
    }
    free(text);
    return 0;
}

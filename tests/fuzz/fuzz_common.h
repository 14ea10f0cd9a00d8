// fuzz_common.h: helpers shared by the libFuzzer targets in tests/fuzz/: the
// input written to a per-process temp file (the readers take paths), and the
// one-line error property every failing reader must keep.
#ifndef CUVAE_FUZZ_COMMON_H
#define CUVAE_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_path[64];
static void fuzz_remove_input_file(void) { unlink(fuzz_path); }

// The input as a file; the same path for the whole run, removed at exit.
__attribute__((unused)) static const char *fuzz_input_file(const uint8_t *data, size_t size) {
    char *path = fuzz_path;
    if (!path[0]) {
        snprintf(path, sizeof fuzz_path, "/tmp/cuvae_fuzz_%ld.bin", (long)getpid());
        atexit(fuzz_remove_input_file);
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    return path;
}

// An error must be one non-empty line of text.
__attribute__((unused)) static void fuzz_check_error_line(const char *err) {
    if (!err[0]) {
        fprintf(stderr, "fuzz: failure with an empty error message\n");
        abort();
    }
    for (const char *c = err; *c; c++) {
        if (*c == '\n' || *c == '\r') {
            fprintf(stderr, "fuzz: error message spans lines: %s\n", err);
            abort();
        }
    }
}

#endif

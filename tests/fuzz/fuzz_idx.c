// fuzz_idx.c: the IDX(.gz) reader on arbitrary bytes (plain, or gzip when the
// input starts with its magic). Properties: no crash or sanitizer report; a
// failure is one error line; an accepted file has count = prod(dims) bytes.
#include "fuzz_common.h"
#include "cuvae/idx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size);
    IdxArray a;
    char err[1024] = "";
    if (idx_read(path, &a, err, sizeof err) != 0) {
        fuzz_check_error_line(err);
        return 0;
    }
    size_t count = 1;
    for (int i = 0; i < a.rank; i++) count *= (size_t)a.dims[i];
    if (count != a.count) abort();
    volatile unsigned sum = 0;
    for (size_t i = 0; i < a.count; i++) sum += a.data[i];   // every byte readable
    (void)sum;
    idx_free(&a);
    return 0;
}

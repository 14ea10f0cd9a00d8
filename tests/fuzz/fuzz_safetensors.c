// fuzz_safetensors.c: the safetensors reader (header JSON, offsets, checksum)
// on arbitrary bytes. Properties: no crash or sanitizer report; a failure is
// one error line; every tensor of an accepted file is readable to its end.
#include "fuzz_common.h"
#include "cuvae/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_input_file(data, size);
    StFile f;
    char err[1024] = "";
    if (safetensors_read(path, &f, err, sizeof err) != 0) {
        fuzz_check_error_line(err);
        return 0;
    }
    for (int i = 0; i < f.n_tensors; i++) {
        size_t n = 1;
        for (int d = 0; d < f.tensors[i].rank; d++) n *= (size_t)f.tensors[i].shape[d];
        volatile float sum = 0.0f;
        for (size_t j = 0; j < n; j++) sum += f.tensors[i].data[j];
        (void)sum;
        if (safetensors_check_finite(path, &f.tensors[i], err, sizeof err) != 0) fuzz_check_error_line(err);
    }
    for (int i = 0; i < f.n_meta; i++)
        if (!f.meta[i].value) abort();
    safetensors_free(&f);
    return 0;
}

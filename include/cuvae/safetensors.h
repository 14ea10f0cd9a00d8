// safetensors.h: minimal safetensors reader/writer (F32 tensors, __metadata__
// string map). Writes are atomic: temp file in the same directory, fsync, rename.
#ifndef CUVAE_SAFETENSORS_H
#define CUVAE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_RANK 4
#define ST_MAX_NAME 128

typedef struct {
    char name[ST_MAX_NAME];
    int rank;
    int64_t shape[ST_MAX_RANK];
    const float *data;       // writer: caller-owned; reader: points into the file buffer (F32)
    char dtype[8];           // reader: "F32" (safetensors_read_any: also U8, I8, BOOL, U16, I16, I32, I64)
    const uint8_t *bytes;    // reader: the tensor's first byte (any dtype; maybe unaligned)
} StTensor;

typedef struct {
    char key[64];
    char *value;             // malloc'd (reader) / caller-owned (writer)
} StMeta;

// Writes tensors (dtype F32, in the given order) and metadata pairs, plus
// __metadata__.crc32: the CRC-32 of the data section and the other metadata, which
// safetensors_read verifies (a damaged file is an error naming it). Other
// readers (PyTorch's safetensors) ignore it.
int safetensors_write(const char *path, const StTensor *tensors, int n_tensors,
                      const StMeta *meta, int n_meta, char *err, size_t errlen);

typedef struct {
    uint8_t *buffer;         // whole file
    size_t size;
    StTensor *tensors;
    int n_tensors;
    StMeta *meta;
    int n_meta;
} StFile;

// Reads and validates (header JSON, F32 only, offsets inside the file and
// consistent with shapes). Errors name the file and what is wrong.
int safetensors_read(const char *path, StFile *f, char *err, size_t errlen);
// The same for data files: integer and byte dtypes too (t->dtype, t->bytes).
int safetensors_read_any(const char *path, StFile *f, char *err, size_t errlen);
const StTensor *safetensors_find(const StFile *f, const char *name);
// -1 with err naming the file, the tensor and the first NaN or infinite element.
int safetensors_check_finite(const char *path, const StTensor *t, char *err, size_t errlen);
// Before a write: -1 with err naming path, the tensor and the element when one of the n
// tensors holds a NaN or infinity -- a run that diverged with a finite loss (a batch norm's
// running variance, Adam's second moments overflowing); the file is not written.
int safetensors_check_finite_before_write(const char *path, const StTensor *tensors, int n, char *err,
                                          size_t errlen);
const char *safetensors_meta(const StFile *f, const char *key);   // NULL if absent
void safetensors_free(StFile *f);

#endif

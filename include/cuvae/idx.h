// idx.h: reader for IDX files (the MNIST container format), plain or gzip.
#ifndef CUVAE_IDX_H
#define CUVAE_IDX_H

#include <stddef.h>
#include <stdint.h>

#define IDX_MAX_RANK 4

typedef struct {
    int rank;                  // number of dimensions (1..IDX_MAX_RANK)
    int dims[IDX_MAX_RANK];    // sizes, outermost first
    size_t count;              // product of dims
    uint8_t *data;             // count bytes (only type 0x08, unsigned byte, is accepted)
} IdxArray;

// Reads `path` (gzip detected by its magic bytes, not the name). Checks the
// magic (0x00 0x00 0x08 rank), rank, dims, and that the payload holds exactly
// count bytes. Errors name the file and byte offset, e.g.
//   "data/x.idx: truncated at byte 1234: header says 47040016 bytes of data, found 1218"
int idx_read(const char *path, IdxArray *out, char *err, size_t errlen);
void idx_free(IdxArray *a);

#endif

// idx.c: reader for IDX files (the MNIST container format), plain or gzip.
//
// An IDX file is a 4-byte magic (0x00 0x00 TYPE RANK), RANK big-endian uint32
// dimension sizes, then the payload in row-major order. We accept only TYPE
// 0x08 (unsigned byte), so the payload is exactly prod(dims) bytes. Gzip is
// detected by its magic bytes (0x1f 0x8b), not by the file name. Every problem
// is reported as one line naming the file and the byte offset. For gzip files
// IDX offsets count decompressed bytes; damage to the gzip stream itself is
// reported at its offset in the compressed file.
#include "cuvae/idx.h"
#include "cuvae/common.h"

#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// ----------------------------------------------------------------------------
// a byte source: a plain FILE, or a gzip file inflated here with zlib's
// inflate (not gzread, which ignores data after the gzip stream and, when the
// file ends exactly where the deflate data does, never checks the 8-byte
// trailer). The gzip stream must end with its trailer (CRC-32 and length,
// verified by inflate) and nothing may follow it.

#define GZ_CHUNK (1u << 17)

typedef struct {
    const char *path;
    FILE *file;             // the file (plain data, or the compressed bytes)
    bool gzip;
    z_stream z;
    unsigned char *in;      // GZ_CHUNK compressed bytes
    bool stream_end;        // inflate reached the end of the gzip stream (trailer verified)
    size_t offset;          // bytes delivered so far (decompressed for gzip)
} ByteSource;

// Opens `path`, choosing plain or gzip reading by the first two bytes.
static int source_open(ByteSource *src, const char *path, char *err, size_t errlen) {
    memset(src, 0, sizeof *src);
    src->path = path;
    FILE *f = open_regular_file(path, err, errlen);
    if (!f) return -1;
    unsigned char magic[2] = {0, 0};
    size_t got = fread(magic, 1, 2, f);
    if (ferror(f)) {
        int saved = errno;
        fclose(f);
        return set_error(err, errlen, "%s: read error at byte 0: %s", path, strerror(saved));
    }
    rewind(f);
    src->file = f;
    src->gzip = got == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    if (!src->gzip) return 0;
    src->in = malloc(GZ_CHUNK);
    if (!src->in || inflateInit2(&src->z, 16 + MAX_WBITS) != Z_OK) {   // 16: gzip wrapper only
        free(src->in);
        fclose(f);
        src->file = NULL;
        return set_error(err, errlen, "%s: out of memory for the gzip decoder", path);
    }
    return 0;
}

static void source_close(ByteSource *src) {
    if (src->gzip) inflateEnd(&src->z);
    free(src->in);
    if (src->file) fclose(src->file);
    src->file = NULL;
    src->in = NULL;
}

// Inflates into buf until it is full or the gzip stream ends (then checks that
// nothing follows it). -1 with err on damage, truncation or trailing bytes.
static int gzip_read(ByteSource *src, uint8_t *buf, size_t want, size_t *got, char *err,
                     size_t errlen) {
    z_stream *z = &src->z;
    while (*got < want && !src->stream_end) {
        if (z->avail_in == 0) {
            size_t n = fread(src->in, 1, GZ_CHUNK, src->file);
            if (n == 0 && ferror(src->file))
                return set_error(err, errlen, "%s: read error at byte %lu of the compressed file: %s",
                                 src->path, z->total_in, strerror(errno));
            if (n == 0)
                return set_error(err, errlen,
                                 "%s: gzip stream truncated at byte %lu of the compressed file "
                                 "(after %zu decompressed bytes): unexpected end of file",
                                 src->path, z->total_in, src->offset + *got);
            z->next_in = src->in;
            z->avail_in = (uInt)n;
        }
        size_t room = want - *got;
        z->next_out = buf + *got;
        z->avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        uInt before = z->avail_out;
        int rc = inflate(z, Z_NO_FLUSH);
        *got += before - z->avail_out;
        if (rc == Z_STREAM_END) {
            src->stream_end = true;
            // the trailer checked out; the file must end here
            unsigned long stream_bytes = z->total_in;
            bool more = z->avail_in > 0 || fgetc(src->file) != EOF;
            if (more)
                return set_error(err, errlen,
                                 "%s: trailing data at byte %lu of the compressed file: bytes follow "
                                 "the end of the gzip stream", src->path, stream_bytes);
        } else if (rc == Z_MEM_ERROR) {
            return set_error(err, errlen, "%s: out of memory while inflating", src->path);
        } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
            return set_error(err, errlen, "%s: corrupt gzip stream at byte %lu of the compressed file: %s",
                             src->path, z->total_in, z->msg ? z->msg : "inflate failed");
        }
    }
    return 0;
}

// Reads up to `want` bytes into buf; *got gets how many arrived. A short read
// with return 0 means a clean end of data. Returns -1 (with err) on a read
// error or a damaged, truncated or over-long gzip stream.
static int source_read(ByteSource *src, uint8_t *buf, size_t want, size_t *got, char *err,
                       size_t errlen) {
    *got = 0;
    if (!src->gzip) {
        size_t n = fread(buf, 1, want, src->file);
        *got = n;
        src->offset += n;
        if (n < want && ferror(src->file))
            return set_error(err, errlen, "%s: read error at byte %zu: %s", src->path, src->offset,
                             strerror(errno));
        return 0;
    }
    int rc = gzip_read(src, buf, want, got, err, errlen);
    src->offset += *got;
    return rc;
}

static uint32_t read_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

// ----------------------------------------------------------------------------
// header and payload

// Reads and checks the magic and dims; fills rank, dims, count of `out`.
static int read_header(ByteSource *src, IdxArray *out, char *err, size_t errlen) {
    const char *path = src->path;
    uint8_t magic[4];
    size_t got;
    if (source_read(src, magic, 4, &got, err, errlen) != 0) return -1;
    if (got == 0) return set_error(err, errlen, "%s: empty file at byte 0: expected an IDX header", path);
    if (got < 4)
        return set_error(err, errlen, "%s: truncated header at byte %zu: the magic needs 4 bytes",
                         path, got);
    if (magic[0] != 0 || magic[1] != 0)
        return set_error(err, errlen,
                         "%s: bad magic at byte 0: expected 0x00 0x00, found 0x%02x 0x%02x "
                         "(not an IDX file)", path, magic[0], magic[1]);
    if (magic[2] != 0x08)
        return set_error(err, errlen,
                         "%s: unsupported data type 0x%02x at byte 2: only 0x08 (unsigned byte) "
                         "is accepted", path, magic[2]);
    int rank = magic[3];
    if (rank < 1 || rank > IDX_MAX_RANK)
        return set_error(err, errlen, "%s: bad rank %d at byte 3: must be 1..%d", path, rank,
                         IDX_MAX_RANK);

    uint8_t dim_bytes[4 * IDX_MAX_RANK];
    size_t dims_size = 4 * (size_t)rank;
    if (source_read(src, dim_bytes, dims_size, &got, err, errlen) != 0) return -1;
    if (got < dims_size)
        return set_error(err, errlen,
                         "%s: truncated header at byte %zu: rank %d needs %zu header bytes", path,
                         4 + got, rank, 4 + dims_size);

    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        uint32_t dim = read_be32(dim_bytes + 4 * i);
        size_t at = 4 + 4 * (size_t)i;
        if (dim == 0)
            return set_error(err, errlen, "%s: dimension %d is 0 at byte %zu: every dimension must be > 0",
                             path, i, at);
        if (dim > (uint32_t)INT_MAX)
            return set_error(err, errlen, "%s: dimension %d is %u at byte %zu: too large (max %d)",
                             path, i, (unsigned)dim, at, INT_MAX);
        if (count > SIZE_MAX / dim)
            return set_error(err, errlen,
                             "%s: dimensions overflow at byte %zu: the element count does not fit "
                             "in memory sizes", path, at);
        count *= dim;
        out->dims[i] = (int)dim;
    }
    out->rank = rank;
    out->count = count;
    return 0;
}

// Reads exactly out->count payload bytes and checks nothing follows. The buffer
// grows with the data actually present, so a header that claims a huge size
// cannot make us allocate more than the file really holds (plus doubling slack).
static int read_payload(ByteSource *src, IdxArray *out, char *err, size_t errlen) {
    const char *path = src->path;
    size_t header_size = 4 + 4 * (size_t)out->rank;
    size_t count = out->count;
    size_t capacity = count < ((size_t)1 << 20) ? count : ((size_t)1 << 20);
    uint8_t *data = malloc(capacity);
    if (!data) return set_error(err, errlen, "%s: out of memory for %zu bytes", path, capacity);
    size_t have = 0;
    while (have < count) {
        if (have == capacity) {
            size_t bigger = (capacity > count / 2) ? count : capacity * 2;
            if (check_host_memory(path, bigger, err, errlen) != 0) {   // (a gzip's payload can be any size)
                free(data);
                return -1;
            }
            uint8_t *grown = realloc(data, bigger);
            if (!grown) {
                free(data);
                return set_error(err, errlen, "%s: out of memory for %zu bytes", path, bigger);
            }
            data = grown;
            capacity = bigger;
        }
        size_t want = capacity - have;
        size_t got;
        if (source_read(src, data + have, want, &got, err, errlen) != 0) {
            free(data);
            return -1;
        }
        have += got;
        if (got < want) break;   // short read: the data ran out
    }
    if (have < count) {
        free(data);
        return set_error(err, errlen, "%s: truncated at byte %zu: header says %zu bytes of data, found %zu",
                         path, header_size + have, count, have);
    }
    // anything after the payload is an error (this read also lets zlib verify
    // the gzip trailer's CRC and length)
    uint8_t extra;
    size_t got;
    if (source_read(src, &extra, 1, &got, err, errlen) != 0) {
        free(data);
        return -1;
    }
    if (got != 0 && src->gzip) {   // inflate on to the stream's end first: damage there is the cause
        uint8_t scratch[4096];
        do {
            if (source_read(src, scratch, sizeof scratch, &got, err, errlen) != 0) {
                free(data);
                return -1;
            }
        } while (got == sizeof scratch);
        free(data);
        return set_error(err, errlen,
                         "%s: trailing data at decompressed byte %zu: header says %zu bytes of data, but the "
                         "gzip stream holds more", path, header_size + count, count);
    }
    if (got != 0) {
        free(data);
        return set_error(err, errlen,
                         "%s: trailing data at byte %zu: header says %zu bytes of data, but the "
                         "file continues past them", path, header_size + count, count);
    }
    out->data = data;
    return 0;
}

int idx_read(const char *path, IdxArray *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    ByteSource src;
    if (source_open(&src, path, err, errlen) != 0) return -1;
    IdxArray result;
    memset(&result, 0, sizeof result);
    int status = read_header(&src, &result, err, errlen);
    if (status == 0) status = read_payload(&src, &result, err, errlen);
    source_close(&src);
    if (status != 0) return -1;
    *out = result;
    return 0;
}

void idx_free(IdxArray *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

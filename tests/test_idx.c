// test_idx.c: tests for the IDX reader (src/idx.c) and the dataset loader
// (src/dataset.c). Fixtures are generated at run time in a mkdtemp directory:
// good plain and gzip files, every kind of corruption, and tiny fake datasets.
// The real MNIST / Fashion-MNIST files are checked when data/ holds them.
#include "test.h"
#include "cuvae/common.h"
#include "cuvae/config.h"
#include "cuvae/dataset.h"
#include "cuvae/eval.h"
#include "cuvae/idx.h"
#include "cuvae/rng.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char fixture_dir[256];

// ----------------------------------------------------------------------------
// fixture helpers

// Builds "<fixture_dir>/<name>" into out.
static void fixture_path(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", fixture_dir, name);
}

static void write_bytes(const char *path, const uint8_t *bytes, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "test_idx: cannot write fixture %s\n", path);
        exit(1);
    }
    if (n > 0 && fwrite(bytes, 1, n, f) != n) {
        fprintf(stderr, "test_idx: short write to fixture %s\n", path);
        exit(1);
    }
    fclose(f);
}

static void write_gzip(const char *path, const uint8_t *bytes, size_t n) {
    gzFile gz = gzopen(path, "wb9");
    if (!gz) {
        fprintf(stderr, "test_idx: cannot write gzip fixture %s\n", path);
        exit(1);
    }
    if (n > 0 && gzwrite(gz, bytes, (unsigned)n) != (int)n) {
        fprintf(stderr, "test_idx: short gzwrite to fixture %s\n", path);
        exit(1);
    }
    gzclose(gz);
}

// Reads a whole fixture back (to corrupt gzip files byte by byte).
static uint8_t *read_bytes(const char *path, size_t *n) {
    char err[256];
    char *text = read_text_file(path, n, err, sizeof err);
    if (!text) {
        fprintf(stderr, "test_idx: %s\n", err);
        exit(1);
    }
    return (uint8_t *)text;
}

// Serializes an IDX file: magic (0, 0, type, rank), big-endian dims, payload.
// Returns a malloc'd buffer of *size bytes.
static uint8_t *build_idx(uint8_t type, int rank, const uint32_t *dims, const uint8_t *payload,
                          size_t payload_size, size_t *size) {
    *size = 4 + 4 * (size_t)rank + payload_size;
    uint8_t *buf = malloc(*size);
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = type;
    buf[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        buf[4 + 4 * i + 0] = (uint8_t)(dims[i] >> 24);
        buf[4 + 4 * i + 1] = (uint8_t)(dims[i] >> 16);
        buf[4 + 4 * i + 2] = (uint8_t)(dims[i] >> 8);
        buf[4 + 4 * i + 3] = (uint8_t)dims[i];
    }
    if (payload_size > 0) memcpy(buf + 4 + 4 * rank, payload, payload_size);
    return buf;
}

// Writes an IDX file (plain or gzip) to `path`.
static void write_idx(const char *path, int gzip, uint8_t type, int rank, const uint32_t *dims,
                      const uint8_t *payload, size_t payload_size) {
    size_t size;
    uint8_t *buf = build_idx(type, rank, dims, payload, payload_size, &size);
    if (gzip) write_gzip(path, buf, size);
    else write_bytes(path, buf, size);
    free(buf);
}

// Deterministic, poorly compressible bytes (so gzip fixtures have real deflate data).
static void fill_pseudo_random(uint8_t *out, size_t n, uint32_t seed) {
    uint32_t state = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        out[i] = (uint8_t)(state >> 24);
    }
}

// Reads `path` expecting failure; checks the message names the file and
// contains each of the (NULL-terminated) fragments.
static void expect_idx_error(const char *path, const char *fragment1, const char *fragment2,
                             const char *file, int line) {
    IdxArray a;
    char err[512] = "";
    int rc = idx_read(path, &a, err, sizeof err);
    test_check(rc == -1, file, line, "idx_read(%s) returned %d, expected -1", path, rc);
    test_check(a.data == NULL, file, line, "failed idx_read left data allocated");
    test_check(strstr(err, path) != NULL, file, line, "error does not name the file: \"%s\"", err);
    test_check(strchr(err, '\n') == NULL, file, line, "error is not one line: \"%s\"", err);
    if (fragment1)
        test_check(strstr(err, fragment1) != NULL, file, line, "error lacks \"%s\": \"%s\"",
                   fragment1, err);
    if (fragment2)
        test_check(strstr(err, fragment2) != NULL, file, line, "error lacks \"%s\": \"%s\"",
                   fragment2, err);
    if (rc == 0) idx_free(&a);
}
#define EXPECT_IDX_ERROR(path, f1, f2) expect_idx_error((path), (f1), (f2), __FILE__, __LINE__)

// ----------------------------------------------------------------------------
// IDX reader: good files

static const uint32_t dims_2x3x4[3] = {2, 3, 4};

static void check_2x3x4(const char *path) {
    IdxArray a;
    char err[512] = "";
    int rc = idx_read(path, &a, err, sizeof err);
    CHECK(rc == 0, "idx_read(%s) failed: %s", path, err);
    if (rc != 0) return;
    CHECK(a.rank == 3, "rank %d", a.rank);
    CHECK(a.dims[0] == 2 && a.dims[1] == 3 && a.dims[2] == 4, "dims %d %d %d", a.dims[0],
          a.dims[1], a.dims[2]);
    CHECK(a.count == 24, "count %zu", a.count);
    int same = 1;
    for (int i = 0; i < 24; i++) same &= (a.data[i] == (uint8_t)(i * 11));
    CHECK(same, "payload bytes differ");
    idx_free(&a);
    CHECK(a.data == NULL && a.count == 0, "idx_free did not clear the array");
}

static void payload_2x3x4(uint8_t *out) {
    for (int i = 0; i < 24; i++) out[i] = (uint8_t)(i * 11);
}

static void test_good_plain(void) {
    char path[512];
    fixture_path(path, sizeof path, "good.idx");
    uint8_t payload[24];
    payload_2x3x4(payload);
    write_idx(path, 0, 0x08, 3, dims_2x3x4, payload, 24);
    check_2x3x4(path);
}

static void test_good_gzip(void) {
    char path[512];
    uint8_t payload[24];
    payload_2x3x4(payload);
    fixture_path(path, sizeof path, "good.idx.gz");
    write_idx(path, 1, 0x08, 3, dims_2x3x4, payload, 24);
    check_2x3x4(path);
    // gzip is detected by the magic, not the name
    fixture_path(path, sizeof path, "gzip-without-suffix.idx");
    write_idx(path, 1, 0x08, 3, dims_2x3x4, payload, 24);
    check_2x3x4(path);
}

static void test_good_rank1_and_rank4(void) {
    char path[512];
    fixture_path(path, sizeof path, "labels.idx");
    uint8_t labels[7] = {5, 0, 4, 1, 9, 2, 1};
    uint32_t dims1[1] = {7};
    write_idx(path, 0, 0x08, 1, dims1, labels, 7);
    IdxArray a;
    char err[512] = "";
    int rc = idx_read(path, &a, err, sizeof err);
    CHECK(rc == 0, "rank-1 read failed: %s", err);
    if (rc == 0) {
        CHECK(a.rank == 1 && a.dims[0] == 7 && a.count == 7, "rank %d dims[0] %d count %zu",
              a.rank, a.dims[0], a.count);
        CHECK(memcmp(a.data, labels, 7) == 0, "label bytes differ");
        idx_free(&a);
    }

    fixture_path(path, sizeof path, "rank4.idx.gz");
    uint32_t dims4[4] = {2, 1, 3, 2};
    uint8_t payload[12];
    for (int i = 0; i < 12; i++) payload[i] = (uint8_t)(200 + i);
    write_idx(path, 1, 0x08, 4, dims4, payload, 12);
    rc = idx_read(path, &a, err, sizeof err);
    CHECK(rc == 0, "rank-4 read failed: %s", err);
    if (rc == 0) {
        CHECK(a.rank == 4 && a.count == 12 && a.dims[3] == 2, "rank %d count %zu", a.rank, a.count);
        CHECK(memcmp(a.data, payload, 12) == 0, "rank-4 bytes differ");
        idx_free(&a);
    }
}

static void test_larger_gzip_roundtrip(void) {
    // bigger than the reader's first buffer (1 MiB) so the growth path runs
    char path[512];
    fixture_path(path, sizeof path, "large.idx.gz");
    uint32_t dims[3] = {1500, 28, 28};
    size_t n = 1500 * 28 * 28;
    uint8_t *payload = malloc(n);
    fill_pseudo_random(payload, n, 7);
    write_idx(path, 1, 0x08, 3, dims, payload, n);
    IdxArray a;
    char err[512] = "";
    int rc = idx_read(path, &a, err, sizeof err);
    CHECK(rc == 0, "large gzip read failed: %s", err);
    if (rc == 0) {
        CHECK(a.count == n && memcmp(a.data, payload, n) == 0, "large payload differs");
        idx_free(&a);
    }
    free(payload);
}

// ----------------------------------------------------------------------------
// IDX reader: header corruption

static void test_bad_magic(void) {
    char path[512];
    fixture_path(path, sizeof path, "bad-magic.idx");
    uint8_t payload[24] = {0};
    size_t size;
    uint8_t *buf = build_idx(0x08, 3, dims_2x3x4, payload, 24, &size);
    buf[1] = 0x01;
    write_bytes(path, buf, size);
    EXPECT_IDX_ERROR(path, "magic", "at byte 0");
    // the same damage inside a gzip file is reported the same way
    fixture_path(path, sizeof path, "bad-magic.idx.gz");
    write_gzip(path, buf, size);
    EXPECT_IDX_ERROR(path, "magic", "at byte 0");
    // a text file is not an IDX file
    fixture_path(path, sizeof path, "text.idx");
    write_bytes(path, (const uint8_t *)"hello world\n", 12);
    EXPECT_IDX_ERROR(path, "magic", "at byte 0");
    free(buf);
}

static void test_bad_type(void) {
    char path[512];
    fixture_path(path, sizeof path, "bad-type.idx");
    uint8_t payload[96] = {0};
    write_idx(path, 0, 0x0D, 3, dims_2x3x4, payload, 96);   // 0x0D = float32
    EXPECT_IDX_ERROR(path, "0x0d", "at byte 2");
    fixture_path(path, sizeof path, "bad-type-signed.idx");
    write_idx(path, 0, 0x09, 3, dims_2x3x4, payload, 24);   // 0x09 = signed byte
    EXPECT_IDX_ERROR(path, "0x09", "at byte 2");
}

static void test_bad_rank(void) {
    char path[512];
    uint8_t payload[24] = {0};
    fixture_path(path, sizeof path, "rank0.idx");
    write_idx(path, 0, 0x08, 0, NULL, payload, 1);
    EXPECT_IDX_ERROR(path, "rank 0", "at byte 3");

    fixture_path(path, sizeof path, "rank5.idx");
    uint32_t dims5[5] = {1, 2, 3, 2, 2};
    write_idx(path, 0, 0x08, 5, dims5, payload, 24);
    EXPECT_IDX_ERROR(path, "rank 5", "at byte 3");
}

static void test_zero_dim(void) {
    char path[512];
    fixture_path(path, sizeof path, "zero-dim.idx");
    uint32_t dims[3] = {3, 0, 2};
    write_idx(path, 0, 0x08, 3, dims, NULL, 0);
    EXPECT_IDX_ERROR(path, "dimension 1 is 0", "at byte 8");
}

static void test_huge_dims(void) {
    char path[512];
    uint8_t payload[10] = {0};
    // a dim above INT_MAX
    fixture_path(path, sizeof path, "dim-too-big.idx");
    uint32_t big[1] = {0x80000000u};
    write_idx(path, 0, 0x08, 1, big, payload, 10);
    EXPECT_IDX_ERROR(path, "too large", "at byte 4");
    // the element count overflows size_t: 2^31-1 cubed
    fixture_path(path, sizeof path, "count-overflow.idx");
    uint32_t overflow[4] = {0x7fffffffu, 0x7fffffffu, 0x7fffffffu, 2};
    write_idx(path, 0, 0x08, 4, overflow, payload, 10);
    EXPECT_IDX_ERROR(path, "overflow", "at byte 12");
    // a header claiming ~4.6e18 bytes over a 10-byte payload: must not try to
    // allocate that much, just report the truncation
    fixture_path(path, sizeof path, "claims-huge.idx");
    uint32_t huge[2] = {0x7fffffffu, 0x7fffffffu};
    write_idx(path, 0, 0x08, 2, huge, payload, 10);
    EXPECT_IDX_ERROR(path, "truncated at byte 22", "found 10");
    fixture_path(path, sizeof path, "claims-huge.idx.gz");
    write_idx(path, 1, 0x08, 2, huge, payload, 10);
    EXPECT_IDX_ERROR(path, "truncated at byte 22", "found 10");
}

static void test_truncated_header(void) {
    char path[512];
    size_t size;
    uint8_t payload[24] = {0};
    uint8_t *buf = build_idx(0x08, 3, dims_2x3x4, payload, 24, &size);
    // magic cut short
    fixture_path(path, sizeof path, "header-2-bytes.idx");
    write_bytes(path, buf, 2);
    EXPECT_IDX_ERROR(path, "truncated header", "at byte 2");
    // dims cut short: 4 magic + 6 of the 12 dim bytes
    fixture_path(path, sizeof path, "header-10-bytes.idx");
    write_bytes(path, buf, 10);
    EXPECT_IDX_ERROR(path, "truncated header", "at byte 10");
    fixture_path(path, sizeof path, "header-10-bytes.idx.gz");
    write_gzip(path, buf, 10);
    EXPECT_IDX_ERROR(path, "truncated header", "at byte 10");
    free(buf);
}

static void test_empty_and_missing(void) {
    char path[512];
    fixture_path(path, sizeof path, "empty.idx");
    write_bytes(path, NULL, 0);
    EXPECT_IDX_ERROR(path, "empty", "at byte 0");
    fixture_path(path, sizeof path, "empty.idx.gz");
    write_gzip(path, NULL, 0);   // a valid gzip stream holding nothing
    EXPECT_IDX_ERROR(path, "empty", "at byte 0");
    fixture_path(path, sizeof path, "no-such-file.idx");
    EXPECT_IDX_ERROR(path, "cannot open", "No such file");
    // a directory is not a file
    fixture_path(path, sizeof path, "a-directory");
    mkdir(path, 0755);
    EXPECT_IDX_ERROR(path, NULL, NULL);
}

// ----------------------------------------------------------------------------
// IDX reader: payload size

static void test_truncated_payload(void) {
    char path[512];
    uint8_t payload[24];
    payload_2x3x4(payload);
    fixture_path(path, sizeof path, "truncated.idx");
    write_idx(path, 0, 0x08, 3, dims_2x3x4, payload, 10);   // header 16 bytes + 10 of 24
    EXPECT_IDX_ERROR(path, "truncated at byte 26", "header says 24 bytes of data, found 10");
    fixture_path(path, sizeof path, "truncated.idx.gz");
    write_idx(path, 1, 0x08, 3, dims_2x3x4, payload, 10);
    EXPECT_IDX_ERROR(path, "truncated at byte 26", "header says 24 bytes of data, found 10");
    fixture_path(path, sizeof path, "no-payload.idx");
    write_idx(path, 0, 0x08, 3, dims_2x3x4, payload, 0);
    EXPECT_IDX_ERROR(path, "truncated at byte 16", "found 0");
    fixture_path(path, sizeof path, "one-short.idx");
    write_idx(path, 0, 0x08, 3, dims_2x3x4, payload, 23);
    EXPECT_IDX_ERROR(path, "truncated at byte 39", "found 23");
}

static void test_trailing_bytes(void) {
    char path[512];
    uint8_t payload[27];
    payload_2x3x4(payload);
    payload[24] = payload[25] = payload[26] = 0xAB;
    fixture_path(path, sizeof path, "trailing.idx");
    write_idx(path, 0, 0x08, 3, dims_2x3x4, payload, 27);
    EXPECT_IDX_ERROR(path, "trailing", "at byte 40");
    fixture_path(path, sizeof path, "trailing.idx.gz");
    write_idx(path, 1, 0x08, 3, dims_2x3x4, payload, 25);
    EXPECT_IDX_ERROR(path, "trailing", "at decompressed byte 40");
}

static void test_every_prefix_fails(void) {
    // cutting a good file anywhere must give an error, never a crash or success
    uint8_t payload[24];
    payload_2x3x4(payload);
    size_t size;
    uint8_t *buf = build_idx(0x08, 3, dims_2x3x4, payload, 24, &size);
    char path[512];
    fixture_path(path, sizeof path, "prefix.idx");
    for (size_t cut = 0; cut < size; cut++) {
        write_bytes(path, buf, cut);
        EXPECT_IDX_ERROR(path, "at byte", NULL);
    }
    free(buf);
}

// ----------------------------------------------------------------------------
// IDX reader: damaged gzip

// Writes payload as a gzip IDX file of uint8 dims (rank 3) at the fixture `name` and returns
// the compressed bytes (*gz_size of them; the caller frees them), to damage.
static uint8_t *gzip_idx_fixture(const char *name, const uint32_t dims[3], const uint8_t *payload, size_t n,
                                 size_t *gz_size) {
    char path[512];
    fixture_path(path, sizeof path, name);
    write_idx(path, 1, 0x08, 3, dims, payload, n);
    return read_bytes(path, gz_size);
}

static void test_truncated_gzip(void) {
    char path[512];
    const uint32_t dims[3] = {10, 20, 20};
    uint8_t payload[4000];
    fill_pseudo_random(payload, sizeof payload, 1);
    size_t gz_size;
    uint8_t *gz = gzip_idx_fixture("source.idx.gz", dims, payload, sizeof payload, &gz_size);

    // cut in the middle of the deflate data: the error points at the end of
    // the compressed file
    char where[128];
    fixture_path(path, sizeof path, "cut-half.idx.gz");
    write_bytes(path, gz, gz_size / 2);
    snprintf(where, sizeof where, "at byte %zu of the compressed file", gz_size / 2);
    EXPECT_IDX_ERROR(path, "gzip stream truncated", where);
    // all the data present, only the 8-byte trailer (CRC + length) missing
    fixture_path(path, sizeof path, "cut-trailer.idx.gz");
    write_bytes(path, gz, gz_size - 8);
    snprintf(where, sizeof where, "at byte %zu of the compressed file", gz_size - 8);
    EXPECT_IDX_ERROR(path, "gzip stream truncated", where);
    // only the gzip magic
    fixture_path(path, sizeof path, "gzip-magic-only.idx.gz");
    write_bytes(path, gz, 2);
    EXPECT_IDX_ERROR(path, "gzip", NULL);
    // every cut point of the compressed file fails cleanly
    fixture_path(path, sizeof path, "cut-any.idx.gz");
    for (size_t cut = 1; cut < gz_size; cut += 37) {
        write_bytes(path, gz, cut);
        EXPECT_IDX_ERROR(path, "at byte", NULL);
    }
    free(gz);
}

// Regression: a file larger than the decoder's buffer whose 8-byte trailer is
// cut (all deflate data present), or with bytes after the gzip stream, or a
// second gzip member, loaded silently with gzread.
static void test_gzip_trailer_and_trailing_data(void) {
    char path[512];
    const uint32_t dims[3] = {1000, 28, 28};
    size_t n = 1000 * 28 * 28;
    uint8_t *payload = malloc(n);
    fill_pseudo_random(payload, n, 9);
    size_t gz_size;
    uint8_t *gz = gzip_idx_fixture("big-source.idx.gz", dims, payload, n, &gz_size);
    free(payload);
    CHECK(gz_size > (1u << 17) + 8, "fixture too small (%zu bytes) to cross the decoder's buffer", gz_size);
    char where[128];
    for (size_t cut = 1; cut <= 8; cut++) {
        fixture_path(path, sizeof path, "big-cut-trailer.idx.gz");
        write_bytes(path, gz, gz_size - cut);
        snprintf(where, sizeof where, "at byte %zu of the compressed file", gz_size - cut);
        EXPECT_IDX_ERROR(path, "gzip stream truncated", where);
    }
    uint8_t *longer = malloc(2 * gz_size);
    memcpy(longer, gz, gz_size);
    memcpy(longer + gz_size, "junk\n", 5);
    fixture_path(path, sizeof path, "junk-after-stream.idx.gz");
    write_bytes(path, longer, gz_size + 5);
    snprintf(where, sizeof where, "trailing data at byte %zu of the compressed file", gz_size);
    EXPECT_IDX_ERROR(path, where, "follow the end of the gzip stream");
    memcpy(longer + gz_size, gz, gz_size);
    fixture_path(path, sizeof path, "two-members.idx.gz");
    write_bytes(path, longer, 2 * gz_size);
    EXPECT_IDX_ERROR(path, where, NULL);
    free(longer);
    free(gz);
}

static void test_corrupt_gzip(void) {
    char path[512];
    const uint32_t dims[3] = {10, 20, 20};
    uint8_t payload[4000];
    fill_pseudo_random(payload, sizeof payload, 2);
    size_t gz_size;
    uint8_t *gz = gzip_idx_fixture("source2.idx.gz", dims, payload, sizeof payload, &gz_size);

    // flip bytes in the middle of stored (incompressible) data: caught by the CRC
    uint8_t *bad = malloc(gz_size);
    memcpy(bad, gz, gz_size);
    for (size_t i = gz_size / 2; i < gz_size / 2 + 8; i++) bad[i] ^= 0xFF;
    fixture_path(path, sizeof path, "flipped.idx.gz");
    write_bytes(path, bad, gz_size);
    EXPECT_IDX_ERROR(path, "corrupt gzip stream", "at byte");

    // a wrong CRC in the trailer
    memcpy(bad, gz, gz_size);
    bad[gz_size - 8] ^= 0x01;
    fixture_path(path, sizeof path, "bad-crc.idx.gz");
    write_bytes(path, bad, gz_size);
    EXPECT_IDX_ERROR(path, "corrupt gzip stream", "incorrect data check");

    // a wrong compression method in the gzip header
    memcpy(bad, gz, gz_size);
    bad[2] = 7;
    fixture_path(path, sizeof path, "bad-method.idx.gz");
    write_bytes(path, bad, gz_size);
    EXPECT_IDX_ERROR(path, "corrupt gzip stream", "at byte 4 of the compressed file");
    free(bad);
    free(gz);

    // damage the first deflate block header (right after the 10-byte gzip
    // header): block type 3 is reserved, so inflate itself objects
    uint8_t sparse[4000];
    fill_pseudo_random(sparse, sizeof sparse, 3);
    for (int i = 0; i < 4000; i++) sparse[i] = (uint8_t)(sparse[i] % 6 == 0 ? sparse[i] : 0);
    gz = gzip_idx_fixture("source3.idx.gz", dims, sparse, sizeof sparse, &gz_size);
    gz[10] |= 0x06;
    fixture_path(path, sizeof path, "bad-block-type.idx.gz");
    write_bytes(path, gz, gz_size);
    EXPECT_IDX_ERROR(path, "corrupt gzip stream", "invalid block type");
    free(gz);
}

static void test_random_damage_never_crashes(void) {
    // random byte damage to small plain and gzip files: idx_read either
    // succeeds with a consistent array or fails with a message naming the file
    uint8_t payload[24];
    payload_2x3x4(payload);
    size_t plain_size;
    uint8_t *plain = build_idx(0x08, 3, dims_2x3x4, payload, 24, &plain_size);
    char gz_path[512], path[512];
    fixture_path(gz_path, sizeof gz_path, "damage-source.idx.gz");
    write_gzip(gz_path, plain, plain_size);
    size_t gz_size;
    uint8_t *gz = read_bytes(gz_path, &gz_size);
    fixture_path(path, sizeof path, "damaged.idx");

    uint32_t state = 12345;
    int bad_results = 0;
    for (int trial = 0; trial < 600; trial++) {
        int use_gzip = trial & 1;
        const uint8_t *source = use_gzip ? gz : plain;
        size_t size = use_gzip ? gz_size : plain_size;
        uint8_t buf[256];
        memcpy(buf, source, size);
        int flips = 1 + trial % 4;
        for (int k = 0; k < flips; k++) {
            state = state * 1664525u + 1013904223u;
            size_t at = (state >> 8) % size;
            buf[at] ^= (uint8_t)(1 + (state >> 24) % 255);
        }
        state = state * 1664525u + 1013904223u;
        size_t length = (trial % 3 == 0) ? (state >> 8) % (size + 1) : size;
        write_bytes(path, buf, length);
        IdxArray a;
        char err[512] = "";
        int rc = idx_read(path, &a, err, sizeof err);
        if (rc == 0) {
            size_t product = 1;
            for (int i = 0; i < a.rank; i++) product *= (size_t)a.dims[i];
            if (a.rank < 1 || a.rank > IDX_MAX_RANK || product != a.count || !a.data) bad_results++;
            idx_free(&a);
        } else if (rc != -1 || strstr(err, path) == NULL || a.data != NULL) {
            bad_results++;
        }
    }
    CHECK(bad_results == 0, "%d damaged files gave an inconsistent result", bad_results);
    free(plain);
    free(gz);
}

// ----------------------------------------------------------------------------
// dataset loader on tiny fake datasets

#define FAKE_TRAIN 5
#define FAKE_TEST 3
#define FAKE_SIDE 4
#define FAKE_DIM (FAKE_SIDE * FAKE_SIDE)

static const uint8_t fake_train_labels[FAKE_TRAIN] = {3, 1, 4, 1, 5};
static const uint8_t fake_test_labels[FAKE_TEST] = {9, 2, 6};

static uint8_t fake_pixel(int split, int example, int pixel) {
    return (uint8_t)((split * 101 + example * 37 + pixel * 16 + 1) % 256);
}

// Options for building a fake dataset directory (all zero = a good one).
typedef struct {
    int train_labels_count;   // 0 = FAKE_TRAIN
    int image_rank;           // 0 = 3
    int bad_label;            // put label 10 into the test labels
    const char *skip_file;    // leave this file out
} FakeOptions;

// Writes the four files into <fixture_dir>/<name>: train files gzipped, test
// files plain, so both lookups (NAME.gz, then NAME) are exercised.
static void make_fake_dataset(const char *name, FakeOptions opt, char *dir_out, size_t dir_size) {
    fixture_path(dir_out, dir_size, name);
    mkdir(dir_out, 0755);
    char path[1024];
    for (int split = 0; split < 2; split++) {
        int n = split == 0 ? FAKE_TRAIN : FAKE_TEST;
        int gzip = split == 0;
        const char *prefix = split == 0 ? "train" : "t10k";
        uint8_t images[FAKE_TRAIN * FAKE_DIM];
        for (int e = 0; e < n; e++)
            for (int p = 0; p < FAKE_DIM; p++) images[e * FAKE_DIM + p] = fake_pixel(split, e, p);
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte%s", dir_out, prefix, gzip ? ".gz" : "");
        if (!opt.skip_file || strstr(path, opt.skip_file) == NULL) {
            if (opt.image_rank == 2) {
                uint32_t dims[2] = {(uint32_t)n, FAKE_DIM};
                write_idx(path, gzip, 0x08, 2, dims, images, (size_t)n * FAKE_DIM);
            } else {
                uint32_t dims[3] = {(uint32_t)n, FAKE_SIDE, FAKE_SIDE};
                write_idx(path, gzip, 0x08, 3, dims, images, (size_t)n * FAKE_DIM);
            }
        }
        uint8_t labels[FAKE_TRAIN];
        memcpy(labels, split == 0 ? fake_train_labels : fake_test_labels, (size_t)n);
        if (split == 1 && opt.bad_label) labels[1] = 10;
        int label_count = n;
        if (split == 0 && opt.train_labels_count) label_count = opt.train_labels_count;
        uint32_t label_dims[1] = {(uint32_t)label_count};
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte%s", dir_out, prefix, gzip ? ".gz" : "");
        if (!opt.skip_file || strstr(path, opt.skip_file) == NULL)
            write_idx(path, gzip, 0x08, 1, label_dims, labels, (size_t)label_count);
    }
}

static void fake_config(Config *cfg, const char *dir) {
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->data.dataset, "mnist");
    snprintf(cfg->data.dir, sizeof cfg->data.dir, "%s", dir);
    cfg->data.binarize = BINARIZE_NONE;
    cfg->model.input_dim = FAKE_DIM;
    cfg->train.seed = 42;
}

static int count_pixel_mismatches(const Dataset *d, int split) {
    int bad = 0;
    for (int e = 0; e < d->n; e++)
        for (int p = 0; p < FAKE_DIM; p++) bad += d->images[e * FAKE_DIM + p] != fake_pixel(split, e, p);
    return bad;
}

static void test_dataset_load_fake(void) {
    char dir[400];   // leaves room in cfg.data.dir for the trailing slash below
    FakeOptions opt = {0};
    make_fake_dataset("fake-good", opt, dir, sizeof dir);
    Config cfg;
    fake_config(&cfg, dir);
    Dataset train, test;
    char err[512] = "";
    int rc = dataset_load(&cfg, &train, &test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc != 0) return;
    CHECK(train.n == FAKE_TRAIN && test.n == FAKE_TEST, "n %d / %d", train.n, test.n);
    CHECK(train.rows == FAKE_SIDE && train.cols == FAKE_SIDE && train.dim == FAKE_DIM,
          "train shape %dx%d dim %d", train.rows, train.cols, train.dim);
    CHECK(test.rows == FAKE_SIDE && test.cols == FAKE_SIDE && test.dim == FAKE_DIM,
          "test shape %dx%d dim %d", test.rows, test.cols, test.dim);
    CHECK(train.n_classes == 10 && test.n_classes == 10, "n_classes %d / %d", train.n_classes,
          test.n_classes);
    CHECK(memcmp(train.labels, fake_train_labels, FAKE_TRAIN) == 0, "train labels differ");
    CHECK(memcmp(test.labels, fake_test_labels, FAKE_TEST) == 0, "test labels differ");
    CHECK(count_pixel_mismatches(&train, 0) == 0, "train pixels differ");
    CHECK(count_pixel_mismatches(&test, 1) == 0, "test pixels differ");
    dataset_free(&train);
    dataset_free(&test);
    CHECK(train.images == NULL && train.labels == NULL && train.n == 0, "dataset_free did not clear");

    // fashion-mnist uses the same file names; a trailing slash on dir is fine
    strcpy(cfg.data.dataset, "fashion-mnist");
    snprintf(cfg.data.dir, sizeof cfg.data.dir, "%s/", dir);
    rc = dataset_load(&cfg, &train, &test, err, sizeof err);
    CHECK(rc == 0, "fashion-mnist name failed: %s", err);
    if (rc == 0) {
        CHECK(train.n == FAKE_TRAIN && test.n == FAKE_TEST, "n %d / %d", train.n, test.n);
        dataset_free(&train);
        dataset_free(&test);
    }
}

static void test_dataset_limits(void) {
    char dir[512];
    FakeOptions opt = {0};
    make_fake_dataset("fake-limits", opt, dir, sizeof dir);
    Config cfg;
    fake_config(&cfg, dir);
    cfg.data.train_limit = 2;
    cfg.data.test_limit = 100;   // more than there are: all of them
    Dataset train, test;
    char err[512] = "";
    int rc = dataset_load(&cfg, &train, &test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc != 0) return;
    CHECK(train.n == 2, "train limit: n %d", train.n);
    CHECK(test.n == FAKE_TEST, "test limit above size: n %d", test.n);
    CHECK(memcmp(train.labels, fake_train_labels, 2) == 0, "limited labels are not the first ones");
    CHECK(count_pixel_mismatches(&train, 0) == 0, "limited pixels are not the first ones");
    dataset_free(&train);
    dataset_free(&test);

    cfg.data.train_limit = 0;
    cfg.data.test_limit = 1;
    rc = dataset_load(&cfg, &train, &test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc != 0) return;
    CHECK(train.n == FAKE_TRAIN && test.n == 1, "limits 0/1: n %d / %d", train.n, test.n);
    CHECK(test.labels[0] == fake_test_labels[0], "test label %d", test.labels[0]);
    dataset_free(&train);
    dataset_free(&test);
}

// Loads expecting failure; checks the message holds both fragments and the
// outputs are left empty.
static void expect_dataset_error(const Config *cfg, const char *fragment1, const char *fragment2,
                                 const char *file, int line) {
    Dataset train, test;
    char err[512] = "";
    int rc = dataset_load(cfg, &train, &test, err, sizeof err);
    test_check(rc == -1, file, line, "dataset_load returned %d, expected -1", rc);
    test_check(strchr(err, '\n') == NULL, file, line, "error is not one line: \"%s\"", err);
    if (fragment1)
        test_check(strstr(err, fragment1) != NULL, file, line, "error lacks \"%s\": \"%s\"",
                   fragment1, err);
    if (fragment2)
        test_check(strstr(err, fragment2) != NULL, file, line, "error lacks \"%s\": \"%s\"",
                   fragment2, err);
    test_check(train.images == NULL && test.images == NULL, file, line,
               "failed dataset_load left images allocated");
    if (rc == 0) {
        dataset_free(&train);
        dataset_free(&test);
    }
}
#define EXPECT_DATASET_ERROR(cfg, f1, f2) expect_dataset_error((cfg), (f1), (f2), __FILE__, __LINE__)

static void test_dataset_errors(void) {
    char dir[512], expected[1024];
    Config cfg;

    FakeOptions mismatch = {0};
    mismatch.train_labels_count = 4;
    make_fake_dataset("fake-count-mismatch", mismatch, dir, sizeof dir);
    fake_config(&cfg, dir);
    snprintf(expected, sizeof expected, "%s/train-labels-idx1-ubyte.gz: has 4 labels", dir);
    EXPECT_DATASET_ERROR(&cfg, expected, "has 5 images");

    FakeOptions good = {0};
    make_fake_dataset("fake-dim", good, dir, sizeof dir);
    fake_config(&cfg, dir);
    cfg.model.input_dim = 784;
    snprintf(expected, sizeof expected, "%s/train-images-idx3-ubyte.gz", dir);
    EXPECT_DATASET_ERROR(&cfg, expected, "model.input_dim is 784");

    FakeOptions missing = {0};
    missing.skip_file = "t10k-labels";
    make_fake_dataset("fake-missing", missing, dir, sizeof dir);
    fake_config(&cfg, dir);
    snprintf(expected, sizeof expected, "%s/t10k-labels-idx1-ubyte(.gz): not found", dir);
    EXPECT_DATASET_ERROR(&cfg, expected, "make data");

    fixture_path(dir, sizeof dir, "no-such-dataset-dir");
    fake_config(&cfg, dir);
    snprintf(expected, sizeof expected, "%s/train-images-idx3-ubyte(.gz): not found", dir);
    EXPECT_DATASET_ERROR(&cfg, expected, "make data");

    FakeOptions bad_label = {0};
    bad_label.bad_label = 1;
    make_fake_dataset("fake-bad-label", bad_label, dir, sizeof dir);
    fake_config(&cfg, dir);
    snprintf(expected, sizeof expected, "%s/t10k-labels-idx1-ubyte", dir);
    EXPECT_DATASET_ERROR(&cfg, expected, "label 10 of example 1 at byte 9");

    FakeOptions rank2 = {0};
    rank2.image_rank = 2;
    make_fake_dataset("fake-rank2", rank2, dir, sizeof dir);
    fake_config(&cfg, dir);
    EXPECT_DATASET_ERROR(&cfg, "train-images-idx3-ubyte.gz", "rank 2");

    make_fake_dataset("fake-name", good, dir, sizeof dir);
    fake_config(&cfg, dir);
    strcpy(cfg.data.dataset, "cifar10");
    EXPECT_DATASET_ERROR(&cfg, "data.dataset", "cifar10");

    // a damaged file's own error comes through
    make_fake_dataset("fake-truncated", good, dir, sizeof dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    uint32_t dims[3] = {FAKE_TEST, FAKE_SIDE, FAKE_SIDE};
    uint8_t images[FAKE_TEST * FAKE_DIM] = {0};
    write_idx(path, 0, 0x08, 3, dims, images, 20);
    fake_config(&cfg, dir);
    EXPECT_DATASET_ERROR(&cfg, path, "truncated at byte 36");

    // the right number of pixels in another shape: 2 x 8 where the model reads 4 x 4
    make_fake_dataset("fake-shape", good, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    uint32_t wide[3] = {FAKE_TRAIN, 2, 8};
    uint8_t train_images[FAKE_TRAIN * FAKE_DIM] = {0};
    write_idx(path, 1, 0x08, 3, wide, train_images, sizeof train_images);
    fake_config(&cfg, dir);
    EXPECT_DATASET_ERROR(&cfg, path, "images are 2x8, but the model reads model.input_dim 16 as (1, 4, 4) images");

    // a flat (non-square) input: train 2 x 6, test 6 x 2
    make_fake_dataset("fake-flat", good, dir, sizeof dir);
    uint32_t train_dims[3] = {FAKE_TRAIN, 2, 6}, test_dims[3] = {FAKE_TEST, 6, 2};
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", dir);
    write_idx(path, 1, 0x08, 3, train_dims, train_images, FAKE_TRAIN * 12);
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte", dir);
    write_idx(path, 0, 0x08, 3, test_dims, images, FAKE_TEST * 12);
    fake_config(&cfg, dir);
    cfg.model.input_dim = 12;
    EXPECT_DATASET_ERROR(&cfg, "t10k-images-idx3-ubyte: images are 6x2", "the training images are 2x6");
}

// dataset_load with train NULL (eval, plot): the test split alone, the same bits as a full load
// (static binarization included), from a data.dir that holds no training files at all
static void test_dataset_test_split_alone(void) {
    char dir[512], no_train_dir[512];
    FakeOptions opt = {0};
    make_fake_dataset("fake-test-alone", opt, dir, sizeof dir);
    opt.skip_file = "/train-";   // both training files left out
    make_fake_dataset("fake-no-train", opt, no_train_dir, sizeof no_train_dir);
    Config cfg;
    fake_config(&cfg, dir);
    cfg.data.binarize = BINARIZE_STATIC;
    cfg.data.test_limit = FAKE_TEST - 1;
    Dataset train, test, alone;
    char err[512] = "";
    int rc = dataset_load(&cfg, &train, &test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc != 0) return;
    dataset_free(&train);
    fake_config(&cfg, no_train_dir);
    cfg.data.binarize = BINARIZE_STATIC;
    cfg.data.test_limit = FAKE_TEST - 1;
    rc = dataset_load(&cfg, NULL, &alone, err, sizeof err);
    CHECK(rc == 0, "test split alone, no training files: %s", err);
    if (rc == 0) {
        CHECK(alone.n == test.n && alone.dim == test.dim && alone.n_classes == test.n_classes, "n %d dim %d classes %d",
              alone.n, alone.dim, alone.n_classes);
        CHECK(alone.n == test.n && memcmp(alone.images, test.images, (size_t)test.n * FAKE_DIM) == 0 &&
                  memcmp(alone.labels, test.labels, (size_t)test.n) == 0,
              "the test split alone differs from a full load's");
        dataset_free(&alone);
    }
    dataset_free(&test);
    // the full load there names the missing training file; the shape check names the test file
    EXPECT_DATASET_ERROR(&cfg, "train-images-idx3-ubyte", "not found");
    cfg.model.input_shape[0] = 1;
    cfg.model.input_shape[1] = FAKE_SIDE + 1;
    cfg.model.input_shape[2] = FAKE_SIDE;
    memset(&alone, 0, sizeof alone);
    rc = dataset_load(&cfg, NULL, &alone, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "t10k-images-idx3-ubyte") && strstr(err, "model.input_shape") && alone.images == NULL,
          "input_shape against the test split alone: rc %d \"%s\"", rc, err);
}

static void test_dataset_static_binarization(void) {
    char dir[512];
    FakeOptions opt = {0};
    make_fake_dataset("fake-binarize", opt, dir, sizeof dir);
    Config cfg;
    fake_config(&cfg, dir);
    cfg.data.binarize = BINARIZE_STATIC;
    cfg.train.seed = 1234;
    Dataset a_train, a_test, b_train, b_test;
    char err[512] = "";
    int rc = dataset_load(&cfg, &a_train, &a_test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc != 0) return;
    rc = dataset_load(&cfg, &b_train, &b_test, err, sizeof err);
    CHECK(rc == 0, "second dataset_load failed: %s", err);
    if (rc != 0) {
        dataset_free(&a_train);
        dataset_free(&a_test);
        return;
    }
    int not_binary = 0;
    for (int i = 0; i < FAKE_TRAIN * FAKE_DIM; i++)
        not_binary += a_train.images[i] != 0 && a_train.images[i] != 255;
    for (int i = 0; i < FAKE_TEST * FAKE_DIM; i++)
        not_binary += a_test.images[i] != 0 && a_test.images[i] != 255;
    CHECK(not_binary == 0, "%d pixels are neither 0 nor 255", not_binary);
    CHECK(memcmp(a_train.images, b_train.images, FAKE_TRAIN * FAKE_DIM) == 0,
          "same seed gave different train binarization");
    CHECK(memcmp(a_test.images, b_test.images, FAKE_TEST * FAKE_DIM) == 0,
          "same seed gave different test binarization");
    CHECK(memcmp(a_train.labels, fake_train_labels, FAKE_TRAIN) == 0, "binarization touched labels");
    dataset_free(&b_train);
    dataset_free(&b_test);

    // another seed gives another draw
    cfg.train.seed = 99;
    rc = dataset_load(&cfg, &b_train, &b_test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc == 0) {
        CHECK(memcmp(a_train.images, b_train.images, FAKE_TRAIN * FAKE_DIM) != 0,
              "different seeds gave identical binarization");
        dataset_free(&b_train);
        dataset_free(&b_test);
    }

    // a train limit keeps the binarization of the first examples unchanged
    cfg.train.seed = 1234;
    cfg.data.train_limit = 2;
    rc = dataset_load(&cfg, &b_train, &b_test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc == 0) {
        CHECK(memcmp(a_train.images, b_train.images, 2 * FAKE_DIM) == 0,
              "train_limit changed the binarization of the kept examples");
        dataset_free(&b_train);
        dataset_free(&b_test);
    }
    // the static run's test set is the one a dynamic run with the same seed is evaluated on
    cfg.data.train_limit = 0;
    cfg.data.binarize = BINARIZE_NONE;
    rc = dataset_load(&cfg, &b_train, &b_test, err, sizeof err);
    CHECK(rc == 0, "dataset_load failed: %s", err);
    if (rc == 0) {
        cfg.data.binarize = BINARIZE_DYNAMIC;
        eval_prepare_test_set(&cfg, &b_test);
        CHECK(memcmp(a_test.images, b_test.images, FAKE_TEST * FAKE_DIM) == 0,
              "static and dynamic runs are tested on different binarizations");
        dataset_free(&b_train);
        dataset_free(&b_test);
    }
    dataset_free(&a_train);
    dataset_free(&a_test);
}

static void test_binarize_static_probability(void) {
    // pixel p becomes 255 with probability p / 255; 0 and 255 never change
    int n = 200000;
    Dataset d;
    memset(&d, 0, sizeof d);
    d.n = n;
    d.dim = 1;
    d.images = malloc((size_t)n);
    for (int i = 0; i < n; i++) d.images[i] = (i % 4 == 0) ? 0 : (i % 4 == 1) ? 255 : 64;
    dataset_binarize_static(&d, 7, 101);
    int zero_changed = 0, full_changed = 0, ones = 0, mid_total = 0;
    for (int i = 0; i < n; i++) {
        if (i % 4 == 0) zero_changed += d.images[i] != 0;
        else if (i % 4 == 1) full_changed += d.images[i] != 255;
        else {
            mid_total++;
            ones += d.images[i] == 255;
        }
    }
    CHECK(zero_changed == 0, "%d zero pixels became 255", zero_changed);
    CHECK(full_changed == 0, "%d 255 pixels became 0", full_changed);
    double fraction = (double)ones / mid_total;
    CHECK(test_close(fraction, 64.0 / 255.0, 0.0, 0.01), "P(255 | p=64) = %.4f, expected %.4f",
          fraction, 64.0 / 255.0);
    free(d.images);
}

// ----------------------------------------------------------------------------
// the real datasets, when `make data` has put them in data/

static int have_dataset_files(const char *dir) {
    const char *names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int i = 0; i < 4; i++) {
        char path[512], gz[520];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(gz, sizeof gz, "%s.gz", path);
        if (access(path, R_OK) != 0 && access(gz, R_OK) != 0) return 0;
    }
    return 1;
}

static void check_real_dataset(const char *name, const char *dir, int first_train_label,
                               int first_test_label) {
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.data.dataset, sizeof cfg.data.dataset, "%s", name);
    snprintf(cfg.data.dir, sizeof cfg.data.dir, "%s", dir);
    cfg.model.input_dim = 784;
    Dataset train, test;
    char err[512] = "";
    int rc = dataset_load(&cfg, &train, &test, err, sizeof err);
    CHECK(rc == 0, "loading %s failed: %s", dir, err);
    if (rc != 0) return;
    CHECK(train.n == 60000 && test.n == 10000, "%s: n %d / %d", name, train.n, test.n);
    CHECK(train.rows == 28 && train.cols == 28 && train.dim == 784, "%s: shape %dx%d", name,
          train.rows, train.cols);
    CHECK(train.labels[0] == first_train_label, "%s: first train label %d, expected %d", name,
          train.labels[0], first_train_label);
    CHECK(test.labels[0] == first_test_label, "%s: first test label %d, expected %d", name,
          test.labels[0], first_test_label);
    int max_pixel = 0;
    int class_counts[10] = {0};
    for (size_t i = 0; i < (size_t)train.n * train.dim; i++)
        if (train.images[i] > max_pixel) max_pixel = train.images[i];
    for (int i = 0; i < train.n; i++) class_counts[train.labels[i]]++;
    CHECK(max_pixel == 255, "%s: max pixel %d", name, max_pixel);
    int empty_classes = 0;
    for (int c = 0; c < 10; c++) empty_classes += class_counts[c] == 0;
    CHECK(empty_classes == 0, "%s: %d classes have no training examples", name, empty_classes);
    dataset_free(&train);
    dataset_free(&test);
}

// data.validation's split: the examples it holds out are the first round(fraction n) of the
// seeded permutation (rng_permutation on DATASET_VALIDATION_STREAM), not the first rows; the two
// parts keep the data's order, their images and labels together, and make up the whole; 0.5 of
// an odd count holds out at most half. Each example's index is written into its pixels.
static Dataset indexed_dataset(int n) {
    Dataset d;
    memset(&d, 0, sizeof d);
    d.n = n;
    d.channels = 1;
    d.rows = 1;
    d.cols = 2;
    d.dim = 2;
    d.n_classes = 10;
    d.images = xmalloc((size_t)n * 2);
    d.labels = xmalloc((size_t)n);
    for (int i = 0; i < n; i++) {
        d.images[2 * i] = (uint8_t)(i & 255);
        d.images[2 * i + 1] = (uint8_t)(i >> 8);
        d.labels[i] = (uint8_t)(i % 10);
    }
    return d;
}

static int example_index(const Dataset *d, int row) { return d->images[2 * row] | d->images[2 * row + 1] << 8; }

static void test_validation_split(void) {
    enum { N = 1000 };
    const uint64_t seed = 42;
    Dataset train = indexed_dataset(N), val;
    char err[256] = "";
    int rc = dataset_split_validation(&train, &val, 0.1, seed, err, sizeof err);
    CHECK(rc == 0, "split: %s", err);
    if (rc != 0) return;
    CHECK(val.n == 100 && train.n == N - 100, "0.1 of %d: %d held out, %d kept", N, val.n, train.n);
    int32_t perm[N];
    Rng rng;
    rng_init(&rng, seed, DATASET_VALIDATION_STREAM);
    rng_permutation(&rng, perm, N);
    bool held[N] = {false};
    for (int i = 0; i < val.n; i++) held[perm[i]] = true;
    int owner[N] = {0}, wrong = 0, order = 0, label = 0, beyond_first_rows = 0;   // owner: 1 held out, 2 kept
    for (int part = 0; part < 2; part++) {
        const Dataset *d = part == 0 ? &val : &train;
        for (int r = 0; r < d->n; r++) {
            const int i = example_index(d, r);
            if (i >= N || owner[i]) {
                wrong++;
                continue;
            }
            owner[i] = part + 1;
            wrong += held[i] != (part == 0);
            order += r > 0 && example_index(d, r - 1) >= i;
            label += d->labels[r] != i % 10;
            beyond_first_rows += part == 0 && i >= val.n;
        }
    }
    int missing = 0;
    for (int i = 0; i < N; i++) missing += owner[i] == 0;
    CHECK(wrong == 0 && missing == 0, "%d examples in the wrong part or twice, %d in neither", wrong, missing);
    CHECK(order == 0, "%d rows out of the data's order", order);
    CHECK(label == 0, "%d labels parted from their images", label);
    CHECK(beyond_first_rows > 50, "only %d held-out examples beyond the first %d rows", beyond_first_rows, val.n);
    dataset_free(&train);
    dataset_free(&val);
    Dataset three = indexed_dataset(3);
    rc = dataset_split_validation(&three, &val, 0.5, seed, err, sizeof err);
    CHECK(rc == 0 && val.n == 1 && three.n == 2, "0.5 of 3: rc %d, %d held out, %d kept (%s)", rc, val.n, three.n, err);
    dataset_free(&three);
    if (rc == 0) dataset_free(&val);
}

static void test_real_mnist(void) { check_real_dataset("mnist", "data/mnist", 5, 7); }
static void test_real_fashion_mnist(void) {
    check_real_dataset("fashion-mnist", "data/fashion-mnist", 9, 9);
}

int main(void) {
    snprintf(fixture_dir, sizeof fixture_dir, "/tmp/cuvae_test_idx_XXXXXX");
    if (!mkdtemp(fixture_dir)) {
        fprintf(stderr, "test_idx: mkdtemp failed\n");
        return 1;
    }

    test_run("idx_good_plain", test_good_plain);
    test_run("idx_good_gzip", test_good_gzip);
    test_run("idx_good_rank1_and_rank4", test_good_rank1_and_rank4);
    test_run("idx_larger_gzip_roundtrip", test_larger_gzip_roundtrip);
    test_run("idx_bad_magic", test_bad_magic);
    test_run("idx_bad_type", test_bad_type);
    test_run("idx_bad_rank", test_bad_rank);
    test_run("idx_zero_dim", test_zero_dim);
    test_run("idx_huge_dims", test_huge_dims);
    test_run("idx_truncated_header", test_truncated_header);
    test_run("idx_empty_and_missing", test_empty_and_missing);
    test_run("idx_truncated_payload", test_truncated_payload);
    test_run("idx_trailing_bytes", test_trailing_bytes);
    test_run("idx_every_prefix_fails", test_every_prefix_fails);
    test_run("idx_truncated_gzip", test_truncated_gzip);
    test_run("idx_corrupt_gzip", test_corrupt_gzip);
    test_run("idx_gzip_trailer_and_trailing_data", test_gzip_trailer_and_trailing_data);
    test_run("idx_random_damage_never_crashes", test_random_damage_never_crashes);
    test_run("dataset_load_fake", test_dataset_load_fake);
    test_run("dataset_limits", test_dataset_limits);
    test_run("dataset_errors", test_dataset_errors);
    test_run("dataset_test_split_alone", test_dataset_test_split_alone);
    test_run("dataset_static_binarization", test_dataset_static_binarization);
    test_run("dataset_binarize_static_probability", test_binarize_static_probability);
    test_run("validation_split", test_validation_split);

    if (have_dataset_files("data/mnist")) test_run("dataset_real_mnist", test_real_mnist);
    else test_skip("dataset_real_mnist", "data/mnist/ not present (run `make data`)");
    if (have_dataset_files("data/fashion-mnist"))
        test_run("dataset_real_fashion_mnist", test_real_fashion_mnist);
    else test_skip("dataset_real_fashion_mnist", "data/fashion-mnist/ not present (run `make data`)");

    // KEEP_FIXTURES=1 leaves the generated files in place for a look
    if (!getenv("KEEP_FIXTURES")) test_remove_tree(fixture_dir);
    return test_finish("test_idx");
}

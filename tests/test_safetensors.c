// test_safetensors.c: tests for src/safetensors.c: round trips (bit-exact values,
// escaped metadata), reading files assembled by hand, rejecting corrupt files
// with one-line errors that name the path, atomic writes, and (when python3 is
// available) an independent decode of our output.
#include "cuvae/safetensors.h"
#include "cuvae/common.h"
#include "test.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char test_dir[256];

// ----------------------------------------------------------------------------
// helpers

static void test_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", test_dir, name);
}

static void write_bytes(const char *path, const void *bytes, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    if (n) fwrite(bytes, 1, n, fp);
    fclose(fp);
}

// Whole file into a malloc'd buffer, or NULL.
static uint8_t *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *bytes = malloc((size_t)size + 1);
    *n = fread(bytes, 1, (size_t)size, fp);
    fclose(fp);
    return bytes;
}

// Number of entries in dir whose name contains ".tmp." (leftover temp files).
static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL)
        if (strstr(entry->d_name, ".tmp.")) count++;
    closedir(d);
    return count;
}

static uint32_t float_bits(float v) {
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return bits;
}

static float float_from_bits(uint32_t bits) {
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

// Little-endian byte writers that do not depend on the host byte order.
static void put_u64_le(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_f32_le(uint8_t *p, float v) {
    uint32_t bits = float_bits(v);
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(bits >> (8 * i));
}

// Independent writer: 8-byte length, the header text exactly as given (no
// padding added), then the data bytes.
static void write_raw_safetensors(const char *path, const char *header, const uint8_t *data,
                                  size_t data_size) {
    size_t header_len = strlen(header);
    size_t total = 8 + header_len + data_size;
    uint8_t *bytes = malloc(total);
    put_u64_le(bytes, header_len);
    memcpy(bytes + 8, header, header_len);
    if (data_size) memcpy(bytes + 8 + header_len, data, data_size);
    write_bytes(path, bytes, total);
    free(bytes);
}

// Reads path expecting failure: rc -1, a one-line message naming the path (and
// containing `what` when given), and a zeroed StFile.
static void expect_read_error(const char *path, const char *what, int line) {
    StFile f;
    char err[512] = "";
    int rc = safetensors_read(path, &f, err, sizeof err);
    test_check(rc == -1, __FILE__, line, "read of %s should fail, got rc %d", path, rc);
    test_check(strstr(err, path) != NULL, __FILE__, line, "error should name the path: '%s'", err);
    if (what)
        test_check(strstr(err, what) != NULL, __FILE__, line, "error should mention '%s': '%s'", what,
                   err);
    test_check(strchr(err, '\n') == NULL, __FILE__, line, "error should be one line: '%s'", err);
    test_check(f.buffer == NULL && f.tensors == NULL && f.meta == NULL && f.n_tensors == 0,
               __FILE__, line, "StFile should be empty after a failed read");
    if (rc == 0) safetensors_free(&f);
}

// A hand-assembled file with one tensor "x" of 2 floats and the given header.
static void expect_bad_header(const char *header, const char *what, int line) {
    char path[512];
    test_path(path, sizeof path, "bad_header.safetensors");
    uint8_t data[8];
    put_f32_le(data, 1.0f);
    put_f32_le(data + 4, 2.0f);
    write_raw_safetensors(path, header, data, sizeof data);
    expect_read_error(path, what, line);
}

// A header of one 8-byte tensor that must read: its one tensor is named name.
static void expect_good_header(const char *header, const char *name, const char *what, int line) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "good_header.safetensors");
    uint8_t data[8] = {0};
    write_raw_safetensors(path, header, data, sizeof data);
    StFile f;
    CHECK(safetensors_read(path, &f, err, sizeof err) == 0 && f.n_tensors == 1 &&
              strcmp(f.tensors[0].name, name) == 0,
          "line %d: %s: %s", line, what, err);
    if (f.n_tensors) safetensors_free(&f);
}

// ----------------------------------------------------------------------------
// the sample checkpoint used by several tests

#define SAMPLE_TENSORS 4
static float sample_weight[12], sample_bias[6], sample_mu[6], sample_out[5];
static const char *sample_config =
    "{\"model\": {\"latent\": 2, \"hidden\": [512, 256]},\n"
    "\t\"note\": \"say \\\"hi\\\" \\\\ back\\\\slash\"}\n"
    "unicode: \xc3\xa9 \xe6\xbc\xa2 \xf0\x9f\x98\x80, controls: \x01\x1f\x7f end";

static void fill_sample(StTensor *t, StMeta *meta) {
    for (int i = 0; i < 12; i++) sample_weight[i] = 0.37f * (float)i - 1.1f;
    uint32_t special_bits[6] = {
        0x80000000u,                 // -0.0
        0x7f800000u,                 // +inf
        0x7fc12345u,                 // NaN with a payload
        0x00000001u,                 // smallest denormal
        0x7f7fffffu,                 // FLT_MAX
        0xbf800000u,                 // -1.0
    };
    for (int i = 0; i < 6; i++) sample_bias[i] = float_from_bits(special_bits[i]);
    for (int i = 0; i < 6; i++) sample_mu[i] = 1.0f / (float)(i + 3);
    for (int i = 0; i < 5; i++) sample_out[i] = -(float)i * 1e-3f;

    memset(t, 0, sizeof(StTensor) * SAMPLE_TENSORS);
    strcpy(t[0].name, "encoder.0.weight");
    t[0].rank = 2; t[0].shape[0] = 3; t[0].shape[1] = 4; t[0].data = sample_weight;
    strcpy(t[1].name, "encoder.0.bias");
    t[1].rank = 1; t[1].shape[0] = 6; t[1].data = sample_bias;
    strcpy(t[2].name, "mu.weight");
    t[2].rank = 2; t[2].shape[0] = 2; t[2].shape[1] = 3; t[2].data = sample_mu;
    strcpy(t[3].name, "decoder.2.bias");
    t[3].rank = 1; t[3].shape[0] = 5; t[3].data = sample_out;

    memset(meta, 0, sizeof(StMeta) * 3);
    strcpy(meta[0].key, "config");
    meta[0].value = (char *)sample_config;
    strcpy(meta[1].key, "format");
    meta[1].value = "cuvae-1";
    strcpy(meta[2].key, "odd \"key\" \\ \n");
    meta[2].value = "";
}

static int write_sample(const char *path, char *err, size_t errlen) {
    StTensor t[SAMPLE_TENSORS];
    StMeta meta[3];
    fill_sample(t, meta);
    return safetensors_write(path, t, SAMPLE_TENSORS, meta, 3, err, errlen);
}

// ----------------------------------------------------------------------------
// round trips

static void test_round_trip(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "round_trip.safetensors");
    StTensor expected[SAMPLE_TENSORS];
    StMeta meta[3];
    fill_sample(expected, meta);
    CHECK(safetensors_write(path, expected, SAMPLE_TENSORS, meta, 3, err, sizeof err) == 0,
          "write failed: %s", err);

    StFile f;
    int rc = safetensors_read(path, &f, err, sizeof err);
    CHECK(rc == 0, "read failed: %s", err);
    if (rc != 0) return;
    CHECK(f.n_tensors == SAMPLE_TENSORS, "n_tensors %d", f.n_tensors);
    CHECK(f.n_meta == 5, "n_meta %d (3 + crc32_entries + crc32)", f.n_meta);
    CHECK(safetensors_meta(&f, "crc32_entries") && strlen(safetensors_meta(&f, "crc32_entries")) == 8,
          "no 8-digit crc32_entries");
    CHECK(safetensors_meta(&f, "crc32") && strlen(safetensors_meta(&f, "crc32")) == 8,
          "no 8-digit crc32");
    for (int i = 0; i < SAMPLE_TENSORS && i < f.n_tensors; i++) {
        const StTensor *want = &expected[i];
        const StTensor *got = safetensors_find(&f, want->name);
        CHECK(got != NULL, "tensor %s missing", want->name);
        if (!got) continue;
        CHECK(strcmp(f.tensors[i].name, want->name) == 0, "tensor order: %d is %s", i,
              f.tensors[i].name);
        CHECK(got->rank == want->rank, "%s rank %d", want->name, got->rank);
        int64_t count = 1;
        for (int d = 0; d < want->rank; d++) {
            CHECK(got->shape[d] == want->shape[d], "%s shape[%d] = %lld", want->name, d,
                  (long long)got->shape[d]);
            count *= want->shape[d];
        }
        CHECK(((uintptr_t)got->data % 4) == 0, "%s data not aligned", want->name);
        CHECK((const uint8_t *)got->data >= f.buffer &&
                  (const uint8_t *)(got->data + count) <= f.buffer + f.size,
              "%s data should point into the file buffer", want->name);
        CHECK(memcmp(got->data, want->data, (size_t)count * 4) == 0, "%s values differ", want->name);
    }
    for (int i = 0; i < 3; i++) {
        const char *value = safetensors_meta(&f, meta[i].key);
        CHECK(value != NULL && strcmp(value, meta[i].value) == 0, "metadata '%s' = '%s'",
              meta[i].key, value ? value : "(null)");
    }
    CHECK(safetensors_find(&f, "no.such.tensor") == NULL, "find of a missing tensor");
    CHECK(safetensors_meta(&f, "no_such_key") == NULL, "meta of a missing key");
    safetensors_free(&f);
    CHECK(f.buffer == NULL && f.n_tensors == 0, "free should reset the struct");
}

// The header on disk: 8-aligned data start, space padding, escapes (no raw
// control bytes), tensors contiguous in the given order.
static void test_header_layout(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "layout.safetensors");
    CHECK(write_sample(path, err, sizeof err) == 0, "write failed: %s", err);
    size_t size = 0;
    uint8_t *bytes = read_bytes(path, &size);
    CHECK(bytes != NULL && size >= 8, "cannot read back %s", path);
    if (!bytes || size < 8) {
        free(bytes);
        return;
    }
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)bytes[i] << (8 * i);
    CHECK((8 + header_len) % 8 == 0, "data start %llu not 8-aligned", (unsigned long long)(8 + header_len));
    size_t data_bytes = 4 * (12 + 6 + 6 + 5);
    CHECK(size == 8 + header_len + data_bytes, "file size %zu, header %llu", size,
          (unsigned long long)header_len);
    char *header = malloc(header_len + 1);
    memcpy(header, bytes + 8, header_len);
    header[header_len] = '\0';
    int raw_control = 0;
    for (size_t i = 0; i < header_len; i++)
        if ((unsigned char)header[i] < 0x20 || header[i] == 0x7f) raw_control++;
    CHECK(raw_control == 0, "header has %d raw control bytes", raw_control);
    CHECK(header[0] == '{', "header starts with '%c'", header[0]);
    size_t end = header_len;
    while (end > 0 && header[end - 1] == ' ') end--;
    CHECK(end > 0 && header[end - 1] == '}', "header should be an object padded with spaces");
    CHECK(strstr(header, "\\\\\\\"hi\\\\\\\"") != NULL, "escaped quote inside config missing: %s", header);
    CHECK(strstr(header, "\\u0001") && strstr(header, "\\u001f") && strstr(header, "\\n"),
          "control characters should be escaped: %s", header);
    CHECK(strstr(header, "\"data_offsets\":[0,48]") && strstr(header, "\"data_offsets\":[48,72]") &&
              strstr(header, "\"data_offsets\":[72,96]") && strstr(header, "\"data_offsets\":[96,116]"),
          "tensors should be contiguous in order: %s", header);
    // first tensor data bytes are the little-endian floats
    uint8_t expected[4];
    put_f32_le(expected, sample_weight[1]);
    CHECK(memcmp(bytes + 8 + header_len + 4, expected, 4) == 0, "data bytes not little-endian F32");
    free(header);
    free(bytes);
}

// The data section's CRC-32 is written and verified: one flipped bit in the
// data is an error naming the file; a file from another writer (no
// crc32) still reads; NaN and infinity are found with the tensor's name.
static void test_checksum_and_finite(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "crc.safetensors");
    float values[5] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
    StTensor t;
    memset(&t, 0, sizeof t);
    strcpy(t.name, "w");
    t.rank = 1;
    t.shape[0] = 5;
    t.data = values;
    CHECK(safetensors_write(path, &t, 1, NULL, 0, err, sizeof err) == 0, "write: %s", err);
    size_t n = 0;
    uint8_t *bytes = read_bytes(path, &n);
    bytes[n - 3] ^= 0x10;   // inside the last float
    write_bytes(path, bytes, n);
    StFile f;
    CHECK(safetensors_read(path, &f, err, sizeof err) != 0, "a flipped data bit was accepted");
    CHECK(strstr(err, "crc.safetensors: checksum mismatch") != NULL, "message: %s", err);
    free(bytes);

    StMeta own = {"crc32", "00000000"};
    CHECK(safetensors_write(path, &t, 1, &own, 1, err, sizeof err) != 0, "a caller's crc32 accepted");

    // one flipped bit in the key's name ("crc32" -> "crc33") must not turn the check off in a
    // file that says cuvae wrote it
    StMeta format = {"format", "cuvae-1"};
    CHECK(safetensors_write(path, &t, 1, &format, 1, err, sizeof err) == 0, "write: %s", err);
    bytes = read_bytes(path, &n);
    char *key = NULL;
    for (size_t i = 0; i + 7 <= n && !key; i++)
        if (memcmp(bytes + i, "\"crc32\"", 7) == 0) key = (char *)bytes + i;
    CHECK(key != NULL, "no crc32 key in the header");
    if (key) {
        key[5] ^= 0x01;   // '2' -> '3'
        write_bytes(path, bytes, n);
        CHECK(safetensors_read(path, &f, err, sizeof err) != 0, "a cuvae file without its crc32 was accepted");
        CHECK(strstr(err, "crc.safetensors: __metadata__.format is \"cuvae-1\", a file cuvae writes with a "
                          "__metadata__.crc32, which is missing") != NULL, "message: %s", err);
    }
    free(bytes);

    const char *foreign = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    size_t hl = strlen(foreign);
    uint8_t file[128];
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)(hl >> (8 * i));
    memcpy(file + 8, foreign, hl);
    float nan_value = NAN;
    memcpy(file + 8 + hl, &nan_value, 4);
    write_bytes(path, file, 8 + hl + 4);
    CHECK(safetensors_read(path, &f, err, sizeof err) == 0, "a file without crc32: %s", err);
    if (f.n_tensors == 1) {
        CHECK(safetensors_check_finite(path, &f.tensors[0], err, sizeof err) != 0, "NaN passed");
        CHECK(strstr(err, "tensor w: element 0 is NaN") != NULL, "message: %s", err);
        safetensors_free(&f);
    }
}

// The writers' last check (src/safetensors.c, safetensors_check_finite_before_write, under
// checkpoint_save and resume_save): every tensor finite passes; the first element that is not
// (tensor by tensor, element by element) is named with the path, and nothing is written by the
// callers. (From the CLI: resume_save when SIGTERM stops a run whose Adam state overflowed with
// a finite loss -- tests/cli_errors.sh; checkpoint_save's call is behind train.c's own check.)
static void test_check_finite_before_write(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "finite_before_write.safetensors");
    float a[3] = {1.0f, -2.0f, 3.0e38f}, b[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    StTensor t[2];
    memset(t, 0, sizeof t);
    strcpy(t[0].name, "a");
    t[0].rank = 1;
    t[0].shape[0] = 3;
    t[0].data = a;
    strcpy(t[1].name, "b");
    t[1].rank = 2;
    t[1].shape[0] = 2;
    t[1].shape[1] = 2;
    t[1].data = b;
    CHECK(safetensors_check_finite_before_write(path, t, 2, err, sizeof err) == 0, "finite tensors refused: %s", err);
    b[3] = INFINITY;
    b[2] = -INFINITY;   // (the first one is named)
    CHECK(safetensors_check_finite_before_write(path, t, 2, err, sizeof err) != 0, "an infinite element passed");
    char want[1024];
    snprintf(want, sizeof want, "%s: not written: tensor b, element 2 is infinite: the run diverged (its loss stayed "
             "finite); the file holds the last finished epoch, if one was; try a lower train.lr", path);
    CHECK(strcmp(err, want) == 0, "message: %s", err);
    a[1] = NAN;   // an earlier tensor first
    CHECK(safetensors_check_finite_before_write(path, t, 2, err, sizeof err) != 0, "a NaN passed");
    CHECK(strstr(err, "finite_before_write.safetensors: not written: tensor a, element 1 is NaN:") != NULL,
          "message: %s", err);
    CHECK(access(path, F_OK) != 0, "the check wrote a file");
}

// Two tensors of the same byte size with their data_offsets swapped in the header (the data and
// the metadata untouched, so crc32 still matches): crc32_entries refuses the file; with that key
// dropped too, crc32 (which covers it) no longer matches.
static void rewrite_header(const char *path, cJSON *header, const uint8_t *data, size_t data_size) {
    char *edited = cJSON_PrintUnformatted(header);
    size_t len = strlen(edited);
    char *padded = calloc(len + 9, 1);
    memcpy(padded, edited, len);
    while ((8 + len) % 8 != 0) padded[len++] = ' ';
    write_raw_safetensors(path, padded, data, data_size);
    free(padded);
    free(edited);
}

static void test_entries_checksum(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "swapped.safetensors");
    CHECK(write_sample(path, err, sizeof err) == 0, "write: %s", err);
    size_t n = 0;
    uint8_t *bytes = read_bytes(path, &n);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)bytes[i] << (8 * i);
    char *text = malloc(header_len + 1);
    memcpy(text, bytes + 8, header_len);
    text[header_len] = '\0';
    cJSON *header = cJSON_Parse(text);
    cJSON *a = cJSON_GetObjectItemCaseSensitive(header, "encoder.0.bias");   // 6 floats
    cJSON *b = cJSON_GetObjectItemCaseSensitive(header, "mu.weight");        // 2 x 3 floats
    CHECK(a && b, "sample entries not found");
    if (a && b) {
        cJSON *a_offsets = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(a, "data_offsets"), 1);
        cJSON *b_offsets = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(b, "data_offsets"), 1);
        cJSON_ReplaceItemInObjectCaseSensitive(a, "data_offsets", b_offsets);
        cJSON_ReplaceItemInObjectCaseSensitive(b, "data_offsets", a_offsets);
        const uint8_t *data = bytes + 8 + header_len;
        const size_t data_size = n - 8 - (size_t)header_len;
        rewrite_header(path, header, data, data_size);
        expect_read_error(path, "crc32_entries", __LINE__);
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(header, "__metadata__"),
                                                "crc32_entries");
        rewrite_header(path, header, data, data_size);
        expect_read_error(path, "checksum mismatch", __LINE__);
    }
    cJSON_Delete(header);
    free(text);
    free(bytes);
}

// Zero tensors, scalars (rank 0) and empty tensors.
static void test_edge_shapes(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "edge.safetensors");
    CHECK(safetensors_write(path, NULL, 0, NULL, 0, err, sizeof err) == 0, "empty write: %s", err);
    StFile f;
    CHECK(safetensors_read(path, &f, err, sizeof err) == 0, "empty read: %s", err);
    CHECK(f.n_tensors == 0 && f.n_meta == 2, "empty file has %d tensors, %d metadata (want 0, 2: "
          "crc32_entries, crc32)", f.n_tensors, f.n_meta);
    safetensors_free(&f);

    float scalar = 3.5f;
    StTensor t[2];
    memset(t, 0, sizeof t);
    strcpy(t[0].name, "scalar");
    t[0].rank = 0;
    t[0].data = &scalar;
    strcpy(t[1].name, "empty");
    t[1].rank = 2;
    t[1].shape[0] = 0;
    t[1].shape[1] = 7;
    t[1].data = NULL;
    CHECK(safetensors_write(path, t, 2, NULL, 0, err, sizeof err) == 0, "edge write: %s", err);
    int rc = safetensors_read(path, &f, err, sizeof err);
    CHECK(rc == 0, "edge read: %s", err);
    if (rc != 0) return;
    const StTensor *s = safetensors_find(&f, "scalar");
    const StTensor *e = safetensors_find(&f, "empty");
    CHECK(s && s->rank == 0 && s->data[0] == 3.5f, "scalar round trip");
    CHECK(e && e->rank == 2 && e->shape[0] == 0 && e->shape[1] == 7, "empty tensor shape");
    safetensors_free(&f);
}

// ----------------------------------------------------------------------------
// files written by an independent (hand-assembled) writer

static void test_independent_file(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "independent.safetensors");
    float second[2] = {-2.5f, 1e-30f};
    float first[6] = {0.0f, 1.0f, -1.0f, 3.14159265f, 65504.0f, -1e30f};
    uint8_t data[32];
    for (int i = 0; i < 2; i++) put_f32_le(data + 4 * i, second[i]);
    for (int i = 0; i < 6; i++) put_f32_le(data + 8 + 4 * i, first[i]);
    // Keys in a different order than our writer uses, metadata in the middle,
    // whitespace between tokens, and no alignment padding.
    char header[512];
    int len = snprintf(header, sizeof header,
                       "{ \"second\": {\"data_offsets\": [%d, %d], \"shape\": [2], \"dtype\": \"F32\"},"
                       " \"__metadata__\": {\"note\": \"hand \\\"made\\\"\\n\\u00e9\\t\\\\\"},"
                       " \"first\": {\"shape\": [2, 3], \"dtype\": \"F32\", \"data_offsets\": [%d, %d]}}",
                       0, 8, 8, 32);
    // make sure the data start is NOT 4-byte aligned, to exercise the copy path
    if (len % 4 == 0) strcat(header, " ");
    write_raw_safetensors(path, header, data, sizeof data);
    CHECK((8 + strlen(header)) % 4 != 0, "test setup: data start should be misaligned");

    StFile f;
    int rc = safetensors_read(path, &f, err, sizeof err);
    CHECK(rc == 0, "read failed: %s", err);
    if (rc != 0) return;
    CHECK(f.n_tensors == 2 && f.n_meta == 1, "%d tensors, %d metadata", f.n_tensors, f.n_meta);
    const StTensor *a = safetensors_find(&f, "first");
    const StTensor *b = safetensors_find(&f, "second");
    CHECK(a && a->rank == 2 && a->shape[0] == 2 && a->shape[1] == 3, "first shape");
    CHECK(b && b->rank == 1 && b->shape[0] == 2, "second shape");
    if (a && b) {
        CHECK((uintptr_t)a->data % 4 == 0 && (uintptr_t)b->data % 4 == 0, "data pointers aligned");
        for (int i = 0; i < 6; i++)
            CHECK(float_bits(a->data[i]) == float_bits(first[i]), "first[%d] = %g", i, a->data[i]);
        for (int i = 0; i < 2; i++)
            CHECK(float_bits(b->data[i]) == float_bits(second[i]), "second[%d] = %g", i, b->data[i]);
    }
    const char *note = safetensors_meta(&f, "note");
    CHECK(note && strcmp(note, "hand \"made\"\n\xc3\xa9\t\\") == 0, "note = '%s'", note ? note : "(null)");
    safetensors_free(&f);
}

// Data start aligned but an F32 tensor starting at an odd offset (after a 2-byte U8 tensor).
// The same bytes with the U8 tensor left out (a hole), or with bytes after the last tensor,
// are refused: the format has no unused bytes (as the reference implementation).
static void test_misaligned_tensor_offset(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "misaligned.safetensors");
    char header[160];
    snprintf(header, sizeof header, "{\"pad\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
             "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}");
    while ((8 + strlen(header)) % 8 != 0) strcat(header, " ");
    uint8_t data[12] = {0xee, 0xee};
    put_f32_le(data + 2, 0.75f);
    put_f32_le(data + 6, -8.0f);
    write_raw_safetensors(path, header, data, 10);
    StFile f;
    int rc = safetensors_read_any(path, &f, err, sizeof err);
    CHECK(rc == 0, "read failed: %s", err);
    if (rc == 0) {
        const StTensor *x = safetensors_find(&f, "x");
        CHECK(x && (uintptr_t)x->data % 4 == 0, "x aligned");
        CHECK(x && x->data[0] == 0.75f && x->data[1] == -8.0f, "x values");
        safetensors_free(&f);
    }
    snprintf(header, sizeof header, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}");
    while ((8 + strlen(header)) % 8 != 0) strcat(header, " ");
    write_raw_safetensors(path, header, data, 10);
    CHECK(safetensors_read(path, &f, err, sizeof err) != 0, "a hole before the first tensor was accepted");
    CHECK(strstr(err, "misaligned.safetensors: bytes 0..1 of the data section (from byte 64) belong to no tensor (a "
                      "hole between data_offsets") != NULL, "message: %s", err);
    snprintf(header, sizeof header, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}");
    while ((8 + strlen(header)) % 8 != 0) strcat(header, " ");
    write_raw_safetensors(path, header, data + 2, 10);
    CHECK(safetensors_read(path, &f, err, sizeof err) != 0, "bytes after the last tensor were accepted");
    CHECK(strstr(err, "bytes 8..9 of the data section (from byte 64) belong to no tensor (after the last tensor") !=
              NULL, "message: %s", err);
}

// ----------------------------------------------------------------------------
// corrupt files

static void test_missing_file(void) {
    char path[512];
    test_path(path, sizeof path, "does_not_exist.safetensors");
    expect_read_error(path, "cannot open", __LINE__);
    expect_read_error(test_dir, NULL, __LINE__);   // a directory is not a file
}

static void test_truncated_file(void) {
    char path[512], cut_path[512], err[512] = "";
    test_path(path, sizeof path, "full.safetensors");
    test_path(cut_path, sizeof cut_path, "truncated.safetensors");
    CHECK(write_sample(path, err, sizeof err) == 0, "write failed: %s", err);
    size_t size = 0;
    uint8_t *bytes = read_bytes(path, &size);
    if (!bytes) return;
    // every proper prefix of the file must be rejected
    for (size_t cut = 0; cut < size; cut++) {
        write_bytes(cut_path, bytes, cut);
        int before = test_current_failures;
        expect_read_error(cut_path, NULL, __LINE__);
        if (test_current_failures != before) {
            fprintf(stderr, "    (file cut to %zu of %zu bytes)\n", cut, size);
            break;
        }
    }
    write_bytes(cut_path, bytes, 5);
    expect_read_error(cut_path, "too short", __LINE__);
    free(bytes);
}

static void test_header_length_too_large(void) {
    char path[512];
    test_path(path, sizeof path, "long_header.safetensors");
    uint8_t bytes[8 + 16];
    memset(bytes, ' ', sizeof bytes);
    put_u64_le(bytes, 1000);
    write_bytes(path, bytes, sizeof bytes);
    expect_read_error(path, "header length", __LINE__);
    put_u64_le(bytes, UINT64_MAX);
    write_bytes(path, bytes, sizeof bytes);
    expect_read_error(path, "header length", __LINE__);
}

static void test_non_json_header(void) {
    expect_bad_header("{not json at all", "JSON", __LINE__);
    expect_bad_header("[1, 2, 3]", "not a JSON object", __LINE__);
    expect_bad_header("\"just a string\"", "not a JSON object", __LINE__);
    expect_bad_header("{} trailing", "JSON", __LINE__);
    expect_bad_header("", NULL, __LINE__);

    char path[512];
    test_path(path, sizeof path, "nul_header.safetensors");
    const char header_with_nul[] = "{}\0garbage";
    uint8_t bytes[8 + sizeof header_with_nul];
    put_u64_le(bytes, sizeof header_with_nul);
    memcpy(bytes + 8, header_with_nul, sizeof header_with_nul);
    write_bytes(path, bytes, sizeof bytes);
    expect_read_error(path, "NUL", __LINE__);
}

static void test_dtype_f16(void) {
    expect_bad_header("{\"x\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", "F16", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", "'x'", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", "BF16", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype", __LINE__);
    expect_bad_header("{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype", __LINE__);
}

static void test_offsets_out_of_range(void) {
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}",
                      "out of range", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                      "out of range", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}",
                      "out of range", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}",
                      "data_offsets", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],"
                      "\"data_offsets\":[18446744073709551608,18446744073709551616]}}",
                      "data_offsets", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}",
                      "data_offsets", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":\"0,8\"}}",
                      "data_offsets", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", "data_offsets", __LINE__);
}

static void test_offsets_inconsistent_with_shape(void) {
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                      "shape needs 12", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}",
                      "shape needs 4", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}",
                      "shape needs 4", __LINE__);
}

static void test_bad_shapes(void) {
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}",
                      "rank 5", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
                      "shape[0]", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}",
                      "header byte 29: 2.5 is not written as an integer", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2,\"1\"],\"data_offsets\":[0,8]}}",
                      "shape[1]", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],"
                      "\"data_offsets\":[0,8]}}", "too large", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", "shape", __LINE__);
}

static void test_other_bad_headers(void) {
    expect_bad_header("{\"x\":[1,2]}", "not an object", __LINE__);
    expect_bad_header("{\"__metadata__\":{\"k\":5}}", "not a string", __LINE__);
    expect_bad_header("{\"__metadata__\":[\"k\"]}", "__metadata__", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      "duplicate", __LINE__);
    expect_bad_header("{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\"}}", "duplicate",
                      __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                      "overlapping", __LINE__);
    expect_bad_header("{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "empty",
                      __LINE__);
    char header[512];
    char long_name[200];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    snprintf(header, sizeof header, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             long_name);
    expect_bad_header(header, "longer than", __LINE__);
    // a hostile name with a newline must not break the one-line message
    expect_bad_header("{\"bad\\nname\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      "bad?name", __LINE__);
    // an escaped NUL would end the name in cJSON's string ("x\u0000y" read as "x"): refused,
    // naming the header byte; an escaped backslash before "u0000" is no NUL
    expect_bad_header("{\"x\\u0000y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                      "header byte 3: a string holds \\u0000", __LINE__);
    expect_good_header("{\"x\\\\u0000\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "x\\u0000",
                       "a name with a backslash before u0000 is read whole", __LINE__);
    // numbers are integers: one written with a fraction or exponent (cJSON would read 784.0 as
    // 784) is refused, naming the header byte, as the reference implementation refuses it;
    // such text inside a string (a name, a metadata value) is no number
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
                      "header byte 29: 2.0 is not written as an integer", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8e0]}}",
                      "header byte 50: 8e0 is not written as an integer", __LINE__);
    expect_good_header("{\"__metadata__\":{\"lr\":\"1e-3\",\"q\\\"2.5\":\"-0.5\"},"
                       "\"w1.5\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "w1.5",
                       "numbers inside strings (names, metadata, an escaped quote) are text", __LINE__);
    // integers beyond 2^53 (which a double cJSON reads cannot hold exactly): refused as such, a
    // shape of 2^54 as no integer (not as "too large", which a rounded value would say) and data
    // offsets of 1e19 before they reach an int64
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[18014398509481984],\"data_offsets\":[0,8]}}",
                      "shape[0] is not a non-negative integer", __LINE__);
    expect_bad_header("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,10000000000000000000]}}",
                      "data_offsets must be two non-negative integers", __LINE__);
    // deep nesting must fail cleanly, not overflow the stack
    char *deep = malloc(200010);
    strcpy(deep, "{\"x\":");
    size_t n = strlen(deep);
    for (int i = 0; i < 100000; i++) deep[n++] = '[';
    for (int i = 0; i < 100000; i++) deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    expect_bad_header(deep, NULL, __LINE__);
    free(deep);
}

// Random byte flips in a valid file: every read must either succeed or fail
// with a proper message (run under valgrind to catch memory errors).
static void test_random_corruption(void) {
    char path[512], bad_path[512], err[512] = "";
    test_path(path, sizeof path, "fuzz_source.safetensors");
    test_path(bad_path, sizeof bad_path, "fuzz.safetensors");
    CHECK(write_sample(path, err, sizeof err) == 0, "write failed: %s", err);
    size_t size = 0;
    uint8_t *original = read_bytes(path, &size);
    if (!original) return;
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)original[i] << (8 * i);
    uint8_t *bytes = malloc(size);
    uint32_t state = 12345;
    const char replacements[] = "{}[]\",:0123456789-.eE \\u";
    int failures = 0, successes = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(bytes, original, size);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            state = state * 1664525u + 1013904223u;
            uint32_t r = state >> 8;
            size_t at = (iter % 10 == 0) ? r % 8 : 8 + r % header_len;   // mostly in the header
            state = state * 1664525u + 1013904223u;
            bytes[at] = (iter % 3 == 0) ? (uint8_t)(state >> 24)
                                        : (uint8_t)replacements[(state >> 16) % (sizeof replacements - 1)];
        }
        write_bytes(bad_path, bytes, size);
        StFile f;
        int rc = safetensors_read(bad_path, &f, err, sizeof err);
        if (rc == 0) {
            successes++;
            for (int i = 0; i < f.n_tensors; i++) {
                int64_t count = 1;
                for (int d = 0; d < f.tensors[i].rank; d++) count *= f.tensors[i].shape[d];
                volatile float sum = 0;   // touch every element (valgrind checks the bounds)
                for (int64_t j = 0; j < count; j++) sum += f.tensors[i].data[j];
                (void)sum;
            }
            safetensors_free(&f);
        } else {
            failures++;
            if (!strstr(err, bad_path) || strchr(err, '\n')) {
                CHECK(0, "bad error message at iteration %d: '%s'", iter, err);
                break;
            }
        }
    }
    CHECK(failures > 0, "mutations should produce some failures");
    fprintf(stderr, "    (random corruption: %d rejected, %d still valid)\n", failures, successes);
    free(bytes);
    free(original);
}

// ----------------------------------------------------------------------------
// writing: atomicity and argument checks

static void test_write_to_missing_directory(void) {
    char dir[400], path[512], err[512] = "";
    test_path(dir, sizeof dir, "no_such_dir");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = write_sample(path, err, sizeof err);
    CHECK(rc == -1, "write into a missing directory should fail");
    CHECK(strstr(err, path) != NULL, "error should name the path: '%s'", err);
    CHECK(access(dir, F_OK) != 0, "the directory should not have been created");
    CHECK(count_temp_files(test_dir) == 0, "no temp files should be left");

    // the destination is a directory: the rename fails and the temp file goes
    test_path(path, sizeof path, "a_directory");
    mkdir(path, 0755);
    rc = write_sample(path, err, sizeof err);
    CHECK(rc == -1, "writing over a directory should fail");
    CHECK(strstr(err, path) != NULL, "error should name the path: '%s'", err);
    CHECK(count_temp_files(test_dir) == 0, "no temp files should be left after a failed rename");
    rmdir(path);
}

static void test_overwrite_replaces_whole_file(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "overwrite.safetensors");
    static float big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (float)i;
    StTensor t;
    memset(&t, 0, sizeof t);
    strcpy(t.name, "big");
    t.rank = 1;
    t.shape[0] = 1000;
    t.data = big;
    CHECK(safetensors_write(path, &t, 1, NULL, 0, err, sizeof err) == 0, "first write: %s", err);

    float small[3] = {7.0f, 8.0f, 9.0f};
    strcpy(t.name, "small");
    t.shape[0] = 3;
    t.data = small;
    CHECK(safetensors_write(path, &t, 1, NULL, 0, err, sizeof err) == 0, "second write: %s", err);
    CHECK(count_temp_files(test_dir) == 0, "no temp files should be left");

    StFile f;
    int rc = safetensors_read(path, &f, err, sizeof err);
    CHECK(rc == 0, "read: %s", err);
    if (rc != 0) return;
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)f.buffer[i] << (8 * i);
    CHECK(f.size == 8 + header_len + 12, "file size %zu should hold only the new tensor", f.size);
    CHECK(f.n_tensors == 1 && safetensors_find(&f, "small") && !safetensors_find(&f, "big"),
          "only the new tensor should be present");
    const StTensor *s = safetensors_find(&f, "small");
    CHECK(s && memcmp(s->data, small, sizeof small) == 0, "new values");
    safetensors_free(&f);
}

static void test_write_rejects_bad_input(void) {
    char path[512], err[512];
    test_path(path, sizeof path, "rejected.safetensors");
    float values[4] = {1, 2, 3, 4};
    StTensor t[2];
    memset(t, 0, sizeof t);
    strcpy(t[0].name, "a");
    t[0].rank = 1;
    t[0].shape[0] = 4;
    t[0].data = values;
    t[1] = t[0];

    strcpy(err, "");
    CHECK(safetensors_write(path, t, 2, NULL, 0, err, sizeof err) == -1, "duplicate names");
    CHECK(strstr(err, "duplicate") && strstr(err, path), "duplicate error: '%s'", err);

    strcpy(t[1].name, "b");
    t[1].rank = ST_MAX_RANK + 1;
    CHECK(safetensors_write(path, t, 2, NULL, 0, err, sizeof err) == -1, "rank too large");
    CHECK(strstr(err, "'b'") && strstr(err, path), "rank error: '%s'", err);

    t[1].rank = 1;
    t[1].shape[0] = -1;
    CHECK(safetensors_write(path, t, 2, NULL, 0, err, sizeof err) == -1, "negative dim");

    t[1].shape[0] = 4;
    t[1].data = NULL;
    CHECK(safetensors_write(path, t, 2, NULL, 0, err, sizeof err) == -1, "NULL data");
    CHECK(strstr(err, "NULL data"), "NULL data error: '%s'", err);

    t[1].data = values;
    StMeta meta[1];
    memset(meta, 0, sizeof meta);
    strcpy(meta[0].key, "config");
    meta[0].value = "bad utf-8 \xff\xfe";
    CHECK(safetensors_write(path, t, 2, meta, 1, err, sizeof err) == -1, "invalid UTF-8 metadata");
    CHECK(strstr(err, "UTF-8") && strstr(err, "config"), "UTF-8 error: '%s'", err);
    meta[0].value = NULL;
    CHECK(safetensors_write(path, t, 2, meta, 1, err, sizeof err) == -1, "NULL metadata value");

    CHECK(access(path, F_OK) != 0, "rejected writes should create no file");
    CHECK(count_temp_files(test_dir) == 0, "no temp files should be left");

    meta[0].value = "ok";
    CHECK(safetensors_write(path, t, 2, meta, 1, err, sizeof err) == 0, "valid write: %s", err);
}

// ----------------------------------------------------------------------------
// independent decode with python3 (json + struct from the standard library)

static const char *python_decoder =
    "import json, struct, sys\n"
    "raw = open(sys.argv[1], 'rb').read()\n"
    "n = struct.unpack('<Q', raw[:8])[0]\n"
    "header = json.loads(raw[8:8 + n].decode('utf-8'))\n"
    "data = raw[8 + n:]\n"
    "for key, value in header.pop('__metadata__', {}).items():\n"
    "    print('meta', key.encode('utf-8').hex(), value.encode('utf-8').hex())\n"
    "for name, entry in header.items():\n"
    "    begin, end = entry['data_offsets']\n"
    "    words = struct.unpack('<%dI' % ((end - begin) // 4), data[begin:end])\n"
    "    print('tensor', name, entry['dtype'], ','.join(str(d) for d in entry['shape']),\n"
    "          ''.join('%08x' % w for w in words))\n";

static bool have_python(void) {
    return access("/usr/bin/python3", X_OK) == 0 &&
           system("/usr/bin/python3 -c 'import json, struct' >/dev/null 2>&1") == 0;
}

static void append_hex(char *out, size_t outlen, const void *bytes, size_t n) {
    const uint8_t *p = bytes;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, outlen - len, "%02x", p[i]);
    }
}

static void test_python_decodes_file(void) {
    char path[512], script[512], command[1200], err[512] = "";
    test_path(path, sizeof path, "python.safetensors");
    test_path(script, sizeof script, "decode.py");
    CHECK(write_sample(path, err, sizeof err) == 0, "write failed: %s", err);
    write_bytes(script, python_decoder, strlen(python_decoder));
    snprintf(command, sizeof command, "/usr/bin/python3 '%s' '%s' 2>&1", script, path);
    FILE *pipe = popen(command, "r");
    CHECK(pipe != NULL, "popen failed");
    if (!pipe) return;
    static char output[16384];
    size_t got = fread(output, 1, sizeof output - 1, pipe);
    output[got] = '\0';
    int status = pclose(pipe);
    CHECK(status == 0, "python decoder failed:\n%s", output);

    static char expected[16384];
    expected[0] = '\0';
    StTensor t[SAMPLE_TENSORS];
    StMeta meta[3];
    fill_sample(t, meta);
    StFile written;
    char crc[16] = "", entries[16] = "";
    if (safetensors_read(path, &written, err, sizeof err) == 0) {
        snprintf(crc, sizeof crc, "%s", safetensors_meta(&written, "crc32"));
        snprintf(entries, sizeof entries, "%s", safetensors_meta(&written, "crc32_entries"));
        safetensors_free(&written);
    }
    for (int i = 0; i < 5; i++) {
        const char *key = i < 3 ? meta[i].key : i == 3 ? "crc32_entries" : "crc32";
        const char *value = i < 3 ? meta[i].value : i == 3 ? entries : crc;
        strcat(expected, "meta ");
        append_hex(expected, sizeof expected, key, strlen(key));
        strcat(expected, " ");
        append_hex(expected, sizeof expected, value, strlen(value));
        strcat(expected, "\n");
    }
    for (int i = 0; i < SAMPLE_TENSORS; i++) {
        size_t len = strlen(expected);
        snprintf(expected + len, sizeof expected - len, "tensor %s F32 ", t[i].name);
        int64_t count = 1;
        for (int d = 0; d < t[i].rank; d++) {
            len = strlen(expected);
            snprintf(expected + len, sizeof expected - len, "%s%lld", d ? "," : "",
                     (long long)t[i].shape[d]);
            count *= t[i].shape[d];
        }
        strcat(expected, " ");
        for (int64_t j = 0; j < count; j++) {
            len = strlen(expected);
            snprintf(expected + len, sizeof expected - len, "%08x", float_bits(t[i].data[j]));
        }
        strcat(expected, "\n");
    }
    CHECK(strcmp(output, expected) == 0, "python decoded:\n%s\nexpected:\n%s", output, expected);
}

// ----------------------------------------------------------------------------

int main(void) {
    snprintf(test_dir, sizeof test_dir, "/tmp/cuvae_test_safetensors_XXXXXX");
    if (!mkdtemp(test_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_run("round_trip", test_round_trip);
    test_run("header_layout", test_header_layout);
    test_run("edge_shapes", test_edge_shapes);
    test_run("entries_checksum", test_entries_checksum);
    test_run("independent_file", test_independent_file);
    test_run("misaligned_tensor_offset", test_misaligned_tensor_offset);
    test_run("missing_file", test_missing_file);
    test_run("truncated_file", test_truncated_file);
    test_run("header_length_too_large", test_header_length_too_large);
    test_run("non_json_header", test_non_json_header);
    test_run("dtype_f16", test_dtype_f16);
    test_run("offsets_out_of_range", test_offsets_out_of_range);
    test_run("offsets_inconsistent_with_shape", test_offsets_inconsistent_with_shape);
    test_run("bad_shapes", test_bad_shapes);
    test_run("other_bad_headers", test_other_bad_headers);
    test_run("random_corruption", test_random_corruption);
    test_run("write_to_missing_directory", test_write_to_missing_directory);
    test_run("overwrite_replaces_whole_file", test_overwrite_replaces_whole_file);
    test_run("write_rejects_bad_input", test_write_rejects_bad_input);
    test_run("checksum_and_finite", test_checksum_and_finite);
    test_run("check_finite_before_write", test_check_finite_before_write);
    if (have_python())
        test_run("python_decodes_file", test_python_decodes_file);
    else
        test_skip("python_decodes_file", "/usr/bin/python3 not available");
    test_remove_tree(test_dir);
    return test_finish("test_safetensors");
}

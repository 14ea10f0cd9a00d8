// safetensors.c: reader and writer for the safetensors format (F32 tensors and
// a __metadata__ map of strings).
//
// File layout: an 8-byte little-endian u64 N, then N bytes of JSON header, then
// the data buffer. The header maps each tensor name to
//   {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}
// with offsets relative to the start of the data buffer, plus an optional
// "__metadata__" object whose values are strings.
//
// The writer builds the header JSON by hand (so integers are printed exactly),
// pads it with spaces so the data starts 8-byte aligned, and replaces the
// destination atomically (temp file in the same directory, fsync, rename).
// The reader loads the whole file, parses the header with cJSON and validates
// every entry (F32 only, rank <= ST_MAX_RANK, offsets inside the data and
// consistent with the shape, no overlaps, no duplicate keys) before handing out
// pointers into the buffer.
#include "cuvae/safetensors.h"
#include "cuvae/common.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <sys/stat.h>
#include <unistd.h>

// Tensor bytes are written and read as host floats; the format is little-endian.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define METADATA_KEY "__metadata__"
#define CRC_KEY "crc32"   // CRC-32 (zlib) of the data section and the other metadata, 8 hex digits

// zlib's crc32 over any length (it takes an unsigned int count)
static uLong crc_bytes(uLong crc, const void *data, size_t bytes) {
    const Bytef *p = (const Bytef *)data;
    while (bytes > 0) {
        uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
        crc = crc32(crc, p, chunk);
        p += chunk;
        bytes -= chunk;
    }
    return crc;
}

#define ENTRIES_KEY "crc32_entries"   // CRC-32 of the header's tensor entries (crc_entries), 8 hex digits

// The CRC-32 of the tensor entries, in the order of their data (begins[i]: tensor i's first
// byte in the data section): name NUL dtype NUL rank and dims NUL begin NUL each. The data and
// metadata CRC does not see names, shapes or offsets: two tensors of one shape with their
// offsets swapped would read as each other. (Files cuvae wrote before this key lack it.)
static uLong crc_entries(const StTensor *tensors, const size_t *begins, int n) {
    int *order = xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {   // insertion sort by begin (a handful of tensors)
        int j = i;
        while (j > 0 && begins[order[j - 1]] > begins[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int k = 0; k < n; k++) {
        const StTensor *t = &tensors[order[k]];
        char text[64 + 24 * ST_MAX_RANK];
        int used = snprintf(text, sizeof text, "%d", t->rank);
        for (int d = 0; d < t->rank && used < (int)sizeof text; d++)
            used += snprintf(text + used, sizeof text - (size_t)used, ",%lld", (long long)t->shape[d]);
        char begin[32];
        snprintf(begin, sizeof begin, "%zu", begins[order[k]]);
        crc = crc_bytes(crc, t->name, strlen(t->name) + 1);
        crc = crc_bytes(crc, t->dtype[0] ? t->dtype : "F32", strlen(t->dtype[0] ? t->dtype : "F32") + 1);
        crc = crc_bytes(crc, text, strlen(text) + 1);
        crc = crc_bytes(crc, begin, strlen(begin) + 1);
    }
    free(order);
    return crc;
}

// continues crc over the metadata pairs (key NUL value NUL), CRC_KEY itself left out: in the
// order of their keys (strcmp: bytes) when by_key -- what cuvae writes since 2026-12-06, so a tool
// that writes the header's keys in another order keeps the file readable -- or in file order
// (the files written before, still read)
static uLong crc_metadata(uLong crc, const StMeta *meta, int n_meta, bool by_key) {
    int *order = xmalloc(sizeof(int) * (size_t)(n_meta > 0 ? n_meta : 1));
    for (int i = 0; i < n_meta; i++) {   // insertion sort (a handful of keys)
        int j = i;
        while (by_key && j > 0 && strcmp(meta[order[j - 1]].key, meta[i].key) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (int k = 0; k < n_meta; k++) {
        const StMeta *pair = &meta[order[k]];
        if (strcmp(pair->key, CRC_KEY) == 0) continue;
        crc = crc_bytes(crc, pair->key, strlen(pair->key) + 1);
        crc = crc_bytes(crc, pair->value, strlen(pair->value) + 1);
    }
    free(order);
    return crc;
}
#define META_KEY_SIZE 64      // sizeof(StMeta.key)
#define MAX_EXACT_JSON_INT 9007199254740992.0   // 2^53: largest exact double integer

// ----------------------------------------------------------------------------
// small helpers

// Copies s into out for use in a one-line error message: control bytes become
// '?' and long names are cut with "...".
static const char *printable(const char *s, char *out, size_t outlen) {
    size_t i = 0;
    for (; s[i] && i + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[i] = '\0';
    if (s[i] && outlen > 4) strcpy(out + outlen - 4, "...");
    return out;
}

static char *copy_string(const char *s) {
    size_t n = strlen(s);
    char *copy = xmalloc(n + 1);
    memcpy(copy, s, n + 1);
    return copy;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Returns a name that occurs twice in names[0..n), or NULL. Sorts the array.
static const char *find_duplicate(const char **names, int n) {
    qsort(names, (size_t)n, sizeof names[0], compare_strings);
    for (int i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

// Element count of a shape, or -1 if negative dims or the byte size
// (4 * count) would not fit in an int64.
static int64_t element_count(const int64_t *shape, int rank) {
    int64_t count = 1;
    for (int d = 0; d < rank; d++) {
        if (shape[d] < 0) return -1;
        if (shape[d] == 0) count = 0;
    }
    if (count == 0) return 0;
    for (int d = 0; d < rank; d++) {
        if (count > INT64_MAX / 4 / shape[d]) return -1;
        count *= shape[d];
    }
    return count;
}

// ----------------------------------------------------------------------------
// header text builder

static void text_append_int(TextBuffer *t, int64_t value) {
    char number[32];
    snprintf(number, sizeof number, "%" PRId64, value);
    text_append(t, number);
}


// ----------------------------------------------------------------------------
// writer

// Checks the caller's tensors and metadata before anything touches the disk.
static int validate_write_args(const char *path, const StTensor *tensors, int n_tensors,
                               const StMeta *meta, int n_meta, char *err, size_t errlen) {
    char shown[80];
    if (n_tensors < 0 || n_meta < 0)
        return set_error(err, errlen, "%s: negative tensor or metadata count", path);
    if ((n_tensors > 0 && !tensors) || (n_meta > 0 && !meta))
        return set_error(err, errlen, "%s: NULL tensor or metadata array", path);

    for (int i = 0; i < n_tensors; i++) {
        const StTensor *t = &tensors[i];
        if (!memchr(t->name, '\0', ST_MAX_NAME))
            return set_error(err, errlen, "%s: tensor %d: name is not NUL-terminated within %d bytes",
                             path, i, ST_MAX_NAME);
        printable(t->name, shown, sizeof shown);
        if (t->name[0] == '\0')
            return set_error(err, errlen, "%s: tensor %d: empty name", path, i);
        if (strcmp(t->name, METADATA_KEY) == 0 || !utf8_valid(t->name))
            return set_error(err, errlen, "%s: tensor '%s': invalid name", path, shown);
        if (t->rank < 0 || t->rank > ST_MAX_RANK)
            return set_error(err, errlen, "%s: tensor '%s': rank %d outside 0..%d", path, shown,
                             t->rank, ST_MAX_RANK);
        int64_t count = element_count(t->shape, t->rank);
        if (count < 0)
            return set_error(err, errlen, "%s: tensor '%s': negative or too large shape", path, shown);
        if (count > 0 && !t->data)
            return set_error(err, errlen, "%s: tensor '%s': NULL data", path, shown);
    }
    for (int i = 0; i < n_meta; i++) {
        if (!memchr(meta[i].key, '\0', META_KEY_SIZE))
            return set_error(err, errlen, "%s: metadata %d: key is not NUL-terminated within %d bytes",
                             path, i, META_KEY_SIZE);
        printable(meta[i].key, shown, sizeof shown);
        if (meta[i].key[0] == '\0' || !utf8_valid(meta[i].key))
            return set_error(err, errlen, "%s: metadata %d: empty or invalid key", path, i);
        if (!meta[i].value)
            return set_error(err, errlen, "%s: metadata '%s': NULL value", path, shown);
        if (!utf8_valid(meta[i].value))
            return set_error(err, errlen, "%s: metadata '%s': value is not valid UTF-8", path, shown);
    }

    int most = n_tensors > n_meta ? n_tensors : n_meta;
    const char **names = xmalloc(sizeof(char *) * (size_t)(most > 0 ? most : 1));
    for (int i = 0; i < n_tensors; i++) names[i] = tensors[i].name;
    const char *duplicate = find_duplicate(names, n_tensors);
    if (duplicate) {
        set_error(err, errlen, "%s: duplicate tensor name '%s'", path,
                  printable(duplicate, shown, sizeof shown));
        free(names);
        return -1;
    }
    for (int i = 0; i < n_meta; i++) names[i] = meta[i].key;
    duplicate = find_duplicate(names, n_meta);
    if (duplicate) {
        set_error(err, errlen, "%s: duplicate metadata key '%s'", path,
                  printable(duplicate, shown, sizeof shown));
        free(names);
        return -1;
    }
    free(names);
    return 0;
}

// Builds the header JSON, padded with spaces so that 8 + length is a multiple of 8.
static void build_header(TextBuffer *header, const StTensor *tensors, int n_tensors,
                         const StMeta *meta, int n_meta) {
    text_append(header, "{");
    bool first_entry = true;
    if (n_meta > 0) {
        text_append(header, "\"" METADATA_KEY "\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i > 0) text_append(header, ",");
            text_append_json_string(header, meta[i].key);
            text_append(header, ":");
            text_append_json_string(header, meta[i].value);
        }
        text_append(header, "}");
        first_entry = false;
    }
    int64_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        const StTensor *t = &tensors[i];
        int64_t bytes = 4 * element_count(t->shape, t->rank);
        if (!first_entry) text_append(header, ",");
        first_entry = false;
        text_append_json_string(header, t->name);
        text_append(header, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->rank; d++) {
            if (d > 0) text_append(header, ",");
            text_append_int(header, t->shape[d]);
        }
        text_append(header, "],\"data_offsets\":[");
        text_append_int(header, offset);
        text_append(header, ",");
        text_append_int(header, offset + bytes);
        text_append(header, "]}");
        offset += bytes;
    }
    text_append(header, "}");
    while ((8 + header->len) % 8 != 0) text_append(header, " ");
}


int safetensors_write(const char *path, const StTensor *tensors, int n_tensors,
                      const StMeta *meta, int n_meta, char *err, size_t errlen) {
    if (!path || !path[0]) return set_error(err, errlen, "safetensors_write: empty path");
    if (validate_write_args(path, tensors, n_tensors, meta, n_meta, err, errlen) != 0) return -1;
    for (int i = 0; i < n_meta; i++)
        if (strcmp(meta[i].key, CRC_KEY) == 0 || strcmp(meta[i].key, ENTRIES_KEY) == 0)
            return set_error(err, errlen, "%s: metadata key '%s' is written by safetensors_write", path, meta[i].key);

    // the CRC-32 of the tensor entries (names, shapes, offsets), then the CRC-32 of the data
    // section (the tensors' bytes in file order) and of the metadata, that one included, ride
    // in the metadata
    size_t *begins = xmalloc(sizeof(size_t) * (size_t)(n_tensors > 0 ? n_tensors : 1));
    size_t offset = 0;
    for (int i = 0; i < n_tensors; i++) {
        begins[i] = offset;
        offset += 4 * (size_t)element_count(tensors[i].shape, tensors[i].rank);
    }
    char entries_text[16];
    snprintf(entries_text, sizeof entries_text, "%08lx", (unsigned long)crc_entries(tensors, begins, n_tensors));
    free(begins);
    StMeta *all_meta = xmalloc(sizeof(StMeta) * (size_t)(n_meta + 2));
    for (int i = 0; i < n_meta; i++) all_meta[i] = meta[i];
    snprintf(all_meta[n_meta].key, sizeof all_meta[n_meta].key, "%s", ENTRIES_KEY);
    all_meta[n_meta].value = entries_text;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n_tensors; i++)
        crc = crc_bytes(crc, tensors[i].data, 4 * (size_t)element_count(tensors[i].shape, tensors[i].rank));
    crc = crc_metadata(crc, all_meta, n_meta + 1, true);
    char crc_text[16];
    snprintf(crc_text, sizeof crc_text, "%08lx", (unsigned long)crc);
    snprintf(all_meta[n_meta + 1].key, sizeof all_meta[n_meta + 1].key, "%s", CRC_KEY);
    all_meta[n_meta + 1].value = crc_text;

    TextBuffer header = {0};
    build_header(&header, tensors, n_tensors, all_meta, n_meta + 2);
    free(all_meta);
    uint8_t length_bytes[8];
    uint64_t header_len = header.len;
    for (int i = 0; i < 8; i++) length_bytes[i] = (uint8_t)(header_len >> (8 * i));

    AtomicFile out;
    if (atomic_file_open(&out, path, err, errlen) != 0) {
        free(header.data);
        return -1;
    }
    bool ok = fwrite(length_bytes, 1, 8, out.fp) == 8 &&
              fwrite(header.data, 1, header.len, out.fp) == header.len;
    for (int i = 0; ok && i < n_tensors; i++) {
        size_t count = (size_t)element_count(tensors[i].shape, tensors[i].rank);
        if (count > 0) ok = fwrite(tensors[i].data, sizeof(float), count, out.fp) == count;
    }
    free(header.data);
    if (!ok) {
        int saved_errno = errno;
        atomic_file_abort(&out);
        return set_error(err, errlen, "%s: write failed: %s", path, strerror(saved_errno));
    }
    return atomic_file_commit(&out, err, errlen);
}

// ----------------------------------------------------------------------------
// reader

// Reads a JSON number that must be a non-negative integer exactly representable
// as a double. Returns false otherwise.
static bool json_to_offset(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!isfinite(v) || v < 0 || v > MAX_EXACT_JSON_INT || floor(v) != v) return false;
    *out = (int64_t)v;
    return true;
}

static int parse_metadata(const char *path, const cJSON *object, StFile *f, char *err, size_t errlen) {
    char shown[80];
    if (cJSON_IsNull(object)) return 0;
    if (!cJSON_IsObject(object))
        return set_error(err, errlen, "%s: header: " METADATA_KEY " is not an object", path);
    int n = cJSON_GetArraySize(object);
    f->meta = xcalloc((size_t)(n > 0 ? n : 1), sizeof(StMeta));
    const cJSON *item;
    cJSON_ArrayForEach(item, object) {
        printable(item->string, shown, sizeof shown);
        if (strlen(item->string) >= META_KEY_SIZE)
            return set_error(err, errlen, "%s: metadata key '%s' is longer than %d bytes", path,
                             shown, META_KEY_SIZE - 1);
        if (!cJSON_IsString(item))
            return set_error(err, errlen, "%s: metadata '%s': value is not a string", path, shown);
        StMeta *m = &f->meta[f->n_meta++];
        strcpy(m->key, item->string);
        m->value = copy_string(item->valuestring);
    }
    const char **keys = xmalloc(sizeof(char *) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < f->n_meta; i++) keys[i] = f->meta[i].key;
    const char *duplicate = find_duplicate(keys, f->n_meta);
    if (duplicate) set_error(err, errlen, "%s: duplicate metadata key '%s'", path,
                             printable(duplicate, shown, sizeof shown));
    free(keys);
    return duplicate ? -1 : 0;
}

// Validates one tensor entry and fills t (without the data pointer) and *begin.
// Bytes per element of a dtype the data reader takes (0: not one of them).
static int64_t dtype_size(const char *dtype) {
    static const struct { const char *name; int64_t size; } sizes[] = {
        {"F32", 4}, {"U8", 1}, {"I8", 1}, {"BOOL", 1}, {"U16", 2}, {"I16", 2}, {"U32", 4}, {"I32", 4},
        {"U64", 8}, {"I64", 8}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (strcmp(dtype, sizes[i].name) == 0) return sizes[i].size;
    return 0;
}

static int64_t tensor_bytes(const StTensor *t) { return dtype_size(t->dtype) * element_count(t->shape, t->rank); }

static int parse_tensor(const char *path, const cJSON *entry, uint64_t data_size, bool any_dtype, StTensor *t,
                        int64_t *begin, char *err, size_t errlen) {
    char shown[80];
    const char *name = entry->string;
    printable(name, shown, sizeof shown);
    if (name[0] == '\0') return set_error(err, errlen, "%s: header: empty tensor name", path);
    if (strlen(name) >= ST_MAX_NAME)
        return set_error(err, errlen, "%s: tensor name '%s' is longer than %d bytes", path, shown,
                         ST_MAX_NAME - 1);
    if (!cJSON_IsObject(entry))
        return set_error(err, errlen, "%s: tensor '%s': entry is not an object", path, shown);
    strcpy(t->name, name);

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    if (!cJSON_IsString(dtype))
        return set_error(err, errlen, "%s: tensor '%s': missing or non-string dtype", path, shown);
    if (strcmp(dtype->valuestring, "F32") != 0 && !(any_dtype && dtype_size(dtype->valuestring) > 0)) {
        char dtype_shown[32];
        return set_error(err, errlen, "%s: tensor '%s': unsupported dtype %s (%s)", path,
                         shown, printable(dtype->valuestring, dtype_shown, sizeof dtype_shown),
                         any_dtype ? "F32, U8, I8, BOOL, U16, I16, U32, I32, U64 or I64" : "only F32");
    }
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    if (!cJSON_IsArray(shape))
        return set_error(err, errlen, "%s: tensor '%s': missing or non-array shape", path, shown);
    int rank = cJSON_GetArraySize(shape);
    if (rank > ST_MAX_RANK)
        return set_error(err, errlen, "%s: tensor '%s': rank %d exceeds the maximum %d", path, shown,
                         rank, ST_MAX_RANK);
    t->rank = rank;
    for (int d = 0; d < rank; d++) {
        if (!json_to_offset(cJSON_GetArrayItem(shape, d), &t->shape[d]))
            return set_error(err, errlen, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                             path, shown, d);
    }
    int64_t count = element_count(t->shape, rank);
    if (count < 0)
        return set_error(err, errlen, "%s: tensor '%s': shape is too large", path, shown);

    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    int64_t start, end;
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !json_to_offset(cJSON_GetArrayItem(offsets, 0), &start) ||
        !json_to_offset(cJSON_GetArrayItem(offsets, 1), &end))
        return set_error(err, errlen,
                         "%s: tensor '%s': data_offsets must be two non-negative integers", path, shown);
    if (start > end || (uint64_t)end > data_size)
        return set_error(err, errlen,
                         "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                         "] out of range (data size %" PRIu64 " bytes)",
                         path, shown, start, end, data_size);
    if (end - start != dtype_size(t->dtype) * count)
        return set_error(err, errlen,
                         "%s: tensor '%s': data_offsets span %" PRId64 " bytes but shape needs %" PRId64,
                         path, shown, end - start, dtype_size(t->dtype) * count);
    *begin = start;
    return 0;
}

typedef struct {
    int64_t begin, end;   // byte range in the data buffer
    int index;            // tensor index
} ByteRange;

static int compare_ranges(const void *a, const void *b) {
    const ByteRange *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// Parses and validates the header of the file already loaded in f->buffer, then
// points each tensor at its data (copying misaligned tensors to an aligned tail).
static int parse_file(const char *path, StFile *f, bool any_dtype, char *err, size_t errlen) {
    if (f->size < 8)
        return set_error(err, errlen, "%s: file is %zu bytes, too short for a safetensors header",
                         path, f->size);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)f->buffer[i] << (8 * i);
    if (header_len > f->size - 8)
        return set_error(err, errlen, "%s: header length %" PRIu64 " exceeds the file size (%zu bytes)",
                         path, header_len, f->size);
    if (header_len == 0) return set_error(err, errlen, "%s: empty header", path);
    if (memchr(f->buffer + 8, '\0', header_len))
        return set_error(err, errlen, "%s: header contains a NUL byte", path);
    const long escaped_nul = json_escaped_nul((const char *)f->buffer + 8, header_len);
    if (escaped_nul >= 0)   // cJSON would end the string there ("images\u0000x" read as "images")
        return set_error(err, errlen, "%s: header byte %ld: a string holds \\u0000 (NUL), which names and "
                         "metadata may not contain", path, escaped_nul);
    size_t number_len = 0;
    const long fraction = json_non_integer_number((const char *)f->buffer + 8, header_len, &number_len);
    if (fraction >= 0)   // cJSON reads 784.0 as 784; the format's numbers are integers
        return set_error(err, errlen, "%s: header byte %ld: %.*s is not written as an integer (shapes and "
                         "data_offsets are whole numbers, without a fraction or exponent)", path, fraction,
                         (int)(number_len > 40 ? 40 : number_len), (const char *)f->buffer + 8 + fraction);

    char *text = xmalloc(header_len + 1);
    memcpy(text, f->buffer + 8, header_len);
    text[header_len] = '\0';
    // what cJSON reads and JSON forbids (Python's json, cuvae_torch, refuse both), as config files
    int bad_length = 0;
    const long bad_number = json_first_bad_number(text, &bad_length);
    const long control = json_raw_control_character(text);
    if (bad_number >= 0 || control >= 0) {
        if (bad_number >= 0)
            set_error(err, errlen, "%s: header byte %ld: %.*s is not a JSON number (no leading zeros, digits on both "
                      "sides of a '.')", path, bad_number, bad_length > 40 ? 40 : bad_length, text + bad_number);
        else
            set_error(err, errlen, "%s: header byte %ld: a raw control character (0x%02x) in a string: JSON needs it "
                      "escaped", path, control, (unsigned char)text[control]);
        free(text);
        return -1;
    }
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &parse_end, 1);
    if (!root) {
        size_t at = parse_end ? (size_t)(parse_end - text) : 0;
        free(text);
        return set_error(err, errlen, "%s: header is not valid JSON (error near header byte %zu)",
                         path, at);
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return set_error(err, errlen, "%s: header is not a JSON object", path);
    }

    uint64_t data_start = 8 + header_len;
    uint64_t data_size = f->size - data_start;
    int n_entries = cJSON_GetArraySize(root);
    const char **keys = xmalloc(sizeof(char *) * (size_t)(n_entries > 0 ? n_entries : 1));
    int64_t *begins = xmalloc(sizeof(int64_t) * (size_t)(n_entries > 0 ? n_entries : 1));
    f->tensors = xcalloc((size_t)(n_entries > 0 ? n_entries : 1), sizeof(StTensor));
    int status = 0;
    int n_keys = 0;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, root) keys[n_keys++] = entry->string;
    const char *duplicate = find_duplicate(keys, n_keys);
    if (duplicate) {
        char shown[80];
        status = set_error(err, errlen, "%s: duplicate key '%s' in header", path,
                           printable(duplicate, shown, sizeof shown));
    }
    free(keys);
    cJSON_ArrayForEach(entry, root) {
        if (status != 0) break;
        if (strcmp(entry->string, METADATA_KEY) == 0) {
            status = parse_metadata(path, entry, f, err, errlen);
        } else {
            int i = f->n_tensors;
            status = parse_tensor(path, entry, data_size, any_dtype, &f->tensors[i], &begins[i], err, errlen);
            if (status == 0) f->n_tensors++;
        }
    }
    cJSON_Delete(root);

    // Tensor byte ranges must not overlap and must cover the data section with no hole and
    // nothing after them (as in the reference implementation); this also bounds the
    // aligned copies below by the data size.
    if (status == 0 && f->n_tensors == 0 && data_size > 0)
        status = set_error(err, errlen, "%s: %llu bytes of data but no tensor (the format has no unused bytes)",
                           path, (unsigned long long)data_size);
    if (status == 0 && f->n_tensors > 0) {
        ByteRange *ranges = xmalloc(sizeof(ByteRange) * (size_t)f->n_tensors);
        for (int i = 0; i < f->n_tensors; i++) {
            ranges[i].begin = begins[i];
            ranges[i].end = begins[i] + tensor_bytes(&f->tensors[i]);
            ranges[i].index = i;
        }
        qsort(ranges, (size_t)f->n_tensors, sizeof ranges[0], compare_ranges);
        for (int i = 1; i < f->n_tensors; i++) {
            if (ranges[i].begin < ranges[i - 1].end) {
                char shown_a[80], shown_b[80];
                printable(f->tensors[ranges[i - 1].index].name, shown_a, sizeof shown_a);
                printable(f->tensors[ranges[i].index].name, shown_b, sizeof shown_b);
                status = set_error(err, errlen,
                                   "%s: tensors '%s' and '%s' have overlapping data_offsets", path,
                                   shown_a, shown_b);
                break;
            }
        }
        for (int i = 0; status == 0 && i <= f->n_tensors; i++) {
            const int64_t expected = i == 0 ? 0 : ranges[i - 1].end;
            const int64_t found = i < f->n_tensors ? ranges[i].begin : (int64_t)data_size;
            if (found != expected)
                status = set_error(err, errlen, "%s: bytes %lld..%lld of the data section (from byte %llu) belong "
                                   "to no tensor (%s; the format has no unused bytes)", path, (long long)expected,
                                   (long long)found - 1, (unsigned long long)data_start,
                                   i < f->n_tensors ? "a hole between data_offsets" : "after the last tensor");
        }
        free(ranges);
    }

    // Tensors whose data does not start 4-byte aligned (e.g. a header length that
    // is not a multiple of 4) are copied to an aligned area after the file bytes.
    size_t misaligned_bytes = 0;
    for (int i = 0; status == 0 && i < f->n_tensors; i++) {
        size_t bytes = (size_t)tensor_bytes(&f->tensors[i]);
        if (strcmp(f->tensors[i].dtype, "F32") == 0 && (data_start + (uint64_t)begins[i]) % 4 != 0)
            misaligned_bytes += bytes;
    }
    size_t tail_start = (f->size + 15) / 16 * 16;
    if (status == 0 && misaligned_bytes > 0) {
        uint8_t *bigger = realloc(f->buffer, tail_start + misaligned_bytes);
        if (!bigger) {
            status = set_error(err, errlen, "%s: out of memory aligning tensor data", path);
        } else {
            f->buffer = bigger;
        }
    }
    size_t tail_used = 0;
    for (int i = 0; status == 0 && i < f->n_tensors; i++) {
        StTensor *t = &f->tensors[i];
        const uint8_t *source = f->buffer + data_start + begins[i];
        t->bytes = source;
        if (strcmp(t->dtype, "F32") != 0) {   // (safetensors_read_any) read through t->bytes
            t->data = NULL;
        } else if ((data_start + (uint64_t)begins[i]) % 4 == 0) {
            t->data = (const float *)source;
        } else {
            size_t bytes = 4 * (size_t)element_count(t->shape, t->rank);
            uint8_t *aligned = f->buffer + tail_start + tail_used;
            memcpy(aligned, source, bytes);
            tail_used += bytes;
            t->data = (const float *)aligned;
        }
    }
    free(begins);
    return status;
}

// With __metadata__.crc32 (every file cuvae writes): the data section and the
// other metadata must have that CRC-32. Files without it (other writers') are accepted,
// but not one whose __metadata__.format says cuvae wrote it (cuvae-1, cuvae-resume-1):
// its crc32 key was lost or edited, and with it the check of everything else.
static int verify_checksum(const char *path, const StFile *f, char *err, size_t errlen) {
    const char *stored = safetensors_meta(f, CRC_KEY);
    const char *format = safetensors_meta(f, "format");
    if (!stored && format && strncmp(format, "cuvae", 5) == 0)
        return set_error(err, errlen, "%s: __metadata__.format is \"%.40s\", a file cuvae writes with a "
                         "__metadata__.%s, which is missing (the file is damaged or was edited)", path, format,
                         CRC_KEY);
    if (!stored) return 0;
    char *end = NULL;
    unsigned long want = strtoul(stored, &end, 16);
    if (strlen(stored) != 8 || *end != '\0')
        return set_error(err, errlen, "%s: __metadata__.%s: expected 8 hex digits", path, CRC_KEY);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)f->buffer[i] << (8 * i);
    size_t start = 8 + (size_t)header_len;
    const uLong data_crc = crc_bytes(crc32(0L, Z_NULL, 0), f->buffer + start, f->size - start);
    uLong crc = crc_metadata(data_crc, f->meta, f->n_meta, true);
    if ((unsigned long)crc != want && (unsigned long)crc_metadata(data_crc, f->meta, f->n_meta, false) == want)
        crc = want;   // a file written before 2026-12-06: its metadata in file order
    if ((unsigned long)crc != want)
        return set_error(err, errlen, "%s: checksum mismatch: __metadata__.%s is %s but the tensor "
                         "data and metadata give %08lx (the file is damaged or was edited)", path, CRC_KEY,
                         stored, (unsigned long)crc);
    const char *entries = safetensors_meta(f, ENTRIES_KEY);
    if (!entries) return 0;   // (written before the key was)
    want = strtoul(entries, &end, 16);
    if (strlen(entries) != 8 || *end != '\0')
        return set_error(err, errlen, "%s: __metadata__.%s: expected 8 hex digits", path, ENTRIES_KEY);
    size_t *begins = xmalloc(sizeof(size_t) * (size_t)(f->n_tensors > 0 ? f->n_tensors : 1));
    for (int i = 0; i < f->n_tensors; i++) begins[i] = (size_t)(f->tensors[i].bytes - (f->buffer + start));
    crc = crc_entries(f->tensors, begins, f->n_tensors);
    free(begins);
    if ((unsigned long)crc != want)
        return set_error(err, errlen, "%s: checksum mismatch: __metadata__.%s is %s but the header's tensor entries "
                         "(names, dtypes, shapes, offsets) give %08lx (the file is damaged or was edited)", path,
                         ENTRIES_KEY, entries, (unsigned long)crc);
    return 0;
}

static int read_file_checked(const char *path, StFile *f, bool any_dtype, char *err, size_t errlen);

int safetensors_read(const char *path, StFile *f, char *err, size_t errlen) {
    return read_file_checked(path, f, false, err, errlen);
}

int safetensors_read_any(const char *path, StFile *f, char *err, size_t errlen) {
    return read_file_checked(path, f, true, err, errlen);
}

static int read_file_checked(const char *path, StFile *f, bool any_dtype, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    if (!path) return set_error(err, errlen, "safetensors_read: NULL path");
    FILE *fp = open_regular_file(path, err, errlen);
    if (!fp) return -1;
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        fclose(fp);
        return set_error(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    }
    f->size = (size_t)st.st_size;
    f->buffer = malloc(f->size > 0 ? f->size : 1);
    if (!f->buffer) {
        fclose(fp);
        set_error(err, errlen, "%s: out of memory reading %zu bytes", path, f->size);
        f->size = 0;
        return -1;
    }
    size_t got = fread(f->buffer, 1, f->size, fp);
    fclose(fp);
    if (got != f->size) {
        safetensors_free(f);
        return set_error(err, errlen, "%s: read error (got %zu of %zu bytes)", path, got,
                         (size_t)st.st_size);
    }
    if (parse_file(path, f, any_dtype, err, errlen) != 0 || verify_checksum(path, f, err, errlen) != 0) {
        safetensors_free(f);
        return -1;
    }
    return 0;
}

int safetensors_check_finite(const char *path, const StTensor *t, char *err, size_t errlen) {
    size_t n = (size_t)element_count(t->shape, t->rank);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(t->data[i]))
            return set_error(err, errlen, "%s: tensor %s: element %zu is %s (a damaged file, or a "
                             "run that diverged)", path, t->name, i, isnan(t->data[i]) ? "NaN" : "infinite");
    }
    return 0;
}

int safetensors_check_finite_before_write(const char *path, const StTensor *tensors, int n, char *err,
                                          size_t errlen) {
    for (int k = 0; k < n; k++) {
        const StTensor *t = &tensors[k];
        size_t count = (size_t)element_count(t->shape, t->rank);
        for (size_t i = 0; i < count; i++)
            if (!isfinite(t->data[i]))
                return set_error(err, errlen, "%s: not written: tensor %s, element %zu is %s: the run diverged (its "
                                 "loss stayed finite); the file holds the last finished epoch, if one was; try a lower "
                                 "train.lr", path, t->name, i, isnan(t->data[i]) ? "NaN" : "infinite");
    }
    return 0;
}

const StTensor *safetensors_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *safetensors_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

void safetensors_free(StFile *f) {
    if (!f) return;
    for (int i = 0; i < f->n_meta; i++) free(f->meta[i].value);
    free(f->meta);
    free(f->tensors);
    free(f->buffer);
    memset(f, 0, sizeof *f);
}

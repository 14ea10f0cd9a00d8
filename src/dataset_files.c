// dataset_files.c: data.dataset "files" (dataset.h): your own images, from a
// folder of PNG files (one sub-folder per class, like torchvision's
// ImageFolder, or a flat folder without labels), a .npy array, a .safetensors
// file (an "images" tensor and optional "labels") or an IDX file of any shape,
// plain or gzip. Grey or RGB, uint8 (0..255) or float32 in [0, 1]. Everything
// becomes the Dataset's (n, C, H, W) uint8 layout, the one the layer graph
// reads. Every malformed input is an error naming the file, and the byte
// offset, element or image where it went wrong.
#include "cuvae/dataset.h"
#include "cuvae/common.h"
#include "cuvae/idx.h"
#include "cuvae/image.h"
#include "cuvae/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

// An array as read from a file, before it becomes images or labels.
typedef enum { ELEM_U8, ELEM_F32, ELEM_I32, ELEM_I64, ELEM_U16, ELEM_I16, ELEM_I8, ELEM_BOOL, ELEM_U32,
               ELEM_U64 } ElemType;

typedef struct {
    int rank;
    int64_t dims[4];
    ElemType type;
    size_t count;
    const uint8_t *bytes;     // count elements, little-endian (inside `owner`)
    size_t data_offset;       // byte offset of the first element in the file (for errors)
    void *owner;              // what to free
    StFile st;                // a safetensors file keeps its buffer here
    bool is_st;
} RawArray;

static size_t elem_size(ElemType t) {
    switch (t) {
    case ELEM_U8: case ELEM_I8: case ELEM_BOOL: return 1;
    case ELEM_U16: case ELEM_I16: return 2;
    case ELEM_F32: case ELEM_I32: case ELEM_U32: return 4;
    case ELEM_I64: case ELEM_U64: return 8;
    }
    return 1;
}

static void raw_free(RawArray *a) {
    if (a->is_st) safetensors_free(&a->st);
    else free(a->owner);
    memset(a, 0, sizeof *a);
}

static bool is_directory(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// Refuses an allocation the host cannot hold, naming the size and the file.
// Reads a whole file (regular files only), checking its size against the host's memory.
static uint8_t *read_whole_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = open_regular_file(path, err, errlen);   // (a FIFO must not hang the read)
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        set_error(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        return NULL;
    }
    if (check_host_memory(path, (size_t)st.st_size, err, errlen) != 0) {
        fclose(f);
        return NULL;
    }
    uint8_t *buffer = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
    if (!buffer) {
        fclose(f);
        set_error(err, errlen, "%s: out of host memory reading %lld bytes", path, (long long)st.st_size);
        return NULL;
    }
    size_t got = fread(buffer, 1, (size_t)st.st_size, f);
    fclose(f);
    if (got != (size_t)st.st_size) {
        free(buffer);
        set_error(err, errlen, "%s: read error (got %zu of %lld bytes)", path, got, (long long)st.st_size);
        return NULL;
    }
    *size = got;
    return buffer;
}

// ---- .npy (NumPy's format, version 1.0 to 3.0) -----------------------------

// The value text after 'key': in the header dict (NULL if absent).
static const char *npy_field(const char *header, const char *key) {
    char quoted[32];
    snprintf(quoted, sizeof quoted, "'%s'", key);
    const char *at = strstr(header, quoted);
    if (!at) return NULL;
    at = strchr(at + strlen(quoted), ':');
    if (!at) return NULL;
    at++;
    while (*at == ' ') at++;
    return at;
}

// The header is a Python dict literal as NumPy writes it: {'key': value, ...} with string,
// True / False and tuple-of-integers values (a 1-tuple with its comma), then spaces and a
// newline. 0, or -1 with `why` naming what is malformed (NumPy refuses these headers too).
static int npy_header_check(const char *h, char *why, size_t whylen) {
    const char *p = h;
    while (*p == ' ') p++;
    if (*p++ != '{') return set_error(why, whylen, "does not start with '{'");
    const char *seen_key[8];   // the first keys, for a key given twice
    int seen_len[8];
    for (int entries = 0;; entries++) {
        while (*p == ' ') p++;
        if (*p == '}') break;
        if (*p == '"')   // (NumPy writes 'key'; np.load's literal_eval would read "key" too)
            return set_error(why, whylen, "entry %d: a key in double quotes; cuvae reads the header numpy.save "
                             "writes, with 'single' quotes: save the array again with numpy.save", entries + 1);
        if (*p != '\'') return set_error(why, whylen, "entry %d: expected a quoted key", entries + 1);
        const char *key = ++p;
        p = strchr(p, '\'');
        if (!p) return set_error(why, whylen, "entry %d: unterminated key", entries + 1);
        const int key_len = (int)(p - key);
        for (int k = 0; k < entries && k < 8; k++)
            if (seen_len[k] == key_len && strncmp(seen_key[k], key, (size_t)key_len) == 0)
                return set_error(why, whylen, "key '%.*s' given twice (Python would keep the last one unsaid): save "
                                 "the array again with numpy.save", key_len > 20 ? 20 : key_len, key);
        if (entries < 8) {
            seen_key[entries] = key;
            seen_len[entries] = key_len;
        }
        p++;
        while (*p == ' ') p++;
        if (*p++ != ':') return set_error(why, whylen, "key '%.*s': expected ':'", key_len > 20 ? 20 : key_len, key);
        while (*p == ' ') p++;
        const bool is_fortran = key_len == 13 && strncmp(key, "fortran_order", 13) == 0;
        if (*p == '\'') {   // a string
            p = strchr(p + 1, '\'');
            if (!p) return set_error(why, whylen, "key '%.*s': unterminated string", key_len, key);
            p++;
        } else if (strncmp(p, "True", 4) == 0 || strncmp(p, "False", 5) == 0) {
            p += *p == 'T' ? 4 : 5;
        } else if (!is_fortran && *p == '[') {   // a list: a structured dtype's descr ([('a', '|u1'), ...])
            int depth = 0;
            for (; *p; p++) {
                if (*p == '\'') {
                    p = strchr(p + 1, '\'');
                    if (!p) return set_error(why, whylen, "key '%.*s': unterminated string", key_len, key);
                } else if (*p == '[' || *p == '(') {
                    depth++;
                } else if ((*p == ']' || *p == ')') && --depth == 0) {
                    break;
                }
            }
            if (!*p) return set_error(why, whylen, "key '%.*s': unterminated list", key_len > 20 ? 20 : key_len, key);
            p++;
        } else if (!is_fortran && ((*p >= '0' && *p <= '9') || *p == '-')) {   // an integer (another key's)
            p++;
            while (*p >= '0' && *p <= '9') p++;
        } else if (*p == '(') {   // a tuple of integers: (), (n,), (a, b), (a, b,)
            p++;
            int items = 0;
            bool comma = false;
            for (;;) {
                while (*p == ' ') p++;
                if (*p == ')') break;
                if (items > 0 && !comma) return set_error(why, whylen, "key '%.*s': expected ',' between sizes", key_len, key);
                if (*p < '0' || *p > '9') return set_error(why, whylen, "key '%.*s': expected a size", key_len, key);
                if (*p == '0' && p[1] >= '0' && p[1] <= '9')
                    return set_error(why, whylen, "key '%.*s': a size with a leading zero is a syntax error in Python",
                                     key_len, key);
                while (*p >= '0' && *p <= '9') p++;
                if (*p == 'L' || *p == 'l')   // (a Python 2 long, which np.load still filters out)
                    return set_error(why, whylen, "key '%.*s': a size written with Python 2's long suffix (%c): save the "
                                     "array again with numpy.save under Python 3", key_len, key, *p);
                items++;
                while (*p == ' ') p++;
                comma = *p == ',';
                if (comma) p++;
            }
            if (items == 1 && !comma)
                return set_error(why, whylen, "key '%.*s': (n) is a number in Python; a 1-tuple is (n,)", key_len, key);
            p++;
        } else {
            return set_error(why, whylen, "key '%.*s': %s", key_len > 20 ? 20 : key_len, key,
                             is_fortran ? "must be True or False" : "expected a string, True, False, an integer, a list or a tuple");
        }
        if (is_fortran && strncmp(p - 4, "True", 4) != 0 && strncmp(p - 5, "False", 5) != 0)
            return set_error(why, whylen, "key 'fortran_order': must be True or False");
        while (*p == ' ') p++;
        if (*p == ',') p++;
        else if (*p != '}') return set_error(why, whylen, "after key '%.*s': expected ',' or '}'", key_len > 20 ? 20 : key_len, key);
    }
    p++;
    while (*p == ' ') p++;
    if (*p == '\n') p++;
    if (*p) return set_error(why, whylen, "text after the closing '}'");
    return 0;
}

// The header dict's keys: quoted strings followed by ':'.
static int npy_key_count(const char *header) {
    int keys = 0;
    for (const char *at = strchr(header, '\''); at; at = strchr(at + 1, '\'')) {
        const char *end = strchr(at + 1, '\'');
        if (!end) break;
        const char *next = end + 1;
        while (*next == ' ') next++;
        if (*next == ':') keys++;
        at = end;
    }
    return keys;
}

static int read_npy(const char *path, RawArray *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    size_t size = 0;
    uint8_t *buffer = read_whole_file(path, &size, err, errlen);
    if (!buffer) return -1;
    out->owner = buffer;
    if (size < 10 || memcmp(buffer, "\x93NUMPY", 6) != 0) {
        raw_free(out);
        return set_error(err, errlen, "%s: not a .npy file (bad magic at byte 0: want \\x93NUMPY)", path);
    }
    int major = buffer[6], minor = buffer[7];   // NumPy knows 1.0, 2.0 and 3.0 only
    size_t header_len, header_start;
    if (minor == 0 && major == 1) {
        header_len = (size_t)buffer[8] | (size_t)buffer[9] << 8;
        header_start = 10;
    } else if (minor == 0 && (major == 2 || major == 3) && size >= 12) {
        header_len = (size_t)buffer[8] | (size_t)buffer[9] << 8 | (size_t)buffer[10] << 16 | (size_t)buffer[11] << 24;
        header_start = 12;
    } else {
        raw_free(out);
        return set_error(err, errlen, "%s: unsupported .npy version %d.%d (byte 6)", path, major, minor);
    }
    if (header_start + header_len > size) {
        raw_free(out);
        return set_error(err, errlen, "%s: truncated in the header: it says %zu bytes from byte %zu, the file has %zu",
                         path, header_len, header_start, size);
    }
    const uint8_t *header_nul = memchr(buffer + header_start, 0, header_len);
    if (header_nul) {   // the parse below reads a C string: a NUL would end the header early, unsaid
        const size_t at = (size_t)(header_nul - buffer);
        raw_free(out);
        return set_error(err, errlen, "%s: malformed header: a NUL byte at byte %zu (NumPy's header is text)", path, at);
    }
    char *header = xmalloc(header_len + 1);
    memcpy(header, buffer + header_start, header_len);
    header[header_len] = '\0';
    int status = -1;
    char why[160];
    if (npy_header_check(header, why, sizeof why) != 0) {
        set_error(err, errlen, "%s: malformed header at byte %zu: %s", path, header_start, why);
        goto done;
    }
    const char *descr = npy_field(header, "descr"), *fortran = npy_field(header, "fortran_order"),
               *shape = npy_field(header, "shape");
    if (!descr || !fortran || !shape) {
        set_error(err, errlen, "%s: header at byte %zu lacks 'descr', 'fortran_order' or 'shape'", path, header_start);
        goto done;
    }
    if (npy_key_count(header) != 3) {   // NumPy's reader refuses other keys too
        set_error(err, errlen, "%s: header at byte %zu has keys besides 'descr', 'fortran_order' and 'shape'", path,
                  header_start);
        goto done;
    }
    static const struct { const char *descr; ElemType type; } types[] = {
        {"'|u1'", ELEM_U8}, {"'<u1'", ELEM_U8}, {"'|b1'", ELEM_BOOL}, {"'<f4'", ELEM_F32}, {"'<i4'", ELEM_I32},
        {"'<i8'", ELEM_I64}, {"'<u2'", ELEM_U16}, {"'<i2'", ELEM_I16}, {"'|i1'", ELEM_I8}, {"'<u4'", ELEM_U32},
        {"'<u8'", ELEM_U64}};
    bool known = false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strncmp(descr, types[i].descr, strlen(types[i].descr)) == 0) {
            out->type = types[i].type;
            known = true;
        }
    if (!known) {
        char shown[40];
        size_t n = strcspn(descr, ",}");
        if (descr[0] == '[') snprintf(shown, sizeof shown, "(a structured dtype: fields)");
        else snprintf(shown, sizeof shown, "%.*s", (int)(n < 12 ? n : 12), descr);
        set_error(err, errlen, "%s: unsupported dtype %s (images: uint8 '|u1' or float32 '<f4'; labels: a "
                  "little-endian integer type, '|b1', '|i1', '<i2' .. '<i8', '|u1', '<u2' .. '<u8'%s)", path, shown,
                  descr[1] == '>' ? "; this one is big-endian: save with .astype(a.dtype.newbyteorder('<'))" : "");
        goto done;
    }
    if (strncmp(fortran, "False", 5) != 0) {
        set_error(err, errlen, "%s: fortran_order arrays are not supported (save with np.ascontiguousarray)", path);
        goto done;
    }
    if (*shape != '(') {
        set_error(err, errlen, "%s: malformed 'shape' in the header at byte %zu", path, header_start);
        goto done;
    }
    const char *p = shape + 1;
    size_t count = 1;
    out->rank = 0;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end = NULL;
        errno = 0;
        long long d = strtoll(p, &end, 10);
        if (end != p && d > 0 && errno == ERANGE) {   // 2^63 or more: strtoll gives LLONG_MAX
            set_error(err, errlen, "%s: 'shape' is too large", path);
            goto done;
        }
        if (end == p || d < 0 || out->rank == 4) {
            set_error(err, errlen, "%s: 'shape' in the header must be 1 to 4 non-negative sizes", path);
            goto done;
        }
        out->dims[out->rank++] = d;
        if (d > 0 && count > SIZE_MAX / (size_t)d) {
            set_error(err, errlen, "%s: 'shape' is too large", path);
            goto done;
        }
        count *= (size_t)d;
        p = end;
    }
    if (out->rank == 0) {
        set_error(err, errlen, "%s: a scalar array: want (N, H, W), (N, H, W, C), (N, C, H, W) or labels (N)", path);
        goto done;
    }
    if (count > SIZE_MAX / elem_size(out->type)) {
        set_error(err, errlen, "%s: 'shape' is too large", path);
        goto done;
    }
    out->count = count;
    out->data_offset = header_start + header_len;
    size_t want = count * elem_size(out->type), have = size - out->data_offset;
    if (have != want) {
        set_error(err, errlen, "%s: %s at byte %zu: the header's shape needs %zu bytes of data, found %zu", path,
                  have < want ? "truncated" : "trailing bytes", out->data_offset, want, have);
        goto done;
    }
    out->bytes = buffer + out->data_offset;
    status = 0;
done:
    free(header);
    if (status != 0) raw_free(out);
    return status;
}

// ---- .safetensors: the "images" or "labels" tensor ---------------------------

static int read_safetensors_tensor(const char *path, const char *name, bool required, RawArray *out, char *err,
                                   size_t errlen) {
    memset(out, 0, sizeof *out);
    out->is_st = true;
    if (safetensors_read_any(path, &out->st, err, errlen) != 0) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    // a tensor of another name would be ignored: a misspelt "labels" would train unlabelled unsaid
    for (int i = 0; i < out->st.n_tensors; i++)
        if (strcmp(out->st.tensors[i].name, "images") != 0 && strcmp(out->st.tensors[i].name, "labels") != 0) {
            set_error(err, errlen, "%s: tensor \"%s\" is neither \"images\" nor \"labels\" (a data file holds "
                      "\"images\" and optional \"labels\"; another would be ignored)", path, out->st.tensors[i].name);
            raw_free(out);
            return -1;
        }
    const StTensor *t = safetensors_find(&out->st, name);
    if (!t) {
        raw_free(out);
        if (!required) return 1;
        return set_error(err, errlen, "%s: no tensor named \"%s\" (want \"images\" and optional \"labels\")", path, name);
    }
    static const struct { const char *dtype; ElemType type; } types[] = {
        {"U8", ELEM_U8}, {"F32", ELEM_F32}, {"I32", ELEM_I32}, {"I64", ELEM_I64}, {"U16", ELEM_U16},
        {"I16", ELEM_I16}, {"I8", ELEM_I8}, {"BOOL", ELEM_BOOL}, {"U32", ELEM_U32}, {"U64", ELEM_U64}};
    bool known = false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(t->dtype, types[i].dtype) == 0) {
            out->type = types[i].type;
            known = true;
        }
    if (!known) {
        set_error(err, errlen, "%s: tensor \"%s\" has dtype %s (images: U8 or F32; labels: BOOL, I8 .. I64 or U8 .. "
                  "U64)", path,
                  name, t->dtype);
        raw_free(out);
        return -1;
    }
    if (t->rank < 1) {
        set_error(err, errlen, "%s: tensor \"%s\" is a scalar", path, name);
        raw_free(out);
        return -1;
    }
    out->rank = t->rank;
    out->count = 1;
    for (int d = 0; d < t->rank; d++) {
        out->dims[d] = t->shape[d];
        out->count *= (size_t)t->shape[d];
    }
    out->bytes = t->bytes;
    out->data_offset = (size_t)(t->bytes - out->st.buffer);
    return 0;
}

// ---- IDX of any shape ---------------------------------------------------------

static int read_idx_array(const char *path, RawArray *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    IdxArray a;
    if (idx_read(path, &a, err, errlen) != 0) return -1;
    out->rank = a.rank;
    for (int d = 0; d < a.rank; d++) out->dims[d] = a.dims[d];
    out->type = ELEM_U8;
    out->count = a.count;
    out->bytes = a.data;
    out->owner = a.data;
    out->data_offset = 4 + 4 * (size_t)a.rank;
    return 0;
}

static int read_array(const char *path, DataFormat format, RawArray *out, char *err, size_t errlen) {
    if (format == DATA_FORMAT_NPY) return read_npy(path, out, err, errlen);
    if (format == DATA_FORMAT_SAFETENSORS) return read_safetensors_tensor(path, "images", true, out, err, errlen);
    return read_idx_array(path, out, err, errlen);
}

// ---- arrays to images and labels -------------------------------------------------

static int64_t read_integer(const RawArray *a, size_t i) {
    const uint8_t *p = a->bytes + i * elem_size(a->type);
    switch (a->type) {
    case ELEM_U8: case ELEM_BOOL: return p[0];
    case ELEM_I8: return (int8_t)p[0];
    case ELEM_U16: return (int64_t)(p[0] | p[1] << 8);
    case ELEM_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case ELEM_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case ELEM_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case ELEM_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case ELEM_U64: { uint64_t v; memcpy(&v, p, 8); return v > INT64_MAX ? INT64_MAX : (int64_t)v; }   // (> 255: refused)
    case ELEM_F32: return -1;
    }
    return -1;
}

static bool layout_channels(int64_t d) { return d == 1 || d == 3; }

// (N, H, W), (N, H, W, C) or (N, C, H, W) -> d's (n, C, H, W) uint8 images.
static int images_from_array(const char *path, const RawArray *a, DataLayout layout, Dataset *d, char *err,
                             size_t errlen) {
    int64_t n = a->dims[0], c = 1, h = 0, w = 0;
    bool nhwc = true;
    if (a->rank == 3) {
        if (layout != DATA_LAYOUT_AUTO)   // no channel axis to place: the key would be ignored
            return set_error(err, errlen, "%s: data.layout \"%s\" places a channel axis, but the images are (N, H, W) "
                             "(%lld, %lld, %lld); leave data.layout \"auto\"", path,
                             layout == DATA_LAYOUT_NHWC ? "nhwc" : "nchw", (long long)a->dims[0],
                             (long long)a->dims[1], (long long)a->dims[2]);
        h = a->dims[1];
        w = a->dims[2];
    } else if (a->rank == 4) {
        bool last = layout_channels(a->dims[3]), second = layout_channels(a->dims[1]);
        if (layout == DATA_LAYOUT_NHWC || (layout == DATA_LAYOUT_AUTO && last && !second)) nhwc = true;
        else if (layout == DATA_LAYOUT_NCHW || (layout == DATA_LAYOUT_AUTO && second && !last)) nhwc = false;
        else
            return set_error(err, errlen, "%s: shape (%lld, %lld, %lld, %lld) is ambiguous or has no 1- or 3-channel "
                             "axis: set data.layout to \"nhwc\" or \"nchw\"", path, (long long)a->dims[0],
                             (long long)a->dims[1], (long long)a->dims[2], (long long)a->dims[3]);
        c = nhwc ? a->dims[3] : a->dims[1];
        h = nhwc ? a->dims[1] : a->dims[2];
        w = nhwc ? a->dims[2] : a->dims[3];
    } else {
        return set_error(err, errlen, "%s: images must be (N, H, W), (N, H, W, C) or (N, C, H, W); found rank %d",
                         path, a->rank);
    }
    if (n < 1 || h < 1 || w < 1 || c < 1)
        return set_error(err, errlen, "%s: no images (shape has a zero size)", path);
    if (c > (1 << 24) || h > (1 << 24) || w > (1 << 24))   // (before their product can overflow)
        return set_error(err, errlen, "%s: images of %lld x %lld x %lld values are more than cuvae takes (%d per "
                         "image)", path, (long long)c, (long long)h, (long long)w, 1 << 24);
    if (a->type != ELEM_U8 && a->type != ELEM_F32)
        return set_error(err, errlen, "%s: images must be uint8 (0..255) or float32 (in [0, 1]); found %s", path,
                         a->type == ELEM_BOOL ? "bool" : "another integer type");
    if (n > INT32_MAX || (int64_t)c * h * w > (1 << 24))
        return set_error(err, errlen, "%s: %lld images of %lld x %lld x %lld values are more than cuvae takes", path,
                         (long long)n, (long long)c, (long long)h, (long long)w);
    const size_t D = (size_t)(c * h * w);
    size_t off_grid = 0;     // float32 values that are no k / 255 (rounded to the nearest one: said)
    double largest_move = 0.0;
    uint8_t *pixels = malloc((size_t)n * D);
    if (!pixels) return set_error(err, errlen, "%s: out of host memory for %zu bytes of images", path, (size_t)n * D);
    for (int64_t i = 0; i < n; i++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t x = 0; x < w; x++) {
                    size_t src = nhwc ? (size_t)(((i * h + y) * w + x) * c + ch)
                                      : (size_t)(((i * c + ch) * h + y) * w + x);
                    size_t dst = (size_t)i * D + (size_t)((ch * h + y) * w + x);
                    if (a->type == ELEM_U8) {
                        pixels[dst] = a->bytes[src];
                        continue;
                    }
                    float v;
                    memcpy(&v, a->bytes + 4 * src, 4);
                    if (!(v >= 0.0f && v <= 1.0f)) {
                        free(pixels);
                        return set_error(err, errlen, "%s: float32 value %.9g of element %zu (byte %zu) is outside "
                                         "[0, 1]", path, (double)v, src, a->data_offset + 4 * src);
                    }
                    const long level = lrintf(v * 255.0f);
                    pixels[dst] = (uint8_t)level;
                    const double move = fabs((double)v - (double)level / 255.0);
                    if (move > 1e-6) {   // (k / 255 in float32 is within 3e-8 of it)
                        off_grid++;
                        if (move > largest_move) largest_move = move;
                    }
                }
    if (off_grid)
        snprintf(d->rounding_note, sizeof d->rounding_note, "cuvae: note: %s: float32 pixels are kept as 8 bits, "
                 "round(255 v) / 255, as every image is: %zu of its %zu values are not multiples of 1/255 (moved "
                 "by up to %.2g)\n", path, off_grid, (size_t)n * D, largest_move);
    d->n = (int)n;
    d->channels = (int)c;
    d->rows = (int)h;
    d->cols = (int)w;
    d->dim = (int)D;
    d->images = pixels;
    return 0;
}

// Labels (N) of any integer type, each in 0..255: d->labels and d->n_classes (the largest + 1).
static int labels_from_array(const char *path, const RawArray *a, Dataset *d, char *err, size_t errlen) {
    if (a->rank != 1)
        return set_error(err, errlen, "%s: labels must be a 1-D array (N), found rank %d", path, a->rank);
    if (a->type == ELEM_F32)
        return set_error(err, errlen, "%s: labels must be integers, found float32", path);
    if (a->dims[0] != d->n)
        return set_error(err, errlen, "%s: %lld labels for %d images", path, (long long)a->dims[0], d->n);
    d->labels = xmalloc((size_t)d->n ? (size_t)d->n : 1);
    int largest = 0;
    for (int i = 0; i < d->n; i++) {
        int64_t v = read_integer(a, (size_t)i);
        if (v < 0 || v > 255) {
            const size_t at = a->data_offset + (size_t)i * elem_size(a->type);
            uint64_t u = 0;   // a uint64 past INT64_MAX is said as the file holds it, not clamped
            if (a->type == ELEM_U64) memcpy(&u, a->bytes + (size_t)i * 8, 8);
            if (a->type == ELEM_U64)
                return set_error(err, errlen, "%s: label %llu of example %d (byte %zu) is outside 0..255", path,
                                 (unsigned long long)u, i, at);
            return set_error(err, errlen, "%s: label %lld of example %d (byte %zu) is outside 0..255", path,
                             (long long)v, i, at);
        }
        d->labels[i] = (uint8_t)v;
        if (v > largest) largest = (int)v;
    }
    d->n_classes = largest + 1;
    return 0;
}

// ---- a folder of PNG images ----------------------------------------------------

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Whether a name ends in .png, in any case (.png, .PNG, .Png), as ImageFolder matches it.
static bool png_file_name(const char *name) {
    const size_t len = strlen(name);
    return len > 4 && strcasecmp(name + len - 4, ".png") == 0;
}

// The sorted entries of dir that are folders (want_dirs) or .png files. refuse_dirs: a folder
// among the images is refused, naming it (a class folder's sub-folder: torchvision's ImageFolder
// would walk into it, cuvae reads the images directly in each class folder; skipped, its images
// would go missing unsaid).
static char **list_entries(const char *dir, bool want_dirs, bool refuse_dirs, int *count, char *err, size_t errlen) {
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        set_error(err, errlen, "%s: cannot open the folder: %s", dir, strerror(errno));
        return NULL;
    }
    int cap = 64;
    char **names = xmalloc((size_t)cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char full[1600];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        struct stat st;
        const bool exists = stat(full, &st) == 0;
        const int stat_errno = exists ? 0 : errno;
        const bool png_name = png_file_name(e->d_name);
        // an image's name on something that is not one (a dangling link, a folder, a FIFO) is
        // an image that would go missing unsaid: refused (FIFOs and devices are never opened)
        if (!want_dirs && png_name && (!exists || !S_ISREG(st.st_mode))) {
            set_error(err, errlen, "%s: named like a PNG image but %s", full,
                      !exists ? "cannot be read (a dangling link?)" : S_ISDIR(st.st_mode) ? "is a folder"
                                                                          : "is not a regular file");
            closedir(d);
            for (int k = 0; k < *count; k++) free(names[k]);
            free(names);
            *count = 0;
            return NULL;
        }
        if (!exists && want_dirs && !png_name) {   // maybe a class folder gone missing: its class would go unsaid
            set_error(err, errlen, "%s: cannot be followed (%s): a class folder that is missing would leave its "
                      "class out unsaid; restore its target or remove the link", full,
                      stat_errno == ELOOP ? "a loop of links" : stat_errno == ENOENT ? "a dangling link"
                                                                                    : strerror(stat_errno));
            closedir(d);
            for (int k = 0; k < *count; k++) free(names[k]);
            free(names);
            *count = 0;
            return NULL;
        }
        if (!exists) continue;   // (beside the images, a dangling link not named *.png: not an entry)
        bool folder = S_ISDIR(st.st_mode);
        if (refuse_dirs && folder) {
            set_error(err, errlen, "%s: a folder inside the class folder %s: cuvae reads the .png images directly "
                      "in each class folder (not in sub-folders, as torchvision's ImageFolder would): move any "
                      "images up, and the folder out", full, dir);
            closedir(d);
            for (int k = 0; k < *count; k++) free(names[k]);
            free(names);
            *count = 0;
            return NULL;
        }
        bool png = S_ISREG(st.st_mode) && png_name;
        if (want_dirs ? !folder : !png) continue;
        if (*count == cap) {   // (a few bytes per name: an allocation failure here is a crash-level OOM)
            cap *= 2;
            char **bigger = xmalloc((size_t)cap * sizeof *names);
            memcpy(bigger, names, (size_t)*count * sizeof *names);
            free(names);
            names = bigger;
        }
        size_t len = strlen(e->d_name);
        names[*count] = xmalloc(len + 1);
        memcpy(names[(*count)++], e->d_name, len + 1);
    }
    closedir(d);
    qsort(names, (size_t)*count, sizeof *names, compare_names);
    return names;
}

static char **copy_names(char *const *names, int n) {
    if (!names) return NULL;
    char **copy = xmalloc((size_t)(n ? n : 1) * sizeof *copy);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        copy[i] = xmalloc(len + 1);
        memcpy(copy[i], names[i], len + 1);
    }
    return copy;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

// Appends one PNG to d (growing it); the first image fixes the size and channels.
static int append_png(const char *path, const char *first, int label, Dataset *d, size_t *cap, char *err,
                      size_t errlen) {
    int w, h, c;
    uint8_t *hwc = png_read(path, &w, &h, &c, err, errlen);
    if (!hwc) return -1;
    if (d->n == 0) {
        d->channels = c;
        d->rows = h;
        d->cols = w;
        d->dim = c * h * w;
    } else if (w != d->cols || h != d->rows || c != d->channels) {
        free(hwc);
        return set_error(err, errlen, "%s: %d x %d %s, but %s is %d x %d %s (all images must share one size and "
                         "channel count)", path, w, h, c == 1 ? "grey" : "RGB", first, d->cols, d->rows,
                         d->channels == 1 ? "grey" : "RGB");
    }
    const size_t D = (size_t)d->dim;
    if ((size_t)(d->n + 1) > *cap) {
        *cap = *cap ? 2 * *cap : 256;
        if (check_host_memory(path, *cap * D, err, errlen) != 0) {
            free(hwc);
            return -1;
        }
        uint8_t *images = realloc(d->images, *cap * D), *labels = images ? realloc(d->labels, *cap) : NULL;
        if (images) d->images = images;
        if (labels) d->labels = labels;
        if (!images || !labels) {
            free(hwc);
            return set_error(err, errlen, "%s: out of host memory for %zu bytes of images", path, *cap * D);
        }
    }
    uint8_t *dst = d->images + (size_t)d->n * D;
    for (int ch = 0; ch < c; ch++)   // (H, W, C) -> (C, H, W)
        for (int p = 0; p < h * w; p++) dst[(size_t)ch * h * w + p] = hwc[(size_t)p * c + ch];
    free(hwc);
    d->labels[d->n++] = (uint8_t)label;
    return 0;
}

static int read_png_folder(const char *dir, Dataset *d, char *err, size_t errlen) {
    int n_classes = 0;
    char **classes = list_entries(dir, true, false, &n_classes, err, errlen);
    if (!classes) return -1;
    if (n_classes > 256) {
        free_names(classes, n_classes);
        return set_error(err, errlen, "%s: %d class folders; at most 256", dir, n_classes);
    }
    if (n_classes) {   // class folders: no image may sit beside them unlabelled
        int loose = 0;
        char **files = list_entries(dir, false, false, &loose, err, errlen);
        if (!files) {
            free_names(classes, n_classes);
            return -1;
        }
        if (loose) {
            set_error(err, errlen, "%s: holds both .png images (%s, ...) and class folders (%s, ...): put every "
                      "image in a class folder, or use a flat folder", dir, files[0], classes[0]);
            free_names(files, loose);
            free_names(classes, n_classes);
            return -1;
        }
        free_names(files, loose);
    }
    size_t cap = 0;
    char first[1200] = "";
    int status = 0;
    for (int k = 0; k < (n_classes ? n_classes : 1) && status == 0; k++) {
        char folder[1100];
        if (n_classes) snprintf(folder, sizeof folder, "%s/%s", dir, classes[k]);
        else snprintf(folder, sizeof folder, "%s", dir);
        int n_files = 0;
        char **files = list_entries(folder, false, n_classes > 0, &n_files, err, errlen);
        if (!files) {
            status = -1;
            break;
        }
        if (n_files == 0) status = set_error(err, errlen, "%s: no .png images%s", folder,
                                             n_classes ? " in this class folder" : " (and no class folders)");
        for (int i = 0; i < n_files && status == 0; i++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/%s", folder, files[i]);
            if (!first[0]) snprintf(first, sizeof first, "%s", path);
            status = append_png(path, first, n_classes ? k : 0, d, &cap, err, errlen);
        }
        free_names(files, n_files);
    }
    if (status == 0 && n_classes) {
        d->n_classes = n_classes;
        d->class_names = classes;
    } else {
        free_names(classes, n_classes);
        if (status == 0) {   // a flat folder: no labels
            free(d->labels);
            d->labels = NULL;
        }
    }
    return status;
}

// ---- one split --------------------------------------------------------------------

// Whether path's name ends in suffix, in any case (.npy, .NPY).
static bool name_ends_with(const char *path, const char *suffix) {
    const size_t len = strlen(path), n = strlen(suffix);
    return len > n && strcasecmp(path + len - n, suffix) == 0;
}

// The first n bytes of the regular file at path into head (the count read; 0 for anything else:
// a FIFO would hang here, the readers refuse it), and its size.
static size_t read_file_head(const char *path, unsigned char *head, size_t n, size_t *size) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    *size = (size_t)st.st_size;
    FILE *fp = fopen(path, "rb");
    const size_t got = fp ? fread(head, 1, n, fp) : 0;
    if (fp) fclose(fp);
    return got;
}

// data.format "auto": a folder is PNG images; a file's name says .npy or .safetensors (in any
// case); else its first bytes do (NumPy's magic, a safetensors header: an 8-byte length, then
// '{'), and anything else is IDX (plain or gzip), whose reader names a bad magic.
static DataFormat format_of(const char *path, DataFormat configured) {
    if (configured != DATA_FORMAT_AUTO) return configured;
    if (is_directory(path)) return DATA_FORMAT_PNG;
    if (name_ends_with(path, ".npy")) return DATA_FORMAT_NPY;
    if (name_ends_with(path, ".safetensors")) return DATA_FORMAT_SAFETENSORS;
    unsigned char head[9] = {0};
    size_t size = 0;
    const size_t got = read_file_head(path, head, sizeof head, &size);
    if (got >= 6 && memcmp(head, "\x93NUMPY", 6) == 0) return DATA_FORMAT_NPY;
    uint64_t header_length = 0;   // safetensors: a little-endian length, then the JSON header in the file
    for (int k = 7; k >= 0; k--) header_length = header_length << 8 | head[k];
    if (got == 9 && head[8] == '{' && header_length >= 2 && header_length <= (uint64_t)size - 8)
        return DATA_FORMAT_SAFETENSORS;
    return DATA_FORMAT_IDX;
}

// A single PNG file given where a folder of them is read: said plainly (IDX would name its magic).
static bool is_png_file(const char *path) {
    unsigned char head[8] = {0};
    size_t size = 0;
    const size_t got = read_file_head(path, head, sizeof head, &size);
    return got == 8 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0;
}

static int load_files_split(const Config *cfg, const char *path, const char *labels_path, Dataset *d, char *err,
                            size_t errlen) {
    memset(d, 0, sizeof *d);
    struct stat st;
    if (stat(path, &st) != 0)
        return set_error(err, errlen, "%s: %s (data.%s)", path, strerror(errno), path == cfg->data.train ? "train" : "test");
    if (labels_path[0] && stat(labels_path, &st) != 0)
        return set_error(err, errlen, "%s: %s (data.%s)", labels_path, strerror(errno),
                         labels_path == cfg->data.train_labels ? "train_labels" : "test_labels");
    DataFormat format = format_of(path, cfg->data.format);
    if (format == DATA_FORMAT_PNG) {
        if (!is_directory(path))
            return set_error(err, errlen, "%s: data.format \"png\" reads a folder of .png files", path);
        if (labels_path[0])
            return set_error(err, errlen, "%s: a PNG folder's labels are its class sub-folders; drop the labels "
                             "file %s", path, labels_path);
        if (cfg->data.layout != DATA_LAYOUT_AUTO)   // (each file says its own layout: the key would be ignored)
            return set_error(err, errlen, "%s: data.layout \"%s\" orders the axes of an array file; a PNG folder's "
                             "images are read as their files say: leave data.layout \"auto\"", path,
                             cfg->data.layout == DATA_LAYOUT_NHWC ? "nhwc" : "nchw");
        return read_png_folder(path, d, err, errlen);
    }
    if (format == DATA_FORMAT_IDX && cfg->data.format == DATA_FORMAT_AUTO && is_png_file(path))
        return set_error(err, errlen, "%s: one PNG image; data.%s takes a folder of them (one sub-folder per class, "
                         "or all in one folder)", path, path == cfg->data.train ? "train" : "test");
    RawArray images;
    if (read_array(path, format, &images, err, errlen) != 0) return -1;
    int rc = images_from_array(path, &images, cfg->data.layout, d, err, errlen);
    raw_free(&images);
    if (rc != 0) return -1;
    RawArray labels;
    memset(&labels, 0, sizeof labels);
    if (labels_path[0] && format == DATA_FORMAT_SAFETENSORS) {   // its own labels tensor would be dropped unsaid
        rc = read_safetensors_tensor(path, "labels", false, &labels, err, errlen);
        raw_free(&labels);
        if (rc == 0)
            return set_error(err, errlen, "%s: holds its own labels tensor, and data.%s %s would replace it: drop "
                             "one of them", path, labels_path == cfg->data.train_labels ? "train_labels" : "test_labels",
                             labels_path);
        if (rc != 1) return -1;
        rc = 0;
    }
    if (labels_path[0]) {
        DataFormat labels_format = format_of(labels_path, DATA_FORMAT_AUTO);
        rc = labels_format == DATA_FORMAT_SAFETENSORS
             ? read_safetensors_tensor(labels_path, "labels", true, &labels, err, errlen)
             : read_array(labels_path, labels_format, &labels, err, errlen);
        if (rc == 0) rc = labels_from_array(labels_path, &labels, d, err, errlen);
    } else if (format == DATA_FORMAT_SAFETENSORS) {   // its own optional "labels" tensor
        rc = read_safetensors_tensor(path, "labels", false, &labels, err, errlen);
        if (rc == 0) rc = labels_from_array(path, &labels, d, err, errlen);
        else if (rc == 1) rc = 0;
    }
    raw_free(&labels);
    return rc;
}

static void keep_first(Dataset *d, int limit) {
    if (limit <= 0 || limit >= d->n) return;
    d->n = limit;   // (the buffers keep their size; freed whole)
}

int dataset_files_load(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen) {
    if (load_files_split(cfg, cfg->data.train, cfg->data.train_labels, train, err, errlen) != 0) {
        dataset_free(train);
        return -1;
    }
    if (cfg->data.test[0]) {
        if (load_files_split(cfg, cfg->data.test, cfg->data.test_labels, test, err, errlen) != 0) {
            dataset_free(train);
            dataset_free(test);
            return -1;
        }
        if (test->channels != train->channels || test->rows != train->rows || test->cols != train->cols) {
            set_error(err, errlen, "%s: test images are %d x %d x %d (C x H x W) but the training images (%s) are "
                      "%d x %d x %d", cfg->data.test, test->channels, test->rows, test->cols, cfg->data.train,
                      train->channels, train->rows, train->cols);
            dataset_free(train);
            dataset_free(test);
            return -1;
        }
        if ((train->labels != NULL) != (test->labels != NULL)) {
            set_error(err, errlen, "%s has labels but %s has none: give both or neither",
                      train->labels ? cfg->data.train : cfg->data.test, train->labels ? cfg->data.test : cfg->data.train);
            dataset_free(train);
            dataset_free(test);
            return -1;
        }
        if ((train->class_names != NULL) != (test->class_names != NULL)) {   // folder names vs label numbers
            set_error(err, errlen, "%s is labelled by its class folders, %s by a labels array: cuvae does not match "
                      "numbers to folder names; give both sets the same way (class folders, or arrays with labels)",
                      train->class_names ? cfg->data.train : cfg->data.test,
                      train->class_names ? cfg->data.test : cfg->data.train);
            dataset_free(train);
            dataset_free(test);
            return -1;
        }
        if (train->class_names || test->class_names) {   // class folders: the same names, in the same order
            bool same = train->class_names && test->class_names && train->n_classes == test->n_classes;
            for (int k = 0; same && k < train->n_classes; k++)
                same = strcmp(train->class_names[k], test->class_names[k]) == 0;
            if (!same) {
                set_error(err, errlen, "%s: its class folders differ from those of %s (the same names give the "
                          "same labels)", cfg->data.test, cfg->data.train);
                dataset_free(train);
                dataset_free(test);
                return -1;
            }
        }
        if (test->n_classes > train->n_classes) train->n_classes = test->n_classes;
        test->n_classes = train->n_classes;
    } else {   // carve the test set out of the training set (seeded)
        if (!train->labels) train->labels = xcalloc((size_t)train->n, 1);   // (split moves labels too)
        bool unlabelled = train->n_classes == 0;
        char why[512];
        if (dataset_split(train, test, cfg->data.test_fraction, cfg->train.seed, DATASET_TEST_SPLIT_STREAM,
                          "data.test_fraction", why, sizeof why) != 0) {
            set_error(err, errlen, "%s: %s", cfg->data.train, why);
            dataset_free(train);
            return -1;
        }
        if (unlabelled) {
            free(train->labels);
            free(test->labels);
            train->labels = test->labels = NULL;
        }
        test->class_names = copy_names(train->class_names, train->n_classes);   // (its own copy)
        test->carved = test->n;
        test->carved_from = train->n + test->n;
        test->carved_crc32 = dataset_crc32(test);   // eval, sample and plot carve it again: checked
    }
    keep_first(train, cfg->data.train_limit);
    keep_first(test, cfg->data.test_limit);
    if (!train->labels) {   // unlabelled: every example is class 0 (a cvae needs labels; config.c says so)
        train->labels = xcalloc((size_t)train->n ? (size_t)train->n : 1, 1);
        test->labels = xcalloc((size_t)test->n ? (size_t)test->n : 1, 1);
    }
    return 0;
}

// common.c: error-buffer formatting, checked allocation, clock, file and
// directory helpers, growable text and atomic file output shared by every module.
#include "cuvae/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <libgen.h>
#include <time.h>
#include <unistd.h>

int set_error(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void *checked_malloc(size_t bytes, const char *file, int line) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "cuvae: out of host memory allocating %zu bytes (%s:%d)\n", bytes, file, line);
        exit(1);
    }
    return p;
}

void *checked_calloc(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "cuvae: out of host memory allocating %zu x %zu bytes (%s:%d)\n", count,
                size, file, line);
        exit(1);
    }
    return p;
}

double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *read_text_file(const char *path, size_t *size_out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (!bigger) {
                free(buf);
                fclose(f);
                set_error(err, errlen, "%s: out of memory reading file", path);
                return NULL;
            }
            buf = bigger;
        }
    }
    if (ferror(f)) {
        free(buf);
        fclose(f);
        set_error(err, errlen, "%s: read error", path);
        return NULL;
    }
    fclose(f);
    buf[len] = '\0';
    if (size_out) *size_out = len;
    return buf;
}

int make_dirs(const char *path, char *err, size_t errlen) {
    char tmp[1024];
    if (strlen(path) >= sizeof tmp) return set_error(err, errlen, "%s: path too long", path);
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return set_error(err, errlen, "%s: cannot create directory: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return set_error(err, errlen, "%s: cannot create directory: %s", tmp, strerror(errno));
    return 0;
}

void text_append_bytes(TextBuffer *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (t->len + n + 1 > cap) cap *= 2;
        char *bigger = xmalloc(cap);
        if (t->len) memcpy(bigger, t->data, t->len);
        free(t->data);
        t->data = bigger;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

void text_append(TextBuffer *t, const char *s) { text_append_bytes(t, s, strlen(s)); }

void text_appendf(TextBuffer *t, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (need < 0) return;
    if ((size_t)need < sizeof small) {
        text_append_bytes(t, small, (size_t)need);
        return;
    }
    char *big = xmalloc((size_t)need + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)need + 1, fmt, ap);
    va_end(ap);
    text_append_bytes(t, big, (size_t)need);
    free(big);
}

void text_append_json_string(TextBuffer *t, const char *s) {
    text_append(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': text_append(t, "\\\""); break;
        case '\\': text_append(t, "\\\\"); break;
        case '\n': text_append(t, "\\n"); break;
        case '\r': text_append(t, "\\r"); break;
        case '\t': text_append(t, "\\t"); break;
        case '\b': text_append(t, "\\b"); break;
        case '\f': text_append(t, "\\f"); break;
        default:
            if (*p < 0x20 || *p == 0x7f) text_appendf(t, "\\u%04x", *p);
            else text_append_bytes(t, (const char *)p, 1);
        }
    }
    text_append(t, "\"");
}

int atomic_file_open(AtomicFile *a, const char *path, char *err, size_t errlen) {
    a->path = path;
    size_t size = strlen(path) + 32;
    a->tmp_path = xmalloc(size);
    snprintf(a->tmp_path, size, "%s.tmp.%ld", path, (long)getpid());
    a->fp = fopen(a->tmp_path, "wb");
    if (!a->fp) {
        set_error(err, errlen, "%s: cannot create temp file %s: %s", path, a->tmp_path, strerror(errno));
        free(a->tmp_path);
        a->tmp_path = NULL;
        return -1;
    }
    return 0;
}

void atomic_file_abort(AtomicFile *a) {
    if (a->fp) fclose(a->fp);
    if (a->tmp_path) unlink(a->tmp_path);
    free(a->tmp_path);
    a->fp = NULL;
    a->tmp_path = NULL;
}

// Best effort: makes the rename itself durable. Errors are ignored.
static void fsync_parent_directory(const char *path) {
    char *copy = xmalloc(strlen(path) + 1);
    strcpy(copy, path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int atomic_file_commit(AtomicFile *a, char *err, size_t errlen) {
    const char *failed_step = NULL;
    int saved_errno = 0;
    if (ferror(a->fp) || fflush(a->fp) != 0) failed_step = "write";
    else if (fsync(fileno(a->fp)) != 0) failed_step = "fsync";
    if (failed_step) saved_errno = errno ? errno : EIO;
    if (fclose(a->fp) != 0 && !failed_step) {
        failed_step = "close";
        saved_errno = errno;
    }
    a->fp = NULL;
    if (!failed_step && rename(a->tmp_path, a->path) != 0) {
        failed_step = "rename";
        saved_errno = errno;
    }
    if (failed_step) {
        atomic_file_abort(a);
        return set_error(err, errlen, "%s: %s failed: %s", a->path, failed_step, strerror(saved_errno));
    }
    free(a->tmp_path);
    a->tmp_path = NULL;
    fsync_parent_directory(a->path);
    return 0;
}

int write_file_atomic(const char *path, const char *text, char *err, size_t errlen) {
    AtomicFile a;
    if (atomic_file_open(&a, path, err, errlen) != 0) return -1;
    fputs(text, a.fp);
    return atomic_file_commit(&a, err, errlen);
}

// common.c: error-buffer formatting, checked allocation, clock, file and
// directory helpers shared by every module.
#include "cuvae/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

// common.c: error-buffer formatting, checked allocation, clock, file and
// directory helpers, growable text and atomic file output shared by every module.
#define _GNU_SOURCE   // fopencookie
#include "cuvae/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <libgen.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <signal.h>

// The length of the well-formed UTF-8 sequence at c (1 to 4 bytes), or 0 where the bytes are
// not one (a stray continuation byte, a cut sequence, an overlong form, a surrogate, past U+10FFFF).
static int utf8_sequence_length(const unsigned char *c) {
    if (c[0] < 0x80) return 1;
    int n = c[0] >= 0xC2 && c[0] <= 0xDF ? 2 : c[0] >= 0xE0 && c[0] <= 0xEF ? 3 : c[0] >= 0xF0 && c[0] <= 0xF4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((c[i] & 0xC0) != 0x80) return 0;   // (a NUL ends the check too)
    if (n == 3 && ((c[0] == 0xE0 && c[1] < 0xA0) || (c[0] == 0xED && c[1] >= 0xA0))) return 0;
    if (n == 4 && ((c[0] == 0xF0 && c[1] < 0x90) || (c[0] == 0xF4 && c[1] >= 0x90))) return 0;
    return n;
}

// An error is one line of plain text whatever it quotes: control characters
// (a newline or an escape sequence in a key, a value or a file name) are
// written as \n, \r, \t or \xHH — the C1 controls U+0080 to U+009F (a terminal reads
// U+009B as ESC [) and the line separators U+2028 and U+2029 byte by byte as \xHH too, and
// so is every byte that is not part of well-formed UTF-8.
int set_error(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        char raw[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        size_t o = 0;
        for (const unsigned char *c = (const unsigned char *)raw; *c && o + 1 < errlen;) {
            const int length = utf8_sequence_length(c);
            const bool c1_control = length == 2 && c[0] == 0xC2 && c[1] < 0xA0;
            const bool line_separator = length == 3 && c[0] == 0xE2 && c[1] == 0x80 && (c[2] == 0xA8 || c[2] == 0xA9);
            if (length > 1 && !c1_control && !line_separator) {   // a printable character: as it is, whole
                if (o + (size_t)length + 1 > errlen) break;
                memcpy(err + o, c, (size_t)length);
                o += (size_t)length;
                c += length;
                continue;
            }
            const int bytes = c1_control || line_separator ? length : 1;   // escaped one byte at a time
            char esc[16] = "";
            size_t n = 0;
            for (int i = 0; i < bytes; i++) {
                if (c[i] == '\n') n += (size_t)snprintf(esc + n, sizeof esc - n, "\\n");
                else if (c[i] == '\r') n += (size_t)snprintf(esc + n, sizeof esc - n, "\\r");
                else if (c[i] == '\t') n += (size_t)snprintf(esc + n, sizeof esc - n, "\\t");
                else if (c[i] < 0x20 || c[i] >= 0x7f) n += (size_t)snprintf(esc + n, sizeof esc - n, "\\x%02x", c[i]);
                else esc[n++] = (char)c[i];
            }
            if (o + n + 1 > errlen) break;
            memcpy(err + o, esc, n);
            o += n;
            c += bytes;
        }
        err[o] = '\0';
    }
    return -1;
}

void say(const char *fmt, ...) {
    char raw[4096], line[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    set_error(line, sizeof line, "%s", raw);   // escaped as an error is
    fprintf(stderr, "cuvae: %s\n", line);
}

const char *one_line_text(const char *s, char *buf, size_t n) {
    set_error(buf, n, "%s", s);
    return buf;
}

void *checked_malloc(size_t bytes, const char *file, int line) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "cuvae: out of host memory allocating %zu bytes (%s:%d)\n", bytes, file, line);
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    return p;
}

void *checked_calloc(size_t count, size_t size, const char *file, int line) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "cuvae: out of host memory allocating %zu x %zu bytes (%s:%d)\n", count,
                size, file, line);
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    return p;
}

double wall_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

char *read_text_file(const char *path, size_t *size_out, char *err, size_t errlen) {
    FILE *f = open_regular_file(path, err, errlen);   // a FIFO would block a plain fopen
    if (!f) return NULL;
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

static const char *running_build;

void cuvae_set_build(const char *build) { running_build = build; }

const char *cuvae_build(void) { return running_build; }

const char *working_folder_gone_note(const char *path) {
    // (an absolute path, or one through "..", which a deleted folder still has, names something)
    if (path[0] == '/' || (path[0] == '.' && path[1] == '.' && (path[2] == '/' || path[2] == '\0'))) return "";
    char cwd[64];   // (ERANGE for a longer one: it exists)
    if (getcwd(cwd, sizeof cwd) == NULL && errno == ENOENT)
        return " (the working folder was deleted while this shell was in it: cd to an existing one)";
    return "";
}

// The process's umask as /proc/self/status says it (Linux 4.7 and later: umask() itself cannot be
// read without being set for a moment, process-wide); -1 where it says nothing.
static int process_umask(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    unsigned int mask = 0;
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) found = sscanf(line, "Umask: %o", &mask) == 1;
    fclose(f);
    return found ? (int)mask : -1;
}

int check_umask_keeps_owner(const char *dir, char *err, size_t errlen) {
    const int mask = process_umask();
    if (mask < 0 || geteuid() == 0 || (mask & 0700) == 0) return 0;
    return set_error(err, errlen, "%s: the umask %04o takes the owner's own permissions from what cuvae writes there "
                     "(folders %04o, files %04o): it could not write its files again or read them back; run with a "
                     "umask that keeps them (022, 077)", dir, (unsigned int)mask, 0755u & ~(unsigned int)mask,
                     0644u & ~(unsigned int)mask);
}

// One folder of make_dirs: made, or already a folder (a link to one too); else -1 naming it, and a link
// that leads nowhere as such. A folder made that its owner may not list, enter or write in (a umask
// such as 0277 or 0777, or a default ACL, takes those permissions; root keeps them whatever the mode;
// the effective uid's access, as the writes will have) is removed again and refused: every write
// into it would fail.
static int make_one_dir(const char *dir, char *err, size_t errlen) {
    if (mkdir(dir, 0755) == 0) {
        if (faccessat(AT_FDCWD, dir, R_OK | W_OK | X_OK, AT_EACCESS) == 0) return 0;
        const int access_errno = errno;
        struct stat st;
        const unsigned int mode = stat(dir, &st) == 0 ? (unsigned int)(st.st_mode & 0777) : 0;
        const bool removed = rmdir(dir) == 0;
        const int mask = process_umask();
        const char *left = removed ? "" : " (and left there: it could not be removed)";
        if (access_errno != EACCES || (mode & 0700) == 0700)   // (not the mode: another cause, said as such)
            return set_error(err, errlen, "%s: made, but cannot be written in: %s%s", dir, strerror(access_errno),
                             left);
        if (mask < 0 || (mask & 0700) == 0)   // (the umask keeps them: a default ACL or the file system)
            return set_error(err, errlen, "%s: made with mode %04o, not one its owner can list, enter and write in "
                             "(the parent folder's default ACL or its file system sets it)%s", dir, mode, left);
        return set_error(err, errlen, "%s: made with mode %04o, not one its owner can list, enter and write in: the "
                         "umask %04o takes the owner's own permissions (with one that keeps them, 022 or 077, cuvae "
                         "can write its files there)%s", dir, mode, (unsigned int)mask, left);
    }
    const int mkdir_errno = errno;   // (working_folder_gone_note may change errno)
    if (mkdir_errno != EEXIST)
        return set_error(err, errlen, "%s: cannot create directory: %s%s", dir, strerror(mkdir_errno),
                         mkdir_errno == ENOENT ? working_folder_gone_note(dir) : "");
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return 0;
        return set_error(err, errlen, "%s: not a folder (a folder is made there)", dir);
    }
    const int stat_errno = errno;
    char target[1024];
    const ssize_t n = stat_errno == ENOENT ? readlink(dir, target, sizeof target - 1) : -1;
    if (n >= 0) {
        target[n] = '\0';
        return set_error(err, errlen, "%s: a link to %s, which does not exist (a folder is made there): mend it or "
                         "remove it", dir, target);
    }
    return set_error(err, errlen, "%s: cannot create directory: %s", dir, strerror(stat_errno));
}

int make_dirs(const char *path, char *err, size_t errlen) {
    char tmp[1024];
    if (strlen(path) >= sizeof tmp) return set_error(err, errlen, "%s: path too long", path);
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (make_one_dir(tmp, err, errlen) != 0) return -1;
        *p = '/';
    }
    return make_one_dir(tmp, err, errlen);
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

int text_first_differing_line(const char *a, const char *b, const char **line_a, const char **line_b) {
    int line = 1;
    const char *x = a, *y = b;
    *line_a = a;
    *line_b = b;
    while (*x && *x == *y) {
        if (*x == '\n') {
            line++;
            *line_a = x + 1;
            *line_b = y + 1;
        }
        x++;
        y++;
    }
    return *x == *y ? 0 : line;
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

// The file a symbolic link at path points to (malloc'd; the link's own folder
// for a relative target), or NULL if path is not a link. Writing through the
// link keeps it a link and updates what it points to.
static char *link_target(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode)) return NULL;
    char *real = realpath(path, NULL);   // the target exists
    if (real) return real;
    char target[4096];
    ssize_t n = readlink(path, target, sizeof target - 1);   // a dangling link
    if (n <= 0) return NULL;
    target[n] = '\0';
    if (target[0] == '/') {
        char *out = xmalloc((size_t)n + 1);
        memcpy(out, target, (size_t)n + 1);
        return out;
    }
    char *copy = xmalloc(strlen(path) + 1);
    strcpy(copy, path);
    const char *dir = dirname(copy);
    size_t size = strlen(dir) + (size_t)n + 2;
    char *out = xmalloc(size);
    snprintf(out, size, "%s/%s", dir, target);
    free(copy);
    return out;
}

int output_path_resolve(const char *path, char **resolved, char *err, size_t errlen) {
    *resolved = link_target(path);
    const char *target = *resolved ? *resolved : path;
    // replacing anything but a regular file (a device such as /dev/null, a FIFO,
    // a directory) by renaming over it would destroy it
    struct stat st;
    if (stat(target, &st) == 0 && !S_ISREG(st.st_mode)) {
        if (*resolved)
            set_error(err, errlen, "%s: links to %s, which is not a regular file (outputs are regular "
                      "files, replaced atomically)", path, target);
        else
            set_error(err, errlen, "%s: not a regular file (outputs are regular files, replaced "
                      "atomically)", path);
        free(*resolved);
        *resolved = NULL;
        return -1;
    }
    return 0;
}

void file_stamp(const char *path, FileStamp *stamp) {
    struct stat st;
    memset(stamp, 0, sizeof *stamp);
    if (stat(path, &st) != 0) return;
    stamp->known = true;
    stamp->dev = (uint64_t)st.st_dev;
    stamp->ino = (uint64_t)st.st_ino;
    stamp->size = (uint64_t)st.st_size;
    stamp->mtime_sec = (int64_t)st.st_mtim.tv_sec;
    stamp->mtime_nsec = (int64_t)st.st_mtim.tv_nsec;
}

bool file_stamp_changed(const char *path, const FileStamp *stamp) {
    if (!stamp->known) return false;
    FileStamp now;
    file_stamp(path, &now);
    return !now.known || now.dev != stamp->dev || now.ino != stamp->ino || now.size != stamp->size ||
           now.mtime_sec != stamp->mtime_sec || now.mtime_nsec != stamp->mtime_nsec;
}

// The registry of temp files (a fixed table: the handler may only read it and unlink).
enum { TEMP_REGISTRY_SLOTS = 16, TEMP_REGISTRY_PATH = 4200 };
static char temp_registry[TEMP_REGISTRY_SLOTS][TEMP_REGISTRY_PATH];
static volatile sig_atomic_t temp_registry_used[TEMP_REGISTRY_SLOTS];

void temp_file_register(const char *path) {
    if (strlen(path) >= TEMP_REGISTRY_PATH) return;   // (not removed on a signal; the next run's cleanup does)
    for (int i = 0; i < TEMP_REGISTRY_SLOTS; i++)
        if (!temp_registry_used[i]) {
            strcpy(temp_registry[i], path);
            temp_registry_used[i] = 1;   // (set after the path is in place)
            return;
        }
}

void temp_file_unregister(const char *path) {
    for (int i = 0; i < TEMP_REGISTRY_SLOTS; i++)
        if (temp_registry_used[i] && strcmp(temp_registry[i], path) == 0) {
            temp_registry_used[i] = 0;
            return;
        }
}

void temp_files_remove_and_die(int sig) {
    for (int i = 0; i < TEMP_REGISTRY_SLOTS; i++)
        if (temp_registry_used[i]) unlink(temp_registry[i]);   // (async-signal-safe)
    signal(sig, SIG_DFL);
    raise(sig);
}

void temp_files_clean_on_signals(void) {
    const int signals[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int k = 0; k < 3; k++) {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = temp_files_remove_and_die;
        sigemptyset(&sa.sa_mask);
        sigaction(signals[k], NULL, &old);
        if (old.sa_handler != SIG_IGN) sigaction(signals[k], &sa, NULL);   // (an ignored signal stays ignored)
    }
}

struct AtomicSink {
    int fd;
    int write_errno;   // of the first write that failed; 0: none
};

static ssize_t sink_write(void *cookie, const char *buf, size_t size) {
    AtomicSink *sink = cookie;
    size_t done = 0;
    while (done < size) {
        const ssize_t n = write(sink->fd, buf + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {   // (a short count marks the stream's error)
            if (!sink->write_errno) sink->write_errno = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static int sink_close(void *cookie) {
    AtomicSink *sink = cookie;
    const int rc = close(sink->fd);
    sink->fd = -1;
    return rc;
}

int atomic_file_open(AtomicFile *a, const char *path, char *err, size_t errlen) {
    a->tmp_path = NULL;
    a->fp = NULL;
    a->sink = NULL;
    if (output_path_resolve(path, &a->resolved_path, err, errlen) != 0) return -1;
    if (a->resolved_path) path = a->resolved_path;
    a->path = path;
    remove_stale_temps_of(path);   // an earlier write of this file that was killed (kill -9) left its temp
    size_t size = strlen(path) + 32;
    a->tmp_path = xmalloc(size);
    snprintf(a->tmp_path, size, "%s.tmp.%ld", path, (long)getpid());
    temp_file_register(a->tmp_path);
    a->sink = xmalloc(sizeof *a->sink);
    a->sink->fd = open(a->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    a->sink->write_errno = 0;
    const cookie_io_functions_t io = {.read = NULL, .write = sink_write, .seek = NULL, .close = sink_close};
    int open_errno = errno;
    if (a->sink->fd >= 0) {
        a->fp = fopencookie(a->sink, "wb", io);
        if (!a->fp) {
            open_errno = errno;
            close(a->sink->fd);
            unlink(a->tmp_path);
        }
    }
    if (!a->fp) {
        free(a->sink);
        a->sink = NULL;
        set_error(err, errlen, "%s: cannot create temp file %s: %s%s", path, a->tmp_path, strerror(open_errno),
                  open_errno == ENOENT ? working_folder_gone_note(a->tmp_path) : "");
        temp_file_unregister(a->tmp_path);
        free(a->tmp_path);
        a->tmp_path = NULL;
        free(a->resolved_path);
        a->resolved_path = NULL;
        return -1;
    }
    return 0;
}

int atomic_file_write_errno(const AtomicFile *a) { return a->sink ? a->sink->write_errno : 0; }

void atomic_file_abort(AtomicFile *a) {
    if (a->fp) fclose(a->fp);
    free(a->sink);
    a->sink = NULL;
    if (a->tmp_path) {
        unlink(a->tmp_path);
        temp_file_unregister(a->tmp_path);
    }
    free(a->tmp_path);
    free(a->resolved_path);
    a->fp = NULL;
    a->tmp_path = NULL;
    a->resolved_path = NULL;
}

void path_folder(const char *path, char *out, size_t outlen) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, outlen, ".");
    else if (slash == path) snprintf(out, outlen, "/");
    else snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

void fsync_parent_directory(const char *path) {
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
    if (ferror(a->fp) || fflush(a->fp) != 0) {
        failed_step = "write";
        saved_errno = a->sink->write_errno ? a->sink->write_errno : errno ? errno : EIO;
    } else if (fsync(a->sink->fd) != 0) {
        failed_step = "fsync";
        saved_errno = errno;
    }
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
        set_error(err, errlen, "%s: %s failed: %s", a->path, failed_step, strerror(saved_errno));
        atomic_file_abort(a);
        return -1;
    }
    temp_file_unregister(a->tmp_path);
    free(a->tmp_path);
    a->tmp_path = NULL;
    free(a->sink);
    a->sink = NULL;
    fsync_parent_directory(a->path);
    free(a->resolved_path);
    a->resolved_path = NULL;
    return 0;
}

// Whether NAME.tmp.PID could be a temp of cuvae's own writes into a run folder, progress/ or
// figures/ (a run's files, the commit marker, an image): other names are left alone, whatever
// their pid (a progress/ linked elsewhere may hold files of yours).
static bool is_cuvae_temp_stem(const char *name, size_t stem_length) {
    static const char *const stems[] = {"config.json", "log.jsonl", "eval.json", "model.safetensors",
                                        "resume.safetensors", "best.safetensors", "COMMIT"};
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++)
        if (strlen(stems[i]) == stem_length && strncmp(name, stems[i], stem_length) == 0) return true;
    return stem_length > 4 && strncmp(name + stem_length - 4, ".png", 4) == 0;
}

bool process_may_be_running(long pid) {
    if (pid <= 0 || pid != (long)(pid_t)pid) return true;
    return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

// Removes dir's NAME.tmp.PID files whose process no longer runs, NAME `only` (NULL: one of cuvae's stems).
static int remove_dead_temps(const char *dir, const char *only, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;   // nothing of cuvae's there (a file in the way is the
                                                              // commit's to refuse, naming it)
        return set_error(err, errlen, "%s: cannot list the folder: %s", dir, strerror(errno));
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *mark = strstr(e->d_name, ".tmp.");
        if (!mark || mark == e->d_name) continue;
        const size_t stem_length = (size_t)(mark - e->d_name);
        if (only ? strlen(only) != stem_length || strncmp(e->d_name, only, stem_length) != 0
                 : !is_cuvae_temp_stem(e->d_name, stem_length))
            continue;
        const char *digits = mark + 5;
        char *end = NULL;
        long pid = strtol(digits, &end, 10);
        if (end == digits || *end != '\0' || pid <= 0) continue;
        // (this process's own pid: a temp left by an earlier process given the same pid, as
        // in a container's fresh pid namespace; this write's own temp is created after this)
        if (pid != (long)getpid() && process_may_be_running(pid)) continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        if (unlink(full) == 0) say("removed %s, left by a write that was killed", full);
    }
    closedir(d);
    return 0;
}

int remove_stale_temp_files(const char *dir, char *err, size_t errlen) {
    return remove_dead_temps(dir, NULL, err, errlen);
}

void remove_stale_temps_of(const char *path) {
    char dir[4096];
    path_folder(path, dir, sizeof dir);
    const char *slash = strrchr(path, '/');
    char ignored[256];   // (a folder that cannot be listed: the write's own open says what is wrong)
    remove_dead_temps(dir, slash ? slash + 1 : path, ignored, sizeof ignored);
}

int write_file_atomic(const char *path, const char *text, char *err, size_t errlen) {
    AtomicFile a;
    if (atomic_file_open(&a, path, err, errlen) != 0) return -1;
    fputs(text, a.fp);
    return atomic_file_commit(&a, err, errlen);
}

bool is_plain_name(const char *s) {
    if (!s || !s[0] || s[0] == '.' || s[0] == '-') return false;
    for (const char *p = s; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                  *p == '.' || *p == '_' || *p == '-';
        if (!ok) return false;
    }
    return true;
}

void progress_begin(Progress *p, const char *what) {
    p->what = what;
    p->start = wall_seconds();
    p->last = p->start;
    p->shown = false;
}

void progress_update(Progress *p, long done, long total) {
    double now = wall_seconds();
    bool tty = isatty(2);
    if (now - p->start < 2.0 || now - p->last < (tty ? 0.5 : 10.0) || total <= 0) return;
    p->last = now;
    double eta = done > 0 ? (now - p->start) / (double)done * (double)(total - done) : 0.0;
    long s = (long)(eta + 0.5);
    fprintf(stderr, "%scuvae: %s: %3.0f%% (%ld of %ld), ETA %ld:%02ld%s", tty ? "\r" : "", p->what,
            100.0 * (double)done / (double)total, done, total, s / 60, s % 60, tty ? "   " : "\n");
    fflush(stderr);
    p->shown = true;
}

void progress_end(Progress *p) {
    if (p->shown && isatty(2)) fputc('\n', stderr);
    p->shown = false;
}

static int first_stdout_errno;   // the first failed flush_stdout's errno (0: none)

void flush_stdout(void) {
    errno = 0;
    if (fflush(stdout) != 0 && first_stdout_errno == 0) first_stdout_errno = errno ? errno : EIO;
}

int stdout_flush_errno(void) { return first_stdout_errno; }

bool utf8_valid(const char *s) { return utf8_first_invalid(s) < 0; }

bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

long json_escaped_nul(const char *text, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\\') continue;
        if (i + 5 < len && memcmp(text + i + 1, "u0000", 5) == 0) return (long)i;
        i++;   // past the escaped character
    }
    return -1;
}

long json_raw_control_character(const char *json) {
    bool in_string = false;
    for (const char *p = json; *p; p++) {
        if (!in_string) {
            in_string = *p == '"';
        } else if ((unsigned char)*p < 0x20) {
            return (long)(p - json);
        } else if (*p == '\\') {
            if (p[1]) p++;
        } else if (*p == '"') {
            in_string = false;
        }
    }
    return -1;
}

long json_first_bad_number(const char *json, int *length) {
    bool in_string = false;
    for (const char *p = json; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1]) p++;
            else if (*p == '"') in_string = false;
            continue;
        }
        if (*p == '"') {
            in_string = true;
            continue;
        }
        if (!(*p == '-' || (*p >= '0' && *p <= '9'))) continue;
        if (p > json && ((p[-1] >= 'a' && p[-1] <= 'z') || (p[-1] >= 'A' && p[-1] <= 'Z'))) continue;
        const char *end = p + strspn(p, "0123456789+-.eE");
        if ((*end >= 'a' && *end <= 'z') || (*end >= 'A' && *end <= 'Z')) {   // -Infinity: cJSON's syntax error
            p = end;
            continue;
        }
        const char *q = p;
        if (*q == '-') q++;
        bool ok = true;
        if (*q == '0') q++;
        else if (*q >= '1' && *q <= '9') q += strspn(q, "0123456789");
        else ok = false;
        if (ok && *q == '.') {
            q++;
            if (*q < '0' || *q > '9') ok = false;
            q += strspn(q, "0123456789");
        }
        if (ok && (*q == 'e' || *q == 'E')) {
            q++;
            if (*q == '+' || *q == '-') q++;
            if (*q < '0' || *q > '9') ok = false;
            q += strspn(q, "0123456789");
        }
        if (!ok || q != end) {
            *length = (int)(end - p);
            return (long)(p - json);
        }
        p = end - 1;
    }
    return -1;
}

long json_non_integer_number(const char *text, size_t len, size_t *number_len) {
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') i++;   // past the escaped character
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) continue;
        size_t end = i;   // a number token: digits, sign, fraction, exponent
        bool whole = true;
        for (; end < len; end++) {
            const char d = text[end];
            if (d == '.' || d == 'e' || d == 'E') whole = false;
            else if ((d < '0' || d > '9') && d != '+' && d != '-') break;
        }
        if (!whole) {
            *number_len = end - i;
            return (long)i;
        }
        i = end - 1;
    }
    return -1;
}

long utf8_first_invalid(const char *s) {
    const unsigned char *start = (const unsigned char *)s, *p = start;
    while (*p) {
        const unsigned char *here = p;
        unsigned char c = p[0];
        if (c < 0x80) {
            p += 1;
        } else if (c >= 0xc2 && c <= 0xdf) {
            if ((p[1] & 0xc0) != 0x80) return (long)(here - start);
            p += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return (long)(here - start);
            if (c == 0xe0 && p[1] < 0xa0) return (long)(here - start);    // overlong
            if (c == 0xed && p[1] >= 0xa0) return (long)(here - start);   // UTF-16 surrogate
            p += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
                return (long)(here - start);
            if (c == 0xf0 && p[1] < 0x90) return (long)(here - start);    // overlong
            if (c == 0xf4 && p[1] >= 0x90) return (long)(here - start);   // above U+10FFFF
            p += 4;
        } else {
            return (long)(here - start);
        }
    }
    return -1;
}


FILE *open_regular_file(const char *path, char *err, size_t errlen) {
    // O_NONBLOCK: opening a FIFO with no writer must not hang; cleared again below
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        const int open_errno = errno;   // (working_folder_gone_note may change errno)
        set_error(err, errlen, "%s: cannot open: %s%s", path, strerror(open_errno),
                  open_errno == ENOENT ? working_folder_gone_note(path) : "");
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        bool dir = S_ISDIR(st.st_mode);
        close(fd);
        set_error(err, errlen, "%s: %s", path, dir ? "is a folder, not a file"
                  : "not a regular file (a FIFO, a device or a socket; give the file itself)");
        return NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    }
    return f;
}

bool address_space_free(size_t bytes) {
    void *room = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (room == MAP_FAILED) return false;
    munmap(room, bytes);
    return true;
}

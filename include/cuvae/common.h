// common.h: small shared helpers: error-buffer convention, checked allocation, timing.
//
// Convention used across cuvae: a function that can fail on bad input takes
// (char *err, size_t errlen), writes ONE line (no trailing newline) describing
// the problem, naming the file / key / byte offset, and returns -1. It returns 0
// on success. main() prints "cuvae: <err>" and exits non-zero.
#ifndef CUVAE_COMMON_H
#define CUVAE_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <math.h>

#define CUVAE_VERSION "0.1.0"

// The build that is running, as the files it writes record it (checkpoints' and resume files'
// __metadata__.written_by): main() sets it to "cuvae VERSION (commit C)" before any command;
// NULL until then (a test program links the library without main: its files record no build).
void cuvae_set_build(const char *build);
const char *cuvae_build(void);

// Exit status for bad input of any kind -- a config, a file, a size that does
// not fit in host or GPU memory: one "cuvae: ..." line on stderr, then exit 2.
#define CUVAE_EXIT_BAD_INPUT 2

// printf-style write into an error buffer; always returns -1 so callers can
// `return set_error(err, errlen, "...")`.
int set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// An information line on stderr ("cuvae: " and the text, a newline added), one line whatever it
// quotes: escaped as set_error escapes an error (a file name with a newline or an escape sequence).
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// x for printing: a NaN without its sign (printf writes "-nan" for the NaN an overflow often
// leaves, and its sign means nothing)
static inline double nan_unsigned(double x) { return isnan(x) ? fabs(x) : x; }

// s escaped as set_error escapes what it quotes, in buf (n bytes); returns buf.
const char *one_line_text(const char *s, char *buf, size_t n);

// malloc/calloc that abort with a message naming the caller's file:line on OOM.
void *checked_malloc(size_t bytes, const char *file, int line);
void *checked_calloc(size_t count, size_t size, const char *file, int line);
#define xmalloc(bytes) checked_malloc((bytes), __FILE__, __LINE__)
#define xcalloc(count, size) checked_calloc((count), (size), __FILE__, __LINE__)

// Monotonic wall clock in seconds.
double wall_seconds(void);

// Progress of a long loop on stderr ("cuvae: WHAT: 37% (370 of 1000), ETA 1:02"):
// nothing during its first 2 seconds, then redrawn in place every half second on a
// terminal, or a line every 10 seconds otherwise. progress_end finishes the line.
typedef struct {
    const char *what;
    double start, last;
    bool shown;
} Progress;
void progress_begin(Progress *p, const char *what);
void progress_update(Progress *p, long done, long total);
void progress_end(Progress *p);

// Flushes stdout now (a line something downstream reads at once, as bench's). A failed write
// is kept for main's last check of stdout, which reports it with its own errno: by then
// other calls have overwritten errno.
void flush_stdout(void);
// The errno of the first flush_stdout that failed (0: none did).
int stdout_flush_errno(void);

// Opens a regular file for reading ("rb"); NULL with err for a missing file, a
// folder, or a FIFO / device / socket (which could block or never end).
FILE *open_regular_file(const char *path, char *err, size_t errlen);

// True when s is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF); utf8_first_invalid gives the byte offset of the
// first bad sequence, or -1.
bool utf8_valid(const char *s);
long utf8_first_invalid(const char *s);

// The byte offset in JSON text (len bytes) of the first \u0000 escape inside a string, or -1.
// cJSON ends a string at such a NUL ("a\u0000b" reads as "a"): callers refuse it. An escaped
// backslash is skipped whole, so \\u0000 (a backslash, then "u0000") is not one.
long json_escaped_nul(const char *text, size_t len);
// The byte offset of the first character below U+0020 written raw inside a string of a JSON
// text (RFC 8259 wants it escaped, as \t or \u0009; cJSON takes it), or -1.
long json_raw_control_character(const char *json);
// The byte offset of the first number in JSON text (outside strings) that JSON's grammar does
// not allow, -1 if none: cJSON also reads 01, -00.5, 1. and 1.e3 (as 1, -0.5, 1 and 1000),
// which other JSON readers (Python's json) refuse. *length: that token's length.
long json_first_bad_number(const char *json, int *length);

// The byte offset in JSON text (len bytes) of the first number outside strings written with a
// fraction or an exponent (784.0, 1e3), its length in *number_len; -1 when every number is
// written as a whole number. For formats whose numbers are integers (safetensors: shapes and
// offsets), which cJSON would read as 784 without a word.
long json_non_integer_number(const char *text, size_t len, size_t *number_len);

// Whether s ends with suffix (case-sensitive).
bool ends_with(const char *s, const char *suffix);

// Reads a whole file into a malloc'd, NUL-terminated buffer. Returns NULL and
// fills err on failure. *size_out (if non-NULL) gets the byte count.
char *read_text_file(const char *path, size_t *size_out, char *err, size_t errlen);

// mkdir -p. Returns 0 or -1 with err.
int make_dirs(const char *path, char *err, size_t errlen);
// 0 unless this process's umask takes the owner's own permissions (any of 0700) and it is not root:
// then -1 with err naming dir (what a run or plot would write into) and the umask. Files and folders
// cuvae writes with such a umask could not be written again (a log appended to, a resumed run) or
// read back, and a folder it makes could not be entered.
int check_umask_keeps_owner(const char *dir, char *err, size_t errlen);

// " (the working folder was deleted ...: cd to an existing one)" when path is relative and the
// process's working folder no longer exists (a relative path then names nothing: ENOENT); ""
// otherwise. For the messages of a failed create.
const char *working_folder_gone_note(const char *path);
// The host memory this process may still use now (src/host_memory.c): the kernel's
// MemAvailable plus free swap, and no more than the headroom of the tightest memory limit of
// its cgroup and their ancestors (v1 or v2: a container's, a batch job's; limit - usage +
// reclaimable page cache).
enum { HOST_MEMORY_FILE_MAX = 4200 };   // a cgroup limit file's path, bytes with its NUL
typedef struct {
    size_t available;                        // bytes; 0 if unknown
    bool cgroup_bound;                       // a cgroup's limit, not the machine, gave the answer; then:
    char limit_file[HOST_MEMORY_FILE_MAX];   //   the file of that limit (memory.max, memory.limit_in_bytes)
    unsigned long long limit;                //   its value, bytes
    unsigned long long used;                 //   the cgroup's usage less its reclaimable page cache, bytes
} HostMemory;
HostMemory host_memory_read(void);
// The same read from proc_dir (its meminfo, self/cgroup and self/mountinfo) and the cgroup mounts
// at cgroup_dir (v2 there, or v1's memory/ and v2's unified/ below it); cgroup_dir NULL: where
// proc_dir/self/mountinfo says the cgroup file systems are mounted, /sys/fs/cgroup's layout where
// it names none ("/proc" and NULL above; other folders in tests).
HostMemory host_memory_read_at(const char *proc_dir, const char *cgroup_dir);
// Where such an answer came from, for messages "... exceed the N bytes %s", written into text
// (size bytes; 4,600 hold any): "its cgroup's memory limit leaves (... FILE says LIMIT bytes,
// USED of them in use ...)" or "the machine has available". Returns text.
const char *host_memory_source(const HostMemory *hm, char *text, size_t size);
// 0 when `bytes` of a file's data fit in the host's available memory (or it is unknown), else
// -1 with err naming the file and both sizes (a file read into memory, or a gzip's payload).
int check_host_memory(const char *path, size_t bytes, char *err, size_t errlen);
// Whether `bytes` of address space can be mapped now (a trial mmap, unmapped at once): what
// an address-space limit (`ulimit -v`) or strict overcommit still allows. On failure errno
// says why.
bool address_space_free(size_t bytes);

// Growable NUL-terminated text (JSON and config dumps). Start with {0}.
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} TextBuffer;
void text_append_bytes(TextBuffer *t, const char *s, size_t n);
void text_append(TextBuffer *t, const char *s);
void text_appendf(TextBuffer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// s as a quoted JSON string (control characters escaped; UTF-8 passes through)
void text_append_json_string(TextBuffer *t, const char *s);
// The first line (1-based) where texts a and b differ, 0 when they are equal; *line_a and *line_b
// are set to that line's start in each (two configs as config_to_json writes them: which key differs).
int text_first_differing_line(const char *a, const char *b, const char **line_a, const char **line_b);

// Atomic file output: data goes to "<path>.tmp.<pid>" in the same directory;
// atomic_file_commit flushes, fsyncs, closes and renames it over path (then
// fsyncs the directory), so readers see the old file or the new one, whole.
// On any failure the temp file is removed and err names path and the step.
// The file a write to `path` replaces: path itself, or the target of a symbolic
// link at path (*resolved, malloc'd; NULL when path is not a link: the link
// stays, its target is replaced). -1 with err when that file exists and is not
// a regular file (a device, a FIFO, a folder), which a rename would destroy.
int output_path_resolve(const char *path, char **resolved, char *err, size_t errlen);

// A symbolic link at path is written through: its target is replaced, the link stays.
// fp writes to the temp file through a stream that keeps the errno of the first write that
// failed: a buffered write may fail many calls before the commit, whose message names it.
typedef struct AtomicSink AtomicSink;
typedef struct {
    FILE *fp;
    char *tmp_path;
    const char *path;
    char *resolved_path;   // the link's target when path is a symbolic link
    AtomicSink *sink;      // the temp file's descriptor and the first write's errno
} AtomicFile;
int atomic_file_open(AtomicFile *a, const char *path, char *err, size_t errlen);
int atomic_file_commit(AtomicFile *a, char *err, size_t errlen);
void atomic_file_abort(AtomicFile *a);
// The errno of the first write into a's temp file that failed (ENOSPC, EFBIG, EIO), 0 if none:
// for a writer whose own library saw only "a write error" (libpng).
int atomic_file_write_errno(const AtomicFile *a);
// The whole of text, atomically.
int write_file_atomic(const char *path, const char *text, char *err, size_t errlen);

// A name safe to use as one path component and in a URL: letters, digits,
// '.', '_', '-', not empty, not starting with '.' or '-' (so no "..", no '/').
bool is_plain_name(const char *s);

// The folder part of path into out: "." for a bare name, "/" for a name in the root.
void path_folder(const char *path, char *out, size_t outlen);

// Best effort: makes a rename into path's folder durable (fsync of the folder).
// Errors are ignored.
void fsync_parent_directory(const char *path);

// A file's identity and version (device, inode, size, modification time): a file replaced by
// an atomic rename, or rewritten, between two reads has another stamp.
typedef struct {
    bool known;   // false when the file could not be stat'ed (nothing to compare)
    uint64_t dev, ino, size;
    int64_t mtime_sec, mtime_nsec;
} FileStamp;
void file_stamp(const char *path, FileStamp *stamp);
bool file_stamp_changed(const char *path, const FileStamp *stamp);

// Temp files being written (atomic outputs, gnuplot's scratch files) are registered so that
// a SIGINT / SIGTERM / SIGHUP ending a command without handlers of its own (eval, sample,
// plot, report) removes them before the process dies of the signal (exit 130 / 143 / 129).
void temp_files_clean_on_signals(void);
void temp_files_remove_and_die(int sig);   // (a handler: unlinks the registered temps, then dies of sig)
void temp_file_register(const char *path);
void temp_file_unregister(const char *path);

// Whether process pid may still run: false only when kill(pid, 0) says there is no such process
// (a process of another user, EPERM, counts as running; so does a pid out of pid_t's range).
bool process_may_be_running(long pid);

// Removes dir's "NAME.tmp.PID" files whose process no longer runs (a write
// killed before its rename), saying so on stderr, NAME one of cuvae's (a run's file, the
// commit marker, a .png). A missing dir (or a file in its place) is fine.
int remove_stale_temp_files(const char *dir, char *err, size_t errlen);

// Removes PATH.tmp.PID files beside path whose process no longer runs (an earlier write of
// path, killed before its rename), saying so on stderr; every atomic write calls it first.
void remove_stale_temps_of(const char *path);

#endif

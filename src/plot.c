// plot.c: figures drawn by gnuplot (pngcairo terminal) run as a child process. Each figure
// writes its data to temporary files, generates a gnuplot script, runs `gnuplot script` with
// stderr captured to a temporary file, and has gnuplot draw into a temporary file beside the
// destination PNG that is renamed into place on success. See include/cuvae/plot.h.
#include "cuvae/plot.h"
#include "cuvae/common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// matplotlib's tab10: blue, orange, green, red, purple, brown, pink, gray, olive, cyan.
const uint8_t plot_palette[10][3] = {
    {0x1f, 0x77, 0xb4}, {0xff, 0x7f, 0x0e}, {0x2c, 0xa0, 0x2c}, {0xd6, 0x27, 0x28}, {0x94, 0x67, 0xbd},
    {0x8c, 0x56, 0x4b}, {0xe3, 0x77, 0xc2}, {0x7f, 0x7f, 0x7f}, {0xbc, 0xbd, 0x22}, {0x17, 0xbe, 0xcf},
};

#define PATH_LEN 1024
#define MAX_TEMPS 4

// Histogram grid geometry (pixels): a band on top for the title (and the N(0,1) key); panels
// are 280 x 220 in grids of 3 or more columns, larger when there are only one or two columns.
#define HIST_TITLE_H 50

// ----------------------------------------------------------------------------
// running gnuplot

// Runs `gnuplot argv[1..]` with stdin and stdout on /dev/null and stderr into stderr_path
// (or /dev/null when NULL). Returns the raw wait status, or -1 if fork/wait failed.
// ": No space left on device (the file system of FOLDER has N bytes free)" where the folder of path
// has less than 64 KiB left for this user: gnuplot's own write error, which it does not report.
// "" otherwise.
static void full_disk_note(const char *path, char *note, size_t n) {
    note[0] = '\0';
    char folder[1200];
    path_folder(path, folder, sizeof folder);
    struct statvfs fs;
    if (statvfs(folder, &fs) != 0) return;
    const unsigned long long free_bytes = (unsigned long long)fs.f_bavail * fs.f_frsize;
    if (free_bytes < 64 * 1024)
        snprintf(note, n, ": %s (the file system of %s has %llu bytes free)", strerror(ENOSPC), folder, free_bytes);
}

// The seconds a gnuplot may take (CUVAE_GNUPLOT_TIMEOUT, default 300): 0, or -1 with err when the
// variable is set but not a whole number from 1 to 86400.
enum { GNUPLOT_TIMEOUT_DEFAULT = 300, GNUPLOT_TIMED_OUT = -2 };
static int gnuplot_timeout(int *seconds, char *err, size_t errlen) {
    const char *text = getenv("CUVAE_GNUPLOT_TIMEOUT");
    *seconds = GNUPLOT_TIMEOUT_DEFAULT;
    if (!text) return 0;
    const size_t digits = strspn(text, "0123456789");
    const long value = digits > 0 && digits <= 5 && text[digits] == '\0' ? strtol(text, NULL, 10) : 0;
    if (value < 1 || value > 86400)
        return set_error(err, errlen, "CUVAE_GNUPLOT_TIMEOUT=%s: expected the seconds a gnuplot may take, a whole "
                         "number from 1 to 86400", text);
    *seconds = (int)value;
    return 0;
}

int plot_check_environment(char *err, size_t errlen) {
    int seconds;
    return gnuplot_timeout(&seconds, err, errlen);
}

static int run_gnuplot(char *const argv[], const char *stderr_path, int timeout_seconds) {
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        // gnuplot ends with cuvae (a kill -9 of cuvae would leave it drawing into a temp file)
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(126);
        int null_fd = open("/dev/null", O_RDWR);
        int err_fd = stderr_path ? open(stderr_path, O_WRONLY | O_TRUNC) : null_fd;
        if (null_fd < 0 || err_fd < 0) _exit(126);
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(err_fd, 2);
        execvp("gnuplot", argv);
        _exit(127);
    }
    // waited for up to timeout_seconds (a gnuplot that hangs — a font or display setup, a stuck file
    // system — would hang plot with it): then killed, GNUPLOT_TIMED_OUT
    int status = 0;
    const double deadline = wall_seconds() + timeout_seconds;
    long pause_ns = 1000000;   // 1 ms, growing to 50 ms
    for (;;) {
        const pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) return status;
        if (done < 0 && errno != EINTR) return -1;
        if (wall_seconds() > deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            return GNUPLOT_TIMED_OUT;
        }
        const struct timespec pause = {0, pause_ns};
        nanosleep(&pause, NULL);
        if (pause_ns < 50000000) pause_ns *= 2;
    }
}

bool plot_available(void) {
    static int cached = -1;
    if (cached < 0) {
        char *argv[] = {"gnuplot", "-d", "-e", "set terminal pngcairo", NULL};
        int status = run_gnuplot(argv, NULL, GNUPLOT_TIMEOUT_DEFAULT);
        cached = (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 1 : 0;
    }
    return cached == 1;
}

// True if s (within a line) has "line <digits>:" at position p, as in gnuplot's
// '"script" line 3: undefined variable: foo'.
static bool is_line_marker(const char *p) {
    if (strncmp(p, "line ", 5) != 0) return false;
    p += 5;
    if (*p < '0' || *p > '9') return false;
    while (*p >= '0' && *p <= '9') p++;
    return *p == ':';
}

// Picks gnuplot's error message out of its stderr text: the first line that names a script
// line ("... line N: message", with the temporary script's path shortened to "script"),
// else the first line with a letter in it. Writes one line into out.
static void first_error_line(const char *text, char *out, size_t outlen) {
    const char *fallback = NULL;
    size_t fallback_len = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        for (size_t i = 0; i < len; i++) {
            if ((i == 0 || line[i - 1] == ' ') && is_line_marker(line + i)) {
                snprintf(out, outlen, "script %.*s", (int)(len - i), line + i);
                return;
            }
        }
        if (!fallback) {
            for (size_t i = 0; i < len; i++) {
                char c = line[i];
                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
                    fallback = line;
                    fallback_len = len;
                    break;
                }
            }
        }
        if (!end) break;
        line = end + 1;
    }
    if (fallback) snprintf(out, outlen, "%.*s", (int)fallback_len, fallback);
    else snprintf(out, outlen, "no message on stderr");
}

// ----------------------------------------------------------------------------
// one figure: temporary files, the script, the atomic rename

typedef struct {
    const char *png_path;             // final destination (a symbolic link's target)
    char *resolved_path;              // that target when the path given is a link, else NULL
    char out_tmp[PATH_LEN];           // gnuplot's output beside png_path ("" when none)
    char temps[MAX_TEMPS][PATH_LEN];  // script, data and stderr files in $TMPDIR
    int n_temps;
    FILE *script;
} PlotJob;

static const char *temp_dir(void) {
    const char *dir = getenv("TMPDIR");
    return (dir && dir[0]) ? dir : "/tmp";
}

// What the scratch folder is, for a message: "TMPDIR /x" or "/tmp (TMPDIR unset)".
static const char *temp_dir_said(void) {
    static char said[1200];
    const char *dir = getenv("TMPDIR");
    if (dir && dir[0]) snprintf(said, sizeof said, "TMPDIR %s", dir);
    else snprintf(said, sizeof said, "/tmp (TMPDIR unset)");
    return said;
}

// This machine's name as a scratch file's name holds it: letters, digits, '.' and '-' (others
// become '-'), at most 40 bytes; "host" when it has none.
static const char *scratch_host(void) {
    static char host[41];
    if (host[0]) return host;
    char name[256] = "";
    if (gethostname(name, sizeof name - 1) != 0 || !name[0]) snprintf(name, sizeof name, "host");
    size_t n = 0;
    for (; name[n] && n < sizeof host - 1; n++) {
        const char c = name[n];
        host[n] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ? c : '-';
    }
    host[n] = '\0';
    return host;
}

// Removes $TMPDIR/cuvae_plot_<host>_<pid>_* scratch files of this user and this machine whose
// process no longer runs (a plot or sample killed with SIGKILL leaves its own; a signal it can
// catch removes them), once a process. Left: files of processes still running, of other users,
// of other machines (a TMPDIR shared between hosts, whose processes this one cannot see), and
// names cuvae does not write (the pid as plain digits, no leading zero, no sign).
static void remove_dead_plots_scratch(void) {
    static bool done = false;
    if (done) return;
    done = true;
    const char *dir = temp_dir();
    DIR *d = opendir(dir);
    if (!d) return;   // (the scratch file's own create says what is wrong)
    char prefix[64];
    const int prefix_length = snprintf(prefix, sizeof prefix, "cuvae_plot_%s_", scratch_host());
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, (size_t)prefix_length) != 0) continue;
        const char *digits = e->d_name + prefix_length;
        const size_t n_digits = strspn(digits, "0123456789");
        if (n_digits == 0 || n_digits > 9 || digits[0] == '0' || digits[n_digits] != '_') continue;
        const long pid = strtol(digits, NULL, 10);
        if (pid == (long)getpid() || process_may_be_running(pid)) continue;   // (this job's, alive, another user's)
        char full[PATH_LEN + 256];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(full, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid()) continue;
        if (unlink(full) == 0) say("removed %s, left by a plot that was killed", full);
    }
    closedir(d);
}

// Creates $TMPDIR/cuvae_plot_<pid>_<what>_XXXXXX, records it for deletion and returns it opened
// for writing (its path in *path_out), or NULL with err.
static FILE *job_temp(PlotJob *job, const char *what, const char **path_out, char *err, size_t errlen) {
    if (job->n_temps == MAX_TEMPS) {
        set_error(err, errlen, "plot: too many temporary files");
        return NULL;
    }
    remove_dead_plots_scratch();
    char *path = job->temps[job->n_temps];
    int len = snprintf(path, PATH_LEN, "%s/cuvae_plot_%s_%ld_%s_XXXXXX", temp_dir(), scratch_host(), (long)getpid(),
                       what);
    if (len < 0 || len >= PATH_LEN) {
        path[0] = '\0';
        set_error(err, errlen, "%s: the path of plot's scratch folder is too long", temp_dir_said());
        return NULL;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        set_error(err, errlen, "%s: cannot create plot's scratch file there: %s", temp_dir_said(), strerror(errno));
        path[0] = '\0';
        return NULL;
    }
    job->n_temps++;
    temp_file_register(path);   // (removed if a signal ends the process)
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        set_error(err, errlen, "%s: cannot open temporary file: %s", path, strerror(errno));
        return NULL;
    }
    if (path_out) *path_out = path;
    return f;
}

// Closes the script and deletes every temporary file (and gnuplot's output if not renamed).
static void job_cleanup(PlotJob *job) {
    if (job->script) fclose(job->script);
    job->script = NULL;
    for (int i = 0; i < job->n_temps; i++) {
        unlink(job->temps[i]);
        temp_file_unregister(job->temps[i]);
    }
    job->n_temps = 0;
    if (job->out_tmp[0]) {
        unlink(job->out_tmp);
        temp_file_unregister(job->out_tmp);
    }
    job->out_tmp[0] = '\0';
    free(job->resolved_path);
    job->resolved_path = NULL;
}

// Writes s as a double-quoted gnuplot string: backslash and double quote are escaped, a
// backquote becomes the octal escape \140 (gnuplot would otherwise run `...` as a shell
// command), and control characters become spaces (text: a title, a label) or their octal
// escapes (a path: the file's own name, "x\ty" written as "x\011y"), so the script stays one
// command per line; a newline in text becomes gnuplot's \n, a line break. (Single-quoted
// strings are no way out: gnuplot 5.4 rejects one that starts with a doubled quote.)
static void put_quoted(FILE *f, const char *s, bool path) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"') {
            fputc('\\', f);
            fputc(*s, f);
        } else if (*s == '`') {
            fputs("\\140", f);
        } else if (*s == '\n' && !path) {   // a title's line break (gnuplot's own escape)
            fputs("\\n", f);
        } else if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            if (path) fprintf(f, "\\%03o", (unsigned char)*s);
            else fputc(' ', f);
        } else {
            fputc(*s, f);
        }
    }
    fputc('"', f);
}

static void put_string(FILE *f, const char *text) { put_quoted(f, text, false); }
static void put_path(FILE *f, const char *path) { put_quoted(f, path, true); }

// `set KEY "text" noenhanced font ',SIZE'` (a title or axis label taken literally), nothing for NULL.
static void put_text_setting(FILE *f, const char *key, const char *text, int font_size) {
    if (!text) return;
    fprintf(f, "set %s ", key);
    put_string(f, text);
    fprintf(f, " noenhanced font ',%d'\n", font_size);
}

static void put_rgb(FILE *f, int k) {
    const uint8_t *c = plot_palette[k % 10];
    fprintf(f, "'#%02x%02x%02x'", c[0], c[1], c[2]);
}

// The end of a plot element: palette colour k and a literal legend title.
static void put_colour_and_title(FILE *f, int k, const char *title) {
    fprintf(f, " lc rgb ");
    put_rgb(f, k);
    fprintf(f, " title ");
    put_string(f, title);
    fprintf(f, " noenhanced");
}

// Starts a figure of width x height pixels: creates gnuplot's output file beside png_path
// (which also checks the directory is writable) and the script with the terminal settings.
static int job_begin(PlotJob *job, const char *png_path, int width, int height, char *err, size_t errlen) {
    memset(job, 0, sizeof *job);
    if (!png_path || !png_path[0]) return set_error(err, errlen, "plot: empty output path");
    if (output_path_resolve(png_path, &job->resolved_path, err, errlen) != 0) return -1;
    if (job->resolved_path) png_path = job->resolved_path;
    job->png_path = png_path;
    remove_stale_temps_of(png_path);   // an earlier drawing of this file that was killed left its temp
    // NAME.tmp.PID, like every atomic write: a killed run's leftover is recognised and removed
    int len = snprintf(job->out_tmp, PATH_LEN, "%s.tmp.%ld", png_path, (long)getpid());
    if (len < 0 || len >= PATH_LEN) {
        job->out_tmp[0] = '\0';
        set_error(err, errlen, "%s: path too long", png_path);
        job_cleanup(job);
        return -1;
    }
    int fd = open(job->out_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        int e = errno;
        job->out_tmp[0] = '\0';
        set_error(err, errlen, "%s: cannot write: %s", png_path, strerror(e));
        job_cleanup(job);
        return -1;
    }
    fchmod(fd, 0644);
    close(fd);
    temp_file_register(job->out_tmp);
    job->script = job_temp(job, "script", NULL, err, errlen);
    if (!job->script) {
        job_cleanup(job);
        return -1;
    }
    FILE *f = job->script;
    fprintf(f, "set encoding utf8\n");
    fprintf(f, "set terminal pngcairo size %d,%d enhanced font 'Sans,12' background '#ffffff'\n", width, height);
    fprintf(f, "set output ");
    put_path(f, job->out_tmp);
    fprintf(f, "\n");
    return 0;
}

// job_begin and the figure's data file (its path in *data_path); NULL, the job cleaned up, on
// failure
static FILE *job_begin_with_data(PlotJob *job, const char *png_path, int width, int height,
                                 const char **data_path, char *err, size_t errlen) {
    if (job_begin(job, png_path, width, height, err, errlen) != 0) return NULL;
    FILE *data = job_temp(job, "data", data_path, err, errlen);
    if (!data) job_cleanup(job);
    return data;
}

// Title, axis labels and the common look of a single-panel figure.
static void put_axes_style(FILE *f, const char *title, const char *xlabel, const char *ylabel) {
    put_text_setting(f, "title", title, 15);
    put_text_setting(f, "xlabel", xlabel, 13);
    put_text_setting(f, "ylabel", ylabel, 13);
    fprintf(f, "set border 3 lw 1.2\n");
    fprintf(f, "set tics out nomirror scale 0.7\n");
    fprintf(f, "set grid back lt 1 lc rgb '#e0e0e0' lw 1\n");
}

// True when the file at path ends with a PNG IEND chunk (length 0, "IEND", its CRC).
static bool png_file_complete(const char *path) {
    static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    unsigned char tail[12];
    bool ok = fseek(f, -12, SEEK_END) == 0 && fread(tail, 1, 12, f) == 12 && memcmp(tail, iend, 12) == 0;
    fclose(f);
    return ok;
}

// Closes f: -1 if any write to it failed, with *failed_errno the reason where known
// (known_errno: the errno of a write the caller saw fail, else 0). An earlier buffered write's
// errno is gone by now, but the flush retries what it left and says why.
static int close_checked(FILE *f, int known_errno, int *failed_errno) {
    bool failed = ferror(f) || known_errno;
    *failed_errno = known_errno;
    errno = 0;
    if (fflush(f) != 0) {
        failed = true;
        if (!*failed_errno) *failed_errno = errno;
    }
    if (fclose(f) != 0) {
        failed = true;
        if (!*failed_errno) *failed_errno = errno;
    }
    return failed ? -1 : 0;
}

// Finishes the script, runs gnuplot and renames its output onto png_path. Always cleans up.
static int job_finish(PlotJob *job, char *err, size_t errlen) {
    fprintf(job->script, "unset output\n");
    int write_errno = 0;
    const bool write_failed = close_checked(job->script, 0, &write_errno) != 0;
    job->script = NULL;
    if (write_failed) {
        set_error(err, errlen, "%s: cannot write gnuplot script to %s: %s", job->png_path, temp_dir(),
                  write_errno ? strerror(write_errno) : "a write failed");
        job_cleanup(job);
        return -1;
    }
    const char *stderr_path = NULL;
    FILE *ef = job_temp(job, "stderr", &stderr_path, err, errlen);
    if (!ef) {
        job_cleanup(job);
        return -1;
    }
    fclose(ef);

    // -d: not the user's ~/.gnuplot (a `set decimalsign ","` or `set logscale` there changed the figures)
    char *argv[] = {"gnuplot", "-d", job->temps[0], NULL};
    int timeout_seconds;
    if (gnuplot_timeout(&timeout_seconds, err, errlen) != 0) {
        job_cleanup(job);
        return -1;
    }
    int status = run_gnuplot(argv, stderr_path, timeout_seconds);
    if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[400];
        if (status == GNUPLOT_TIMED_OUT) {
            snprintf(line, sizeof line, "it did not finish within %d s and was stopped (CUVAE_GNUPLOT_TIMEOUT sets "
                     "the limit)", timeout_seconds);
        } else if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
            snprintf(line, sizeof line, "gnuplot not found on PATH (install gnuplot-nox)");
        } else if (status >= 0 && WIFSIGNALED(status)) {
            snprintf(line, sizeof line, "gnuplot killed by signal %d", WTERMSIG(status));
        } else if (status < 0) {
            snprintf(line, sizeof line, "cannot run gnuplot: %s", strerror(errno));
        } else {
            char *text = read_text_file(stderr_path, NULL, NULL, 0);
            first_error_line(text ? text : "", line, sizeof line);
            free(text);
        }
        set_error(err, errlen, "%s: gnuplot failed: %s", job->png_path, line);
        job_cleanup(job);
        return -1;
    }
    struct stat st;
    char why[1400];   // (gnuplot exits 0 when its write fails: a full file system is found out here)
    if (stat(job->out_tmp, &st) != 0 || st.st_size == 0) {
        full_disk_note(job->out_tmp, why, sizeof why);
        set_error(err, errlen, "%s: gnuplot wrote no image%s; the previous file is kept", job->png_path, why);
        job_cleanup(job);
        return -1;
    }
    // a PNG must end with its IEND chunk
    if (!png_file_complete(job->out_tmp)) {
        full_disk_note(job->out_tmp, why, sizeof why);
        set_error(err, errlen, "%s: gnuplot's image is incomplete%s; the previous file is kept", job->png_path,
                  why[0] ? why : " (a full disk, or a file size limit?)");
        job_cleanup(job);
        return -1;
    }
    if (rename(job->out_tmp, job->png_path) != 0) {
        set_error(err, errlen, "%s: cannot rename %s into place: %s", job->png_path, job->out_tmp,
                  strerror(errno));
        job_cleanup(job);
        return -1;
    }
    temp_file_unregister(job->out_tmp);
    job->out_tmp[0] = '\0';
    job_cleanup(job);
    return 0;
}

// Closes a data file; -1 with err if anything failed to be written. write_errno: the errno of a
// write the caller saw fail (0: none, or not known).
static int close_data(FILE *f, int write_errno, const char *png_path, char *err, size_t errlen) {
    int failed_errno = 0;
    if (close_checked(f, write_errno, &failed_errno) != 0)
        return set_error(err, errlen, "%s: cannot write plot data to %s: %s", png_path, temp_dir(),
                         failed_errno ? strerror(failed_errno) : "a write failed");
    return 0;
}

// ----------------------------------------------------------------------------
// scatter

int plot_scatter(const char *png_path, const char *title, const char *xlabel, const char *ylabel,
                 const float *xy, const uint8_t *labels, int n, int n_classes,
                 const char *const *class_names, char *err, size_t errlen) {
    return plot_scatter_in_range(png_path, title, xlabel, ylabel, xy, labels, n, n_classes, class_names, NULL,
                                 err, errlen);
}

int plot_scatter_in_range(const char *png_path, const char *title, const char *xlabel, const char *ylabel,
                          const float *xy, const uint8_t *labels, int n, int n_classes,
                          const char *const *class_names, const double *range, char *err, size_t errlen) {
    if (range && !(isfinite(range[0]) && isfinite(range[1]) && isfinite(range[2]) && isfinite(range[3]) &&
                   range[0] < range[1] && range[2] < range[3]))
        return set_error(err, errlen, "%s: scatter range [%g, %g] x [%g, %g] is not a finite, non-empty box",
                         png_path, range[0], range[1], range[2], range[3]);
    if (!xy || n <= 0) return set_error(err, errlen, "%s: scatter needs at least one point", png_path);
    if (labels && (n_classes < 1 || n_classes > 10))
        return set_error(err, errlen, "%s: scatter supports 1..10 classes, got %d", png_path, n_classes);
    if (labels) {
        for (int i = 0; i < n; i++) {
            if (labels[i] >= n_classes)
                return set_error(err, errlen, "%s: label %d of point %d is outside 0..%d", png_path,
                                 labels[i], i, n_classes - 1);
        }
    }
    PlotJob job;
    const char *data_path = NULL;
    FILE *data = job_begin_with_data(&job, png_path, PLOT_WIDTH, PLOT_HEIGHT, &data_path, err, errlen);
    if (!data) return -1;
    // Draw in a fixed shuffled order (Fisher-Yates with a small LCG) so that a class that
    // comes last in the input does not paint over all the others.
    int *order = xmalloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) order[i] = i;
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (int i = n - 1; i > 0; i--) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        int j = (int)((state >> 33) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    int written = 0;
    for (int k = 0; k < n; k++) {
        int i = order[k];
        float x = xy[2 * i], y = xy[2 * i + 1];
        if (!isfinite(x) || !isfinite(y)) continue;
        const uint8_t *c = plot_palette[labels ? labels[i] : 0];
        // ARGB with A = transparency (0 opaque): about 30% see-through.
        unsigned long argb = (0x50UL << 24) | ((unsigned long)c[0] << 16) | ((unsigned long)c[1] << 8) | c[2];
        fprintf(data, "%.7g %.7g %lu\n", x, y, argb);
        written++;
    }
    free(order);
    if (close_data(data, 0, png_path, err, errlen) != 0) {
        job_cleanup(&job);
        return -1;
    }
    if (written == 0) {
        job_cleanup(&job);
        return set_error(err, errlen, "%s: scatter has no finite points", png_path);
    }

    FILE *f = job.script;
    put_axes_style(f, title, xlabel, ylabel);
    if (range) fprintf(f, "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\n", range[0], range[1], range[2], range[3]);
    double point_size = written > 5000 ? 0.35 : (written > 1000 ? 0.5 : 0.7);
    if (labels) fprintf(f, "set key outside right top vertical Left reverse samplen 0.5 spacing 1.3 font ',12'\n");
    else fprintf(f, "unset key\n");
    fprintf(f, "plot ");
    put_path(f, data_path);
    fprintf(f, " using 1:2:3 with points pt 7 ps %.2f lc rgb variable notitle", point_size);
    if (labels) {
        // legend entries: invisible NaN plots with large opaque markers in each class colour
        for (int k = 0; k < n_classes; k++) {
            char fallback[16];
            snprintf(fallback, sizeof fallback, "%d", k);
            const char *name = (class_names && class_names[k]) ? class_names[k] : fallback;
            fprintf(f, ", \\\n  NaN with points pt 7 ps 1.6");
            put_colour_and_title(f, k, name);
        }
    }
    fprintf(f, "\n");
    return job_finish(&job, err, errlen);
}

// ----------------------------------------------------------------------------
// histograms

// Grid of panels for `panels` histograms: columns, rows and the size of one panel in pixels.
static void hist_layout(int panels, int *cols, int *rows, int *panel_w, int *panel_h) {
    if (panels < 1) panels = 1;
    *cols = (int)ceil(sqrt((double)panels));
    *rows = (panels + *cols - 1) / *cols;
    *panel_w = *cols == 1 ? 760 : (*cols == 2 ? 420 : 280);   // one panel: room for the title and the key beside it
    *panel_h = *cols == 1 ? 420 : (*cols == 2 ? 320 : 220);
}

void plot_histograms_size(int panels, int *width, int *height) {
    int cols, rows, panel_w, panel_h;
    hist_layout(panels, &cols, &rows, &panel_w, &panel_h);
    *width = cols * panel_w;
    *height = rows * panel_h + HIST_TITLE_H;
}

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int plot_histograms(const char *png_path, const char *title, const float *values, int n, int dims,
                    int max_panels, bool overlay_normal, char *err, size_t errlen) {
    if (!values || n <= 0 || dims <= 0)
        return set_error(err, errlen, "%s: histograms need values (n %d, dims %d)", png_path, n, dims);
    if (max_panels <= 0) return set_error(err, errlen, "%s: max_panels must be positive", png_path);
    int panels = dims < max_panels ? dims : max_panels;
    int width, height, cols, rows, panel_px_w, panel_px_h;
    plot_histograms_size(panels, &width, &height);
    hist_layout(panels, &cols, &rows, &panel_px_w, &panel_px_h);

    PlotJob job;
    const char *data_path = NULL;
    FILE *data = job_begin_with_data(&job, png_path, width, height, &data_path, err, errlen);
    if (!data) return -1;
    // One block per panel (separated by two blank lines, gnuplot's "index"): bin centre, density.
    float *sorted = xmalloc((size_t)n * sizeof(float));
    int *counts = xmalloc(64 * sizeof(int));
    double *lo = xmalloc((size_t)panels * sizeof(double));
    double *hi = xmalloc((size_t)panels * sizeof(double));
    double *ymax = xmalloc((size_t)panels * sizeof(double));
    double *binw = xmalloc((size_t)panels * sizeof(double));
    for (int j = 0; j < panels; j++) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            float v = values[(size_t)i * (size_t)dims + (size_t)j];
            if (isfinite(v)) sorted[m++] = v;
        }
        if (m > 0) {
            qsort(sorted, (size_t)m, sizeof(float), compare_floats);
            lo[j] = sorted[(size_t)floor(0.001 * (m - 1))];
            hi[j] = sorted[(size_t)ceil(0.999 * (m - 1))];
        } else {
            lo[j] = -1.0;
            hi[j] = 1.0;
        }
        if (overlay_normal) {
            if (lo[j] > -4.0) lo[j] = -4.0;
            if (hi[j] < 4.0) hi[j] = 4.0;
        }
        if (hi[j] - lo[j] < 1e-6 * (1.0 + fabs(lo[j]))) {
            lo[j] -= 0.5;
            hi[j] += 0.5;
        }
        int bins = (int)sqrt((double)m);
        if (bins < 10) bins = 10;
        if (bins > 60) bins = 60;
        binw[j] = (hi[j] - lo[j]) / bins;
        memset(counts, 0, 64 * sizeof(int));
        for (int i = 0; i < m; i++) {
            double v = sorted[i];
            if (v < lo[j] || v > hi[j]) continue;  // the far tails beyond the shown range
            int b = (int)((v - lo[j]) / binw[j]);
            if (b >= bins) b = bins - 1;
            counts[b]++;
        }
        ymax[j] = overlay_normal ? 0.3989 : 0.0;
        for (int b = 0; b < bins; b++) {
            double density = m > 0 ? counts[b] / ((double)m * binw[j]) : 0.0;
            if (density > ymax[j]) ymax[j] = density;
            fprintf(data, "%.7g %.7g\n", lo[j] + (b + 0.5) * binw[j], density);
        }
        if (ymax[j] <= 0.0) ymax[j] = 1.0;
        fprintf(data, "\n\n");
    }
    free(sorted);
    free(counts);
    if (close_data(data, 0, png_path, err, errlen) != 0) {
        free(lo); free(hi); free(ymax); free(binw);
        job_cleanup(&job);
        return -1;
    }

    FILE *f = job.script;
    fprintf(f, "set multiplot title ");
    put_string(f, title ? title : "");
    fprintf(f, " noenhanced font ',15'\n");
    fprintf(f, "set border 3 lw 1\n");
    fprintf(f, "set tics out nomirror scale 0.6 font ',11'\n");
    fprintf(f, "set grid back lt 1 lc rgb '#e0e0e0' lw 1\n");
    fprintf(f, "set style fill solid 0.65 noborder\n");
    fprintf(f, "set samples 300\n");
    fprintf(f, "set lmargin 6\nset rmargin 2\nset tmargin 2\nset bmargin 2\n");
    fprintf(f, "unset key\n");
    double panel_w = (double)panel_px_w / width, panel_h = (double)panel_px_h / height;
    for (int j = 0; j < panels; j++) {
        int r = j / cols, c = j % cols;
        double origin_y = (double)(rows - 1 - r) * panel_px_h / height;
        fprintf(f, "set origin %.6f,%.6f\nset size %.6f,%.6f\n", c * panel_w, origin_y, panel_w, panel_h);
        fprintf(f, "set title 'z_{%d}' font ',13' offset 0,-0.6\n", j + 1);
        fprintf(f, "set xrange [%.9g:%.9g]\nset yrange [0:%.9g]\n", lo[j], hi[j], ymax[j] * 1.1);
        fprintf(f, "set boxwidth %.9g absolute\n", binw[j]);
        if (overlay_normal && j == 0 && panels == 1)   // one panel: the title fills the band
            fprintf(f, "set key inside right top font ',12' samplen 2\n");
        else if (overlay_normal && j == 0)
            fprintf(f, "set key at screen 0.99,0.985 right top font ',12' samplen 2\n");  // in the title band
        else if (overlay_normal && j == 1)
            fprintf(f, "unset key\n");
        fprintf(f, "plot ");
        put_path(f, data_path);
        fprintf(f, " index %d using 1:2 with boxes lc rgb ", j);
        put_rgb(f, 0);
        fprintf(f, " notitle");
        if (overlay_normal) {
            fprintf(f, ", exp(-x*x/2)/sqrt(2*pi) with lines lw 2 lc rgb ");
            put_rgb(f, 3);
            fprintf(f, " title 'N(0,1)'");
        }
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    free(lo); free(hi); free(ymax); free(binw);
    return job_finish(&job, err, errlen);
}

// ----------------------------------------------------------------------------
// line chart

// 1, 2, 5 or 10 times a power of ten, near raw.
static double nice_step(double raw) {
    double p = pow(10.0, floor(log10(raw)));
    double r = raw / p;
    if (r < 1.5) return p;
    if (r < 3.0) return 2.0 * p;
    if (r < 7.0) return 5.0 * p;
    return 10.0 * p;
}

// Log-scale y with a range just around the positive values and enough labelled ticks: gnuplot
// labels only powers of ten, which leaves a loss curve spanning less than a decade with one or
// no label. Under one decade: evenly spaced round values; one to three decades: 1, 2, 5 x 10^k;
// more: gnuplot's powers of ten.
static void put_log_ticks(FILE *f, const double *const *y, int n_series, int n_points) {
    double lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < n_series; s++) {
        for (int i = 0; i < n_points; i++) {
            double v = y[s][i];
            if (!isfinite(v) || v <= 0.0) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    }
    fprintf(f, "set logscale y 10\n");
    if (!(hi > lo)) {
        fprintf(f, "set mytics 10\n");
        return;
    }
    double decades = log10(hi / lo);
    double pad = pow(10.0, 0.04 * decades);
    fprintf(f, "set yrange [%.10g:%.10g]\n", lo / pad, hi * pad);
    lo /= pad;
    hi *= pad;
    if (decades >= 3.0) {
        fprintf(f, "set mytics 10\n");
        return;
    }
    fprintf(f, "set format y '%%g'\nset mytics 1\nset ytics (");
    int count = 0;
    if (decades < 1.0) {
        double step = nice_step((hi - lo) / 5.0);
        for (double v = ceil(lo / step) * step; v <= hi; v += step) {
            fprintf(f, "%s%.10g", count ? ", " : "", v);
            count++;
        }
    } else {
        static const double mantissas[3] = {1.0, 2.0, 5.0};
        for (double p = pow(10.0, floor(log10(lo))); p <= hi; p *= 10.0) {
            for (int m = 0; m < 3; m++) {
                double v = mantissas[m] * p;
                if (v < lo || v > hi) continue;
                fprintf(f, "%s%.10g", count ? ", " : "", v);
                count++;
            }
        }
    }
    fprintf(f, ")\n");
}

int plot_lines(const char *png_path, const char *title, const char *xlabel, const char *ylabel,
               const double *x, const double *const *y, const char *const *names, int n_series, int n_points,
               bool log_y, char *err, size_t errlen) {
    if (!x || !y || n_points <= 0)
        return set_error(err, errlen, "%s: line chart needs at least one point", png_path);
    if (n_series < 1 || n_series > 10)
        return set_error(err, errlen, "%s: line chart supports 1..10 series, got %d", png_path, n_series);
    for (int s = 0; s < n_series; s++)
        if (!y[s]) return set_error(err, errlen, "%s: series %d has no values", png_path, s);
    PlotJob job;
    const char *data_path = NULL;
    FILE *data = job_begin_with_data(&job, png_path, PLOT_WIDTH, PLOT_HEIGHT, &data_path, err, errlen);
    if (!data) return -1;
    // columns: x y_0 y_1 ...; NaN leaves a gap in the curve
    int finite = 0;
    for (int i = 0; i < n_points; i++) {
        if (!isfinite(x[i])) continue;
        fprintf(data, "%.10g", x[i]);
        for (int s = 0; s < n_series; s++) {
            double v = y[s][i];
            if (!isfinite(v) || (log_y && v <= 0.0)) {
                fprintf(data, " NaN");
            } else {
                fprintf(data, " %.10g", v);
                finite++;
            }
        }
        fprintf(data, "\n");
    }
    if (close_data(data, 0, png_path, err, errlen) != 0) {
        job_cleanup(&job);
        return -1;
    }
    if (finite == 0) {
        job_cleanup(&job);
        return set_error(err, errlen, "%s: line chart has no finite%s values", png_path,
                         log_y ? " positive" : "");
    }

    FILE *f = job.script;
    put_axes_style(f, title, xlabel, ylabel);
    if (log_y) put_log_ticks(f, y, n_series, n_points);
    // x spans the data exactly, plus a sliver so end points and markers are not cut by the border;
    // y keeps gnuplot's extension to round ticks, with a little room above and below the curves
    fprintf(f, "set autoscale xfix\n");
    fprintf(f, "set offsets graph 0.01, graph 0.01, graph 0.03, graph 0.03\n");
    // whole-number x (epochs): ticks on whole numbers only, never "0.995"; one point gets a
    // range of +-1 around it instead of gnuplot's +-1 %
    bool whole = true;
    double x_lo = INFINITY, x_hi = -INFINITY;
    for (int i = 0; i < n_points; i++) {
        if (!isfinite(x[i])) continue;
        if (x[i] != floor(x[i])) whole = false;
        if (x[i] < x_lo) x_lo = x[i];
        if (x[i] > x_hi) x_hi = x[i];
    }
    if (whole && x_hi >= x_lo) {
        double step = x_hi > x_lo ? nice_step((x_hi - x_lo) / 8.0) : 1.0;
        if (step < 1.0) step = 1.0;
        fprintf(f, "set xtics %.10g\nset mxtics 1\nset format x '%%.0f'\n", step);
        if (x_hi == x_lo) fprintf(f, "set xrange [%.10g:%.10g]\n", x_lo - 1.0, x_hi + 1.0);
    }
    if (!names && n_series == 1) fprintf(f, "unset key\n");  // nothing to tell apart
    else fprintf(f, "set key outside right top vertical Left reverse samplen 2 spacing 1.3 font ',12'\n");
    const char *style = n_points <= 30 ? "linespoints pt 7 ps 0.8" : "lines";
    fprintf(f, "plot ");
    for (int s = 0; s < n_series; s++) {
        char fallback[32];
        snprintf(fallback, sizeof fallback, "series %d", s + 1);
        const char *name = (names && names[s]) ? names[s] : fallback;
        if (s > 0) fprintf(f, ", \\\n  ");
        put_path(f, data_path);
        fprintf(f, " using 1:%d with %s lw 2", s + 2, style);
        put_colour_and_title(f, s, name);
    }
    fprintf(f, "\n");
    return job_finish(&job, err, errlen);
}

// ----------------------------------------------------------------------------
// image

// Margins around the image area, in pixels: with axes (tick labels, axis labels) or without.
static void image_margins(bool axes, int *left, int *right, int *bottom, int *top) {
    *left = axes ? 80 : 20;
    *right = axes ? 40 : 20;
    *bottom = axes ? 70 : 20;
    *top = 50;
}

// Integer enlargement so that small images come out at least ~512 px on their long side.
static int image_scale(int width, int height) {
    int longest = width > height ? width : height;
    int scale = longest > 0 ? 512 / longest : 1;
    return scale < 1 ? 1 : scale;
}

void plot_image_size(int width, int height, bool axes, int *canvas_width, int *canvas_height) {
    int left, right, bottom, top;
    image_margins(axes, &left, &right, &bottom, &top);
    int scale = image_scale(width, height);
    *canvas_width = width * scale + left + right;
    *canvas_height = height * scale + bottom + top;
}

int plot_image(const char *png_path, const char *title, const uint8_t *gray, int width, int height,
               const char *xlabel, double x_min, double x_max, const char *ylabel, double y_min, double y_max,
               char *err, size_t errlen) {
    return plot_image_channels(png_path, title, gray, width, height, 1, xlabel, x_min, x_max, ylabel, y_min, y_max,
                               err, errlen);
}

// An upper bound of a title's width in pixels at the 15-point font of put_text_setting (DejaVu
// Sans, about 20 pixels an em in pngcairo): per character, by its class (W, M, m, w widest); a
// UTF-8 character counts once, as a capital.
static int title_width_estimate(const char *title) {
    int width = 0;
    for (const unsigned char *c = (const unsigned char *)title; *c; c++) {
        if ((*c & 0xC0) == 0x80) continue;   // (a UTF-8 continuation byte)
        if (*c == 'W' || *c == 'M' || *c == 'm' || *c == 'w' || *c == '@' || *c == '%') width += 20;
        else if (*c >= 0x80 || (*c >= 'A' && *c <= 'Z')) width += 15;
        else if (*c == ' ' || *c == 'i' || *c == 'l' || *c == 'j' || *c == '.' || *c == ',' || *c == ':' ||
                 *c == ';' || *c == '\'' || *c == '|' || *c == '!') width += 7;
        else if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')) width += 13;
        else width += 17;   // symbols: + = < > ~ # ... (about 16.8 pixels)
    }
    return width;
}

int plot_image_channels(const char *png_path, const char *title, const uint8_t *gray, int width, int height,
                        int channels, const char *xlabel, double x_min, double x_max, const char *ylabel,
                        double y_min, double y_max, char *err, size_t errlen) {
    if (channels != 1 && channels != 3)
        return set_error(err, errlen, "%s: images of %d channels cannot be drawn (1 or 3)", png_path, channels);
    if (!gray || width <= 0 || height <= 0)
        return set_error(err, errlen, "%s: image needs pixels (width %d, height %d)", png_path, width, height);
    bool axes = xlabel || ylabel;
    if (axes && !(isfinite(x_min) && isfinite(x_max) && x_max > x_min && isfinite(y_min) &&
                  isfinite(y_max) && y_max > y_min))
        return set_error(err, errlen, "%s: bad axis ranges x [%g, %g], y [%g, %g]", png_path, x_min, x_max,
                         y_min, y_max);
    if (!axes) {
        x_min = 0.0;
        x_max = width;
        y_min = 0.0;
        y_max = height;
    }
    int canvas_w, canvas_h, left, right, bottom, top;
    plot_image_size(width, height, axes, &canvas_w, &canvas_h);
    image_margins(axes, &left, &right, &bottom, &top);
    int scale = image_scale(width, height);
    // a title wider than the image widens the canvas (image stays centred) instead of being clipped
    int title_width = title ? title_width_estimate(title) + 40 : 0;
    if (title_width > canvas_w) {
        int extra = title_width - canvas_w;
        left += extra / 2;
        canvas_w = title_width;
    }

    PlotJob job;
    const char *data_path = NULL;
    FILE *data = job_begin_with_data(&job, png_path, canvas_w, canvas_h, &data_path, err, errlen);
    if (!data) return -1;
    const size_t gray_bytes = (size_t)width * (size_t)height * (size_t)channels;
    errno = 0;
    const int gray_errno = fwrite(gray, 1, gray_bytes, data) == gray_bytes ? 0 : (errno ? errno : EIO);
    if (close_data(data, gray_errno, png_path, err, errlen) != 0) {
        job_cleanup(&job);
        return -1;
    }

    FILE *f = job.script;
    put_text_setting(f, "title", title, 15);
    // the image area is placed exactly (in screen fractions) so each pixel covers scale x scale
    fprintf(f, "set lmargin at screen %.6f\n", (double)left / canvas_w);
    fprintf(f, "set rmargin at screen %.6f\n", (double)(left + width * scale) / canvas_w);
    fprintf(f, "set bmargin at screen %.6f\n", (double)bottom / canvas_h);
    fprintf(f, "set tmargin at screen %.6f\n", (double)(bottom + height * scale) / canvas_h);
    fprintf(f, "set palette gray\nset cbrange [0:255]\nunset colorbox\nunset key\n");
    fprintf(f, "set xrange [%.9g:%.9g]\nset yrange [%.9g:%.9g]\n", x_min, x_max, y_min, y_max);
    if (axes) {
        put_text_setting(f, "xlabel", xlabel, 13);
        put_text_setting(f, "ylabel", ylabel, 13);
        fprintf(f, "set border 15 lw 1 front\nset tics out scale 0.7 nomirror\n");
    } else {
        fprintf(f, "unset border\nunset tics\n");
    }
    double dx = (x_max - x_min) / width, dy = (y_max - y_min) / height;
    fprintf(f, "plot ");
    put_path(f, data_path);
    // flipy: the first row of the file is drawn at the top
    fprintf(f, " binary array=(%d,%d) format='%s' flipy dx=%.9g dy=%.9g origin=(%.9g,%.9g) with %s notitle\n",
            width, height, channels == 3 ? "%uchar%uchar%uchar" : "%uchar", dx, dy, x_min + 0.5 * dx,
            y_min + 0.5 * dy, channels == 3 ? "rgbimage" : "image");
    return job_finish(&job, err, errlen);
}

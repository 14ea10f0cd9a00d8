// fault_inject.c: an LD_PRELOAD library for cli_faults.sh that makes one system call fail the
// way a full or failing disk does, at a chosen file, so every save point's error path runs for
// real. CUVAE_FAULT="OP:PATTERN[:NTH[:ERRNO]]": the NTH (default 1) call of OP whose path
// contains PATTERN fails with ERRNO (default ENOSPC, 28). OP is one of
//   open    an open(2) for writing (the path opened)
//   rename  a rename(2) (the destination path)
//   fsync   an fsync(2) (the path of the file descriptor, through /proc/self/fd)
// Every other call goes to libc unchanged. The failure is said on stderr as "fault_inject: ...".
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef struct {
    char op[16];
    char pattern[512];
    int nth;        // the matching call that fails (1: the first)
    int error;      // its errno
    int seen;       // matching calls so far
    int parsed;     // 1 once CUVAE_FAULT was read (0: not yet, -1: absent or malformed)
} FaultRule;

static FaultRule rule;

static void read_rule(void) {
    if (rule.parsed) return;
    rule.parsed = -1;
    const char *spec = getenv("CUVAE_FAULT");
    if (!spec) return;
    char copy[600];
    snprintf(copy, sizeof copy, "%s", spec);
    char *fields[4] = {NULL, NULL, NULL, NULL};
    int n = 0;
    for (char *field = strtok(copy, ":"); field && n < 4; field = strtok(NULL, ":")) fields[n++] = field;
    if (n < 2) {
        fprintf(stderr, "fault_inject: CUVAE_FAULT \"%s\": want OP:PATTERN[:NTH[:ERRNO]]\n", spec);
        return;
    }
    snprintf(rule.op, sizeof rule.op, "%s", fields[0]);
    snprintf(rule.pattern, sizeof rule.pattern, "%s", fields[1]);
    rule.nth = n > 2 ? atoi(fields[2]) : 1;
    rule.error = n > 3 ? atoi(fields[3]) : ENOSPC;
    rule.parsed = 1;
}

// Whether this call (op on path) is the one to fail; sets errno when it is.
static int should_fail(const char *op, const char *path) {
    read_rule();
    if (rule.parsed != 1 || !path || strcmp(op, rule.op) != 0 || !strstr(path, rule.pattern)) return 0;
    if (++rule.seen != rule.nth) return 0;
    fprintf(stderr, "fault_inject: %s(%s) fails with errno %d\n", op, path, rule.error);
    errno = rule.error;
    return 1;
}

int open(const char *path, int flags, ...) {
    static int (*real_open)(const char *, int, ...);
    if (!real_open) real_open = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list args;
        va_start(args, flags);
        mode = (mode_t)va_arg(args, int);
        va_end(args);
    }
    if ((flags & (O_WRONLY | O_RDWR)) && should_fail("open", path)) return -1;
    return real_open(path, flags, mode);
}

int rename(const char *from, const char *to) {
    static int (*real_rename)(const char *, const char *);
    if (!real_rename) real_rename = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    if (should_fail("rename", to)) return -1;
    return real_rename(from, to);
}

int fsync(int fd) {
    static int (*real_fsync)(int);
    if (!real_fsync) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    const ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0) {
        path[n] = '\0';
        if (should_fail("fsync", path)) return -1;
    }
    return real_fsync(fd);
}

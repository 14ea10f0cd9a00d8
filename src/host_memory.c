// host_memory.c: how much host memory this process may still use (common.h): the kernel's
// MemAvailable plus free swap, capped by the memory limits of the process's cgroup and their
// ancestors. A container or a batch job's cgroup limit is invisible in /proc/meminfo, and Linux
// overcommits: without the cap a model larger than the limit is accepted and the process is
// killed (SIGKILL, no message) when it first touches the memory. Also check_host_memory, the
// check of a file read whole.
#include "cuvae/common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// The number in a one-value file (memory.max, memory.limit_in_bytes, ...); false if the file is
// absent, unreadable or says "max" (no limit).
static bool read_number_file(const char *path, unsigned long long *value) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char text[64] = "";
    bool ok = fgets(text, sizeof text, f) != NULL && sscanf(text, "%llu", value) == 1;
    fclose(f);
    return ok;
}

// The value of `key` in a memory.stat file ("key value" lines); 0 where absent.
static unsigned long long read_stat_value(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    unsigned long long value = 0, v;
    const size_t key_len = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ' ' && sscanf(line + key_len, "%llu", &v) == 1) {
            value = v;
            break;
        }
    }
    fclose(f);
    return value;
}

typedef struct {
    const char *limit;      // the limit's file: "memory.max" (v2), "memory.limit_in_bytes" (v1)
    const char *usage;      // "memory.current", "memory.usage_in_bytes"
    const char *inactive;   // memory.stat's reclaimable page cache: "inactive_file", "total_inactive_file"
} CgroupFiles;

static const CgroupFiles cgroup_v2 = {"memory.max", "memory.current", "inactive_file"};
static const CgroupFiles cgroup_v1 = {"memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"};

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// The least headroom (limit - usage + inactive file cache) over the cgroup `root`/`path` and its
// ancestors up to `root`, which a cgroup namespace makes the process's own; where `root`/`path`
// does not exist (a container that sees the host's path) `root` alone. UINT64_MAX if no level has
// a limit.
static unsigned long long cgroup_headroom(const char *root, const char *path, const CgroupFiles *files) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s%s", root, path) >= (int)sizeof dir || !is_dir(dir))
        snprintf(dir, sizeof dir, "%s", root);
    const size_t root_len = strlen(root);
    unsigned long long least = UINT64_MAX;
    for (;;) {
        char file[4200];
        unsigned long long limit, usage;
        snprintf(file, sizeof file, "%s/%s", dir, files->limit);
        if (read_number_file(file, &limit)) {
            snprintf(file, sizeof file, "%s/%s", dir, files->usage);
            if (!read_number_file(file, &usage)) usage = 0;
            snprintf(file, sizeof file, "%s/memory.stat", dir);
            const unsigned long long inactive = read_stat_value(file, files->inactive);
            const unsigned long long used = usage > inactive ? usage - inactive : 0;
            const unsigned long long headroom = limit > used ? limit - used : 0;
            if (headroom < least) least = headroom;
        }
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= root_len || !slash || (size_t)(slash - dir) < root_len) break;
        *slash = '\0';   // the parent, down to root itself
    }
    return least;
}

// The cgroups of this process (proc_dir/self/cgroup: "ID:controllers:path" lines; v2 is
// "0::path", v1's memory controller "N:memory:path" or "N:...,memory,...:path") and the
// least headroom of their memory limits; UINT64_MAX if none applies.
static unsigned long long cgroups_headroom(const char *proc_dir, const char *cgroup_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/self/cgroup", proc_dir);
    FILE *f = fopen(path, "r");
    if (!f) return UINT64_MAX;
    unsigned long long least = UINT64_MAX;
    char line[4200];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *first = strchr(line, ':');
        char *second = first ? strchr(first + 1, ':') : NULL;
        if (!second || second[1] != '/') continue;
        *second = '\0';
        const char *controllers = first + 1, *cgroup = second + 1;
        char root[4200];
        unsigned long long headroom = UINT64_MAX;
        if (controllers[0] == '\0') {   // v2: mounted at cgroup_dir, or at cgroup_dir/unified beside v1
            snprintf(root, sizeof root, "%s", cgroup_dir);
            headroom = cgroup_headroom(root, strcmp(cgroup, "/") == 0 ? "" : cgroup, &cgroup_v2);
            snprintf(root, sizeof root, "%s/unified", cgroup_dir);
            if (is_dir(root)) {
                const unsigned long long unified = cgroup_headroom(root, strcmp(cgroup, "/") == 0 ? "" : cgroup, &cgroup_v2);
                if (unified < headroom) headroom = unified;
            }
        } else {
            char list[256];
            snprintf(list, sizeof list, ",%s,", controllers);
            if (!strstr(list, ",memory,")) continue;
            snprintf(root, sizeof root, "%s/memory", cgroup_dir);
            headroom = cgroup_headroom(root, strcmp(cgroup, "/") == 0 ? "" : cgroup, &cgroup_v1);
        }
        if (headroom < least) least = headroom;
    }
    fclose(f);
    return least;
}

size_t host_memory_available_at(const char *proc_dir, const char *cgroup_dir, bool *cgroup_bound) {
    char path[4096];
    snprintf(path, sizeof path, "%s/meminfo", proc_dir);
    unsigned long long machine = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1 || sscanf(line, "SwapFree: %llu kB", &kb) == 1)
                machine += kb * 1024ull;
        }
        fclose(f);
    }
    const unsigned long long cgroup = cgroups_headroom(proc_dir, cgroup_dir);
    const bool bound = cgroup != UINT64_MAX && (machine == 0 || cgroup < machine);
    if (cgroup_bound) *cgroup_bound = bound;
    unsigned long long available = bound ? cgroup : machine;
    if (bound && available == 0) available = 1;   // (0 says "unknown": a cgroup at its limit has 0 left)
    return available > SIZE_MAX ? SIZE_MAX : (size_t)available;
}

size_t host_memory_available(bool *cgroup_bound) {
    return host_memory_available_at("/proc", "/sys/fs/cgroup", cgroup_bound);
}

const char *host_memory_source(bool cgroup_bound) {
    return cgroup_bound ? "its cgroup's memory limit leaves (a container's or a job's limit: /proc/self/cgroup)"
                        : "the machine has available";
}

int check_host_memory(const char *path, size_t bytes, char *err, size_t errlen) {
    size_t available = host_memory_available(NULL);
    if (available > 0 && bytes > available)
        return set_error(err, errlen, "%s: needs %.1f MiB of host memory to load, %.1f MiB are available (a file "
                         "is read whole, whatever data.train_limit: give fewer or smaller images)",
                         path, bytes / 1048576.0, available / 1048576.0);
    return 0;
}

// host_memory.c: how much host memory this process may still use (common.h): the kernel's
// MemAvailable plus free swap, capped by the memory limits of the process's cgroup and their
// ancestors (limit - usage + the page cache the kernel would reclaim). A container or a batch
// job's cgroup limit is invisible in /proc/meminfo, and Linux overcommits: without the cap a
// model larger than the limit is accepted and the process is killed (SIGKILL, no message) when
// it first touches the memory. Also check_host_memory, the check of a file read whole.
#include "cuvae/common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    // memory.stat's page cache, which the kernel reclaims before it kills (as MemAvailable counts
    // it), less what must be written first
    const char *active_file, *inactive_file, *dirty, *writeback;
} CgroupFiles;

static const CgroupFiles cgroup_v2 = {"memory.max", "memory.current", "active_file", "inactive_file", "file_dirty",
                                      "file_writeback"};
static const CgroupFiles cgroup_v1 = {"memory.limit_in_bytes", "memory.usage_in_bytes", "total_active_file",
                                      "total_inactive_file", "total_dirty", "total_writeback"};

// A limit at or above 2^62 bytes is "none": cgroup v1 writes its unlimited as 9223372036854771712.
#define CGROUP_NO_LIMIT (1ull << 62)

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// The tightest cgroup level found so far: its headroom (limit - usage + reclaimable page cache)
// and where it came from. headroom UINT64_MAX: no level has a limit.
typedef struct {
    unsigned long long headroom, limit, used;
    char limit_file[HOST_MEMORY_FILE_MAX];
} CgroupLevel;

// The reclaimable page cache of a cgroup's memory.stat: active + inactive file pages less the dirty
// ones and those being written back.
static unsigned long long reclaimable_cache(const char *stat_file, const CgroupFiles *files) {
    const unsigned long long cache = read_stat_value(stat_file, files->active_file) +
                                     read_stat_value(stat_file, files->inactive_file);
    const unsigned long long unwritten = read_stat_value(stat_file, files->dirty) +
                                         read_stat_value(stat_file, files->writeback);
    return cache > unwritten ? cache - unwritten : 0;
}

// The tightest level (into *least where tighter) over the cgroup `root`/`path` and its ancestors up
// to `root`, which a cgroup namespace makes the process's own; where `root`/`path` does not exist (a
// container that sees the host's path) `root` alone.
static void cgroup_headroom(const char *root, const char *path, const CgroupFiles *files, CgroupLevel *least) {
    char dir[4096];
    if (snprintf(dir, sizeof dir, "%s%s", root, path) >= (int)sizeof dir || !is_dir(dir))
        snprintf(dir, sizeof dir, "%s", root);
    const size_t root_len = strlen(root);
    for (;;) {
        char file[HOST_MEMORY_FILE_MAX], limit_file[HOST_MEMORY_FILE_MAX];
        unsigned long long limit, usage;
        snprintf(limit_file, sizeof limit_file, "%s/%s", dir, files->limit);
        if (read_number_file(limit_file, &limit) && limit < CGROUP_NO_LIMIT) {
            snprintf(file, sizeof file, "%s/%s", dir, files->usage);
            if (!read_number_file(file, &usage)) usage = 0;
            snprintf(file, sizeof file, "%s/memory.stat", dir);
            const unsigned long long cache = reclaimable_cache(file, files);
            const unsigned long long used = usage > cache ? usage - cache : 0;
            const unsigned long long headroom = limit > used ? limit - used : 0;
            if (headroom < least->headroom) {
                least->headroom = headroom;
                least->limit = limit;
                least->used = used;
                snprintf(least->limit_file, sizeof least->limit_file, "%s", limit_file);
            }
        }
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= root_len || !slash || (size_t)(slash - dir) < root_len) break;
        *slash = '\0';   // the parent, down to root itself
    }
}

// Where the cgroup file systems are mounted (proc_dir/self/mountinfo): v2's first mount and the
// first v1 mount holding the memory controller, each with the cgroup it shows at its mount point
// (its "root": "/" on the host or in a cgroup namespace, the container's own cgroup in a container
// that sees the host's paths).
typedef struct {
    bool v2, v1;
    char v2_mount[1024], v2_root[1024], v1_mount[1024], v1_root[1024];
} CgroupMounts;

// A mountinfo field as it names the path: "\040" is a space, "\011" a tab, "\012" a newline and
// "\134" a backslash.
static void mountinfo_unescape(char *field) {
    char *out = field;
    for (const char *in = field; *in; out++) {
        if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' && in[3] >= '0' &&
            in[3] <= '7') {
            *out = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
            in += 4;
        } else {
            *out = *in++;
        }
    }
    *out = '\0';
}

// Whether `list` ("rw,memory,..." super options) holds the option `name`.
static bool has_option(const char *list, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == '\0')) return true;
    return false;
}

// Reads proc_dir/self/mountinfo into *mounts; false where it is unreadable or names no cgroup mount.
// A line: "ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS".
static bool read_cgroup_mounts(const char *proc_dir, CgroupMounts *mounts) {
    memset(mounts, 0, sizeof *mounts);
    char path[4096];
    snprintf(path, sizeof path, "%s/self/mountinfo", proc_dir);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *field[64];
        int n = 0;
        for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
            field[n++] = t;
        int dash = 6;   // the optional fields end at "-"
        while (dash < n && strcmp(field[dash], "-") != 0) dash++;
        if (dash + 3 >= n) continue;   // (FSTYPE SOURCE SUPER_OPTIONS after it)
        const char *fstype = field[dash + 1], *super_options = field[dash + 3];
        const bool v2 = strcmp(fstype, "cgroup2") == 0 && !mounts->v2;
        const bool v1 = strcmp(fstype, "cgroup") == 0 && has_option(super_options, "memory") && !mounts->v1;
        if (!v2 && !v1) continue;
        mountinfo_unescape(field[3]);
        mountinfo_unescape(field[4]);
        if (strlen(field[3]) >= sizeof mounts->v2_root || strlen(field[4]) >= sizeof mounts->v2_mount) continue;
        if (v2) {
            mounts->v2 = true;
            snprintf(mounts->v2_root, sizeof mounts->v2_root, "%s", field[3]);
            snprintf(mounts->v2_mount, sizeof mounts->v2_mount, "%s", field[4]);
        } else {
            mounts->v1 = true;
            snprintf(mounts->v1_root, sizeof mounts->v1_root, "%s", field[3]);
            snprintf(mounts->v1_mount, sizeof mounts->v1_mount, "%s", field[4]);
        }
    }
    fclose(f);
    return mounts->v1 || mounts->v2;
}

// The part of a cgroup path ("" for the top, else "/a/b") below the cgroup a mount shows (its root):
// "" for that cgroup itself;
// the whole path where it is not below it (cgroup_headroom then takes the mount's own cgroup).
static const char *below_mount_root(const char *cgroup, const char *mount_root) {
    if (strcmp(mount_root, "/") == 0) return cgroup;
    const size_t n = strlen(mount_root);
    if (strncmp(cgroup, mount_root, n) == 0 && (cgroup[n] == '\0' || cgroup[n] == '/')) return cgroup + n;
    return cgroup;
}

// The cgroups of this process (proc_dir/self/cgroup: "ID:controllers:path" lines; v2 is
// "0::path", v1's memory controller "N:memory:path" or "N:...,memory,...:path") and the
// tightest of their memory limits, into *least. cgroup_dir NULL: the mounts mountinfo names.
static void cgroups_headroom(const char *proc_dir, const char *cgroup_dir, CgroupLevel *least) {
    CgroupMounts mounts;
    const bool from_mountinfo = cgroup_dir == NULL && read_cgroup_mounts(proc_dir, &mounts);
    if (!cgroup_dir) cgroup_dir = "/sys/fs/cgroup";
    char path[4096];
    snprintf(path, sizeof path, "%s/self/cgroup", proc_dir);
    FILE *f = fopen(path, "r");
    if (!f) return;
    // v2 alone is mounted at cgroup_dir (its root has cgroup.controllers); beside v1 at
    // cgroup_dir/unified (where there is one)
    snprintf(path, sizeof path, "%s/cgroup.controllers", cgroup_dir);
    const bool v2_alone = access(path, F_OK) == 0;
    char line[4200];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *first = strchr(line, ':');
        char *second = first ? strchr(first + 1, ':') : NULL;
        if (!second || second[1] != '/') continue;
        *second = '\0';
        const char *controllers = first + 1, *cgroup = strcmp(second + 1, "/") == 0 ? "" : second + 1;
        char list[256];
        snprintf(list, sizeof list, ",%s,", controllers);
        const bool v2_line = controllers[0] == '\0', memory_line = !v2_line && strstr(list, ",memory,");
        char root[4200];
        if (from_mountinfo) {
            if (v2_line && mounts.v2)
                cgroup_headroom(mounts.v2_mount, below_mount_root(cgroup, mounts.v2_root), &cgroup_v2, least);
            else if (memory_line && mounts.v1)
                cgroup_headroom(mounts.v1_mount, below_mount_root(cgroup, mounts.v1_root), &cgroup_v1, least);
        } else if (v2_line) {
            snprintf(root, sizeof root, "%s/unified", cgroup_dir);
            if (v2_alone || !is_dir(root)) snprintf(root, sizeof root, "%s", cgroup_dir);
            cgroup_headroom(root, cgroup, &cgroup_v2, least);
        } else if (memory_line) {
            snprintf(root, sizeof root, "%s/memory", cgroup_dir);
            cgroup_headroom(root, cgroup, &cgroup_v1, least);
        }
    }
    fclose(f);
}

HostMemory host_memory_read_at(const char *proc_dir, const char *cgroup_dir) {
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
    CgroupLevel least = {.headroom = UINT64_MAX};
    cgroups_headroom(proc_dir, cgroup_dir, &least);
    HostMemory hm = {0};
    hm.cgroup_bound = least.headroom != UINT64_MAX && (machine == 0 || least.headroom < machine);
    unsigned long long available = hm.cgroup_bound ? least.headroom : machine;
    if (hm.cgroup_bound && available == 0) available = 1;   // (0 says "unknown": a cgroup at its limit has 0 left)
    hm.available = available > SIZE_MAX ? SIZE_MAX : (size_t)available;
    if (hm.cgroup_bound) {
        hm.limit = least.limit;
        hm.used = least.used;
        snprintf(hm.limit_file, sizeof hm.limit_file, "%s", least.limit_file);
    }
    return hm;
}

HostMemory host_memory_read(void) {
    return host_memory_read_at("/proc", NULL);
}

const char *host_memory_source(const HostMemory *hm, char *text, size_t size) {
    if (hm->cgroup_bound)
        snprintf(text, size, "its cgroup's memory limit leaves (a container's or a job's limit: %s says %llu bytes, "
                 "%llu of them in use besides reclaimable page cache)", hm->limit_file, hm->limit, hm->used);
    else
        snprintf(text, size, "the machine has available");
    return text;
}

int check_host_memory(const char *path, size_t bytes, char *err, size_t errlen) {
    const HostMemory hm = host_memory_read();
    if (hm.available > 0 && bytes > hm.available) {
        char source[4600];
        return set_error(err, errlen, "%s: needs %.1f MiB of host memory to load, more than the %.1f MiB %s (a file "
                         "is read whole, whatever data.train_limit: give fewer or smaller images)",
                         path, bytes / 1048576.0, hm.available / 1048576.0, host_memory_source(&hm, source, sizeof source));
    }
    return 0;
}

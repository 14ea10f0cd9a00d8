// test_host_memory.c: host_memory_read_at (src/host_memory.c) on made-up /proc and cgroup
// folders: the machine's MemAvailable plus free swap, capped by the tightest cgroup memory limit
// (v2 memory.max, v1 memory.limit_in_bytes, less usage, plus the reclaimable file cache: active
// and inactive, less dirty and written-back pages) of the process's cgroup and its ancestors,
// and the limit file it names; v1 beside v2, v2 mounted at unified/ (and not when v2 is alone), a
// cgroup path the mount does not show (a container), a limit on a namespace's root, v1's
// "unlimited", a cgroup at its limit, nothing readable.
// (cli_faults.sh runs cuvae in a real memory cgroup where one can be made.)
#include "test.h"

#include "cuvae/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];   // a fresh folder per case: proc/ and cgroup/ below it

// write_file("proc/meminfo", "...") below root, making the folders on the way
static void write_file(const char *relative, const char *fmt, ...) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, relative);
    for (char *slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        mkdir(path, 0755);
        *slash = '/';
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(0, "cannot write %s", path);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static void fresh_root(void) {
    snprintf(root, sizeof root, "/tmp/cuvae_host_memory_XXXXXX");
    CHECK(mkdtemp(root) != NULL, "mkdtemp");
}

static void remove_root(void) {
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    CHECK(system(command) == 0, "rm -rf %s", root);
}

// host_memory_read_at on root's proc/ and cgroup/
static HostMemory read_fixture(void) {
    char proc[512], cgroup[512];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(cgroup, sizeof cgroup, "%s/cgroup", root);
    return host_memory_read_at(proc, cgroup);
}

// its .available, and *bound = .cgroup_bound
static size_t available(bool *bound) {
    const HostMemory hm = read_fixture();
    *bound = hm.cgroup_bound;
    return hm.available;
}

// whether the answer names `relative` (below root) as its limit file, with that limit and usage
static bool names_limit(const char *relative, unsigned long long limit, unsigned long long used) {
    const HostMemory hm = read_fixture();
    char want[1024];
    snprintf(want, sizeof want, "%s/%s", root, relative);
    char text[4600];
    host_memory_source(&hm, text, sizeof text);
    char says[1200];
    snprintf(says, sizeof says, "%s says %llu bytes, %llu of them in use", want, limit, used);
    return hm.cgroup_bound && strcmp(hm.limit_file, want) == 0 && hm.limit == limit && hm.used == used &&
           strstr(text, says) != NULL;
}

#define MEMINFO "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:    1000 kB\nSwapTotal: 0 kB\nSwapFree:          24 kB\n"

static void test_machine_alone(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    bool bound = true;
    size_t got = available(&bound);
    CHECK(got == 1024 * 1024 && !bound, "MemAvailable 1000 kB + SwapFree 24 kB, no cgroup file: want 1048576, "
          "not cgroup-bound; got %zu (%d)", got, bound);
    // a cgroup v2 root with no limit files (the host's own root cgroup)
    write_file("proc/self/cgroup", "0::/\n");
    write_file("cgroup/cgroup.procs", "1\n");
    got = available(&bound);
    CHECK(got == 1024 * 1024 && !bound, "cgroup v2 root without memory.max: want the machine's 1048576; got %zu", got);
    remove_root();
}

static void test_cgroup_v2_limit_and_ancestor(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "0::/job/step\n");
    write_file("cgroup/job/memory.max", "max\n");
    write_file("cgroup/job/step/memory.max", "500000\n");
    write_file("cgroup/job/step/memory.current", "200000\n");
    write_file("cgroup/job/step/memory.stat", "anon 150000\nfile 50000\nactive_file 0\ninactive_file 50000\n");
    bool bound = false;
    size_t got = available(&bound);
    CHECK(got == 350000 && bound, "v2 limit 500000, usage 200000 of which 50000 inactive file cache: want 350000, "
          "cgroup-bound; got %zu (%d)", got, bound);
    CHECK(names_limit("cgroup/job/step/memory.max", 500000, 150000), "the answer names job/step's memory.max, "
          "500000 bytes, 150000 in use");
    // active file cache is reclaimed as well (a file read twice); its dirty and written-back pages are not
    write_file("cgroup/job/step/memory.stat", "anon 20000\nfile 180000\nactive_file 130000\ninactive_file 50000\n"
               "file_dirty 7000\nfile_writeback 3000\n");
    got = available(&bound);
    CHECK(got == 470000 && bound, "usage 200000 with 180000 of file cache, 10000 of it unwritten: want 470000; "
          "got %zu (%d)", got, bound);
    write_file("cgroup/job/step/memory.stat", "anon 150000\nfile 50000\nactive_file 0\ninactive_file 50000\n");
    // an ancestor's limit tighter than the leaf's
    write_file("cgroup/job/memory.max", "300000\n");
    write_file("cgroup/job/memory.current", "250000\n");
    got = available(&bound);
    CHECK(got == 50000 && bound, "the parent's 300000 limit with 250000 used: want 50000; got %zu", got);
    CHECK(names_limit("cgroup/job/memory.max", 300000, 250000), "the answer names the parent's memory.max");
    // a limit above the machine's memory: the machine's
    write_file("cgroup/job/memory.max", "max\n");
    write_file("cgroup/job/step/memory.max", "999999999999\n");
    got = available(&bound);
    CHECK(got == 1024 * 1024 && !bound, "a limit far above MemAvailable: want the machine's 1048576; got %zu (%d)",
          got, bound);
    // a cgroup at its limit: 1 byte (0 would read as "unknown")
    write_file("cgroup/job/step/memory.max", "100000\n");
    write_file("cgroup/job/step/memory.current", "180000\n");
    got = available(&bound);
    CHECK(got == 1 && bound, "usage past the limit: want 1, cgroup-bound; got %zu (%d)", got, bound);
    remove_root();
}

static void test_cgroup_v1_memory_controller(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "9:name=systemd:/\n5:cpu,memory,pids:/docker/abc\n1:cpu:/\n0::/\n");
    write_file("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");   // the root: no limit
    write_file("cgroup/memory/memory.usage_in_bytes", "5000000000\n");
    write_file("cgroup/memory/docker/abc/memory.limit_in_bytes", "900000\n");
    write_file("cgroup/memory/docker/abc/memory.usage_in_bytes", "400000\n");
    write_file("cgroup/memory/docker/abc/memory.stat", "cache 200000\ninactive_file 1\nactive_file 2\ndirty 3\n"
               "total_inactive_file 100000\ntotal_active_file 50000\ntotal_dirty 20000\ntotal_writeback 10000\n");
    bool bound = false;
    size_t got = available(&bound);
    CHECK(got == 620000 && bound, "v1 (memory among cpu,memory,pids) limit 900000, usage 400000, total file cache "
          "150000 of which 30000 unwritten: want 620000; got %zu (%d)", got, bound);
    // the path as the host names it, but the mount shows the container's own cgroup at its root
    write_file("proc/self/cgroup", "4:memory:/host/only/path\n");
    write_file("cgroup/memory/memory.limit_in_bytes", "700000\n");
    write_file("cgroup/memory/memory.usage_in_bytes", "200000\n");
    got = available(&bound);
    CHECK(got == 500000 && bound, "a cgroup path the mount does not show: the mount's root limit, want 500000; got %zu",
          got);
    remove_root();
}

static void test_cgroup_v2_beside_v1(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "4:memory:/\n0::/svc\n");
    write_file("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    write_file("cgroup/unified/svc/memory.max", "400000\n");
    write_file("cgroup/unified/svc/memory.current", "100000\n");
    bool bound = false;
    size_t got = available(&bound);
    CHECK(got == 300000 && bound, "v2 mounted at unified/ beside v1: want 300000; got %zu (%d)", got, bound);
    remove_root();
}

// a container in its own cgroup namespace: /proc/self/cgroup says /init.scope, the limit is on the
// namespace's root (the mount's root), not on the process's own cgroup
static void test_limit_on_the_namespace_root(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "0::/init.scope\n");
    write_file("cgroup/cgroup.controllers", "cpu memory pids\n");
    write_file("cgroup/memory.max", "500000\n");
    write_file("cgroup/memory.current", "100000\n");
    write_file("cgroup/init.scope/memory.max", "max\n");
    write_file("cgroup/init.scope/memory.current", "90000\n");
    bool bound = false;
    size_t got = available(&bound);
    CHECK(got == 400000 && bound, "the namespace root's limit 500000, 100000 used: want 400000; got %zu (%d)",
          got, bound);
    CHECK(names_limit("cgroup/memory.max", 500000, 100000), "the answer names the root's memory.max");
    remove_root();
}

// v2 alone (its root has cgroup.controllers): a cgroup that happens to be called "unified" is not
// a second mount; v1's unlimited (2^63 rounded down to a page) is no limit
static void test_unified_and_unlimited(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "0::/svc\n");
    write_file("cgroup/cgroup.controllers", "memory\n");
    write_file("cgroup/svc/memory.max", "max\n");
    write_file("cgroup/unified/svc/memory.max", "4096\n");
    bool bound = true;
    size_t got = available(&bound);
    CHECK(got == 1024 * 1024 && !bound, "v2 alone with an unrelated cgroup named unified: want the machine's "
          "1048576; got %zu (%d)", got, bound);
    remove_root();
    fresh_root();   // no meminfo: v1's unlimited must not read as an 8 EiB cgroup bound
    write_file("proc/self/cgroup", "4:memory:/\n");
    write_file("cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    write_file("cgroup/memory/memory.usage_in_bytes", "1000\n");
    got = available(&bound);
    CHECK(got == 0 && !bound, "v1's unlimited and no meminfo: want 0 (unknown), not bound; got %zu (%d)", got, bound);
    remove_root();
}

static void test_nothing_readable(void) {
    fresh_root();
    bool bound = true;
    size_t got = available(&bound);
    CHECK(got == 0 && !bound, "no meminfo, no cgroup file: want 0 (unknown); got %zu (%d)", got, bound);
    // a cgroup limit without meminfo: the limit
    write_file("proc/self/cgroup", "0::/a\n");
    write_file("cgroup/a/memory.max", "123456\n");
    got = available(&bound);
    CHECK(got == 123456 && bound, "a cgroup limit and no meminfo: want 123456; got %zu", got);
    remove_root();
}

// cgroup_dir NULL: the mounts /proc/self/mountinfo names, wherever they are: a v1 memory controller
// co-mounted with cpu at a path with a space (mountinfo's "\\040"), showing the container's cgroup
// /docker/abc at its mount point; v2 elsewhere; a "memoryx" option is not the memory controller
static void test_mounts_from_mountinfo(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "5:cpu,memory:/docker/abc/sub\n0::/svc\n");
    write_file("proc/self/mountinfo",
               "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
               "33 31 0:30 / %s/notmem rw,relatime - cgroup cgroup rw,memoryx\n"
               "35 31 0:32 /docker/abc %s/odd\\040place/mem rw,relatime shared:5 master:2 - cgroup cgroup rw,cpu,memory\n"
               "41 31 0:38 / %s/v2mount rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n", root, root, root);
    write_file("notmem/sub/memory.limit_in_bytes", "1000\n");
    write_file("odd place/mem/memory.limit_in_bytes", "900000\n");
    write_file("odd place/mem/memory.usage_in_bytes", "350000\n");
    write_file("odd place/mem/sub/memory.limit_in_bytes", "800000\n");
    write_file("odd place/mem/sub/memory.usage_in_bytes", "300000\n");
    write_file("v2mount/svc/memory.max", "600000\n");
    write_file("v2mount/svc/memory.current", "50000\n");
    char proc[512];
    snprintf(proc, sizeof proc, "%s/proc", root);
    HostMemory hm = host_memory_read_at(proc, NULL);
    char want[1024];
    snprintf(want, sizeof want, "%s/odd place/mem/sub/memory.limit_in_bytes", root);
    CHECK(hm.cgroup_bound && hm.available == 500000 && strcmp(hm.limit_file, want) == 0,
          "v1 at 'odd place/mem' showing /docker/abc: its sub cgroup's 800000 - 300000: want 500000 from %s; got %zu "
          "from %s", want, hm.available, hm.limit_file);
    // the v2 limit tighter: taken from where mountinfo mounts v2
    write_file("v2mount/svc/memory.current", "200000\n");
    hm = host_memory_read_at(proc, NULL);
    snprintf(want, sizeof want, "%s/v2mount/svc/memory.max", root);
    CHECK(hm.cgroup_bound && hm.available == 400000 && strcmp(hm.limit_file, want) == 0,
          "v2 at v2mount: 600000 - 200000: want 400000 from %s; got %zu from %s", want, hm.available, hm.limit_file);
    remove_root();
}

// the answer of host_memory_read_at on root's proc/, the cgroup mounts found from its self/mountinfo:
// whether it is `want` bytes from the limit file `relative` (below root); `got` says what it was
static bool mountinfo_answer(size_t want, const char *relative, char *got, size_t size) {
    char proc[512], file[1024];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(file, sizeof file, "%s/%s", root, relative);
    const HostMemory hm = host_memory_read_at(proc, NULL);
    snprintf(got, size, "%zu bytes from %s (want %zu from %s)", hm.available, hm.cgroup_bound ? hm.limit_file : "no cgroup",
             want, file);
    return hm.cgroup_bound && hm.available == want && strcmp(hm.limit_file, file) == 0;
}

// a cgroup's limit and usage files below root: v1's memory controller or v2
static void write_v1_cgroup(const char *dir, const char *limit, const char *usage) {
    char path[600];
    snprintf(path, sizeof path, "%s/memory.limit_in_bytes", dir);
    write_file(path, "%s\n", limit);
    snprintf(path, sizeof path, "%s/memory.usage_in_bytes", dir);
    write_file(path, "%s\n", usage);
}
static void write_v2_cgroup(const char *dir, const char *max, const char *current) {
    char path[600];
    snprintf(path, sizeof path, "%s/memory.max", dir);
    write_file(path, "%s\n", max);
    snprintf(path, sizeof path, "%s/memory.current", dir);
    write_file(path, "%s\n", current);
}

// mountinfo's octal escapes decoded in the mount point (a backslash, \134: its first digit is not 0)
// and in the mount's root (a space, \040), which maps the process's cgroup path below the mount
static void test_escapes(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "5:memory:/dock er/sub\n");
    write_file("proc/self/mountinfo",
               "35 31 0:32 /dock\\040er %s/back\\134slash rw,relatime - cgroup cgroup rw,memory\n", root);
    write_v1_cgroup("back\\slash/sub", "800000", "300000");
    char got[9000];
    CHECK(mountinfo_answer(500000, "back\\slash/sub/memory.limit_in_bytes", got, sizeof got), "escapes: %s", got);
    remove_root();
}

// two mounts of the same hierarchy (a bind mount): the first of each is read, v2 and v1 alike (here the
// v2 one, its 500000 left tighter than v1a's 600000; the second mounts hold other, tighter numbers)
static void test_first_mounts(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "5:memory:/m\n0::/svc\n");
    write_file("proc/self/mountinfo",
               "41 31 0:38 / %s/v2a rw - cgroup2 cgroup2 rw\n"
               "42 31 0:38 / %s/v2b rw - cgroup2 cgroup2 rw\n"
               "43 31 0:39 / %s/v1a rw - cgroup cgroup rw,memory\n"
               "44 31 0:39 / %s/v1b rw - cgroup cgroup rw,memory\n", root, root, root, root);
    write_v2_cgroup("v2a/svc", "600000", "100000");
    write_v2_cgroup("v2b/svc", "200000", "100000");
    write_v1_cgroup("v1a/m", "700000", "100000");
    write_v1_cgroup("v1b/m", "150000", "100000");
    char got[9000];
    CHECK(mountinfo_answer(500000, "v2a/svc/memory.max", got, sizeof got), "first mounts: %s", got);
    remove_root();
}

// a v1 line of another controller (cpu) is not read as the memory cgroup's path
static void test_other_controller(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "6:cpu:/other\n5:memory:/mine\n");
    write_file("proc/self/mountinfo", "43 31 0:39 / %s/mem rw - cgroup cgroup rw,memory\n", root);
    write_v1_cgroup("mem/other", "150000", "100000");
    write_v1_cgroup("mem/mine", "700000", "100000");
    char got[9000];
    CHECK(mountinfo_answer(600000, "mem/mine/memory.limit_in_bytes", got, sizeof got), "a cpu line: %s", got);
    remove_root();
}

// cgroup v2 alone, mounted elsewhere than /sys/fs/cgroup: found from mountinfo
static void test_v2_alone(void) {
    fresh_root();
    write_file("proc/meminfo", MEMINFO);
    write_file("proc/self/cgroup", "0::/svc\n");
    write_file("proc/self/mountinfo", "41 31 0:38 / %s/v2only rw - cgroup2 cgroup2 rw\n", root);
    write_v2_cgroup("v2only/svc", "600000", "100000");
    char got[9000];
    CHECK(mountinfo_answer(500000, "v2only/svc/memory.max", got, sizeof got), "v2 alone: %s", got);
    remove_root();
}

// this machine's own answer: known, and no more than its MemAvailable plus free swap
static void test_this_machine(void) {
    const HostMemory here = host_memory_read_at("/proc", NULL);
    const HostMemory machine = host_memory_read_at("/proc", "/nonexistent");
    CHECK(here.available > 0 && machine.available > 0 && !machine.cgroup_bound, "this machine: %zu, without cgroups "
          "%zu", here.available, machine.available);
    // (each reads a moment apart: MemAvailable and the cgroup's usage move; 64 MiB of slack)
    const size_t slack = (size_t)64 << 20;
    CHECK(here.available <= machine.available + slack, "with its cgroups %zu, more than the machine's %zu",
          here.available, machine.available);
    const size_t wrapper = host_memory_read().available;
    CHECK(wrapper + slack >= here.available && wrapper <= here.available + slack, "host_memory_read() %zu, not "
          "the /proc and /sys/fs/cgroup read's %zu", wrapper, here.available);
    if (here.cgroup_bound)
        CHECK(strstr(here.limit_file, "/sys/fs/cgroup/") == here.limit_file, "bound by %s", here.limit_file);
}

int main(void) {
    test_run("host_memory_machine_alone", test_machine_alone);
    test_run("host_memory_cgroup_v2_limit_and_ancestor", test_cgroup_v2_limit_and_ancestor);
    test_run("host_memory_cgroup_v1_memory_controller", test_cgroup_v1_memory_controller);
    test_run("host_memory_cgroup_v2_beside_v1", test_cgroup_v2_beside_v1);
    test_run("host_memory_limit_on_the_namespace_root", test_limit_on_the_namespace_root);
    test_run("host_memory_unified_and_unlimited", test_unified_and_unlimited);
    test_run("host_memory_nothing_readable", test_nothing_readable);
    test_run("host_memory_mounts_from_mountinfo", test_mounts_from_mountinfo);
    test_run("host_memory_mountinfo_escapes", test_escapes);
    test_run("host_memory_first_of_two_mounts", test_first_mounts);
    test_run("host_memory_other_controller_line", test_other_controller);
    test_run("host_memory_v2_alone_from_mountinfo", test_v2_alone);
    test_run("host_memory_this_machine", test_this_machine);
    return test_finish("test_host_memory");
}

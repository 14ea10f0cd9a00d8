// test_host_memory.c: host_memory_available_at (src/host_memory.c) on made-up /proc and cgroup
// folders: the machine's MemAvailable plus free swap, capped by the tightest cgroup memory limit
// (v2 memory.max, v1 memory.limit_in_bytes, less usage, plus the reclaimable inactive file
// cache) of the process's cgroup and its ancestors; v1 beside v2, v2 mounted at unified/, a
// cgroup path the mount does not show (a container), a cgroup at its limit, nothing readable.
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

// host_memory_available_at on root's proc/ and cgroup/
static size_t available(bool *bound) {
    char proc[512], cgroup[512];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(cgroup, sizeof cgroup, "%s/cgroup", root);
    return host_memory_available_at(proc, cgroup, bound);
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
    // an ancestor's limit tighter than the leaf's
    write_file("cgroup/job/memory.max", "300000\n");
    write_file("cgroup/job/memory.current", "250000\n");
    got = available(&bound);
    CHECK(got == 50000 && bound, "the parent's 300000 limit with 250000 used: want 50000; got %zu", got);
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
    write_file("cgroup/memory/docker/abc/memory.stat", "cache 200000\ninactive_file 1\ntotal_inactive_file 100000\n");
    bool bound = false;
    size_t got = available(&bound);
    CHECK(got == 600000 && bound, "v1 (memory among cpu,memory,pids) limit 900000, usage 400000, total_inactive_file "
          "100000: want 600000; got %zu (%d)", got, bound);
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

// this machine's own answer: known, and no more than its MemAvailable plus free swap
static void test_this_machine(void) {
    bool bound = false;
    size_t here = host_memory_available_at("/proc", "/sys/fs/cgroup", &bound);
    size_t machine = host_memory_available_at("/proc", "/nonexistent", NULL);
    CHECK(here > 0 && machine > 0, "this machine: %zu, without cgroups %zu", here, machine);
    // (both read a moment apart: MemAvailable moves; 64 MiB of slack)
    CHECK(here <= machine + ((size_t)64 << 20), "with its cgroups %zu, more than the machine's %zu", here, machine);
    bool wrapper_bound = false;
    CHECK(host_memory_available(&wrapper_bound) > 0 && wrapper_bound == bound,
          "host_memory_available(): unknown here, or bound differently from the /proc and /sys/fs/cgroup read");
}

int main(void) {
    test_run("host_memory_machine_alone", test_machine_alone);
    test_run("host_memory_cgroup_v2_limit_and_ancestor", test_cgroup_v2_limit_and_ancestor);
    test_run("host_memory_cgroup_v1_memory_controller", test_cgroup_v1_memory_controller);
    test_run("host_memory_cgroup_v2_beside_v1", test_cgroup_v2_beside_v1);
    test_run("host_memory_nothing_readable", test_nothing_readable);
    test_run("host_memory_this_machine", test_this_machine);
    return test_finish("test_host_memory");
}

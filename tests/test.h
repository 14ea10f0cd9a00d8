// test.h: the tiny test harness every tests/test_*.c uses. Each binary ends by
// printing "NAME: N passed, N failed, N skipped"; tests/run_tests.sh sums them.
#ifndef CUVAE_TEST_H
#define CUVAE_TEST_H

#include <stdio.h>
#include <stdarg.h>
#include <string.h>
#include <math.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static int test_passed_count, test_failed_count, test_skipped_count;
static int test_current_failures;
static int test_current_skipped;   // test_skip called inside test_run: not also a pass
static const char *test_current_name;
// appended to every ok / skip / FAIL line, e.g. " (emulated CUDA)"; the summary line is unchanged
static const char *test_label = "";

// Records a failed check (with file:line and a message) unless cond holds.
__attribute__((unused)) static void test_check(int cond, const char *file, int line, const char *fmt, ...) {
    if (cond) return;
    test_current_failures++;
    fprintf(stderr, "  FAIL %s%s (%s:%d): ", test_current_name ? test_current_name : "?", test_label,
            file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
#define CHECK(cond, ...) test_check((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)

// |a - b| <= atol + rtol * |b|
__attribute__((unused)) static int test_close(double a, double b, double rtol, double atol) {
    if (isnan(a) || isnan(b)) return 0;
    return fabs(a - b) <= atol + rtol * fabs(b);
}

__attribute__((unused)) static void test_run(const char *name, void (*fn)(void)) {
    test_current_name = name;
    test_current_failures = 0;
    test_current_skipped = 0;
    fn();
    if (test_current_skipped && test_current_failures == 0) {
        // counted as skipped by test_skip
    } else if (test_current_failures == 0) {
        test_passed_count++;
        fprintf(stderr, "  ok   %s%s\n", name, test_label);
    } else {
        test_failed_count++;
    }
    test_current_name = NULL;
    (void)test_label;
}

__attribute__((unused)) static void test_skip(const char *name, const char *why) {
    test_skipped_count++;
    if (test_current_name) test_current_skipped = 1;
    fprintf(stderr, "  skip %s%s: %s\n", name, test_label, why);
}

// Prints the summary line; returns the process exit code.
// Removes a test's scratch folder and everything in it (links removed, not followed).
__attribute__((unused)) static void test_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
            char child[4200];
            snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
            test_remove_tree(child);
        }
        closedir(dir);
    }
    rmdir(path);
}

__attribute__((unused)) static int test_finish(const char *binary_name) {
    printf("%s: %d passed, %d failed, %d skipped\n", binary_name, test_passed_count,
           test_failed_count, test_skipped_count);
    fflush(stdout);
    return test_failed_count ? 1 : 0;
}

#endif

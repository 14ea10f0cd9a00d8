// test_make_dirs.c: make_dirs and check_umask_keeps_owner (src/common.c): nested folders made, an
// existing one taken, a file in the way refused; and, in a child process run as another user (uid
// 65534 when the test runs as root, whose access no mode limits) under umask 0277, a folder made
// that its owner cannot list, enter and write in removed again and refused naming its mode and the
// umask, and such a umask refused up front (check_umask_keeps_owner), not 022 nor root's.
// (cli_faults.sh runs train and plot under such umasks.) Also: the modes other umasks give, named; a
// setuid-root wrapper's folders checked with its effective uid; a default ACL named as the cause.
#define _GNU_SOURCE   // setresuid, setresgid
#include "test.h"

#include "cuvae/common.h"

#include <grp.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>

static char root[256];   // a fresh folder anyone may write in (the child runs as another user)

static void fresh_root(void) {
    snprintf(root, sizeof root, "/tmp/cuvae_make_dirs_XXXXXX");
    CHECK(mkdtemp(root) != NULL && chmod(root, 01777) == 0, "mkdtemp / chmod %s", root);
}

static void remove_root(void) {
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    CHECK(system(command) == 0, "rm -rf %s", root);
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_plain(void) {
    fresh_root();
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/a/b/c", root);
    CHECK(make_dirs(path, err, sizeof err) == 0 && is_dir(path), "nested folders made: %s", err);
    CHECK(make_dirs(path, err, sizeof err) == 0, "an existing folder taken: %s", err);
    snprintf(path, sizeof path, "%s/a/file", root);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/a/file/d", root);
    CHECK(make_dirs(path, err, sizeof err) == -1 && strstr(err, "/a/file: not a folder (a folder is made there)"),
          "a file in the way refused, named: %s", err);
    remove_root();
}

// What the child below reports: make_dirs(root/a/b) and check_umask_keeps_owner(root), results and messages.
typedef struct {
    int rc_make, rc_umask;
    char err_make[1024], err_umask[1024];
} ChildAnswer;

// In a child as uid 65534 (when root; a setuid-root wrapper: real uid 65534, effective 0) under `mask`:
// make_dirs and check_umask_keeps_owner, their answers back through a pipe: "RC1 RC2\nERR1\nERR2\n".
// 1: answered; 0: the child could not run as that user (*why says so: a skip); -1: it died or said
// nothing (*why says how: a failure -- a crash or a sanitizer's report in the code under test)
static int in_child(mode_t mask, bool setuid_wrapper, ChildAnswer *answer, const char **why) {
    if (setuid_wrapper && geteuid() != 0) {
        *why = "acting as a setuid-root wrapper needs root";
        return 0;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        *why = "pipe failed";
        return 0;
    }
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        const uid_t effective = setuid_wrapper ? 0 : 65534;
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
                               setresuid(65534, effective, effective) != 0))
            _exit(3);
        umask(mask);
        char path[512], e1[1024] = "", e2[1024] = "";
        snprintf(path, sizeof path, "%s/a/b", root);
        const int r1 = make_dirs(path, e1, sizeof e1);
        const int r2 = check_umask_keeps_owner(root, e2, sizeof e2);
        FILE *out = fdopen(fds[1], "w");
        fprintf(out, "%d %d\n%s\n%s\n", r1, r2, e1, e2);
        fclose(out);
        _exit(0);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    char line[64] = "";
    bool read_all = fgets(line, sizeof line, in) && sscanf(line, "%d %d", &answer->rc_make, &answer->rc_umask) == 2 &&
                    fgets(answer->err_make, sizeof answer->err_make, in) &&
                    fgets(answer->err_umask, sizeof answer->err_umask, in);
    fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
        *why = "root could not become uid 65534";
        return 0;
    }
    if (!read_all || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *why = WIFSIGNALED(status) ? "the child was killed by a signal" : "the child exited without its answer";
        return -1;
    }
    answer->err_make[strcspn(answer->err_make, "\n")] = '\0';
    answer->err_umask[strcspn(answer->err_umask, "\n")] = '\0';
    return 1;
}

// in_child for the test `name`: true when answered; else false, root removed, and the test skipped
// saying why (the child could not run as that user) or failed (it died or said nothing)
static bool in_child_or_skip(const char *name, mode_t mask, bool setuid_wrapper, ChildAnswer *answer) {
    const char *why = "";
    const int ran = in_child(mask, setuid_wrapper, answer, &why);
    if (ran == 1) return true;
    if (ran == 0) test_skip(name, why);
    CHECK(ran == 0, "%s: umask %04o: %s", name, (unsigned)mask, why);
    remove_root();
    return false;
}

static void test_umask_taking_the_owners_permissions(void) {
    fresh_root();
    ChildAnswer a;
    if (!in_child_or_skip("make_dirs_umask_taking_the_owners_permissions", 0277, false, &a)) return;
    // (the whole message: a folder removed again is not said to be left there)
    char want[1024], made[512];
    snprintf(want, sizeof want, "%s/a: made with mode 0500, not one its owner can list, enter and write in: the umask "
             "0277 takes the owner's own permissions (with one that keeps them, 022 or 077, cuvae can write its files "
             "there)", root);
    snprintf(made, sizeof made, "%s/a", root);
    CHECK(a.rc_make == -1 && strcmp(a.err_make, want) == 0 && !is_dir(made),
          "umask 0277: the folder made is removed and refused, naming its mode and the umask: %s", a.err_make);
    snprintf(want, sizeof want, "%s: the umask 0277 takes the owner's own permissions from what cuvae writes there "
             "(folders 0500, files 0400)", root);
    CHECK(a.rc_umask == -1 && strstr(a.err_umask, want) == a.err_umask, "umask 0277 refused up front: %s", a.err_umask);
    // 022 keeps them: made, and not refused
    const char *why = "";
    CHECK(in_child(022, false, &a, &why) == 1 && a.rc_make == 0 && a.rc_umask == 0 && is_dir(made),
          "umask 022: made and not refused: %s / %s", a.err_make, a.err_umask);
    // root writes whatever the mode: its umask is not refused
    if (geteuid() == 0) {
        const mode_t was = umask(0277);
        char err[1024];
        CHECK(check_umask_keeps_owner(root, err, sizeof err) == 0, "root under umask 0277: not refused");
        umask(was);
    }
    remove_root();
}

// the modes a umask gives, named: 0400 keeps the group's and others' bits (folders 0355, files 0244), and
// 0177 (folders 0600: listed, not entered) is refused up front as well
static void test_modes_named(void) {
    fresh_root();
    ChildAnswer a;
    if (!in_child_or_skip("make_dirs_modes_named", 0400, false, &a)) return;
    char want[1024];
    snprintf(want, sizeof want, "%s: the umask 0400 takes the owner's own permissions from what cuvae writes there "
             "(folders 0355, files 0244)", root);
    CHECK(a.rc_umask == -1 && strstr(a.err_umask, want) == a.err_umask, "umask 0400: %s", a.err_umask);
    snprintf(want, sizeof want, "%s: the umask 0177 takes the owner's own permissions from what cuvae writes there "
             "(folders 0600, files 0600)", root);
    const char *why = "";
    CHECK(in_child(0177, false, &a, &why) == 1 && a.rc_umask == -1 && strstr(a.err_umask, want) == a.err_umask,
          "umask 0177 refused up front: %s", a.err_umask);
    remove_root();
}

// a setuid-root wrapper (real uid 65534, effective 0) under umask 022: the folders it makes are checked
// with the effective uid's access, and taken (checked with the real uid's, every run was refused)
static void test_setuid_wrapper(void) {
    fresh_root();
    ChildAnswer a;
    if (!in_child_or_skip("make_dirs_setuid_wrapper", 022, true, &a)) return;
    char made[512];
    snprintf(made, sizeof made, "%s/a/b", root);
    CHECK(a.rc_make == 0 && a.rc_umask == 0 && is_dir(made), "setuid wrapper: %s / %s", a.err_make, a.err_umask);
    remove_root();
}

// a default ACL on the parent (r-x for all) that takes the owner's write permission under umask 022: the
// folder is refused naming the ACL, not the umask (which keeps the owner's bits)
static void test_default_acl(void) {
    fresh_root();
    char command[700];
    snprintf(command, sizeof command, "python3 -c \"import os, struct; os.setxattr('%s', 'system.posix_acl_default', "
             "struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, 5, 0xffffffff) for tag in (1, 4, 0x20)))\" "
             "2>/dev/null", root);
    if (system(command) != 0) {
        test_skip("make_dirs_default_acl", "this file system takes no POSIX default ACL (or no python3 here)");
        remove_root();
        return;
    }
    ChildAnswer a;
    if (!in_child_or_skip("make_dirs_default_acl", 022, false, &a)) return;
    CHECK(a.rc_make == -1 && strstr(a.err_make, "made with mode 0555") &&
          strstr(a.err_make, "(the parent folder's default ACL or its file system sets it)") &&
          !strstr(a.err_make, "umask") && a.rc_umask == 0, "default ACL: %s / %s", a.err_make, a.err_umask);
    remove_root();
}

int main(void) {
    test_run("make_dirs_plain", test_plain);
    test_run("make_dirs_umask_taking_the_owners_permissions", test_umask_taking_the_owners_permissions);
    test_run("make_dirs_modes_named", test_modes_named);
    test_run("make_dirs_setuid_wrapper", test_setuid_wrapper);
    test_run("make_dirs_default_acl", test_default_acl);
    return test_finish("test_make_dirs");
}

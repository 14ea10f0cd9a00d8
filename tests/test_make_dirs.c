// test_make_dirs.c: make_dirs and check_umask_keeps_owner (src/common.c): nested folders made, an
// existing one taken, a file in the way refused; and, in a child process run as another user (uid
// 65534 when the test runs as root, whose access no mode limits) under umask 0277, a folder made
// that its owner cannot list, enter and write in removed again and refused naming its mode and the
// umask, and such a umask refused up front (check_umask_keeps_owner), not 022 nor root's.
// (cli_faults.sh runs train and plot under such umasks.)
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

// In a child as uid 65534 (when root) under `mask`: make_dirs(root/a/b) and check_umask_keeps_owner(root);
// their results and messages back through a pipe: "RC1 RC2\nERR1\nERR2\n". False if the child could
// not become that user (then *why says so).
static bool in_child(mode_t mask, int *rc_make, char *err_make, int *rc_umask, char *err_umask, size_t size,
                     const char **why) {
    int fds[2];
    if (pipe(fds) != 0) {
        *why = "pipe failed";
        return false;
    }
    fflush(NULL);
    const pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
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
    bool read_all = fgets(line, sizeof line, in) && sscanf(line, "%d %d", rc_make, rc_umask) == 2 &&
                    fgets(err_make, (int)size, in) && fgets(err_umask, (int)size, in);
    fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
        *why = "root could not become uid 65534";
        return false;
    }
    if (!read_all) {
        *why = "the child said nothing";
        return false;
    }
    err_make[strcspn(err_make, "\n")] = '\0';
    err_umask[strcspn(err_umask, "\n")] = '\0';
    return true;
}

static void test_umask_taking_the_owners_permissions(void) {
    fresh_root();
    int rc_make = 0, rc_umask = 0;
    char err_make[1024], err_umask[1024], want[1024];
    const char *why = "";
    if (!in_child(0277, &rc_make, err_make, &rc_umask, err_umask, sizeof err_make, &why)) {
        test_skip("make_dirs_umask_taking_the_owners_permissions", why);
        remove_root();
        return;
    }
    snprintf(want, sizeof want, "%s/a: made with mode 0500, not one its owner can list, enter and write in: the umask "
             "0277 takes the owner's own permissions", root);
    char made[512];
    snprintf(made, sizeof made, "%s/a", root);
    CHECK(rc_make == -1 && strstr(err_make, want) == err_make && !is_dir(made),
          "umask 0277: the folder made is removed and refused, naming its mode and the umask: %s", err_make);
    snprintf(want, sizeof want, "%s: the umask 0277 takes the owner's own permissions from what cuvae writes there "
             "(folders 0500, files 0400)", root);
    CHECK(rc_umask == -1 && strstr(err_umask, want) == err_umask, "umask 0277 refused up front: %s", err_umask);
    // 022 keeps them: made, and not refused
    CHECK(in_child(022, &rc_make, err_make, &rc_umask, err_umask, sizeof err_make, &why) && rc_make == 0 &&
          rc_umask == 0 && is_dir(made), "umask 022: made and not refused: %s / %s", err_make, err_umask);
    // root writes whatever the mode: its umask is not refused
    if (geteuid() == 0) {
        const mode_t was = umask(0277);
        CHECK(check_umask_keeps_owner(root, err_umask, sizeof err_umask) == 0, "root under umask 0277: not refused");
        umask(was);
    }
    remove_root();
}

int main(void) {
    test_run("make_dirs_plain", test_plain);
    test_run("make_dirs_umask_taking_the_owners_permissions", test_umask_taking_the_owners_permissions);
    return test_finish("test_make_dirs");
}

// distributed.c: the ranks of a data-parallel run (distributed.h). Three ways
// to be started:
//   - one process (not launched): one rank, every collective a no-op;
//   - MPI (CUVAE_WITH_MPI; mpirun, or srun --mpi=pmix): MPI_COMM_WORLD's ranks,
//     MPI's collectives;
//   - no MPI (srun without MPI support: SLURM_PROCID / SLURM_STEP_NUM_TASKS, or
//     CUVAE_RANK / CUVAE_WORLD_SIZE): the ranks from the environment, the NCCL
//     id through a shared file, and the host collectives through the GPU's
//     communicator, which the CUDA backend registers (dist_set_transport).
// Every collective is watched by a thread that ends the process when one waits
// longer than CUVAE_DIST_TIMEOUT seconds (a rank died or hangs), so a run never
// hangs silently.
#include "cuvae/distributed.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cuvae/common.h"

#ifdef CUVAE_WITH_MPI
#include <mpi.h>
#endif

typedef enum { DIST_SINGLE, DIST_MPI, DIST_NO_MPI } DistMode;

static DistMode g_mode = DIST_SINGLE;
static int g_rank = 0, g_size = 1, g_local_rank = 0;
static bool g_failing_together = false;   // every rank agreed to fail (dist_agree_on_failure)
static FILE *g_errors = NULL;   // rank 0: stderr; other ranks: their stderr before it was quieted
static int g_quiet_fd = -1;     // other ranks: the unlinked file their quieted stderr goes to (-1: /dev/null)
static atomic_bool g_error_said = false;   // something was printed through dist_error_stream
static bool g_exit_agreed = false;         // dist_exit_agreed
static DistTransport g_transport;   // DIST_NO_MPI: the GPU's collectives (ctx NULL until registered)
static char g_id_file[1024];        // DIST_NO_MPI: where rank 0 leaves the NCCL id

// The size an MPI launcher gave this process, from its environment (0: none; -1: launched by a
// PMIx launcher, which says the rank alone: `srun --mpi=pmix`, Open MPI 5's mpirun; MPI_Init
// tells the size).
enum { MPI_SIZE_UNKNOWN = -1 };
static int env_int(const char *name);
static int mpi_launcher_size(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    // (a one-task srun step on a cluster whose default is pmix: one process, as without srun)
    if (getenv("PMIX_RANK") && env_int("SLURM_STEP_NUM_TASKS") != 1) return MPI_SIZE_UNKNOWN;
    return 0;
}

// A non-negative integer environment variable, or -1 when absent or malformed.
static int env_int(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return -1;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    return (*end == '\0' && x >= 0 && x < (1L << 30)) ? (int)x : -1;
}

void dist_shard(int rows, int rank, int size, int *start, int *count) {
    int base = rows / size, extra = rows % size;
    *count = base + (rank < extra ? 1 : 0);
    *start = rank * base + (rank < extra ? rank : extra);
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_rank(void) { return g_local_rank; }
bool dist_launched(void) { return g_mode != DIST_SINGLE; }
bool dist_without_mpi(void) { return g_mode == DIST_NO_MPI; }
bool dist_is_writer(void) { return g_rank == 0; }
FILE *dist_error_stream(void) {
    atomic_store(&g_error_said, true);
    return g_errors ? g_errors : stderr;
}

void dist_print_error(const char *message) {
    if (g_size > 1 && g_rank != 0)   // (the other ranks' stderr is quiet)
        fprintf(dist_error_stream(), "cuvae: rank %d of %d: %s\n", g_rank, g_size, message);
    else
        fprintf(stderr, "cuvae: %s\n", message);
    fflush(NULL);
}

#ifdef CUVAE_WITH_MPI
bool dist_mpi_compiled(void) { return true; }
#else
bool dist_mpi_compiled(void) { return false; }
#endif

void dist_exit_agreed(void) { g_exit_agreed = true; }

// A rank other than 0 that ends with a failure no collective reported (a message printed to its
// quieted stderr before exit: out of memory, a CUDA error, a bad OMP_NUM_THREADS, a signal that
// reached it alone): its stderr's last line, said on its real stderr with its rank.
static void report_quiet_failure(int status, void *arg) {
    (void)arg;
    if (status == 0 || g_failing_together || g_exit_agreed || atomic_load(&g_error_said) || g_quiet_fd < 0 || !g_errors) return;
    fflush(stderr);
    char tail[2048];
    const off_t size = lseek(g_quiet_fd, 0, SEEK_END);
    const off_t from = size > (off_t)sizeof tail - 1 ? size - (off_t)(sizeof tail - 1) : 0;
    const ssize_t got = size > 0 ? pread(g_quiet_fd, tail, (size_t)(size - from), from) : 0;
    size_t n = got > 0 ? (size_t)got : 0;
    tail[n] = '\0';
    while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == '\r' || tail[n - 1] == ' ')) tail[--n] = '\0';
    const char *line = tail + n;   // the last line (a progress bar's \r-separated updates: its last)
    while (line > tail && line[-1] != '\n' && line[-1] != '\r') line--;
    if (strncmp(line, "cuvae: ", 7) == 0) line += 7;
    if (*line)
        fprintf(g_errors, "cuvae: rank %d of %d: %s (exit status %d)\n", g_rank, g_size, line, status);
    else
        fprintf(g_errors, "cuvae: rank %d of %d: ended with exit status %d, saying nothing\n", g_rank, g_size, status);
    fflush(g_errors);
}

// Ranks other than 0 print nothing on their stderr but errors (progress and the effective config are
// printed once, by rank 0; errors through dist_error_stream): the rest goes
// to an unlinked temporary file, whose last line is said if the rank fails alone
// (report_quiet_failure), or to /dev/null where no such file can be made.
static void quiet_other_ranks(void) {
    if (g_rank == 0) return;
    int saved = dup(2);
    FILE *errors = saved >= 0 ? fdopen(saved, "w") : NULL;
    FILE *kept = tmpfile();
    int quiet = kept ? dup(fileno(kept)) : open("/dev/null", O_WRONLY);
    if (kept) fclose(kept);
    if (!errors || quiet < 0) {   // keep printing everything rather than lose errors
        if (errors) fclose(errors);
        if (quiet >= 0) close(quiet);
        return;
    }
    setvbuf(errors, NULL, _IOLBF, 0);
    dup2(quiet, 2);
    if (kept) {
        g_quiet_fd = quiet;
        on_exit(report_quiet_failure, NULL);
    } else {
        close(quiet);
    }
    g_errors = errors;
}

// ---- the watchdog: one collective at a time, from the main thread ----------
static _Atomic double g_wait_started;   // monotonic seconds when the current wait began, 0 = none
static const char *volatile g_wait_what = "";
static double g_timeout_s = 300.0;

static double monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *watchdog(void *arg) {
    (void)arg;
    for (;;) {
        sleep(1);
        double started = atomic_load(&g_wait_started);
        if (started > 0 && monotonic_seconds() - started > g_timeout_s) {
            fprintf(dist_error_stream(), "cuvae: rank %d of %d: the %s has waited %.0f s for the other ranks "
                    "(CUVAE_DIST_TIMEOUT): a rank died or hangs; ending this rank, and with it the run\n",
                    g_rank, g_size, g_wait_what, g_timeout_s);
            fflush(NULL);
            _exit(CUVAE_EXIT_BAD_INPUT);
        }
    }
    return NULL;
}

void dist_wait_begin(const char *what) {
    if (g_mode == DIST_SINGLE) return;
    g_wait_what = what;
    atomic_store(&g_wait_started, monotonic_seconds());
}

void dist_wait_end(void) { atomic_store(&g_wait_started, 0.0); }

static int parse_timeout(char *err, size_t errlen) {
    const char *timeout = getenv("CUVAE_DIST_TIMEOUT");
    if (!timeout) return 0;
    char *end = NULL;
    double t = strtod(timeout, &end);
    if (end == timeout || *end != '\0' || !(t > 0))
        return set_error(err, errlen, "CUVAE_DIST_TIMEOUT \"%s\": want a number of seconds > 0", timeout);
    g_timeout_s = t;
    return 0;
}

static void start_watchdog(void) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, watchdog, NULL) == 0) pthread_detach(thread);
}

// Without MPI: the ranks from srun's or cuvae's variables, the id file's path.
// 0 when not launched so; 1 when launched so; -1 with err on inconsistent variables.
static int no_mpi_launch(const char *command, char *err, size_t errlen) {
    int size = env_int("CUVAE_WORLD_SIZE"), rank = env_int("CUVAE_RANK"), local = env_int("CUVAE_LOCAL_RANK");
    const char *id_file = getenv("CUVAE_NCCL_ID_FILE");
    // srun: the step's tasks (SLURM_STEP_NUM_TASKS is set in a step srun launched, not in a batch script)
    if (size < 0 && env_int("SLURM_STEP_NUM_TASKS") > 0 && env_int("SLURM_PROCID") >= 0) {
        size = env_int("SLURM_STEP_NUM_TASKS");
        if (size == 1) return 0;   // srun of one task: one process
        rank = env_int("SLURM_PROCID");
        local = env_int("SLURM_LOCALID");
        if (!id_file && getenv("SLURM_SUBMIT_DIR") && getenv("SLURM_JOB_ID")) {   // unique per job step
            snprintf(g_id_file, sizeof g_id_file, "%s/.cuvae-nccl-id-%s-%s", getenv("SLURM_SUBMIT_DIR"),
                     getenv("SLURM_JOB_ID"), getenv("SLURM_STEP_ID"));
            id_file = g_id_file;
        }
    }
    if (size < 0) return 0;
    if (size >= 1 && rank < 0 && !getenv("CUVAE_RANK") && !getenv("SLURM_PROCID"))
        return set_error(err, errlen, "launched as ranks without MPI: CUVAE_WORLD_SIZE is set (%d) but CUVAE_RANK "
                         "is not (each rank's index, 0 to %d)", size, size - 1);
    if (size < 1 || rank < 0 || rank >= size)
        return set_error(err, errlen, "launched as ranks without MPI: want CUVAE_RANK in [0, CUVAE_WORLD_SIZE) "
                         "(or SLURM_PROCID in [0, SLURM_STEP_NUM_TASKS)), got rank %d of %d", rank, size);
    // (the reason that stands whatever the variables say comes first: main says the same of MPI ranks)
    if (size > 1 && (!command || strcmp(command, "train") != 0))
        return set_error(err, errlen, "launched as %d ranks: only `cuvae train` runs data-parallel; run `cuvae %s` "
                         "as one process", size, command ? command : "");
    // (a missing id file is said where the CUDA backend needs it, dist_share_id_by_file: on the
    // CPU the reason that stands is that its collectives need MPI, train.c)
    if (id_file && id_file != g_id_file) snprintf(g_id_file, sizeof g_id_file, "%s", id_file);
    g_rank = rank;
    g_size = size;
    g_local_rank = local >= 0 ? local : rank;
    return 1;
}

#ifdef CUVAE_WITH_MPI

static void check_mpi(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    fprintf(dist_error_stream(), "cuvae: rank %d of %d: MPI %s failed: %s\n", g_rank, g_size, what, text);
    MPI_Abort(MPI_COMM_WORLD, CUVAE_EXIT_BAD_INPUT);
}

static int mpi_start(int *argc, char ***argv, char *err, size_t errlen) {
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return set_error(err, errlen, "MPI_Init_thread failed (launched by mpirun/srun, but MPI did not start)");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g_mode = DIST_MPI;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local),
              "Comm_split_type");
    MPI_Comm_rank(local, &g_local_rank);
    MPI_Comm_free(&local);
    return 0;
}
#endif

// The launch variables a user or Slurm sets: one that is set but not a whole number >= 0 is
// refused (read as absent, it would train one process where several were meant); so is a rank
// without a world size.
static int check_launch_variables(int mpi_size, char *err, size_t errlen) {
    const char *names[] = {"CUVAE_WORLD_SIZE", "CUVAE_RANK", "CUVAE_LOCAL_RANK", "SLURM_STEP_NUM_TASKS",
                           "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && env_int(names[i]) < 0)
            return set_error(err, errlen, "%s=%s: not a whole number >= 0 (a data-parallel launch variable)",
                             names[i], v);
    }
    if (mpi_size == 0 && getenv("CUVAE_RANK") && !getenv("CUVAE_WORLD_SIZE") && !getenv("SLURM_STEP_NUM_TASKS"))
        return set_error(err, errlen, "CUVAE_RANK=%s is set but CUVAE_WORLD_SIZE is not: a launch without MPI sets "
                         "both (README: Scaling out)", getenv("CUVAE_RANK"));
    return 0;
}

int dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    (void)argc;
    (void)argv;
    int mpi_size = mpi_launcher_size();
    if (check_launch_variables(mpi_size, err, errlen) != 0) return -1;
    if (mpi_size == 0 && !getenv("CUVAE_WORLD_SIZE") && !getenv("SLURM_STEP_NUM_TASKS")) return 0;   // one process
    if (parse_timeout(err, errlen) != 0) return -1;
#ifdef CUVAE_WITH_MPI
    if (mpi_size != 0) {
        if (mpi_start(argc, argv, err, errlen) != 0) return -1;
        start_watchdog();
        quiet_other_ranks();
        return 0;
    }
#endif
    int launched = no_mpi_launch(*argc > 1 ? (*argv)[1] : NULL, err, errlen);
    if (launched < 0) return -1;
    if (launched == 0) {
        if (mpi_size > 1)
            return set_error(err, errlen, "launched as %d ranks, but this build has no MPI: install Open MPI (apt-get "
                             "install libopenmpi-dev openmpi-bin) and rebuild (make clean && make), or launch without "
                             "MPI on GPUs (README: Scaling out)", mpi_size);
        return 0;   // srun of one task, or an MPI launcher's single rank: one process
    }
    g_mode = DIST_NO_MPI;
    start_watchdog();
    quiet_other_ranks();
    return 0;
}

void dist_finalize(void) {
#ifdef CUVAE_WITH_MPI
    if (g_mode == DIST_MPI) MPI_Finalize();
#endif
    g_mode = DIST_SINGLE;
}

void dist_abort(int code) {
    fflush(NULL);
#ifdef CUVAE_WITH_MPI
    if (g_mode == DIST_MPI && g_size > 1 && !g_failing_together) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)code;   // without MPI each rank ends by itself (its watchdog, or srun's kill on a bad exit)
}

void dist_set_transport(const DistTransport *t) {
    if (t) g_transport = *t;
    else memset(&g_transport, 0, sizeof g_transport);
}

// The host collectives of a run without MPI go through the registered transport.
static void need_transport(const char *what) {
    if (g_transport.ctx) return;
    fprintf(dist_error_stream(), "cuvae: rank %d of %d: the %s needs the GPU's communicator (launched without MPI), "
            "and there is none\n", g_rank, g_size, what);
    fflush(NULL);
    _exit(CUVAE_EXIT_BAD_INPUT);
}

void dist_sum_floats(float *buf, size_t n, const char *what) {
    if (g_mode == DIST_SINGLE || g_size == 1) return;
#ifdef CUVAE_WITH_MPI
    if (g_mode == DIST_MPI) {
        for (size_t done = 0; done < n;) {   // MPI counts are int
            int count = n - done > (size_t)1 << 30 ? 1 << 30 : (int)(n - done);
            dist_wait_begin(what);
            check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), what);
            dist_wait_end();
            done += (size_t)count;
        }
        return;
    }
#endif
    // without MPI the gradients travel over NCCL (the CUDA backend); the CPU backend has no way
    (void)buf;
    (void)n;
    fprintf(dist_error_stream(), "cuvae: rank %d of %d: the %s of the CPU backend needs MPI (launch with mpirun or "
            "srun --mpi=pmix)\n", g_rank, g_size, what);
    fflush(NULL);
    _exit(CUVAE_EXIT_BAD_INPUT);
}

void dist_sum_doubles(double *buf, size_t n, const char *what) {
    if (g_mode == DIST_SINGLE || (g_size == 1 && g_mode == DIST_MPI)) return;
    dist_wait_begin(what);
#ifdef CUVAE_WITH_MPI
    if (g_mode == DIST_MPI) {
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), what);
        dist_wait_end();
        return;
    }
#endif
    need_transport(what);
    g_transport.sum_doubles(g_transport.ctx, buf, n);
    dist_wait_end();
}

int dist_max_int(int value, const char *what) {
    if (g_mode == DIST_SINGLE || (g_size == 1 && g_mode == DIST_MPI)) return value;
    dist_wait_begin(what);
#ifdef CUVAE_WITH_MPI
    if (g_mode == DIST_MPI) {
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), what);
        dist_wait_end();
        return value;
    }
#endif
    need_transport(what);
    g_transport.max_int(g_transport.ctx, &value);
    dist_wait_end();
    return value;
}

bool dist_any(bool flag, const char *what) { return dist_max_int(flag ? 1 : 0, what) != 0; }

int dist_agree_on_failure(int rc, char *err, size_t errlen, const char *what) {
    if (g_mode != DIST_MPI || g_size == 1) return rc;
    const bool failed = rc != 0;
    if (!dist_any(failed, what)) return 0;
    // the message's CRC-32, odd for a failure so that 0 says "no failure" (rank 0's, broadcast)
    const uint32_t mine = failed ? ((uint32_t)crc32(0L, (const Bytef *)err, (uInt)strlen(err)) | 1u) : 0u;
    uint32_t rank0 = mine;
    dist_broadcast_bytes(&rank0, sizeof rank0, what);
    if (failed && (g_rank == 0 || mine != rank0)) dist_print_error(err);
    dist_any(true, "failure reported");   // every line out before the ranks end
    g_failing_together = true;   // each rank ends by itself (dist_abort), no MPI_Abort banner
    if (errlen > 0) err[0] = '\0';
    return -1;
}

void dist_allgather_bytes(const void *mine, void *all, size_t n, const char *what) {
    if (g_mode != DIST_MPI || g_size == 1) {
        memcpy(all, mine, n);
        return;
    }
#ifdef CUVAE_WITH_MPI
    dist_wait_begin(what);
    check_mpi(MPI_Allgather(mine, (int)n, MPI_BYTE, all, (int)n, MPI_BYTE, MPI_COMM_WORLD), what);
    dist_wait_end();
#else
    (void)what;
#endif
}

void dist_broadcast_bytes(void *buf, size_t n, const char *what) {
    if (g_mode != DIST_MPI || g_size == 1) return;
#ifdef CUVAE_WITH_MPI
    dist_wait_begin(what);
    check_mpi(MPI_Bcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD), what);
    dist_wait_end();
#else
    (void)buf;
    (void)n;
    (void)what;
#endif
}

// ---- the NCCL id through a shared file (no MPI) ----------------------------------

int dist_share_id_by_file(void *id, size_t n, char *err, size_t errlen) {
    if (!g_id_file[0])
        return set_error(err, errlen, "launched as %d rank%s without MPI: set CUVAE_NCCL_ID_FILE to a path every rank "
                         "sees (a shared file system), fresh for each run", g_size, g_size == 1 ? "" : "s");
    if (g_rank == 0) {   // written whole under a temporary name, then renamed: never read half-written
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp%ld", g_id_file, (long)getpid());
        FILE *f = fopen(tmp, "wb");
        if (!f || fwrite(id, 1, n, f) != n || fclose(f) != 0) {
            if (f) unlink(tmp);
            return set_error(err, errlen, "%s: cannot write the NCCL id: %s (CUVAE_NCCL_ID_FILE)", tmp, strerror(errno));
        }
        if (rename(tmp, g_id_file) != 0) {
            unlink(tmp);
            return set_error(err, errlen, "%s: cannot write the NCCL id: %s (CUVAE_NCCL_ID_FILE)", g_id_file,
                             strerror(errno));
        }
        return 0;
    }
    dist_wait_begin("NCCL id file");   // the other ranks wait for it (the watchdog ends a wait that is too long)
    for (;;) {
        FILE *f = fopen(g_id_file, "rb");
        if (f) {
            size_t got = fread(id, 1, n, f);
            fclose(f);
            if (got == n) break;
        }
        usleep(20000);
    }
    dist_wait_end();
    return 0;
}

void dist_remove_id_file(void) {
    if (g_mode == DIST_NO_MPI && g_rank == 0) unlink(g_id_file);
}

// distributed.c: the ranks of a data-parallel run (distributed.h). With MPI
// (CUVAE_WITH_MPI) the collectives are MPI's, each watched by a thread that
// ends the process when one waits longer than CUVAE_DIST_TIMEOUT seconds (a
// rank died or hangs: mpirun then ends the others), so a run never hangs
// silently. Without MPI there is one rank and the collectives do nothing.
#include "cuvae/distributed.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuvae/common.h"

#ifdef CUVAE_WITH_MPI
#include <mpi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#endif

static int g_rank = 0, g_size = 1, g_local_rank = 0;
static bool g_launched = false;
static FILE *g_errors = NULL;   // rank 0: stderr; other ranks: their stderr before it was quieted

// The size a launcher gave this process, from its environment (0: not launched).
static int launcher_size(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    // srun: one task per process (SLURM_NTASKS), SLURM_PROCID set in each
    const char *tasks = getenv("SLURM_NTASKS"), *procid = getenv("SLURM_PROCID");
    if (tasks && procid && getenv("SLURM_STEP_ID") && atoi(tasks) > 0) return atoi(tasks);
    return 0;
}

void dist_shard(int rows, int rank, int size, int *start, int *count) {
    int base = rows / size, extra = rows % size;
    *count = base + (rank < extra ? 1 : 0);
    *start = rank * base + (rank < extra ? rank : extra);
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_rank(void) { return g_local_rank; }
bool dist_launched(void) { return g_launched; }
bool dist_is_writer(void) { return g_rank == 0; }
FILE *dist_error_stream(void) { return g_errors ? g_errors : stderr; }

#ifdef CUVAE_WITH_MPI

// Ranks other than 0 keep their stderr for errors only: progress and the
// effective config are printed once, by rank 0.
static void quiet_other_ranks(void) {
    if (g_rank == 0) return;
    int saved = dup(2);
    FILE *errors = saved >= 0 ? fdopen(saved, "w") : NULL;
    int devnull = open("/dev/null", O_WRONLY);
    if (!errors || devnull < 0) {   // keep printing everything rather than lose errors
        if (errors) fclose(errors);
        if (devnull >= 0) close(devnull);
        return;
    }
    setvbuf(errors, NULL, _IOLBF, 0);
    dup2(devnull, 2);
    close(devnull);
    g_errors = errors;
}

// ---- the watchdog: one collective at a time, from the main thread ----------
static _Atomic double g_wait_started;   // wall seconds when the current collective began, 0 = none
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

static void wait_begin(const char *what) {
    g_wait_what = what;
    atomic_store(&g_wait_started, monotonic_seconds());
}

static void wait_end(void) { atomic_store(&g_wait_started, 0.0); }

static void check_mpi(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    fprintf(dist_error_stream(), "cuvae: rank %d of %d: MPI %s failed: %s\n", g_rank, g_size, what, text);
    MPI_Abort(MPI_COMM_WORLD, CUVAE_EXIT_BAD_INPUT);
}

bool dist_mpi_compiled(void) { return true; }

int dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    if (launcher_size() == 0) return 0;
    const char *timeout = getenv("CUVAE_DIST_TIMEOUT");
    if (timeout) {
        char *end = NULL;
        double t = strtod(timeout, &end);
        if (end == timeout || *end != '\0' || !(t > 0)) {
            snprintf(err, errlen, "CUVAE_DIST_TIMEOUT \"%s\": want a number of seconds > 0", timeout);
            return -1;
        }
        g_timeout_s = t;
    }
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        snprintf(err, errlen, "MPI_Init_thread failed (launched by mpirun/srun, but MPI did not start)");
        return -1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    g_launched = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local),
              "Comm_split_type");
    MPI_Comm_rank(local, &g_local_rank);
    MPI_Comm_free(&local);
    pthread_t thread;
    if (pthread_create(&thread, NULL, watchdog, NULL) == 0) pthread_detach(thread);
    quiet_other_ranks();
    return 0;
}

void dist_finalize(void) {
    if (g_launched) MPI_Finalize();
    g_launched = false;
}

void dist_abort(int code) {
    fflush(NULL);
    if (g_launched && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

void dist_sum_floats(float *buf, size_t n, const char *what) {
    if (g_size == 1) return;
    for (size_t done = 0; done < n;) {   // MPI counts are int
        int count = n - done > (size_t)1 << 30 ? 1 << 30 : (int)(n - done);
        wait_begin(what);
        check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), what);
        wait_end();
        done += (size_t)count;
    }
}

void dist_sum_doubles(double *buf, size_t n, const char *what) {
    if (g_size == 1) return;
    wait_begin(what);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), what);
    wait_end();
}

bool dist_any(bool flag, const char *what) {
    if (g_size == 1) return flag;
    int value = flag ? 1 : 0;
    wait_begin(what);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), what);
    wait_end();
    return value != 0;
}

void dist_broadcast_bytes(void *buf, size_t n, const char *what) {
    if (g_size == 1) return;
    wait_begin(what);
    check_mpi(MPI_Bcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD), what);
    wait_end();
}

#else   // no MPI: one rank

bool dist_mpi_compiled(void) { return false; }

int dist_init(int *argc, char ***argv, char *err, size_t errlen) {
    (void)argc;
    (void)argv;
    int size = launcher_size();
    if (size > 1) {
        snprintf(err, errlen, "launched as %d ranks, but this build has no MPI: install Open MPI "
                 "(apt-get install libopenmpi-dev openmpi-bin) and rebuild (make clean && make)", size);
        return -1;
    }
    return 0;
}

void dist_finalize(void) {}
void dist_abort(int code) { (void)code; }
void dist_sum_floats(float *buf, size_t n, const char *what) { (void)buf; (void)n; (void)what; }
void dist_sum_doubles(double *buf, size_t n, const char *what) { (void)buf; (void)n; (void)what; }
bool dist_any(bool flag, const char *what) { (void)what; return flag; }
void dist_broadcast_bytes(void *buf, size_t n, const char *what) { (void)buf; (void)n; (void)what; }

#endif

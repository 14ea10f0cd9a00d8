// distributed.h: data-parallel runs across processes. Which rank this process
// is, how a global batch is split among the ranks, the collectives training
// needs (sums over the ranks, in host memory), and ending every rank when one
// fails. Built with MPI (CUVAE_WITH_MPI) and launched by mpirun or srun
// --mpi=pmix, the ranks are those of MPI_COMM_WORLD. Launched without MPI (srun
// without MPI support, or CUVAE_RANK / CUVAE_WORLD_SIZE / CUVAE_NCCL_ID_FILE),
// the ranks come from the environment, the NCCL id through a shared file, and the
// host collectives through the GPU's communicator (dist_set_transport); only the
// CUDA backend runs so. Not launched, there is one rank and every collective is
// a no-op, so a single process runs exactly as it always did. The GPU's
// gradient collective (NCCL on the training stream) is a backend op
// (backend.h all_reduce_sum).
#ifndef CUVAE_DISTRIBUTED_H
#define CUVAE_DISTRIBUTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

// Starts MPI when the process was launched as one of several ranks (or as one
// rank by a launcher). Returns 0, or -1 with err set: launched as several ranks
// by a build without MPI. Call first in main.
int dist_init(int *argc, char ***argv, char *err, size_t errlen);

// Ends MPI after a successful run (waits for the other ranks).
void dist_finalize(void);

// Ends every rank now with exit code `code` (MPI_Abort), after a failure on this one.
void dist_abort(int code);

int dist_rank(void);          // 0 .. size - 1
int dist_size(void);          // 1 unless launched as several ranks
int dist_local_rank(void);    // rank among the ranks of this machine (the GPU it uses)
bool dist_launched(void);     // started by mpirun / srun / CUVAE_WORLD_SIZE (even as a single rank)
bool dist_without_mpi(void);  // launched as ranks without MPI: NCCL carries every collective
bool dist_is_writer(void);    // rank 0: the one rank that writes files and prints progress
bool dist_mpi_compiled(void); // built with MPI

// Where ranks other than 0 print their errors (their stderr is quiet otherwise: a rank that ends
// with a failure status having printed nothing here gets its quiet stderr's last line said for it).
FILE *dist_error_stream(void);
// This rank ends with a status every rank ends with, agreed in a collective (an interrupt), which
// rank 0 says: a rank other than 0 then says nothing more as it exits.
void dist_exit_agreed(void);
// Prints "cuvae: MESSAGE" (rank 0, or one process) or "cuvae: rank R of N: MESSAGE" and flushes.
void dist_print_error(const char *message);

// A step every rank takes, where any may fail (reading the options and config, checking the run
// folder, loading the data), launched as MPI ranks: 0 when none failed; else -1 on every rank with
// err emptied (nothing more to print), the failure said once -- by rank 0 when it failed, and by
// each other rank whose message is not rank 0's -- and every line out before any rank ends the
// job. rc as it is for one process, or without MPI (each rank then prints its own).
int dist_agree_on_failure(int rc, char *err, size_t errlen, const char *what);

// The rows [*start, *start + *count) of a global batch of `rows` this rank
// trains on: rows / size each, the first rows % size ranks one more.
void dist_shard(int rows, int rank, int size, int *start, int *count);

// In place, over all ranks: buf = sum of every rank's buf. `what` names the
// collective in the timeout message. No-op for one rank.
void dist_sum_floats(float *buf, size_t n, const char *what);
void dist_sum_doubles(double *buf, size_t n, const char *what);
// Whether any rank passes true (the ranks stop together).
bool dist_any(bool flag, const char *what);
// The largest value any rank passes (one rank's own value without ranks).
int dist_max_int(int value, const char *what);
// buf of rank 0 copied to every rank (MPI; a no-op otherwise).
void dist_broadcast_bytes(void *buf, size_t n, const char *what);
// Every rank's n bytes, in rank order, into all (size * n bytes); MPI only (otherwise mine alone).
void dist_allgather_bytes(const void *mine, void *all, size_t n, const char *what);

// A wait on the other ranks outside these calls (e.g. a device read behind an
// NCCL all-reduce), watched by the CUVAE_DIST_TIMEOUT thread. No-op for one process.
void dist_wait_begin(const char *what);
void dist_wait_end(void);

// Without MPI: the host collectives, run by the CUDA backend over its NCCL communicator.
typedef struct {
    void *ctx;                                              // NULL: none registered
    void (*sum_doubles)(void *ctx, double *buf, size_t n);  // in place, over the ranks
    void (*max_int)(void *ctx, int *value);
} DistTransport;
void dist_set_transport(const DistTransport *t);   // NULL: unregister

// Without MPI: rank 0 writes the n-byte id to CUVAE_NCCL_ID_FILE (atomically), the
// others wait for it and read it; rank 0 removes the file once every rank has joined.
int dist_share_id_by_file(void *id, size_t n, char *err, size_t errlen);
void dist_remove_id_file(void);

#endif

// backend.c: backend selection (device: auto | cpu | cuda), and the CUDA
// entry points' stand-ins when the binary is built without CUDA.
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/distributed.h"

#include <stdio.h>
#include <string.h>

#ifndef CUVAE_WITH_CUDA
bool backend_cuda_compiled(void) { return false; }
bool backend_nccl_compiled(void) { return false; }

Backend *backend_cuda_create(char *err, size_t errlen) {
    set_error(err, errlen, "this cuvae was built without CUDA (rebuild with nvcc on PATH, or make CUDA=1)");
    return NULL;
}
bool backend_cuda_refused_for_all_ranks(void) { return false; }
#endif

Backend *backend_create(DeviceChoice choice, char *err, size_t errlen) {
    char note[600] = "";
    Backend *be = backend_create_noting(choice, note, sizeof note, err, errlen);
    if (note[0]) fputs(note, stderr);
    return be;
}

Backend *backend_create_noting(DeviceChoice choice, char *note, size_t notelen, char *err, size_t errlen) {
    if (notelen > 0) note[0] = '\0';
    if (choice == DEVICE_CPU) return backend_cpu_create();
    char why[512] = "";
    Backend *cuda = backend_cuda_create(why, sizeof why);
    if (cuda) return cuda;
    if (choice == DEVICE_CUDA) {
        set_error(err, errlen, "device \"cuda\" requested but unusable: %s", why);
        return NULL;
    }
    if (dist_without_mpi()) {   // the CPU cannot train so: the reason CUDA failed is the one to mend
        set_error(err, errlen, "device auto: CUDA is unusable (%s), and launched as %d rank%s without MPI only the "
                  "CUDA backend (NCCL) trains; on the CPU launch with mpirun or srun --mpi=pmix", why, dist_size(),
                  dist_size() == 1 ? "" : "s");
        return NULL;
    }
    // data parallel: no rank trains on the CPU beside ranks on their GPUs, nor two on one GPU
    if (backend_cuda_refused_for_all_ranks()) {
        set_error(err, errlen, "device auto: %s", why);
        return NULL;
    }
    snprintf(note, notelen, "cuvae: device auto: %s, using the CPU\n", why);
    return backend_cpu_create();
}

const char *backend_precision_note(const Backend *be, const Config *cfg) {
    if (cfg->train.precision == PRECISION_TF32 && strcmp(be->name, "cpu") == 0)
        return "cuvae: train.precision \"tf32\" is a GPU tensor-core format: the CPU computes in fp32\n";
    return NULL;
}

void backend_configure_from(Backend *be, const Config *cfg) {
    BackendOptions options;
    options.precision = cfg->train.precision;
    options.cuda_graphs = cfg->train.cuda_graph;
    be->configure(be, &options);
}

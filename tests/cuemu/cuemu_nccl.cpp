// cuemu_nccl.cpp: the NCCL calls cuvae makes, for the emulated device, compiled
// against the real nccl.h: a communicator of one rank only (the emulator is one
// process). ncclAllReduce over one rank is a copy (nothing when in place), run on
// the stream like a kernel (deferred, and captured into graphs); a communicator
// of more ranks is refused with ncclInvalidUsage, as it cannot be emulated here.
// Buffers are checked to lie inside device allocations. CUEMU_NCCL_ID_FAIL (set)
// makes ncclGetUniqueId fail, as NCCL's does on a host without a usable network.
#if __has_include(<nccl.h>)   // (a toolkit without NCCL: nothing to emulate)
#include "cuemu.h"

#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <string>

struct ncclComm {
    int ranks;
    int rank;
};

namespace {

size_t type_bytes(ncclDataType_t type) {
    switch (type) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
    }
}

}   // namespace

extern "C" {

const char *ncclGetErrorString(ncclResult_t result) {
    switch (result) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument (emulated NCCL)";
    case ncclInvalidUsage: return "invalid usage (emulated NCCL: one rank only)";
    case ncclSystemError: return "system error (emulated NCCL: CUEMU_NCCL_ID_FAIL)";
    default: return "NCCL error (emulated)";
    }
}

ncclResult_t ncclGetVersion(int *version) {
    *version = NCCL_VERSION_CODE;
    return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id) {
    if (getenv("CUEMU_NCCL_ID_FAIL")) return ncclSystemError;   // (a test's: the id fails on rank 0)
    memset(id, 0, sizeof *id);
    memcpy(id->internal, "cuemu-nccl", 10);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId id, int rank) {
    (void)id;
    if (nranks != 1 || rank != 0) {
        cuemu::report("ncclCommInitRank(nranks %d, rank %d): the emulated device has one rank only", nranks,
                      rank);
        return ncclInvalidUsage;
    }
    *comm = new ncclComm{nranks, rank};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
    const size_t bytes = count * type_bytes(datatype);
    if (!comm || type_bytes(datatype) == 0 || op < ncclSum || op > ncclAvg) return ncclInvalidArgument;
    std::string why;
    if (count > 0 && (!cuemu::device_range_ok(sendbuff, bytes, &why) ||
                      !cuemu::device_range_ok(recvbuff, bytes, &why))) {
        cuemu::report("ncclAllReduce(%zu elements): a buffer is not inside one device allocation: %s", count,
                      why.c_str());
        return ncclInvalidArgument;
    }
    cudaError_t e = cuemu::stream_enqueue(stream, "ncclAllReduce", [=]() {
        if (sendbuff != recvbuff && bytes) memmove(recvbuff, sendbuff, bytes);   // one rank: sum = its own
        return cudaSuccess;
    });
    return e == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
}

}   // extern "C"

#endif

// cuda_check.h: error-checking macros for the CUDA runtime and cuBLAS.
// Each prints "file:line: <what failed>: <error string>" on stderr and exits(1).
// Usable from C (gcc) and CUDA C++ (nvcc). CUBLAS_CHECK needs <cublas_v2.h>
// included before it is used.
#ifndef CUVAE_CUDA_CHECK_H
#define CUVAE_CUDA_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <cuda_runtime_api.h>

#define CUDA_CHECK(call)                                                              \
    do {                                                                              \
        cudaError_t cuda_check_status_ = (call);                                      \
        if (cuda_check_status_ != cudaSuccess) {                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,             \
                    cudaGetErrorString(cuda_check_status_));                          \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#define CUBLAS_CHECK(call)                                                            \
    do {                                                                              \
        cublasStatus_t cublas_check_status_ = (call);                                 \
        if (cublas_check_status_ != CUBLAS_STATUS_SUCCESS) {                          \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,             \
                    cublasGetStatusString(cublas_check_status_));                     \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

#endif

// cuemu_cublas.cpp: the cuBLAS calls cuvae makes, for the emulated device,
// compiled against the real cublas_v2.h. cublasSgemm runs OpenBLAS's sgemm in
// cuBLAS's own column-major convention, on the handle's stream (so it is
// deferred and captured like a kernel), after cuBLAS's argument checks
// (CUBLAS_STATUS_INVALID_VALUE for a negative size or a leading dimension
// below the rows it must hold) and a check that every operand, with its
// leading dimension, lies inside one device allocation -- so a transposition
// or leading-dimension mistake fails here as it would on the GPU.
// CUBLAS_TF32_TENSOR_OP_MATH rounds A and B to TF32 (10-bit mantissa, round to
// nearest, ties away) before the product; blocking and split-K are not emulated.
#include "cuemu.h"

#include <cublas_v2.h>
#include <cblas.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

struct cublasContext {
    cudaStream_t stream;
    void *workspace;
    size_t workspace_bytes;
    cublasMath_t math_mode;
};

namespace {

using cuemu::report;

float round_to_tf32(float x) {
    if (!std::isfinite(x)) return x;
    uint32_t bits;
    memcpy(&bits, &x, 4);
    bits = (bits + 0x1000u) & 0xFFFFE000u;   // keep 10 mantissa bits, ties away from zero
    float y;
    memcpy(&y, &bits, 4);
    return y;
}

// A column-major rows x cols operand with leading dimension ld inside one allocation?
bool operand_ok(const char *name, const float *ptr, int rows, int cols, int ld, char transposed) {
    if (rows == 0 || cols == 0) return true;
    size_t floats = (size_t)(cols - 1) * (size_t)ld + (size_t)rows;
    std::string why;
    if (cuemu::device_range_ok(ptr, floats * sizeof(float), &why)) return true;
    report("cublasSgemm: operand %s (%d x %d column-major%s, ld %d, %zu floats) is not inside one "
           "device allocation: %s", name, rows, cols, transposed ? ", transposed" : "", ld, floats,
           why.c_str());
    return false;
}

}   // namespace

extern "C" {

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    cublasContext *h = new cublasContext();
    h->stream = NULL;
    h->math_mode = CUBLAS_DEFAULT_MATH;
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace, size_t bytes) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    std::string why;
    if (bytes > 0 && !cuemu::device_range_ok(workspace, bytes, &why)) {
        report("cublasSetWorkspace: the workspace (%zu bytes) is not inside one device allocation: %s",
               bytes, why.c_str());
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    handle->workspace = workspace;
    handle->workspace_bytes = bytes;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->math_mode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}

const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    default: return "an internal operation failed";
    }
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float *alpha,
                              const float *A, int lda, const float *B, int ldb, const float *beta,
                              float *C, int ldc) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    bool valid_ops = (transa == CUBLAS_OP_N || transa == CUBLAS_OP_T || transa == CUBLAS_OP_C) &&
                     (transb == CUBLAS_OP_N || transb == CUBLAS_OP_T || transb == CUBLAS_OP_C);
    const char ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    const int a_rows = ta ? k : m, a_cols = ta ? m : k;
    const int b_rows = tb ? n : k, b_cols = tb ? k : n;
    int max1_a = a_rows > 1 ? a_rows : 1, max1_b = b_rows > 1 ? b_rows : 1, max1_c = m > 1 ? m : 1;
    if (!valid_ops || m < 0 || n < 0 || k < 0 || lda < max1_a || ldb < max1_b || ldc < max1_c) {
        report("cublasSgemm(transa %d, transb %d, m %d, n %d, k %d, lda %d, ldb %d, ldc %d): invalid "
               "argument (cuBLAS needs m, n, k >= 0, lda >= max(1, %d), ldb >= max(1, %d), "
               "ldc >= max(1, m))", (int)transa, (int)transb, m, n, k, lda, ldb, ldc, a_rows, b_rows);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    const float alpha_value = *alpha, beta_value = *beta;   // host pointer mode: read at the call
    const bool uses_ab = k > 0 && alpha_value != 0.0f;
    if ((uses_ab && (!operand_ok("A", A, a_rows, a_cols, lda, ta) ||
                     !operand_ok("B", B, b_rows, b_cols, ldb, tb))) ||
        !operand_ok("C", C, m, n, ldc, 0))
        return CUBLAS_STATUS_INVALID_VALUE;
    const bool tf32 = (handle->math_mode & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH;
    cudaError_t e = cuemu::stream_enqueue(handle->stream, "cublasSgemm", [=]() {
        // beta == 0: C is not read (it may hold NaN), as in cuBLAS
        if (beta_value == 0.0f)
            for (int j = 0; j < n; j++) memset(C + (size_t)j * ldc, 0, (size_t)m * sizeof(float));
        if (!uses_ab) {
            if (beta_value != 0.0f && beta_value != 1.0f)
                for (int j = 0; j < n; j++)
                    for (int i = 0; i < m; i++) C[(size_t)j * ldc + i] *= beta_value;
            return cudaSuccess;
        }
        const float *a = A, *b = B;
        std::vector<float> a_tf32, b_tf32;
        if (tf32) {
            a_tf32.assign(A, A + (size_t)(a_cols - 1) * lda + a_rows);
            b_tf32.assign(B, B + (size_t)(b_cols - 1) * ldb + b_rows);
            for (float &v : a_tf32) v = round_to_tf32(v);
            for (float &v : b_tf32) v = round_to_tf32(v);
            a = a_tf32.data();
            b = b_tf32.data();
        }
        cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    m, n, k, alpha_value, a, lda, b, ldb, beta_value, C, ldc);
        return cudaSuccess;
    });
    return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

}   // extern "C"

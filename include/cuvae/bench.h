// bench.h: `cuvae bench`: steady-state training throughput (gather, forward,
// backward, loss accumulation, Adam) on a resident random dataset, or the same
// GEMMs alone (--gemm-only), printed as one JSON line.
#ifndef CUVAE_BENCH_H
#define CUVAE_BENCH_H

#include <stdint.h>
#include "cuvae/model.h"

// argv excludes "bench": CONFIG [--steps N] [--warmup N] [--set k=v]... [--gemm-only].
// Returns the exit status: 0, or 2 with one "cuvae: ..." line on stderr.
int bench_command(int argc, char **argv);

// GEMM FLOPs of one training step: 2*B*in*out for every forward GEMM, the same
// for every weight gradient, and again for every input gradient except the
// first layer's (the data needs none).
uint64_t bench_gemm_flops_per_step(const Model *m, int B);

#endif

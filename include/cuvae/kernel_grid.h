// kernel_grid.h: the grid size of the grid-stride kernels in kernels/*.cu: enough
// blocks of block_size threads to cover total items, at most kernel_grid_max_blocks
// (65535; the loop covers the rest), at least 1. Also the grid of the kernels that
// take one row (or channel) per block and loop over the rest: grid_for(rows, 1).
#ifndef CUVAE_KERNEL_GRID_H
#define CUVAE_KERNEL_GRID_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// The most blocks grid_for gives (kernels/kernel_grid.cu). 65535 in every run; the
// CUDA parity tests lower it (PARITY_GRID_MAX_BLOCKS) so that every grid-stride and
// row loop takes several turns at the tests' small sizes.
extern unsigned kernel_grid_max_blocks;

#ifdef __cplusplus
}
#endif

static inline unsigned grid_for(size_t total, int block_size) {
    size_t blocks = (total + (size_t)block_size - 1) / (size_t)block_size;
    if (blocks > kernel_grid_max_blocks) blocks = kernel_grid_max_blocks;
    if (blocks == 0) blocks = 1;
    return (unsigned)blocks;
}

#endif

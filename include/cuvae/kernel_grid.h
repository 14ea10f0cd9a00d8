// kernel_grid.h: the grid size of the grid-stride kernels in kernels/*.cu: enough
// blocks of block_size threads to cover total items, at most 65535 (the loop covers
// the rest), at least 1.
#ifndef CUVAE_KERNEL_GRID_H
#define CUVAE_KERNEL_GRID_H

#include <stddef.h>

static inline unsigned grid_for(size_t total, int block_size) {
    size_t blocks = (total + (size_t)block_size - 1) / (size_t)block_size;
    if (blocks > 65535) blocks = 65535;
    if (blocks == 0) blocks = 1;
    return (unsigned)blocks;
}

#endif

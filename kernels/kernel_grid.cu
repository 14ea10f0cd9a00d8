// kernel_grid.cu: defines kernel_grid_max_blocks, the cap of grid_for (cuvae/kernel_grid.h).
#include "cuvae/kernel_grid.h"

unsigned kernel_grid_max_blocks = 65535;

// epoch_images.h: the grids `train` writes after every epoch (as pytorch/examples
// does), so a user sees the model improve without waiting for `cuvae plot`:
//   DIR/progress/samples_epoch_NNN.png         8 x 8 decodes of the same fixed z ~ N(0, I)
//                                              every epoch (variational models; a cvae's
//                                              column c is class c % 10)
//   DIR/progress/reconstruction_epoch_NNN.png  the first 8 test images (top row) and their
//                                              reconstructions at z = mu (bottom row)
// Plain PNG (no titles, no gnuplot), written atomically.
#ifndef CUVAE_EPOCH_IMAGES_H
#define CUVAE_EPOCH_IMAGES_H

#include <stddef.h>
#include <stdint.h>
#include "cuvae/eval.h"    // DeviceDataset
#include "cuvae/model.h"

// test_labels (host, test->n) are the cvae's conditions (NULL otherwise).
int epoch_images_write(Model *m, const DeviceDataset *test, const uint8_t *test_labels, int epoch,
                       const char *run_dir, char *err, size_t errlen);

#endif

// prior.h: a PixelCNN prior over the codes of a trained VQ-VAE (model.prior_of, deck 004's
// pipeline): what the VQ-VAE checkpoint says about its codes, the data set of codes it
// assigns to the images, and images decoded from sampled codes.
#ifndef CUVAE_PRIOR_H
#define CUVAE_PRIOR_H

#include <stddef.h>
#include "cuvae/config.h"
#include "cuvae/dataset.h"
#include "cuvae/model.h"

// The codebook size K (<= 256: codes travel as uint8), the code grid (h, w) and the checkpoint's
// CRC-32 (its "crc32" metadata, 8 hex digits: which VQ-VAE it is) of the VQ-VAE checkpoint at
// path: 0, or -1 with err (not a file, not a VQ-VAE, K too large).
int prior_code_grid(const char *path, int *K, int *h, int *w, char crc[16], char *err, size_t errlen);

// dataset_load, and for a prior (cfg->model.prior_of) every image of both splits replaced by
// the codes the VQ-VAE assigns to it (one byte per position, dim = h w). train NULL: the test
// split alone, as dataset_load.
int prior_dataset_load(const Config *cfg, Dataset *train, Dataset *test, char *err, size_t errlen);

// n images decoded by the VQ-VAE of cfg->model.prior_of from codes (n, h w): *pixels (n, C, H, W)
// allocated here (free it), in the data's range, with image = {C, H, W}, the VQ-VAE's image shape
// (grey or RGB, square or not). 0, or -1 with err.
int prior_decode_codes(const Config *cfg, const int32_t *codes, int n, float **pixels, int image[3],
                       char *err, size_t errlen);

// n images from a trained prior: code grids drawn from it (model_made_sample), decoded by its
// VQ-VAE; *pixels (n, C, H, W) allocated here, image = {C, H, W}. 0, or -1 with err.
int prior_sample_images(Model *prior, int n, uint64_t seed, float **pixels, int image[3], char *err,
                        size_t errlen);

#endif

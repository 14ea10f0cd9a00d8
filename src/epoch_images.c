// epoch_images.c: the per-epoch sample and reconstruction grids (epoch_images.h).
#include "cuvae/epoch_images.h"
#include "cuvae/common.h"
#include "cuvae/eval.h"
#include "cuvae/image.h"
#include "cuvae/prior.h"
#include "cuvae/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPOCH_SAMPLE_GRID 8            // samples: 8 x 8
#define EPOCH_RECONSTRUCTIONS 8        // test images reconstructed
#define EPOCH_SAMPLE_SALT 0x9E37E90Cull  // the fixed z: seed ^ salt, the same every epoch

// One image's planes: (channels, rows, cols).
typedef struct {
    int channels, rows, cols;
} TileShape;

static int write_tiles(const char *path, const float *tiles, int n, TileShape s, int columns, char *err,
                       size_t errlen) {
    int width, height;
    uint8_t *grid = image_grid_channels(tiles, n, s.channels, s.rows, s.cols, columns, 2, 255, &width, &height);
    if (!grid) return set_error(err, errlen, "%s: cannot tile %d images", path, n);
    int rc = png_write(path, grid, width, height, s.channels, err, errlen);
    free(grid);
    return rc;
}

int epoch_images_write(Model *m, const DeviceDataset *test, const uint8_t *test_labels, int epoch,
                       const char *run_dir, char *err, size_t errlen) {
    const int D = m->input_dim, L = m->latent_dim;
    TileShape shape;
    if (m->prior_classes) {   // a prior: code grids drawn from it, decoded by its VQ-VAE
        char dir[1100], path[1200];
        snprintf(dir, sizeof dir, "%s/progress", run_dir);
        if (make_dirs(dir, err, errlen) != 0) return -1;
        const int n = EPOCH_SAMPLE_GRID * EPOCH_SAMPLE_GRID;
        float *pixels;
        int image[3];   // the VQ-VAE's (C, H, W)
        if (prior_sample_images(m, n, m->cfg.train.seed ^ EPOCH_SAMPLE_SALT, &pixels, image, err, errlen) != 0)
            return -1;
        shape = (TileShape){image[0], image[1], image[2]};
        snprintf(path, sizeof path, "%s/samples_epoch_%03d.png", dir, epoch);
        int rc = write_tiles(path, pixels, n, shape, EPOCH_SAMPLE_GRID, err, errlen);
        free(pixels);
        return rc;
    }
    if (!model_image_shape(m, &shape.channels, &shape.rows, &shape.cols)) return 0;   // not images: nothing to show
    char dir[1100], path[1200];
    snprintf(dir, sizeof dir, "%s/progress", run_dir);
    if (make_dirs(dir, err, errlen) != 0) return -1;

    int rc = 0;
    if (m->autoregressive) {   // made: ancestral samples; nothing is reconstructed
        const int n = EPOCH_SAMPLE_GRID * EPOCH_SAMPLE_GRID;
        float *pixels = xmalloc((size_t)n * D * sizeof(float));
        model_made_sample(m, n, m->cfg.train.seed ^ EPOCH_SAMPLE_SALT, pixels);
        snprintf(path, sizeof path, "%s/samples_epoch_%03d.png", dir, epoch);
        rc = write_tiles(path, pixels, n, shape, EPOCH_SAMPLE_GRID, err, errlen);
        free(pixels);
        return rc;
    }
    if (m->variational || m->vq || m->gan) {   // a gan: its generator on the same fixed z every epoch
        const int n = EPOCH_SAMPLE_GRID * EPOCH_SAMPLE_GRID;
        float *z = xmalloc((size_t)n * L * sizeof(float));
        float *pixels = xmalloc((size_t)n * D * sizeof(float));
        uint8_t labels[EPOCH_SAMPLE_GRID * EPOCH_SAMPLE_GRID];
        const int classes = m->data_classes > 0 ? m->data_classes : 10;   // (a cvae: the data's classes)
        for (int i = 0; i < n; i++) labels[i] = (uint8_t)(i % EPOCH_SAMPLE_GRID % classes);
        model_draw_latents(m, z, n, m->cfg.train.seed ^ EPOCH_SAMPLE_SALT);
        model_decode_pixels(m, z, m->n_classes ? labels : NULL, n, pixels);
        snprintf(path, sizeof path, "%s/samples_epoch_%03d.png", dir, epoch);
        rc = write_tiles(path, pixels, n, shape, EPOCH_SAMPLE_GRID, err, errlen);
        free(z);
        free(pixels);
    }
    if (m->gan) return rc;   // nothing is reconstructed
    const int n = test->n < EPOCH_RECONSTRUCTIONS ? test->n : EPOCH_RECONSTRUCTIONS;
    if (rc == 0 && n > 0) {
        float *codes = xmalloc((size_t)n * L * sizeof(float));
        float *tiles = xmalloc((size_t)2 * n * D * sizeof(float));
        uint8_t *images = xmalloc((size_t)n * D);
        eval_encode(m, test, n, codes);   // z = mu
        model_decode_pixels(m, codes, test_labels, n, tiles + (size_t)n * D);
        m->be->download(m->be, images, test->images, (size_t)n * D);
        for (size_t i = 0; i < (size_t)n * D; i++) tiles[i] = images[i] / 255.0f;
        snprintf(path, sizeof path, "%s/reconstruction_epoch_%03d.png", dir, epoch);
        rc = write_tiles(path, tiles, 2 * n, shape, n, err, errlen);
        free(codes);
        free(tiles);
        free(images);
    }
    return rc;
}

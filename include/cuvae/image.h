// image.h: PNG output (libpng) and image grids.
#ifndef CUVAE_IMAGE_H
#define CUVAE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

// channels: 1 (gray) or 3 (RGB); pixels (height, width, channels) row-major.
int png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
              char *err, size_t errlen);

// Reads a PNG as it is: grey (with or without alpha) as 1 channel, colour (palette too) as 3;
// values as stored (16-bit: v / 257 rounded; no gamma); alpha composited on black with the
// stored values (v * a / 255 rounded). malloc'd (height, width, channels) pixels, or NULL with
// err naming the file and what is wrong.
uint8_t *png_read(const char *path, int *width, int *height, int *channels, char *err, size_t errlen);

// Tiles n images (n, rows*cols) with values in [0, 1] (clamped) into a grid of
// `grid_cols` columns with `pad` pixels of padding (value pad_value).
// Returns a malloc'd gray image and its size.
uint8_t *image_grid(const float *images, int n, int rows, int cols, int grid_cols, int pad,
                    uint8_t pad_value, int *width_out, int *height_out);
// The same for images of `channels` planes (n, channels, rows, cols): the grid is
// (height, width, channels), ready for png_write (channels 1 or 3).
uint8_t *image_grid_channels(const float *images, int n, int channels, int rows, int cols, int grid_cols, int pad,
                             uint8_t pad_value, int *width_out, int *height_out);

#endif

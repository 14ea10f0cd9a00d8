// image.c: PNG writing with libpng (8-bit gray or RGB, written atomically via a
// temp file and rename) and image_grid, which tiles [0, 1] float images into
// one gray image with padding.
#include "cuvae/image.h"
#include "cuvae/common.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// libpng reports errors through a callback that must not return; we keep the
// message and jump back to the setjmp point in png_write.
typedef struct {
    char message[256];
} PngErrorState;

static void png_error_callback(png_structp png, png_const_charp message) {
    PngErrorState *state = png_get_error_ptr(png);
    snprintf(state->message, sizeof state->message, "%s", message ? message : "unknown error");
    png_longjmp(png, 1);
}

static void png_warning_callback(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;   // warnings are not actionable for our fixed-format output
}

// Encodes the image into the already-open fp. Returns 0, or -1 with the libpng
// message in state. Kept separate so the setjmp frame holds no changing locals.
static int encode_png(FILE *fp, const uint8_t *pixels, int width, int height, int channels,
                      PngErrorState *state) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, state, png_error_callback,
                                              png_warning_callback);
    if (!png) {
        snprintf(state->message, sizeof state->message, "cannot create libpng write struct");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(state->message, sizeof state->message, "cannot create libpng info struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, fp);
    int color_type = channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB;
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t row_bytes = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * row_bytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int png_write(const char *path, const uint8_t *pixels, int width, int height, int channels,
              char *err, size_t errlen) {
    if (!path || !path[0]) return set_error(err, errlen, "png_write: empty path");
    if (channels != 1 && channels != 3)
        return set_error(err, errlen, "%s: unsupported channel count %d (need 1 or 3)", path, channels);
    if (width <= 0 || height <= 0)
        return set_error(err, errlen, "%s: invalid image size %dx%d", path, width, height);
    if (!pixels) return set_error(err, errlen, "%s: NULL pixel buffer", path);

    AtomicFile out;
    if (atomic_file_open(&out, path, err, errlen) != 0) return -1;
    PngErrorState state = {""};
    if (encode_png(out.fp, pixels, width, height, channels, &state) != 0) {
        atomic_file_abort(&out);
        return set_error(err, errlen, "%s: PNG encoding failed: %s", path, state.message);
    }
    return atomic_file_commit(&out, err, errlen);
}

static uint8_t *read_png_as(const char *path, int *width, int *height, int *channels, char *err, size_t errlen);

uint8_t *png_read_gray(const char *path, int *width, int *height, char *err, size_t errlen) {
    int channels = 1;
    return read_png_as(path, width, height, &channels, err, errlen);
}

uint8_t *png_read(const char *path, int *width, int *height, int *channels, char *err, size_t errlen) {
    *channels = 0;   // as the file is
    return read_png_as(path, width, height, channels, err, errlen);
}

// Walks the chunks of a PNG that libpng has opened (its signature and header are fine):
// *gamma = the gAMA chunk's value (gamma x 100000) before the image data, or 0 without one;
// -1 with err naming the byte when the file ends inside a chunk or before IEND, or goes on
// after it (libpng's simplified API reads such files without a word; the IDX and array
// readers refuse the same damage). Reads the chunk headers, not their data.
static int png_scan_chunks(const char *path, uint32_t *gamma, char *err, size_t errlen) {
    *gamma = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    uint64_t size = 0, at = 8;   // after the signature
    if (fseek(f, 0, SEEK_END) == 0) size = (uint64_t)ftell(f);
    bool before_data = true, ended = false;
    uint8_t head[8];
    while (!ended && at + 8 <= size && fseek(f, (long)at, SEEK_SET) == 0 && fread(head, 1, 8, f) == 8) {
        const uint64_t length = (uint64_t)head[0] << 24 | (uint64_t)head[1] << 16 | (uint64_t)head[2] << 8 | head[3];
        if (at + 12 + length > size) break;   // the chunk runs past the end
        if (memcmp(head + 4, "IDAT", 4) == 0) before_data = false;
        ended = memcmp(head + 4, "IEND", 4) == 0;
        uint8_t v[4];
        if (before_data && memcmp(head + 4, "gAMA", 4) == 0 && length == 4 && fread(v, 1, 4, f) == 4)
            *gamma = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
        at += 12 + length;   // length, type, data, CRC
    }
    fclose(f);
    if (!ended && at >= size)
        return set_error(err, errlen, "%s: truncated: the file ends at byte %" PRIu64 ", before its IEND chunk", path,
                         size);
    if (!ended)
        return set_error(err, errlen, "%s: truncated: the file (%" PRIu64 " bytes) ends inside the chunk at byte "
                         "%" PRIu64 ", before its IEND chunk", path, size, at);
    if (at != size)
        return set_error(err, errlen, "%s: %" PRIu64 " bytes of trailing data after the IEND chunk, at byte %" PRIu64,
                         path, size - at, at);
    return 0;
}

// A palette image's pixels are indices into its PLTE chunk, and libpng's simplified API reads an
// index past the palette's end as black without a word: read as indices (the file's palette as
// the colormap), -1 with err naming the first such pixel.
static int png_check_palette_indices(const char *path, char *err, size_t errlen) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path))
        return set_error(err, errlen, "%s: cannot read as PNG: %s", path, image.message);
    // with alpha (a tRNS chunk) the colormap keeps it: without, libpng would ask for a background
    image.format = (image.format & PNG_FORMAT_FLAG_ALPHA) ? PNG_FORMAT_RGBA_COLORMAP : PNG_FORMAT_RGB_COLORMAP;
    uint8_t *indices = xmalloc(PNG_IMAGE_SIZE(image));   // (H, W)
    uint8_t *colormap = xmalloc(PNG_IMAGE_COLORMAP_SIZE(image));
    int rc = 0;
    if (!png_image_finish_read(&image, NULL, indices, 0, colormap)) {
        rc = set_error(err, errlen, "%s: cannot decode: %s", path, image.message);
        png_image_free(&image);
    } else {
        const size_t pixels = (size_t)image.width * image.height;
        for (size_t i = 0; i < pixels && rc == 0; i++)
            if (indices[i] >= image.colormap_entries)
                rc = set_error(err, errlen, "%s: pixel (x %zu, y %zu) is palette index %d, past the %u entries of its "
                               "PLTE chunk", path, i % image.width, i / image.width, indices[i],
                               image.colormap_entries);
    }
    free(indices);
    free(colormap);
    return rc;
}

// *channels 1: converted to grey; 0: grey or RGB as the file is (then set). Pixel values are
// read as stored: 8-bit as they are, 16-bit scaled to 8 bits (v / 257, rounded). libpng's
// simplified API would convert a 16-bit file as linear light to sRGB, and any file whose gAMA
// chunk is not sRGB's 1/2.2: the first is told it is sRGB-coded (PNG_IMAGE_FLAG_16BIT_sRGB),
// the second is refused.
static uint8_t *read_png_as(const char *path, int *width, int *height, int *channels, char *err, size_t errlen) {
    png_image image;   // libpng's simplified API: any PNG, converted to 8-bit gray or RGB
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path)) {
        set_error(err, errlen, "%s: cannot read as PNG: %s", path, image.message);
        return NULL;
    }
    uint32_t gamma;
    if (png_scan_chunks(path, &gamma, err, errlen) != 0) {
        png_image_free(&image);
        return NULL;
    }
    // libpng converts when the file's gamma differs from sRGB's 45455 by more than 5 %
    // (PNG_GAMMA_THRESHOLD); within that it leaves the values as they are
    if (gamma && (gamma < 43183 || gamma > 47726)) {
        set_error(err, errlen, "%s: its gAMA chunk says gamma %.5f; cuvae reads pixel values as stored, and libpng "
                  "would convert these from that gamma: remove the chunk (e.g. pngcrush -rem gAMA) or re-save the "
                  "image without it", path, gamma / 100000.0);
        png_image_free(&image);
        return NULL;
    }
    image.flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    if (*channels == 0) {   // a data image (png_read): at most 2^24 values, like the array files
        *channels = (image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
        if ((uint64_t)image.width * image.height * (uint64_t)*channels > ((uint64_t)1 << 24)) {
            set_error(err, errlen, "%s: a %u x %u image holds more values than cuvae takes (%d per image)", path,
                      image.width, image.height, 1 << 24);
            png_image_free(&image);
            return NULL;
        }
    }
    // (after the size check: the indices are decoded once more, H x W bytes)
    if ((image.format & PNG_FORMAT_FLAG_COLORMAP) && png_check_palette_indices(path, err, errlen) != 0) {
        png_image_free(&image);
        return NULL;
    }
    image.format = *channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    // zeroed: libpng composites a pixel with alpha (an alpha channel, a tRNS chunk) onto what the
    // buffer holds when given no background -- black, as documented, not whatever the heap held
    uint8_t *pixels = xcalloc(1, PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, NULL, pixels, 0, NULL)) {
        set_error(err, errlen, "%s: cannot decode: %s", path, image.message);
        png_image_free(&image);
        free(pixels);
        return NULL;
    }
    // libpng decodes the image and warns of image data beyond it ("IDAT: Too much image data"):
    // damage, refused like bytes after IEND
    if ((image.warning_or_error & PNG_IMAGE_WARNING) && strncmp(image.message, "IDAT", 4) == 0) {
        set_error(err, errlen, "%s: damaged image data (libpng: %s)", path, image.message);
        free(pixels);
        return NULL;
    }
    *width = (int)image.width;
    *height = (int)image.height;
    return pixels;
}

// Maps a value to 0..255: clamps to [0, 1] (NaN -> 0), scales, rounds to nearest.
static uint8_t unit_to_byte(float v) {
    if (!(v > 0.0f)) return 0;    // also catches NaN
    if (v >= 1.0f) return 255;
    return (uint8_t)(v * 255.0f + 0.5f);
}

// Layout (like torchvision's make_grid): tiles of rows x cols in min(grid_cols, n)
// columns and ceil(n / columns) rows, `pad` pixels of pad_value around and
// between tiles; unused trailing tiles stay pad_value. Returns NULL (sizes 0)
// for invalid arguments.
uint8_t *image_grid(const float *images, int n, int rows, int cols, int grid_cols, int pad,
                    uint8_t pad_value, int *width_out, int *height_out) {
    return image_grid_channels(images, n, 1, rows, cols, grid_cols, pad, pad_value, width_out, height_out);
}

uint8_t *image_grid_channels(const float *images, int n, int channels, int rows, int cols, int grid_cols, int pad,
                             uint8_t pad_value, int *width_out, int *height_out) {
    *width_out = 0;
    *height_out = 0;
    if (!images || n <= 0 || channels <= 0 || rows <= 0 || cols <= 0 || grid_cols <= 0 || pad < 0) return NULL;
    const int C = channels;
    int tiles_across = grid_cols < n ? grid_cols : n;
    int tiles_down = (n + tiles_across - 1) / tiles_across;
    int64_t width = (int64_t)tiles_across * (cols + (int64_t)pad) + pad;
    int64_t height = (int64_t)tiles_down * (rows + (int64_t)pad) + pad;
    if (width > INT_MAX || height > INT_MAX || width * height * C > (int64_t)1 << 40) return NULL;

    uint8_t *grid = xmalloc((size_t)(width * height * C));
    memset(grid, pad_value, (size_t)(width * height * C));
    const size_t plane = (size_t)rows * (size_t)cols;
    for (int i = 0; i < n; i++) {
        int64_t top = (int64_t)(i / tiles_across) * (rows + pad) + pad;
        int64_t left = (int64_t)(i % tiles_across) * (cols + pad) + pad;
        const float *image = images + (size_t)i * C * plane;   // (C, rows, cols)
        for (int y = 0; y < rows; y++) {
            uint8_t *out_row = grid + (size_t)((top + y) * width + left) * C;
            for (int x = 0; x < cols; x++)
                for (int c = 0; c < C; c++)
                    out_row[(size_t)x * C + c] = unit_to_byte(image[(size_t)c * plane + (size_t)y * cols + x]);
        }
    }
    *width_out = (int)width;
    *height_out = (int)height;
    return grid;
}

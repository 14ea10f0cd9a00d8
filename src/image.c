// image.c: PNG writing with libpng (8-bit gray or RGB, written atomically via a
// temp file and rename), PNG reading (any PNG, values as stored, as 8-bit grey or RGB),
// and image_grid, which tiles [0, 1] float images into one gray image with padding.
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
        const int write_errno = atomic_file_write_errno(&out);   // libpng says only "Write Error"
        atomic_file_abort(&out);
        if (write_errno) return set_error(err, errlen, "%s: write failed: %s", path, strerror(write_errno));
        return set_error(err, errlen, "%s: PNG encoding failed: %s", path, state.message);
    }
    return atomic_file_commit(&out, err, errlen);
}


// The first 8 bytes must be PNG's signature: -1 with err otherwise (before the chunks are walked).
static int png_check_signature(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    png_byte signature[8];
    const size_t got = fread(signature, 1, sizeof signature, f);
    fclose(f);
    if (got < sizeof signature || png_sig_cmp(signature, 0, sizeof signature) != 0)
        return set_error(err, errlen, "%s: cannot read as PNG: Not a PNG file (no PNG signature in its first 8 bytes)",
                         path);
    return 0;
}

// Walks the chunks of a PNG whose signature is fine: -1 with err naming the byte when the file
// ends inside a chunk or before IEND, or goes on after it (libpng stops at IEND: the IDX and
// array readers refuse the same damage), when its IDAT chunks are not one run (libpng skips a
// later run without a word) and when a PLTE or tRNS chunk comes after them (libpng ignores a late
// tRNS without a word: the pixels it makes transparent would read opaque). Reads the chunk
// headers, not their data.
static int png_scan_chunks(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    uint64_t size = 0, at = 8;   // after the signature
    if (fseek(f, 0, SEEK_END) == 0) size = (uint64_t)ftell(f);
    bool ended = false;
    int idat_runs = 0;
    bool in_idat = false;
    uint8_t head[8];
    while (!ended && at + 8 <= size && fseek(f, (long)at, SEEK_SET) == 0 && fread(head, 1, 8, f) == 8) {
        const uint64_t length = (uint64_t)head[0] << 24 | (uint64_t)head[1] << 16 | (uint64_t)head[2] << 8 | head[3];
        if (at + 12 + length > size) break;   // the chunk runs past the end
        ended = memcmp(head + 4, "IEND", 4) == 0;
        const bool idat = memcmp(head + 4, "IDAT", 4) == 0;
        idat_runs += idat && !in_idat;
        in_idat = idat;
        if (idat_runs > 1 || (idat_runs > 0 && !idat &&
                              (memcmp(head + 4, "tRNS", 4) == 0 || memcmp(head + 4, "PLTE", 4) == 0))) {
            fclose(f);
            return set_error(err, errlen, "%s: damaged: the %.4s chunk at byte %" PRIu64 " comes after the image data "
                             "(IDAT)%s", path, (const char *)head + 4, at,
                             idat ? ", which must be one run of chunks" : ", which it must precede");
        }
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

// A palette image's pixels are indices into its PLTE chunk, and libpng reads an
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

// png_read decodes with libpng's low-level API, which converts nothing it is not asked to:
// no gamma, no colour-space or linear-light arithmetic. (The simplified png_image API converted
// 16-bit values as linear light, composited alpha in linear light, converted from a gAMA chunk,
// and decoded 16-bit Adam7-interlaced files with rows misplaced -- libpng 1.6.39.)
typedef struct {
    PngErrorState error;      // first, so png_error_callback serves reads too: the error that ended the decode
    char damage_warning[200]; // the first warning about damage to what the pixels are made of, if any
    char last_warning[200];   // the last warning of any kind (libpng's reason for some errors)
    bool decoding;            // past the header: errors are "cannot decode", not "cannot read as PNG"
    uint8_t *decoded;         // (H, W, file channels), owned here until handed over
    png_bytep *rows;          // H pointers into decoded
} PngReadState;

// libpng warns of damage it reads past and decodes on: image data beyond the image ("IDAT: Too
// much image data", "IDAT: Extra compressed data"), a tRNS or PLTE chunk it drops ("tRNS: CRC
// error", "tRNS: invalid" -- the pixels it marks would read opaque), a damaged IHDR or IEND. The
// first such warning is kept and the file refused like bytes after IEND; warnings about the
// ancillary chunks cuvae does not use (text, gamma, colour space, ...) change no pixel.
static void png_read_warning_callback(png_structp png, png_const_charp message) {
    PngReadState *state = png_get_error_ptr(png);
    if (!message) return;
    snprintf(state->last_warning, sizeof state->last_warning, "%s", message);
    static const char *const damage[] = {"IDAT", "tRNS", "PLTE", "IHDR", "IEND"};
    for (size_t k = 0; k < sizeof damage / sizeof *damage && !state->damage_warning[0]; k++)
        if (strncmp(message, damage[k], 4) == 0)
            snprintf(state->damage_warning, sizeof state->damage_warning, "%s", message);
}

// Decodes fp into state->decoded as 8-bit samples: grey, grey + alpha, RGB or RGBA as the file
// is (palette entries expanded to RGB, a tRNS chunk to an alpha channel, 1/2/4-bit grey to 8,
// 16-bit scaled to 8 by libpng's png_set_scale_16: round(v / 257)). *too_big is set (and nothing
// decoded) when the image holds more than 2^24 values. 0, or -1 with state->error.message.
static int decode_png_samples(FILE *fp, PngReadState *state, uint32_t *width, uint32_t *height, int *file_channels,
                              bool *colour, bool *palette, bool *too_big) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, state, png_error_callback,
                                             png_read_warning_callback);
    if (!png) {
        snprintf(state->error.message, sizeof state->error.message, "cannot create libpng read struct");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(state->error.message, sizeof state->error.message, "cannot create libpng info struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;   // state->decoded and ->rows are freed by the caller
    }
    png_init_io(png, fp);
    // PNG's own bound on a side (2^31 - 1), not libpng's default 1,000,000: a long thin image is
    // then refused by the 2^24-values check below, which says why
    png_set_user_limits(png, 0x7fffffffu, 0x7fffffffu);
    png_read_info(png, info);
    int bit_depth = 0, color_type = 0;
    png_get_IHDR(png, info, width, height, &bit_depth, &color_type, NULL, NULL, NULL);
    *colour = (color_type & PNG_COLOR_MASK_COLOR) != 0;   // palette images too
    *palette = color_type == PNG_COLOR_TYPE_PALETTE;
    *too_big = (uint64_t)*width * *height * (*colour ? 3u : 1u) > ((uint64_t)1 << 24);
    if (*too_big) {
        png_destroy_read_struct(&png, &info, NULL);
        return 0;
    }
    state->decoding = true;
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    *file_channels = png_get_channels(png, info);
    const size_t row_bytes = png_get_rowbytes(png, info);
    if (png_get_bit_depth(png, info) != 8 || row_bytes != (size_t)*width * (size_t)*file_channels)
        png_error(png, "unexpected sample layout after expansion");
    state->decoded = xmalloc(row_bytes * *height);
    state->rows = xmalloc(sizeof *state->rows * *height);
    for (uint32_t y = 0; y < *height; y++) state->rows[y] = state->decoded + row_bytes * y;
    png_read_image(png, state->rows);
    png_read_end(png, NULL);   // the chunks after the image data
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

// png_read: grey (with or without alpha) as 1 channel, colour as 3. Pixel values are read as
// stored: 8-bit as they are, 16-bit scaled to 8 bits (v / 257, rounded), no gamma applied
// whatever a gAMA chunk says; alpha (a channel, or a tRNS chunk) is composited on black with the
// stored values, v * a / 255 rounded.
uint8_t *png_read(const char *path, int *width, int *height, int *channels, char *err, size_t errlen) {
    if (png_check_signature(path, err, errlen) != 0 || png_scan_chunks(path, err, errlen) != 0) return NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        set_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    PngReadState state;
    memset(&state, 0, sizeof state);
    uint32_t w = 0, h = 0;
    int file_channels = 0;
    bool colour = false, palette = false, too_big = false;
    int rc = decode_png_samples(fp, &state, &w, &h, &file_channels, &colour, &palette, &too_big);
    fclose(fp);
    free(state.rows);
    if (rc != 0) {   // (libpng's reason for "Invalid IHDR data" and the like came as a warning first)
        set_error(err, errlen, "%s: %s: %s%s%s%s", path, state.decoding ? "cannot decode" : "cannot read as PNG",
                  state.error.message, state.last_warning[0] ? " (libpng: " : "", state.last_warning,
                  state.last_warning[0] ? ")" : "");
        free(state.decoded);
        return NULL;
    }
    if (too_big) {
        set_error(err, errlen, "%s: a %u x %u image holds more values than cuvae takes (%d per image)", path, w, h,
                  1 << 24);
        return NULL;
    }
    if (state.damage_warning[0]) {
        set_error(err, errlen, "%s: damaged %s (libpng: %s)", path,
                  strncmp(state.damage_warning, "IDAT", 4) == 0 ? "image data" : "chunk", state.damage_warning);
        free(state.decoded);
        return NULL;
    }
    // (after the size check: the indices are decoded once more, H x W bytes)
    if (palette && png_check_palette_indices(path, err, errlen) != 0) {
        free(state.decoded);
        return NULL;
    }
    const int out_channels = colour ? 3 : 1;
    const bool has_alpha = file_channels == out_channels + 1;
    const size_t pixels = (size_t)w * h;
    uint8_t *out = has_alpha ? xmalloc(pixels * (size_t)out_channels) : state.decoded;   // (H, W, C)
    if (has_alpha) {
        for (size_t i = 0; i < pixels; i++) {
            const uint8_t *in = state.decoded + i * (size_t)file_channels;
            const unsigned alpha = in[out_channels];
            for (int c = 0; c < out_channels; c++)
                out[i * (size_t)out_channels + (size_t)c] = (uint8_t)((in[c] * alpha + 127u) / 255u);
        }
        free(state.decoded);
    }
    *width = (int)w;
    *height = (int)h;
    *channels = out_channels;
    return out;
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

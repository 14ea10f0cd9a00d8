// test_image.c: tests for src/image.c: PNG files (gray and RGB) decoded back with
// libpng's simplified reader match exactly, writes are atomic, bad arguments and
// unwritable paths fail cleanly, png_read reads values as stored (16-bit, interlaced,
// alpha, gAMA), and image_grid lays tiles out as documented.
#include "cuvae/image.h"
#include "cuvae/common.h"
#include "test.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char test_dir[256];

static void test_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", test_dir, name);
}

// Number of entries in dir whose name contains ".tmp." (leftover temp files).
static int count_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL)
        if (strstr(entry->d_name, ".tmp.")) count++;
    closedir(d);
    return count;
}

// Decodes a PNG with libpng's simplified API into 8-bit gray (channels 1) or
// RGB (channels 3). Returns a malloc'd buffer or NULL; *file_format gets the
// format flags stored in the file.
static uint8_t *read_png(const char *path, int channels, int *width, int *height,
                         png_uint_32 *file_format) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path)) return NULL;
    *file_format = image.format;
    image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    uint8_t *pixels = malloc(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, NULL, pixels, 0, NULL)) {
        png_image_free(&image);
        free(pixels);
        return NULL;
    }
    *width = (int)image.width;
    *height = (int)image.height;
    return pixels;
}

// ----------------------------------------------------------------------------
// png_write

static void test_gray_png_round_trip(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "gray.png");
    int width = 37, height = 23;
    uint8_t *pixels = malloc((size_t)width * height);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) pixels[y * width + x] = (uint8_t)(x * 7 + y * 13);
    pixels[0] = 0;
    pixels[1] = 255;
    CHECK(png_write(path, pixels, width, height, 1, err, sizeof err) == 0, "write: %s", err);

    FILE *fp = fopen(path, "rb");
    uint8_t signature[8] = {0};
    if (fp) {
        CHECK(fread(signature, 1, 8, fp) == 8, "short file");
        fclose(fp);
    }
    CHECK(png_sig_cmp(signature, 0, 8) == 0, "missing PNG signature");

    int w = 0, h = 0;
    png_uint_32 format = 0;
    uint8_t *decoded = read_png(path, 1, &w, &h, &format);
    CHECK(decoded != NULL, "libpng could not read %s", path);
    if (decoded) {
        CHECK(w == width && h == height, "size %dx%d", w, h);
        CHECK((format & PNG_FORMAT_FLAG_COLOR) == 0 && (format & PNG_FORMAT_FLAG_ALPHA) == 0,
              "file should be plain gray, format 0x%x", (unsigned)format);
        CHECK(memcmp(decoded, pixels, (size_t)width * height) == 0, "gray pixels differ");
    }
    free(decoded);
    free(pixels);
}

static void test_rgb_png_round_trip(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "rgb.png");
    int width = 19, height = 11;
    uint8_t *pixels = malloc((size_t)width * height * 3);
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++) {
            uint8_t *p = pixels + (y * width + x) * 3;
            p[0] = (uint8_t)(x * 13);
            p[1] = (uint8_t)(y * 23);
            p[2] = (uint8_t)(255 - x * y);
        }
    CHECK(png_write(path, pixels, width, height, 3, err, sizeof err) == 0, "write: %s", err);
    int w = 0, h = 0;
    png_uint_32 format = 0;
    uint8_t *decoded = read_png(path, 3, &w, &h, &format);
    CHECK(decoded != NULL, "libpng could not read %s", path);
    if (decoded) {
        CHECK(w == width && h == height, "size %dx%d", w, h);
        CHECK((format & PNG_FORMAT_FLAG_COLOR) != 0 && (format & PNG_FORMAT_FLAG_ALPHA) == 0,
              "file should be RGB without alpha, format 0x%x", (unsigned)format);
        CHECK(memcmp(decoded, pixels, (size_t)width * height * 3) == 0, "RGB pixels differ");
    }
    free(decoded);
    free(pixels);
}

static void test_png_overwrite(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "overwrite.png");
    uint8_t big[64 * 64];
    memset(big, 100, sizeof big);
    uint8_t small[2 * 3] = {1, 2, 3, 4, 5, 6};
    CHECK(png_write(path, big, 64, 64, 1, err, sizeof err) == 0, "first write: %s", err);
    CHECK(png_write(path, small, 3, 2, 1, err, sizeof err) == 0, "second write: %s", err);
    CHECK(count_temp_files(test_dir) == 0, "no temp files should be left");
    int w = 0, h = 0;
    png_uint_32 format = 0;
    uint8_t *decoded = read_png(path, 1, &w, &h, &format);
    CHECK(decoded && w == 3 && h == 2 && memcmp(decoded, small, 6) == 0,
          "the file should hold the second image");
    free(decoded);
}

static void test_png_errors(void) {
    char dir[400], path[512], err[512];
    uint8_t pixels[12] = {0};

    test_path(dir, sizeof dir, "no_such_dir");
    snprintf(path, sizeof path, "%s/out.png", dir);
    strcpy(err, "");
    CHECK(png_write(path, pixels, 2, 2, 3, err, sizeof err) == -1, "missing directory should fail");
    CHECK(strstr(err, path) != NULL, "error should name the path: '%s'", err);
    CHECK(strchr(err, '\n') == NULL, "error should be one line");
    CHECK(access(dir, F_OK) != 0, "directory should not be created");

    // destination is a directory: encoding succeeds, the rename fails
    test_path(path, sizeof path, "a_directory.png");
    mkdir(path, 0755);
    strcpy(err, "");
    CHECK(png_write(path, pixels, 2, 2, 1, err, sizeof err) == -1, "writing over a directory should fail");
    CHECK(strstr(err, path) != NULL, "error should name the path: '%s'", err);
    CHECK(count_temp_files(test_dir) == 0, "no temp file should be left after a failed rename");
    rmdir(path);

    test_path(path, sizeof path, "bad_args.png");
    strcpy(err, "");
    CHECK(png_write(path, pixels, 2, 2, 2, err, sizeof err) == -1, "2 channels should be rejected");
    CHECK(strstr(err, path) && strstr(err, "channel"), "channel error: '%s'", err);
    CHECK(png_write(path, pixels, 0, 2, 1, err, sizeof err) == -1, "zero width should be rejected");
    CHECK(png_write(path, pixels, 2, -1, 1, err, sizeof err) == -1, "negative height should be rejected");
    CHECK(png_write(path, NULL, 2, 2, 1, err, sizeof err) == -1, "NULL pixels should be rejected");
    CHECK(access(path, F_OK) != 0, "rejected writes should create no file");

    // libpng itself refuses widths above its default limit of 1,000,000: the
    // error comes through the setjmp path and the temp file is removed
    int wide = 1100000;
    uint8_t *row = calloc((size_t)wide, 1);
    test_path(path, sizeof path, "too_wide.png");
    strcpy(err, "");
    CHECK(png_write(path, row, wide, 1, 1, err, sizeof err) == -1, "libpng should reject the width");
    CHECK(strstr(err, path) && strstr(err, "PNG"), "libpng error: '%s'", err);
    CHECK(access(path, F_OK) != 0 && count_temp_files(test_dir) == 0,
          "a failed encode should leave no file");
    free(row);
}

// A pixel with alpha is composited on black (the alpha channel dropped): an alpha-0 pixel reads
// 0 whatever the heap held before (libpng composites onto the output buffer when given no
// background), an opaque one as stored. The heap is dirtied first with a freed buffer of the
// same size, which the read's allocation is likely to reuse.
static void test_png_alpha_composited_on_black(void) {
    enum { W = 64, H = 64 };
    uint8_t *rgba = calloc((size_t)W * H * 4, 1);
    for (int i = 0; i < W * H; i++) {
        rgba[4 * i + 0] = 200; rgba[4 * i + 1] = 100; rgba[4 * i + 2] = 50;
        rgba[4 * i + 3] = (i % 2) ? 255 : 0;   // odd pixels opaque, even ones transparent
    }
    char path[512], err[512] = "";
    test_path(path, sizeof path, "rgba.png");
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    image.width = W;
    image.height = H;
    image.format = PNG_FORMAT_RGBA;
    CHECK(png_image_write_to_file(&image, path, 0, rgba, 0, NULL), "writing the RGBA file: %s", image.message);
    for (int attempt = 0; attempt < 3; attempt++) {
        uint8_t *dirty = malloc((size_t)W * H * 3);
        memset(dirty, 0xAA, (size_t)W * H * 3);
        free(dirty);
        int w = 0, h = 0, channels = 0;
        uint8_t *pixels = png_read(path, &w, &h, &channels, err, sizeof err);
        CHECK(pixels && w == W && h == H && channels == 3, "read: %s", err);
        int wrong = 0;
        for (int i = 0; pixels && i < W * H; i++) {
            const uint8_t *p = pixels + 3 * i;
            if (i % 2) wrong += !(p[0] == 200 && p[1] == 100 && p[2] == 50);
            else wrong += !(p[0] == 0 && p[1] == 0 && p[2] == 0);
        }
        CHECK(wrong == 0, "attempt %d: %d pixels not composited on black / not as stored", attempt, wrong);
        free(pixels);
    }
    free(rgba);
}

// What a test PNG carries besides its samples: a gAMA chunk (gamma > 0), a tRNS colour (grey or
// RGB) or palette alphas, a palette.
typedef struct {
    double gamma;
    const png_color_16 *trns_colour;
    const png_color *palette;
    int n_palette;
    const png_byte *alphas;
    int n_alphas;
} PngExtras;

// Writes a PNG with libpng's low-level API: samples (height, width, channels) of bit_depth 8 or
// 16 (16-bit samples as host uint16_t), any colour type, interlaced (Adam7) or not, with the
// extras given. 0 on success.
static int write_test_png(const char *path, const void *samples, int width, int height, int color_type, int bit_depth,
                          bool interlaced, PngExtras extras) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(fp);
        return -1;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth, color_type,
                 interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (extras.gamma > 0) png_set_gAMA(png, info, extras.gamma);
    if (extras.palette) png_set_PLTE(png, info, extras.palette, extras.n_palette);
    if (extras.trns_colour || extras.alphas)
        png_set_tRNS(png, info, extras.alphas, extras.n_alphas, extras.trns_colour);
    png_write_info(png, info);
    if (bit_depth == 16) png_set_swap(png);   // host little-endian uint16_t -> PNG's big-endian
    const int channels = png_get_channels(png, info);
    const size_t row_bytes = (size_t)width * (size_t)channels * (size_t)(bit_depth / 8);
    png_bytep *rows = malloc(sizeof *rows * (size_t)height);
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)samples + row_bytes * (size_t)y;
    png_write_image(png, rows);   // interlaced: libpng writes the seven passes
    png_write_end(png, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    return fclose(fp) == 0 ? 0 : -1;
}

// 16-bit files, plain and Adam7-interlaced, grey and RGB, read as round(v / 257) at every
// pixel (every one of the 65,536 values appears): libpng 1.6.39's simplified API, which cuvae
// used before, put some rows of a 16-bit interlaced file in the wrong place.
static void test_png_16_bit_as_stored(void) {
    enum { W = 256, H = 256 };
    uint16_t *grey = malloc(sizeof *grey * W * H), *rgb = malloc(sizeof *rgb * W * H * 3);
    for (int i = 0; i < W * H; i++) {
        grey[i] = (uint16_t)((i * 40503u) & 0xFFFF);   // a permutation of 0..65535
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = (uint16_t)((i * 40503u + 7919u * (unsigned)c) & 0xFFFF);
    }
    for (int interlaced = 0; interlaced <= 1; interlaced++)
        for (int colour = 0; colour <= 1; colour++) {
            char path[512], err[512] = "";
            snprintf(path, sizeof path, "%s/d16_%d_%d.png", test_dir, interlaced, colour);
            CHECK(write_test_png(path, colour ? (void *)rgb : (void *)grey, W, H,
                                 colour ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, 16, interlaced, (PngExtras){0}) == 0,
                  "writing %s", path);
            int w = 0, h = 0, channels = 0;
            uint8_t *pixels = png_read(path, &w, &h, &channels, err, sizeof err);
            CHECK(pixels && w == W && h == H && channels == (colour ? 3 : 1), "read %s: %s", path, err);
            int wrong = 0;
            const uint16_t *want = colour ? rgb : grey;
            for (int i = 0; pixels && i < W * H * channels; i++)
                wrong += pixels[i] != (uint8_t)lround(want[i] / 257.0);
            CHECK(wrong == 0, "%s%s 16-bit: %d of %d values not round(v / 257)", interlaced ? "interlaced " : "",
                  colour ? "RGB" : "grey", wrong, W * H * channels);
            free(pixels);
        }
    free(grey);
    free(rgb);
}

// Alpha is composited on black with the stored values (v * a / 255, rounded), not in linear
// light (libpng's simplified API read grey 255 at alpha 128 as 188); so is a grey tRNS value
// (alpha 0 where the pixel equals it). A gAMA chunk changes nothing (values as stored). 8-bit
// interlaced files read as plain ones.
static void test_png_alpha_and_gamma_as_stored(void) {
    enum { W = 33, H = 17 };
    uint8_t ga[W * H * 2], rgba[W * H * 4], grey[W * H];
    for (int i = 0; i < W * H; i++) {
        ga[2 * i] = (uint8_t)(i * 37 % 256);
        ga[2 * i + 1] = (uint8_t)(i * 101 % 256);
        for (int c = 0; c < 4; c++) rgba[4 * i + c] = (uint8_t)((i * 53 + c * 71) % 256);
        grey[i] = (uint8_t)(i * 29 % 256);
    }
    char path[512], err[512] = "";
    int w, h, channels, wrong;
    for (int interlaced = 0; interlaced <= 1; interlaced++) {
        snprintf(path, sizeof path, "%s/ga_%d.png", test_dir, interlaced);
        CHECK(write_test_png(path, ga, W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, interlaced, (PngExtras){0}) == 0, "writing %s", path);
        uint8_t *p = png_read(path, &w, &h, &channels, err, sizeof err);
        CHECK(p && w == W && h == H && channels == 1, "read %s: %s", path, err);
        wrong = 0;
        for (int i = 0; p && i < W * H; i++) wrong += p[i] != (ga[2 * i] * ga[2 * i + 1] + 127) / 255;
        CHECK(wrong == 0, "grey + alpha (interlaced %d): %d pixels not v * a / 255", interlaced, wrong);
        free(p);

        snprintf(path, sizeof path, "%s/rgba_%d.png", test_dir, interlaced);
        CHECK(write_test_png(path, rgba, W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, interlaced, (PngExtras){0}) == 0, "writing %s", path);
        p = png_read(path, &w, &h, &channels, err, sizeof err);
        CHECK(p && w == W && h == H && channels == 3, "read %s: %s", path, err);
        wrong = 0;
        for (int i = 0; p && i < W * H; i++)
            for (int c = 0; c < 3; c++) wrong += p[3 * i + c] != (rgba[4 * i + c] * rgba[4 * i + 3] + 127) / 255;
        CHECK(wrong == 0, "RGBA (interlaced %d): %d values not v * a / 255", interlaced, wrong);
        free(p);

        // a far-from-sRGB gAMA (linear light) and a tRNS grey value of 58 (= grey[2])
        snprintf(path, sizeof path, "%s/grey_gamma_trns_%d.png", test_dir, interlaced);
        const png_color_16 key = {.gray = 58};
        CHECK(write_test_png(path, grey, W, H, PNG_COLOR_TYPE_GRAY, 8, interlaced,
                             (PngExtras){.gamma = 1.0, .trns_colour = &key}) == 0, "writing %s", path);
        p = png_read(path, &w, &h, &channels, err, sizeof err);
        CHECK(p && w == W && h == H && channels == 1, "read %s: %s", path, err);
        wrong = 0;
        int transparent = 0;
        for (int i = 0; p && i < W * H; i++) {
            transparent += grey[i] == 58;
            wrong += p[i] != (grey[i] == 58 ? 0 : grey[i]);
        }
        CHECK(transparent > 0 && wrong == 0, "grey with gAMA 1.0 and tRNS (interlaced %d): %d pixels not as stored "
              "(%d transparent)", interlaced, wrong, transparent);
        free(p);
    }
}

// A palette's tRNS alphas (partial: 0, 128, 255, and entries past the tRNS list opaque) and an
// RGB file's tRNS colour are composited on black with the stored values, as an alpha channel.
static void test_png_trns_palette_and_rgb(void) {
    enum { W = 16, H = 4 };
    char path[512], err[512] = "";
    snprintf(path, sizeof path, "%s/palette_trns.png", test_dir);
    png_color palette[4] = {{200, 100, 50}, {10, 20, 30}, {255, 255, 255}, {90, 180, 45}};
    png_byte alphas[3] = {0, 128, 255};   // entry 3 has none: opaque
    uint8_t indices[W * H];
    for (int i = 0; i < W * H; i++) indices[i] = (uint8_t)(i % 4);
    CHECK(write_test_png(path, indices, W, H, PNG_COLOR_TYPE_PALETTE, 8, false,
                         (PngExtras){.palette = palette, .n_palette = 4, .alphas = alphas, .n_alphas = 3}) == 0,
          "writing %s", path);
    int w = 0, h = 0, channels = 0;
    uint8_t *p = png_read(path, &w, &h, &channels, err, sizeof err);
    CHECK(p && w == W && h == H && channels == 3, "read %s: %s", path, err);
    int wrong = 0;
    for (int i = 0; p && i < W * H; i++) {
        const int k = indices[i], alpha = k < 3 ? alphas[k] : 255;
        const int want[3] = {(palette[k].red * alpha + 127) / 255, (palette[k].green * alpha + 127) / 255,
                             (palette[k].blue * alpha + 127) / 255};
        for (int c = 0; c < 3; c++) wrong += p[3 * i + c] != want[c];
    }
    CHECK(wrong == 0, "palette with partial tRNS: %d values not v * a / 255", wrong);
    free(p);

    uint8_t rgb[W * H * 3];   // every 3rd pixel is the tRNS colour (10, 20, 30): transparent
    for (int i = 0; i < W * H; i++)
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = (uint8_t)(i % 3 == 0 ? 10 * (c + 1) : (i * 7 + c * 40) % 256);
    snprintf(path, sizeof path, "%s/rgb_trns.png", test_dir);
    const png_color_16 key = {.red = 10, .green = 20, .blue = 30};
    CHECK(write_test_png(path, rgb, W, H, PNG_COLOR_TYPE_RGB, 8, false, (PngExtras){.trns_colour = &key}) == 0,
          "writing %s", path);
    p = png_read(path, &w, &h, &channels, err, sizeof err);
    CHECK(p && w == W && h == H && channels == 3, "read %s: %s", path, err);
    wrong = 0;
    int transparent = 0;
    for (int i = 0; p && i < W * H; i++) {
        const bool key_colour = rgb[3 * i] == 10 && rgb[3 * i + 1] == 20 && rgb[3 * i + 2] == 30;
        transparent += key_colour;
        for (int c = 0; c < 3; c++) wrong += p[3 * i + c] != (key_colour ? 0 : rgb[3 * i + c]);
    }
    CHECK(transparent > 0 && wrong == 0, "RGB with a tRNS colour: %d values wrong (%d transparent)", wrong,
          transparent);
    free(p);
}

// ----------------------------------------------------------------------------
// image_grid

static int pixel_at(const uint8_t *grid, int width, int x, int y) {
    return grid[y * width + x];
}

static float byte_to_unit(int b) {
    return (float)b / 255.0f;
}

// 5 images of 2x3 in 3 columns, pad 1 of value 200:
//   width  = 3 * 3 + 4 * 1 = 13, height = 2 * 2 + 3 * 1 = 7
//   image i, pixel (y, x) has byte value i * 6 + y * 3 + x + 1 (1..30)
static void test_grid_layout(void) {
    int n = 5, rows = 2, cols = 3;
    float images[5 * 6];
    for (int i = 0; i < n; i++)
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++)
                images[i * 6 + y * 3 + x] = byte_to_unit(i * 6 + y * 3 + x + 1);
    int width = 0, height = 0;
    uint8_t *grid = image_grid(images, n, rows, cols, 3, 1, 200, &width, &height);
    CHECK(grid != NULL, "grid is NULL");
    if (!grid) return;
    CHECK(width == 13 && height == 7, "grid size %dx%d, want 13x7", width, height);
    if (width != 13 || height != 7) {
        free(grid);
        return;
    }
    CHECK(pixel_at(grid, width, 0, 0) == 200, "top-left corner is padding");
    CHECK(pixel_at(grid, width, 1, 1) == 1, "image 0 top-left at (1,1)");
    CHECK(pixel_at(grid, width, 3, 2) == 6, "image 0 bottom-right at (3,2)");
    CHECK(pixel_at(grid, width, 4, 1) == 200, "column gap at x=4");
    CHECK(pixel_at(grid, width, 5, 1) == 7, "image 1 top-left at (5,1)");
    CHECK(pixel_at(grid, width, 9, 1) == 13, "image 2 top-left at (9,1)");
    CHECK(pixel_at(grid, width, 11, 2) == 18, "image 2 bottom-right at (11,2)");
    CHECK(pixel_at(grid, width, 1, 3) == 200, "row gap at y=3");
    CHECK(pixel_at(grid, width, 1, 4) == 19, "image 3 top-left at (1,4)");
    CHECK(pixel_at(grid, width, 7, 5) == 30, "image 4 bottom-right at (7,5)");
    for (int y = 4; y <= 5; y++)
        for (int x = 9; x <= 11; x++)
            CHECK(pixel_at(grid, width, x, y) == 200, "unused tile at (%d,%d) is padding", x, y);
    for (int x = 0; x < width; x++)
        CHECK(pixel_at(grid, width, x, 0) == 200 && pixel_at(grid, width, x, height - 1) == 200,
              "top/bottom border at x=%d", x);
    for (int y = 0; y < height; y++)
        CHECK(pixel_at(grid, width, 0, y) == 200 && pixel_at(grid, width, width - 1, y) == 200,
              "left/right border at y=%d", y);
    // every pixel: padding exactly where no image lands
    int image_pixels = 0, pad_pixels = 0;
    for (int i = 0; i < width * height; i++) {
        if (grid[i] == 200) pad_pixels++;
        else if (grid[i] >= 1 && grid[i] <= 30) image_pixels++;
    }
    CHECK(image_pixels == 30 && pad_pixels == 13 * 7 - 30, "%d image and %d padding pixels",
          image_pixels, pad_pixels);
    free(grid);
}

static void test_grid_clamping_and_rounding(void) {
    float values[8] = {-0.5f, 0.0f, 0.25f, 0.5f, 1.0f, 1.5f, NAN, 0.1f};
    uint8_t expected[8] = {0, 0, 64, 128, 255, 255, 0, 26};   // 63.75->64, 127.5->128, 25.5->26
    int width = 0, height = 0;
    uint8_t *grid = image_grid(values, 1, 1, 8, 4, 0, 9, &width, &height);
    CHECK(grid && width == 8 && height == 1, "grid size %dx%d", width, height);
    if (grid && width == 8 && height == 1)
        for (int i = 0; i < 8; i++)
            CHECK(grid[i] == expected[i], "value %g -> %d, want %d", values[i], grid[i], expected[i]);
    free(grid);
}

static void test_grid_fewer_images_than_columns(void) {
    float images[2] = {0.0f, 1.0f};
    int width = 0, height = 0;
    uint8_t *grid = image_grid(images, 2, 1, 1, 8, 2, 50, &width, &height);
    // two 1x1 tiles in min(8, 2) = 2 columns: width 2 * (1 + 2) + 2 = 8, height 1 * 3 + 2 = 5
    CHECK(grid && width == 8 && height == 5, "grid size %dx%d, want 8x5", width, height);
    if (grid && width == 8 && height == 5) {
        CHECK(grid[2 * 8 + 2] == 0 && grid[2 * 8 + 5] == 255, "tile values");
        CHECK(grid[2 * 8 + 3] == 50 && grid[0] == 50 && grid[4 * 8 + 7] == 50, "padding values");
    }
    free(grid);
}

static void test_grid_invalid_arguments(void) {
    float images[4] = {0};
    int width = 5, height = 5;
    CHECK(image_grid(images, 0, 2, 2, 1, 0, 0, &width, &height) == NULL, "n = 0");
    CHECK(width == 0 && height == 0, "sizes should be 0 on failure");
    CHECK(image_grid(images, 1, 2, 2, 0, 0, 0, &width, &height) == NULL, "grid_cols = 0");
    CHECK(image_grid(images, 1, 2, 2, 1, -1, 0, &width, &height) == NULL, "negative pad");
    CHECK(image_grid(NULL, 1, 2, 2, 1, 0, 0, &width, &height) == NULL, "NULL images");
}

static void test_grid_to_png(void) {
    char path[512], err[512] = "";
    test_path(path, sizeof path, "grid.png");
    float images[4 * 9];
    for (int i = 0; i < 4 * 9; i++) images[i] = (float)(i % 9) / 8.0f;
    int width = 0, height = 0;
    uint8_t *grid = image_grid(images, 4, 3, 3, 2, 1, 128, &width, &height);
    CHECK(grid && width == 9 && height == 9, "grid size %dx%d", width, height);
    if (!grid) return;
    CHECK(png_write(path, grid, width, height, 1, err, sizeof err) == 0, "write: %s", err);
    int w = 0, h = 0;
    png_uint_32 format = 0;
    uint8_t *decoded = read_png(path, 1, &w, &h, &format);
    CHECK(decoded && w == width && h == height && memcmp(decoded, grid, (size_t)w * h) == 0,
          "grid PNG should decode to the grid");
    free(decoded);
    free(grid);
}

// ----------------------------------------------------------------------------

// An RGB grid reads each image's three planes (C, rows, cols), as the model's outputs are laid
// out, and writes pixels (R, G, B) interleaved: pixel (y, x) of image i is plane 0, 1, 2 at
// (y, x). Each value here names its image, plane, row and column, so a plane read as
// interleaved (or a row for a column) shows; the padding stays pad_value.
static void test_grid_rgb_planes(void) {
    enum { N = 2, C = 3, R = 2, W = 3, PAD = 1 };
    float images[N * C * R * W];
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < R; y++)
                for (int x = 0; x < W; x++)   // the byte i*100 + c*30 + y*10 + x, as a unit value
                    images[((i * C + c) * R + y) * W + x] = (float)(i * 100 + c * 30 + y * 10 + x) / 255.0f;
    int width = 0, height = 0;
    uint8_t *grid = image_grid_channels(images, N, C, R, W, 2, PAD, 7, &width, &height);
    CHECK(grid != NULL && width == 2 * (W + PAD) + PAD && height == R + 2 * PAD, "grid %dx%d", width, height);
    if (!grid) return;
    int wrong = 0, padding_wrong = 0;
    for (int gy = 0; gy < height; gy++)
        for (int gx = 0; gx < width; gx++) {
            const int tile = (gx - PAD) / (W + PAD), x = (gx - PAD) % (W + PAD), y = gy - PAD;
            const bool inside = gx >= PAD && y >= 0 && y < R && x < W && tile < N;
            for (int c = 0; c < C; c++) {
                const uint8_t got = grid[((size_t)gy * width + gx) * C + c];
                if (inside) wrong += got != tile * 100 + c * 30 + y * 10 + x;
                else padding_wrong += got != 7;
            }
        }
    CHECK(wrong == 0, "%d channel values not their image's plane at (y, x)", wrong);
    CHECK(padding_wrong == 0, "%d padding values not pad_value", padding_wrong);
    free(grid);
}

int main(void) {
    snprintf(test_dir, sizeof test_dir, "/tmp/cuvae_test_image_XXXXXX");
    if (!mkdtemp(test_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_run("gray_png_round_trip", test_gray_png_round_trip);
    test_run("rgb_png_round_trip", test_rgb_png_round_trip);
    test_run("png_overwrite", test_png_overwrite);
    test_run("png_errors", test_png_errors);
    test_run("png_alpha_composited_on_black", test_png_alpha_composited_on_black);
    test_run("png_16_bit_as_stored", test_png_16_bit_as_stored);
    test_run("png_alpha_and_gamma_as_stored", test_png_alpha_and_gamma_as_stored);
    test_run("png_trns_palette_and_rgb", test_png_trns_palette_and_rgb);
    test_run("grid_layout", test_grid_layout);
    test_run("grid_clamping_and_rounding", test_grid_clamping_and_rounding);
    test_run("grid_fewer_images_than_columns", test_grid_fewer_images_than_columns);
    test_run("grid_invalid_arguments", test_grid_invalid_arguments);
    test_run("grid_to_png", test_grid_to_png);
    test_run("grid_rgb_planes", test_grid_rgb_planes);
    test_remove_tree(test_dir);
    return test_finish("test_image");
}

// test_plot.c: tests for src/plot.c: every figure (scatter, histograms, lines, image) comes out as a
// PNG of the documented size that is not blank; the scatter paints each class in its own palette
// colour; the image is drawn upright; quotes in titles are harmless; failures (missing directory,
// gnuplot errors, gnuplot missing) return -1 with a useful message and leave no temporary files.
// Skipped when gnuplot (gnuplot-nox) is not installed.
#include "cuvae/plot.h"
#include "cuvae/common.h"
#include "test.h"

#include <dirent.h>
#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char test_dir[256];  // root of this run's files
static char tmp_dir[512];   // $TMPDIR for the plot functions (must stay empty)
static char out_dir[512];   // where the PNGs go

static void out_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", out_dir, name);
}

// Number of directory entries other than . and .., skipping names ending in ".png".
static int count_non_png(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        size_t len = strlen(name);
        if (len > 4 && strcmp(name + len - 4, ".png") == 0) continue;
        count++;
    }
    closedir(d);
    return count;
}

static bool has_png_signature(const char *path) {
    static const uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t got = fread(head, 1, 8, f);
    fclose(f);
    return got == 8 && memcmp(head, signature, 8) == 0;
}

// A decoded PNG as 8-bit RGB.
typedef struct {
    int width, height;
    uint8_t *rgb;
} Picture;

static bool read_picture(const char *path, Picture *pic) {
    png_image image;
    memset(&image, 0, sizeof image);
    image.version = PNG_IMAGE_VERSION;
    pic->rgb = NULL;
    if (!png_image_begin_read_from_file(&image, path)) return false;
    image.format = PNG_FORMAT_RGB;
    pic->rgb = malloc(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, NULL, pic->rgb, 0, NULL)) {
        png_image_free(&image);
        free(pic->rgb);
        pic->rgb = NULL;
        return false;
    }
    pic->width = (int)image.width;
    pic->height = (int)image.height;
    return true;
}

static const uint8_t *pixel(const Picture *pic, int x, int y) {
    return pic->rgb + 3 * ((size_t)y * pic->width + x);
}

static int count_distinct_colours(const Picture *pic) {
    uint8_t *seen = calloc(1 << 21, 1);  // one bit per 24-bit colour
    int count = 0;
    for (int i = 0; i < pic->width * pic->height; i++) {
        const uint8_t *p = pic->rgb + 3 * (size_t)i;
        uint32_t key = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
        if (!(seen[key >> 3] & (1 << (key & 7)))) {
            seen[key >> 3] |= (uint8_t)(1 << (key & 7));
            count++;
        }
    }
    free(seen);
    return count;
}

// Pixels in the box [x0, x1) x [y0, y1) (fractions of the size) with some channel below 200.
static int count_dark(const Picture *pic, double x0, double x1, double y0, double y1) {
    int count = 0;
    for (int y = (int)(y0 * pic->height); y < (int)(y1 * pic->height); y++)
        for (int x = (int)(x0 * pic->width); x < (int)(x1 * pic->width); x++) {
            const uint8_t *p = pixel(pic, x, y);
            if (p[0] < 200 || p[1] < 200 || p[2] < 200) count++;
        }
    return count;
}

// Pixels in the box that look like palette colour k laid over white with some opacity:
// p = 255 - t * (255 - c) for one t in [0.3, 1.05], within a few levels per channel.
static int count_palette(const Picture *pic, int k, double x0, double x1, double y0, double y1) {
    const uint8_t *c = plot_palette[k];
    double cc = 0.0;
    for (int ch = 0; ch < 3; ch++) cc += (255.0 - c[ch]) * (255.0 - c[ch]);
    int count = 0;
    for (int y = (int)(y0 * pic->height); y < (int)(y1 * pic->height); y++)
        for (int x = (int)(x0 * pic->width); x < (int)(x1 * pic->width); x++) {
            const uint8_t *p = pixel(pic, x, y);
            double pc = 0.0;
            for (int ch = 0; ch < 3; ch++) pc += (255.0 - p[ch]) * (255.0 - c[ch]);
            double t = pc / cc;
            if (t < 0.3 || t > 1.05) continue;
            int ok = 1;
            for (int ch = 0; ch < 3; ch++)
                if (fabs(p[ch] - (255.0 - t * (255.0 - c[ch]))) > 14.0) ok = 0;
            count += ok;
        }
    return count;
}

// Checks a written figure: PNG signature, the expected size, not blank (many colours, dark
// pixels in the plot area), no temporary files left. Returns the decoded picture (caller frees).
static Picture check_figure(const char *path, int width, int height) {
    Picture pic = {0, 0, NULL};
    CHECK(has_png_signature(path), "%s: no PNG signature", path);
    CHECK(read_picture(path, &pic), "%s: libpng cannot read it", path);
    if (!pic.rgb) return pic;
    CHECK(pic.width == width && pic.height == height, "%s: size %dx%d, expected %dx%d", path, pic.width,
          pic.height, width, height);
    int distinct = count_distinct_colours(&pic);
    CHECK(distinct > 10, "%s: only %d distinct colours", path, distinct);
    int dark = count_dark(&pic, 0.25, 0.75, 0.25, 0.75);
    CHECK(dark > 50, "%s: plot area nearly blank (%d non-white pixels)", path, dark);
    CHECK(count_non_png(tmp_dir) == 0, "temporary files left in %s", tmp_dir);
    CHECK(count_non_png(out_dir) == 0, "temporary files left in %s", out_dir);
    return pic;
}

// Deterministic 2-D blobs: point i belongs to class i % n_classes, centred at (class, class).
static void make_blobs(float *xy, uint8_t *labels, int n, int n_classes) {
    uint32_t state = 12345;
    for (int i = 0; i < n; i++) {
        int k = i % n_classes;
        labels[i] = (uint8_t)k;
        for (int d = 0; d < 2; d++) {
            state = state * 1664525u + 1013904223u;
            float u = (float)(state >> 8) / (float)(1 << 24) - 0.5f;
            xy[2 * i + d] = 3.0f * (float)k + 1.2f * u;
        }
    }
}

// ----------------------------------------------------------------------------

static void test_scatter_three_classes(void) {
    char path[600], err[512] = "";
    out_path(path, sizeof path, "scatter.png");
    enum { N = 600 };
    float xy[2 * N];
    uint8_t labels[N];
    make_blobs(xy, labels, N, 3);
    const char *names[3] = {"zero", "one", "two"};
    int rc = plot_scatter(path, "three blobs", "z1", "z2", xy, labels, N, 3, names, err, sizeof err);
    CHECK(rc == 0, "plot_scatter failed: %s", err);
    if (rc != 0) return;
    Picture pic = check_figure(path, PLOT_WIDTH, PLOT_HEIGHT);
    if (!pic.rgb) return;
    // data area (left of the legend): each class colour present, an unused one absent
    for (int k = 0; k < 3; k++) {
        int count = count_palette(&pic, k, 0.0, 0.8, 0.0, 1.0);
        CHECK(count > 100, "class %d colour: only %d pixels in the data area", k, count);
    }
    int unused = count_palette(&pic, 3, 0.0, 1.0, 0.0, 1.0);
    CHECK(unused == 0, "unused palette colour 3 found on %d pixels", unused);
    // legend on the right, outside the data: a marker of each colour there
    for (int k = 0; k < 3; k++) {
        int count = count_palette(&pic, k, 0.85, 1.0, 0.0, 1.0);
        CHECK(count > 10, "class %d: no legend marker on the right (%d pixels)", k, count);
    }
    free(pic.rgb);
}

static void test_scatter_without_labels(void) {
    char path[600], err[512] = "";
    out_path(path, sizeof path, "scatter_plain.png");
    enum { N = 300 };
    float xy[2 * N];
    uint8_t labels[N];
    make_blobs(xy, labels, N, 2);
    xy[0] = NAN;  // skipped, not an error
    int rc = plot_scatter(path, NULL, NULL, NULL, xy, NULL, N, 0, NULL, err, sizeof err);
    CHECK(rc == 0, "plot_scatter without labels failed: %s", err);
    if (rc != 0) return;
    Picture pic = check_figure(path, PLOT_WIDTH, PLOT_HEIGHT);
    if (!pic.rgb) return;
    CHECK(count_palette(&pic, 0, 0.0, 1.0, 0.0, 1.0) > 100, "points not drawn in palette colour 0");
    CHECK(count_palette(&pic, 1, 0.0, 1.0, 0.0, 1.0) == 0, "a second colour without labels");
    free(pic.rgb);
}

static void test_histograms(void) {
    char path[600], err[512] = "";
    out_path(path, sizeof path, "hist.png");
    enum { N = 2000, DIMS = 7 };
    float *values = malloc(sizeof(float) * N * DIMS);
    uint32_t state = 99;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < DIMS; j++) {
            // sum of 4 uniforms: roughly normal, scaled per dimension
            float s = 0.0f;
            for (int r = 0; r < 4; r++) {
                state = state * 1664525u + 1013904223u;
                s += (float)(state >> 8) / (float)(1 << 24) - 0.5f;
            }
            values[i * DIMS + j] = s * (float)(j + 1) * 0.8f;
        }
    }
    int rc = plot_histograms(path, "latent \"means\"", values, N, DIMS, 5, true, err, sizeof err);
    CHECK(rc == 0, "plot_histograms failed: %s", err);
    if (rc == 0) {
        int w, h;
        plot_histograms_size(5, &w, &h);
        CHECK(w >= 400 && h >= 300, "histogram canvas %dx%d too small for 5 panels", w, h);
        Picture pic = check_figure(path, w, h);
        if (pic.rgb) {
            CHECK(count_palette(&pic, 0, 0.0, 1.0, 0.0, 1.0) > 500, "no histogram bars in palette colour 0");
            CHECK(count_palette(&pic, 3, 0.0, 1.0, 0.0, 1.0) > 100, "no N(0,1) curve in palette colour 3");
            free(pic.rgb);
        }
    }
    // one panel, no overlay: the curve's colour must not appear
    out_path(path, sizeof path, "hist1.png");
    rc = plot_histograms(path, NULL, values, N, DIMS, 1, false, err, sizeof err);
    CHECK(rc == 0, "plot_histograms (1 panel) failed: %s", err);
    if (rc == 0) {
        int w, h;
        plot_histograms_size(1, &w, &h);
        Picture pic = check_figure(path, w, h);
        if (pic.rgb) {
            CHECK(count_palette(&pic, 3, 0.0, 1.0, 0.0, 1.0) == 0, "N(0,1) curve drawn without overlay");
            free(pic.rgb);
        }
    }
    free(values);
}

static void test_lines(void) {
    char path[600], err[512] = "";
    enum { P = 60 };
    double x[P], train[P], test[P];
    for (int i = 0; i < P; i++) {
        x[i] = i + 1;
        train[i] = 100.0 + 120.0 * exp(-i / 8.0);
        test[i] = 105.0 + 110.0 * exp(-i / 9.0);
    }
    test[30] = NAN;  // a gap, not an error
    const double *ys[2] = {train, test};
    const char *names[2] = {"train", "test"};
    for (int log_y = 0; log_y <= 1; log_y++) {
        out_path(path, sizeof path, log_y ? "lines_log.png" : "lines.png");
        int rc = plot_lines(path, "loss", "epoch", "nats", x, ys, names, 2, P, log_y, err, sizeof err);
        CHECK(rc == 0, "plot_lines (log_y %d) failed: %s", log_y, err);
        if (rc != 0) continue;
        Picture pic = check_figure(path, PLOT_WIDTH, PLOT_HEIGHT);
        if (!pic.rgb) continue;
        CHECK(count_palette(&pic, 0, 0.0, 0.85, 0.0, 1.0) > 100, "series 0 not drawn (log_y %d)", log_y);
        CHECK(count_palette(&pic, 1, 0.0, 0.85, 0.0, 1.0) > 100, "series 1 not drawn (log_y %d)", log_y);
        free(pic.rgb);
    }
}

static void test_image(void) {
    char path[600], err[512] = "";
    // 28 x 20 gray: top half white, bottom half black, so the orientation can be checked
    enum { W = 28, H = 20 };
    uint8_t gray[W * H];
    for (int r = 0; r < H; r++)
        for (int c = 0; c < W; c++) gray[r * W + c] = r < H / 2 ? 255 : (uint8_t)(c * 4);
    for (int axes = 0; axes <= 1; axes++) {
        out_path(path, sizeof path, axes ? "image_axes.png" : "image_plain.png");
        int rc = plot_image(path, "manifold", gray, W, H, axes ? "z1" : NULL, -3, 3, axes ? "z2" : NULL, -2, 2,
                            err, sizeof err);
        CHECK(rc == 0, "plot_image (axes %d) failed: %s", axes, err);
        if (rc != 0) continue;
        int cw, ch;
        plot_image_size(W, H, axes, &cw, &ch);
        CHECK(cw >= W * 10 && ch >= H * 10, "small image not enlarged: %dx%d", cw, ch);
        Picture pic = check_figure(path, cw, ch);
        if (!pic.rgb) continue;
        // upright: a point in the image's upper half is white, one in its lower half is dark
        const uint8_t *top = pixel(&pic, cw / 2, (int)(ch * 0.35));
        const uint8_t *bottom = pixel(&pic, cw / 2, (int)(ch * 0.65));
        CHECK(top[0] > 240 && top[1] > 240 && top[2] > 240, "upper half not white (axes %d): %d", axes, top[0]);
        CHECK(bottom[0] < 100, "lower half not dark (axes %d): %d", axes, bottom[0]);
        // gray stays gray
        CHECK(bottom[0] == bottom[1] && bottom[1] == bottom[2], "image pixel not gray");
        free(pic.rgb);
    }
}

static void test_quotes_in_titles(void) {
    char path[600], err[512] = "";
    out_path(path, sizeof path, "quotes.png");
    enum { N = 90 };
    float xy[2 * N];
    uint8_t labels[N];
    make_blobs(xy, labels, N, 3);
    const char *names[3] = {"it's", "\"two\"", "back\\slash"};
    int rc = plot_scatter(path, "it's a \"quoted\" title\\ with 'marks' & {braces} _x^2",
                          "x'label\"", "y\nlabel", xy, labels, N, 3, names, err, sizeof err);
    CHECK(rc == 0, "quotes in titles broke the script: %s", err);
    if (rc == 0) free(check_figure(path, PLOT_WIDTH, PLOT_HEIGHT).rgb);
    double x[3] = {1, 2, 3}, y0[3] = {3, 2, 1};
    const double *ys[1] = {y0};
    const char *line_names[1] = {"''\\'"};
    out_path(path, sizeof path, "quotes_lines.png");
    rc = plot_lines(path, "'", "\"", "\\", x, ys, line_names, 1, 3, false, err, sizeof err);
    CHECK(rc == 0, "quotes in line chart labels: %s", err);
    // a backquoted command in a title is text, not run by gnuplot
    char title[800], marker[700];
    snprintf(marker, sizeof marker, "%s/ran", test_dir);
    snprintf(title, sizeof title, "`touch %s` $HOME @x %%s", marker);
    out_path(path, sizeof path, "backquote.png");
    rc = plot_lines(path, title, "x", "y", x, ys, NULL, 1, 3, false, err, sizeof err);
    CHECK(rc == 0, "backquotes in a title: %s", err);
    CHECK(access(marker, F_OK) != 0, "the backquoted command in the title was run");
}

static void test_missing_directory(void) {
    char path[600], err[512] = "";
    snprintf(path, sizeof path, "%s/no/such/dir/figure.png", test_dir);
    enum { N = 30 };
    float xy[2 * N];
    uint8_t labels[N];
    make_blobs(xy, labels, N, 2);
    int rc = plot_scatter(path, "t", "x", "y", xy, labels, N, 2, NULL, err, sizeof err);
    CHECK(rc == -1, "writing into a missing directory returned %d", rc);
    CHECK(strstr(err, path) != NULL, "error does not name the path: %s", err);
    CHECK(strchr(err, '\n') == NULL, "error is not one line: %s", err);
    uint8_t gray[4] = {0, 64, 128, 255};
    err[0] = '\0';
    rc = plot_image(path, "t", gray, 2, 2, NULL, 0, 0, NULL, 0, 0, err, sizeof err);
    CHECK(rc == -1 && strstr(err, path) != NULL, "plot_image into a missing directory: %d %s", rc, err);
    CHECK(count_non_png(tmp_dir) == 0, "temporary files left in %s", tmp_dir);
    CHECK(count_non_png(test_dir) == 2, "unexpected files in %s", test_dir);  // tmp/ and out/
}

static void test_bad_arguments(void) {
    char path[600], err[512] = "";
    out_path(path, sizeof path, "bad.png");
    float xy[4] = {0, 0, 1, 1};
    uint8_t labels[2] = {0, 5};
    CHECK(plot_scatter(path, "t", "x", "y", xy, labels, 2, 3, NULL, err, sizeof err) == -1 &&
              strstr(err, "label 5") != NULL,
          "out-of-range label accepted: %s", err);
    CHECK(plot_scatter(path, "t", "x", "y", xy, labels, 0, 3, NULL, err, sizeof err) == -1, "n = 0 accepted");
    double x[2] = {0, 1}, y0[2] = {-1, 0};
    const double *ys[1] = {y0};
    CHECK(plot_lines(path, "t", "x", "y", x, ys, NULL, 1, 2, true, err, sizeof err) == -1 &&
              strstr(err, "positive") != NULL,
          "log chart of non-positive values accepted: %s", err);
    uint8_t gray[4] = {0};
    CHECK(plot_image(path, "t", gray, 2, 2, "z1", 1, 1, "z2", 0, 1, err, sizeof err) == -1,
          "empty x range accepted");
    struct stat st;
    CHECK(stat(path, &st) != 0, "a failed call left %s behind", path);
    CHECK(count_non_png(tmp_dir) == 0 && count_non_png(out_dir) == 0, "temporary files left behind");
}

// The scripts handed to gnuplot, captured by a fake gnuplot that copies its script and fails:
// epoch axes tick whole numbers only (one epoch: 0..2, not 0.99..1.01), and a scatter with a
// range fixes both axes to it.
static char *captured_script(const char *capture) {
    FILE *f = fopen(capture, "r");
    if (!f) return NULL;
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

// A fake gnuplot: `script` (a shell script's text) as test_dir/<folder>/gnuplot, and PATH set to that
// folder alone. Returns the previous PATH (for drop_fake_gnuplot), or NULL when it cannot be written.
static char *use_fake_gnuplot(const char *folder, const char *script, char *fake, size_t fake_size) {
    char fake_dir[600];
    snprintf(fake_dir, sizeof fake_dir, "%s/%s", test_dir, folder);
    mkdir(fake_dir, 0755);
    snprintf(fake, fake_size, "%s/gnuplot", fake_dir);
    FILE *f = fopen(fake, "w");
    CHECK(f != NULL, "cannot write %s", fake);
    if (!f) return NULL;
    fputs(script, f);
    fclose(f);
    chmod(fake, 0755);
    const char *old = getenv("PATH");
    char *saved = strdup(old ? old : "/usr/bin:/bin");
    setenv("PATH", fake_dir, 1);
    return saved;
}

// PATH put back, the fake gnuplot (if still there) and its folder removed.
static void drop_fake_gnuplot(const char *fake, char *saved_path) {
    setenv("PATH", saved_path, 1);
    free(saved_path);
    unlink(fake);
    char fake_dir[700];
    snprintf(fake_dir, sizeof fake_dir, "%s", fake);
    char *slash = strrchr(fake_dir, '/');
    if (slash) *slash = '\0';
    rmdir(fake_dir);
}

static void test_axis_ticks_in_scripts(void) {
    char fake[700], capture[700], path[600], err[512] = "", script_text[1200];
    snprintf(capture, sizeof capture, "%s/captured.gp", test_dir);
    // -e: the probe; the script is the last argument (after -d)
    snprintf(script_text, sizeof script_text,
             "#!/bin/sh\nfor a; do [ \"$a\" = -e ] && exit 0; script=\"$a\"; done\n/bin/cp \"$script\" '%s'\nexit 1\n",
             capture);
    char *saved = use_fake_gnuplot("capturebin", script_text, fake, sizeof fake);
    if (!saved) return;
    out_path(path, sizeof path, "captured.png");

    double one_x[1] = {1}, one_y[1] = {5};
    const double *one[1] = {one_y};
    plot_lines(path, "t", "epoch", "y", one_x, one, NULL, 1, 1, false, err, sizeof err);
    char *script = captured_script(capture);
    CHECK(script && strstr(script, "set xtics 1\n") && strstr(script, "set format x '%.0f'") &&
          strstr(script, "set xrange [0:2]"), "one epoch: whole-number ticks over 0..2:\n%s", script ? script : "(none)");
    double x[40], y0[40];
    for (int i = 0; i < 40; i++) {
        x[i] = i + 1;
        y0[i] = 100.0 / (i + 1);
    }
    const double *ys[1] = {y0};
    unlink(capture);
    plot_lines(path, "t", "epoch", "y", x, ys, NULL, 1, 40, true, err, sizeof err);
    script = captured_script(capture);
    CHECK(script && strstr(script, "set xtics 5\n") && !strstr(script, "set xrange"),
          "40 epochs: ticks every 5:\n%s", script ? script : "(none)");
    double half[2] = {0.5, 1.5};
    unlink(capture);
    plot_lines(path, "t", "x", "y", half, ys, NULL, 1, 2, false, err, sizeof err);
    script = captured_script(capture);
    CHECK(script && !strstr(script, "set xtics"), "fractional x keeps gnuplot's ticks");
    float xy[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    const double range[4] = {-3, 3, -2, 2};
    unlink(capture);
    plot_scatter_in_range(path, "title line\naxes line\tend", "z1", "z2", xy, NULL, 2, 0, NULL, range, err, sizeof err);
    script = captured_script(capture);
    CHECK(script && strstr(script, "set xrange [-3:3]\nset yrange [-2:2]"), "scatter range:\n%s",
          script ? script : "(none)");
    // a newline in a title is gnuplot's line break (a two-line title), other control characters spaces
    CHECK(script && strstr(script, "set title \"title line\\naxes line end\" noenhanced"),
          "two-line title:\n%s", script ? script : "(none)");
    // histogram panels read like text: z_1 top left, z_4 starting the row below it (gnuplot's
    // origin is the bottom left corner), z_3 ending the top row; all inside the canvas
    {
        enum { N = 50, DIMS = 5 };
        float values[N * DIMS];
        for (int i = 0; i < N * DIMS; i++) values[i] = (float)(i % 17) / 4.0f - 2.0f;
        unlink(capture);
        plot_histograms(path, "h", values, N, DIMS, DIMS, false, err, sizeof err);
        script = captured_script(capture);
        double ox[DIMS + 1], oy[DIMS + 1], sx = 0, sy = 0;
        int found = 0;
        for (int j = 1; script && j <= DIMS; j++) {
            char title[32];
            snprintf(title, sizeof title, "set title 'z_{%d}'", j);
            const char *at = strstr(script, title);
            // "set origin X,Y\nset size W,H\nset title 'z_{j}'": the two lines before the title
            const char *origin = at;
            while (origin && origin > script && strncmp(origin, "set origin ", 11) != 0) origin--;
            if (at && origin && sscanf(origin, "set origin %lf,%lf\nset size %lf,%lf", &ox[j], &oy[j], &sx, &sy) == 4)
                found++;
        }
        CHECK(found == DIMS, "histogram script: %d of %d panels' origins found:\n%s", found, DIMS,
              script ? script : "(none)");
        if (found == DIMS) {
            CHECK(ox[1] < ox[2] && ox[2] < ox[3] && oy[1] == oy[2] && oy[2] == oy[3], "z_1..z_3 not left to right "
                  "in one row: (%g,%g) (%g,%g) (%g,%g)", ox[1], oy[1], ox[2], oy[2], ox[3], oy[3]);
            CHECK(oy[4] < oy[1] && ox[4] == ox[1] && oy[5] == oy[4], "z_4 not below z_1: z_1 at (%g,%g), z_4 at (%g,%g)",
                  ox[1], oy[1], ox[4], oy[4]);
            for (int j = 1; j <= DIMS; j++)
                CHECK(ox[j] >= 0 && oy[j] >= 0 && ox[j] + sx <= 1.0 + 1e-6 && oy[j] + sy <= 1.0 + 1e-6,
                      "panel z_%d at (%g,%g) size (%g,%g) leaves the canvas", j, ox[j], oy[j], sx, sy);
        }
    }
    const double empty[4] = {1, 1, -2, 2};
    CHECK(plot_scatter_in_range(path, "t", "z1", "z2", xy, NULL, 2, 0, NULL, empty, err, sizeof err) == -1 &&
          strstr(err, "not a finite, non-empty box"), "empty range refused: %s", err);

    drop_fake_gnuplot(fake, saved);
    unlink(capture);
}

// A panel whose values all coincide (src/plot.c, plot_histograms: hi - lo < 1e-6 (1 + |lo|)):
// its range is widened to [v - 0.5, v + 0.5], so the bins have a width (0.1 with 10 bins) and the
// one value is one bar in the middle bin; without it the bin width is 0, every value's bin
// (v - lo) / 0 is NaN, and the figure's xrange [v:v] empty. Not reached from `cuvae plot`, whose
// histograms overlay N(0, 1) and so always span at least [-4, 4]: only without the overlay.
static void test_histogram_one_value(void) {
    char path[600], err[512] = "";
    enum { N = 50, DIMS = 2 };
    float values[N * DIMS];
    for (int i = 0; i < N; i++) {
        values[i * DIMS] = 3.0f;       // z_1: all 3
        values[i * DIMS + 1] = 0.0f;   // z_2: all 0 (the tolerance's 1 + |lo| at lo = 0)
    }
    out_path(path, sizeof path, "hist_one_value.png");
    int rc = plot_histograms(path, "one value", values, N, DIMS, DIMS, false, err, sizeof err);
    CHECK(rc == 0, "plot_histograms of coinciding values failed: %s", err);
    if (rc == 0) {
        int w, h;
        plot_histograms_size(DIMS, &w, &h);
        Picture pic = check_figure(path, w, h);
        if (pic.rgb) {
            CHECK(count_palette(&pic, 0, 0.0, 1.0, 0.0, 1.0) > 100, "no bar drawn for a panel of one value");
            free(pic.rgb);
        }
    }
    // the script's ranges and bar width, through a fake gnuplot that copies the script
    char fake[700], capture[700], script_text[1200];
    snprintf(capture, sizeof capture, "%s/captured_hist.gp", test_dir);
    snprintf(script_text, sizeof script_text,
             "#!/bin/sh\nfor a; do [ \"$a\" = -e ] && exit 0; script=\"$a\"; done\n/bin/cp \"$script\" '%s'\nexit 1\n",
             capture);
    char *saved = use_fake_gnuplot("capturehist", script_text, fake, sizeof fake);
    if (!saved) return;
    unlink(capture);
    plot_histograms(path, "one value", values, N, DIMS, DIMS, false, err, sizeof err);
    const char *script = captured_script(capture);
    CHECK(script && strstr(script, "set xrange [2.5:3.5]\nset yrange [0:11]\nset boxwidth 0.1 absolute"),
          "z_1 (all 3): range [2.5, 3.5], bins 0.1 wide, one bar of density 10:\n%s", script ? script : "(none)");
    CHECK(script && strstr(script, "set xrange [-0.5:0.5]\nset yrange [0:11]\nset boxwidth 0.1 absolute"),
          "z_2 (all 0): range [-0.5, 0.5]:\n%s", script ? script : "(none)");
    drop_fake_gnuplot(fake, saved);
    unlink(capture);
}

// A fake gnuplot that fails like the real one: the error names the script line, the call
// returns -1, nothing is left behind. Then no gnuplot on PATH at all.
static void test_gnuplot_failure(void) {
    char fake[700], path[600], err[512] = "";
    char *saved = use_fake_gnuplot("fakebin",
                                   "#!/bin/sh\nfor a; do script=\"$a\"; done\necho ' plot foo(x)' >&2\n"
                                   "echo '         ^' >&2\necho \"\\\"$script\\\" line 7: undefined function: foo\" >&2\n"
                                   "exit 1\n", fake, sizeof fake);
    if (!saved) return;

    out_path(path, sizeof path, "fail.png");
    double x[2] = {0, 1}, y0[2] = {1, 2};
    const double *ys[1] = {y0};
    int rc = plot_lines(path, "t", "x", "y", x, ys, NULL, 1, 2, false, err, sizeof err);
    CHECK(rc == -1, "failing gnuplot: returned %d", rc);
    CHECK(strstr(err, path) && strstr(err, "line 7: undefined function: foo"), "error line not reported: %s",
          err);
    CHECK(strstr(err, tmp_dir) == NULL, "error shows the temporary script path: %s", err);
    struct stat st;
    CHECK(stat(path, &st) != 0, "failed plot left %s", path);
    CHECK(count_non_png(tmp_dir) == 0 && count_non_png(out_dir) == 0, "temporary files left behind");

    // no line of stderr names a script line: the first line with a letter in it is the message
    // (not a later one, nor a line of punctuation)
    drop_fake_gnuplot(fake, saved);
    saved = use_fake_gnuplot("fakebin", "#!/bin/sh\necho '  ^^^' >&2\necho 'cairo: font setup failed' >&2\n"
                             "echo 'see the manual for more' >&2\nexit 1\n", fake, sizeof fake);
    if (!saved) return;
    rc = plot_lines(path, "t", "x", "y", x, ys, NULL, 1, 2, false, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "gnuplot failed: cairo: font setup failed") && !strstr(err, "manual"),
          "no script line: the first message line: %s", err);
    CHECK(count_non_png(tmp_dir) == 0 && count_non_png(out_dir) == 0, "temporary files left behind");

    unlink(fake);
    rc = plot_lines(path, "t", "x", "y", x, ys, NULL, 1, 2, false, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "not found"), "missing gnuplot: %d %s", rc, err);
    CHECK(count_non_png(tmp_dir) == 0 && count_non_png(out_dir) == 0, "temporary files left behind");

    drop_fake_gnuplot(fake, saved);
}

// A gnuplot that hangs is stopped after CUVAE_GNUPLOT_TIMEOUT seconds, saying so, nothing left
// behind (plot hung with it); a value that is not a count of seconds is refused.
static void test_gnuplot_timeout(void) {
    char fake[700], path[600], err[512] = "";
    char *saved = use_fake_gnuplot("hangbin", "#!/bin/sh\nexec /bin/sleep 60\n", fake, sizeof fake);   // (PATH: its folder)
    if (!saved) return;
    setenv("CUVAE_GNUPLOT_TIMEOUT", "1", 1);

    out_path(path, sizeof path, "hang.png");
    double x[2] = {0, 1}, y0[2] = {1, 2};
    const double *ys[1] = {y0};
    const double start = wall_seconds();
    int rc = plot_lines(path, "t", "x", "y", x, ys, NULL, 1, 2, false, err, sizeof err);
    const double took = wall_seconds() - start;
    CHECK(rc == -1 && strstr(err, path) && strstr(err, "did not finish within 1 s and was stopped"),
          "hanging gnuplot: rc %d, %s", rc, err);
    CHECK(took < 10.0, "a hanging gnuplot held plot %.1f s", took);
    CHECK(count_non_png(tmp_dir) == 0 && count_non_png(out_dir) == 0, "temporary files left behind");

    setenv("CUVAE_GNUPLOT_TIMEOUT", "1.5", 1);
    rc = plot_lines(path, "t", "x", "y", x, ys, NULL, 1, 2, false, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "CUVAE_GNUPLOT_TIMEOUT=1.5: expected the seconds a gnuplot may take"),
          "CUVAE_GNUPLOT_TIMEOUT=1.5: rc %d, %s", rc, err);
    CHECK(count_non_png(tmp_dir) == 0 && count_non_png(out_dir) == 0, "temporary files left behind");

    // the bounds are 1 and 86400 s (a day), both taken; one past either end refused
    const char *const taken[] = {"1", "86400", "00300"}, *const refused[] = {"0", "86401", "100000", "-5", ""};
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
        setenv("CUVAE_GNUPLOT_TIMEOUT", taken[i], 1);
        err[0] = '\0';
        CHECK(plot_check_environment(err, sizeof err) == 0, "CUVAE_GNUPLOT_TIMEOUT=%s refused: %s", taken[i], err);
    }
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        setenv("CUVAE_GNUPLOT_TIMEOUT", refused[i], 1);
        err[0] = '\0';
        CHECK(plot_check_environment(err, sizeof err) == -1 && strstr(err, "a whole number from 1 to 86400"),
              "CUVAE_GNUPLOT_TIMEOUT=%s taken: %s", refused[i], err);
    }

    unsetenv("CUVAE_GNUPLOT_TIMEOUT");
    drop_fake_gnuplot(fake, saved);
}

// ----------------------------------------------------------------------------

// gnuplot is on PATH but `set terminal pngcairo` fails: every figure would fail.
static void test_gnuplot_without_pngcairo(void) {
    CHECK(false, "gnuplot is installed but cannot draw PNGs (`gnuplot -e \"set terminal pngcairo\"` fails); "
          "install gnuplot-nox");
}

int main(void) {
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"scatter_three_classes", test_scatter_three_classes},
        {"scatter_without_labels", test_scatter_without_labels},
        {"histograms", test_histograms},
        {"lines", test_lines},
        {"image", test_image},
        {"quotes_in_titles", test_quotes_in_titles},
        {"missing_directory", test_missing_directory},
        {"bad_arguments", test_bad_arguments},
        {"gnuplot_failure", test_gnuplot_failure},
        {"gnuplot_timeout", test_gnuplot_timeout},
        {"axis_ticks_in_scripts", test_axis_ticks_in_scripts},
        {"histogram_one_value", test_histogram_one_value},
    };
    int n_tests = (int)(sizeof tests / sizeof tests[0]);
    if (!plot_available()) {
        // no gnuplot: skipped; a gnuplot that cannot draw PNGs (no pngcairo) is a broken install: failed
        const bool installed = system("command -v gnuplot >/dev/null 2>&1") == 0;
        if (installed) test_run("gnuplot_draws_png", test_gnuplot_without_pngcairo);
        for (int i = 0; i < n_tests; i++)
            test_skip(tests[i].name, installed ? "gnuplot cannot draw PNGs (the failure above)" : "gnuplot-nox not installed");
        return test_finish("test_plot");
    }
    const char *base = getenv("TMPDIR");
    snprintf(test_dir, sizeof test_dir, "%s/cuvae_test_plot_XXXXXX", (base && base[0]) ? base : "/tmp");
    if (!mkdtemp(test_dir)) {
        fprintf(stderr, "test_plot: cannot create %s\n", test_dir);
        return 1;
    }
    snprintf(tmp_dir, sizeof tmp_dir, "%s/tmp", test_dir);
    snprintf(out_dir, sizeof out_dir, "%s/out", test_dir);
    mkdir(tmp_dir, 0755);
    mkdir(out_dir, 0755);
    setenv("TMPDIR", tmp_dir, 1);

    for (int i = 0; i < n_tests; i++) test_run(tests[i].name, tests[i].fn);

    // CUVAE_KEEP_PLOTS=1 keeps the PNGs for looking at them
    const char *keep = getenv("CUVAE_KEEP_PLOTS");
    if (keep && keep[0] == '1') fprintf(stderr, "  figures kept in %s\n", out_dir);
    else test_remove_tree(test_dir);
    return test_finish("test_plot");
}

// figures.c: the figures of one run, from its checkpoint, its test set and its
// log.jsonl: image grids go through plot_image (title, optional axes), charts
// through plot_scatter / plot_histograms / plot_lines, t-SNE through tsne_embed.
#include "cuvae/prior.h"
#include "cuvae/figures.h"
#include "cuvae/backend.h"
#include "cuvae/checkpoint.h"
#include "cuvae/common.h"
#include "cuvae/dataset.h"
#include "cuvae/eval.h"
#include "cuvae/image.h"
#include "cuvae/model.h"
#include "cuvae/model_kind.h"
#include "cuvae/plot.h"
#include "cuvae/rng.h"
#include "cuvae/run_folder.h"
#include "cuvae/tsne.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIGURE_SEED_SALT 0xF16ull
#define MANIFOLD_STEPS 20
#define INTERPOLATION_STEPS 10
#define INTERPOLATION_ROWS 5
#define SAMPLE_GRID 8
#define RECONSTRUCTION_COLUMNS 12

void figures_default_options(FigureOptions *o) {
    memset(o, 0, sizeof *o);   // every field, the flags included
    o->tsne_points = 2000;
    o->tsne_iterations = 1000;
    o->scatter_points = 0;
    o->scatter_draws = false;
    o->latent_range[0] = o->latent_range[1] = 0.0;
}

typedef struct {
    const char *dir;          // RUN_DIR/figures
    Model *m;
    int channels, rows, cols; // one image: (channels, rows, cols), channels 1 or 3
    int n_classes;            // the legend's classes (0: unlabelled data, no colours)
    const char *const *names; // their names (NULL: the label number)
    char *err;
    size_t errlen;
    bool overflow;            // a decode gave outputs that are not finite (+-inf reads as 0 or 1 after a sigmoid)
} Figures;

// Phi^-1(p) by bisection on Phi(x) = erfc(-x / sqrt 2) / 2: plain and exact enough.
static double inverse_normal_cdf(double p) {
    double lo = -10.0, hi = 10.0;
    for (int i = 0; i < 100; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

// Legend names: Fashion-MNIST's ten classes by name, MNIST's digits by the digit (NULL).
static const char *const *class_names(const Figures *f) {
    static const char *const fashion[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                            "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    return strcmp(f->m->cfg.data.dataset, "fashion-mnist") == 0 ? fashion : NULL;
}

// Decodes n latent points z (n, L) with labels (n) or NULL into pixels (n, D) in [0, 1].
static void decode_points(Figures *f, const float *z, const uint8_t *labels, int n, float *pixels) {
    if (!model_decode_pixels(f->m, z, labels, n, pixels)) f->overflow = true;
}

static int write_grid(Figures *f, const char *name, const char *title, const float *pixels, int n,
                      int columns, const char *xlabel, double x_min, double x_max,
                      const char *ylabel, double y_min, double y_max, int pad) {
    // (a pixel that is not finite would be drawn black: a diverged decoder, said instead)
    if (f->overflow)
        return set_error(f->err, f->errlen, "plot: %s: the decoder gives outputs that are not finite: the model has "
                         "diverged", name);
    for (size_t i = 0; i < (size_t)n * f->channels * f->rows * f->cols; i++)
        if (!isfinite(pixels[i]))
            return set_error(f->err, f->errlen, "plot: %s: image %zu has a pixel that is not finite (%g): the model "
                             "has diverged", name, i / ((size_t)f->channels * f->rows * f->cols), pixels[i]);
    int width, height;
    uint8_t *grid = image_grid_channels(pixels, n, f->channels, f->rows, f->cols, columns, pad, 255, &width,
                                        &height);
    if (!grid) return set_error(f->err, f->errlen, "%s: cannot tile %d images", name, n);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    int rc = plot_image_channels(path, title, grid, width, height, f->channels, xlabel, x_min, x_max, ylabel, y_min,
                                 y_max, f->err, f->errlen);
    free(grid);
    if (rc == 0) say("wrote %s", path);
    return rc;
}

static int figure_samples(Figures *f) {
    Model *m = f->m;
    if (m->prior_classes) {   // a prior: code grids drawn from it, decoded by its VQ-VAE
        const int n = SAMPLE_GRID * SAMPLE_GRID;
        float *pixels;
        int image[3];
        if (prior_sample_images(m, n, m->cfg.train.seed ^ FIGURE_SEED_SALT, &pixels, image, f->err,
                                f->errlen) != 0)
            return -1;
        Figures vq = *f;   // the VQ-VAE's images
        vq.channels = image[0];
        vq.rows = image[1];
        vq.cols = image[2];
        int rc = write_grid(&vq, "samples.png", "Samples: codes drawn from the PixelCNN prior, decoded by the VQ-VAE",
                            pixels, n, SAMPLE_GRID, NULL, 0, 0, NULL, 0, 0, 2);
        free(pixels);
        return rc;
    }
    if (m->autoregressive) {   // made: ancestral sampling, one pixel at a time in the ordering
        const int n = SAMPLE_GRID * SAMPLE_GRID;
        float *pixels = xmalloc((size_t)n * m->input_dim * sizeof(float));
        if (!model_made_sample(m, n, m->cfg.train.seed ^ FIGURE_SEED_SALT, pixels)) f->overflow = true;
        int rc = write_grid(f, "samples.png", m->cfg.model.ordering == ORDERING_RANDOM
                            ? "Samples: binary pixels drawn one by one in a random order"
                            : "Samples: binary pixels drawn one by one, row by row",
                            pixels, n, SAMPLE_GRID, NULL, 0, 0, NULL, 0, 0, 2);
        free(pixels);
        return rc;
    }
    const int n = SAMPLE_GRID * SAMPLE_GRID, L = m->latent_dim;
    float *z = xmalloc((size_t)n * L * sizeof(float));
    uint8_t labels[SAMPLE_GRID * SAMPLE_GRID];
    model_draw_latents(m, z, n, m->cfg.train.seed ^ FIGURE_SEED_SALT);
    // a cvae: class = column, over the classes it trained (its checkpoint's data_classes, else all)
    const int classes = m->data_classes > 0 ? m->data_classes : m->n_classes > 0 ? m->n_classes : 10;
    for (int i = 0; i < n; i++) labels[i] = (uint8_t)(i % SAMPLE_GRID % classes);
    float *pixels = xmalloc((size_t)n * m->input_dim * sizeof(float));
    decode_points(f, z, labels, n, pixels);
    char class_title[80] = "Samples: z ~ N(0, I), class = column index";
    if (classes < SAMPLE_GRID)
        snprintf(class_title, sizeof class_title, "Samples: z ~ N(0, I), class = column index mod %d", classes);
    const char *title = m->gan ? "Generator samples from z ~ N(0, I)"
                      : m->aae && m->cfg.model.prior_mixture ? "Samples decoded from prior draws (10 Gaussians in 2-D)"
                      : m->aae ? "Samples decoded from prior draws, z ~ N(0, I)"
                      : m->vq ? "Samples: codes drawn uniformly at every position (not from a prior)"
                      : m->n_classes ? class_title
                                     : "Samples decoded from z ~ N(0, I)";
    int rc = write_grid(f, "samples.png", title, pixels, n, SAMPLE_GRID, NULL, 0, 0, NULL, 0, 0, 2);
    free(z);
    free(pixels);
    return rc;
}

// Test images on odd rows, their reconstructions (z = mu) on the row below.
static int figure_reconstructions(Figures *f, const DeviceDataset *test, const float *codes,
                                  const uint8_t *labels) {
    Model *m = f->m;
    const int cols = RECONSTRUCTION_COLUMNS, pairs = 3, D = m->input_dim;
    int n = cols * pairs;
    if (n > test->n) n = test->n;
    float *recon = xmalloc((size_t)n * D * sizeof(float));
    decode_points(f, codes, labels, n, recon);
    uint8_t *images = xmalloc((size_t)n * D);
    m->be->download(m->be, images, test->images, (size_t)n * D);
    float *tiles = xcalloc((size_t)2 * pairs * cols * D, sizeof(float));
    for (int i = 0; i < n; i++) {
        int row = i / cols, col = i % cols;
        for (int d = 0; d < D; d++) {
            tiles[((size_t)(2 * row) * cols + col) * D + d] = images[(size_t)i * D + d] / 255.0f;
            tiles[((size_t)(2 * row + 1) * cols + col) * D + d] = recon[(size_t)i * D + d];
        }
    }
    int rc = write_grid(f, "reconstructions.png",
                        m->vq ? "Test images (odd rows) and their reconstructions from their codes (row below)"
                              : "Test images (odd rows) and their reconstructions at z = mu (row below)",
                        tiles, 2 * pairs * cols, cols, NULL, 0, 0, NULL, 0, 0, 2);
    free(recon);
    free(images);
    free(tiles);
    return rc;
}

static int compare_floats(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// The q-quantile (0..1) of column `column` of codes (n, 2).
static double code_quantile(const float *codes, int n, int column, double q) {
    float *values = xmalloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) values[i] = codes[(size_t)i * 2 + column];
    qsort(values, (size_t)n, sizeof(float), compare_floats);
    double v = values[(int)lround(q * (n - 1))];
    free(values);
    return v;
}

// How many of the points xy (n, 2) lie outside range {x_lo, x_hi, y_lo, y_hi}: a scatter on
// given axes leaves them out, and says so.
static int points_outside(const float *xy, int n, const double range[4]) {
    int outside = 0;
    for (int i = 0; i < n; i++) {
        const float *z = xy + (size_t)i * 2;   // (z1, z2)
        outside += !(z[0] >= range[0] && z[0] <= range[1] && z[1] >= range[2] && z[1] <= range[3]);
    }
    return outside;
}

static int figure_scatter(Figures *f, const float *codes, const uint8_t *labels, int n,
                          const FigureOptions *o) {
    const int L = f->m->latent_dim;
    char path[1200];
    snprintf(path, sizeof path, "%s/latent_scatter.png", f->dir);
    int rc;
    if (L == 2) {
        int points = o->scatter_points > 0 && o->scatter_points < n ? o->scatter_points : n;
        // the codes' extent (0.5th..99.5th percentile), which `plot --latent-range` unions share
        fprintf(stderr, "cuvae: latent scatter extent: z1 [%.4g, %.4g], z2 [%.4g, %.4g]\n",
                code_quantile(codes, points, 0, 0.005), code_quantile(codes, points, 0, 0.995),
                code_quantile(codes, points, 1, 0.005), code_quantile(codes, points, 1, 0.995));
        const bool shared = o->latent_range[0] < o->latent_range[1];
        const double range[4] = {o->latent_range[0], o->latent_range[1], o->latent_range[0], o->latent_range[1]};
        char title[160];
        const char *what = o->scatter_draws ? "z ~ q(z|x), one draw each" : f->m->variational ? "mean of q(z|x)"
                                                                                              : "AE codes";
        if (shared) {
            snprintf(title, sizeof title, "Encoded test set (%s), %d points\naxes [%.3g, %.3g] shared", what, points,
                     range[0], range[1]);
            fprintf(stderr, "cuvae: latent scatter axes [%.4g, %.4g] x [%.4g, %.4g] (%s) for the %s\n", range[0],
                    range[1], range[2], range[3],
                    o->latent_range_of_prior ? "shared with the prior draws' figure" : "--latent-range", what);
            // points the axes leave out: said (a range that misses the codes draws none)
            const int outside = points_outside(codes, points, range);
            if (outside)
                fprintf(stderr, "cuvae: latent scatter: %d of the %d points lie outside the axes and are not "
                        "drawn%s\n", outside, points, outside == points ? " (none is: widen --latent-range)" : "");
        }
        else
            snprintf(title, sizeof title, "Encoded test set (%s), %d points", what, points);
        rc = plot_scatter_in_range(path, title, "z1", "z2", codes, f->n_classes ? labels : NULL, points, f->n_classes, f->names,
                                   shared ? range : NULL, f->err, f->errlen);
    } else {
        int points = o->tsne_points < n ? o->tsne_points : n;
        if (points < o->tsne_points && o->tsne_points_given)
            fprintf(stderr, "cuvae: t-SNE: %d points asked, the test set has %d: using %d\n", o->tsne_points,
                    n, points);
        TsneOptions t;
        tsne_default_options(&t);
        t.iterations = o->tsne_iterations;
        if (points - 1 <= 3 * t.perplexity) {   // each point's neighbourhood must leave others out
            const double asked = t.perplexity;
            t.perplexity = (points - 2) / 3.0;
            fprintf(stderr, "cuvae: t-SNE: perplexity %.3g, (points - 2) / 3 for %d points (%.3g needs more than %d)\n",
                    t.perplexity, points, asked, (int)(3 * asked) + 1);
        }
        float *xy = xmalloc((size_t)points * 2 * sizeof(float));
        double start = wall_seconds();
        rc = tsne_embed(codes, points, L, &t, xy, f->err, f->errlen);
        if (rc == 0) {
            char title[160];
            snprintf(title, sizeof title, "t-SNE of %d encoded test images\n(%s, latent dim %d, perplexity %.3g)",
                     points, o->scatter_draws ? "z ~ q(z|x)" : "means", L, t.perplexity);
            fprintf(stderr, "cuvae: t-SNE of %d codes took %.1f s\n", points, wall_seconds() - start);
            rc = plot_scatter(path, title, "t-SNE 1", "t-SNE 2", xy, f->n_classes ? labels : NULL, points, f->n_classes, f->names,
                              f->err, f->errlen);
        }
        free(xy);
    }
    if (rc == 0) say("wrote %s", path);
    return rc;
}

// aae, 2-D latent: draws from its prior beside the encoded test set, both on the union of their
// extents (0.5th..99.5th percentiles), so the match (or not) is seen at the same scale.
static int figure_prior_against_codes(Figures *f, const float *codes, const uint8_t *labels, int n,
                                      const FigureOptions *o) {
    const int points = o->scatter_points > 0 && o->scatter_points < n ? o->scatter_points : n;
    if (points < 1) return 0;
    float *prior = xmalloc((size_t)points * 2 * sizeof(float));
    model_aae_prior_host(f->m, prior, points, f->m->cfg.train.seed ^ FIGURE_SEED_SALT);
    uint8_t *component = xmalloc((size_t)points);
    for (int i = 0; i < points; i++) component[i] = (uint8_t)(f->m->cfg.model.prior_mixture ? i % 10 : 0);
    FigureOptions shared = *o;
    if (!(o->latent_range[0] < o->latent_range[1])) {
        double lo = 0, hi = 0;
        for (int c = 0; c < 2; c++) {
            const double values[4] = {code_quantile(codes, points, c, 0.005), code_quantile(codes, points, c, 0.995),
                                      code_quantile(prior, points, c, 0.005), code_quantile(prior, points, c, 0.995)};
            for (int k = 0; k < 4; k++) {
                if ((c == 0 && k == 0) || values[k] < lo) lo = values[k];
                if ((c == 0 && k == 0) || values[k] > hi) hi = values[k];
            }
        }
        shared.latent_range[0] = lo;
        shared.latent_range[1] = hi;
        shared.latent_range_of_prior = true;
    }
    int rc = figure_scatter(f, codes, labels, n, &shared);   // redrawn on the shared axes
    if (rc == 0) {
        char path[1200], title[160], left_out[48] = "";
        snprintf(path, sizeof path, "%s/prior_samples.png", f->dir);
        const double range[4] = {shared.latent_range[0], shared.latent_range[1], shared.latent_range[0],
                                 shared.latent_range[1]};
        // draws the axes leave out, said as for the codes (the default axes, the 0.5th..99.5th
        // percentiles, leave out about 1 % of them; --latent-range's may leave out more)
        const int outside = points_outside(prior, points, range);
        if (outside) {
            snprintf(left_out, sizeof left_out, ", %d outside the axes", outside);
            fprintf(stderr, "cuvae: prior draws: %d of the %d draws lie outside the axes and are not drawn\n", outside,
                    points);
        }
        snprintf(title, sizeof title, "%d prior draws (%s), same axes%s", points,
                 f->m->cfg.model.prior_mixture ? "10 Gaussians, by component" : "N(0, I)", left_out);
        rc = plot_scatter_in_range(path, title, "z1", "z2", prior, component, points, 10, NULL, range, f->err,
                                   f->errlen);
        if (rc == 0) say("wrote %s", path);
    }
    free(component);
    free(prior);
    return rc;
}

#define HISTOGRAM_PANELS 16   // dimensions drawn at most

static int figure_histograms(Figures *f, const float *codes, int n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/latent_histograms.png", f->dir);
    const int shown = f->m->latent_dim < HISTOGRAM_PANELS ? f->m->latent_dim : HISTOGRAM_PANELS;
    char title[160];
    snprintf(title, sizeof title, "Encoded test data per dimension (%s)",
             f->m->variational ? "the means mu of q(z|x)" : "AE codes");
    if (shown < f->m->latent_dim)   // say so when only some dimensions are drawn
        snprintf(title, sizeof title, "Encoded test data, the first %d of %d dimensions (%s)", shown,
                 f->m->latent_dim, f->m->variational ? "the means mu of q(z|x)" : "AE codes");
    int rc = plot_histograms(path, title, codes, n, f->m->latent_dim, HISTOGRAM_PANELS, true, f->err, f->errlen);
    if (rc == 0) say("wrote %s", path);
    return rc;
}

// A decoded grid over the 2-D latent space. A VAE: uniform in probability under the
// prior, z = Phi^-1(p) (deck 003). An AE has no prior: the grid spans its test codes'
// range (1st to 99th percentile on each axis), where its decoder has seen codes.
static int figure_manifold(Figures *f, const float *codes, int n_codes) {   // codes (n_codes, 2)
    Model *m = f->m;
    const int steps = MANIFOLD_STEPS, n = steps * steps;
    const bool prior = m->variational;
    const double p_lo = 0.05, p_hi = 0.95;
    double x_lo = inverse_normal_cdf(p_lo), x_hi = inverse_normal_cdf(p_hi), y_lo = x_lo, y_hi = x_hi;
    if (!prior) {
        x_lo = code_quantile(codes, n_codes, 0, 0.01);
        x_hi = code_quantile(codes, n_codes, 0, 0.99);
        y_lo = code_quantile(codes, n_codes, 1, 0.01);
        y_hi = code_quantile(codes, n_codes, 1, 0.99);
        if (!(x_hi > x_lo)) x_hi = x_lo + 1.0;   // all codes alike: still a grid
        if (!(y_hi > y_lo)) y_hi = y_lo + 1.0;
    }
    float *z = xmalloc((size_t)n * 2 * sizeof(float));
    uint8_t *labels = xcalloc((size_t)n, 1);
    for (int row = 0; row < steps; row++) {
        double t_row = 1.0 - (double)row / (steps - 1);   // top row: high z2
        for (int col = 0; col < steps; col++) {
            double t_col = (double)col / (steps - 1);
            double z1 = prior ? inverse_normal_cdf(p_lo + (p_hi - p_lo) * t_col) : x_lo + (x_hi - x_lo) * t_col;
            double z2 = prior ? inverse_normal_cdf(p_lo + (p_hi - p_lo) * t_row) : y_lo + (y_hi - y_lo) * t_row;
            z[(size_t)(row * steps + col) * 2] = (float)z1;
            z[(size_t)(row * steps + col) * 2 + 1] = (float)z2;
        }
    }
    float *pixels = xmalloc((size_t)n * m->input_dim * sizeof(float));
    decode_points(f, z, labels, n, pixels);
    int rc = write_grid(f, "manifold.png",
                        prior ? "Decoded 2-D latent grid (uniform in probability, z = Phi^-1(p))"
                              : "Decoded 2-D latent grid over the AE codes' range (1st to 99th percentile)",
                        pixels, n, steps, "z1", x_lo, x_hi, "z2", y_lo, y_hi, 0);
    if (rc == 0)
        fprintf(stderr, "cuvae: manifold grid: z1 in [%.3f, %.3f], z2 in [%.3f, %.3f] (%s)\n", x_lo, x_hi, y_lo,
                y_hi, prior ? "prior quantiles 5%..95%" : "AE codes, 1st..99th percentile");
    free(z);
    free(labels);
    free(pixels);
    return rc;
}

// A figure this plot does not draw, left by an earlier one (it would no longer match the
// others): removed. Returns the note to add to the skip line.
static const char *remove_stale_figure(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return unlink(path) == 0 ? "; the earlier plot's one removed" : "";
}

// The loss-curve figures (loss_curves.png, and loss_terms.png but for a gan's) of an earlier
// plot, when this one has no log to draw them from: removed. Returns the note for the skip line.
static const char *remove_stale_curves(const char *dir) {
    const bool curves = remove_stale_figure(dir, "loss_curves.png")[0] != 0;
    const bool terms = remove_stale_figure(dir, "loss_terms.png")[0] != 0;
    return curves || terms ? "; the earlier plot's removed" : "";
}

// Rows: linear paths in latent space between the codes of two test images of classes 0-1,
// 2-3, ... (or, with none of those pairs, test images 0-1, 2-3, ...); first and last columns
// are the reconstructions.
static int figure_interpolation(Figures *f, const float *codes, const uint8_t *labels, int n) {
    Model *m = f->m;
    const int L = m->latent_dim, steps = INTERPOLATION_STEPS;
    int first_of_class[10];
    for (int c = 0; c < 10; c++) first_of_class[c] = -1;
    for (int i = 0; i < n; i++)
        if (labels[i] < 10 && first_of_class[labels[i]] < 0) first_of_class[labels[i]] = i;
    int pairs[INTERPOLATION_ROWS][2], rows = 0;
    for (int c = 0; c + 1 < 10 && rows < INTERPOLATION_ROWS; c += 2)
        if (first_of_class[c] >= 0 && first_of_class[c + 1] >= 0) {
            pairs[rows][0] = first_of_class[c];
            pairs[rows][1] = first_of_class[c + 1];
            rows++;
        }
    // test sets without those class pairs (unlabelled data: all label 0; a few images): the
    // rows left go to test images 0-1, 2-3, ... (figures_write_all skips the figure for n < 2)
    const bool class_pairs = rows > 0;
    for (int i = 0; i + 1 < n && rows < INTERPOLATION_ROWS && !class_pairs; i += 2) {
        pairs[rows][0] = i;
        pairs[rows][1] = i + 1;
        rows++;
    }
    if (rows == 0) return 0;
    float *z = xmalloc((size_t)rows * steps * L * sizeof(float));
    uint8_t *row_labels = xmalloc((size_t)rows * steps);
    for (int r = 0; r < rows; r++)
        for (int s = 0; s < steps; s++) {
            float t = (float)s / (steps - 1);
            for (int j = 0; j < L; j++)
                z[((size_t)r * steps + s) * L + j] = (1 - t) * codes[(size_t)pairs[r][0] * L + j] +
                                                      t * codes[(size_t)pairs[r][1] * L + j];
            row_labels[r * steps + s] = labels[pairs[r][t < 0.5f ? 0 : 1]];
        }
    float *pixels = xmalloc((size_t)rows * steps * m->input_dim * sizeof(float));
    decode_points(f, z, row_labels, rows * steps, pixels);
    int rc = write_grid(f, "interpolation.png",
                        m->n_classes ? "Latent interpolation between test images (label switches half way)"
                                     : class_pairs ? "Latent interpolation between test images of classes 0-1, 2-3, ..."
                                                   : "Latent interpolation between two test images per row",
                        pixels, rows * steps, steps, NULL, 0, 0, NULL, 0, 0, 2);
    free(z);
    free(row_labels);
    free(pixels);
    return rc;
}

// CVAE: row c generates class c; each column shares one z ~ N(0, I).
static int figure_class_rows(Figures *f) {
    Model *m = f->m;
    // the data's classes: a cvae trained on fewer than its 10 (class folders) has untrained rows
    const int classes = f->n_classes > 0 && f->n_classes < m->n_classes ? f->n_classes : m->n_classes;
    const int L = m->latent_dim, cols = 10, n = classes * cols;
    char title[400];
    int at = snprintf(title, sizeof title, "Class-conditional generation: row = ");
    if (f->names)   // the class folders' (or Fashion-MNIST's) names, top to bottom
        for (int c = 0; c < classes && at < (int)sizeof title; c++)
            at += snprintf(title + at, sizeof title - (size_t)at, "%s%s", c ? ", " : "", f->names[c]);
    else
        at += snprintf(title + at, sizeof title - (size_t)at, "class 0..%d", classes - 1);
    if (at < (int)sizeof title)
        snprintf(title + at, sizeof title - (size_t)at, ", column = one shared z ~ N(0, I)");
    float *column_z = xmalloc((size_t)cols * L * sizeof(float));
    rng_fill_normal(column_z, (size_t)cols * L, m->cfg.train.seed ^ FIGURE_SEED_SALT, 1000);
    float *z = xmalloc((size_t)n * L * sizeof(float));
    uint8_t *labels = xmalloc((size_t)n);
    for (int c = 0; c < classes; c++)
        for (int k = 0; k < cols; k++) {
            memcpy(z + ((size_t)c * cols + k) * L, column_z + (size_t)k * L, L * sizeof(float));
            labels[c * cols + k] = (uint8_t)c;
        }
    float *pixels = xmalloc((size_t)n * m->input_dim * sizeof(float));
    decode_points(f, z, labels, n, pixels);
    int rc = write_grid(f, "class_rows.png", title, pixels, n, cols, NULL, 0, 0, NULL, 0, 0, 2);
    free(column_z);
    free(z);
    free(labels);
    free(pixels);
    return rc;
}

// A VQ-VAE's codebook usage on the test set: code frequencies sorted in decreasing order.
static int figure_codebook_usage(Figures *f, const DeviceDataset *test) {
    Model *m = f->m;
    const int K = m->vq_size, S = m->vq_positions;
    long *counts = xcalloc((size_t)K, sizeof(long));
    int32_t *codes = xmalloc((size_t)m->max_batch * S * sizeof(int32_t));
    for (int start = 0; start < test->n; start += m->max_batch) {
        int B = test->n - start < m->max_batch ? test->n - start : m->max_batch;
        m->be->gather_batch(m->be, m->x, test->images, NULL, start, NULL, B, test->dim, false, 0);
        model_forward(m, B, EPS_ZERO);
        model_vq_read_codes(m, B, codes);
        for (long i = 0; i < (long)B * S; i++) counts[codes[i]]++;
    }
    double total = (double)test->n * S, entropy = 0.0;
    double *x = xmalloc((size_t)K * sizeof(double)), *y = xmalloc((size_t)K * sizeof(double));
    int used = 0;
    for (int k = 0; k < K; k++) {
        if (counts[k] > 0) used++;
        double p = counts[k] / total;
        if (p > 0) entropy -= p * log(p);
        y[k] = p;
    }
    for (int k = 0; k < K; k++) x[k] = k + 1;
    for (int i = 1; i < K; i++)   // sort y descending (insertion sort: K is small)
        for (int j = i; j > 0 && y[j] > y[j - 1]; j--) {
            double t = y[j];
            y[j] = y[j - 1];
            y[j - 1] = t;
        }
    char path[1200], title[200];
    snprintf(path, sizeof path, "%s/codebook_usage.png", f->dir);
    snprintf(title, sizeof title, "Codebook usage on the test set: %d of %d codes used, perplexity %.1f", used, K,
             exp(entropy));
    const double *series[1] = {y};
    int rc = plot_lines(path, title, "code rank (most used first)", "fraction of positions", x, series, NULL, 1, K,
                        true, f->err, f->errlen);
    if (rc == 0) say("wrote %s", path);
    free(counts);
    free(codes);
    free(x);
    free(y);
    return rc;
}

// values[k] = the number keys[k] of log.jsonl's line `line_number`; -1 with the line named if
// the line is not JSON (a truncated or edited log) or lacks one of them, or one is not finite
// (1e400: cuvae writes no such number, and the curve would leave the point out unsaid).
static int log_line_numbers(const char *path, int line_number, const char *line, const char *const *keys,
                            int n_keys, double *values, char *err, size_t errlen) {
    cJSON *j = cJSON_Parse(line);
    int rc = 0;
    if (!j) rc = set_error(err, errlen, "%s: line %d: not valid JSON (a truncated or edited log?)", path, line_number);
    for (int k = 0; k < n_keys && rc == 0; k++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (!cJSON_IsNumber(item))
            rc = set_error(err, errlen, "%s: line %d: missing number \"%s\"", path, line_number, keys[k]);
        else if (!isfinite(item->valuedouble))
            rc = set_error(err, errlen, "%s: line %d: \"%s\" is not a finite number", path, line_number, keys[k]);
        else
            values[k] = item->valuedouble;
    }
    cJSON_Delete(j);
    return rc;
}

// A run's log.jsonl (if there is one): every line JSON with its epoch number in order
// (run_log_check), checked before plot says or writes anything, so that a damaged log is the
// one line plot prints; the figures then read their numbers from lines known to be in order.
static int check_log_lines(const char *run_dir, char *err, size_t errlen) {
    char path[1200];
    snprintf(path, sizeof path, "%s/log.jsonl", run_dir);
    return run_log_check(path, -1, NULL, err, errlen);
}

// The loss curves' numbers from a run's log.jsonl, read whole (every value checked) before
// plot says what it will draw: a damaged value is then the one line plot prints.
enum { LOG_KEYS = 5 };
typedef struct {
    char path[1200];            // RUN_DIR/log.jsonl
    bool found;                 // it is there (a run given as a checkpoint alone has none)
    bool validation;            // the run logged val_* (data.validation), not test_*
    int n;                      // epochs (lines) read
    double *series[LOG_KEYS];   // (n) each: epoch, then the kind's four losses
} LogSeries;

static void log_series_free(LogSeries *log) {
    for (int k = 0; k < LOG_KEYS; k++) free(log->series[k]);
}

// gan: the discriminator's and generator's losses; the others: the objective and the test (or
// validation) loss and its two terms (an aae's second: its discriminator's loss on z).
static int log_series_read(LogSeries *log, const char *run_dir, const Model *m, char *err, size_t errlen) {
    memset(log, 0, sizeof *log);
    snprintf(log->path, sizeof log->path, "%s/log.jsonl", run_dir);
    if (access(log->path, F_OK) != 0) return 0;
    log->found = true;
    char *text = read_text_file(log->path, NULL, err, errlen);
    if (!text) return -1;
    log->validation = strstr(text, "\"val_loss\"") != NULL;
    const bool val = log->validation;
    const char *gan_keys[LOG_KEYS] = {"epoch", "train_d_loss", "train_g_loss", "val_d_loss_real", "val_d_loss_fake"};
    const char *vae_keys[LOG_KEYS] = {"epoch", "train_loss", val ? "val_loss" : "test_loss", val ? "val_rec" : "test_rec",
                                      m->aae ? (val ? "val_d_loss" : "test_d_loss") : val ? "val_kl" : "test_kl"};
    const char *const *keys = m->gan ? gan_keys : vae_keys;
    int cap = 64, rc = 0, line_number = 0;
    for (int k = 0; k < LOG_KEYS; k++) log->series[k] = xmalloc(cap * sizeof(double));
    for (char *line = strtok(text, "\n"); line && rc == 0; line = strtok(NULL, "\n")) {
        line_number++;
        if (log->n == cap) {
            cap *= 2;
            for (int k = 0; k < LOG_KEYS; k++) {
                double *grown = realloc(log->series[k], cap * sizeof(double));
                if (!grown) {
                    fprintf(stderr, "cuvae: out of memory reading %s\n", log->path);
                    exit(CUVAE_EXIT_BAD_INPUT);
                }
                log->series[k] = grown;
            }
        }
        double row[LOG_KEYS];
        rc = log_line_numbers(log->path, line_number, line, keys, LOG_KEYS, row, err, errlen);
        for (int k = 0; k < LOG_KEYS && rc == 0; k++) log->series[k][log->n] = row[k];
        if (rc == 0) log->n++;
    }
    free(text);
    return rc;
}

// Whether the curves can be drawn; says why not (and removes stale curves) where they cannot.
static bool log_series_drawable(Figures *f, const LogSeries *log) {
    if (!log->found)   // a run given only as a checkpoint: no curves to draw
        say("%s not found: loss curves skipped%s", log->path, remove_stale_curves(f->dir));
    else if (log->n == 0)
        say("%s holds no epoch yet: loss curves skipped%s", log->path, remove_stale_curves(f->dir));
    return log->found && log->n > 0;
}

static int figure_loss_curves(Figures *f, const LogSeries *log) {
    if (!log_series_drawable(f, log)) return 0;
    const int n = log->n;
    const double *epoch = log->series[0], *train = log->series[1], *test = log->series[2];
    const double *rec = log->series[3], *kl = log->series[4];
    const bool validation = log->validation;
    const char *split = validation ? "validation" : "test";
    char out[1200];
    snprintf(out, sizeof out, "%s/loss_curves.png", f->dir);
    const double *losses[2] = {train, test};
    // nats only where the terms are (loss_units): a per-pixel MSE is not
    const LossUnits units = loss_units(&f->m->cfg);
    char split_name[96], curves_title[128], terms_axis[64];
    if (units.exact_nll)   // made: one term, the likelihood itself
        snprintf(split_name, sizeof split_name, "%s (exact -log p(%s))", split,
                 f->m->cfg.model.prior_of[0] ? "codes" : "x");   // (a prior over a VQ-VAE's codes)
    else if (units.has_kl)   // (units.second: KL, or a VQ-VAE's VQ term)
        snprintf(split_name, sizeof split_name, "%s (rec + %s%s)", split, units.second,
                 units.nats ? "" : ", mixed units");
    else   // an AE: the reconstruction alone
        snprintf(split_name, sizeof split_name, "%s (reconstruction, %s)", split, units.rec);
    snprintf(curves_title, sizeof curves_title, "Loss per epoch, per example%s",
             units.nats ? " (nats)" : "");
    snprintf(terms_axis, sizeof terms_axis, "%s", units.nats ? "nats / example" : "per example");
    const char *names[2] = {"train (weighted objective)", split_name};
    int rc = plot_lines(out, curves_title, "epoch", terms_axis, epoch, losses, names, 2, n, false, f->err,
                        f->errlen);
    if (rc == 0) say("wrote %s", out);
    if (rc == 0 && !units.exact_nll) {   // (made has one term)
        snprintf(out, sizeof out, "%s/loss_terms.png", f->dir);
        const double *terms[2] = {rec, kl};
        char rec_name[64], kl_name[64], title[128];
        snprintf(rec_name, sizeof rec_name, "%s reconstruction (%s)", split, units.rec);
        if (f->m->aae) snprintf(kl_name, sizeof kl_name, "%s discriminator loss (nats)", split);
        else snprintf(kl_name, sizeof kl_name, "%s %s (%s)", split, units.second, units.second_unit);
        snprintf(title, sizeof title, "%s loss terms per epoch, per example",
                 validation ? "Validation" : "Test");
        const char *term_names[2] = {rec_name, kl_name};
        bool positive = true;
        for (int i = 0; i < n; i++) positive = positive && rec[i] > 0 && kl[i] > 0;
        rc = plot_lines(out, title, "epoch", terms_axis, epoch, terms, term_names, 2, n, positive,
                        f->err, f->errlen);
        if (rc == 0) say("wrote %s", out);
    }
    return rc;
}

// gan: the generator's samples of the fixed z over training, the first row of each epoch's
// progress/samples_epoch_NNN.png stacked (one row per epoch, at most GAN_PROGRESS_ROWS evenly spaced).
#define GAN_PROGRESS_ROWS 25
#define GAN_PROGRESS_PAD 2   // epoch_images' grid padding
static int compare_ints(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int figure_gan_progress(Figures *f, const char *run_dir) {
    // the epochs with an image (every epoch, or every train.epoch_images_every-th and the last; any count)
    int *epochs = NULL, n_epochs = 0, cap = 0;
    char progress[1200];
    snprintf(progress, sizeof progress, "%s/progress", run_dir);
    DIR *d = opendir(progress);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        int epoch;
        char canonical[64];   // (the name train writes: none other, e.g. a temp file or _+5)
        if (sscanf(e->d_name, "samples_epoch_%9d.png", &epoch) != 1 || epoch < 1) continue;
        snprintf(canonical, sizeof canonical, "samples_epoch_%03d.png", epoch);
        if (strcmp(canonical, e->d_name) != 0) continue;
        char image[1500];   // (a folder or a link to nothing under that name is no epoch's image)
        struct stat st;
        snprintf(image, sizeof image, "%s/%s", progress, e->d_name);
        if (stat(image, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n_epochs == cap) {
            cap = cap ? 2 * cap : 256;
            int *grown = realloc(epochs, (size_t)cap * sizeof *epochs);
            if (!grown) {
                fprintf(stderr, "cuvae: out of host memory (the epochs of %s)\n", progress);
                exit(CUVAE_EXIT_BAD_INPUT);
            }
            epochs = grown;
        }
        epochs[n_epochs++] = epoch;
    }
    if (d) closedir(d);
    if (n_epochs) qsort(epochs, (size_t)n_epochs, sizeof *epochs, compare_ints);
    if (n_epochs == 0) {
        fprintf(stderr, "cuvae: %s/progress/samples_epoch_*.png not found (train.epoch_images off?): the samples "
                "over training are skipped\n", run_dir);
        free(epochs);
        return 0;
    }
    const int rows = n_epochs < GAN_PROGRESS_ROWS ? n_epochs : GAN_PROGRESS_ROWS;
    const int band = f->rows + GAN_PROGRESS_PAD;   // one tile row and the padding above it
    const size_t C = (size_t)f->channels;
    uint8_t *stack = NULL;
    int width = 0, rc = 0;
    for (int r = 0; r < rows && rc == 0; r++) {
        const int e = epochs[rows == 1 ? 0 : (int)((long)r * (n_epochs - 1) / (rows - 1))];
        char path[1200];
        snprintf(path, sizeof path, "%s/progress/samples_epoch_%03d.png", run_dir, e);
        int w, h, channels;
        uint8_t *grid = png_read(path, &w, &h, &channels, f->err, f->errlen);
        if (!grid) {
            rc = -1;
            break;
        }
        if (h < band + GAN_PROGRESS_PAD || (stack && w != width) || (size_t)channels != C) {
            rc = set_error(f->err, f->errlen, "%s: %d x %d is not a grid of %d-pixel samples like the other epochs'",
                           path, w, h, f->rows);
        } else {
            if (!stack) {
                width = w;
                stack = xmalloc((size_t)width * C * (rows * band + GAN_PROGRESS_PAD));
            }
            const size_t row_bytes = (size_t)width * C;
            memcpy(stack + (size_t)r * band * row_bytes, grid, (size_t)band * row_bytes);
            if (r == rows - 1)   // the padding under the last row
                memcpy(stack + (size_t)rows * band * row_bytes, grid + (size_t)band * row_bytes,
                       (size_t)GAN_PROGRESS_PAD * row_bytes);
        }
        free(grid);
    }
    if (rc == 0) {
        char out[1200], title[160];
        snprintf(out, sizeof out, "%s/samples_over_training.png", f->dir);
        snprintf(title, sizeof title, "Generator samples of the same z after epochs %d .. %d (one row per epoch%s)",
                 epochs[0], epochs[n_epochs - 1], rows < n_epochs ? ", evenly spaced" : "");
        rc = plot_image_channels(out, title, stack, width, rows * band + GAN_PROGRESS_PAD, f->channels, NULL, 0, 0,
                                 NULL, 0, 0, f->err, f->errlen);
        if (rc == 0) say("wrote %s", out);
    }
    free(stack);
    free(epochs);
    return rc;
}

// gan: the discriminator's and the generator's losses per epoch (log.jsonl).
static int figure_gan_curves(Figures *f, const LogSeries *log) {
    if (!log_series_drawable(f, log)) return 0;
    char out[1200];
    snprintf(out, sizeof out, "%s/loss_curves.png", f->dir);
    const double *series[4] = {log->series[1], log->series[2], log->series[3], log->series[4]};
    const char *names[4] = {"train D", "train G: -log D(G(z))", "val: D on real", "val: D on fakes"};
    int rc = plot_lines(out, "GAN losses per epoch (BCE, nats/example)", "epoch", "nats / example", log->series[0],
                        series, names, 4, log->n, false, f->err, f->errlen);
    if (rc == 0) say("wrote %s", out);
    return rc;
}

int figures_write_all(const char *run_dir, const char *const *overrides, int n_overrides,
                      const FigureOptions *o, char *err, size_t errlen) {
    // the figures' paths (RUN_DIR/figures/NAME.png, gnuplot's temp files beside them) and the
    // messages that name them are built in fixed buffers: a longer RUN_DIR was cut short unsaid
    // (the checkpoint read from a truncated path, its error cut off too); train --out's bound
    size_t run_dir_length = strlen(run_dir);
    while (run_dir_length > 1 && run_dir[run_dir_length - 1] == '/') run_dir_length--;   // (a completed name's /)
    if (run_dir_length > RUN_DIR_MAX_BYTES)
        return set_error(err, errlen, "plot: RUN_DIR is %zu bytes long, more than the %d plot takes: give a shorter "
                         "path to it (cd into the folder and run cuvae plot .)", run_dir_length, RUN_DIR_MAX_BYTES);
    if (!plot_available())
        return set_error(err, errlen, "plot: gnuplot with the pngcairo terminal is needed "
                                      "(apt-get install gnuplot-nox, or make deps)");
    struct stat run_st;
    if (stat(run_dir, &run_st) == 0 && !S_ISDIR(run_st.st_mode)) {
        const char *slash = strrchr(run_dir, '/');
        return set_error(err, errlen, "plot: %s is a file; give the run folder that holds it (e.g. %.*s)", run_dir,
                         slash ? (int)(slash - run_dir) : 1, slash ? run_dir : ".");
    }
    if (run_folder_check_figures(run_dir, err, errlen) != 0) return -1;
    if (check_umask_keeps_owner(run_dir, err, errlen) != 0) return -1;
    char ckpt[1100], dir[1100];
    snprintf(ckpt, sizeof ckpt, "%s/model.safetensors", run_dir);
    snprintf(dir, sizeof dir, "%s/figures", run_dir);
    Config cfg;
    FileStamp first_read;   // the figures must come from one version of the checkpoint (and of the log)
    file_stamp(ckpt, &first_read);
    if (checkpoint_read_config(ckpt, &cfg, overrides, n_overrides, err, errlen) != 0) return -1;
    char config_path[1100];
    snprintf(config_path, sizeof config_path, "%s/config.json", run_dir);
    if (access(config_path, F_OK) == 0) {   // the figures draw on both: they must be one run's
        // (the same overrides on both sides: a prior's moved VQ-VAE, --set model.prior_of)
        Config run_cfg, stored;
        if (config_load_stored(&run_cfg, config_path, overrides, n_overrides, err, errlen) != 0 ||
            checkpoint_read_config(ckpt, &stored, overrides, n_overrides, err, errlen) != 0 ||
            config_same_run(&stored, &run_cfg, ckpt, ", not the one in config.json: the figures would mix two "
                            "runs", err, errlen) != 0)
            return -1;
    }
    if (check_log_lines(run_dir, err, errlen) != 0) return -1;
    Dataset test_set;
    Config data_cfg;   // the run's test set: carved and binarized with the training run's train.seed
    if (checkpoint_data_config(ckpt, &cfg, overrides, n_overrides, &data_cfg, err, errlen) != 0) return -1;
    if (prior_dataset_load(&data_cfg, NULL, &test_set, err, errlen) != 0) return -1;
    char notes[3000];   // (said once the checks below have passed)
    dataset_load_notes(&data_cfg, NULL, &test_set, notes, sizeof notes);
    if (checkpoint_check_carved_test_set(ckpt, &test_set, err, errlen) != 0) {
        dataset_free(&test_set);
        return -1;
    }
    fputs(notes, stderr);
    eval_prepare_test_set(&data_cfg, &test_set);
    Backend *be = backend_create(cfg.device, err, errlen);
    if (!be) {
        dataset_free(&test_set);
        return -1;
    }
    backend_configure_from(be, &cfg);   // train.precision: the checkpoint's (or --set's)
    if (backend_precision_note(be, &cfg)) fputs(backend_precision_note(be, &cfg), stderr);
    Model m;
    if (model_create_forward_only(&m, &cfg, be, eval_model_rows(1000, test_set.n, 0, 0, 0), err, errlen) != 0) {
        be->destroy(be);
        dataset_free(&test_set);
        return -1;
    }
    int rc = checkpoint_load_params(&m, ckpt, err, errlen);
    if (rc == 0) rc = checkpoint_check_unchanged(ckpt, &first_read, err, errlen);
    if (rc != 0) {
        model_destroy(&m);
        be->destroy(be);
        dataset_free(&test_set);
        return -1;
    }
    Figures f = {dir, &m, 1, 0, 0, 10, NULL, err, errlen, false};
    if (strcmp(cfg.data.dataset, "files") == 0) {   // your own data: its classes (up to 10 colours), or none
        f.n_classes = test_set.n_classes <= 10 ? test_set.n_classes : 0;
        f.names = (const char *const *)test_set.class_names;
        if (test_set.n_classes > 10)
            fprintf(stderr, "cuvae: plot: %d classes: the scatter is drawn in one colour (at most 10 are told apart)\n",
                    test_set.n_classes);
    } else {
        f.names = class_names(&f);
    }
    if (!m.prior_classes && !model_image_shape(&m, &f.channels, &f.rows, &f.cols)) {
        char why[200];
        model_not_image_reason(&m, why, sizeof why);
        set_error(err, errlen, "plot: %s (its figures draw images)", why);
        model_destroy(&m);
        be->destroy(be);
        dataset_free(&test_set);
        return -1;
    }
    if (m.prior_classes) f.rows = f.cols = (int)lround(sqrt((double)m.input_dim));   // (its code grid; unused)
    DeviceDataset test;
    device_dataset_upload(be, &test_set, &test);
    const int n = test.n, L = m.latent_dim;
    float *codes = xmalloc((size_t)(n > 0 ? n : 1) * (L > 0 ? L : 1) * sizeof(float));
    if (!m.autoregressive && !m.gan) eval_encode(&m, &test, n, codes);
    // codes that overflowed (a diverged model whose weights are finite): refused before any figure
    // is drawn, naming the checkpoint (the scatter, histograms and t-SNE would drop or choke on them)
    for (size_t k = 0; rc == 0 && !m.autoregressive && !m.gan && k < (size_t)n * L; k++)
        if (!isfinite(codes[k]))
            rc = set_error(err, errlen, "plot: %s: the encoder gives test image %zu a code that is not finite (z%zu "
                           "= %g): the model has diverged", ckpt, k / (size_t)L, k % (size_t)L + 1, codes[k]);
    // figures a small test set cannot give, skipped and said so (the plan's count leaves them out)
    const bool encoded = !m.gan && !m.autoregressive && !m.vq;
    // a decoder that overflows on finite codes (finite weights): refused before any figure too,
    // from the reconstructions of the first test images (the figures would draw NaN as black)
    if (rc == 0 && encoded && n > 0) {
        const int k = n < 16 ? n : 16, D = m.input_dim;
        float *pixels = xmalloc((size_t)k * D * sizeof(float));   // (k, D)
        decode_points(&f, codes, test_set.labels, k, pixels);
        if (f.overflow)   // (finite outputs give finite pixels: the flag is the whole check)
            rc = set_error(err, errlen, "plot: %s: the decoder gives the first test images' codes outputs that are not "
                           "finite: the model has diverged", ckpt);
        free(pixels);
    }
    const bool tsne_skipped = encoded && L > 2 && n < TSNE_MIN_POINTS;
    const bool interpolation_skipped = encoded && n < 2;

    const bool tsne_given = o->tsne_points_given || o->tsne_iterations_given;
    const char *tsne_option = o->tsne_points_given ? "--tsne-points" : "--tsne-iterations";
    if ((m.gan || m.autoregressive) && (o->latent_range[0] < o->latent_range[1] || tsne_given))
        rc = set_error(err, errlen, "plot: %s%s the latent scatter of the encoded test set; kind \"%s\" has no "
                       "encoder to place test images in a latent space", tsne_given ? tsne_option : "",
                       tsne_given ? " shapes" : "--latent-range sets the axes of", model_kind_name(m.cfg.model.kind));
    else if ((tsne_given || o->latent_range[0] < o->latent_range[1]) && m.vq)
        rc = set_error(err, errlen, "plot: %s %s a latent scatter; a vq_vae's figures have no latent scatter",
                       tsne_given ? tsne_option : "--latent-range", tsne_given ? "shapes the t-SNE of" : "sets the axes of");
    else if (tsne_given && L <= 2)
        rc = set_error(err, errlen, "plot: %s shapes the t-SNE of the latent scatter; this model's latent dim is %d, "
                       "%s", tsne_option, L, L == 2 ? "drawn directly with no t-SNE" : "which has no latent scatter "
                       "(latent_histograms.png shows it)");
    else if (o->scatter_draws && (!m.variational || m.gan || m.autoregressive))
        rc = set_error(err, errlen, "plot: --z sample scatters draws z ~ q(z|x); kind \"%s\" has %s",
                       model_kind_name(m.cfg.model.kind), m.gan || m.autoregressive ? "no encoder"
                       : m.vq ? "no latent distribution (its figures have no latent scatter)"
                              : "a deterministic encoder: its codes are the scatter");
    else if (o->z_given && !o->scatter_draws && model_kind_info(m.cfg.model.kind)->z_refusal)
        rc = set_error(err, errlen, "plot: --z mean places the means of q(z|x) in the latent scatter; %s",
                       m.cfg.model.prior_of[0] ? "a pixelcnn prior has no latent"
                                               : model_kind_info(m.cfg.model.kind)->z_refusal);
    else if (o->scatter_draws && L < 2)
        rc = set_error(err, errlen, "plot: --z sample scatters draws z ~ q(z|x); this model's latent dim is 1 (no "
                       "latent scatter: latent_histograms.png shows the means)");
    else if (o->latent_range[0] < o->latent_range[1] && L != 2)
        rc = set_error(err, errlen, "plot: --latent-range sets the axes of a 2-D latent scatter; this model's "
                       "latent dim is %d (%s)", L, L == 1 ? "no latent scatter: latent_histograms.png shows it"
                       : "its scatter is a t-SNE");
    // the key that made the test set this small, for the skip lines below
    const char *test_size_key = data_cfg.data.test_limit > 0 ? "data.test_limit"
                              : data_cfg.data.test[0] ? "data.test" : "data.test_fraction";
    LogSeries log;   // (read before the plan: a damaged value is the one line plot prints)
    if (rc == 0) rc = log_series_read(&log, run_dir, &m, err, errlen);
    else memset(&log, 0, sizeof log);
    // figures/ made once every check has passed (a refused plot leaves no empty folder)
    if (rc == 0 && (make_dirs(dir, err, errlen) != 0 || remove_stale_temp_files(dir, err, errlen) != 0)) rc = -1;
    if (rc == 0) {   // the plan, so the "wrote" lines read as progress
        const bool curves = log.n > 0;
        int count = m.gan ? 2 + (curves ? 1 : 0)
                  : m.autoregressive ? 1 + (curves ? 1 : 0)
                  : m.vq ? 3 + (curves ? 2 : 0)
                         : 4 + (L >= 2) + (L == 2 && m.n_classes == 0) + (m.n_classes > 0) + (curves ? 2 : 0) +
                           (m.aae && L == 2) - tsne_skipped - interpolation_skipped;
        char scatter[96] = "";
        if (L > 2 && !m.vq && !m.gan && !tsne_skipped)
            snprintf(scatter, sizeof scatter, "; the scatter is a t-SNE of %d codes, the slow part",
                     o->tsne_points < n ? o->tsne_points : n);
        say("plot: drawing %d figures into %s%s", count, dir, scatter);
        if (tsne_skipped)
            fprintf(stderr, "cuvae: plot: no latent_scatter.png: its t-SNE needs at least %d test images, the run's "
                    "test set has %d (%s)%s\n", TSNE_MIN_POINTS, n, test_size_key,
                    remove_stale_figure(dir, "latent_scatter.png"));
        if (interpolation_skipped)
            fprintf(stderr, "cuvae: plot: no interpolation.png: it needs at least 2 test images, the run's test set "
                    "has %d (%s)%s\n", n, test_size_key, remove_stale_figure(dir, "interpolation.png"));
        if (L == 2 && m.n_classes > 0 && !m.gan && !m.autoregressive && !m.vq)
            fprintf(stderr, "cuvae: plot: no manifold.png: a cvae's decoder takes a class besides z, so one grid "
                    "over z is not its manifold (class_rows.png decodes one z for each class)%s\n",
                    remove_stale_figure(dir, "manifold.png"));
    }
    // the curves first: a damaged log.jsonl stops plot before it has drawn anything
    if (rc == 0) rc = m.gan ? figure_gan_curves(&f, &log) : figure_loss_curves(&f, &log);
    log_series_free(&log);
    if (rc == 0) rc = figure_samples(&f);
    if (m.gan) {   // no encoder: samples, samples over training, the two players' losses
        if (rc == 0) rc = figure_gan_progress(&f, run_dir);
    } else if (m.autoregressive) {
        // made: samples and the -log p(x) curve only (no latent, nothing reconstructed)
    } else if (m.vq) {   // no latent distribution to scatter or histogram: the codebook's usage instead
        if (rc == 0) rc = figure_reconstructions(&f, &test, codes, test_set.labels);
        if (rc == 0) rc = figure_codebook_usage(&f, &test);
    } else {
        if (rc == 0) rc = figure_reconstructions(&f, &test, codes, test_set.labels);
        if (rc == 0 && L >= 2 && !(m.aae && L == 2) && !tsne_skipped && o->scatter_draws) {
            float *draws = xmalloc((size_t)n * L * sizeof(float));   // (n, L)
            eval_encode_draws(&m, &test, n, draws);
            rc = figure_scatter(&f, draws, test_set.labels, n, o);
            free(draws);
        } else if (rc == 0 && L >= 2 && !(m.aae && L == 2) && !tsne_skipped)
            rc = figure_scatter(&f, codes, test_set.labels, n, o);
        if (rc == 0 && m.aae && L == 2) rc = figure_prior_against_codes(&f, codes, test_set.labels, n, o);
        if (rc == 0) rc = figure_histograms(&f, codes, n);
        if (rc == 0 && L == 2 && m.n_classes == 0) rc = figure_manifold(&f, codes, n);
        if (rc == 0 && !interpolation_skipped) rc = figure_interpolation(&f, codes, test_set.labels, n);
        if (rc == 0 && m.n_classes > 0) rc = figure_class_rows(&f);
    }
    // a train that finished an epoch meanwhile: the curves (drawn from the log first) and the
    // model's figures may be of two epochs
    // (they are removed: figures of two epochs, or of the model an --overwrite replaced, would stay
    // beside the run's model, and report would show them)
    if (rc == 0 && file_stamp_changed(ckpt, &first_read)) {
        run_folder_remove_figures(run_dir);
        rc = set_error(err, errlen, "plot: %s was replaced while plot drew (a train is writing %s): the figures "
                       "would mix two epochs and are removed; run plot again", ckpt, run_dir);
    }

    free(codes);
    device_dataset_free(be, &test);
    model_destroy(&m);
    be->destroy(be);
    dataset_free(&test_set);
    return rc;
}

// plot.h: figures with axes, tick labels and legends, drawn by gnuplot (pngcairo) run as a child process.
//
// Every function writes the data and a script to temporary files ($TMPDIR or /tmp), runs
// `gnuplot script`, and has gnuplot draw into a temporary file beside png_path that is renamed
// onto png_path only when gnuplot succeeded, so a PNG is either complete or absent. All
// temporary files are removed. On failure they return -1 with one line in err (the path and,
// when gnuplot failed, its first error line); 0 on success. Titles and labels are drawn
// literally (no gnuplot markup); NULL means none. No X display is needed.
#ifndef CUVAE_PLOT_H
#define CUVAE_PLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Canvas of plot_scatter and plot_lines, in pixels.
#define PLOT_WIDTH 800
#define PLOT_HEIGHT 600

// The qualitative palette (matplotlib's tab10) used for classes and series, as RGB.
// Class / series k gets plot_palette[k % 10].
extern const uint8_t plot_palette[10][3];

// gnuplot on PATH and has the pngcairo terminal (checked once, then cached).
bool plot_available(void);

// 0, or -1 with err when CUVAE_GNUPLOT_TIMEOUT is set but not a whole number of seconds from 1 to
// 86400: the commands that draw through gnuplot (plot, sample --title) check it before their work.
int plot_check_environment(char *err, size_t errlen);

// Scatter of N 2-D points coloured by integer label (0..n_classes-1, n_classes <= 10) with a legend
// outside on the right naming each class (class_names may be NULL -> "0".."9"). Points are small and
// slightly transparent, drawn in a fixed shuffled order so no class hides the others. labels NULL:
// one colour, no legend (n_classes ignored). Non-finite points are skipped. PLOT_WIDTH x PLOT_HEIGHT.
int plot_scatter(const char *png_path, const char *title, const char *xlabel, const char *ylabel,
                 const float *xy /* (N, 2) */, const uint8_t *labels /* (N) or NULL */, int n, int n_classes,
                 const char *const *class_names, char *err, size_t errlen);
// The same with fixed axes: range = {x_min, x_max, y_min, y_max} (NULL: fitted to the points),
// so scatters of several runs can share axes; points outside are left out of the view.
int plot_scatter_in_range(const char *png_path, const char *title, const char *xlabel, const char *ylabel,
                          const float *xy /* (N, 2) */, const uint8_t *labels /* (N) or NULL */, int n,
                          int n_classes, const char *const *class_names, const double *range /* (4) */,
                          char *err, size_t errlen);

// Grid of histograms (densities), one per dimension: values (N, dims) row-major; at most max_panels
// dims shown (the first ones); panel j is titled z_{j+1} (z_1, z_2, ... as in lecture notation),
// with the N(0,1) density curve overlaid for reference when overlay_normal. Each panel spans the
// 0.1%..99.9% quantiles of its values (widened to [-4, 4] when overlay_normal). The canvas size
// depends only on the number of panels: see plot_histograms_size.
int plot_histograms(const char *png_path, const char *title, const float *values, int n, int dims,
                    int max_panels, bool overlay_normal, char *err, size_t errlen);
void plot_histograms_size(int panels, int *width, int *height);

// Line chart: n_series (<= 10) curves sharing x; series y[s] (n_points each), names[s] for the legend
// (outside on the right; names NULL -> "series 1", ..., or no legend for a single series). Optional
// log-scale y, with ticks chosen so that even a range under one decade has several labels.
// Non-finite values (and values <= 0 when log_y) leave gaps. PLOT_WIDTH x PLOT_HEIGHT.
int plot_lines(const char *png_path, const char *title, const char *xlabel, const char *ylabel,
               const double *x, const double *const *y, const char *const *names, int n_series, int n_points,
               bool log_y, char *err, size_t errlen);

// An image (gray, values 0..255, width x height, row 0 at the top) shown with a title and optional axes,
// e.g. the 2-D manifold with z1/z2 axes: x from x_min (left edge) to x_max (right edge), y from y_min
// (bottom edge) to y_max (top edge). If both axis labels are NULL, no axes (just the title). Small
// images are enlarged by an integer factor (crisp pixels); see plot_image_size for the canvas size.
int plot_image(const char *png_path, const char *title, const uint8_t *gray, int width, int height,
               const char *xlabel, double x_min, double x_max, const char *ylabel, double y_min, double y_max,
               char *err, size_t errlen);
// The same for (height, width, channels) pixels, channels 1 (gray) or 3 (RGB).
int plot_image_channels(const char *png_path, const char *title, const uint8_t *pixels, int width, int height,
                        int channels, const char *xlabel, double x_min, double x_max, const char *ylabel,
                        double y_min, double y_max, char *err, size_t errlen);
void plot_image_size(int width, int height, bool axes, int *canvas_width, int *canvas_height);

#endif

// figures.h: every figure of a training run (`cuvae plot RUN_DIR`): samples,
// reconstructions, latent scatter (direct or t-SNE), per-dimension histograms,
// 2-D manifold, interpolations, class-conditional rows, loss curves.
#ifndef CUVAE_FIGURES_H
#define CUVAE_FIGURES_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int tsne_points;        // codes embedded by t-SNE when latent_dim > 2 (default 2000)
    bool tsne_points_given; // plot --tsne-points was given (refused where there is no latent scatter)
    int tsne_iterations;    // default 1000
    bool tsne_iterations_given;   // plot --tsne-iterations was given (refused where no t-SNE is drawn)
    int scatter_points;     // points in a direct 2-D scatter (default: the whole test set)
    double latent_range[2]; // plot --latent-range LO:HI: both axes of the direct 2-D scatter
                            // (shared across runs); LO >= HI: fitted to the codes (default)
    bool scatter_draws;     // plot --z sample: the scatter (or its t-SNE) places one z ~ q(z|x) per
                            // test image, not the mean (a vae / cvae; the other figures keep the mean)
    bool z_given;           // plot --z was given (mean or sample: refused where eval --z is)
    bool latent_range_of_prior;   // (set by plot itself) latent_range is the AAE codes' and prior
                                  // draws' common extent, not --latent-range
} FigureOptions;

void figures_default_options(FigureOptions *o);

// Reads RUN_DIR/model.safetensors (+ log.jsonl) and writes RUN_DIR/figures/*.png.
// overrides apply to the stored config (e.g. data.dir, device). Prints each file written.
int figures_write_all(const char *run_dir, const char *const *overrides, int n_overrides,
                      const FigureOptions *o, char *err, size_t errlen);

#endif

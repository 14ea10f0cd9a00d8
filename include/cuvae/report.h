// report.h: one self-contained HTML page over several runs (the lectures
// page): sections from an index JSON, figures side by side, numbers from each
// run's eval.json.
#ifndef CUVAE_REPORT_H
#define CUVAE_REPORT_H

#include <stddef.h>

// index_path: {"title", "intro", "sections": [{"title", "text", "runs": [...],
// "figures": [...]}]}; runs_dir holds one directory per run name. Writes
// runs_dir/index.html (relative links only, no network). A figure a run lacks
// is shown as "not produced for this run" (e.g. a manifold for latent dim 10). generator: the
// program and build the page's footer names ("cuvae 0.1.0, commit abc1234").
int report_write(const char *index_path, const char *runs_dir, const char *generator, char *err, size_t errlen);

#endif

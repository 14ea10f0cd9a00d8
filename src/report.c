// report.c: the lectures page: reads the index JSON and each run's
// config.json / eval.json, and writes one HTML file with relative image links
// and inline CSS (opens from disk, no network).
#include "cuvae/report.h"
#include "cuvae/common.h"
#include "cuvae/config.h"
#include "cuvae/eval.h"
#include "cuvae/run_folder.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


static const char *caption_of(const char *figure) {
    for (size_t i = 0; i < PLOT_FIGURE_COUNT; i++)
        if (strcmp(plot_figures[i].name, figure) == 0) return plot_figures[i].caption;
    return figure;
}

static void html_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static cJSON *read_json(const char *path, char *err, size_t errlen) {
    char *text = read_text_file(path, NULL, err, errlen);
    if (!text) return NULL;
    if (config_check_json_text(text, path, err, errlen) != 0) {   // UTF-8, no \u0000 (it would cut a string)
        free(text);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);   // (1: nothing but spaces after the value)
    const long control = j ? json_raw_control_character(text) : -1;
    if (!j) {
        set_error(err, errlen, "%s: not valid JSON (at byte %ld)", path, end ? (long)(end - text) : 0L);
    } else if (control >= 0) {
        set_error(err, errlen, "%s: byte %ld: a raw control character (0x%02x) in a string: JSON needs it escaped",
                  path, control, (unsigned char)text[control]);
        cJSON_Delete(j);
        j = NULL;
    }
    free(text);
    return j;
}

static const char *json_string(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static double json_number(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(item) ? item->valuedouble : NAN;
}

// A Parzen estimate's standard error for its cell: "n/a" where eval.json holds null (one test image).
static const char *std_error_cell(const cJSON *parzen, char *buf, size_t len) {
    const double v = json_number(parzen, "std_error");
    if (isfinite(v)) snprintf(buf, len, "%.1f", v);
    else snprintf(buf, len, "n/a");
    return buf;
}

// A number as printf's fmt writes it, or "–" where eval.json holds null or leaves it out (the
// page never shows "nan"), into a buffer of NUMBER_TEXT bytes: "%.2f" of the largest double is
// 309 digits, which a shorter one would cut unsaid.
enum { NUMBER_TEXT = 352 };
static const char *number_text(char *buf, size_t len, const char *fmt, double v) {
    if (isfinite(v)) snprintf(buf, len, fmt, v);
    else snprintf(buf, len, "–");
    return buf;
}

// A gan's or an aae's Parzen-window estimate, one cell.
static void parzen_cell(FILE *f, const cJSON *parzen) {
    char ll[NUMBER_TEXT], se[NUMBER_TEXT], sigma[NUMBER_TEXT], samples[NUMBER_TEXT];
    fprintf(f, "<td>Parzen %s ± %s (σ %s, %s samples; a weak metric, higher is better)</td>",
            number_text(ll, sizeof ll, "%.1f", json_number(parzen, "log_likelihood")),
            std_error_cell(parzen, se, sizeof se), number_text(sigma, sizeof sigma, "%.3f", json_number(parzen, "sigma")),
            number_text(samples, sizeof samples, "%.0f", json_number(parzen, "samples")));
}

static void cell_number(FILE *f, double v, int decimals) {
    if (isfinite(v)) fprintf(f, "<td>%.*f</td>", decimals, v);
    else fputs("<td>–</td>", f);
}

// A number with its unit in small type.
static void cell_number_unit(FILE *f, double v, int decimals, const char *unit) {
    if (!isfinite(v)) {
        fputs("<td>–</td>", f);
        return;
    }
    fprintf(f, "<td>%.*f <small>", decimals, v);
    html_text(f, unit);
    fputs("</small></td>", f);
}

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// The numbers row of one run, from its eval.json.
static void write_numbers_row(FILE *f, const char *runs_dir, const char *run) {
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/%s/eval.json", runs_dir, run);
    cJSON *ev = read_json(path, err, sizeof err);
    snprintf(path, sizeof path, "%s/%s/config.json", runs_dir, run);
    cJSON *cfg = read_json(path, err, sizeof err);
    if (cfg) {   // the run's name links to its config; a run not in runs_dir has none to link to
        fputs("<tr><td><a href=\"", f);
        html_text(f, run);
        fputs("/config.json\"><code>", f);
        html_text(f, run);
        fputs("</code></a></td>", f);
    } else {
        fputs("<tr><td><code>", f);
        html_text(f, run);
        fputs("</code></td>", f);
    }
    if (!cfg || !ev) {   // (an eval.json without its config.json: the run is not there either, as report says)
        fputs(cfg ? "<td colspan=\"8\">not evaluated (eval.json missing)</td></tr>\n"
                  : "<td colspan=\"8\">missing (no config.json: not trained into this folder)</td></tr>\n", f);
        cJSON_Delete(ev);
        cJSON_Delete(cfg);
        return;
    }
    const cJSON *model = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "model") : NULL;
    const cJSON *loss = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "loss") : NULL;
    fputs("<td>", f);
    html_text(f, model && json_string(model, "kind") ? json_string(model, "kind") : "?");
    fputs("</td>", f);
    const char *prior_of = model ? json_string(model, "prior_of") : NULL;
    if (prior_of && prior_of[0])   // a PixelCNN over a VQ-VAE's codes: its config's loss keys are the pixels' defaults
        fputs("<td>categorical cross-entropy over the codes (sum over positions)</td>", f);
    else if (loss) {
        const char *reduction = json_string(loss, "reduction");
        const char *over = reduction && strcmp(reduction, "mean") == 0 ? "mean" : "sum";
        char w_rec[NUMBER_TEXT], w_kl[NUMBER_TEXT], beta[NUMBER_TEXT];   // (check_config_weights: numbers)
        fputs("<td>", f);
        html_text(f, json_string(loss, "reconstruction") ? json_string(loss, "reconstruction") : "?");
        const cJSON *codebook = model ? cJSON_GetObjectItemCaseSensitive(model, "codebook") : NULL;
        const char *kind = model ? json_string(model, "kind") : NULL;
        if (codebook)   // a VQ-VAE: no KL weight; its commitment weight beta (tested first: no w_kl either)
            fprintf(f, " (%s over pixels), %s / β %s</td>", over,
                    number_text(w_rec, sizeof w_rec, "%g", json_number(loss, "w_rec")),
                    number_text(beta, sizeof beta, "%g", json_number(codebook, "beta")));
        else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(loss, "capacity"))) {   // γ |KL − C| replaces w_kl
            const cJSON *capacity = cJSON_GetObjectItemCaseSensitive(loss, "capacity");
            char gamma[NUMBER_TEXT], max_nats[NUMBER_TEXT], epochs[NUMBER_TEXT];
            fprintf(f, " (%s over pixels), %s / γ %s |KL − C|, C → %s nats over %s epochs</td>", over,
                    number_text(w_rec, sizeof w_rec, "%g", json_number(loss, "w_rec")),
                    number_text(gamma, sizeof gamma, "%g", json_number(capacity, "gamma")),
                    number_text(max_nats, sizeof max_nats, "%g", json_number(capacity, "max_nats")),
                    number_text(epochs, sizeof epochs, "%g", json_number(capacity, "epochs")));
        } else if (!cJSON_GetObjectItemCaseSensitive(loss, "w_kl") ||
                   (model_kind_info_named(kind) && !model_kind_info_named(kind)->second)) {
            // a MADE, an AE: one term
            fprintf(f, " (%s over pixels), %s</td>", over,
                    number_text(w_rec, sizeof w_rec, "%g", json_number(loss, "w_rec")));
        } else {
            fprintf(f, " (%s over pixels), %s / %s</td>", over,
                    number_text(w_rec, sizeof w_rec, "%g", json_number(loss, "w_rec")),
                    number_text(w_kl, sizeof w_kl, "%g", json_number(loss, "w_kl")));
        }
    }
    else if (model && json_string(model, "kind") && strcmp(json_string(model, "kind"), "gan") == 0)
        fputs("<td>non-saturating GAN BCE (no loss weights)</td>", f);
    else
        fputs("<td>?</td>", f);
    const cJSON *parzen = cJSON_GetObjectItemCaseSensitive(ev, "parzen");
    char a[NUMBER_TEXT], b[NUMBER_TEXT], c[NUMBER_TEXT];   // numbers as printed
    if (cJSON_GetObjectItemCaseSensitive(ev, "d_loss_real")) {   // a gan: the discriminator's losses, Parzen
        cell_number_unit(f, json_number(ev, "test_loss"), 3, "nats, D on real + fake");
        cell_number_unit(f, json_number(ev, "d_loss_real"), 3, "nats, D on real");
        cell_number_unit(f, json_number(ev, "d_loss_fake"), 3, "nats, D on fakes");
        fputs("<td>–</td><td>–</td>", f);
        if (cJSON_IsObject(parzen)) parzen_cell(f, parzen);
        else fputs("<td>–</td>", f);
        fputs("</tr>\n", f);
        cJSON_Delete(ev);
        cJSON_Delete(cfg);
        return;
    }
    // each number with its unit (loss_units, as train and eval say them): nats only for a
    // Bernoulli likelihood summed over pixels; an AE's loss is its reconstruction alone
    Config run_cfg;
    char why[512];
    snprintf(path, sizeof path, "%s/%s/config.json", runs_dir, run);
    bool known = config_load_stored(&run_cfg, path, NULL, 0, why, sizeof why) == 0;
    LossUnits units = {0};
    if (known) units = loss_units(&run_cfg);
    const char *rec_unit = known ? units.rec : "?";
    const bool vq = cJSON_GetObjectItemCaseSensitive(ev, "codes_used") != NULL;
    const bool exact = cJSON_GetObjectItemCaseSensitive(ev, "exact_nll") != NULL;   // a MADE
    if (exact) {   // no KL, no latent: the test loss is -log p(x) itself
        cell_number_unit(f, json_number(ev, "test_loss"), 2, "nats");
        cell_number_unit(f, json_number(ev, "rec"), 2, "nats");
        fputs("<td>–</td><td>–</td><td>–</td>", f);
        if (cJSON_GetObjectItemCaseSensitive(ev, "nll_per_position"))   // a prior over VQ codes
            fprintf(f, "<td>%s (exact, of the codes; %s nats per code position)</td></tr>\n",
                    number_text(a, sizeof a, "%.2f", json_number(ev, "exact_nll")),
                    number_text(b, sizeof b, "%.4f", json_number(ev, "nll_per_position")));
        else
            fprintf(f, "<td>%s (exact, %s bits/dim)</td></tr>\n", number_text(a, sizeof a, "%.2f", json_number(ev, "exact_nll")),
                    number_text(b, sizeof b, "%.4f", json_number(ev, "bits_per_dim")));
        cJSON_Delete(ev);
        cJSON_Delete(cfg);
        return;
    }
    const char *total_unit = !known ? "?" : vq ? "rec + VQ" : units.nats ? "nats" : units.has_kl ? "mixed units"
                                                                                               : units.rec;
    // an eval -o with --z mean: the losses at z = mu, not the sampled test loss (said in each cell)
    const char *z = json_string(ev, "z");
    const bool at_mean = z && strcmp(z, "mean") == 0;
    char total_label[160], rec_label[160];
    snprintf(total_label, sizeof total_label, "%s%s", total_unit, at_mean ? "; at z = μ (eval --z mean)" : "");
    snprintf(rec_label, sizeof rec_label, "%s%s", rec_unit, at_mean ? "; at z = μ" : "");
    cell_number_unit(f, json_number(ev, "test_loss"), units.nats || units.has_kl ? 2 : 4, total_label);
    cell_number_unit(f, json_number(ev, "rec"), units.nats || vq ? 2 : 4, rec_label);
    if (vq)   // the VQ term (commitment), and code usage in place of active units
        cell_number_unit(f, json_number(ev, "vq"), 2, "VQ");
    else if (cJSON_GetObjectItemCaseSensitive(ev, "d_loss"))   // an aae: its discriminator's loss on z
        cell_number_unit(f, json_number(ev, "d_loss"), 3, "nats, D on z");
    else if (known && !units.has_kl)   // an AE: no KL term (its eval.json's kl is 0)
        fputs("<td>– (an AE)</td>", f);
    else
        cell_number_unit(f, json_number(ev, "kl"), 2, "nats");
    cell_number(f, json_number(ev, "rec_mse_at_mean"), 2);
    double active = json_number(ev, "active_units"), latent = json_number(ev, "latent_dim");
    if (vq)
        fprintf(f, "<td>%s / %s codes (perplexity %s)</td>", number_text(a, sizeof a, "%.0f", json_number(ev, "codes_used")),
                number_text(b, sizeof b, "%.0f", json_number(ev, "codebook_size")),
                number_text(c, sizeof c, "%.1f", json_number(ev, "perplexity")));
    else if (isfinite(active) && isfinite(latent))
        fprintf(f, "<td>%.0f / %.0f</td>", active, latent);
    else
        fputs("<td>–</td>", f);
    const cJSON *iw = cJSON_GetObjectItemCaseSensitive(ev, "iw");
    double nll = cJSON_IsObject(iw) ? json_number(iw, "neg_log_px") : NAN;
    if (isfinite(nll)) {   // with what eval says of it: a conditional bound, not the NLL of binary data
        const cJSON *binary = cJSON_GetObjectItemCaseSensitive(iw, "is_nll_of_binary_data");
        const cJSON *conditional = cJSON_GetObjectItemCaseSensitive(iw, "conditional_on_label");
        fprintf(f, "<td>%.2f (K = %s, %s ex.%s%s)</td>", nll, number_text(a, sizeof a, "%.0f", json_number(iw, "k")),
                number_text(b, sizeof b, "%.0f", json_number(iw, "examples")),
                cJSON_IsTrue(conditional) ? "; −log p(x | label)" : "",
                cJSON_IsFalse(binary) ? "; not binary data: not an NLL" : "");
    }
    else if (cJSON_IsObject(parzen))   // an aae
        parzen_cell(f, parzen);
    else
        fputs("<td>–</td>", f);
    fputs("</tr>\n", f);
    cJSON_Delete(ev);
    cJSON_Delete(cfg);
}

static const char *STYLE =
    "body{font-family:sans-serif;max-width:1500px;margin:2em auto;padding:0 1em;color:#222}"
    "h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2.2em;border-bottom:1px solid #ccc}"
    "table.numbers{border-collapse:collapse;margin:.8em 0;font-size:.92em}"
    "table.numbers td,table.numbers th{border:1px solid #ccc;padding:.25em .6em;text-align:right}"
    "table.numbers td:first-child,table.numbers th:first-child{text-align:left}"
    "table.figures{border-collapse:collapse;table-layout:fixed;width:100%}"
    "table.figures td{vertical-align:top;padding:.3em;text-align:center}"
    "table.figures img{width:100%;height:auto;border:1px solid #eee}"   // every figure fills its panel
    "th.run{font-weight:normal;font-family:monospace;font-size:1em}"
    ".desc{color:#555;font-size:.9em}.missing{color:#999;font-style:italic;padding:2em 0}"
    ".caption{font-size:.85em;color:#555;text-align:left;padding-top:.8em}";

// obj's keys: each one of `allowed` (the first n_strings of them strings, the rest arrays), once.
static int check_keys(const cJSON *obj, const char *where, const char *const *allowed, int n_allowed, int n_strings,
                      const char *path, char *err, size_t errlen) {
    if (!cJSON_IsObject(obj))
        return set_error(err, errlen, "%s: %s: expected an object", path, where[0] ? where : "the index");
    const char *dot = where[0] ? "." : "";
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        int k = 0;
        while (k < n_allowed && strcmp(item->string, allowed[k]) != 0) k++;
        if (k == n_allowed)
            return set_error(err, errlen, "%s: %s%s%s: unknown key (allowed: %s, %s%s%s%s%s)", path, where, dot, item->string,
                             allowed[0], allowed[1], n_allowed > 2 ? ", " : "", n_allowed > 2 ? allowed[2] : "",
                             n_allowed > 3 ? ", " : "", n_allowed > 3 ? allowed[3] : "");
        for (const cJSON *other = obj->child; other != item; other = other->next)
            if (strcmp(other->string, item->string) == 0)
                return set_error(err, errlen, "%s: %s%s%s: given twice", path, where, dot, item->string);
        if (k < n_strings ? !cJSON_IsString(item) : !cJSON_IsArray(item))
            return set_error(err, errlen, "%s: %s%s%s: expected %s", path, where, dot, item->string,
                             k < n_strings ? "a string" : "an array");
    }
    return 0;
}

// The index: {"title", "intro", "sections": [{"title", "text", "runs": [...], "figures": [...]}]}.
static int check_index(const cJSON *index, const char *path, char *err, size_t errlen) {
    static const char *const top[] = {"title", "intro", "sections"};
    static const char *const section_keys[] = {"title", "text", "runs", "figures"};
    if (check_keys(index, "", top, 3, 2, path, err, errlen) != 0) return -1;
    const cJSON *sections = cJSON_GetObjectItemCaseSensitive(index, "sections");
    if (!sections) return set_error(err, errlen, "%s: sections: missing (an array of sections)", path);
    int i = 0;
    const cJSON *section;
    cJSON_ArrayForEach(section, sections) {
        char where[32];
        snprintf(where, sizeof where, "sections[%d]", i++);
        if (check_keys(section, where, section_keys, 4, 2, path, err, errlen) != 0) return -1;
        if (!cJSON_GetObjectItemCaseSensitive(section, "runs") || !cJSON_GetObjectItemCaseSensitive(section, "figures"))
            return set_error(err, errlen, "%s: %s: needs \"runs\" and \"figures\" arrays", path, where);
    }
    return 0;
}

// The numbers the page reads from an eval.json: each, where present, a finite number or null
// (a string, a list or 1e400 would be shown as "–", which reads as "not evaluated"); "iw" and
// "parzen" objects (or null). 0, or -1 naming the file and the key.
static int check_eval_numbers(const cJSON *ev, const char *path, char *err, size_t errlen) {
    static const char *const top[] = {"test_loss", "rec", "kl", "vq", "d_loss", "d_loss_real", "d_loss_fake",
                                      "active_units", "latent_dim", "rec_mse_at_mean", "bits_per_dim", "exact_nll",
                                      "nll_per_position", "codes_used", "codebook_size", "perplexity"};
    static const char *const iw_keys[] = {"k", "examples", "neg_log_px"};
    static const char *const parzen_keys[] = {"log_likelihood", "std_error", "samples", "sigma"};
    const struct { const char *object; const char *const *keys; int n; } groups[] = {
        {NULL, top, (int)(sizeof top / sizeof *top)},
        {"iw", iw_keys, (int)(sizeof iw_keys / sizeof *iw_keys)},
        {"parzen", parzen_keys, (int)(sizeof parzen_keys / sizeof *parzen_keys)},
    };
    for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
        const cJSON *obj = groups[g].object ? cJSON_GetObjectItemCaseSensitive(ev, groups[g].object) : ev;
        if (!obj || cJSON_IsNull(obj)) continue;
        if (!cJSON_IsObject(obj))
            return set_error(err, errlen, "%s: \"%s\" must be an object (as cuvae writes it)", path, groups[g].object);
        for (int k = 0; k < groups[g].n; k++) {
            const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, groups[g].keys[k]);
            if (!item || cJSON_IsNull(item) || (cJSON_IsNumber(item) && isfinite(item->valuedouble))) continue;
            return set_error(err, errlen, "%s: \"%s%s%s\" must be a finite number or null (as cuvae writes it)", path,
                             groups[g].object ? groups[g].object : "", groups[g].object ? "." : "", groups[g].keys[k]);
        }
    }
    return 0;
}

// The loss weights the page prints from a run's config.json (loss.w_rec, loss.w_kl,
// model.codebook.beta, loss.capacity's gamma, max_nats and epochs): each, where present, a
// finite number ("ten" was shown as "nan"). The config is not loaded whole: a prior's names its
// VQ-VAE, which need not be where report runs, and an older cuvae's config is still a run of the
// page ("?" where a key is not known).
static int check_config_weights(const cJSON *cfg, const char *path, char *err, size_t errlen) {
    // section, key, and the key inside it (NULL: none)
    const char *const keys[6][3] = {{"loss", "w_rec", NULL}, {"loss", "w_kl", NULL}, {"model", "codebook", "beta"},
                                    {"loss", "capacity", "gamma"}, {"loss", "capacity", "max_nats"},
                                    {"loss", "capacity", "epochs"}};
    for (int k = 0; k < 6; k++) {
        const cJSON *section = cJSON_GetObjectItemCaseSensitive(cfg, keys[k][0]);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(section, keys[k][1]);
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", keys[k][1], keys[k][2] ? "." : "", keys[k][2] ? keys[k][2] : "");
        if (keys[k][2]) item = cJSON_GetObjectItemCaseSensitive(item, keys[k][2]);   // (codebook.beta, capacity.*)
        if (item && !(cJSON_IsNumber(item) && isfinite(item->valuedouble)))
            return set_error(err, errlen, "%s: %s.%s: must be a finite number (as cuvae writes it)", path, keys[k][0],
                             name);
    }
    return 0;
}

// A run's eval.json / config.json, when there: a JSON object, else -1 naming it.
static int check_run_file(const char *runs_dir, const char *run, const char *name, char *err, size_t errlen) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/%s", runs_dir, run, name);
    struct stat st;
    if (stat(path, &st) != 0) return 0;   // not there: shown as missing
    if (!S_ISREG(st.st_mode))   // (a FIFO would block the read; a folder is no run's file)
        return set_error(err, errlen, "%s: not a regular file (a run writes a JSON object there)", path);
    // a run whose replacement by an --overwrite run was killed half way holds files of two runs (its
    // eval.json the earlier one's, its config.json the new one's), as eval, sample and plot say
    if (run_folder_check_whole(path, err, errlen) != 0) return -1;
    cJSON *j = read_json(path, err, errlen);
    if (!j) return -1;
    int rc = cJSON_IsObject(j) ? 0 : set_error(err, errlen, "%s: expected a JSON object (as cuvae writes it)", path);
    if (rc == 0 && strcmp(name, "eval.json") == 0) rc = check_eval_numbers(j, path, err, errlen);
    if (rc == 0 && strcmp(name, "config.json") == 0) rc = check_config_weights(j, path, err, errlen);
    cJSON_Delete(j);
    return rc;
}

int report_write(const char *index_path, const char *runs_dir, const char *generator, char *err, size_t errlen) {
    cJSON *index = read_json(index_path, err, errlen);
    if (!index) return -1;
    if (check_index(index, index_path, err, errlen) != 0) {
        cJSON_Delete(index);   // after the message: it may quote the index's strings
        return -1;
    }
    struct stat runs_st;   // (said before the index's runs are looked for there)
    if (stat(runs_dir, &runs_st) != 0 || !S_ISDIR(runs_st.st_mode)) {
        const bool absent = stat(runs_dir, &runs_st) != 0;
        const int stat_errno = errno;   // (working_folder_gone_note may change errno)
        set_error(err, errlen, "report: RUNS_DIR %s: %s%s", runs_dir,
                  absent ? strerror(stat_errno) : "not a folder (the folder holding the runs, e.g. runs/lectures)",
                  absent && stat_errno == ENOENT ? working_folder_gone_note(runs_dir) : "");
        cJSON_Delete(index);
        return -1;
    }
    // the page replaces RUNS_DIR/index.html: never the index it reads, nor (through a link) a run's file
    char page[1200];
    snprintf(page, sizeof page, "%s/index.html", runs_dir);
    const char *inputs[1] = {index_path};
    if (run_folder_check_output("report", "page", page, inputs, 1, err, errlen) != 0) {
        cJSON_Delete(index);
        return -1;
    }
    const cJSON *sections = cJSON_GetObjectItemCaseSensitive(index, "sections");
    // run and figure names become paths and URLs in the page: plain names only
    int section_index = 0;
    const cJSON *checked;
    cJSON_ArrayForEach(checked, sections) {
        const char *lists[2] = {"runs", "figures"};
        for (int l = 0; l < 2; l++) {
            const cJSON *list = cJSON_GetObjectItemCaseSensitive(checked, lists[l]);
            const cJSON *item;
            int item_index = 0;
            cJSON_ArrayForEach(item, list) {
                if (!cJSON_IsString(item) || !is_plain_name(item->valuestring)) {
                    set_error(err, errlen, "%s: sections[%d].%s[%d]: must be a plain name (letters, "
                              "digits, '.', '_', '-'; not starting with '.' or '-'), got %s%s%s",
                              index_path, section_index, lists[l], item_index,
                              cJSON_IsString(item) ? "\"" : "",
                              cJSON_IsString(item) ? item->valuestring : "a non-string",
                              cJSON_IsString(item) ? "\"" : "");
                    cJSON_Delete(index);   // after the message: it quotes the index's strings
                    return -1;
                }
                if (l == 1 && ends_with(item->valuestring, ".png")) {   // (a plain name: something before it)
                    const size_t name_length = strlen(item->valuestring);
                    set_error(err, errlen, "%s: sections[%d].figures[%d]: \"%s\": give the figure's name without "
                              ".png (\"%.*s\"; the page adds it)", index_path, section_index, item_index,
                              item->valuestring, (int)(name_length - 4), item->valuestring);
                    cJSON_Delete(index);
                    return -1;
                }
                int earlier_index = 0;   // a run or figure twice in one section: a table row or a figure shown twice
                for (const cJSON *earlier = list->child; earlier != item; earlier = earlier->next, earlier_index++)
                    if (strcmp(earlier->valuestring, item->valuestring) == 0) {
                        set_error(err, errlen, "%s: sections[%d].%s[%d]: \"%s\" is given twice in this section (also "
                                  "%s[%d])", index_path, section_index, lists[l], item_index, item->valuestring,
                                  lists[l], earlier_index);
                        cJSON_Delete(index);
                        return -1;
                    }
                item_index++;
            }
        }
        section_index++;
    }
    // the runs the index names, present in runs_dir or not: none is an error, some a note
    int n_named = 0, n_present = 0;   // distinct names (a run may be in several sections)
    TextBuffer missing = {0}, seen = {0};
    text_append(&seen, "\n");
    cJSON_ArrayForEach(checked, sections) {
        const cJSON *run;
        cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(checked, "runs")) {
            char config_path[1200], framed[600];
            snprintf(framed, sizeof framed, "\n%s\n", run->valuestring);
            if (strstr(seen.data, framed)) continue;
            text_append(&seen, framed + 1);
            snprintf(config_path, sizeof config_path, "%s/%s/config.json", runs_dir, run->valuestring);
            n_named++;
            if (check_run_file(runs_dir, run->valuestring, "config.json", err, errlen) != 0 ||
                check_run_file(runs_dir, run->valuestring, "eval.json", err, errlen) != 0) {
                free(missing.data);
                free(seen.data);
                cJSON_Delete(index);
                return -1;
            }
            if (file_exists(config_path)) {
                n_present++;
            } else {
                if (missing.len) text_append(&missing, ", ");
                text_append(&missing, run->valuestring);
            }
        }
    }
    if (n_named > 0 && n_present == 0) {
        if (working_folder_gone_note(runs_dir)[0])
            set_error(err, errlen, "%s: none of its %d runs is in %s%s", index_path, n_named, runs_dir,
                      working_folder_gone_note(runs_dir));
        else
            set_error(err, errlen, "%s: none of its %d runs is in %s (no RUN/config.json there): train them "
                      "first (make lectures does)", index_path, n_named, runs_dir);
        free(missing.data);
        free(seen.data);
        cJSON_Delete(index);
        return -1;
    }
    // a figure name cuvae plot does not draw and no run holds: a misspelt name (every cell of its
    // row would read "not produced")
    section_index = 0;
    cJSON_ArrayForEach(checked, sections) {
        const cJSON *figure;
        int figure_index = 0;
        cJSON_ArrayForEach(figure, cJSON_GetObjectItemCaseSensitive(checked, "figures")) {
            bool known = false, held = false;
            for (size_t i = 0; i < PLOT_FIGURE_COUNT; i++)
                known = known || strcmp(plot_figures[i].name, figure->valuestring) == 0;
            const cJSON *run;
            cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(checked, "runs")) {
                char image[1400];
                snprintf(image, sizeof image, "%s/%s/figures/%s.png", runs_dir, run->valuestring,
                         figure->valuestring);
                held = held || file_exists(image);
            }
            if (!known && !held) {
                TextBuffer names = {0};
                for (size_t i = 0; i < PLOT_FIGURE_COUNT; i++)
                    text_appendf(&names, "%s%s", i ? ", " : "", plot_figures[i].name);
                set_error(err, errlen, "%s: sections[%d].figures[%d]: \"%s\" is not a figure cuvae plot draws, and "
                          "none of the section's runs holds one of that name (cuvae plot draws %s)", index_path,
                          section_index, figure_index, figure->valuestring, names.data);
                free(names.data);
                free(missing.data);
                free(seen.data);
                cJSON_Delete(index);
                return -1;
            }
            figure_index++;
        }
        section_index++;
    }
    if (missing.len)
        fprintf(stderr, "cuvae: report: %d of %d runs not in %s (shown as missing): %s\n", n_named - n_present,
                n_named, runs_dir, missing.data);
    free(missing.data);
    free(seen.data);
    char path[1200];
    snprintf(path, sizeof path, "%s/index.html", runs_dir);
    AtomicFile out;
    if (atomic_file_open(&out, path, err, errlen) != 0) {
        cJSON_Delete(index);
        return -1;
    }
    FILE *f = out.fp;
    const char *title = json_string(index, "title");
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    html_text(f, title ? title : "cuvae report");
    fprintf(f, "</title><style>%s</style></head><body>\n<h1>", STYLE);
    html_text(f, title ? title : "cuvae report");
    fputs("</h1>\n<p>", f);
    html_text(f, json_string(index, "intro"));
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fputs("</p>\n<p class=\"desc\">Generated by <code>cuvae report</code> (", f);
    html_text(f, generator);
    fprintf(f, ") on %s.</p>\n", date);

    int rc = 0;
    const cJSON *section;
    cJSON_ArrayForEach(section, sections) {
        const cJSON *runs = cJSON_GetObjectItemCaseSensitive(section, "runs");
        const cJSON *figures = cJSON_GetObjectItemCaseSensitive(section, "figures");
        if (!cJSON_IsArray(runs) || !cJSON_IsArray(figures)) {
            rc = set_error(err, errlen, "%s: each section needs \"runs\" and \"figures\" arrays", index_path);
            break;
        }
        fputs("<h2>", f);
        html_text(f, json_string(section, "title"));
        fputs("</h2>\n<p>", f);
        html_text(f, json_string(section, "text"));
        fputs("</p>\n<table class=\"numbers\"><tr><th>run</th><th>kind</th><th>rec, w_rec / w_kl</th>"
              "<th>test loss (rec + KL)</th><th>rec</th><th>KL (VQ-VAE: VQ term)</th><th>summed MSE at z = μ</th>"
              "<th>active units (VQ-VAE: codes used)</th>"
              "<th>−log p(x) (IW; MADE: exact; GAN: Parzen log p(x))</th></tr>\n", f);
        const cJSON *run;
        cJSON_ArrayForEach(run, runs) {
            if (cJSON_IsString(run)) write_numbers_row(f, runs_dir, run->valuestring);
        }
        fputs("</table>\n<table class=\"figures\"><tr>", f);
        cJSON_ArrayForEach(run, runs) {
            if (!cJSON_IsString(run)) continue;
            char cfg_path[1200], e2[256];
            snprintf(cfg_path, sizeof cfg_path, "%s/%s/config.json", runs_dir, run->valuestring);
            cJSON *cfg = read_json(cfg_path, e2, sizeof e2);
            fputs("<th class=\"run\">", f);
            html_text(f, run->valuestring);
            fputs("<div class=\"desc\">", f);
            html_text(f, cfg ? json_string(cfg, "description") : "(config.json missing)");
            fputs("</div></th>", f);
            cJSON_Delete(cfg);
        }
        fputs("</tr>\n", f);
        const cJSON *figure;
        cJSON_ArrayForEach(figure, figures) {
            if (!cJSON_IsString(figure)) continue;
            int n_runs = 0;
            cJSON_ArrayForEach(run, runs) n_runs += cJSON_IsString(run) ? 1 : 0;
            fprintf(f, "<tr><td colspan=\"%d\" class=\"caption\">", n_runs);
            html_text(f, caption_of(figure->valuestring));
            fputs("</td></tr>\n<tr>", f);
            cJSON_ArrayForEach(run, runs) {
                if (!cJSON_IsString(run)) continue;
                char image[1400];
                snprintf(image, sizeof image, "%s/%s/figures/%s.png", runs_dir, run->valuestring,
                         figure->valuestring);
                if (file_exists(image)) {
                    // run and figure are plain names (checked above): safe in a URL
                    fprintf(f, "<td><a href=\"%s/figures/%s.png\"><img src=\"%s/figures/%s.png\" alt=\"",
                            run->valuestring, figure->valuestring, run->valuestring, figure->valuestring);
                    html_text(f, caption_of(figure->valuestring));
                    fputs("\"></a></td>", f);
                } else {
                    fputs("<td class=\"missing\">not produced for this run</td>", f);
                }
            }
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
    }
    fputs("</body></html>\n", f);
    cJSON_Delete(index);
    if (rc != 0) {
        atomic_file_abort(&out);
        return rc;
    }
    return atomic_file_commit(&out, err, errlen);
}

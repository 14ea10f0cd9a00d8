// fuzz_resume.c: the resume-file reader (resume_load) for a tiny model on the
// CPU backend. Properties: no crash or sanitizer report; a failure is one
// error line. FUZZ_WRITE_SEED=PATH writes a valid resume file for this model
// (the seed corpus' start) and exits.
#include "fuzz_common.h"
#include "cuvae/backend.h"
#include "cuvae/config.h"
#include "cuvae/model.h"
#include "cuvae/resume.h"

static const char *TINY =
    "{\"name\": \"fuzz\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"data/mnist\"},"
    " \"model\": {\"kind\": \"vae\", \"input_dim\": 6, \"encoder\": [5], \"latent_dim\": 2,"
    " \"decoder\": [5], \"activation\": \"relu\", \"output\": \"bernoulli\"},"
    " \"loss\": {\"reconstruction\": \"bce\", \"reduction\": \"sum\", \"w_rec\": 1, \"w_kl\": 1},"
    " \"train\": {\"epochs\": 3, \"batch_size\": 4, \"optimizer\": \"adam\", \"lr\": 0.001, \"seed\": 1},"
    " \"device\": \"cpu\"}";

static Model model;
static bool ready;

static void setup(void) {
    Config cfg;
    char err[1024];
    if (config_from_string(&cfg, TINY, "tiny.json", NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_resume: %s\n", err);
        abort();
    }
    Backend *be = backend_cpu_create();
    if (model_create(&model, &cfg, be, 4, err, sizeof err) != 0) abort();
    model_init_params(&model, 1);
    model_begin_training(&model, 10, 1e-3f);
    // the seed's step counter must fit epoch 2, step 3 of 10 steps an epoch
    StepState s;
    model_read_step_state(&model, &s);
    s.step = 23;
    for (int i = 0; i < 23; i++) {   // the running products the step counter implies
        s.beta1_power *= model.plan.beta1;
        s.beta2_power *= model.plan.beta2;
    }
    model.be->upload(model.be, model.state, &s, sizeof s);
    ready = true;
    const char *seed = getenv("FUZZ_WRITE_SEED");
    if (seed) {
        ResumePoint at = {2, 3, 1.5, 1.25, 0.25, 12.0};   // mid-epoch: every field present
        if (resume_save(&model, &at, seed, err, sizeof err) != 0) {
            fprintf(stderr, "fuzz_resume: %s\n", err);
            _exit(1);
        }
        _exit(0);   // not exit(): libFuzzer treats that as a failure
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) setup();
    const char *path = fuzz_input_file(data, size);
    ResumePoint at;
    char err[1024] = "";
    if (resume_load(&model, path, false, 0, &at, err, sizeof err) != 0) fuzz_check_error_line(err);
    return 0;
}

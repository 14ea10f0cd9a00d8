// step.c: the training step (step.h): the op sequence and its hand-off to
// the backend, which runs it directly (CPU) or as a captured graph (CUDA).
#include "cuvae/step.h"
#include "cuvae/backend.h"

static void enqueue_train_step(void *ctx) {
    TrainStep *t = ctx;
    Model *m = t->model;
    Backend *be = m->be;
    const int B = t->rows;
    be->step_begin(be, m->state, m->plan);
    be->gather_batch(be, m->x, t->images, t->perm, 0, m->state, B, m->input_dim, m->binarize,
                     m->binarize_seed);
    if (m->onehot)
        be->gather_onehot(be, m->onehot, t->labels, t->perm, 0, m->state, B, m->n_classes);
    m->training_mode = true;    // batch norm: batch statistics (a host flag, frozen into a captured graph)
    if (m->gan || m->aae) {   // their own phases and optimizers (model_gan.c, model_aae.c)
        if (m->gan) model_gan_train_step(m, B);
        else model_aae_train_step(m, B, t->w_rec);
        m->training_mode = false;
        model_accumulate_loss(m, B);
        be->step_end(be, m->state, m->plan, B);
        return;
    }
    model_forward(m, B, EPS_SAMPLE);
    model_backward_scheduled(m, B, t->w_rec);
    m->training_mode = false;
    model_accumulate_loss(m, B);
    model_clip_gradients(m);
    model_optimizer_step(m);
    be->step_end(be, m->state, m->plan, B);
}

void train_step_run(TrainStep *t, int rows) {
    t->rows = rows;
    Backend *be = t->model->be;
    be->run_step(be, rows, enqueue_train_step, t);
}

void train_step_release(TrainStep *t) {
    if (!t->model) return;
    Backend *be = t->model->be;
    be->drop_steps(be, t);
}

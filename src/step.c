// step.c: the training step (step.h): the op sequence and its hand-off to
// the backend, which runs it directly (CPU) or as a captured graph (CUDA).
// Data parallel (distributed.h): each rank runs the ops on its shard of the
// global batch, with the shard's own draws, and the gradient arena is summed
// over the ranks (one collective) before the identical optimizer step.
#include "cuvae/step.h"
#include "cuvae/backend.h"
#include "cuvae/distributed.h"

static void enqueue_train_step(void *ctx) {
    TrainStep *t = ctx;
    Model *m = t->model;
    Backend *be = m->be;
    const int global_rows = t->rows;
    int shard_start = 0, B = global_rows;   // this rank's rows [shard_start, shard_start + B)
    if (m->data_parallel) {
        dist_shard(global_rows, dist_rank(), dist_size(), &shard_start, &B);
        m->shard_start = shard_start;
        m->global_rows = global_rows;
    }
    be->step_begin(be, m->state, m->plan);
    be->gather_batch(be, m->x, t->images, t->perm, shard_start, m->state, B, m->input_dim, m->binarize,
                     m->binarize_seed);
    if (m->onehot)
        be->gather_onehot(be, m->onehot, t->labels, t->perm, shard_start, m->state, B, m->n_classes);
    m->training_mode = true;    // batch norm: batch statistics (a host flag, frozen into a captured graph)
    if (m->ops->train_step) {   // the kind's own phases and optimizers (a gan's, an aae's)
        m->ops->train_step(m, B, t->w_rec);
        m->training_mode = false;
        model_accumulate_loss(m, B);
        be->step_end(be, m->state, m->plan, B);
        return;
    }
    model_forward(m, B, EPS_SAMPLE);
    if (m->data_parallel || m->grad_clip_scratch) {   // the update needs the whole gradient first
        model_backward_scheduled(m, B, t->w_rec);
        // the global batch's gradient: every rank's (already scaled by 1 / global rows), summed
        if (m->data_parallel) be->all_reduce_sum(be, m->grads, m->arena_stride);
        model_clip_gradients(m);
        model_optimizer_step(m);
    } else {
        model_backward_and_step(m, B, t->w_rec);   // the decoder's update beside the encoder's backward
    }
    m->training_mode = false;
    model_accumulate_loss(m, B);
    be->step_end(be, m->state, m->plan, global_rows);   // the draws of every rank's rows are used
    m->shard_start = 0;
    m->global_rows = 0;
}

void train_step_run(TrainStep *t, int rows) {
    t->rows = rows;
    t->steps_run++;
    Backend *be = t->model->be;
    be->run_step(be, rows, enqueue_train_step, t);
}

void train_step_release(TrainStep *t) {
    if (!t->model) return;
    Backend *be = t->model->be;
    be->drop_steps(be, t);
}

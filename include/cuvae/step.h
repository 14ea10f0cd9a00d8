// step.h: one training step as a fixed sequence of backend ops (step_begin,
// gather, forward, fused loss + backward, loss accumulation, Adam, step_end),
// shared by `cuvae train` and `cuvae bench`. Everything that changes from step
// to step is read from the model's device-resident StepState, so the CUDA
// backend captures the sequence once per batch size and replays it.
#ifndef CUVAE_STEP_H
#define CUVAE_STEP_H

#include <stdint.h>
#include "cuvae/model.h"

typedef struct {
    Model *model;
    const uint8_t *images;    // (N, D) uint8, on the device
    const uint8_t *labels;    // (N) on the device (a CVAE's condition), else unused
    const int32_t *perm;      // (N) on the device: this epoch's order (refilled between epochs)
    float w_rec;
    int rows;                 // examples of the step being run (set by train_step_run)
    long steps_run;           // steps train_step_run has run (counted on the host: bench's KL schedule)
} TrainStep;

// Runs one step of `rows` examples starting at row state->batch_start of perm.
// Never waits for the device. t must stay at the same address between calls.
void train_step_run(TrainStep *t, int rows);

// Releases the captured graphs of t (before t or its model go away).
void train_step_release(TrainStep *t);

#endif

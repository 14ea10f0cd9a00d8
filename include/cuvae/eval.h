// eval.h: a dataset resident on the backend, and the ELBO evaluation over it
// (unweighted rec + KL, nats per example).
#ifndef CUVAE_EVAL_H
#define CUVAE_EVAL_H

#include <stdint.h>
#include "cuvae/dataset.h"
#include "cuvae/model.h"

typedef struct {
    int n, dim;
    uint8_t *images;    // (n, dim) on the device
    uint8_t *labels;    // (n) on the device
} DeviceDataset;

void device_dataset_upload(Backend *be, const Dataset *host, DeviceDataset *out);
void device_dataset_free(Backend *be, DeviceDataset *d);

typedef struct {
    double loss;        // rec + kl, unweighted, nats per example
    double rec;
    double kl;
    long examples;
} ElboResult;

// Negative ELBO over the whole dataset in batches of m->max_batch. eps_mode:
// EPS_SAMPLE (one z sample per example; a fixed evaluation stream, so repeated
// evaluations use the same draws) or EPS_ZERO (z = mu). When the model trains on
// dynamically binarized data, the evaluation data are binarized once with a
// fixed seed. Leaves the training RNG state and loss accumulator untouched
// (the accumulator must be empty on entry).
void eval_elbo(Model *m, const DeviceDataset *data, EpsMode eps_mode, ElboResult *out);

#endif

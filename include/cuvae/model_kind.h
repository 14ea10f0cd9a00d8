// model_kind.h: the model kinds (model.kind) and what each one is, as one table row a kind:
// its name, its latent, the term reported beside the reconstruction and its unit, and which
// evaluation options apply, and its operations (ModelOps, model.h: what it builds, its forward,
// loss, backward or own training step). Code asks these traits, not the kind, so a new kind adds
// its value below, its row in model_kind.c, its own model_*.c file with its ModelOps (and their
// extern in model.h), and its config keys.
#ifndef CUVAE_MODEL_KIND_H
#define CUVAE_MODEL_KIND_H

#include <stdbool.h>

typedef enum { MODEL_VAE = 0, MODEL_AE, MODEL_CVAE, MODEL_VQ_VAE, MODEL_MADE, MODEL_PIXELCNN, MODEL_GAN, MODEL_AAE,
               MODEL_KIND_COUNT } ModelKind;

struct ModelOps;

typedef struct {
    const char *name;          // model.kind in a config: "vae", "ae", ...
    bool gaussian_posterior;   // q(z|x) is a Gaussian with a KL term (vae, cvae): KL schedules, eval --iw, --z
    bool draws_z;              // the decoder is trained on drawn z (vae, cvae; a gan's generator on z ~ N(0, I))
    bool adversarial;          // trained against a discriminator (gan, aae): its test figure is a Parzen
                               // estimate on a validation split, and one optimizer per region (no grad clip)
    bool autoregressive;       // made, pixelcnn: no latent, one network over the pixels, an exact -log p(x)
    const char *second;        // the term beside rec in train and eval lines ("KL", "VQ", "G loss", "D loss");
                               // NULL: rec alone (ae, made, pixelcnn)
    const char *second_unit;   // its unit: "nats", or "squared distance" (a vq_vae: rec + VQ is then a training
                               // objective, not a log-likelihood)
    const char *second_units;  // eval.json "units": the term's key and unit, as JSON members
    const char *z_refusal;     // why eval --z does not apply to this kind (NULL: it does)
    const char *iw_refusal;    // why eval --iw does not (NULL: it does; made / pixelcnn say their exact -log p)
    const char *data_parallel_refusal;   // why data-parallel training does not apply (NULL: it does)
    const struct ModelOps *ops;   // what the kind does (model.h)
} ModelKindInfo;

// The row of kind k (a row named "invalid", with every trait off, for a value out of range).
const ModelKindInfo *model_kind_info(ModelKind k);
// "vae", "ae", "cvae", "vq_vae", "made", "pixelcnn", "gan", "aae"
const char *model_kind_name(ModelKind k);
// The row named name ("ae"; a config's model.kind), or NULL.
const ModelKindInfo *model_kind_info_named(const char *name);
// made and pixelcnn: no latent, one network over the pixels, an exact -log p(x)
bool model_kind_autoregressive(ModelKind k);

#endif

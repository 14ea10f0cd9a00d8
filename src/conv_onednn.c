// conv_onednn.c: whole 2-D convolutions for the CPU backend through oneDNN (Debian's
// libdnnl, OpenMP build: the same libgomp pool as cuvae's loops and OpenBLAS) -- forward,
// input gradient and weight + bias gradient of a conv2d (B, C, H, W) -> (B, C_out, OH, OW);
// a transposed convolution is the same three with the roles swapped (layer_conv.c).
// Tensors stay in cuvae's layouts (x, y NCHW; W (C_out, C, k, k)); each call reorders them
// into and out of the blocked layout oneDNN's kernels pick (nChw16c on AVX-512), except
// where few channels make oneDNN's blocked kernels slower than its own im2col + GEMM on the
// plain layout (FEW_CHANNELS below). The weight gradient, a sum over the batch, is taken in
// chunks of CHUNK_IMAGES images, each chunk by a single-threaded oneDNN call on one thread of the
// pool, and the chunks' sums added in chunk order: the same bits for any thread count (oneDNN's
// own threading splits the batch by the thread count). Built without oneDNN (no
// <oneapi/dnnl/dnnl.h>), the backend has none of these and the layers compose im2col / GEMM /
// col2im as on CUDA.
#include "cuvae/conv_onednn.h"

#ifdef CUVAE_ONEDNN
#include "cuvae/common.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNNL_CHECK(call) dnnl_check((call), #call, __FILE__, __LINE__)
// Out of memory is the user's machine (exit 2, as cuvae's own allocations); any other status
// is a bug here (exit 1).
static void dnnl_check(dnnl_status_t status, const char *what, const char *file, int line) {
    if (status == dnnl_success) return;
    if (status == dnnl_out_of_memory) {
        fprintf(stderr, "cuvae: out of host memory in oneDNN's convolutions (%s at %s:%d)\n", what, file, line);
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    fprintf(stderr, "cuvae: internal error: oneDNN: %s failed (status %d) at %s:%d\n", what, (int)status, file, line);
    exit(1);
}

// Below this many channels on the side an op writes, oneDNN's blocked kernels were slower than
// its plain-layout GEMM path on the lecture models' 1-channel images (2-core AMD EPYC, b128:
// the 1 -> 32 k4 s2 conv's input gradient 1.05 ms blocked, 0.23 ms plain).
enum { FEW_CHANNELS = 8 };
// The weight gradient's chunk of the batch (the last chunk takes what is left).
enum { CHUNK_IMAGES = 8 };
// Primitives kept (three ops a layer for a training batch, its last batch and the evaluation
// batches; a weight gradient two: whole chunks and the last one): the cache starts with
// FIRST_ENTRIES places, a full cache evicts the least recently used entry and remembers its
// key (a "ghost", as many as places), and a miss on a ghost's key -- a primitive asked for
// again soon after its eviction: the step needs more than the cache holds and would rebuild
// them every step -- doubles the places instead, up to MAX_ENTRIES. Keys asked for once (a
// sampling run's other batch size) never grow it.
enum { FIRST_ENTRIES = 64, MAX_ENTRIES = 4096, MAX_ARGS = 5 };

typedef enum { CONV_FORWARD, CONV_BACKWARD_DATA, CONV_BACKWARD_WEIGHTS } ConvOp;

typedef struct {
    int arg;                     // DNNL_ARG_*
    bool output;
    dnnl_memory_t user;          // cuvae's buffer (handle set at each call)
    dnnl_memory_t inner;         // the primitive's layout (== user when they match)
    dnnl_primitive_t reorder;    // user -> inner (input) or inner -> user (output); NULL if they match
    dnnl_memory_t reorder_scratchpad;   // the reorder's own (user scratchpad mode); NULL if it needs none
} ConvArg;

// What one thread needs to run an entry's primitive: its own memory objects, reorders,
// scratchpad and stream (oneDNN's primitives may run concurrently with a scratchpad each).
typedef struct {
    ConvArg args[MAX_ARGS];
    dnnl_memory_t scratchpad;    // NULL when the primitive needs none
    dnnl_stream_t stream;
} ConvSlot;

// What a primitive is built for.
typedef struct {
    ConvOp op;
    ConvGeometry g;
    int C_out, B;
    bool bias;
} ConvKey;

typedef struct {
    bool used;
    ConvKey key;
    dnnl_primitive_t primitive;
    int n_args, n_slots;         // slots: 1, or one per pool thread (the weight gradient's chunks)
    ConvSlot *slots;
    size_t bytes;                // its blocked copies and scratchpads
    uint64_t last_use;           // the library's use count when it was last returned
} ConvEntry;

struct ConvLibrary {
    dnnl_engine_t engine;
    ConvEntry **entries;         // (places): each entry allocated alone, so a pointer to it
    int places;                  //   stays valid when the cache grows
    uint64_t uses;               // entries returned so far
    uint64_t builds;             // primitives built so far
    ConvKey *ghosts;             // (places) keys of the latest evicted entries, a ring
    int next_ghost;
    float *partial;              // the weight gradient's per-chunk sums (dW and dbias a chunk)
    size_t partial_floats;
    size_t bytes;                // held now: blocked copies, scratchpads, the partial sums
    size_t peak_bytes;           // the most held at once
};

static void add_bytes(ConvLibrary *lib, size_t bytes) {
    lib->bytes += bytes;
    if (lib->bytes > lib->peak_bytes) lib->peak_bytes = lib->bytes;
}

// Gives the cache `places` places (the new ones empty).
// (the ghosts are forgotten: they were the old size's)
static void grow_cache(ConvLibrary *lib, int places) {
    ConvEntry **entries = xmalloc((size_t)places * sizeof *entries);
    if (lib->places) memcpy(entries, lib->entries, (size_t)lib->places * sizeof *entries);
    free(lib->entries);
    lib->entries = entries;
    for (int i = lib->places; i < places; i++) lib->entries[i] = xcalloc(1, sizeof(ConvEntry));
    lib->places = places;
    free(lib->ghosts);
    lib->ghosts = xcalloc((size_t)places, sizeof *lib->ghosts);
    lib->next_ghost = 0;
}

ConvLibrary *conv_library_create(void) {
    ConvLibrary *lib = xcalloc(1, sizeof *lib);
    DNNL_CHECK(dnnl_engine_create(&lib->engine, dnnl_cpu, 0));
    grow_cache(lib, FIRST_ENTRIES);
    return lib;
}

static void entry_free(ConvEntry *e) {
    if (!e->used) return;
    for (int t = 0; t < e->n_slots; t++) {
        ConvSlot *slot = &e->slots[t];
        for (int a = 0; a < e->n_args; a++) {
            if (slot->args[a].reorder) {
                dnnl_primitive_destroy(slot->args[a].reorder);
                dnnl_memory_destroy(slot->args[a].inner);
            }
            if (slot->args[a].reorder_scratchpad) dnnl_memory_destroy(slot->args[a].reorder_scratchpad);
            dnnl_memory_destroy(slot->args[a].user);
        }
        if (slot->scratchpad) dnnl_memory_destroy(slot->scratchpad);
        dnnl_stream_destroy(slot->stream);
    }
    free(e->slots);
    dnnl_primitive_destroy(e->primitive);
    memset(e, 0, sizeof *e);
}

void conv_library_destroy(ConvLibrary *lib) {
    if (!lib) return;
    for (int i = 0; i < lib->places; i++) {
        entry_free(lib->entries[i]);
        free(lib->entries[i]);
    }
    free(lib->entries);
    free(lib->ghosts);
    dnnl_engine_destroy(lib->engine);
    free(lib->partial);
    free(lib);
}

static void describe(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_format_tag_t tag) {
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++) d[i] = dims[i];
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, ndims, d, dnnl_f32, tag));
}

// Adds argument `arg` to every slot: cuvae's layout `user`, the primitive's `inner`.
static void add_arg(ConvLibrary *lib, ConvEntry *e, int arg, bool output, const dnnl_memory_desc_t *user,
                    const dnnl_memory_desc_t *inner) {
    for (int t = 0; t < e->n_slots; t++) {
        ConvArg *a = &e->slots[t].args[e->n_args];
        a->arg = arg;
        a->output = output;
        DNNL_CHECK(dnnl_memory_create(&a->user, user, lib->engine, DNNL_MEMORY_NONE));
        if (dnnl_memory_desc_equal(user, inner)) {
            a->inner = a->user;
            continue;
        }
        DNNL_CHECK(dnnl_memory_create(&a->inner, inner, lib->engine, DNNL_MEMORY_ALLOCATE));
        e->bytes += dnnl_memory_desc_get_size(inner);
        // a scratchpad of its own, as the convolution's: the slots' reorders run on several
        // threads at once, and the library's scratchpad mode would share one between them
        dnnl_primitive_attr_t attr;
        DNNL_CHECK(dnnl_primitive_attr_create(&attr));
        DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
        dnnl_primitive_desc_t pd;
        if (output) DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, inner, lib->engine, user, lib->engine, attr));
        else DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, user, lib->engine, inner, lib->engine, attr));
        DNNL_CHECK(dnnl_primitive_create(&a->reorder, pd));
        const dnnl_memory_desc_t *scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (scratch_md && dnnl_memory_desc_get_size(scratch_md) > 0) {
            DNNL_CHECK(dnnl_memory_create(&a->reorder_scratchpad, scratch_md, lib->engine, DNNL_MEMORY_ALLOCATE));
            e->bytes += dnnl_memory_desc_get_size(scratch_md);
        }
        dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_attr_destroy(attr);
    }
    e->n_args++;
}

static const dnnl_memory_desc_t *query(const_dnnl_primitive_desc_t pd, dnnl_query_t what, int index) {
    return dnnl_primitive_desc_query_md(pd, what, index);
}

static void build_entry(ConvLibrary *lib, ConvEntry *e, int slots) {
    const ConvGeometry g = e->key.g;
    const int64_t x_dims[4] = {e->key.B, g.C, g.H, g.W}, y_dims[4] = {e->key.B, e->key.C_out, g.OH, g.OW};
    const int64_t w_dims[4] = {e->key.C_out, g.C, g.kernel, g.kernel}, b_dims[1] = {e->key.C_out};
    dnnl_memory_desc_t x_user, y_user, w_user, b_user, x_any, y_any, w_any;
    describe(&x_user, 4, x_dims, dnnl_nchw);
    describe(&y_user, 4, y_dims, dnnl_nchw);
    describe(&w_user, 4, w_dims, dnnl_oihw);
    describe(&b_user, 1, b_dims, dnnl_x);
    // the blocked layouts oneDNN picks, or the plain ones where the op writes few channels
    const bool plain = (e->key.op == CONV_FORWARD && e->key.C_out < FEW_CHANNELS) ||
                       (e->key.op == CONV_BACKWARD_DATA && g.C < FEW_CHANNELS);
    describe(&x_any, 4, x_dims, plain ? dnnl_nchw : dnnl_format_tag_any);
    describe(&y_any, 4, y_dims, plain ? dnnl_nchw : dnnl_format_tag_any);
    describe(&w_any, 4, w_dims, plain ? dnnl_oihw : dnnl_format_tag_any);
    // the same padding both sides: a transposed conv's output_padding (rows and columns at the
    // right no output reads) is inside the floor of OH = (H + 2 p - k) / s + 1, as in conv2d's
    dnnl_dims_t strides = {g.stride, g.stride}, padding = {g.padding, g.padding};
    const dnnl_memory_desc_t *bias_md = e->key.bias ? &b_user : NULL;
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));

    // the weight gradient's primitive runs one chunk on one thread: built for one
    const int pool_threads = omp_get_max_threads();
    e->n_slots = slots;
    e->slots = xcalloc((size_t)e->n_slots, sizeof(ConvSlot));
    if (e->key.op == CONV_BACKWARD_WEIGHTS) omp_set_num_threads(1);
    dnnl_convolution_desc_t forward_desc, desc;
    DNNL_CHECK(dnnl_convolution_forward_desc_init(&forward_desc, dnnl_forward_training, dnnl_convolution_direct,
                                                  &x_any, &w_any, bias_md, &y_any, strides, padding, padding));
    dnnl_primitive_desc_t forward_pd, pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&forward_pd, &forward_desc, e->key.op == CONV_FORWARD ? attr : NULL,
                                          lib->engine, NULL));
    if (e->key.op == CONV_FORWARD) {
        pd = forward_pd;
        add_arg(lib, e, DNNL_ARG_SRC, false, &x_user, query(pd, dnnl_query_src_md, 0));
        add_arg(lib, e, DNNL_ARG_WEIGHTS, false, &w_user, query(pd, dnnl_query_weights_md, 0));
        if (e->key.bias) add_arg(lib, e, DNNL_ARG_BIAS, false, &b_user, query(pd, dnnl_query_weights_md, 1));
        add_arg(lib, e, DNNL_ARG_DST, true, &y_user, query(pd, dnnl_query_dst_md, 0));
    } else if (e->key.op == CONV_BACKWARD_DATA) {
        DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &x_any, &w_any, &y_any,
                                                            strides, padding, padding));
        DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, lib->engine, forward_pd));
        add_arg(lib, e, DNNL_ARG_DIFF_DST, false, &y_user, query(pd, dnnl_query_diff_dst_md, 0));
        add_arg(lib, e, DNNL_ARG_WEIGHTS, false, &w_user, query(pd, dnnl_query_weights_md, 0));
        add_arg(lib, e, DNNL_ARG_DIFF_SRC, true, &x_user, query(pd, dnnl_query_diff_src_md, 0));
    } else {
        DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &x_any, &w_any,
                                                               bias_md, &y_any, strides, padding, padding));
        DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, lib->engine, forward_pd));
        add_arg(lib, e, DNNL_ARG_SRC, false, &x_user, query(pd, dnnl_query_src_md, 0));
        add_arg(lib, e, DNNL_ARG_DIFF_DST, false, &y_user, query(pd, dnnl_query_diff_dst_md, 0));
        add_arg(lib, e, DNNL_ARG_DIFF_WEIGHTS, true, &w_user, query(pd, dnnl_query_diff_weights_md, 0));
        if (e->key.bias) add_arg(lib, e, DNNL_ARG_DIFF_BIAS, true, &b_user, query(pd, dnnl_query_diff_weights_md, 1));
    }
    DNNL_CHECK(dnnl_primitive_create(&e->primitive, pd));
    const dnnl_memory_desc_t *scratch_md = query(pd, dnnl_query_scratchpad_md, 0);
    for (int t = 0; t < e->n_slots; t++) {
        if (scratch_md && dnnl_memory_desc_get_size(scratch_md) > 0)
        {
            DNNL_CHECK(dnnl_memory_create(&e->slots[t].scratchpad, scratch_md, lib->engine, DNNL_MEMORY_ALLOCATE));
            e->bytes += dnnl_memory_desc_get_size(scratch_md);
        }
        DNNL_CHECK(dnnl_stream_create(&e->slots[t].stream, lib->engine, dnnl_stream_default_flags));
    }
    if (e->key.op == CONV_BACKWARD_WEIGHTS) omp_set_num_threads(pool_threads);
    if (pd != forward_pd) dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(forward_pd);
    dnnl_primitive_attr_destroy(attr);
}

static bool same_geometry(ConvGeometry a, ConvGeometry b) {
    return a.C == b.C && a.H == b.H && a.W == b.W && a.kernel == b.kernel && a.stride == b.stride &&
           a.padding == b.padding && a.OH == b.OH && a.OW == b.OW;
}

static bool same_key(ConvKey a, ConvKey b) {
    return a.op == b.op && same_geometry(a.g, b.g) && a.C_out == b.C_out && a.B == b.B && a.bias == b.bias;
}

// True (and the ghost forgotten) when `key` is a ghost's. (An empty place of the ring has B 0.)
static bool take_ghost(ConvLibrary *lib, ConvKey key) {
    for (int i = 0; i < lib->places; i++) {
        if (lib->ghosts[i].B == 0 || !same_key(lib->ghosts[i], key)) continue;
        lib->ghosts[i].B = 0;
        return true;
    }
    return false;
}

// Remembers an evicted entry's key in place of the oldest ghost.
static void remember_ghost(ConvLibrary *lib, ConvKey key) {
    lib->ghosts[lib->next_ghost] = key;
    lib->next_ghost = (lib->next_ghost + 1) % lib->places;
}

// oneDNN builds a primitive's kernels when it creates it and may set up more of its own on
// the primitive's first run, inside its OpenMP threads; an allocation failing there is not
// always a status: it segfaulted (creating one) or threw a C++ exception in a worker thread,
// which aborts (a first run), under `ulimit -v` limits within tens of MiB of what the conv
// VAE needs. So a primitive is built, and first run, only while this much address space is
// still free; else the run stops with the out-of-memory line, exit 2.
enum { KERNEL_ROOM = 64 << 20 };

static void check_kernel_room(void) {
    if (!address_space_free(KERNEL_ROOM)) {
        fprintf(stderr, "cuvae: out of host memory in oneDNN's convolutions (building a convolution's kernels "
                        "needs %d MiB of address space free)\n", KERNEL_ROOM >> 20);
        exit(CUVAE_EXIT_BAD_INPUT);
    }
}

// The cached primitive for `key`, built on first use (see FIRST_ENTRIES). The pointer stays
// valid until the library is destroyed or the entry is evicted (never by the next call: the
// entry just returned is the most recently used).
// (slots: the threads that may run it at once; 1 but for the weight gradient's chunks)
static ConvEntry *entry_for(ConvLibrary *lib, ConvKey key, int slots) {
    lib->uses++;
    ConvEntry *victim = NULL;   // an empty place, else the least recently used entry
    for (int i = 0; i < lib->places; i++) {
        ConvEntry *e = lib->entries[i];
        if (e->used && same_key(e->key, key)) {
            e->last_use = lib->uses;
            return e;
        }
        if (!victim || (victim->used && (!e->used || e->last_use < victim->last_use))) victim = e;
    }
    if (victim->used && take_ghost(lib, key) && lib->places < MAX_ENTRIES) {
        const int first_new = lib->places;
        grow_cache(lib, 2 * lib->places);
        victim = lib->entries[first_new];
    }
    if (victim->used) remember_ghost(lib, victim->key);
    lib->bytes -= victim->bytes;
    entry_free(victim);
    *victim = (ConvEntry){.used = true, .key = key};
    check_kernel_room();
    build_entry(lib, victim, slots);
    check_kernel_room();   // (its first run: see KERNEL_ROOM)
    lib->builds++;
    add_bytes(lib, victim->bytes);
    victim->last_use = lib->uses;
    return victim;
}

// Runs the entry through slot t on cuvae's buffers (in the order of its args): inputs
// reordered in, the primitive, outputs reordered out.
static void run_entry(ConvEntry *e, int t, void *const *buffers) {
    ConvSlot *slot = &e->slots[t];
    dnnl_exec_arg_t exec[MAX_ARGS + 1];
    for (int a = 0; a < e->n_args; a++) {
        ConvArg *arg = &slot->args[a];
        DNNL_CHECK(dnnl_memory_set_data_handle(arg->user, buffers[a]));
        exec[a] = (dnnl_exec_arg_t){arg->arg, arg->inner};
        if (arg->reorder && !arg->output) {
            dnnl_exec_arg_t r[3] = {{DNNL_ARG_FROM, arg->user}, {DNNL_ARG_TO, arg->inner},
                                    {DNNL_ARG_SCRATCHPAD, arg->reorder_scratchpad}};
            DNNL_CHECK(dnnl_primitive_execute(arg->reorder, slot->stream, arg->reorder_scratchpad ? 3 : 2, r));
        }
    }
    int n_exec = e->n_args;
    if (slot->scratchpad) exec[n_exec++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, slot->scratchpad};
    DNNL_CHECK(dnnl_primitive_execute(e->primitive, slot->stream, n_exec, exec));
    for (int a = 0; a < e->n_args; a++) {
        ConvArg *arg = &slot->args[a];
        if (!arg->reorder || !arg->output) continue;
        dnnl_exec_arg_t r[3] = {{DNNL_ARG_FROM, arg->inner}, {DNNL_ARG_TO, arg->user},
                                {DNNL_ARG_SCRATCHPAD, arg->reorder_scratchpad}};
        DNNL_CHECK(dnnl_primitive_execute(arg->reorder, slot->stream, arg->reorder_scratchpad ? 3 : 2, r));
    }
    DNNL_CHECK(dnnl_stream_wait(slot->stream));
}

size_t conv_library_bytes(const ConvLibrary *lib) { return lib ? lib->bytes : 0; }
size_t conv_library_peak_bytes(const ConvLibrary *lib) { return lib ? lib->peak_bytes : 0; }
int conv_library_cached_primitives(const ConvLibrary *lib) {
    int n = 0;
    for (int i = 0; lib && i < lib->places; i++) n += lib->entries[i]->used;
    return n;
}
uint64_t conv_library_builds(const ConvLibrary *lib) { return lib ? lib->builds : 0; }

void conv_library_forward(ConvLibrary *lib, float *y, const float *x, const float *W, const float *bias,
                          ConvGeometry g, int C_out, int B) {
    ConvEntry *e = entry_for(lib, (ConvKey){CONV_FORWARD, g, C_out, B, bias != NULL}, 1);
    void *buffers[4];   // in the order of the entry's args: src, weights, [bias,] dst
    int n = 0;
    buffers[n++] = (void *)x;
    buffers[n++] = (void *)W;
    if (bias) buffers[n++] = (void *)bias;
    buffers[n++] = y;
    run_entry(e, 0, buffers);
}

void conv_library_backward_data(ConvLibrary *lib, float *dx, const float *dy, const float *W, ConvGeometry g,
                                int C_out, int B) {
    ConvEntry *e = entry_for(lib, (ConvKey){CONV_BACKWARD_DATA, g, C_out, B, false}, 1);
    void *buffers[3] = {(void *)dy, (void *)W, dx};
    run_entry(e, 0, buffers);
}

// Chunk c of the weight gradient (images c * CHUNK_IMAGES on) through slot t of entry e, into
// its partial sums: part_dW (chunks, n_weights), part_db (chunks, n_bias) or NULL.
static void run_chunk(ConvEntry *e, int t, int c, const float *x, const float *dy, float *part_dW, float *part_db,
                      size_t x_image, size_t y_image, size_t n_weights, size_t n_bias) {
    const size_t first = (size_t)c * CHUNK_IMAGES;
    void *buffers[4] = {(void *)(x + first * x_image), (void *)(dy + first * y_image),
                        part_dW + (size_t)c * n_weights, part_db ? part_db + (size_t)c * n_bias : NULL};
    run_entry(e, t, buffers);
}

void conv_library_backward_weights(ConvLibrary *lib, float *dW, float *dbias, const float *x, const float *dy,
                                   ConvGeometry g, int C_out, int B) {
    if (B <= 0) return;
    const int chunks = (B + CHUNK_IMAGES - 1) / CHUNK_IMAGES, last = B - (chunks - 1) * CHUNK_IMAGES;
    // a slot (blocked copies, scratchpad) for each thread that can take a chunk, no more
    const int slots = chunks < omp_get_max_threads() ? chunks : omp_get_max_threads();
    const size_t n_weights = (size_t)C_out * g.C * g.kernel * g.kernel, n_bias = dbias ? (size_t)C_out : 0;
    const size_t x_image = (size_t)g.C * g.H * g.W, y_image = (size_t)C_out * g.OH * g.OW;
    const size_t partial_floats = (size_t)chunks * (n_weights + n_bias);
    if (partial_floats > lib->partial_floats) {
        free(lib->partial);
        lib->partial = xmalloc(partial_floats * sizeof(float));
        add_bytes(lib, (partial_floats - lib->partial_floats) * sizeof(float));
        lib->partial_floats = partial_floats;
    }
    float *part_dW = lib->partial, *part_db = lib->partial + (size_t)chunks * n_weights;   // (chunks, ...)
    // the primitives of a whole chunk and of the last (the same one when the last is whole)
    const int full_images = chunks > 1 ? CHUNK_IMAGES : last;
    // (the tail's lookup cannot evict the whole chunks' entry: that one is the most recently used)
    ConvEntry *full = entry_for(lib, (ConvKey){CONV_BACKWARD_WEIGHTS, g, C_out, full_images, dbias != NULL}, slots);
    ConvEntry *tail = entry_for(lib, (ConvKey){CONV_BACKWARD_WEIGHTS, g, C_out, last, dbias != NULL}, slots);
    // a slot each (an entry built for a smaller batch has fewer: the chunks then share them)
    const int threads = full->n_slots < tail->n_slots ? full->n_slots : tail->n_slots;
    if (threads > 1) {
        #pragma omp parallel for schedule(static) num_threads(threads)
        for (int c = 0; c < chunks; c++) run_chunk(c == chunks - 1 ? tail : full, omp_get_thread_num(), c, x, dy,
                                                   part_dW, dbias ? part_db : NULL, x_image, y_image, n_weights, n_bias);
    } else {
        // One thread: here, with the pool set to one. (A team of one is no parallel region to
        // oneDNN: its reorders would start a nested team of the pool's size, new threads at
        // every call -- a batch of 8 or fewer trained 10x slower on 2 threads.)
        const int pool_threads = omp_get_max_threads();
        omp_set_num_threads(1);
        for (int c = 0; c < chunks; c++)
            run_chunk(c == chunks - 1 ? tail : full, 0, c, x, dy, part_dW, dbias ? part_db : NULL, x_image, y_image,
                      n_weights, n_bias);
        omp_set_num_threads(pool_threads);
    }
    // the chunks' sums added in chunk order
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n_weights; i++) {
        float sum = part_dW[i];
        for (int c = 1; c < chunks; c++) sum += part_dW[(size_t)c * n_weights + i];
        dW[i] = sum;
    }
    for (size_t i = 0; i < n_bias; i++) {
        float sum = part_db[i];
        for (int c = 1; c < chunks; c++) sum += part_db[(size_t)c * n_bias + i];
        dbias[i] = sum;
    }
}

#else   // built without oneDNN

ConvLibrary *conv_library_create(void) { return NULL; }
void conv_library_destroy(ConvLibrary *lib) { (void)lib; }
size_t conv_library_bytes(const ConvLibrary *lib) {
    (void)lib;
    return 0;
}
size_t conv_library_peak_bytes(const ConvLibrary *lib) {
    (void)lib;
    return 0;
}
int conv_library_cached_primitives(const ConvLibrary *lib) {
    (void)lib;
    return 0;
}
uint64_t conv_library_builds(const ConvLibrary *lib) {
    (void)lib;
    return 0;
}
void conv_library_forward(ConvLibrary *lib, float *y, const float *x, const float *W, const float *bias,
                          ConvGeometry g, int C_out, int B) {
    (void)lib, (void)y, (void)x, (void)W, (void)bias, (void)g, (void)C_out, (void)B;
}
void conv_library_backward_data(ConvLibrary *lib, float *dx, const float *dy, const float *W, ConvGeometry g,
                                int C_out, int B) {
    (void)lib, (void)dx, (void)dy, (void)W, (void)g, (void)C_out, (void)B;
}
void conv_library_backward_weights(ConvLibrary *lib, float *dW, float *dbias, const float *x, const float *dy,
                                   ConvGeometry g, int C_out, int B) {
    (void)lib, (void)dW, (void)dbias, (void)x, (void)dy, (void)g, (void)C_out, (void)B;
}
#endif

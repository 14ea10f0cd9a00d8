// test_layer_ops.c: the CPU backend's layer-graph ops (activation with a slope, multiply,
// im2col / col2im, swap_leading_axes, channel bias, batch norm, the vector
// quantiser, its CPU argmin against the definition; the CPU's chunk policy for the conv
// layers' GEMM -> col2im paths; the library convolutions where the build has oneDNN) against
// double-precision references written here, and their gradients against
// central finite differences of those references (or, for the linear maps,
// the adjoint identity <A x, c> = <x, A^T c> in double).
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/conv_onednn.h"
#include "cuvae/rng.h"
#include "test.h"

#include <dlfcn.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static Backend *cpu;
static Rng test_rng;

static float *random_floats(size_t n, float lo, float hi) {
    float *p = xmalloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform_range(&test_rng, lo, hi);
    return p;
}

static double ref_act(double v, Activation act, double slope) {
    switch (act) {
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_TANH: return tanh(v);
    case ACT_LEAKY_RELU: return v > 0 ? v : slope * v;
    case ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    default: return v;
    }
}

static void test_activation_with_slope(void) {
    const size_t n = 257;
    const Activation acts[] = {ACT_NONE, ACT_RELU, ACT_TANH, ACT_LEAKY_RELU, ACT_SIGMOID};
    const float slope = 0.2f;
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        float *x = random_floats(n, -3, 3), *dy = random_floats(n, -1, 1);
        for (size_t i = 0; i < n; i++)
            if (fabsf(x[i]) < 0.05f) x[i] += 0.2f;   // away from the kink
        float *y = xmalloc(n * sizeof(float)), *dx = xmalloc(n * sizeof(float));
        cpu->activation_forward(cpu, y, x, n, acts[a], slope);
        cpu->activation_gradient(cpu, dx, dy, y, n, acts[a], slope);
        const double h = 1e-6;
        for (size_t i = 0; i < n; i++) {
            double want = ref_act(x[i], acts[a], slope);
            CHECK(test_close(y[i], want, 1e-6, 1e-7), "%s forward [%zu]: %g vs %g",
                  activation_name(acts[a]), i, y[i], want);
            double fd = dy[i] * (ref_act((double)x[i] + h, acts[a], slope) -
                                 ref_act((double)x[i] - h, acts[a], slope)) / (2 * h);
            CHECK(test_close(dx[i], fd, 1e-5, 1e-6), "%s gradient [%zu]: %g vs fd %g",
                  activation_name(acts[a]), i, dx[i], fd);
        }
        // in place (y == x, dx == dy) gives the same
        cpu->activation_forward(cpu, x, x, n, acts[a], slope);
        CHECK(memcmp(x, y, n * sizeof(float)) == 0, "%s in place", activation_name(acts[a]));
        cpu->activation_gradient(cpu, dy, dy, y, n, acts[a], slope);
        CHECK(memcmp(dy, dx, n * sizeof(float)) == 0, "%s gradient in place", activation_name(acts[a]));
        free(x); free(dy); free(y); free(dx);
    }
}

// y = a * b (a masked layer's W * mask) against double products, in place, and its
// gradient: d<y, c>/da = c * b checked by central differences of the double reference
static void test_multiply(void) {
    const size_t n = 300001;   // past the OpenMP threshold
    float *a = random_floats(n, -2, 2), *b = random_floats(n, -2, 2), *c = random_floats(n, -1, 1);
    float *y = xmalloc(n * sizeof(float)), *da = xmalloc(n * sizeof(float));
    cpu->multiply(cpu, y, a, b, n);
    for (size_t i = 0; i < n; i++)
        CHECK(y[i] == (float)((double)a[i] * (double)b[i]), "multiply [%zu]: %g vs %g", i, y[i],
              (double)a[i] * b[i]);
    cpu->multiply(cpu, da, c, b, n);   // the gradient op is the same product
    const double h = 1e-3;
    for (size_t i = 0; i < n; i += 997) {
        double fd = (c[i] * ((a[i] + h) * (double)b[i]) - c[i] * ((a[i] - h) * (double)b[i])) / (2 * h);
        CHECK(test_close(da[i], fd, 1e-6, 1e-7), "multiply gradient [%zu]: %g vs fd %g", i, da[i], fd);
    }
    cpu->multiply(cpu, a, a, b, n);
    CHECK(memcmp(a, y, n * sizeof(float)) == 0, "multiply in place");
    free(a); free(b); free(c); free(y); free(da);
}

// y = a + b (a residual connection) against double sums, in place; its gradient is the
// identity to both inputs, which the residual tests in test_model check end to end
static void test_add(void) {
    const size_t n = 100003;
    float *a = random_floats(n, -2, 2), *b = random_floats(n, -2, 2), *y = xmalloc(n * sizeof(float));
    cpu->add(cpu, y, a, b, n);
    for (size_t i = 0; i < n; i++)
        CHECK(y[i] == (float)((double)a[i] + (double)b[i]), "add [%zu]: %g vs %g", i, y[i], (double)a[i] + b[i]);
    cpu->add(cpu, a, a, b, n);
    CHECK(memcmp(a, y, n * sizeof(float)) == 0, "add in place");
    free(a); free(b); free(y);
}

// -sum_s log softmax(logits[b, :, s])[target] in double, for one example
static double ref_categorical(const float *l, const int *target, int K, int S) {
    double sum = 0.0;
    for (int s = 0; s < S; s++) {
        double top = l[s];
        for (int k = 1; k < K; k++) top = fmax(top, l[(size_t)k * S + s]);
        double z = 0.0;
        for (int k = 0; k < K; k++) z += exp(l[(size_t)k * S + s] - top);
        sum += top + log(z) - l[(size_t)target[s] * S + s];
    }
    return sum;
}

// The categorical loss of a prior over codes (logits (B, K, S), targets as code / 255):
// per-example losses against double log-softmax, the gradient against central differences,
// the forward-only call the same; and the codes' one-hot input.
static void test_categorical(void) {
    const int B = 3, K = 7, S = 5;
    float *logits = random_floats((size_t)B * K * S, -4, 4);
    float x[3 * 5];
    int target[3 * 5];
    for (int i = 0; i < B * S; i++) {
        target[i] = (int)(rng_u32(&test_rng) % K);
        x[i] = (float)target[i] / 255.0f;   // as the uint8 dataset gather gives them
    }
    float rows[3], rows_only[3], *grad = xmalloc((size_t)B * K * S * sizeof(float));
    cpu->categorical_loss(cpu, grad, rows, logits, x, B, K, S, 0.5f);
    cpu->categorical_loss(cpu, NULL, rows_only, logits, x, B, K, S, 0.5f);
    for (int b = 0; b < B; b++) {
        double want = ref_categorical(logits + (size_t)b * K * S, target + b * S, K, S);
        CHECK(test_close(rows[b], want, 1e-5, 1e-6), "categorical row %d: %g vs %g", b, rows[b], want);
        CHECK(rows_only[b] == rows[b], "forward-only row %d", b);
        for (int i = 0; i < K * S; i++) {
            float *l = logits + (size_t)b * K * S;
            const double h = 1e-3;
            float saved = l[i];
            l[i] = saved + (float)h;
            double up = ref_categorical(l, target + b * S, K, S);
            l[i] = saved - (float)h;
            double down = ref_categorical(l, target + b * S, K, S);
            l[i] = saved;
            double fd = 0.5 * (up - down) / (2 * h);
            CHECK(test_close(grad[(size_t)b * K * S + i], fd, 1e-3, 1e-5), "categorical gradient [%d, %d]: %g vs fd %g",
                  b, i, grad[(size_t)b * K * S + i], fd);
        }
    }
    float *onehot = xmalloc((size_t)B * K * S * sizeof(float));
    cpu->codes_onehot(cpu, onehot, x, B, K, S);
    int wrong = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            for (int s = 0; s < S; s++)
                wrong += onehot[((size_t)b * K + k) * S + s] != (target[b * S + s] == k ? 1.0f : 0.0f);
    CHECK(wrong == 0, "codes_onehot: %d entries wrong", wrong);
    free(logits); free(grad); free(onehot);
}

static ConvGeometry geometry(int C, int H, int W, int k, int s, int p) {
    ConvGeometry g = {C, H, W, k, s, p, (H + 2 * p - k) / s + 1, (W + 2 * p - k) / s + 1};
    return g;
}

enum { IM2COL_SHAPES = 13 };

static ConvGeometry im2col_shape(size_t t) {
    const ConvGeometry shapes[] = {geometry(2, 5, 6, 3, 1, 1), geometry(3, 7, 5, 4, 2, 1),
                                   geometry(1, 8, 8, 2, 3, 0), geometry(2, 4, 4, 5, 1, 2),
                                   geometry(2, 14, 14, 4, 2, 1), geometry(1, 6, 9, 3, 2, 2),
                                   geometry(1, 8, 7, 3, 2, 0), geometry(2, 4, 5, 2, 1, 3),
                                   geometry(2, 4, 6, 1, 5, 4),   // stride > kernel, padding > kernel
                                   geometry(1, 70, 70, 3, 1, 1), geometry(2, 9, 9, 3, 2, 0),
                                   geometry(1, 11, 10, 5, 3, 1),
                                   geometry(3, 5, 7, 1, 1, 0)};  // 1 x 1: the CPU's swaps
    if (sizeof shapes / sizeof shapes[0] != IM2COL_SHAPES || t >= IM2COL_SHAPES) abort();   // the list and count agree
    return shapes[t];
}

// Pixels of back (B, C, H, W) that differ from col2im_value's sum over c bit for bit (where
// that sum is a NaN, any NaN will do: which of the NaNs added comes out may differ).
static int col2im_mismatches(const float *back, const float *c, ConvGeometry g, int B) {
    int wrong = 0;
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < g.C; ch++)
            for (int h = 0; h < g.H; h++)
                for (int w = 0; w < g.W; w++) {
                    float want = col2im_value(c, g, B, b, ch, h, w), got = back[(((size_t)b * g.C + ch) * g.H + h) * g.W + w];
                    if (isnan(want) ? !isnan(got) : memcmp(&want, &got, sizeof want) != 0) wrong++;
                }
    return wrong;
}

// im2col(x) and col2im(c) on the CPU against im2col_value and col2im_value: the entries of the
// former that differ bit for bit, and col2im_mismatches of the latter.
static void compare_with_definitions(const float *x, const float *c, ConvGeometry g, int B, int *im2col_wrong,
                                     int *col2im_wrong) {
    const size_t image = (size_t)B * g.C * g.H * g.W;
    const size_t rows = (size_t)g.C * g.kernel * g.kernel, columns = (size_t)B * g.OH * g.OW;
    float *col = xmalloc(rows * columns * sizeof(float)), *back = xmalloc(image * sizeof(float));
    cpu->im2col(cpu, col, x, g, B);
    int wrong = 0;
    for (size_t r = 0; r < rows; r++)
        for (int b = 0; b < B; b++)
            for (int oh = 0; oh < g.OH; oh++)
                for (int ow = 0; ow < g.OW; ow++) {
                    float want = im2col_value(x + (size_t)b * g.C * g.H * g.W, g, (int)r, oh, ow);
                    float got = col[r * columns + ((size_t)b * g.OH + oh) * g.OW + ow];
                    if (memcmp(&want, &got, sizeof want) != 0) wrong++;
                }
    *im2col_wrong = wrong;
    cpu->col2im(cpu, back, c, g, B);
    *col2im_wrong = col2im_mismatches(back, c, g, B);
    free(col);
    free(back);
}

// im2col against the definition, col2im against col2im_value (the CUDA kernel's sum, to
// the bit) and as im2col's adjoint, over geometries with stride > kernel gaps, padding
// (up to more than the kernel), non-square images, pixels no window reads, and a batch
// of 17 images (the CPU's blocks of images end part-way); both of the CPU's layouts, stacked
// phase planes (a masked run per tap and block) and one phase plane an image, are exercised
static void test_im2col_col2im(void) {
    const int B = 17;
    int stacked = 0, per_image = 0;
    for (size_t t = 0; t < IM2COL_SHAPES; t++) {
        ConvGeometry g = im2col_shape(t);
        if (backend_cpu_im2col_stacked(g, B)) stacked++;
        else per_image++;
        size_t image = (size_t)B * g.C * g.H * g.W;
        size_t rows = (size_t)g.C * g.kernel * g.kernel, columns = (size_t)B * g.OH * g.OW;
        float *x = random_floats(image, -1, 1), *c = random_floats(rows * columns, -1, 1);
        float *col = xmalloc(rows * columns * sizeof(float)), *back = xmalloc(image * sizeof(float));
        cpu->im2col(cpu, col, x, g, B);
        int wrong = 0;
        for (int ch = 0; ch < g.C; ch++)
            for (int i = 0; i < g.kernel; i++)
                for (int j = 0; j < g.kernel; j++)
                    for (int b = 0; b < B; b++)
                        for (int oh = 0; oh < g.OH; oh++)
                            for (int ow = 0; ow < g.OW; ow++) {
                                int h = oh * g.stride - g.padding + i, w = ow * g.stride - g.padding + j;
                                float want = (h < 0 || h >= g.H || w < 0 || w >= g.W)
                                    ? 0.0f : x[(((size_t)b * g.C + ch) * g.H + h) * g.W + w];
                                size_t r = ((size_t)ch * g.kernel + i) * g.kernel + j;
                                size_t column = ((size_t)b * g.OH + oh) * g.OW + ow;
                                if (col[r * columns + column] != want) wrong++;
                            }
        CHECK(wrong == 0, "geometry %zu: %d im2col entries differ from the definition", t, wrong);
        cpu->col2im(cpu, back, c, g, B);
        wrong = col2im_mismatches(back, c, g, B);
        CHECK(wrong == 0, "geometry %zu: %d col2im pixels differ from col2im_value's sum", t, wrong);
        double lhs = 0, rhs = 0;   // <im2col(x), c> = <x, col2im(c)>
        for (size_t i = 0; i < rows * columns; i++) lhs += (double)col[i] * c[i];
        for (size_t i = 0; i < image; i++) rhs += (double)x[i] * back[i];
        CHECK(test_close(lhs, rhs, 1e-5, 1e-6), "geometry %zu: <im2col x, c> %.9g vs <x, col2im c> %.9g",
              t, lhs, rhs);
        free(x); free(c); free(col); free(back);
    }
    CHECK(stacked >= 3 && per_image >= 3, "%d geometries took the stacked layout, %d the per-image one: want 3 "
          "or more of each", stacked, per_image);
}

// The same geometries with -0.0, NaN and infinities among the pixels and the col entries:
// im2col copies every bit (and gives +0.0 outside the image, whatever the neighbours hold),
// col2im equals col2im_value bit for bit, or is a NaN where that sum is (which NaN may differ),
// and the col entries for pixels outside the image (col2im never adds them) change nothing.
static void test_im2col_col2im_special_values(void) {
    const int B = 17;
    const float specials[] = {-0.0f, NAN, INFINITY, -INFINITY};
    for (size_t t = 0; t < IM2COL_SHAPES; t++) {
        ConvGeometry g = im2col_shape(t);
        size_t image = (size_t)B * g.C * g.H * g.W;
        size_t rows = (size_t)g.C * g.kernel * g.kernel, columns = (size_t)B * g.OH * g.OW;
        float *x = random_floats(image, -1, 1), *c = random_floats(rows * columns, -1, 1);
        for (size_t i = 0; i < image; i += 5) x[i] = specials[(i / 5) % 4];
        for (size_t i = 0; i < rows * columns; i += 3) c[i] = specials[(i / 3) % 4];
        int im2col_wrong, col2im_wrong;
        compare_with_definitions(x, c, g, B, &im2col_wrong, &col2im_wrong);
        CHECK(im2col_wrong == 0, "geometry %zu: %d im2col entries differ from the definition bit for bit", t,
              im2col_wrong);
        CHECK(col2im_wrong == 0, "geometry %zu: %d col2im pixels differ from col2im_value's sum", t, col2im_wrong);
        free(x); free(c);
    }
}

// Random small geometries (kernel 1-7, stride 1-4, padding 0-4, images 1-12 by 1-12, 1-3
// channels, 1-9 images, transposed-conv-like outputs one larger): im2col and col2im against the
// definitions bit for bit, whichever layout each takes (both are counted).
static void test_im2col_col2im_random_geometries(void) {
    int stacked = 0, per_image = 0, tried = 0;
    for (int trial = 0; trial < 400; trial++) {
        const int k = 1 + (int)(rng_u32(&test_rng) % 7), s = 1 + (int)(rng_u32(&test_rng) % 4);
        const int p = (int)(rng_u32(&test_rng) % 5), C = 1 + (int)(rng_u32(&test_rng) % 3);
        const int H = 1 + (int)(rng_u32(&test_rng) % 12), W = 1 + (int)(rng_u32(&test_rng) % 12);
        const int B = 1 + (int)(rng_u32(&test_rng) % 9);
        if (H + 2 * p < k || W + 2 * p < k) continue;
        ConvGeometry g = geometry(C, H, W, k, s, p);
        if (rng_u32(&test_rng) % 2 && g.H + 1 <= 12) g.H += 1;   // as a transposed conv's output_padding leaves it
        tried++;
        if (backend_cpu_im2col_stacked(g, B)) stacked++;
        else per_image++;
        size_t image = (size_t)B * g.C * g.H * g.W;
        size_t rows = (size_t)g.C * g.kernel * g.kernel, columns = (size_t)B * g.OH * g.OW;
        float *x = random_floats(image, -1, 1), *c = random_floats(rows * columns, -1, 1);
        int im2col_wrong, col2im_wrong;
        compare_with_definitions(x, c, g, B, &im2col_wrong, &col2im_wrong);
        CHECK(im2col_wrong == 0, "C %d H %d W %d k %d s %d p %d B %d: %d im2col entries differ", g.C, g.H, g.W, k,
              s, p, B, im2col_wrong);
        CHECK(col2im_wrong == 0, "C %d H %d W %d k %d s %d p %d B %d: %d col2im pixels differ", g.C, g.H, g.W, k,
              s, p, B, col2im_wrong);
        free(x); free(c);
    }
    CHECK(stacked >= 20 && per_image >= 20, "%d random geometries: %d stacked, %d per-image; want 20 or more of each",
          tried, stacked, per_image);
}

static void test_swap_leading_axes(void) {
    const int N0 = 3, N1 = 5, S = 7;
    float *in = random_floats((size_t)N0 * N1 * S, -1, 1);
    float *out = xmalloc((size_t)N0 * N1 * S * sizeof(float)), *back = xmalloc((size_t)N0 * N1 * S * sizeof(float));
    cpu->swap_leading_axes(cpu, out, in, N0, N1, S);
    int wrong = 0;
    for (int a = 0; a < N0; a++)
        for (int b = 0; b < N1; b++)
            for (int s = 0; s < S; s++)
                if (out[((size_t)b * N0 + a) * S + s] != in[((size_t)a * N1 + b) * S + s]) wrong++;
    CHECK(wrong == 0, "%d entries misplaced", wrong);
    cpu->swap_leading_axes(cpu, back, out, N1, N0, S);
    CHECK(memcmp(back, in, (size_t)N0 * N1 * S * sizeof(float)) == 0, "swapping twice is not the identity");
    free(in); free(out); free(back);
}

static void test_channel_bias(void) {
    const int B = 3, C = 4, S = 5;
    const size_t n = (size_t)B * C * S;
    float *y = random_floats(n, -1, 1), *bias = random_floats(C, -1, 1), *dy = random_floats(n, -1, 1);
    float *y0 = xmalloc(n * sizeof(float));
    memcpy(y0, y, n * sizeof(float));
    cpu->channel_bias_forward(cpu, y, bias, B, C, S);
    for (size_t i = 0; i < n; i++) {
        int c = (int)((i / S) % C);
        CHECK(y[i] == y0[i] + bias[c], "forward [%zu]", i);
    }
    // F = sum dy * (y0 + bias[c]) is linear in bias: dF/dbias[c] = sum of dy over channel c
    float dbias[4];
    cpu->channel_bias_grad(cpu, dbias, dy, B, C, S);
    for (int c = 0; c < C; c++) {
        double want = 0;
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++) want += dy[((size_t)b * C + c) * S + s];
        CHECK(test_close(dbias[c], want, 1e-6, 1e-7), "dbias[%d] %g vs %g", c, dbias[c], want);
    }
    free(y); free(bias); free(dy); free(y0);
}

// F(x, gamma, beta) = sum w * BN_train(x) in double
static double bn_objective(const double *x, const double *gamma, const double *beta, const float *w,
                           int B, int C, int S, double eps) {
    double F = 0;
    const double n = (double)B * S;
    for (int c = 0; c < C; c++) {
        double mean = 0, var = 0;
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++) mean += x[((size_t)b * C + c) * S + s];
        mean /= n;
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++) {
                double d = x[((size_t)b * C + c) * S + s] - mean;
                var += d * d;
            }
        var /= n;
        for (int b = 0; b < B; b++)
            for (int s = 0; s < S; s++) {
                size_t i = ((size_t)b * C + c) * S + s;
                F += w[i] * ((x[i] - mean) / sqrt(var + eps) * gamma[c] + beta[c]);
            }
    }
    return F;
}

// A channel whose values are all the same (a dead feature map, a padded border): its batch
// variance is 0, and eps alone keeps the normalisation finite — the output is beta, the inverse
// standard deviation 1 / sqrt(eps), the gradients finite. (The random inputs above have
// variances about 2, where an eps left out changes nothing a tolerance sees.)
static void test_batch_norm_constant_channel(void) {
    enum { B = 4, C = 2, S = 3 };
    const float momentum = 0.1f, eps = 1e-5f;
    float x[B * C * S], y[B * C * S], dx[B * C * S], w[B * C * S];
    const float gamma[C] = {1.5f, 0.8f}, beta[C] = {0.25f, -0.5f};
    for (int i = 0; i < B * C * S; i++) {
        const int c = (i / S) % C;
        x[i] = c == 0 ? 0.5f : (float)(i % 5) - 2.0f;   // channel 0 constant
        w[i] = (float)((i * 7) % 11) / 11.0f - 0.5f;
    }
    float mean[C], invstd[C], rmean[C] = {0, 0}, rvar[C] = {1, 1}, dgamma[C], dbeta[C];
    cpu->batch_norm_forward(cpu, y, mean, invstd, rmean, rvar, x, gamma, beta, B, C, S, true, momentum, eps);
    CHECK(test_close(invstd[0], 1.0 / sqrt(eps), 1e-5, 0), "constant channel: invstd %g, 1 / sqrt(eps) %g",
          invstd[0], 1.0 / sqrt(eps));
    int off = 0;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) off += !(fabsf(y[(b * C + 0) * S + s] - beta[0]) <= 1e-6f);
    CHECK(off == 0, "constant channel: %d of %d outputs not beta (%g)", off, B * S, beta[0]);
    cpu->batch_norm_backward(cpu, dx, dgamma, dbeta, w, x, gamma, mean, invstd, B, C, S);
    int not_finite = 0;
    for (int i = 0; i < B * C * S; i++) not_finite += !isfinite(dx[i]);
    CHECK(not_finite == 0 && isfinite(dgamma[0]) && isfinite(dbeta[0]), "%d input gradients not finite", not_finite);
}

static void test_batch_norm(void) {
    const int shapes[2][3] = {{6, 3, 1}, {4, 3, 5}};   // 1-D (B, C) and 2-D (B, C, H W)
    const float momentum = 0.1f, eps = 1e-5f;
    for (int t = 0; t < 2; t++) {
        const int B = shapes[t][0], C = shapes[t][1], S = shapes[t][2];
        const size_t n = (size_t)B * C * S;
        float *x = random_floats(n, -2, 3), *gamma = random_floats(C, 0.5f, 1.5f);
        float *beta = random_floats(C, -0.5f, 0.5f), *w = random_floats(n, -1, 1);
        float *y = xmalloc(n * sizeof(float)), *dx = xmalloc(n * sizeof(float));
        float mean[3], invstd[3], rmean[3] = {0.5f, -1, 0}, rvar[3] = {1, 2, 0.5f}, dgamma[3], dbeta[3];
        float rmean0[3], rvar0[3];
        memcpy(rmean0, rmean, sizeof rmean);
        memcpy(rvar0, rvar, sizeof rvar);
        cpu->batch_norm_forward(cpu, y, mean, invstd, rmean, rvar, x, gamma, beta, B, C, S, true,
                                momentum, eps);
        for (int c = 0; c < C; c++) {
            double m = 0, v = 0, cnt = (double)B * S;
            for (int b = 0; b < B; b++)
                for (int s = 0; s < S; s++) m += x[((size_t)b * C + c) * S + s];
            m /= cnt;
            for (int b = 0; b < B; b++)
                for (int s = 0; s < S; s++) v += pow(x[((size_t)b * C + c) * S + s] - m, 2);
            double unbiased = v / (cnt - 1);
            v /= cnt;
            CHECK(test_close(mean[c], m, 1e-6, 1e-7), "shape %d mean[%d]", t, c);
            CHECK(test_close(invstd[c], 1 / sqrt(v + eps), 1e-5, 0), "shape %d invstd[%d]", t, c);
            CHECK(test_close(rmean[c], 0.9 * rmean0[c] + 0.1 * m, 1e-6, 1e-7), "shape %d running_mean[%d]", t, c);
            CHECK(test_close(rvar[c], 0.9 * rvar0[c] + 0.1 * unbiased, 1e-6, 1e-7),
                  "shape %d running_var[%d] %g (unbiased, as PyTorch)", t, c, rvar[c]);
            for (int b = 0; b < B; b++)
                for (int s = 0; s < S; s++) {
                    size_t i = ((size_t)b * C + c) * S + s;
                    double want = (x[i] - m) / sqrt(v + eps) * gamma[c] + beta[c];
                    CHECK(test_close(y[i], want, 1e-5, 1e-6), "shape %d y[%zu] %g vs %g", t, i, y[i], want);
                }
        }
        // gradients of F = sum w * y against finite differences of the double reference
        cpu->batch_norm_backward(cpu, dx, dgamma, dbeta, w, x, gamma, mean, invstd, B, C, S);
        double *xd = xmalloc(n * sizeof(double)), gd[3], bd[3];
        for (size_t i = 0; i < n; i++) xd[i] = x[i];
        for (int c = 0; c < C; c++) { gd[c] = gamma[c]; bd[c] = beta[c]; }
        const double h = 1e-5;
        for (size_t i = 0; i < n; i++) {
            double keep = xd[i];
            xd[i] = keep + h;
            double up = bn_objective(xd, gd, bd, w, B, C, S, eps);
            xd[i] = keep - h;
            double down = bn_objective(xd, gd, bd, w, B, C, S, eps);
            xd[i] = keep;
            double fd = (up - down) / (2 * h);
            CHECK(test_close(dx[i], fd, 1e-3, 1e-5), "shape %d dx[%zu] %g vs fd %g", t, i, dx[i], fd);
        }
        for (int c = 0; c < C; c++) {
            double keep = gd[c];
            gd[c] = keep + h;
            double up = bn_objective(xd, gd, bd, w, B, C, S, eps);
            gd[c] = keep - h;
            double down = bn_objective(xd, gd, bd, w, B, C, S, eps);
            gd[c] = keep;
            CHECK(test_close(dgamma[c], (up - down) / (2 * h), 1e-4, 1e-5), "shape %d dgamma[%d]", t, c);
            keep = bd[c];
            bd[c] = keep + h;
            up = bn_objective(xd, gd, bd, w, B, C, S, eps);
            bd[c] = keep - h;
            down = bn_objective(xd, gd, bd, w, B, C, S, eps);
            bd[c] = keep;
            CHECK(test_close(dbeta[c], (up - down) / (2 * h), 1e-4, 1e-5), "shape %d dbeta[%d]", t, c);
        }
        // eval mode: the running statistics, untouched
        memcpy(rmean0, rmean, sizeof rmean);
        memcpy(rvar0, rvar, sizeof rvar);
        cpu->batch_norm_forward(cpu, y, mean, invstd, rmean, rvar, x, gamma, beta, B, C, S, false,
                                momentum, eps);
        CHECK(memcmp(rmean0, rmean, C * sizeof(float)) == 0 && memcmp(rvar0, rvar, C * sizeof(float)) == 0,
              "shape %d: eval mode changed the running statistics", t);
        for (size_t i = 0; i < n; i++) {
            int c = (int)((i / S) % C);
            double want = (x[i] - rmean[c]) / sqrt(rvar[c] + eps) * gamma[c] + beta[c];
            CHECK(test_close(y[i], want, 1e-5, 1e-6), "shape %d eval y[%zu] %g vs %g", t, i, y[i], want);
        }
        free(x); free(gamma); free(beta); free(w); free(y); free(dx); free(xd);
    }
}

// the quantiser: nearest codes, quantized vectors and per-example distances, the
// straight-through / commitment / codebook gradients against finite differences
// (codes held fixed), and the EMA update against its formula, in double
static void test_vector_quantizer(void) {
    const int B = 3, S = 4, D = 5, K = 7, N = B * S;
    float *zt = random_floats((size_t)D * N, -1, 1), *E = random_floats((size_t)K * D, -1, 1);
    float *scores = xmalloc((size_t)N * K * sizeof(float)), norms[7];
    int32_t codes[12];
    cpu->vq_code_norms(cpu, norms, E, K, D);
    // scores (N, K) = zt^T (N, D) E^T (D, K)
    cpu->gemm(cpu, true, true, N, K, D, 1.0f, zt, N, E, D, 0.0f, scores, K);
    cpu->vq_argmin(cpu, codes, scores, norms, N, K);
    for (int n = 0; n < N; n++) {
        int best = 0;
        double best_d = 1e300;
        for (int k = 0; k < K; k++) {
            double dist = 0;
            for (int d = 0; d < D; d++) dist += pow((double)zt[(size_t)d * N + n] - E[(size_t)k * D + d], 2);
            if (dist < best_d) { best_d = dist; best = k; }
        }
        CHECK(codes[n] == best, "column %d: code %d, nearest %d", n, codes[n], best);
    }
    float *zqt = xmalloc((size_t)D * N * sizeof(float)), loss[3];
    const float weight = 1.25f;
    cpu->vq_quantize(cpu, zqt, loss, zt, E, codes, B, S, D, weight);
    for (int b = 0; b < B; b++) {
        double want = 0;
        for (int s = 0; s < S; s++)
            for (int d = 0; d < D; d++) {
                int n = b * S + s;
                CHECK(zqt[(size_t)d * N + n] == E[(size_t)codes[n] * D + d], "zq[%d, %d]", d, n);
                want += pow((double)zt[(size_t)d * N + n] - E[(size_t)codes[n] * D + d], 2);
            }
        CHECK(test_close(loss[b], weight * want, 1e-6, 1e-7), "loss_row[%d] %g vs %g", b, loss[b], weight * want);
    }
    // G(z, E) = commit sum_n ||z_n - sg e||^2 + book sum_n ||sg z_n - e||^2 with the codes fixed
    float *dzqt = random_floats((size_t)D * N, -1, 1), *dzt = xmalloc((size_t)D * N * sizeof(float));
    float *dE = xmalloc((size_t)K * D * sizeof(float));
    const float commit = 0.3f, book = 0.7f;
    cpu->vq_backward(cpu, dzt, dE, dzqt, zt, E, codes, N, K, D, commit, book);
    const double h = 1e-4;
    for (int d = 0; d < D; d++)
        for (int n = 0; n < N; n++) {
            double e = E[(size_t)codes[n] * D + d], z = zt[(size_t)d * N + n];
            double fd = commit * (pow(z + h - e, 2) - pow(z - h - e, 2)) / (2 * h);
            CHECK(test_close(dzt[(size_t)d * N + n], dzqt[(size_t)d * N + n] + fd, 1e-4, 1e-6),
                  "dz[%d, %d] %g vs %g", d, n, dzt[(size_t)d * N + n], dzqt[(size_t)d * N + n] + fd);
        }
    for (int k = 0; k < K; k++)
        for (int d = 0; d < D; d++) {
            double fd = 0, e = E[(size_t)k * D + d];
            for (int n = 0; n < N; n++)
                if (codes[n] == k) {
                    double z = zt[(size_t)d * N + n];
                    fd += book * (pow(z - (e + h), 2) - pow(z - (e - h), 2)) / (2 * h);
                }
            CHECK(test_close(dE[(size_t)k * D + d], fd, 1e-4, 1e-6), "dE[%d, %d] %g vs %g", k, d,
                  dE[(size_t)k * D + d], fd);
        }
    // EMA: counts and sums decay toward this batch's assignment, codes = sums / smoothed counts
    float counts[7], *sums = xmalloc((size_t)K * D * sizeof(float)), *Ema = xmalloc((size_t)K * D * sizeof(float));
    for (int k = 0; k < K; k++) counts[k] = 0.5f + (float)k;
    memcpy(sums, E, (size_t)K * D * sizeof(float));
    memcpy(Ema, E, (size_t)K * D * sizeof(float));
    float counts0[7], *sums0 = xmalloc((size_t)K * D * sizeof(float));
    memcpy(counts0, counts, sizeof counts);
    memcpy(sums0, sums, (size_t)K * D * sizeof(float));
    const double decay = 0.9, eps = 1e-3;
    cpu->vq_ema_update(cpu, Ema, counts, sums, zt, codes, N, K, D, (float)decay, (float)eps);
    double want_counts[7], total = 0;
    for (int k = 0; k < K; k++) {
        int used = 0;
        for (int n = 0; n < N; n++) used += codes[n] == k;
        want_counts[k] = decay * counts0[k] + (1 - decay) * used;
        total += want_counts[k];
        CHECK(test_close(counts[k], want_counts[k], 1e-6, 1e-7), "ema count %d", k);
    }
    for (int k = 0; k < K; k++)
        for (int d = 0; d < D; d++) {
            double sum = 0;
            for (int n = 0; n < N; n++)
                if (codes[n] == k) sum += zt[(size_t)d * N + n];
            double want_sum = decay * sums0[(size_t)k * D + d] + (1 - decay) * sum;
            double smoothed = (want_counts[k] + eps) / (total + K * eps) * total;
            CHECK(test_close(sums[(size_t)k * D + d], want_sum, 1e-5, 1e-6), "ema sum %d %d", k, d);
            CHECK(test_close(Ema[(size_t)k * D + d], want_sum / smoothed, 1e-5, 1e-6), "ema code %d %d: %g vs %g",
                  k, d, Ema[(size_t)k * D + d], want_sum / smoothed);
        }
    free(zt); free(E); free(scores); free(zqt); free(dzqt); free(dzt); free(dE); free(sums); free(Ema); free(sums0);
}

// vq_argmin against the definition vq_nearest_code (layer_math.h; the CUDA kernel's) code for
// code, over codebook sizes below, at and past the CPU's lane count and rows made to trip a
// lane-wise search: ties (the first k wins), the minimum in the tail past the last full group
// of lanes, -0 against +0, NaNs (skipped, but kept at k = 0), +-inf, all values equal.
static void test_vq_argmin_matches_definition(void) {
    const int sizes[] = {1, 7, 15, 16, 17, 23, 64, 256, 259};
    const int rows = 13;
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        const int K = sizes[t];
        float *scores = random_floats((size_t)rows * K, -1, 1), *norms = random_floats((size_t)K, 0, 2);
        float *row;
        for (int r = 0; r < rows; r++) {
            row = scores + (size_t)r * K;
            const int a = (r * 7 + 3) % K, b = (r * 5 + K / 2) % K;
            switch (r) {
            case 0: break;                                                   // plain random
            case 1: for (int k = 0; k < K; k++) row[k] = 0.5f * norms[k]; break;   // every value 0
            case 2: row[a] = row[b] = 0.5f * norms[a] + 10.0f; norms[b] = norms[a]; break;   // a tie
            case 3: row[K - 1] = 100.0f; break;                              // the minimum last
            case 4: row[0] = NAN; break;                                     // NaN at k = 0
            case 5: row[a] = NAN; row[b] = 100.0f; break;                    // NaN elsewhere
            case 6: for (int k = 0; k < K; k++) row[k] = NAN; break;
            case 7: row[a] = INFINITY; break;                                // -inf value
            case 8: row[a] = -INFINITY; row[b] = -INFINITY; break;           // +inf values
            case 9: for (int k = 0; k < K; k++) row[k] = k % 3 ? -INFINITY : NAN; break;
            case 10: for (int k = 0; k < K; k++) row[k] = (k % 2 ? -0.0f : 0.0f); break;   // values norms[k]
            case 11: row[a] = row[K - 1] = 100.0f; norms[K - 1] = norms[a]; break;   // a tie with the last k
            default: for (int k = 0; k < K; k++) row[k] = (float)((k * 37) % 5); break;    // many ties
            }
        }
        int32_t *codes = xmalloc((size_t)rows * sizeof(int32_t));
        cpu->vq_argmin(cpu, codes, scores, norms, rows, K);
        for (int r = 0; r < rows; r++) {
            const int want = vq_nearest_code(scores + (size_t)r * K, norms, K);
            CHECK(codes[r] == want, "K %d, row %d: code %d, the definition's %d", K, r, codes[r], want);
        }
        free(scores); free(norms); free(codes);
    }
}

// The CPU's col2im_chunks (how many chunks of images a conv's GEMM -> col2im path takes):
// one for a batch whose columns are small; never more than B; every chunk's GEMM at least
// 2^21 multiply-adds when there is more than one (OpenBLAS's small-matrix kernels, which sum
// in another order, stay out); one image a chunk when an image's columns alone pass any L2.
static void test_col2im_chunk_policy(void) {
    const struct { size_t floats_per_image; int inner, B; } cases[] = {
        {100, 4, 3},          // tiny: one chunk
        {25088, 64, 128},     // the conv bench's 64 -> 32 transposed conv (512 rows x 49 an image)
        {3136, 32, 128},      // its 32 -> 1 one
        {25088, 1, 128},      // one input channel: few multiply-adds an image, so big chunks
        {4096, 2, 1000},
        {(size_t)1 << 24, 64, 3},   // 64 MiB of columns an image: one image a chunk
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int B = cases[t].B;
        const int chunks = cpu->col2im_chunks(cpu, cases[t].floats_per_image, cases[t].inner, B);
        CHECK(chunks >= 1 && chunks <= B, "case %zu: %d chunks of %d images", t, chunks, B);
        if (chunks > 1) {
            const double smallest = (double)(B / chunks) * (double)cases[t].floats_per_image * cases[t].inner;
            CHECK(smallest >= 2097152.0, "case %zu: %d chunks, the smallest GEMM %.0f multiply-adds (< 2^21)", t,
                  chunks, smallest);
        }
        if (t == 0) CHECK(chunks == 1, "300 column floats in %d chunks", chunks);
        if (t == 5) CHECK(chunks == B, "64 MiB of columns an image in %d chunks of %d images", chunks, B);
    }
}

// The CPU backend's library convolutions (oneDNN, conv_onednn.c; Backend.conv_forward ...)
// against a direct convolution in double: y = conv(x, W) + bias, and with no bias; the input
// gradient; the weight and bias gradients. Random geometries: 1-40 channels either side (the
// plain layout below 8, oneDNN's blocked one above, channel counts that fill no 16-channel block),
// kernel 1-5, stride 1-3, padding 0-2, 1-5 images, and images as a transposed conv with
// output_padding leaves them (rows at the bottom no output reads).
static double conv_input(const float *x, ConvGeometry g, int b, int c, int ih, int iw) {
    if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return 0.0;
    return x[(((size_t)b * g.C + c) * g.H + ih) * g.W + iw];
}

static void test_library_convolutions(void) {
    if (!cpu->conv_forward) {
        test_skip("library_convolutions", "this build has no oneDNN (ONEDNN=0, or no <oneapi/dnnl/dnnl.h> when built)");
        return;
    }
    int trials = 0, blocked = 0, unread_rows = 0;
    for (int trial = 0; trial < 60; trial++) {
        const int k = 1 + (int)(rng_u32(&test_rng) % 5), s = 1 + (int)(rng_u32(&test_rng) % 3);
        const int p = (int)(rng_u32(&test_rng) % 3), B = 1 + (int)(rng_u32(&test_rng) % 5);
        const int C = 1 + (int)(rng_u32(&test_rng) % 40), C_out = 1 + (int)(rng_u32(&test_rng) % 40);
        const int OH = 1 + (int)(rng_u32(&test_rng) % 9), OW = 1 + (int)(rng_u32(&test_rng) % 9);
        const int extra = (int)(rng_u32(&test_rng) % s);   // output_padding < stride
        // the image a conv maps onto exactly (OH, OW); with `extra`, a transposed conv's output
        ConvGeometry g = {C, (OH - 1) * s + k - 2 * p + extra, (OW - 1) * s + k - 2 * p, k, s, p, OH, OW};
        if (g.H < 1 || g.W < 1 || (g.H + 2 * p - k) / s + 1 != OH || (g.W + 2 * p - k) / s + 1 != OW) continue;
        trials++;
        if (C >= 8 && C_out >= 8) blocked++;
        if (extra > 0) unread_rows++;
        const size_t nx = (size_t)B * C * g.H * g.W, ny = (size_t)B * C_out * OH * OW, nw = (size_t)C_out * C * k * k;
        float *x = random_floats(nx, -1, 1), *W = random_floats(nw, -1, 1), *bias = random_floats(C_out, -1, 1);
        float *dy = random_floats(ny, -1, 1), *y = random_floats(ny, 5, 6), *y_nb = random_floats(ny, 5, 6);
        float *dx = random_floats(nx, 5, 6), *dW = random_floats(nw, 5, 6), *db = random_floats(C_out, 5, 6);
        float *dW_nb = random_floats(nw, 5, 6);
        cpu->conv_forward(cpu, y, x, W, bias, g, C_out, B);
        cpu->conv_forward(cpu, y_nb, x, W, NULL, g, C_out, B);
        cpu->conv_backward_data(cpu, dx, dy, W, g, C_out, B);
        cpu->conv_backward_weights(cpu, dW, db, x, dy, g, C_out, B);
        cpu->conv_backward_weights(cpu, dW_nb, NULL, x, dy, g, C_out, B);
        double *dx_ref = xcalloc(nx, sizeof(double)), *dW_ref = xcalloc(nw, sizeof(double));
        double *dx_mag = xcalloc(nx, sizeof(double)), *dW_mag = xcalloc(nw, sizeof(double));
        int wrong_y = 0, wrong_db = 0, wrong_dx = 0, wrong_dW = 0;
        for (int o = 0; o < C_out; o++) {
            double db_ref = 0.0, db_mag = 0.0;
            for (int b = 0; b < B; b++)
                for (int oh = 0; oh < OH; oh++)
                    for (int ow = 0; ow < OW; ow++) {
                        const size_t yi = (((size_t)b * C_out + o) * OH + oh) * OW + ow;
                        double sum = 0.0, mag = 0.0;
                        for (int c = 0; c < C; c++)
                            for (int i = 0; i < k; i++)
                                for (int j = 0; j < k; j++) {
                                    const int ih = oh * s - p + i, iw = ow * s - p + j;
                                    const size_t wi = (((size_t)o * C + c) * k + i) * k + j;
                                    const double xv = conv_input(x, g, b, c, ih, iw);
                                    sum += W[wi] * xv;
                                    mag += fabs(W[wi] * xv);
                                    dW_ref[wi] += dy[yi] * xv;
                                    dW_mag[wi] += fabs(dy[yi] * xv);
                                    if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W) {
                                        const size_t xi = (((size_t)b * C + c) * g.H + ih) * g.W + iw;
                                        dx_ref[xi] += dy[yi] * W[wi];
                                        dx_mag[xi] += fabs(dy[yi] * W[wi]);
                                    }
                                }
                        if (fabs(y[yi] - (sum + bias[o])) > 1e-5 * (mag + fabs(bias[o])) + 1e-6) wrong_y++;
                        if (fabs(y_nb[yi] - sum) > 1e-5 * mag + 1e-6) wrong_y++;
                        db_ref += dy[yi];
                        db_mag += fabs(dy[yi]);
                    }
            if (fabs(db[o] - db_ref) > 1e-5 * db_mag + 1e-6) wrong_db++;
        }
        for (size_t i = 0; i < nx; i++)
            if (fabs(dx[i] - dx_ref[i]) > 1e-5 * dx_mag[i] + 1e-6) wrong_dx++;
        for (size_t i = 0; i < nw; i++)
            if (fabs(dW[i] - dW_ref[i]) > 1e-5 * dW_mag[i] + 1e-6 || dW_nb[i] != dW[i]) wrong_dW++;
        CHECK(wrong_y + wrong_db + wrong_dx + wrong_dW == 0,
              "C %d -> %d, (%d, %d) -> (%d, %d), k %d s %d p %d, B %d: %d y, %d dbias, %d dx, %d dW entries wrong", C,
              C_out, g.H, g.W, OH, OW, k, s, p, B, wrong_y, wrong_db, wrong_dx, wrong_dW);
        free(x); free(W); free(bias); free(dy); free(y); free(y_nb); free(dx); free(dW); free(db); free(dW_nb);
        free(dx_ref); free(dW_ref); free(dx_mag); free(dW_mag);
    }
    CHECK(trials >= 30 && blocked >= 5 && unread_rows >= 5,
          "%d geometries run (%d blocked, %d with rows no output reads): want 30, 5 and 5", trials, blocked,
          unread_rows);
}

// The library convolutions give the same bits for 1, 2 and 3 threads in the pool: the forward
// and the input gradient (each output from one thread), and the weight gradient (chunks of 8
// images, each on one thread, added in chunk order; 21 images: a last chunk of 5). A backend
// per thread count (the library's primitives are built for the pool they start in).
// The library's three ops give the same bits on 1, 2 and 3 threads: blocked layouts with a
// last weight-gradient chunk of 5 images, the plain layout where an op writes one channel (the
// input gradient of a 1-channel image, the forward to 1 channel), a single chunk without bias,
// a 1x1 conv with a 1-image last chunk.
static void test_library_convolutions_thread_independent(void) {
    if (!cpu->conv_forward) {
        test_skip("library_convolutions_thread_independent", "this build has no oneDNN");
        return;
    }
    const struct { ConvGeometry g; int C_out, B; bool bias; } cases[] = {
        {geometry(20, 9, 11, 4, 2, 1), 24, 21, true},
        {geometry(1, 12, 12, 4, 2, 1), 32, 16, true},
        {geometry(32, 7, 7, 3, 1, 1), 1, 5, false},
        {geometry(16, 6, 6, 1, 1, 0), 16, 9, true},
    };
    const int threads[3] = {1, 2, 3}, max_threads = omp_get_max_threads();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const ConvGeometry g = cases[c].g;
        const int C_out = cases[c].C_out, B = cases[c].B;
        const size_t nx = (size_t)B * g.C * g.H * g.W, ny = (size_t)B * C_out * g.OH * g.OW;
        const size_t nw = (size_t)C_out * g.C * g.kernel * g.kernel;
        float *x = random_floats(nx, -1, 1), *W = random_floats(nw, -1, 1), *dy = random_floats(ny, -1, 1);
        float *bias = cases[c].bias ? random_floats(C_out, -1, 1) : NULL;
        float *y[3], *dx[3], *dW[3], *db[3];
        for (int t = 0; t < 3; t++) {
            omp_set_num_threads(threads[t]);
            Backend *be = backend_cpu_create();
            y[t] = xmalloc(ny * sizeof(float));
            dx[t] = xmalloc(nx * sizeof(float));
            dW[t] = xmalloc(nw * sizeof(float));
            db[t] = xcalloc(C_out, sizeof(float));
            be->conv_forward(be, y[t], x, W, bias, g, C_out, B);
            be->conv_backward_data(be, dx[t], dy, W, g, C_out, B);
            be->conv_backward_weights(be, dW[t], bias ? db[t] : NULL, x, dy, g, C_out, B);
            be->destroy(be);
            if (t == 0) continue;
            CHECK(memcmp(y[0], y[t], ny * sizeof(float)) == 0, "case %zu, %d threads: another forward", c, threads[t]);
            CHECK(memcmp(dx[0], dx[t], nx * sizeof(float)) == 0, "case %zu, %d threads: another input gradient", c,
                  threads[t]);
            CHECK(memcmp(dW[0], dW[t], nw * sizeof(float)) == 0, "case %zu, %d threads: another weight gradient", c,
                  threads[t]);
            CHECK(memcmp(db[0], db[t], C_out * sizeof(float)) == 0, "case %zu, %d threads: another bias gradient", c,
                  threads[t]);
        }
        omp_set_num_threads(max_threads);
        for (int t = 0; t < 3; t++) {
            free(y[t]); free(dx[t]); free(dW[t]); free(db[t]);
        }
        free(x); free(W); free(bias); free(dy);
    }
}

// Threads the process starts (libgomp's and oneDNN's): pthread_create interposed by this
// executable, which exports it as libgomp links against it (counting only: the real one runs).
// Not under ASan, which interposes pthread_create itself.
#ifndef __SANITIZE_ADDRESS__
static atomic_int threads_started;
int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg) {
    static int (*real_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real_create) *(void **)&real_create = dlsym(RTLD_NEXT, "pthread_create");
    atomic_fetch_add(&threads_started, 1);
    return real_create(thread, attr, start, arg);
}
#endif

// The weight gradient of a batch of 8 or fewer images (one chunk) on a pool of 2 threads
// starts no thread once the pool exists: it ran in a team of one, which oneDNN took for no
// parallel region and opened nested teams of new threads in, at every call (10x slower). The
// same for two chunks. (The counter is checked first: a new, larger team must move it.)
static void test_library_weight_gradient_starts_no_threads(void) {
#ifdef __SANITIZE_ADDRESS__
    test_skip("library_weight_gradient_starts_no_threads", "under ASan, which interposes pthread_create itself");
#else
    if (!cpu->conv_forward) {
        test_skip("library_weight_gradient_starts_no_threads", "this build has no oneDNN");
        return;
    }
    const int max_threads = omp_get_max_threads();
    const int before_team = atomic_load(&threads_started);
    omp_set_num_threads(max_threads + 2);
    #pragma omp parallel
    { (void)omp_get_thread_num(); }
    if (atomic_load(&threads_started) == before_team) {
        omp_set_num_threads(max_threads);
        test_skip("library_weight_gradient_starts_no_threads", "pthread_create is not interposed in this build");
        return;
    }
    omp_set_num_threads(2);
    Backend *be = backend_cpu_create();
    const ConvGeometry g = geometry(16, 10, 10, 4, 2, 1);
    const int C_out = 16, batches[3] = {8, 3, 16};
    for (int i = 0; i < 3; i++) {
        const int B = batches[i];
        const size_t nx = (size_t)B * g.C * g.H * g.W, ny = (size_t)B * C_out * g.OH * g.OW;
        const size_t nw = (size_t)C_out * g.C * g.kernel * g.kernel;
        float *x = random_floats(nx, -1, 1), *dy = random_floats(ny, -1, 1);
        float *dW = xmalloc(nw * sizeof(float)), *db = xmalloc(C_out * sizeof(float));
        be->conv_backward_weights(be, dW, db, x, dy, g, C_out, B);   // builds the primitives
        const int before = atomic_load(&threads_started);
        for (int call = 0; call < 20; call++) be->conv_backward_weights(be, dW, db, x, dy, g, C_out, B);
        const int started = atomic_load(&threads_started) - before;
        CHECK(started == 0, "batch %d on 2 threads: 20 weight gradients started %d threads", B, started);
        free(x); free(dy); free(dW); free(db);
    }
    be->destroy(be);
    omp_set_num_threads(max_threads);
#endif
}

// oneDNN out of memory (a layer's blocked copy of a 1 TiB input) is the machine's limit, not a
// bug: one line naming it and exit 2, as cuvae's own allocations (it was exit 1 with oneDNN's
// status). In a child process; the input is never read (the copy is made before any call runs).
static void test_library_out_of_memory(void) {
#ifdef __SANITIZE_ADDRESS__
    test_skip("library_out_of_memory", "under ASan, whose allocator aborts on a 1 TiB request");
#else
    ConvLibrary *probe = conv_library_create();
    if (!probe) {
        test_skip("library_out_of_memory", "this build has no oneDNN");
        return;
    }
    conv_library_destroy(probe);
    int pipe_fds[2];
    CHECK(pipe(pipe_fds) == 0, "pipe failed");
    fflush(NULL);
    const pid_t child = fork();
    if (child == 0) {
        dup2(pipe_fds[1], 2);
        close(pipe_fds[0]);
        // (an address-space limit: with the kernel's overcommit set to always, 1 TiB would be given)
        const struct rlimit limit = {(rlim_t)32 << 30, (rlim_t)32 << 30};
        setrlimit(RLIMIT_AS, &limit);
        ConvLibrary *lib = conv_library_create();
        const ConvGeometry g = geometry(64, 512, 512, 1, 1, 0);
        float tiny[64] = {0};
        conv_library_forward(lib, tiny, tiny, tiny, NULL, g, 64, 16384);   // (16384, 64, 512, 512): 1 TiB
        _exit(0);
    }
    close(pipe_fds[1]);
    char message[512] = "";
    size_t length = 0;
    ssize_t got;
    while (length < sizeof message - 1 && (got = read(pipe_fds[0], message + length, sizeof message - 1 - length)) > 0)
        length += (size_t)got;
    message[length] = '\0';
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2, "child: status %d, stderr: %s", status, message);
    CHECK(strstr(message, "cuvae: out of host memory in oneDNN's convolutions") != NULL &&
              strchr(message, '\n') == message + length - 1,
          "not one line naming oneDNN's memory: %s", message);
#endif
}

// The library's primitive cache (conv_onednn.c): a step that needs more primitives than its
// first 64 places (100 layers here) keeps them all once it has cycled through them twice (a
// round-robin cache of 64 rebuilt every one every cycle); batch sizes asked for once evict the
// least recently used entries and do not grow it; its peak bytes are at least what it holds.
// The outputs stay right across evictions and growth (against the first cycle's).
static void test_library_cache(void) {
    ConvLibrary *lib = conv_library_create();
    if (!lib) {
        test_skip("library_cache", "this build has no oneDNN");
        return;
    }
    const ConvGeometry g = geometry(2, 5, 5, 3, 1, 1);
    enum { LAYERS = 100, B = 2, ONCE = 300 };
    const size_t image = (size_t)g.C * g.H * g.W, out_image = (size_t)g.OH * g.OW;
    float *x = random_floats((size_t)(B + ONCE) * image, -1, 1);
    float *W = random_floats((size_t)LAYERS * g.C * g.kernel * g.kernel, -1, 1);
    float *first = xmalloc((size_t)LAYERS * B * LAYERS * out_image * sizeof(float));
    float *y = xmalloc((size_t)(B + ONCE) * LAYERS * out_image * sizeof(float));
    uint64_t builds_after_two = 0;
    int wrong = 0;
    for (int cycle = 0; cycle < 4; cycle++) {
        for (int layer = 0; layer < LAYERS; layer++) {
            const int C_out = layer + 1;
            const size_t ny = (size_t)B * C_out * out_image;
            float *kept = first + (size_t)layer * B * LAYERS * out_image;
            conv_library_forward(lib, cycle == 0 ? kept : y, x, W, NULL, g, C_out, B);
            if (cycle > 0) wrong += memcmp(kept, y, ny * sizeof(float)) != 0;
        }
        if (cycle == 1) builds_after_two = conv_library_builds(lib);
    }
    CHECK(wrong == 0, "%d outputs changed across cycles", wrong);
    CHECK(conv_library_builds(lib) == builds_after_two, "cycles 3 and 4 built %llu primitives again",
          (unsigned long long)(conv_library_builds(lib) - builds_after_two));
    CHECK(conv_library_cached_primitives(lib) >= LAYERS, "%d primitives cached, fewer than the %d layers",
          conv_library_cached_primitives(lib), LAYERS);
    const int cached = conv_library_cached_primitives(lib);
    for (int b = B + 1; b <= B + ONCE; b++) conv_library_forward(lib, y, x, W, NULL, g, 1, b);
    CHECK(conv_library_cached_primitives(lib) <= 2 * 64,   // the places after one doubling
          "%d primitives cached after %d batch sizes asked for once (%d before: the cache grew)",
          conv_library_cached_primitives(lib), ONCE, cached);
    CHECK(conv_library_peak_bytes(lib) >= conv_library_bytes(lib) && conv_library_bytes(lib) > 0,
          "peak bytes %zu, held %zu", conv_library_peak_bytes(lib), conv_library_bytes(lib));
    conv_library_destroy(lib);
    free(x); free(W); free(first); free(y);
}

// The primitive cache keys each convolution by its whole geometry: two convolutions alike in
// everything but their padding (k 3, stride 3 over 9 x 9: padding 0 and 1 both give 3 x 3
// outputs) are two primitives, each giving its own convolution (against the direct sum), in
// either order.
static void test_library_cache_keys_padding(void) {
    ConvLibrary *lib = conv_library_create();
    if (!lib) {
        test_skip("library_cache_keys_padding", "this build has no oneDNN");
        return;
    }
    enum { B = 2, C = 2, C_out = 3 };
    const ConvGeometry pads[2] = {geometry(C, 9, 9, 3, 3, 0), geometry(C, 9, 9, 3, 3, 1)};
    CHECK(pads[0].OH == pads[1].OH && pads[0].OW == pads[1].OW && pads[0].OH == 3,
          "the two geometries have the same (3, 3) output");
    float *x = random_floats((size_t)B * C * 81, -1, 1), *W = random_floats((size_t)C_out * C * 9, -1, 1);
    float y[B * C_out * 9];
    for (int round = 0; round < 4; round++) {   // p 0, p 1, p 1, p 0: each after the other's entry exists
        const int which = round == 0 || round == 3 ? 0 : 1;
        const ConvGeometry g = pads[which];
        conv_library_forward(lib, y, x, W, NULL, g, C_out, B);
        int wrong = 0;
        for (int b = 0; b < B; b++)
            for (int o = 0; o < C_out; o++)
                for (int oh = 0; oh < g.OH; oh++)
                    for (int ow = 0; ow < g.OW; ow++) {
                        double sum = 0.0, mag = 0.0;
                        for (int c = 0; c < C; c++)
                            for (int i = 0; i < 3; i++)
                                for (int j = 0; j < 3; j++) {
                                    const double w = W[(((size_t)o * C + c) * 3 + i) * 3 + j];
                                    const double v = conv_input(x, g, b, c, oh * 3 - g.padding + i, ow * 3 - g.padding + j);
                                    sum += w * v;
                                    mag += fabs(w * v);
                                }
                        wrong += fabs(y[(((size_t)b * C_out + o) * g.OH + oh) * g.OW + ow] - sum) > 1e-5 * mag + 1e-6;
                    }
        CHECK(wrong == 0, "round %d, padding %d: %d of %d outputs are not that convolution's", round, g.padding, wrong,
              B * C_out * 9);
    }
    CHECK(conv_library_cached_primitives(lib) == 2, "%d primitives cached for the two paddings, want 2",
          conv_library_cached_primitives(lib));
    conv_library_destroy(lib);
    free(x);
    free(W);
}

int main(void) {
    cpu = backend_cpu_create();
    rng_init(&test_rng, 4321, 17);
    test_run("activation_with_slope", test_activation_with_slope);
    test_run("multiply", test_multiply);
    test_run("add", test_add);
    test_run("categorical", test_categorical);
    test_run("im2col_col2im", test_im2col_col2im);
    test_run("im2col_col2im_special_values", test_im2col_col2im_special_values);
    test_run("im2col_col2im_random_geometries", test_im2col_col2im_random_geometries);
    test_run("swap_leading_axes", test_swap_leading_axes);
    test_run("channel_bias", test_channel_bias);
    test_run("batch_norm", test_batch_norm);
    test_run("batch_norm_constant_channel", test_batch_norm_constant_channel);
    test_run("vector_quantizer", test_vector_quantizer);
    test_run("vq_argmin_matches_definition", test_vq_argmin_matches_definition);
    test_run("col2im_chunk_policy", test_col2im_chunk_policy);
    test_run("library_convolutions", test_library_convolutions);
    test_run("library_convolutions_thread_independent", test_library_convolutions_thread_independent);
    test_run("library_cache", test_library_cache);
    test_run("library_cache_keys_padding", test_library_cache_keys_padding);
    test_run("library_out_of_memory", test_library_out_of_memory);
    test_run("library_weight_gradient_starts_no_threads", test_library_weight_gradient_starts_no_threads);
    cpu->destroy(cpu);
    return test_finish("test_layer_ops");
}

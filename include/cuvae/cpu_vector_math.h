// cpu_vector_math.h: elementwise math of the host (the CPU backend's tanh, the normals of the
// host's stateless fills) through glibc's vector math library (libmvec) where this glibc has
// it, else libm one element at a time.
#ifndef CUVAE_CPU_VECTOR_MATH_H
#define CUVAE_CPU_VECTOR_MATH_H

#include <stdbool.h>
#include <stddef.h>

// Looks the vector functions up (once per process, whoever calls first; the functions below
// call it themselves).
void cpu_vector_math_init(void);

// Whether cpu_tanh runs libmvec's 8-lane tanhf (glibc 2.35 or later, a build for AVX2).
bool cpu_vector_tanh_available(void);

// y (n) = tanh(x) (n), y may be x. libmvec's tanhf is within 2 ulp of libm's (which it
// replaces) and closer to tanh in double precision; every element goes through the same
// 8-lane function, the tail too, so an element's bits never depend on where it lies.
void cpu_tanh(float *y, const float *x, size_t n);

// Whether cpu_box_muller runs libmvec's 8-lane logf and cosf (glibc 2.22 or later, AVX2).
bool cpu_vector_box_muller_available(void);

// out (n) = box_muller(u1, u2) (philox.h), u in (0, 1]: libmvec's logf and cosf in place of
// libm's (the normals within a few ulp of libm's: at most 3.6e-7 relative over 4 million draws),
// every element through the same 8-lane function, the tail too, so an element's bits never
// depend on where it lies. out must not overlap u1 or u2.
void cpu_box_muller(float *out, const float *u1, const float *u2, size_t n);

#endif

// cpu_vector_math.h: elementwise math of the CPU backend through glibc's vector math
// library (libmvec) where this glibc has it, else libm one element at a time.
#ifndef CUVAE_CPU_VECTOR_MATH_H
#define CUVAE_CPU_VECTOR_MATH_H

#include <stdbool.h>
#include <stddef.h>

// Looks the vector functions up (once, before any thread uses them).
void cpu_vector_math_init(void);

// Whether cpu_tanh runs libmvec's 8-lane tanhf (glibc 2.35 or later, a build for AVX2).
bool cpu_vector_tanh_available(void);

// y (n) = tanh(x) (n), y may be x. libmvec's tanhf is within 2 ulp of libm's (which it
// replaces) and closer to tanh in double precision; every element goes through the same
// 8-lane function, the tail too, so an element's bits never depend on where it lies.
void cpu_tanh(float *y, const float *x, size_t n);

#endif

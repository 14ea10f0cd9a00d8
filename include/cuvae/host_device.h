// host_device.h: CUVAE_HOST_DEVICE, the mark of a function written once and compiled
// twice -- by gcc for the CPU backend and by nvcc for the kernels (__host__ __device__).
#ifndef CUVAE_HOST_DEVICE_H
#define CUVAE_HOST_DEVICE_H

#ifdef __CUDACC__
#define CUVAE_HOST_DEVICE __host__ __device__
#else
#define CUVAE_HOST_DEVICE
#endif

#endif

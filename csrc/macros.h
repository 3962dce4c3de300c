// Portability macros shared by the CPU (.cpp) and CUDA (.cu) translation units.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define FASTPOSE_HD __host__ __device__ __forceinline__
#else
#define FASTPOSE_HD inline
#endif

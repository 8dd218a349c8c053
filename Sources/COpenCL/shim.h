#ifndef LOUPE_COPENCL_SHIM_H
#define LOUPE_COPENCL_SHIM_H
// Loupe targets the OpenCL 1.2 API: every vendor (NVIDIA, AMD, Intel, PoCL) implements it.
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#endif

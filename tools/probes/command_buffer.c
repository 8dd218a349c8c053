// Whether an OpenCL platform's cl_khr_command_buffer saves launch overhead: the same chain of
// small kernels (a few floats per work-item, as a batch-1 pass's short launches) enqueued one by
// one and replayed from one recorded command buffer, best of 30 of each, three rounds.
//
//   cc -O2 tools/probes/command_buffer.c -lOpenCL -o .build/command_buffer && .build/command_buffer [work-items]
//
// On PoCL 3.1 (pthread, 2 cores) both take about 6.5 us a launch (0.32 against 0.33 ms for the
// 50): its command buffer replays each recorded command as a launch of its own, so Loupe
// enqueues its passes one by one.
#define CL_TARGET_OPENCL_VERSION 300
#include <CL/cl.h>
#include <CL/cl_ext.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static const char* source =
    "__kernel void advance(__global const float* a, __global float* b, int n) {\n"
    "    const int per = n / get_global_size(0), first = get_global_id(0) * per;\n"
    "    for (int i = first; i < first + per; ++i) b[i] = a[i] * 1.0001f + 1.0f;\n"
    "}\n";

#define CHECK(what, call) do { cl_int e_ = (call); if (e_ != CL_SUCCESS) { fprintf(stderr, "%s: error %d\n", what, e_); return 1; } } while (0)

int main(int argc, char** argv) {
    const int launches = 50, n = 64 * 1024;
    const size_t items = argc > 1 ? (size_t)atoi(argv[1]) : 64, one = 1;
    if (items < 1 || n % items != 0) { fprintf(stderr, "work-items must divide %d\n", n); return 1; }
    cl_platform_id platform;
    cl_device_id device;
    cl_int e;
    CHECK("platform", clGetPlatformIDs(1, &platform, NULL));
    CHECK("device", clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 1, &device, NULL));
    cl_context context = clCreateContext(NULL, 1, &device, NULL, NULL, &e);
    CHECK("context", e);
    cl_command_queue queue = clCreateCommandQueueWithProperties(context, device, NULL, &e);
    CHECK("queue", e);
    cl_program program = clCreateProgramWithSource(context, 1, &source, NULL, &e);
    CHECK("program", e);
    CHECK("build", clBuildProgram(program, 1, &device, "", NULL, NULL));
    float* zeros = calloc(n, sizeof(float));
    cl_mem a = clCreateBuffer(context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * sizeof(float), zeros, &e);
    CHECK("buffer", e);
    cl_mem b = clCreateBuffer(context, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, n * sizeof(float), zeros, &e);
    CHECK("buffer", e);
    cl_kernel kernels[2];
    for (int i = 0; i < 2; ++i) {
        kernels[i] = clCreateKernel(program, "advance", &e);
        CHECK("kernel", e);
        CHECK("argument", clSetKernelArg(kernels[i], 0, sizeof(cl_mem), i == 0 ? &a : &b));
        CHECK("argument", clSetKernelArg(kernels[i], 1, sizeof(cl_mem), i == 0 ? &b : &a));
        CHECK("argument", clSetKernelArg(kernels[i], 2, sizeof(int), &n));
    }
    clCreateCommandBufferKHR_fn create = (clCreateCommandBufferKHR_fn)
        clGetExtensionFunctionAddressForPlatform(platform, "clCreateCommandBufferKHR");
    clCommandNDRangeKernelKHR_fn record = (clCommandNDRangeKernelKHR_fn)
        clGetExtensionFunctionAddressForPlatform(platform, "clCommandNDRangeKernelKHR");
    clFinalizeCommandBufferKHR_fn finalize = (clFinalizeCommandBufferKHR_fn)
        clGetExtensionFunctionAddressForPlatform(platform, "clFinalizeCommandBufferKHR");
    clEnqueueCommandBufferKHR_fn replay = (clEnqueueCommandBufferKHR_fn)
        clGetExtensionFunctionAddressForPlatform(platform, "clEnqueueCommandBufferKHR");
    if (!create || !record || !finalize || !replay) { printf("no cl_khr_command_buffer on this platform\n"); return 0; }
    cl_command_buffer_khr chain = create(1, &queue, NULL, &e);
    CHECK("command buffer", e);
    for (int i = 0; i < launches; ++i)
        CHECK("record", record(chain, NULL, NULL, kernels[i % 2], 1, NULL, &items, &one, 0, NULL, NULL, NULL));
    CHECK("finalize", finalize(chain));
    for (int round = 0; round < 3; ++round) {
        double plain = 1e9, buffered = 1e9;
        for (int r = 0; r < 30; ++r) {
            const double t0 = now_ms();
            for (int i = 0; i < launches; ++i)
                CHECK("launch", clEnqueueNDRangeKernel(queue, kernels[i % 2], 1, NULL, &items, &one, 0, NULL, NULL));
            CHECK("finish", clFinish(queue));
            const double t1 = now_ms();
            CHECK("replay", replay(0, NULL, chain, 0, NULL, NULL));
            CHECK("finish", clFinish(queue));
            const double t2 = now_ms();
            if (t1 - t0 < plain) plain = t1 - t0;
            if (t2 - t1 < buffered) buffered = t2 - t1;
        }
        printf("%d launches of %zu work-items: one by one %.3f ms, one command buffer %.3f ms\n", launches, items, plain, buffered);
    }
    return 0;
}

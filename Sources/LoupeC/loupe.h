/* Loupe's C interface: libLoupeC.so. Every function returns a status (LOUPE_OK or an error
 * code) and never aborts on bad input; loupe_last_error gives the calling thread's last
 * message, one line. Handles are integers: a closed or unknown one is refused with
 * LOUPE_ERROR_HANDLE. Calls on different model handles may run on different threads at once;
 * calls on one handle run one at a time.
 *
 * loupe_run takes an operation name, a JSON object of options and named float32 arrays
 * (C-contiguous, shapes as int64), and gives a result: a JSON text (whose "arrays" object lists
 * the result's arrays and their shapes) and those arrays, valid until loupe_result_free.
 *
 * Operations on a model: info, layers, forward, activations, attribute, visualize, invert,
 * metrics, sanity, concept_scores, reference_heatmaps. Without a model (handle 0): devices,
 * methods, preprocess.
 * docs/python.md lists each one's options and arrays. */
#ifndef LOUPE_H
#define LOUPE_H
#include <stddef.h>
#include <stdint.h>

#define LOUPE_OK 0
#define LOUPE_ERROR_ARGUMENT 1 /* options, an array's shape or values, a method or layer */
#define LOUPE_ERROR_MODEL 2    /* a model or weight file that cannot be read */
#define LOUPE_ERROR_DEVICE 3   /* an OpenCL error */
#define LOUPE_ERROR_HANDLE 4   /* a handle that is not open */
#define LOUPE_ERROR_RUNTIME 5  /* a memory budget, a diverged optimization, anything else */

const char *loupe_version(void);
size_t loupe_last_error(char *buffer, size_t capacity);

int32_t loupe_open(const char *path, const char *options_json, uint64_t *model);
int32_t loupe_open_bytes(const uint8_t *bytes, size_t count, const char *name, const char *options_json, uint64_t *model);
int32_t loupe_close(uint64_t model);

int32_t loupe_run(uint64_t model, const char *op, const char *options_json, int32_t count,
                  const char *const *names, const float *const *data, const int64_t *const *shapes,
                  const int32_t *ranks, uint64_t *result);
int32_t loupe_result_json(uint64_t result, const char **json);
int32_t loupe_result_array(uint64_t result, const char *name, const float **data, const int64_t **shape, int32_t *rank);
int32_t loupe_result_free(uint64_t result);

/* The calling thread's progress callback (NULL: none): later loupe_run calls on this thread
 * report their long loops through it, on this thread: what, units done, units in all. */
typedef void (*loupe_progress)(void *context, const char *what, int64_t done, int64_t total);
int32_t loupe_set_progress(loupe_progress callback, void *context);

#endif

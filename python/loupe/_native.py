"""ctypes binding of libLoupeC (Sources/LoupeC/loupe.h): one call, JSON options, float32 arrays."""
import ctypes
import json
import os
import threading

import numpy as np

__all__ = ["LoupeError", "ModelFileError", "DeviceError", "ClosedModelError", "library", "call", "set_progress"]


class LoupeError(RuntimeError):
    """An error from Loupe's library; the message is one line."""


class LoupeValueError(LoupeError, ValueError):
    """A bad argument: an option, an array's shape or values, an unknown method or layer."""


class ModelFileError(LoupeError):
    """A model or weight file that cannot be read."""


class DeviceError(LoupeError):
    """An OpenCL device error."""


class ClosedModelError(LoupeError):
    """A model that was closed."""


_PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64)
# "auto": tqdm bars when tqdm is installed; False: none; a function(what, done, total): its own.
_progress = "auto"


def set_progress(mode):
    """How long loops report progress: "auto" (tqdm bars when tqdm is installed, the default),
    False (silent), or a function(what, done, total) called on the calling thread."""
    global _progress
    if mode not in ("auto", False, True) and not callable(mode):
        raise LoupeValueError(f"progress: expected 'auto', True, False or a function, got {mode!r}")
    _progress = "auto" if mode is True else mode


class _Bars:
    """tqdm bars, one per loop name, closed when the loop is done."""

    def __init__(self, tqdm):
        self.tqdm, self.bars = tqdm, {}

    def __call__(self, what, done, total):
        bar = self.bars.get(what)
        if bar is None:
            bar = self.bars[what] = self.tqdm(total=total, desc=what, leave=False)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            del self.bars[what]

    def close(self):
        for bar in self.bars.values():
            bar.close()


def _reporter():
    if callable(_progress):
        return _progress
    if _progress == "auto":
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return _Bars(tqdm)
    return None


_ERRORS = {1: LoupeValueError, 2: ModelFileError, 3: DeviceError, 4: ClosedModelError, 5: LoupeError}
_lock = threading.Lock()
_lib = None

_c_u64 = ctypes.c_uint64
_c_i32 = ctypes.c_int32


def _library_path():
    override = os.environ.get("LOUPE_LIBRARY")
    if override:
        return override
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "_native", "libLoupeC.so")


def library():
    """The loaded libLoupeC (LOUPE_LIBRARY names another build of it)."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        path = _library_path()
        if not os.path.exists(path):
            raise LoupeError(f"Loupe's library is not at {path}: install the wheel (make wheel) or set LOUPE_LIBRARY")
        lib = ctypes.CDLL(path)
        lib.loupe_version.restype = ctypes.c_char_p
        lib.loupe_version.argtypes = []
        lib.loupe_last_error.restype = ctypes.c_size_t
        lib.loupe_last_error.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.loupe_open.restype = _c_i32
        lib.loupe_open.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_c_u64)]
        lib.loupe_open_bytes.restype = _c_i32
        lib.loupe_open_bytes.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(_c_u64)]
        lib.loupe_close.restype = _c_i32
        lib.loupe_close.argtypes = [_c_u64]
        lib.loupe_run.restype = _c_i32
        lib.loupe_run.argtypes = [_c_u64, ctypes.c_char_p, ctypes.c_char_p, _c_i32,
                                  ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                                  ctypes.POINTER(ctypes.POINTER(ctypes.c_int64)), ctypes.POINTER(_c_i32), ctypes.POINTER(_c_u64)]
        lib.loupe_result_json.restype = _c_i32
        lib.loupe_result_json.argtypes = [_c_u64, ctypes.POINTER(ctypes.c_char_p)]
        lib.loupe_result_array.restype = _c_i32
        lib.loupe_result_array.argtypes = [_c_u64, ctypes.c_char_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_float)),
                                           ctypes.POINTER(ctypes.POINTER(ctypes.c_int64)), ctypes.POINTER(_c_i32)]
        lib.loupe_result_free.restype = _c_i32
        lib.loupe_result_free.argtypes = [_c_u64]
        lib.loupe_set_progress.restype = _c_i32
        lib.loupe_set_progress.argtypes = [_PROGRESS, ctypes.c_void_p]
        _lib = lib
        return lib


def error(status):
    """The Python exception of a non-zero status, with the thread's last error message (read at
    once: the next call on this thread replaces it)."""
    buffer = ctypes.create_string_buffer(4096)
    library().loupe_last_error(buffer, len(buffer))
    message = buffer.value.decode("utf-8", "replace") or f"Loupe call failed with status {status}"
    return _ERRORS.get(status, LoupeError)(message)


def check(status):
    """Raises the Python exception of a non-zero status, with the library's message."""
    if status != 0:
        raise error(status)


def as_float32(name, value):
    """A C-contiguous float32 numpy array of `value` (numpy or a torch tensor), refusing other dtypes."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype != np.float32:
        raise LoupeValueError(f"{name} must be float32, got {array.dtype} (convert it: x.astype(numpy.float32) or x.float())")
    return np.ascontiguousarray(array)


def call(handle, op, options=None, arrays=None):
    """Runs `op` on the model `handle` (0: no model); returns (json dict, {name: numpy array})."""
    lib = library()
    arrays = {k: as_float32(k, v) for k, v in (arrays or {}).items()}
    n = len(arrays)
    names = (ctypes.c_char_p * max(n, 1))(*[k.encode() for k in arrays])
    data = (ctypes.POINTER(ctypes.c_float) * max(n, 1))(*[a.ctypes.data_as(ctypes.POINTER(ctypes.c_float)) for a in arrays.values()])
    shape_buffers = [(ctypes.c_int64 * max(a.ndim, 1))(*a.shape) for a in arrays.values()]
    shapes = (ctypes.POINTER(ctypes.c_int64) * max(n, 1))(*[ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in shape_buffers])
    ranks = (_c_i32 * max(n, 1))(*[a.ndim for a in arrays.values()])
    text = json.dumps(options or {}, allow_nan=False).encode()
    result = _c_u64(0)
    reporter, errors = _reporter(), []

    def report(_, what, done, total):
        try:
            reporter(what.decode(), int(done), int(total))
        except Exception as error:  # never across the C boundary
            errors.append(error)

    callback = _PROGRESS(report) if reporter else _PROGRESS()
    lib.loupe_set_progress(callback, None)
    try:
        status = lib.loupe_run(_c_u64(handle), op.encode(), text, n, names, data, shapes, ranks, ctypes.byref(result))
        if status != 0:
            raise error(status)  # read before another call replaces the thread's message
    finally:
        lib.loupe_set_progress(_PROGRESS(), None)
        if hasattr(reporter, "close"):
            reporter.close()
    if errors:
        lib.loupe_result_free(result)
        raise errors[0]
    try:
        pointer = ctypes.c_char_p()
        check(lib.loupe_result_json(result, ctypes.byref(pointer)))
        payload = json.loads(pointer.value.decode())
        out = {}
        for name in payload.pop("arrays", {}):
            values = ctypes.POINTER(ctypes.c_float)()
            shape = ctypes.POINTER(ctypes.c_int64)()
            rank = _c_i32()
            check(lib.loupe_result_array(result, name.encode(), ctypes.byref(values), ctypes.byref(shape), ctypes.byref(rank)))
            dims = tuple(shape[i] for i in range(rank.value))
            count = int(np.prod(dims)) if dims else 1
            out[name] = np.ctypeslib.as_array(values, shape=(count,)).copy().reshape(dims) if count else np.zeros(dims, np.float32)
        return payload, out
    finally:
        lib.loupe_result_free(result)

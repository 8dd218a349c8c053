"""The Loupe model of a torch module, exported once and reused while its weights stay the same."""
import os
import threading
import weakref

from ._model import Model
from ._native import LoupeValueError

_cache = {}
_lock = threading.Lock()


def _fingerprint(module):
    # A parameter or buffer changed in place (an optimizer step, load_state_dict) bumps its
    # version counter; a new tensor has a new address.
    return tuple((t.data_ptr(), t._version) for t in list(module.parameters()) + list(module.buffers()))


def model_of(forward_func, example, device=None):
    """A loupe.Model for `forward_func` (a loupe.Model, or a torch nn.Module exported with
    from_torch at the first call and again only when its weights change)."""
    if isinstance(forward_func, Model):
        return forward_func
    try:
        import torch
    except ImportError:  # pragma: no cover
        raise LoupeValueError("a torch module needs torch installed; or pass a loupe.Model")
    if not isinstance(forward_func, torch.nn.Module):
        raise LoupeValueError(f"Loupe needs the model itself (a torch.nn.Module or a loupe.Model), not {type(forward_func).__name__}: "
                              "it runs the network on its own device, so a Python function cannot be called")
    device = device or os.environ.get("LOUPE_DEVICE", "auto")
    key = (id(forward_func), device)
    fingerprint = _fingerprint(forward_func)
    with _lock:
        entry = _cache.get(key)
        if entry and entry[0] == fingerprint and entry[1]() is forward_func:
            return entry[2]
    from . import from_torch
    model = from_torch(forward_func, example, device=device)
    with _lock:
        if key not in _cache:
            # The module's death frees its Loupe model (and that model's device memory).
            weakref.finalize(forward_func, _forget, key)
        _cache[key] = (fingerprint, weakref.ref(forward_func), model)
    return model


def _forget(key):
    with _lock:
        entry = _cache.pop(key, None)
    if entry:
        entry[2].close()


def tensor_input(inputs, what):
    """The one input tensor of a Captum call (a tensor or a 1-tuple) and whether it was a tuple."""
    if isinstance(inputs, tuple):
        if len(inputs) != 1:
            raise LoupeValueError(f"{what}: Loupe's models take one input; got a tuple of {len(inputs)}")
        return inputs[0], True
    return inputs, False

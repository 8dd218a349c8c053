"""PNG pictures of results for Jupyter (_repr_png_), with numpy and zlib only."""
import os
import struct
import zlib

import numpy as np

# Viridis at 9 stops (matplotlib's values), interpolated linearly.
_VIRIDIS = np.array([
    [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141],
    [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float32) / 255


def colormap(values):
    """[H, W] values in [0, 1] -> [H, W, 3] viridis colours in [0, 1]."""
    v = np.clip(np.nan_to_num(values), 0, 1) * (len(_VIRIDIS) - 1)
    low = np.floor(v).astype(int).clip(0, len(_VIRIDIS) - 2)
    t = (v - low)[..., None]
    return _VIRIDIS[low] * (1 - t) + _VIRIDIS[low + 1] * t


def normalized(values):
    """Values scaled to [0, 1] by their minimum and maximum (all 0 when flat)."""
    values = np.asarray(values, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def png(rgb):
    """PNG bytes of an [H, W, 3] image in [0, 1]."""
    pixels = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def row(images):
    """[H, W, 3] images side by side with a 4-pixel white gap (heights padded to the tallest)."""
    height = max(i.shape[0] for i in images)
    parts = []
    for k, image in enumerate(images):
        if k:
            parts.append(np.ones((height, 4, 3), np.float32))
        pad = np.ones((height, image.shape[1], 3), np.float32)
        pad[:image.shape[0]] = image
        parts.append(pad)
    return np.concatenate(parts, axis=1)


def save_png(path, rgb):
    """Writes an [H, W, 3] image in [0, 1] as a PNG file: a temporary file renamed, so whole or not at all."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(png(rgb))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def pil(rgb):
    """An [H, W, 3] image in [0, 1] as a PIL image."""
    from PIL import Image
    return Image.fromarray((np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8), "RGB")

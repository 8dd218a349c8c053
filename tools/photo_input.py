"""A photo as a network input, the way the fixture and check scripts read one: the shorter side
resized to `size` (PIL's bilinear), the centre `size` x `size` crop, ImageNet's normalization;
a float32 tensor [3, size, size]."""
import numpy as np
import torch
from PIL import Image

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # in float64, as the fixtures were made


def photo_tensor(path, size):
    image = Image.open(path).convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    image = image.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    a = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
    return torch.from_numpy(((a - MEAN) / STD).transpose(2, 0, 1).astype(np.float32))

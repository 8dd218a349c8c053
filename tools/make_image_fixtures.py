#!/usr/bin/env python3
"""Image fixtures for Tests/ImageIOTests. Run by hand: pip install pillow && python3 tools/make_image_fixtures.py
Writes small images in formats the decoder must handle (grey, palette, RGBA, 16-bit PNG; baseline,
progressive, greyscale and CMYK JPEG) and, in expected.safetensors, the RGB pixels PIL decodes from
each (`convert("RGB")`), plus PIL's antialiased bilinear and bicubic resizes of the bundled photo and torchvision's
EfficientNet-B0 preset (bicubic) applied to it."""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from safetensors_io import write_safetensors  # noqa: E402

import torch  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Tests", "ImageIOTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
photo = Image.open(os.path.join(ROOT, "Assets", "chelsea.png")).convert("RGB")
small = photo.resize((37, 23), Image.BILINEAR)

files = {
    "rgb.png": small,
    "gray.png": small.convert("L"),
    "palette.png": small.convert("P", palette=Image.ADAPTIVE, colors=16),
    "rgba.png": Image.merge("RGBA", (*small.split(), small.convert("L"))),
    "baseline.jpg": small,
    "progressive.jpg": small,
    "gray.jpg": small.convert("L"),
    # CMYK (Adobe, inverted, as Photoshop writes it): PIL converts to RGB as (255 - C)(255 - K) / 255.
    "cmyk.jpg": small.convert("CMYK"),
}
expected = {}
for name, image in files.items():
    path = os.path.join(OUT, name)
    if name.endswith(".jpg"):
        image.save(path, quality=90, progressive=name.startswith("progressive"))
    else:
        image.save(path)
    decoded = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    expected[name] = torch.from_numpy(decoded.copy())
# 16-bit greyscale PNG
wide = (np.asarray(small.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
Image.fromarray(wide).save(os.path.join(OUT, "gray16.png"))
decoded = Image.open(os.path.join(OUT, "gray16.png"))
# PIL's convert("RGB") clips 16-bit values to 255; Loupe keeps the high byte (v >> 8), as
# torchvision.io.decode_png does when asked for 8 bits.
expected["gray16.png"] = torch.from_numpy(np.repeat((wide >> 8).astype(np.float32)[:, :, None], 3, axis=2))
# PIL resizes of the photo: down in both directions, up, and one axis only.
for source, (w, h) in [(photo, (224, 149)), (photo, (60, 40)), (photo, (451, 37)), (small, (80, 50))]:
    name = f"resize_{source.width}x{source.height}_{w}x{h}"
    expected[name] = torch.from_numpy(np.asarray(source.resize((w, h), Image.BILINEAR), dtype=np.float32).copy())
    expected["bicubic_" + name] = torch.from_numpy(np.asarray(source.resize((w, h), Image.BICUBIC), dtype=np.float32).copy())
# torchvision's EfficientNet-B0 preset on the photo: Resize(256, bicubic), CenterCrop(224), ToTensor, Normalize.
import torchvision  # noqa: E402
expected["efficientnet_preset"] = torchvision.models.EfficientNet_B0_Weights.DEFAULT.transforms()(photo)
write_safetensors(os.path.join(OUT, "expected.safetensors"), expected, {})
print("wrote", sorted(os.listdir(OUT)))

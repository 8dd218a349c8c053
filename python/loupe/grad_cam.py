"""pytorch-grad-cam's CAM classes with Loupe computing them: change
`from pytorch_grad_cam import GradCAM` to `from loupe.grad_cam import GradCAM` and keep the
rest. `cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])` returns the same
[N, H, W] float32 numpy maps (ReLU, min-max normalized, resized to the input); targets None
means each image's top class; several target layers are averaged as pytorch-grad-cam does."""
import numpy as np

from ._native import LoupeValueError
from ._torch import model_of

__all__ = ["GradCAM", "GradCAMPlusPlus", "LayerCAM", "HiResCAM", "XGradCAM", "ScoreCAM", "AblationCAM", "FullGrad", "ClassifierOutputTarget",
           "SemanticSegmentationTarget"]


class ClassifierOutputTarget:
    """pytorch-grad-cam's target of one class's logit (its own class is accepted too)."""

    def __init__(self, category):
        self.category = category

    def __call__(self, model_output):
        return model_output[self.category] if model_output.ndim == 1 else model_output[:, self.category]


class SemanticSegmentationTarget:
    """pytorch-grad-cam's target of a segmentation: class `category`'s scores summed over `mask`
    [H, W] (its own class is accepted too)."""

    def __init__(self, category, mask):
        self.category = category
        self.mask = np.asarray(mask)

    def __call__(self, model_output):
        return (model_output[self.category, :, :] * self.mask).sum()


def _category(target):
    # pytorch_grad_cam.utils.model_targets' ClassifierOutputTarget (a class logit) and
    # SemanticSegmentationTarget (a class over a mask), or ours: (category, mask or None).
    name = type(target).__name__
    if name == "ClassifierOutputTarget" and hasattr(target, "category"):
        return int(target.category), None
    if name == "SemanticSegmentationTarget" and hasattr(target, "category") and hasattr(target, "mask"):
        mask = target.mask
        mask = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
        return int(target.category), mask.astype(np.float32)
    raise LoupeValueError(f"target {name}: Loupe takes ClassifierOutputTarget and SemanticSegmentationTarget")


class _CAM:
    method = None

    def __init__(self, model, target_layers, reshape_transform=None, compute_input_gradient=False, uses_gradients=True,
                 tta_transforms=None, detach=True, device=None):
        if reshape_transform is not None:
            raise LoupeValueError(f"{type(self).__name__}: reshape_transform is not supported by Loupe (it lays out a ViT's tokens on their grid by itself)")
        if compute_input_gradient or tta_transforms is not None or not detach:
            raise LoupeValueError(f"{type(self).__name__}: compute_input_gradient, tta_transforms and detach=False are not supported by Loupe")
        if not target_layers:
            raise LoupeValueError(f"{type(self).__name__}: target_layers is empty")
        self.model = model
        self.target_layers = list(target_layers)
        self.device = device
        self.batch_size = 16

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __call__(self, input_tensor, targets=None, aug_smooth=False, eigen_smooth=False):
        if aug_smooth or eigen_smooth:
            raise LoupeValueError(f"{type(self).__name__}: aug_smooth and eigen_smooth are not supported by Loupe")
        x = input_tensor
        model = model_of(self.model, x, self.device)
        n = len(x)
        categories, region = None, None
        if targets is not None:
            pairs = [_category(t) for t in targets]
            if len(pairs) != n:
                raise LoupeValueError(f"{len(pairs)} targets for {n} images")
            categories = [c for c, _ in pairs]
            masks = [m for _, m in pairs]
            if any(m is not None for m in masks):
                if any(m is None for m in masks):
                    raise LoupeValueError("give every image a SemanticSegmentationTarget, or none")
                region = np.stack(masks)
        extra = {} if region is None else {"region": region}
        if len(self.target_layers) == 1:
            # ReLU, scaling, resizing and scaling again, on the device.
            a = model.attribute(x, self.method, target=categories, layer=self.target_layers[0], batch=self.batch_size, **extra)
            return np.asarray(a._maps, dtype=np.float32)
        if region is not None:
            raise LoupeValueError(f"{type(self).__name__}: a SemanticSegmentationTarget takes one target layer in Loupe")
        # pytorch-grad-cam's aggregate_multi_layers: each layer's map scaled and resized, the
        # mean of their ReLUs scaled again.
        h, w = x.shape[-2], x.shape[-1]
        scaled = []
        for layer in self.target_layers:
            a = model.attribute(x, self.method, target=categories, layer=layer, batch=self.batch_size, layer_map=True)
            scaled.append(np.stack([_resize(_scale(np.maximum(m[0], 0)), h, w) for m in np.asarray(a.layer_map)]))
        mean = np.mean(np.maximum(np.stack(scaled, axis=1), 0), axis=1)
        return np.stack([_scale(m) for m in mean]).astype(np.float32)


def _scale(image):
    """pytorch-grad-cam's scale_cam_image without the resize: (x - min) / (1e-7 + max)."""
    image = image - image.min()
    return image / (1e-7 + image.max())


def _resize(image, h, w):
    """OpenCV's bilinear resize of a float image (half-pixel centres, edges clamped)."""
    def axis(out, size):
        f = (np.arange(out) + 0.5) * (size / out) - 0.5
        i = np.floor(f).astype(int)
        f = f - i
        f[i < 0], i[i < 0] = 0, 0
        last = i >= size - 1
        f[last], i[last] = 0, size - 1
        return i, np.minimum(i + 1, size - 1), f.astype(np.float32)
    y0, y1, fy = axis(h, image.shape[0])
    x0, x1, fx = axis(w, image.shape[1])
    rows = image[y0] * (1 - fy)[:, None] + image[y1] * fy[:, None]
    return rows[:, x0] * (1 - fx)[None, :] + rows[:, x1] * fx[None, :]


class GradCAM(_CAM):
    """pytorch-grad-cam's GradCAM."""
    method = "gradcam"


class GradCAMPlusPlus(_CAM):
    """pytorch-grad-cam's GradCAMPlusPlus."""
    method = "gradcam++"


class LayerCAM(_CAM):
    """pytorch-grad-cam's LayerCAM."""
    method = "layercam"


class HiResCAM(_CAM):
    """pytorch-grad-cam's HiResCAM."""
    method = "hirescam"


class XGradCAM(_CAM):
    """pytorch-grad-cam's XGradCAM."""
    method = "xgradcam"


class ScoreCAM(_CAM):
    """pytorch-grad-cam's ScoreCAM (masked images batch_size at a time)."""
    method = "scorecam"


class AblationCAM(_CAM):
    """pytorch-grad-cam's AblationCAM: w_c = (s - s_c) / s with channel c ablated (set to 0 on a
    layer whose smallest value is 0, else to that value less 1e7), batch_size channels per pass;
    every channel is ablated (ratio_channels_to_ablate=1.0, the default)."""
    method = "ablationcam"

    def __init__(self, model, target_layers, reshape_transform=None, ablation_layer=None, batch_size=32,
                 ratio_channels_to_ablate=1.0, device=None):
        if ablation_layer is not None and type(ablation_layer).__name__ != "AblationLayer":
            raise LoupeValueError(f"AblationCAM: ablation_layer {type(ablation_layer).__name__} is not supported by Loupe (only AblationLayer)")
        if ratio_channels_to_ablate != 1.0:
            raise LoupeValueError(f"AblationCAM: ratio_channels_to_ablate={ratio_channels_to_ablate!r} is not supported by Loupe (only 1.0)")
        super().__init__(model, target_layers, reshape_transform=reshape_transform, device=device)
        self.batch_size = int(batch_size)


class FullGrad(_CAM):
    """pytorch-grad-cam's FullGrad: |gradient x input| and |bias x gradient| at every layer that
    adds a bias per channel, each channel scaled and resized, summed. Like pytorch-grad-cam's, it
    reads no target layer (target_layers may be empty; any given are ignored)."""
    method = "fullgrad"

    def __init__(self, model, target_layers=(), reshape_transform=None, device=None):
        super().__init__(model, [None], reshape_transform=reshape_transform, device=device)

    def __call__(self, input_tensor, targets=None, aug_smooth=False, eigen_smooth=False):
        if aug_smooth or eigen_smooth:
            raise LoupeValueError("FullGrad: aug_smooth and eigen_smooth are not supported by Loupe")
        x = input_tensor
        pairs = None if targets is None else [_category(t) for t in targets]
        if pairs is not None and len(pairs) != len(x):
            raise LoupeValueError(f"{len(pairs)} targets for {len(x)} images")
        extra = {}
        if pairs is not None and any(m is not None for _, m in pairs):
            if any(m is None for _, m in pairs):
                raise LoupeValueError("give every image a SemanticSegmentationTarget, or none")
            extra["region"] = np.stack([m for _, m in pairs])
        categories = None if pairs is None else [c for c, _ in pairs]
        a = model_of(self.model, x, self.device).attribute(x, "fullgrad", target=categories, **extra)
        return np.asarray(a._maps, dtype=np.float32)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name == "EigenCAM":
        raise ImportError("loupe.grad_cam has no EigenCAM: pytorch-grad-cam's takes the principal component's sign from numpy's SVD, "
                          "which is arbitrary; Loupe's eigencam (model.attribute(x, 'eigencam', layer=...)) takes Seg-Eigen-CAM's sign "
                          "(pytorch-grad-cam's get_2d_projection_with_sign_correction), so the maps are the same or each other's opposite")
    raise ImportError(f"loupe.grad_cam has no {name}: Loupe does not compute it (yet); it has {', '.join(__all__)}")

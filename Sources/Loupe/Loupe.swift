// The umbrella module: `import Loupe` (the `Loupe` library product) brings every module a
// program needs to load a model, read images, attribute, visualize and draw figures:
//   Device     OpenCL platforms, devices, buffers, programs
//   Backend    BackendCore (tensors, the protocol), CPUReference and OpenCLCompute re-exported
//   Graph      the tape: forward passes with taps, backward passes with gradient rules
//   Models     architectures, torchvision / ONNX / safetensors loaders, ImageNet's classes
//   WeightFiles safetensors and PyTorch checkpoint readers (no code runs), SHA-256, host tensors
//   ImageIO    PNG / JPEG codecs, resizing, ImageNet preprocessing, colormaps, overlays
//   Interpret  attribution methods, CAMs, sanity checks, metrics, feature visualization, inversion
//   Figures    labelled figures (image grids, colour bars, line charts) as PNG, SVG and PDF
//   Atlas      atlases of every channel of some layers, in shards: units, merge, static site
//   Workflows  what the commands run: classification, the probe pass and targets, saliency
//              runs with their files and reports, run records
// Each is also a product of its own, for a program that needs less.
@_exported import Atlas
@_exported import Backend
@_exported import Device
@_exported import Figures
@_exported import Graph
@_exported import ImageIO
@_exported import Interpret
@_exported import Models
@_exported import WeightFiles
@_exported import Workflows

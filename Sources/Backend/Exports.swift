// The backend layer, re-exported as one module: `import Backend` brings
//   BackendCore    Shape, Tensor, the op parameters, ShapeRules and the Backend protocol
//   CPUReference   CPUBackend, the plain-Swift reference every device result is checked against
//   OpenCLCompute  OpenCLBackend (any OpenCL device), its kernel families and tuning cache
// and `DeviceChoice`, which picks one of the two for `--device` and the Python package.
@_exported import BackendCore
@_exported import CPUReference
@_exported import OpenCLCompute

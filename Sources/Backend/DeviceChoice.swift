import BackendCore
import CPUReference
import Device
import OpenCLCompute

/// Which backend a run uses, as `--device` and the Python package's `device=` name it: `auto`,
/// `cpu` or `opencl:N`.
public enum DeviceChoice: Equatable, Sendable {
    /// The first GPU, else the first OpenCL device, else the CPU reference (with a warning).
    case auto
    /// The plain-Swift CPU reference backend.
    case cpu
    /// The N-th OpenCL device in `loupe devices` order.
    case opencl(Int)

    /// Parses `auto`, `cpu` or `opencl:N` (any case); nil for anything else.
    public init?(argument: String) {
        switch argument.lowercased() {
        case "auto": self = .auto
        case "cpu": self = .cpu
        default:
            let parts = argument.lowercased().split(separator: ":")
            guard parts.count == 2, let n = Int(parts[1]), n >= 0, parts[0] == "opencl" else { return nil }
            self = .opencl(n)
        }
    }

    /// What to say when `auto` finds no OpenCL device and falls back to the CPU reference.
    public static let fallbackWarning = "warning: no OpenCL device found; using the CPU reference backend (slow). "
        + "For an OpenCL device: `apt install pocl-opencl-icd` (any CPU), or the GPU vendor's OpenCL driver"

    /// The chosen OpenCL device, or nil for the CPU reference. `auto` without any OpenCL device
    /// calls `warn` with ``fallbackWarning`` and gives nil.
    public func openCLDevice(warn: (String) -> Void) throws -> ComputeDevice? {
        switch self {
        case .cpu: return nil
        case .auto:
            let devices = (try? ComputeDevice.all()) ?? []
            if let d = ComputeDevice.preferred(among: devices) { return d }
            warn(Self.fallbackWarning)
            return nil
        case .opencl(let n):
            let devices = try ComputeDevice.all()
            guard n < devices.count else {
                throw DeviceChoiceError(devices.isEmpty ? "--device opencl:\(n): no OpenCL device found (install pocl-opencl-icd, or run `make setup`)"
                                                        : "--device opencl:\(n): only \(devices.count) OpenCL device(s), numbered 0...\(devices.count - 1)")
            }
            return devices[n]
        }
    }

    /// The backend for the chosen device (see ``openCLDevice(warn:)``).
    public func backend(warn: (String) -> Void) throws -> any Backend {
        guard let d = try openCLDevice(warn: warn) else { return CPUBackend() }
        return try OpenCLBackend(device: d)
    }
}

/// A device choice that names a device this machine does not have.
public struct DeviceChoiceError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}

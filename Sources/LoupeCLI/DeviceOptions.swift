import ArgumentParser
import Backend
import Device
import Foundation

extension DeviceChoice: ExpressibleByArgument {
    public static var defaultCompletionKind: CompletionKind { .list(["auto", "cpu", "opencl:0"]) }
}

/// A one-line user-facing error; the CLI prints it and exits non-zero.
public struct UserError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Refuses a numeric option that is not finite or out of range, naming it, before any work.
func requireNumber(_ flag: String, _ value: Float, atLeast low: Float? = nil, above: Float? = nil) throws {
    func text(_ x: Float) -> String { String(format: "%g", Double(x)) }
    guard value.isFinite else { throw UserError("\(flag) \(text(value)): expected a finite number") }
    if let low, value < low { throw UserError("\(flag) \(text(value)): must be at least \(text(low))") }
    if let above, value <= above { throw UserError("\(flag) \(text(value)): must be above \(text(above))") }
}

/// The first name that `names` holds more than once.
func firstRepeated(_ names: [String]) -> String? {
    var seen = Set<String>()
    return names.first { !seen.insert($0).inserted }
}

/// `--device`, shared by every command.
public struct DeviceOptions: ParsableArguments {
    @Option(name: .long, help: "auto (first GPU, else first OpenCL device, else CPU reference), cpu, or opencl:N (see `loupe devices`).")
    public var device: DeviceChoice = .auto
    @Flag(help: "No progress bars or lines on stderr (errors and warnings still show).")
    public var quiet = false

    public init() {}

    /// The chosen OpenCL device, or nil for the CPU reference. `auto` without any OpenCL device
    /// warns on stderr and falls back to the CPU reference.
    public func openCLDevice() throws -> ComputeDevice? {
        if quiet { ProgressDisplay.quiet.store(true, ordering: .relaxed) }
        do { return try device.openCLDevice(warn: { warn($0) }) } catch let error as DeviceChoiceError { throw UserError(error.description) }
    }

    /// The backend for the chosen device.
    public func backend() throws -> any Backend {
        guard let d = try openCLDevice() else { return CPUBackend() }
        return try OpenCLBackend(device: d)
    }
}

import ArgumentParser
import Device
import Figures
import Foundation

/// `loupe devices`: every OpenCL platform and device, the default marked.
public struct DevicesCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(commandName: "devices", abstract: "List OpenCL platforms and devices.",
                                                           discussion: "Example: loupe devices (then --device opencl:N in other commands)")
    public init() {}

    public func run() throws {
        emit(try DevicesCommand.table(), terminator: "")
    }

    static func gib(_ bytes: UInt64) -> String { String(format: "%.1f GiB", Double(bytes) / 1_073_741_824) }

    public static func table() throws -> String {
        let devices = try ComputeDevice.all()
        guard !devices.isEmpty else {
            return "No OpenCL device found. `auto` uses the CPU reference backend.\nInstall a driver (PoCL: apt-get install pocl-opencl-icd, or `make setup`).\n"
        }
        let preferred = ComputeDevice.preferred(among: devices)
        var rows = [["", "device", "type", "name", "platform", "CUs", "MHz", "memory", "max alloc", "local", "max WG", "fp16", "fp64", "version"]]
        for (i, d) in devices.enumerated() {
            rows.append([d == preferred ? "*" : "", "opencl:\(i)", d.kind.rawValue, d.name, d.platform.name, "\(d.computeUnits)",
                         "\(d.clockMHz)", gib(d.globalMemory), gib(d.maxAllocation), "\(d.localMemory / 1024) KiB",
                         "\(d.maxWorkGroupSize)", d.supportsFP16 ? "yes" : "no", d.supportsFP64 ? "yes" : "no",
                         "\(d.version) / driver \(d.driverVersion)"])
        }
        return TextTable.format(rows) + "* = default for --device auto\n"
    }
}

import ArgumentParser
import Backend
import Bench
import Foundation

/// `loupe tune`: measures the kernel parameters of this device's family and caches the winner.
public struct TuneCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Time the convolution kernels' parameter candidates on an OpenCL device and cache the fastest.",
        discussion: """
        Every later command on the same device (same platform, name and driver, same kernels) uses
        the cached parameters; without a cache, each device kind has sensible defaults.
        Example: loupe tune --device opencl:0
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @Option(parsing: .unconditional, help: "Timed runs per shape and pass (the median counts), after one warm-up run.")
    public var runs: Int = 3
    @Flag(help: "Two shapes instead of six: a faster, rougher answer.")
    public var quick = false
    @Option(help: "The cache file (default: $LOUPE_TUNING_CACHE, else $XDG_CACHE_HOME/loupe/tuning.json, else ~/.cache/loupe/tuning.json).")
    public var cache: String?

    public init() {}

    public func run() throws {
        guard runs >= 1 else { throw UserError("--runs must be at least 1") }
        guard let device = try deviceOptions.openCLDevice() else {
            throw UserError("loupe tune measures OpenCL kernels; choose an OpenCL device (see `loupe devices`)")
        }
        let family = KernelFamily.preferred(for: device.kind)
        let url = cache.map { URL(fileURLWithPath: $0) } ?? TuningCache.url
        emit("tuning the \(family.rawValue) kernels on \(device.name) (\(device.platform.name), driver \(device.driverVersion))")
        emit("total device ms over \(quick ? 2 : Tuner.shapes.count) conv shapes, forward + backward input, median of \(runs)")
        let (results, entry) = try Tuner.run(device: device, family: family, runs: runs, quick: quick) { emit("  " + $0) }
        try TuningCache.save(entry, for: device, at: url)
        let worst = results.last!.milliseconds
        emit("best: \(results[0].candidate) (\(String(format: "%.2f", results[0].milliseconds)) ms, \(String(format: "%.2f", worst / results[0].milliseconds))x faster than the slowest)")
        emit("saved to \(url.path)")
    }
}

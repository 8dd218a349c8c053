import ArgumentParser
import Backend
import Bench
import Foundation

/// `loupe bench`: kernel microbenchmarks on the layer shapes of VGG16, ResNet18, MobileNetV2.
public struct BenchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Kernel microbenchmarks: device time, GFLOP/s or GB/s, and % of this device's measured peak.")

    @OptionGroup public var deviceOptions: DeviceOptions
    @Option(help: "Comma-separated substrings of \"op shape\" to keep, e.g. \"conv 3x3 64->64 56x56\" or \"relu,maxpool\".")
    public var filter: String?
    @Option(help: "Comma-separated models whose layer shapes to run: vgg16, resnet18, mobilenet_v2.")
    public var models: String = LayerShapes.models.joined(separator: ",")
    @Option(help: "Comma-separated batch sizes.")
    public var batch: String = "1,8"
    @Option(help: "Timed runs per measurement (the median is reported), after one warm-up run.")
    public var runs: Int = 3
    @Flag(help: "Print JSON instead of a table.")
    public var json = false

    public init() {}

    public func run() throws {
        guard let device = try deviceOptions.openCLDevice() else {
            throw UserError("loupe bench times OpenCL kernels with profiling events; choose an OpenCL device (see `loupe devices`)")
        }
        let modelList = models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for m in modelList where !LayerShapes.models.contains(m) {
            throw UserError("unknown model \(m) for --models; choose from \(LayerShapes.models.joined(separator: ", "))")
        }
        let batches = try batch.split(separator: ",").map { text -> Int in
            guard let b = Int(text.trimmingCharacters(in: .whitespaces)), b >= 1 else { throw UserError("--batch \(batch): expected positive integers") }
            return b
        }
        guard runs >= 1 else { throw UserError("--runs must be at least 1") }
        let plan = Benchmark.plan(models: modelList, filter: filter)
        guard !plan.isEmpty else { throw UserError("--filter \(filter ?? ""): no op matches") }

        var bench = Benchmark(backend: try OpenCLBackend(device: device))
        bench.runs = runs
        let peak = try bench.peak()
        if !json {
            emit("device: \(device.name) (\(device.platform.name), \(device.computeUnits) CUs)")
            emit(String(format: "measured peak: %.1f GFLOP/s (FMA), %.1f GB/s (copy)", peak.gflops, peak.gbPerSecond))
            emit("median of \(runs) run(s) after 1 warm-up; device time from OpenCL profiling events\n")
        }
        var results: [BenchResult] = []
        if !json { emit(fixedRow(["op", "shape", "batch", "pass", "ms", "rate", "% peak", "models"])) }
        for (op, owners) in plan {
            for b in batches {
                let got = try bench.run(op, batch: b, models: owners, peak: peak)
                results += got
                for r in got {
                    let row = [r.op, r.shape, "\(r.batch)", r.pass, String(format: "%.3f", r.milliseconds),
                               String(format: "%.1f %@", r.rate, r.unit), String(format: "%.1f", r.percentOfPeak), r.models.joined(separator: ",")]
                    if !json {
                        emit(fixedRow(row))
                    }
                }
            }
        }
        if json {
            struct Report: Encodable { let device: String; let peak: DevicePeak; let results: [BenchResult] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            emit(String(decoding: try encoder.encode(Report(device: device.name, peak: peak, results: results)), as: UTF8.self))
        }
    }
}

/// Columns of fixed width, so rows printed one at a time line up.
func fixedRow(_ cells: [String]) -> String {
    let widths = [9, 30, 5, 16, 10, 17, 7, 0]
    return zip(cells, widths).map { cell, w in
        w == 0 ? cell : cell.count >= w ? cell + " " : cell.padding(toLength: w, withPad: " ", startingAt: 0)
    }.joined(separator: " ")
}

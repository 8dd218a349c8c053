import ArgumentParser
import Backend
import Bench
import Foundation
import Interpret
import Models
import Workflows

/// `loupe bench`: kernel microbenchmarks on the layer shapes of VGG16, ResNet18, MobileNetV2.
public struct BenchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Kernel microbenchmarks: device time, GFLOP/s or GB/s, and % of this device's measured peak.",
        discussion: """
        Examples:
          loupe bench --filter "conv 3x3" --shapes resnet18 --batch 1
          loupe bench --model mobilenet_v2 --method gradient,gradcam --batch 1,8
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @Option(help: "Comma-separated substrings of \"op shape\" to keep, e.g. \"conv 3x3 64->64 56x56\" or \"relu,maxpool\".")
    public var filter: String?
    @Option(help: "Comma-separated networks whose layer shapes to run: vgg16, resnet18, mobilenet_v2.")
    public var shapes: String = LayerShapes.models.joined(separator: ",")
    @Option(help: "Time a whole network instead (forward, and forward + backward to the input), e.g. mobilenet_v2. Its weights are used when installed, seeded random weights otherwise.")
    public var model: String?
    @Option(parsing: .unconditional, help: "Comma-separated batch sizes.")
    public var batch: String = "1,8"
    @Option(parsing: .unconditional, help: "Timed runs per measurement (the median is reported), after warm-up (kernel rows: at least 50 ms of runs; model and method rows: at least 0.3 s).")
    public var runs: Int = 3
    @Option(name: .customLong("method"), help: "With --model: time these attribution methods (comma-separated, as `loupe saliency --method`, default settings) instead of the plain passes.")
    public var methodList: String?
    /// The spelling before 0.9 (hidden; one release).
    @Option(name: .customLong("saliency"), help: .hidden) public var saliencyAlias: String?
    var saliency: String? { methodList ?? saliencyAlias }
    @Flag(help: "With --model: optimization steps per second of `loupe visualize` (defaults, 224x224, one class objective per image; --runs steps are timed).")
    public var visualize = false
    @Flag(help: "With --model: also print the device time of each kernel over one forward pass and one forward + backward pass (with --method: over each method; with --visualize: per optimization step).")
    public var kernels = false
    @Flag(help: "With --model: also print every launch of one forward pass and of one forward + backward pass to the input, in order (kernel, global size, device ms and the device's idle ms before it: medians of --runs passes), at the first batch size.")
    public var launches = false
    @Flag(help: "Print JSON instead of a table.")
    public var json = false

    public init() {}

    func batchSizes() throws -> [Int] {
        guard runs >= 1 else { throw UserError("--runs must be at least 1") }
        return try batch.split(separator: ",").map { text -> Int in
            guard let b = Int(text.trimmingCharacters(in: .whitespaces)), b >= 1 else { throw UserError("--batch \(batch): expected positive integers") }
            return b
        }
    }

    /// `--model NAME`: whole-network timing on the chosen device (the CPU reference included).
    func runModel(_ name: String) throws {
        let batches = try batchSizes()
        let backend = try deviceOptions.backend()
        let bench = try ModelBench(model: name, on: backend)
        let model = bench.model
        if visualize {
            emit("\(model.architecture.name) feature visualization on \(backend.name), 224x224, Fourier + decorrelation + standard transforms + Adam, the faster of 2 runs of \(runs) step(s) after 1 warm-up")
            emit(fixedRow(["batch", "steps/s", "images x steps/s"], widths: [6, 10, 0]))
            for b in batches {
                let rate = try bench.visualizationRate(batch: b, steps: runs)
                emit(fixedRow(["\(b)", String(format: "%.2f", rate), String(format: "%.2f", rate * Double(b))], widths: [6, 10, 0]))
            }
            if kernels {
                for k in try bench.kernelBreakdowns(batch: batches[0], methods: nil, visualizationSteps: Swift.max(runs, 1)) {
                    printKernels(k.title, k.kernels, divisor: k.divisor)
                }
            }
            return
        }
        var results: [ModelBenchResult] = []
        if !json {
            emit("\(model.architecture.name) (\(bench.installedWeights ? "its weights" : "seeded random weights")) on \(backend.name), 224x224, median of \(runs) run(s) after 0.3 s of warm-up runs")
            emit(fixedRow(["batch", saliency == nil ? "pass" : "method", "wall ms", "device ms", "ms / image"], widths: [6, 22, 11, 11, 0]))
        }
        let methods = try saliency.map { try bench.methods($0) }
        for b in batches {
            for r in try bench.passes(batch: b, runs: runs, methods: methods) {
                results.append(r)
                if !json {
                    emit(fixedRow(["\(r.batch)", r.pass, String(format: "%.1f", r.wallMilliseconds),
                                   r.deviceMilliseconds.map { String(format: "%.1f", $0) } ?? "-",
                                   String(format: "%.1f", r.wallMilliseconds / Double(r.batch))], widths: [6, 22, 11, 11, 0]))
                }
            }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            emit(String(decoding: try encoder.encode(results), as: UTF8.self))
        }
        if kernels, !json {
            for k in try bench.kernelBreakdowns(batch: batches[0], methods: methods, visualizationSteps: nil) {
                printKernels(k.title, k.kernels, divisor: k.divisor)
            }
        }
        if launches, !json {
            for (title, backward) in [("forward", false), ("forward + backward", true)] {
                let rows = try ModelBenchmark.launches(model, batch: batches[0], backward: backward, runs: runs)
                emit("\nlaunches of one \(title) pass, batch \(batches[0]), in order (median of \(runs) run(s); idle: the device's time since the previous launch ended):")
                emit(fixedRow(["#", "device ms", "idle ms", "global", "kernel"], widths: [5, 11, 9, 16, 0]))
                for (i, r) in rows.enumerated() {
                    emit(fixedRow(["\(i + 1)", String(format: "%.3f", r.milliseconds), String(format: "%.3f", r.idleMilliseconds),
                                   r.global.map(String.init).joined(separator: "x"), r.name], widths: [5, 11, 9, 16, 0]))
                }
                emit(fixedRow(["", String(format: "%.3f", rows.reduce(0) { $0 + $1.milliseconds }),
                               String(format: "%.3f", rows.reduce(0) { $0 + $1.idleMilliseconds }), "", "total"], widths: [5, 11, 9, 16, 0]))
            }
        }
    }

    /// A table of device time per kernel, largest first, with a total row.
    func printKernels(_ title: String, _ rows: [(name: String, milliseconds: Double, launches: Int)], divisor: Double = 1) {
        emit("\nkernels over \(title):")
        emit(fixedRow(["device ms", "launches", "kernel"], widths: [11, 9, 0]))
        let launches = { (n: Int) in divisor == 1 ? "\(n)" : String(format: "%.1f", Double(n) / divisor) }
        for k in rows {
            emit(fixedRow([String(format: "%.1f", k.milliseconds / divisor), launches(k.launches), k.name], widths: [11, 9, 0]))
        }
        emit(fixedRow([String(format: "%.1f", rows.reduce(0) { $0 + $1.milliseconds } / divisor),
                       launches(rows.reduce(0) { $0 + $1.launches }), "total"], widths: [11, 9, 0]))
    }

    public func run() throws {
        if let model { return try runModel(model) }
        let wholeNetwork = [visualize ? "--visualize" : nil, kernels ? "--kernels" : nil, launches ? "--launches" : nil, saliency == nil ? nil : "--method"].compactMap { $0 }
        guard wholeNetwork.isEmpty else {
            throw UserError("\(wholeNetwork.joined(separator: ", ")) time a whole network: give --model (e.g. --model resnet18)")
        }
        guard let device = try deviceOptions.openCLDevice() else {
            throw UserError("loupe bench times OpenCL kernels with profiling events; choose an OpenCL device (see `loupe devices`)")
        }
        let modelList = shapes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        for m in modelList where !LayerShapes.models.contains(m) {
            throw UserError("unknown network \(m) for --shapes; choose from \(LayerShapes.models.joined(separator: ", "))")
        }
        let batches = try batchSizes()
        let plan = Benchmark.plan(models: modelList, filter: filter)
        guard !plan.isEmpty else { throw UserError("--filter \(filter ?? ""): no op matches") }

        var bench = Benchmark(backend: try OpenCLBackend(device: device))
        bench.runs = runs
        let peak = try bench.peak()
        if !json {
            emit("device: \(device.name) (\(device.platform.name), \(device.computeUnits) CUs)")
            emit(String(format: "measured peak: %.1f GFLOP/s (FMA), %.1f GB/s (copy); %.1f us per kernel launch", peak.gflops, peak.gbPerSecond,
                        peak.launchMicroseconds))
            emit("median of \(runs) run(s) after at least 50 ms of warm-up runs; device time from OpenCL profiling events\n")
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
func fixedRow(_ cells: [String], widths: [Int] = [9, 30, 5, 16, 10, 17, 7, 0]) -> String {
    return zip(cells, widths).map { cell, w in
        w == 0 ? cell : cell.count >= w ? cell + " " : cell.padding(toLength: w, withPad: " ", startingAt: 0)
    }.joined(separator: " ")
}

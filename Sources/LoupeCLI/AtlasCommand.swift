import ArgumentParser
import Atlas
import Foundation
import Interpret
import Models
import WeightFiles
import Workflows

/// `loupe atlas`: every channel of some layers, its feature visualization beside the dataset
/// images that excite it most, as a static site; sharded over a cluster and resumable.
public struct AtlasCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "atlas",
        abstract: "An atlas of every channel of some layers: feature visualizations and the dataset images that excite each channel most, as a static site.",
        discussion: """
        The work is a list of units (a block of channels of a layer; a block of images) in a fixed order. --shard k/n does \
        only units k, k+n, k+2n, ... (k from 0); --shard auto reads Slurm's SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT, or \
        Kubernetes' JOB_COMPLETION_INDEX with --shard-count. Each unit is written whole into --out; a rerun skips finished \
        units. When every unit is there the pages are built; `loupe atlas --merge SITE` builds them from whatever is there.

        Examples:
          loupe atlas --layer features.10 --channels 0..31 --images Assets/photos --out out/atlas
          loupe atlas --layer features.10,features.14 --images /data/val --out /shared/atlas --shard auto
          loupe atlas --merge /shared/atlas
        """)

    @OptionGroup public var deviceOptions: DeviceOptions
    @OptionGroup public var modelOptions: ModelOptions
    @Option(help: "Layers, comma-separated (`loupe layers`).") public var layer: String?
    @Option(help: "A..B: only these channels of each layer (default: all).") public var channels: String?
    @Option(parsing: .upToNextOption, help: "Dataset images: PNG or JPEG files or folders of them.") public var images: [String] = []
    @Option(help: "The site folder (shared by all shards).") public var out: String?
    @Option(help: "Build the pages of the atlas in SITE from the units it holds, and list the missing ones.") public var merge: String?
    @Option(parsing: .unconditional, help: "Feature visualization steps per channel.") public var steps: Int = 512
    @Option(parsing: .unconditional, help: "Feature visualization size (square).") public var size: Int = 224
    @Option(parsing: .unconditional, help: "Learning rate (Adam).") public var lr: Float = 0.05
    @Option(parsing: .unconditional, help: "Seed of the atlas (each channel's picture is seeded from it, the layer and the channel).") public var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "K pictures per channel, made together with Lucid's diversity term.") public var diversity: Int = 1
    @Option(parsing: .unconditional, help: "Weight of the diversity term with --diversity K.") public var diversityWeight: Float = 100
    @Option(parsing: .unconditional, help: "Dataset images kept per channel, by mean and by max activation (and by relevance).") public var top: Int = 8
    @Option(help: "Relevance maximization beside the activations (zennit-crp's): rank each channel's dataset images by their relevance under this LRP composite (as saliency's --composite), from each image's top-1 class.")
    public var relevance: String?
    @Option(parsing: .unconditional, help: "Channels per unit (optimized as one batch).") public var channelBlock: Int = 16
    @Option(parsing: .unconditional, help: "Images per unit.") public var imageBlock: Int = 32
    @Option(parsing: .unconditional, help: "Images per forward pass.") public var imageBatch: Int = 8
    @Option(help: "k/n (k from 0) or auto: do only this shard's units.") public var shard: String = "0/1"
    @Option(parsing: .unconditional, help: "The number of shards, for --shard auto under Kubernetes (the Job's completions).") public var shardCount: Int?

    public init() {}

    public func run() throws {
        if let merge {
            guard layer == nil, out == nil else { throw UserError("--merge SITE takes no --layer or --out") }
            guard shard == "0/1", shardCount == nil else { throw UserError("--merge builds the whole site: it takes no --shard or --shard-count") }
            return try mergeSite(merge)
        }
        if shardCount != nil, shard != "auto" {
            throw UserError("--shard-count is the number of shards for --shard auto; with --shard k/n, n is the count")
        }
        guard let layer else { throw UserError("give --layer (or --merge SITE)") }
        guard let out else { throw UserError("give --out SITE") }
        if let relevance {
            guard !images.isEmpty else { throw UserError("--relevance ranks dataset images: give --images") }
            do { _ = try LRP(composite: relevance) } catch let error as InterpretError { throw UserError("--relevance: \(error.description)") }
        }
        try requireNumber("--lr", lr, above: 0)
        try requireNumber("--diversity-weight", diversityWeight, atLeast: 0)
        guard imageBatch >= 1 else { throw UserError("--image-batch must be at least 1") }
        let range = try channels.map(parseRange)
        let shard: AtlasShard
        do { shard = try AtlasShard.parse(self.shard, count: shardCount) } catch let error as AtlasError { throw UserError(error.description) }
        let files = images.isEmpty ? [] : try imageFiles(images).map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        _ = try modelOptions.preprocessing(noResize: false)  // refused before the model loads
        let backend = try deviceOptions.backend()
        let model = try modelOptions.load(on: backend)
        let preprocessing = try modelOptions.preprocessing(noResize: false, for: model)
        let record = try RunRecord(modelOptions: modelOptions, model: model, preprocessing: preprocessing, backend: backend)
        let settings = AtlasSettings(
            model: model.architecture.name, weights: record.modelSHA256.map { "SHA-256 \($0)" } ?? "random weights, seed \(modelOptions.randomWeights ?? 0)",
            layers: layer.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }, channels: range, images: files,
            inputSize: preprocessing.crop, resize: preprocessing.resizeShorter ?? preprocessing.crop, interpolation: preprocessing.interpolation.rawValue,
            steps: steps, size: size, learningRate: lr, seed: seed, variants: diversity, diversityWeight: diversityWeight, top: top,
            channelBlock: channelBlock, imageBlock: imageBlock, relevance: relevance)
        let folder = AtlasFolder(URL(fileURLWithPath: out))
        do {
            let plan = try AtlasRunner.plan(settings, model: model)
            try MemoryBudget.requirePass(model, batch: Swift.max(settings.variants == 1 ? settings.channelBlock : settings.variants, imageBatch),
                                         height: Swift.max(size, settings.inputSize), width: Swift.max(size, settings.inputSize), what: "the atlas")
            try folder.prepare(plan)
            folder.removeStaleStaging()
            var runner = AtlasRunner(model: model, plan: plan, folder: folder, preprocessing: preprocessing)
            runner.imageBatch = imageBatch
            runner.staged = { url, live in if live { Interrupts.register(url) } else { Interrupts.unregister(url) } }
            let job = AtlasJob(runner: runner, shard: shard)
            emit("atlas of \(plan.settings.model) on \(backend.name): \(plan.layers.count) layer(s), \(plan.channelCount) channels, "
                 + "\(files.count) images, \(plan.units.count) units; shard \(shard) has \(job.units.count)")
            let pending = job.pending.count
            if pending < job.units.count { emit("shard \(shard): \(job.units.count - pending) of \(job.units.count) units already done, \(pending) to do") }
            let summary = try job.run(report: { progressLine($0, done: true) }, step: { progressLine($0) })
            if summary.ran > 0 {
                var parts: [String] = []
                if let c = summary.channelsPerMinute { parts.append(String(format: "%.1f channels/min", c)) }
                if let i = summary.imagesPerSecond { parts.append(String(format: "%.1f images/s", i)) }
                emit("throughput on \(backend.name): \(parts.joined(separator: ", "))")
                if let whole = summary.projected(channels: plan.channelCount, images: files.count) {
                    emit("projected: the whole atlas (\(plan.channelCount) channels, \(files.count) images) takes \(duration(whole)) on one such device"
                         + (shard.count > 1 ? ", \(duration(whole / Double(shard.count))) on \(shard.count) shards" : ""))
                }
            }
            let site = try AtlasSite(folder)
            let status = site.status()
            if status.complete {
                emit("all \(status.total) units are done: building the pages")
                try site.write()
                emit("-> \((out as NSString).appendingPathComponent("index.html"))")
            } else {
                emit("\(status.done) of \(status.total) units done; the other shards' units are missing (`loupe atlas --merge \(out)` builds the pages from what is there)")
            }
        } catch let error as AtlasError { throw UserError(error.description) }
    }

    func mergeSite(_ path: String) throws {
        do {
            let site = try AtlasSite(AtlasFolder(URL(fileURLWithPath: path)))
            let report = try site.write()
            emit("\(report.done) of \(report.total) units done")
            if !report.missing.isEmpty {
                emit("missing \(report.missing.count): " + report.missing.prefix(20).joined(separator: "; ") + (report.missing.count > 20 ? "; ..." : ""))
            }
            emit("-> \((path as NSString).appendingPathComponent("index.html"))")
        } catch let error as AtlasError { throw UserError(error.description) }
    }

    func parseRange(_ text: String) throws -> ClosedRange<Int> {
        let ends = text.components(separatedBy: "..").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard ends.count == 2, let a = ends[0], let b = ends[1], a >= 0, b >= a else { throw UserError("--channels \(text): expected A..B with 0 <= A <= B") }
        return a...b
    }
}

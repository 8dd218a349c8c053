import Backend
import Foundation
import Graph
import ImageIO
import Interpret
import Models
import Workflows

/// One open model: its weights on one backend, the preprocessing its images get, and a lock
/// that runs one call at a time on it (calls on different sessions run side by side).
final class Session: @unchecked Sendable {
    let model: Model
    let name: String
    let preprocessing: Preprocessing
    /// What opening it warned about (`auto` falling back to the CPU reference), for the caller
    /// to show its own way: `info` returns them.
    let warnings: [String]
    /// The input height and width `info` and `layers` run at: the `input_size` option, else the
    /// preset's crop.
    let inputSize: (height: Int, width: Int)
    let lock = NSLock()

    init(model: Model, name: String, preprocessing: Preprocessing, warnings: [String], inputSize: (height: Int, width: Int)) {
        self.model = model; self.name = name; self.preprocessing = preprocessing; self.warnings = warnings; self.inputSize = inputSize
    }

    /// Opens a model from a path (`bytes` nil) or from a file's bytes called `name`, with the
    /// options of `loupe_open`: arch, device, preset, resize, crop, interpolation, mean, std,
    /// random_weights, input_size ([height, width] of the network's input, when not the crop).
    static func open(path: String?, bytes: [UInt8]?, name: String, options o: Options) throws -> Session {
        let arch = try o.string("arch")
        let deviceText = try o.string("device") ?? "auto"
        guard let choice = DeviceChoice(argument: deviceText) else {
            throw CallError(.invalidArgument, "device \(deviceText): expected auto, cpu or opencl:N")
        }
        let preprocessing = try Self.preprocessing(o)
        let seed = try o.uint64("random_weights")
        let size = try o.ints("input_size", in: 1...16384) ?? [preprocessing.crop, preprocessing.crop]
        guard size.count == 2 else { throw CallError(.invalidArgument, "input_size: [height, width]") }
        try o.finish()
        var warnings: [String] = []
        let backend = try choice.backend(warn: { warnings.append($0) })
        var model: Model
        if let bytes {
            guard seed == nil else { throw CallError(.invalidArgument, "random_weights: open the model by architecture name or path") }
            model = try ModelLocator.load(bytes: bytes, name: name, arch: arch, on: backend)
        } else if let seed, let path {
            let architecture = ModelLocator.isONNX(path) ? try ModelLocator.onnx(path, weightsRequired: false).0 : try Architectures.make(arch ?? path)
            model = Model(architecture: architecture, parameters: try SeededWeights.parameters(for: architecture, seed: seed, on: backend), backend: backend)
        } else {
            model = try ModelLocator.load(model: path ?? ModelLocator.defaultModel, arch: arch, on: backend)
        }
        var architecture = model.architecture
        architecture.normalization = Normalization(mean: preprocessing.mean, std: preprocessing.std)
        model = Model(architecture: architecture, parameters: model.parameters, backend: backend)
        return Session(model: model, name: name, preprocessing: preprocessing, warnings: warnings, inputSize: (size[0], size[1]))
    }

    /// The preset's resize, crop and filter with the options' overrides, and the normalization.
    static func preprocessing(_ o: Options) throws -> Preprocessing {
        let preset = try o.string("preset") ?? "imagenet"
        guard let sizes = Preprocessing.presets[preset] else {
            throw CallError(.invalidArgument, "preset \(preset): expected \(Preprocessing.presets.keys.sorted().joined(separator: ", "))")
        }
        let resize = try o.int("resize", in: 1...16384) ?? sizes.resize
        let crop = try o.int("crop", in: 1...16384) ?? sizes.crop
        guard crop <= resize else { throw CallError(.invalidArgument, "crop \(crop) is larger than resize \(resize)") }
        var filter = sizes.filter
        if let text = try o.string("interpolation") {
            guard let f = Interpolation(rawValue: text) else { throw CallError(.invalidArgument, "interpolation \(text): expected bilinear or bicubic") }
            filter = f
        }
        var p = Preprocessing(resizeShorter: (try o.bool("no_resize") ?? false) ? nil : resize, crop: crop, interpolation: filter)
        if let mean = try o.floats("mean") {
            guard mean.count == 3 else { throw CallError(.invalidArgument, "mean: three numbers (R, G, B)") }
            p.mean = mean
        }
        if let std = try o.floats("std") {
            guard std.count == 3, std.allSatisfy({ $0 > 0 }) else { throw CallError(.invalidArgument, "std: three positive numbers (R, G, B)") }
            p.std = std
        }
        return p
    }

    var backend: any Backend { model.backend }

    /// The [N, 3, H, W] batch `x` on the device, with its sizes, after the memory budget of one
    /// pass with gradients at that batch.
    func batch(_ x: HostArray, what: String) throws -> (tensor: Tensor, n: Int, h: Int, w: Int) {
        guard x.shape.count == 4, x.shape[1] == 3, x.shape[0] >= 1, x.shape[2] >= 1, x.shape[3] >= 1 else {
            throw CallError(.invalidArgument, "x must be a batch of images [N, 3, H, W], got shape \(x.shape)")
        }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        if let maxBatch = model.architecture.maxBatch, n > maxBatch {
            throw CallError(.invalidArgument, "\(name) was exported for batches of at most \(maxBatch) image(s); x has \(n)")
        }
        try MemoryBudget.requirePass(model, batch: n, height: h, width: w, what: what)
        return (try backend.tensor(x.values, Shape(x.shape)), n, h, w)
    }

    /// Each image's target: the given ones (a class index or an ImageNet class name, resolved as
    /// `loupe saliency --target` resolves it, one for all images or one per image) or each image's
    /// top class. Given indices cost no pass; the top classes and a name's class count come from
    /// one fused forward pass (`ClassScores`: no layer kept, its memory budgeted).
    func targets(_ o: Options, n: Int, x: Tensor) throws -> [Int] {
        var scored: ClassScores?
        func scores() throws -> ClassScores {
            if let scored { return scored }
            let made = try ClassScores(model, input: x)
            scored = made
            return made
        }
        guard let given = try o.intsOrStrings("targets", in: 0...Int(Int32.max)) else { return try scores().topClasses }
        guard given.count == n || given.count == 1 else { throw CallError(.invalidArgument, "\(given.count) targets for \(n) images") }
        let resolved = try given.map { item -> Int in
            switch item {
            case .int(let k): return k
            case .string(let name):
                let imageNet = try scores().classes == imageNetClasses.count
                do {
                    return try Probe.resolveClass(name, names: imageNet ? imageNetClasses : nil, synonyms: imageNet ? imageNetSynonyms : nil,
                                                  flag: "target")
                } catch let error as WorkflowError {
                    throw CallError(.invalidArgument, error.description)
                }
            }
        }
        return resolved.count == n ? resolved : [Int](repeating: resolved[0], count: n)
    }
}

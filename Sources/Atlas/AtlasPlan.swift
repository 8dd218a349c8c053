import Foundation
import WeightFiles

/// What an atlas covers and how it is made: the settings every shard of one atlas must share.
/// A site folder records them in `atlas.json`; a run into a folder made with other settings is
/// refused, so shards can never mix pictures of two different jobs.
public struct AtlasSettings: Codable, Sendable, Equatable {
    /// The architecture's name and where its weights came from (a file's path and SHA-256, or
    /// "random weights, seed N").
    public var model: String
    /// Where the weights came from (a file's path and SHA-256, or "random weights, seed N").
    public var weights: String
    /// The layers, in the order given.
    public var layers: [String]
    /// Channels of each layer (clipped to the layer's count); nil: all of them.
    public var channels: ClosedRange<Int>?
    /// The dataset images (absolute paths, sorted), and the side of the square the network sees.
    public var images: [String]
    /// The side of the square the network sees.
    public var inputSize: Int
    /// How an image becomes the input: shorter side resized to `resize` with `interpolation`,
    /// then the centre `inputSize` square.
    public var resize: Int
    /// The resize's interpolation, by name ("bilinear" by default).
    public var interpolation: String
    /// Feature visualization: the `loupe visualize` defaults unless changed.
    /// Optimization steps per channel.
    public var steps: Int
    /// Side of the visualized image, pixels.
    public var size: Int
    /// Adam's learning rate.
    public var learningRate: Float
    /// The seed; each channel's picture is seeded from it and the channel, so any shard draws the
    /// same picture.
    public var seed: UInt64
    /// Pictures per channel: 1, or K made together with Lucid's diversity term.
    public var variants: Int
    /// The weight of the diversity term when `variants` > 1.
    public var diversityWeight: Float
    /// Dataset examples kept per channel, by mean and by max activation.
    public var top: Int
    /// Work unit sizes: channels optimized in one batch, images per dataset unit.
    public var channelBlock: Int
    /// Dataset images per image unit.
    public var imageBlock: Int
    /// Relevance maximization (zennit-crp's, `RelevanceMaximization`) beside the activation
    /// statistics: the LRP composite (as `--composite` takes it) whose relevance, from each
    /// image's top-1 class, ranks the dataset examples; nil: activations only.
    public var relevance: String?

    /// Settings; the defaults are `loupe visualize`'s (512 steps at 224 px, learning rate 0.05)
    /// and torchvision's preprocessing (resize 256, crop 224, bilinear).
    public init(model: String, weights: String, layers: [String], channels: ClosedRange<Int>? = nil, images: [String], inputSize: Int = 224, resize: Int = 256, interpolation: String = "bilinear",
                steps: Int = 512, size: Int = 224, learningRate: Float = 0.05, seed: UInt64 = 0, variants: Int = 1,
                diversityWeight: Float = 100, top: Int = 8, channelBlock: Int = 16, imageBlock: Int = 32, relevance: String? = nil) {
        self.model = model; self.weights = weights; self.layers = layers; self.channels = channels; self.images = images
        self.inputSize = inputSize; self.resize = resize; self.interpolation = interpolation; self.steps = steps; self.size = size; self.learningRate = learningRate; self.seed = seed
        self.variants = variants; self.diversityWeight = diversityWeight; self.top = top
        self.channelBlock = channelBlock; self.imageBlock = imageBlock; self.relevance = relevance
    }
}

/// One layer of the atlas with its shape on a dataset image ([C, H, W]).
public struct AtlasLayer: Codable, Sendable, Equatable {
    /// The layer's name, as `loupe layers` prints it.
    public var name: String
    /// Its output's channels, height and width on a dataset image.
    public var channels: Int, height: Int, width: Int
    /// A layer of this name and shape.
    public init(name: String, channels: Int, height: Int, width: Int) {
        self.name = name; self.channels = channels; self.height = height; self.width = width
    }
    /// A file name for the layer (ONNX layer names may hold slashes).
    public var stem: String {
        let safe = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
        let trimmed = safe.drop { $0 == "_" || $0 == "." }
        return trimmed.isEmpty ? "layer" : String(trimmed)
    }
}

/// One piece of work. Units are listed in a fixed order; each is done by exactly one shard and
/// its result is written whole into the site folder.
public enum AtlasUnit: Sendable, Hashable {
    /// Feature visualizations of channels `range` of layer number `layer`, optimized as one batch.
    case channels(layer: Int, range: Range<Int>)
    /// Dataset statistics of images `range`: one forward pass per batch with every layer tapped.
    case images(Range<Int>)
}

/// The settings, the layers' shapes and the list of units.
public struct AtlasPlan: Codable, Sendable, Equatable {
    /// The `atlas.json` format this build reads and writes.
    public static let formatVersion = 1
    /// The format of the file it was read from.
    public var version = AtlasPlan.formatVersion
    /// What the atlas covers and how it is made.
    public var settings: AtlasSettings
    /// The layers, in the settings' order, with their shapes.
    public var layers: [AtlasLayer]

    /// A plan for these settings and layers; throws ``AtlasError`` for no layers, settings below
    /// their least (steps, size, variants, top, block sizes), a channel range starting beyond a
    /// layer's channels, or two layers with the same file name.
    public init(settings: AtlasSettings, layers: [AtlasLayer]) throws {
        guard !layers.isEmpty else { throw AtlasError("no layers") }
        for (name, value, least) in [("steps", settings.steps, 1), ("size", settings.size, 16), ("variants", settings.variants, 1),
                                     ("top", settings.top, 1), ("channel block", settings.channelBlock, 1), ("image block", settings.imageBlock, 1)]
        where value < least {
            throw AtlasError("\(name) \(value): at least \(least)")
        }
        if let range = settings.channels {
            guard range.lowerBound >= 0 else { throw AtlasError("channels \(range): negative") }
            for layer in layers where range.lowerBound >= layer.channels {
                throw AtlasError("channels \(range.lowerBound)..\(range.upperBound): layer \(layer.name) has \(layer.channels) channels")
            }
            // A range past a narrower layer's channels stops at its last; past every layer's, it
            // names channels that do not exist.
            if let widest = layers.max(by: { $0.channels < $1.channels }), range.upperBound >= widest.channels {
                throw AtlasError("channels \(range.lowerBound)..\(range.upperBound): no layer has channel \(range.upperBound) (the widest, \(widest.name), has \(widest.channels): 0...\(widest.channels - 1))")
            }
        }
        let stems = layers.map(\.stem)
        guard Set(stems).count == stems.count else { throw AtlasError("two layers have the same file name: \(stems)") }
        self.settings = settings
        self.layers = layers
    }

    /// The plan's SHA-256 (of its JSON with sorted keys): every unit records the one it was made
    /// under, so a unit made with other settings is never taken for this plan's.
    public var fingerprint: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return SHA256.hex((try? encoder.encode(self)) ?? Data())
    }

    /// The channels of layer number `i` that the atlas covers.
    public func channels(of i: Int) -> Range<Int> {
        let all = 0..<layers[i].channels
        guard let r = settings.channels else { return all }
        return r.lowerBound..<Swift.min(r.upperBound + 1, all.upperBound)
    }

    /// Every unit, in the one order all shards agree on: each layer's channel blocks, then the
    /// image blocks.
    public var units: [AtlasUnit] {
        var out: [AtlasUnit] = []
        for i in layers.indices {
            let r = channels(of: i)
            for lo in stride(from: r.lowerBound, to: r.upperBound, by: settings.channelBlock) {
                out.append(.channels(layer: i, range: lo..<Swift.min(lo + settings.channelBlock, r.upperBound)))
            }
        }
        for lo in stride(from: 0, to: settings.images.count, by: settings.imageBlock) {
            out.append(.images(lo..<Swift.min(lo + settings.imageBlock, settings.images.count)))
        }
        return out
    }

    /// Channels visualized over all layers (the selected range of each).
    public var channelCount: Int { layers.indices.reduce(0) { $0 + channels(of: $1).count } }

    /// The unit's folder name under `units/`.
    public func id(_ unit: AtlasUnit) -> String {
        switch unit {
        case .channels(let layer, let range):
            return "channels-\(layers[layer].stem)-\(pad(range.lowerBound))-\(pad(range.upperBound - 1))"
        case .images(let range):
            return "images-\(pad(range.lowerBound))-\(pad(range.upperBound - 1))"
        }
    }

    /// Readable: "features.10 channels 0..15", "images 0..31".
    public func describe(_ unit: AtlasUnit) -> String {
        switch unit {
        case .channels(let layer, let range): return "\(layers[layer].name) channels \(range.lowerBound)..\(range.upperBound - 1)"
        case .images(let range): return "images \(range.lowerBound)..\(range.upperBound - 1)"
        }
    }

    /// The seed of one picture: from the atlas seed, the layer's name, the channel and the
    /// variant only, so a channel's picture does not depend on its block or its shard.
    public func seed(layer: Int, channel: Int, variant: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the name
        for byte in layers[layer].name.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return mix(settings.seed ^ mix(h ^ (UInt64(channel) << 16) ^ UInt64(variant)))
    }
}

func pad(_ n: Int) -> String {
    let s = String(n)
    return s.count >= 5 ? s : String(repeating: "0", count: 5 - s.count) + s
}

/// SplitMix64's finalizer.
func mix(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Which units one process does: shard `index` of `count` takes units index, index + count, ...
/// (round robin, so every shard gets a share of each layer and of the images).
public struct AtlasShard: Sendable, Equatable, CustomStringConvertible {
    /// This shard's number (from 0) and the number of shards.
    public let index: Int, count: Int
    /// Shard `index` of `count`; throws unless 0 <= index < count.
    public init(index: Int, count: Int) throws {
        guard count >= 1, (0..<count).contains(index) else { throw AtlasError("shard \(index)/\(count): expected k/n with 0 <= k < n") }
        self.index = index; self.count = count
    }

    /// "k/n" (k counted from 0, as Slurm array indices and Kubernetes completion indices are), or
    /// "auto": from Slurm's `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`) and
    /// `SLURM_ARRAY_TASK_COUNT`, or from Kubernetes' `JOB_COMPLETION_INDEX` with `count` (the
    /// Job's completions; an Indexed Job does not publish it).
    public static func parse(_ text: String, count: Int? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AtlasShard {
        if text == "auto" {
            if let id = environment["SLURM_ARRAY_TASK_ID"].flatMap(Int.init) {
                guard let n = environment["SLURM_ARRAY_TASK_COUNT"].flatMap(Int.init) ?? count else {
                    throw AtlasError("--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT (give --shard-count)")
                }
                return try AtlasShard(index: id - (environment["SLURM_ARRAY_TASK_MIN"].flatMap(Int.init) ?? 0), count: n)
            }
            if let id = environment["JOB_COMPLETION_INDEX"].flatMap(Int.init) {
                guard let count else { throw AtlasError("--shard auto: JOB_COMPLETION_INDEX is set; give --shard-count (the Job's completions)") }
                return try AtlasShard(index: id, count: count)
            }
            throw AtlasError("--shard auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set")
        }
        let parts = text.split(separator: "/").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let k = parts[0], let n = parts[1] else { throw AtlasError("--shard \(text): expected k/n (e.g. 0/4) or auto") }
        return try AtlasShard(index: k, count: n)
    }

    /// Whether unit number `unitIndex` (plan order) is this shard's.
    public func owns(_ unitIndex: Int) -> Bool { unitIndex % count == index }
    /// "k/n".
    public var description: String { "\(index)/\(count)" }
}

/// An atlas that cannot be planned, run or merged: bad settings, a shard spec, a site folder
/// made with other settings, a corrupt unit file (the description says which).
public struct AtlasError: Error, CustomStringConvertible, Sendable {
    /// What is wrong, one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}

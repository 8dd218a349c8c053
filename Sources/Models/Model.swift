import Backend
import Foundation
import Graph
import WeightFiles

/// An architecture with its weights on a backend.
public struct Model: Sendable {
    /// The network's structure.
    public let architecture: Architecture
    /// Its weights, uploaded to `backend`.
    public let parameters: ParameterStore
    /// Where its passes run.
    public let backend: any Backend

    /// A model from weights already on `backend` (see `ModelLocator` to load a file).
    public init(architecture: Architecture, parameters: ParameterStore, backend: any Backend) {
        self.architecture = architecture
        self.parameters = parameters
        self.backend = backend
    }

    /// Checks `weights` against the architecture (names and shapes exactly as torchvision's
    /// state_dict; batchnorm's num_batches_tracked and GoogLeNet's auxiliary classifiers may be
    /// present and are ignored) and uploads them. Every missing, unexpected or wrongly shaped
    /// key is listed in one error.
    /// Each host tensor is dropped once it is on the device: pass the weights with `consume`
    /// and a large model's weights are held once while they load, not twice.
    public init(architecture: Architecture, weights: consuming [String: HostTensor], on backend: any Backend) throws {
        let specs = architecture.parameters
        var missing: [String] = [], wrong: [String] = []
        for spec in specs {
            guard let shape = weights[spec.name]?.shape else { missing.append(spec.name); continue }
            if shape != spec.shape { wrong.append("\(spec.name) is \(shape), expected \(spec.shape)") }
        }
        let known = Set(specs.map(\.name))
        let unexpected = weights.keys.filter { key in
            !known.contains(key) && !key.hasSuffix("num_batches_tracked")
                && !(architecture.name == "googlenet" && (key.hasPrefix("aux1.") || key.hasPrefix("aux2.")))
        }.sorted()
        if !missing.isEmpty || !unexpected.isEmpty || !wrong.isEmpty {
            func list(_ title: String, _ items: [String]) -> String {
                items.isEmpty ? "" : "\n  \(title) (\(items.count)): " + items.prefix(12).joined(separator: ", ") + (items.count > 12 ? ", ..." : "")
            }
            throw ModelError("the weights do not fit \(architecture.name):" + list("missing", missing)
                             + list("unexpected", unexpected) + list("wrong shape", wrong))
        }
        var tensors: [String: Tensor] = [:]
        for spec in specs {
            guard let w = weights.removeValue(forKey: spec.name) else { continue }
            try Model.checkValues(w.values, of: spec)
            tensors[spec.name] = try backend.tensor(w.values, w.shape)
        }
        self.init(architecture: architecture, parameters: ParameterStore(tensors), backend: backend)
    }

    /// Values beyond this magnitude are refused: the product of two of them overflows float32.
    static let largestWeight: Float = 0x1p63

    /// Throws unless every value of the parameter `spec` is finite and of a magnitude whose
    /// products stay finite (a NaN or an overflow would reach every output), and a batch norm's
    /// running variance is not negative (its square root is NaN): PyTorch computes NaN from such
    /// files, which no explanation of the network survives.
    static func checkValues(_ values: [Float], of spec: ParameterSpec) throws {
        if let i = values.firstIndex(where: { !$0.isFinite || abs($0) >= largestWeight }) {
            let bad = values.lazy.filter { !$0.isFinite || abs($0) >= largestWeight }.count
            throw ModelError("weight \(printable(spec.name)) holds \(values[i]) at index \(i) (\(bad) of \(values.count) values are "
                             + "NaN, infinite or beyond ±2^63): a corrupt or diverged file")
        }
        if spec.name.hasSuffix("running_var"), let i = values.firstIndex(where: { $0 < 0 }) {
            throw ModelError("weight \(printable(spec.name)) holds the negative variance \(values[i]) at index \(i): a corrupt file")
        }
    }

    /// Logits for a normalized input [N, 3, H, W]; every layer is tapped on `g`.
    public func forward(_ g: Graph, _ x: Graph.Value) throws -> Graph.Value {
        try architecture.forward(g, x, parameters)
    }

    /// How many outputs (classes) a pass gives per image: from one fused pass at size x size
    /// (an imported graph's parameters come in name order, so its head is not the last one).
    public func classCount(size: Int = 224) throws -> Int {
        let g = Graph(backend: backend)
        g.keptLayers = []
        g.forwardOnly = true
        let y = try forward(g, g.input(try backend.tensor([Float](repeating: 0, count: 3 * size * size), [1, 3, size, size])))
        return g.shape(y).count
    }

    /// The same weights on another backend.
    public func moved(to other: any Backend) throws -> Model {
        var tensors: [String: Tensor] = [:]
        for (name, t) in parameters.tensors { tensors[name] = try other.tensor(try backend.values(t), t.shape) }
        return Model(architecture: architecture, parameters: ParameterStore(tensors), backend: other)
    }
}

/// Reads a weight file: a PyTorch checkpoint (.pth / .pt, zip or legacy) or safetensors,
/// recognised by content, not by extension.
public func loadWeights(url: URL) throws -> [String: HostTensor] {
    let data = try InputFile.read(url.path, what: "--model", limit: TorchCheckpoint.weightFileLimit)
    let name = printable(url.lastPathComponent)
    if data.count > 9, data[data.startIndex + 8] == UInt8(ascii: "{") {
        do { return try SafeTensorsFile(data: data).tensors } catch { throw ModelError("\(name): \(error)") }
    }
    do { return try TorchCheckpoint.load(bytes: [UInt8](data)) } catch let error as WeightFileError {
        throw WeightFileError("\(name): \(error.description)")
    }
}

/// Where `--model` and `--arch` lead.
public enum ModelLocator {
    /// What `--model` means when it is not given: torchvision's MobileNetV2 (`make setup`
    /// installs its ImageNet weights).
    public static let defaultModel = "mobilenet_v2"

    /// `$TORCH_HOME/hub/checkpoints`, where torchvision keeps downloaded weights
    /// (TORCH_HOME defaults to ~/.cache/torch).
    public static var checkpointDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        let home = env["TORCH_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/torch")
        return home.appendingPathComponent("hub/checkpoints")
    }

    /// The weight file and architecture for `--model` (an architecture name or a path) and
    /// `--arch` (needed only when neither the file name nor the file's keys tell).
    public static func resolve(model: String, arch: String?) throws -> (url: URL, arch: String?) {
        if let arch, !Architectures.names.contains(arch) {
            throw ModelError("unknown architecture \(arch) for --arch; known: \(Architectures.names.joined(separator: ", "))")
        }
        if let file = Architectures.torchvisionFiles[model] {
            let url = checkpointDirectory.appendingPathComponent(file)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelError("no weights for \(model): expected torchvision's file at \(url.path)"
                                 + (model == defaultModel ? " (run `make models`)" : " (torchvision downloads it there), or pass --model PATH"))
            }
            return (url, model)
        }
        let url = URL(fileURLWithPath: model)
        guard FileManager.default.fileExists(atPath: url.path) else {
            let near = Architectures.names.filter { $0.hasPrefix(String(model.prefix(3))) }
            throw ModelError("--model \(model): neither a known architecture (\(Architectures.names.joined(separator: ", "))) nor an existing file"
                             + (near.isEmpty ? "" : "; did you mean \(near.joined(separator: " or "))?"))
        }
        if let arch { return (url, arch) }
        let file = url.lastPathComponent.lowercased()
        let named = Architectures.names.filter { file.hasPrefix($0) }.max { $0.count < $1.count }
        return (url, named)
    }

    /// Loads the model `--model` / `--arch` name on `backend`. When the architecture is still
    /// unknown it is the one whose parameter names and shapes the file holds.
    public static func load(model: String = defaultModel, arch: String? = nil, on backend: any Backend) throws -> Model {
        if isONNX(model) {
            let (architecture, weights) = try onnx(model)
            return try Model(architecture: architecture, weights: consume weights, on: backend)
        }
        let (url, named) = try resolve(model: model, arch: arch)
        let weights = try loadWeights(url: url)
        let architecture = try named ?? inferArchitecture(weights, file: url.lastPathComponent)
        return try assembled(consume weights, architecture: architecture, on: backend)
    }

    /// The architecture called `name` with `weights`; a fine-tuned classifier's class count is
    /// the size of its last bias.
    static func assembled(_ weights: consuming [String: HostTensor], architecture name: String, on backend: any Backend) throws -> Model {
        var classes = 1000
        if let last = try Architectures.make(name).parameters.last, let bias = weights[last.name], bias.shape.rank == 1 {
            classes = bias.shape[0]
        }
        return try Model(architecture: try Architectures.make(name, classes: classes), weights: consume weights, on: backend)
    }

    /// Loads a model from the bytes of a file called `name` (no file is read): an ONNX model
    /// (by the extension of `name` or, without one, by being neither of the others; tensors
    /// stored outside the model are refused), safetensors (an 8-byte header length then `{`) or
    /// a PyTorch checkpoint (zip or legacy pickle). `arch` names the architecture of a weight
    /// file when its keys do not tell.
    public static func load(bytes: [UInt8], name: String, arch: String? = nil, on backend: any Backend) throws -> Model {
        if let arch, !Architectures.names.contains(arch) {
            throw ModelError("unknown architecture \(arch); known: \(Architectures.names.joined(separator: ", "))")
        }
        let isSafeTensors = bytes.count > 8 && bytes[8] == UInt8(ascii: "{")
        let isZip = bytes.starts(with: [0x50, 0x4B, 0x03, 0x04])
        let isPickle = bytes.first == 0x80
        if isONNX(name) || (!isSafeTensors && !isZip && !isPickle) {
            let (architecture, weights) = try ONNXImport.load(bytes: bytes, name: name, folder: nil)
            return try Model(architecture: architecture, weights: consume weights, on: backend)
        }
        let weights: [String: HostTensor]
        if isSafeTensors {
            do { weights = try SafeTensorsFile(data: Data(bytes)).tensors } catch { throw ModelError("\(name): \(error)") }
        } else {
            weights = try TorchCheckpoint.load(bytes: bytes)
        }
        let file = name.lowercased()
        let named = arch ?? Architectures.names.filter { file.hasPrefix($0) }.max { $0.count < $1.count }
        return try assembled(weights, architecture: try named ?? inferArchitecture(weights, file: name), on: backend)
    }

    /// Whether `--model` names an ONNX file (by its extension).
    public static func isONNX(_ model: String) -> Bool { URL(fileURLWithPath: model).pathExtension.lowercased() == "onnx" }

    /// The architecture and weights of an ONNX file; `weightsRequired: false` accepts a graph
    /// whose initializers carry no data (for `--random-weights`).
    public static func onnx(_ path: String, weightsRequired: Bool = true) throws -> (Architecture, [String: HostTensor]) {
        let url = URL(fileURLWithPath: path)
        // Protocol buffers cap a message at 2 GiB; larger models keep their tensors outside.
        // The file's bytes go once parsed (a copy of them would hold a large model's weights twice).
        let model = try ONNXImport.parse(try InputFile.read(path, what: "--model", limit: Int(Int32.max)), name: url.lastPathComponent)
        return try ONNXImport.load(parsed: consume model, name: url.lastPathComponent, weightsRequired: weightsRequired,
                                   folder: url.deletingLastPathComponent())
    }

    static func inferArchitecture(_ weights: [String: HostTensor], file: String) throws -> String {
        for name in Architectures.names {
            guard let arch = try? Architectures.make(name) else { continue }
            // Every parameter present with its shape (the classifier's class count may differ).
            let specs = arch.parameters
            if specs.dropLast(2).allSatisfy({ weights[$0.name]?.shape == $0.shape }),
               specs.suffix(2).allSatisfy({ weights[$0.name] != nil }) { return name }
        }
        throw ModelError("\(file): its keys match no known architecture; pass --arch (\(Architectures.names.joined(separator: ", ")))")
    }
}

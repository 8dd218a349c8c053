import Backend
import Foundation
import Graph
import SwiftProtobuf
import WeightFiles

/// ONNX import: a `.onnx` file (opsets 11 to 20) becomes an `Architecture` whose one module runs
/// the file's nodes in order on the Graph, and whose parameters are the file's float
/// initializers, under their names. Every node's output is tapped under its output name, so
/// `loupe layers` lists them and `--layer` takes them. Every unsupported op or attribute is
/// reported, with each offending node's name and op type, in one error before anything runs.
public enum ONNXImport {
    /// The ONNX default-domain opset versions the importer accepts.
    public static let opsets = 11...20

    /// The architecture and its weights from a serialized ModelProto.
    /// Tensors stored outside the file (external data, as the dynamo exporter writes them) are
    /// read from the file they name in `folder` (the model file's folder; nil refuses them).
    public static func load(bytes: [UInt8], name: String, weightsRequired: Bool = true, folder: URL? = nil) throws -> (Architecture, [String: HostTensor]) {
        try load(parsed: try parse(bytes, name: name), name: name, weightsRequired: weightsRequired, folder: folder)
    }

    /// The ModelProto serialized in `bytes` (its tensors' bytes are copied: the caller's may go).
    static func parse(_ bytes: some SwiftProtobufContiguousBytes, name: String) throws -> Onnx_ModelProto {
        do { return try Onnx_ModelProto(serializedBytes: bytes) } catch {
            throw ModelError("\(printable(name)): not a readable ONNX model (\(error))")
        }
    }

    /// The architecture and weights of a parsed model. Memory: each initializer's bytes are
    /// freed as its values are made, so a model's weights are held about once, not twice.
    static func load(parsed: consuming Onnx_ModelProto, name: String, weightsRequired: Bool, folder: URL?) throws -> (Architecture, [String: HostTensor]) {
        var model = consume parsed
        guard model.hasGraph else { throw ModelError("\(printable(name)): the ONNX model has no graph") }
        model.graph = printableNames(model.graph)
        if let foreign = model.graph.node.first(where: { !$0.domain.isEmpty && $0.domain != "ai.onnx" }) {
            throw ModelError("\(printable(name)): node \(foreign.name) is \(foreign.opType) of the domain \(foreign.domain), not a standard ONNX op: refused")
        }
        let opset = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        guard opsets.contains(Int(opset)) else {
            throw ModelError("\(name): ONNX opset \(opset) is not supported (opsets \(opsets.lowerBound) to \(opsets.upperBound))")
        }
        // The initializers leave the model: each one's bytes are dropped once it is converted.
        var initializers = model.graph.initializer
        model.graph.initializer = []
        let graph = model.graph
        var floats: [String: HostTensor] = [:], integers: [String: HostNumbers] = [:]
        var problems: [String] = []
        var externalFiles: [String: Data] = [:]
        // Initializers without data (a graph whose weights come later, seeded): never folded.
        var placeholders: Set<String> = []
        for i in initializers.indices {
            let t = initializers[i]
            initializers[i] = Onnx_TensorProto()
            do {
                if !weightsRequired, t.dataType == Int32(Onnx_TensorProto.DataType.float.rawValue), t.floatData.isEmpty, t.rawData.isEmpty, !t.dims.isEmpty {
                    let dims = t.dims.map { Int($0) }
                    guard dims.allSatisfy({ $0 > 0 && $0 < 1 << 24 }), dims.reduce(1, *) <= 1 << 27 else { throw ModelError("bad dimensions \(t.dims)") }
                    floats[t.name] = HostTensor(shape: Shape(dims), values: [Float](repeating: 0, count: dims.reduce(1, *)))
                    placeholders.insert(t.name)
                    continue
                }
                switch try tensorValues(try inlined(t, folder: folder, files: &externalFiles)) {
                case .float(let h): floats[t.name] = h
                case .integer(let v): integers[t.name] = v
                }
            } catch { problems.append("initializer \(t.name): \(error)") }
        }
        for node in graph.node where node.opType == "Constant" {
            guard let value = node.attribute.first(where: { $0.name == "value" }), value.hasT else {
                problems.append("node \(node.name) (Constant): only a tensor `value` is supported"); continue
            }
            do {
                switch try tensorValues(value.t) {
                case .float(let h):
                    floats[node.output[0]] = h
                    // Small real constants take part in shape arithmetic on the host too.
                    if h.values.count <= 8 { integers[node.output[0]] = HostNumbers(dims: h.shape.dims, reals: h.values.map(Double.init)) }
                case .integer(let v): integers[node.output[0]] = v
                }
            } catch { problems.append("node \(node.name) (Constant): \(error)") }
        }
        // What the graph computes from constants alone and Loupe runs no op for (Swin's
        // attention mask), evaluated now: stored tensors from here on.
        let folding = ConstantFolding.fold(graph.node, floats: floats.filter { !placeholders.contains($0.key) }, integers: integers)
        floats.merge(folding.floats) { a, _ in a }
        integers.merge(folding.integers) { a, _ in a }
        // A stored vector that a ScatterND writes into (Swin V2 zeroes the middle third of its qkv
        // bias, with updates sized from shapes): host numbers too, so the write runs on the host.
        for node in graph.node where node.opType == "ScatterND" && !folding.folded.contains(node.output.first ?? "") {
            if let data = node.input.first, let t = floats[data], t.values.count <= 1 << 16, integers[data] == nil {
                integers[data] = HostNumbers(dims: t.shape.dims, reals: t.values.map(Double.init))
            }
        }
        // Identity of a stored tensor (the exporter's constant folding shares equal initializers
        // that way): its output names that tensor, so nodes read the initializer itself.
        var aliases: [String: String] = [:]
        for node in graph.node where node.opType == "Identity" && node.input.count == 1 && node.output.count == 1 {
            let source = aliases[node.input[0]] ?? node.input[0]
            if floats[source] != nil || integers[source] != nil { aliases[node.output[0]] = source }
        }
        let known = Set(floats.keys).union(integers.keys)
        let inputs = graph.input.map(\.name).filter { !known.contains($0) }
        guard inputs.count == 1 else { throw ModelError("\(name): expected one image input, found \(inputs.count) (\(inputs.joined(separator: ", ")))") }
        guard graph.output.count == 1 else { throw ModelError("\(name): expected one output, found \(graph.output.count)") }

        // The batch the graph was traced at: the exporter writes it into reshapes' target shapes.
        let declared = graph.input.first { $0.name == inputs[0] }?.type.tensorType.shape.dim.map { $0.dimValue } ?? []
        let context = ONNXNode.Context(floats: floats, integers: integers, exportBatch: declared.first.flatMap { $0 > 0 ? Int($0) : nil })
        // MatMul by a stored matrix then Add of a stored vector (a linear layer on a tensor of any
        // rank, as ConvNeXt's blocks export): one product with its bias, tapped under the sum.
        var uses: [String: Int] = [:]
        for node in graph.node { for i in node.input { uses[aliases[i] ?? i, default: 0] += 1 } }
        for o in graph.output { uses[o.name, default: 0] += 1 }
        let matmuls = Dictionary(graph.node.filter { $0.opType == "MatMul" && $0.input.count == 2 && $0.output.count == 1 }.map { ($0.output[0], $0) },
                                 uniquingKeysWith: { a, _ in a })
        var biasOf: [String: (bias: String, output: String)] = [:], absorbed: Set<String> = []
        for node in graph.node where node.opType == "Add" && node.input.count == 2 && node.output.count == 1 {
            let ins = node.input.map { aliases[$0] ?? $0 }
            for (product, bias) in [(ins[0], ins[1]), (ins[1], ins[0])] {
                guard let m = matmuls[product], uses[product] == 1, let b = floats[bias], b.shape.rank == 1,
                      let w = floats[aliases[m.input[1]] ?? m.input[1]], w.shape.rank == 2, w.shape[1] == b.shape[0] else { continue }
                biasOf[product] = (bias, node.output[0])
                absorbed.insert(node.output[0])
                break
            }
        }
        var nodes: [ONNXNode] = []
        for var node in graph.node where node.opType != "Constant" && aliases[node.output.first ?? ""] == nil && !absorbed.contains(node.output.first ?? "")
            && !folding.folded.contains(node.output.first ?? "") {
            node.input = node.input.map { aliases[$0] ?? $0 }
            if node.opType == "MatMul", let fused = biasOf[node.output[0]] {
                node.input.append(fused.bias)
                node.output = [fused.output]
            }
            if node.opType == "Split" {
                // A node per output, each one part (an ONNXNode has one output).
                for (k, out) in node.output.enumerated() where !out.isEmpty {
                    var part = node
                    part.opType = "SplitPart"
                    part.output = [out]
                    var index = Onnx_AttributeProto(), count = Onnx_AttributeProto()
                    (index.name, index.type, index.i) = ("part", .int, Int64(k))
                    (count.name, count.type, count.i) = ("parts", .int, Int64(node.output.count))
                    part.attribute += [index, count]
                    do { nodes.append(try ONNXNode(part, context)) } catch {
                        problems.append("node \(node.name.isEmpty ? out : node.name) (Split): \(error)")
                        break
                    }
                }
                continue
            }
            do {
                let made = try ONNXNode(node, context)
                if made.host != nil { context.computedIntegers.insert(made.output) }
                nodes.append(made)
            } catch {
                problems.append("node \(node.name.isEmpty ? node.output.first ?? "?" : node.name) (\(node.opType)): \(error)")
            }
        }
        guard problems.isEmpty else {
            throw ModelError("\(name): \(problems.count) unsupported node(s) or attribute(s):\n  " + problems.joined(separator: "\n  "))
        }
        let weights = floats
        let used = Set(nodes.flatMap(\.parameterNames))
        // Parameters in the order the graph first reads them, each with the layer that does.
        var owners: [String: String] = [:], specs: [ParameterSpec] = []
        for node in nodes {
            for key in node.parameterNames where owners[key] == nil {
                guard let t = weights[key] else { continue }
                owners[key] = node.output
                specs.append(ParameterSpec(name: key, shape: t.shape, role: role(key, t.shape)))
            }
        }
        let modules = ONNXModules.modules(nodes: nodes, scopes: ONNXModules.scopes(graph), floats: Set(floats.keys),
                                          graphOutput: graph.output[0].name)
        let taps = Set(nodes.map(\.output))
        // A node output's own name wins over a module of that name elsewhere.
        let named = modules.filter { !taps.contains($0.name) || $0.name == $0.layer }
        let square = declared.count == 4 && declared[2] > 0 && declared[3] > 0 ? (Int(declared[2]), Int(declared[3])) : nil
        let network = ONNXNetwork(nodes: nodes, input: inputs[0], output: graph.output[0].name, declaredSize: square, specs: specs,
                                  constants: floats.filter { !used.contains($0.key) }, integers: integers,
                                  aliases: Dictionary(grouping: named.filter { $0.name != $0.layer }, by: \.layer).mapValues { $0.map(\.name) })
        // The default CAM layer: the last node output before the head's global pooling (the last
        // one: squeeze-excitation blocks pool too) or, without one, before flattening.
        let pool = nodes.lastIndex { $0.opType == "GlobalAveragePool" || $0.opType == "ReduceMean" }
            ?? nodes.firstIndex { ["Flatten", "Gemm", "Reshape"].contains($0.opType) } ?? nodes.count
        // A Transpose that feeds the pooling (Swin's permute of its [N, H, W, C] map to
        // [N, C, H, W]) is the map in the layout CAMs read.
        let permuted = pool < nodes.count ? nodes[..<pool].last { $0.opType == "Transpose" && nodes[pool].inputs.first == $0.output } : nil
        let last = permuted ?? nodes[..<pool].last { $0.host == nil &&
            ["Conv", "Relu", "Clip", "BatchNormalization", "Add", "Concat", "MaxPool", "LeakyRelu", "HardSwish", "Mul"].contains($0.opType)
        }
        // A vision transformer (attention's Softmax, no global pooling): the last block's first
        // layer norm, the tokens pytorch-grad-cam's ViT example reads (laid out on their grid).
        let attention = nodes.lastIndex { $0.opType == "Softmax" }
        let tokens = nodes.contains { $0.opType == "GlobalAveragePool" || $0.opType == "ReduceMean" } ? nil
            : attention.flatMap { a in nodes[..<a].last { $0.opType == "LayerNormalization" } }
        // A segmentation (a declared [N, classes, H, W] output) whose modules include a
        // backbone: the backbone's output (its last, where it has several, as LR-ASPP's), the
        // layer pytorch-grad-cam's segmentation tutorial reads; the head's pooled branches
        // (DeepLabV3's ASPP pooling) say nothing of where.
        let isDense = graph.output[0].type.tensorType.shape.dim.count == 4
        let backbone = isDense ? named.first { $0.name == "backbone" || $0.name.hasSuffix(".backbone") } : nil
        // Named as torch names the outermost module whose output it is, where the file says.
        let camLayer = backbone?.layer ?? tokens?.output ?? last?.output ?? inputs[0]
        var arch = Architecture(name: name, body: [network], inputTransform: nil,
                                lastConvLayer: backbone?.name ?? named.first { $0.layer == camLayer }?.name ?? camLayer)
        arch.parameterLayers = owners
        arch.modules = named
        if declared.count == 4, declared[2] > 0, declared[2] == declared[3], declared[2] <= 16384 { arch.inputSize = Int(declared[2]) }
        arch.isDense = isDense
        // A stored reshape target that does not lead with the traced batch (nor 0 or -1) has
        // the batch folded into another dimension, and a stored Resize size holds the batch
        // itself (the dynamo exporter's upsampling): the graph runs at that batch only.
        if let batch = context.exportBatch, graph.node.contains(where: { n in
            (n.opType == "Reshape" && n.input.count > 1 && !context.isInteger(aliases[n.input[0]] ?? n.input[0])
                && (integers[aliases[n.input[1]] ?? n.input[1]]?.values.first).map { ![Int64(batch), 0, -1].contains($0) } == true)
                || (n.opType == "Resize" && n.input.count > 3 && !n.input[3].isEmpty && integers[aliases[n.input[3]] ?? n.input[3]] != nil)
        }) {
            arch.maxBatch = batch
        }
        return (arch, weights.filter { used.contains($0.key) })
    }

    /// `graph` with every name a message or a layer list may show made `printable` (nodes, their
    /// ops, domains, attributes, inputs and outputs; initializers; the graph's inputs and
    /// outputs): a name is
    /// then the same in every message, in `loupe layers` and in what `--layer` takes.
    static func printableNames(_ graph: Onnx_GraphProto) -> Onnx_GraphProto {
        var graph = graph
        for i in graph.node.indices {
            graph.node[i].name = printable(graph.node[i].name)
            graph.node[i].opType = printable(graph.node[i].opType)
            graph.node[i].domain = printable(graph.node[i].domain)
            graph.node[i].input = graph.node[i].input.map(printable)
            graph.node[i].output = graph.node[i].output.map(printable)
            for j in graph.node[i].attribute.indices { graph.node[i].attribute[j].name = printable(graph.node[i].attribute[j].name) }
        }
        for i in graph.initializer.indices { graph.initializer[i].name = printable(graph.initializer[i].name) }
        for i in graph.input.indices { graph.input[i].name = printable(graph.input[i].name) }
        for i in graph.output.indices { graph.output[i].name = printable(graph.output[i].name) }
        return graph
    }

    /// SeededWeights' role by torchvision's naming (and rank, for the exporter's onnx::Conv_N
    /// names), for random weights of the same graph.
    static func role(_ name: String, _ shape: Shape) -> ParameterSpec.Role {
        if name.hasSuffix("running_var") || (name.hasSuffix("weight") && shape.rank == 1) { return .bnVariance }
        if name.hasSuffix("bias") || name.hasSuffix("running_mean") || shape.rank <= 1 { return .bias(fanIn: 1) }
        return .weight(fanIn: Swift.max(shape.count / Swift.max(shape[0], 1), 1))
    }

    enum Values { case float(HostTensor), integer(HostNumbers) }

    /// `t` with its external data (ONNX's `location`, `offset`, `length` keys) read into
    /// `rawData`: a file in `folder` named without any folder part, the range inside the file.
    /// Each data file is mapped once per load (`files`), not opened per tensor.
    static func inlined(_ t: Onnx_TensorProto, folder: URL?, files: inout [String: Data]) throws -> Onnx_TensorProto {
        guard t.dataLocation == .external else { return t }
        guard let folder else { throw ModelError("external data is not supported here (no model folder)") }
        let entries = Dictionary(t.externalData.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        guard let location = entries["location"], !location.isEmpty, !location.contains("/"), !location.contains("\\"),
              location != ".", location != ".." else {
            throw ModelError("external data location \(entries["location"] ?? "(none)") must be a file name beside the model")
        }
        guard let offset = Int(entries["offset"] ?? "0"), offset >= 0 else { throw ModelError("bad external data offset \(entries["offset"] ?? "")") }
        if files[location] == nil {
            let url = try externalDataFile(location, in: folder)
            do { files[location] = try Data(contentsOf: url, options: .alwaysMapped) } catch {
                throw ModelError("cannot open its external data file \(location)")
            }
        }
        let data = files[location]!, size = data.count
        let length = Int(entries["length"] ?? "") ?? (size - offset)
        guard length >= 0, offset <= size, length <= size - offset, length <= 1 << 29 else {
            throw ModelError("external data \(location) [\(offset), +\(length)) is outside its \(size) bytes")
        }
        let bytes = data.subdata(in: (data.startIndex + offset)..<(data.startIndex + offset + length))
        var copy = t
        copy.dataLocation = .default
        copy.externalData = []
        copy.rawData = bytes
        return copy
    }

    /// The external data file `location` of a model in `folder`, its links resolved: it must be a
    /// regular file whose real path lies in the model's (real) folder, so a link beside the model
    /// cannot read a file elsewhere, and a FIFO or device cannot block or stream forever.
    static func externalDataFile(_ location: String, in folder: URL) throws -> URL {
        let realFolder = folder.resolvingSymlinksInPath().standardizedFileURL
        let real = folder.appendingPathComponent(location).resolvingSymlinksInPath().standardizedFileURL
        guard real.deletingLastPathComponent().path == realFolder.path else {
            throw ModelError("external data \(location) is a link to \(real.path), outside the model's folder: refused")
        }
        var info = stat()
        guard stat(real.path, &info) == 0 else { throw ModelError("cannot open its external data file \(location)") }
        guard info.st_mode & S_IFMT == S_IFREG else { throw ModelError("external data \(location) is not a regular file") }
        return real
    }

    static func tensorValues(_ t: Onnx_TensorProto) throws -> Values {
        guard t.dataLocation != .external else { throw ModelError("external data is not supported") }
        let dims = t.dims.map { Int($0) }
        guard dims.allSatisfy({ $0 >= 0 && $0 < 1 << 31 }) else { throw ModelError("bad dimensions \(t.dims)") }
        let count = dims.reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }
        guard count <= 1 << 27 else { throw ModelError("a tensor of \(t.dims) is too large") }
        switch t.dataType {
        case Int32(Onnx_TensorProto.DataType.float.rawValue):
            var values = t.floatData
            if values.isEmpty, !t.rawData.isEmpty {
                guard t.rawData.count == count * 4 else { throw ModelError("\(t.rawData.count) bytes for \(count) floats") }
                values = t.rawData.withUnsafeBytes { raw in (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) } }
            }
            guard values.count == count else { throw ModelError("\(values.count) values for dimensions \(t.dims)") }
            return .float(HostTensor(shape: Shape(dims), values: values))
        case Int32(Onnx_TensorProto.DataType.int64.rawValue):
            var values = t.int64Data
            if values.isEmpty, !t.rawData.isEmpty {
                guard t.rawData.count == count * 8 else { throw ModelError("\(t.rawData.count) bytes for \(count) int64 values") }
                values = t.rawData.withUnsafeBytes { raw in (0..<count).map { Int64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) } }
            }
            guard values.count == count else { throw ModelError("\(values.count) values for dimensions \(t.dims)") }
            return .integer(HostNumbers(dims: dims, values: values))
        default:
            throw ModelError("data type \(t.dataType) is not supported (float32 and int64 only)")
        }
    }
}

/// The graph's nodes as one module: runs them in order, tapping each output by its name.
struct ONNXNetwork: Module {
    let nodes: [ONNXNode]
    let input: String
    let output: String
    /// The input's height and width as the file declares them, when it fixes them.
    let declaredSize: (Int, Int)?
    let specs: [ParameterSpec]
    /// Float constants that are not weights (Constant nodes, scalars), kept on the host.
    let constants: [String: HostTensor]
    /// Stored integer tensors (shapes, axes, indices), the host nodes' first operands.
    let integers: [String: HostNumbers]
    /// The torch module names of node outputs (`ONNXModules`), tapped as their aliases.
    let aliases: [String: [String]]
    var name: String { "" }
    var kind: String { "ONNX" }
    var parameters: [ParameterSpec] { specs }

    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        let shape = g.shape(x)
        guard let (h, w) = declaredSize, shape.rank == 4, (shape[2], shape[3]) != (h, w) else { return try run(g, x, p) }
        // At another size than the file declares: the graph may still run (a network with global
        // pooling), and where it cannot, the error says which size it takes.
        do { return try run(g, x, p) } catch let error as ModelError {
            throw ModelError("\(error.description) (the file declares \(h)x\(w) inputs, this pass is \(shape[2])x\(shape[3]): run it at \(h)x\(w), e.g. --crop \(h))")
        }
    }

    private func run(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        var values: [String: Graph.Value] = [input: x]
        var integers = self.integers
        for node in nodes {
            if g.stopped { break }
            let operands = Operands(values: node.inputs.map { values[$0] }, integers: node.inputs.map { integers[$0] }, batch: g.shape(x)[0])
            if let host = node.host {
                integers[node.output] = try named(node) { try host(g, operands) }
                continue
            }
            let y = try named(node) { try node.run(g, operands, p) }
            values[node.output] = try g.tap(node.output, y, kind: node.opType, aliases: aliases[node.output] ?? [])
        }
        guard let y = values[output] else {
            if g.stopped, let last = nodes.last(where: { values[$0.output] != nil }) { return values[last.output]! }
            throw ModelError("the ONNX graph never computes its output \(output)")
        }
        return y
    }
}

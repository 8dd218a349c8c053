import Backend
import Foundation
import Graph
import SwiftProtobuf

/// ONNX import: a `.onnx` file (opsets 11 to 20) becomes an `Architecture` whose one module runs
/// the file's nodes in order on the Graph, and whose parameters are the file's float
/// initializers, under their names. Every node's output is tapped under its output name, so
/// `loupe layers` lists them and `--layer` takes them. Every unsupported op or attribute is
/// reported, with each offending node's name and op type, in one error before anything runs.
public enum ONNXImport {
    public static let opsets = 11...20

    /// The architecture and its weights from a serialized ModelProto.
    /// Tensors stored outside the file (external data, as the dynamo exporter writes them) are
    /// read from the file they name in `folder` (the model file's folder; nil refuses them).
    public static func load(bytes: [UInt8], name: String, weightsRequired: Bool = true, folder: URL? = nil) throws -> (Architecture, [String: HostTensor]) {
        let model: Onnx_ModelProto
        do { model = try Onnx_ModelProto(serializedBytes: bytes) } catch {
            throw ModelError("\(name): not a readable ONNX model (\(error))")
        }
        guard model.hasGraph else { throw ModelError("\(name): the ONNX model has no graph") }
        let opset = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version ?? 0
        guard opsets.contains(Int(opset)) else {
            throw ModelError("\(name): ONNX opset \(opset) is not supported (opsets \(opsets.lowerBound) to \(opsets.upperBound))")
        }
        let graph = model.graph
        var floats: [String: HostTensor] = [:], integers: [String: HostNumbers] = [:]
        var problems: [String] = []
        var externalFiles: [String: Data] = [:]
        for t in graph.initializer {
            do {
                if !weightsRequired, t.dataType == Int32(Onnx_TensorProto.DataType.float.rawValue), t.floatData.isEmpty, t.rawData.isEmpty, !t.dims.isEmpty {
                    let dims = t.dims.map { Int($0) }
                    guard dims.allSatisfy({ $0 > 0 && $0 < 1 << 24 }), dims.reduce(1, *) <= 1 << 27 else { throw ModelError("bad dimensions \(t.dims)") }
                    floats[t.name] = HostTensor(shape: Shape(dims), values: [Float](repeating: 0, count: dims.reduce(1, *)))
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
        for var node in graph.node where node.opType != "Constant" && aliases[node.output.first ?? ""] == nil && !absorbed.contains(node.output.first ?? "") {
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
        let specs = weights.filter { used.contains($0.key) }.map { key, t in
            ParameterSpec(name: key, shape: t.shape, role: role(key, t.shape))
        }.sorted { $0.name < $1.name }
        let network = ONNXNetwork(nodes: nodes, input: inputs[0], output: graph.output[0].name, specs: specs,
                                  constants: floats.filter { !used.contains($0.key) }, integers: integers)
        // The default CAM layer: the last node output before the head's global pooling (the last
        // one: squeeze-excitation blocks pool too) or, without one, before flattening.
        let pool = nodes.lastIndex { $0.opType == "GlobalAveragePool" || $0.opType == "ReduceMean" }
            ?? nodes.firstIndex { ["Flatten", "Gemm", "Reshape"].contains($0.opType) } ?? nodes.count
        let last = nodes[..<pool].last { $0.host == nil &&
            ["Conv", "Relu", "Clip", "BatchNormalization", "Add", "Concat", "MaxPool", "LeakyRelu", "HardSwish", "Mul"].contains($0.opType)
        }
        // A vision transformer (attention's Softmax, no global pooling): the last block's first
        // layer norm, the tokens pytorch-grad-cam's ViT example reads (laid out on their grid).
        let attention = nodes.lastIndex { $0.opType == "Softmax" }
        let tokens = nodes.contains { $0.opType == "GlobalAveragePool" || $0.opType == "ReduceMean" } ? nil
            : attention.flatMap { a in nodes[..<a].last { $0.opType == "LayerNormalization" } }
        var arch = Architecture(name: name, body: [network], inputTransform: nil, lastConvLayer: tokens?.output ?? last?.output ?? inputs[0])
        // A stored reshape target that does not lead with the traced batch (nor 0 or -1) has
        // the batch folded into another dimension: the graph runs at that batch only.
        if let batch = context.exportBatch, graph.node.contains(where: { n in
            n.opType == "Reshape" && n.input.count > 1 && !context.isInteger(aliases[n.input[0]] ?? n.input[0])
                && (integers[aliases[n.input[1]] ?? n.input[1]]?.values.first).map { ![Int64(batch), 0, -1].contains($0) } == true
        }) {
            arch.maxBatch = batch
        }
        return (arch, weights.filter { used.contains($0.key) })
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
            do { files[location] = try Data(contentsOf: folder.appendingPathComponent(location), options: .alwaysMapped) } catch {
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

/// A small tensor held on the host: a shape, indices, or arithmetic on them (integers), or a
/// number computed from shapes (reals: ViT's attention scale 1 / sqrt(sqrt(head size))).
struct HostNumbers: Sendable, Equatable {
    var dims: [Int]
    var values: [Int64]
    /// Set for real-valued numbers (then `values` holds them truncated).
    var reals: [Double]?
    init(dims: [Int], values: [Int64]) { self.dims = dims; self.values = values }
    init(vector: [Int64]) { self.init(dims: [vector.count], values: vector) }
    init(dims: [Int], reals: [Double]) {
        self.dims = dims
        self.values = reals.map { $0.isFinite && abs($0) < 9e18 ? Int64($0) : 0 }
        self.reals = reals
    }
    var asReals: [Double] { reals ?? values.map(Double.init) }
    /// The elements at `indices`, in these dimensions, reals kept real.
    func picking(_ indices: [Int], dims: [Int]) -> HostNumbers {
        if let reals { return HostNumbers(dims: dims, reals: indices.map { reals[$0] }) }
        return HostNumbers(dims: dims, values: indices.map { values[$0] })
    }
    func reshaped(_ dims: [Int]) -> HostNumbers { var c = self; c.dims = dims; return c }
}

/// A node's inputs at run time: each one a graph value (a tensor), an integer tensor on the
/// host (a stored constant, or computed in this pass from shapes), or absent.
struct Operands {
    let values: [Graph.Value?]
    let integers: [HostNumbers?]
    /// The batch of this pass (the network input's first dimension).
    let batch: Int
}

/// One node, checked and with its attributes read, ready to run. A node whose inputs are all
/// integer tensors on the host (the exporter's shape subgraphs: Shape, Gather, arithmetic,
/// Concat, Unsqueeze, Cast of shapes) runs on the host (`host`) in every pass, from the real
/// shapes of that pass, so reshapes and slices get their operands at any image size and batch.
struct ONNXNode: Sendable {
    /// What nodes are checked against: stored tensors, and the names that hold integers.
    final class Context {
        let floats: [String: HostTensor]
        let integers: [String: HostNumbers]
        let exportBatch: Int?
        /// Outputs of host nodes so far (nodes come in topological order).
        var computedIntegers: Set<String> = []
        init(floats: [String: HostTensor], integers: [String: HostNumbers], exportBatch: Int?) {
            self.floats = floats; self.integers = integers; self.exportBatch = exportBatch
        }
        func isInteger(_ name: String) -> Bool { integers[name] != nil || computedIntegers.contains(name) }
    }

    let opType: String
    let inputs: [String]
    let output: String
    var run: @Sendable (Graph, Operands, ParameterStore) throws -> Graph.Value = { _, _, _ in throw ModelError("not a tensor op") }
    /// Set for nodes computed on the host from integer inputs (and shapes).
    var host: (@Sendable (Graph, Operands) throws -> HostNumbers)?
    var parameterNames: [String] = []

    init(_ node: Onnx_NodeProto, _ context: Context) throws {
        let floats = context.floats
        opType = node.opType
        inputs = node.input
        guard let out = node.output.first else { throw ModelError("no output") }
        output = out
        let attributes = Dictionary(node.attribute.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func ints(_ name: String) -> [Int]? { attributes[name].map { $0.ints.map { Int($0) } } }
        func int(_ name: String, _ fallback: Int) -> Int { attributes[name].map { Int($0.i) } ?? fallback }
        func float(_ name: String, _ fallback: Float) -> Float { attributes[name].map { $0.f } ?? fallback }
        func only(_ allowed: Set<String>) throws {
            let extra = Set(attributes.keys).subtracting(allowed)
            guard extra.isEmpty else { throw ModelError("unsupported attribute(s) \(extra.sorted().joined(separator: ", "))") }
        }
        func param(_ i: Int) -> String? { i < node.input.count && floats[node.input[i]] != nil ? node.input[i] : nil }
        func scalar(_ i: Int) -> Float? {
            guard i < node.input.count, !node.input[i].isEmpty, let t = floats[node.input[i]], t.values.count == 1 else { return nil }
            return t.values[0]
        }
        /// A stored integer input (constant at load time).
        func stored(_ i: Int) -> [Int64]? { i < node.input.count ? context.integers[node.input[i]]?.values : nil }
        /// Whether input i holds integers (stored, or computed from shapes in each pass).
        func integral(_ i: Int) -> Bool { i < node.input.count && !node.input[i].isEmpty && context.isInteger(node.input[i]) }
        /// ONNX's 2-D pads [top, left, bottom, right].
        func pads() throws -> [Int] {
            if let mode = attributes["auto_pad"], !mode.s.isEmpty, String(decoding: mode.s, as: UTF8.self) != "NOTSET" {
                throw ModelError("auto_pad \(String(decoding: mode.s, as: UTF8.self)) is not supported")
            }
            let pads = ints("pads") ?? [0, 0, 0, 0]
            guard pads.count == 4, pads.allSatisfy({ $0 >= 0 }) else { throw ModelError("pads \(pads): only 2-D, not negative") }
            return pads
        }
        /// Symmetric 2-D padding from ONNX's [top, left, bottom, right].
        func padding() throws -> (Int, Int) {
            let pads = try pads()
            guard pads[0] == pads[2], pads[1] == pads[3] else { throw ModelError("asymmetric pads \(pads)") }
            return (pads[0], pads[1])
        }
        func pair(_ name: String, _ fallback: Int) throws -> (Int, Int) {
            let v = ints(name) ?? [fallback, fallback]
            guard v.count == 2 else { throw ModelError("\(name) \(v): only 2-D is supported") }
            return (v[0], v[1])
        }

        if node.opType == "Shape", let stored = param(0) {
            // The shape of a stored tensor (the legacy exporter's class token under dynamic axes).
            try only(["start", "end"])
            let (dims, start, end) = (floats[stored]!.shape.dims, int("start", 0), int("end", Int.max))
            host = { _, _ in shapeSlice(dims, start: start, end: end) }
            return
        }
        let present = node.input.indices.filter { !node.input[$0].isEmpty }
        if node.opType == "Shape" || (!present.isEmpty && present.allSatisfy(integral) && ONNXNode.hostOps.contains(node.opType)) {
            host = try ONNXNode.hostOp(node.opType, ints: ints, int: int, only: only, tensor: attributes["value"].flatMap { $0.hasT ? $0.t : nil })
            return
        }

        switch node.opType {
        case "Conv":
            try only(["kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"])
            guard let w = param(1) else { throw ModelError("the weight must be an initializer") }
            let bias = param(2), pads = try pads()
            // Asymmetric pads (TensorFlow's "same" padding at stride 2) as zeros added first.
            let symmetric = pads[0] == pads[2] && pads[1] == pads[3]
            let p = Conv2DParams(stride: try pair("strides", 1), padding: symmetric ? (pads[0], pads[1]) : (0, 0), dilation: try pair("dilations", 1), groups: int("group", 1))
            parameterNames = [w] + (bias.map { [$0] } ?? [])
            run = { g, x, ps in
                let input = symmetric ? try value(x, 0) : try zeroPadded(g, try value(x, 0), pads)
                return try g.conv2d(input, weight: g.parameter(try ps(w)), bias: try bias.map { g.parameter(try ps($0)) }, p)
            }
        case "Relu":
            try only([])
            run = { g, x, _ in try g.activation(try value(x, 0), .relu) }
        case "Clip":
            try only(["min", "max"])
            let lo = scalar(1) ?? attributes["min"]?.f ?? -.infinity, hi = scalar(2) ?? attributes["max"]?.f ?? .infinity
            if lo == 0 && hi == 6 { run = { g, x, _ in try g.activation(try value(x, 0), .relu6) } }
            else if lo == 0 && hi == .infinity { run = { g, x, _ in try g.activation(try value(x, 0), .relu) } }
            else { throw ModelError("Clip to [\(lo), \(hi)]: only [0, 6] (ReLU6) and [0, inf) (ReLU) are supported") }
        case "LeakyRelu":
            try only(["alpha"])
            let alpha = float("alpha", 0.01)
            // max(x, 0) - alpha * max(-x, 0)
            run = { g, x, _ in try g.add(try g.activation(try value(x, 0), .relu), try g.scale(try g.activation(try g.scale(try value(x, 0), -1), .relu), -alpha)) }
        case "Sigmoid":
            try only([])
            run = { g, x, _ in try g.pointwise(try value(x, 0), .sigmoid) }
        case "HardSigmoid":
            try only(["alpha", "beta"])
            let (alpha, beta) = (float("alpha", 0.2), float("beta", 0.5))
            guard abs(alpha - 1 / 6) < 1e-6, beta == 0.5 else {
                throw ModelError("HardSigmoid with alpha \(alpha), beta \(beta): only alpha 1/6, beta 1/2 (torch.nn.Hardsigmoid)")
            }
            run = { g, x, _ in try g.pointwise(try value(x, 0), .hardSigmoid) }
        case "HardSwish":
            try only([])
            run = { g, x, _ in try g.pointwise(try value(x, 0), .hardSwish) }
        case "MaxPool", "AveragePool":
            try only(["kernel_shape", "strides", "pads", "ceil_mode", "auto_pad", "count_include_pad", "dilations", "storage_order"])
            guard (ints("dilations") ?? [1, 1]).allSatisfy({ $0 == 1 }), int("storage_order", 0) == 0 else { throw ModelError("dilated pooling is not supported") }
            let (kh, kw) = try pair("kernel_shape", 1), (sh, sw) = try pair("strides", 1), (ph, pw) = try padding()
            guard kh == kw, sh == sw, ph == pw else { throw ModelError("non-square pooling windows are not supported") }
            let p = Pool2DParams(kernel: kh, stride: sh, padding: ph, ceilMode: int("ceil_mode", 0) == 1, countIncludePad: int("count_include_pad", 0) == 1)
            if node.opType == "MaxPool" {
                run = { g, x, _ in try g.maxPool2d(try value(x, 0), p) }
            } else {
                run = { g, x, _ in try g.avgPool2d(try value(x, 0), p) }
            }
        case "GlobalAveragePool":
            try only([])
            run = { g, x, _ in try g.adaptiveAvgPool2d(try value(x, 0), outputSize: (1, 1)) }
        case "ReduceMean":
            // The mean over an image's rows and columns (the dynamo exporter's global pooling).
            try only(["axes", "keepdims", "noop_with_empty_axes"])
            guard let axes = (node.input.count > 1 && !node.input[1].isEmpty ? stored(1) : nil) ?? attributes["axes"]?.ints,
                  Set(axes.map { $0 < 0 ? $0 + 4 : $0 }) == [2, 3] else {
                throw ModelError("only the mean over axes 2 and 3 (height and width) of an image tensor is supported")
            }
            let keep = int("keepdims", 1) == 1
            run = { g, x, _ in
                let v = try value(x, 0)
                guard g.shape(v).rank == 4 else { throw ModelError("ReduceMean over axes 2, 3 of a rank-\(g.shape(v).rank) tensor") }
                let pooled = try g.adaptiveAvgPool2d(v, outputSize: (1, 1))
                return keep ? pooled : try g.flatten(pooled)
            }
        case "BatchNormalization":
            try only(["epsilon", "momentum", "training_mode"])
            guard int("training_mode", 0) == 0 else { throw ModelError("training_mode 1 is not supported") }
            guard let s = param(1), let b = param(2), let m = param(3), let v = param(4) else { throw ModelError("scale, bias, mean and variance must be initializers") }
            let eps = float("epsilon", 1e-5)
            parameterNames = [s, b, m, v]
            run = { g, x, ps in try g.batchNorm2d(try value(x, 0), BatchNormParams(gamma: try ps(s), beta: try ps(b), mean: try ps(m), variance: try ps(v), eps: eps)) }
        case "Gemm":
            try only(["alpha", "beta", "transA", "transB"])
            guard float("alpha", 1) == 1, float("beta", 1) == 1, int("transA", 0) == 0 else { throw ModelError("only alpha = beta = 1 and transA = 0 are supported") }
            guard let w = param(1) else { throw ModelError("B must be an initializer") }
            let bias = param(2)
            let transposed = int("transB", 0) == 0
            parameterNames = [w] + (bias.map { [$0] } ?? [])
            run = { g, x, ps in
                let weight = transposed ? try transposedWeight(g, ps, w) : try ps(w)
                return try g.linear(try value(x, 0), weight: g.parameter(weight), bias: try bias.map { g.parameter(try ps($0)) })
            }
        case "MatMul" where param(1) == nil && param(0) == nil:
            // Two computed tensors (attention): one product per leading index.
            try only([])
            run = { g, x, _ in try g.batchedMatMul(try value(x, 0), try value(x, 1)) }
        case "MatMul":
            try only([])
            guard let w = param(1), floats[w]!.shape.rank == 2 else { throw ModelError("only a product with a 2-D initializer is supported") }
            // A third input is the bias of an Add the importer fused into this product.
            let bias = param(2)
            parameterNames = [w] + (bias.map { [$0] } ?? [])
            run = { g, x, ps in
                // [..., K] x [K, N]: the rows of every leading dimension at once.
                let v = try value(x, 0)
                let s = g.shape(v)
                let weight = g.parameter(try transposedWeight(g, ps, w)), b = try bias.map { g.parameter(try ps($0)) }
                if s.rank == 2 { return try g.linear(v, weight: weight, bias: b) }
                guard s.rank > 2, let k = s.dims.last else { throw ModelError("MatMul of \(s) by a matrix") }
                let y = try g.linear(try g.reshape(v, [s.count / k, k]), weight: weight, bias: b)
                return try g.reshape(y, Shape(s.dims.dropLast() + [g.shape(y)[1]]))
            }
        case "Add", "Sub", "Mul", "Div":
            try only([])
            let op = node.opType
            // A stored operand may come first (the exporter writes bias + x, scale * x).
            let constantFirst = param(0) != nil && param(1) == nil
            if let c = scalar(constantFirst ? 0 : 1) {
                let (scaleBy, offsetBy): (Float, Float) = switch (op, constantFirst) {
                case ("Add", _): (1, c)
                case ("Sub", false): (1, -c)
                case ("Sub", true): (-1, c)
                case ("Mul", _): (c, 0)
                case ("Div", false): (1 / c, 0)
                default: (.nan, .nan)
                }
                guard !scaleBy.isNaN else { throw ModelError("dividing a constant by a computed tensor is not supported") }
                let i = constantFirst ? 1 : 0
                run = { g, x, _ in
                    var y = try value(x, i)
                    if scaleBy != 1 { y = try g.scale(y, scaleBy) }
                    return offsetBy != 0 ? try g.pointwise(y, .offset(offsetBy)) : y
                }
            } else if let c = param(constantFirst ? 0 : 1), floats[c]!.shape.dims.filter({ $0 != 1 }).count > 1 {
                // A stored tensor over x's trailing dimensions (ViT's position embedding
                // [1, 197, 768]): the same tensor for every image of the batch, a weight.
                guard op == "Add" || op == "Mul" else { throw ModelError("\(op) with a stored tensor of shape \(floats[c]!.shape): only Add and Mul") }
                let (i, t) = (constantFirst ? 1 : 0, floats[c]!)
                parameterNames = [c]
                run = { g, x, ps in
                    let v = try value(x, i)
                    let s = g.shape(v)
                    let lead = t.shape.dims.prefix { $0 == 1 }.count, trailing = Array(t.shape.dims.dropFirst(lead))
                    guard s.rank >= trailing.count, Array(s.dims.suffix(trailing.count)) == trailing else {
                        throw ModelError("\(op) of \(s) and a stored tensor of shape \(t.shape)")
                    }
                    let perImage = s.dims.dropFirst().reduce(1, *), w = try ps(c)
                    guard trailing.reduce(1, *) == perImage else { throw ModelError("\(op) of \(s) and a stored tensor of shape \(t.shape): only one per image") }
                    let one = g.parameter(Tensor(shape: Shape([1] + s.dims.dropFirst()), storage: w.storage))
                    let all = try repeated(g, one, s[0])
                    return op == "Add" ? try g.add(v, all) : try g.mul(v, all)
                }
            } else if let c = param(constantFirst ? 0 : 1) {
                // A stored tensor broadcast along one dimension of x (a bias on the last axis, a
                // per-channel scale [C, 1, 1]): an affine map along that axis, its values weights.
                let t = floats[c]!
                let along = t.shape.dims.indices.filter { t.shape[$0] != 1 }
                guard op != "Div" || !constantFirst else { throw ModelError("dividing a constant by a computed tensor is not supported") }
                let (i, rank, k) = (constantFirst ? 1 : 0, t.shape.rank, along.first ?? t.shape.rank - 1)
                parameterNames = [c]
                run = { g, x, ps in
                    let v = try value(x, i)
                    let axis = g.shape(v).rank - rank + k
                    guard axis >= 0, g.shape(v).rank >= rank, g.shape(v)[axis] == t.shape.count else {
                        throw ModelError("\(op) of \(g.shape(v)) and a stored tensor of shape \(t.shape)")
                    }
                    let w = op == "Div" ? try ps.derived(c + " reciprocal") {
                        try g.backend.tensor(try g.backend.values(try ps(c)).map { 1 / $0 }, [t.shape.count])
                    } : try ps(c)
                    switch (op, constantFirst) {
                    case ("Add", _): return try g.axisAffine(v, axis: axis, scale: nil, shift: w)
                    case ("Sub", false): return try g.axisAffine(v, axis: axis, scale: nil, shift: try g.backend.scale(w, -1))
                    case ("Sub", true): return try g.axisAffine(try g.scale(v, -1), axis: axis, scale: nil, shift: w)
                    default: return try g.axisAffine(v, axis: axis, scale: w, shift: nil)
                    }
                }
            } else if integral(0) || integral(1) {
                // A number computed from shapes in this pass (ViT's attention scale).
                let (i, k) = integral(1) ? (0, 1) : (1, 0)
                guard op != "Div" || k == 1, op != "Sub" || k == 1 else { throw ModelError("\(op) of a number by a computed tensor is not supported") }
                run = { g, x, _ in
                    let n = try integers(x, k).asReals
                    guard n.count == 1 else { throw ModelError("\(op) of a tensor and \(n.count) numbers: only one") }
                    let c = Float(n[0]), v = try value(x, i)
                    switch op {
                    case "Add": return try g.pointwise(v, .offset(c))
                    case "Sub": return try g.pointwise(v, .offset(-c))
                    case "Mul": return try g.scale(v, c)
                    default: return try g.scale(v, 1 / c)
                    }
                }
            } else {
                switch op {
                case "Add": run = { g, x, _ in let (a, b) = try matched(g, try value(x, 0), try value(x, 1), op); return try g.add(a, b) }
                case "Sub": run = { g, x, _ in let (a, b) = try matched(g, try value(x, 0), try value(x, 1), op); return try g.add(a, try g.scale(b, -1)) }
                case "Mul": run = { g, x, _ in let (a, b) = try matched(g, try value(x, 0), try value(x, 1), op); return try g.mul(a, b) }
                default: throw ModelError("division of two computed tensors is not supported")
                }
            }
        case "Concat":
            // Stored parts (the dynamo exporter's class token, already expanded to the traced
            // batch) join as parameters, repeated to this pass's batch when they lead with it.
            try only(["axis"])
            let axis = int("axis", 1), storedParts = node.input.indices.map { param($0) }, exportBatch = context.exportBatch
            parameterNames = storedParts.compactMap { $0 }
            run = { g, x, ps in
                let parts = try storedParts.indices.compactMap { i -> Graph.Value? in
                    guard let name = storedParts[i] else { return i < x.values.count ? x.values[i] : nil }
                    let p = g.parameter(try ps(name))
                    let rank = g.shape(p).rank
                    guard let e = exportBatch, x.batch != e, rank > 1, g.shape(p)[0] == e, e == 1, axis != 0, axis != -rank else { return p }
                    return try repeated(g, p, x.batch)
                }
                guard let first = parts.first else { throw ModelError("nothing to concatenate") }
                let rank = g.shape(first).rank
                let a = axis < 0 ? axis + rank : axis
                guard a >= 0, a < rank else { throw ModelError("concatenation along axis \(axis) of a rank-\(rank) tensor") }
                if rank == 4, a == 1 { return try g.concat(parts) }
                // Along any axis: each part viewed as [outer, size, inner, 1], joined on dimension 1.
                let views = try parts.map { p -> Graph.Value in
                    let s = g.shape(p)
                    guard s.rank == rank else { throw ModelError("concatenation of tensors of ranks \(rank) and \(s.rank)") }
                    return try g.reshape(p, [s.dims[..<a].reduce(1, *), s[a], s.dims[(a + 1)...].reduce(1, *), 1])
                }
                var dims = g.shape(first).dims
                dims[a] = parts.reduce(0) { $0 + g.shape($1)[a] }
                return try g.reshape(try g.concat(views), Shape(dims))
            }
        case "Flatten":
            try only(["axis"])
            guard int("axis", 1) == 1 else { throw ModelError("flatten from axis \(int("axis", 1)): only axis 1") }
            run = { g, x, _ in try g.flatten(try value(x, 0)) }
        case "Reshape":
            try only(["allowzero"])
            guard integral(1) else { throw ModelError("the shape must be a constant or computed from shapes") }
            let exportBatch = context.exportBatch
            run = { g, x, _ in
                let old = g.shape(try value(x, 0))
                let target = try integers(x, 1).values
                var dims = reshapeTarget(target, of: old.dims)
                // The exporter writes the batch it traced with into target shapes; the graph runs
                // at any batch, so a leading dimension equal to that batch becomes this pass's.
                if dims.reduce(1, *) != old.count, let b = exportBatch, old.rank > 0, b != old[0], target.first == Int64(b) {
                    var rebatched = target
                    rebatched[0] = Int64(old[0])
                    dims = reshapeTarget(rebatched, of: old.dims)
                }
                guard dims.allSatisfy({ $0 >= 0 }), dims.reduce(1, *) == old.count else {
                    throw ModelError("cannot reshape \(old) to \(target): the graph fixed this shape when it was exported; run it at the batch and input size it was exported at")
                }
                return try g.reshape(try value(x, 0), Shape(dims))
            }
        case "Transpose":
            try only(["perm"])
            let perm = ints("perm")
            run = { g, x, _ in
                let v = try value(x, 0)
                return try g.permute(v, perm ?? Array((0..<g.shape(v).rank).reversed()))
            }
        case "Pad":
            try only(["mode"])
            if let mode = attributes["mode"], String(decoding: mode.s, as: UTF8.self) != "constant" { throw ModelError("only constant padding is supported") }
            guard node.input.count > 1, let pads = stored(1), pads.count == 8, pads.allSatisfy({ $0 >= 0 }),
                  pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else {
                throw ModelError("only constant, non-negative pads of rows and columns are supported")
            }
            guard node.input.count < 4 || node.input[3].isEmpty else { throw ModelError("pads along chosen axes are not supported") }
            guard (scalar(2) ?? 0) == 0 else { throw ModelError("only zero padding is supported") }
            let spatial = [pads[2], pads[3], pads[6], pads[7]].map { Int($0) }
            run = { g, x, _ in try zeroPadded(g, try value(x, 0), spatial) }
        case "Gather" where node.input.count > 1 && (stored(1)?.count ?? 0) > 1:
            // Constant indices that run through consecutive elements (the dynamo exporter's
            // as_strided after a global pooling gathers 0..<C of a flattened tensor): that range,
            // laid out in the indices' shape.
            try only(["axis"])
            let index = stored(1)!, dims = context.integers[node.input[1]]!.dims, axis = int("axis", 0)
            // (All negative or all not: [-1, 0] is the last element, then the first.)
            guard zip(index, index.dropFirst()).allSatisfy({ $1 == $0 + 1 }), index.allSatisfy({ $0 >= 0 }) || index.allSatisfy({ $0 < 0 }) else {
                throw ModelError("only gathering one constant index or a run of consecutive ones is supported")
            }
            run = { g, x, _ in
                let v = try value(x, 0)
                let s = g.shape(v)
                let a = axis < 0 ? axis + s.rank : axis
                guard a >= 0, a < s.rank else { throw ModelError("Gather along axis \(axis) of \(s)") }
                let start = index[0] < 0 ? Int(index[0]) + s[a] : Int(index[0])
                guard start >= 0, start + index.count <= s[a] else { throw ModelError("Gather of indices \(index[0])... along axis \(a) of \(s)") }
                let out = Array(s.dims[..<a]) + dims + Array(s.dims[(a + 1)...])
                return try g.reshape(try slice(g, v, axis: a, from: start, count: index.count), Shape(out))
            }
        case "Gather":
            // One index along any axis of a tensor (GoogLeNet's transform_input takes a channel,
            // a ViT its class token): that slice, the axis removed.
            try only(["axis"])
            guard node.input.count > 1, let index = stored(1), index.count == 1 else {
                throw ModelError("only gathering one constant index or a run of consecutive ones is supported")
            }
            let (axis, k, scalarIndex) = (int("axis", 0), Int(index[0]), context.integers[node.input[1]]!.dims.isEmpty)
            run = { g, x, _ in
                let v = try value(x, 0)
                let s = g.shape(v)
                let a = axis < 0 ? axis + s.rank : axis
                guard a >= 0, a < s.rank else { throw ModelError("Gather along axis \(axis) of \(s)") }
                let i = k < 0 ? k + s[a] : k
                guard i >= 0, i < s[a] else { throw ModelError("Gather of index \(k) along axis \(a) of \(s)") }
                var dims = s.dims
                if scalarIndex { dims.remove(at: a) } else { dims[a] = 1 }
                return try g.reshape(try slice(g, v, axis: a, from: i, count: 1), Shape(dims))
            }
        case "Slice":
            // Consecutive elements along one axis of a tensor (ShuffleNet's channel halves).
            try only([])
            guard (1...4).allSatisfy({ $0 >= node.input.count || node.input[$0].isEmpty || integral($0) }), integral(1), integral(2) else {
                throw ModelError("starts, ends, axes and steps must be constants or computed from shapes")
            }
            run = { g, x, _ in
                let v = try value(x, 0)
                let s = g.shape(v)
                let (starts, ends) = (try integers(x, 1).values, try integers(x, 2).values)
                let axes = x.integers.count > 3 ? x.integers[3]?.values ?? [0] : [0]
                let steps = x.integers.count > 4 ? x.integers[4]?.values ?? [1] : [1]
                guard starts.count == 1, ends.count == 1, axes.count == 1, steps.count == 1 else {
                    throw ModelError("Slice along \(axes.count) axes: only one")
                }
                let a = Int(axes[0] < 0 ? axes[0] + Int64(s.rank) : axes[0])
                guard a >= 0, a < s.rank else { throw ModelError("Slice along axis \(axes[0]) of \(s)") }
                let range = try sliceRange(count: s[a], start: starts[0], end: ends[0], step: steps[0])
                guard let first = range.first, steps[0] == 1 else { throw ModelError("Slice of \(s) along axis \(a): only a non-empty range with step 1") }
                return try slice(g, v, axis: a, from: first, count: range.count)
            }
        case "Unsqueeze":
            try only(["axes"])
            guard let axes = ((node.input.count > 1 ? stored(1) : nil) ?? attributes["axes"]?.ints)?.map({ Int($0) }) else {
                throw ModelError("the axes must be constants")
            }
            run = { g, x, _ in
                let v = try value(x, 0)
                return try g.reshape(v, Shape(try unsqueezed(g.shape(v).dims, axes: axes)))
            }
        case "Squeeze":
            try only(["axes"])
            let axes = (node.input.count > 1 ? stored(1) : nil)?.map { Int($0) } ?? ints("axes")
            run = { g, x, _ in
                let v = try value(x, 0)
                return try g.reshape(v, Shape(try squeezed(g.shape(v).dims, axes: axes)))
            }
        case "Expand":
            // A tensor (a stored one: ViT's class token) repeated to a shape computed from shapes;
            // a leading dimension equal to the traced batch becomes this pass's batch.
            try only([])
            guard integral(1) else { throw ModelError("the shape must be a constant or computed from shapes") }
            let stored = param(0), exportBatch = context.exportBatch
            parameterNames = stored.map { [$0] } ?? []
            run = { g, x, ps in
                let v = try stored.map { g.parameter(try ps($0)) } ?? value(x, 0)
                let s = g.shape(v).dims, target = try integers(x, 1).values.map { Int($0) }
                let rank = Swift.max(s.count, target.count)
                let a = [Int](repeating: 1, count: rank - s.count) + s, b = [Int](repeating: 1, count: rank - target.count) + target
                var out = try zip(a, b).map { p, q -> Int in
                    guard p == q || p == 1 || q == 1 else { throw ModelError("cannot expand \(s) to \(target)") }
                    return Swift.max(p, q)
                }
                if let e = exportBatch, x.batch != e, out.first == e { out[0] = x.batch }
                guard zip(a, out).dropFirst().allSatisfy({ $0 == $1 }) else { throw ModelError("expanding \(s) to \(out): only along the first dimension") }
                return try repeated(g, try g.reshape(v, Shape(a)), out[0] / Swift.max(a[0], 1))
            }
        case "Erf":
            try only([])
            run = { g, x, _ in try g.pointwise(try value(x, 0), .erf) }
        case "Tanh":
            try only([])
            run = { g, x, _ in try g.pointwise(try value(x, 0), .tanh) }
        case "Gelu":
            try only(["approximate"])
            if let a = attributes["approximate"], String(decoding: a.s, as: UTF8.self) != "none" {
                throw ModelError("approximate \(String(decoding: a.s, as: UTF8.self)): only the exact GELU")
            }
            run = { g, x, _ in try g.pointwise(try value(x, 0), .gelu) }
        case "LayerNormalization":
            try only(["axis", "epsilon", "stash_type"])
            guard node.output.count == 1 || node.output.dropFirst().allSatisfy(\.isEmpty) else {
                throw ModelError("only the normalized output (not its mean and inverse deviation) is supported")
            }
            guard let scale = param(1) else { throw ModelError("the scale must be an initializer") }
            let bias = param(2), axis = int("axis", -1), eps = float("epsilon", 1e-5)
            parameterNames = [scale] + (bias.map { [$0] } ?? [])
            run = { g, x, ps in
                let v = try value(x, 0)
                guard axis == -1 || axis == g.shape(v).rank - 1 else {
                    throw ModelError("normalization from axis \(axis) of \(g.shape(v)): only over the last axis")
                }
                return try g.layerNorm(v, gamma: g.parameter(try ps(scale)), beta: try bias.map { g.parameter(try ps($0)) }, eps: eps)
            }
        case "Dropout", "Identity":
            try only(["ratio", "seed"])
            run = { _, x, _ in try value(x, 0) }
        case "Softmax":
            // Along the last axis directly; along another one between two permutations that move
            // that axis last and back.
            try only(["axis"])
            let axis = int("axis", -1)
            run = { g, x, _ in
                let v = try value(x, 0)
                let rank = g.shape(v).rank
                let a = axis < 0 ? axis + rank : axis
                guard a >= 0, a < rank else { throw ModelError("softmax along axis \(axis) of a rank-\(rank) tensor") }
                if a == rank - 1 { return try g.softmax(v) }
                var perm = Array(0..<rank)
                perm.remove(at: a)
                perm.append(a)
                var inverse = [Int](repeating: 0, count: rank)
                for (i, p) in perm.enumerated() { inverse[p] = i }
                return try g.permute(try g.softmax(try g.permute(v, perm)), inverse)
            }
        case "SplitPart":
            // One output of a Split (the importer makes a node per output): its consecutive
            // elements along the axis, sizes from the split input, or equal parts (the last
            // smaller) of num_outputs.
            try only(["axis", "part", "parts", "split", "num_outputs"])
            guard node.input.count < 2 || node.input[1].isEmpty || integral(1) else { throw ModelError("the split sizes must be constants") }
            let (axis, part, parts, attributeSizes) = (int("axis", 0), int("part", 0), int("parts", 1), ints("split"))
            run = { g, x, _ in
                let v = try value(x, 0)
                let s = g.shape(v)
                let a = axis < 0 ? axis + s.rank : axis
                guard a >= 0, a < s.rank else { throw ModelError("Split along axis \(axis) of \(s)") }
                var sizes: [Int]
                if x.integers.count > 1, let given = x.integers[1] {
                    sizes = given.values.map { Int($0) }
                } else if let attributeSizes {
                    sizes = attributeSizes  // opset < 13
                } else {
                    let each = (s[a] + parts - 1) / parts
                    sizes = (0..<parts).map { Swift.max(0, Swift.min(each, s[a] - $0 * each)) }
                }
                guard sizes.count == parts, sizes.allSatisfy({ $0 >= 0 }), sizes.reduce(0, +) == s[a], sizes[part] > 0 else {
                    throw ModelError("cannot split \(s) along axis \(a) into \(sizes)")
                }
                return try slice(g, v, axis: a, from: sizes[..<part].reduce(0, +), count: sizes[part])
            }
        default:
            throw ModelError("op \(node.opType) is not supported")
        }
    }
}

/// Two computed operands of an elementwise op, broadcast where ONNX would: equal shapes, or a
/// [N, C, 1, 1] gate (squeeze-excitation) beside an [N, C, H, W] map, expanded over its grid.
private func matched(_ g: Graph, _ a: Graph.Value, _ b: Graph.Value, _ op: String) throws -> (Graph.Value, Graph.Value) {
    let (sa, sb) = (g.shape(a), g.shape(b))
    if sa == sb { return (a, b) }
    if sa.rank == 4, sb.rank == 4, sa[0] == sb[0], sa[1] == sb[1] {
        if sb[2] == 1, sb[3] == 1 { return (a, try g.expand(b, height: sa[2], width: sa[3])) }
        if sa[2] == 1, sa[3] == 1 { return (try g.expand(a, height: sb[2], width: sb[3]), b) }
    }
    throw ModelError("\(op) of \(sa) and \(sb): only equal shapes, or [N, C, 1, 1] with [N, C, H, W], broadcast")
}

/// Input `i` of a node, which must be a computed value (not a weight or a missing input).
private func value(_ x: Operands, _ i: Int) throws -> Graph.Value {
    guard i < x.values.count, let v = x.values[i] else { throw ModelError("input \(i) must be a computed tensor") }
    return v
}

/// Dimensions start ..< end of a shape, as ONNX's Shape (negative ends count from the back).
private func shapeSlice(_ dims: [Int], start: Int, end: Int) -> HostNumbers {
    let clamp = { (i: Int) in Swift.min(Swift.max(i < 0 ? i + dims.count : i, 0), dims.count) }
    let (a, b) = (clamp(start), clamp(end))
    return HostNumbers(vector: a < b ? dims[a..<b].map { Int64($0) } : [])
}

/// `v` [N, C, H, W] with zeros around it: pads [top, left, bottom, right], asymmetric as ONNX
/// allows. The larger pad of each pair on both sides (a 1x1 depthwise convolution by ones with
/// that padding), then the excess sliced off.
private func zeroPadded(_ g: Graph, _ v: Graph.Value, _ pads: [Int]) throws -> Graph.Value {
    let s = g.shape(v)
    guard s.rank == 4 else { throw ModelError("padding of a rank-\(s.rank) tensor: only [N, C, H, W]") }
    let (ph, pw) = (Swift.max(pads[0], pads[2]), Swift.max(pads[1], pads[3]))
    guard ph > 0 || pw > 0 else { return v }
    let ones = g.constant(try g.backend.tensor([Float](repeating: 1, count: s[1]), [s[1], 1, 1, 1]))
    var y = try g.conv2d(v, weight: ones, bias: nil, Conv2DParams(stride: (1, 1), padding: (ph, pw), groups: s[1]))
    y = try slice(g, y, axis: 2, from: ph - pads[0], count: s[2] + pads[0] + pads[2])
    return try slice(g, y, axis: 3, from: pw - pads[1], count: s[3] + pads[1] + pads[3])
}

/// `v` [1, ...] repeated `times` times along its first dimension (one copy: `v` itself).
private func repeated(_ g: Graph, _ v: Graph.Value, _ times: Int) throws -> Graph.Value {
    guard times > 1 else { return v }
    let s = g.shape(v)
    let view = try g.reshape(v, [1, s.count, 1, 1])
    return try g.reshape(try g.concat([Graph.Value](repeating: view, count: times)), Shape([s[0] * times] + s.dims.dropFirst()))
}

/// The stored matrix `name` [K, N] as a linear layer's weight [N, K], transposed on the device
/// once per parameter store.
private func transposedWeight(_ g: Graph, _ ps: ParameterStore, _ name: String) throws -> Tensor {
    try ps.derived(name + " transposed") { try g.backend.permute(try ps(name), [1, 0]) }
}

/// `count` consecutive elements from `from` along `axis` of a tensor of any rank: the tensor
/// viewed as [outer, size, inner, 1] and sliced on its dimension 1.
private func slice(_ g: Graph, _ v: Graph.Value, axis: Int, from: Int, count: Int) throws -> Graph.Value {
    let s = g.shape(v)
    if from == 0, count == s[axis] { return v }
    let view = s.rank == 4 && axis == 1 ? v : try g.reshape(v, [s.dims[..<axis].reduce(1, *), s[axis], s.dims[(axis + 1)...].reduce(1, *), 1])
    var dims = s.dims
    dims[axis] = count
    return try g.reshape(try g.sliceChannels(view, from: from, count: count), Shape(dims))
}

/// `body`, its model errors naming the node (its output) and op.
private func named<T>(_ node: ONNXNode, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as ModelError {
        throw ModelError("node \(node.output) (\(node.opType)): \(error.description)")
    }
}

/// The graph's nodes as one module: runs them in order, tapping each output by its name.
struct ONNXNetwork: Module {
    let nodes: [ONNXNode]
    let input: String
    let output: String
    let specs: [ParameterSpec]
    /// Float constants that are not weights (Constant nodes, scalars), kept on the host.
    let constants: [String: HostTensor]
    /// Stored integer tensors (shapes, axes, indices), the host nodes' first operands.
    let integers: [String: HostNumbers]
    var name: String { "" }
    var kind: String { "ONNX" }
    var parameters: [ParameterSpec] { specs }

    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
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
            values[node.output] = y
            g.tap(node.output, y, kind: node.opType)
        }
        guard let y = values[output] else {
            if g.stopped, let last = nodes.last(where: { values[$0.output] != nil }) { return values[last.output]! }
            throw ModelError("the ONNX graph never computes its output \(output)")
        }
        return y
    }
}

// Integer ops on the host: the exporter's shape arithmetic, evaluated per pass.
extension ONNXNode {
    static let hostOps: Set<String> = ["Gather", "Add", "Sub", "Mul", "Div", "Mod", "Concat", "Unsqueeze", "Squeeze", "Cast",
                                       "Slice", "Identity", "Equal", "Where", "Range", "Sqrt", "Reshape", "ConstantOfShape"]

    static func hostOp(_ op: String, ints: (String) -> [Int]?, int: (String, Int) -> Int,
                       only: (Set<String>) throws -> Void, tensor: Onnx_TensorProto?) throws -> @Sendable (Graph, Operands) throws -> HostNumbers {
        switch op {
        case "ConstantOfShape":
            try only(["value"])
            let fill: HostNumbers = switch try tensor.map(ONNXImport.tensorValues) {
            case .float(let h)?: HostNumbers(dims: [1], reals: h.values.map(Double.init))
            case .integer(let v)?: v
            case nil: HostNumbers(dims: [1], reals: [0])
            }
            guard fill.values.count == 1 else { throw ModelError("the value must hold one number") }
            return { _, x in
                let dims = try integers(x, 0).values.map { Int($0) }
                guard dims.allSatisfy({ $0 >= 0 && $0 <= 1 << 20 }), dims.reduce(1, *) <= 1 << 20 else { throw ModelError("ConstantOfShape of \(dims)") }
                return fill.picking([Int](repeating: 0, count: dims.reduce(1, *)), dims: dims)
            }
        case "Shape":
            try only(["start", "end"])
            let (start, end) = (int("start", 0), int("end", Int.max))
            return { g, x in
                // Of a tensor, or of integers on the host (a shape computed from shapes).
                if let numbers = x.integers.first ?? nil { return shapeSlice(numbers.dims, start: start, end: end) }
                return shapeSlice(g.shape(try value(x, 0)).dims, start: start, end: end)
            }
        case "Gather":
            try only(["axis"])
            guard int("axis", 0) == 0 else { throw ModelError("gathering integers along axis \(int("axis", 0)): only axis 0") }
            return { _, x in
                let (data, index) = (try integers(x, 0), try integers(x, 1))
                guard data.dims.count == 1 else { throw ModelError("Gather from an integer tensor of dimensions \(data.dims): only vectors") }
                let n = Int64(data.values.count)
                return data.picking(try index.values.map { i in
                    let k = i < 0 ? i + n : i
                    guard k >= 0, k < n else { throw ModelError("Gather index \(i) outside \(n) values") }
                    return Int(k)
                }, dims: index.dims)
            }
        case "Add", "Sub", "Mul", "Div", "Mod":
            try only(op == "Mod" ? ["fmod"] : [])
            let fmod = int("fmod", 0) == 1
            let f: @Sendable (Int64, Int64) throws -> Int64 = switch op {
            case "Add": { $0 &+ $1 }
            case "Sub": { $0 &- $1 }
            case "Mul": { $0 &* $1 }
            case "Div": { a, b in
                guard b != 0 else { throw ModelError("integer division by zero") }
                return a / b
            }
            default: { a, b in
                guard b != 0 else { throw ModelError("integer modulo by zero") }
                let r = a % b
                return fmod || r == 0 || (r < 0) == (b < 0) ? r : r + b
            }
            }
            let real: @Sendable (Double, Double) -> Double = switch op {
            case "Add": { $0 + $1 }
            case "Sub": { $0 - $1 }
            case "Mul": { $0 * $1 }
            case "Div": { $0 / $1 }
            default: { a, b in fmod ? Foundation.fmod(a, b) : a - b * (a / b).rounded(.down) }
            }
            return { _, x in
                let (a, b) = (try integers(x, 0), try integers(x, 1))
                if a.reals != nil || b.reals != nil {
                    let (ar, br) = (a.asReals, b.asReals)
                    guard ar.count == br.count || ar.count == 1 || br.count == 1 else { throw ModelError("\(op) of numbers \(a.dims) and \(b.dims)") }
                    let n = Swift.max(ar.count, br.count)
                    return HostNumbers(dims: (ar.count >= br.count ? a : b).dims,
                                       reals: (0..<n).map { real(ar[ar.count == 1 ? 0 : $0], br[br.count == 1 ? 0 : $0]) })
                }
                if a.values.count == b.values.count {
                    return HostNumbers(dims: a.dims.count >= b.dims.count ? a.dims : b.dims, values: try zip(a.values, b.values).map(f))
                }
                if b.values.count == 1 { return HostNumbers(dims: a.dims, values: try a.values.map { try f($0, b.values[0]) }) }
                if a.values.count == 1 { return HostNumbers(dims: b.dims, values: try b.values.map { try f(a.values[0], $0) }) }
                throw ModelError("\(op) of integer tensors \(a.dims) and \(b.dims)")
            }
        case "Equal":
            try only([])
            return { _, x in
                let (a, b) = (try integers(x, 0), try integers(x, 1))
                guard a.values.count == b.values.count || b.values.count == 1 else { throw ModelError("Equal of integer tensors \(a.dims) and \(b.dims)") }
                return HostNumbers(dims: a.dims, values: a.values.indices.map { a.values[$0] == b.values[b.values.count == 1 ? 0 : $0] ? 1 : 0 })
            }
        case "Where":
            try only([])
            return { _, x in
                let (c, a, b) = (try integers(x, 0), try integers(x, 1), try integers(x, 2))
                let n = Swift.max(c.values.count, a.values.count, b.values.count)
                guard [c, a, b].allSatisfy({ $0.values.count == n || $0.values.count == 1 }) else { throw ModelError("Where of integer tensors \(c.dims), \(a.dims), \(b.dims)") }
                let at = { (t: HostNumbers, i: Int) in t.values[t.values.count == 1 ? 0 : i] }
                return HostNumbers(dims: [c, a, b].first { $0.values.count == n }!.dims, values: (0..<n).map { at(c, $0) != 0 ? at(a, $0) : at(b, $0) })
            }
        case "Range":
            try only([])
            return { _, x in
                let (start, limit, delta) = (try integers(x, 0).values, try integers(x, 1).values, try integers(x, 2).values)
                guard start.count == 1, limit.count == 1, delta.count == 1, delta[0] != 0 else { throw ModelError("Range needs three scalars, the step non-zero") }
                let count = Swift.max(0, Int((limit[0] - start[0] + delta[0] - (delta[0] > 0 ? 1 : -1)) / delta[0]))
                guard count <= 1 << 20 else { throw ModelError("Range of \(count) values") }
                return HostNumbers(vector: (0..<count).map { start[0] + Int64($0) * delta[0] })
            }
        case "Concat":
            try only(["axis"])
            guard int("axis", 0) == 0 || int("axis", 0) == -1 else { throw ModelError("concatenating integers along axis \(int("axis", 0))") }
            return { _, x in
                let parts = x.integers.compactMap { $0 }
                guard parts.allSatisfy({ $0.dims.count <= 1 }) else { throw ModelError("Concat of integer tensors beyond vectors") }
                if parts.contains(where: { $0.reals != nil }) {
                    let all = parts.flatMap(\.asReals)
                    return HostNumbers(dims: [all.count], reals: all)
                }
                return HostNumbers(vector: parts.flatMap(\.values))
            }
        case "Unsqueeze", "Squeeze":
            try only(["axes"])
            let attributeAxes = ints("axes")
            return { _, x in
                let t = try integers(x, 0)
                let axes = attributeAxes ?? (x.integers.count > 1 ? x.integers[1]?.values.map { Int($0) } : nil)
                if op == "Squeeze" { return t.reshaped(try squeezed(t.dims, axes: axes)) }
                guard let axes else { throw ModelError("Unsqueeze without axes") }
                return t.reshaped(try unsqueezed(t.dims, axes: axes))
            }
        case "Cast", "Identity":
            try only(["to", "saturate"])
            // Integer types (int64 7, int32 6, int16 5, int8 3, uint8 2, bool 9) hold integers (a
            // real truncated); float 1, float16 10, double 11, bfloat16 16 hold reals.
            let to = op == "Identity" ? 0 : int("to", 7)
            guard [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 16].contains(to) else { throw ModelError("Cast to data type \(to) is not supported") }
            return { _, x in
                let t = try integers(x, 0)
                switch to {
                case 0: return t
                case 9: return HostNumbers(dims: t.dims, values: t.asReals.map { $0 != 0 ? 1 : 0 })
                case 1, 10, 11, 16: return HostNumbers(dims: t.dims, reals: t.asReals.map { to == 1 ? Double(Float($0)) : $0 })
                default: return HostNumbers(dims: t.dims, values: t.values)
                }
            }
        case "Sqrt":
            try only([])
            return { _, x in
                let t = try integers(x, 0)
                return HostNumbers(dims: t.dims, reals: t.asReals.map { $0.squareRoot() })
            }
        case "Reshape":
            try only(["allowzero"])
            return { _, x in
                let (t, shape) = (try integers(x, 0), try integers(x, 1).values)
                let dims = reshapeTarget(shape, of: t.dims)
                guard dims.allSatisfy({ $0 >= 0 }), dims.reduce(1, *) == t.values.count else { throw ModelError("cannot reshape numbers \(t.dims) to \(shape)") }
                return t.reshaped(dims)
            }
        case "Slice":
            try only([])
            return { _, x in
                let data = try integers(x, 0)
                guard data.dims.count == 1 else { throw ModelError("Slice of an integer tensor of dimensions \(data.dims): only vectors") }
                let (starts, ends) = (try integers(x, 1).values, try integers(x, 2).values)
                let steps = x.integers.count > 4 ? x.integers[4]?.values ?? [1] : [1]
                guard starts.count == 1, ends.count == 1, steps.count == 1 else { throw ModelError("Slice of a vector along more than one axis") }
                let range = try sliceRange(count: data.values.count, start: starts[0], end: ends[0], step: steps[0])
                return data.picking(range, dims: [range.count])
            }
        default:
            throw ModelError("op \(op) is not supported on integer tensors")
        }
    }
}

/// ONNX Reshape's target for a tensor of dimensions `old`: 0 keeps that dimension, -1 takes
/// what the others leave.
func reshapeTarget(_ target: [Int64], of old: [Int]) -> [Int] {
    var dims = target.enumerated().map { i, d in d == 0 && i < old.count ? old[i] : Int(d) }
    if let free = dims.firstIndex(of: -1) {
        let known = dims.enumerated().filter { $0.offset != free }.map(\.element).reduce(1, *)
        dims[free] = known > 0 ? old.reduce(1, *) / known : 0
    }
    return dims
}

/// `dims` without the size-1 dimensions `axes` (negative ones count from the end; nil: every
/// size-1 dimension), as ONNX's Squeeze.
func squeezed(_ dims: [Int], axes: [Int]?) throws -> [Int] {
    guard let axes else { return dims.filter { $0 != 1 } }
    var out = dims
    for a in Set(axes.map { $0 < 0 ? $0 + dims.count : $0 }).sorted(by: >) {
        guard a >= 0, a < dims.count, dims[a] == 1 else { throw ModelError("Squeeze of axis \(a) of \(dims)") }
        out.remove(at: a)
    }
    return out
}

/// `dims` with size-1 dimensions inserted at `axes` of the result, as ONNX's Unsqueeze.
func unsqueezed(_ dims: [Int], axes: [Int]) throws -> [Int] {
    let rank = dims.count + axes.count
    var out = dims
    for a in axes.map({ $0 < 0 ? $0 + rank : $0 }).sorted() {
        guard a >= 0, a <= out.count else { throw ModelError("Unsqueeze at axis \(a) of \(dims)") }
        out.insert(1, at: a)
    }
    return out
}

/// The indices ONNX's Slice takes along one dimension of `count` (negative starts and ends
/// count from the end; both are clamped; a step may be negative, not zero).
func sliceRange(count: Int, start: Int64, end: Int64, step: Int64) throws -> [Int] {
    guard step != 0 else { throw ModelError("Slice with step 0") }
    let n = Int64(count)
    func clamp(_ v: Int64, _ lo: Int64, _ hi: Int64) -> Int64 { Swift.min(Swift.max(v < 0 ? v + n : v, lo), hi) }
    var indices: [Int] = []
    if step > 0 {
        var i = clamp(start, 0, n)
        let e = clamp(end, 0, n)
        while i < e { indices.append(Int(i)); i += step }
    } else {
        var i = clamp(start, -1, n - 1)
        let e = clamp(end, -1, n - 1)
        while i > e { indices.append(Int(i)); i += step }
    }
    return indices
}

/// Input `i` of a node as a host integer tensor.
func integers(_ x: Operands, _ i: Int) throws -> HostNumbers {
    guard i < x.integers.count, let v = x.integers[i] else { throw ModelError("input \(i) must be an integer tensor (a shape or indices)") }
    return v
}

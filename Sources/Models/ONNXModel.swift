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
        var floats: [String: HostTensor] = [:], integers: [String: [Int64]] = [:]
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
                case .float(let h): floats[node.output[0]] = h
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

        var nodes: [ONNXNode] = []
        for var node in graph.node where node.opType != "Constant" && aliases[node.output.first ?? ""] == nil {
            node.input = node.input.map { aliases[$0] ?? $0 }
            do { nodes.append(try ONNXNode(node, floats: floats, integers: integers)) } catch {
                problems.append("node \(node.name.isEmpty ? node.output.first ?? "?" : node.name) (\(node.opType)): \(error)")
            }
        }
        guard problems.isEmpty else {
            throw ModelError("\(name): \(problems.count) unsupported node(s) or attribute(s):\n  " + problems.joined(separator: "\n  "))
        }
        // Weights a node needs transposed (MatMul by an initializer) are stored transposed too.
        var weights = floats
        for node in nodes { for (source, transposed) in node.derivedWeights {
            let w = floats[source]!
            let (k, n) = (w.shape[0], w.shape[1])
            weights[transposed] = HostTensor(shape: [n, k], values: (0..<(n * k)).map { i in w.values[(i % k) * n + i / k] })
        } }
        let used = Set(nodes.flatMap(\.parameterNames))
        let specs = weights.filter { used.contains($0.key) }.map { key, t in
            ParameterSpec(name: key, shape: t.shape, role: role(key, t.shape))
        }.sorted { $0.name < $1.name }
        let network = ONNXNetwork(nodes: nodes, input: inputs[0], output: graph.output[0].name, specs: specs,
                                  constants: floats.filter { !used.contains($0.key) })
        // The default CAM layer: the last node output before the head's global pooling (the last
        // one: squeeze-excitation blocks pool too) or, without one, before flattening.
        let pool = nodes.lastIndex { $0.opType == "GlobalAveragePool" || $0.opType == "ReduceMean" }
            ?? nodes.firstIndex { ["Flatten", "Gemm", "Reshape"].contains($0.opType) } ?? nodes.count
        let last = nodes[..<pool].last {
            ["Conv", "Relu", "Clip", "BatchNormalization", "Add", "Concat", "MaxPool", "LeakyRelu", "HardSwish", "Mul"].contains($0.opType)
        }
        let arch = Architecture(name: name, body: [network], inputTransform: nil, lastConvLayer: last?.output ?? inputs[0])
        return (arch, weights.filter { used.contains($0.key) })
    }

    /// SeededWeights' role by torchvision's naming (and rank, for the exporter's onnx::Conv_N
    /// names), for random weights of the same graph.
    static func role(_ name: String, _ shape: Shape) -> ParameterSpec.Role {
        if name.hasSuffix("running_var") || (name.hasSuffix("weight") && shape.rank == 1) { return .bnVariance }
        if name.hasSuffix("bias") || name.hasSuffix("running_mean") || shape.rank <= 1 { return .bias(fanIn: 1) }
        return .weight(fanIn: Swift.max(shape.count / Swift.max(shape[0], 1), 1))
    }

    enum Values { case float(HostTensor), integer([Int64]) }

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
            return .integer(values)
        default:
            throw ModelError("data type \(t.dataType) is not supported (float32 and int64 only)")
        }
    }
}

/// One node, checked and with its attributes read, ready to run.
struct ONNXNode: Sendable {
    let opType: String
    let inputs: [String]
    let output: String
    let run: @Sendable (Graph, [Graph.Value?], ParameterStore) throws -> Graph.Value
    var parameterNames: [String] = []
    var derivedWeights: [(String, String)] = []

    init(_ node: Onnx_NodeProto, floats: [String: HostTensor], integers: [String: [Int64]]) throws {
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
        /// Symmetric 2-D padding from ONNX's [top, left, bottom, right].
        func padding() throws -> (Int, Int) {
            if let mode = attributes["auto_pad"], !mode.s.isEmpty, String(decoding: mode.s, as: UTF8.self) != "NOTSET" {
                throw ModelError("auto_pad \(String(decoding: mode.s, as: UTF8.self)) is not supported")
            }
            let pads = ints("pads") ?? [0, 0, 0, 0]
            guard pads.count == 4, pads[0] == pads[2], pads[1] == pads[3] else { throw ModelError("asymmetric pads \(pads)") }
            return (pads[0], pads[1])
        }
        func pair(_ name: String, _ fallback: Int) throws -> (Int, Int) {
            let v = ints(name) ?? [fallback, fallback]
            guard v.count == 2 else { throw ModelError("\(name) \(v): only 2-D is supported") }
            return (v[0], v[1])
        }

        switch node.opType {
        case "Conv":
            try only(["kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"])
            guard let w = param(1) else { throw ModelError("the weight must be an initializer") }
            let bias = param(2)
            let p = Conv2DParams(stride: try pair("strides", 1), padding: try padding(), dilation: try pair("dilations", 1), groups: int("group", 1))
            parameterNames = [w] + (bias.map { [$0] } ?? [])
            run = { g, x, ps in try g.conv2d(try value(x, 0), weight: g.parameter(try ps(w)), bias: try bias.map { g.parameter(try ps($0)) }, p) }
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
            guard let axes = (node.input.count > 1 && !node.input[1].isEmpty ? integers[node.input[1]] : nil) ?? attributes["axes"]?.ints,
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
            let weight: String
            if int("transB", 0) == 1 { weight = w } else { weight = w + ".T"; derivedWeights = [(w, weight)] }
            parameterNames = [weight] + (bias.map { [$0] } ?? [])
            run = { g, x, ps in try g.linear(try value(x, 0), weight: g.parameter(try ps(weight)), bias: try bias.map { g.parameter(try ps($0)) }) }
        case "MatMul":
            try only([])
            guard let w = param(1), floats[w]!.shape.rank == 2 else { throw ModelError("only a product with a 2-D initializer is supported") }
            derivedWeights = [(w, w + ".T")]
            parameterNames = [w + ".T"]
            run = { g, x, ps in try g.linear(try value(x, 0), weight: g.parameter(try ps(w + ".T")), bias: nil) }
        case "Add", "Sub", "Mul", "Div":
            try only([])
            let op = node.opType
            if let c = scalar(1) {
                if op == "Add" || op == "Sub" {
                    // x + c on every channel of an image tensor.
                    let shift = op == "Add" ? c : -c
                    run = { g, x, _ in
                        let v = try value(x, 0)
                        guard g.shape(v).rank == 4 else { throw ModelError("adding a scalar to a rank-\(g.shape(v).rank) tensor is not supported") }
                        let channels = g.shape(v)[1]
                        return try g.channelAffine(v, scale: [Float](repeating: 1, count: channels), shift: [Float](repeating: shift, count: channels))
                    }
                } else {
                    let factor = op == "Mul" ? c : 1 / c
                    run = { g, x, _ in try g.scale(try value(x, 0), factor) }
                }
            } else if let c = param(1), floats[c]!.shape.count > 1 || op == "Add" || op == "Mul" {
                // A per-channel constant [C, 1, 1] or [1, C, 1, 1]: an affine map per channel.
                let t = floats[c]!
                guard t.shape.dims.filter({ $0 != 1 }).count <= 1 else { throw ModelError("\(op) with a constant of shape \(t.shape): only per-channel constants") }
                let v = t.values
                switch op {
                case "Add": run = { g, x, _ in try g.channelAffine(try value(x, 0), scale: v.map { _ in 1 }, shift: v) }
                case "Sub": run = { g, x, _ in try g.channelAffine(try value(x, 0), scale: v.map { _ in 1 }, shift: v.map { -$0 }) }
                case "Mul": run = { g, x, _ in try g.channelAffine(try value(x, 0), scale: v, shift: v.map { _ in 0 }) }
                default: run = { g, x, _ in try g.channelAffine(try value(x, 0), scale: v.map { 1 / $0 }, shift: v.map { _ in 0 }) }
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
            try only(["axis"])
            guard int("axis", 1) == 1 else { throw ModelError("concatenation along axis \(int("axis", 1)): only axis 1") }
            run = { g, x, _ in
                let parts = x.compactMap { $0 }
                if g.shape(parts[0]).rank == 4 { return try g.concat(parts) }
                let flat = try parts.map { try g.reshape($0, [g.shape($0)[0], g.shape($0).count / g.shape($0)[0], 1, 1]) }
                let joined = try g.concat(flat)
                return try g.reshape(joined, [g.shape(joined)[0], g.shape(joined)[1]])
            }
        case "Flatten":
            try only(["axis"])
            guard int("axis", 1) == 1 else { throw ModelError("flatten from axis \(int("axis", 1)): only axis 1") }
            run = { g, x, _ in try g.flatten(try value(x, 0)) }
        case "Reshape":
            try only(["allowzero"])
            guard node.input.count > 1, let target = integers[node.input[1]] else { throw ModelError("the shape must be a constant") }
            run = { g, x, _ in
                let old = g.shape(try value(x, 0))
                var dims = target.enumerated().map { i, d in d == 0 && i < old.rank ? old[i] : Int(d) }
                if let free = dims.firstIndex(of: -1) {
                    let known = dims.enumerated().filter { $0.offset != free }.map(\.element).reduce(1, *)
                    dims[free] = known > 0 ? old.count / known : 0
                }
                return try g.reshape(try value(x, 0), Shape(dims))
            }
        case "Transpose":
            try only(["perm"])
            guard let perm = ints("perm"), perm == Array(perm.indices) else { throw ModelError("only the identity permutation is supported") }
            run = { _, x, _ in try value(x, 0) }
        case "Pad":
            try only(["mode"])
            if let mode = attributes["mode"], String(decoding: mode.s, as: UTF8.self) != "constant" { throw ModelError("only constant padding is supported") }
            guard node.input.count > 1, let pads = integers[node.input[1]], pads.count == 8,
                  pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0, pads[2] == pads[6], pads[3] == pads[7] else {
                throw ModelError("only constant, symmetric spatial pads are supported")
            }
            guard (scalar(2) ?? 0) == 0 else { throw ModelError("only zero padding is supported") }
            let (ph, pw) = (Int(pads[2]), Int(pads[3]))
            // Zero padding as a 1x1 depthwise convolution by ones with that padding.
            run = { g, x, _ in
                let c = g.shape(try value(x, 0))[1]
                let ones = g.constant(try g.backend.tensor([Float](repeating: 1, count: c), [c, 1, 1, 1]))
                return try g.conv2d(try value(x, 0), weight: ones, bias: nil, Conv2DParams(stride: (1, 1), padding: (ph, pw), groups: c))
            }
        case "Gather":
            // One channel of an image tensor (GoogLeNet's transform_input): [N, C, H, W] -> [N, H, W].
            try only(["axis"])
            guard int("axis", 0) == 1, node.input.count > 1, let index = integers[node.input[1]], index.count == 1 else {
                throw ModelError("only gathering one channel (axis 1, a constant scalar index) is supported")
            }
            let k = Int(index[0])
            run = { g, x, _ in
                let v = try value(x, 0)
                guard let (n, c, h, w) = g.shape(v).nchw, k >= 0, k < c else { throw ModelError("Gather of channel \(k) from \(g.shape(v))") }
                return try g.reshape(try g.sliceChannels(v, from: k, count: 1), [n, h, w])
            }
        case "Unsqueeze":
            try only(["axes"])
            guard let axes = (node.input.count > 1 ? integers[node.input[1]] : nil) ?? attributes["axes"]?.ints, axes.count == 1 else {
                throw ModelError("only one constant axis is supported")
            }
            let axis = Int(axes[0])
            run = { g, x, _ in
                let v = try value(x, 0)
                var dims = g.shape(v).dims
                let at = axis < 0 ? dims.count + 1 + axis : axis
                guard at >= 0, at <= dims.count else { throw ModelError("Unsqueeze at axis \(axis) of \(g.shape(v))") }
                dims.insert(1, at: at)
                return try g.reshape(v, Shape(dims))
            }
        case "Dropout", "Identity":
            try only(["ratio", "seed"])
            run = { _, x, _ in try value(x, 0) }
        case "Softmax":
            try only(["axis"])
            let axis = int("axis", -1)
            run = { g, x, _ in
                let rank = g.shape(try value(x, 0)).rank
                guard axis == rank - 1 || axis == -1 || (axis == 1 && rank == 2) else { throw ModelError("softmax along axis \(axis) of a rank-\(rank) tensor") }
                return try g.softmax(try value(x, 0))
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
private func value(_ x: [Graph.Value?], _ i: Int) throws -> Graph.Value {
    guard i < x.count, let v = x[i] else { throw ModelError("input \(i) must be a computed tensor") }
    return v
}

/// The graph's nodes as one module: runs them in order, tapping each output by its name.
struct ONNXNetwork: Module {
    let nodes: [ONNXNode]
    let input: String
    let output: String
    let specs: [ParameterSpec]
    /// Float constants that are not weights (Constant nodes, scalars), kept on the host.
    let constants: [String: HostTensor]
    var name: String { "" }
    var kind: String { "ONNX" }
    var parameters: [ParameterSpec] { specs }

    func callAsFunction(_ g: Graph, _ x: Graph.Value, _ p: ParameterStore) throws -> Graph.Value {
        var values: [String: Graph.Value] = [input: x]
        for node in nodes {
            if g.stopped { break }
            let inputs = node.inputs.map { values[$0] }
            let y = try node.run(g, inputs, p)
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

import Backend
import Foundation
import Graph
import WeightFiles

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
        opType = node.opType
        inputs = node.input
        guard let out = node.output.first else { throw ModelError("no output") }
        output = out
        let reader = NodeReader(node: node, context: context)
        let (floats, attributes) = (reader.floats, reader.attributes)
        func int(_ name: String, _ fallback: Int) -> Int { reader.int(name, fallback) }
        func only(_ allowed: Set<String>) throws { try reader.only(allowed) }

        if node.opType == "Shape", let stored = reader.param(0) {
            // The shape of a stored tensor (the legacy exporter's class token under dynamic axes).
            try only(["start", "end"])
            let (dims, start, end) = (floats[stored]!.shape.dims, int("start", 0), int("end", Int.max))
            host = { _, _ in shapeSlice(dims, start: start, end: end) }
            return
        }
        let present = node.input.indices.filter { !node.input[$0].isEmpty }
        if node.opType == "Shape" || (!present.isEmpty && present.allSatisfy(reader.integral) && ONNXNode.hostOps.contains(node.opType)) {
            let proto = node
            if ConstantFolding.ops.contains(node.opType), !["Add", "Sub", "Mul", "Div", "Reshape", "Identity", "ConstantOfShape", "Concat"].contains(node.opType) {
                // Multi-dimensional and real-valued host tensors (Swin's attention mask, built
                // from the pass's shapes by the TorchScript exporter): the folding evaluator,
                // run in each pass; the integer op where it applies.
                let integerOp = try? ONNXNode.hostOp(node.opType, ints: reader.ints, int: reader.int, only: reader.only, tensor: nil)
                host = { g, x in
                    if let integerOp, x.integers.allSatisfy({ $0?.reals == nil }), let made = try? integerOp(g, x) { return made }
                    let inputs = x.integers.map { $0.map { ConstantFolding.Constant(dims: $0.dims, values: $0.asReals, integer: $0.reals == nil) } }
                    let c = try ConstantFolding.evaluate(proto, inputs)
                    return c.integer ? HostNumbers(dims: c.dims, values: c.values.map { $0.isFinite && abs($0) < 9e18 ? Int64($0) : 0 })
                        : HostNumbers(dims: c.dims, reals: c.values)
                }
                return
            }
            host = try ONNXNode.hostOp(node.opType, ints: reader.ints, int: reader.int, only: reader.only, tensor: attributes["value"].flatMap { $0.hasT ? $0.t : nil })
            if ConstantFolding.ops.contains(node.opType), let integerOp = host {
                // Arithmetic, reshapes and concatenations of tensors the integer ops refuse
                // (broadcast, multi-dimensional): the folding evaluator.
                host = { g, x in
                    do { return try integerOp(g, x) } catch {
                        let inputs = x.integers.map { $0.map { ConstantFolding.Constant(dims: $0.dims, values: $0.asReals, integer: $0.reals == nil) } }
                        let c: ConstantFolding.Constant
                        do { c = try ConstantFolding.evaluate(proto, inputs) } catch let folding { throw ModelError("\(error); \(folding)") }
                        return c.integer ? HostNumbers(dims: c.dims, values: c.values.map { $0.isFinite && abs($0) < 9e18 ? Int64($0) : 0 })
                            : HostNumbers(dims: c.dims, reals: c.values)
                    }
                }
            }
            return
        }

        guard let build = NodeReader.builders[node.opType] else { throw ModelError("op \(node.opType) is not supported") }
        let op = try build(reader)
        run = op.run
        parameterNames = op.parameterNames
    }
}

/// One node's attributes and inputs, read the way every op builder needs them.
struct NodeReader {
    let node: Onnx_NodeProto
    let context: ONNXNode.Context
    let attributes: [String: Onnx_AttributeProto]
    var floats: [String: HostTensor] { context.floats }

    init(node: Onnx_NodeProto, context: ONNXNode.Context) {
        self.node = node
        self.context = context
        attributes = Dictionary(node.attribute.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

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
}

/// What an op builder makes: how the node runs on a graph, and the parameters it reads.
struct BuiltOp {
    var run: @Sendable (Graph, Operands, ParameterStore) throws -> Graph.Value = { _, _, _ in throw ModelError("not a tensor op") }
    var parameterNames: [String] = []
}

extension NodeReader {
    /// The op builders of tensor ops, by op type: one small function each (ONNXOps.swift,
    /// ONNXOps+Tensors.swift). A new op is a builder and a line here.
    static let builders: [String: @Sendable (NodeReader) throws -> BuiltOp] = [
        "Conv": { try $0.buildConv() },
        "Relu": { try $0.buildRelu() },
        "Clip": { try $0.buildClip() },
        "LeakyRelu": { try $0.buildLeakyRelu() },
        "Sigmoid": { try $0.buildSigmoid() },
        "HardSigmoid": { try $0.buildHardSigmoid() },
        "HardSwish": { try $0.buildHardSwish() },
        "MaxPool": { try $0.buildPool() },
        "AveragePool": { try $0.buildPool() },
        "GlobalAveragePool": { try $0.buildGlobalAveragePool() },
        "ReduceMean": { try $0.buildReduceMean() },
        "InstanceNormalization": { try $0.buildInstanceNormalization() },
        "Resize": { try $0.buildResize() },
        "BatchNormalization": { try $0.buildBatchNormalization() },
        "Gemm": { try $0.buildGemm() },
        "Einsum": { try $0.buildEinsum() },
        "ReduceL2": { try $0.buildReduceL2() },
        "MatMul": { r in r.param(1) == nil && r.param(0) == nil ? try r.buildMatMulOfTwo() : try r.buildMatMul() },
        "Add": { try $0.buildArithmetic() },
        "Sub": { try $0.buildArithmetic() },
        "Mul": { try $0.buildArithmetic() },
        "Div": { try $0.buildArithmetic() },
        "Concat": { try $0.buildConcat() },
        "Flatten": { try $0.buildFlatten() },
        "Reshape": { try $0.buildReshape() },
        "Transpose": { try $0.buildTranspose() },
        "Pad": { try $0.buildPad() },
        "Gather": { r in r.node.input.count > 1 && (r.stored(1)?.count ?? 0) > 1 ? try r.buildGatherIndices() : try r.buildGather() },
        "Slice": { try $0.buildSlice() },
        "Unsqueeze": { try $0.buildUnsqueeze() },
        "Squeeze": { try $0.buildSqueeze() },
        "Expand": { try $0.buildExpand() },
        "Erf": { try $0.buildErf() },
        "Tanh": { try $0.buildTanh() },
        "Gelu": { try $0.buildGelu() },
        "LayerNormalization": { try $0.buildLayerNormalization() },
        "Dropout": { try $0.buildIdentity() },
        "Identity": { try $0.buildIdentity() },
        "Softmax": { try $0.buildSoftmax() },
        "SplitPart": { try $0.buildSplitPart() },
    ]
}

import Backend
import Foundation
import WeightFiles

/// Subgraphs of constants evaluated once, at import: what an exporter computes from constants
/// alone and Loupe has no device op for (Swin's attention mask: a tensor of zeros filled by
/// ScatterND, compared with Equal, Not and Where; Swin V2's position MLP on its stored
/// coordinate table, and its clamped and exponentiated logit scale; BEiT's relative position
/// bias, gathered by GatherND from its table). A node is folded when every input is a
/// constant (stored, or folded before it) and it is one of `starts` or reads a folded value;
/// its output becomes a stored tensor (a float) or a host integer tensor, and the node is gone.
enum ConstantFolding {
    /// A constant being folded: its dimensions and values, and whether its type is an integer.
    struct Constant {
        var dims: [Int]
        var values: [Double]
        var integer: Bool
        var count: Int { values.count }
    }

    /// The ops that start a folded subgraph.
    static let starts: Set<String> = ["ConstantOfShape", "ScatterND", "Not", "Equal", "Where", "Pow", "Clip", "Exp", "MatMul", "GatherND",
                                      "Add", "Sub", "Mul", "Div", "Relu", "Sigmoid"]
    /// The ops folded.
    static let ops: Set<String> = starts.union(["Slice", "Transpose", "Reshape", "Unsqueeze", "Squeeze", "Add", "Sub", "Mul", "Div",
                                                "Concat", "Cast", "Identity", "Expand", "Relu", "Sigmoid", "Gather"])
    /// The most values a folded tensor may hold (Swin-B's largest mask holds 153,664).
    static let limit = 1 << 20

    /// Folds what `nodes` compute from `floats` and `integers`: the folded outputs' values (floats
    /// and integers apart) and the names of the folded nodes' outputs.
    static func fold(_ nodes: [Onnx_NodeProto], floats: [String: HostTensor], integers: [String: HostNumbers])
        -> (floats: [String: HostTensor], integers: [String: HostNumbers], folded: Set<String>) {
        var folded: [String: Constant] = [:]
        // Identity of a stored tensor (shared initializers) reads that tensor.
        var alias: [String: String] = [:]
        for node in nodes where node.opType == "Identity" && node.input.count == 1 && node.output.count == 1 {
            let source = alias[node.input[0]] ?? node.input[0]
            if floats[source] != nil || integers[source] != nil { alias[node.output[0]] = source }
        }
        func constant(_ name: String) -> Constant? {
            let name = alias[name] ?? name
            if let c = folded[name] { return c }
            if let i = integers[name] { return Constant(dims: i.dims, values: i.asReals, integer: i.reals == nil) }
            if let f = floats[name], f.values.count <= limit { return Constant(dims: f.shape.dims, values: f.values.map(Double.init), integer: false) }
            return nil
        }
        for node in nodes where ops.contains(node.opType) && node.output.count == 1 {
            let present = node.input.filter { !$0.isEmpty }
            // Integer tensors laid out from stored ones alone (BEiT's relative position index,
            // flattened and unsqueezed for a GatherND) fold too; stored reals stay weights.
            let storedIntegers = present.allSatisfy { integers[alias[$0] ?? $0].map { $0.reals == nil } ?? false }
            guard !present.isEmpty, starts.contains(node.opType) || storedIntegers || present.contains(where: { folded[$0] != nil }) else { continue }
            let inputs = node.input.map { $0.isEmpty ? nil : constant($0) }
            guard zip(node.input, inputs).allSatisfy({ $0.isEmpty || $1 != nil }) else { continue }
            // A node this evaluator cannot fold stays a node: its builder says why, if it must.
            guard let out = try? evaluate(node, inputs), out.count <= limit else { continue }
            folded[node.output[0]] = out
        }
        var outFloats: [String: HostTensor] = [:], outIntegers: [String: HostNumbers] = [:]
        for (name, c) in folded {
            if c.integer {
                outIntegers[name] = HostNumbers(dims: c.dims, values: c.values.map { $0.isFinite && abs($0) < 9e18 ? Int64($0) : 0 })
            } else {
                outFloats[name] = HostTensor(shape: Shape(c.dims), values: c.values.map { Float($0) })
                // Small reals also take part in shape arithmetic, as small Constant nodes do.
                if c.count <= 8 { outIntegers[name] = HostNumbers(dims: c.dims, reals: c.values) }
            }
        }
        return (outFloats, outIntegers, Set(folded.keys))
    }

    static func evaluate(_ node: Onnx_NodeProto, _ x: [Constant?]) throws -> Constant {
        func input(_ i: Int) throws -> Constant {
            guard i < x.count, let c = x[i] else { throw ModelError("input \(i) missing") }
            return c
        }
        func ints(_ name: String) -> [Int]? { node.attribute.first { $0.name == name }.map { $0.ints.map { Int($0) } } }
        func int(_ name: String, _ fallback: Int) -> Int { node.attribute.first { $0.name == name }.map { Int($0.i) } ?? fallback }
        switch node.opType {
        case "Identity":
            return try input(0)
        case "ConstantOfShape":
            let dims = try input(0).values.map { try whole($0) }
            guard dims.allSatisfy({ $0 >= 0 }), let n = Shape(dims).checkedCount, n <= limit else { throw ModelError("ConstantOfShape of \(dims)") }
            var fill = 0.0, integer = false
            if let t = node.attribute.first(where: { $0.name == "value" }), t.hasT {
                switch try ONNXImport.tensorValues(t.t) {
                case .float(let h): fill = Double(h.values.first ?? 0)
                case .integer(let v): (fill, integer) = (v.asReals.first ?? 0, true)
                }
            }
            return Constant(dims: dims, values: [Double](repeating: fill, count: n), integer: integer)
        case "Cast":
            let to = int("to", 1), c = try input(0)
            let integer = ![1, 10, 11, 16].contains(to)
            return Constant(dims: c.dims, values: to == 9 ? c.values.map { $0 != 0 ? 1 : 0 } : integer ? c.values.map { $0.rounded(.towardZero) } : c.values,
                            integer: integer)
        case "Not":
            let c = try input(0)
            return Constant(dims: c.dims, values: c.values.map { $0 == 0 ? 1 : 0 }, integer: true)
        case "Add", "Sub", "Mul", "Div", "Pow", "Equal":
            let (a, b) = (try input(0), try input(1))
            let integer = node.opType == "Equal" || (a.integer && b.integer && node.opType != "Pow")
            let f: (Double, Double) -> Double = switch node.opType {
            case "Add": { $0 + $1 }
            case "Sub": { $0 - $1 }
            case "Mul": { $0 * $1 }
            case "Div": integer ? { $1 == 0 ? 0 : ($0 / $1).rounded(.towardZero) } : { $0 / $1 }
            case "Pow": { Foundation.pow($0, $1) }
            default: { $0 == $1 ? 1 : 0 }
            }
            return try broadcast([a, b], integer: integer) { f($0[0], $0[1]) }
        case "Clip", "Exp", "Relu", "Sigmoid":
            let c = try input(0)
            let lo = x.count > 1 && x[1] != nil ? try input(1).values.first ?? -.infinity : node.attribute.first { $0.name == "min" }.map { Double($0.f) } ?? -.infinity
            let hi = x.count > 2 && x[2] != nil ? try input(2).values.first ?? .infinity : node.attribute.first { $0.name == "max" }.map { Double($0.f) } ?? .infinity
            let f: (Double) -> Double = switch node.opType {
            case "Clip": { Swift.min(Swift.max($0, lo), hi) }
            case "Exp": { Foundation.exp($0) }
            case "Relu": { Swift.max($0, 0) }
            default: { 1 / (1 + Foundation.exp(-$0)) }
            }
            // Float32 results, as the graph computes them.
            return Constant(dims: c.dims, values: c.values.map { Double(Float(f($0))) }, integer: c.integer && node.opType != "Exp" && node.opType != "Sigmoid")
        case "MatMul":
            let (a, b) = (try input(0), try input(1))
            guard b.dims.count == 2, a.dims.count >= 1, a.dims.last == b.dims[0] else { throw ModelError("MatMul of \(a.dims) by \(b.dims)") }
            let (k, n) = (b.dims[0], b.dims[1]), rows = a.count / Swift.max(k, 1)
            guard rows * n <= limit, rows * n * Swift.max(k, 1) <= 1 << 28 else { throw ModelError("a product of \(a.dims) by \(b.dims) is too large to fold") }
            var values = [Double](repeating: 0, count: rows * n)
            for r in 0..<rows {
                for j in 0..<n {
                    var sum = 0.0
                    for i in 0..<k { sum += a.values[r * k + i] * b.values[i * n + j] }
                    values[r * n + j] = Double(Float(sum))
                }
            }
            return Constant(dims: Array(a.dims.dropLast()) + [n], values: values, integer: false)
        case "Gather", "GatherND":
            let (data, indices) = (try input(0), try input(1))
            guard int("axis", 0) == 0, int("batch_dims", 0) == 0, !data.dims.isEmpty else { throw ModelError("\(node.opType) along another axis") }
            let k = node.opType == "Gather" ? 1 : indices.dims.last ?? 1
            guard k >= 1, k <= data.dims.count else { throw ModelError("\(node.opType) indices \(indices.dims) into \(data.dims)") }
            let slice = data.dims.suffix(from: k).reduce(1, *), strides = data.dims.strides
            let picks = node.opType == "Gather" ? indices.count : indices.count / k
            guard picks * slice <= limit else { throw ModelError("\(node.opType) of \(picks) slices of \(slice) is too large to fold") }
            var values: [Double] = []
            values.reserveCapacity(picks * slice)
            for p in 0..<picks {
                let offset = try rowOffset(indices, row: p, k: k, dims: data.dims, strides: strides)
                values += data.values[offset..<(offset + slice)]
            }
            let dims = (node.opType == "Gather" ? indices.dims : Array(indices.dims.dropLast())) + Array(data.dims.suffix(from: k))
            return Constant(dims: dims, values: values, integer: data.integer)
        case "Expand":
            let (c, shape) = (try input(0), try input(1).values.map { try whole($0) })
            guard shape.allSatisfy({ $0 >= 0 }), let n = Shape(shape).checkedCount, n <= limit else { throw ModelError("Expand to \(shape)") }
            return try broadcast([c, Constant(dims: shape, values: [Double](repeating: 0, count: n), integer: c.integer)], integer: c.integer) { $0[0] }
        case "Where":
            let (c, a, b) = (try input(0), try input(1), try input(2))
            return try broadcast([c, a, b], integer: a.integer && b.integer) { $0[0] != 0 ? $0[1] : $0[2] }
        case "Reshape":
            let (c, target) = (try input(0), try input(1).values.map { Int64(try whole($0)) })
            let dims = reshapeTarget(target, of: c.dims)
            guard dims.allSatisfy({ $0 >= 0 }), dims.reduce(1, *) == c.count else { throw ModelError("cannot reshape \(c.dims) to \(target)") }
            return Constant(dims: dims, values: c.values, integer: c.integer)
        case "Unsqueeze", "Squeeze":
            let c = try input(0)
            let axes = try ints("axes") ?? (x.count > 1 ? try input(1).values.map { try whole($0) } : nil)
            if node.opType == "Squeeze" { return Constant(dims: try squeezed(c.dims, axes: axes), values: c.values, integer: c.integer) }
            guard let axes else { throw ModelError("Unsqueeze without axes") }
            return Constant(dims: try unsqueezed(c.dims, axes: axes), values: c.values, integer: c.integer)
        case "Transpose":
            let c = try input(0)
            let perm = ints("perm") ?? Array((0..<c.dims.count).reversed())
            guard perm.sorted() == Array(0..<c.dims.count) else { throw ModelError("Transpose by \(perm) of \(c.dims)") }
            let dims = perm.map { c.dims[$0] }, strides = c.dims.strides
            return Constant(dims: dims, values: dims.indexList.map { idx in zip(idx, perm).reduce(0) { $0 + $1.0 * strides[$1.1] } }.map { c.values[$0] },
                            integer: c.integer)
        case "Slice":
            let c = try input(0)
            let starts = try input(1).values, ends = try input(2).values
            let axes = x.count > 3 && x[3] != nil ? try input(3).values.map { try whole($0) } : Array(0..<starts.count)
            let steps = x.count > 4 && x[4] != nil ? try input(4).values : [Double](repeating: 1, count: starts.count)
            guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else { throw ModelError("Slice operands disagree") }
            var ranges = c.dims.map { Array(0..<$0) }
            for (k, axis) in axes.enumerated() {
                let a = axis < 0 ? axis + c.dims.count : axis
                guard a >= 0, a < c.dims.count else { throw ModelError("Slice axis \(axis) of \(c.dims)") }
                ranges[a] = try sliceRange(count: c.dims[a], start: clamped(starts[k]), end: clamped(ends[k]), step: clamped(steps[k]))
            }
            let dims = ranges.map(\.count), strides = c.dims.strides
            return Constant(dims: dims, values: dims.indexList.map { idx in idx.enumerated().reduce(0) { $0 + ranges[$1.offset][$1.element] * strides[$1.offset] } }
                .map { c.values[$0] }, integer: c.integer)
        case "Concat":
            let parts = try x.indices.map { try input($0) }
            guard parts.reduce(0, { $0 + $1.count }) <= limit else { throw ModelError("a Concat too large to fold") }
            guard let first = parts.first else { throw ModelError("Concat of nothing") }
            let rank = first.dims.count, axis = int("axis", 0) < 0 ? int("axis", 0) + rank : int("axis", 0)
            guard axis >= 0, axis < rank, parts.allSatisfy({ $0.dims.count == rank && $0.dims.enumerated().allSatisfy { $0.offset == axis || $0.element == first.dims[$0.offset] } }) else {
                throw ModelError("Concat of \(parts.map(\.dims)) along \(axis)")
            }
            let outer = first.dims.prefix(axis).reduce(1, *)
            var values: [Double] = []
            for o in 0..<outer {
                for p in parts {
                    let inner = p.dims.suffix(from: axis).reduce(1, *)
                    values += p.values[(o * inner)..<((o + 1) * inner)]
                }
            }
            var dims = first.dims
            dims[axis] = parts.reduce(0) { $0 + $1.dims[axis] }
            return Constant(dims: dims, values: values, integer: parts.allSatisfy(\.integer))
        case "ScatterND":
            let (data, indices, updates) = (try input(0), try input(1), try input(2))
            guard node.attribute.first(where: { $0.name == "reduction" }).map({ String(decoding: $0.s, as: UTF8.self) == "none" }) ?? true else {
                throw ModelError("ScatterND with a reduction")
            }
            guard let k = indices.dims.last, k <= data.dims.count, indices.dims.count >= 1 else { throw ModelError("ScatterND indices \(indices.dims)") }
            let slice = data.dims.suffix(from: k).reduce(1, *), strides = data.dims.strides
            let rows = indices.count / Swift.max(k, 1)
            guard updates.count == rows * slice else { throw ModelError("ScatterND updates \(updates.dims) for \(rows) slices of \(slice)") }
            var values = data.values
            for r in 0..<rows {
                let offset = try rowOffset(indices, row: r, k: k, dims: data.dims, strides: strides)
                for e in 0..<slice { values[offset + e] = updates.values[r * slice + e] }
            }
            return Constant(dims: data.dims, values: values, integer: data.integer)
        default:
            throw ModelError("\(node.opType) is not folded")
        }
    }

    /// `f` of the inputs' elements under numpy's broadcasting.
    static func broadcast(_ inputs: [Constant], integer: Bool, _ f: ([Double]) -> Double) throws -> Constant {
        let rank = inputs.map(\.dims.count).max() ?? 0
        let padded = inputs.map { [Int](repeating: 1, count: rank - $0.dims.count) + $0.dims }
        var dims = [Int](repeating: 1, count: rank)
        for d in 0..<rank {
            let sizes = Set(padded.map { $0[d] }).subtracting([1])
            guard sizes.count <= 1 else { throw ModelError("cannot broadcast \(inputs.map(\.dims))") }
            dims[d] = sizes.first ?? (padded.contains { $0[d] == 0 } ? 0 : 1)
        }
        guard let n = Shape(dims).checkedCount, n <= limit else { throw ModelError("a broadcast of \(dims)") }
        let strides = padded.map { p -> [Int] in
            let s = p.strides
            return (0..<rank).map { p[$0] == 1 ? 0 : s[$0] }
        }
        return Constant(dims: dims, values: dims.indexList.map { idx in
            f(inputs.indices.map { i in inputs[i].values[zip(idx, strides[i]).reduce(0) { $0 + $1.0 * $1.1 }] })
        }, integer: integer)
    }

    /// The element offset that row `row` of `indices` (k coordinates, negative ones counting
    /// from the end) names in a tensor of `dims` with `strides`.
    private static func rowOffset(_ indices: Constant, row: Int, k: Int, dims: [Int], strides: [Int]) throws -> Int {
        var offset = 0
        for j in 0..<k {
            var i = try whole(indices.values[row * k + j])
            if i < 0 { i += dims[j] }
            guard i >= 0, i < dims[j] else { throw ModelError("index \(indices.values[row * k + j]) outside \(dims[j])") }
            offset += i * strides[j]
        }
        return offset
    }

    private static func clamped(_ v: Double) -> Int64 { v.isNaN ? 0 : Int64(Swift.max(Swift.min(v, 9e18), -9e18)) }

    /// A number read as an index or a size: refused unless it is a whole number of at most 2^62.
    private static func whole(_ v: Double) throws -> Int {
        guard v.isFinite, v == v.rounded(), abs(v) <= 0x1p62 else { throw ModelError("\(v) is not a whole number of an index's size") }
        return Int(v)
    }
}

private extension Array where Element == Int {
    /// Row-major strides of these dimensions.
    var strides: [Int] {
        var s = [Int](repeating: 1, count: count)
        for i in stride(from: count - 2, through: 0, by: -1) { s[i] = s[i + 1] * self[i + 1] }
        return s
    }

    /// Every index of these dimensions, in row-major order.
    var indexList: [[Int]] {
        let n = reduce(1, *)
        guard n > 0 else { return [] }
        var out: [[Int]] = [], index = [Int](repeating: 0, count: count)
        out.reserveCapacity(n)
        for _ in 0..<n {
            out.append(index)
            var d = count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < self[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }
}

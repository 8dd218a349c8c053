import Backend
import Foundation
import Graph

// Integer ops on the host: the exporter's shape arithmetic, evaluated per pass.
extension ONNXNode {
    static let hostOps: Set<String> = ["Gather", "Add", "Sub", "Mul", "Div", "Mod", "Concat", "Unsqueeze", "Squeeze", "Cast",
                                       "Slice", "Identity", "Equal", "Where", "Range", "Sqrt", "Reshape", "ConstantOfShape",
                                       "ScatterND", "Not", "Pow", "Transpose", "Expand"]

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
                // Tensors of other dimensions broadcast (numpy's rules): the folding evaluator.
                guard sameOrScalar(a, b) else { throw ModelError("\(op) of numbers \(a.dims) and \(b.dims) broadcast") }
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
                guard sameOrScalar(a, b), a.values.count == b.values.count || b.values.count == 1 else { throw ModelError("Equal of integer tensors \(a.dims) and \(b.dims)") }
                return HostNumbers(dims: a.dims, values: a.values.indices.map { a.values[$0] == b.values[b.values.count == 1 ? 0 : $0] ? 1 : 0 })
            }
        case "Where":
            try only([])
            return { _, x in
                let (c, a, b) = (try integers(x, 0), try integers(x, 1), try integers(x, 2))
                let n = Swift.max(c.values.count, a.values.count, b.values.count)
                guard sameOrScalar(c, a), sameOrScalar(c, b), sameOrScalar(a, b), [c, a, b].allSatisfy({ $0.values.count == n || $0.values.count == 1 }) else { throw ModelError("Where of integer tensors \(c.dims), \(a.dims), \(b.dims)") }
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
        var rest = dims
        rest[free] = 1
        // A product that overflows leaves -1 in place: the caller refuses the shape.
        if let known = Shape(rest).checkedCount { dims[free] = known > 0 ? old.reduce(1, *) / known : 0 }
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

/// Whether two host tensors combine elementwise without broadcasting to a new shape: the same
/// dimensions, a single number of no more dimensions than the other, or vectors (and scalars)
/// of one length. ([1, 1] + [6] is [1, 6]: the folding evaluator's broadcast.)
func sameOrScalar(_ a: HostNumbers, _ b: HostNumbers) -> Bool {
    a.dims == b.dims || (a.values.count == 1 && a.dims.count <= b.dims.count) || (b.values.count == 1 && b.dims.count <= a.dims.count)
        || (a.dims.count <= 1 && b.dims.count <= 1 && a.values.count == b.values.count)
}

import Backend
import Foundation
import Graph

// Builders of the tensor ops: arithmetic, shapes, indexing, elementwise functions.
extension NodeReader {
    func buildArithmetic() throws -> BuiltOp {
        var built = BuiltOp()
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
            built.run = { g, x, _ in
                var y = try value(x, i)
                if scaleBy != 1 { y = try g.scale(y, scaleBy) }
                return offsetBy != 0 ? try g.pointwise(y, .offset(offsetBy)) : y
            }
        } else if let c = param(constantFirst ? 0 : 1), floats[c]!.shape.dims.filter({ $0 != 1 }).count > 1 {
            // A stored tensor over x's trailing dimensions (ViT's position embedding
            // [1, 197, 768]; MaxViT's relative position bias [1, heads, 49, 49] over
            // [N, windows, heads, 49, 49]): the same tensor for every index of the leading
            // dimensions, a weight.
            guard op == "Add" || op == "Mul" else { throw ModelError("\(op) with a stored tensor of shape \(floats[c]!.shape): only Add and Mul") }
            let (i, t) = (constantFirst ? 1 : 0, floats[c]!)
            built.parameterNames = [c]
            built.run = { g, x, ps in
                let v = try value(x, i)
                let s = g.shape(v)
                let lead = t.shape.dims.prefix { $0 == 1 }.count, trailing = Array(t.shape.dims.dropFirst(lead))
                guard s.rank >= trailing.count, Array(s.dims.suffix(trailing.count)) == trailing else {
                    // Broadcast on the host to x's shape where numpy would (Swin's attention
                    // mask [1, windows, 1, 49, 49] over [N, windows, heads, 49, 49]), once per
                    // parameter store and shape.
                    let full = try ps.derived("\(c) broadcast to \(s.dims)") {
                        try g.backend.tensor(try broadcastValues(try g.backend.values(try ps(c)), t.shape.dims, to: s.dims), s)
                    }
                    return op == "Add" ? try g.add(v, g.parameter(full)) : try g.mul(v, g.parameter(full))
                }
                let size = trailing.reduce(1, *), w = try ps(c)
                guard size > 0, s.count % size == 0 else { throw ModelError("\(op) of \(s) and a stored tensor of shape \(t.shape)") }
                let one = g.parameter(Tensor(shape: Shape([1] + trailing), storage: w.storage))
                let all = try g.reshape(try repeated(g, one, s.count / size), s)
                return op == "Add" ? try g.add(v, all) : try g.mul(v, all)
            }
        } else if let c = param(constantFirst ? 0 : 1) {
            // A stored tensor broadcast along one dimension of x (a bias on the last axis, a
            // per-channel scale [C, 1, 1]): an affine map along that axis, its values weights.
            let t = floats[c]!
            let along = t.shape.dims.indices.filter { t.shape[$0] != 1 }
            guard op != "Div" || !constantFirst else { throw ModelError("dividing a constant by a computed tensor is not supported") }
            let (i, rank, k) = (constantFirst ? 1 : 0, t.shape.rank, along.first ?? t.shape.rank - 1)
            built.parameterNames = [c]
            built.run = { g, x, ps in
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
            built.run = { g, x, _ in
                let n = try integers(x, k).asReals
                if n.count > 1, op == "Add" || op == "Mul" || (op == "Sub" && k == 1) {
                    // A tensor of numbers (Swin's attention mask from the TorchScript exporter):
                    // broadcast to the computed one, a constant.
                    let (a, b) = try deviceOperands(g, x, op)
                    return op == "Add" ? try g.add(a, b) : op == "Mul" ? try g.mul(a, b) : try g.add(a, try g.scale(b, -1))
                }
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
            case "Add": built.run = { g, x, _ in let (a, b) = try deviceOperands(g, x, op); return try g.add(a, b) }
            case "Sub": built.run = { g, x, _ in let (a, b) = try deviceOperands(g, x, op); return try g.add(a, try g.scale(b, -1)) }
            case "Mul": built.run = { g, x, _ in let (a, b) = try deviceOperands(g, x, op); return try g.mul(a, b) }
            default:
                // a / b = a * (1 / b) (F.normalize's division by a norm: [..., K] by [..., 1]).
                built.run = { g, x, _ in
                    let (a, b) = try deviceOperands(g, x, op)
                    return try g.mul(a, try g.pointwise(b, .stabilizedReciprocal(0)))
                }
            }
        }
        return built
    }

    func buildConcat() throws -> BuiltOp {
        var built = BuiltOp()
        // Stored parts (the dynamo exporter's class token, already expanded to the traced
        // batch) join as parameters, repeated to this pass's batch when they lead with it.
        try only(["axis"])
        let axis = int("axis", 1), storedParts = node.input.indices.map { param($0) }, exportBatch = context.exportBatch
        built.parameterNames = storedParts.compactMap { $0 }
        built.run = { g, x, ps in
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
        return built
    }

    func buildFlatten() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["axis"])
        guard int("axis", 1) == 1 else { throw ModelError("flatten from axis \(int("axis", 1)): only axis 1") }
        built.run = { g, x, _ in try g.flatten(try value(x, 0)) }
        return built
    }

    func buildReshape() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["allowzero"])
        guard integral(1) else { throw ModelError("the shape must be a constant or computed from shapes") }
        let exportBatch = context.exportBatch
        let stored = param(0)
        built.parameterNames = stored.map { [$0] } ?? []
        built.run = { g, x, ps in
            // A stored tensor (a weight the exporter folded, as MaxViT's gathered position
            // bias) is laid out as a computed one.
            let v = try stored.map { g.parameter(try ps($0)) } ?? value(x, 0)
            let old = g.shape(v)
            let target = try integers(x, 1).values
            var dims = reshapeTarget(target, of: old.dims)
            // The exporter writes the batch it traced with into target shapes; the graph runs
            // at any batch, so a leading dimension equal to that batch becomes this pass's.
            if Shape(dims).checkedCount != old.count, let b = exportBatch, old.rank > 0, b != old[0], target.first == Int64(b) {
                var rebatched = target
                rebatched[0] = Int64(old[0])
                dims = reshapeTarget(rebatched, of: old.dims)
            }
            guard Shape(dims).checkedCount == old.count else {
                throw ModelError("cannot reshape \(old) to \(target): the graph fixed this shape when it was exported; run it at the batch and input size it was exported at")
            }
            return try g.reshape(v, Shape(dims))
        }
        return built
    }

    func buildTranspose() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["perm"])
        let perm = ints("perm"), stored = param(0)
        built.parameterNames = stored.map { [$0] } ?? []
        built.run = { g, x, ps in
            let v = try stored.map { g.parameter(try ps($0)) } ?? value(x, 0)
            return try g.permute(v, perm ?? Array((0..<g.shape(v).rank).reversed()))
        }
        return built
    }

    func buildPad() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["mode"])
        if let mode = attributes["mode"], String(decoding: mode.s, as: UTF8.self) != "constant" { throw ModelError("only constant padding is supported") }
        if node.input.count > 1, let pads = stored(1), pads.allSatisfy({ $0 == 0 }) {
            // No padding at all (Swin pads its [N, H, W, C] maps to whole windows: none at 224).
            built.run = { _, x, _ in try value(x, 0) }
            return built
        }
        if node.input.count > 1, stored(1) == nil, integral(1) {
            // Pads computed in the pass from shapes (the TorchScript exporter's Swin: none at
            // 224): none, or zeros around rows and columns of [N, C, H, W].
            try only(["mode"])
            guard node.input.count < 4 || node.input[3].isEmpty, (scalar(2) ?? 0) == 0 else {
                throw ModelError("only zero padding of all axes is supported")
            }
            built.run = { g, x, _ in
                let v = try value(x, 0), pads = try integers(x, 1).values
                if pads.allSatisfy({ $0 == 0 }) { return v }
                if pads.count == 8, pads.allSatisfy({ $0 >= 0 }), pads[0] == 0, pads[3] == 0, pads[4] == 0, pads[7] == 0 {
                    let spatial = [pads[1], pads[2], pads[5], pads[6]].map { Int($0) }
                    return try g.permute(try zeroPadded(g, try g.permute(v, [0, 3, 1, 2]), spatial), [0, 2, 3, 1])
                }
                guard pads.count == 8, pads.allSatisfy({ $0 >= 0 }), pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else {
                    throw ModelError("Pad by \(pads): only non-negative pads of rows and columns of [N, C, H, W]")
                }
                return try zeroPadded(g, v, [pads[2], pads[3], pads[6], pads[7]].map { Int($0) })
            }
            return built
        }
        if node.input.count > 1, let pads = stored(1), pads.count == 8, pads.allSatisfy({ $0 >= 0 }), pads[0] == 0, pads[3] == 0, pads[4] == 0, pads[7] == 0,
           node.input.count < 4 || node.input[3].isEmpty, (scalar(2) ?? 0) == 0 {
            // Rows and columns of an [N, H, W, C] map (Swin's windows): between permutations.
            let spatial = [pads[1], pads[2], pads[5], pads[6]].map { Int($0) }
            built.run = { g, x, _ in
                try g.permute(try zeroPadded(g, try g.permute(try value(x, 0), [0, 3, 1, 2]), spatial), [0, 2, 3, 1])
            }
            return built
        }
        guard node.input.count > 1, let pads = stored(1), pads.count == 8, pads.allSatisfy({ $0 >= 0 }),
              pads[0] == 0, pads[1] == 0, pads[4] == 0, pads[5] == 0 else {
            throw ModelError("only constant, non-negative pads of rows and columns are supported")
        }
        guard node.input.count < 4 || node.input[3].isEmpty else { throw ModelError("pads along chosen axes are not supported") }
        guard (scalar(2) ?? 0) == 0 else { throw ModelError("only zero padding is supported") }
        let spatial = [pads[2], pads[3], pads[6], pads[7]].map { Int($0) }
        built.run = { g, x, _ in try zeroPadded(g, try value(x, 0), spatial) }
        return built
    }

    func buildGatherIndices() throws -> BuiltOp {
        var built = BuiltOp()
        // Constant indices that run through consecutive elements (the dynamo exporter's
        // as_strided after a global pooling gathers 0..<C of a flattened tensor): that range,
        // laid out in the indices' shape.
        try only(["axis"])
        let index = stored(1)!, dims = context.integers[node.input[1]]!.dims, axis = int("axis", 0)
        if let table = param(0), let t = floats[table] {
            // Rows of a stored tensor by constant indices (a relative position bias table read
            // at each pair of tokens): gathered once per parameter store, a constant.
            let rank = t.shape.rank, a = axis < 0 ? axis + rank : axis
            guard a == 0, rank >= 1 else { throw ModelError("gathering a stored tensor along axis \(axis): only axis 0") }
            let rows = t.shape[0], width = t.shape.count / Swift.max(rows, 1)
            let picked = try index.map { i -> Int in
                let k = i < 0 ? Int(i) + rows : Int(i)
                guard k >= 0, k < rows else { throw ModelError("Gather index \(i) outside \(rows) rows") }
                return k
            }
            let out = Shape(dims + Array(t.shape.dims.dropFirst())), key = table + " gathered by " + node.input[1]
            built.parameterNames = [table]
            built.run = { g, _, ps in
                g.parameter(try ps.derived(key) {
                    let values = try g.backend.values(try ps(table))
                    return try g.backend.tensor(picked.flatMap { values[($0 * width)..<(($0 + 1) * width)] }, out)
                })
            }
            return built
        }
        // (All negative or all not: [-1, 0] is the last element, then the first.)
        guard zip(index, index.dropFirst()).allSatisfy({ $1 == $0 + 1 }), index.allSatisfy({ $0 >= 0 }) || index.allSatisfy({ $0 < 0 }) else {
            throw ModelError("only gathering one constant index or a run of consecutive ones is supported")
        }
        built.run = { g, x, _ in
            let v = try value(x, 0)
            let s = g.shape(v)
            let a = axis < 0 ? axis + s.rank : axis
            guard a >= 0, a < s.rank else { throw ModelError("Gather along axis \(axis) of \(s)") }
            let start = index[0] < 0 ? Int(index[0]) + s[a] : Int(index[0])
            guard start >= 0, start + index.count <= s[a] else { throw ModelError("Gather of indices \(index[0])... along axis \(a) of \(s)") }
            let out = Array(s.dims[..<a]) + dims + Array(s.dims[(a + 1)...])
            return try g.reshape(try slice(g, v, axis: a, from: start, count: index.count), Shape(out))
        }
        return built
    }

    func buildGather() throws -> BuiltOp {
        var built = BuiltOp()
        // One index along any axis of a tensor (GoogLeNet's transform_input takes a channel,
        // a ViT its class token): that slice, the axis removed.
        try only(["axis"])
        guard node.input.count > 1, let index = stored(1), index.count == 1 else {
            throw ModelError("only gathering one constant index or a run of consecutive ones is supported")
        }
        let (axis, k, scalarIndex) = (int("axis", 0), Int(index[0]), context.integers[node.input[1]]!.dims.isEmpty)
        built.run = { g, x, _ in
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
        return built
    }

    func buildSlice() throws -> BuiltOp {
        var built = BuiltOp()
        // Consecutive elements along one axis of a tensor (ShuffleNet's channel halves).
        try only([])
        guard (1...4).allSatisfy({ $0 >= node.input.count || node.input[$0].isEmpty || integral($0) }), integral(1), integral(2) else {
            throw ModelError("starts, ends, axes and steps must be constants or computed from shapes")
        }
        built.run = { g, x, _ in
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
            guard let first = range.first else { throw ModelError("Slice of \(s) along axis \(a): an empty range") }
            if steps[0] == 1 { return try slice(g, v, axis: a, from: first, count: range.count) }
            // Every k-th element (Swin's patch merging, x[:, 0::2, 1::2]): the axis split into
            // [L / k, k], one index of the second taken; the range must reach the axis' end.
            let k = Int(steps[0])
            guard k > 1, s[a] % k == 0, first < k, range.count == s[a] / k else {
                throw ModelError("Slice of \(s) along axis \(a) by step \(steps[0]): only every k-th element from one of the first k to the end")
            }
            let split = Array(s.dims[..<a]) + [s[a] / k, k] + Array(s.dims[(a + 1)...])
            var out = s.dims
            out[a] = s[a] / k
            return try g.reshape(try slice(g, try g.reshape(v, Shape(split)), axis: a + 1, from: first, count: 1), Shape(out))
        }
        return built
    }

    func buildUnsqueeze() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["axes"])
        guard let axes = ((node.input.count > 1 ? stored(1) : nil) ?? attributes["axes"]?.ints)?.map({ Int($0) }) else {
            throw ModelError("the axes must be constants")
        }
        let stored = param(0)
        built.parameterNames = stored.map { [$0] } ?? []
        built.run = { g, x, ps in
            let v = try stored.map { g.parameter(try ps($0)) } ?? value(x, 0)
            return try g.reshape(v, Shape(try unsqueezed(g.shape(v).dims, axes: axes)))
        }
        return built
    }

    func buildSqueeze() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["axes"])
        let axes = (node.input.count > 1 ? stored(1) : nil)?.map { Int($0) } ?? ints("axes"), weight = param(0)
        built.parameterNames = weight.map { [$0] } ?? []
        built.run = { g, x, ps in
            let v = try weight.map { g.parameter(try ps($0)) } ?? value(x, 0)
            return try g.reshape(v, Shape(try squeezed(g.shape(v).dims, axes: axes)))
        }
        return built
    }

    func buildExpand() throws -> BuiltOp {
        var built = BuiltOp()
        // A tensor (a stored one: ViT's class token) repeated to a shape computed from shapes;
        // a leading dimension equal to the traced batch becomes this pass's batch.
        try only([])
        guard integral(1) else { throw ModelError("the shape must be a constant or computed from shapes") }
        let stored = param(0), exportBatch = context.exportBatch
        built.parameterNames = stored.map { [$0] } ?? []
        built.run = { g, x, ps in
            let v = try stored.map { g.parameter(try ps($0)) } ?? value(x, 0)
            let s = g.shape(v).dims, target = try integers(x, 1).values.map { Int($0) }
            let rank = Swift.max(s.count, target.count)
            let a = [Int](repeating: 1, count: rank - s.count) + s, b = [Int](repeating: 1, count: rank - target.count) + target
            var out = try zip(a, b).map { p, q -> Int in
                guard p == q || p == 1 || q == 1 else { throw ModelError("cannot expand \(s) to \(target)") }
                return Swift.max(p, q)
            }
            if let e = exportBatch, x.batch != e, out.first == e { out[0] = x.batch }
            if a.count >= 1, a.last == 1, (out.last ?? 1) > 1, Array(a.dropLast()) == Array(out.dropLast()) {
                // Along the last dimension (a norm [..., 1] expanded to its vectors [..., K]).
                let k = out.last!
                return try g.reshape(try g.expand(try g.reshape(v, [a.reduce(1, *), 1, 1, 1]), height: 1, width: k), Shape(out))
            }
            guard zip(a, out).dropFirst().allSatisfy({ $0 == $1 }) else { throw ModelError("expanding \(s) to \(out): only along the first or the last dimension") }
            return try repeated(g, try g.reshape(v, Shape(a)), out[0] / Swift.max(a[0], 1))
        }
        return built
    }

    func buildErf() throws -> BuiltOp {
        var built = BuiltOp()
        try only([])
        built.run = { g, x, _ in try g.pointwise(try value(x, 0), .erf) }
        return built
    }

    func buildTanh() throws -> BuiltOp {
        var built = BuiltOp()
        try only([])
        built.run = { g, x, _ in try g.pointwise(try value(x, 0), .tanh) }
        return built
    }

    func buildGelu() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["approximate"])
        if let a = attributes["approximate"], String(decoding: a.s, as: UTF8.self) != "none" {
            throw ModelError("approximate \(String(decoding: a.s, as: UTF8.self)): only the exact GELU")
        }
        built.run = { g, x, _ in try g.pointwise(try value(x, 0), .gelu) }
        return built
    }

    func buildLayerNormalization() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["axis", "epsilon", "stash_type"])
        guard node.output.count == 1 || node.output.dropFirst().allSatisfy(\.isEmpty) else {
            throw ModelError("only the normalized output (not its mean and inverse deviation) is supported")
        }
        guard let scale = param(1) else { throw ModelError("the scale must be an initializer") }
        let bias = param(2), axis = int("axis", -1), eps = float("epsilon", 1e-5)
        built.parameterNames = [scale] + (bias.map { [$0] } ?? [])
        built.run = { g, x, ps in
            let v = try value(x, 0)
            guard axis == -1 || axis == g.shape(v).rank - 1 else {
                throw ModelError("normalization from axis \(axis) of \(g.shape(v)): only over the last axis")
            }
            return try g.layerNorm(v, gamma: g.parameter(try ps(scale)), beta: try bias.map { g.parameter(try ps($0)) }, eps: eps)
        }
        return built
    }

    func buildInstanceNormalization() throws -> BuiltOp {
        var built = BuiltOp()
        // Each (sample, channel) row normalized over the spatial axes, then scaled and shifted
        // per channel: torch's GroupNorm as both exporters write it (a Reshape to [N, groups,
        // -1], this op with a scale of ones and a bias of zeros, the Reshape back and the
        // affine Mul and Add); InstanceNorm2d as it is.
        try only(["epsilon"])
        guard let scale = param(1), let bias = param(2) else { throw ModelError("the scale and bias must be initializers or constants") }
        let eps = float("epsilon", 1e-5)
        let plain = floats[scale]!.values.allSatisfy { $0 == 1 } && floats[bias]!.values.allSatisfy { $0 == 0 }
        built.parameterNames = plain ? [] : [scale, bias]
        built.run = { g, x, ps in
            let v = try value(x, 0), s = g.shape(v)
            guard s.rank >= 3 else { throw ModelError("InstanceNormalization of \(s): the input must be [N, C, spatial...]") }
            let (rows, d) = (s.dims[0] * s.dims[1], s.count / max(s.dims[0] * s.dims[1], 1))
            let normalized = try g.layerNorm(try g.reshape(v, [rows, d]), gamma: nil, beta: nil, eps: eps)
            if plain { return try g.reshape(normalized, s) }
            let c = s.dims[1], (gamma, beta) = (try ps(scale), try ps(bias))
            guard gamma.shape.count == c, beta.shape.count == c else {
                throw ModelError("InstanceNormalization of \(s) by a scale of \(gamma.shape) and a bias of \(beta.shape): one per channel")
            }
            let zeros = try ps.derived("instance norm: \(c) zeros") { try g.backend.tensor([Float](repeating: 0, count: c), [c]) }
            let ones = try ps.derived("instance norm: \(c) ones") { try g.backend.tensor([Float](repeating: 1, count: c), [c]) }
            let unit = BatchNormParams(gamma: gamma, beta: beta, mean: zeros, variance: ones, eps: 0)
            let affine = try g.batchNorm2d(try g.reshape(normalized, [s.dims[0], c, d, 1]), unit)
            return try g.reshape(affine, s)
        }
        return built
    }

    func buildIdentity() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["ratio", "seed"])
        built.run = { _, x, _ in try value(x, 0) }
        return built
    }
}

/// `values` of dimensions `dims` broadcast to `target` as numpy would; refused where it would not.
func broadcastValues(_ values: [Float], _ dims: [Int], to target: [Int]) throws -> [Float] {
    guard dims.count <= target.count else { throw ModelError("cannot broadcast \(dims) to \(target)") }
    let padded = [Int](repeating: 1, count: target.count - dims.count) + dims
    guard zip(padded, target).allSatisfy({ $0 == $1 || $0 == 1 }), let n = Shape(target).checkedCount else {
        throw ModelError("cannot broadcast \(dims) to \(target)")
    }
    var strides = [Int](repeating: 0, count: target.count), step = 1
    for d in stride(from: target.count - 1, through: 0, by: -1) {
        strides[d] = padded[d] == 1 ? 0 : step
        step *= padded[d]
    }
    var out = [Float](repeating: 0, count: n), index = [Int](repeating: 0, count: target.count)
    for i in 0..<n {
        var source = 0
        for d in 0..<target.count { source += index[d] * strides[d] }
        out[i] = values[source]
        var d = target.count - 1
        while d >= 0 {
            index[d] += 1
            if index[d] < target[d] { break }
            index[d] = 0
            d -= 1
        }
    }
    return out
}

/// The two operands of an elementwise op as device values of one shape: computed ones matched
/// (`matched`), or a host tensor (computed in this pass from shapes and constants: Swin's
/// attention mask from the TorchScript exporter) broadcast on the host to the computed one's
/// shape, a constant.
func deviceOperands(_ g: Graph, _ x: Operands, _ op: String) throws -> (Graph.Value, Graph.Value) {
    func constant(_ h: HostNumbers, like other: Graph.Value) throws -> Graph.Value {
        let target = g.shape(other).dims
        return g.constant(try g.backend.tensor(try broadcastValues(h.asReals.map { Float($0) }, h.dims, to: target), Shape(target)))
    }
    let host = x.integers.count > 1 ? (x.integers[0], x.integers[1]) : (nil, nil)
    if x.values.count > 1, let a = x.values[0], x.values[1] == nil, let h = host.1 { return (a, try constant(h, like: a)) }
    if x.values.count > 1, x.values[0] == nil, let h = host.0, let b = x.values[1] { return (try constant(h, like: b), b) }
    return try matched(g, try value(x, 0), try value(x, 1), op)
}

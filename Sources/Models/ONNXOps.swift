import Backend
import Foundation
import Graph

// Builders of the layer ops (convolution, activations, pooling, normalization, products,
// softmax, split), then the graph helpers all builders share.
extension NodeReader {
    func buildConv() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"])
        guard let w = param(1) else { throw ModelError("the weight must be an initializer") }
        let bias = param(2), pads = try pads()
        if let kernel = ints("kernel_shape"), let shape = floats[w]?.shape, shape.rank == 4, kernel != Array(shape.dims[2...]) {
            throw ModelError("kernel_shape \(kernel) contradicts the weight's \(shape): refused")
        }
        // Asymmetric pads (TensorFlow's "same" padding at stride 2) as zeros added first.
        let symmetric = pads[0] == pads[2] && pads[1] == pads[3]
        let p = Conv2DParams(stride: try pair("strides", 1), padding: symmetric ? (pads[0], pads[1]) : (0, 0), dilation: try pair("dilations", 1), groups: int("group", 1))
        built.parameterNames = [w] + (bias.map { [$0] } ?? [])
        built.run = { g, x, ps in
            let input = symmetric ? try value(x, 0) : try zeroPadded(g, try value(x, 0), pads)
            return try g.conv2d(input, weight: g.parameter(try ps(w)), bias: try bias.map { g.parameter(try ps($0)) }, p)
        }
        return built
    }

    func buildRelu() throws -> BuiltOp {
        var built = BuiltOp()
        try only([])
        built.run = { g, x, _ in try g.activation(try value(x, 0), .relu) }
        return built
    }

    func buildClip() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["min", "max"])
        let lo = scalar(1) ?? attributes["min"]?.f ?? -.infinity, hi = scalar(2) ?? attributes["max"]?.f ?? .infinity
        if lo == 0 && hi == 6 { built.run = { g, x, _ in try g.activation(try value(x, 0), .relu6) } }
        else if lo == 0 && hi == .infinity { built.run = { g, x, _ in try g.activation(try value(x, 0), .relu) } }
        else if lo.isFinite || hi.isFinite, !lo.isNaN, !hi.isNaN, lo <= hi {
            // Other bounds (F.normalize's clamp of a norm to 1e-12 and up): max(x, lo) =
            // relu(x - lo) + lo, min(y, hi) = hi - relu(hi - y), gradients as PyTorch's clamp.
            built.run = { g, x, _ in
                var y = try value(x, 0)
                if lo.isFinite { y = try g.pointwise(try g.activation(try g.pointwise(y, .offset(-lo)), .relu), .offset(lo)) }
                if hi.isFinite { y = try g.pointwise(try g.scale(try g.activation(try g.pointwise(try g.scale(y, -1), .offset(hi)), .relu), -1), .offset(hi)) }
                return y
            }
        } else { throw ModelError("Clip to [\(lo), \(hi)]: bounds must be numbers, the lower not above the upper") }
        return built
    }

    func buildLeakyRelu() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["alpha"])
        let alpha = float("alpha", 0.01)
        // max(x, 0) - alpha * max(-x, 0)
        built.run = { g, x, _ in try g.add(try g.activation(try value(x, 0), .relu), try g.scale(try g.activation(try g.scale(try value(x, 0), -1), .relu), -alpha)) }
        return built
    }

    func buildSigmoid() throws -> BuiltOp {
        var built = BuiltOp()
        try only([])
        built.run = { g, x, _ in try g.pointwise(try value(x, 0), .sigmoid) }
        return built
    }

    func buildHardSigmoid() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["alpha", "beta"])
        let (alpha, beta) = (float("alpha", 0.2), float("beta", 0.5))
        guard abs(alpha - 1 / 6) < 1e-6, beta == 0.5 else {
            throw ModelError("HardSigmoid with alpha \(alpha), beta \(beta): only alpha 1/6, beta 1/2 (torch.nn.Hardsigmoid)")
        }
        built.run = { g, x, _ in try g.pointwise(try value(x, 0), .hardSigmoid) }
        return built
    }

    func buildHardSwish() throws -> BuiltOp {
        var built = BuiltOp()
        try only([])
        built.run = { g, x, _ in try g.pointwise(try value(x, 0), .hardSwish) }
        return built
    }

    func buildPool() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["kernel_shape", "strides", "pads", "ceil_mode", "auto_pad", "count_include_pad", "dilations", "storage_order"])
        guard (ints("dilations") ?? [1, 1]).allSatisfy({ $0 == 1 }), int("storage_order", 0) == 0 else { throw ModelError("dilated pooling is not supported") }
        let (kh, kw) = try pair("kernel_shape", 1), (sh, sw) = try pair("strides", 1), (ph, pw) = try padding()
        guard kh == kw, sh == sw, ph == pw else { throw ModelError("non-square pooling windows are not supported") }
        let p = Pool2DParams(kernel: kh, stride: sh, padding: ph, ceilMode: int("ceil_mode", 0) == 1, countIncludePad: int("count_include_pad", 0) == 1)
        if node.opType == "MaxPool" {
            built.run = { g, x, _ in try g.maxPool2d(try value(x, 0), p) }
        } else {
            built.run = { g, x, _ in try g.avgPool2d(try value(x, 0), p) }
        }
        return built
    }

    func buildGlobalAveragePool() throws -> BuiltOp {
        var built = BuiltOp()
        try only([])
        built.run = { g, x, _ in try g.adaptiveAvgPool2d(try value(x, 0), outputSize: (1, 1)) }
        return built
    }

    func buildResize() throws -> BuiltOp {
        var built = BuiltOp()
        // PyTorch's interpolate as both exporters write it: bilinear with half-pixel centres
        // (align_corners=False; `pytorch_half_pixel` or `half_pixel`) or aligned corners, and
        // nearest (`asymmetric` coordinates, `floor`), to `sizes` or by `scales` of whole pixels.
        try only(["mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside", "antialias",
                  "extrapolation_value", "keep_aspect_ratio_policy"])
        func text(_ name: String, _ fallback: String) -> String { attributes[name].map { String(decoding: $0.s, as: UTF8.self) } ?? fallback }
        let (kind, coordinates, nearest) = (text("mode", "nearest"), text("coordinate_transformation_mode", "half_pixel"), text("nearest_mode", "round_prefer_floor"))
        guard int("antialias", 0) == 0, int("exclude_outside", 0) == 0, text("keep_aspect_ratio_policy", "stretch") == "stretch" else {
            throw ModelError("Resize with antialias, exclude_outside or a kept aspect ratio is not supported")
        }
        let mode: ResizeMode
        switch (kind, coordinates) {
        case ("linear", "half_pixel"), ("linear", "pytorch_half_pixel"): mode = .bilinear
        case ("linear", "align_corners"): mode = .bilinearAlignCorners
        case ("nearest", "asymmetric") where nearest == "floor": mode = .nearest
        default:
            throw ModelError("Resize \(kind) with \(coordinates) coordinates\(kind == "nearest" ? " and nearest_mode \(nearest)" : ""): only PyTorch's bilinear (half-pixel or aligned corners) and nearest (asymmetric, floor)")
        }
        let input = node.input
        // Scales stored as an initializer (the dynamo exporter's) are read now.
        let storedScales = input.count > 2 ? floats[input[2]]?.values.map(Double.init) : nil
        built.run = { g, x, _ in
            let v = try value(x, 0)
            let s = g.shape(v)
            guard s.rank == 4 else { throw ModelError("Resize of a rank-\(s.rank) tensor: only [N, C, H, W]") }
            var size: (Int, Int)
            if input.count > 3, !input[3].isEmpty {
                guard let sizes = x.integers[3]?.values, sizes.count == 4 else { throw ModelError("Resize sizes must be 4 integers") }
                guard sizes[0] == Int64(s[0]) || sizes[0] == Int64(x.batch) || sizes[0] == -1, sizes[1] == Int64(s[1]) else {
                    throw ModelError("Resize of \(s) to \(sizes): only rows and columns")
                }
                guard (1...16384).contains(sizes[2]), (1...16384).contains(sizes[3]) else { throw ModelError("Resize to \(sizes)") }
                size = (Int(sizes[2]), Int(sizes[3]))
            } else {
                guard input.count > 2, let scales = storedScales ?? x.integers[2]?.asReals, scales.count == 4, scales[0] == 1, scales[1] == 1 else {
                    throw ModelError("Resize needs sizes, or 4 scales of which the first two are 1")
                }
                let out = [scales[2] * Double(s[2]), scales[3] * Double(s[3])]
                guard out.allSatisfy({ $0 == $0.rounded() && $0 >= 1 && $0 <= 16384 }) else {
                    throw ModelError("Resize of \(s) by scales \(scales): only scales that give whole output sizes")
                }
                size = (Int(out[0]), Int(out[1]))
            }
            return try g.resize(v, height: size.0, width: size.1, mode: mode)
        }
        return built
    }

    func buildReduceMean() throws -> BuiltOp {
        var built = BuiltOp()
        // The mean over constant axes: an image's rows and columns (the dynamo exporter's global
        // pooling) as a pooling, any other set (a channels-last [N, H, W, C] map's H and W, a
        // group norm's statistics) as the mean of rows after moving the reduced axes last.
        try only(["axes", "keepdims", "noop_with_empty_axes"])
        let given = node.input.count > 1 && !node.input[1].isEmpty ? stored(1) : attributes["axes"]?.ints
        if node.input.count > 1, !node.input[1].isEmpty, given == nil { throw ModelError("ReduceMean by computed axes is not supported") }
        let axes = given ?? []
        if axes.isEmpty, int("noop_with_empty_axes", 0) == 1 {
            built.run = { _, x, _ in try value(x, 0) }
            return built
        }
        let keep = int("keepdims", 1) == 1
        built.run = { g, x, _ in
            let v = try value(x, 0), s = g.shape(v)
            var reduced = Set<Int>()
            for a in axes {
                guard a >= -Int64(s.rank), a < Int64(s.rank) else { throw ModelError("ReduceMean axis \(a) of a rank-\(s.rank) tensor") }
                guard reduced.insert(Int(a < 0 ? a + Int64(s.rank) : a)).inserted else { throw ModelError("ReduceMean names axis \(a) twice") }
            }
            if axes.isEmpty { reduced = Set(0..<s.rank) }
            if s.rank == 4, reduced == [2, 3] {
                let pooled = try g.adaptiveAvgPool2d(v, outputSize: (1, 1))
                return keep ? pooled : try g.flatten(pooled)
            }
            let kept = (0..<s.rank).filter { !reduced.contains($0) }, moved = kept + reduced.sorted()
            let last = moved == Array(0..<s.rank) ? v : try g.permute(v, moved)
            let k = reduced.reduce(1) { $0 * s.dims[$1] }
            let mean = try g.reduce(try g.reshape(last, [s.count / max(k, 1), k]), .mean, axis: 1)
            let dims = keep ? (0..<s.rank).map { reduced.contains($0) ? 1 : s.dims[$0] } : kept.map { s.dims[$0] }
            return try g.reshape(mean, Shape(dims))
        }
        return built
    }

    func buildBatchNormalization() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["epsilon", "momentum", "training_mode"])
        guard int("training_mode", 0) == 0 else { throw ModelError("training_mode 1 is not supported") }
        guard let s = param(1), let b = param(2), let m = param(3), let v = param(4) else { throw ModelError("scale, bias, mean and variance must be initializers") }
        let eps = float("epsilon", 1e-5)
        built.parameterNames = [s, b, m, v]
        built.run = { g, x, ps in try g.batchNorm2d(try value(x, 0), BatchNormParams(gamma: try ps(s), beta: try ps(b), mean: try ps(m), variance: try ps(v), eps: eps)) }
        return built
    }

    func buildGemm() throws -> BuiltOp {
        var built = BuiltOp()
        try only(["alpha", "beta", "transA", "transB"])
        guard float("alpha", 1) == 1, float("beta", 1) == 1, int("transA", 0) == 0 else { throw ModelError("only alpha = beta = 1 and transA = 0 are supported") }
        guard let w = param(1) else { throw ModelError("B must be an initializer") }
        let bias = param(2)
        let transposed = int("transB", 0) == 0
        built.parameterNames = [w] + (bias.map { [$0] } ?? [])
        built.run = { g, x, ps in
            let weight = transposed ? try transposedWeight(g, ps, w) : try ps(w)
            return try g.linear(try value(x, 0), weight: g.parameter(weight), bias: try bias.map { g.parameter(try ps($0)) })
        }
        return built
    }

    func buildMatMulOfTwo() throws -> BuiltOp {
        var built = BuiltOp()
        // Two computed tensors (attention): one product per leading index.
        try only([])
        built.run = { g, x, _ in try g.batchedMatMul(try value(x, 0), try value(x, 1)) }
        return built
    }

    func buildReduceL2() throws -> BuiltOp {
        var built = BuiltOp()
        // The Euclidean norm along the last axis (F.normalize): sqrt of the sum of squares.
        try only(["axes", "keepdims", "noop_with_empty_axes"])
        guard let axes = (attributes["axes"]?.ints ?? (node.input.count > 1 ? stored(1) : nil)), axes.count == 1 else {
            throw ModelError("ReduceL2 along one constant axis only")
        }
        let keep = int("keepdims", 1) == 1
        built.run = { g, x, _ in
            let v = try value(x, 0), s = g.shape(v)
            let axis = Int(axes[0] < 0 ? axes[0] + Int64(s.rank) : axes[0])
            guard axis == s.rank - 1, s.rank >= 2 else { throw ModelError("ReduceL2 of \(s) along axis \(axes[0]): only the last") }
            let rows = try g.reshape(v, [s.count / s.dims.last!, s.dims.last!])
            let norm = try g.pointwise(try g.reduce(rows, .sumOfSquares, axis: 1), .absPower(0.5))
            return try g.reshape(norm, Shape(Array(s.dims.dropLast()) + (keep ? [1] : [])))
        }
        return built
    }

    func buildEinsum() throws -> BuiltOp {
        var built = BuiltOp()
        // Two operands whose contraction is a batched matrix product (attention's
        // "bhid,bhjd->bhij" and "bhij,bhjd->bhid", MaxViT's with spaces and capitals): letters
        // in both operands and the output are batch dimensions, in one operand and the output
        // free ones, in both operands only summed. Each operand is permuted to [batch, free,
        // summed] / [batch, summed, free], multiplied, and the product permuted to the output.
        try only(["equation"])
        guard let text = attributes["equation"].map({ String(decoding: $0.s, as: UTF8.self) }) else { throw ModelError("Einsum without an equation") }
        let plan = try EinsumPlan(text)
        guard node.input.count == 2 else { throw ModelError("Einsum of \(node.input.count) operands: only two are supported") }
        built.run = { g, x, _ in try plan.apply(g, try value(x, 0), try value(x, 1)) }
        return built
    }

    func buildMatMul() throws -> BuiltOp {
        var built = BuiltOp()
        try only([])
        guard let w = param(1), floats[w]!.shape.rank == 2 else { throw ModelError("only a product with a 2-D initializer is supported") }
        // A third input is the bias of an Add the importer fused into this product.
        let bias = param(2)
        built.parameterNames = [w] + (bias.map { [$0] } ?? [])
        built.run = { g, x, ps in
            // [..., K] x [K, N]: the rows of every leading dimension at once.
            let v = try value(x, 0)
            let s = g.shape(v)
            let weight = g.parameter(try transposedWeight(g, ps, w)), b = try bias.map { g.parameter(try ps($0)) }
            if s.rank == 2 { return try g.linear(v, weight: weight, bias: b) }
            guard s.rank > 2, let k = s.dims.last else { throw ModelError("MatMul of \(s) by a matrix") }
            let y = try g.linear(try g.reshape(v, [s.count / k, k]), weight: weight, bias: b)
            return try g.reshape(y, Shape(s.dims.dropLast() + [g.shape(y)[1]]))
        }
        return built
    }

    func buildSoftmax() throws -> BuiltOp {
        var built = BuiltOp()
        // Along the last axis directly; along another one between two permutations that move
        // that axis last and back.
        try only(["axis"])
        let axis = int("axis", -1)
        built.run = { g, x, _ in
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
        return built
    }

    func buildSplitPart() throws -> BuiltOp {
        var built = BuiltOp()
        // One output of a Split (the importer makes a node per output): its consecutive
        // elements along the axis, sizes from the split input, or equal parts (the last
        // smaller) of num_outputs.
        try only(["axis", "part", "parts", "split", "num_outputs"])
        guard node.input.count < 2 || node.input[1].isEmpty || integral(1) else { throw ModelError("the split sizes must be constants") }
        let (axis, part, parts, attributeSizes) = (int("axis", 0), int("part", 0), int("parts", 1), ints("split"))
        built.run = { g, x, _ in
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
        return built
    }
}

// Graph helpers the builders share.

/// Two computed operands of an elementwise op, broadcast where ONNX would: equal shapes, or a
/// [N, C, 1, 1] gate (squeeze-excitation) beside an [N, C, H, W] map, expanded over its grid.
func matched(_ g: Graph, _ a: Graph.Value, _ b: Graph.Value, _ op: String) throws -> (Graph.Value, Graph.Value) {
    let (sa, sb) = (g.shape(a), g.shape(b))
    if sa == sb { return (a, b) }
    if sa.rank == 4, sb.rank == 4, sa[0] == sb[0], sa[1] == sb[1] {
        if sb[2] == 1, sb[3] == 1 { return (a, try g.expand(b, height: sa[2], width: sa[3])) }
        if sa[2] == 1, sa[3] == 1 { return (try g.expand(a, height: sb[2], width: sb[3]), b) }
    }
    // One operand over the other's trailing dimensions, its leading ones 1 (MaxViT's position
    // bias [1, heads, 49, 49] over the scores [N, windows, heads, 49, 49]): repeated over the
    // rest; its gradient is the sum over the copies.
    func trailing(_ small: Shape, _ large: Shape) -> Bool {
        let kept = Array(small.dims.drop { $0 == 1 })
        return small.rank <= large.rank && small.count > 0 && large.count % small.count == 0 && Array(large.dims.suffix(kept.count)) == kept
    }
    // One operand of size 1 on the last axis, the rest the other's (a norm [..., 1] over the
    // vectors [..., K]): each value repeated along that axis.
    func lastAxis(_ small: Shape, _ large: Shape) -> Bool {
        small.rank == large.rank && small.rank >= 1 && small.dims.last == 1 && (large.dims.last ?? 0) > 1
            && Array(small.dims.dropLast()) == Array(large.dims.dropLast())
    }
    func spread(_ v: Graph.Value, like large: Shape) throws -> Graph.Value {
        let k = large.dims.last!
        return try g.reshape(try g.expand(try g.reshape(v, [g.shape(v).count, 1, 1, 1]), height: 1, width: k), large)
    }
    if lastAxis(sb, sa) { return (a, try spread(b, like: sa)) }
    if lastAxis(sa, sb) { return (try spread(a, like: sb), b) }
    if trailing(sb, sa) { return (a, try g.reshape(try repeated(g, try g.reshape(b, [1, sb.count]), sa.count / sb.count), sa)) }
    if trailing(sa, sb) { return (try g.reshape(try repeated(g, try g.reshape(a, [1, sa.count]), sb.count / sa.count), sb), b) }
    // Any other pair numpy broadcasts (timm's Swin: a window mask [1, windows, 1, 49, 49] over
    // the scores [N, windows, heads, 49, 49]): each operand repeated along its axes of size 1.
    if let both = broadcastShape(sa, sb) { return (try broadcast(g, a, to: both), try broadcast(g, b, to: both)) }
    throw ModelError("\(op) of \(sa) and \(sb): the shapes do not broadcast")
}

/// The shape numpy broadcasts `a` and `b` to, or nil where they do not broadcast.
func broadcastShape(_ a: Shape, _ b: Shape) -> Shape? {
    let rank = max(a.rank, b.rank)
    let x = [Int](repeating: 1, count: rank - a.rank) + a.dims, y = [Int](repeating: 1, count: rank - b.rank) + b.dims
    var out: [Int] = []
    for (p, q) in zip(x, y) {
        guard p == q || p == 1 || q == 1 else { return nil }
        out.append(p == 1 ? q : p)
    }
    return Shape(out)
}

/// `v` repeated along each axis where it has size 1 and `target` more (leading axes added as
/// numpy does): one axis at a time as copies of the tensor viewed as [1, before x after],
/// moved into place; the gradient is the sum over the copies.
func broadcast(_ g: Graph, _ v: Graph.Value, to target: Shape) throws -> Graph.Value {
    var dims = [Int](repeating: 1, count: target.rank - g.shape(v).rank) + g.shape(v).dims
    guard dims != target.dims else { return v }
    var current = try g.reshape(v, Shape(dims))
    for axis in dims.indices where dims[axis] == 1 && target[axis] != 1 {
        let (before, after, n) = (dims[..<axis].reduce(1, *), dims[(axis + 1)...].reduce(1, *), target[axis])
        var copies = try repeated(g, try g.reshape(current, [1, before * after]), n)
        if before > 1 { copies = try g.permute(try g.reshape(copies, [n, before, after]), [1, 0, 2]) }
        dims[axis] = n
        current = try g.reshape(copies, Shape(dims))
    }
    return current
}

/// Input `i` of a node, which must be a computed value (not a weight or a missing input).
func value(_ x: Operands, _ i: Int) throws -> Graph.Value {
    guard i < x.values.count, let v = x.values[i] else { throw ModelError("input \(i) must be a computed tensor") }
    return v
}

/// Dimensions start ..< end of a shape, as ONNX's Shape (negative ends count from the back).
func shapeSlice(_ dims: [Int], start: Int, end: Int) -> HostNumbers {
    let clamp = { (i: Int) in Swift.min(Swift.max(i < 0 ? i + dims.count : i, 0), dims.count) }
    let (a, b) = (clamp(start), clamp(end))
    return HostNumbers(vector: a < b ? dims[a..<b].map { Int64($0) } : [])
}

/// `v` [N, C, H, W] with zeros around it: pads [top, left, bottom, right], asymmetric as ONNX
/// allows. The larger pad of each pair on both sides (a 1x1 depthwise convolution by ones with
/// that padding), then the excess sliced off.
func zeroPadded(_ g: Graph, _ v: Graph.Value, _ pads: [Int]) throws -> Graph.Value {
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
func repeated(_ g: Graph, _ v: Graph.Value, _ times: Int) throws -> Graph.Value {
    guard times > 1 else { return v }
    let s = g.shape(v)
    let view = try g.reshape(v, [1, s.count, 1, 1])
    return try g.reshape(try g.concat([Graph.Value](repeating: view, count: times)), Shape([s[0] * times] + s.dims.dropFirst()))
}

/// The stored matrix `name` [K, N] as a linear layer's weight [N, K], transposed on the device
/// once per parameter store.
func transposedWeight(_ g: Graph, _ ps: ParameterStore, _ name: String) throws -> Tensor {
    try ps.derived(name + " transposed") { try g.backend.permute(try ps(name), [1, 0]) }
}

/// `count` consecutive elements from `from` along `axis` of a tensor of any rank: the tensor
/// viewed as [outer, size, inner, 1] and sliced on its dimension 1.
func slice(_ g: Graph, _ v: Graph.Value, axis: Int, from: Int, count: Int) throws -> Graph.Value {
    let s = g.shape(v)
    if from == 0, count == s[axis] { return v }
    let view = s.rank == 4 && axis == 1 ? v : try g.reshape(v, [s.dims[..<axis].reduce(1, *), s[axis], s.dims[(axis + 1)...].reduce(1, *), 1])
    var dims = s.dims
    dims[axis] = count
    return try g.reshape(try g.sliceChannels(view, from: from, count: count), Shape(dims))
}

/// `body`, its model errors naming the node (its output) and op.
func named<T>(_ node: ONNXNode, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as ModelError {
        throw ModelError("node \(node.output) (\(node.opType)): \(error.description)")
    }
}

/// An Einsum equation of two operands that is a batched matrix product (`buildEinsum`).
struct EinsumPlan: Sendable {
    let a: [Character], b: [Character], out: [Character]
    let batch: [Character], freeA: [Character], freeB: [Character], summed: [Character]

    init(_ equation: String) throws {
        let text = equation.filter { !$0.isWhitespace }
        let sides = text.components(separatedBy: "->")
        let operands = sides.first.map { $0.split(separator: ",", omittingEmptySubsequences: false).map { Array($0) } } ?? []
        guard sides.count == 2, operands.count == 2, !text.contains(".") else {
            throw ModelError("Einsum \(printable(equation)): only two operands and an explicit output, without ellipses, are supported")
        }
        (a, b, out) = (operands[0], operands[1], Array(sides[1]))
        for letters in [a, b, out] where Set(letters).count != letters.count || !letters.allSatisfy(\.isLetter) {
            throw ModelError("Einsum \(printable(equation)): a letter repeated within an operand (a diagonal) is not supported")
        }
        let (sa, sb, so) = (Set(a), Set(b), Set(out))
        guard so.isSubset(of: sa.union(sb)), sa.subtracting(sb).isSubset(of: so), sb.subtracting(sa).isSubset(of: so) else {
            throw ModelError("Einsum \(printable(equation)): a letter of one operand only must be in the output (no sums over one operand)")
        }
        batch = out.filter { sa.contains($0) && sb.contains($0) }
        freeA = a.filter { !sb.contains($0) }
        freeB = b.filter { !sa.contains($0) }
        summed = a.filter { sb.contains($0) && !so.contains($0) }
    }

    func apply(_ g: Graph, _ x: Graph.Value, _ y: Graph.Value) throws -> Graph.Value {
        let (sx, sy) = (g.shape(x), g.shape(y))
        guard sx.rank == a.count, sy.rank == b.count else { throw ModelError("Einsum of \(sx) and \(sy): ranks other than the equation's") }
        var size: [Character: Int] = [:]
        for (letters, shape) in [(a, sx), (b, sy)] {
            for (k, c) in letters.enumerated() {
                if let known = size[c], known != shape[k] { throw ModelError("Einsum: \(c) is \(known) in one operand and \(shape[k]) in the other") }
                size[c] = shape[k]
            }
        }
        func count(_ letters: [Character]) -> Int { letters.reduce(1) { $0 * size[$1]! } }
        let (z, m, n, k) = (count(batch), count(freeA), count(freeB), count(summed))
        let left = try g.reshape(try g.permute(x, (batch + freeA + summed).map { a.firstIndex(of: $0)! }), [z, m, k])
        let right = try g.reshape(try g.permute(y, (batch + summed + freeB).map { b.firstIndex(of: $0)! }), [z, k, n])
        let order = batch + freeA + freeB
        let product = try g.reshape(try g.batchedMatMul(left, right), Shape(order.map { size[$0]! }))
        return try g.permute(product, out.map { order.firstIndex(of: $0)! })
    }
}

/// Shape checks and output shapes shared by both backends, so both refuse the same inputs
/// with the same message.
public enum ShapeRules {
    /// Input [N, C, H, W] with one transform per image and a positive output size.
    public static func affineSample(_ op: String, _ s: Shape, _ transforms: [AffineMap], height: Int, width: Int) throws -> (n: Int, c: Int, h: Int, w: Int) {
        let (n, c, h, w) = try rank4(op, s)
        guard transforms.count == n else { throw BackendError(op, "\(transforms.count) transforms for a batch of \(n)") }
        guard height >= 1, width >= 1 else { throw BackendError(op, "output size \(height)x\(width) must be positive") }
        for t in transforms { _ = try t.packed() }
        return (n, c, h, w)
    }
    /// [N, ...] -> [copies * N, ...] for at least one copy of a non-empty tensor.
    public static func noisyCopies(_ op: String, _ s: Shape, copies: Int) throws -> Shape {
        guard s.rank >= 1, s.count > 0, copies >= 1, copies <= Int(Int32.max) / s.count else {
            throw BackendError(op, "needs a non-empty tensor and 1 to \(Int(Int32.max) / Swift.max(s.count, 1)) copies, got \(s) and \(copies)")
        }
        return Shape([copies * s[0]] + Array(s.dims.dropFirst()))
    }

    /// Throws unless `a` and `b` are the same shape (elementwise ops, backward passes).
    public static func same(_ op: String, _ a: Shape, _ b: Shape) throws {
        guard a == b else { throw BackendError(op, "shapes differ: \(a) vs \(b)") }
    }

    /// Pairs of a DeepLIFT pass (inputs then references): x and y alike, with an even batch of
    /// at most Int32.max elements; gy x's shape (`both`: both halves' gradients) or its first
    /// half's (the inputs' alone). Returns half x's element count.
    public static func deepLiftPairs(_ op: String, gy: Shape, x: Shape, y: Shape) throws -> (pairs: Int, both: Bool) {
        try same(op, x, y)
        guard x.rank >= 1, x[0] % 2 == 0, x.count <= Int(Int32.max) else {
            throw BackendError(op, "a pass of inputs and references has an even batch (and fewer than 2^31 values), not \(x)")
        }
        let half = Shape([x[0] / 2] + Array(x.dims.dropFirst()))
        guard gy == x || gy == half else { throw BackendError(op, "gradient \(gy) is neither the pass's \(x) nor its inputs' half \(half)") }
        return (x.count / 2, gy == x)
    }

    /// The dimensions of an NCHW shape; throws for any other rank.
    public static func rank4(_ op: String, _ s: Shape) throws -> (n: Int, c: Int, h: Int, w: Int) {
        guard let v = s.nchw else { throw BackendError(op, "expected an NCHW tensor, got \(s)") }
        return v
    }

    /// Throws unless `t` (when given) has shape [channels]: a bias, gamma or beta.
    public static func channelVector(_ op: String, _ t: Tensor?, channels: Int, what: String) throws {
        guard let t else { return }
        guard t.shape == [channels] else {
            throw BackendError(op, "\(what) has shape \(t.shape), expected [\(channels)]")
        }
    }

    /// (rows, cols) of the planes of a map [..., H, W]: rows = the product of the leading dimensions.
    public static func planes(_ op: String, _ s: Shape) throws -> (rows: Int, cols: Int) {
        guard s.rank >= 2, s.count > 0 else { throw BackendError(op, "expected a non-empty [..., H, W] map, got \(s)") }
        let cols = s[s.rank - 2] * s[s.rank - 1]
        return (s.count / cols, cols)
    }

    /// A CAM's activations and gradients: both [N, C, H, W] and of one shape; the weights'
    /// shape [N, C] and the planes' size H * W.
    public static func camWeights(_ op: String, _ a: Shape, _ g: Shape) throws -> (out: Shape, cols: Int) {
        let (n, c, h, w) = try rank4(op, a)
        try same(op, a, g)
        return ([n, c], h * w)
    }

    /// (rows, cols) of a reduction from `axis` on.
    public static func rows(_ op: String, _ s: Shape, axis: Int) throws -> (rows: Int, cols: Int, out: Shape) {
        guard axis >= 0, axis < s.rank else { throw BackendError(op, "axis \(axis) out of range for \(s)") }
        let rows = s.dims[..<axis].reduce(1, *)
        let cols = s.dims[axis...].reduce(1, *)
        guard cols > 0 else { throw BackendError(op, "cannot reduce an empty tensor \(s)") }
        return (rows, cols, axis == 0 ? [1] : Shape(Array(s.dims[..<axis])))
    }

    /// Rows (the product of the leading dimensions) and columns (the last dimension) of a
    /// non-empty tensor: softmax's and layer norm's rows.
    public static func lastDim(_ op: String, _ s: Shape) throws -> (rows: Int, cols: Int) {
        guard s.rank >= 1, let cols = s.dims.last, cols > 0 else { throw BackendError(op, "expected a non-empty tensor, got \(s)") }
        return (s.count / cols, cols)
    }

    /// (N, In, Out) for x [N, In] and weight [Out, In].
    public static func linear(_ op: String, x: Shape, weight: Shape) throws -> (n: Int, inF: Int, outF: Int) {
        guard x.rank == 2, weight.rank == 2, x[1] == weight[1] else {
            throw BackendError(op, "input \(x) and weight \(weight) must be [N, In] and [Out, In]")
        }
        return (x[0], x[1], weight[0])
    }

    /// (N, Out, In) of linear's backward to the input: gy [N, Out], W [Out, In].
    public static func linearBackwardInput(_ op: String, gradient gy: Shape, weight: Shape) throws -> (n: Int, outF: Int, inF: Int) {
        guard gy.rank == 2, weight.rank == 2, gy[1] == weight[0] else {
            throw BackendError(op, "gradient \(gy) and weight \(weight) must be [N, Out] and [Out, In]")
        }
        return (gy[0], weight[0], weight[1])
    }

    /// (N, Out, In) of linear's backward to the weight: gy [N, Out], x [N, In].
    public static func linearBackwardWeight(_ op: String, gradient gy: Shape, input: Shape) throws -> (n: Int, outF: Int, inF: Int) {
        guard gy.rank == 2, input.rank == 2, gy[0] == input[0] else {
            throw BackendError(op, "gradient \(gy) and input \(input) must be [N, Out] and [N, In]")
        }
        return (gy[0], gy[1], input[1])
    }

    /// (N, Out) of a bias gradient's input gy [N, Out].
    public static func linearBackwardBias(_ op: String, gradient gy: Shape) throws -> (n: Int, outF: Int) {
        guard gy.rank == 2 else { throw BackendError(op, "expected [N, Out], got \(gy)") }
        return (gy[0], gy[1])
    }

    /// The batch Z and the sizes M, K, N of a batched matrix product (see `Backend.matmul`).
    public static func matmul(_ op: String, _ a: Shape, _ b: Shape, transposeA: Bool, transposeB: Bool) throws -> (z: Int, m: Int, k: Int, n: Int) {
        guard a.rank == 3, b.rank == 3, a[0] == b[0] else {
            throw BackendError(op, "operands \(a) and \(b) must be [Z, rows, columns] with the same Z")
        }
        let (m, k) = transposeA ? (a[2], a[1]) : (a[1], a[2])
        let (kb, n) = transposeB ? (b[2], b[1]) : (b[1], b[2])
        guard k == kb else {
            throw BackendError(op, "cannot multiply \(a)\(transposeA ? " transposed" : "") by \(b)\(transposeB ? " transposed" : ""): inner sizes \(k) and \(kb)")
        }
        return (a[0], m, k, n)
    }

    /// The output shape of joining NCHW parts along channels: same N, H and W, channels summed.
    public static func concat(_ op: String, _ parts: [Shape]) throws -> Shape {
        guard let first = parts.first else { throw BackendError(op, "nothing to concatenate") }
        let f = try rank4(op, first)
        var channels = 0
        for p in parts {
            let v = try rank4(op, p)
            guard v.n == f.n, v.h == f.h, v.w == f.w else {
                throw BackendError(op, "shapes \(parts.map(\.description).joined(separator: ", ")) differ outside the channel dimension")
            }
            channels += v.c
        }
        return [f.n, channels, f.h, f.w]
    }

    /// (M, C, H * W, whether x has one image per mask) for x [1 or M, C, H, W] and masks
    /// [M, 1, H, W].
    public static func broadcastMul(_ op: String, _ x: Shape, _ masks: Shape) throws -> (m: Int, c: Int, hw: Int, perMask: Bool) {
        let (n, c, h, w) = try rank4(op, x)
        let (m, mc, mh, mw) = try rank4(op, masks)
        guard mc == 1, mh == h, mw == w, n == 1 || n == m else {
            throw BackendError(op, "image \(x) and masks \(masks) must be [1 or M, C, H, W] and [M, 1, H, W]")
        }
        return (m, c, h * w, n == m && m > 1)
    }

    /// The output shape of a permute and, per output dimension, its stride in the input.
    public static func permute(_ op: String, _ s: Shape, _ perm: [Int]) throws -> (out: Shape, strides: [Int]) {
        guard s.rank >= 1, s.rank <= 6, perm.count == s.rank, Set(perm) == Set(0..<s.rank) else {
            throw BackendError(op, "\(perm) is not a permutation of the \(s.rank) dimensions of \(s) (rank 1 to 6)")
        }
        var strides = [Int](repeating: 1, count: s.rank)
        for i in stride(from: s.rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * s[i + 1] }
        return (Shape(perm.map { s[$0] }), perm.map { strides[$0] })
    }

    /// (rows, cols) of a layer normalization over the last dimension, gamma and beta checked.
    public static func layerNorm(_ op: String, _ s: Shape, gamma: Tensor?, beta: Tensor?, eps: Float) throws -> (rows: Int, cols: Int) {
        let (rows, cols) = try lastDim(op, s)
        try channelVector(op, gamma, channels: cols, what: "gamma")
        try channelVector(op, beta, channels: cols, what: "beta")
        guard eps.isFinite, eps >= 0 else { throw BackendError(op, "epsilon \(eps) must be finite and non-negative") }
        return (rows, cols)
    }

    /// Throws unless `sizes` are positive and sum to the channels of NCHW shape `s`.
    public static func split(_ op: String, _ s: Shape, sizes: [Int]) throws {
        let v = try rank4(op, s)
        guard sizes.allSatisfy({ $0 > 0 }), sizes.reduce(0, +) == v.c else {
            throw BackendError(op, "sizes \(sizes) do not add up to the \(v.c) channels of \(s)")
        }
    }
}

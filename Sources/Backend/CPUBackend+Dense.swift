import Foundation

// Linear, batchnorm, elementwise, channel and softmax ops on the CPU reference backend.
extension CPUBackend {
    public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
        let (n, inF, outF) = try ShapeRules.linear("linear", x: x.shape, weight: weight.shape)
        try ShapeRules.channelVector("linear", bias, channels: outF, what: "bias")
        let xv = try host(x, "linear"), wv = try host(weight, "linear"), bv = try bias.map { try host($0, "linear") }
        var y = [Float](repeating: 0, count: n * outF)
        for b in 0..<n { for o in 0..<outF {
            var s = bv?[o] ?? 0
            for i in 0..<inF { s += xv[b * inF + i] * wv[o * inF + i] }
            y[b * outF + o] = s
        } }
        return make(y, [n, outF])
    }

    public func linearBackwardInput(_ gy: Tensor, weight: Tensor) throws -> Tensor {
        guard gy.shape.rank == 2, weight.shape.rank == 2, gy.shape[1] == weight.shape[0] else {
            throw BackendError("linear backward input", "gradient \(gy.shape) and weight \(weight.shape) must be [N, Out] and [Out, In]")
        }
        let (n, outF, inF) = (gy.shape[0], weight.shape[0], weight.shape[1])
        let gv = try host(gy, "linear backward input"), wv = try host(weight, "linear backward input")
        var gx = [Float](repeating: 0, count: n * inF)
        for b in 0..<n { for i in 0..<inF { for o in 0..<outF { gx[b * inF + i] += gv[b * outF + o] * wv[o * inF + i] } } }
        return make(gx, [n, inF])
    }

    public func linearBackwardWeight(_ gy: Tensor, input: Tensor) throws -> Tensor {
        guard gy.shape.rank == 2, input.shape.rank == 2, gy.shape[0] == input.shape[0] else {
            throw BackendError("linear backward weight", "gradient \(gy.shape) and input \(input.shape) must be [N, Out] and [N, In]")
        }
        let (n, outF, inF) = (gy.shape[0], gy.shape[1], input.shape[1])
        let gv = try host(gy, "linear backward weight"), xv = try host(input, "linear backward weight")
        var gw = [Float](repeating: 0, count: outF * inF)
        for b in 0..<n { for o in 0..<outF { for i in 0..<inF { gw[o * inF + i] += gv[b * outF + o] * xv[b * inF + i] } } }
        return make(gw, [outF, inF])
    }

    public func linearBackwardBias(_ gy: Tensor) throws -> Tensor {
        guard gy.shape.rank == 2 else { throw BackendError("linear backward bias", "expected [N, Out], got \(gy.shape)") }
        let gv = try host(gy, "linear backward bias")
        var gb = [Float](repeating: 0, count: gy.shape[1])
        for b in 0..<gy.shape[0] { for o in 0..<gy.shape[1] { gb[o] += gv[b * gy.shape[1] + o] } }
        return make(gb, [gy.shape[1]])
    }

    /// Per-channel (scale, shift) with y = x * scale + shift.
    private func bnAffine(_ op: String, _ bn: BatchNormParams, channels: Int) throws -> (s: [Float], t: [Float]) {
        for (t, what) in [(bn.gamma, "gamma"), (bn.beta, "beta"), (bn.mean, "running mean"), (bn.variance, "running variance")] {
            try ShapeRules.channelVector(op, t, channels: channels, what: what)
        }
        let g = try host(bn.gamma, op), b = try host(bn.beta, op), m = try host(bn.mean, op), v = try host(bn.variance, op)
        let s = (0..<channels).map { g[$0] / (v[$0] + bn.eps).squareRoot() }
        return (s, (0..<channels).map { b[$0] - m[$0] * s[$0] })
    }

    public func batchNorm2d(_ x: Tensor, _ bn: BatchNormParams) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("batchnorm2d", x.shape)
        _ = try bnAffine("batchnorm2d", bn, channels: c)
        let g = try host(bn.gamma, "batchnorm2d"), b = try host(bn.beta, "batchnorm2d")
        let m = try host(bn.mean, "batchnorm2d"), v = try host(bn.variance, "batchnorm2d")
        var y = try host(x, "batchnorm2d")
        for i in 0..<n { for ch in 0..<c { for j in 0..<(h * w) {
            let k = (i * c + ch) * h * w + j
            y[k] = (y[k] - m[ch]) / (v[ch] + bn.eps).squareRoot() * g[ch] + b[ch]
        } } }
        return make(y, x.shape)
    }

    public func batchNorm2dBackward(_ gy: Tensor, _ bn: BatchNormParams) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("batchnorm2d backward", gy.shape)
        let (s, _) = try bnAffine("batchnorm2d backward", bn, channels: c)
        let gv = try host(gy, "batchnorm2d backward")
        var gx = gv
        for b in 0..<n { for ch in 0..<c { for i in 0..<(h * w) { gx[(b * c + ch) * h * w + i] *= s[ch] } } }
        return make(gx, gy.shape)
    }

    private func zip2(_ op: String, _ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) throws -> Tensor {
        try ShapeRules.same(op, a.shape, b.shape)
        let av = try host(a, op), bv = try host(b, op)
        return make(zip(av, bv).map(f), a.shape)
    }

    public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try zip2("add", a, b, +) }
    public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try zip2("mul", a, b, *) }
    public func scale(_ a: Tensor, _ s: Float) throws -> Tensor { make(try host(a, "scale").map { s * $0 }, a.shape) }
    public func axpy(_ alpha: Float, _ x: Tensor, _ y: Tensor) throws -> Tensor { try zip2("axpy", x, y) { alpha * $0 + $1 } }

    public func noisyCopies(_ x: Tensor, copies: Int, sigma: Float, seed: UInt64, offset: UInt64) throws -> Tensor {
        let shape = try ShapeRules.noisyCopies("noisy copies", x.shape, copies: copies)
        let v = try host(x, "noisy copies"), n = v.count
        let key = seed &+ 0x5EED
        func mix(_ i: UInt64) -> Float {
            var z = key &+ i &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return (Float((z ^ (z >> 31)) >> 40) + 0.5) * (1 / 16_777_216)
        }
        var y = [Float](repeating: 0, count: shape.count)
        for k in 0..<copies {
            for j in 0..<n {
                let c = offset &+ UInt64(k * n + j)
                let g = (-2 * log(mix(2 &* c &+ 1))).squareRoot() * cos(2 * Float.pi * mix(2 &* c &+ 2))
                y[k * n + j] = sigma * g + v[j]
            }
        }
        return make(y, shape)
    }

    public func concat(_ parts: [Tensor]) throws -> Tensor {
        let out = try ShapeRules.concat("concat", parts.map(\.shape))
        let (n, _, h, w) = out.nchw!
        var y: [Float] = []
        y.reserveCapacity(out.count)
        let hosts = try parts.map { try host($0, "concat") }
        for b in 0..<n { for (p, v) in zip(parts, hosts) {
            let size: Int = p.shape[1] * h * w
            y.append(contentsOf: v[(b * size)..<((b + 1) * size)])
        } }
        return make(y, out)
    }

    public func split(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
        try ShapeRules.split("split", x.shape, sizes: sizes)
        let (n, c, h, w) = x.shape.nchw!
        let xv = try host(x, "split")
        var offset = 0
        var parts: [Tensor] = []
        for size in sizes {
            var part: [Float] = []
            for b in 0..<n {
                let start: Int = (b * c + offset) * h * w
                part.append(contentsOf: xv[start..<(start + size * h * w)])
            }
            offset += size
            parts.append(make(part, Shape([n, size, h, w])))
        }
        return parts
    }

    private func rowsMap(_ op: String, _ x: Tensor, _ f: (ArraySlice<Float>) -> [Float]) throws -> Tensor {
        let (rows, cols) = try ShapeRules.lastDim(op, x.shape)
        let xv = try host(x, op)
        var y: [Float] = []
        y.reserveCapacity(xv.count)
        for r in 0..<rows { y += f(xv[(r * cols)..<((r + 1) * cols)]) }
        return make(y, x.shape)
    }

    public func softmax(_ x: Tensor) throws -> Tensor {
        try rowsMap("softmax", x) { row in
            let m = row.max()!
            let e = row.map { Float(Foundation.exp(Double($0 - m))) }
            let s = e.reduce(0, +)
            return e.map { $0 / s }
        }
    }

    public func logSoftmax(_ x: Tensor) throws -> Tensor {
        try rowsMap("log-softmax", x) { row in
            let m = row.max()!
            let s = row.reduce(0.0) { $0 + Foundation.exp(Double($1 - m)) }
            return row.map { $0 - m - Float(Foundation.log(s)) }
        }
    }

    public func permute(_ x: Tensor, _ perm: [Int]) throws -> Tensor {
        let (out, strides) = try ShapeRules.permute("permute", x.shape, perm)
        let xv = try host(x, "permute")
        var y = [Float](repeating: 0, count: xv.count)
        var index = [Int](repeating: 0, count: out.rank)
        for i in 0..<y.count {
            var source = 0
            for d in 0..<out.rank { source += index[d] * strides[d] }
            y[i] = xv[source]
            var d = out.rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < out[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return make(y, out)
    }

    /// Each row's mean and 1 / sqrt(biased variance + eps), in double precision.
    private func rowStatistics(_ row: ArraySlice<Float>, eps: Float) -> (mean: Double, rstd: Double) {
        let mean = row.reduce(0.0) { $0 + Double($1) } / Double(row.count)
        let variance = row.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(row.count)
        return (mean, 1 / (variance + Double(eps)).squareRoot())
    }

    public func layerNorm(_ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float) throws -> Tensor {
        let (rows, cols) = try ShapeRules.layerNorm("layer norm", x.shape, gamma: gamma, beta: beta, eps: eps)
        let xv = try host(x, "layer norm")
        let gv = try gamma.map { try host($0, "layer norm") }, bv = try beta.map { try host($0, "layer norm") }
        var y = [Float](repeating: 0, count: xv.count)
        for r in 0..<rows {
            let (mean, rstd) = rowStatistics(xv[(r * cols)..<((r + 1) * cols)], eps: eps)
            for c in 0..<cols {
                y[r * cols + c] = Float((Double(xv[r * cols + c]) - mean) * rstd) * (gv?[c] ?? 1) + (bv?[c] ?? 0)
            }
        }
        return make(y, x.shape)
    }

    /// dx = rstd (g - mean(g) - xhat mean(g xhat)) with g = gy gamma.
    public func layerNormBackward(_ gy: Tensor, input: Tensor, gamma: Tensor?, eps: Float) throws -> Tensor {
        try ShapeRules.same("layer norm backward", gy.shape, input.shape)
        let (rows, cols) = try ShapeRules.layerNorm("layer norm backward", input.shape, gamma: gamma, beta: nil, eps: eps)
        let xv = try host(input, "layer norm backward"), gyv = try host(gy, "layer norm backward")
        let gv = try gamma.map { try host($0, "layer norm backward") }
        var gx = [Float](repeating: 0, count: xv.count)
        for r in 0..<rows {
            let (mean, rstd) = rowStatistics(xv[(r * cols)..<((r + 1) * cols)], eps: eps)
            var (sumG, sumGX) = (0.0, 0.0)
            for c in 0..<cols {
                let g = Double(gyv[r * cols + c] * (gv?[c] ?? 1)), xhat = (Double(xv[r * cols + c]) - mean) * rstd
                sumG += g
                sumGX += g * xhat
            }
            for c in 0..<cols {
                let g = Double(gyv[r * cols + c] * (gv?[c] ?? 1)), xhat = (Double(xv[r * cols + c]) - mean) * rstd
                gx[r * cols + c] = Float(rstd * (g - sumG / Double(cols) - xhat * sumGX / Double(cols)))
            }
        }
        return make(gx, input.shape)
    }

    private func rowsBackward(_ op: String, _ gy: Tensor, _ y: Tensor, _ f: ([Float], [Float]) -> [Float]) throws -> Tensor {
        try ShapeRules.same(op, gy.shape, y.shape)
        let (rows, cols) = try ShapeRules.lastDim(op, gy.shape)
        let gv = try host(gy, op), yv = try host(y, op)
        var gx: [Float] = []
        for r in 0..<rows { gx += f(Array(gv[(r * cols)..<((r + 1) * cols)]), Array(yv[(r * cols)..<((r + 1) * cols)])) }
        return make(gx, gy.shape)
    }

    public func softmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor {
        try rowsBackward("softmax backward", gy, output) { g, y in
            let dot = zip(g, y).reduce(0) { $0 + $1.0 * $1.1 }
            return zip(g, y).map { $1 * ($0 - dot) }
        }
    }

    public func logSoftmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor {
        try rowsBackward("log-softmax backward", gy, output) { g, y in
            let total = g.reduce(0, +)
            return zip(g, y).map { $0 - Foundation.exp($1) * total }
        }
    }

    public func reduce(_ x: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (rows, cols, out) = try ShapeRules.rows("reduce", x.shape, axis: axis)
        let xv = try host(x, "reduce")
        let y = (0..<rows).map { r -> Float in
            let row = xv[(r * cols)..<((r + 1) * cols)]
            switch op {
            case .sum: return row.reduce(0, +)
            case .mean: return row.reduce(0, +) / Float(cols)
            case .sumOfSquares: return row.reduce(0) { $0 + $1 * $1 }
            }
        }
        return make(y, out)
    }

    public func reduceBackward(_ gy: Tensor, input: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("reduce backward", input.shape, axis: axis)
        try ShapeRules.same("reduce backward", gy.shape, out)
        let gv = try host(gy, "reduce backward"), xv = try host(input, "reduce backward")
        let gx = xv.indices.map { i -> Float in
            let g = gv[i / cols]
            switch op {
            case .sum: return g
            case .mean: return g / Float(cols)
            case .sumOfSquares: return 2 * xv[i] * g
            }
        }
        return make(gx, input.shape)
    }

    public func max(_ x: Tensor, axis: Int) throws -> (values: Tensor, indices: Tensor) {
        let (rows, cols, out) = try ShapeRules.rows("max", x.shape, axis: axis)
        let xv = try host(x, "max")
        var values = [Float](), indices = [Float]()
        for r in 0..<rows {
            var best = 0
            for j in 1..<Swift.max(cols, 1) where xv[r * cols + j] > xv[r * cols + best] { best = j }
            values.append(xv[r * cols + best])
            indices.append(Float(best))
        }
        return (make(values, out), make(indices, out))
    }

    public func maxBackward(_ gy: Tensor, indices: Tensor, inputShape: Shape, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("max backward", inputShape, axis: axis)
        try ShapeRules.same("max backward", gy.shape, out)
        try ShapeRules.same("max backward", indices.shape, out)
        let gv = try host(gy, "max backward"), iv = try host(indices, "max backward")
        let gx = (0..<inputShape.count).map { i -> Float in i % cols == Int(iv[i / cols]) ? gv[i / cols] : 0 }
        return make(gx, inputShape)
    }

    public func resize(_ x: Tensor, height oh: Int, width ow: Int, mode: ResizeMode) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("resize", x.shape)
        guard oh >= 1, ow >= 1 else { throw BackendError("resize", "size \(oh)x\(ow) must be positive") }
        let xv = try host(x, "resize")
        func source(_ o: Int, _ size: Int, _ out: Int) -> (Int, Int, Float) {
            if mode == .nearest {
                let i = Swift.min(Int((Float(o) * Float(size) / Float(out)).rounded(.down)), size - 1)
                return (i, i, 0)
            }
            let s = mode == .bilinearAlignCorners ? (out > 1 ? Float(o) * Float(size - 1) / Float(out - 1) : 0)
                : Swift.max((Float(o) + 0.5) * Float(size) / Float(out) - 0.5, 0)
            let lo = Swift.min(Int(s), size - 1)
            return (lo, Swift.min(lo + 1, size - 1), s - Float(lo))
        }
        var y = [Float](repeating: 0, count: n * c * oh * ow)
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let (y0, y1, ty) = source(oy, h, oh), (x0, x1, tx) = source(ox, w, ow)
            let p = plane * h * w
            let top = (1 - tx) * xv[p + y0 * w + x0] + tx * xv[p + y0 * w + x1]
            let bottom = (1 - tx) * xv[p + y1 * w + x0] + tx * xv[p + y1 * w + x1]
            y[(plane * oh + oy) * ow + ox] = (1 - ty) * top + ty * bottom
        } } }
        return make(y, [n, c, oh, ow])
    }

    public func broadcastMul(_ x: Tensor, masks: Tensor) throws -> Tensor {
        let (m, c, hw, perMask) = try ShapeRules.broadcastMul("broadcast mul", x.shape, masks.shape)
        let xv = try host(x, "broadcast mul"), mv = try host(masks, "broadcast mul")
        var y = [Float](repeating: 0, count: m * c * hw)
        for k in 0..<m { for ch in 0..<c { for i in 0..<hw {
            y[(k * c + ch) * hw + i] = xv[((perMask ? k : 0) * c + ch) * hw + i] * mv[k * hw + i]
        } } }
        return make(y, [m, c, x.shape[2], x.shape[3]])
    }

    public func channelMax(_ x: Tensor) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("channel max", x.shape)
        let xv = try host(x, "channel max")
        var y = [Float](repeating: -.infinity, count: n * h * w)
        for b in 0..<n { for ch in 0..<c { for i in 0..<(h * w) { y[b * h * w + i] = Swift.max(y[b * h * w + i], xv[(b * c + ch) * h * w + i]) } } }
        return make(y, [n, 1, h, w])
    }
}

// MARK: Optimization engine
extension CPUBackend {
    static func apply(_ op: Pointwise, _ x: Float) -> Float {
        switch op {
        case .sigmoid: return 1 / (1 + Foundation.exp(-x))
        case .absPower(let p): return Foundation.pow(abs(x), p)
        case .hardSigmoid: return Swift.min(Swift.max(x + 3, 0), 6) / 6
        case .hardSwish: return x * Swift.min(Swift.max(x + 3, 0), 6) / 6
        case .erf: return Foundation.erf(x)
        case .offset(let c): return x + c
        case .gelu: return Float(0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot())))
        case .tanh: return Foundation.tanh(x)
        }
    }

    public func pointwise(_ x: Tensor, _ op: Pointwise) throws -> Tensor {
        make(try host(x, "pointwise").map { Self.apply(op, $0) }, x.shape)
    }

    public func pointwiseBackward(_ gy: Tensor, input: Tensor, _ op: Pointwise) throws -> Tensor {
        try zip2("pointwise backward", gy, input) { g, x in
            switch op {
            case .sigmoid:
                let s = Self.apply(.sigmoid, x)
                return g * s * (1 - s)
            case .absPower(let p):
                return x == 0 ? 0 : g * p * Foundation.pow(abs(x), p - 1) * (x > 0 ? 1 : -1)
            case .hardSigmoid:
                return x > -3 && x < 3 ? g / 6 : 0
            case .hardSwish:
                return x < -3 ? 0 : x <= 3 ? g * (x / 3 + 0.5) : g
            case .erf:
                return g * Float(2 / Double.pi.squareRoot() * Foundation.exp(-Double(x) * Double(x)))
            case .offset:
                return g
            case .gelu:
                let v = Double(x)
                return g * Float(0.5 * (1 + Foundation.erf(v / 2.0.squareRoot())) + v * Foundation.exp(-v * v / 2) / (2 * Double.pi).squareRoot())
            case .tanh:
                let t = Foundation.tanh(x)
                return g * (1 - t * t)
            }
        }
    }

    /// The four corners a sample point reads and their bilinear weights.
    static func corners(_ t: AffineMap, _ ox: Int, _ oy: Int) -> [(x: Int, y: Int, w: Float)] {
        let u = t.a * Float(ox) + t.b * Float(oy) + t.c, v = t.d * Float(ox) + t.e * Float(oy) + t.f
        let (fu, fv) = (u.rounded(.down), v.rounded(.down))
        let (tx, ty) = (u - fu, v - fv)
        let (x0, y0) = (Int(fu), Int(fv))
        return [(x0, y0, (1 - tx) * (1 - ty)), (x0 + 1, y0, tx * (1 - ty)), (x0, y0 + 1, (1 - tx) * ty), (x0 + 1, y0 + 1, tx * ty)]
    }

    public func affineSample(_ x: Tensor, _ transforms: [AffineMap], height oh: Int, width ow: Int, fill: Float) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.affineSample("affine sample", x.shape, transforms, height: oh, width: ow)
        let xv = try host(x, "affine sample")
        var y = [Float](repeating: 0, count: n * c * oh * ow)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow {
            let taps = Self.corners(transforms[b], ox, oy)
            for ch in 0..<c {
                let plane = (b * c + ch) * h * w
                y[((b * c + ch) * oh + oy) * ow + ox] = taps.reduce(0) { sum, tap in
                    sum + tap.w * (tap.x >= 0 && tap.x < w && tap.y >= 0 && tap.y < h ? xv[plane + tap.y * w + tap.x] : fill)
                }
            }
        } } }
        return make(y, [n, c, oh, ow])
    }

    /// The adjoint of `affineSample`, as a scatter.
    public func affineSampleBackward(_ gy: Tensor, _ transforms: [AffineMap], inputShape: Shape) throws -> Tensor {
        let (n, c, oh, ow) = try ShapeRules.rank4("affine sample backward", gy.shape)
        let (_, _, h, w) = try ShapeRules.affineSample("affine sample backward", inputShape, transforms, height: oh, width: ow)
        let g = try host(gy, "affine sample backward")
        var gx = [Float](repeating: 0, count: inputShape.count)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow {
            for tap in Self.corners(transforms[b], ox, oy) where tap.x >= 0 && tap.x < w && tap.y >= 0 && tap.y < h {
                for ch in 0..<c { gx[((b * c + ch) * h + tap.y) * w + tap.x] += tap.w * g[((b * c + ch) * oh + oy) * ow + ox] }
            }
        } } }
        return make(gx, inputShape)
    }

    public func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ s: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor) {
        for other in [g, m, v] { try ShapeRules.same("adam", p.shape, other.shape) }
        let (pv, gv, mv, vv) = (try host(p, "adam"), try host(g, "adam"), try host(m, "adam"), try host(v, "adam"))
        let (c1, c2) = s.corrections(step: t)
        var (np, nm, nv) = (pv, mv, vv)
        for i in pv.indices {
            nm[i] = s.beta1 * mv[i] + (1 - s.beta1) * gv[i]
            nv[i] = s.beta2 * vv[i] + (1 - s.beta2) * gv[i] * gv[i]
            np[i] = pv[i] - s.learningRate * (nm[i] / c1) / ((nv[i] / c2).squareRoot() + s.epsilon)
        }
        return (make(np, p.shape), make(nm, p.shape), make(nv, p.shape))
    }
}

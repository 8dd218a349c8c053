import BackendCore
import Foundation

// Activations, batchnorm, elementwise arithmetic and pointwise maps on the CPU reference
// backend (the twins of OpenCLBackend+Elementwise.swift: activation.cl, batchnorm.cl,
// elementwise.cl, pointwise.cl; its noisy copies are AttributionOps' default).
extension CPUBackend {
    public func activation(_ x: Tensor, _ kind: Activation) throws -> Tensor {
        let xv = try host(x, "activation")
        return make(xv.map { kind == .relu ? Swift.max($0, 0) : Swift.min(Swift.max($0, 0), 6) }, x.shape)
    }

    public func activationBackward(_ gy: Tensor, input: Tensor, _ kind: Activation, rule: GradientRule) throws -> Tensor {
        try ShapeRules.same("activation backward", gy.shape, input.shape)
        let gv = try host(gy, "activation backward"), xv = try host(input, "activation backward")
        var gx = [Float](repeating: 0, count: gv.count)
        for i in gv.indices {
            let inside = kind == .relu ? xv[i] > 0 : (xv[i] > 0 && xv[i] < 6)
            switch rule {
            case .standard: gx[i] = inside ? gv[i] : 0
            case .guided: gx[i] = inside && !(gv[i] < 0) ? gv[i] : 0  // a NaN gradient passes, as Captum's relu of it
            case .deconvnet: gx[i] = Swift.max(gv[i], 0)
            }
        }
        return make(gx, gy.shape)
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
        case .stabilizedReciprocal(let e): return 1 / (x + (x >= 0 ? e : -e))
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
            case .stabilizedReciprocal(let e):
                let d = x + (x >= 0 ? e : -e)
                return -g / (d * d)
            }
        }
    }
}

import Foundation

/// The ops only attribution and feature visualization use: SmoothGrad's noisy copies, the CAM
/// family's channel weights and normalization, the optimization engine's affine sampling and
/// Adam step. Every one has a default implementation here for any `Backend`: the tensor's values
/// read with `values`, computed in plain Swift, uploaded with `tensor`. The CPU reference uses
/// them as they are; `OpenCLBackend` replaces each with a kernel. A new backend starts with the
/// core ops of `Backend` and replaces these one by one.
public protocol AttributionOps {
    /// `copies` noisy copies of x, [copies * N, ...]: element j of copy k is
    /// x[j] + sigma * g(offset + k * x.count + j), g the counter-based Gaussian stream of `seed`
    /// (random.cl; the same numbers on every backend, drawn where the copies are made).
    func noisyCopies(_ x: Tensor, copies: Int, sigma: Float, seed: UInt64, offset: UInt64) throws -> Tensor

    /// Grad-CAM++'s channel weights (Chattopadhay et al.) [N, C] from a layer's activations A
    /// and the target's gradient G there, both [N, C, H, W]: the sum over each plane, where
    /// G != 0, of ReLU(G) G^2 / (2 G^2 + sum(A) G^3 + 1e-6), sum(A) over the same plane.
    func gradCAMPlusPlusWeights(_ activations: Tensor, gradients: Tensor) throws -> Tensor

    /// Each row of x (rows of `x.shape`'s last two dimensions: a map's planes) made
    /// non-negative and scaled to [0, 1] as pytorch-grad-cam does: y = ReLU(x), then
    /// (y - min y) / (max(y - min y) + 1e-7).
    func normalizePlanes(_ x: Tensor) throws -> Tensor

    /// [N, C, H, W] -> [N, C, height, width]: image n bilinearly sampled through transforms[n]
    /// (`AffineMap`), `fill` outside the input.
    func affineSample(_ x: Tensor, _ transforms: [AffineMap], height: Int, width: Int, fill: Float) throws -> Tensor

    /// dL/dx of affineSample: each output gradient scattered to its four bilinear neighbours with
    /// their weights (sampled positions outside the input contribute nothing).
    func affineSampleBackward(_ gy: Tensor, _ transforms: [AffineMap], inputShape: Shape) throws -> Tensor

    /// DeepLIFT's rescale rule at an activation `kind` of a pass that holds N inputs then their N
    /// references (x its input, y its output, both [2N, ...]): for element j of the first half
    /// and its partner j' of the second, d = x[j] - x[j'], each row gets its gy times
    /// (y[j] - y[j']) (1 / d) where |d| - 1e-10 > 0, else the activation's own gradient (gy
    /// where its own input is inside the activation's linear part, else 0). gy is [2N, ...]
    /// (the result too) or the inputs' half [N, ...] alone (the result too).
    func deepLiftRescale(_ gy: Tensor, input x: Tensor, output y: Tensor, kind: Activation) throws -> Tensor

    /// One Adam step at step t (from 1): the new parameters, first and second moments.
    func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ settings: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor)
}

extension AttributionOps where Self: Backend {
    /// On the host: the same counter-based stream as random.cl (SplitMix64, Box-Muller).
    public func noisyCopies(_ x: Tensor, copies: Int, sigma: Float, seed: UInt64, offset: UInt64) throws -> Tensor {
        let shape = try ShapeRules.noisyCopies("noisy copies", x.shape, copies: copies)
        let v = try values(x), n = v.count
        let key = seed &+ 0x5EED
        func mix(_ i: UInt64) -> Float {
            (Float(SplitMix64.mix(key &+ i &* SplitMix64.golden) >> 40) + 0.5) * (1 / 16_777_216)
        }
        var y = [Float](repeating: 0, count: shape.count)
        for k in 0..<copies {
            for j in 0..<n {
                let c = offset &+ UInt64(k * n + j)
                let g = (-2 * log(mix(2 &* c &+ 1))).squareRoot() * cos(2 * Float.pi * mix(2 &* c &+ 2))
                y[k * n + j] = sigma * g + v[j]
            }
        }
        return try tensor(y, shape)
    }

    /// On the host: a loop over each plane.
    public func gradCAMPlusPlusWeights(_ activations: Tensor, gradients: Tensor) throws -> Tensor {
        let op = "Grad-CAM++ weights"
        let (out, cols) = try ShapeRules.camWeights(op, activations.shape, gradients.shape)
        let a = try values(activations), g = try values(gradients)
        let w = (0..<out.count).map { row -> Float in
            let plane = (row * cols)..<((row + 1) * cols)
            let sumA = a[plane].reduce(0, +)
            return plane.reduce(Float(0)) { sum, j in
                let v = g[j], v2 = v * v
                return v == 0 ? sum : sum + Swift.max(v, 0) * v2 / (2 * v2 + sumA * v2 * v + 1e-6)
            }
        }
        return try tensor(w, out)
    }

    /// On the host: ReLU, then each plane shifted and scaled.
    public func normalizePlanes(_ x: Tensor) throws -> Tensor {
        let op = "normalize planes"
        let (rows, cols) = try ShapeRules.planes(op, x.shape)
        var y = try values(x).map { Swift.max($0, 0) }
        for r in 0..<rows {
            let plane = (r * cols)..<((r + 1) * cols)
            let lo = y[plane].min() ?? 0
            var hi: Float = 0
            for j in plane { y[j] -= lo; hi = Swift.max(hi, y[j]) }
            for j in plane { y[j] /= 1e-7 + hi }
        }
        return try tensor(y, x.shape)
    }

    /// On the host, pair by pair.
    public func deepLiftRescale(_ gy: Tensor, input x: Tensor, output y: Tensor, kind: Activation) throws -> Tensor {
        let (half, both) = try ShapeRules.deepLiftPairs("deeplift rescale", gy: gy.shape, x: x.shape, y: y.shape)
        let (g, xv, yv) = (try values(gy), try values(x), try values(y))
        let inside = { (v: Float) in kind == .relu ? v > 0 : v > 0 && v < 6 }
        var out = [Float](repeating: 0, count: g.count)
        for j in 0..<half {
            let d = xv[j] - xv[j + half]
            let r = (yv[j] - yv[j + half]) * (1 / d)
            let rescales = abs(d) - 1e-10 > 0
            out[j] = rescales ? g[j] * r : inside(xv[j]) ? g[j] : 0
            if both { out[j + half] = rescales ? g[j + half] * r : inside(xv[j + half]) ? g[j + half] : 0 }
        }
        return try tensor(out, gy.shape)
    }

    /// On the host: the four bilinear taps of each output pixel.
    public func affineSample(_ x: Tensor, _ transforms: [AffineMap], height oh: Int, width ow: Int, fill: Float) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.affineSample("affine sample", x.shape, transforms, height: oh, width: ow)
        let xv = try values(x)
        var y = [Float](repeating: 0, count: n * c * oh * ow)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow {
            let taps = transforms[b].corners(ox, oy)
            for ch in 0..<c {
                let plane = (b * c + ch) * h * w
                y[((b * c + ch) * oh + oy) * ow + ox] = taps.reduce(0) { sum, tap in
                    sum + tap.w * (tap.x >= 0 && tap.x < w && tap.y >= 0 && tap.y < h ? xv[plane + tap.y * w + tap.x] : fill)
                }
            }
        } } }
        return try tensor(y, [n, c, oh, ow])
    }

    /// The adjoint of `affineSample`, as a scatter.
    public func affineSampleBackward(_ gy: Tensor, _ transforms: [AffineMap], inputShape: Shape) throws -> Tensor {
        let (n, c, oh, ow) = try ShapeRules.rank4("affine sample backward", gy.shape)
        let (_, _, h, w) = try ShapeRules.affineSample("affine sample backward", inputShape, transforms, height: oh, width: ow)
        let g = try values(gy)
        var gx = [Float](repeating: 0, count: inputShape.count)
        for b in 0..<n { for oy in 0..<oh { for ox in 0..<ow {
            for tap in transforms[b].corners(ox, oy) where tap.x >= 0 && tap.x < w && tap.y >= 0 && tap.y < h {
                for ch in 0..<c { gx[((b * c + ch) * h + tap.y) * w + tap.x] += tap.w * g[((b * c + ch) * oh + oy) * ow + ox] }
            }
        } } }
        return try tensor(gx, inputShape)
    }

    /// On the host: one pass over the parameters.
    public func adamStep(_ p: Tensor, gradient g: Tensor, m: Tensor, v: Tensor, _ s: AdamSettings, step t: Int) throws -> (p: Tensor, m: Tensor, v: Tensor) {
        for other in [g, m, v] { try ShapeRules.same("adam", p.shape, other.shape) }
        let (pv, gv, mv, vv) = (try values(p), try values(g), try values(m), try values(v))
        let (c1, c2) = s.corrections(step: t)
        var (np, nm, nv) = (pv, mv, vv)
        for i in pv.indices {
            nm[i] = s.beta1 * mv[i] + (1 - s.beta1) * gv[i]
            nv[i] = s.beta2 * vv[i] + (1 - s.beta2) * gv[i] * gv[i]
            np[i] = pv[i] - s.learningRate * (nm[i] / c1) / ((nv[i] / c2).squareRoot() + s.epsilon)
        }
        return (try tensor(np, p.shape), try tensor(nm, p.shape), try tensor(nv, p.shape))
    }
}

extension AffineMap {
    /// The four input pixels the sample point of output pixel (ox, oy) reads, with their
    /// bilinear weights.
    func corners(_ ox: Int, _ oy: Int) -> [(x: Int, y: Int, w: Float)] {
        let u = a * Float(ox) + b * Float(oy) + c, v = d * Float(ox) + e * Float(oy) + f
        let (fu, fv) = (u.rounded(.down), v.rounded(.down))
        let (tx, ty) = (u - fu, v - fv)
        let (x0, y0) = (Int(fu), Int(fv))
        return [(x0, y0, (1 - tx) * (1 - ty)), (x0 + 1, y0, tx * (1 - ty)), (x0, y0 + 1, (1 - tx) * ty), (x0 + 1, y0 + 1, tx * ty)]
    }
}

import BackendCore
import Foundation

// Resizing, masks and channel maxima on the CPU reference backend (the twins of
// OpenCLBackend+Resample.swift: resample.cl). Its affine sampling, like every AttributionOps
// op, is the protocol's default implementation (BackendCore/AttributionOps.swift).
extension CPUBackend {
    public func resize(_ x: Tensor, height oh: Int, width ow: Int, mode: ResizeMode) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("resize", x.shape)
        guard oh >= 1, ow >= 1 else { throw BackendError("resize", "size \(oh)x\(ow) must be positive") }
        let xv = try host(x, "resize")
        let source = { (o: Int, size: Int, out: Int) in resizeSource(o, size, out, mode) }
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

    public func resizeBackward(_ gy: Tensor, inputShape: Shape, mode: ResizeMode) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("resize backward", inputShape)
        let (gn, gc, oh, ow) = try ShapeRules.rank4("resize backward", gy.shape)
        guard gn == n, gc == c, h >= 1, w >= 1 else { throw BackendError("resize backward", "gradient \(gy.shape) does not fit input \(inputShape)") }
        let g = try host(gy, "resize backward")
        var gx = [Float](repeating: 0, count: n * c * h * w)
        // The forward's sum, term by term, sent back to the pixels it read.
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let (y0, y1, ty) = resizeSource(oy, h, oh, mode), (x0, x1, tx) = resizeSource(ox, w, ow, mode)
            let (p, v) = (plane * h * w, g[(plane * oh + oy) * ow + ox])
            gx[p + y0 * w + x0] += (1 - ty) * (1 - tx) * v
            gx[p + y0 * w + x1] += (1 - ty) * tx * v
            gx[p + y1 * w + x0] += ty * (1 - tx) * v
            gx[p + y1 * w + x1] += ty * tx * v
        } } }
        return make(gx, inputShape)
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
        for b in 0..<n { for ch in 0..<c { for i in 0..<(h * w) {
            let (m, v) = (y[b * h * w + i], xv[(b * c + ch) * h * w + i])
            y[b * h * w + i] = v > m || v.isNaN ? v : m  // a NaN once in stays
        } } }
        return make(y, [n, 1, h, w])
    }
}

/// The two input positions output `o` of a resize from `size` to `out` reads along one axis and
/// the second one's weight (resample.cl's source_coordinate).
func resizeSource(_ o: Int, _ size: Int, _ out: Int, _ mode: ResizeMode) -> (Int, Int, Float) {
    if mode == .nearest {
        let i = Swift.min(Int((Float(o) * Float(size) / Float(out)).rounded(.down)), size - 1)
        return (i, i, 0)
    }
    let s = mode == .bilinearAlignCorners ? (out > 1 ? Float(o) * Float(size - 1) / Float(out - 1) : 0)
        : Swift.max((Float(o) + 0.5) * Float(size) / Float(out) - 0.5, 0)
    let lo = Swift.min(Int(s), size - 1)
    return (lo, Swift.min(lo + 1, size - 1), s - Float(lo))
}

import BackendCore
import Foundation

// conv2d on the CPU reference backend: direct loops (the twin of OpenCLBackend+Conv.swift and
// Kernels/conv2d*.cl). Each pass computes exactly the naive seven loops' sums, term by term in
// their order (Tests/BackendTests/ConvTests.swift compares them bit for bit); the loops are
// only arranged so that the innermost one runs over channels, with the weights transposed
// to make that run contiguous.
extension CPUBackend {
    /// y[b, co, oy, ox] = bias[co] + sum over (ci, ky, kx), in that order, of
    /// w[co, ci, ky, kx] * x[b, g * cig + ci, iy, ix] for the taps inside the input.
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, weight: weight.shape)
        try ShapeRules.channelVector("conv2d", bias, channels: out[1], what: "bias")
        let xv = try host(x, "conv2d"), wv = try host(weight, "conv2d")
        let bv = try bias.map { try host($0, "conv2d") }
        let (n, cin, h, w) = x.shape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let (oh, ow) = (out[2], out[3]), cog = cout / p.groups
        // Weights as [group][ci][ky][kx][co in the group].
        let wt = Self.channelsLast(wv, outer: cout, inner: cig * kh * kw, groups: p.groups)
        var y = [Float](repeating: 0, count: out.count)
        var acc = [Float](repeating: 0, count: cog)
        for b in 0..<n { for g in 0..<p.groups { for oy in 0..<oh { for ox in 0..<ow {
            for j in 0..<cog { acc[j] = bv?[g * cog + j] ?? 0 }
            for ci in 0..<cig { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h
                let ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                let v = xv[((b * cin + g * cig + ci) * h + iy) * w + ix]
                let row = (((g * cig + ci) * kh + ky) * kw + kx) * cog
                Self.accumulate(&acc, wt, from: row, times: v, count: cog)
            } } }
            for j in 0..<cog { y[((b * cout + g * cog + j) * oh + oy) * ow + ox] = acc[j] }
        } } } }
        return make(y, out)
    }

    /// gx[b, ci, iy, ix] = sum over (co, oy, ox, ky, kx), in that order, of
    /// w[co, ci, ky, kx] * gy[b, co, oy, ox] for the taps that read (iy, ix): the forward loop
    /// transposed (a scatter).
    public func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: inputShape, weight: weight.shape, op: "conv2d backward input")
        try ShapeRules.same("conv2d backward input", gy.shape, out)
        let gv = try host(gy, "conv2d backward input"), wv = try host(weight, "conv2d backward input")
        let (n, cin, h, w) = inputShape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let (oh, ow) = (out[2], out[3]), cog = cout / p.groups
        // Weights as [co][ky][kx][ci], the input gradient as [b][iy][ix][c] until the end.
        var wt = [Float](repeating: 0, count: wv.count)
        for co in 0..<cout { for ci in 0..<cig { for k in 0..<(kh * kw) {
            wt[(co * kh * kw + k) * cig + ci] = wv[(co * cig + ci) * kh * kw + k]
        } } }
        var gxt = [Float](repeating: 0, count: inputShape.count)
        for b in 0..<n { for co in 0..<cout {
            let g = co / cog
            for oy in 0..<oh { for ox in 0..<ow {
                let go = gv[((b * cout + co) * oh + oy) * ow + ox]
                for ky in 0..<kh { for kx in 0..<kw {
                    let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h
                    let ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    Self.accumulate(into: &gxt, at: ((b * h + iy) * w + ix) * cin + g * cig,
                                    wt, from: ((co * kh + ky) * kw + kx) * cig, times: go, count: cig)
                } }
            } }
        } }
        var gx = [Float](repeating: 0, count: inputShape.count)
        for b in 0..<n { for c in 0..<cin { for i in 0..<(h * w) { gx[(b * cin + c) * h * w + i] = gxt[(b * h * w + i) * cin + c] } } }
        return make(gx, inputShape)
    }

    /// gw[co, ci, ky, kx] = sum over (b, oy, ox), in that order, of
    /// x[b, g * cig + ci, iy, ix] * gy[b, co, oy, ox] for the taps inside the input.
    public func conv2dBackwardWeight(_ gy: Tensor, input: Tensor, weightShape: Shape, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: input.shape, weight: weightShape, op: "conv2d backward weight")
        try ShapeRules.same("conv2d backward weight", gy.shape, out)
        let gv = try host(gy, "conv2d backward weight"), xv = try host(input, "conv2d backward weight")
        let (n, cin, h, w) = input.shape.nchw!, (cout, cig, kh, kw) = weightShape.nchw!
        let (oh, ow) = (out[2], out[3]), cog = cout / p.groups
        // The gradient as [group][ci][ky][kx][co in the group] until the end.
        var gwt = [Float](repeating: 0, count: weightShape.count)
        var gos = [Float](repeating: 0, count: cog)
        for b in 0..<n { for g in 0..<p.groups { for oy in 0..<oh { for ox in 0..<ow {
            for j in 0..<cog { gos[j] = gv[((b * cout + g * cog + j) * oh + oy) * ow + ox] }
            for ci in 0..<cig { for ky in 0..<kh { for kx in 0..<kw {
                let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h
                let ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                let v = xv[((b * cin + g * cig + ci) * h + iy) * w + ix]
                Self.accumulate(into: &gwt, at: (((g * cig + ci) * kh + ky) * kw + kx) * cog, v, times: gos, count: cog)
            } } }
        } } } }
        let taps = cig * kh * kw
        var gw = [Float](repeating: 0, count: weightShape.count)
        for co in 0..<cout { for t in 0..<taps { gw[co * taps + t] = gwt[((co / cog) * taps + t) * cog + co % cog] } }
        return make(gw, weightShape)
    }

    public func conv2dBackwardBias(_ gy: Tensor) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("conv2d backward bias", gy.shape)
        let gv = try host(gy, "conv2d backward bias")
        var gb = [Float](repeating: 0, count: c)
        for b in 0..<n { for ch in 0..<c { for i in 0..<(h * w) { gb[ch] += gv[(b * c + ch) * h * w + i] } } }
        return make(gb, [c])
    }

    /// [outer][inner] as [group][inner][outer in the group].
    static func channelsLast(_ v: [Float], outer: Int, inner: Int, groups: Int) -> [Float] {
        let per = outer / groups
        var t = [Float](repeating: 0, count: v.count)
        for g in 0..<groups { for j in 0..<per { for i in 0..<inner { t[(g * inner + i) * per + j] = v[(g * per + j) * inner + i] } } }
        return t
    }

    /// acc[j] += w[row + j] * v for j in 0..<count.
    @inline(__always)
    static func accumulate(_ acc: inout [Float], _ w: [Float], from row: Int, times v: Float, count: Int) {
        acc.withUnsafeMutableBufferPointer { a in w.withUnsafeBufferPointer { wp in
            let a = a.baseAddress!, r = wp.baseAddress! + row
            for j in 0..<count { a[j] += r[j] * v }
        } }
    }

    /// y[at + j] += w[row + j] * v for j in 0..<count.
    @inline(__always)
    static func accumulate(into y: inout [Float], at: Int, _ w: [Float], from row: Int, times v: Float, count: Int) {
        y.withUnsafeMutableBufferPointer { yp in w.withUnsafeBufferPointer { wp in
            let d = yp.baseAddress! + at, r = wp.baseAddress! + row
            for j in 0..<count { d[j] += r[j] * v }
        } }
    }

    /// y[at + j] += v * g[j] for j in 0..<count.
    @inline(__always)
    static func accumulate(into y: inout [Float], at: Int, _ v: Float, times g: [Float], count: Int) {
        y.withUnsafeMutableBufferPointer { yp in g.withUnsafeBufferPointer { gp in
            let d = yp.baseAddress! + at, r = gp.baseAddress!
            for j in 0..<count { d[j] += v * r[j] }
        } }
    }
}

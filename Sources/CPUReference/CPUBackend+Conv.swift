import BackendCore
import Foundation

// conv2d on the CPU reference backend: direct loops, double accumulation (the twin of
// OpenCLBackend+Conv.swift and Kernels/conv2d*.cl).
extension CPUBackend {
    public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, weight: weight.shape)
        try ShapeRules.channelVector("conv2d", bias, channels: out[1], what: "bias")
        let xv = try host(x, "conv2d"), wv = try host(weight, "conv2d")
        let bv = try bias.map { try host($0, "conv2d") }
        let (n, cin, h, w) = x.shape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let (oh, ow) = (out[2], out[3]), cog = cout / p.groups
        var y = [Float](repeating: 0, count: out.count)
        for b in 0..<n { for co in 0..<cout {
            let g = co / cog
            for oy in 0..<oh { for ox in 0..<ow {
                var s = bv?[co] ?? 0
                for ci in 0..<cig { for ky in 0..<kh { for kx in 0..<kw {
                    let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h
                    let ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    s += wv[((co * cig + ci) * kh + ky) * kw + kx] * xv[((b * cin + g * cig + ci) * h + iy) * w + ix]
                } } }
                y[((b * cout + co) * oh + oy) * ow + ox] = s
            } }
        } }
        return make(y, out)
    }

    public func conv2dBackwardInput(_ gy: Tensor, weight: Tensor, inputShape: Shape, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: inputShape, weight: weight.shape, op: "conv2d backward input")
        try ShapeRules.same("conv2d backward input", gy.shape, out)
        let gv = try host(gy, "conv2d backward input"), wv = try host(weight, "conv2d backward input")
        let (n, cin, h, w) = inputShape.nchw!, (cout, cig, kh, kw) = weight.shape.nchw!
        let (oh, ow) = (out[2], out[3]), cog = cout / p.groups
        var gx = [Float](repeating: 0, count: inputShape.count)
        // Scatter form: the transpose of the forward loop.
        for b in 0..<n { for co in 0..<cout {
            let g = co / cog
            for oy in 0..<oh { for ox in 0..<ow {
                let go = gv[((b * cout + co) * oh + oy) * ow + ox]
                for ci in 0..<cig { for ky in 0..<kh { for kx in 0..<kw {
                    let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h
                    let ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    gx[((b * cin + g * cig + ci) * h + iy) * w + ix] += wv[((co * cig + ci) * kh + ky) * kw + kx] * go
                } } }
            } }
        } }
        return make(gx, inputShape)
    }

    public func conv2dBackwardWeight(_ gy: Tensor, input: Tensor, weightShape: Shape, _ p: Conv2DParams) throws -> Tensor {
        let out = try p.outputShape(input: input.shape, weight: weightShape, op: "conv2d backward weight")
        try ShapeRules.same("conv2d backward weight", gy.shape, out)
        let gv = try host(gy, "conv2d backward weight"), xv = try host(input, "conv2d backward weight")
        let (n, cin, h, w) = input.shape.nchw!, (cout, cig, kh, kw) = weightShape.nchw!
        let (oh, ow) = (out[2], out[3]), cog = cout / p.groups
        var gw = [Float](repeating: 0, count: weightShape.count)
        for b in 0..<n { for co in 0..<cout {
            let g = co / cog
            for oy in 0..<oh { for ox in 0..<ow {
                let go = gv[((b * cout + co) * oh + oy) * ow + ox]
                for ci in 0..<cig { for ky in 0..<kh { for kx in 0..<kw {
                    let iy = oy * p.stride.h - p.padding.h + ky * p.dilation.h
                    let ix = ox * p.stride.w - p.padding.w + kx * p.dilation.w
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    gw[((co * cig + ci) * kh + ky) * kw + kx] += xv[((b * cin + g * cig + ci) * h + iy) * w + ix] * go
                } } }
            } }
        } }
        return make(gw, weightShape)
    }

    public func conv2dBackwardBias(_ gy: Tensor) throws -> Tensor {
        let (n, c, h, w) = try ShapeRules.rank4("conv2d backward bias", gy.shape)
        let gv = try host(gy, "conv2d backward bias")
        var gb = [Float](repeating: 0, count: c)
        for b in 0..<n { for ch in 0..<c { for i in 0..<(h * w) { gb[ch] += gv[(b * c + ch) * h * w + i] } } }
        return make(gb, [c])
    }
}

import BackendCore
// Pooling on the CPU reference backend.
extension CPUBackend {
    /// The flat in-plane index of the window's first maximum, or nil for an all-padding window.
    /// A NaN wins over numbers (the first NaN), as in PyTorch.
    private func argmax(_ v: [Float], base: Int, h: Int, w: Int, oy: Int, ox: Int, _ p: Pool2DParams) -> Int? {
        var best: Int?
        for ky in 0..<p.kernel.h { for kx in 0..<p.kernel.w {
            let iy = oy * p.stride.h - p.padding.h + ky, ix = ox * p.stride.w - p.padding.w + kx
            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
            if let b = best {
                let (x, m) = (v[base + iy * w + ix], v[base + b])
                guard !m.isNaN, x > m || x.isNaN else { continue }
            }
            best = iy * w + ix
        } }
        return best
    }

    public func maxPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, op: "maxpool2d")
        let xv = try host(x, "maxpool2d")
        let (n, c, h, w) = x.shape.nchw!, (oh, ow) = (out[2], out[3])
        var y = [Float](repeating: 0, count: out.count)
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let a = argmax(xv, base: plane * h * w, h: h, w: w, oy: oy, ox: ox, p)
            y[(plane * oh + oy) * ow + ox] = a.map { xv[plane * h * w + $0] } ?? -.infinity
        } } }
        return make(y, out)
    }

    public func maxPool2dBackward(_ gy: Tensor, input: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: input.shape, op: "maxpool2d backward")
        try ShapeRules.same("maxpool2d backward", gy.shape, out)
        let xv = try host(input, "maxpool2d backward"), gv = try host(gy, "maxpool2d backward")
        let (n, c, h, w) = input.shape.nchw!, (oh, ow) = (out[2], out[3])
        var gx = [Float](repeating: 0, count: input.shape.count)
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            if let a = argmax(xv, base: plane * h * w, h: h, w: w, oy: oy, ox: ox, p) {
                gx[plane * h * w + a] += gv[(plane * oh + oy) * ow + ox]
            }
        } } }
        return make(gx, input.shape)
    }

    /// The window of output (oy, ox) clipped to the input, and PyTorch's divisor for it.
    private func avgWindow(oy: Int, ox: Int, h: Int, w: Int, _ p: Pool2DParams)
        -> (ys: Range<Int>, xs: Range<Int>, divisor: Float) {
        let y0 = oy * p.stride.h - p.padding.h, x0 = ox * p.stride.w - p.padding.w
        let y1 = Swift.min(y0 + p.kernel.h, h + p.padding.h), x1 = Swift.min(x0 + p.kernel.w, w + p.padding.w)
        let padded = (y1 - y0) * (x1 - x0)
        let ys = Swift.max(y0, 0)..<Swift.min(y1, h), xs = Swift.max(x0, 0)..<Swift.min(x1, w)
        return (ys, xs, Float(p.countIncludePad ? padded : ys.count * xs.count))
    }

    public func avgPool2d(_ x: Tensor, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: x.shape, op: "avgpool2d")
        let xv = try host(x, "avgpool2d")
        let (n, c, h, w) = x.shape.nchw!, (oh, ow) = (out[2], out[3])
        var y = [Float](repeating: 0, count: out.count)
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let win = avgWindow(oy: oy, ox: ox, h: h, w: w, p)
            var s: Float = 0
            for iy in win.ys { for ix in win.xs { s += xv[plane * h * w + iy * w + ix] } }
            y[(plane * oh + oy) * ow + ox] = s / win.divisor
        } } }
        return make(y, out)
    }

    public func avgPool2dBackward(_ gy: Tensor, inputShape: Shape, _ p: Pool2DParams) throws -> Tensor {
        let out = try p.outputShape(input: inputShape, op: "avgpool2d backward")
        try ShapeRules.same("avgpool2d backward", gy.shape, out)
        let gv = try host(gy, "avgpool2d backward")
        let (n, c, h, w) = inputShape.nchw!, (oh, ow) = (out[2], out[3])
        var gx = [Float](repeating: 0, count: inputShape.count)
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let win = avgWindow(oy: oy, ox: ox, h: h, w: w, p)
            let g = gv[(plane * oh + oy) * ow + ox] / win.divisor
            for iy in win.ys { for ix in win.xs { gx[plane * h * w + iy * w + ix] += g } }
        } } }
        return make(gx, inputShape)
    }

    private func adaptiveRange(_ o: Int, _ size: Int, _ outSize: Int) -> Range<Int> {
        (o * size) / outSize..<((o + 1) * size + outSize - 1) / outSize
    }

    private func adaptiveShape(_ op: String, _ input: Shape, _ size: (h: Int, w: Int)) throws -> Shape {
        let (n, c, _, _) = try ShapeRules.rank4(op, input)
        guard size.h >= 1, size.w >= 1 else { throw BackendError(op, "output size \(size.h)x\(size.w) must be positive") }
        return [n, c, size.h, size.w]
    }

    public func adaptiveAvgPool2d(_ x: Tensor, outputSize: (h: Int, w: Int)) throws -> Tensor {
        let out = try adaptiveShape("adaptive avgpool2d", x.shape, outputSize)
        let xv = try host(x, "adaptive avgpool2d")
        let (n, c, h, w) = x.shape.nchw!, (oh, ow) = outputSize
        var y = [Float](repeating: 0, count: out.count)
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let ys = adaptiveRange(oy, h, oh), xs = adaptiveRange(ox, w, ow)
            var s: Float = 0
            for iy in ys { for ix in xs { s += xv[plane * h * w + iy * w + ix] } }
            y[(plane * oh + oy) * ow + ox] = s / Float(ys.count * xs.count)
        } } }
        return make(y, out)
    }

    public func adaptiveAvgPool2dBackward(_ gy: Tensor, inputShape: Shape) throws -> Tensor {
        let (_, _, oh, ow) = try ShapeRules.rank4("adaptive avgpool2d backward", gy.shape)
        let out = try adaptiveShape("adaptive avgpool2d backward", inputShape, (oh, ow))
        try ShapeRules.same("adaptive avgpool2d backward", gy.shape, out)
        let gv = try host(gy, "adaptive avgpool2d backward")
        let (n, c, h, w) = inputShape.nchw!
        var gx = [Float](repeating: 0, count: inputShape.count)
        for plane in 0..<(n * c) { for oy in 0..<oh { for ox in 0..<ow {
            let ys = adaptiveRange(oy, h, oh), xs = adaptiveRange(ox, w, ow)
            let g = gv[(plane * oh + oy) * ow + ox] / Float(ys.count * xs.count)
            for iy in ys { for ix in xs { gx[plane * h * w + iy * w + ix] += g } }
        } } }
        return make(gx, inputShape)
    }
}

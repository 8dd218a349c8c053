import BackendCore
import Device

// Row-wise ops on the device: softmax, log-softmax (softmax.cl), layer norm (layernorm.cl), sums,
// means and maxima along an axis (reduce.cl).
extension OpenCLBackend {
    private func softmaxForward(_ x: Tensor, log: Bool, _ op: String) throws -> Tensor {
        let (rows, cols) = try ShapeRules.lastDim(op, x.shape)
        let xb = try buffer(x, op)
        let (y, yb) = try empty(x.shape, op)
        try kernels.softmax(self, x: xb, y: yb, rows: rows, cols: cols, log: log)
        return y
    }

    private func softmaxBackward(_ gy: Tensor, _ y: Tensor, log: Bool, _ op: String) throws -> Tensor {
        try ShapeRules.same(op, gy.shape, y.shape)
        let (rows, cols) = try ShapeRules.lastDim(op, gy.shape)
        let gb = try buffer(gy, op), yb = try buffer(y, op)
        let (gx, gxb) = try empty(gy.shape, op)
        try kernels.softmaxBackward(self, gy: gb, y: yb, gx: gxb, rows: rows, cols: cols, log: log)
        return gx
    }

    public func softmax(_ x: Tensor) throws -> Tensor { try softmaxForward(x, log: false, "softmax") }
    public func logSoftmax(_ x: Tensor) throws -> Tensor { try softmaxForward(x, log: true, "log-softmax") }
    public func softmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor {
        try softmaxBackward(gy, output, log: false, "softmax backward")
    }
    public func logSoftmaxBackward(_ gy: Tensor, output: Tensor) throws -> Tensor {
        try softmaxBackward(gy, output, log: true, "log-softmax backward")
    }

    public func layerNorm(_ x: Tensor, gamma: Tensor?, beta: Tensor?, eps: Float) throws -> Tensor {
        let (rows, cols) = try ShapeRules.layerNorm("layer norm", x.shape, gamma: gamma, beta: beta, eps: eps)
        let xb = try buffer(x, "layer norm")
        let gb = try gamma.map { try buffer($0, "layer norm") } ?? xb, bb = try beta.map { try buffer($0, "layer norm") } ?? xb
        let (y, yb) = try empty(x.shape, "layer norm")
        try kernels.layerNorm(self, x: xb, gamma: gb, beta: bb, y: yb, rows: rows, cols: cols, eps: eps,
                              hasGamma: gamma != nil, hasBeta: beta != nil)
        return y
    }

    public func layerNormBackward(_ gy: Tensor, input: Tensor, gamma: Tensor?, eps: Float) throws -> Tensor {
        try ShapeRules.same("layer norm backward", gy.shape, input.shape)
        let (rows, cols) = try ShapeRules.layerNorm("layer norm backward", input.shape, gamma: gamma, beta: nil, eps: eps)
        let gyb = try buffer(gy, "layer norm backward"), xb = try buffer(input, "layer norm backward")
        let gb = try gamma.map { try buffer($0, "layer norm backward") } ?? xb
        let (gx, gxb) = try empty(input.shape, "layer norm backward")
        try kernels.layerNormBackward(self, gy: gyb, x: xb, gamma: gb, gx: gxb, rows: rows, cols: cols, eps: eps, hasGamma: gamma != nil)
        return gx
    }

    public func reduce(_ x: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (rows, cols, out) = try ShapeRules.rows("reduce", x.shape, axis: axis)
        let xb = try buffer(x, "reduce")
        let (y, yb) = try empty(out, "reduce")
        try kernels.reduceRows(self, x: xb, y: yb, rows: rows, cols: cols, op: op)
        return y
    }

    public func reduceBackward(_ gy: Tensor, input: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("reduce backward", input.shape, axis: axis)
        try ShapeRules.same("reduce backward", gy.shape, out)
        let gb = try buffer(gy, "reduce backward"), xb = try buffer(input, "reduce backward")
        let (gx, gxb) = try empty(input.shape, "reduce backward")
        try launch(.reduce_rows_backward(gy: gb, x: xb, gx: gxb, cols: cols, total: input.shape.count, OP: Int(op.rawValue)),
                   global: [input.shape.count])
        return gx
    }

    public func max(_ x: Tensor, axis: Int) throws -> (values: Tensor, indices: Tensor) {
        let (rows, cols, out) = try ShapeRules.rows("max", x.shape, axis: axis)
        let xb = try buffer(x, "max")
        let (v, vb) = try empty(out, "max"), (i, ib) = try empty(out, "max")
        try launch(.max_rows(x: xb, values: vb, indices: ib, cols: cols), global: [64, rows], local: [64, 1])
        return (v, i)
    }

    public func maxBackward(_ gy: Tensor, indices: Tensor, inputShape: Shape, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("max backward", inputShape, axis: axis)
        try ShapeRules.same("max backward", gy.shape, out)
        try ShapeRules.same("max backward", indices.shape, out)
        let gb = try buffer(gy, "max backward"), ib = try buffer(indices, "max backward")
        let (gx, gxb) = try empty(inputShape, "max backward")
        try launch(.max_rows_backward(gy: gb, indices: ib, gx: gxb, cols: cols, total: inputShape.count), global: [inputShape.count])
        return gx
    }
}

// MARK: Class activation maps (reduce.cl)
extension OpenCLBackend {
    public func gradCAMPlusPlusWeights(_ activations: Tensor, gradients: Tensor) throws -> Tensor {
        let op = "Grad-CAM++ weights"
        let (out, cols) = try ShapeRules.camWeights(op, activations.shape, gradients.shape)
        let ab = try buffer(activations, op), gb = try buffer(gradients, op)
        let (w, wb) = try empty(out, op)
        try launch(.gradcampp_weights(a: ab, g: gb, w: wb, cols: cols), global: [64, out.count], local: [64, 1])
        return w
    }

    public func normalizePlanes(_ x: Tensor) throws -> Tensor {
        let op = "normalize planes"
        let (rows, cols) = try ShapeRules.planes(op, x.shape)
        let xb = try buffer(x, op)
        let (y, yb) = try empty(x.shape, op)
        try launch(.normalize_rows(x: xb, y: yb, cols: cols), global: [64, rows], local: [64, 1])
        return y
    }
}

import BackendCore
import Device

// Row-wise ops on the device: softmax, log-softmax (softmax.cl), layer norm (layernorm.cl), sums,
// means and maxima along an axis (reduce.cl).
extension OpenCLBackend {
    private func softmaxForward(_ x: Tensor, log: Bool, _ op: String) throws -> Tensor {
        let (rows, cols) = try ShapeRules.lastDim(op, x.shape)
        let xb = try buffer(x, op)
        let (y, yb) = try empty(x.shape, op)
        if family == .registerBlocked {
            try kernel(["softmax"], "softmax_rows_forward").launch(global: [rows], local: [1],
                [.buffer(xb), .buffer(yb), .int(cols), .int(log ? 1 : 0), .int(rows)])
            return y
        }
        try kernel(["softmax"], "softmax_forward").launch(global: [64, rows], local: [64, 1],
            [.buffer(xb), .buffer(yb), .int(cols), .int(log ? 1 : 0)])
        return y
    }

    private func softmaxBackward(_ gy: Tensor, _ y: Tensor, log: Bool, _ op: String) throws -> Tensor {
        try ShapeRules.same(op, gy.shape, y.shape)
        let (rows, cols) = try ShapeRules.lastDim(op, gy.shape)
        let gb = try buffer(gy, op), yb = try buffer(y, op)
        let (gx, gxb) = try empty(gy.shape, op)
        if family == .registerBlocked {
            try kernel(["softmax"], "softmax_rows_backward").launch(global: [rows], local: [1],
                [.buffer(gb), .buffer(yb), .buffer(gxb), .int(cols), .int(log ? 1 : 0), .int(rows)])
            return gx
        }
        try kernel(["softmax"], "softmax_backward").launch(global: [64, rows], local: [64, 1],
            [.buffer(gb), .buffer(yb), .buffer(gxb), .int(cols), .int(log ? 1 : 0)])
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
        let args: [KernelArgument] = [.buffer(xb), .buffer(gb), .buffer(bb), .buffer(yb), .int(cols), .float(eps), .int(gamma == nil ? 0 : 1), .int(beta == nil ? 0 : 1)]
        if family == .registerBlocked {
            try kernel(["softmax", "layernorm"], "layernorm_rows_forward").launch(global: [rows], local: [1], args + [.int(rows)])
        } else {
            try kernel(["softmax", "layernorm"], "layernorm_forward").launch(global: [64, rows], local: [64, 1], args)
        }
        return y
    }

    public func layerNormBackward(_ gy: Tensor, input: Tensor, gamma: Tensor?, eps: Float) throws -> Tensor {
        try ShapeRules.same("layer norm backward", gy.shape, input.shape)
        let (rows, cols) = try ShapeRules.layerNorm("layer norm backward", input.shape, gamma: gamma, beta: nil, eps: eps)
        let gyb = try buffer(gy, "layer norm backward"), xb = try buffer(input, "layer norm backward")
        let gb = try gamma.map { try buffer($0, "layer norm backward") } ?? xb
        let (gx, gxb) = try empty(input.shape, "layer norm backward")
        let args: [KernelArgument] = [.buffer(gyb), .buffer(xb), .buffer(gb), .buffer(gxb), .int(cols), .float(eps), .int(gamma == nil ? 0 : 1)]
        if family == .registerBlocked {
            try kernel(["softmax", "layernorm"], "layernorm_rows_backward").launch(global: [rows], local: [1], args + [.int(rows)])
        } else {
            try kernel(["softmax", "layernorm"], "layernorm_backward").launch(global: [64, rows], local: [64, 1], args)
        }
        return gx
    }

    public func reduce(_ x: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (rows, cols, out) = try ShapeRules.rows("reduce", x.shape, axis: axis)
        let xb = try buffer(x, "reduce")
        let (y, yb) = try empty(out, "reduce")
        try kernel(["reduce"], "reduce_rows").launch(global: [64, rows], local: [64, 1],
            [.buffer(xb), .buffer(yb), .int(cols), .int(op.rawValue)])
        return y
    }

    public func reduceBackward(_ gy: Tensor, input: Tensor, _ op: Reduction, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("reduce backward", input.shape, axis: axis)
        try ShapeRules.same("reduce backward", gy.shape, out)
        let gb = try buffer(gy, "reduce backward"), xb = try buffer(input, "reduce backward")
        let (gx, gxb) = try empty(input.shape, "reduce backward")
        try kernel(["reduce"], "reduce_rows_backward").launch(global: [input.shape.count],
            [.buffer(gb), .buffer(xb), .buffer(gxb), .int(cols), .int(input.shape.count), .int(op.rawValue)])
        return gx
    }

    public func max(_ x: Tensor, axis: Int) throws -> (values: Tensor, indices: Tensor) {
        let (rows, cols, out) = try ShapeRules.rows("max", x.shape, axis: axis)
        let xb = try buffer(x, "max")
        let (v, vb) = try empty(out, "max"), (i, ib) = try empty(out, "max")
        try kernel(["reduce"], "max_rows").launch(global: [64, rows], local: [64, 1],
            [.buffer(xb), .buffer(vb), .buffer(ib), .int(cols)])
        return (v, i)
    }

    public func maxBackward(_ gy: Tensor, indices: Tensor, inputShape: Shape, axis: Int) throws -> Tensor {
        let (_, cols, out) = try ShapeRules.rows("max backward", inputShape, axis: axis)
        try ShapeRules.same("max backward", gy.shape, out)
        try ShapeRules.same("max backward", indices.shape, out)
        let gb = try buffer(gy, "max backward"), ib = try buffer(indices, "max backward")
        let (gx, gxb) = try empty(inputShape, "max backward")
        try kernel(["reduce"], "max_rows_backward").launch(global: [inputShape.count],
            [.buffer(gb), .buffer(ib), .buffer(gxb), .int(cols), .int(inputShape.count)])
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
        try kernel(["reduce"], "gradcampp_weights").launch(global: [64, out.count], local: [64, 1],
            [.buffer(ab), .buffer(gb), .buffer(wb), .int(cols)])
        return w
    }

    public func normalizePlanes(_ x: Tensor) throws -> Tensor {
        let op = "normalize planes"
        let (rows, cols) = try ShapeRules.planes(op, x.shape)
        let xb = try buffer(x, op)
        let (y, yb) = try empty(x.shape, op)
        try kernel(["reduce"], "normalize_rows").launch(global: [64, rows], local: [64, 1], [.buffer(xb), .buffer(yb), .int(cols)])
        return y
    }
}

import BackendCore
import Foundation

// Row-wise ops on the CPU reference backend: softmax, log-softmax, layer norm, sums, means and
// maxima along an axis (the twins of OpenCLBackend+Reduction.swift: softmax.cl, layernorm.cl,
// reduce.cl).
extension CPUBackend {
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
            // The first NaN is the maximum (torch.max's rule): a comparison alone would skip it.
            for j in 1..<Swift.max(cols, 1) where !xv[r * cols + best].isNaN && (xv[r * cols + j] > xv[r * cols + best] || xv[r * cols + j].isNaN) {
                best = j
            }
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
}

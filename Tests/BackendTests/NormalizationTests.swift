import Backend
import Foundation
import Testing
import TestSupport

@Suite(.timed) struct BatchNormTests {
    @Test(arguments: [Shape([1, 3, 7, 7]), Shape([3, 5, 1, 1]), Shape([2, 6, 5, 3])])
    func deviceMatchesReferenceAndFiniteDifferences(_ shape: Shape) throws {
        var rng = SeededRandom(seed: 22)
        let c = shape[1]
        let x = rng.floats(shape.count), g = rng.floats(shape.count)
        let gamma = rng.floats(c), beta = rng.floats(c), mean = rng.floats(c), variance = rng.floats(c, 0.2, 2)
        func params(_ b: any Backend) throws -> BatchNormParams {
            BatchNormParams(gamma: try b.tensor(gamma, [c]), beta: try b.tensor(beta, [c]), mean: try b.tensor(mean, [c]),
                            variance: try b.tensor(variance, [c]), eps: 1e-5)
        }
        try expectDeviceMatchesReference("batchnorm \(shape)", inputs: [(x, shape), (g, shape)]) { b, t in
            let p = try params(b)
            return [try b.batchNorm2d(t[0], p), try b.batchNorm2dBackward(t[1], p)]
        }
        let p = try params(cpu)
        try expectFiniteDifferences("batchnorm", inputs: [x]) { v in
            try cpu.values(cpu.batchNorm2d(cpu.tensor(v[0], shape), p))
        } backward: { _, r in [try cpu.values(cpu.batchNorm2dBackward(cpu.tensor(r, shape), p))] }
    }

    @Test func foldingIntoTheConvolutionGivesTheSameOutput() throws {
        var rng = SeededRandom(seed: 23)
        let xs: Shape = [2, 3, 6, 6], ws: Shape = [4, 3, 3, 3]
        let x = rng.floats(xs.count), w = rng.floats(ws.count), b = rng.floats(4)
        let gamma = rng.floats(4), beta = rng.floats(4), mean = rng.floats(4), variance = rng.floats(4, 0.2, 2)
        let p = Conv2DParams(padding: 1)
        let bn = BatchNormParams(gamma: try cpu.tensor(gamma, [4]), beta: try cpu.tensor(beta, [4]),
                                 mean: try cpu.tensor(mean, [4]), variance: try cpu.tensor(variance, [4]), eps: 1e-3)
        let separate = try cpu.batchNorm2d(cpu.conv2d(cpu.tensor(x, xs), weight: cpu.tensor(w, ws), bias: cpu.tensor(b, [4]), p), bn)
        let folded = try foldBatchNorm(weight: w, bias: b, outChannels: 4, gamma: gamma, beta: beta, mean: mean, variance: variance, eps: 1e-3)
        let fused = try cpu.conv2d(cpu.tensor(x, xs), weight: cpu.tensor(folded.weight, ws), bias: cpu.tensor(folded.bias, [4]), p)
        expectClose(try cpu.values(fused), try cpu.values(separate), tolerance: 1e-5, "folded conv")
        #expect(throws: BackendError.self) {
            try foldBatchNorm(weight: w, bias: nil, outChannels: 5, gamma: gamma, beta: beta, mean: mean, variance: variance, eps: 1e-3)
        }
    }
}

/// Ops of imported transformer-style graphs: permute (ONNX Transpose) and layer normalization.
@Suite(.timed) struct LayoutAndNormalizationTests {
    /// Every output element is the input element at the permuted coordinates (checked against
    /// an index computation written here, independent of both backends), on both backends, and
    /// the permute by the inverse permutation undoes it.
    @Test(arguments: [(Shape([2, 3, 4, 5]), [0, 2, 3, 1]), (Shape([2, 5, 3, 4]), [0, 3, 1, 2]), (Shape([1, 2, 58, 3, 5]), [0, 2, 1, 3, 4]),
                      (Shape([7, 37]), [1, 0]), (Shape([3]), [0]), (Shape([2, 1, 3, 1, 2, 5]), [5, 3, 1, 4, 0, 2]), (Shape([2, 17, 33]), [2, 0, 1])])
    func permuteMovesEveryElementWhereNumpyWould(_ shape: Shape, _ perm: [Int]) throws {
        let x = (0..<shape.count).map { Float($0) }
        let out = Shape(perm.map { shape[$0] })
        var strides = [Int](repeating: 1, count: shape.rank)
        for i in stride(from: shape.rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
        var expected: [Float] = []
        for i in 0..<out.count {
            var (rest, source) = (i, 0)
            for d in stride(from: out.rank - 1, through: 0, by: -1) {
                source += rest % out[d] * strides[perm[d]]
                rest /= out[d]
            }
            expected.append(x[source])
        }
        var inverse = perm
        for (i, p) in perm.enumerated() { inverse[p] = i }
        for b in [cpu as any Backend] + openCLFamilies() {
            let y = try b.permute(try b.tensor(x, shape), perm)
            #expect(y.shape == out, "\(b.name) permute \(shape) by \(perm)")
            #expect(try b.values(y) == expected, "\(b.name) permute \(shape) by \(perm)")
            #expect(try b.values(try b.permute(y, inverse)) == x, "\(b.name) inverse permute")
        }
        #expect(throws: BackendError.self) { try cpu.permute(cpu.tensor(x, shape), perm + [perm.count]) }
        if shape.rank > 1 { #expect(throws: BackendError.self) { try cpu.permute(cpu.tensor(x, shape), perm.map { _ in 0 }) } }
    }

    /// Layer normalization over the last dimension: the mean and (biased) variance of each
    /// normalized row are 0 and 1 before the affine map; device against the CPU reference, with
    /// and without gamma and beta; the backward pass by finite differences.
    @Test(arguments: [Shape([2, 3, 4, 96]), Shape([5, 7]), Shape([1, 1, 1, 300]), Shape([3, 1]), Shape([2, 197, 64])])
    func layerNormMatchesReferenceAndFiniteDifferences(_ shape: Shape) throws {
        var rng = SeededRandom(seed: 41)
        let c = shape.dims.last!
        let x = rng.floats(shape.count, -3, 5), gy = rng.floats(shape.count), gamma = rng.floats(c, 0.5, 1.5), beta = rng.floats(c)
        let plain = try cpu.values(cpu.layerNorm(cpu.tensor(x, shape), gamma: nil, beta: nil, eps: 1e-6))
        for r in 0..<(shape.count / c) where c > 1 {
            let row = plain[(r * c)..<((r + 1) * c)].map(Double.init)
            let mean = row.reduce(0, +) / Double(c)
            #expect(abs(mean) < 1e-5 && abs(row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c) - 1) < 1e-4, "row \(r)")
        }
        try expectDeviceMatchesReference("layer norm \(shape)", inputs: [(x, shape), (gy, shape), (gamma, [c]), (beta, [c])]) { b, t in
            [try b.layerNorm(t[0], gamma: t[2], beta: t[3], eps: 1e-5), try b.layerNorm(t[0], gamma: nil, beta: nil, eps: 1e-6),
             try b.layerNorm(t[0], gamma: t[2], beta: nil, eps: 1e-5),
             try b.layerNormBackward(t[1], input: t[0], gamma: t[2], eps: 1e-5), try b.layerNormBackward(t[1], input: t[0], gamma: nil, eps: 0.1)]
        }
        guard shape.count <= 300, c > 1 else { return }
        try expectFiniteDifferences("layer norm \(shape)", inputs: [x.map { $0 / 2 }], eps: 1e-2, tolerance: 3e-2) { v in
            try cpu.values(cpu.layerNorm(cpu.tensor(v[0], shape), gamma: cpu.tensor(gamma, [c]), beta: cpu.tensor(beta, [c]), eps: 1e-5))
        } backward: { v, r in
            [try cpu.values(cpu.layerNormBackward(cpu.tensor(r, shape), input: cpu.tensor(v[0], shape), gamma: cpu.tensor(gamma, [c]), eps: 1e-5))]
        }
        // Without gamma (the affine-free norm the transformers' final norm and tests use).
        try expectFiniteDifferences("layer norm \(shape), no gamma", inputs: [x.map { $0 / 2 }], eps: 1e-2, tolerance: 3e-2) { v in
            try cpu.values(cpu.layerNorm(cpu.tensor(v[0], shape), gamma: nil, beta: nil, eps: 0.1))
        } backward: { v, r in
            [try cpu.values(cpu.layerNormBackward(cpu.tensor(r, shape), input: cpu.tensor(v[0], shape), gamma: nil, eps: 0.1))]
        }
        #expect(throws: BackendError.self) { try cpu.layerNorm(cpu.tensor(x, shape), gamma: cpu.tensor(gamma + [1], [c + 1]), beta: nil, eps: 1e-5) }
    }

    /// Batched matrix products with each operand transposed or not: the CPU twin against a
    /// product written out here, both device families against it over awkward sizes (ViT's
    /// attention among them; an empty inner size gives zeros), the backward (gc b^T, a^T gc) by
    /// finite differences.
    @Test(arguments: [[1, 1, 1, 1], [3, 5, 7, 2], [12, 17, 16, 17], [2, 33, 70, 9], [4, 6, 1, 40], [2, 3, 0, 4]])
    func matmulMatchesReferenceAndFiniteDifferences(_ sizes: [Int]) throws {
        let (z, m, k, n) = (sizes[0], sizes[1], sizes[2], sizes[3])
        var rng = SeededRandom(seed: 43)
        let a = rng.floats(z * m * k), b = rng.floats(z * k * n)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let ashape: Shape = ta ? [z, k, m] : [z, m, k], bshape: Shape = tb ? [z, n, k] : [z, k, n]
            let c = try cpu.values(cpu.matmul(cpu.tensor(a, ashape), cpu.tensor(b, bshape), transposeA: ta, transposeB: tb))
            var worst: Float = 0
            for q in 0..<z { for i in 0..<m { for j in 0..<n {
                var sum: Float = 0
                for p in 0..<k {
                    sum += a[q * m * k + (ta ? p * m + i : i * k + p)] * b[q * k * n + (tb ? j * k + p : p * n + j)]
                }
                worst = Swift.max(worst, abs(sum - c[(q * m + i) * n + j]))
            } } }
            #expect(worst < 1e-4, "CPU matmul \(sizes) \(ta) \(tb): \(worst)")
            try expectDeviceMatchesReference("matmul \(sizes) \(ta) \(tb)", inputs: [(a, ashape), (b, bshape)]) { be, t in
                [try be.matmul(t[0], t[1], transposeA: ta, transposeB: tb)]
            }
        }
        let wider = try cpu.tensor([Float](repeating: 0, count: z * m * (k + 1)), [z, m, k + 1])
        #expect(throws: BackendError.self) { try cpu.matmul(wider, cpu.tensor(b, [z, k, n]), transposeA: false, transposeB: false) }
        #expect(throws: BackendError.self) { try cpu.matmul(cpu.tensor(a, [z * m, k]), cpu.tensor(b, [z, k, n]), transposeA: false, transposeB: false) }
        guard k > 0, z * m * k + z * k * n <= 600 else { return }
        try expectFiniteDifferences("matmul \(sizes)", inputs: [a, b]) { v in
            try cpu.values(cpu.matmul(cpu.tensor(v[0], [z, m, k]), cpu.tensor(v[1], [z, k, n]), transposeA: false, transposeB: false))
        } backward: { v, r in
            let (at, bt, gc) = (try cpu.tensor(v[0], [z, m, k]), try cpu.tensor(v[1], [z, k, n]), try cpu.tensor(r, [z, m, n]))
            return [try cpu.values(cpu.matmul(gc, bt, transposeA: false, transposeB: true)),
                    try cpu.values(cpu.matmul(at, gc, transposeA: true, transposeB: false))]
        }
    }
}

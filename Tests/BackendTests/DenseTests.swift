import Backend
import Foundation
import Testing
import TestSupport

@Suite struct LinearTests {
    // (1, 300, 150) and (2, 200, 600) are deep enough to split K in the tiled family.
    // From 4 rows the CPU family multiplies packed panels: (13, 29, 45) and (40, 226, 37) end
    // inside a block of rows and of columns, (4, 1, 1) is all tail.
    @Test(arguments: [(1, 7, 5), (3, 64, 70), (8, 33, 1000), (2, 1, 1), (2, 40, 3), (1, 300, 150), (2, 200, 600),
                      (13, 29, 45), (40, 226, 37), (4, 1, 1), (6, 16, 32)])
    func deviceMatchesReferenceAndFiniteDifferences(_ n: Int, _ inF: Int, _ outF: Int) throws {
        var rng = SeededRandom(seed: 21)
        let x = rng.floats(n * inF), w = rng.floats(outF * inF), b = rng.floats(outF), g = rng.floats(n * outF)
        try expectDeviceMatchesReference("linear \(n)x\(inF)->\(outF)",
                                         inputs: [(x, [n, inF]), (w, [outF, inF]), (b, [outF]), (g, [n, outF])],
                                         on: openCLFamilies() + openCLSplitK()) { be, t in
            [try be.linear(t[0], weight: t[1], bias: t[2]), try be.linear(t[0], weight: t[1], bias: nil),
             try be.linearBackwardInput(t[3], weight: t[1]), try be.linearBackwardWeight(t[3], input: t[0]),
             try be.linearBackwardBias(t[3])]
        }
        guard n * inF * outF < 50_000 else { return }
        try expectFiniteDifferences("linear", inputs: [x, w, b]) { v in
            try cpu.values(cpu.linear(cpu.tensor(v[0], [n, inF]), weight: cpu.tensor(v[1], [outF, inF]), bias: cpu.tensor(v[2], [outF])))
        } backward: { v, r in
            let gy = try cpu.tensor(r, [n, outF])
            return [try cpu.values(cpu.linearBackwardInput(gy, weight: cpu.tensor(v[1], [outF, inF]))),
                    try cpu.values(cpu.linearBackwardWeight(gy, input: cpu.tensor(v[0], [n, inF]))),
                    try cpu.values(cpu.linearBackwardBias(gy))]
        }
    }
}

@Suite struct BatchNormTests {
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

@Suite struct ElementwiseTests {
    // Sizes around the 4-wide vector step: ragged tails must be handled.
    @Test(arguments: [1, 3, 4, 5, 17, 1000, 4099])
    func deviceMatchesReferenceAndFiniteDifferences(_ n: Int) throws {
        var rng = SeededRandom(seed: 24)
        let a = rng.floats(n), b = rng.floats(n)
        try expectDeviceMatchesReference("elementwise \(n)", inputs: [(a, [n]), (b, [n])]) { be, t in
            [try be.add(t[0], t[1]), try be.mul(t[0], t[1]), try be.scale(t[0], -2.5), try be.axpy(0.75, t[0], t[1])]
        }
        guard n <= 17 else { return }
        // Backward of add is (g, g); of mul (g*b, g*a); of scale s*g; of axpy (alpha*g, g).
        try expectFiniteDifferences("add", inputs: [a, b]) { v in
            try cpu.values(cpu.add(cpu.tensor(v[0], [n]), cpu.tensor(v[1], [n])))
        } backward: { _, r in [r, r] }
        try expectFiniteDifferences("mul", inputs: [a, b]) { v in
            try cpu.values(cpu.mul(cpu.tensor(v[0], [n]), cpu.tensor(v[1], [n])))
        } backward: { v, r in
            [try cpu.values(cpu.mul(cpu.tensor(r, [n]), cpu.tensor(v[1], [n]))),
             try cpu.values(cpu.mul(cpu.tensor(r, [n]), cpu.tensor(v[0], [n])))]
        }
        try expectFiniteDifferences("scale", inputs: [a]) { v in
            try cpu.values(cpu.scale(cpu.tensor(v[0], [n]), -2.5))
        } backward: { _, r in [try cpu.values(cpu.scale(cpu.tensor(r, [n]), -2.5))] }
        try expectFiniteDifferences("axpy", inputs: [a, b]) { v in
            try cpu.values(cpu.axpy(0.75, cpu.tensor(v[0], [n]), cpu.tensor(v[1], [n])))
        } backward: { _, r in [try cpu.values(cpu.scale(cpu.tensor(r, [n]), 0.75)), r] }
    }
}

@Suite struct NoiseTests {
    /// The counter-based stream: the device draws what the reference draws, copies continue the
    /// stream (two copies at offset 0 = one at 0 and one at x.count), and the numbers are
    /// N(0, 1): moments and tail mass over 200 000 draws, and no correlation between neighbours.
    @Test func noisyCopiesAreTheSameGaussianStreamOnEveryBackend() throws {
        var rng = SeededRandom(seed: 25)
        let x = rng.floats(2 * 3 * 5 * 7)
        try expectDeviceMatchesReference("noisy copies", inputs: [(x, [2, 3, 5, 7])]) { be, t in
            [try be.noisyCopies(t[0], copies: 3, sigma: 0.5, seed: 7, offset: 11),
             try be.noisyCopies(t[0], copies: 1, sigma: 2, seed: 0, offset: 0)]
        }
        for be in [cpu as any Backend] + openCLFamilies().prefix(1).map({ $0 as any Backend }) {
            let t = try be.tensor(x, [2, 3, 5, 7])
            let two = try be.values(be.noisyCopies(t, copies: 2, sigma: 1, seed: 3, offset: 0))
            let second = try be.values(be.noisyCopies(t, copies: 1, sigma: 1, seed: 3, offset: UInt64(x.count)))
            #expect(Array(two[x.count...]) == second, "\(be.name): copies continue the stream")
            let other = try be.values(be.noisyCopies(t, copies: 1, sigma: 1, seed: 4, offset: 0))
            #expect(Array(two[..<x.count]) != other, "\(be.name): another seed draws other numbers")

            let n = 200_000
            let g = try be.values(be.noisyCopies(be.tensor([Float](repeating: 0, count: n), [n]), copies: 1, sigma: 1, seed: 9, offset: 0))
                .map(Double.init)
            let mean = g.reduce(0, +) / Double(n)
            let variance = g.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
            let fourth = g.reduce(0) { $0 + pow($1 - mean, 4) } / Double(n) / (variance * variance)
            let beyond2 = Double(g.filter { abs($0) > 2 }.count) / Double(n)
            let lag1 = zip(g, g.dropFirst()).reduce(0) { $0 + $1.0 * $1.1 } / Double(n - 1)
            #expect(abs(mean) < 0.01 && abs(variance - 1) < 0.015, "\(be.name): mean \(mean), variance \(variance)")
            #expect(abs(fourth - 3) < 0.06, "\(be.name): kurtosis \(fourth)")
            #expect(abs(beyond2 - 0.0455) < 0.003, "\(be.name): mass beyond 2 sigma \(beyond2)")
            #expect(abs(lag1) < 0.01, "\(be.name): neighbour correlation \(lag1)")
        }
    }

    @Test func noisyCopiesRefuseEmptyTensorsAndNoCopies() throws {
        for be in [cpu as any Backend] + openCLFamilies().map({ $0 as any Backend }) {
            let t = try be.tensor([1, 2], [2])
            #expect(throws: BackendError.self) { try be.noisyCopies(t, copies: 0, sigma: 1, seed: 0, offset: 0) }
            #expect(throws: BackendError.self) { try be.noisyCopies(t, copies: Int(Int32.max), sigma: 1, seed: 0, offset: 0) }
        }
    }
}

@Suite struct ChannelTests {
    @Test(arguments: [[1, 2, 3], [4], [5, 3]])
    func concatAndSplitAreInversesOnBothBackends(_ sizes: [Int]) throws {
        var rng = SeededRandom(seed: 25)
        for (n, h, w) in [(1, 7, 7), (3, 1, 1), (2, 5, 3)] {
            let parts = sizes.map { (rng.floats(n * $0 * h * w), Shape([n, $0, h, w])) }
            let total: Shape = [n, sizes.reduce(0, +), h, w]
            let g = rng.floats(total.count)
            try expectDeviceMatchesReference("concat \(sizes) \(n)x\(h)x\(w)", inputs: parts + [(g, total)]) { b, t in
                let joined = try b.concat(Array(t.dropLast()))
                return [joined, try b.concat(try b.split(joined, sizes: sizes))] + (try b.split(t.last!, sizes: sizes))
            }
            // Backward of concat is split (and of split, concat): finite differences on the reference.
            let shapes = parts.map(\.1)
            try expectFiniteDifferences("concat", inputs: parts.map(\.0)) { v in
                try cpu.values(cpu.concat(zip(v, shapes).map { try cpu.tensor($0, $1) }))
            } backward: { _, r in try cpu.split(cpu.tensor(r, total), sizes: sizes).map { try cpu.values($0) } }
            try expectFiniteDifferences("split", inputs: [g]) { v in
                try cpu.split(cpu.tensor(v[0], total), sizes: sizes).flatMap { try cpu.values($0) }
            } backward: { _, r in
                var offset = 0
                let grads = try shapes.map { s -> Tensor in defer { offset += s.count }; return try cpu.tensor(Array(r[offset..<(offset + s.count)]), s) }
                return [try cpu.values(cpu.concat(grads))]
            }
            // split(concat(parts)) == parts exactly.
            let joined = try cpu.concat(parts.map { try cpu.tensor($0.0, $0.1) })
            for (back, original) in zip(try cpu.split(joined, sizes: sizes), parts) {
                #expect(try cpu.values(back) == original.0)
            }
        }
        #expect(throws: BackendError.self) { try cpu.split(cpu.tensor([1, 2], [1, 2, 1, 1]), sizes: [3]) }
    }
}

@Suite struct SoftmaxAndReductionTests {
    @Test(arguments: [Shape([1, 1000]), Shape([3, 7]), Shape([2, 1]), Shape([2, 3, 5]), Shape([4, 197]), Shape([2, 17, 16])])
    func softmaxDeviceMatchesReferenceAndFiniteDifferences(_ shape: Shape) throws {
        var rng = SeededRandom(seed: 26)
        let x = rng.floats(shape.count, -5, 5), g = rng.floats(shape.count)
        try expectDeviceMatchesReference("softmax \(shape)", inputs: [(x, shape), (g, shape)]) { b, t in
            let y = try b.softmax(t[0]), ly = try b.logSoftmax(t[0])
            return [y, ly, try b.softmaxBackward(t[1], output: y), try b.logSoftmaxBackward(t[1], output: ly)]
        }
        guard shape.count < 100 else { return }
        try expectFiniteDifferences("softmax", inputs: [x], eps: 1e-3) { v in
            try cpu.values(cpu.softmax(cpu.tensor(v[0], shape)))
        } backward: { v, r in
            [try cpu.values(cpu.softmaxBackward(cpu.tensor(r, shape), output: cpu.softmax(cpu.tensor(v[0], shape))))]
        }
        try expectFiniteDifferences("log-softmax", inputs: [x], eps: 1e-3) { v in
            try cpu.values(cpu.logSoftmax(cpu.tensor(v[0], shape)))
        } backward: { v, r in
            [try cpu.values(cpu.logSoftmaxBackward(cpu.tensor(r, shape), output: cpu.logSoftmax(cpu.tensor(v[0], shape))))]
        }
    }

    @Test(arguments: [(Shape([2, 3, 4, 5]), 1), (Shape([1, 1000]), 1), (Shape([7]), 0), (Shape([3, 2, 9, 9]), 2), (Shape([2, 5]), 0)])
    func reductionsDeviceMatchesReferenceAndFiniteDifferences(_ shape: Shape, _ axis: Int) throws {
        var rng = SeededRandom(seed: 27)
        let x = distinctValues(shape.count, seed: 28)
        let rows = axis == 0 ? 1 : shape.dims[..<axis].reduce(1, *)
        let out: Shape = axis == 0 ? [1] : Shape(Array(shape.dims[..<axis]))
        let g = rng.floats(rows)
        try expectDeviceMatchesReference("reduce \(shape) axis \(axis)", inputs: [(x, shape), (g, out)]) { b, t in
            var results: [Tensor] = []
            for op in Reduction.allCases {
                results += [try b.reduce(t[0], op, axis: axis), try b.reduceBackward(t[1], input: t[0], op, axis: axis)]
            }
            let (values, indices) = try b.max(t[0], axis: axis)
            return results + [values, indices, try b.maxBackward(t[1], indices: indices, inputShape: shape, axis: axis)]
        }
        // Smaller values for the smooth reductions keep the float32 loss precise enough.
        let small = x.map { $0 / Float(Swift.max(1, shape.count / 50)) }
        for op in Reduction.allCases {
            try expectFiniteDifferences("\(op)", inputs: [small]) { v in
                try cpu.values(cpu.reduce(cpu.tensor(v[0], shape), op, axis: axis))
            } backward: { v, r in
                [try cpu.values(cpu.reduceBackward(cpu.tensor(r, out), input: cpu.tensor(v[0], shape), op, axis: axis))]
            }
        }
        try expectFiniteDifferences("max", inputs: [x]) { v in
            try cpu.values(cpu.max(cpu.tensor(v[0], shape), axis: axis).values)
        } backward: { v, r in
            let (_, indices) = try cpu.max(cpu.tensor(v[0], shape), axis: axis)
            return [try cpu.values(cpu.maxBackward(cpu.tensor(r, out), indices: indices, inputShape: shape, axis: axis))]
        }
    }
}

@Suite struct MapPostprocessingTests {
    /// Grad-CAM++'s weights and the CAM normalization on the device against the CPU reference,
    /// which is checked here against values worked by hand.
    @Test(arguments: [Shape([1, 1, 2, 2]), Shape([2, 3, 7, 7]), Shape([1, 5, 14, 13]), Shape([3, 2, 1, 1]), Shape([1, 2, 9, 70])])
    func camWeightsAndNormalizationDeviceMatchesReference(_ shape: Shape) throws {
        var rng = SeededRandom(seed: 31)
        let a = rng.floats(shape.count).map { abs($0) }
        // Some gradients exactly 0 (skipped by Grad-CAM++), some negative.
        let g = rng.floats(shape.count).enumerated().map { $0.offset % 5 == 0 ? 0 : $0.element }
        try expectDeviceMatchesReference("CAM \(shape)", inputs: [(a, shape), (g, shape)]) { b, t in
            [try b.gradCAMPlusPlusWeights(t[0], gradients: t[1]), try b.normalizePlanes(t[1]), try b.normalizePlanes(t[0])]
        }
    }

    @Test func camReferenceOpsMatchHandWorkedValues() throws {
        // One plane A = [1, 2, 3, 4] (sum 10), G = [0.5, -1, 0, 2]:
        // 0.5: 0.5 * 0.25 / (0.5 + 10 * 0.125 + 1e-6) = 0.125 / 1.750001; -1: ReLU 0; 0: skipped;
        // 2: 2 * 4 / (8 + 10 * 8 + 1e-6) = 8 / 88.000001.
        let a = try cpu.tensor([1, 2, 3, 4], [1, 1, 2, 2]), g = try cpu.tensor([0.5, -1, 0, 2], [1, 1, 2, 2])
        let w = try cpu.values(cpu.gradCAMPlusPlusWeights(a, gradients: g))
        #expect(w.count == 1 && abs(w[0] - (0.125 / 1.750001 + 8 / 88.000001)) < 1e-6, "\(w)")
        // ReLU, minus the minimum, over the range: [-1, 1, 3, 0.5] -> [0, 1, 3, 0.5] -> / 3.
        let y = try cpu.values(cpu.normalizePlanes(cpu.tensor([-1, 1, 3, 0.5, 2, 2, 4, 6], [2, 1, 2, 2])))
        let want: [Float] = [0, 1 / 3, 1, 0.5 / 3, 0, 0, 0.5, 1]
        #expect(zip(y, want).allSatisfy { abs($0 - $1) < 1e-6 }, "\(y)")
        // A constant plane becomes 0, not NaN.
        #expect(try cpu.values(cpu.normalizePlanes(cpu.tensor([2, 2, 2, 2], [1, 1, 2, 2]))) == [0, 0, 0, 0])
        #expect(throws: BackendError.self) { try cpu.normalizePlanes(cpu.tensor([1, 2], [2])) }
        #expect(throws: BackendError.self) { try cpu.gradCAMPlusPlusWeights(a, gradients: cpu.tensor([1, 2], [1, 1, 1, 2])) }
    }

    @Test(arguments: [(Shape([1, 1, 7, 7]), 224, 224), (Shape([2, 3, 5, 6]), 5, 6), (Shape([1, 2, 9, 9]), 4, 17), (Shape([3, 1, 1, 1]), 3, 2)])
    func resizeAndChannelMaxDeviceMatchesReference(_ shape: Shape, _ h: Int, _ w: Int) throws {
        var rng = SeededRandom(seed: 31)
        try expectDeviceMatchesReference("resize \(shape) -> \(h)x\(w)", inputs: [(rng.floats(shape.count), shape)]) { b, t in
            [try b.resizeBilinear(t[0], height: h, width: w), try b.resize(t[0], height: h, width: w, mode: .bilinearAlignCorners),
             try b.resize(t[0], height: h, width: w, mode: .nearest), try b.channelMax(t[0])]
        }
        let masks = rng.floats(3 * shape[2] * shape[3])
        let single = Shape([1] + Array(shape.dims.dropFirst()))
        try expectDeviceMatchesReference("broadcast mul \(shape)", inputs: [(rng.floats(single.count), single), (masks, [3, 1, shape[2], shape[3]])]) { b, t in
            [try b.broadcastMul(t[0], masks: t[1])]
        }
        // Same size is the identity.
        let x = try cpu.tensor(rng.floats(shape.count), shape)
        #expect(try cpu.values(cpu.resizeBilinear(x, height: shape[2], width: shape[3])) == cpu.values(x))
    }
}

/// Ops of imported transformer-style graphs: permute (ONNX Transpose) and layer normalization.
@Suite struct LayoutAndNormalizationTests {
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
            #expect(y.shape == out)
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

import Backend
import Testing
import TestSupport

struct PoolCase: Sendable, CustomTestStringConvertible {
    let shape: Shape
    let params: Pool2DParams
    var testDescription: String { "\(shape) \(params)\(params.countIncludePad ? "" : " exclude-pad")" }
}

let poolCases: [PoolCase] = [
    PoolCase(shape: [1, 3, 7, 7], params: Pool2DParams(kernel: 2)),
    PoolCase(shape: [3, 5, 7, 6], params: Pool2DParams(kernel: 3, stride: 2, padding: 1)),
    PoolCase(shape: [2, 4, 9, 9], params: Pool2DParams(kernel: 3, stride: 2, ceilMode: true)),
    PoolCase(shape: [1, 2, 8, 11], params: Pool2DParams(kernel: 3, stride: 2, padding: 1, ceilMode: true)),
    PoolCase(shape: [1, 3, 1, 1], params: Pool2DParams(kernel: 1)),
    PoolCase(shape: [2, 3, 6, 5], params: Pool2DParams(kernel: 3, stride: 1, padding: 1, countIncludePad: false)),
    PoolCase(shape: [1, 7, 14, 14], params: Pool2DParams(kernel: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad: false)),
    // Rows wider than one work-item's 32 outputs / 64 inputs in the CPU family's row kernels.
    PoolCase(shape: [2, 2, 5, 151], params: Pool2DParams(kernel: 3, stride: 2, padding: 1)),
    PoolCase(shape: [1, 2, 4, 70], params: Pool2DParams(kernel: 3, stride: 1, padding: 1)),
    PoolCase(shape: [1, 3, 4, 130], params: Pool2DParams(kernel: 2)),
    PoolCase(shape: [1, 2, 6, 67], params: Pool2DParams(kernel: 3, stride: 2, ceilMode: true)),
    // A span too wide for the row kernels: the per-pixel kernels run instead.
    PoolCase(shape: [1, 2, 12, 180], params: Pool2DParams(kernel: 7, stride: 5, padding: 2)),
]

/// Distinct values 0.1 apart in shuffled order: a finite-difference step of 0.01 never changes
/// which element is a window's maximum.
func distinctValues(_ count: Int, seed: UInt64) -> [Float] {
    var rng = SeededRandom(seed: seed)
    return (0..<count).map { Float($0) * 0.1 - Float(count) * 0.05 }.shuffled(using: &rng)
}

@Suite(.timed) struct PoolTests {
    @Test(arguments: poolCases)
    func deviceMatchesReference(_ c: PoolCase) throws {
        let out = try c.params.outputShape(input: c.shape, op: "test")
        var rng = SeededRandom(seed: 5)
        let x = distinctValues(c.shape.count, seed: 6), g = rng.floats(out.count)
        try expectDeviceMatchesReference(c.testDescription, inputs: [(x, c.shape), (g, out)]) { b, t in
            [try b.maxPool2d(t[0], c.params), try b.maxPool2dBackward(t[1], input: t[0], c.params),
             try b.avgPool2d(t[0], c.params), try b.avgPool2dBackward(t[1], inputShape: c.shape, c.params)]
        }
    }

    @Test(arguments: poolCases)
    func referenceBackwardMatchesFiniteDifferences(_ c: PoolCase) throws {
        let x = distinctValues(c.shape.count, seed: 8)
        try expectFiniteDifferences("max \(c.testDescription)", inputs: [x]) { v in
            try cpu.values(cpu.maxPool2d(cpu.tensor(v[0], c.shape), c.params))
        } backward: { v, r in
            let out = try c.params.outputShape(input: c.shape, op: "test")
            return [try cpu.values(cpu.maxPool2dBackward(cpu.tensor(r, out), input: cpu.tensor(v[0], c.shape), c.params))]
        }
        try expectFiniteDifferences("avg \(c.testDescription)", inputs: [x]) { v in
            try cpu.values(cpu.avgPool2d(cpu.tensor(v[0], c.shape), c.params))
        } backward: { _, r in
            let out = try c.params.outputShape(input: c.shape, op: "test")
            return [try cpu.values(cpu.avgPool2dBackward(cpu.tensor(r, out), inputShape: c.shape, c.params))]
        }
    }

    /// Ties go to the first maximum in row-major order and a NaN wins (the first NaN), on every
    /// device and family as in the reference: values from a set of 3 with NaNs and -infinities
    /// sprinkled in, the first plane's top rows all -infinity (windows whose only real values
    /// are -infinity still choose one of them, not the padding).
    @Test(arguments: [Pool2DParams(kernel: 3, stride: 2, padding: 1), Pool2DParams(kernel: 2), Pool2DParams(kernel: 3, stride: 1, padding: 1)])
    func tiesAndNaNs(_ p: Pool2DParams) throws {
        let shape: Shape = [2, 3, 9, 75]
        let out = try p.outputShape(input: shape, op: "test")
        var rng = SeededRandom(seed: 21)
        let x = (0..<shape.count).map { i -> Float in
            let value = Float(Int(rng.floats(1)[0] * 10) % 3)
            return i % 37 == 5 ? .nan : i < 2 * shape[3] || i % 53 == 7 ? -.infinity : value
        }
        let g = (0..<out.count).map { Float($0 % 11) + 1 }
        // A NaN gradient comparison would fail on NaN == NaN: compare where the NaNs are, then the rest.
        try expectDeviceMatchesReference("ties \(p)", inputs: [(x, shape), (g, out)]) { b, t in
            let y = try b.values(b.maxPool2d(t[0], p))
            return [try b.tensor(y.map { $0.isNaN ? 1e6 : $0 == -.infinity ? -1e6 : $0 }, out), try b.maxPool2dBackward(t[1], input: t[0], p)]
        }
        #expect(try cpu.values(cpu.maxPool2d(cpu.tensor(x, shape), p)).contains { $0.isNaN }, "the case has no NaN window")
    }

    @Test(arguments: [(Shape([1, 3, 7, 7]), 1, 1), (Shape([2, 5, 7, 9]), 3, 4), (Shape([1, 2, 5, 5]), 7, 7), (Shape([3, 4, 1, 1]), 1, 1),
                      (Shape([2, 70, 7, 7]), 1, 1)])
    func adaptiveAverage(_ shape: Shape, _ oh: Int, _ ow: Int) throws {
        var rng = SeededRandom(seed: 9)
        let x = rng.floats(shape.count), g = rng.floats(shape[0] * shape[1] * oh * ow)
        let out: Shape = [shape[0], shape[1], oh, ow]
        try expectDeviceMatchesReference("adaptive \(shape) -> \(oh)x\(ow)", inputs: [(x, shape), (g, out)]) { b, t in
            [try b.adaptiveAvgPool2d(t[0], outputSize: (oh, ow)), try b.adaptiveAvgPool2dBackward(t[1], inputShape: shape)]
        }
        try expectFiniteDifferences("adaptive \(shape)", inputs: [x]) { v in
            try cpu.values(cpu.adaptiveAvgPool2d(cpu.tensor(v[0], shape), outputSize: (oh, ow)))
        } backward: { _, r in
            [try cpu.values(cpu.adaptiveAvgPool2dBackward(cpu.tensor(r, out), inputShape: shape))]
        }
    }
}

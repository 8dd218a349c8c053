import Backend
import Foundation
import Testing
import TestSupport

@Suite(.timed) struct MapPostprocessingTests {
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

    /// DeepLIFT's rescale rule on the device against the CPU reference, which is checked against
    /// values worked by hand: pairs far apart, equal, and within 1e-10 (the plain gradient),
    /// ReLU and ReLU6 (values past 6), the gradient of both halves and of the inputs' alone.
    @Test(arguments: [Shape([2, 3, 5, 7]), Shape([4, 16, 14, 14]), Shape([2, 1, 1, 1])])
    func deepLiftRescaleDeviceMatchesReference(_ shape: Shape) throws {
        var rng = SeededRandom(seed: 32)
        var x = rng.floats(shape.count).map { $0 * 8 }
        let half = shape.count / 2, inputs = Shape([shape[0] / 2] + Array(shape.dims.dropFirst()))
        // Every seventh pair equal, and every eleventh within 1e-10 on both sides of 0: the
        // plain gradient there, each at its own input.
        for j in stride(from: 0, to: half, by: 7) { x[j + half] = x[j] }
        for j in stride(from: 3, to: half, by: 11) { (x[j], x[j + half]) = j % 2 == 0 ? (1e-11, -1e-11) : (-1e-11, 1e-11) }
        for kind in Activation.allCases {
            let y = x.map { kind == .relu ? Swift.max($0, 0) : Swift.min(Swift.max($0, 0), 6) }
            try expectDeviceMatchesReference("deeplift rescale \(kind) \(shape)",
                                             inputs: [(rng.floats(shape.count), shape), (x, shape), (y, shape), (rng.floats(half), inputs)]) { b, t in
                [try b.deepLiftRescale(t[0], input: t[1], output: t[2], kind: kind),
                 try b.deepLiftRescale(t[3], input: t[1], output: t[2], kind: kind)]
            }
        }
        // Pairs (x, x') = (2, -1): ratio (2 - 0) / 3 for both rows; (0.5, 0.5): the ReLU's
        // gradient, 1 at both; (1e-11, 0): its gradient, 1 at x and 0 at x'.
        let x6: [Float] = [2, 0.5, 1e-11, -1, 0.5, 0]
        let input = try cpu.tensor(x6, [2, 3, 1, 1]), output = try cpu.tensor(x6.map { Swift.max($0, 0) }, [2, 3, 1, 1])
        let got = try cpu.values(cpu.deepLiftRescale(try cpu.tensor([6, 1, 5, 9, 2, 7], [2, 3, 1, 1]), input: input, output: output, kind: .relu))
        let want: [Float] = [6 * (2 * (1 / Float(3))), 1, 5, 9 * (2 * (1 / Float(3))), 2, 0]
        #expect(got == want, "\(got)")
        // The inputs' half alone: the first row of the same.
        #expect(try cpu.values(cpu.deepLiftRescale(try cpu.tensor([6, 1, 5], [1, 3, 1, 1]), input: input, output: output, kind: .relu))
                == Array(want.prefix(3)))
        // ReLU6 at (7, 7): outside, 0; (7, 6.5): ratio (6 - 6) / 0.5 = 0; (3, 7): (3 - 6) / -4.
        let r6 = try cpu.values(cpu.deepLiftRescale(try cpu.tensor([1, 2, 3, 4, 5, 6], [2, 3, 1, 1]),
                                                    input: try cpu.tensor([7, 7, 3, 7, 6.5, 7], [2, 3, 1, 1]),
                                                    output: try cpu.tensor([6, 6, 3, 6, 6, 6], [2, 3, 1, 1]), kind: .relu6))
        #expect(r6 == [0, 0, 3 * (-3 * (1 / Float(-4))), 0, 0, 6 * (-3 * (1 / Float(-4)))], "\(r6)")
        for (g, v) in [([Float](repeating: 1, count: 3), [Float]([1, 2, 3])), ([1, 2, 3], [1, 2, 3, 4])] {
            let gs = Shape([g.count]), vs = Shape([v.count])
            #expect(throws: BackendError.self) { try cpu.deepLiftRescale(try cpu.tensor(g, gs), input: try cpu.tensor(v, vs),
                                                                         output: try cpu.tensor(v, vs), kind: .relu) }
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

import Backend
import Testing
import TestSupport

/// One NaN in an op's input reaches its output on both backends, where PyTorch's op puts it:
/// a ReLU, a clamp or a max that dropped it (fmax, clamp and a plain `>` all do) would give a
/// confident answer from a broken model. Each case's NaN positions must be equal on the CPU
/// reference and the device (`expectClose` fails on a NaN in one and not the other), and the
/// reference's output must hold one.
struct NaNCase: Sendable, CustomTestStringConvertible {
    let name: String
    let shapes: [Shape]
    let op: @Sendable (any Backend, [Tensor]) throws -> [Tensor]
    var testDescription: String { name }
}

private func conv(_ name: String, _ x: Shape, _ w: Shape, _ p: Conv2DParams, _ act: Activation?) -> NaNCase {
    NaNCase(name: name, shapes: [x, w, Shape([w[0]])]) { b, t in
        [try b.conv2d(t[0], weight: t[1], bias: t[2], p, activation: act)]
    }
}

let nanCases: [NaNCase] = [
    conv("conv 3x3 relu", [1, 8, 9, 9], [16, 8, 3, 3], Conv2DParams(padding: 1), .relu),
    conv("conv 3x3 relu6", [2, 8, 12, 12], [8, 8, 3, 3], Conv2DParams(padding: 1), .relu6),
    conv("conv 1x1 relu", [1, 32, 7, 7], [64, 32, 1, 1], Conv2DParams(), .relu),
    conv("conv 7x7 stride 2", [1, 3, 20, 20], [8, 3, 7, 7], Conv2DParams(stride: 2, padding: 3), nil),
    conv("conv depthwise relu6", [1, 16, 10, 10], [16, 1, 3, 3], Conv2DParams(padding: 1, groups: 16), .relu6),
    NaNCase(name: "relu", shapes: [[2, 3, 5, 5]]) { b, t in [try b.activation(t[0], .relu)] },
    NaNCase(name: "relu6", shapes: [[2, 3, 5, 5]]) { b, t in [try b.activation(t[0], .relu6)] },
    NaNCase(name: "guided relu backward (NaN gradient)", shapes: [[1, 4, 6, 6], [1, 4, 6, 6]]) { b, t in
        [try b.activationBackward(t[0], input: try b.activation(t[1], .relu), .relu, rule: .guided)]
    },
    NaNCase(name: "deconvnet relu backward (NaN gradient)", shapes: [[1, 4, 6, 6], [1, 4, 6, 6]]) { b, t in
        [try b.activationBackward(t[0], input: t[1], .relu, rule: .deconvnet)]
    },
    NaNCase(name: "max pool 3x3 stride 2", shapes: [[1, 4, 17, 17]]) { b, t in [try b.maxPool2d(t[0], Pool2DParams(kernel: 3, stride: 2, padding: 1))] },
    NaNCase(name: "max pool 2x2", shapes: [[2, 3, 8, 8]]) { b, t in [try b.maxPool2d(t[0], Pool2DParams(kernel: 2))] },
    NaNCase(name: "average pool", shapes: [[1, 4, 8, 8]]) { b, t in [try b.avgPool2d(t[0], Pool2DParams(kernel: 3, stride: 1, padding: 1))] },
    NaNCase(name: "adaptive average pool", shapes: [[2, 8, 7, 7]]) { b, t in [try b.adaptiveAvgPool2d(t[0], outputSize: (1, 1))] },
    NaNCase(name: "linear", shapes: [[3, 40], [10, 40], [10]]) { b, t in [try b.linear(t[0], weight: t[1], bias: t[2])] },
    NaNCase(name: "matmul", shapes: [[2, 6, 8], [2, 8, 5]]) { b, t in [try b.matmul(t[0], t[1], transposeA: false, transposeB: false)] },
    NaNCase(name: "add", shapes: [[2, 3, 4, 4], [2, 3, 4, 4]]) { b, t in [try b.add(t[0], t[1])] },
    NaNCase(name: "mul", shapes: [[2, 3, 4, 4], [2, 3, 4, 4]]) { b, t in [try b.mul(t[0], t[1])] },
    NaNCase(name: "layer norm", shapes: [[4, 32], [32], [32]]) { b, t in [try b.layerNorm(t[0], gamma: t[1], beta: t[2], eps: 1e-5)] },
    NaNCase(name: "softmax", shapes: [[3, 50]]) { b, t in [try b.softmax(t[0])] },
    NaNCase(name: "log-softmax", shapes: [[3, 50]]) { b, t in [try b.logSoftmax(t[0])] },
    NaNCase(name: "sum", shapes: [[3, 70]]) { b, t in [try b.reduce(t[0], .sum, axis: 1)] },
    NaNCase(name: "max along an axis", shapes: [[3, 200]]) { b, t in
        let (values, indices) = try b.max(t[0], axis: 1)
        return [values, indices]
    },
    NaNCase(name: "channel max", shapes: [[2, 5, 6, 6]]) { b, t in [try b.channelMax(t[0])] },
    NaNCase(name: "bilinear resize", shapes: [[1, 2, 5, 5]]) { b, t in [try b.resize(t[0], height: 9, width: 9, mode: .bilinear)] },
] + ([Pointwise.sigmoid, .hardSigmoid, .hardSwish, .erf, .gelu, .tanh] as [Pointwise]).map { op in
    NaNCase(name: "pointwise \(op)", shapes: [[2, 37]]) { b, t in [try b.pointwise(t[0], op)] }
}

@Suite(.timed) struct NaNPropagationTests {
    @Test(arguments: nanCases)
    func nanReachesTheOutput(_ c: NaNCase) throws {
        var rng = SeededRandom(seed: 11)
        var inputs = c.shapes.map { (rng.floats($0.count), $0) }
        // One NaN in the first input, away from its first element (a scan that starts there
        // would see it first whatever its rule).
        inputs[0].0[inputs[0].0.count / 2 + 1] = .nan
        let reference = try c.op(cpu, inputs.map { try cpu.tensor($0.0, $0.1) })
        #expect(try cpu.values(reference[0]).contains { $0.isNaN }, "\(c.name): the CPU reference dropped the NaN")
        try expectDeviceMatchesReference(c.name, inputs: inputs, tolerance: 1e-3) { b, t in try c.op(b, t) }
    }
}

import Backend
import Foundation
import Testing
import TestSupport

@Suite(.timed) struct SoftmaxAndReductionTests {
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

    @Test(arguments: [(Shape([2, 3, 4, 5]), 1), (Shape([1, 1000]), 1), (Shape([7]), 0), (Shape([3, 2, 9, 9]), 2), (Shape([2, 5]), 0),
                      (Shape([70, 49]), 1)])
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

import Backend
import Foundation
import Testing
import TestSupport

@Suite(.timed) struct ElementwiseTests {
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

@Suite(.timed) struct NoiseTests {
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

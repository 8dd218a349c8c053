import Backend
import Foundation
import Testing
import TestSupport

@Suite(.timed) struct LinearTests {
    /// Every register block `loupe tune` may choose: the linear layer's three passes and a
    /// batched matmul (both transposes) on shapes that end inside a block of rows and of columns.
    @Test(arguments: PackedTiling.candidates)
    func everyRegisterBlockCandidateMatchesReference(_ packing: PackedTiling) throws {
        guard let device = openCL() else { return }
        let gpu = OpenCLBackend(context: device.context, family: .registerBlocked, packing: packing)
        var rng = SeededRandom(seed: 22)
        for (n, inF, outF) in [(13, 29, 45), (40, 226, 37), (4, 1, 1), (7, 64, 70)] {
            let x = rng.floats(n * inF), w = rng.floats(outF * inF), b = rng.floats(outF), g = rng.floats(n * outF)
            try expectDeviceMatchesReference("linear \(n)x\(inF)->\(outF) \(packing)",
                                             inputs: [(x, [n, inF]), (w, [outF, inF]), (b, [outF]), (g, [n, outF])], on: [gpu]) { be, t in
                [try be.linear(t[0], weight: t[1], bias: t[2]), try be.linearBackwardInput(t[3], weight: t[1]),
                 try be.linearBackwardWeight(t[3], input: t[0]), try be.linearBackwardBias(t[3])]
            }
        }
        let a = rng.floats(2 * 13 * 19), bm = rng.floats(2 * 19 * 23)
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            try expectDeviceMatchesReference("matmul \(ta) \(tb) \(packing)",
                                             inputs: [(a, ta ? [2, 19, 13] : [2, 13, 19]), (bm, tb ? [2, 23, 19] : [2, 19, 23])], on: [gpu]) { be, t in
                [try be.matmul(t[0], t[1], transposeA: ta, transposeB: tb)]
            }
        }
    }

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

    /// The reference runs four outputs at a time; each must still be the plain loop's sum, bit
    /// for bit (output counts that are no multiple of four included).
    @Test(arguments: [(1, 7, 5), (3, 64, 70), (2, 1, 1), (2, 40, 3), (1, 33, 8)])
    func referenceIsThePlainLoopBitForBit(_ n: Int, _ inF: Int, _ outF: Int) throws {
        var rng = SeededRandom(seed: 22)
        let x = rng.floats(n * inF), w = rng.floats(outF * inF), b = rng.floats(outF), g = rng.floats(n * outF)
        var (y, gx) = ([Float](repeating: 0, count: n * outF), [Float](repeating: 0, count: n * inF))
        for r in 0..<n { for o in 0..<outF {
            var s = b[o]
            for i in 0..<inF { s += x[r * inF + i] * w[o * inF + i] }
            y[r * outF + o] = s
        } }
        for r in 0..<n { for i in 0..<inF { for o in 0..<outF { gx[r * inF + i] += g[r * outF + o] * w[o * inF + i] } } }
        let got = try cpu.values(cpu.linear(cpu.tensor(x, [n, inF]), weight: cpu.tensor(w, [outF, inF]), bias: cpu.tensor(b, [outF])))
        #expect(got.map(\.bitPattern) == y.map(\.bitPattern))
        let gotX = try cpu.values(cpu.linearBackwardInput(cpu.tensor(g, [n, outF]), weight: cpu.tensor(w, [outF, inF])))
        #expect(gotX.map(\.bitPattern) == gx.map(\.bitPattern))
    }
}

import Backend
import Foundation
import Testing
import TestSupport

@Suite(.timed) struct ChannelTests {
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

import Backend
import Graph
import Models

/// Attention rollout (Abnar and Zuidema, "Quantifying Attention Flow in Transformers", 2020) for
/// a vision transformer: each block's attention probabilities [heads, T, T] (its Softmax over
/// tokens, T = 1 + s^2: a class token and an s x s grid of patches) averaged over heads, mixed
/// with the identity for the residual path, A' = (A + I) / 2, and multiplied through the blocks
/// from the first, R = A'_L ... A'_1. The class token's row of R over the patches, laid out on
/// the s x s grid, divided by its maximum and resized to the image (bilinear) is the map. It
/// does not depend on the target class (the method has no gradient); `targets` only sizes the
/// batch. One forward pass per image, every layer kept.
public struct AttentionRollout: AttributionMethod {
    public var name: String { "attention_rollout" }
    /// Attention rollout; it has no settings.
    public init() {}

    public func attribute(_ model: Model, input: Tensor, targets: [Int]) throws -> Attribution {
        let (n, h, w) = try checkBatch(input, targets)
        let b = model.backend
        let plane = 3 * h * w
        let values = try b.values(input)
        var maps: [Float] = []
        for i in 0..<n {
            let g = Graph(backend: b)
            _ = try model.forward(g, g.input(try b.tensor(Array(values[(i * plane)..<((i + 1) * plane)]), [1, 3, h, w])))
            let attention = g.tapNames.filter { name in
                let s = g.shape(g.tapped(name)!)
                return g.tapKinds[name] == "Softmax" && s.rank == 4 && s[0] == 1 && s[2] == s[3] && tokenGridSide([1, s[2], 1]) != nil
            }
            guard let first = attention.first else {
                throw InterpretError("attention rollout needs a vision transformer: \(model.architecture.name) has no attention "
                                     + "(a Softmax over [1, heads, T, T] with T = 1 + s^2 tokens)")
            }
            let tokens = g.shape(g.tapped(first)!)[2]
            let side = tokenGridSide([1, tokens, 1])!
            var rollout = identity(tokens)
            for name in attention {
                let s = g.shape(g.tapped(name)!)
                guard s[2] == tokens else { throw InterpretError("attention \(name) has \(s[2]) tokens, the first \(tokens)") }
                let probabilities = try b.values(g.tensor(g.tapped(name)!))
                var mixed = identity(tokens).map { $0 / 2 }
                let heads = s[1], share = 0.5 / Double(heads)
                for head in 0..<heads { for j in 0..<(tokens * tokens) {
                    mixed[j] += share * Double(probabilities[head * tokens * tokens + j])
                } }
                rollout = product(mixed, rollout, tokens)
            }
            let mask = (1..<tokens).map { Float(rollout[$0]) }
            let peak = mask.max() ?? 1
            let grid = try b.tensor(mask.map { peak > 0 ? $0 / peak : 0 }, [1, 1, side, side])
            maps += try b.values(try b.resizeBilinear(grid, height: h, width: w))
        }
        return Attribution(method: name, count: n, height: h, width: w, map: maps, raw: nil)
    }

    private func identity(_ t: Int) -> [Double] {
        var m = [Double](repeating: 0, count: t * t)
        for k in 0..<t { m[k * t + k] = 1 }
        return m
    }

    /// a b for t x t row-major matrices.
    private func product(_ a: [Double], _ b: [Double], _ t: Int) -> [Double] {
        var c = [Double](repeating: 0, count: t * t)
        for r in 0..<t { for k in 0..<t where a[r * t + k] != 0 {
            let x = a[r * t + k]
            for j in 0..<t { c[r * t + j] += x * b[k * t + j] }
        } }
        return c
    }
}

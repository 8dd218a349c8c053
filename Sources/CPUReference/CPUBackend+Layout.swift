import BackendCore
import Foundation

// Concatenation, split and permutation on the CPU reference backend (the twins of
// OpenCLBackend+Layout.swift: channels.cl, layout.cl).
extension CPUBackend {
    public func concat(_ parts: [Tensor]) throws -> Tensor {
        let out = try ShapeRules.concat("concat", parts.map(\.shape))
        let (n, _, h, w) = out.nchw!
        var y: [Float] = []
        y.reserveCapacity(out.count)
        let hosts = try parts.map { try host($0, "concat") }
        for b in 0..<n { for (p, v) in zip(parts, hosts) {
            let size: Int = p.shape[1] * h * w
            y.append(contentsOf: v[(b * size)..<((b + 1) * size)])
        } }
        return make(y, out)
    }

    public func split(_ x: Tensor, sizes: [Int]) throws -> [Tensor] {
        try ShapeRules.split("split", x.shape, sizes: sizes)
        let (n, c, h, w) = x.shape.nchw!
        let xv = try host(x, "split")
        var offset = 0
        var parts: [Tensor] = []
        for size in sizes {
            var part: [Float] = []
            for b in 0..<n {
                let start: Int = (b * c + offset) * h * w
                part.append(contentsOf: xv[start..<(start + size * h * w)])
            }
            offset += size
            parts.append(make(part, Shape([n, size, h, w])))
        }
        return parts
    }

    public func permute(_ x: Tensor, _ perm: [Int]) throws -> Tensor {
        let (out, strides) = try ShapeRules.permute("permute", x.shape, perm)
        let xv = try host(x, "permute")
        var y = [Float](repeating: 0, count: xv.count)
        var index = [Int](repeating: 0, count: out.rank)
        for i in 0..<y.count {
            var source = 0
            for d in 0..<out.rank { source += index[d] * strides[d] }
            y[i] = xv[source]
            var d = out.rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < out[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return make(y, out)
    }
}

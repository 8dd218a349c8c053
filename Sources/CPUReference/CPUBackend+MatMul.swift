import BackendCore
import Foundation

extension CPUBackend {
    /// Each product summed in double precision, row by row.
    public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool, transposeB: Bool) throws -> Tensor {
        let (z, m, k, n) = try ShapeRules.matmul("matmul", a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
        let av = try host(a, "matmul"), bv = try host(b, "matmul")
        var c = [Float](repeating: 0, count: z * m * n)
        var row = [Double](repeating: 0, count: n)
        for q in 0..<z {
            let (ao, bo, co) = (q * m * k, q * k * n, q * m * n)
            for i in 0..<m {
                for j in 0..<n { row[j] = 0 }
                for p in 0..<k {
                    let x = Double(transposeA ? av[ao + p * m + i] : av[ao + i * k + p])
                    if transposeB {
                        for j in 0..<n { row[j] += x * Double(bv[bo + j * k + p]) }
                    } else {
                        for j in 0..<n { row[j] += x * Double(bv[bo + p * n + j]) }
                    }
                }
                for j in 0..<n { c[co + i * n + j] = Float(row[j]) }
            }
        }
        return make(c, [z, m, n])
    }
}

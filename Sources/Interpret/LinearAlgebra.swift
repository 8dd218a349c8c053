/// Eigenvalues and eigenvectors of a symmetric matrix G (s x s, row-major) by Jacobi's method,
/// in float64: `values[e]` and its vector's component k at `vectors[k * s + e]`.
func symmetricEigen(_ g: [Double], _ s: Int) -> (values: [Double], vectors: [Double]) {
    var a = g
    var vectors = [Double](repeating: 0, count: s * s)
    for i in 0..<s { vectors[i * s + i] = 1 }
    for _ in 0..<100 {
        var off = 0.0
        for p in 0..<s { for q in (p + 1)..<s { off += a[p * s + q] * a[p * s + q] } }
        if off < 1e-30 * Swift.max(1, (0..<s).reduce(0.0) { $0 + a[$1 * s + $1] * a[$1 * s + $1] }) { break }
        for p in 0..<s {
            for q in (p + 1)..<s where a[p * s + q] != 0 {
                let theta = (a[q * s + q] - a[p * s + p]) / (2 * a[p * s + q])
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let c = 1 / (t * t + 1).squareRoot(), sn = t * c
                for k in 0..<s {
                    let akp = a[k * s + p], akq = a[k * s + q]
                    a[k * s + p] = c * akp - sn * akq; a[k * s + q] = sn * akp + c * akq
                }
                for k in 0..<s {
                    let apk = a[p * s + k], aqk = a[q * s + k]
                    a[p * s + k] = c * apk - sn * aqk; a[q * s + k] = sn * apk + c * aqk
                }
                for k in 0..<s {
                    let vkp = vectors[k * s + p], vkq = vectors[k * s + q]
                    vectors[k * s + p] = c * vkp - sn * vkq; vectors[k * s + q] = sn * vkp + c * vkq
                }
            }
        }
    }
    return ((0..<s).map { a[$0 * s + $0] }, vectors)
}

/// The projection of the rows of M (rows x columns, row-major, float64) on its first principal
/// component: the rows centred on their mean, times the first right singular vector, through
/// the eigenvectors of the smaller of M M^T and M^T M. Its sign is Seg-Eigen-CAM's (Chung and Ying
/// 2025, Eq. 13): negated when its smallest value is larger in magnitude than its largest.
func firstComponentProjection(_ m: [Double], rows r: Int, columns c: Int) -> [Double] {
    var centred = m
    for j in 0..<c {
        let mean = (0..<r).reduce(0.0) { $0 + m[$1 * c + j] } / Double(r)
        for i in 0..<r { centred[i * c + j] -= mean }
    }
    var projection: [Double]
    if r <= c {
        // M M^T u = s^2 u and M v = s u: the projection is s u.
        var gram = [Double](repeating: 0, count: r * r)
        for i in 0..<r { for k in i..<r {
            var sum = 0.0
            for j in 0..<c { sum += centred[i * c + j] * centred[k * c + j] }
            gram[i * r + k] = sum; gram[k * r + i] = sum
        } }
        let (values, vectors) = symmetricEigen(gram, r)
        let top = values.indices.max { values[$0] < values[$1] } ?? 0
        let s = Swift.max(values[top], 0).squareRoot()
        projection = (0..<r).map { vectors[$0 * r + top] * s }
    } else {
        var gram = [Double](repeating: 0, count: c * c)
        for i in 0..<r { for j in 0..<c where centred[i * c + j] != 0 { for k in 0..<c { gram[j * c + k] += centred[i * c + j] * centred[i * c + k] } } }
        let (values, vectors) = symmetricEigen(gram, c)
        let top = values.indices.max { values[$0] < values[$1] } ?? 0
        projection = (0..<r).map { i in (0..<c).reduce(0.0) { $0 + centred[i * c + $1] * vectors[$1 * c + top] } }
    }
    if abs(projection.min() ?? 0) > abs(projection.max() ?? 0) { projection = projection.map { -$0 } }
    return projection
}

import Foundation

/// SLIC superpixels (Achanta et al. 2012) as scikit-image's `segmentation.slic` computes them
/// with its defaults for a colour image: the image scaled to [0, 1] by its smallest and largest
/// value, converted to CIELAB (D65); seeds on skimage's `regular_grid`; k-means limited to a
/// window of 2 x step around each centre, distance |Δlab|² / compactness² + |Δxy|² / step², the
/// centres' colours starting at 0 as skimage's do; then connectivity enforced (components under
/// half a segment's size join the neighbour met last, over three times its size split), labels
/// from 0 in raster order.
public enum Superpixels {
    /// The labels (H x W, row-major, 0 ..< count) of `image` cut into about `segments` superpixels.
    public static func slic(_ image: RGBImage, segments: Int = 100, compactness: Double = 10, iterations: Int = 10) throws -> (labels: [Int], count: Int) {
        let (h, w) = (image.height, image.width)
        guard segments >= 1, compactness > 0, compactness.isFinite, iterations >= 1, h >= 1, w >= 1 else {
            throw ImageError("SLIC needs at least one segment and iteration, a positive compactness and a non-empty image")
        }
        let lab = labColors(image).map { $0 / compactness }
        // Seeds: skimage's regular_grid over (1, H, W).
        let (start, step) = gridSteps(height: h, width: w, points: segments)
        var centres: [[Double]] = []
        for y in stride(from: start.y, to: h, by: step.y) { for x in stride(from: start.x, to: w, by: step.x) { centres.append([Double(y), Double(x), 0, 0, 0]) } }
        let window = Double(Swift.max(step.y, step.x, 1))
        let spatial = 1 / (window * window)
        var nearest = [Int](repeating: -1, count: h * w)
        var distance = [Double](repeating: .infinity, count: h * w)
        for _ in 0..<iterations {
            var changed = false
            for i in distance.indices { distance[i] = .greatestFiniteMagnitude }
            for (k, c) in centres.enumerated() where c.allSatisfy({ $0.isFinite }) {
                let y0 = Int(Swift.max(c[0] - 2 * window, 0)), y1 = Int(Swift.min(c[0] + 2 * window + 1, Double(h)))
                let x0 = Int(Swift.max(c[1] - 2 * window, 0)), x1 = Int(Swift.min(c[1] + 2 * window + 1, Double(w)))
                guard y0 < y1, x0 < x1 else { continue }
                for y in y0..<y1 {
                    let dy = (c[0] - Double(y)) * (c[0] - Double(y))
                    for x in x0..<x1 {
                        let i = y * w + x
                        var d = (dy + (c[1] - Double(x)) * (c[1] - Double(x))) * spatial
                        for ch in 0..<3 { let e = lab[3 * i + ch] - c[2 + ch]; d += e * e }
                        if distance[i] > d { nearest[i] = k; distance[i] = d; changed = true }
                    }
                }
            }
            guard changed else { break }
            var sums = [[Double]](repeating: [0, 0, 0, 0, 0], count: centres.count), counts = [Int](repeating: 0, count: centres.count)
            for y in 0..<h { for x in 0..<w {
                let i = y * w + x, k = nearest[i]
                guard k >= 0 else { continue }
                counts[k] += 1
                sums[k][0] += Double(y); sums[k][1] += Double(x)
                for ch in 0..<3 { sums[k][2 + ch] += lab[3 * i + ch] }
            } }
            // An empty segment's centre is NaN (0 / 0), as skimage's, and no longer claims pixels.
            centres = zip(sums, counts).map { s, n in s.map { $0 / Double(n) } }
        }
        let size = Double(h * w) / Double(centres.count)
        return connected(nearest.map { Swift.max($0, 0) }, height: h, width: w, minSize: Int(0.5 * size), maxSize: Int(3 * size))
    }

    /// skimage's `regular_grid((1, H, W), n)`: the first seed and the step along y and x.
    static func gridSteps(height h: Int, width w: Int, points n: Int) -> (start: (y: Int, x: Int), step: (y: Int, x: Int)) {
        let area = Double(h * w)
        guard area > Double(n) else { return ((0, 0), (1, 1)) }
        // Depth 1 is the smallest dimension: the other two share (H W / n)^(1/2), unless one of
        // them is shorter than that.
        var steps = [pow(area / Double(n), 1.0 / 3), pow(area / Double(n), 1.0 / 3), pow(area / Double(n), 1.0 / 3)]
        let sorted = [1.0, Double(Swift.min(h, w)), Double(Swift.max(h, w))]
        if zip(sorted, steps).contains(where: { $0 < $1 }) {
            for dim in 0..<3 {
                steps[dim] = sorted[dim]
                let rest = sorted[(dim + 1)...].reduce(1, *)
                if dim < 2 { for j in (dim + 1)..<3 { steps[j] = pow(rest / Double(n), 1.0 / Double(3 - dim - 1)) } }
                if zip(sorted, steps).allSatisfy({ $0 >= $1 }) { break }
            }
        }
        // Back from sorted order: y is the smaller of H and W unless H > W.
        let (small, large) = (steps[1], steps[2])
        let (sy, sx) = h <= w ? (small, large) : (large, small)
        func start(_ s: Double) -> Int { Int((s / 2).rounded(.down)) }
        func step(_ s: Double) -> Int { Swift.max(1, Int(s.rounded(.toNearestOrEven))) }
        return ((start(sy), start(sx)), (step(sy), step(sx)))
    }

    /// CIELAB of each pixel (3 values, row-major) after scaling the image to [0, 1] by its
    /// smallest and largest channel value: skimage's `rgb2lab` (sRGB, D65, 2° observer).
    static func labColors(_ image: RGBImage) -> [Double] {
        let lo = Double(image.pixels.min() ?? 0), hi = Double(image.pixels.max() ?? 0)
        let span = hi > lo ? hi - lo : 1
        let m: [[Double]] = [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
        let white = [0.95047, 1.0, 1.08883]
        var out = [Double](repeating: 0, count: image.pixels.count)
        for p in 0..<(image.width * image.height) {
            let rgb = (0..<3).map { c -> Double in
                let v = (Double(image.pixels[3 * p + c]) - lo) / span
                return v > 0.04045 ? pow((v + 0.055) / 1.055, 2.4) : v / 12.92
            }
            let f = (0..<3).map { r -> Double in
                let t = (m[r][0] * rgb[0] + m[r][1] * rgb[1] + m[r][2] * rgb[2]) / white[r]
                return t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0
            }
            out[3 * p] = 116 * f[1] - 16
            out[3 * p + 1] = 500 * (f[0] - f[1])
            out[3 * p + 2] = 200 * (f[1] - f[2])
        }
        return out
    }

    /// skimage's `_enforce_label_connectivity_cython` in two dimensions: components found by
    /// breadth-first search in raster order (neighbours right, left, down, up), cut at `maxSize`;
    /// one under `minSize` takes the label of the last labelled neighbour its search met.
    static func connected(_ labels: [Int], height h: Int, width w: Int, minSize: Int, maxSize: Int) -> (labels: [Int], count: Int) {
        var out = [Int](repeating: -1, count: h * w)
        var next = 0
        let cap = Swift.max(maxSize, 1)
        var queue = [Int](repeating: 0, count: cap)
        let moves = [(0, 1), (0, -1), (1, 0), (-1, 0)]
        for start in 0..<(h * w) where out[start] < 0 {
            let label = labels[start]
            var adjacent = 0
            out[start] = next
            queue[0] = start
            var size = 1, visited = 0
            while visited < size && size < cap {
                let (y, x) = (queue[visited] / w, queue[visited] % w)
                for (dy, dx) in moves {
                    let (yy, xx) = (y + dy, x + dx)
                    guard yy >= 0, yy < h, xx >= 0, xx < w else { continue }
                    let j = yy * w + xx
                    if labels[j] == label && out[j] == -1 {
                        out[j] = next
                        queue[size] = j
                        size += 1
                        if size >= cap { break }
                    } else if out[j] >= 0 && out[j] != next {
                        adjacent = out[j]
                    }
                }
                visited += 1
            }
            if size < minSize {
                for k in 0..<size { out[queue[k]] = adjacent }
            } else {
                next += 1
            }
        }
        return (out, Swift.max(next, 1))
    }
}

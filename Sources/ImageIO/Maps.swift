import Foundation

/// Turning attribution maps into pictures and files.
public enum MapImages {
    /// `values` (H x W) through viridis, after scaling min...max to 0...1 (a constant map is
    /// dark). With `clip` < 1, the top is that quantile instead of the maximum (gradient maps
    /// have a few extreme pixels that would leave the rest dark).
    public static func colorize(_ values: ArraySlice<Float>, width: Int, height: Int, clip: Float = 1) -> RGBImage {
        let sorted = values.sorted()
        let lo = sorted.first ?? 0
        let hi = sorted.isEmpty ? 0 : sorted[Swift.min(sorted.count - 1, Int(Float(sorted.count - 1) * clip))]
        let span = hi - lo > 0 ? hi - lo : 1
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for (i, v) in values.enumerated() {
            let index = Int(((v - lo) / span * 255).rounded())
            let (r, g, b) = viridis[Swift.min(Swift.max(index, 0), 255)]
            pixels[3 * i] = r; pixels[3 * i + 1] = g; pixels[3 * i + 2] = b
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// The colorized map blended over `image` (weights `alpha` and 1 - alpha), rescaled so the
    /// brightest channel is 255 (pytorch-grad-cam's show_cam_on_image; image_weight = 1 - alpha).
    public static func overlay(_ heat: RGBImage, on image: RGBImage, alpha: Float = 0.5) throws -> RGBImage {
        guard heat.width == image.width, heat.height == image.height else {
            throw ImageError("overlay of \(heat.width)x\(heat.height) on \(image.width)x\(image.height)")
        }
        let blended = zip(heat.pixels, image.pixels).map { alpha * Float($0) + (1 - alpha) * Float($1) }
        let top = Swift.max(blended.max() ?? 1, 1)
        return RGBImage(width: image.width, height: image.height, pixels: blended.map { UInt8(($0 / top * 255).rounded()) })
    }

    /// Images side by side, top-aligned, `gap` white pixels apart.
    public static func row(_ images: [RGBImage], gap: Int = 4) -> RGBImage {
        let height = images.map(\.height).max() ?? 1
        let width = images.map(\.width).reduce(0, +) + gap * Swift.max(images.count - 1, 0)
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        var x0 = 0
        for image in images {
            for y in 0..<image.height {
                let src = y * image.width * 3, dst = (y * width + x0) * 3
                pixels[dst..<(dst + image.width * 3)] = image.pixels[src..<(src + image.width * 3)]
            }
            x0 += image.width + gap
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// Images one under the other, left-aligned, `gap` white pixels apart.
    public static func column(_ images: [RGBImage], gap: Int = 4) -> RGBImage {
        let width = images.map(\.width).max() ?? 1
        let height = images.map(\.height).reduce(0, +) + gap * Swift.max(images.count - 1, 0)
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        var y0 = 0
        for image in images {
            for y in 0..<image.height {
                let src = y * image.width * 3, dst = ((y0 + y) * width) * 3
                pixels[dst..<(dst + image.width * 3)] = image.pixels[src..<(src + image.width * 3)]
            }
            y0 += image.height + gap
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}

/// numpy's .npy format (version 1.0), little-endian float32, C order: `numpy.load` reads it.
public func npyData(_ values: [Float], shape: [Int]) -> Data {
    let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in \n.
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
    let length = UInt16(header.utf8.count)
    data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
    data.append(contentsOf: Array(header.utf8))
    values.withUnsafeBufferPointer { data.append(Data(buffer: $0)) }
    return data
}

extension MapImages {
    /// A plain line chart: one panel per element of `panels`, each a set of curves over x in
    /// [0, 1] and y in `yRange` (values outside are clipped; NaN points are skipped), drawn in the colours of `colors` (one per curve) on white, with a
    /// grey frame. No text: the caller documents what the panels and colours are.
    public static func lineChart(panels: [[[Float]]], colors: [(UInt8, UInt8, UInt8)], panelSize: Int = 240,
                                 yRange: ClosedRange<Float> = 0...1) -> RGBImage {
        let gap = 8
        let width = panels.count * panelSize + (panels.count + 1) * gap, height = panelSize + 2 * gap
        var pixels = [UInt8](repeating: 255, count: width * height * 3)
        func put(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
            guard x >= 0, x < width, y >= 0, y < height else { return }
            let i = (y * width + x) * 3
            pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
        }
        for (p, curves) in panels.enumerated() {
            let x0 = gap + p * (panelSize + gap), y0 = gap
            for t in 0..<panelSize {  // frame
                for (x, y) in [(x0 + t, y0), (x0 + t, y0 + panelSize - 1), (x0, y0 + t), (x0 + panelSize - 1, y0 + t)] { put(x, y, (160, 160, 160)) }
            }
            for (k, curve) in curves.enumerated() where curve.count > 1 {
                let color = colors[k % colors.count]
                func point(_ i: Int) -> (Double, Double) {
                    (Double(x0) + Double(i) / Double(curve.count - 1) * Double(panelSize - 1),
                     Double(y0 + panelSize - 1) - Double((Swift.min(Swift.max(curve[i], yRange.lowerBound), yRange.upperBound) - yRange.lowerBound)
                                                        / (yRange.upperBound - yRange.lowerBound)) * Double(panelSize - 1))
                }
                for i in 1..<curve.count where !curve[i - 1].isNaN && !curve[i].isNaN {
                    let (ax, ay) = point(i - 1), (bx, by) = point(i)
                    let n = Int(Swift.max(abs(bx - ax), abs(by - ay)).rounded(.up)) + 1
                    for s in 0...n {
                        let f = Double(s) / Double(n)
                        let (x, y) = (Int((ax + (bx - ax) * f).rounded()), Int((ay + (by - ay) * f).rounded()))
                        put(x, y, color); put(x, y + 1, color)
                    }
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// `count` distinct colours spread over viridis.
    public static func palette(_ count: Int) -> [(UInt8, UInt8, UInt8)] {
        (0..<Swift.max(count, 1)).map { viridis[count <= 1 ? 0 : $0 * 220 / (count - 1)] }
    }
}

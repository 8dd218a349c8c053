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

    /// The colorized map blended half and half over `image`, rescaled so the brightest channel is
    /// 255 (pytorch-grad-cam's show_cam_on_image with image_weight 0.5).
    public static func overlay(_ heat: RGBImage, on image: RGBImage) throws -> RGBImage {
        guard heat.width == image.width, heat.height == image.height else {
            throw ImageError("overlay of \(heat.width)x\(heat.height) on \(image.width)x\(image.height)")
        }
        let blended = zip(heat.pixels, image.pixels).map { 0.5 * Float($0) + 0.5 * Float($1) }
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

import Foundation

/// Attribution maps over photos (the colour itself: `ScaledMap` and `Colormap`; labelled figures: the Figures module).
public enum MapImages {
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

    /// The colorized map over `image` with an opacity that follows the map: each pixel weighs
    /// the heat by `alpha` x its `strength` (the scaled map's magnitude, 0...1) and the photo by
    /// the rest, so the photo stays clear where the map is near zero (Captum's `alpha_scaling`,
    /// with the heat drawn over the photo).
    public static func overlay(_ heat: RGBImage, on image: RGBImage, alpha: Float, strength: [Float]) throws -> RGBImage {
        guard heat.width == image.width, heat.height == image.height, strength.count == image.width * image.height else {
            throw ImageError("overlay of \(heat.width)x\(heat.height) with \(strength.count) weights on \(image.width)x\(image.height)")
        }
        var pixels = [UInt8](repeating: 0, count: image.pixels.count)
        for i in strength.indices {
            let a = alpha * Swift.min(Swift.max(abs(strength[i]), 0), 1)
            for c in 0..<3 {
                let k = 3 * i + c
                pixels[k] = UInt8((a * Float(heat.pixels[k]) + (1 - a) * Float(image.pixels[k])).rounded())
            }
        }
        return RGBImage(width: image.width, height: image.height, pixels: pixels)
    }
}

extension RGBImage {
    /// This image with the edge of `mask` (width x height, row-major) drawn over it in `colour`:
    /// each pixel of the mask within `thickness` pixels (Chebyshev) of a pixel outside it, or
    /// of the image's border. A mask of another size leaves the image as it is.
    public func outlined(_ mask: [Bool], colour: (UInt8, UInt8, UInt8) = (0, 255, 255), thickness: Int = 2) -> RGBImage {
        guard mask.count == width * height else { return self }
        var out = self
        for y in 0..<height {
            for x in 0..<width where mask[y * width + x] {
                var edge = false
                search: for dy in -thickness...thickness {
                    for dx in -thickness...thickness {
                        let (yy, xx) = (y + dy, x + dx)
                        if yy < 0 || yy >= height || xx < 0 || xx >= width || !mask[yy * width + xx] { edge = true; break search }
                    }
                }
                if edge { (out.pixels[3 * (y * width + x)], out.pixels[3 * (y * width + x) + 1], out.pixels[3 * (y * width + x) + 2]) = colour }
            }
        }
        return out
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

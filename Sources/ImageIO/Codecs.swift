import Foundation
import CPNG
import CTurboJPEG

/// The most pixels a decoded image may have: PIL's decompression-bomb limit (twice its
/// MAX_IMAGE_PIXELS, where PIL refuses), checked from the header before any pixel is allocated.
/// `LOUPE_MAX_IMAGE_PIXELS` raises or lowers it.
public enum ImageLimits {
    /// The most pixels (width x height) a decoded image may have: 178,956,970 (Pillow's
    /// decompression-bomb limit) unless `LOUPE_MAX_IMAGE_PIXELS` sets another positive number.
    public static var maxPixels: Int {
        ProcessInfo.processInfo.environment["LOUPE_MAX_IMAGE_PIXELS"].flatMap { Int($0) }.flatMap { $0 > 0 ? $0 : nil } ?? 178_956_970
    }

    static func check(_ format: String, width w: Int, height h: Int) throws {
        guard w > 0, h > 0 else { throw ImageError("\(format) of \(w)x\(h) pixels is empty") }
        let (pixels, overflow) = w.multipliedReportingOverflow(by: h)
        guard !overflow, pixels <= maxPixels else {
            throw ImageError("\(format) of \(w)x\(h) pixels is larger than the limit of \(maxPixels) pixels (a decompression bomb?); set LOUPE_MAX_IMAGE_PIXELS to allow it")
        }
    }
}

/// libpng's simplified API: errors come back as a status and a message, never a longjmp.
enum PNGCodec {
    static func decode(_ data: [UInt8]) throws -> RGBImage {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let begun = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw ImageError("corrupt PNG: \(message(&image))") }
        defer { png_image_free(&image) }
        let (w, h) = (Int(image.width), Int(image.height))
        try ImageLimits.check("PNG", width: w, height: h)
        if image.format & UInt32(PNG_FORMAT_FLAG_LINEAR) != 0 {
            // A 16-bit file: read its 16-bit values as they are (the simplified API would
            // otherwise treat them as linear light and gamma-encode them) and keep the high byte.
            image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_LINEAR)  // PNG_FORMAT_LINEAR_RGB
            var wide = [UInt16](repeating: 0, count: w * h * 3)
            let finished = wide.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            guard finished != 0 else { throw ImageError("corrupt or truncated PNG: \(message(&image))") }
            return RGBImage(width: w, height: h, pixels: wide.map { UInt8($0 >> 8) })
        }
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)  // PNG_FORMAT_RGBA
        var rgba = [UInt8](repeating: 0, count: w * h * 4)
        let finished = rgba.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        guard finished != 0 else { throw ImageError("corrupt or truncated PNG: \(message(&image))") }
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) { rgb[3 * i] = rgba[4 * i]; rgb[3 * i + 1] = rgba[4 * i + 1]; rgb[3 * i + 2] = rgba[4 * i + 2] }
        return RGBImage(width: w, height: h, pixels: rgb)
    }

    static func encode(_ rgb: RGBImage) throws -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(rgb.width)
        image.height = UInt32(rgb.height)
        image.format = UInt32(PNG_FORMAT_FLAG_COLOR)  // PNG_FORMAT_RGB
        var size: Int = 0
        let sized = rgb.pixels.withUnsafeBytes { png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, 0, nil) }
        guard sized != 0, size > 0 else { throw ImageError("PNG encoding failed: \(message(&image))") }
        var out = [UInt8](repeating: 0, count: size)
        let written = out.withUnsafeMutableBytes { buffer in
            rgb.pixels.withUnsafeBytes { png_image_write_to_memory(&image, buffer.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
        }
        guard written != 0 else { throw ImageError("PNG encoding failed: \(message(&image))") }
        return Array(out.prefix(size))
    }

    static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// TurboJPEG: errors are return codes with a message.
enum JPEGCodec {
    static func decode(_ data: [UInt8]) throws -> RGBImage {
        guard let handle = tjInitDecompress() else { throw ImageError("cannot start the JPEG decoder") }
        defer { tjDestroy(handle) }
        var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let header = data.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt(data.count), &w, &h, &subsampling, &colorspace)
        }
        guard header == 0 else { throw ImageError("corrupt JPEG: \(String(cString: tjGetErrorStr2(handle)))") }
        try ImageLimits.check("JPEG", width: Int(w), height: Int(h))
        let cmyk = colorspace == Int32(TJCS_CMYK.rawValue) || colorspace == Int32(TJCS_YCCK.rawValue)
        var pixels = [UInt8](repeating: 0, count: Int(w) * Int(h) * (cmyk ? 4 : 3))
        let format = cmyk ? TJPF_CMYK : TJPF_RGB
        let status = data.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(data.count), dst.baseAddress, w, 0, h, Int32(format.rawValue), 0)
            }
        }
        // Warnings (e.g. a truncated but displayable file) are errors here: the picture is incomplete.
        guard status == 0 else { throw ImageError("corrupt or truncated JPEG: \(String(cString: tjGetErrorStr2(handle)))") }
        return RGBImage(width: Int(w), height: Int(h), pixels: cmyk ? rgbFromCMYK(pixels, inverted: hasAdobeMarker(data)) : pixels)
    }

    /// PIL's conversion of CMYK (and YCCK, which the decoder turns into CMYK) to RGB:
    /// R = (255 - K) - C (255 - K) / 255, rounded as PIL rounds (MULDIV255), after undoing the
    /// inversion of Adobe files (an APP14 "Adobe" segment: Photoshop stores 255 - ink).
    static func rgbFromCMYK(_ cmyk: [UInt8], inverted: Bool) -> [UInt8] {
        var rgb = [UInt8](repeating: 0, count: cmyk.count / 4 * 3)
        func mulDiv255(_ a: Int, _ b: Int) -> Int { let t = a * b + 128; return ((t >> 8) + t) >> 8 }
        for p in 0..<(cmyk.count / 4) {
            let ink = (0..<4).map { inverted ? 255 - Int(cmyk[4 * p + $0]) : Int(cmyk[4 * p + $0]) }
            let nk = 255 - ink[3]
            for c in 0..<3 { rgb[3 * p + c] = UInt8(Swift.min(Swift.max(nk - mulDiv255(ink[c], nk), 0), 255)) }
        }
        return rgb
    }

    /// Whether the marker segments before the first scan include APP14 "Adobe".
    static func hasAdobeMarker(_ data: [UInt8]) -> Bool {
        var i = 2
        while i + 4 <= data.count, data[i] == 0xFF {
            let marker = data[i + 1]
            if marker == 0xDA || marker == 0xD9 { return false }
            let length = Int(data[i + 2]) << 8 | Int(data[i + 3])
            guard length >= 2 else { return false }
            if marker == 0xEE, i + 9 <= data.count, Array(data[(i + 4)..<(i + 9)]) == Array("Adobe".utf8) { return true }
            i += 2 + length
        }
        return false
    }
}

import Foundation
import BackendCore

/// An 8-bit RGB image, rows top to bottom, pixels interleaved R, G, B.
public struct RGBImage: Sendable, Equatable {
    /// Columns of pixels.
    public let width: Int
    /// Rows of pixels.
    public let height: Int
    /// width x height x 3 bytes: rows top to bottom, each pixel R, G, B.
    public var pixels: [UInt8]

    /// An image of `pixels` (width x height x 3 bytes, interleaved R, G, B); a caller passing
    /// another count is a programming error.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// An image that cannot be read, decoded or written: the description names the file and the
/// reason (a missing file, a truncated or corrupt PNG or JPEG, too many pixels).
public struct ImageError: Error, CustomStringConvertible, Sendable {
    /// The file and what is wrong, one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}

extension RGBImage {
    /// Decodes PNG (any bit depth, grey, palette, alpha) or JPEG (baseline, progressive, grey,
    /// CMYK), recognised by content. Alpha is dropped, grey is replicated, as PIL's
    /// `convert("RGB")` does.
    public init(contentsOf url: URL) throws {
        // A folder, a FIFO or a device is refused by what it is, without blocking.
        let data: Data
        do { data = try InputFile.read(url.path, what: "image", limit: 1 << 31) } catch { throw ImageError("\(error)") }
        do { try self.init(data: [UInt8](data)) } catch let error as ImageError {
            throw ImageError("\(printable(url.lastPathComponent)): \(error.description)")
        }
    }

    /// Decodes a PNG or JPEG file's bytes (recognized by their signature; 8- and 16-bit, grey,
    /// palette and alpha PNGs become 8-bit RGB). Throws ``ImageError`` for any other or corrupt data.
    public init(data: [UInt8]) throws {
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) {
            self = try PNGCodec.decode(data)
        } else if data.starts(with: [0xFF, 0xD8]) {
            self = try JPEGCodec.decode(data)
        } else {
            throw ImageError("not an image: expected a PNG or JPEG file")
        }
    }

    /// PNG bytes of this image.
    public func pngData() throws -> [UInt8] { try PNGCodec.encode(self) }

    /// Writes a PNG whole or not at all: to a temporary file beside `url`, then renamed.
    public func writePNG(to url: URL) throws {
        try writeAtomically(Data(try pngData()), to: url)
    }
}

/// Writes `data` to a temporary file in the destination folder, then renames it over `url`, so
/// readers never see a partial file and a failure leaves nothing behind.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let dir = url.deletingLastPathComponent()
    let temp = dir.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    do {
        try data.write(to: temp)
        // rename(2) replaces the destination atomically.
        guard rename(temp.path, url.path) == 0 else {
            throw ImageError("cannot rename \(temp.path) to \(url.path): \(String(cString: strerror(errno)))")
        }
    } catch {
        try? FileManager.default.removeItem(at: temp)
        throw WriteFailure("cannot write \(url.path): \(systemReason(error, withPath: false))")
    }
}

extension RGBImage {
    /// From planar [3, H, W] values in [0, 1] (clamped), rounded to 8 bits.
    public init(planes: [Float], width: Int, height: Int) {
        let plane = width * height
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        for p in 0..<plane { for c in 0..<3 {
            pixels[p * 3 + c] = UInt8((Swift.min(Swift.max(planes[c * plane + p], 0), 1) * 255).rounded())
        } }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// Planar [3, H, W] values in [0, 1].
    public var planes: [Float] {
        let plane = width * height
        var out = [Float](repeating: 0, count: plane * 3)
        for p in 0..<plane { for c in 0..<3 { out[c * plane + p] = Float(pixels[p * 3 + c]) / 255 } }
        return out
    }
}

import Foundation

/// One layer's dataset statistics from one image unit: for every image of the unit and every
/// channel, the channel's mean and max activation and where the max is; and, for the unit's own
/// top-k images of each channel (by mean and by max), the channel's activation map, in 8 bits.
/// The atlas's top-k of a channel over all images is a subset of the union of the units' top-k,
/// so merging the units' files gives exactly what one pass over every image would give.
///
/// File layout (little-endian): "LPAS", version, images B, channels C, map height H and width W
/// (Int32 each); mean[B][C], max[B][C] (Float32); argmax[B][C] (Int32, y * W + x); then per
/// channel: m (Int32) and m records (image Int32, low Float32, high Float32, H * W bytes: the map
/// as (value - low) / (high - low) * 255).
public struct LayerStats: Sendable, Equatable {
    /// Images, channels, and the layer's map height and width.
    public var images: Int, channels: Int, height: Int, width: Int
    /// Mean and max activation per image and channel, [B][C] flattened.
    public var mean: [Float], max: [Float]
    /// Where each max is, y * W + x, [B][C] flattened.
    public var argmax: [Int32]
    /// One channel's activation map on one image, in 8 bits.
    public struct Map: Sendable, Equatable {
        /// The image's index within the unit.
        public var image: Int
        /// The activations that 0 and 255 stand for.
        public var low: Float, high: Float
        /// H * W bytes, (value - low) / (high - low) * 255 rounded.
        public var bytes: [UInt8]
        /// The activations, to within (high - low) / 510.
        public var values: [Float] { bytes.map { low + (high - low) * Float($0) / 255 } }
    }
    /// Per channel, the maps kept (local image indices).
    public var maps: [[Map]]

    static let magic: [UInt8] = Array("LPAS".utf8)

    /// Statistics of B images' activations [B, C, H, W]; maps of each channel's top `top`
    /// images by mean and by max.
    public init(activations a: [Float], images: Int, channels: Int, height: Int, width: Int, top: Int) {
        self.images = images; self.channels = channels; self.height = height; self.width = width
        let hw = height * width
        mean = [Float](repeating: 0, count: images * channels)
        max = mean
        argmax = [Int32](repeating: 0, count: images * channels)
        for b in 0..<images { for c in 0..<channels {
            let base = (b * channels + c) * hw
            var sum: Double = 0, best = -Float.infinity, at = 0
            for i in 0..<hw {
                let v = a[base + i]
                sum += Double(v)
                if v > best { best = v; at = i }
            }
            mean[b * channels + c] = Float(sum / Double(hw))
            max[b * channels + c] = best
            argmax[b * channels + c] = Int32(at)
        } }
        var maps: [[Map]] = []
        let (means, maxes) = (mean, max)
        for c in 0..<channels {
            let byMean = LayerStats.top(top, (0..<images).map { means[$0 * channels + c] })
            let byMax = LayerStats.top(top, (0..<images).map { maxes[$0 * channels + c] })
            maps.append(Set(byMean + byMax).sorted().map { b in
                // Non-finite activations (a broken model) draw as the bottom of the map.
                let values = a[((b * channels + c) * hw)..<((b * channels + c + 1) * hw)].map { $0.isFinite ? $0 : 0 }
                let low = values.min() ?? 0, high = values.max() ?? 0
                let span = high - low
                return Map(image: b, low: low, high: high,
                           bytes: values.map { span > 0 && span.isFinite ? UInt8(Swift.min(Swift.max(($0 - low) / span * 255, 0), 255).rounded()) : 0 })
            })
        }
        self.maps = maps
    }

    /// Indices of the `k` largest values, largest first; ties go to the smaller index. NaN ranks last.
    public static func top(_ k: Int, _ values: [Float]) -> [Int] {
        Array(values.indices.sorted { i, j in
            let (a, b) = (values[i], values[j])
            if a.isNaN != b.isNaN { return b.isNaN }
            return a != b && !a.isNaN ? a > b : i < j
        }.prefix(k))
    }

    /// The file's bytes, in the layout above.
    public func data() -> Data {
        var out = Data(LayerStats.magic)
        func int(_ v: Int) { var x = Int32(v).littleEndian; withUnsafeBytes(of: &x) { out.append(contentsOf: $0) } }
        func floats(_ v: [Float]) { v.withUnsafeBytes { out.append(contentsOf: $0) } }
        for v in [1, images, channels, height, width] { int(v) }
        floats(mean); floats(max)
        argmax.withUnsafeBytes { out.append(contentsOf: $0) }
        for list in maps {
            int(list.count)
            for m in list { int(m.image); floats([m.low, m.high]); out.append(contentsOf: m.bytes) }
        }
        return out
    }

    /// Reads a file written by `data()`; a truncated or foreign file is an error, not a trap.
    public init(data: Data, name: String) throws {
        var reader = Reader(bytes: [UInt8](data), name: name)
        guard try reader.bytes(4) == LayerStats.magic else { throw AtlasError("\(name) is not an atlas statistics file") }
        guard try reader.int() == 1 else { throw AtlasError("\(name): unknown version") }
        images = try reader.int(); channels = try reader.int(); height = try reader.int(); width = try reader.int()
        guard images >= 0, channels >= 0, height >= 1, width >= 1, images * channels <= 1 << 28, height * width <= 1 << 24 else {
            throw AtlasError("\(name): implausible sizes \(images)x\(channels)x\(height)x\(width)")
        }
        mean = try reader.floats(images * channels)
        max = try reader.floats(images * channels)
        argmax = try reader.floats(images * channels).map { $0.bitPattern }.map { Int32(bitPattern: $0) }
        var maps: [[Map]] = []
        for _ in 0..<channels {
            let m = try reader.int()
            guard (0...images).contains(m) else { throw AtlasError("\(name): \(m) maps for \(images) images") }
            var list: [Map] = []
            for _ in 0..<m {
                let image = try reader.int()
                guard (0..<images).contains(image) else { throw AtlasError("\(name): map of image \(image) of \(images)") }
                let lh = try reader.floats(2)
                list.append(Map(image: image, low: lh[0], high: lh[1], bytes: try reader.bytes(height * width)))
            }
            maps.append(list)
        }
        self.maps = maps
        guard reader.offset == reader.data.count else { throw AtlasError("\(name): \(reader.data.count - reader.offset) bytes after the end") }
    }
}

private struct Reader {
    let data: [UInt8]
    let name: String
    var offset = 0
    init(bytes: [UInt8], name: String) { data = bytes; self.name = name }
    mutating func bytes(_ n: Int) throws -> [UInt8] {
        guard n >= 0, offset + n <= data.count else { throw AtlasError("\(name) is truncated") }
        defer { offset += n }
        return Array(data[offset..<(offset + n)])
    }
    mutating func int() throws -> Int {
        let b = try bytes(4)
        return Int(Int32(bitPattern: UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24))
    }
    mutating func floats(_ n: Int) throws -> [Float] {
        let b = try bytes(4 * n)
        return (0..<n).map { i in Float(bitPattern: UInt32(b[4 * i]) | UInt32(b[4 * i + 1]) << 8 | UInt32(b[4 * i + 2]) << 16 | UInt32(b[4 * i + 3]) << 24) }
    }
}

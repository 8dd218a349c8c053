import BackendCore
import ImageIO
import Testing
import TestSupport

/// The preprocessing resizes only the centre crop's window: equal to the whole resize then the
/// crop, pixel for pixel, and bounded by the crop whatever the resize's size.
@Suite(.timed) struct ResizeWindowTests {
    func image(_ w: Int, _ h: Int, seed: UInt64) -> RGBImage {
        var rng = SeededRandom(seed: seed)
        return RGBImage(width: w, height: h, pixels: (0..<(w * h * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) })
    }

    func crop(_ im: RGBImage, _ x: Int, _ y: Int, _ w: Int, _ h: Int) -> RGBImage {
        var out: [UInt8] = []
        for row in y..<(y + h) { out += im.pixels[((row * im.width + x) * 3)..<((row * im.width + x + w) * 3)] }
        return RGBImage(width: w, height: h, pixels: out)
    }

    @Test(arguments: Interpolation.allCases)
    func aWindowIsTheCropOfTheWholeResize(_ filter: Interpolation) throws {
        let source = image(37, 23, seed: 4)
        var rng = SeededRandom(seed: 5)
        for (ow, oh) in [(50, 30), (17, 11), (37, 60), (37, 23), (90, 9)] {
            let whole = try source.resized(width: ow, height: oh, filter: filter)
            for _ in 0..<6 {
                let w = Int.random(in: 1...ow, using: &rng), h = Int.random(in: 1...oh, using: &rng)
                let x = Int.random(in: 0...(ow - w), using: &rng), y = Int.random(in: 0...(oh - h), using: &rng)
                let window = try source.resized(width: ow, height: oh, window: (x, y, w, h), filter: filter)
                #expect(window == crop(whole, x, y, w, h), "\(filter) \(ow)x\(oh) window \(x),\(y) \(w)x\(h)")
            }
        }
        #expect(throws: (any Error).self) { try source.resized(width: 10, height: 10, window: (5, 5, 6, 1), filter: filter) }
    }

    /// A 60000x2 strip: resized whole it would be 7,680,000 x 256 pixels (5.9 GB); its crop is
    /// 224x224 and so is all the work. A crop over the pixel limit is refused before any pixel.
    @Test func aStripIsPreparedByItsCropAlone() throws {
        let strip = image(60000, 2, seed: 6)
        let plan = try Preprocessing.imagenet.resizePlan(width: 60000, height: 2)
        #expect(plan.width == 7_680_000 && plan.height == 256 && plan.window == (3_839_888, 16, 224, 224) as (Int, Int, Int, Int))
        let prepared = try Preprocessing.imagenet.prepare(strip)
        #expect(prepared.width == 224 && prepared.height == 224)
        #expect { _ = try Preprocessing(resizeShorter: 16384, crop: 16384).resizePlan(width: 500, height: 400) } throws: {
            "\($0)".contains("16384x16384") && "\($0)".contains("limit")
        }
    }

    /// A mask is cut as the input is, by the nearest pixel: a 512 x 384 mask white on its left
    /// half, resized to 341 x 256 and centre-cropped to 224 (left 58): columns whose nearest
    /// source column is below 256, (x + 58.5) * 512 / 341 < 256, are inside: x < 112.
    @Test func masksAreCutAsTheInputIsByTheNearestPixel() throws {
        let (w, h) = (512, 384)
        let image = RGBImage(width: w, height: h, pixels: (0..<(w * h)).flatMap { i -> [UInt8] in i % w < 256 ? [255, 0, 0] : [0, 0, 127] })
        let mask = try Preprocessing.imagenet.prepareMask(image)
        #expect(mask.count == 224 * 224)
        for row in [0, 100, 223] {
            let inside = (0..<224).filter { mask[row * 224 + $0] }
            #expect(inside == Array(0..<112), "row \(row): \(inside.count) inside")
        }
        #expect(try Preprocessing.normalizeOnly.prepareMask(image).filter { $0 }.count == 256 * h)
    }
}

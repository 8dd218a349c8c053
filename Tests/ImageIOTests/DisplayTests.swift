import Foundation
import ImageIO
import Testing
import TestSupport

/// Colour maps and the display scaling of attribution maps, against matplotlib and Captum
/// (tools/make_display_fixtures.py).
@Suite(.timed) struct DisplayTests {
    struct Reference: Decodable {
        struct Scaled: Decodable { let sign: String; let outlier_percent: Float; let values: [Float] }
        let colormaps: [String: [[Int]]]
        let raw: [Float]
        let shape: [Int]
        let scaled: [Scaled]
    }
    let reference: Reference

    init() throws {
        reference = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: fixtures.appendingPathComponent("display_reference.json")))
    }

    @Test func colormapsMatchMatplotlib() throws {
        #expect(Set(reference.colormaps.keys) == Set(Colormap.allCases.map(\.rawValue)))
        for map in Colormap.allCases {
            let want = try #require(reference.colormaps[map.rawValue])
            for i in 0..<256 {
                // Entry i is what matplotlib shows for values in [i / 256, (i + 1) / 256).
                let (r, g, b) = map.color((Float(i) + 0.5) / 256)
                let error = [abs(Int(r) - want[i][0]), abs(Int(g) - want[i][1]), abs(Int(b) - want[i][2])].max()!
                #expect(error <= 1, "\(map) entry \(i): \(r), \(g), \(b) vs \(want[i])")
            }
            #expect(map.color(0) == map.color(-3) && map.color(1) == map.color(7) && map.color(.nan) == map.color(0))
        }
        let zero = Colormap.rdbu.color(0.5)  // the diverging map's zero is (nearly) white
        #expect(zero.0 >= 245 && zero.1 >= 245 && zero.2 >= 245)
    }

    @Test func scalingMatchesCaptum() throws {
        let (c, h, w) = (reference.shape[0], reference.shape[1], reference.shape[2])
        let combined = (0..<(h * w)).map { i in (0..<c).reduce(Float(0)) { $0 + reference.raw[$1 * h * w + i] } }
        let signs: [String: AttributionSign] = ["absolute_value": .absolute, "positive": .positive, "negative": .negative, "all": .all]
        for expected in reference.scaled {
            let sign = try #require(signs[expected.sign])
            let scaled = ScaledMap(combined, sign: sign, outlierPercent: expected.outlier_percent)
            let error = maxAbsDifference(scaled.values, expected.values)
            #expect(error < 1e-5, "\(expected.sign) outlier \(expected.outlier_percent): max error \(error)")
            #expect(scaled.values.allSatisfy { $0 >= (sign == .all ? -1 : 0) && $0 <= 1 })
        }
        // A few large values holding little of the mass are clipped at 2% and kept at 0%.
        let spiky = [Float](repeating: 1, count: 1000) + [5]
        #expect(ScaledMap(spiky, sign: .absolute, outlierPercent: 2).threshold == 1)
        #expect(ScaledMap(spiky, sign: .absolute, outlierPercent: 0).threshold == 5)
        let kept = ScaledMap(combined, sign: .absolute, outlierPercent: 0)
        #expect(kept.threshold == combined.map { abs($0) }.max())
    }

    @Test func zeroAndSignedMapsKeepTheirZero() {
        let zero = ScaledMap([Float](repeating: 0, count: 9), sign: .all, outlierPercent: 2)
        #expect(zero.threshold == 0 && zero.values.allSatisfy { $0 == 0 })
        let signed = ScaledMap([-2, -1, 0, 1, 2], sign: .all, outlierPercent: 0)
        #expect(signed.values == [-1, -0.5, 0, 0.5, 1] && signed.range == (-2, 2))
        let picture = signed.colorized(.rdbu, width: 5, height: 1)
        // Zero is the diverging map's white; the ends are its blue and red.
        #expect(picture.pixels[6..<9].allSatisfy { $0 >= 245 })
        #expect(picture.pixels[2] > picture.pixels[0] && picture.pixels[12] > picture.pixels[14])
        let negative = ScaledMap([-2, -1, 0, 1, 2], sign: .negative, outlierPercent: 0)
        #expect(negative.values == [1, 0.5, 0, 0, 0] && negative.range == (0, -2))
    }

    /// A region's outline: the mask's pixels within the thickness of its edge (or of the
    /// image's border) take the colour; the inside and the outside keep theirs.
    @Test func outlinesDrawTheMasksEdge() {
        let image = RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 10, count: 8 * 8 * 3))
        let mask = (0..<64).map { (2..<7).contains($0 % 8) && (1..<8).contains($0 / 8) }
        let out = image.outlined(mask, colour: (0, 255, 255), thickness: 1)
        func coloured(_ x: Int, _ y: Int) -> Bool { out.pixels[3 * (y * 8 + x) + 1] == 255 }
        #expect(coloured(2, 4) && coloured(6, 4) && coloured(4, 1) && coloured(4, 7))  // left, right, top edge, image border
        #expect(!coloured(4, 4) && !coloured(3, 3))  // inside
        #expect(!coloured(1, 4) && !coloured(7, 4) && !coloured(4, 0))  // outside
        #expect(image.outlined([true], colour: (0, 0, 0)) == image)  // a mask of another size
    }
}

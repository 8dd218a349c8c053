import Foundation
import ImageIO
import Testing
import TestSupport

/// Image decoders never crash: thousands of mutations of valid PNGs and JPEGs (truncations, bit
/// flips, huge dimensions and chunk lengths, spliced spans) each decode or throw, never trap.
@Suite(.timed) struct ImageFuzzTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    @Test(arguments: ["rgb.png", "palette.png", "gray16.png", "baseline.jpg", "progressive.jpg", "cmyk.jpg"])
    func decodersNeverCrash(_ file: String) throws {
        let original = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent(file)))
        _ = try RGBImage(data: original)
        var mutator = Mutator(original, seed: 23)
        var refused = 0
        let count = fuzzMutations(2000)
        for _ in 0..<count {
            let (bytes, what) = mutator.next()
            do {
                let image = try RGBImage(data: bytes)
                #expect(image.pixels.count == image.width * image.height * 3, "\(file), \(what)")
            } catch {
                refused += 1
                #expect(!"\(error)".isEmpty, "\(file), \(what)")
            }
        }
        reportFuzz(file, mutations: count, refused: refused)
        #expect(refused > count / 20, "\(file): only \(refused) mutations refused")
    }
}

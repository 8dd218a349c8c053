import Backend
import Foundation
import ImageIO
import Testing
import TestSupport
import WeightFiles

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
let assets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Assets").standardized
let expected = try! SafeTensorsFile(url: fixtures.appendingPathComponent("expected.safetensors"))

func maxDifference(_ image: RGBImage, _ want: HostTensor) -> Float {
    #expect(want.shape == [image.height, image.width, 3])
    return zip(image.pixels, want.values).map { abs(Float($0) - $1) }.max() ?? 0
}

@Suite(.timed) struct ImageIOTests {
    @Test(arguments: ["rgb.png", "gray.png", "palette.png", "rgba.png", "gray16.png"])
    func pngDecodesAsPILDoes(_ name: String) throws {
        let image = try RGBImage(contentsOf: fixtures.appendingPathComponent(name))
        #expect(maxDifference(image, try expected.tensor(name)) == 0, "\(name)")
    }

    /// libjpeg-turbo builds may round the inverse DCT differently: within 2 levels of PIL's.
    @Test(arguments: ["baseline.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg"])
    func jpegDecodesAsPILDoes(_ name: String) throws {
        let image = try RGBImage(contentsOf: fixtures.appendingPathComponent(name))
        #expect(maxDifference(image, try expected.tensor(name)) <= 2, "\(name)")
    }

    /// Down in both directions, up, and one axis only: PIL's bilinear and bicubic, to the level.
    @Test(arguments: Interpolation.allCases)
    func resizeMatchesPILsAntialiasedFilters(_ filter: Interpolation) throws {
        let photo = try RGBImage(contentsOf: assets.appendingPathComponent("chelsea.png"))
        let small = try RGBImage(contentsOf: fixtures.appendingPathComponent("rgb.png"))
        for (source, w, h) in [(photo, 224, 149), (photo, 60, 40), (photo, 451, 37), (small, 80, 50)] {
            let name = (filter == .bicubic ? "bicubic_" : "") + "resize_\(source.width)x\(source.height)_\(w)x\(h)"
            #expect(maxDifference(try source.resized(width: w, height: h, filter: filter), try expected.tensor(name)) == 0, "\(name)")
        }
    }

    /// torchvision's EfficientNet-B0 preset (Resize(256, bicubic), CenterCrop(224), ToTensor,
    /// Normalize) on the bundled photo.
    @Test func bicubicPresetMatchesTorchvision() throws {
        let photo = try RGBImage(contentsOf: assets.appendingPathComponent("chelsea.png"))
        let preset = Preprocessing(resizeShorter: 256, crop: 224, interpolation: .bicubic)
        let input = preset.normalize(try preset.prepare(photo))
        let want = try expected.tensor("efficientnet_preset")
        #expect(want.shape == [3, 224, 224])
        #expect(zip(input, want.values).map { abs($0 - $1) }.max()! < 1e-5)
        // Not the bilinear preset's input: the filter matters.
        #expect(zip(Preprocessing.imagenet.normalize(try Preprocessing.imagenet.prepare(photo)), want.values).map { abs($0 - $1) }.max()! > 0.01)
    }

    /// The bundled photo through the classification preset equals torchvision's
    /// Resize(256) + CenterCrop(224) + ToTensor + Normalize.
    @Test func classificationPresetMatchesTorchvision() throws {
        let photo = try RGBImage(contentsOf: assets.appendingPathComponent("chelsea.png"))
        let prepared = try Preprocessing.imagenet.prepare(photo)
        #expect(prepared.width == 224 && prepared.height == 224)
        let input = Preprocessing.imagenet.normalize(prepared)
        let want = try SafeTensorsFile(url: fixtures.appendingPathComponent("../../ModelsTests/Fixtures/chelsea_input.safetensors").standardized)
            .tensor("input")
        #expect(zip(input, want.values).map { abs($0 - $1) }.max()! < 1e-5)
        let same = try Preprocessing.normalizeOnly.prepare(photo)
        #expect(same == photo)
    }

    @Test func corruptInputsThrowClearErrors() throws {
        let png = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("rgb.png")))
        let jpg = [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("baseline.jpg")))
        for bad in [[], Array("hello, not an image".utf8), Array(png.prefix(png.count / 2)), Array(png.prefix(40)),
                    Array(jpg.prefix(jpg.count / 2)), Array(jpg.prefix(3))] {
            #expect(throws: ImageError.self) { try RGBImage(data: bad) }
        }
        var rng = SeededRandom(seed: 3)
        for source in [png, jpg] {
            for _ in 0..<200 {
                var bad = source
                for _ in 0..<3 { bad[Int.random(in: 8..<bad.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng) }
                _ = try? RGBImage(data: bad)  // decodes or throws; never traps
            }
        }
        do { _ = try RGBImage(contentsOf: URL(fileURLWithPath: "/nonexistent/cat.png")); Issue.record("no error") } catch {
            #expect("\(error)".contains("/nonexistent/cat.png"))
        }
    }

    @Test func pngWritesAreWholeOrNothing() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try RGBImage(contentsOf: fixtures.appendingPathComponent("rgb.png"))
        let out = dir.appendingPathComponent("out.png")
        try image.writePNG(to: out)
        try image.writePNG(to: out)  // replaces
        #expect(try RGBImage(contentsOf: out) == image)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.png"])
        #expect(throws: WriteFailure.self) { try image.writePNG(to: dir.appendingPathComponent("missing/out.png")) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.png"])
    }
}

/// Overlays: a blend at one weight, pytorch-grad-cam's (rescaled to the brightest channel), and
/// an opacity that follows the map, the photo untouched where the map is zero.
@Suite struct OverlayTests {
    @Test func opacityFollowsTheMap() throws {
        let photo = RGBImage(width: 3, height: 1, pixels: [10, 20, 30, 40, 50, 60, 200, 100, 0])
        let heat = RGBImage(width: 3, height: 1, pixels: [250, 0, 0, 0, 250, 0, 0, 0, 250])
        let followed = try MapImages.overlay(heat, on: photo, alpha: 0.5, strength: [0, 1, -0.5])
        #expect(followed.pixels == [10, 20, 30, 20, 150, 30, 150, 75, 63])
        let blended = try MapImages.overlay(heat, on: photo, alpha: 0.5)
        let raw: [Float] = zip(heat.pixels, photo.pixels).map { 0.5 * Float($0) + 0.5 * Float($1) }
        #expect(blended.pixels == raw.map { UInt8(($0 / raw.max()! * 255).rounded()) })
        #expect(throws: ImageError.self) { try MapImages.overlay(heat, on: photo, alpha: 0.5, strength: [1]) }
        // MapStyle picks the mode; the map's scaled magnitude is the strength.
        let scaled = ScaledMap([0, 2, -1], sign: .all, outlierPercent: 0)
        #expect(try MapStyle().overlay(heat, of: scaled, on: photo) == MapImages.overlay(heat, on: photo, alpha: 0.5, strength: scaled.values))
        #expect(try MapStyle(followsMap: false).overlay(heat, of: scaled, on: photo) == blended)
    }
}

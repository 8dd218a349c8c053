import Foundation
@testable import ImageIO
import Testing
import TestSupport
import WeightFiles

/// SLIC against scikit-image's `segmentation.slic` (tools/make_slic_fixtures.py) on three real
/// photos made small, for 16, 40 and 150 segments: the seeds' grid, the Lab conversion and
/// every pixel's label.
@Suite(.timed) struct SuperpixelTests {
    static let file = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/slic.safetensors"))

    @Test(arguments: ["chelsea", "astronaut", "coffee"])
    func slicMatchesScikitImage(_ name: String) throws {
        let info = try JSONSerialization.jsonObject(with: Data(Self.file.metadata[name]!.utf8)) as! [String: [String: Any]]
        let pixels = try Self.file.tensor("\(name).image")
        let (h, w) = (pixels.shape[0], pixels.shape[1])
        let image = RGBImage(width: w, height: h, pixels: pixels.values.map { UInt8($0) })
        let lab = try Self.file.tensor("\(name).lab").values
        let ours = Superpixels.labColors(image)
        #expect(zip(ours, lab).map { abs($0 - Double($1)) }.max()! < 1e-4, "\(name) Lab")
        for (key, expected) in info {
            let n = Int(key)!
            let grid = Superpixels.gridSteps(height: h, width: w, points: n)
            #expect([grid.start.y, grid.start.x] == expected["start"] as! [Int] && [grid.step.y, grid.step.x] == expected["step"] as! [Int], "\(name) \(n) seeds")
            let want = try Self.file.tensor("\(name).labels\(n)").values.map { Int($0) }
            let got = try Superpixels.slic(image, segments: n)
            #expect(got.count == expected["count"] as! Int, "\(name) \(n): \(got.count) segments, scikit-image \(expected["count"]!)")
            let differing = zip(got.labels, want).filter { $0 != $1 }.count
            #expect(differing == 0, "\(name) \(n): \(differing) of \(want.count) pixels labelled differently")
        }
    }

    @Test func badSettingsAreRefused() throws {
        let image = RGBImage(width: 4, height: 4, pixels: [UInt8](repeating: 7, count: 48))
        #expect(throws: ImageError.self) { try Superpixels.slic(image, segments: 0) }
        #expect(throws: ImageError.self) { try Superpixels.slic(image, compactness: 0) }
        // A flat image is one segment.
        let flat = try Superpixels.slic(image, segments: 4)
        #expect(Set(flat.labels).count == flat.count)
    }
}

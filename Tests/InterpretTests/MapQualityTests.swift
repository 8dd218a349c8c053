import Foundation
import Interpret
import Testing
import TestSupport
import WeightFiles

/// Quantus' Sparseness, Complexity, RelevanceMassAccuracy, RelevanceRankAccuracy and PointingGame
/// on three committed maps and three masks each (tools/make_quantus_fixtures.py).
@Suite(.timed) struct MapQualityTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/quantus.safetensors"))

    @Test(arguments: ["resnet18_gradient", "vgg16_integrated_gradients", "mobilenet_v2_gradcam"])
    func scoresMatchQuantus(_ name: String) throws {
        let cases = try JSONSerialization.jsonObject(with: Data(Self.fixtures.metadata[name]!.utf8)) as! [String: [String: Double]]
        let map = try Self.fixtures.tensor("\(name).map").values
        for (maskName, want) in cases {
            let mask = try Self.fixtures.tensor("\(name).\(maskName)").values.map { $0 != 0 }
            let q = try MapQuality(map: map[...], mask: mask)
            func close(_ a: Double?, _ b: Double?) -> Bool { a != nil && b != nil && abs(a! - b!) <= 1e-5 * Swift.max(1, abs(b!)) }
            #expect(close(q.sparseness, want["sparseness"]), "\(name) \(maskName) sparseness \(q.sparseness) vs \(want["sparseness"]!)")
            #expect(close(q.complexity, want["complexity"]), "\(name) \(maskName) complexity \(q.complexity) vs \(want["complexity"]!)")
            if maskName == "empty" {
                #expect(q.massAccuracy == nil && q.rankAccuracy == nil && q.pointingGame == nil)
                continue
            }
            #expect(close(q.massAccuracy, want["mass"]), "\(name) \(maskName) mass \(q.massAccuracy ?? .nan) vs \(want["mass"]!)")
            if let rank = want["rank"] { #expect(close(q.rankAccuracy, rank), "\(name) \(maskName) rank \(q.rankAccuracy ?? .nan) vs \(rank)") }
            #expect(q.pointingGame == (want["pointing"]! == 1), "\(name) \(maskName) pointing game")
        }
    }

    /// Hand-checkable cases: a flat map, one hot pixel, ties at the top.
    @Test func edgeCases() throws {
        let flat = try MapQuality(map: [Float](repeating: 2, count: 16)[...])
        #expect(abs(flat.sparseness) < 1e-9 && abs(flat.complexity - log(16)) < 1e-9)
        var hot = [Float](repeating: 0, count: 16)
        hot[5] = -3
        let one = try MapQuality(map: hot[...], mask: (0..<16).map { $0 == 5 })
        #expect(one.sparseness > 0.93 && abs(one.complexity) < 1e-6)
        // Signed for localisation: the negative pixel is the map's smallest, not its largest.
        #expect(one.pointingGame == false && one.rankAccuracy == 0 && one.massAccuracy == 1)
        let ties = try MapQuality(map: [1, 1, 0, 0][...], mask: [false, true, false, false])
        #expect(ties.pointingGame == true && ties.rankAccuracy == 0)
        #expect(throws: InterpretError.self) { try MapQuality(map: [1, 2][...], mask: [true]) }
    }
}

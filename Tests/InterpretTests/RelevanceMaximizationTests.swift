import Backend
import Foundation
import Interpret
import Models
import Testing
import TestSupport
import WeightFiles

/// zennit-crp's relevance maximization (FeatureVisualization.run in batches of 4, then
/// get_max_reference with rf=True) on six real photos at 64 x 64, random-weight ResNet18 (layer1)
/// and MobileNetV2 (features.4), epsilon_plus_flat, both backends (tools/make_relmax_fixtures.py):
/// each channel's ranked images, scores and most relevant neurons, with the default (sum,
/// normalized) and with the unnormalized max; the reference heatmaps of two channels' top three
/// images, their blur and their crop windows.
@Suite(.timed) struct RelevanceMaximizationTests {
    static let fixtures = try! SafeTensorsFile(url: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/relmax.safetensors"))

    @Test(arguments: ["resnet18", "mobilenet_v2"])
    func matchesZennitCRP(_ arch: String) throws {
        let c = Case(arch, in: Self.fixtures)
        let f = Self.fixtures
        let photos = try f.tensor("input")
        let n = photos.shape.dims[0], side = photos.shape.dims[2]
        let targets = c.settings["targets"] as! [Int]
        let lrp = try LRP(composite: c.settings["composite"] as! String)
        let floors = c.settings["float64_error"] as! [String: Double]
        for b in backends() {
            let model = try c.model(on: b)
            for (key, target, norm) in [("sum_normed", RelevanceMaximization.Target.sum, true), ("max_unnormed", .max, false)] {
                let method = RelevanceMaximization(layer: c.layer, lrp: lrp, target: target, absNorm: norm)
                // Batches of 4 and 2, as the fixture's run.
                var ranking: RelevanceMaximization.Ranking?
                for range in [0..<4, 4..<n] {
                    let batch = try b.tensor(Array(photos.values[(range.lowerBound * 3 * side * side)..<(range.upperBound * 3 * side * side)]),
                                             [range.count, 3, side, side])
                    let scores = try method.scores(model, input: batch, targets: Array(targets[range]))
                    if ranking == nil { ranking = RelevanceMaximization.Ranking(channels: scores.channels) }
                    try ranking!.add(scores, images: Array(range))
                }
                let images = try f.tensor("\(arch).\(key).images"), expectedScores = try f.tensor("\(arch).\(key).scores").values
                let neurons = try f.tensor("\(arch).\(key).neurons").values
                let (rows, channels) = (images.shape.dims[0], images.shape.dims[1])
                let entries = try #require(ranking).entries
                #expect(entries.count == channels && entries.allSatisfy { $0.count == rows })
                // Scores as the other LRP tests judge maps: relative L2 over all of them (each
                // taken from the image zennit-crp ranked there), within max(1e-3, 4 x float32's
                // own distance from float64).
                var misranked = 0, got = [Float](), want = [Float]()
                for k in 0..<channels {
                    let scale = (0..<rows).map { abs(expectedScores[$0 * channels + k]) }.max()! + 1e-12
                    for r in 0..<rows {
                        let i = r * channels + k
                        got.append(entries[k][r].score); want.append(expectedScores[i])
                        // Two images whose scores are within float rounding may swap places.
                        let tie = (0..<rows).contains { $0 != r && abs(expectedScores[$0 * channels + k] - expectedScores[i]) < 1e-4 * scale }
                        if !tie && (entries[k][r].image != Int(images.values[i]) || entries[k][r].neuron != Int(neurons[i])) { misranked += 1 }
                    }
                }
                let bound = Swift.max(1e-3, 4 * Float(floors[key]!))
                #expect(relativeL2(got, want) < bound, "\(b.name) \(arch) \(key): scores' relative L2 \(relativeL2(got, want))")
                #expect(misranked == 0, "\(b.name) \(arch) \(key): \(misranked) of \(rows * channels) entries ranked otherwise than zennit-crp")
            }
            // Reference heatmaps of the fixture's two channels on their top three images.
            let chosen = c.settings["channels"] as! [Int]
            let tops = c.settings["images"] as! [[Int]], cells = c.settings["neurons"] as! [[Int]]
            let crops = c.settings["crops"] as! [String: [[Int]]]
            let method = RelevanceMaximization(layer: c.layer, lrp: lrp)
            for (j, channel) in chosen.enumerated() {
                let picked = tops[j].flatMap { i in photos.values[(i * 3 * side * side)..<((i + 1) * 3 * side * side)] }
                let maps = try method.referenceHeatmaps(model, input: b.tensor(picked, [3, 3, side, side]), channel: channel, neurons: cells[j])
                let expected = try f.tensor("\(arch).heatmaps.\(channel)").values, blurred = try f.tensor("\(arch).blurred.\(channel)").values
                for (r, map) in maps.enumerated() {
                    let want = Array(expected[(r * side * side)..<((r + 1) * side * side)])
                    #expect(relativeL2(map, want) < 1e-3, "\(b.name) \(arch) channel \(channel) image \(r): relative L2 \(relativeL2(map, want))")
                    // The blur and crop of zennit-crp's own heatmap, so that rounding in ours cannot move an edge.
                    let smooth = RelevanceMaximization.blurred(want, width: side, height: side)
                    let top = smooth.max()! + 1e-10
                    let wantSmooth = Array(blurred[(r * side * side)..<((r + 1) * side * side)])
                    #expect(relativeL2(smooth.map { $0 / top }, wantSmooth) < 1e-5)
                    let box = RelevanceMaximization.crop(want, width: side, height: side)
                    let zennit = crops[String(channel)]![r]
                    if zennit == [0, -1, 0, -1] {
                        #expect(box == nil, "\(arch) channel \(channel) image \(r): zennit-crp finds nothing to crop")
                    } else {
                        #expect(box.map { [$0.rows.lowerBound, $0.rows.upperBound, $0.columns.lowerBound, $0.columns.upperBound] } == zennit,
                                "\(arch) channel \(channel) image \(r): \(String(describing: box)) against \(zennit)")
                    }
                }
            }
        }
    }

    /// A ranking keeps the top of every batch it has seen, ties to the earlier image, no NaN.
    @Test func rankingKeepsTheTopAcrossBatches() throws {
        var ranking = RelevanceMaximization.Ranking(channels: 2, top: 3)
        func scores(_ v: [Float]) -> RelevanceMaximization.Scores {
            .init(count: v.count / 2, channels: 2, height: 1, width: 1, scores: v, neurons: [Int](repeating: 0, count: v.count), relevance: [])
        }
        try ranking.add(scores([1, .nan, 5, 2, 3, 2]), images: [10, 11, 12])
        try ranking.add(scores([4, 7, 3, 2]), images: [13, 14])
        #expect(ranking.entries[0].map(\.image) == [11, 13, 12] && ranking.entries[0].map(\.score) == [5, 4, 3])
        #expect(ranking.entries[1].map(\.image) == [13, 11, 12])
        #expect(throws: InterpretError.self) { try ranking.add(scores([1, 2]), images: [1, 2]) }
    }
}

import Foundation
import LoupeCLI
import Testing
import TestSupport

@Suite(.serialized) struct SaliencyCommandTests {
    @Test func writesMapsOverlaysGridAndSummaryPerImage() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, chelsea,
                            "--method", "gradient,gradcam,integrated_gradients", "--steps", "4", "--target", "1,tabby", "--out", out.path])
        #expect(text.contains("rgb: target 1 goldfish") && text.contains("chelsea: target 281 tabby"), "\(text)")
        for stem in ["rgb", "chelsea"] {
            let dir = out.appendingPathComponent(stem)
            let files = Set(try FileManager.default.contentsOfDirectory(atPath: dir.path))
            for name in ["gradient.npy", "gradient_raw.npy", "gradient.png", "gradient_overlay.png", "gradcam.npy", "gradcam.png",
                         "gradcam_overlay.png", "integrated_gradients_raw.npy", "grid.png", "summary.json", "input.png"] {
                #expect(files.contains(name), "\(stem)/\(name)")
            }
            #expect(!files.contains("gradcam_raw.npy"))
            let npy = try Data(contentsOf: dir.appendingPathComponent("gradcam.npy"))
            let header = String(decoding: npy.prefix(128), as: UTF8.self)
            #expect(header.contains("'descr': '<f4'") && header.contains("'shape': (224, 224)"))
            #expect(npy.count == 128 + 224 * 224 * 4)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
            #expect((summary["layer"] as? String) == "layer4" && (summary["model"] as? String) == "resnet18")
            let methods = summary["methods"] as! [[String: Any]]
            #expect(methods.map { $0["method"] as! String } == ["gradient", "gradcam", "integrated_gradients"])
            #expect(methods[2]["completeness_error"] != nil)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).sorted() == ["chelsea", "rgb"])
    }

    @Test func metricsAddDeletionAndInsertionCurves() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize",
                            "--method", "gradient,gradcam", "--layer", "layer3", "--metrics", "--metric-step", "100", "--out", out.path])
        #expect(text.contains("deletion AUC") && text.contains("insertion AUC"))
        let dir = out.appendingPathComponent("rgb")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("metrics.png").path))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
        for method in summary["methods"] as! [[String: Any]] {
            let curve = method["deletion_curve"] as! [Double]
            #expect(curve.count == (23 * 37 + 99) / 100 + 1)  // ceil(pixels / step) + 1 points
            let auc = method["insertion_auc"] as! Double
            #expect(auc >= 0 && auc <= 1)
        }
    }

    @Test func sanityCheckWritesTableCurvesAndMaps() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let text = try run(["sanity", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize",
                            "--method", "gradient,guided_backprop,gradcam", "--layer", "layer3", "--stages", "3", "--out", out.path])
        #expect(text.contains("randomized through  gradient") && text.contains("original") && text.contains("layer4.0"), "\(text)")
        let dir = out.appendingPathComponent("rgb")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: dir.path)) == ["sanity.json", "curves.png", "maps.png", "maps.npy"])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("sanity.json"))) as! [String: Any]
        let stages = json["stages"] as! [[String: Any]]
        #expect(stages.map { $0["randomized_through"] as! String } == ["original", "fc", "layer4.1", "layer4.0"])
        #expect((stages[0]["spearman"] as! [Double]) == [1, 1, 1])
        let npy = try Data(contentsOf: dir.appendingPathComponent("maps.npy"))
        #expect(String(decoding: npy.prefix(128), as: UTF8.self).contains("'shape': (4, 3, 23, 37)"))
        #expect(throws: (any Error).self) { try run(["sanity", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--stages", "0", "--out", out.path]) }
        #expect(throws: (any Error).self) { try run(["sanity", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--method", "gradcam", "--layer", "fc", "--out", out.path]) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["rgb"])
    }

    @Test func badInputsGetOneClearErrorAndLeaveNothing() throws {
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let blocker = out.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: blocker)
        let base = ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize"]
        let cases: [([String], String)] = [
            (base + ["--method", "gradient,magic", "--out", out.path], "unknown method magic"),
            (base + ["--method", "gradcam", "--layer", "fc", "--out", out.path], "4-D"),
            (base + ["--method", "gradcam", "--layer", "layer5", "--out", out.path], "nearest: layer"),
            (base + ["--target", "1000", "--out", out.path], "out of range"),
            (base + ["--target", "tabbycat", "--out", out.path], "nearest: tabby"),
            (base + ["--target", "1,2", "--out", out.path], "2 targets for 1 images"),
            (base + ["--out", blocker.appendingPathComponent("sub").path], "cannot create"),
            (["saliency", "--image", smallImage, chelsea, "--no-resize", "--out", out.path], "same size"),
        ]
        for (arguments, needle) in cases {
            do {
                _ = try run(arguments)
                Issue.record("no error for \(arguments)")
            } catch {
                #expect(Loupe.message(for: error).contains(needle), "\(arguments): \(Loupe.message(for: error))")
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["a-file"])
    }
}

import ArgumentParser
import Backend
import Foundation
import Interpret
import LoupeCLI
import Models
import Testing
import TestSupport

let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
let chelsea = repo.appendingPathComponent("Assets/chelsea.png").path
let smallImage = repo.appendingPathComponent("Tests/ImageIOTests/Fixtures/rgb.png").path

/// Runs a whole command and returns what it printed.
func run(_ arguments: [String]) throws -> String {
    var command = try Loupe.parseAsRoot(arguments)
    let collected = Collector()
    try Console.$arguments.withValue(arguments) {
        try Console.$sink.withValue({ collected.append($0) }) { try command.run() }
    }
    return collected.text
}

final class Collector: @unchecked Sendable {
    private let lock = NSLock()
    private var parts: [String] = []
    func append(_ s: String) { lock.lock(); parts.append(s); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return parts.joined() }
}

func weights() -> Bool { realWeightsPresent { Issue.record(Comment(rawValue: $0)) } }
/// A fresh empty folder under the temporary directory.
func tempDir() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

func device() -> Bool { TestDevice.backend(fail: { Issue.record(Comment(rawValue: $0)) }) != nil }

@Suite(.serialized, .timed) struct ModelCommandTests {
    @Test func classifyPrintsEgyptianCatFirstAsJSON() throws {
        guard weights(), device() else { return }
        let out = try run(["classify", "--image", chelsea, "--json", "--top", "3"])
        struct Output: Decodable { struct P: Decodable { let index: Int; let label: String; let probability: Double }; let top: [P] }
        let parsed = try JSONDecoder().decode(Output.self, from: Data(out.utf8))
        #expect(parsed.top.count == 3)
        #expect(parsed.top[0].index == 285 && parsed.top[0].label == "Egyptian cat")
        #expect(abs(parsed.top[0].probability - 0.7166) < 1e-3)
        let text = try run(["classify", "--image", chelsea, "--top", "1"])
        #expect(text.contains("285  Egyptian cat") && text.contains("\(chelsea) (input 224x224)"))
    }

    /// Several images and folders: every image gets its result with its path, in text, JSON
    /// lines and CSV; commands that take one image refuse a second instead of keeping the last.
    @Test func classifyTakesManyImagesAndOthersRefuseASecond() throws {
        guard device() else { return }
        let folder = try tempDir()
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["b.png", "a.png", "notes.txt"] {
            try FileManager.default.copyItem(atPath: name == "notes.txt" ? repo.appendingPathComponent("README.md").path : smallImage,
                                             toPath: folder.appendingPathComponent(name).path)
        }
        let model = ["--model", "resnet18", "--random-weights", "1"]
        let text = try run(["classify"] + model + ["--image", chelsea, folder.path, "--top", "2"])
        let a = folder.appendingPathComponent("a.png").path, b = folder.appendingPathComponent("b.png").path
        let order = [chelsea, a, b].map { text.range(of: "\($0) (input ")?.lowerBound }
        #expect(order.allSatisfy { $0 != nil } && order[0]! < order[1]! && order[1]! < order[2]!, "\(text)")
        #expect(!text.contains("notes.txt"))
        let lines = try run(["classify"] + model + ["--image", chelsea, folder.path, "--json", "--top", "1"]).split(separator: "\n")
        struct Output: Decodable { struct P: Decodable { let index: Int }; let image: String; let top: [P] }
        #expect(try lines.map { try JSONDecoder().decode(Output.self, from: Data($0.utf8)).image } == [chelsea, a, b])
        let csv = try run(["classify"] + model + ["--image", chelsea, a, "--csv", "--top", "2"]).split(separator: "\n")
        #expect(csv.count == 1 + 2 * 2 && csv[0] == "image,rank,index,label,probability" && csv[3].hasPrefix("\(a),1,"))
        for command in [["sanity", "--out", folder.appendingPathComponent("s").path], ["invert", "--layer", "layer1", "--out", folder.appendingPathComponent("i").path]] {
            #expect { _ = try run([command[0]] + model + ["--image", chelsea, a] + command.dropFirst()) } throws: { error in
                "\(error)".contains("takes one image, got 2")
            }
        }
        #expect { _ = try run(["classify"] + model + ["--image", chelsea, "--json", "--csv"]) } throws: { "\($0)".contains("not both") }
    }

    /// --labels names a model's classes (text, one per line, or a JSON list) in what commands
    /// print and in --target; a list of the wrong length or shape is refused naming the file.
    @Test func labelsNameTheClasses() throws {
        guard weights(), device() else { return }
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("names.txt"), json = dir.appendingPathComponent("names.json")
        try ((0..<1000).map { "kind \($0)" }.joined(separator: "\r\n") + "\n\n").write(to: text, atomically: true, encoding: .utf8)
        try JSONSerialization.data(withJSONObject: (0..<1000).map { "sort \($0)" }).write(to: json)
        #expect(try run(["classify", "--image", chelsea, "--top", "1", "--labels", text.path]).contains("285  kind 285 "))
        #expect(try run(["classify", "--image", chelsea, "--top", "1", "--labels", json.path]).contains("285  sort 285 "))
        let out = dir.appendingPathComponent("sal")
        let printed = try run(["saliency", "--model", "resnet18", "--random-weights", "2", "--image", smallImage, "--no-resize",
                               "--method", "gradient", "--target", "Kind 7", "--labels", text.path, "--out", out.path])
        #expect(printed.contains("target 7 kind 7"), "\(printed)")
        let short = dir.appendingPathComponent("short.txt"), gap = dir.appendingPathComponent("gap.txt"), numbers = dir.appendingPathComponent("n.json")
        try "cat\ndog\n".write(to: short, atomically: true, encoding: .utf8)
        try ((0..<500).map { "a\($0)" } + [""] + (0..<499).map { "b\($0)" }).joined(separator: "\n").write(to: gap, atomically: true, encoding: .utf8)
        try "[1, 2, 3]".write(to: numbers, atomically: true, encoding: .utf8)
        for (file, message) in [(short, "has 2 name(s) but the model has 1000 outputs"), (gap, "line 501 is empty"),
                                (numbers, "must hold a list of strings"), (dir, "is a folder")] {
            #expect { _ = try run(["classify", "--image", chelsea, "--labels", file.path]) } throws: { error in
                "\(error)".contains(message) && "\(error)".contains(file.path)
            }
        }
    }

    @Test func layersListsTorchvisionNamesAndShapes() throws {
        guard device() else { return }
        let out = try run(["layers", "--model", "resnet18", "--random-weights", "1"])
        let line = try #require(out.split(separator: "\n").first { $0.hasPrefix("layer4.1 ") })
        #expect(line.contains("BasicBlock") && line.contains("[1, 512, 7, 7]"))
        #expect(out.contains("fc ") && out.contains("[1, 1000]"))
    }

    @Test func compareReportsEveryLayerAndPasses() throws {
        guard device() else { return }
        let out = try run(["compare", "--model", "resnet18", "--random-weights", "3", "--image", smallImage, "--no-resize"])
        #expect(out.contains("layer4.1 (gradient)") && out.contains("input gradient") && out.contains("OK: "))
        let some = try run(["compare", "--model", "resnet18", "--random-weights", "3", "--image", smallImage, "--no-resize",
                            "--layer", "layer1,fc"])
        #expect(some.contains("layer1 ") && !some.contains("layer2 "))
    }

    /// Presets and explicit sizes decide the network's input; --mean and --std its
    /// normalization, which the model carries to the methods that normalize images themselves.
    @Test func presetsAndNormalizationReachThePass() throws {
        let inception = try run(["classify", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--preset", "inception", "--top", "1"])
        #expect(inception.contains("input 299x299"), "\(inception)")
        let cropped = try run(["classify", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--resize", "160", "--crop", "128", "--top", "1"])
        #expect(cropped.contains("input 128x128"), "\(cropped)")
        let options = try ModelOptions.parse(["--model", "resnet18", "--random-weights", "1", "--mean", "0.5, 0.5,0.5", "--std", "0.25,0.5,1"])
        let model = try options.load(on: CPUBackend())
        #expect(model.architecture.normalization == Normalization(mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 1]))
        let p = try options.preprocessing(noResize: false)
        #expect(p.mean == [0.5, 0.5, 0.5] && p.std == [0.25, 0.5, 1] && p.resizeShorter == 256 && p.crop == 224)
        // The black baseline of integrated gradients is black under the model's normalization:
        // with mean 0.5 and std 0.25/0.5/1 it is -2, -1, -0.5.
        let x = try CPUBackend().tensor([Float](repeating: 0.3, count: 3 * 32 * 32), [1, 3, 32, 32])
        let black = try IntegratedGradients(steps: 2, baseline: .black, batch: 2).attribute(model, input: x, targets: [0]).raw!
        let given = [Float](repeating: -2, count: 1024) + [Float](repeating: -1, count: 1024) + [Float](repeating: -0.5, count: 1024)
        let explicit = try IntegratedGradients(steps: 2, baseline: .image(given), batch: 2).attribute(model, input: x, targets: [0]).raw!
        #expect(black == explicit && black.contains { $0 != 0 })
    }

    @Test func badInputsGetOneClearError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("loupe-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("notes.png"), truncated = dir.appendingPathComponent("cut.png")
        let badModel = dir.appendingPathComponent("resnet18-broken.pth")
        try Data("not an image".utf8).write(to: text)
        try Data(try Data(contentsOf: URL(fileURLWithPath: chelsea)).prefix(5000)).write(to: truncated)
        try Data(try Data(contentsOf: repo.appendingPathComponent("Tests/ModelsTests/Fixtures/tiny_zip.pth")).prefix(900)).write(to: badModel)
        let cases: [([String], String)] = [
            (["classify", "--image", text.path, "--device", "cpu"], "not an image"),
            (["classify", "--image", truncated.path, "--device", "cpu"], "PNG"),
            (["classify", "--image", "/nonexistent.png"], "no such file"),
            (["classify", "--image", smallImage, "--model", "lenet5"], "neither a known architecture"),
            (["classify", "--image", smallImage, "--model", badModel.path, "--device", "cpu"], "resnet18-broken.pth"),
            (["classify", "--image", smallImage, "--arch", "resnet19", "--device", "cpu"], "unknown architecture resnet19"),
            (["classify", "--image", smallImage, "--top", "0"], "--top"),
            (["compare", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize", "--layers", "layer4.7"],
             "nearest: layer4"),
            (["classify", "--image", smallImage, "--preset", "imagenet-v3"], "--preset imagenet-v3: expected convnext, efficientnet, imagenet, imagenet-v2, inception, swin"),
            (["classify", "--image", smallImage, "--interpolation", "lanczos"], "--interpolation lanczos: expected bilinear or bicubic"),
            (["classify", "--image", smallImage, "--resize", "200"], "the crop no larger than the resized side"),
            (["classify", "--image", smallImage, "--crop", "-3"], "--crop -3"),
            (["classify", "--image", smallImage, "--mean", "0.5,0.5"], "--mean 0.5,0.5: expected three comma-separated numbers"),
            (["classify", "--image", smallImage, "--std", "0.2,0,0.2"], "expected three comma-separated positive numbers"),
        ]
        for (arguments, needle) in cases {
            do {
                _ = try run(arguments)
                Issue.record("no error for \(arguments)")
            } catch {
                let message = Loupe.message(for: error)
                #expect(message.contains(needle), "\(arguments): \(message)")
                #expect(!message.contains("\n") || needle == "PNG", "one line: \(message)")
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["cut.png", "notes.png", "resnet18-broken.pth"])
    }
}

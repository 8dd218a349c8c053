import Foundation
import ImageIO
import Testing
import TestSupport

/// A headless Chromium, or nil. Under CI (LOUPE_REQUIRE_BROWSER=1) a missing browser fails the
/// test instead of skipping it.
func browser() -> String? {
    let env = ProcessInfo.processInfo.environment
    let candidates = [env["LOUPE_CHROMIUM"]].compactMap { $0 } + ["chromium", "chromium-browser", "google-chrome"].flatMap { name in
        (env["PATH"] ?? "/usr/bin").split(separator: ":").map { "\($0)/\(name)" }
    }
    if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
    if env["LOUPE_REQUIRE_BROWSER"] == "1" { Issue.record("no headless Chromium (apt install chromium, or set LOUPE_CHROMIUM)") }
    return nil
}

/// Runs the browser headless on `page` with `arguments`; its standard output.
func headless(_ browser: String, _ page: URL, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: browser)
    process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                         "--no-first-run", "--user-data-dir=\(FileManager.default.temporaryDirectory.path)/loupe-chromium-\(UUID().uuidString)"]
        + arguments + [page.absoluteString]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// Each command's index.html, opened in a real browser: every image on it loaded, and a
/// screenshot of it is a picture, not a blank page.
@Suite(.serialized, .timed) struct ReportTests {
    @Test func reportsLoadWholeInAHeadlessBrowser() throws {
        guard device() else { return }
        guard let chromium = browser() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let model = ["--model", "resnet18", "--random-weights", "2"]
        let runs: [(String, [String], Int)] = [
            ("compare", ["compare"] + model + ["--image", smallImage, "--no-resize", "--layer", "layer1,fc"], 0),
            ("saliency", ["saliency"] + model + ["--image", chelsea, smallImage, "--method", "gradient,gradcam", "--metrics", "--metric-step", "5000",
                                                  "--figure-format", "png,svg"], 1 + 2 * (2 + 1 + 2 * 2)),
            ("sanity", ["sanity"] + model + ["--image", chelsea, "--method", "gradient,gradcam", "--stages", "2"], 2),
            ("visualize", ["visualize"] + model + ["--layer", "layer2", "--batch-channels", "0..2", "--steps", "2", "--size", "48"], 1 + 3),
            ("invert", ["invert"] + model + ["--image", chelsea, "--layer", "layer1", "--steps", "2"], 1 + 1),
        ]
        for (name, arguments, images) in runs {
            let folder = out.appendingPathComponent(name)
            let text = try run(arguments + ["--out", folder.path])
            let page = folder.appendingPathComponent("index.html")
            #expect(text.contains("report: \(page.path)"), "\(name): \(text)")
            let html = try String(contentsOf: page, encoding: .utf8)
            #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"/") && !html.contains("href=\"/"),
                    "\(name): links must be relative")
            #expect(html.contains("loupe \(name)") && html.contains("model SHA-256") == false)  // seeded weights have no file
            if name == "compare" {
                let json = try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("compare.json"))) as! [String: Any]
                #expect((json["verdict"] as? String)?.hasPrefix("OK: ") == true && ((json["rows"] as? [[String]])?.count ?? 0) >= 4, "\(json)")
                #expect { _ = try run(["compare"] + model + ["--image", smallImage, chelsea]) } throws: { "\($0)".contains("takes one image, got 2") }
            }
            let dom = try headless(chromium, page, ["--virtual-time-budget=10000", "--dump-dom"])
            let loaded = dom.firstMatch(of: /data-images="(\d+)\/(\d+)"/)
            #expect(loaded != nil, "\(name): the page's script did not run")
            if let loaded {
                let broken = dom.firstMatch(of: /data-broken="([^"]*)"/).map { String($0.1) } ?? ""
                #expect(loaded.1 == loaded.2 && Int(loaded.2) == images, "\(name): \(loaded.1) of \(loaded.2) images loaded, \(images) expected; broken: \(broken)")
            }
            let shot = out.appendingPathComponent("\(name).png")
            _ = try headless(chromium, page, ["--window-size=1200,900", "--screenshot=\(shot.path)"])
            let picture = try RGBImage(contentsOf: shot)
            let pixels = picture.width * picture.height
            let inked = stride(from: 0, to: picture.pixels.count, by: 3).filter { picture.pixels[$0] < 200 || picture.pixels[$0 + 1] < 200 || picture.pixels[$0 + 2] < 200 }.count
            // A page of tables only (compare) has less ink than one of pictures.
            #expect(picture.width == 1200 && inked > pixels / (images == 0 ? 400 : 50), "\(name): the screenshot is nearly blank (\(inked) of \(pixels) pixels inked)")
        }
    }
}

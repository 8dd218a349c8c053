import Foundation
import ImageIO
import LoupeCLI
import Testing
import TestSupport

/// The real binary (.build/debug/loupe), or nil (a recorded failure under CI).
func loupeBinary() -> URL? {
    let binary = repo.appendingPathComponent(".build/debug/loupe")
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
        if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("no .build/debug/loupe to test with") }
        return nil
    }
    return binary
}

/// A started run of the real binary (or of any executable) with its stderr collected, its
/// stdout written to `stdout` (/dev/full for a full disk) and `environment` added to this one's.
final class BinaryRun: @unchecked Sendable {
    let process = Process()
    let errors = Pipe()
    init(_ binary: URL, _ arguments: [String], stdout: String = "/dev/null", environment: [String: String] = [:]) throws {
        process.executableURL = binary
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: stdout)
        process.standardError = errors
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        try process.run()
    }
    /// Waits for the end: the exit status (or the signal) and what it printed on stderr.
    func finish() -> (exited: Bool, status: Int32, message: String) {
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationReason == .exit, process.terminationStatus, message)
    }
}

/// What --out may be after any run, finished or stopped: absent, or one whole run (every file
/// its manifest lists present, nothing else); and nothing but --out in its folder.
func expectWholeOrAbsent(_ out: URL, parent: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let beside = try FileManager.default.contentsOfDirectory(atPath: parent.path).filter { $0 != out.lastPathComponent }
    #expect(beside.isEmpty, "left beside --out: \(beside)", sourceLocation: sourceLocation)
    guard FileManager.default.fileExists(atPath: out.path) else { return }
    let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent(".loupe.manifest.json"))) as? [String: Any]
    let listed = Set(manifest?["files"] as? [String] ?? [])
    var present = Set<String>()
    let walker = FileManager.default.enumerator(atPath: out.path)
    while let relative = walker?.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out.appendingPathComponent(relative).path, isDirectory: &isDirectory), !isDirectory.boolValue {
            present.insert(relative)
        }
    }
    #expect(!listed.isEmpty && present == listed.union([".loupe.manifest.json"]), "--out is a partial run: \(present.symmetricDifference(listed))",
            sourceLocation: sourceLocation)
}

@Suite(.serialized, .timed) struct OutputFolderTests {
    /// SIGTERM and SIGINT at 12 points of a run's life (loading, computing, writing, placing):
    /// --out is then absent or the whole run, and nothing is left beside it.
    @Test func signalsAtAnyPointLeaveTheRunWholeOrAbsent() throws {
        guard let binary = loupeBinary(), device() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("made/sal")
        let arguments = ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, chelsea, "--method", "gradient,gradcam",
                         "--figure-format", "png,svg", "--out", out.path]
        let started = Date()
        let full = try BinaryRun(binary, arguments).finish()
        let duration = Date().timeIntervalSince(started)
        #expect(full.exited && full.status == 0, "\(full.message)")
        try expectWholeOrAbsent(out, parent: parent.appendingPathComponent("made"))
        try FileManager.default.removeItem(at: parent.appendingPathComponent("made"))
        for k in 1...12 {
            let run = try BinaryRun(binary, arguments)
            Thread.sleep(forTimeInterval: duration * Double(k) / 13)
            kill(run.process.processIdentifier, k % 2 == 0 ? SIGTERM : SIGINT)
            let result = run.finish()
            #expect(result.exited && [0, 130, 143].contains(result.status), "point \(k): \(result.status) \(result.message)")
            let made = parent.appendingPathComponent("made")
            if FileManager.default.fileExists(atPath: made.path) {
                try expectWholeOrAbsent(out, parent: made)
                #expect(FileManager.default.fileExists(atPath: out.path), "point \(k): the folder above --out was left without it")
                try FileManager.default.removeItem(at: made)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty, "point \(k)")
        }
    }

    /// Two runs started together into one new --out: one wins whole, the other says so, and
    /// nothing of the loser is left beside the winner's files.
    @Test func twoRunsIntoOneFolderDoNotMix() throws {
        guard let binary = loupeBinary(), device() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("sal")
        let runs = try [("a", "gradient"), ("b", "gradcam")].map { name, method in
            try BinaryRun(binary, ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--method", method,
                                   "--out", out.path])
        }
        let results = runs.map { $0.finish() }
        #expect(results.filter { $0.exited && $0.status == 0 }.count == 1, "\(results.map(\.message))")
        for r in results where r.status != 0 {
            #expect(r.message.contains("another run") || r.message.contains("holds an earlier run's files"), "\(r.message)")
        }
        try expectWholeOrAbsent(out, parent: parent)
        let maps = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("rgb").path).filter { $0.hasSuffix(".npy") }
        #expect(maps.allSatisfy { $0.hasPrefix("gradient") } || maps == ["gradcam.npy"], "\(maps)")
    }

    /// --force replaces only a folder whose every file its run's manifest lists: a note added to
    /// an earlier run, or a folder whose index.html merely claims to be Loupe's, is kept.
    @Test func forceReplacesOnlyWhatLoupeWrote() throws {
        guard device() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("sal")
        let base = ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--method", "gradient", "--out", out.path]
        _ = try run(base)
        try Data("mine".utf8).write(to: out.appendingPathComponent("notes.txt"))
        #expect { _ = try run(base + ["--force"]) } throws: { "\($0)".contains("notes.txt: not in its .loupe.manifest.json") }
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("notes.txt").path))
        try FileManager.default.removeItem(at: out.appendingPathComponent("notes.txt"))
        _ = try run(base + ["--force"])

        let fake = parent.appendingPathComponent("thesis")
        try FileManager.default.createDirectory(at: fake, withIntermediateDirectories: true)
        try Data(#"<meta name="generator" content="Loupe">"#.utf8).write(to: fake.appendingPathComponent("index.html"))
        try Data("chapter 1".utf8).write(to: fake.appendingPathComponent("thesis.tex"))
        #expect { _ = try run(base.dropLast() + [fake.path, "--force"]) } throws: { "\($0)".contains("Loupe did not write") }
        #expect(FileManager.default.fileExists(atPath: fake.appendingPathComponent("thesis.tex").path))
    }

    /// A symlinked --out is followed: the folder it names gets the run (replaced whole with
    /// --force), the link stays a link; a dangling link is refused.
    @Test func aSymlinkedOutIsFollowed() throws {
        guard device() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let real = parent.appendingPathComponent("real"), link = parent.appendingPathComponent("link")
        try FileManager.default.createDirectory(at: real, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: real)
        let base = ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--method", "gradient", "--out", link.path]
        _ = try run(base)
        _ = try run(base + ["--force"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == real.path)
        #expect(FileManager.default.fileExists(atPath: real.appendingPathComponent("rgb/gradient.npy").path))
        let dangling = parent.appendingPathComponent("dangling")
        try FileManager.default.createSymbolicLink(atPath: dangling.path, withDestinationPath: parent.appendingPathComponent("nowhere").path)
        #expect { _ = try run(base.dropLast() + [dangling.path]) } throws: { "\($0)".contains("which does not exist") }
    }

    /// Help and the version, like any output, that cannot be written: exit 74, one line.
    @Test(arguments: [["help"], ["--version"], ["saliency", "--help"]])
    func helpToAFullDiskExits74(_ arguments: [String]) throws {
        guard let binary = loupeBinary(), FileManager.default.fileExists(atPath: "/dev/full") else { return }
        let r = try BinaryRun(binary, arguments, stdout: "/dev/full").finish()
        #expect(r.exited && r.status == 74 && r.message.split(separator: "\n").count == 1, "\(arguments): \(r.status) \(r.message)")
    }
}

/// PoCL leaves an empty `tempfile_XXXXXX` probe in its kernel cache each time it starts; the
/// binary removes its own, so runs do not grow the cache (50 runs left 50 files before).
@Test(.timed) func runsLeaveNoProbeFilesInPoCLsCache() throws {
    guard let binary = loupeBinary(), device() else { return }
    let cache = try tempDir()
    defer { try? FileManager.default.removeItem(at: cache) }
    for _ in 0..<3 {
        let r = try BinaryRun(binary, ["devices"], environment: ["POCL_CACHE_DIR": cache.path]).finish()
        #expect(r.exited && r.status == 0, "\(r.message)")
    }
    let names = try FileManager.default.contentsOfDirectory(atPath: cache.path)
    #expect(!names.contains { $0.hasPrefix("tempfile_") }, "\(names)")
}

/// Under a 2 GiB address-space limit (`ulimit -v`), `saliency` over 40 images and `classify` of
/// a 60000x2 strip end with one line, a result or a refusal, never an abort: the budget counts
/// the limit, the images go through in batches that fit it, and the strip is resized by its
/// crop alone.
@Test(.timed) func aMemoryCapEndsInOneLineNeverAnAbort() throws {
    guard let binary = loupeBinary(), device(), weights() else { return }
    let dir = try tempDir()
    defer { try? FileManager.default.removeItem(at: dir) }
    let images = dir.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    for i in 0..<40 { try FileManager.default.copyItem(atPath: chelsea, toPath: images.appendingPathComponent("cat\(i).png").path) }
    var rng = SeededRandom(seed: 3)
    let strip = dir.appendingPathComponent("strip.png")
    try RGBImage(width: 60000, height: 2, pixels: (0..<(60000 * 2 * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }).writePNG(to: strip)
    for command in [["saliency", "--image", images.path, "--method", "gradient", "--quiet", "--out", dir.appendingPathComponent("out").path],
                    ["classify", "--image", strip.path]] {
        let r = try BinaryRun(URL(fileURLWithPath: "/bin/sh"), ["-c", "ulimit -v 2097152; exec \"$0\" \"$@\"", binary.path] + command).finish()
        #expect(r.exited && [0, 1].contains(r.status), "\(command[0]): \(r.status) \(r.message)")
        #expect(r.message.split(separator: "\n").count <= 1, "\(command[0]): \(r.message)")
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("out").path).filter { $0.hasPrefix("cat") }.count == 40)
}

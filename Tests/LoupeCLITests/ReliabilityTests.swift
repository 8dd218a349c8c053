import Foundation
import ImageIO
import LoupeCLI
import Testing
import TestSupport

/// Work sized past what the machine has is refused before anything is allocated (Swift traps
/// when a host array cannot be allocated), with the estimate and the limit in one message.
@Suite(.timed) struct ReliabilityTests {
    func expectRefused(_ arguments: [String], _ what: String) throws {
        do {
            _ = try run(arguments)
            Issue.record("\(what): ran instead of refusing")
        } catch {
            let text = "\(error)"
            #expect(text.contains("needs about") && (text.contains("device memory") || text.contains("available")),
                    "\(what): \(text)")
        }
    }

    /// The command line's contract: a negative number after a numeric option is its value (and
    /// refused or taken as such, never "Missing value"); paths that are not model files are
    /// refused by what they are, without blocking or a raw system code; options whose value would
    /// run for days or drown the image are refused by name.
    @Test func optionsAndPathsGetTheirOwnMessage() throws {
        guard device() else { return }
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("model.pth").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let out = dir.appendingPathComponent("out").path
        let visualize = ["visualize", "--model", "resnet18", "--random-weights", "1", "--steps", "1", "--size", "32", "--out", out]
        let saliency = ["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--out", out]
        let cases: [([String], String)] = [
            (visualize + ["--layer", "layer1", "--channel", "0", "--l1", "-1"], "--l1 -1: must be at least 0"),
            (visualize + ["--layer", "layer1", "--channel", "0", "--l2", "-2"], "--l2 -2"),
            (visualize + ["--target", "-3"], "--target -3 is out of range"),
            (["classify", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--std", "-1,1,1"], "--std"),
            (["bench", "--batch", "-2"], "--batch -2"),
            (["visualize", "--model", "resnet18", "--random-weights", "1", "--target", "1", "--size", "0", "--out", out], "is empty"),
            (["classify", "--model", "/dev/zero", "--arch", "resnet18", "--image", smallImage], "is a device, not a regular file"),
            (["classify", "--model", dir.path, "--arch", "resnet18", "--image", smallImage], "is a folder, not a file"),
            (["classify", "--model", fifo, "--arch", "resnet18", "--image", smallImage], "is a FIFO, not a regular file"),
            (["classify", "--model", "/proc/self/mem", "--arch", "resnet18", "--image", smallImage], "cannot read it"),
            (saliency + ["--method", "smoothgrad", "--noise", "1e20"], "--noise 1e+20: at most 10"),
            (saliency + ["--method", "smoothgrad", "--samples", "2000000000"], "--samples 2000000000: at most 100000"),
            (saliency + ["--method", "integrated_gradients", "--ig-steps", "2000000000"], "--ig-steps 2000000000: at most 10000"),
            (saliency + ["--batch", "-1"], "--batch -1: must be at least 1"),
        ]
        for (arguments, needle) in cases {
            do {
                _ = try run(arguments)
                Issue.record("\(arguments): no error")
            } catch {
                let text = Loupe.message(for: error)
                #expect(text.contains(needle) && !text.contains("Missing value") && !text.contains("NSCocoaErrorDomain"), "\(arguments): \(text)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func oversizedImagesAndBatchesAreRefusedBeforeAllocating() throws {
        guard device() else { return }
        try expectRefused(["layers", "--model", "resnet18", "--random-weights", "1", "--size", "100000"], "layers --size 100000")
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        try expectRefused(["visualize", "--model", "resnet18", "--random-weights", "1", "--target", "948", "--size", "100000",
                           "--steps", "1", "--out", out.path], "visualize --size 100000")
        try expectRefused(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--method", "smoothgrad",
                           "--samples", "100000", "--batch", "100000", "--out", out.path], "smoothgrad --batch 100000")
        try expectRefused(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", chelsea, "--method",
                           "integrated_gradients", "--ig-steps", "10000", "--batch", "10000", "--out", out.path], "IG --batch 10000")
        // A photo used at its own size (--no-resize): 6000 x 6000 is under the pixel limit, but
        // a pass through ResNet18 at that size is not (compare and sanity used to start it).
        let big = out.appendingPathComponent("big.png")
        try RGBImage(width: 6000, height: 6000, pixels: [UInt8](repeating: 90, count: 6000 * 6000 * 3)).writePNG(to: big)
        try expectRefused(["compare", "--model", "resnet18", "--random-weights", "1", "--image", big.path, "--no-resize"], "compare --no-resize")
        try expectRefused(["sanity", "--model", "resnet18", "--random-weights", "1", "--weights-seed", "2", "--image", big.path, "--no-resize",
                           "--out", out.appendingPathComponent("s").path], "sanity --no-resize")
        try FileManager.default.removeItem(at: big)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { !$0.hasPrefix(".") }.isEmpty)
        // Sizes a machine runs are not refused.
        #expect(try run(["layers", "--model", "resnet18", "--random-weights", "1", "--size", "64"]).contains("layer4"))
    }

    /// Channel ranges and neuron positions are checked against the layer's real shape before the
    /// first step (a range past the channels used to run 102 s first; a neuron outside a 2x2
    /// layer used to be clamped to its corner and drawn).
    @Test func objectivesOutsideTheirLayerAreRefusedBeforeTheFirstStep() throws {
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        func refusal(_ arguments: [String]) -> String {
            do { _ = try run(arguments); return "ran" } catch { return "\(error)" }
        }
        let base = ["visualize", "--model", "resnet18", "--random-weights", "1", "--steps", "1", "--size", "64", "--out", out.path]
        let range = refusal(base + ["--layer", "layer3", "--batch-channels", "0..100000"])
        #expect(range.contains("layer3 has 256 channels") && range.contains("channel 256 does not exist"), "\(range)")
        let neuron = refusal(base + ["--layer", "layer4", "--neuron", "5,999,999"])
        #expect(neuron.contains("outside layer4") && neuron.contains("2x2 positions"), "\(neuron)")
        let objective = refusal(base + ["--objective", "layer4:600"])
        #expect(objective.contains("layer4 has 512 channels"), "\(objective)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).filter { !$0.hasPrefix(".") }.isEmpty)
    }

    /// NaN, infinite and out-of-range numbers are refused by name before any work, and no output
    /// folder is made (`--lr nan` used to run every step and report divergence at the end;
    /// `compare --tolerance nan` printed OK; `--noise nan` failed in the JSON writer). Negative
    /// numbers are values, not options (`--top -1` used to read as a missing value).
    @Test func nonFiniteNumbersAreRefusedUpFront() throws {
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("never").path
        let cases: [([String], String)] = [
            (["visualize", "--target", "1", "--lr", "nan", "--out", out], "--lr nan: expected a finite number"),
            (["visualize", "--target", "1", "--lr", "-1", "--out", out], "--lr -1: must be above 0"),
            (["visualize", "--target", "1", "--lr=-1", "--out", out], "--lr -1: must be above 0"),
            (["classify", "--image", chelsea, "--top", "-1"], "--top must be at least 1"),
            (["visualize", "--target", "1", "--tv", "inf", "--out", out], "--tv inf: expected a finite number"),
            (["invert", "--image", chelsea, "--layer", "features.4", "--lr", "inf", "--out", out], "--lr inf: expected a finite number"),
            (["compare", "--image", chelsea, "--tolerance", "nan"], "--tolerance nan: expected a finite number"),
            (["saliency", "--image", chelsea, "--method", "smoothgrad", "--noise", "nan", "--out", out], "--noise nan: expected a finite number"),
        ]
        for (arguments, message) in cases {
            do {
                _ = try run(arguments)
                Issue.record("\(arguments.joined(separator: " ")): ran")
            } catch {
                #expect("\(error)" == message, "\(arguments.joined(separator: " ")): \(error)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    /// An error found after the options are read leaves no output folder behind (the folder is
    /// made when the results are ready), and an empty --out is refused.
    @Test func aFailedRunLeavesNoFolder() throws {
        guard device() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("new/deeper").path
        do {
            _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize",
                         "--method", "gradcam", "--layer", "layer9", "--out", out])
            Issue.record("an unknown layer ran")
        } catch {
            #expect("\(error)".contains("layer9"), "\(error)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
        #expect(throws: (any Error).self) { try run(["visualize", "--target", "1", "--out", ""]) }
        // A successful run makes the folders it needs.
        _ = try run(["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--no-resize",
                     "--method", "gradient", "--out", out])
        #expect(FileManager.default.fileExists(atPath: out + "/rgb"))
    }

    /// Paths that are not image files get Loupe's words, not a Foundation error code, and never
    /// block (a FIFO); a method or layer named twice is refused instead of run twice or failing
    /// with "The file doesn't exist" when its files are moved in place.
    @Test func pathsThatAreNotImagesAndDuplicateNamesGetClearErrors() throws {
        let dir = try tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let loopA = dir.appendingPathComponent("loopA").path, loopB = dir.appendingPathComponent("loopB").path
        try FileManager.default.createSymbolicLink(atPath: loopA, withDestinationPath: loopB)
        try FileManager.default.createSymbolicLink(atPath: loopB, withDestinationPath: loopA)
        let fifo = dir.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let link = dir.appendingPathComponent("link.png").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: smallImage)
        for (path, needle) in [(dir.path, "is a folder, not a file"), (loopA, "Too many levels of symbolic links"),
                               ("/dev/null", "is a device, not a regular file"), (fifo, "is a FIFO, not a regular file"),
                               (dir.appendingPathComponent("absent.png").path, "No such file")] {
            do {
                _ = try RGBImage(contentsOf: URL(fileURLWithPath: path))
                Issue.record("\(path) was read as an image")
            } catch {
                #expect("\(error)".contains(needle) && !"\(error)".contains("NSCocoaErrorDomain"), "\(path): \(error)")
            }
        }
        #expect(try RGBImage(contentsOf: URL(fileURLWithPath: link)).width > 0, "a link to an image is an image")
        guard device() else { return }
        let out = dir.appendingPathComponent("out").path
        for (arguments, message) in [
            (["saliency", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--method", "gradient,gradient", "--out", out],
             "--method names gradient twice"),
            (["invert", "--model", "resnet18", "--random-weights", "1", "--image", smallImage, "--layer", "layer1,layer1", "--out", out],
             "--layer names layer1 twice"),
        ] {
            do { _ = try run(arguments); Issue.record("\(arguments): ran") } catch { #expect("\(error)" == message) }
        }
    }

    /// Flags that only mean something with another are refused instead of ignored, and errors
    /// name the flag the user gave.
    @Test func flagsAreNotIgnoredAndErrorsNameTheFlagGiven() throws {
        for (arguments, message) in [
            (["bench", "--visualize"], "--visualize time a whole network: give --model (e.g. --model resnet18)"),
            (["bench", "--kernels", "--saliency", "gradient"], "--kernels, --method time a whole network: give --model (e.g. --model resnet18)"),
            // A batch or count below 1 is refused before anything runs (it used to run as if 16).
            (["saliency", "--image", chelsea, "--batch", "-1", "--out", "unused"], "--batch -1: must be at least 1"),
            (["sanity", "--image", chelsea, "--samples", "0", "--out", "unused"], "--samples 0: must be at least 1"),
            (["saliency", "--image", chelsea, "--ig-steps", "0", "--out", "unused"], "--ig-steps 0: must be at least 1"),
        ] {
            do { _ = try run(arguments); Issue.record("\(arguments): ran") } catch { #expect("\(error)" == message) }
        }
        guard device() else { return }
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        do {
            _ = try run(["visualize", "--model", "resnet18", "--random-weights", "1", "--target", "1000", "--steps", "1", "--size", "64",
                         "--out", out.path])
            Issue.record("class 1000 ran")
        } catch {
            #expect("\(error)" == "--target 1000 is out of range 0...999")
        }
    }

    /// A PNG whose header claims 16000 x 16000 pixels (256 million, over PIL's limit) is refused
    /// from its header, before its pixels are allocated.
    @Test func decompressionBombsAreRefusedFromTheHeader() throws {
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in typed {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            }
            func be(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
            return be(UInt32(body.count)) + typed + be(~crc)
        }
        let side: [UInt8] = [0, 0, 0x3E, 0x80]  // 16000: under the old 2^28 limit
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
            + chunk("IHDR", side + side + [8, 2, 0, 0, 0])
            + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])
            + chunk("IEND", [])
        let file = try tempDir().appendingPathComponent("bomb.png")
        try Data(png).write(to: file)
        defer { try? FileManager.default.removeItem(at: file.deletingLastPathComponent()) }
        #expect(ImageLimits.maxPixels < 16000 * 16000)
        do {
            _ = try RGBImage(contentsOf: file)
            Issue.record("a 16000x16000 PNG header was accepted")
        } catch {
            #expect("\(error)".contains("16000x16000") && "\(error)".contains("LOUPE_MAX_IMAGE_PIXELS"), "\(error)")
        }
    }

    /// The real binary with its output on a full disk: one line on stderr and exit status 74,
    /// not a trap.
    @Test func aFullDiskIsAnErrorNotATrap() throws {
        guard let binary = loupeBinary() else { return }
        guard FileManager.default.fileExists(atPath: "/dev/full") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { Issue.record("no /dev/full to test with") }
            return
        }
        let r = try BinaryRun(binary, ["devices"], stdout: "/dev/full").finish()
        #expect(r.exited, "terminated by signal \(r.status): \(r.message)")
        #expect(r.status == 74, "exit status \(r.status): \(r.message)")
        #expect(r.message.contains("cannot write the output") && r.message.split(separator: "\n").count == 1, "\(r.message)")
    }

    /// SIGINT and SIGTERM stop the real binary mid-run with exit status 130 and 143 and leave no
    /// output folder (before this, SIGINT killed it by signal; a signal in the save phase left a
    /// hidden staging folder behind).
    @Test(arguments: [(SIGINT, Int32(130)), (SIGTERM, Int32(143))])
    func signalsStopTheRunAndLeaveNothing(_ number: Int32, _ code: Int32) throws {
        guard let binary = loupeBinary() else { return }
        let parent = try tempDir()
        defer { try? FileManager.default.removeItem(at: parent) }
        let out = parent.appendingPathComponent("never")
        let run = try BinaryRun(binary, ["visualize", "--model", "resnet18", "--random-weights", "1", "--target", "1", "--size", "64",
                                         "--steps", "1000000", "--out", out.path])
        Thread.sleep(forTimeInterval: 3)
        kill(run.process.processIdentifier, number)
        let sent = Date()
        let (_, _, message) = run.finish()
        let process = run.process
        #expect(Date().timeIntervalSince(sent) < 2, "took \(Date().timeIntervalSince(sent)) s to stop")
        #expect(process.terminationReason == .exit && process.terminationStatus == code,
                "\(process.terminationReason == .exit ? "exit" : "signal") \(process.terminationStatus): \(message)")
        #expect(message.contains("interrupted"), "\(message)")
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    /// A run into --out removes staging folders of runs that were killed (SIGKILL leaves them),
    /// and keeps a live run's.
    @Test func staleStagingFoldersAreRemovedByTheNextRun() throws {
        let out = try tempDir()
        defer { try? FileManager.default.removeItem(at: out) }
        let dead = out.appendingPathComponent(".loupe-999999999-0D3A"), old = out.appendingPathComponent(".loupe-6F1C2B7E-77A0")
        let live = out.appendingPathComponent(".loupe-\(getpid())-live")
        for folder in [dead, old, live] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try Data([1]).write(to: folder.appendingPathComponent("grid.png"))
        }
        _ = try run(["saliency", "--image", chelsea, "--model", "resnet18", "--random-weights", "1", "--method", "gradient",
                     "--out", out.path])
        #expect(!FileManager.default.fileExists(atPath: dead.path) && !FileManager.default.fileExists(atPath: old.path))
        #expect(FileManager.default.fileExists(atPath: live.path))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("chelsea/grid.png").path))
    }
}

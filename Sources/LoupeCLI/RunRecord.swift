import Backend
import Foundation
import ImageIO
import Models
import WeightFiles

/// The build's commit beside Loupe's version (Models/Version.swift).
extension LoupeVersion {
    /// The git commit of the build (12 hex digits), "unknown" outside a checkout.
    public static let commit = BuildInfo.commit
    /// "0.12.0 (commit 0123456789ab)".
    public static var description: String { "\(number) (commit \(commit))" }
}

/// What a run records about itself in its JSON files and report: Loupe's version, the command
/// line, the model file and its SHA-256, the preprocessing and the device.
struct RunRecord {
    let arguments: [String]
    let model: String
    let modelFile: String?
    let modelSHA256: String?
    let architecture: String
    let preprocessing: [String: Any]
    let device: String
    let started: Date

    init(modelOptions: ModelOptions, model: Model, preprocessing: Preprocessing?, backend: any Backend) throws {
        arguments = ["loupe"] + (Console.arguments ?? Array(CommandLine.arguments.dropFirst()))
        self.model = modelOptions.model
        architecture = model.architecture.name
        if modelOptions.randomWeights != nil, !ModelLocator.isONNX(modelOptions.model) {
            modelFile = nil
        } else {
            modelFile = ModelLocator.isONNX(modelOptions.model) ? URL(fileURLWithPath: modelOptions.model).standardizedFileURL.path
                : try ModelLocator.resolve(model: modelOptions.model, arch: modelOptions.arch).url.standardizedFileURL.path
        }
        modelSHA256 = try modelFile.map { try SHA256.hex(fileAt: URL(fileURLWithPath: $0)) }
        var p: [String: Any] = ["mean": model.architecture.normalization.mean, "std": model.architecture.normalization.std]
        if let preprocessing {
            p["resize_shorter_side"] = preprocessing.resizeShorter.map { $0 as Any } ?? NSNull()
            p["center_crop"] = preprocessing.resizeShorter == nil ? NSNull() : preprocessing.crop as Any
            p["no_resize"] = preprocessing.resizeShorter == nil
            p["interpolation"] = preprocessing.interpolation.rawValue
            p["preset"] = modelOptions.preset
        }
        self.preprocessing = p
        device = backend.name
        started = Date()
    }

    /// The command line as a shell would take it back.
    var commandLine: String { arguments.map(shellQuoted).joined(separator: " ") }

    /// The "run" object of every JSON file.
    var json: [String: Any] {
        ["loupe_version": LoupeVersion.number, "loupe_commit": LoupeVersion.commit, "command_line": arguments, "model": model, "architecture": architecture,
         "model_file": modelFile.map { $0 as Any } ?? NSNull(), "model_sha256": modelSHA256.map { $0 as Any } ?? NSNull(),
         "preprocessing": preprocessing, "device": device, "started": ISO8601DateFormatter().string(from: started)]
    }

    /// Name-value lines for a report.
    var facts: [(String, String)] {
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let file = modelFile.map { $0.hasPrefix(home + "/") ? "~" + $0.dropFirst(home.count) : $0 }
        var lines = [("command", commandLine), ("Loupe", LoupeVersion.description), ("model", "\(architecture) (\(file ?? "seeded random weights"))")]
        if let modelSHA256 { lines.append(("model SHA-256", modelSHA256)) }
        let mean = (preprocessing["mean"] as? [Float] ?? []).map { String(format: "%.3f", $0) }.joined(separator: ", ")
        let std = (preprocessing["std"] as? [Float] ?? []).map { String(format: "%.3f", $0) }.joined(separator: ", ")
        var prep = "mean \(mean), std \(std)"
        if let resize = preprocessing["resize_shorter_side"] as? Int { prep = "resize \(resize) (\(preprocessing["interpolation"] as? String ?? "bilinear")), centre crop \(preprocessing["center_crop"] as? Int ?? 0), " + prep }
        else if preprocessing["no_resize"] as? Bool == true { prep = "own size, " + prep }
        lines.append(("preprocessing", prep))
        lines.append(("device", device))
        lines.append(("started", ISO8601DateFormatter().string(from: started)))
        return lines
    }
}

/// `text` quoted for a POSIX shell when it needs it.
func shellQuoted(_ text: String) -> String {
    let plain = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./,:=+@%")
    if !text.isEmpty, text.unicodeScalars.allSatisfy(plain.contains) { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

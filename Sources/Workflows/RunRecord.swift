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
public struct RunRecord {
    /// The command line, "loupe" first.
    public let arguments: [String]
    /// The model as the user named it (a file or an architecture).
    public let model: String
    /// The weight or ONNX file read, absolute; nil for seeded random weights.
    public let modelFile: String?
    /// The SHA-256 of `modelFile`.
    public let modelSHA256: String?
    /// The architecture's name.
    public let architecture: String
    /// Normalization and resizing, as the JSON files record them.
    public let preprocessing: [String: Any]
    /// The backend's name.
    public let device: String
    /// When the run started.
    public let started: Date

    /// The record of a run of `arguments` on `model` (named `modelName`, read from `modelFile`)
    /// with `preprocessing` (`preset` its name) on `device`; hashes the model file.
    public init(arguments: [String], modelName: String, modelFile: String?, model: Model, preprocessing: Preprocessing?, preset: String?,
                device: String) throws {
        self.arguments = arguments
        self.model = modelName
        architecture = model.architecture.name
        self.modelFile = modelFile
        modelSHA256 = try modelFile.map { try SHA256.hex(fileAt: URL(fileURLWithPath: $0)) }
        var p: [String: Any] = ["mean": model.architecture.normalization.mean, "std": model.architecture.normalization.std]
        if let preprocessing {
            p["resize_shorter_side"] = preprocessing.resizeShorter.map { $0 as Any } ?? NSNull()
            p["center_crop"] = preprocessing.resizeShorter == nil ? NSNull() : preprocessing.crop as Any
            p["no_resize"] = preprocessing.resizeShorter == nil
            p["interpolation"] = preprocessing.interpolation.rawValue
            p["preset"] = preset.map { $0 as Any } ?? NSNull()
        }
        self.preprocessing = p
        self.device = device
        started = Date()
    }

    /// The command line as a shell would take it back.
    public var commandLine: String { arguments.map(shellQuoted).joined(separator: " ") }

    /// The "run" object of every JSON file.
    public var json: [String: Any] {
        ["loupe_version": LoupeVersion.number, "loupe_commit": LoupeVersion.commit, "command_line": arguments, "model": model, "architecture": architecture,
         "model_file": modelFile.map { $0 as Any } ?? NSNull(), "model_sha256": modelSHA256.map { $0 as Any } ?? NSNull(),
         "preprocessing": preprocessing, "device": device, "started": ISO8601DateFormatter().string(from: started)]
    }

    /// Name-value lines for a report.
    public var facts: [(String, String)] {
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
public func shellQuoted(_ text: String) -> String {
    let plain = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./,:=+@%")
    if !text.isEmpty, text.unicodeScalars.allSatisfy(plain.contains) { return text }
    return "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

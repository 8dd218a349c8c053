import Foundation

/// `--out`: created if needed and checked before any work, so a run that cannot save fails
/// first. Results are written into a hidden staging folder inside it and renamed into place
/// at the end; an error on the way leaves nothing partial behind.
struct OutputFolder {
    let url: URL
    let staging: URL

    init(_ path: String) throws {
        url = URL(fileURLWithPath: path)
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw UserError("--out \(url.path): cannot create the folder (\(error.localizedDescription))")
        }
        guard FileManager.default.isWritableFile(atPath: url.path) else { throw UserError("--out \(url.path): not writable") }
        staging = url.appendingPathComponent(".loupe-\(UUID().uuidString)")
    }

    /// Runs `body` with the staging folder, then moves each of `entries` (names inside it) into
    /// --out, replacing what was there. The staging folder is removed whatever happens.
    func publish(_ entries: [String], _ body: (URL) throws -> Void) throws {
        try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: staging) }
        try body(staging)
        for name in entries {
            let destination = url.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: destination.path) { try FileManager.default.removeItem(at: destination) }
            try FileManager.default.moveItem(at: staging.appendingPathComponent(name), to: destination)
        }
    }
}

/// A file name from a layer or objective name: characters other than letters, digits, `.`, `-`
/// and `_` become `_` (ONNX layer names contain slashes), without leading dots or underscores.
func fileStem(_ name: String) -> String {
    let safe = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
    let trimmed = safe.drop { $0 == "_" || $0 == "." }
    return trimmed.isEmpty ? "layer" : String(trimmed)
}

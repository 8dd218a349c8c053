import Foundation

/// `--out`: checked before any work (an existing folder must be writable; otherwise the nearest
/// existing folder above it, where it will be made), so a run that cannot save fails first, but
/// made only when the results are ready, so a run that fails leaves no folder behind. Results
/// are written into a hidden staging folder inside it and renamed into place at the end; an
/// error on the way leaves nothing partial behind.
struct OutputFolder {
    let url: URL
    let staging: URL

    init(_ path: String) throws {
        guard !path.trimmingCharacters(in: .whitespaces).isEmpty else { throw UserError("--out names no folder") }
        url = URL(fileURLWithPath: path).standardizedFileURL
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw UserError("--out \(url.path): a file, not a folder") }
            guard FileManager.default.isWritableFile(atPath: url.path) else { throw UserError("--out \(url.path): not writable") }
        } else {
            var ancestor = url.deletingLastPathComponent()
            while !FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isDirectory), ancestor.path != "/" {
                ancestor = ancestor.deletingLastPathComponent()
            }
            guard isDirectory.boolValue else { throw UserError("--out \(url.path): cannot create the folder (\(ancestor.path) is a file)") }
            guard FileManager.default.isWritableFile(atPath: ancestor.path) else {
                throw UserError("--out \(url.path): cannot create the folder (\(ancestor.path) is not writable)")
            }
        }
        staging = url.appendingPathComponent(".loupe-\(UUID().uuidString)")
    }

    /// Runs `body` with the staging folder, then moves each of `entries` (names inside it) into
    /// --out, replacing what was there. The staging folder is removed whatever happens.
    func publish(_ entries: [String], _ body: (URL) throws -> Void) throws {
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
            throw UserError("--out \(url.path): cannot create the folder (\(error.localizedDescription))")
        }
        defer { try? FileManager.default.removeItem(at: staging) }
        try body(staging)
        for name in entries {
            let destination = url.appendingPathComponent(name)
            do {
                if FileManager.default.fileExists(atPath: destination.path) { try FileManager.default.removeItem(at: destination) }
                try FileManager.default.moveItem(at: staging.appendingPathComponent(name), to: destination)
            } catch {
                throw UserError("--out: cannot put \(name) in place at \(destination.path) (\(error.localizedDescription))")
            }
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

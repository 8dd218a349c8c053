import Foundation

/// `--out`: checked before any work (an existing folder must be writable; otherwise the nearest
/// existing folder above it, where it will be made), so a run that cannot save fails first, but
/// made only when the results are ready, so a run that fails leaves no folder behind. Results
/// are written into a hidden staging folder inside it and renamed into place at the end; an
/// error on the way leaves nothing partial behind, and SIGINT/SIGTERM remove the staging folder
/// (or wait for the renames to finish: `Interrupts`).
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
        staging = url.appendingPathComponent("\(OutputFolder.stagingPrefix)\(getpid())-\(UUID().uuidString)")
    }

    /// Staging folders are named `.loupe-<pid>-<uuid>`.
    static let stagingPrefix = ".loupe-"

    /// Removes staging folders in --out left by runs that were killed (their process is gone, or
    /// they predate the pid in the name); a live run's folder is left alone.
    func removeStaleStaging() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { return }
        for name in names where name.hasPrefix(OutputFolder.stagingPrefix) {
            let rest = name.dropFirst(OutputFolder.stagingPrefix.count)
            if let pid = rest.split(separator: "-").first.flatMap({ Int32($0) }), pid > 0, kill(pid, 0) == 0 || errno == EPERM { continue }
            try? FileManager.default.removeItem(at: url.appendingPathComponent(name))
        }
    }

    /// Runs `body` with the staging folder, then moves each of `entries` (names inside it) into
    /// --out, replacing what was there. The staging folder is removed whatever happens.
    func publish(_ entries: [String], _ body: (URL) throws -> Void) throws {
        Interrupts.register(staging)
        defer {
            try? FileManager.default.removeItem(at: staging)
            Interrupts.unregister(staging)
        }
        do { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) } catch {
            throw UserError("--out \(url.path): cannot create the folder (\(error.localizedDescription))")
        }
        removeStaleStaging()
        try body(staging)
        try Interrupts.whileRenaming {
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
}

/// A file name from a layer or objective name: characters other than letters, digits, `.`, `-`
/// and `_` become `_` (ONNX layer names contain slashes), without leading dots or underscores.
func fileStem(_ name: String) -> String {
    let safe = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
    let trimmed = safe.drop { $0 == "_" || $0 == "." }
    return trimmed.isEmpty ? "layer" : String(trimmed)
}

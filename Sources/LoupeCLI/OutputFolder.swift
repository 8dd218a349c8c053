import Figures
import Foundation

/// `--out`: checked before any work (an existing folder must be writable; otherwise the nearest
/// existing folder above it, where it will be made), so a run that cannot save fails first, but
/// made only when the results are ready, so a run that fails leaves no folder behind. Results
/// are written into a hidden staging folder and renamed into place at the end; an error on the
/// way leaves nothing partial behind, and SIGINT/SIGTERM remove the staging folder (or wait for
/// the renames to finish: `Interrupts`).
///
/// One rule for every command: a run never mixes its files with another's. A folder that holds
/// files is refused with one line; with `--force`, a folder that an earlier Loupe run wrote (its
/// index.html says so) is replaced whole: the new run is built in a hidden folder beside it and
/// the two are swapped by two renames, so the folder holds the old run or the new one, never a
/// mixture. A folder of other files is never replaced.
struct OutputFolder {
    let url: URL
    let staging: URL
    /// --out holds an earlier run and --force was given: the new folder replaces it whole.
    let replacing: Bool
    /// --out as the user wrote it (what the command prints).
    let given: String

    /// `name` inside --out, as the user would write it ("out/sal/index.html"); --out itself for nil.
    func shown(_ name: String? = nil) -> String {
        guard let name else { return given }
        return given.hasSuffix("/") ? given + name : given + "/" + name
    }

    init(_ path: String, force: Bool = false) throws {
        guard !path.trimmingCharacters(in: .whitespaces).isEmpty else { throw UserError("--out names no folder") }
        url = URL(fileURLWithPath: path).standardizedFileURL
        given = path
        var isDirectory: ObjCBool = false
        var replacing = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw UserError("--out \(path): a file, not a folder") }
            guard FileManager.default.isWritableFile(atPath: url.path) else { throw UserError("--out \(path): not writable") }
            let entries = ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
            if !entries.isEmpty {
                let listed = entries.prefix(4).joined(separator: ", ") + (entries.count > 4 ? ", ..." : "")
                guard force else {
                    throw UserError("--out \(path) holds an earlier run's files (\(listed)); give --force to replace the folder whole, or a new --out")
                }
                guard OutputFolder.isLoupeOutput(url) else {
                    throw UserError("--out \(path) holds files Loupe did not write (\(listed)); --force replaces only the folder of an earlier Loupe run")
                }
                guard FileManager.default.isWritableFile(atPath: url.deletingLastPathComponent().path) else {
                    throw UserError("--out \(path): --force needs to write in \(url.deletingLastPathComponent().path) to swap the folders")
                }
                replacing = true
            }
        } else {
            var ancestor = url.deletingLastPathComponent()
            while !FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isDirectory), ancestor.path != "/" {
                ancestor = ancestor.deletingLastPathComponent()
            }
            guard isDirectory.boolValue else { throw UserError("--out \(path): cannot create the folder (\(ancestor.path) is a file)") }
            guard FileManager.default.isWritableFile(atPath: ancestor.path) else {
                throw UserError("--out \(path): cannot create the folder (\(ancestor.path) is not writable)")
            }
        }
        self.replacing = replacing
        let name = "\(getpid())-\(UUID().uuidString)"
        staging = replacing ? url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent)\(OutputFolder.stagingPrefix)\(name)")
                            : url.appendingPathComponent("\(OutputFolder.stagingPrefix)\(name)")
    }

    /// Staging folders are named `.loupe-<pid>-<uuid>` inside --out, or `.<out>.loupe-<pid>-<uuid>`
    /// beside it when a run replaces the folder.
    static let stagingPrefix = ".loupe-"

    /// Whether `folder` holds an earlier Loupe run: its index.html names Loupe as its generator.
    static func isLoupeOutput(_ folder: URL) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: folder.appendingPathComponent("index.html").path) else { return false }
        defer { try? handle.close() }
        let head = String(decoding: (try? handle.read(upToCount: 2048)) ?? Data(), as: UTF8.self)
        return head.contains(HTMLReport.generatorMeta)
    }

    /// Removes staging folders left by runs that were killed (their process is gone, or they
    /// predate the pid in the name), inside --out and beside it; a live run's folder is left alone.
    func removeStaleStaging() {
        let parent = url.deletingLastPathComponent()
        for (folder, prefix) in [(url, OutputFolder.stagingPrefix), (parent, "." + url.lastPathComponent + OutputFolder.stagingPrefix)] {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { continue }
            for name in names where name.hasPrefix(prefix) {
                let rest = name.dropFirst(prefix.count)
                if let pid = rest.split(separator: "-").first.flatMap({ Int32($0) }), pid > 0, kill(pid, 0) == 0 || errno == EPERM { continue }
                try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            }
        }
    }

    /// Runs `body` with the staging folder, then puts `entries` (names inside it) in place: moved
    /// into a new or empty --out one by one, or, when replacing, the staging folder swapped with
    /// --out whole. The staging folder is removed whatever happens.
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
        if replacing {
            // Everything else in staging is this run's too, but only `entries` are promised.
            let old = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent)\(OutputFolder.stagingPrefix)\(getpid())-old-\(UUID().uuidString)")
            try Interrupts.whileRenaming {
                guard rename(url.path, old.path) == 0 else {
                    throw UserError("--out: cannot move the earlier run aside (\(String(cString: strerror(errno))))")
                }
                guard rename(staging.path, url.path) == 0 else {
                    let reason = String(cString: strerror(errno))
                    _ = rename(old.path, url.path)
                    throw UserError("--out: cannot put the new run in place at \(url.path) (\(reason)); the earlier run is back")
                }
            }
            try? FileManager.default.removeItem(at: old)
            return
        }
        try Interrupts.whileRenaming {
            for name in entries {
                let destination = url.appendingPathComponent(name)
                do {
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

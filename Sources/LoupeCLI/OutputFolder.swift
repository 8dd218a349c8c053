import BackendCore
import Figures
import Foundation

/// `--out`: checked before any work (an existing folder must be writable; otherwise the nearest
/// existing folder above it, where it will be made), so a run that cannot save fails first, but
/// made only when the results are ready, so a run that fails or is interrupted leaves no folder
/// behind. Results are written into a hidden staging folder beside --out and put in place at the
/// end by one rename: --out then holds the whole new run, or (on any error or signal) nothing
/// new. SIGINT and SIGTERM remove the staging folder, and any folder above --out the run made,
/// or wait for the rename to finish (`Interrupts`).
///
/// One rule for every command: a run never mixes its files with another's. A folder that holds
/// files is refused with one line; with `--force`, a folder of an earlier Loupe run is replaced
/// whole, and only when every file in it is one its run listed in its manifest
/// (`.loupe.manifest.json`, written with every run): a file someone added, or a folder that only
/// looks like Loupe's, is never deleted. Two runs into one --out never mix either: placing holds
/// a lock on the folder above --out, and the second finds --out taken and says so. A symlinked
/// --out is followed: the folder it points to is written, the link is left as it is.
struct OutputFolder {
    /// Where the results go (a symlinked --out resolved).
    let url: URL
    /// The hidden folder the run writes into, beside `url`.
    let staging: URL
    /// --out holds an earlier run and --force was given: the new folder replaces it whole.
    let replacing: Bool
    /// --out existed, empty, when the run began.
    let existedEmpty: Bool
    /// --out as the user wrote it (what the command prints).
    let given: String

    /// The list of a run's files, in its folder.
    static let manifestName = ".loupe.manifest.json"

    /// `name` inside --out, as the user would write it ("out/sal/index.html"); --out itself for nil.
    func shown(_ name: String? = nil) -> String {
        guard let name else { return given }
        return given.hasSuffix("/") ? given + name : given + "/" + name
    }

    init(_ path: String, force: Bool = false) throws {
        guard !path.trimmingCharacters(in: .whitespaces).isEmpty else { throw UserError("--out names no folder") }
        given = path
        var url = URL(fileURLWithPath: path).standardizedFileURL
        var link = stat()
        if lstat(url.path, &link) == 0, link.st_mode & S_IFMT == S_IFLNK {
            let target = url.resolvingSymlinksInPath()
            var info = stat()
            guard stat(target.path, &info) == 0 else {
                throw UserError("--out \(path) is a link to \(target.path), which does not exist: give the folder itself")
            }
            url = target
        }
        self.url = url
        var isDirectory: ObjCBool = false
        var (replacing, existedEmpty) = (false, false)
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw UserError("--out \(path): a file, not a folder") }
            guard FileManager.default.isWritableFile(atPath: url.path) else { throw UserError("--out \(path): not writable") }
            let entries = OutputFolder.visibleEntries(url)
            if entries.isEmpty {
                existedEmpty = true
            } else {
                let listed = entries.prefix(4).joined(separator: ", ") + (entries.count > 4 ? ", ..." : "")
                guard force else {
                    throw UserError("--out \(path) holds an earlier run's files (\(listed)); give --force to replace the folder whole, or a new --out")
                }
                try OutputFolder.requireReplaceable(url, shown: path)
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
        (self.replacing, self.existedEmpty) = (replacing, existedEmpty)
        staging = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent)\(OutputFolder.stagingPrefix)\(getpid())-\(UUID().uuidString)")
    }

    /// Names in `folder` that do not start with a dot.
    static func visibleEntries(_ folder: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    /// Every regular file and link under `folder`, as paths relative to it, and the folders.
    static func listing(_ folder: URL) -> (files: Set<String>, folders: Set<String>) {
        var files = Set<String>(), folders = Set<String>()
        let base = folder.standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(atPath: base) else { return (files, folders) }
        while let relative = walker.nextObject() as? String {
            var info = stat()
            guard lstat(base + "/" + relative, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFDIR { folders.insert(relative) } else { files.insert(relative) }
        }
        return (files, folders)
    }

    /// Throws unless `folder` holds an earlier Loupe run and nothing else: its manifest lists
    /// every file in it.
    static func requireReplaceable(_ folder: URL, shown: String) throws {
        let manifest = folder.appendingPathComponent(manifestName)
        let listed: [String]
        do {
            let data = try InputFile.read(manifest.path, what: "manifest", limit: 64 << 20)
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any], let files = object["files"] as? [String] else {
                throw UserError("it lists no files")
            }
            listed = files
        } catch {
            throw UserError("--out \(shown) holds files Loupe did not write (no \(manifestName) lists them: \(error)); --force replaces only the folder of an earlier Loupe run")
        }
        let present = listing(folder).files.subtracting([manifestName])
        let foreign = present.subtracting(listed).sorted()
        guard foreign.isEmpty else {
            let names = foreign.prefix(4).map(printable).joined(separator: ", ") + (foreign.count > 4 ? ", ..." : "")
            throw UserError("--out \(shown) holds files Loupe did not write (\(names): not in its \(manifestName)); --force replaces only the folder of an earlier Loupe run, nothing added to it")
        }
    }

    /// Staging folders are named `.<out>.loupe-<pid>-<uuid>` beside --out (and were named
    /// `.loupe-<pid>-<uuid>` inside it).
    static let stagingPrefix = ".loupe-"

    /// Removes staging folders left by runs that were killed (their process is gone, or they
    /// predate the pid in the name), inside --out and beside it; a live run's folder is left alone.
    func removeStaleStaging() {
        let parent = url.deletingLastPathComponent()
        for (folder, prefix) in [(url, OutputFolder.stagingPrefix), (parent, "." + url.lastPathComponent + OutputFolder.stagingPrefix)] {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { continue }
            for name in names where name.hasPrefix(prefix) {
                var info = stat()
                guard lstat(folder.appendingPathComponent(name).path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
                let rest = name.dropFirst(prefix.count)
                if let pid = rest.split(separator: "-").first.flatMap({ Int32($0) }), pid > 0, kill(pid, 0) == 0 || errno == EPERM { continue }
                try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
            }
        }
    }

    /// The folders above --out that do not exist yet, the deepest last.
    private func missingAncestors() -> [URL] {
        var missing: [URL] = []
        var folder = url.deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: folder.path), folder.path != "/" {
            missing.insert(folder, at: 0)
            folder = folder.deletingLastPathComponent()
        }
        return missing
    }

    /// Runs `body` with the staging folder, writes the manifest of what it wrote, then puts the
    /// run in place: renamed to --out when --out is new, moved into it when it was an empty
    /// folder, or swapped with it when replacing an earlier run. The staging folder, and folders
    /// above --out made for it, are removed whatever happens.
    func publish(_ body: (URL) throws -> Void) throws {
        let made = missingAncestors()
        for folder in made { Interrupts.registerMade(folder) }
        Interrupts.register(staging)
        var placed = false
        defer {
            try? FileManager.default.removeItem(at: staging)
            Interrupts.unregister(staging)
            if !placed { for folder in made.reversed() { rmdir(folder.path) } }
            for folder in made { Interrupts.unregisterMade(folder) }
        }
        // Made while a signal waits: a signal between making a folder above --out and making the
        // staging folder would otherwise leave that folder behind. What the run writes inside
        // staging makes no folder above it (no intermediate folders), so once a signal has taken
        // the staging folder away nothing brings it back.
        do {
            try Interrupts.whileRenaming { try FileManager.default.createDirectory(at: staging, withIntermediateDirectories: true) }
        } catch {
            throw UserError("--out \(given): cannot create the folder (\(systemReason(error)))")
        }
        removeStaleStaging()
        try body(staging)
        let files = OutputFolder.listing(staging).files.sorted()
        let manifest: [String: Any] = ["generator": "loupe", "files": files]
        try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
            .write(to: staging.appendingPathComponent(OutputFolder.manifestName))
        try OutputFolder.lockingParent(of: url) {
            try place()
        }
        placed = true
    }

    /// Puts the staging folder in place (the caller holds the lock on --out's parent).
    private func place() throws {
        let fm = FileManager.default
        if replacing {
            // Checked again under the lock: another run may have replaced or added to it.
            try OutputFolder.requireReplaceable(url, shown: given)
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
            try? fm.removeItem(at: old)
            return
        }
        let exists = fm.fileExists(atPath: url.path)
        if exists && !(existedEmpty && OutputFolder.visibleEntries(url).isEmpty) {
            throw UserError("--out \(given) was filled by another run while this one ran; this run's results were not kept (give another --out)")
        }
        try Interrupts.whileRenaming {
            if !exists {
                guard rename(staging.path, url.path) == 0 else {
                    throw UserError("--out: cannot put the results in place at \(url.path) (\(String(cString: strerror(errno))))")
                }
                return
            }
            // An empty folder the user made (it may hold hidden files): the entries move in, the
            // folder itself stays.
            for name in try fm.contentsOfDirectory(atPath: staging.path) {
                let destination = url.appendingPathComponent(name)
                guard rename(staging.appendingPathComponent(name).path, destination.path) == 0 else {
                    throw UserError("--out: cannot put \(name) in place at \(destination.path) (\(String(cString: strerror(errno))))")
                }
            }
        }
    }

    /// Runs `body` holding an exclusive lock (flock) on the folder that holds `url`: runs that
    /// place results there take turns, so each sees what the one before it left.
    static func lockingParent(of url: URL, _ body: () throws -> Void) throws {
        let fd = open(url.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw UserError("--out: cannot open \(url.deletingLastPathComponent().path) (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw UserError("--out: cannot lock \(url.deletingLastPathComponent().path) (\(String(cString: strerror(errno))))") }
        }
        defer { flock(fd, LOCK_UN) }
        try body()
    }
}

/// A file name from a layer or objective name: characters other than letters, digits, `.`, `-`
/// and `_` become `_` (ONNX layer names contain slashes), without leading dots or underscores.
func fileStem(_ name: String) -> String {
    let safe = String(name.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
    let trimmed = safe.drop { $0 == "_" || $0 == "." }
    return trimmed.isEmpty ? "layer" : String(trimmed)
}

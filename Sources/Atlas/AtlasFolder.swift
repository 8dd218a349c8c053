import BackendCore
import Foundation
import ImageIO

/// The site folder of an atlas: `atlas.json` (the plan), `units/<id>/` (one folder per finished
/// unit, renamed into place whole, so a unit is either there or not), and the pages the merge
/// writes (`index.html`, `layers/<layer>/...`). Shards on other machines share it (a network
/// or cluster volume); nothing in it is written in place.
public struct AtlasFolder: Sendable {
    /// The site folder.
    public let root: URL
    /// The atlas site at `root` (nothing is read or made until used).
    public init(_ root: URL) { self.root = root }

    /// `atlas.json`: the plan every shard checks its settings against.
    public var manifest: URL { root.appendingPathComponent("atlas.json") }
    /// `units/`: one folder per finished unit.
    public var unitsFolder: URL { root.appendingPathComponent("units") }
    /// The folder of unit `id` (`AtlasUnit.id`).
    public func unit(_ id: String) -> URL { unitsFolder.appendingPathComponent(id) }
    /// A unit is done when its folder holds `unit.json` (written last, inside the staging folder).
    public func isDone(_ id: String) -> Bool { FileManager.default.fileExists(atPath: unit(id).appendingPathComponent("unit.json").path) }

    /// The plan recorded in the folder.
    public func plan() throws -> AtlasPlan {
        guard let data = FileManager.default.contents(atPath: manifest.path) else {
            throw AtlasError("\(root.path) is not an atlas (no atlas.json)")
        }
        let plan: AtlasPlan
        do { plan = try JSONDecoder().decode(AtlasPlan.self, from: data) } catch {
            throw AtlasError("\(manifest.path) is not a Loupe atlas plan: \(error)")
        }
        guard plan.version == AtlasPlan.formatVersion else {
            throw AtlasError("\(manifest.path) is format \(plan.version); this Loupe reads format \(AtlasPlan.formatVersion)")
        }
        return plan
    }

    /// Creates the folder for `plan`, or checks that the atlas already there has the same
    /// settings (a rerun, or another shard of the same job).
    public func prepare(_ plan: AtlasPlan) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: manifest.path) {
            let existing = try self.plan()
            guard existing == plan else {
                throw AtlasError("\(root.path) holds an atlas made with other settings (\(difference(existing, plan))); give another --out or the same settings")
            }
        } else {
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: root.path, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else { throw AtlasError("\(root.path) is a file") }
                let entries = (try? fm.contentsOfDirectory(atPath: root.path)) ?? []
                guard entries.allSatisfy({ $0.hasPrefix(".") || $0 == "units" }) else {
                    throw AtlasError("\(root.path) holds other files and no atlas.json; give an empty or new folder")
                }
            }
            // Units left without their atlas.json are adopted only when made under this plan.
            try checkUnits(plan)
            try fm.createDirectory(at: root, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            // Shards that start together write the same bytes; rename makes either one whole.
            try writeAtomically(try encoder.encode(plan), to: manifest)
        }
        try fm.createDirectory(at: unitsFolder, withIntermediateDirectories: true)
        try checkUnits(plan)
    }

    /// Throws unless every finished unit in the folder was made under `plan` (its unit.json
    /// records the plan's fingerprint): units copied in from another atlas, or left from one
    /// whose atlas.json was deleted, are refused, never merged or adopted.
    public func checkUnits(_ plan: AtlasPlan) throws {
        let fingerprint = plan.fingerprint
        for id in finished().sorted() {
            let url = unit(id).appendingPathComponent("unit.json")
            let record = (try? InputFile.read(url.path, what: "unit record", limit: 64 << 20))
                .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] }
            guard let made = record?["plan"] as? String, made == fingerprint else {
                throw AtlasError("unit \(printable(id)) in \(unitsFolder.path) was made with other settings than \(manifest.lastPathComponent)'s (or by an older Loupe): remove it, or give the settings it was made with")
            }
        }
    }

    /// Writes a unit: `body` fills a staging folder, which is then renamed to `units/<id>`. If
    /// another process finished the same unit first, its result stays and this one is dropped.
    /// `staged` hears of the staging folder (true) and of its end (false), for a signal handler
    /// that removes it.
    public func publish(_ id: String, staged: (URL, Bool) -> Void = { _, _ in }, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let staging = unitsFolder.appendingPathComponent(".staging-\(id)-\(Self.owner)-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        staged(staging, true)
        defer { staged(staging, false) }
        do {
            try body(staging)
            if rename(staging.path, unit(id).path) != 0 {
                let reason = String(cString: strerror(errno))
                try? fm.removeItem(at: staging)
                if !isDone(id) { throw AtlasError("cannot move unit \(id) into \(unitsFolder.path): \(reason)") }
            }
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
    }

    /// This process as a staging folder's owner: host and process id.
    static let owner: String = "\(ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" })-\(getpid())"

    /// Removes staging folders that processes of this host left when they were killed (another
    /// host's may belong to a live shard, so they are left alone).
    public func removeStaleStaging() {
        let fm = FileManager.default
        let host = ProcessInfo.processInfo.hostName.filter { $0.isLetter || $0.isNumber || $0 == "-" }
        for name in (try? fm.contentsOfDirectory(atPath: unitsFolder.path)) ?? [] where name.hasPrefix(".staging-") {
            guard let r = name.range(of: "-\(host)-", options: .backwards),
                  let pid = name[r.upperBound...].split(separator: "-").first.flatMap({ Int32($0) }) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? fm.removeItem(at: unitsFolder.appendingPathComponent(name)) }
        }
    }

    /// Ids of the finished units.
    public func finished() -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: unitsFolder.path)) ?? []
        return Set(names.filter { !$0.hasPrefix(".") && isDone($0) })
    }
}

/// The first setting in which two plans differ, for the refusal message.
func difference(_ a: AtlasPlan, _ b: AtlasPlan) -> String {
    let pairs: [(String, String, String)] = [
        ("model", a.settings.model, b.settings.model), ("weights", a.settings.weights, b.settings.weights),
        ("layers", a.settings.layers.joined(separator: ","), b.settings.layers.joined(separator: ",")),
        ("channels", a.settings.channels.map { "\($0.lowerBound)..\($0.upperBound)" } ?? "all", b.settings.channels.map { "\($0.lowerBound)..\($0.upperBound)" } ?? "all"),
        ("images", "\(a.settings.images.count) images", "\(b.settings.images.count) images"),
        ("steps", "\(a.settings.steps)", "\(b.settings.steps)"), ("size", "\(a.settings.size)", "\(b.settings.size)"),
        ("seed", "\(a.settings.seed)", "\(b.settings.seed)"), ("top", "\(a.settings.top)", "\(b.settings.top)"),
        ("variants", "\(a.settings.variants)", "\(b.settings.variants)"),
        ("channel block", "\(a.settings.channelBlock)", "\(b.settings.channelBlock)"), ("image block", "\(a.settings.imageBlock)", "\(b.settings.imageBlock)"),
    ]
    if let (name, x, y) = pairs.first(where: { $0.1 != $0.2 }) { return "\(name): \(x) there, \(y) now" }
    if a.settings.images != b.settings.images { return "the image files differ" }
    return "learning rate, input size or layer shapes differ"
}

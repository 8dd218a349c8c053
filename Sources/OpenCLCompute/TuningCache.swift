import BackendCore
import Device
import Foundation

/// The kernel parameters `loupe tune` measured best on a device, kept on disk as JSON and used by
/// every backend made for that device afterwards. An entry is keyed by platform, device name,
/// driver version and a hash of the matrix-multiply kernels' source, so a new driver or a changed
/// kernel falls back to the defaults until tuned again.
///
/// File: `$LOUPE_TUNING_CACHE`, else `$XDG_CACHE_HOME/loupe/tuning.json`, else
/// `~/.cache/loupe/tuning.json`.
public struct TuningEntry: Codable, Equatable, Sendable {
    /// The register block of the register-blocked family, as [mr, vw, nv].
    public var packed: [Int]?
    /// The tile of the tiled family, as [tm, tn, tk, wptm, wptn].
    public var tiled: [Int]?
    /// What the winner measured: median device milliseconds over the tuning set, by candidate.
    public var measured: [String: Double]?

    /// An entry holding these winners and their measurements.
    public init(packed: PackedTiling? = nil, tiled: GemmTiling? = nil, measured: [String: Double]? = nil) {
        self.packed = packed.map { [$0.mr, $0.vw, $0.nv] }
        self.tiled = tiled.map { [$0.tm, $0.tn, $0.tk, $0.wptm, $0.wptn] }
        self.measured = measured
    }

    /// The register block, when the entry has a valid one.
    public var packedTiling: PackedTiling? {
        guard let v = packed, v.count == 3, v[0] >= 1, v[0] <= 16, [4, 8, 16].contains(v[1]), v[2] >= 1, v[2] <= 4 else { return nil }
        return PackedTiling(mr: v[0], vw: v[1], nv: v[2])
    }

    /// The tile, when the entry has a valid one.
    public var gemmTiling: GemmTiling? {
        guard let v = tiled, v.count == 5, v.allSatisfy({ $0 > 0 }), v[0] % v[3] == 0, v[1] % v[4] == 0,
              [4, 8, 16].contains(v[4]) else { return nil }
        return GemmTiling(tm: v[0], tn: v[1], tk: v[2], wptm: v[3], wptn: v[4])
    }
}

/// Reads and writes the tuning cache file: one `TuningEntry` per device key, written whole
/// (temporary file, then rename).
public enum TuningCache {
    /// Where the cache lives (see `TuningEntry`).
    public static var url: URL {
        let env = ProcessInfo.processInfo.environment
        if let path = env["LOUPE_TUNING_CACHE"], !path.isEmpty { return URL(fileURLWithPath: path) }
        let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("loupe").appendingPathComponent("tuning.json")
    }

    /// The entry key of `device`: platform, name, driver and the kernels' source hash.
    public static func key(_ device: ComputeDevice) -> String {
        // FNV-1a, 64 bits: stable across runs, unlike Hasher.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for file in ["gemm", "gemm_packed", "conv2d"] {
            for byte in (try? OpenCLBackend.kernelSource(file))?.utf8 ?? "".utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
            }
        }
        return "\(device.platform.name) | \(device.name) | \(device.driverVersion) | kernels \(String(hash, radix: 16))"
    }

    /// Every entry in the file at `url` (none when it is missing or unreadable: tuning is optional).
    public static func entries(at url: URL = TuningCache.url) -> [String: TuningEntry] {
        guard let data = try? Data(contentsOf: url) else { return [:] }
        return (try? JSONDecoder().decode([String: TuningEntry].self, from: data)) ?? [:]
    }

    /// The entry for `device`, if it was tuned with these kernels and this driver.
    public static func entry(for device: ComputeDevice, at url: URL = TuningCache.url) -> TuningEntry? {
        entries(at: url)[key(device)]
    }

    /// Stores `entry` for `device`, keeping the others; written whole (temp file, then rename).
    public static func save(_ entry: TuningEntry, for device: ComputeDevice, at url: URL = TuningCache.url) throws {
        var all = entries(at: url)
        all[key(device)] = entry
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try encoder.encode(all).write(to: url, options: .atomic)
        } catch {
            throw BackendError("tune", "cannot write the tuning cache \(url.path): \(systemReason(error))")
        }
    }
}

import Backend
import Foundation
import Graph

/// What a run may allocate, checked before it allocates: Swift traps when a host array cannot be
/// allocated, and a device may fail only once a kernel touches memory, so work sized by the user
/// (image size, batch, channels, samples) is estimated first and refused with the estimate and
/// the limit in the message.
public enum MemoryBudget {
    /// Bytes the host can still give: MemAvailable of /proc/meminfo (else the physical memory),
    /// or less when the process runs under an address-space limit (`ulimit -v`): half of that
    /// limit less what the process has already mapped, since an allocation past it fails (and a
    /// driver that asserts on a failed allocation aborts), and the allocator's arenas and the
    /// buffer pool's size classes take address space beyond the bytes in use (measured: a
    /// saliency batch estimated at 795 MB failed with 991 MB of room).
    public static var hostAvailable: UInt64 {
        var available = ProcessInfo.processInfo.physicalMemory
        if let kb = procField("/proc/meminfo", "MemAvailable:") { available = kb * 1024 }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            let mapped = (procField("/proc/self/status", "VmSize:") ?? 0) * 1024
            available = Swift.min(available, UInt64(limit.rlim_cur) > mapped ? (UInt64(limit.rlim_cur) - mapped) / 2 : 0)
        }
        return available
    }

    /// Whether the process runs under an address-space limit (`ulimit -v`): then even small
    /// passes are estimated, since the limit may be small.
    static var addressSpaceLimited: Bool {
        var limit = rlimit()
        return getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0 && limit.rlim_cur != rlim_t.max
    }

    /// The number in kB after `key` in a /proc file of `key: value kB` lines.
    static func procField(_ path: String, _ key: String) -> UInt64? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key) }) else { return nil }
        return line.split(separator: " ").compactMap({ UInt64($0) }).first
    }

    /// The largest batch up to `limit` whose pass of `model` on images of `height` x `width`
    /// fits the device's and the host's memory (`requirePass`'s test); throws when one image
    /// does not fit.
    public static func fittingBatch(_ model: Model, upTo limit: Int, height: Int, width: Int, what: String) throws -> Int {
        try requirePass(model, batch: 1, height: height, width: width, what: what)
        var batch = Swift.max(limit, 1)
        let room = Swift.min(deviceMemory(model.backend), hostAvailable)
        // One probe: the estimate is proportional to the batch (0 when too small to probe).
        let full = try passBytes(model, batch: batch, height: height, width: width)
        while batch > 1, Double(full) * Double(batch) / Double(Swift.max(limit, 1)) > Double(room) { batch = (batch + 1) / 2 }
        return batch
    }

    /// The device memory of `backend` (the host's for the CPU reference).
    public static func deviceMemory(_ backend: any Backend) -> UInt64 {
        (backend as? OpenCLBackend)?.context.device.globalMemory ?? hostAvailable
    }

    /// Inputs up to this many pixels (summed over the batch) are never probed: a 16-image batch
    /// at 224x224 runs on any machine this project supports.
    static let unprobedPixels = 16 * 224 * 224

    /// Estimated bytes of one forward and backward pass of `model` on [batch, 3, height, width]:
    /// the activations a pass keeps for its backward plus a quarter for the gradients alive at
    /// once (the backward frees each one when it is used), from a probe pass at
    /// 64x64 (or at the asked size when the model takes no other) scaled by the area, since a
    /// CNN's activations grow with the image's area. 0 when the input is small enough not to ask.
    public static func passBytes(_ model: Model, batch: Int, height: Int, width: Int) throws -> UInt64 {
        let pixels = batch.multipliedReportingOverflow(by: height).partialValue.multipliedReportingOverflow(by: width)
        guard batch > 0, height > 0, width > 0 else {
            throw ModelError("an input of \(batch) x 3 x \(height) x \(width) is empty: the batch and the image's sides must be at least 1")
        }
        guard !pixels.overflow else { throw ModelError("an input of \(batch) x 3 x \(height) x \(width) is too large to describe") }
        guard pixels.partialValue > unprobedPixels || addressSpaceLimited else { return 0 }
        func probe(_ h: Int, _ w: Int) throws -> Double {
            let g = Graph(backend: model.backend)
            _ = try model.forward(g, g.input(try model.backend.tensor([Float](repeating: 0, count: 3 * h * w), [1, 3, h, w])))
            return Double(g.storedFloats) / Double(h * w)
        }
        let perPixel: Double
        do { perPixel = try probe(64, 64) } catch {
            // A model that takes only its own size (an ONNX export with fixed shapes): probe one
            // image at the asked size when that is small, else say why there is no estimate.
            guard height * width <= unprobedPixels else {
                throw ModelError("cannot estimate the memory of \(batch) x 3 x \(height) x \(width) through \(model.architecture.name): it does not run at 64x64 (\(error))")
            }
            perPixel = try probe(height, width)
        }
        return UInt64(min(Double(UInt64.max / 2), perPixel * Double(pixels.partialValue) * 1.25 * 4))
    }

    /// Throws unless `bytes` fit both the device's memory and the host's available memory (the
    /// CPU reference and the host copies of results use the host).
    public static func require(_ bytes: UInt64, for what: String, on backend: any Backend) throws {
        let device = deviceMemory(backend), host = hostAvailable
        if bytes > device {
            throw ModelError("\(what) needs about \(formatBytes(bytes)) of device memory; \(backend.name) has \(formatBytes(device)): use a smaller size or batch")
        }
        if bytes > host {
            throw ModelError("\(what) needs about \(formatBytes(bytes)) of memory; the host has \(formatBytes(host)) available: use a smaller size or batch")
        }
    }

    /// Checks one forward and backward pass of `model` on [batch, 3, height, width].
    public static func requirePass(_ model: Model, batch: Int, height: Int, width: Int, what: String) throws {
        try require(try passBytes(model, batch: batch, height: height, width: width),
                    for: "\(what) (\(batch) x 3 x \(height) x \(width) through \(model.architecture.name))", on: model.backend)
    }

    /// Bytes as "1.5 GiB" (one decimal) from 1 GiB, else as whole MiB.
    public static func formatBytes(_ bytes: UInt64) -> String {
        let gib = Double(bytes) / Double(1 << 30)
        return gib >= 1 ? String(format: "%.1f GiB", gib) : String(format: "%.0f MiB", Double(bytes) / Double(1 << 20))
    }
}

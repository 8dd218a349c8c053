import COpenCL
import Foundation
import Synchronization

/// Device memory released by buffers, kept by byte size for the next buffer of that size: a
/// network pass allocates the same sizes pass after pass, and creating and releasing memory
/// objects costs driver time per op. Reuse is safe because the context has one in-order queue:
/// a command enqueued for the new owner runs after every command that used the old one.
/// Sizes are rounded up to size classes (at most 1/8 larger), so passes whose shapes change a
/// little from step to step (feature visualization draws a new scale every step) still reuse
/// memory instead of mapping and zeroing fresh pages for every tensor.
/// Holds at most `capacity` bytes (an eighth of the device's memory, at most 2 GiB);
/// `LOUPE_BUFFER_POOL=0` turns it off (every buffer is created and released).
final class BufferPool: @unchecked Sendable {
    /// A memory object handle; only the pool's lock guards who holds it.
    private struct Mem: @unchecked Sendable { let raw: cl_mem }
    private let free = Mutex<(byBytes: [Int: [Mem]], bytes: Int)>(([:], 0))
    let capacity: Int

    init(device: ComputeDevice) {
        let off = ProcessInfo.processInfo.environment["LOUPE_BUFFER_POOL"] == "0"
        capacity = off ? 0 : Int(min(device.globalMemory / 8, 2 << 30))
    }

    /// The allocation size for a request of `bytes`: multiples of 256 bytes up to 4 KiB, then
    /// eight classes per power of two (2^k, 9/8 2^k, ..., 15/8 2^k). Exact when the pool is off.
    func sizeClass(_ bytes: Int) -> Int {
        guard capacity > 0, bytes > 0 else { return bytes }
        if bytes <= 4096 { return (bytes + 255) / 256 * 256 }
        let step = (1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount)) / 8
        return (bytes + step - 1) / step * step
    }

    /// A released memory object of exactly `bytes` bytes, if one is kept.
    func take(_ bytes: Int) -> cl_mem? {
        free.withLock { state -> Mem? in
            guard var list = state.byBytes[bytes], let mem = list.popLast() else { return nil }
            state.byBytes[bytes] = list.isEmpty ? nil : list
            state.bytes -= bytes
            return mem
        }?.raw
    }

    /// Keeps `mem` for reuse, or releases it when the pool is full.
    func give(_ mem: cl_mem, bytes: Int) {
        let box = Mem(raw: mem)
        let kept = free.withLock { state -> Bool in
            guard state.bytes + bytes <= capacity else { return false }
            state.byBytes[bytes, default: []].append(box)
            state.bytes += bytes
            return true
        }
        if !kept { clReleaseMemObject(mem) }
    }

    /// Releases every kept memory object (before the context goes, or to make room).
    func drain() {
        let all = free.withLock { state -> [Mem] in
            defer { state = ([:], 0) }
            return state.byBytes.values.flatMap { $0 }
        }
        for mem in all { clReleaseMemObject(mem.raw) }
    }

    /// Bytes kept now (for tests).
    var keptBytes: Int { free.withLock { $0.bytes } }
}

import BackendCore
import Device
import Foundation
import Synchronization

/// Device memory of the OpenCL backend.
public final class OpenCLStorage: TensorStorage {
    /// The tensor's values, row-major, on the device.
    public let buffer: Buffer<Float>
    /// Layouts of this (immutable) tensor made for kernels that want another one, such as a
    /// weight packed into panels: made once, released with the tensor.
    private let layouts = Mutex<[String: Buffer<Float>]>([:])
    init(_ buffer: Buffer<Float>) { self.buffer = buffer }

    /// The layout `key` of this tensor, made by `make` the first time it is asked for.
    func derived(_ key: String, _ make: () throws -> Buffer<Float>) throws -> Buffer<Float> {
        try layouts.withLock { layouts in
            if let b = layouts[key] { return b }
            let b = try make()
            layouts[key] = b
            return b
        }
    }
}

/// Which design of matrix-multiply kernels a backend runs: both compute the same ops behind the
/// same entry points and pass the same device-vs-CPU tests.
public enum KernelFamily: String, Sendable, CaseIterable {
    /// Local-memory tiles with many work-items per group (gemm.cl): what GPUs want.
    case tiled
    /// Barrier-free register blocks over packed panels, one work-item per group
    /// (gemm_packed.cl): what CPU devices (PoCL) want, where the tiled design spills and serializes.
    case registerBlocked = "register-blocked"

    /// The family for a device kind; `LOUPE_KERNEL_FAMILY=tiled|register-blocked` overrides it.
    public static func preferred(for kind: ComputeDevice.Kind) -> KernelFamily {
        if let text = ProcessInfo.processInfo.environment["LOUPE_KERNEL_FAMILY"], let f = KernelFamily(rawValue: text) { return f }
        return kind == .cpu ? .registerBlocked : .tiled
    }
}

/// The register block of gemm_packed.cl: each work-item computes mr rows x nr = vw * nv columns
/// of C, in mr * nv vectors of vw floats.
public struct PackedTiling: Hashable, Sendable, CustomStringConvertible {
    /// Rows of C per work-item (mr), floats per vector (vw: 4, 8 or 16) and vectors per row (nv).
    public var mr, vw, nv: Int
    /// Columns of C per work-item: vw * nv.
    public var nr: Int { vw * nv }
    /// A block of mr x (vw * nv).
    public init(mr: Int, vw: Int, nv: Int) { self.mr = mr; self.vw = vw; self.nv = nv }
    /// 6 x 16: twelve 8-float accumulators, the classic AVX2 block (16 ymm registers).
    public static let `default` = PackedTiling(mr: 6, vw: 16, nv: 1)
    /// The candidates `loupe tune` times: AVX2-shaped (12 accumulator registers) and AVX-512-shaped
    /// (16 zmm) blocks, and narrower ones for small register files.
    public static let candidates: [PackedTiling] = [
        PackedTiling(mr: 6, vw: 16, nv: 1), PackedTiling(mr: 4, vw: 8, nv: 3), PackedTiling(mr: 8, vw: 8, nv: 1),
        PackedTiling(mr: 4, vw: 16, nv: 1), PackedTiling(mr: 8, vw: 16, nv: 2), PackedTiling(mr: 12, vw: 16, nv: 1),
    ]
    var defines: [String: Int] { ["MR": mr, "VW": vw, "NV": nv] }
    /// `LOUPE_PACKED_TILING=mr,vw,nv` overrides the default, for trying a block by hand.
    public static func fromEnvironment() -> PackedTiling? { environmentTiling }
    private static let environmentTiling: PackedTiling? = {
        guard let text = ProcessInfo.processInfo.environment["LOUPE_PACKED_TILING"] else { return nil }
        let v = text.split(separator: ",").compactMap { Int($0) }
        guard v.count == 3, v[0] > 0, [4, 8, 16].contains(v[1]), v[2] > 0 else { return nil }
        return PackedTiling(mr: v[0], vw: v[1], nv: v[2])
    }()
    /// "mr x nr", e.g. "6x16".
    public var description: String { "\(mr)x\(nr)" }
}

/// Register-blocking tile of the shared matrix multiply (gemm.cl): a work-group computes
/// tm x tn outputs with (tn / wptn) x (tm / wptm) work-items, staging tk-deep slices.
public struct GemmTiling: Hashable, Sendable, CustomStringConvertible {
    /// Rows and columns of C per work-group (tm, tn), reduction depth per staged slice (tk), and
    /// rows and columns of C per work-item (wptm, wptn).
    public var tm, tn, tk, wptm, wptn: Int
    /// A tile; tm must be a multiple of wptm and tn of wptn.
    public init(tm: Int, tn: Int, tk: Int, wptm: Int, wptn: Int) {
        self.tm = tm; self.tn = tn; self.tk = tk; self.wptm = wptm; self.wptn = wptn
    }
    /// Default for large convolutions.
    public static let large = GemmTiling(tm: 64, tn: 64, tk: 16, wptm: 8, wptn: 8)
    /// Default for large convolutions on GPUs: the same tile in 4x4 blocks, 256 work-items a
    /// group; what `loupe tune` chose on an H100 (4.56 ms over its shapes, 12.96 for 8x8).
    public static let gpu = GemmTiling(tm: 64, tn: 64, tk: 16, wptm: 4, wptn: 4)
    /// For few output rows (M <= 8: the 3 input channels of a network's first conv, backward).
    public static let fewRows = GemmTiling(tm: 8, tn: 128, tk: 16, wptm: 1, wptn: 8)
    /// For M <= 32.
    public static let mediumRows = GemmTiling(tm: 32, tn: 64, tk: 16, wptm: 4, wptn: 8)
    /// For a narrow N (batch of a linear layer).
    public static let narrow = GemmTiling(tm: 64, tn: 8, tk: 16, wptm: 4, wptn: 4)
    /// The candidates `loupe tune` times for the tiled family.
    public static let candidates: [GemmTiling] = [
        .large, GemmTiling(tm: 64, tn: 64, tk: 16, wptm: 4, wptn: 4), GemmTiling(tm: 128, tn: 64, tk: 16, wptm: 8, wptn: 4),
        GemmTiling(tm: 64, tn: 128, tk: 16, wptm: 8, wptn: 8), GemmTiling(tm: 32, tn: 64, tk: 32, wptm: 4, wptn: 4),
        // Larger blocks (fewer local-memory reads per FMA, fewer work-items): 0.73-0.76 ms on the
        // H200's tuning set against 0.56 ms for 64x64x16/4x4, kept so each device can choose.
        GemmTiling(tm: 128, tn: 128, tk: 16, wptm: 8, wptn: 8), GemmTiling(tm: 128, tn: 128, tk: 8, wptm: 8, wptn: 8),
        GemmTiling(tm: 64, tn: 128, tk: 16, wptm: 4, wptn: 8), GemmTiling(tm: 64, tn: 64, tk: 8, wptm: 4, wptn: 4),
    ]
    /// `LOUPE_CONV_TILING=tm,tn,tk,wptm,wptn` overrides the default, for tuning on a new device.
    /// Read once: `ProcessInfo.environment` copies the whole environment into a dictionary
    /// (40 us here, more where the environment is large), and `tiling(rows:)` asks on every
    /// convolution.
    public static func fromEnvironment() -> GemmTiling? { environmentTiling }
    private static let environmentTiling: GemmTiling? = {
        guard let text = ProcessInfo.processInfo.environment["LOUPE_CONV_TILING"] else { return nil }
        let v = text.split(separator: ",").compactMap { Int($0) }
        guard v.count == 5, v.allSatisfy({ $0 > 0 }), v[0] % v[3] == 0, v[1] % v[4] == 0 else { return nil }
        return GemmTiling(tm: v[0], tn: v[1], tk: v[2], wptm: v[3], wptn: v[4])
    }()
    var defines: [String: Int] { ["TM": tm, "TN": tn, "TK": tk, "WPTM": wptm, "WPTN": wptn] }
    /// The work-group size it launches with: [tn / wptn, tm / wptm, 1].
    public var local: [Int] { [tn / wptn, tm / wptm, 1] }
    /// "tm x tn x tk / wptm x wptn".
    public var description: String { "\(tm)x\(tn)x\(tk)/\(wptm)x\(wptn)" }
}

/// Runs every op on one OpenCL device with the kernels of `Kernels/` (embedded in the binary at
/// build time; `LOUPE_KERNEL_DIR` may point at a folder of .cl files to use instead while
/// developing). Ops enqueue on one in-order queue and return at once; `values` waits.
public final class OpenCLBackend: Backend {
    /// The device context every buffer and kernel of this backend lives in.
    public let context: Context
    public var name: String { context.device.name }
    /// Tiling of convolutions with many output rows (M > 32) in the tiled family;
    /// LOUPE_CONV_TILING overrides it.
    public let convTiling: GemmTiling
    /// The tile for a matrix multiply with `m` rows: a 64-row tile would compute mostly padding
    /// when m is small.
    func tiling(rows m: Int) -> GemmTiling {
        if GemmTiling.fromEnvironment() != nil { return convTiling }
        return m <= 8 ? .fewRows : m <= 32 ? .mediumRows : convTiling
    }
    /// The kernel design (chosen from the device kind unless given).
    public let family: KernelFamily
    /// The family's implementations of the ops whose design differs between the families.
    let kernels: any FamilyKernels
    /// The register block of the register-blocked family.
    public let packing: PackedTiling
    /// The most floats one op's scratch panels may take; larger batches are done in chunks.
    public let scratchFloats: Int
    /// The work-groups a tiled matrix multiply should launch at least (two per compute unit by
    /// default): products with fewer tiles split K into slices (gemm.cl's GEMM_SPLIT_K).
    public let splitKGroups: Int
    private let recorded = Mutex<[(String, [Int], Event)]?>(nil)
    /// Kernels by the arguments that made them, so a launch does not rebuild its program's
    /// sources or even its name (hashing the arguments costs far less than formatting them).
    private let launchers = Mutex<[LauncherKey: Kernel]>([:])
    /// `kernel`'s arguments: the same files, kernel, defines and flags give the same program.
    private struct LauncherKey: Hashable {
        let files: [String], name: String, defines: [String: Int], flags: [String]
    }
    /// Scratch buffers by role, grown as needed and reused by every op: the queue is in order, so
    /// an op enqueued later reuses a buffer only after earlier ops are done with it.
    private let scratch = Mutex<[String: Buffer<Float>]>([:])

    /// A backend on `context`'s device. Each parameter left nil comes from the environment
    /// (`LOUPE_CONV_TILING`, `LOUPE_KERNEL_FAMILY`, `LOUPE_PACKED_TILING`), else from what `loupe tune`
    /// cached for this device, else from defaults per device kind (the register-blocked family for CPUs,
    /// the tiled one otherwise). `scratchFloats` bounds the reused scratch buffers (im2col
    /// panels are made per chunk of images within it); `splitKGroups` is the work-group count
    /// below which the tiled family splits a product's reduction (default: twice the compute units).
    public init(context: Context, convTiling: GemmTiling? = nil, family: KernelFamily? = nil,
                packing: PackedTiling? = nil, scratchFloats: Int = 1 << 25, splitKGroups: Int? = nil) {
        self.context = context
        // Given parameters, else the environment's, else what `loupe tune` stored, else defaults.
        let tuned = (convTiling == nil || packing == nil) ? TuningCache.entry(for: context.device) : nil
        self.convTiling = convTiling ?? GemmTiling.fromEnvironment() ?? tuned?.gemmTiling
            ?? (context.device.kind == .gpu ? .gpu : .large)
        self.family = family ?? KernelFamily.preferred(for: context.device.kind)
        kernels = self.family == .tiled ? TiledFamily() : RegisterBlockedFamily()
        self.packing = packing ?? PackedTiling.fromEnvironment() ?? tuned?.packedTiling ?? .default
        self.scratchFloats = scratchFloats
        self.splitKGroups = splitKGroups ?? 2 * context.device.computeUnits
    }

    /// A backend on `device` with a context of its own.
    public convenience init(device: ComputeDevice, convTiling: GemmTiling? = nil, family: KernelFamily? = nil,
                            packing: PackedTiling? = nil) throws {
        self.init(context: try Context(device: device), convTiling: convTiling, family: family, packing: packing)
    }

    /// Runs `body` holding the scratch pool; `body` gets buffers of at least the asked size by
    /// role. Everything `body` enqueues on the scratch is ordered before any later op's use.
    func withScratch<T>(_ op: String, _ body: ((String, Int) throws -> Buffer<Float>) throws -> T) throws -> T {
        try scratch.withLock { pool in
            try body { role, count in
                if let b = pool[role], b.count >= count { return b }
                pool[role] = nil
                do {
                    let b = try Buffer<Float>(context: context, count: count)
                    pool[role] = b
                    return b
                } catch {
                    throw BackendError(op, "cannot allocate \(count) floats of scratch on \(name): \(error)")
                }
            }
        }
    }

    /// LOUPE_KERNEL_DIR, read once.
    private static let kernelDirectory: String? = ProcessInfo.processInfo.environment["LOUPE_KERNEL_DIR"].flatMap { $0.isEmpty ? nil : $0 }

    /// The source text of `Kernels/<file>.cl`.
    public static func kernelSource(_ file: String) throws -> String {
        if let dir = kernelDirectory {
            let url = URL(fileURLWithPath: dir).appendingPathComponent(file + ".cl")
            do { return try String(contentsOf: url, encoding: .utf8) } catch {
                throw BackendError("kernels", "LOUPE_KERNEL_DIR is set but \(url.path) cannot be read: \(systemReason(error))")
            }
        }
        guard let source = EmbeddedKernels.sources[file] else {
            throw BackendError("kernels", "no kernel file \(file).cl was embedded")
        }
        return source
    }

    /// The kernel `name` from the program made of `files` with `defines` prepended; built once
    /// per context and define set.
    func kernel(_ files: [String], _ name: String, defines: [String: Int] = [:], flags: [String] = []) throws -> Launcher {
        // Launches are frequent (hundreds per pass): a kernel seen before skips the sources.
        let key = LauncherKey(files: files, name: name, defines: defines, flags: flags)
        if let cached = launchers.withLock({ $0[key] }) {
            return Launcher(kernel: cached, backend: self, name: name, flags: flags)
        }
        let header = (defines.sorted { $0.key < $1.key }.map { "#define \($0.key) \($0.value)" }
            + flags.sorted().map { "#define \($0) 1" }).joined(separator: "; ")
        let programName = files.joined(separator: "+") + " {" + header + "}"
        let sources = [header.replacingOccurrences(of: "; ", with: "\n")] + (try files.map { try OpenCLBackend.kernelSource($0) })
        let made = try context.program(name: programName, sources: sources).kernel(name)
        launchers.withLock { $0[key] = made }
        return Launcher(kernel: made, backend: self, name: name, flags: flags)
    }

    /// Launches `call`'s kernel from the program made of `files` (default: the kernel's own
    /// file) with `defines` and `flags`, over `global` work-items in groups of `local`.
    func launch(_ call: KernelCall, files: [String]? = nil, defines: [String: Int] = [:], flags: [String] = [],
                global: [Int], local: [Int]? = nil) throws {
        try kernel(files ?? [call.file], call.name, defines: defines, flags: flags).launch(global: global, local: local, call.arguments)
    }

    public func tensor(_ values: [Float], _ shape: Shape) throws -> Tensor {
        guard values.count == shape.count else {
            throw BackendError("tensor", "\(values.count) values for shape \(shape)")
        }
        return Tensor(shape: shape, storage: OpenCLStorage(try Buffer(context: context, values: values)))
    }

    public func values(_ tensor: Tensor) throws -> [Float] { try buffer(tensor, "values").read() }

    func buffer(_ t: Tensor, _ op: String) throws -> Buffer<Float> {
        guard let s = t.storage as? OpenCLStorage, s.buffer.context === context else {
            throw BackendError(op, "tensor \(t.shape) belongs to another backend, not \(name)")
        }
        return s.buffer
    }

    /// An uninitialized device tensor.
    func empty(_ shape: Shape, _ op: String) throws -> (Tensor, Buffer<Float>) {
        do {
            let b = try Buffer<Float>(context: context, count: shape.count)
            return (Tensor(shape: shape, storage: OpenCLStorage(b)), b)
        } catch {
            throw BackendError(op, "cannot allocate \(shape) on \(name): \(error)")
        }
    }

    /// Runs `body` and returns its result with the device time of every kernel it launched,
    /// from profiling events (seconds). Used by benchmarks; nesting is not supported.
    public func profile<T>(_ body: () throws -> T) throws -> (result: T, deviceSeconds: Double) {
        let (result, kernels) = try profileKernels(body)
        return (result, kernels.reduce(0) { $0 + $1.seconds })
    }

    /// Like `profile`, with every launch in order: its kernel's name, global size, device time,
    /// and when it started on the device, in seconds after the first launch started (the gaps
    /// between one launch's end and the next one's start are the device's idle time).
    public func profileKernels<T>(_ body: () throws -> T) throws
        -> (result: T, kernels: [(name: String, global: [Int], seconds: Double, start: Double)]) {
        recorded.withLock { $0 = [] }
        let result: T
        do { result = try body() } catch { recorded.withLock { $0 = nil }; throw error }
        let events = recorded.withLock { events -> [(String, [Int], Event)] in defer { events = nil }; return events ?? [] }
        let times = try events.map { try $0.2.deviceTimes() }
        let origin = times.first?.start ?? 0
        return (result, zip(events, times).map { e, t in
            (e.0, e.1, Double(t.end &- t.start) * 1e-9, Double(Int64(bitPattern: t.start &- origin)) * 1e-9)
        })
    }

    fileprivate func record(_ name: String, _ global: [Int], _ event: Event) {
        recorded.withLock { $0?.append((name, global, event)) }
    }

    /// Whether `profile` is running (launches then ask the driver for events).
    fileprivate var isProfiling: Bool { recorded.withLock { $0 != nil } }

    /// A kernel bound to this backend: launches are recorded while `profile` runs.
    struct Launcher {
        let kernel: Kernel
        let backend: OpenCLBackend
        let name: String, flags: [String]
        /// The kernel's name and flags, as profiles list it (made only while profiling).
        var label: String { flags.isEmpty ? name : "\(name) \(flags.joined(separator: " "))" }
        func launch(global: [Int], local: [Int]? = nil, _ arguments: [KernelArgument]) throws {
            guard backend.isProfiling else {
                try kernel.launch(global: global, local: local, arguments, event: false)
                return
            }
            backend.record(label, global, try kernel.launch(global: global, local: local, arguments))
        }
    }

    /// A local size for a (width, height, planes) grid whose kernel returns early outside
    /// width x height, shaped for the device kind (`FamilyKernels.planeLocal`).
    func planeLocal(width: Int, height: Int) -> [Int] { kernels.planeLocal(width: width, height: height) }

    /// Work-items needed to cover `n` elements 4 at a time.
    func quads(_ n: Int) -> Int { (n + 3) / 4 }
}

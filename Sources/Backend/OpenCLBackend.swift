import Device
import Foundation
import Synchronization

/// Device memory of the OpenCL backend.
public final class OpenCLStorage: TensorStorage {
    public let buffer: Buffer<Float>
    init(_ buffer: Buffer<Float>) { self.buffer = buffer }
}

/// Register-blocking tile of the shared matrix multiply (gemm.cl): a work-group computes
/// tm x tn outputs with (tn / wptn) x (tm / wptm) work-items, staging tk-deep slices.
public struct GemmTiling: Hashable, Sendable, CustomStringConvertible {
    public var tm, tn, tk, wptm, wptn: Int
    public init(tm: Int, tn: Int, tk: Int, wptm: Int, wptn: Int) {
        self.tm = tm; self.tn = tn; self.tk = tk; self.wptm = wptm; self.wptn = wptn
    }
    /// Default for large convolutions.
    public static let large = GemmTiling(tm: 64, tn: 64, tk: 16, wptm: 8, wptn: 8)
    /// For few output rows (M <= 8: the 3 input channels of a network's first conv, backward).
    public static let fewRows = GemmTiling(tm: 8, tn: 128, tk: 16, wptm: 1, wptn: 8)
    /// For M <= 32.
    public static let mediumRows = GemmTiling(tm: 32, tn: 64, tk: 16, wptm: 4, wptn: 8)
    /// For a narrow N (batch of a linear layer).
    public static let narrow = GemmTiling(tm: 64, tn: 8, tk: 16, wptm: 4, wptn: 4)
    /// `LOUPE_CONV_TILING=tm,tn,tk,wptm,wptn` overrides the default, for tuning on a new device.
    public static func fromEnvironment() -> GemmTiling? {
        guard let text = ProcessInfo.processInfo.environment["LOUPE_CONV_TILING"] else { return nil }
        let v = text.split(separator: ",").compactMap { Int($0) }
        guard v.count == 5, v.allSatisfy({ $0 > 0 }), v[0] % v[3] == 0, v[1] % v[4] == 0 else { return nil }
        return GemmTiling(tm: v[0], tn: v[1], tk: v[2], wptm: v[3], wptn: v[4])
    }
    var defines: [String: Int] { ["TM": tm, "TN": tn, "TK": tk, "WPTM": wptm, "WPTN": wptn] }
    var local: [Int] { [tn / wptn, tm / wptm, 1] }
    public var description: String { "\(tm)x\(tn)x\(tk)/\(wptm)x\(wptn)" }
}

/// Runs every op on one OpenCL device with the kernels of `Kernels/` (embedded in the binary at
/// build time; `LOUPE_KERNEL_DIR` may point at a folder of .cl files to use instead while
/// developing). Ops enqueue on one in-order queue and return at once; `values` waits.
public final class OpenCLBackend: Backend {
    public let context: Context
    public var name: String { context.device.name }
    /// Tiling of convolutions with many output rows (M > 32); LOUPE_CONV_TILING overrides it.
    public let convTiling: GemmTiling
    /// The tile for a matrix multiply with `m` rows: a 64-row tile would compute mostly padding
    /// when m is small.
    func tiling(rows m: Int) -> GemmTiling {
        if GemmTiling.fromEnvironment() != nil { return convTiling }
        return m <= 8 ? .fewRows : m <= 32 ? .mediumRows : convTiling
    }
    private let recorded = Mutex<[(String, Event)]?>(nil)

    public init(context: Context, convTiling: GemmTiling? = nil) {
        self.context = context
        self.convTiling = convTiling ?? GemmTiling.fromEnvironment() ?? .large
    }

    /// A backend on `device` with a context of its own.
    public convenience init(device: ComputeDevice, convTiling: GemmTiling? = nil) throws {
        self.init(context: try Context(device: device), convTiling: convTiling)
    }

    /// The source text of `Kernels/<file>.cl`.
    public static func kernelSource(_ file: String) throws -> String {
        if let dir = ProcessInfo.processInfo.environment["LOUPE_KERNEL_DIR"], !dir.isEmpty {
            let url = URL(fileURLWithPath: dir).appendingPathComponent(file + ".cl")
            do { return try String(contentsOf: url, encoding: .utf8) } catch {
                throw BackendError("kernels", "LOUPE_KERNEL_DIR is set but \(url.path) cannot be read: \(error.localizedDescription)")
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
        let header = (defines.sorted { $0.key < $1.key }.map { "#define \($0.key) \($0.value)" }
            + flags.sorted().map { "#define \($0) 1" }).joined(separator: "\n")
        let sources = [header] + (try files.map { try OpenCLBackend.kernelSource($0) })
        let program = try context.program(name: files.joined(separator: "+") + " {" + header.replacingOccurrences(of: "\n", with: "; ") + "}",
                                          sources: sources)
        return Launcher(kernel: try program.kernel(name), backend: self, label: flags.isEmpty ? name : "\(name) \(flags.joined(separator: " "))")
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

    /// Like `profile`, with the device time of every launch and its kernel's name, in order.
    public func profileKernels<T>(_ body: () throws -> T) throws -> (result: T, kernels: [(name: String, seconds: Double)]) {
        recorded.withLock { $0 = [] }
        let result: T
        do { result = try body() } catch { recorded.withLock { $0 = nil }; throw error }
        let events = recorded.withLock { events -> [(String, Event)] in defer { events = nil }; return events ?? [] }
        return (result, try events.map { ($0.0, try $0.1.deviceSeconds()) })
    }

    fileprivate func record(_ name: String, _ event: Event) {
        recorded.withLock { $0?.append((name, event)) }
    }

    /// A kernel bound to this backend: launches are recorded while `profile` runs.
    struct Launcher {
        let kernel: Kernel
        let backend: OpenCLBackend
        var label: String
        func launch(global: [Int], local: [Int]? = nil, _ arguments: [KernelArgument]) throws {
            backend.record(label, try kernel.launch(global: global, local: local, arguments))
        }
    }

    /// Work-items needed to cover `n` elements 4 at a time.
    func quads(_ n: Int) -> Int { (n + 3) / 4 }
}

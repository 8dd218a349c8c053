import COpenCL
import Synchronization

/// An OpenCL context on one device, with one in-order command queue that records profiling
/// times, and a cache of built programs. Released in `deinit`.
public final class Context: @unchecked Sendable {
    /// The device its queue runs on.
    public let device: ComputeDevice
    let context: cl_context
    let queue: cl_command_queue
    private let programs = Mutex<[ProgramKey: Program]>([:])
    /// Memory of released buffers, reused by buffers of the same size.
    let pool: BufferPool

    /// A context and a profiling-enabled in-order queue on `device`.
    public init(device: ComputeDevice) throws(CLError) {
        self.device = device
        var status: cl_int = 0
        var deviceID: cl_device_id? = device.id
        guard let context = clCreateContext(nil, 1, &deviceID, nil, nil, &status), status == CL_SUCCESS else {
            throw CLError(code: status, call: "clCreateContext(\(device.name))")
        }
        let properties = cl_command_queue_properties(CL_QUEUE_PROFILING_ENABLE)
        guard let queue = clCreateCommandQueue(context, device.id, properties, &status), status == CL_SUCCESS else {
            clReleaseContext(context)
            throw CLError(code: status, call: "clCreateCommandQueue(\(device.name))")
        }
        self.context = context
        self.queue = queue
        pool = BufferPool(device: device)
    }

    deinit {
        clFinish(queue)
        pool.drain()
        clReleaseCommandQueue(queue)
        clReleaseContext(context)
    }

    /// Waits until every command enqueued so far has finished.
    public func finish() throws(CLError) {
        try check(clFinish(queue), "clFinish")
    }

    /// The program built from `sources` (concatenated in order) with `options`, built once per
    /// context and cached under `name` + `options`. A failed build throws with the build log.
    public func program(name: String, sources: [String], options: String = "") throws(CLError) -> Program {
        let key = ProgramKey(name: name, options: options)
        if let cached = programs.withLock({ $0[key] }) { return cached }
        let built = try Program(context: self, name: name, source: sources.joined(separator: "\n"), options: options)
        return programs.withLock { cache in
            if let other = cache[key] { return other }
            cache[key] = built
            return built
        }
    }

    /// Bytes of released buffers kept for reuse.
    public var pooledBytes: Int { pool.keptBytes }

    /// Number of distinct programs built so far (for tests of the cache).
    public var builtProgramCount: Int { programs.withLock { $0.count } }
}

struct ProgramKey: Hashable {
    let name: String
    let options: String
}

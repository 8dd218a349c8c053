import COpenCL
import Foundation
import Synchronization

/// A built OpenCL program. Build failures throw `CL_BUILD_PROGRAM_FAILURE` with the build log.
public final class Program: @unchecked Sendable {
    /// The name it was built under (its source files), for errors and the program cache.
    public let name: String
    /// The build options it was compiled with (`-D` defines and the like).
    public let options: String
    let program: cl_program
    unowned let context: Context
    private let kernels = Mutex<[String: Kernel]>([:])

    /// Developer switches for a new device: `LOUPE_CL_OPTIONS` is appended to every program's
    /// build options (e.g. `-cl-nv-verbose`, or a `-D` that a kernel file documents), and
    /// `LOUPE_CL_BUILD_LOG=1` prints each program's build log to standard error (with
    /// `-cl-nv-verbose`, NVIDIA's register and spill counts per kernel).
    static let extraOptions = ProcessInfo.processInfo.environment["LOUPE_CL_OPTIONS"] ?? ""
    static let printsBuildLog = ProcessInfo.processInfo.environment["LOUPE_CL_BUILD_LOG"] == "1"

    init(context: Context, name: String, source: String, options: String) throws(CLError) {
        // `-w` (OpenCL's own option) unless the log is asked for: PoCL's compiler otherwise
        // prints "N warnings generated." on stderr for every new program on AVX2 machines
        // (notes that a float16 argument changes the ABI without AVX-512; nothing to act on).
        let quiet = Program.printsBuildLog ? options : (options.isEmpty ? "-w" : options + " -w")
        let options = Program.extraOptions.isEmpty ? quiet : quiet + " " + Program.extraOptions
        var status: cl_int = 0
        let created: cl_program? = source.withCString { text in
            var pointer: UnsafePointer<CChar>? = text
            return clCreateProgramWithSource(context.context, 1, &pointer, nil, &status)
        }
        guard let program = created, status == CL_SUCCESS else {
            throw CLError(code: status, call: "clCreateProgramWithSource(\(name))")
        }
        var deviceID: cl_device_id? = context.device.id
        let built = clBuildProgram(program, 1, &deviceID, options, nil, nil)
        if built != CL_SUCCESS {
            let log = Program.buildLog(program, device: context.device.id)
            clReleaseProgram(program)
            throw CLError(code: built, call: "clBuildProgram(\(name), options: \"\(options)\")",
                          detail: "build log:\n" + log)
        }
        if Program.printsBuildLog {
            FileHandle.standardError.write(Data("== build log of \(name) (options \"\(options)\"):\n\(Program.buildLog(program, device: context.device.id))\n".utf8))
        }
        self.name = name
        self.options = options
        self.program = program
        self.context = context
    }

    deinit { clReleaseProgram(program) }

    /// The kernel `name` of this program, created once.
    public func kernel(_ kernelName: String) throws(CLError) -> Kernel {
        if let cached = kernels.withLock({ $0[kernelName] }) { return cached }
        var status: cl_int = 0
        guard let kernel = clCreateKernel(program, kernelName, &status), status == CL_SUCCESS else {
            throw CLError(code: status, call: "clCreateKernel(\(name).\(kernelName))")
        }
        let made = Kernel(kernel: kernel, name: kernelName, context: context)
        return kernels.withLock { cache in
            if let other = cache[kernelName] { return other }
            cache[kernelName] = made
            return made
        }
    }

    static func buildLog(_ program: cl_program, device: cl_device_id) -> String {
        var size = 0
        clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), 0, nil, &size)
        var bytes = [CChar](repeating: 0, count: size + 1)
        clGetProgramBuildInfo(program, device, cl_program_build_info(CL_PROGRAM_BUILD_LOG), size, &bytes, nil)
        return trimmedString(bytes)
    }
}

/// One argument of a kernel launch.
public enum KernelArgument {
    case buffer(cl_mem)
    case int(Int32)
    case float(Float)
    /// A 64-bit `ulong` argument.
    case ulong(UInt64)
    /// Local memory of this many bytes.
    case local(Int)

    /// A buffer argument (`__global` pointer).
    public static func buffer<T>(_ buffer: Buffer<T>) -> KernelArgument { .buffer(buffer.mem) }
    /// An `int` argument; the kernels take 32-bit sizes and indices.
    public static func int(_ value: Int) -> KernelArgument { .int(Int32(truncatingIfNeeded: value)) }
}

/// A kernel of a built program. Setting arguments and enqueueing happen under one lock, so
/// several threads may launch the same kernel.
public final class Kernel: @unchecked Sendable {
    /// The kernel function's name.
    public let name: String
    let kernel: cl_kernel
    unowned let context: Context
    private let lock = Mutex<Void>(())

    init(kernel: cl_kernel, name: String, context: Context) {
        self.kernel = kernel
        self.name = name
        self.context = context
    }

    deinit { clReleaseKernel(kernel) }

    /// Enqueues the kernel over `global` work-items (rounded up to a multiple of `local` when
    /// given) and returns its event, whose profiling times give the device time. With
    /// `event: false` the driver makes no event (each costs driver time per launch) and the
    /// returned one is already complete, without times.
    @discardableResult
    public func launch(global: [Int], local: [Int]? = nil, _ arguments: [KernelArgument], event wantsEvent: Bool = true) throws(CLError) -> Event {
        precondition(!global.isEmpty && global.count <= 3, "1 to 3 dimensions")
        var global = global
        if let local {
            precondition(local.count == global.count)
            for i in global.indices { global[i] = (global[i] + local[i] - 1) / local[i] * local[i] }
        }
        if global.contains(0) { return try Event.completed(context: context) }
        return try lock.withLock { _ throws(CLError) -> Event in
            for (index, argument) in arguments.enumerated() {
                let status: cl_int
                switch argument {
                case .buffer(let mem):
                    var value: cl_mem? = mem
                    status = clSetKernelArg(kernel, cl_uint(index), MemoryLayout<cl_mem>.size, &value)
                case .int(let int):
                    var value = int
                    status = clSetKernelArg(kernel, cl_uint(index), 4, &value)
                case .float(let float):
                    var value = float
                    status = clSetKernelArg(kernel, cl_uint(index), 4, &value)
                case .ulong(let ulong):
                    var value = ulong
                    status = clSetKernelArg(kernel, cl_uint(index), 8, &value)
                case .local(let bytes):
                    status = clSetKernelArg(kernel, cl_uint(index), bytes, nil)
                }
                try check(status, "clSetKernelArg(\(name), \(index))")
            }
            var event: cl_event?
            let status = withUnsafeMutablePointer(to: &event) { out in
                clEnqueueNDRangeKernel(context.queue, kernel, cl_uint(global.count), nil, global, local, 0, nil, wantsEvent ? out : nil)
            }
            try check(status, "clEnqueueNDRangeKernel(\(name), global \(global), local \(local.map { "\($0)" } ?? "auto"))")
            return Event(event: event)
        }
    }
}

/// A command's completion event, with its device time from profiling.
public final class Event: @unchecked Sendable {
    let event: cl_event?

    init(event: cl_event?) { self.event = event }

    static func completed(context: Context) throws(CLError) -> Event { Event(event: nil) }

    deinit { if let event { clReleaseEvent(event) } }

    /// Blocks until the command has finished; throws its error status if it failed.
    public func wait() throws(CLError) {
        guard event != nil else { return }
        var list: [cl_event?] = [event]
        try check(clWaitForEvents(1, &list), "clWaitForEvents")
    }

    /// Seconds between the command starting and ending on the device. Waits for it first.
    public func deviceSeconds() throws(CLError) -> Double {
        let (start, end) = try deviceTimes()
        return Double(end &- start) * 1e-9
    }

    /// The device clock (nanoseconds) when the command started and ended; zeros for an event
    /// made without one. Waits for it first.
    public func deviceTimes() throws(CLError) -> (start: UInt64, end: UInt64) {
        guard let event else { return (0, 0) }
        try wait()
        var start: cl_ulong = 0
        var end: cl_ulong = 0
        try check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_START), 8, &start, nil), "clGetEventProfilingInfo")
        try check(clGetEventProfilingInfo(event, cl_profiling_info(CL_PROFILING_COMMAND_END), 8, &end, nil), "clGetEventProfilingInfo")
        return (UInt64(start), UInt64(end))
    }
}

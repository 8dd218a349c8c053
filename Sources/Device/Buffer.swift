import COpenCL

/// A device buffer of `count` elements of `Element`. Released in `deinit`.
public final class Buffer<Element: BitwiseCopyable>: @unchecked Sendable {
    /// The context it was allocated in.
    public let context: Context
    /// Number of elements.
    public let count: Int
    let mem: cl_mem
    /// The size of the memory object: `count` elements rounded up to the pool's size class.
    let allocatedBytes: Int

    /// The elements' size in bytes (the memory object may be larger: pool size classes).
    public var byteCount: Int { count * MemoryLayout<Element>.stride }

    /// Allocates an uninitialized buffer. Throws `CL_INVALID_BUFFER_SIZE` with the sizes when the
    /// request exceeds the device's largest allocation, and the driver's error when it fails.
    public init(context: Context, count: Int) throws(CLError) {
        let bytes = max(count, 1) * MemoryLayout<Element>.stride
        if UInt64(bytes) > context.device.maxAllocation {
            throw CLError(code: CL_INVALID_BUFFER_SIZE, call: "clCreateBuffer",
                          detail: "requested \(bytes) bytes; \(context.device.name) allows at most \(context.device.maxAllocation) bytes in one buffer (out of device memory)")
        }
        self.context = context
        self.count = count
        let rounded = context.pool.sizeClass(bytes)
        allocatedBytes = UInt64(rounded) <= context.device.maxAllocation ? rounded : bytes
        if let kept = context.pool.take(allocatedBytes) {
            mem = kept
            return
        }
        var status: cl_int = 0
        var made = clCreateBuffer(context.context, cl_mem_flags(CL_MEM_READ_WRITE), allocatedBytes, nil, &status)
        if made == nil || status != CL_SUCCESS {
            // Memory kept for reuse may be what is missing: give it back to the driver and retry.
            context.pool.drain()
            made = clCreateBuffer(context.context, cl_mem_flags(CL_MEM_READ_WRITE), allocatedBytes, nil, &status)
        }
        guard let made, status == CL_SUCCESS else {
            throw CLError(code: status, call: "clCreateBuffer(\(allocatedBytes) bytes)")
        }
        mem = made
    }

    /// Allocates a buffer holding a copy of `values`.
    public convenience init(context: Context, values: [Element]) throws(CLError) {
        try self.init(context: context, count: values.count)
        try write(values)
    }

    /// The memory goes back to the context's pool (or to the driver when the pool is full).
    deinit { context.pool.give(mem, bytes: allocatedBytes) }

    /// Copies `values` (exactly `count` elements) to the device; blocks until done.
    public func write(_ values: [Element]) throws(CLError) {
        guard values.count == count else {
            throw CLError(code: CL_INVALID_VALUE, call: "clEnqueueWriteBuffer",
                          detail: "writing \(values.count) elements into a buffer of \(count)")
        }
        if count == 0 { return }
        let status = values.withUnsafeBytes { raw in
            clEnqueueWriteBuffer(context.queue, mem, cl_bool(CL_TRUE), 0, raw.count, raw.baseAddress, 0, nil, nil)
        }
        try check(status, "clEnqueueWriteBuffer")
    }

    /// Copies the buffer to the host; blocks until every command before it has finished.
    public func read() throws(CLError) -> [Element] {
        if count == 0 { return [] }
        var status: cl_int = 0
        let values = [Element](unsafeUninitializedCapacity: count) { pointer, initialized in
            status = clEnqueueReadBuffer(context.queue, mem, cl_bool(CL_TRUE), 0, byteCount,
                                         UnsafeMutableRawPointer(pointer.baseAddress), 0, nil, nil)
            initialized = count
        }
        try check(status, "clEnqueueReadBuffer")
        return values
    }

    /// Device-side copy of all of `source` into this buffer starting at element `offset`.
    public func copy(from source: Buffer<Element>, sourceOffset: Int = 0, offset: Int = 0, count: Int? = nil) throws(CLError) {
        let n = count ?? source.count
        if n == 0 { return }
        let stride = MemoryLayout<Element>.stride
        try check(clEnqueueCopyBuffer(context.queue, source.mem, mem, sourceOffset * stride, offset * stride, n * stride, 0, nil, nil),
                  "clEnqueueCopyBuffer")
    }

    /// Sets every element to `value` on the device.
    public func fill(_ value: Element) throws(CLError) {
        if count == 0 { return }
        var pattern = value
        try check(clEnqueueFillBuffer(context.queue, mem, &pattern, MemoryLayout<Element>.stride, 0, byteCount, 0, nil, nil),
                  "clEnqueueFillBuffer")
    }
}

import COpenCL

/// One OpenCL device and what it reports about itself.
public struct ComputeDevice: @unchecked Sendable, Hashable {
    /// The device type (`CL_DEVICE_TYPE`): CPUs get the register-blocked kernel family, the others
    /// the tiled one.
    public enum Kind: String, Sendable { case gpu = "GPU", cpu = "CPU", accelerator = "accelerator", other = "other" }

    /// The OpenCL device handle.
    public let id: cl_device_id
    /// The OpenCL platform (driver) that exposes it.
    public let platform: Platform
    /// GPU, CPU, accelerator or other, as the driver reports it; picks the kernel family.
    public let kind: Kind
    /// `CL_DEVICE_NAME`, e.g. "NVIDIA H100 80GB HBM3" or "pthread-haswell-AMD EPYC".
    public let name: String
    /// `CL_DEVICE_VENDOR`.
    public let vendor: String
    /// `CL_DEVICE_VERSION`, e.g. "OpenCL 3.0 PoCL ...".
    public let version: String
    /// `CL_DRIVER_VERSION`.
    public let driverVersion: String
    /// Compute units (GPU multiprocessors, CPU cores for PoCL).
    public let computeUnits: Int
    /// Clock in MHz as the driver reports it (may be 0 or nominal).
    public let clockMHz: Int
    /// Bytes.
    public let globalMemory: UInt64
    /// Bytes of the largest single buffer.
    public let maxAllocation: UInt64
    /// Bytes of local (work-group shared) memory.
    public let localMemory: UInt64
    /// The largest work-group a kernel may launch with.
    public let maxWorkGroupSize: Int
    /// The largest work-group size along each dimension.
    public let maxWorkItemSizes: [Int]
    /// The OpenCL extensions it supports (`cl_khr_fp16`, ...).
    public let extensions: Set<String>

    /// Whether kernels may use half precision arithmetic (`cl_khr_fp16`).
    public var supportsFP16: Bool { extensions.contains("cl_khr_fp16") }
    /// Whether kernels may use double precision (`cl_khr_fp64`).
    public var supportsFP64: Bool { extensions.contains("cl_khr_fp64") }

    init(id: cl_device_id, platform: Platform) throws(CLError) {
        self.id = id
        self.platform = platform
        let type: cl_device_type = try deviceValue(id, CL_DEVICE_TYPE)
        if type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 { kind = .gpu }
        else if type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 { kind = .cpu }
        else if type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 { kind = .accelerator }
        else { kind = .other }
        name = try deviceString(id, CL_DEVICE_NAME)
        vendor = try deviceString(id, CL_DEVICE_VENDOR)
        version = try deviceString(id, CL_DEVICE_VERSION)
        driverVersion = try deviceString(id, CL_DRIVER_VERSION)
        computeUnits = Int(try deviceValue(id, CL_DEVICE_MAX_COMPUTE_UNITS) as cl_uint)
        clockMHz = Int(try deviceValue(id, CL_DEVICE_MAX_CLOCK_FREQUENCY) as cl_uint)
        globalMemory = try deviceValue(id, CL_DEVICE_GLOBAL_MEM_SIZE) as cl_ulong
        maxAllocation = try deviceValue(id, CL_DEVICE_MAX_MEM_ALLOC_SIZE) as cl_ulong
        localMemory = try deviceValue(id, CL_DEVICE_LOCAL_MEM_SIZE) as cl_ulong
        maxWorkGroupSize = Int(try deviceValue(id, CL_DEVICE_MAX_WORK_GROUP_SIZE) as Int)
        let dims = Int(try deviceValue(id, CL_DEVICE_MAX_WORK_ITEM_DIMENSIONS) as cl_uint)
        var sizes = [Int](repeating: 0, count: dims)
        try check(clGetDeviceInfo(id, cl_device_info(CL_DEVICE_MAX_WORK_ITEM_SIZES), MemoryLayout<Int>.stride * dims, &sizes, nil),
                  "clGetDeviceInfo(CL_DEVICE_MAX_WORK_ITEM_SIZES)")
        maxWorkItemSizes = sizes
        extensions = Set(try deviceString(id, CL_DEVICE_EXTENSIONS).split(separator: " ").map(String.init))
    }

    /// The same OpenCL device.
    public static func == (a: ComputeDevice, b: ComputeDevice) -> Bool { a.id == b.id }
    /// Hashes the device handle.
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }

    /// Every device of every platform, in platform order: the numbering `--device opencl:N` uses.
    public static func all() throws(CLError) -> [ComputeDevice] {
        try PoCLStartup.cleaningUp { () throws(CLError) -> [ComputeDevice] in
            var devices: [ComputeDevice] = []
            for platform in try Platform.all() { devices += try platform.devices() }
            return devices
        }
    }

    /// The device `auto` picks: the first GPU, else the first device of any kind; nil if none.
    public static func preferred(among devices: [ComputeDevice]) -> ComputeDevice? {
        devices.first { $0.kind == .gpu } ?? devices.first
    }
}

private func deviceString(_ id: cl_device_id, _ param: Int32) throws(CLError) -> String {
    var size = 0
    try check(clGetDeviceInfo(id, cl_device_info(param), 0, nil, &size), "clGetDeviceInfo")
    var bytes = [CChar](repeating: 0, count: size + 1)
    try check(clGetDeviceInfo(id, cl_device_info(param), size, &bytes, nil), "clGetDeviceInfo")
    return trimmedString(bytes)
}

private func deviceValue<T: FixedWidthInteger>(_ id: cl_device_id, _ param: Int32) throws(CLError) -> T {
    var value: T = 0
    try check(clGetDeviceInfo(id, cl_device_info(param), MemoryLayout<T>.size, &value, nil), "clGetDeviceInfo")
    return value
}

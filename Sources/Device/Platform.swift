import COpenCL

/// An OpenCL platform (one installed driver: PoCL, NVIDIA, ...).
public struct Platform: @unchecked Sendable, Hashable {
    /// The OpenCL platform handle.
    public let id: cl_platform_id
    /// `CL_PLATFORM_NAME`, e.g. "Portable Computing Language" or "NVIDIA CUDA".
    public let name: String
    /// `CL_PLATFORM_VENDOR`.
    public let vendor: String
    /// `CL_PLATFORM_VERSION`, e.g. "OpenCL 3.0 PoCL 3.1 ...".
    public let version: String

    /// All installed platforms. An ICD loader with no drivers reports
    /// `CL_PLATFORM_NOT_FOUND_KHR`; that is an empty list, not an error.
    public static func all() throws(CLError) -> [Platform] {
        var count: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &count)
        if status == CL_PLATFORM_NOT_FOUND_KHR_CODE || count == 0 { return [] }
        try check(status, "clGetPlatformIDs")
        var ids = [cl_platform_id?](repeating: nil, count: Int(count))
        try check(clGetPlatformIDs(count, &ids, nil), "clGetPlatformIDs")
        var platforms: [Platform] = []
        for case let id? in ids {
            platforms.append(Platform(
                id: id,
                name: try platformString(id, cl_platform_info(CL_PLATFORM_NAME)),
                vendor: try platformString(id, cl_platform_info(CL_PLATFORM_VENDOR)),
                version: try platformString(id, cl_platform_info(CL_PLATFORM_VERSION))))
        }
        return platforms
    }

    /// The devices of this platform, of every type.
    public func devices() throws(CLError) -> [ComputeDevice] {
        var count: cl_uint = 0
        let status = clGetDeviceIDs(id, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &count)
        if status == CL_DEVICE_NOT_FOUND || count == 0 { return [] }
        try check(status, "clGetDeviceIDs")
        var ids = [cl_device_id?](repeating: nil, count: Int(count))
        try check(clGetDeviceIDs(id, cl_device_type(CL_DEVICE_TYPE_ALL), count, &ids, nil), "clGetDeviceIDs")
        var devices: [ComputeDevice] = []
        for case let device? in ids { devices.append(try ComputeDevice(id: device, platform: self)) }
        return devices
    }
}

let CL_PLATFORM_NOT_FOUND_KHR_CODE: cl_int = -1001


private func platformString(_ id: cl_platform_id, _ param: cl_platform_info) throws(CLError) -> String {
    var size = 0
    try check(clGetPlatformInfo(id, param, 0, nil, &size), "clGetPlatformInfo")
    var bytes = [CChar](repeating: 0, count: size + 1)
    try check(clGetPlatformInfo(id, param, size, &bytes, nil), "clGetPlatformInfo")
    return trimmedString(bytes)
}

func trimmedString(_ bytes: [CChar]) -> String {
    let end = bytes.firstIndex(of: 0) ?? bytes.count
    let text = String(decoding: bytes[..<end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return text.trimmingCharacters(in: " \t\n")
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}

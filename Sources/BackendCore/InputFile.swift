import Foundation

/// A file the user named (a model, weights, labels, an image), read whole: opened without
/// blocking, checked to be a regular file by the open descriptor (a folder, FIFO, device or
/// socket is refused by what it is, and cannot change between the check and the read), sized
/// before any byte is allocated, and read with the system's reason on failure.
public enum InputFile {
    /// A file that cannot be read, with the path as the user gave it and why.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        /// "<path>: <why>", one line.
        public let description: String
    }

    /// The bytes of the regular file at `path`; `what` names it in errors ("--model", "image");
    /// files over `limit` bytes are refused before they are read.
    public static func read(_ path: String, what: String, limit: Int) throws -> Data {
        let shown = "\(what) \(printable(path))"
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "\(shown): cannot open it (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw Failure(description: "\(shown): \(String(cString: strerror(errno)))") }
        switch info.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw Failure(description: "\(shown) is a folder, not a file")
        case S_IFIFO: throw Failure(description: "\(shown) is a FIFO, not a regular file")
        case S_IFCHR, S_IFBLK: throw Failure(description: "\(shown) is a device, not a regular file")
        default: throw Failure(description: "\(shown) is not a regular file")
        }
        let size = Int(info.st_size)
        guard size <= limit else {
            throw Failure(description: "\(shown) holds \(size) bytes, over the limit of \(limit) for such a file")
        }
        // A regular file read to its end: the size the system reports (0 for /proc's files) is
        // only where the buffer starts; the limit holds whatever the file turns out to hold.
        var data = Data(capacity: Swift.max(size, 1))
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "\(shown): cannot read it (\(String(cString: strerror(errno))))")
            }
            if n == 0 { break }
            guard data.count + n <= limit else {
                throw Failure(description: "\(shown) holds more than the limit of \(limit) bytes for such a file")
            }
            data.append(contentsOf: chunk[0..<n])
        }
        guard !data.isEmpty else { throw Failure(description: "\(shown) is empty") }
        return data
    }
}

/// The system's reason for a Foundation error, in one line: the POSIX error under a file error
/// ("No space left on device") with its path (unless `withPath` is false), rather than
/// "NSCocoaErrorDomain error 640".
public func systemReason(_ error: Error, withPath: Bool = true) -> String {
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else {
        return String(describing: error)
    }
    var reason: String?
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        reason = String(cString: strerror(Int32(underlying.code)))
    } else if ns.domain == NSPOSIXErrorDomain {
        reason = String(cString: strerror(Int32(ns.code)))
    } else if ns.domain == NSCocoaErrorDomain {
        switch ns.code {
        case 4, 260: reason = "no such file or folder"
        case 257, 513: reason = "permission denied"
        case 640: reason = "no space left on the device"
        case 642: reason = "the file system is read-only"
        case 516: reason = "a file of that name exists"
        case 256: reason = "it cannot be read"
        case 512: reason = "it cannot be written"
        default: reason = nil
        }
    }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    guard let reason else { return ns.localizedDescription }
    guard withPath, let path else { return reason }
    return "\(printable(path)): \(reason)"
}

/// An output file that could not be written, with the system's reason.
public struct WriteFailure: Error, CustomStringConvertible, Sendable {
    /// What could not be written and why, one line.
    public let description: String
    /// A failure described by `description`.
    public init(_ description: String) { self.description = description }
}

/// Whether `error` is a failure to write (a full disk, a read-only file system, a write refused):
/// such a run exits with 74 (EX_IOERR), as a failed write to stdout does.
public func isWriteFailure(_ error: Error) -> Bool {
    if error is WriteFailure { return true }
    let ns = error as NSError
    if ns.domain == NSCocoaErrorDomain { return (512..<1024).contains(ns.code) }
    if ns.domain == NSPOSIXErrorDomain { return [ENOSPC, EROFS, EDQUOT, EFBIG, EIO].contains(Int32(ns.code)) }
    return false
}

import BackendCore
/// The stored (uncompressed) entries of a zip archive, as torch.save writes them. Reads the
/// central directory; every offset and length is checked against the data, so a truncated or
/// corrupt archive throws. Compressed entries are refused with a clear error (torch never
/// compresses). ZIP64 sizes are understood where torch writes them (archives over 4 GiB).
struct ZipArchive {
    struct Entry {
        let name: String
        let offset: Int
        let size: Int
        let method: Int
    }

    let bytes: [UInt8]
    let entries: [String: Entry]

    static func isZip(_ bytes: [UInt8]) -> Bool { bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B && bytes[2] == 3 && bytes[3] == 4 }

    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        func u16(_ at: Int) throws -> Int {
            guard at >= 0, at + 2 <= bytes.count else { throw WeightFileError("zip: truncated archive") }
            return Int(bytes[at]) | Int(bytes[at + 1]) << 8
        }
        func u32(_ at: Int) throws -> Int { let lo = try u16(at), hi = try u16(at + 2); return lo | hi << 16 }
        func u64(_ at: Int) throws -> Int {
            let v = UInt64(try u32(at)) | UInt64(try u32(at + 4)) << 32
            guard v < UInt64(Int.max / 2) else { throw WeightFileError("zip: size out of range") }
            return Int(v)
        }
        // End of central directory: the last 22+ bytes, signature 0x06054b50.
        var eocd = -1
        var i = bytes.count - 22
        while i >= Swift.max(0, bytes.count - 22 - 65_535) {
            if try u32(i) == 0x0605_4B50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw WeightFileError("zip: no end of central directory (truncated or not a zip archive)") }
        var count = try u16(eocd + 10)
        var directory = try u32(eocd + 16)
        if directory == 0xFFFF_FFFF || count == 0xFFFF {
            // ZIP64 end of central directory locator sits just before the EOCD.
            guard eocd >= 20, try u32(eocd - 20) == 0x0706_4B50 else { throw WeightFileError("zip: missing ZIP64 locator") }
            let record = try u64(eocd - 12)
            guard try u32(record) == 0x0606_4B50 else { throw WeightFileError("zip: bad ZIP64 end record") }
            count = try u64(record + 32)
            directory = try u64(record + 48)
        }
        guard count < 1_000_000 else { throw WeightFileError("zip: implausible entry count \(count)") }
        var entries: [String: Entry] = [:]
        var at = directory
        for _ in 0..<count {
            guard try u32(at) == 0x0201_4B50 else { throw WeightFileError("zip: corrupt central directory") }
            let method = try u16(at + 10)
            var size = try u32(at + 20)
            let nameLength = try u16(at + 28), extraLength = try u16(at + 30), commentLength = try u16(at + 32)
            var local = try u32(at + 42)
            guard at + 46 + nameLength <= bytes.count else { throw WeightFileError("zip: truncated central directory") }
            let name = printable(String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self))
            // ZIP64 extra field (id 1): 64-bit sizes and offset in order, for fields set to 0xFFFFFFFF.
            var e = at + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = try u16(e), length = try u16(e + 2)
                if id == 1 {
                    var f = e + 4
                    if try u32(at + 24) == 0xFFFF_FFFF { f += 8 }  // uncompressed size
                    if size == 0xFFFF_FFFF { size = try u64(f); f += 8 }
                    if local == 0xFFFF_FFFF { local = try u64(f) }
                }
                e += 4 + length
            }
            // The local header repeats the name and has its own extra field.
            guard try u32(local) == 0x0403_4B50 else { throw WeightFileError("zip: corrupt local header for \(name)") }
            let localName = try u16(local + 26), localExtra = try u16(local + 28)
            let dataStart = local + 30 + localName + localExtra
            guard dataStart >= 0, size >= 0, dataStart + size <= bytes.count else {
                throw WeightFileError("zip: entry \(name) runs past the end of the file (truncated)")
            }
            // Readers differ on which of two equal names counts (Python's zipfile takes the last).
            guard entries[name] == nil else { throw WeightFileError("zip: two entries named \(name)") }
            entries[name] = Entry(name: name, offset: dataStart, size: size, method: method)
            at = extraEnd + commentLength
        }
        self.entries = entries
    }

    func data(_ entry: Entry) throws -> ArraySlice<UInt8> {
        guard entry.method == 0 else {
            throw WeightFileError("zip: entry \(entry.name) is compressed (method \(entry.method)); only stored entries, as torch.save writes them, are read")
        }
        return bytes[entry.offset..<(entry.offset + entry.size)]
    }
}

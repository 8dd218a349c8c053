import BackendCore
import Foundation
import Models
import Testing
import TestSupport
import WeightFiles

/// Differential fuzzing: mutations of the parsers' seed files that the format's own library
/// read (torch.load with weights_only, safetensors, onnx's protobuf reader), recorded by
/// `tools/make_fuzz_fixtures.py` in `fuzz_reference.json`. What that library refuses, Loupe
/// refuses; what it loads from a checkpoint or a safetensors file, Loupe loads to the same names,
/// shapes and float32 values (bit for bit, NaN as one pattern), unless the pickle names a tensor
/// twice (refused as ambiguous; Python keeps the last). An ONNX file Loupe loads gives
/// each stored weight it uses as onnx reads it; Loupe may refuse more (it checks the graph, not
/// only the protobuf).
@Suite(.timed) struct ParserCrossCheckTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// A tensor as the fixture writes it: its dimensions and a digest of its float32 values.
    struct Entry: Equatable, CustomStringConvertible {
        var shape: [Int]
        var digest: String
        var description: String { "\(shape) \(digest)" }

        init(shape: [Int], digest: String) { self.shape = shape; self.digest = digest }

        /// The first 16 hex digits of SHA-256 over the little-endian float32 values, NaN as 0x7FC00000.
        init(_ t: HostTensor) {
            var bytes: [UInt8] = []
            bytes.reserveCapacity(t.values.count * 4)
            for v in t.values {
                let bits = v.isNaN ? UInt32(0x7FC0_0000) : v.bitPattern
                for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt32(k)))) }
            }
            self.init(shape: t.shape.dims, digest: String(SHA256.hex(bytes).prefix(16)))
        }

        init?(json: Any?) {
            guard let pair = json as? [Any], pair.count == 2, let shape = pair[0] as? [Int], let digest = pair[1] as? String else { return nil }
            self.init(shape: shape, digest: digest)
        }
    }

    static func cases() throws -> [[String: Any]] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("fuzz_reference.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(root["files"] as? [[String: Any]])
    }

    /// Loupe's reading of `bytes` as the format of `file`: the tensors it loads by name.
    static func load(_ file: String, _ bytes: [UInt8]) throws -> [String: HostTensor] {
        if file.hasSuffix(".pth") { return try TorchCheckpoint.load(bytes: bytes) }
        if file.hasSuffix(".safetensors") { return try SafeTensorsFile(data: Data(bytes)).tensors }
        return try ONNXImport.load(bytes: bytes, name: "mutated.onnx", weightsRequired: false).1
    }

    @Test(arguments: ["tiny_zip.pth", "tiny_legacy.pth", "tiny_expected.safetensors", "onnx/ops.onnx", "onnx/resnet18.onnx"])
    func mutationsLoadWhatTheFormatsLibraryLoads(_ file: String) throws {
        let entry = try #require(try Self.cases().first { $0["file"] as? String == file }, "\(file) is not in fuzz_reference.json")
        let original = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent(file)))
        let seedTable = try #require(entry["seed"] as? [String: Any])
        var seed: [String: Entry] = [:]
        for (name, value) in seedTable { seed[name] = try #require(Entry(json: value) as Entry?, "\(file): seed entry \(name)") as Entry }
        // The seed itself: the fixture's digests and Loupe's arithmetic agree.
        let seedLoaded = try Self.load(file, original).mapValues(Entry.init)
        if file.hasSuffix(".onnx") {
            for (name, got) in seedLoaded where seed[name] != nil { #expect(got == seed[name], "\(file): \(name)") }
        } else {
            #expect(seedLoaded == seed, "\(file): the unmutated file")
        }
        let mutations = try #require(entry["mutations"] as? [[String: Any]])
        #expect(mutations.count >= 50, "\(file): only \(mutations.count) recorded mutations")
        var agreed = (loaded: 0, refused: 0, stricter: 0)
        for m in mutations {
            let at = try #require(m["at"] as? Int), remove = try #require(m["remove"] as? Int)
            let insert = try #require(m["insert"] as? String), what = m["what"] as? String ?? "?"
            try #require(at >= 0 && remove >= 0 && at + remove <= original.count)
            var bytes = original
            bytes.replaceSubrange(at..<(at + remove), with: try #require(hexBytes(insert)))
            let loaded: [String: HostTensor]?
            var error = ""
            do { loaded = try Self.load(file, bytes) } catch let e { loaded = nil; error = "\(e)" }

            guard let reference = m["reference"] as? [String: Any], let changed = reference["changed"] as? [String: Any] else {
                #expect(m["reference"] as? String == "refused")
                #expect(loaded == nil, "\(file), \(what): the format's library refuses it, Loupe loads \(loaded?.keys.sorted() ?? [])")
                agreed.refused += 1
                continue
            }
            var expected = seed
            for (name, value) in changed {
                expected[name] = value is NSNull ? nil : try #require(Entry(json: value) as Entry?, "\(file): entry \(name)") as Entry
            }
            guard let loaded else {
                // The ONNX importer checks the graph too. A checkpoint whose pickle names a
                // tensor twice is refused as ambiguous (Python keeps the last); nothing else
                // that torch or safetensors loads is refused.
                #expect(file.hasSuffix(".onnx") || error.contains("holds two tensors named"),
                        "\(file), \(what): the format's library loads it, Loupe refuses: \(error)")
                agreed.stricter += 1
                continue
            }
            let got = loaded.mapValues(Entry.init)
            if file.hasSuffix(".onnx") {
                for (name, tensor) in got where expected[name] != nil {
                    #expect(tensor == expected[name], "\(file), \(what): weight \(name) is \(tensor), onnx reads \(expected[name]!)")
                }
            } else {
                for name in Set(got.keys).union(expected.keys) where got[name] != expected[name] {
                    Issue.record("\(file), \(what): \(name) is \(got[name].map { "\($0)" } ?? "missing"), the library reads \(expected[name].map { "\($0)" } ?? "nothing")")
                }
            }
            agreed.loaded += 1
        }
        print("cross-check \(file): \(mutations.count) mutations, \(agreed.loaded) loaded as the library does, \(agreed.refused) refused as it does, \(agreed.stricter) refused by Loupe only")
    }

    func hexBytes(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i..<(i + 2)], as: UTF8.self), radix: 16) else { return nil }
            out.append(byte)
        }
        return out
    }
}

import Backend
import Foundation
import Models
import Testing
import TestSupport
import WeightFiles

/// Parsers never crash: thousands of mutations of valid `.pth` files (zip and legacy pickle
/// formats) and safetensors files each either load or throw an error with a message; none traps,
/// and none allocates without bound (a length field set to 2^63 must be refused, not allocated:
/// the process would die).
@Suite struct ParserFuzzTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// `parse` returns the names it read (which must be printable).
    func fuzz(_ file: String, count: Int, _ parse: ([UInt8]) throws -> [String]) throws {
        let original = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent(file)))
        _ = try parse(original)  // the seed file is valid
        var mutator = Mutator(original)
        var loaded = 0, refused = 0
        for _ in 0..<count {
            let (bytes, what) = mutator.next()
            do {
                let names = try parse(bytes)
                loaded += 1
                #expect(!names.contains(where: holdsControlCharacters), "\(file), \(what): a name with control characters")
            } catch {
                refused += 1
                #expect(!"\(error)".isEmpty, "\(file), \(what): an error without a message")
                #expect(!holdsControlCharacters("\(error)"), "\(file), \(what): a message with control characters")
            }
        }
        #expect(loaded + refused == count)
        reportFuzz(file, mutations: count, refused: refused)
        #expect(refused > count / 4, "\(file): only \(refused) of \(count) mutations refused; the mutator does not reach the parser")
    }

    @Test(arguments: ["tiny_zip.pth", "tiny_legacy.pth"])
    func checkpointsNeverCrash(_ file: String) throws {
        try fuzz(file, count: fuzzMutations(3000)) { Array(try TorchCheckpoint.load(bytes: $0).keys) }
    }

    @Test func safetensorsNeverCrash() throws {
        try fuzz("tiny_expected.safetensors", count: fuzzMutations(3000)) { Array(try SafeTensorsFile(data: Data($0)).tensors.keys) }
    }
}

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
@Suite(.timed) struct ParserFuzzTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// `parse` returns the tensors it read: each name printable, each shape's element count the
    /// number of values (what the cross-check against the formats' own libraries,
    /// ParserCrossCheckTests, checks value by value on a sample).
    func fuzz(_ file: String, count: Int, _ parse: ([UInt8]) throws -> [String: HostTensor]) throws {
        let original = [UInt8](try Data(contentsOf: Self.fixtures.appendingPathComponent(file)))
        _ = try parse(original)  // the seed file is valid
        var mutator = Mutator(original)
        var loaded = 0, refused = 0
        for _ in 0..<count {
            let (bytes, what) = mutator.next()
            do {
                let tensors = try parse(bytes)
                loaded += 1
                #expect(!tensors.keys.contains(where: holdsControlCharacters), "\(file), \(what): a name with control characters")
                for (name, t) in tensors where !t.isConsistent {
                    Issue.record("\(file), \(what): \(name) has shape \(t.shape) and \(t.values.count) values")
                }
            } catch {
                refused += 1
                #expect(!"\(error)".isEmpty, "\(file), \(what): an error without a message")
                #expect(!holdsControlCharacters("\(error)"), "\(file), \(what): a message with control characters")
            }
        }
        reportFuzz(file, mutations: count, refused: refused)
        #expect(refused > count / 4, "\(file): only \(refused) of \(count) mutations refused; the mutator does not reach the parser")
    }

    @Test(arguments: ["tiny_zip.pth", "tiny_legacy.pth"])
    func checkpointsNeverCrash(_ file: String) throws {
        try fuzz(file, count: fuzzMutations(3000)) { try TorchCheckpoint.load(bytes: $0) }
    }

    @Test func safetensorsNeverCrash() throws {
        try fuzz("tiny_expected.safetensors", count: fuzzMutations(3000)) { try SafeTensorsFile(data: Data($0)).tensors }
    }
}

extension HostTensor {
    /// Whether the shape's dimensions are non-negative and their product is the number of values.
    var isConsistent: Bool {
        guard shape.dims.allSatisfy({ $0 >= 0 }) else { return false }
        var n = 1
        for d in shape.dims {
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return false }
            n = p
        }
        return n == values.count
    }
}

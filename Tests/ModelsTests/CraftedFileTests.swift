import Backend
import Foundation
import Graph
import Models
import Testing
import TestSupport
import WeightFiles

/// Files that other libraries refuse or that would mislead (tools/make_crafted_fixtures.py makes
/// the binary ones; the rest are built here), each refused with one line.
@Suite(.timed) struct CraftedFileTests {
    let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// resnet18's seeded weights as a host dictionary, for edits.
    func resnetWeights() throws -> (Architecture, [String: HostTensor]) {
        let arch = try Architectures.make("resnet18")
        var weights: [String: HostTensor] = [:]
        for spec in arch.parameters { weights[spec.name] = HostTensor(shape: spec.shape, values: SeededWeights.values(for: spec, seed: 1)) }
        return (arch, weights)
    }

    /// One NaN, one infinity or one value beyond ±2^63 in a weight, or a negative running
    /// variance, is refused at load with the tensor's name (PyTorch computes NaN from it, and a
    /// device that dropped the NaN would name a class).
    @Test(arguments: [("conv1.weight", Float.nan, "holds nan at index 5"), ("layer1.0.bn1.bias", -Float.infinity, "holds -inf"),
                      ("fc.weight", 1e38, "beyond ±2^63"), ("layer2.0.bn2.running_var", -0.5, "negative variance -0.5")])
    func nonFiniteWeightsAreRefused(_ name: String, _ value: Float, _ message: String) throws {
        let (arch, good) = try resnetWeights()
        _ = try Model(architecture: arch, weights: good, on: CPUBackend())
        var weights = good
        var values = weights[name]!.values
        values[5] = value
        weights[name] = HostTensor(shape: weights[name]!.shape, values: values)
        #expect { _ = try Model(architecture: arch, weights: weights, on: CPUBackend()) } throws: { error in
            "\(error)".contains("weight \(name) holds") && "\(error)".contains(message)
        }
    }

    /// safetensors with a key written twice: the JSON parser would keep the last.
    @Test func safetensorsWithADuplicateKeyIsRefused() throws {
        func file(_ header: String, data: Int) -> Data {
            var bytes = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }
            bytes += Array(header.utf8) + [UInt8](repeating: 0, count: data)
            return Data(bytes)
        }
        let one = #""a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}"#
        _ = try SafeTensorsFile(data: file("{\(one)}", data: 4))
        #expect { _ = try SafeTensorsFile(data: file("{\(one), \(one)}", data: 4)) } throws: { error in
            "\(error)".contains("names a tensor twice")
        }
        // A key spelled with an escape is the same key; a key inside metadata is not a top-level key.
        let escaped = #""\u0061": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}"#
        #expect(throws: (any Error).self) { _ = try SafeTensorsFile(data: file("{\(one), \(escaped)}", data: 4)) }
        _ = try SafeTensorsFile(data: file(#"{"__metadata__": {"a": "x:y", "b": "{\"c\": 1}"}, "# + one + "}", data: 4))
    }

    /// A zip with two data.pkl entries: readers disagree on which one counts.
    @Test func aZipWithTwoPicklesIsRefused() throws {
        #expect { _ = try loadWeights(url: fixtures.appendingPathComponent("crafted_two_pickles.pth")) } throws: { error in
            "\(error)".contains("two entries named archive/data.pkl")
        }
    }

    /// An op of another domain is not the standard op of that name; a Conv's kernel_shape must
    /// be its weight's.
    @Test(arguments: [("crafted_domain.onnx", "node  is Relu of the domain com.example, not a standard ONNX op"),
                      ("crafted_kernel.onnx", "kernel_shape [5, 5] contradicts the weight's [4, 3, 3, 3]")])
    func onnxFilesThatMisleadAreRefused(_ file: String, _ message: String) throws {
        #expect { _ = try ModelLocator.load(model: fixtures.appendingPathComponent("onnx/" + file).path, on: CPUBackend()) } throws: { error in
            "\(error)".contains(message)
        }
    }

    /// A node named with an ESC sequence (clear the screen, set the title) and a newline that
    /// forges a second "Error:" line: its message (a list, one node per line) shows the name
    /// with every control character escaped, so no line of it begins with the forgery.
    @Test func namesFromFilesArePrintable() throws {
        #expect { _ = try ModelLocator.load(model: fixtures.appendingPathComponent("onnx/crafted_names.onnx").path, on: CPUBackend()) } throws: { error in
            let text = "\(error)"
            return text.contains(#"c\u{1B}[2J\u{1B}]0;owned\u{7}\u{A}Error: forged"#)
                && !text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || $0.value == 0x7F }
                && !text.split(separator: "\n").contains { $0.hasPrefix("Error: forged") }
        }
        #expect(printable("layer3.0.conv1") == "layer3.0.conv1")
        #expect(printable("a\u{202E}b\r") == #"a\u{202E}b\u{D}"#)
    }
}

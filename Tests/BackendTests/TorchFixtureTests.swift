import Backend
import Graph
import Foundation
import Testing
import TestSupport
import WeightFiles

/// Golden values from PyTorch (tools/make_fixtures.py), checked on the CPU reference and on
/// the OpenCL device.
let torchFixtures: SafeTensorsFile? = try? SafeTensorsFile(
    url: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/torch_ops.safetensors"))

func fixtureBackends() -> [any Backend] { [cpu] + (openCL().map { [$0] } ?? []) }

struct Fixture {
    let file: SafeTensorsFile
    let name: String
    let backend: any Backend
    var settings: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data((file.metadata[name] ?? "{}").utf8))) as? [String: Any] ?? [:]
    }
    func int(_ key: String) -> Int { settings[key] as! Int }
    func bool(_ key: String) -> Bool { settings[key] as! Bool }
    func host(_ role: String) throws -> HostTensor { try file.tensor("\(name).\(role)") }
    func tensor(_ role: String) throws -> Tensor { let h = try host(role); return try backend.tensor(h.values, h.shape) }
    func expect(_ t: Tensor, _ role: String, tolerance: Float = 1e-4, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let want = try host(role)
        #expect(t.shape == want.shape, "\(backend.name) \(name).\(role): shape \(t.shape) vs \(want.shape)", sourceLocation: sourceLocation)
        expectClose(try backend.values(t), want.values, tolerance: tolerance, "\(backend.name) \(name).\(role)", sourceLocation: sourceLocation)
    }
}

@Suite(.timed) struct TorchFixtureTests {
    func each(_ names: [String], _ body: (Fixture) throws -> Void) throws {
        let file = try #require(torchFixtures, "fixture file missing: run tools/make_fixtures.py")
        for backend in fixtureBackends() {
            for name in names { try body(Fixture(file: file, name: name, backend: backend)) }
        }
    }

    @Test func conv2d() throws {
        try each((0..<4).map { "conv\($0)" }) { f in
            let p = Conv2DParams(stride: f.int("stride"), padding: f.int("pad"), dilation: f.int("dil"), groups: f.int("groups"))
            let x = try f.tensor("x"), w = try f.tensor("w"), gy = try f.tensor("gy")
            try f.expect(try f.backend.conv2d(x, weight: w, bias: try f.tensor("b"), p), "y")
            try f.expect(try f.backend.conv2dBackwardInput(gy, weight: w, inputShape: x.shape, p), "gx")
            try f.expect(try f.backend.conv2dBackwardWeight(gy, input: x, weightShape: w.shape, p), "gw")
            try f.expect(try f.backend.conv2dBackwardBias(gy), "gb")
        }
    }

    @Test func activations() throws {
        try each(["relu", "relu6"]) { f in
            let kind: Activation = f.name == "relu" ? .relu : .relu6
            let x = try f.tensor("x")
            try f.expect(try f.backend.activation(x, kind), "y")
            try f.expect(try f.backend.activationBackward(try f.tensor("gy"), input: x, kind, rule: .standard), "gx")
        }
    }

    @Test func pooling() throws {
        try each((0..<4).flatMap { ["maxpool\($0)", "avgpool\($0)"] }) { f in
            let p = Pool2DParams(kernel: f.int("k"), stride: f.int("stride"), padding: f.int("pad"),
                                 ceilMode: f.bool("ceil"), countIncludePad: f.bool("include_pad"))
            let x = try f.tensor("x"), gy = try f.tensor("gy")
            if f.name.hasPrefix("max") {
                try f.expect(try f.backend.maxPool2d(x, p), "y")
                try f.expect(try f.backend.maxPool2dBackward(gy, input: x, p), "gx")
            } else {
                try f.expect(try f.backend.avgPool2d(x, p), "y")
                try f.expect(try f.backend.avgPool2dBackward(gy, inputShape: x.shape, p), "gx")
            }
        }
        try each(["adaptive0", "adaptive1"]) { f in
            let out = f.settings["out"] as! [Int]
            let x = try f.tensor("x")
            try f.expect(try f.backend.adaptiveAvgPool2d(x, outputSize: (out[0], out[1])), "y")
            try f.expect(try f.backend.adaptiveAvgPool2dBackward(try f.tensor("gy"), inputShape: x.shape), "gx")
        }
    }

    @Test func linearAndBatchNorm() throws {
        try each(["linear"]) { f in
            let x = try f.tensor("x"), w = try f.tensor("w"), gy = try f.tensor("gy")
            try f.expect(try f.backend.linear(x, weight: w, bias: try f.tensor("b")), "y")
            try f.expect(try f.backend.linearBackwardInput(gy, weight: w), "gx")
            try f.expect(try f.backend.linearBackwardWeight(gy, input: x), "gw")
            try f.expect(try f.backend.linearBackwardBias(gy), "gb")
        }
        try each(["batchnorm"]) { f in
            let bn = BatchNormParams(gamma: try f.tensor("gamma"), beta: try f.tensor("beta"), mean: try f.tensor("mean"),
                                     variance: try f.tensor("var"), eps: 1e-5)
            try f.expect(try f.backend.batchNorm2d(try f.tensor("x"), bn), "y")
            try f.expect(try f.backend.batchNorm2dBackward(try f.tensor("gy"), bn), "gx")
        }
    }

    @Test func softmaxElementwiseChannelsReductions() throws {
        try each(["softmax", "log_softmax"]) { f in
            let log = f.name == "log_softmax"
            let y = log ? try f.backend.logSoftmax(try f.tensor("x")) : try f.backend.softmax(try f.tensor("x"))
            try f.expect(y, "y")
            let gx = log ? try f.backend.logSoftmaxBackward(try f.tensor("gy"), output: y)
                         : try f.backend.softmaxBackward(try f.tensor("gy"), output: y)
            try f.expect(gx, "gx")
        }
        // The gradients of the elementwise ops are the tape's (Graph): its backward of each, seeded
        // with PyTorch's gy, against PyTorch's. (axpy is a backend op the tape does not record:
        // its value alone.)
        try each(["mul", "add"]) { f in
            let g = Graph(backend: f.backend)
            let a = g.input(try f.tensor("a")), b = g.input(try f.tensor("b"))
            let y = f.name == "mul" ? try g.mul(a, b) : try g.add(a, b)
            try f.expect(g.tensor(y), "y")
            let grads = try g.backward(from: y, seed: try f.tensor("gy"))
            try f.expect(try #require(grads.of(a)), "ga")
            try f.expect(try #require(grads.of(b)), "gb")
        }
        try each(["axpy"]) { f in
            try f.expect(try f.backend.axpy(0.75, try f.tensor("a"), try f.tensor("b")), "y")
        }
        try each(["scale"]) { f in
            let g = Graph(backend: f.backend)
            let a = g.input(try f.tensor("a"))
            let y = try g.scale(a, -2.5)
            try f.expect(g.tensor(y), "y")
            try f.expect(try #require(try g.backward(from: y, seed: try f.tensor("gy")).of(a)), "ga")
        }
        try each(["concat"]) { f in
            try f.expect(try f.backend.concat([try f.tensor("p0"), try f.tensor("p1"), try f.tensor("p2")]), "y")
            let grads = try f.backend.split(try f.tensor("gy"), sizes: [1, 3, 2])
            for (i, g) in grads.enumerated() { try f.expect(g, "g\(i)") }
        }
        let ops: [(String, Reduction)] = [("reduce_sum", .sum), ("reduce_mean", .mean), ("reduce_sumsq", .sumOfSquares)]
        try each(ops.map(\.0)) { f in
            let op = ops.first { $0.0 == f.name }!.1
            let x = try f.tensor("x")
            try f.expect(try f.backend.reduce(x, op, axis: 1), "y")
            try f.expect(try f.backend.reduceBackward(try f.tensor("gy"), input: x, op, axis: 1), "gx")
        }
        try each(["reduce_max"]) { f in
            let x = try f.tensor("x")
            let (values, indices) = try f.backend.max(x, axis: 1)
            try f.expect(values, "y")
            try f.expect(indices, "indices", tolerance: 0)
            try f.expect(try f.backend.maxBackward(try f.tensor("gy"), indices: indices, inputShape: x.shape, axis: 1), "gx")
        }
    }

    @Test func resizeAndChannelMax() throws {
        try each(["resize0", "resize1", "resize2"]) { f in
            let size = f.settings["size"] as! [Int]
            try f.expect(try f.backend.resizeBilinear(try f.tensor("x"), height: size[0], width: size[1]), "y", tolerance: 1e-5)
            try f.expect(try f.backend.resize(try f.tensor("x"), height: size[0], width: size[1], mode: .bilinearAlignCorners), "corners", tolerance: 1e-5)
            try f.expect(try f.backend.resize(try f.tensor("x"), height: size[0], width: size[1], mode: .nearest), "nearest", tolerance: 0)
        }
        try each(["channel_max"]) { f in try f.expect(try f.backend.channelMax(try f.tensor("x")), "y", tolerance: 0) }
    }

    @Test func corruptSafetensorsThrow() throws {
        let good = try Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/torch_ops.safetensors"))
        for bad in [Data(), good.prefix(7), good.prefix(100), good.prefix(good.count - 1), Data([255, 255, 255, 255, 255, 255, 255, 127]) + good.dropFirst(8)] {
            #expect(throws: SafeTensorsFile.FormatError.self) { try SafeTensorsFile(data: bad) }
        }
        // What the reference library refuses, refused by name: overlapping ranges, a gap, bytes
        // after the last tensor, a float in a shape, a header over 100 MB.
        func file(_ header: String, data: Int) -> Data {
            let h = Array(header.utf8)
            return Data((0..<8).map { UInt8((h.count >> (8 * $0)) & 255) }) + Data(h) + Data(count: data)
        }
        let cases: [(Data, String)] = [
            (file(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12),
             "overlapping"),
            (file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: 12),
             "leaving a gap"),
            (file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: 8), "the tensors hold 4 bytes of data, the file 8"),
            (file(#"{"a":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}}"#, data: 8), "malformed dtype, shape or data_offsets"),
            (Data([0x10, 0xE1, 0xF5, 0x05, 0, 0, 0, 0]) + Data(count: 100_000_016), "over the format's 100 MB limit"),
        ]
        for (bytes, message) in cases {
            #expect { try SafeTensorsFile(data: bytes) } throws: { "\($0)".contains(message) }
        }
        // The same file, tiled exactly, loads.
        let fine = file(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, data: 12)
        #expect(try SafeTensorsFile(data: fine).tensors.count == 2)
    }
}

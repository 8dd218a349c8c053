import Backend
import Foundation

/// A layer of an imported graph named as torch names the module whose output it is
/// (`layer4.1`, `features.denseblock3`, `encoder.layers.encoder_layer_11`).
public struct ModuleLayer: Sendable, Equatable {
    /// The module's qualified name, as `named_modules()` gives it.
    public let name: String
    /// The node output that is the module's output (for a module called more than once, that
    /// of its last call): the tap the name stands for.
    public let layer: String
    /// The module's class (`BasicBlock`) where the file records it, else its output's op type.
    public let type: String
    /// How many of the module's ancestors enclose it (0 for a child of the root).
    public let depth: Int
}

/// Where an exported graph says which torch module each node belongs to, and which node
/// output is each module's output.
///
/// - The dynamo exporter writes each node's module path in its `pkg.torch.onnx.name_scopes`
///   metadata (`['', 'layer4', 'layer4.0', 'layer4.0.relu', 'relu_14']`: the root, the modules
///   outermost first, the op) and their classes in `pkg.torch.onnx.class_hierarchy`.
/// - The TorchScript exporter writes it in node names (`/layer4/layer4.0/relu_1/Relu`): each
///   part is the module's name under its parent (a sequential container's children are written
///   with their parent's name, `downsample/downsample.0`), and `_N` marks the N-th call of a
///   module called more than once (`relu_1`: taken as `relu` where `relu` is a scope too).
/// - Otherwise a node that reads a float initializer named `<module>.weight` or `.bias` (or
///   the dynamo exporter's folded `.weight_bias`) is that module's output.
///
/// A module's output is the last node of its scope whose output is read outside it (or is the
/// graph's output); nodes computed on the host (shape arithmetic) are never one.
enum ONNXModules {
    struct Scope { var path: [String]; var types: [String?] }

    /// Each node output's module path, outermost first, from the graph's metadata or names.
    static func scopes(_ graph: Onnx_GraphProto) -> [String: Scope] {
        var result: [String: Scope] = [:]
        var legacy: [(output: String, parts: [String])] = []
        for node in graph.node {
            guard let output = node.output.first else { continue }
            let meta = Dictionary(node.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            if let names = meta["pkg.torch.onnx.name_scopes"].flatMap(pythonStrings), names.count >= 2 {
                let classes = meta["pkg.torch.onnx.class_hierarchy"].flatMap(pythonStrings) ?? []
                let modules = Array(names.dropFirst().dropLast()).map(printable)
                let types = (1..<(names.count - 1)).map { i -> String? in
                    i < classes.count ? printable(String(classes[i].split(separator: ".").last ?? "")) : nil
                }
                if !modules.isEmpty { result[output] = Scope(path: modules, types: types) }
            } else if node.name.hasPrefix("/") {
                let parts = node.name.split(separator: "/").map(String.init)
                if parts.count >= 2 { legacy.append((output, Array(parts.dropLast()))) }
            }
        }
        // TorchScript scopes: first as written, then with `_N` dropped where the plain name is a
        // scope of the same parent too (the module's first call).
        func resolve(_ parts: [String], known: Set<String>?) -> [String] {
            var path: [String] = [], previous: [String] = []
            for part in parts {
                var local = part
                if let parent = previous.first(where: { part.hasPrefix($0 + ".") }) { local = String(part.dropFirst(parent.count + 1)) }
                var full = path.last.map { "\($0).\(local)" } ?? local
                var plainPart = part
                if let known, let range = full.range(of: #"_[0-9]+$"#, options: .regularExpression),
                   known.contains(String(full[..<range.lowerBound])) {
                    full = String(full[..<range.lowerBound])
                    plainPart = part.range(of: #"_[0-9]+$"#, options: .regularExpression).map { String(part[..<$0.lowerBound]) } ?? part
                }
                path.append(full)
                previous = [part, plainPart]
            }
            return path
        }
        let written = Set(legacy.flatMap { resolve($0.parts, known: nil) })
        for (output, parts) in legacy {
            let path = resolve(parts, known: written)  // node names are printable already
            result[output] = Scope(path: path, types: path.map { _ in nil })
        }
        return result
    }

    /// The named modules of `nodes` (in order), each with the node output that is its output,
    /// outermost first among modules that begin at the same node.
    static func modules(nodes: [ONNXNode], scopes: [String: Scope], floats: Set<String>, graphOutput: String) -> [ModuleLayer] {
        var scopes = scopes
        if scopes.isEmpty {
            for node in nodes where node.host == nil {
                let named = node.inputs.filter { floats.contains($0) && !$0.hasPrefix("onnx::") }.compactMap { name -> String? in
                    for suffix in [".weight", ".bias", ".weight_bias"] where name.hasSuffix(suffix) && name.count > suffix.count {
                        return String(name.dropLast(suffix.count))
                    }
                    return nil
                }
                if let module = named.first { scopes[node.output] = Scope(path: [module], types: [nil]) }
            }
        }
        let device = nodes.filter { $0.host == nil }
        var index: [String: Int] = [:]
        for (i, node) in device.enumerated() { index[node.output] = i }
        var readers = [[Int]](repeating: [], count: device.count)
        for (j, node) in device.enumerated() {
            for input in node.inputs { if let i = index[input] { readers[i].append(j) } }
        }
        var output: [String: Int] = [:], first: [String: (node: Int, depth: Int)] = [:], types: [String: String] = [:]
        for (i, node) in device.enumerated() {
            guard let scope = scopes[node.output] else { continue }
            for (depth, module) in scope.path.enumerated() {
                if first[module] == nil { first[module] = (i, depth) }
                if let type = scope.types[depth] { types[module] = type }
                let leaves = node.output == graphOutput || readers[i].contains { j in
                    !(scopes[device[j].output]?.path.contains(module) ?? false)
                }
                if leaves { output[module] = i }
            }
        }
        let ordered = output.keys.sorted { a, b in
            let (fa, fb) = (first[a]!, first[b]!)
            return fa.node != fb.node ? fa.node < fb.node : fa.depth < fb.depth
        }
        return ordered.map { name in
            let node = device[output[name]!]
            return ModuleLayer(name: name, layer: node.output, type: types[name] ?? node.opType, depth: first[name]!.depth)
        }
    }

    /// The strings of a Python list literal of strings (`['', 'layer4', "it's"]`), or nil.
    static func pythonStrings(_ text: String) -> [String]? {
        let chars = Array(text.trimmingCharacters(in: .whitespaces))
        guard chars.first == "[", chars.last == "]" else { return nil }
        var strings: [String] = [], i = 1
        while i < chars.count - 1 {
            let c = chars[i]
            if c == " " || c == "," { i += 1; continue }
            guard c == "'" || c == "\"" else { return nil }
            var s = "", j = i + 1, closed = false
            while j < chars.count - 1 {
                if chars[j] == "\\", j + 1 < chars.count - 1 { s.append(chars[j + 1]); j += 2; continue }
                if chars[j] == c { closed = true; break }
                s.append(chars[j]); j += 1
            }
            guard closed else { return nil }
            strings.append(s)
            i = j + 1
        }
        return strings
    }
}

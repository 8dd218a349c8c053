import Foundation

/// One parameter of a kernel: its C type and name.
struct KernelParameter {
    enum Kind { case buffer, int, float, ulong }
    let kind: Kind
    let name: String

    /// The Swift argument label: the C name without trailing underscores.
    var label: String {
        var s = Substring(name)
        while s.hasSuffix("_") { s = s.dropLast() }
        return String(s)
    }
}

/// A `__kernel void name(...)` of a .cl file, or a mode of the shared GEMM (`#if defined(MODE)`
/// ... `#define GEMM_ARGS ...`), whose parameters gemm.cl's kernels take in that mode.
struct KernelSignature {
    let name: String
    let file: String
    let parameters: [KernelParameter]
    let declaration: String
}

enum SignatureError: Error, CustomStringConvertible {
    case unsupported(file: String, kernel: String, parameter: String)
    var description: String {
        switch self {
        case let .unsupported(file, kernel, parameter):
            return "\(file).cl: kernel \(kernel): parameter '\(parameter)' has a type the launch generator does not know"
        }
    }
}

/// The text with comments removed and continued lines joined.
func uncommented(_ source: String) -> String {
    var out = "", i = source.startIndex
    while i < source.endIndex {
        let rest = source[i...]
        if rest.hasPrefix("//") {
            i = source[i...].firstIndex(of: "\n") ?? source.endIndex
        } else if rest.hasPrefix("/*") {
            i = source.range(of: "*/", range: source.index(i, offsetBy: 2)..<source.endIndex)?.upperBound ?? source.endIndex
            out += " "
        } else {
            out.append(source[i])
            i = source.index(after: i)
        }
    }
    return out.replacingOccurrences(of: "\\\n", with: " ")
}

/// Object-like macros defined exactly once in `text` (`#define NAME body`), to expand in
/// parameter lists.
func singleMacros(_ text: String) -> [String: String] {
    var seen: [String: [String]] = [:]
    for line in text.split(separator: "\n") {
        let t = line.trimmingCharacters(in: .whitespaces)
        guard t.hasPrefix("#define ") else { continue }
        let body = t.dropFirst(8).trimmingCharacters(in: .whitespaces)
        let name = String(body.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
        guard !name.isEmpty, body.dropFirst(name.count).first != "(" else { continue }
        seen[name, default: []].append(body.dropFirst(name.count).trimmingCharacters(in: .whitespaces))
    }
    return seen.compactMapValues { $0.count == 1 ? $0[0] : nil }
}

func parameters(_ list: String, macros: [String: String], file: String, kernel: String) throws -> [KernelParameter] {
    var expanded = list
    for _ in 0..<4 {
        for (name, body) in macros where expanded.range(of: "\\b\(name)\\b", options: .regularExpression) != nil {
            expanded = expanded.replacingOccurrences(of: "\\b\(name)\\b", with: body, options: .regularExpression)
        }
    }
    return try expanded.split(separator: ",").map { raw in
        let words = raw.split(whereSeparator: { $0.isWhitespace }).map(String.init)
        guard let last = words.last else { throw SignatureError.unsupported(file: file, kernel: kernel, parameter: String(raw)) }
        var type = words.dropLast().joined(separator: " "), name = last
        while name.hasPrefix("*") { type += "*"; name.removeFirst() }
        type = type.replacingOccurrences(of: " *", with: "*").replacingOccurrences(of: "const ", with: "")
        let kind: KernelParameter.Kind
        switch type {
        case "__global float*", "__global float4*": kind = .buffer
        case "int": kind = .int
        case "float": kind = .float
        case "ulong": kind = .ulong
        default: throw SignatureError.unsupported(file: file, kernel: kernel, parameter: raw.trimmingCharacters(in: .whitespaces))
        }
        return KernelParameter(kind: kind, name: name)
    }
}

/// Every kernel of `source` (file `file`, without ".cl") with parameters written out, and every
/// GEMM mode it defines. Kernels whose parameter list is the GEMM macro are left to the modes.
func signatures(file: String, source: String) throws -> (kernels: [KernelSignature], gemmModes: [KernelSignature]) {
    let text = uncommented(source)
    let macros = singleMacros(text)
    var kernels: [KernelSignature] = []
    let pattern = try NSRegularExpression(pattern: "__kernel\\b[^{;]*?\\bvoid\\s+(\\w+)\\s*\\(([^)]*)\\)\\s*\\{")
    let ns = text as NSString
    for match in pattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
        let name = ns.substring(with: match.range(at: 1)), list = ns.substring(with: match.range(at: 2))
        if list.contains("GEMM_KERNEL_ARGS") { continue }
        let declaration = "\(name)(" + list.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ") + ")"
        kernels.append(KernelSignature(name: name, file: file, parameters: try parameters(list, macros: macros, file: file, kernel: name),
                                       declaration: declaration))
    }
    var modes: [KernelSignature] = []
    var mode: String?
    for line in text.split(separator: "\n") {
        let t = line.trimmingCharacters(in: .whitespaces)
        for prefix in ["#if defined(", "#elif defined("] where t.hasPrefix(prefix) {
            mode = String(t.dropFirst(prefix.count).prefix { $0 != ")" })
        }
        if t.hasPrefix("#endif") { mode = nil }
        if t.hasPrefix("#define GEMM_ARGS "), let mode {
            let list = String(t.dropFirst("#define GEMM_ARGS ".count))
            modes.append(KernelSignature(name: mode, file: file, parameters: try parameters(list, macros: macros, file: file, kernel: mode),
                                         declaration: "GEMM_ARGS in \(mode): " + list.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")))
        }
    }
    return (kernels, modes)
}

/// Swift source: one throwing `KernelCall` factory per kernel and one `GemmCall` factory per
/// GEMM mode, arguments labelled and typed from the signature, ints checked to fit 32 bits.
func launchFunctions(kernels: [KernelSignature], gemmModes: [KernelSignature]) -> String {
    func function(_ s: KernelSignature, result: String, head: String) -> String {
        let params = s.parameters.enumerated().map { i, p -> String in
            let type: String
            switch p.kind { case .buffer: type = "Buffer<Float>"; case .int: type = "Int"; case .float: type = "Float"; case .ulong: type = "UInt64" }
            let label = ["var", "let", "inout"].contains(p.label) ? "`\(p.label)`" : p.label
            return "\(label) a\(i): \(type)"
        }
        let args = s.parameters.enumerated().map { i, p -> String in
            switch p.kind {
            case .buffer: return ".buffer(a\(i))"
            case .int: return "try kernelInt(a\(i), \"\(s.name)\", \"\(p.label)\")"
            case .float: return ".float(a\(i))"
            case .ulong: return ".ulong(a\(i))"
            }
        }
        return """
            /// \(s.file).cl: `\(s.declaration)`
            package static func \(s.name)(\(params.joined(separator: ", "))) throws -> \(result) {
                \(result)(\(head), arguments: [\(args.joined(separator: ", "))])
            }

        """
    }
    var text = """
    // Generated by KernelEmbedder from the kernel signatures of Kernels/*.cl. Do not edit.
    import BackendCore
    import Device

    /// One kernel and its arguments, made by the factory named after the kernel, whose labels
    /// and types are the kernel's parameters: a missing, extra, misplaced or mistyped argument
    /// does not compile.
    package struct KernelCall {
        /// The kernel function's name.
        package let name: String
        /// The .cl file (without extension) that defines it.
        package let file: String
        /// The arguments, in the signature's order.
        package let arguments: [KernelArgument]
    }

    /// The arguments of gemm.cl's kernels in one mode (`GEMM_ARGS` as the mode's file defines it).
    package struct GemmCall {
        /// The mode's macro (CONV_FORWARD, LINEAR_BACKWARD_WEIGHT, MATMUL, ...).
        package let mode: String
        /// The .cl file (without extension) that defines the mode.
        package let file: String
        /// The arguments, in GEMM_ARGS's order.
        package let arguments: [KernelArgument]
    }

    /// An `int` argument, refused when it does not fit in 32 bits.
    func kernelInt(_ value: Int, _ kernel: String, _ name: String) throws -> KernelArgument {
        guard let v = Int32(exactly: value) else {
            throw BackendError(kernel, "argument \\(name) = \\(value) does not fit in the kernel's 32-bit int")
        }
        return .int(v)
    }

    extension KernelCall {

    """
    for s in kernels { text += function(s, result: "KernelCall", head: "name: \"\(s.name)\", file: \"\(s.file)\"") }
    text += "}\n\nextension GemmCall {\n"
    for s in gemmModes { text += function(s, result: "GemmCall", head: "mode: \"\(s.name)\", file: \"\(s.file)\"") }
    text += "}\n"
    return text
}

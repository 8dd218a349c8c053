import Foundation
import LoupeCLI
import Testing
import TestSupport

/// The README's `$ loupe ...` examples run as written (paths relative to the repository root)
/// and print what the README shows: the same classes in the same order, probabilities within
/// 5e-4 (the README's four digits, whatever the device), every other line as shown but the
/// device's name.
@Suite(.timed) struct ReadmeTests {
    @Test func commandLineExamplesPrintWhatTheReadmeShows() throws {
        guard weights(), device() else { return }
        let lines = try String(contentsOf: repo.appendingPathComponent("README.md"), encoding: .utf8).components(separatedBy: "\n")
        var examples: [(command: String, output: [String])] = []
        for (i, line) in lines.enumerated() where line.hasPrefix("$ loupe ") {
            let output = lines[(i + 1)...].prefix { !$0.hasPrefix("```") && !$0.hasPrefix("$ ") }
            examples.append((String(line.dropFirst(8)), Array(output)))
        }
        #expect(!examples.isEmpty, "the README's command-line examples went missing")
        let ranked = try NSRegularExpression(pattern: #"^\s*(\d+)\.\s+(\d+)\s+(.+?)\s+([0-9.]+)$"#)
        func fields(_ s: String) -> [String]? {
            guard let m = ranked.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) else { return nil }
            return (1...4).map { String(s[Range(m.range(at: $0), in: s)!]) }
        }
        for (command, expected) in examples {
            let arguments = command.split(separator: " ").map { word in
                FileManager.default.fileExists(atPath: repo.appendingPathComponent(String(word)).path)
                    ? repo.appendingPathComponent(String(word)).path : String(word)
            }
            let printed = try run(arguments).replacingOccurrences(of: repo.path + "/", with: "")
                .components(separatedBy: "\n").filter { !$0.isEmpty }
            #expect(printed.count == expected.count, "\(command): printed \(printed)")
            for (got, shown) in zip(printed, expected) {
                if let g = fields(got), let s = fields(shown) {
                    #expect(g[0...2] == s[0...2], "\(command): \(got) where the README shows \(shown)")
                    #expect(abs(Float(g[3])! - Float(s[3])!) <= 5e-4, "\(command): \(got) where the README shows \(shown)")
                } else if shown.contains(" on ") {
                    #expect(got.components(separatedBy: " on ")[0] == shown.components(separatedBy: " on ")[0], "\(command): \(got)")
                } else {
                    #expect(got == shown, "\(command): \(got) where the README shows \(shown)")
                }
            }
        }
    }
}

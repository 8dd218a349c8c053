import Foundation
import PackagePlugin

/// Embeds the git commit the package is built from (for `loupe --version` and every run's
/// record). Rebuilt when HEAD or the branch it names moves; "unknown" outside a git checkout.
@main
struct EmbedBuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let git = context.package.directoryURL.appending(path: ".git")
        var inputs: [URL] = []
        let head = git.appending(path: "HEAD")
        if FileManager.default.fileExists(atPath: head.path) {
            inputs.append(head)
            if let text = try? String(contentsOf: head, encoding: .utf8), text.hasPrefix("ref: ") {
                let ref = git.appending(path: text.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines))
                if FileManager.default.fileExists(atPath: ref.path) { inputs.append(ref) }
            }
            let packed = git.appending(path: "packed-refs")
            if FileManager.default.fileExists(atPath: packed.path) { inputs.append(packed) }
        }
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo.swift")
        return [
            .buildCommand(
                displayName: "Embedding the git commit",
                executable: try context.tool(named: "KernelEmbedder").url,
                arguments: ["--commit", output.path, git.path],
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}

import Foundation
import PackagePlugin

/// Embeds every `Kernels/*.cl` file of the package into the target as a Swift string constant,
/// so the built binary needs no kernel files beside it, and generates a typed launch factory
/// per kernel from its signature (`KernelCall`, `GemmCall`).
@main
struct EmbedKernels: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let kernels = context.package.directoryURL.appending(path: "Kernels")
        let files = try FileManager.default
            .contentsOfDirectory(at: kernels, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "cl" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedKernels.swift")
        let launches = context.pluginWorkDirectoryURL.appending(path: "KernelLaunches.swift")
        return [
            .buildCommand(
                displayName: "Generating typed launches for \(files.count) OpenCL kernel files",
                executable: try context.tool(named: "KernelEmbedder").url,
                arguments: ["--launches", launches.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [launches]
            ),
            .buildCommand(
                displayName: "Embedding \(files.count) OpenCL kernel files",
                executable: try context.tool(named: "KernelEmbedder").url,
                arguments: [output.path] + files.map(\.path),
                inputFiles: files,
                outputFiles: [output]
            )
        ]
    }
}

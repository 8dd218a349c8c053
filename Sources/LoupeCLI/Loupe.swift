import ArgumentParser
import Models

/// `loupe`: look inside image neural networks.
public struct Loupe: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "loupe",
        abstract: "Look inside image neural networks on any OpenCL device.",
        version: LoupeVersion.description,
        subcommands: [ClassifyCommand.self, SaliencyCommand.self, SanityCommand.self, VisualizeCommand.self, InvertCommand.self, AtlasCommand.self, LayersCommand.self, CompareCommand.self, DevicesCommand.self, BenchCommand.self, TuneCommand.self]
    )
    public init() {}
}

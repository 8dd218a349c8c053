// swift-tools-version:6.0
// Two programs that use Loupe as a library, the way another package would: through its `Loupe`
// product, by path here (a release tag by URL works the same; see docs/library.md).
//   swift run --package-path Examples GradCAM [IMAGE] [OUT]
//   swift run --package-path Examples Visualize [CLASS] [OUT]
import PackageDescription

let package = Package(
    name: "LoupeExamples",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Loupe", path: "..")],
    targets: [
        .executableTarget(name: "GradCAM", dependencies: [.product(name: "Loupe", package: "Loupe")]),
        .executableTarget(name: "Visualize", dependencies: [.product(name: "Loupe", package: "Loupe")]),
    ],
    swiftLanguageModes: [.v6]
)

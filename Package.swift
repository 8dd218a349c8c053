// swift-tools-version:6.0
import Foundation
import PackageDescription

/// The CPU reference backend, seeded weights, image resampling and attribution loops are plain
/// Swift loops over whole networks and images, many times slower unoptimized: `make test` sets
/// LOUPE_OPTIMIZE_DEBUG=1 so that debug builds optimize these modules and the suite finishes in
/// minutes. Without it (a package depending on Loupe, a plain `swift build`) no target has an
/// unsafe flag, so every product also builds as a versioned dependency.
let optimizedInDebug: [SwiftSetting] = ProcessInfo.processInfo.environment["LOUPE_OPTIMIZE_DEBUG"] == "1"
    ? [.unsafeFlags(["-O"], .when(configuration: .debug))] : []

let package = Package(
    name: "Loupe",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "loupe", targets: ["loupe"]),
        // Everything a program needs, re-exported: `import Loupe`.
        .library(name: "Loupe", targets: ["Loupe"]),
        .library(name: "Device", targets: ["Device"]),
        .library(name: "Backend", targets: ["Backend"]),
        .library(name: "BackendCore", targets: ["BackendCore"]),
        .library(name: "Graph", targets: ["Graph"]),
        .library(name: "WeightFiles", targets: ["WeightFiles"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "ImageIO", targets: ["ImageIO"]),
        .library(name: "Interpret", targets: ["Interpret"]),
        .library(name: "Figures", targets: ["Figures"]),
        .library(name: "Atlas", targets: ["Atlas"]),
        .library(name: "Bench", targets: ["Bench"]),
        .library(name: "Workflows", targets: ["Workflows"]),
        // The C interface (Sources/LoupeC/loupe.h) that the Python package loads.
        .library(name: "LoupeC", type: .dynamic, targets: ["LoupeC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The runtime only; Sources/Models/ONNX/onnx.pb.swift is generated once by tools/generate_onnx_swift.sh.
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        // `make docs`: the DocC catalog (Sources/Loupe/Loupe.docc) and every module's API.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // C view of <CL/cl.h>; nothing else.
        .systemLibrary(
            name: "COpenCL",
            pkgConfig: "OpenCL",
            providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]
        ),
        // Image codecs: libpng's simplified API and TurboJPEG (neither longjmps through Swift).
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        // Cairo: labelled figures (text, axes, colour bars) as PNG, SVG and PDF.
        .systemLibrary(name: "CCairo", pkgConfig: "cairo", providers: [.apt(["libcairo2-dev", "fonts-dejavu-core"])]),
        // Decode / encode, resize, crop, normalize.
        .target(name: "ImageIO", dependencies: ["BackendCore", "CPNG", "CTurboJPEG"], swiftSettings: optimizedInDebug),
        // Labelled figures: image grids with titles and colour bars, line charts with axes and legends.
        .target(name: "Figures", dependencies: ["CCairo", "ImageIO"]),
        // OpenCL objects as Swift types. Knows nothing about neural nets.
        .target(name: "Device", dependencies: ["COpenCL"]),
        // Turns Kernels/*.cl into Swift string constants at build time.
        .executableTarget(name: "KernelEmbedder"),
        .plugin(name: "EmbedKernels", capability: .buildTool(), dependencies: ["KernelEmbedder"]),
        // The git commit of the build, for `loupe --version` and run records.
        .plugin(name: "EmbedBuildInfo", capability: .buildTool(), dependencies: ["KernelEmbedder"]),
        // Shape, Tensor, the op parameters, ShapeRules and the Backend protocol: what weight
        // files, the tape and a new backend need, without OpenCL.
        .target(name: "BackendCore", swiftSettings: optimizedInDebug),
        // CPUBackend: the plain-Swift reference every device result is checked against.
        .target(name: "CPUReference", dependencies: ["BackendCore"], swiftSettings: optimizedInDebug),
        // OpenCLBackend: the kernel families, the GEMM engine, the tuning cache, Kernels/*.cl.
        .target(name: "OpenCLCompute", dependencies: ["BackendCore", "Device"], swiftSettings: optimizedInDebug,
                plugins: ["EmbedKernels"]),
        // The three above re-exported, and DeviceChoice (auto / cpu / opencl:N).
        .target(name: "Backend", dependencies: ["BackendCore", "CPUReference", "OpenCLCompute", "Device"]),
        // Weight files: safetensors, PyTorch checkpoints (zip and legacy pickles, read without
        // executing anything), SHA-256; host tensors with their shapes.
        .target(name: "WeightFiles", dependencies: ["BackendCore"], swiftSettings: optimizedInDebug),
        // The tape: records the forward pass, runs the backward pass, taps named layers.
        .target(name: "Graph", dependencies: ["BackendCore"]),
        // Layers, architectures with torchvision parameter names, weight loaders.
        .target(name: "Models", dependencies: ["Graph", "Backend", "WeightFiles", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: optimizedInDebug),
        // Attribution methods, CAMs, metrics.
        .target(name: "Interpret", dependencies: ["Graph", "Models", "Backend", "ImageIO"], swiftSettings: optimizedInDebug),
        // The umbrella: re-exports the modules above (Sources/Loupe/Loupe.swift).
        .target(name: "Atlas", dependencies: ["Backend", "Graph", "Models", "ImageIO", "Interpret", "Figures", "WeightFiles"]),
        .target(name: "Loupe", dependencies: ["Device", "Backend", "WeightFiles", "Graph", "Models", "ImageIO", "Interpret", "Figures", "Atlas",
                                       "Workflows"]),
        // The C interface: opaque handles, float32 arrays by pointer, status codes, JSON options.
        .target(name: "LoupeC", dependencies: ["Backend", "Device", "Graph", "Models", "ImageIO", "Interpret", "WeightFiles", "Workflows"],
                exclude: ["loupe.h"]),
        // What the commands run, as a library: classification, the probe pass and target choice,
        // saliency with metrics and its files and report, compare's runs, whole-network bench jobs,
        // run records (the commit of the build).
        .target(name: "Workflows", dependencies: ["Backend", "Bench", "Graph", "Models", "ImageIO", "Interpret", "Figures", "WeightFiles"],
                plugins: ["EmbedBuildInfo"]),
        // Kernel microbenchmarks (device time from profiling events).
        .target(name: "Bench", dependencies: ["Backend", "Device", "Graph", "Models", "Interpret"]),
        // Subcommands: parse the arguments, call Workflows (and the other modules), print.
        .target(name: "LoupeCLI", dependencies: [
            "Backend", "Device", "WeightFiles", "Bench", "Graph", "Models", "ImageIO", "Interpret", "Figures", "Atlas", "Workflows",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "loupe", dependencies: ["LoupeCLI", "Interpret"]),
        .target(name: "TestSupport", dependencies: ["Backend", "Device"], path: "Tests/TestSupport"),
        .testTarget(name: "DeviceTests", dependencies: ["Device", "TestSupport"]),
        .testTarget(name: "BackendTests", dependencies: ["Backend", "Device", "Graph", "WeightFiles", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "GraphTests", dependencies: ["Graph", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "WeightFiles", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO", "Backend", "WeightFiles", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "FiguresTests", dependencies: ["Figures", "ImageIO", "TestSupport"]),
        .testTarget(name: "InterpretTests", dependencies: ["Interpret", "WeightFiles", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "LoupeCLITests", dependencies: ["LoupeCLI", "Atlas", "Backend", "Graph", "ImageIO", "Interpret", "Models", "TestSupport", "Workflows"]),
    ],
    swiftLanguageModes: [.v6]
)

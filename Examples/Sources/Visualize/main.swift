// Feature visualization of an ImageNet class with MobileNetV2: an image optimized to raise the
// class's logit (Fourier basis, colour decorrelation, transformation robustness; Lucid's
// defaults), written to out/visualization.png.
import Foundation
import Loupe

let arguments = CommandLine.arguments.dropFirst()
let target = Int(arguments.first ?? "") ?? 948  // 948: Granny Smith
let outPath = arguments.dropFirst().first ?? "out"
let out = URL(fileURLWithPath: outPath, isDirectory: true)

let backend = try OpenCLBackend(device: ComputeDevice.preferred(among: ComputeDevice.all())!)
let model = try ModelLocator.load(model: "mobilenet_v2", on: backend)

let job = FeatureVisualization(objectives: [try Objective.parse("class:\(target)")], size: 128, steps: 64)
let result = try job.run(model) { progress in print("step \(progress.step): objective \(progress.objectives[0])") }
try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
try result.image(0).writePNG(to: out.appendingPathComponent("visualization.png"))
print("wrote \(outPath)/visualization.png (\(imageNetClasses[target]))")

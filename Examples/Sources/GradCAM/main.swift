// Grad-CAM and guided backprop for the top class of an image, with torchvision's MobileNetV2
// (installed by `make setup`), written as heat-map overlays: out/gradcam.png, out/guided_backprop.png.
import Foundation
import Loupe

let arguments = CommandLine.arguments.dropFirst()
let imageURL = URL(fileURLWithPath: arguments.first ?? "../Assets/chelsea.png")
let outPath = arguments.dropFirst().first ?? "out"
let out = URL(fileURLWithPath: outPath, isDirectory: true)

let backend = try OpenCLBackend(device: ComputeDevice.preferred(among: ComputeDevice.all())!)
let model = try ModelLocator.load(model: "mobilenet_v2", on: backend)
let image = try Preprocessing.imagenet.prepare(RGBImage(contentsOf: imageURL))
let input = try backend.tensor(Preprocessing.imagenet.normalize(image), [1, 3, 224, 224])

// The probe pass `loupe saliency` runs: class probabilities and the top class of each image.
let probe = try Probe(model: model, input: input, names: { $0 == imageNetClasses.count ? imageNetClasses : nil })
let target = probe.scores.topClasses[0]
print("top class: \(target) \(classLabel(target, names: probe.names))")

try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
let methods: [any AttributionMethod] = [CAM(.gradCAM, layer: "features.18"), GuidedBackprop()]
for method in methods {
    let maps = try method.attribute(model, input: input, targets: [target])
    let (scaled, colormap) = MapStyle().scaled(map: maps.map(0), raw: maps.raw(0), signed: maps.isSigned)
    let overlay = try MapImages.overlay(scaled.colorized(colormap, width: 224, height: 224), on: image)
    try overlay.writePNG(to: out.appendingPathComponent("\(maps.method).png"))
    print("wrote \(outPath)/\(maps.method).png")
}

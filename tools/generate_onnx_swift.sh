#!/bin/sh
# Regenerates Sources/Models/ONNX/onnx.pb.swift from onnx.proto (run by hand; CI never builds
# the protoc plugin). Needs protoc (apt install protobuf-compiler), pip and a Swift toolchain.
# onnx.proto comes from the onnx wheel on PyPI; protoc-gen-swift is built from swift-protobuf
# 1.39.0, the runtime version Package.swift pins.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
pip download --no-deps --quiet onnx==1.23.2 -d "$WORK/wheel"
(cd "$WORK" && python3 -c "import zipfile, glob; zipfile.ZipFile(glob.glob('wheel/*.whl')[0]).extract('onnx/onnx.proto', '.')")
mkdir -p "$WORK/plugin"
cat > "$WORK/plugin/Package.swift" <<'SWIFT'
// swift-tools-version:6.0
import PackageDescription
let package = Package(name: "plugin", dependencies: [.package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0")], targets: [])
SWIFT
(cd "$WORK/plugin" && swift build -c release --product protoc-gen-swift)
protoc --plugin=protoc-gen-swift="$WORK/plugin/.build/release/protoc-gen-swift" \
  --swift_opt=Visibility=Internal --swift_out="$ROOT/Sources/Models/ONNX" -I "$WORK" "$WORK/onnx/onnx.proto"
mv "$ROOT/Sources/Models/ONNX/onnx/onnx.pb.swift" "$ROOT/Sources/Models/ONNX/onnx.pb.swift"
rmdir "$ROOT/Sources/Models/ONNX/onnx"
echo "wrote Sources/Models/ONNX/onnx.pb.swift"

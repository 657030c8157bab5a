// swift-tools-version:6.1
// Fuzzing (issue 8) of every decoder that reads bytes from outside, with
// libFuzzer: one executable, the target chosen by MESHGUARD_FUZZ_TARGET.
// A package of its own so the root package gains only a library product;
// build and run with fuzz/run.sh (it passes -sanitize=fuzzer).
import PackageDescription

let package = Package(
    name: "meshguard-fuzz",
    dependencies: [
        .package(name: "meshguard-agent", path: ".."),
    ],
    targets: [
        .executableTarget(name: "MeshguardFuzz", dependencies: [
            .product(name: "MeshDecoders", package: "meshguard-agent"),
        ]),
    ],
    // One thread drives every target: Swift 5 mode spares the fixtures Sendable ceremony.
    swiftLanguageModes: [.v5]
)

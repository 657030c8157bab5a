// swift-tools-version:6.1
// The SWIM simulation benchmark (issue 5): our LAN preset beside memberlist's
// LAN defaults at 100, 1,000 and 10,000 nodes. A package of its own so the
// root package gains only a library product; run it with
// bench/swim-simulation.sh (release build).
import PackageDescription

let package = Package(
    name: "swim-bench",
    dependencies: [
        .package(name: "meshguard-agent", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "SWIMBench", dependencies: [
            .product(name: "MeshSWIMSimulation", package: "meshguard-agent"),
        ]),
    ]
)

// swift-tools-version:6.1
// meshguard-agent: a serverless WireGuard mesh VPN agent for Linux.
//
// Targets follow the layering in docs/architecture.md. Pure targets (no I/O,
// no clock, no Foundation) are listed in scripts/check-layering, which CI runs.
import PackageDescription

/// A C library from Debian, found through pkg-config.
func systemLibrary(_ name: String, pkgConfig: String, apt: String) -> Target {
    .systemLibrary(name: name, path: "Sources/C/\(name)", pkgConfig: pkgConfig, providers: [.apt([apt])])
}

let package = Package(
    name: "meshguard-agent",
    products: [
        .executable(name: "meshguard-agent", targets: ["MeshguardAgent"]),
        // The SWIM core and its simulator, for the benchmark package in bench/swim.
        .library(name: "MeshSWIMSimulation", targets: ["MeshBase", "MeshSWIM", "MeshTestKit"]),
        // The decoders that read bytes from outside, for fuzz/ (libFuzzer).
        .library(name: "MeshDecoders", targets: ["MeshBase", "MeshCrypto", "MeshIdentity", "MeshWireGuard", "MeshSWIM", "MeshProtocol", "MeshCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The daemon's services in one group, graceful shutdown on SIGTERM (issue 6).
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        // C at the edge: Debian's libraries behind module maps and shim headers.
        systemLibrary("CSodium", pkgConfig: "libsodium", apt: "libsodium-dev"),
        systemLibrary("CNetlink", pkgConfig: "libnl-3.0", apt: "libnl-3-dev"),
        systemLibrary("CNetlinkGenl", pkgConfig: "libnl-genl-3.0", apt: "libnl-genl-3-dev"),
        systemLibrary("CNetlinkRoute", pkgConfig: "libnl-route-3.0", apt: "libnl-route-3-dev"),

        // Vocabulary: bytes, base64, keys, IP addresses. Standard library only.
        .target(name: "MeshBase"),
        // Pure algorithms: crypto primitives (libsodium + Swift BLAKE2s/BLAKE3).
        .target(name: "MeshCrypto", dependencies: ["MeshBase", "CSodium"]),
        // Pure algorithms: identity, trust evaluation, mesh address derivation.
        .target(name: "MeshIdentity", dependencies: ["MeshBase", "MeshCrypto"]),
        // Sans-IO state machines: the WireGuard protocol (handshake, cookies,
        // transport, anti-replay, allowed IPs, timers), the data-plane model,
        // and the cross-platform userspace API (UAPI) codec.
        .target(name: "MeshWireGuard", dependencies: ["MeshBase", "MeshCrypto"]),

        // I/O adapters: files (atomic, permission-checked) and the config directory.
        .target(name: "MeshSystem", dependencies: [
            "MeshBase", "MeshIdentity",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // C at the edge: Linux facilities Swift cannot import (TUN ioctls, mmsg, cmsg).
        .target(name: "CLinuxShims", path: "Sources/C/CLinuxShims", linkerSettings: [.linkedLibrary("resolv")]),
        // I/O adapters: TUN device, batched UDP sockets, monotonic clock.
        .target(name: "MeshLinux", dependencies: [
            "MeshBase", "CLinuxShims",
            .product(name: "SystemPackage", package: "swift-system"),
        ]),
        // I/O adapters: the userspace data plane (WireGuardDevice on TUN + UDP
        // threads) and its UAPI socket for wg(8).
        .target(name: "MeshUserspace", dependencies: [
            "MeshBase", "MeshCrypto", "MeshWireGuard", "MeshLinux",
        ]),
        // I/O adapters: netlink sockets through libnl (generic netlink for now).
        .target(name: "MeshNetlink", dependencies: ["CNetlink", "CNetlinkGenl", "CNetlinkRoute", "MeshBase", "MeshCrypto", "MeshWireGuard"]),

        // I/O adapters: the data plane, one model and two engines (kernel, userspace), chosen in one place.
        .target(name: "MeshDataPlane", dependencies: [
            "MeshBase", "MeshCrypto", "MeshWireGuard", "MeshNetlink", "MeshUserspace",
        ]),

        // Wiring: the CLI and (later) the daemon.
        .executableTarget(name: "MeshguardAgent", dependencies: [
            "MeshBase", "MeshCrypto", "MeshIdentity", "MeshSystem", "MeshWireGuard", "MeshUserspace", "MeshLinux",
            "MeshDataPlane", "MeshNetlink", "MeshCore", "MeshProtocol",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        // Sans-IO state machines: SWIM membership with Lifeguard (probe, suspicion, gossip, push-pull).
        .target(name: "MeshSWIM", dependencies: ["MeshBase"]),
        // Pure algorithms: the control-plane wire format (signed member records, authenticated envelopes).
        .target(name: "MeshProtocol", dependencies: ["MeshBase", "MeshCrypto", "MeshIdentity", "MeshSWIM"]),
        // Sans-IO mesh logic: static peers, the desired data-plane state (SWIM joins here later).
        .target(name: "MeshCore", dependencies: ["MeshBase", "MeshCrypto", "MeshIdentity", "MeshWireGuard", "MeshSWIM", "MeshProtocol"]),

        // Test kit: in-memory twins (network of devices, virtual clock, packet builders).
        .target(name: "MeshTestKit", dependencies: ["MeshBase", "MeshCrypto", "MeshWireGuard", "MeshSWIM"]),

        // Tests mirror the targets one to one.
        .testTarget(name: "MeshBaseTests", dependencies: ["MeshBase"]),
        .testTarget(name: "MeshCryptoTests", dependencies: ["MeshCrypto", "MeshBase"]),
        .testTarget(name: "MeshIdentityTests", dependencies: ["MeshIdentity", "MeshCrypto", "MeshBase"]),
        .testTarget(name: "MeshWireGuardTests", dependencies: ["MeshWireGuard", "MeshCrypto", "MeshBase", "MeshTestKit"]),
        .testTarget(name: "MeshSWIMTests", dependencies: ["MeshSWIM", "MeshTestKit", "MeshBase"]),
        .testTarget(name: "MeshProtocolTests", dependencies: ["MeshProtocol", "MeshIdentity", "MeshCrypto", "MeshBase", "MeshSWIM"]),
        .testTarget(name: "MeshCoreTests", dependencies: ["MeshCore", "MeshIdentity", "MeshWireGuard", "MeshBase", "MeshSWIM", "MeshProtocol"]),
        .testTarget(name: "MeshSystemTests", dependencies: ["MeshSystem", "MeshIdentity", "MeshBase"]),
        .testTarget(name: "MeshLinuxTests", dependencies: ["MeshLinux", "MeshBase"]),
        .testTarget(name: "MeshUserspaceTests", dependencies: ["MeshUserspace", "MeshLinux", "MeshWireGuard", "MeshBase"]),
        .testTarget(name: "MeshNetlinkTests", dependencies: ["MeshNetlink", "MeshWireGuard", "MeshLinux", "MeshBase"]),
        .testTarget(name: "MeshguardAgentTests", dependencies: ["MeshguardAgent"]),
    ]
)

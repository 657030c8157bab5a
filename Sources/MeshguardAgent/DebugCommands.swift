// Hidden developer commands: used by the benchmarks in bench/, not by users.
import ArgumentParser
import MeshLinux
import MeshNetlink
import MeshSystem
import MeshBase
import MeshCore
import MeshWireGuard

struct Debug: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Developer tools for benchmarks.", shouldDisplay: false,
        subcommands: [KernelApply.self, ResolveSeeds.self])
}

/// Applies a wg(8) configuration file to a kernel WireGuard interface through
/// the agent's netlink path, the way `up` does, and prints how long it took.
struct KernelApply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernel-apply",
        abstract: "Apply a wg-format configuration to a kernel interface; print milliseconds.")
    @Argument var interface: String
    @Argument var file: String
    @Flag(help: "Reconcile against the device read back over netlink: apply only the difference.") var reconcile = false
    @Option(help: ArgumentHelp("Reconcile against this earlier configuration, as the agent does with its cached state.", valueName: "file"))
    var from: String?
    @Flag(help: "Only compute the change (needs --from); no kernel needed.") var dryRun = false

    func run() throws {
        let text = try cli { try Files.readText(file, limit: 64 << 20) }
        var desired: DeviceConfiguration
        do { desired = try ConfFile.parse(text) } catch { throw CLIError("\(file): \(error)") }
        let wg = dryRun ? nil : try cli({ try KernelWireGuard() })
        if !dryRun && wg == nil { throw CLIError("the kernel has no wireguard module") }
        if dryRun && from == nil { throw CLIError("--dry-run needs --from") }
        var previous: DeviceConfiguration?
        if let from {
            do { previous = try ConfFile.parse(try cli { try Files.readText(from, limit: 64 << 20) }) } catch { throw CLIError("\(from): \(error)") }
        }
        let start = MonotonicClock.now()
        var applied = desired
        if reconcile || previous != nil {
            desired.replacePeers = false
            let actual = try previous ?? cli { try wg!.device(interface) }
            applied = Reconcile.change(from: actual, to: desired)
        }
        let computed = MonotonicClock.now()
        if let wg, !Reconcile.isEmpty(applied) { try cli { try wg.apply(applied, to: interface) } }
        let end = MonotonicClock.now()
        let diff = Double((computed - start).nanosecondsClamped) / 1e6
        let ms = Double((end - start).nanosecondsClamped) / 1e6
        print("applied \(applied.peers.count) peer change(s) (diff \(String(format2: diff)) ms, netlink \(String(format2: ms - diff)) ms) in \(String(format2: ms)) ms")
    }
}

extension String {
    /// A Double with two decimals, without Foundation.
    init(format2 v: Double) {
        let cents = Int((v * 100).rounded())
        self = "\(cents / 100).\(cents % 100 < 10 ? "0" : "")\(cents % 100)"
    }
}

/// Prints the endpoints that seeds name (flags' syntax), one per line.
struct ResolveSeeds: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resolve-seeds", abstract: "Resolve seeds to endpoints.")
    @Argument(help: "Seeds: 192.0.2.1:51821, [2001:db8::1]:51821, host.example:51821 or dns:example.com.") var seeds: [String]

    func run() throws {
        var parsed: [Seed] = []
        for s in seeds {
            guard let seed = Seed(s) else { throw CLIError("'\(s)' is not a seed (use 192.0.2.1:51821, [2001:db8::1]:51821, host.example:51821 or dns:example.com)") }
            parsed.append(seed)
        }
        for e in SeedResolver.resolve(parsed, warn: { Terminal.warn($0) }) { print(e) }
    }
}

// `meshguard-agent wireguard <iface>`: only the userspace WireGuard engine, in
// the foreground, configured through wg(8) via the UAPI socket — like
// `wireguard-go -f`. Stops cleanly on SIGINT or SIGTERM.
import ArgumentParser
import MeshLinux
import MeshUserspace
#if canImport(Glibc)
import Glibc
#endif

struct WireGuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wireguard",
        abstract: "Run the userspace WireGuard engine alone on a TUN interface (configure it with wg).",
        discussion: """
        Creates the TUN interface, serves /var/run/wireguard/<interface>.sock for
        wg(8), and runs in the foreground until SIGINT or SIGTERM. Address and
        link state are left to ip(8), as with wireguard-go:

          meshguard-agent wireguard wg0 &
          wg set wg0 private-key ./key listen-port 51820 peer ... allowed-ips ...
          ip addr add 10.0.0.1/24 dev wg0 && ip link set wg0 up
        """)

    @Argument(help: "Interface name (at most 15 characters).") var interface: String
    @Option(help: "Interface MTU.") var mtu: Int = 1420
    @Flag(help: "Bring the interface up at start.") var up = false

    func validate() throws {
        guard !interface.isEmpty, interface.utf8.count <= 15, !interface.contains("/"),
              interface.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw ValidationError("invalid interface name '\(interface)': use 1-15 characters, no '/' or spaces")
        }
        guard (576...65535).contains(mtu) else { throw ValidationError("--mtu must be between 576 and 65535") }
    }

    func run() throws {
        // Signals go to sigwait below, not to the engine's threads.
        var signals = sigset_t()
        sigemptyset(&signals)
        for s in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, s) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        var config = EngineConfiguration(interfaceName: interface)
        config.mtu = mtu
        config.bringUp = up
        let engine: UserspaceEngine
        do {
            engine = try UserspaceEngine(config)
            try engine.start()
        } catch {
            throw CLIError("cannot start interface \(interface): \(error)")
        }
        Terminal.printError("meshguard-agent: wireguard \(engine.interfaceName) running (UDP port \(engine.listenPort)); UAPI /var/run/wireguard/\(engine.interfaceName).sock")
        var received: Int32 = 0
        while true {
            sigwait(&signals, &received)
            if received != SIGHUP { break }
        }
        engine.stop()
    }
}

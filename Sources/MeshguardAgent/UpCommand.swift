// `meshguard-agent up`: brings up the mesh interface with this node's
// identity and mesh addresses, and programs the data plane with the trusted
// peers from the static peers file. Runs in the foreground; SIGHUP reloads
// trust and peers (only changes are applied), SIGINT/SIGTERM remove the
// interface and exit. Membership by gossip (issue 5) feeds the same path.
import ArgumentParser
import MeshBase
import MeshCore
import MeshDataPlane
import MeshIdentity
import MeshLinux
import MeshNetlink
import MeshSystem
import MeshWireGuard
#if canImport(Glibc)
import Glibc
#endif

struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bring up the mesh interface and program it with the trusted peers.",
        discussion: """
        The data plane is the kernel's WireGuard when the module is there (or
        loads), else meshguard-agent's own userspace WireGuard (--mode auto, the
        default); --kernel and --userspace force one. Peers come from the static
        peers file (<config-dir>/static-peers, or --peers): one line per peer,
        '<name-or-key> <address>:<port>', for peers in authorized_keys/.
        SIGHUP reloads trust and peers; SIGTERM removes the interface.
        """)

    @OptionGroup var options: ConfigOptions
    @OptionGroup var runtime: RuntimeOptions
    @Option(help: "Data plane: auto, kernel or userspace.") var mode: DataPlaneMode = .auto
    @Flag(help: "Use the kernel's WireGuard (same as --mode kernel).") var kernel = false
    @Flag(help: "Use the userspace WireGuard (same as --mode userspace).") var userspace = false
    @Option(name: .customLong("interface"), help: "Interface name.") var interfaceName = "mg0"
    @Option(help: "Interface MTU.") var mtu = 1420
    @Option(name: .customLong("listen-port"), help: "WireGuard UDP port (default 51820 kernel, 51821 userspace).") var listenPort: UInt16?
    @Option(name: .customLong("peers"), help: ArgumentHelp("Static peers file.", valueName: "file")) var peersFile: String?

    func validate() throws {
        if kernel && userspace { throw ValidationError("--kernel and --userspace exclude each other") }
        guard !interfaceName.isEmpty, interfaceName.utf8.count <= 15, !interfaceName.contains("/"),
              interfaceName.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw ValidationError("invalid interface name '\(interfaceName)': use 1-15 characters, no '/' or spaces")
        }
        guard (1280...65535).contains(mtu) else { throw ValidationError("--mtu must be between 1280 and 65535") }
    }

    var chosenMode: DataPlaneMode { kernel ? .kernel : userspace ? .userspace : mode }

    /// Identity, trust and static peers, read fresh (start and every SIGHUP).
    func loadPeers(_ dir: ConfigDirectory) throws -> [MeshPeerState] {
        let (trust, problems) = try cli { try dir.loadTrust() }
        for p in problems { Terminal.warn("skipped \(p)") }
        let path = peersFile ?? Files.join(dir.path, "static-peers")
        let text: String
        do {
            text = try Files.readText(path)
        } catch let e where e.isNotFound && peersFile == nil {
            return []
        } catch {
            throw CLIError(error)
        }
        let entries: [StaticPeer]
        do { entries = try StaticPeers.parse(text) } catch { throw CLIError("\(path): \(error)") }
        let (peers, unresolved) = DesiredState.resolve(entries, trust: trust)
        for u in unresolved { Terminal.warn("\(path): \(u)") }
        return peers
    }

    /// Reports IPv4 mesh address collisions and how they are resolved.
    func reportCollisions(_ peers: [MeshPeerState], identity: Identity) {
        for c in AddressCollisions.find(peers.map(\.key) + [identity.publicKey]) {
            let losers = c.losers.map { $0 == identity.publicKey ? "this node" : $0.abbreviated }.joined(separator: ", ")
            Terminal.warn("mesh IPv4 \(c.address) is derived by several members: \(c.winner == identity.publicKey ? "this node" : c.winner.abbreviated) keeps it; \(losers) reachable by IPv6 only")
        }
    }

    func run() throws {
        let dir = try options.directory()
        let identity = try cli { try dir.loadIdentity() }
        var peers = try loadPeers(dir)
        reportCollisions(peers, identity: identity)

        // Signals and file changes arrive as descriptors on this thread; the
        // engine threads started below inherit the blocked signal mask.
        let signals: SignalDescriptor, watcher: DirectoryWatcher
        do {
            signals = try SignalDescriptor([SIGINT, SIGTERM, SIGHUP])
            watcher = try DirectoryWatcher()
        } catch {
            throw CLIError(error)
        }
        let peersPath = peersFile ?? Files.join(dir.path, "static-peers")
        let peersDirectory = peersPath.lastIndex(of: "/").map { String(peersPath[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
        let watched = [dir.path, dir.authorizedKeysPath, peersDirectory]
        for p in watched { watcher.watch(p) }

        let addresses = DesiredState.interfaceAddresses(identity).map { RouteNetlink.InterfaceAddress($0.0, prefixLength: $0.1) }
        let settings = InterfaceSettings(name: interfaceName, mtu: mtu, addresses: addresses)
        let plane: DataPlane
        let reason: String
        do {
            (plane, reason) = try DataPlaneFactory.open(mode: chosenMode, interface: settings)
        } catch {
            throw CLIError("\(error)")
        }
        let port = listenPort ?? (plane.mode == .kernel ? 51820 : 51821)
        Terminal.info("data plane \(plane.mode.rawValue) (\(reason)); interface \(plane.interfaceName) \(addresses.map(\.description).joined(separator: " ")) port \(port)")
        do {
            try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: peers))
        } catch {
            plane.close()
            throw CLIError("cannot configure \(plane.interfaceName): \(error)")
        }
        let statusFile = runtime.statusFile(plane.interfaceName)
        func writeStatus() {
            var text = "mode:       \(plane.mode.rawValue) (\(reason))\n"
            text += "interface:  \(plane.interfaceName)\n"
            text += "identity:   \(identity.publicKey.base64)\n"
            text += "wireguard:  \(identity.wireGuardPublicKey.base64)\n"
            text += "addresses:  \(addresses.map(\.description).joined(separator: " "))\n"
            text += "port:       \(port)\n"
            text += "peers:      \(peers.count)\n"
            for p in peers {
                text += "  \(p.key.abbreviated)  \(p.endpoint.map(\.description) ?? "(no endpoint)")  \(p.key.meshAddresses.ipv4) \(p.key.meshAddresses.ipv6)\n"
            }
            do {
                try Files.createDirectory(runtime.path, mode: 0o755)
                try Files.writeAtomically(statusFile, contents: Array(text.utf8), mode: 0o644)
            } catch {
                Terminal.warn("cannot write status: \(error)")
            }
        }
        writeStatus()
        Terminal.info("\(peers.count) peer(s) configured; running (SIGHUP reloads, SIGTERM stops)")
        func reload(resync: Bool) {
            do {
                for p in watched { watcher.watch(p) }   // authorized_keys/ may have been created
                peers = try loadPeers(dir)
                reportCollisions(peers, identity: identity)
                if resync { plane.resync() }   // an administrator's reload also repairs drift (e.g. a manual `wg set`)
                let change = try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: peers))
                writeStatus()
                Terminal.info("reloaded: \(change.peers.count) peer change(s), \(peers.count) peer(s) configured")
            } catch {
                Terminal.warn("reload failed, keeping the current configuration: \(error)")
            }
        }
        let poller = Poller([signals.fileDescriptor, watcher.fileDescriptor])
        loop: while true {
            guard (try? poller.wait(timeout: nil)) != nil else { break }
            if poller.isReady(0) {
                for sig in signals.drain() {
                    if sig == SIGHUP { reload(resync: true) } else { break loop }
                }
            }
            if poller.isReady(1), watcher.drain() {
                // Let a burst of writes (an editor, a copy) settle for 200 ms, then apply it once.
                let quiet = Poller([watcher.fileDescriptor])
                while (try? quiet.wait(timeout: .milliseconds(200))) ?? 0 > 0 { watcher.drain() }
                reload(resync: false)
            }
        }
        plane.close()
        try? Files.remove(statusFile)
        Terminal.info("stopped; interface \(plane.interfaceName) removed")
    }
}

extension DataPlaneMode: ExpressibleByArgument {}

// `meshguard-agent up`: brings up the mesh interface with this node's
// identity and mesh addresses, and programs the data plane with the trusted
// peers from the static peers file. Runs in the foreground; SIGHUP reloads
// trust and peers (only changes are applied), SIGINT/SIGTERM remove the
// interface and exit. Membership by gossip (issue 5) feeds the same path.
import ArgumentParser
import MeshBase
import MeshCore
import MeshUserspace
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
    @Option(name: .customLong("seed"), help: ArgumentHelp("A seed to join the mesh through (repeatable): 192.0.2.1:51821, [2001:db8::1]:51821, host:port or dns:domain.", valueName: "seed"))
    var seeds: [String] = []
    @Option(name: .customLong("control-port"), help: "Control-plane UDP port in kernel mode (userspace mode shares the WireGuard port).")
    var controlPort: UInt16 = 51821
    @Option(name: .customLong("advertise"), help: ArgumentHelp("The address other members reach this node at (default: the route toward the first seed).", valueName: "ip"))
    var advertise: String?

    func validate() throws {
        if kernel && userspace { throw ValidationError("--kernel and --userspace exclude each other") }
        guard !interfaceName.isEmpty, interfaceName.utf8.count <= 15, !interfaceName.contains("/"),
              interfaceName.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            throw ValidationError("invalid interface name '\(interfaceName)': use 1-15 characters, no '/' or spaces")
        }
        guard (1280...65535).contains(mtu) else { throw ValidationError("--mtu must be between 1280 and 65535") }
        for s in seeds where Seed(s) == nil {
            throw ValidationError("'\(s)' is not a seed (use 192.0.2.1:51821, [2001:db8::1]:51821, host.example:51821 or dns:example.com)")
        }
        if let a = advertise, IPAddress(a) == nil { throw ValidationError("--advertise: '\(a)' is not an IP address") }
    }

    var chosenMode: DataPlaneMode { kernel ? .kernel : userspace ? .userspace : mode }

    /// Identity, trust and static peers, read fresh (start and every SIGHUP).
    func loadPeers(_ dir: ConfigDirectory) throws -> (TrustSet, [MeshPeerState]) {
        let (trust, problems) = try cli { try dir.loadTrust() }
        for p in problems { Terminal.warn("skipped \(p)") }
        let path = peersFile ?? Files.join(dir.path, "static-peers")
        let text: String
        do {
            text = try Files.readText(path)
        } catch let e where e.isNotFound && peersFile == nil {
            return (trust, [])
        } catch {
            throw CLIError(error)
        }
        let entries: [StaticPeer]
        do { entries = try StaticPeers.parse(text) } catch { throw CLIError("\(path): \(error)") }
        let (peers, unresolved) = DesiredState.resolve(entries, trust: trust)
        for u in unresolved { Terminal.warn("\(path): \(u)") }
        return (trust, peers)
    }

    /// Seeds from --seed and the seeds file.
    func loadSeeds(_ dir: ConfigDirectory) throws -> [Seed] {
        var out = seeds.compactMap(Seed.init)
        let path = Files.join(dir.path, "seeds")
        if let text = try? Files.readText(path) {
            do { out += try Seed.parseFile(text) } catch { throw CLIError("\(path): \(error)") }
        }
        return out
    }

    /// Static peers, then every member gossip knows (gossip's endpoint wins: it is the member's own word).
    static func merge(_ staticPeers: [MeshPeerState], _ gossip: [MeshPeerState]) -> [MeshPeerState] {
        var byKey: [IdentityPublicKey: MeshPeerState] = [:]
        var order: [IdentityPublicKey] = []
        for p in staticPeers + gossip {
            if byKey[p.key] == nil { order.append(p.key) }
            if let e = p.endpoint ?? byKey[p.key]?.endpoint { byKey[p.key] = MeshPeerState(key: p.key, endpoint: e) } else { byKey[p.key] = p }
        }
        return order.map { byKey[$0]! }
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
        var (trust, staticPeers) = try loadPeers(dir)
        var peers = staticPeers
        reportCollisions(peers, identity: identity)
        let seedList = try loadSeeds(dir)

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
        var membershipTrustChanged: ((TrustSet) -> Void)?
        var membershipPeers: (() -> [MeshPeerState])?
        func reload(resync: Bool) {
            do {
                for p in watched { watcher.watch(p) }   // authorized_keys/ may have been created
                (trust, staticPeers) = try loadPeers(dir)
                membershipTrustChanged?(trust)
                peers = Up.merge(staticPeers, membershipPeers?() ?? [])
                reportCollisions(peers, identity: identity)
                if resync { plane.resync() }   // an administrator's reload also repairs drift (e.g. a manual `wg set`)
                let change = try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: peers))
                writeStatus()
                Terminal.info("reloaded: \(change.peers.count) peer change(s), \(peers.count) peer(s) configured")
            } catch {
                Terminal.warn("reload failed, keeping the current configuration: \(error)")
            }
        }
        // Membership: SWIM over the authenticated control plane.
        let transport: ControlTransport
        let ctlPort: UInt16
        do {
            if let u = plane as? UserspaceDataPlane {
                transport = try EngineControlTransport(engine: u.engine)
                ctlPort = port
            } else {
                transport = try SocketControlTransport(port: controlPort)
                ctlPort = controlPort
            }
        } catch {
            plane.close()
            throw CLIError("cannot open the control plane: \(error)")
        }
        let seedEndpoints = SeedResolver.resolve(seedList) { Terminal.warn($0) }
        guard let here = advertise.flatMap(IPAddress.init) ?? localAddress(toward: seedEndpoints.first,
                                                                                 excluding: IPPrefix(.v4(MeshAddresses.ipv4Prefix), length: MeshAddresses.ipv4PrefixLength)!) else {
            plane.close()
            throw CLIError("cannot tell which address to advertise; give one with --advertise")
        }
        let wall = WallClock.now()
        let node: MeshNode
        do {
            node = try MeshNode(identity: identity, controlEndpoint: Endpoint(here, port: ctlPort),
                                wireGuardEndpoints: [Endpoint(here, port: port)], kernelMode: plane.mode == .kernel, trust: trust,
                                epoch: UInt64(wall.seconds) * 1000 + UInt64(wall.nanoseconds / 1_000_000),
                                seed: UInt64.random(in: .min ... .max), now: MonotonicClock.now())
        } catch {
            plane.close()
            throw CLIError("cannot start membership: \(error)")
        }
        membershipTrustChanged = { node.setTrust($0) }
        membershipPeers = { node.peers }
        node.join(seeds: seedEndpoints, now: MonotonicClock.now())
        Terminal.info("membership: advertising \(here) (control port \(ctlPort)); \(seedEndpoints.isEmpty ? "no seeds: waiting for members to join" : "joining through \(seedEndpoints.map(\.description).joined(separator: " "))")")
        var appliedGeneration = node.generation
        func applyMembership() {
            guard node.generation != appliedGeneration else { return }
            appliedGeneration = node.generation
            peers = Up.merge(staticPeers, node.peers)
            do {
                let change = try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: peers))
                if !change.peers.isEmpty {
                    writeStatus()
                    Terminal.info("membership: \(change.peers.count) peer change(s), \(peers.count) peer(s) configured")
                }
            } catch {
                Terminal.warn("cannot apply the membership: \(error)")
            }
        }
        func pump(_ now: Instant) {
            for (bytes, from) in transport.receiveAll() { node.receive(bytes, from: from, now: now) }
            node.handleTimers(now: now)
            while let (bytes, to) = node.pollTransmit() { transport.send(bytes, to: to) }
            applyMembership()
        }

        let poller = Poller([signals.fileDescriptor, watcher.fileDescriptor, transport.fileDescriptor])
        loop: while true {
            let now = MonotonicClock.now()
            var timeout: Duration = .seconds(1)
            if let d = node.nextDeadline() { timeout = min(timeout, max(.zero, d - now)) }
            guard (try? poller.wait(timeout: timeout)) != nil else { break }
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
            pump(MonotonicClock.now())
        }
        // A graceful leave: tell the others, give the messages a moment to go out.
        node.leave(now: MonotonicClock.now())
        let leaveUntil = MonotonicClock.now() + .milliseconds(500)
        while MonotonicClock.now() < leaveUntil, let d = node.nextDeadline() {
            _ = try? Poller([transport.fileDescriptor]).wait(timeout: max(.zero, min(d, leaveUntil) - MonotonicClock.now()))
            pump(MonotonicClock.now())
        }
        plane.close()
        try? Files.remove(statusFile)
        Terminal.info("stopped; interface \(plane.interfaceName) removed")
    }
}

extension DataPlaneMode: ExpressibleByArgument {}

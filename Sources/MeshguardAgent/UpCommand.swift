// `meshguard-agent up` (the daemon): brings up the mesh interface with this
// node's identity and mesh addresses, joins the mesh by gossip and keeps the
// data plane programmed with every live trusted member (and the static
// peers). Settings: flags over meshguard-agent.toml over defaults. Runs in
// the foreground as one service group (Services.swift): SIGHUP reloads
// trust, peers and seeds (only changes are applied); SIGTERM/SIGINT leave the
// mesh and remove the interface. Status and control: docs/control.md.
import ArgumentParser
import MeshBase
import MeshCore
import MeshUserspace
import MeshDataPlane
import MeshIdentity
import MeshLinux
import MeshNetlink
import MeshProtocol
import MeshSWIM
import MeshSystem
import MeshWireGuard
import ServiceLifecycle
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
    @Option(name: .customLong("config"), help: ArgumentHelp("Configuration file (default <config-dir>/meshguard-agent.toml, if it exists). Flags override it.", valueName: "file"))
    var configFile: String?
    @Option(help: "Data plane: auto, kernel or userspace (default auto).") var mode: DataPlaneMode?
    @Flag(help: "Use the kernel's WireGuard (same as --mode kernel).") var kernel = false
    @Flag(help: "Use the userspace WireGuard (same as --mode userspace).") var userspace = false
    @Option(name: .customLong("interface"), help: "Interface name (default mg0).") var interfaceName: String?
    @Option(help: "Interface MTU (default 1420).") var mtu: Int?
    @Option(name: .customLong("listen-port"), help: "WireGuard UDP port (default 51820 kernel, 51821 userspace).") var listenPort: UInt16?
    @Option(name: .customLong("peers"), help: ArgumentHelp("Static peers file (default <config-dir>/static-peers).", valueName: "file")) var peersFile: String?
    @Option(name: .customLong("seed"), help: ArgumentHelp("A seed to join the mesh through (repeatable): 192.0.2.1:51821, [2001:db8::1]:51821, host:port or dns:domain.", valueName: "seed"))
    var seeds: [String] = []
    @Option(name: .customLong("stun-server"), help: ArgumentHelp("A STUN server to learn this node's public address and NAT kind from (repeatable; two or more tell the NAT kind): stun.example.com:3478, 192.0.2.1:3478.", valueName: "host:port"))
    var stunServers: [String] = []
    @Option(help: "Relay WireGuard for members that cannot reach each other: auto (when this node has a public address), on or off (default auto).")
    var relay: RelayPolicy?
    @Option(name: .customLong("port-mapping"), help: "Ask the home router to forward this node's ports (NAT-PMP) when STUN says it is behind a NAT: auto or off (default auto).")
    var portMapping: PortMappingPolicy?
    @Option(name: .customLong("control-port"), help: "Control-plane UDP port in kernel mode (default 51821; userspace mode shares the WireGuard port).")
    var controlPort: UInt16?
    @Option(name: .customLong("advertise"), help: ArgumentHelp("The address other members reach this node at (default: the route toward the first seed).", valueName: "ip"))
    var advertise: String?
    @Option(name: .customLong("admin-group"), help: ArgumentHelp("Group allowed to use the control socket when it exists (default meshguard); others need root.", valueName: "group"))
    var adminGroup: String?
    @Option(name: .customLong("log-level"), help: "Log level: debug, info, warning or error (default info).") var logLevel: Log.Level?
    @Option(name: .customLong("log-format"), help: "Log format: text (journald-friendly) or json (one object per line) (default text).") var logFormat: Log.Format?
    @Option(name: .customLong("metrics-address"), help: ArgumentHelp("Serve Prometheus metrics at http://ADDRESS/metrics (opt-in; e.g. 127.0.0.1:9586).", valueName: "address:port"))
    var metricsAddress: String?
    @Flag(name: .customLong("open"), help: "Labs only: trust every key that joins; authorized_keys/ is NOT enforced.")
    var openMesh = false

    func validate() throws {
        if kernel && userspace { throw ValidationError("--kernel and --userspace exclude each other") }
        if let i = interfaceName, let problem = Up.interfaceProblem(i) { throw ValidationError(problem) }
        if let m = mtu, !(1280...65535).contains(m) { throw ValidationError("--mtu must be between 1280 and 65535") }
        for s in seeds where Seed(s) == nil { throw ValidationError(Up.seedProblem(s)) }
        for s in stunServers where STUNServerSpec(s) == nil { throw ValidationError(STUNServerSpec.problem(s)) }
        if let a = advertise, IPAddress(a) == nil { throw ValidationError("--advertise: '\(a)' is not an IP address") }
        if let c = configFile, c.isEmpty { throw ValidationError("--config must not be empty") }
        if let m = metricsAddress, Endpoint(m) == nil { throw ValidationError(Up.metricsProblem(m)) }
    }

    static func interfaceProblem(_ name: String) -> String? {
        guard !name.isEmpty, name.utf8.count <= 15, !name.contains("/"), name.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
            return "invalid interface name '\(name)': use 1-15 characters, no '/' or spaces"
        }
        return nil
    }

    static func metricsProblem(_ m: String) -> String {
        "metrics address '\(m)' is not address:port (use 127.0.0.1:9586 or [::1]:9586)"
    }

    static func seedProblem(_ s: String) -> String {
        "'\(s)' is not a seed (use 192.0.2.1:51821, [2001:db8::1]:51821, host.example:51821 or dns:example.com)"
    }

    /// The configuration file: `explicit` (which must exist), else
    /// <config-dir>/meshguard-agent.toml when it exists; mistakes are one line.
    static func readConfigFile(_ explicit: String?, dir: ConfigDirectory) throws -> AgentConfigFile? {
        let path = explicit ?? Files.join(dir.path, "meshguard-agent.toml")
        let text: String
        do {
            text = try Files.readText(path)
        } catch let e where e.isNotFound && explicit == nil {
            return nil
        } catch {
            throw CLIError(error)
        }
        do { return try AgentConfigFile(text: text, path: path) } catch { throw CLIError(error.description) }
    }

    /// What `up` runs with: each flag given, else the configuration file's value, else the default.
    struct Settings {
        var mode: DataPlaneMode
        var interfaceName: String
        var mtu: Int
        var listenPort: UInt16?
        var controlPort: UInt16
        var seeds: [String]
        var stunServers: [String]
        var relay: RelayPolicy
        var portMapping: PortMappingPolicy
        var advertise: String?
        var peersFile: String?
        var runtimeDir: String
        var adminGroup: String
        var logLevel: Log.Level
        var logFormat: Log.Format
        var open: Bool
        var metricsAddress: Endpoint?
        var controlSocket: String { Files.join(runtimeDir, "control.sock") }
    }

    func settings(_ dir: ConfigDirectory) throws -> Settings {
        let f = try Up.readConfigFile(configFile, dir: dir)
        // Values the file's grammar cannot check alone.
        if let f, let i = f.string("interface"), let problem = Up.interfaceProblem(i) { throw CLIError(f.error("interface", problem).description) }
        for s in f?.strings("seeds") ?? [] where Seed(s) == nil { throw CLIError(f!.error("seeds", Up.seedProblem(s)).description) }
        for s in f?.strings("stun-servers") ?? [] where STUNServerSpec(s) == nil {
            throw CLIError(f!.error("stun-servers", STUNServerSpec.problem(s)).description)
        }
        if let f, let a = f.string("advertise"), IPAddress(a) == nil { throw CLIError(f.error("advertise", "'\(a)' is not an IP address").description) }
        if let f, let m = f.string("metrics-address"), Endpoint(m) == nil { throw CLIError(f.error("metrics-address", Up.metricsProblem(m)).description) }
        let fileMode = f?.string("mode").flatMap(DataPlaneMode.init(rawValue:))
        return Settings(
            mode: kernel ? .kernel : userspace ? .userspace : mode ?? fileMode ?? .auto,
            interfaceName: interfaceName ?? f?.string("interface") ?? "mg0",
            mtu: mtu ?? f?.integer("mtu").map(Int.init) ?? 1420,
            listenPort: listenPort ?? f?.integer("listen-port").map { UInt16($0) },
            controlPort: controlPort ?? f?.integer("control-port").map { UInt16($0) } ?? 51821,
            seeds: seeds.isEmpty ? f?.strings("seeds") ?? [] : seeds,
            stunServers: stunServers.isEmpty ? f?.strings("stun-servers") ?? [] : stunServers,
            relay: relay ?? f?.string("relay").flatMap(RelayPolicy.init(rawValue:)) ?? .auto,
            portMapping: portMapping ?? f?.string("port-mapping").flatMap(PortMappingPolicy.init(rawValue:)) ?? .auto,
            advertise: advertise ?? f?.string("advertise"),
            peersFile: peersFile ?? f?.string("peers-file"),
            runtimeDir: runtime.runtimeDir ?? runtime.environmentPath ?? f?.string("runtime-dir") ?? "/run/meshguard",
            adminGroup: adminGroup ?? f?.string("admin-group") ?? "meshguard",
            logLevel: logLevel ?? f?.string("log-level").flatMap(Log.Level.init(rawValue:)) ?? .info,
            logFormat: logFormat ?? f?.string("log-format").flatMap(Log.Format.init(rawValue:)) ?? .text,
            open: openMesh || (f?.bool("open") ?? false),
            metricsAddress: (metricsAddress ?? f?.string("metrics-address")).flatMap(Endpoint.init))
    }

    /// Identity, trust and static peers, read fresh (start and every SIGHUP).
    func loadPeers(_ dir: ConfigDirectory, _ settings: Settings) throws -> (TrustSet, [MeshPeerState]) {
        let peersFile = settings.peersFile
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
    func loadSeeds(_ dir: ConfigDirectory, _ settings: Settings) throws -> [Seed] {
        var out = settings.seeds.compactMap(Seed.init)
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
            let routed = p.routed || (byKey[p.key]?.routed ?? false)   // a static peer is always routed
            byKey[p.key] = MeshPeerState(key: p.key, endpoint: p.endpoint ?? byKey[p.key]?.endpoint,
                                         persistentKeepalive: p.persistentKeepalive ?? byKey[p.key]?.persistentKeepalive, routed: routed)
        }
        return order.map { byKey[$0]! }
    }

    static func kind(_ e: MembershipEvent) -> String {
        switch e {
        case .joined: "joined"
        case .updated: "updated"
        case .suspect: "suspect"
        case .aliveAgain: "alive_again"
        case .dead: "dead"
        case .left: "left"
        case .reaped: "reaped"
        }
    }

    /// A membership event as a log line: what happened, to which member (abbreviated key) at which address.
    static func logLine(_ e: MembershipEvent) -> (String, KeyValuePairs<String, String>) {
        func line(_ what: String, _ m: Member) -> (String, KeyValuePairs<String, String>) {
            ("membership: \(what)", ["member": m.id.abbreviated, "endpoint": m.endpoint.description, "incarnation": "\(m.incarnation)"])
        }
        switch e {
        case .joined(let m): return line("member joined", m)
        case .updated(let m): return line("member updated its record", m)
        case .suspect(let m): return line("member suspected of having failed", m)
        case .aliveAgain(let m): return line("member alive again", m)
        case .dead(let m): return line("member failed", m)
        case .left(let m): return line("member left", m)
        case .reaped(let id): return ("membership: member forgotten", ["member": id.abbreviated])
        }
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
        var settings = try self.settings(dir)
        Log.level = settings.logLevel
        Log.format = settings.logFormat
        let identity = try cli { try dir.loadIdentity() }
        // The control socket first: a second agent on this runtime directory stops here, before touching anything.
        let control: UnixControlListener
        do {
            control = try UnixControlListener(path: settings.controlSocket, group: UnixControlClient.groupID(settings.adminGroup))
        } catch {
            throw CLIError("\(error)")
        }
        var metrics: MetricsListener?
        if let address = settings.metricsAddress {
            do { metrics = try MetricsListener(address) } catch { throw CLIError("\(error)") }
            if !address.address.isLoopback {
                Terminal.warn("metrics are served on \(address), not a loopback address: anyone who reaches it sees the mesh's members")
            }
        }
        if settings.open {
            // Loud on purpose: an open node gives a tunnel to anyone who reaches its control port.
            for line in ["*** --open: authorized_keys/ is NOT enforced. Any node that reaches this node's control port",
                         "*** joins the mesh and gets a WireGuard tunnel to it. For labs only; never on a network you do not own."] {
                Terminal.warn(line)
            }
        }
        var (trust, staticPeers) = try loadPeers(dir, settings)
        var peers = staticPeers
        reportCollisions(peers, identity: identity)
        let seedList = try loadSeeds(dir, settings)

        // Signals and file changes arrive as descriptors on this thread; the
        // engine threads started below inherit the blocked signal mask.
        // The mesh loop's wake-ups: stop (graceful shutdown of the service
        // group) and reload (SIGHUP, forwarded by ReloadService); file changes.
        let stopLoop: WakeupSignal, reloadRequest: WakeupSignal, watcher: DirectoryWatcher
        do {
            stopLoop = try WakeupSignal()
            reloadRequest = try WakeupSignal()
            watcher = try DirectoryWatcher()
        } catch {
            throw CLIError(error)
        }
        let peersPath = settings.peersFile ?? Files.join(dir.path, "static-peers")
        let peersDirectory = peersPath.lastIndex(of: "/").map { String(peersPath[..<$0]) }.flatMap { $0.isEmpty ? "/" : $0 } ?? "."
        let watched = [dir.path, dir.authorizedKeysPath, peersDirectory]
        for p in watched { watcher.watch(p) }

        let addresses = DesiredState.interfaceAddresses(identity).map { RouteNetlink.InterfaceAddress($0.0, prefixLength: $0.1) }
        let interface = InterfaceSettings(name: settings.interfaceName, mtu: settings.mtu, addresses: addresses)
        let plane: DataPlane
        let reason: String
        do {
            (plane, reason) = try DataPlaneFactory.open(mode: settings.mode, interface: interface)
        } catch {
            throw CLIError("\(error)")
        }
        let port = settings.listenPort ?? (plane.mode == .kernel ? 51820 : 51821)
        Terminal.info("data plane \(plane.mode.rawValue) (\(reason)); interface \(plane.interfaceName) \(addresses.map(\.description).joined(separator: " ")) port \(port)")
        do {
            try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: peers))
        } catch {
            plane.close()
            throw CLIError("cannot configure \(plane.interfaceName): \(error)")
        }
        Terminal.info("\(peers.count) peer(s) configured; running (SIGHUP reloads, SIGTERM stops)")
        var membershipTrustChanged: ((TrustSet) -> Void)?
        var membershipPeers: (() -> [MeshPeerState])?
        var membershipSeedsChanged: (([Seed]) -> Void)?
        /// The configuration file again: what can change live (log, peers file, seeds) is applied, the rest is reported.
        func reloadSettings() {
            let fresh: Settings
            do { fresh = try self.settings(dir) } catch {
                Terminal.warn("configuration not reloaded, keeping the current one: \(error)")
                return
            }
            let needRestart: [(String, Bool)] = [
                ("mode", fresh.mode != settings.mode), ("interface", fresh.interfaceName != settings.interfaceName),
                ("mtu", fresh.mtu != settings.mtu), ("listen-port", fresh.listenPort != settings.listenPort),
                ("control-port", fresh.controlPort != settings.controlPort), ("advertise", fresh.advertise != settings.advertise),
                ("runtime-dir", fresh.runtimeDir != settings.runtimeDir), ("admin-group", fresh.adminGroup != settings.adminGroup),
                ("metrics-address", fresh.metricsAddress != settings.metricsAddress), ("open", fresh.open != settings.open),
                ("stun-servers", fresh.stunServers != settings.stunServers), ("relay", fresh.relay != settings.relay),
                ("port-mapping", fresh.portMapping != settings.portMapping),
            ]
            for (key, changed) in needRestart where changed {
                Terminal.warn("'\(key)' changed; it applies when the agent restarts")
            }
            Log.level = fresh.logLevel
            Log.format = fresh.logFormat
            settings.logLevel = fresh.logLevel
            settings.logFormat = fresh.logFormat
            settings.peersFile = fresh.peersFile
            settings.seeds = fresh.seeds
            if let seeds = try? loadSeeds(dir, settings) { membershipSeedsChanged?(seeds) }
        }
        func reload(resync: Bool) {
            reloadSettings()
            do {
                for p in watched { watcher.watch(p) }   // authorized_keys/ may have been created
                (trust, staticPeers) = try loadPeers(dir, settings)
                membershipTrustChanged?(trust)
                peers = Up.merge(staticPeers, membershipPeers?() ?? [])
                reportCollisions(peers, identity: identity)
                if resync { plane.resync() }   // an administrator's reload also repairs drift (e.g. a manual `wg set`)
                let change = try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: peers))
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
                transport = try SocketControlTransport(port: settings.controlPort)
                ctlPort = settings.controlPort
            }
        } catch {
            plane.close()
            throw CLIError("cannot open the control plane: \(error)")
        }
        let seedEndpoints = SeedResolver.resolve(seedList) { Terminal.warn($0) }
        guard let here = settings.advertise.flatMap(IPAddress.init) ?? localAddress(toward: seedEndpoints.first,
                                                                                 excluding: IPPrefix(.v4(MeshAddresses.ipv4Prefix), length: MeshAddresses.ipv4PrefixLength)!) else {
            plane.close()
            throw CLIError("cannot tell which address to advertise; give one with --advertise")
        }
        let wall = WallClock.now()
        let node: MeshNode
        do {
            node = try MeshNode(identity: identity, controlEndpoint: Endpoint(here, port: ctlPort),
                                wireGuardEndpoints: [Endpoint(here, port: port)], kernelMode: plane.mode == .kernel, trust: trust, open: settings.open, relay: settings.relay,
                                epoch: UInt64(wall.seconds) * 1000 + UInt64(wall.nanoseconds / 1_000_000),
                                seed: UInt64.random(in: .min ... .max), now: MonotonicClock.now())
        } catch {
            plane.close()
            throw CLIError("cannot start membership: \(error)")
        }
        // NAT traversal: STUN on the control socket (answers come back on it), a relay when offered.
        let stunEndpoints = settings.stunServers.compactMap { text -> Endpoint? in
            guard let spec = STUNServerSpec(text) else { return nil }
            guard let e = Netcheck.resolve(spec) else { Terminal.warn("STUN server \(text) does not resolve; skipped"); return nil }
            return e
        }
        var stun = STUNClient(servers: stunEndpoints, localEndpoint: Endpoint(here, port: ctlPort),
                              random: SeededRandom(seed: UInt64.random(in: .min ... .max)), now: MonotonicClock.now())
        if !stunEndpoints.isEmpty { stun.start(now: MonotonicClock.now()) }
        var relayForwarder: RelayForwarder?
        if settings.relay != .off {
            do {
                let r = try RelayForwarder(capacity: 256)
                r.start()
                relayForwarder = r
                node.relayServer = r
            } catch {
                Terminal.warn("cannot start the relay: \(error); this node will not relay")
            }
        }
        var nextRelayExpiry = MonotonicClock.now() + .seconds(10)
        var nextObservation = MonotonicClock.now() + .seconds(2)
        // Port mapping (NAT-PMP): tried once STUN says this node is behind a NAT and there is a default gateway.
        var mapper: PortMapper?
        let mappedPorts = plane.mode == .kernel ? [ctlPort, port] : [ctlPort]
        membershipTrustChanged = { node.setTrust($0) }
        var currentSeeds = seedList
        membershipSeedsChanged = { seeds in
            guard seeds != currentSeeds else { return }
            currentSeeds = seeds
            let endpoints = SeedResolver.resolve(seeds) { Terminal.warn($0) }
            node.join(seeds: endpoints, now: MonotonicClock.now())
            Terminal.info("membership: seeds changed; joining through \(endpoints.map(\.description).joined(separator: " "))")
        }
        membershipPeers = { node.peers }
        node.join(seeds: seedEndpoints, now: MonotonicClock.now())
        Terminal.info("membership: advertising \(here) (control port \(ctlPort)); \(seedEndpoints.isEmpty ? "no seeds: waiting for members to join" : "joining through \(seedEndpoints.map(\.description).joined(separator: " "))")")
        var appliedGeneration = node.generation
        func applyMembership() {
            guard node.generation != appliedGeneration else { return }
            appliedGeneration = node.generation
            let before = Dictionary(peers.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            peers = Up.merge(staticPeers, node.peers)
            do {
                // Peers that need a packet now (a moved NAT path; a member routed for the first time,
                // which may have restarted): a keepalive turned on (or off, then on) sends one at once.
                if let first = DesiredState.nudge(peers, before: before) {
                    try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: first))
                }
                let change = try plane.apply(desired: DesiredState.device(identity: identity, listenPort: port, peers: peers))
                if !change.peers.isEmpty {
                    Terminal.info("membership: \(change.peers.count) peer change(s), \(peers.count) peer(s) configured")
                }
            } catch {
                Terminal.warn("cannot apply the membership: \(error)")
            }
        }
        var contact = false
        var eventCounts: [String: UInt64] = [:]
        func pump(_ now: Instant) {
            for (bytes, from) in transport.receiveAll() {
                // STUN and NAT-PMP answers share the control port; everything else is an envelope (or dropped and counted).
                if mapper != nil, mapper!.receive(bytes, from: from, now: now) { continue }
                if stun.receive(bytes, from: from, now: now) { continue }
                node.receive(bytes, from: from, now: now)
            }
            stun.handleTimers(now: now)
            if stun.takeChanges() {
                node.setNAT(reflexive: stun.reflexive, mapping: stun.mapping, now: now)
                Terminal.info("nat: public endpoint \(stun.reflexive?.description ?? "unknown"), mapping \(stun.mapping.rawValue)\(node.offersRelay ? "; offering to relay" : "")")
                // Behind a NAT (first known now): ask the default gateway for a port mapping.
                if settings.portMapping == .auto, mapper == nil, node.isBehindNAT, let gateway = defaultGateway() {
                    mapper = PortMapper(gateway: Endpoint(gateway, port: NATPMP.port), ports: mappedPorts)
                    mapper!.start(now: now)
                    Terminal.info("portmap: asking the router at \(gateway) to forward UDP \(mappedPorts.map(String.init).joined(separator: ", ")) (NAT-PMP)")
                }
            }
            while let (bytes, to) = stun.pollTransmit() { transport.send(bytes, to: to) }
            if mapper != nil {
                mapper!.handleTimers(now: now)
                if mapper!.takeChanges() {
                    let m = mapper!.mappings
                    node.setPortMapping(control: m[ctlPort], wireGuard: plane.mode == .kernel ? m[port] : nil, now: now)
                    Terminal.info("portmap: \(m.isEmpty ? "no mapping" : m.sorted { $0.key < $1.key }.map { "UDP \($0.key) -> \($0.value)" }.joined(separator: ", "))")
                }
                while let (bytes, to) = mapper!.pollTransmit() { transport.send(bytes, to: to) }
            }
            // A public node tells kernel-mode members behind NATs where their kernel's WireGuard socket is seen.
            if node.nat == .none, now >= nextObservation {
                nextObservation = now + .seconds(5)
                if let snapshot = try? plane.snapshot() {
                    let byWireGuardKey = Dictionary(snapshot.peers.map { ($0.publicKey, $0.endpoint) }, uniquingKeysWith: { a, _ in a })
                    for p in peers {
                        if let e = byWireGuardKey[p.key.wireGuardPublicKey] ?? nil { node.observeWireGuard(of: p.key.raw, at: e, now: now) }
                    }
                }
            }
            if let r = relayForwarder, now >= nextRelayExpiry {
                nextRelayExpiry = now + .seconds(10)
                r.expire(now: now)
            }
            if !contact, !node.members.isEmpty {
                contact = true
                Terminal.info("membership: first contact; \(node.members.count) member(s) known")
            }
            node.handleTimers(now: now)
            for e in node.takePathEvents() {
                func name(_ k: Bytes32) -> String { (try? IdentityPublicKey(raw: k)).map { trust.name(of: $0) ?? $0.abbreviated } ?? "?" }
                switch e {
                case let .direct(m, at): Log.emit(.debug, "nat: direct path", ["member": name(m), "endpoint": at.description])
                case let .relayRequested(m, r): Terminal.info("nat: no direct path; asking a relay", ["member": name(m), "relay": name(r)])
                case let .relayed(m, r, at): Terminal.info("nat: relayed", ["member": name(m), "relay": name(r), "endpoint": at.description])
                case let .relayRefused(m, r, why): Terminal.info("nat: relay refused", ["member": name(m), "relay": name(r), "reason": "\(why)"])
                case let .relayLeft(m): Terminal.info("nat: relay left", ["member": name(m)])
                }
            }
            for e in node.takeEvents() {
                let (message, fields) = Up.logLine(e)
                eventCounts[Up.kind(e), default: 0] += 1
                Terminal.info(message, fields)
            }
            // Apply before answering: an ack then means our data plane already has its sender.
            applyMembership()
            while let (bytes, to) = node.pollTransmit() { transport.send(bytes, to: to) }
        }

        // systemd (Type=notify): READY=1 once the interface is up and the
        // first gossip round is done (first contact with the mesh, or 3 s of
        // trying the seeds; at once without seeds), WATCHDOG=1 from this loop.
        let systemd = SystemdNotifier()
        let readyBy = MonotonicClock.now() + (seedEndpoints.isEmpty ? .zero : .seconds(3))
        var isReady = false
        var lastWatchdog = MonotonicClock.now()
        func summary() -> String { "\(plane.interfaceName) \(plane.mode.rawValue): \(peers.count) peer(s), \(node.members.filter { $0.state.isLive }.count) live member(s)" }
        func tellSystemd(_ now: Instant) {
            guard let systemd else { return }
            if !isReady, contact || now >= readyBy {
                isReady = true
                systemd.ready(status: summary())
            }
            if let w = systemd.watchdogInterval, now - lastWatchdog >= w {
                lastWatchdog = now
                systemd.watchdog()
            }
        }

        func portMappingLine() -> String? {
            guard let m = mapper else { return nil }
            if let e = m.mappings[ctlPort] {
                let wg = plane.mode == .kernel ? m.mappings[port].map { ", WireGuard \($0)" } ?? "" : ""
                return "\(e)\(wg) (NAT-PMP, router \(m.gateway.address))"
            }
            return "none (\(m.failure ?? (m.isWaiting ? "asking the router at \(m.gateway.address)" : "no mapping")))"
        }
        func report() -> StatusReport {
            let snapshot = (try? plane.snapshot())?.peers ?? []
            let configured = Dictionary(peers.map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            var lines: [StatusReport.MemberLine] = []
            var seen: Set<IdentityPublicKey> = []
            func line(_ key: IdentityPublicKey, state: String) -> StatusReport.MemberLine {
                let p = configured[key]
                let s = snapshot.first { $0.publicKey == key.wireGuardPublicKey }
                let path: String
                switch node.path(to: key.raw) {
                case .direct: path = "direct"
                case .trying: path = "trying"
                case .relayed(let via): path = "relayed via " + ((try? IdentityPublicKey(raw: via)).map { trust.name(of: $0) ?? $0.abbreviated } ?? "?")
                case .unknown: path = state == "static" ? "static" : "-"
                }
                return StatusReport.MemberLine(name: trust.name(of: key), identity: key, state: state, endpoint: s?.endpoint ?? p?.endpoint,
                                               path: path, routed: p?.routed ?? false, configured: p != nil, latestHandshake: s?.lastHandshake,
                                               receivedBytes: s?.receivedBytes ?? 0, transmittedBytes: s?.transmittedBytes ?? 0)
            }
            for m in node.members {
                guard let key = try? IdentityPublicKey(raw: m.id) else { continue }
                seen.insert(key)
                lines.append(line(key, state: ["alive", "suspect", "dead", "left"][Int(m.state.status.rawValue)]))
            }
            for p in peers where !seen.contains(p.key) { lines.append(line(p.key, state: "static")) }
            return StatusReport(version: MeshguardAgentCommand.version, mode: plane.mode.rawValue, modeReason: reason, interface: plane.interfaceName,
                                listenPort: port, controlPort: ctlPort, identity: identity.publicKey,
                                wireGuardKey: identity.wireGuardPublicKey.base64, addresses: addresses.map(\.description),
                                trustOpen: settings.open, trustedKeys: trust.count, members: lines,
                                drops: (node.drops.map { ($0.key.rawValue, $0.value) } + (transport.queueDrops > 0 ? [("queueFull", transport.queueDrops)] : []))
                                    .sorted { $0.0 < $1.0 }, engine: plane.statistics,
                                nat: StatusReport.NATStatus(publicEndpoint: stun.reflexive, mapping: stun.mapping.rawValue, stunServers: stunEndpoints.count,
                                                            offersRelay: node.offersRelay && relayForwarder != nil,
                                                            relayedPairs: relayForwarder?.allocations ?? 0, relayedPackets: relayForwarder?.forwarded.packets ?? 0,
                                                            relayDrops: (relayForwarder?.drops ?? [:]).map { ($0.key.rawValue, $0.value) }.sorted { $0.0 < $1.0 },
                                                            stunDrops: stun.drops.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 },
                                                            portMapping: portMappingLine()))
        }
        /// Answers every waiting control connection; true when one asked the agent to go down.
        func serveControl() -> Bool {
            var down = false
            while let c = control.accept(timeout: .milliseconds(500)) {
                let now = WallClock.now()
                let wall = WallTime(seconds: Int64(now.seconds), nanoseconds: Int64(now.nanoseconds))
                switch c.readLine()?.trimmingSpaces() {
                case "status": c.write(report().text(now: wall))
                case "status json": c.write(report().json(now: wall))
                case "peers": c.write(report().peersText(now: wall))
                case "down":
                    c.write("stopping: leaving the mesh and removing \(plane.interfaceName)\n")
                    Terminal.info("down requested on the control socket")
                    down = true
                case let other?:
                    c.write("error: unknown request '\(other.prefix(40))' (status, status json, peers, down)\n")
                case nil:
                    c.write("error: no request line\n")
                }
                c.close()
            }
            return down
        }

        var descriptors = [stopLoop.fileDescriptor, watcher.fileDescriptor, transport.fileDescriptor, control.fileDescriptor,
                           reloadRequest.fileDescriptor]
        if let m = metrics { descriptors.append(m.fileDescriptor) }
        let poller = Poller(descriptors)
        /// The mesh loop: membership, file changes, reloads, the control socket and metrics, until told to stop
        /// (or `down`); then the graceful leave. Runs on a thread of its own (MeshLoopService).
        func meshLoop() {
            loop: while true {
                let now = MonotonicClock.now()
                var timeout: Duration = .seconds(1)
                if let d = node.nextDeadline() { timeout = min(timeout, max(.zero, d - now)) }
                if let d = stun.nextDeadline() { timeout = min(timeout, max(.zero, d - now)) }
                if let d = mapper?.nextDeadline() { timeout = min(timeout, max(.zero, d - now)) }
                if let w = systemd?.watchdogInterval { timeout = min(timeout, max(.zero, lastWatchdog + w - now)) }
                if systemd != nil, !isReady { timeout = min(timeout, max(.zero, readyBy - now)) }
                guard (try? poller.wait(timeout: timeout)) != nil else { break }
                if poller.isReady(0), stopLoop.drain() { break loop }
                if poller.isReady(4), reloadRequest.drain() {
                    systemd?.reloading(now: MonotonicClock.now())
                    reload(resync: true)
                    if isReady { systemd?.ready(status: summary()) }
                }
                if poller.isReady(1), watcher.drain() {
                    // Let a burst of writes (an editor, a copy) settle for 200 ms, then apply it once.
                    let quiet = Poller([watcher.fileDescriptor])
                    while (try? quiet.wait(timeout: .milliseconds(200))) ?? 0 > 0 { watcher.drain() }
                    reload(resync: false)
                }
                pump(MonotonicClock.now())
                tellSystemd(MonotonicClock.now())
                if poller.isReady(3), serveControl() { break loop }
                if let m = metrics, poller.isReady(5) {
                    m.serve { Metrics.render(report(), events: eventCounts) }
                }
            }
            // A graceful leave: tell the others, give the messages a moment to go out.
            systemd?.stopping()
            mapper?.stop(now: MonotonicClock.now())   // the router forgets our ports (sent by the pumps below)
            node.leave(now: MonotonicClock.now())
            let leaveUntil = MonotonicClock.now() + .milliseconds(500)
            while MonotonicClock.now() < leaveUntil, let d = node.nextDeadline() {
                _ = try? Poller([transport.fileDescriptor]).wait(timeout: max(.zero, min(d, leaveUntil) - MonotonicClock.now()))
                pump(MonotonicClock.now())
            }
        }

        // One service group (swift-service-lifecycle): SIGTERM/SIGINT shut it
        // down gracefully in reverse order — reloads stop, the mesh loop leaves
        // the mesh, then the data plane removes the interface. The mesh loop
        // ending by itself (`down`) shuts the group down the same way.
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: DataPlaneService(close: {
                    relayForwarder?.close()
                    plane.close()
                    control.close()
                    metrics?.close()
                })),
                .init(service: MeshLoopService(body: meshLoop, stop: { stopLoop.signal() }), successTerminationBehavior: .gracefullyShutdownGroup),
                .init(service: ReloadService(reload: { reloadRequest.signal() })),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Log.lifecycleLogger()))
        do {
            try runBlocking { try await group.run() }
        } catch {
            plane.close()
            throw CLIError("the agent stopped: \(error)")
        }
        Terminal.info("stopped; interface \(plane.interfaceName) removed")
    }
}

extension DataPlaneMode: ExpressibleByArgument {}
extension RelayPolicy: ExpressibleByArgument {}

/// Whether `up` asks the home router for port mappings (NAT-PMP).
enum PortMappingPolicy: String, CaseIterable, ExpressibleByArgument {
    case auto, off
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s = s.dropLast() }
        return String(s)
    }
}

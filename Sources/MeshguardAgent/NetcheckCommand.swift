// `meshguard-agent netcheck`: how this host is seen from the internet. Binds
// the agent's control port (so the NAT mapping measured is the one peers will
// meet; an ephemeral port when the running agent holds it), asks every STUN
// server once (MeshCore.STUNClient: RFC 8489 retransmissions, answers matched
// by transaction ID and source) and prints the public endpoint, the NAT
// mapping and what it means for reaching this node. Never waits longer than
// --timeout; a server that does not answer is reported, not waited for.
//
//     UDPSocket ──datagrams──► STUNClient.receive ─┐
//         ▲                                        ├─► results, reflexive, mapping
//         └──── pollTransmit ◄── handleTimers ◄────┘    (MonotonicClock, Poller)
import ArgumentParser
import MeshBase
import MeshCore
import MeshCrypto
import MeshIdentity
import MeshLinux
import MeshSystem
#if canImport(Glibc)
import Glibc
#endif

struct Netcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netcheck",
        abstract: "Ask STUN servers how this host is seen from the internet: public address, NAT mapping, reachability.",
        discussion: """
        STUN servers come from --stun-server (repeatable), else from stun-servers in
        the configuration file. The measurement is made from the agent's control
        port (--port, else control-port from the configuration file, else 51821);
        when that port is taken (the agent is running) an ephemeral port is used and
        the output says so. Exits 0 when at least one server answered.
        """)

    @OptionGroup var options: ConfigOptions
    @Option(name: .customLong("config"), help: ArgumentHelp("Configuration file (default <config-dir>/meshguard-agent.toml, if it exists).", valueName: "file"))
    var configFile: String?
    @Option(name: .customLong("stun-server"), help: ArgumentHelp("A STUN server (repeatable): stun.example.com:3478, 192.0.2.1:3478 or [2001:db8::1]:3478 (port 3478 if omitted).", valueName: "host:port"))
    var stunServers: [String] = []
    @Option(help: ArgumentHelp("UDP port to measure from (default: control-port from the configuration file, else 51821; 0: any).", valueName: "port"))
    var port: UInt16?
    @Option(help: ArgumentHelp("Seconds to wait for answers (default 3).", valueName: "seconds"))
    var timeout: Double?
    @Flag(help: "Print JSON.") var json = false

    /// The agent's control port (`up --control-port`'s default).
    static let defaultPort: UInt16 = 51821
    /// Long enough for one round trip and two retransmissions (500 ms RTO:
    /// requests at 0, 0.5 and 1.5 s), short enough for a command.
    static let defaultTimeout: Double = 3
    static let maxTimeout: Double = 600

    func validate() throws {
        for s in stunServers where STUNServerSpec(s) == nil { throw ValidationError(STUNServerSpec.problem(s)) }
        if let t = timeout, !(t.isFinite && t > 0 && t <= Netcheck.maxTimeout) {
            throw ValidationError("--timeout must be more than 0 and at most \(Int(Netcheck.maxTimeout)) seconds")
        }
        if let c = configFile, c.isEmpty { throw ValidationError("--config must not be empty") }
    }

    func run() throws {
        let (specs, configuredPort) = try settings()
        guard !specs.isEmpty else {
            throw CLIError("netcheck: no STUN servers (give --stun-server host:port or stun-servers in the configuration file)")
        }
        let requestedPort = port ?? configuredPort ?? Netcheck.defaultPort
        let servers = specs.map { Server(spec: $0, endpoint: Netcheck.resolve($0)) }

        let socket: UDPSocket
        do { socket = try UDPSocket(family: .dualStack, nonBlocking: true) } catch { throw CLIError(error) }
        defer { socket.close() }
        let portNote = try Netcheck.bind(socket, port: requestedPort)
        let boundPort = socket.port

        let endpoints = servers.compactMap(\.endpoint)
        let local = endpoints.first.flatMap(HostAddresses.source(toward:)).map { Endpoint($0, port: boundPort) }
        var seed: UInt64 = 0
        for b in SystemRandom.bytes(8) { seed = seed << 8 | UInt64(b) }
        var client = STUNClient(servers: endpoints, localEndpoint: local, random: SeededRandom(seed: seed), now: MonotonicClock.now())
        let sendErrors = try Netcheck.measure(&client, socket: socket, timeout: .nanoseconds(Int64((timeout ?? Netcheck.defaultTimeout) * 1e9)))

        let report = Report(requestedPort: requestedPort, port: boundPort, portNote: portNote,
                            local: HostAddresses.local(ipv6: socket.family != .ipv4).map { Endpoint($0, port: boundPort) },
                            servers: servers, client: client, sendErrors: sendErrors)
        print(json ? report.json() : report.text(), terminator: "")
        if !report.anyAnswer {
            throw CLIError(client.results.isEmpty || client.results.values.allSatisfy({ if case .noAnswer = $0 { true } else { false } })
                           ? "netcheck: no STUN server answered" : "netcheck: no STUN server answered with an address")
        }
    }

    /// The STUN servers (flags, else the file) and the file's control-port.
    func settings() throws -> ([STUNServerSpec], UInt16?) {
        let file = try Up.readConfigFile(configFile, dir: try options.directory())
        let filePort = file?.integer("control-port").map { UInt16(clamping: $0) }
        if !stunServers.isEmpty { return (stunServers.compactMap(STUNServerSpec.init), filePort) }
        var specs: [STUNServerSpec] = []
        for s in file?.strings("stun-servers") ?? [] {
            guard let spec = STUNServerSpec(s) else { throw CLIError(file!.error("stun-servers", STUNServerSpec.problem(s)).description) }
            specs.append(spec)
        }
        return (specs, filePort)
    }

    struct Server {
        let spec: STUNServerSpec
        /// Nil when the name does not resolve.
        let endpoint: Endpoint?
    }

    /// An address as is; a name's first IPv4 address, else its first address
    /// (NAT traversal is an IPv4 matter; and one address per server keeps
    /// "two servers" meaning two servers).
    static func resolve(_ spec: STUNServerSpec) -> Endpoint? {
        switch spec.host {
        case .address(let a):
            return Endpoint(a, port: spec.port)
        case .name(let n):
            let all = Resolver.endpoints(host: n, port: spec.port)
            return all.first(where: { $0.address.isIPv4 }) ?? all.first
        }
    }

    /// Binds `port`; when it is taken (or not ours to take), an ephemeral
    /// port, and the note that says so.
    static func bind(_ socket: UDPSocket, port: UInt16) throws -> String? {
        do {
            try socket.bind(port: port)
            return port == 0 ? "an ephemeral port" : nil
        } catch let e where port != 0 && (e.errno == .addressInUse || e.errno == .permissionDenied) {
            do { try socket.bind(port: 0) } catch { throw CLIError(error) }
            return e.errno == .addressInUse
                ? "\(port) is in use, probably by the running agent: measuring from this ephemeral port instead"
                : "cannot bind \(port): \(e.errno): measuring from this ephemeral port instead"
        } catch {
            throw CLIError(error)
        }
    }

    /// Drives the client until its round is over or `timeout` has passed
    /// (then the servers still waiting are recorded as no answer). Returns
    /// the send errors by server.
    static func measure(_ client: inout STUNClient, socket: UDPSocket, timeout: Duration) throws -> [Endpoint: String] {
        var sendErrors: [Endpoint: String] = [:]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        let poller = Poller([socket.fileDescriptor])
        let start = MonotonicClock.now()
        let deadline = start + timeout
        client.start(now: start)
        while true {
            while let d = client.pollTransmit() {
                do { _ = try socket.send(d.bytes, to: d.to) } catch { sendErrors[d.to] = "\(error.errno)" }
            }
            let now = MonotonicClock.now()
            if client.isFinished { break }
            if now >= deadline { client.endRound(now: now); break }
            let wake = min(client.nextDeadline() ?? deadline, deadline)
            do { _ = try poller.wait(timeout: wake - now) } catch { throw CLIError(error) }
            while true {
                let got: (length: Int, from: Endpoint)?
                do { got = try socket.receive(into: buffer) } catch where error.errno == .messageTooLong { continue } catch { throw CLIError(error) }
                guard let got else { break }
                _ = client.receive(Array(buffer[..<got.length]), from: got.from, now: MonotonicClock.now())
            }
            client.handleTimers(now: MonotonicClock.now())
        }
        return sendErrors
    }

    // MARK: Output

    struct Report {
        let requestedPort: UInt16
        let port: UInt16
        let portNote: String?
        let local: [Endpoint]
        let servers: [Server]
        let client: STUNClient
        let sendErrors: [Endpoint: String]

        var anyAnswer: Bool { client.results.values.contains { $0.mapped != nil } }

        static func milliseconds(_ d: Duration) -> String {
            let tenths = max(0, (d.nanosecondsClamped + 50_000) / 100_000)
            return "\(tenths / 10).\(tenths % 10) ms"
        }

        static func plural(_ n: Int, _ word: String) -> String { "\(n) \(word)\(n == 1 ? "" : "s")" }

        /// The server as given, and the address it resolved to when it was a name.
        func name(_ s: Server) -> String {
            if case .name = s.spec.host, let e = s.endpoint { return "\(s.spec) (\(e))" }
            return s.spec.description
        }

        func outcome(_ s: Server) -> String {
            guard let e = s.endpoint else { return "does not resolve" }
            let sendError = sendErrors[e].map { "; send: \($0)" } ?? ""
            switch client.results[e] {
            case .mapped(let m, let rtt)?: return "\(m) (rtt \(Report.milliseconds(rtt)))"
            case .noAnswer(let n)?: return "no answer (\(Report.plural(n, "request"))\(sendError))"
            case .error(let code, let reason)?: return "error \(code)\(reason.isEmpty ? "" : " " + reason)"
            case nil: return "no answer\(sendError.isEmpty ? "" : " (" + sendError.dropFirst(2) + ")")"
            }
        }

        var mappingExplanation: String {
            switch client.mapping {
            case .none: "the STUN servers see this host's own address and port"
            case .endpointIndependent: "every STUN server sees the same public address and port"
            case .endpointDependent: "each STUN server sees a different public address or port"
            case .unknown: client.reflexive == nil ? "no STUN server answered"
                : "one STUN server answered; telling the mapping needs answers from two"
            }
        }

        var reachable: String {
            switch client.mapping {
            case .none: "yes (public address, no NAT)"
            case .endpointIndependent: "after hole punching (endpoint-independent NAT)"
            case .endpointDependent: "no: endpoint-dependent NAT, peers behind NATs need a relay"
            case .unknown: "unknown"
            }
        }

        /// Drop reasons as people read them, most frequent first.
        var drops: [(String, UInt64)] {
            client.drops.map { ($0.key == STUNClient.unknownTransaction ? "wrong transaction id" : $0.key, $0.value) }
                .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
        }

        func text() -> String {
            var lines = ["netcheck: UDP port \(port)" + (portNote.map { " (\($0))" } ?? "")]
            lines += local.isEmpty ? ["local:     none"] : local.map { "local:     \($0)" }
            lines += servers.map { "stun:      \(name($0)) -> \(outcome($0))" }
            lines.append("public:    \(client.reflexive?.description ?? "unknown")")
            lines.append("mapping:   \(client.mapping.rawValue) (\(mappingExplanation))")
            lines.append("reachable: \(reachable)")
            let total = client.drops.values.reduce(0, &+)
            if total > 0 {
                lines.append("dropped:   \(Report.plural(Int(clamping: total), "STUN answer")) ("
                             + drops.map { "\($0.0) \($0.1)" }.joined(separator: ", ") + ")")
            }
            return lines.joined(separator: "\n") + "\n"
        }

        func json() -> String {
            let o = JSONWriter()
            o.object {
                o.field("port", Int(port))
                o.field("requestedPort", Int(requestedPort))
                if let n = portNote { o.field("portNote", n) } else { o.nullField("portNote") }
                o.field("local", local.map(\.description))
                o.key("servers")
                o.array(servers) { s in
                    o.object {
                        o.field("server", s.spec.description)
                        if let e = s.endpoint { o.field("address", e.description) } else { o.nullField("address") }
                        switch s.endpoint.flatMap({ client.results[$0] }) {
                        case .mapped(let m, let rtt)?:
                            o.field("result", "mapped")
                            o.field("mapped", m.description)
                            o.field("rttMicroseconds", Int(rtt.nanosecondsClamped / 1000))
                        case .noAnswer(let n)?:
                            o.field("result", "no-answer")
                            o.field("requests", n)
                        case .error(let code, let reason)?:
                            o.field("result", "error")
                            o.field("code", code)
                            o.field("reason", reason)
                        case nil:
                            o.field("result", s.endpoint == nil ? "unresolved" : "no-answer")
                        }
                        if let e = s.endpoint, let err = sendErrors[e] { o.field("sendError", err) }
                    }
                }
                if let r = client.reflexive { o.field("public", r.description) } else { o.nullField("public") }
                o.field("mapping", client.mapping.rawValue)
                o.field("reachable", reachable)
                o.key("drops")
                o.object { for (r, n) in client.drops.sorted(by: { $0.key < $1.key }) { o.field(r, Int(clamping: n)) } }
            }
            return o.text + "\n"
        }
    }
}

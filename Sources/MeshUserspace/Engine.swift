// UserspaceEngine: our WireGuard on a TUN device and one UDP socket — the
// sans-IO WireGuardDevice driven by three threads:
//
//   tun thread      TUN --read batch--> lock{encrypt each} --sendmmsg--> UDP
//   udp thread      UDP --recvmmsg--> classify: WireGuard types 1-4 --> lock{receive} --write--> TUN
//                                               anything else ---------> control-plane handler
//   control thread  timers (nextDeadline), the UAPI socket (wg show / wg set), wall clock
//
// The device is guarded by one mutex, taken once per batch. Datagrams the
// device queues itself (handshakes, keepalives, cookie replies, staged data)
// are drained inside the lock and sent after it.
//
// Offloads (EngineConfiguration.offload), each used only when the kernel
// accepts it, cut the kernel's per-packet work on bulk TCP:
//
//   tun thread   TUN TSO: one read returns a 64 KiB TCP super-packet, cut into
//                segments in the batch (TunOffload.swift); the encrypted run
//                of segments to one endpoint leaves in one UDP GSO send
//                (UDPSocket.sendCoalesced), cut back into datagrams by the kernel
//   udp thread   UDP GRO: one receive slot holds up to 64 datagrams of one
//                sender, opened one by one in place; in-order TCP segments are
//                merged into one TUN write (TCPCoalescer.swift)
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
import MeshCrypto
import MeshLinux
import MeshWireGuard
import Synchronization

public struct EngineConfiguration: Sendable {
    /// TUN interface name (may contain %d).
    public var interfaceName: String
    /// MTU of the TUN interface; plaintext is padded up to it.
    public var mtu: Int = 1420
    /// Bring the interface up at start (the agent does; `wireguard` mode leaves it to the user, like wireguard-go).
    public var bringUp = false
    /// Directory of the UAPI socket; nil: no UAPI socket.
    public var uapiDirectory: String? = "/var/run/wireguard"
    /// Datagrams per recvmmsg/sendmmsg and packets per TUN batch.
    public var batchSize = 64
    /// Use the kernel's offloads where it accepts them: TUN TSO and checksum
    /// offload (IFF_VNET_HDR), UDP GSO sends and GRO receives, TCP coalescing
    /// on TUN writes. On by default: they save most of the kernel's per-packet
    /// work on bulk TCP. false forces one packet per TUN read and write and one
    /// datagram per UDP send and receive (tests exercise both paths).
    public var offload = true
    /// Seed for the device's non-secret randomness (indices, jitter).
    public var seed: UInt64 = UInt64.random(in: .min ... .max)

    public init(interfaceName: String) { self.interfaceName = interfaceName }
}

public final class UserspaceEngine: @unchecked Sendable {
    // Thread-safety: `device` and `socket` are behind locks; `tun` and the
    // wake signals are used by their threads and are safe to share (their
    // descriptors are stable until `stop`). Everything else is set in init.
    public let configuration: EngineConfiguration
    public let tun: TunDevice
    private let device: Locked<WireGuardDevice>
    private let socket: Locked<UDPSocket>
    private let stopSignal: WakeupSignal
    private let udpWake: WakeupSignal
    private let controlWake: WakeupSignal
    private let stopping = Locked(false)
    private var threads: [OSThread] = []
    private var uapi: UAPIServer?
    // Offload counters, published by the packet threads once per batch.
    private let superPacketsSplit = Atomic(0)
    private let segmentsMerged = Atomic(0)
    /// Receives every datagram on the port that is not a WireGuard message.
    /// The closure is kept in a struct: stored bare in the generic `Locked`,
    /// each `withLock { $0 }` wrote it back wrapped in two more reabstraction
    /// thunks, so every delivery ran through a longer chain (memory, CPU and
    /// stack growing without end until the thread's stack overflowed; found by
    /// Tests/Integration/mesh-soak.sh).
    private struct ControlHandler { let call: @Sendable ([UInt8], Endpoint) -> Void }
    private let controlHandler = Locked<ControlHandler?>(nil)

    public init(_ configuration: EngineConfiguration) throws {
        self.configuration = configuration
        tun = try Self.openTun(configuration)
        if configuration.bringUp { try tun.setUp(true) }
        var options = DeviceOptions()
        options.mtu = configuration.mtu
        let dev = WireGuardDevice(options: options, seed: configuration.seed)
        let sock = try Self.openSocket(port: 0, offload: configuration.offload)
        let port = try sock.localEndpoint().port
        dev.apply(DeviceConfiguration(listenPort: port), now: MonotonicClock.now())
        device = Locked(dev)
        socket = Locked(sock)
        stopSignal = try WakeupSignal()
        udpWake = try WakeupSignal()
        controlWake = try WakeupSignal()
    }

    /// The TUN device, with offload when asked for and the kernel takes it
    /// (TUNSETOFFLOAD may be refused, e.g. EINVAL on old kernels); otherwise
    /// plain. A failure of the plain open is the one reported.
    private static func openTun(_ c: EngineConfiguration) throws -> TunDevice {
        if c.offload, let t = try? TunDevice(name: c.interfaceName, mtu: c.mtu, nonBlocking: true, offload: true) { return t }
        return try TunDevice(name: c.interfaceName, mtu: c.mtu, nonBlocking: true)
    }

    /// A bound nonblocking dual-stack socket with 4 MiB buffers (bulk bursts
    /// of a 64-slot batch fit) and, with `offload`, UDP GRO when the kernel has it.
    private static func openSocket(port: UInt16, offload: Bool) throws(LinuxError) -> UDPSocket {
        let s = try UDPSocket(family: .dualStack, nonBlocking: true)
        try s.bind(port: port)
        _ = try? s.setReceiveBufferSize(4 << 20)
        _ = try? s.setSendBufferSize(4 << 20)
        if offload { _ = try? s.enableGRO() }
        return s
    }

    /// The interface's actual name.
    public var interfaceName: String { tun.name }

    /// The UDP port WireGuard (and the control plane) listens on.
    public var listenPort: UInt16 { device.withLock { $0.listenPort } }

    /// Sets the handler for non-WireGuard datagrams (the control plane).
    public func setControlHandler(_ h: (@Sendable ([UInt8], Endpoint) -> Void)?) {
        controlHandler.withLock { $0 = h.map { ControlHandler(call: $0) } }
    }

    /// Starts the threads and the UAPI socket.
    public func start() throws {
        if let dir = configuration.uapiDirectory {
            uapi = try UAPIServer(interface: tun.name, directory: dir) { [unowned self] request in self.handle(request) }
        }
        threads.append(try OSThread(name: "mg-tun") { [unowned self] in self.tunLoop() })
        threads.append(try OSThread(name: "mg-udp") { [unowned self] in self.udpLoop() })
        threads.append(try OSThread(name: "mg-control") { [unowned self] in self.controlLoop() })
    }

    /// Stops the threads, closes the UAPI socket and the TUN device.
    public func stop() {
        stopping.withLock { $0 = true }
        stopSignal.signal()
        for t in threads { t.join() }
        threads.removeAll()
        uapi?.close()
        uapi = nil
        tun.close()
        socket.withLock { $0.close() }
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    // MARK: Configuration

    /// Applies a configuration change; a new listen port rebinds the socket first.
    public func apply(_ change: DeviceConfiguration) throws(UAPIError) {
        if let port = change.listenPort, port != listenPort || port == 0 {
            do {
                let s = try Self.openSocket(port: port, offload: configuration.offload)
                var c = change
                c.listenPort = try s.localEndpoint().port
                try applyLocked(c, socket: s)
                return
            } catch let e as LinuxError where e.errno == .addressInUse {
                throw UAPIError(errno: UAPIError.Errno.EADDRINUSE, message: "port \(port) is in use")
            } catch {
                throw UAPIError(errno: UAPIError.Errno.EIO, message: "\(error)")
            }
        }
        try applyLocked(change, socket: nil)
    }

    private func applyLocked(_ change: DeviceConfiguration, socket newSocket: UDPSocket?) throws(UAPIError) {
        if let mark = change.firewallMark, let s = newSocket ?? socket.withLock({ $0 }) as UDPSocket? {
            try? s.setMark(mark)
        }
        if let s = newSocket {
            socket.withLock { $0 = s }
            udpWake.signal()
        }
        let now = MonotonicClock.now()
        let out = device.withLock { d -> [Transmit] in
            d.apply(change, now: now)
            return drain(d)
        }
        send(out)
        controlWake.signal()
    }

    /// What `wg show` sees.
    public func snapshot() -> DeviceConfiguration { device.withLock { $0.snapshot() } }

    public var statistics: DeviceStatistics { device.withLock { $0.statistics } }

    /// Which offloads are in use and what they did.
    public struct OffloadStatistics: Sendable, Equatable {
        /// The TUN device was opened with IFF_VNET_HDR and TSO.
        public var tun: Bool
        /// UDP sends are merged with GSO (off when not asked for, unsupported,
        /// or turned off after the kernel refused one).
        public var udpSegmentation: Bool
        /// TCP super-packets read from the TUN device and cut into segments.
        public var superPacketsSplit: Int
        /// TCP segments merged into another one for a TUN write.
        public var segmentsMerged: Int
    }

    public var offloadStatistics: OffloadStatistics {
        OffloadStatistics(tun: tun.offload, udpSegmentation: configuration.offload && socket.withLock { $0 }.coalescesSends,
                          superPacketsSplit: superPacketsSplit.load(ordering: .relaxed),
                          segmentsMerged: segmentsMerged.load(ordering: .relaxed))
    }

    private func handle(_ request: UAPIRequest) -> String {
        switch request {
        case .get:
            return UAPI.formatGet(snapshot())
        case .set(let body):
            do {
                try apply(UAPI.parseSet(body))
                return UAPI.formatErrno(0)
            } catch {
                return UAPI.formatErrno(error)
            }
        }
    }

    /// Sends a control-plane datagram from the shared port.
    @discardableResult
    public func sendControl(_ bytes: [UInt8], to endpoint: Endpoint) -> Bool {
        let s = socket.withLock { $0 }
        return (try? s.send(bytes, to: endpoint)) ?? false
    }

    // MARK: Loops

    private func drain(_ d: WireGuardDevice) -> [Transmit] {
        var out: [Transmit] = []
        while let t = d.pollTransmit() { out.append(t) }
        return out
    }

    /// Sends what the device queued (handshakes, cookie replies, keepalives,
    /// staged data); cookie replies through `batch` (a thread's own) with
    /// sendmmsg, so a handshake flood's replies cost one system call per
    /// receive batch, not one each.
    private func send(_ transmits: [Transmit], batch: DatagramBatch? = nil) {
        guard !transmits.isEmpty else { return }
        let s = socket.withLock { $0 }
        guard let batch, transmits.count > 1 else {
            for t in transmits { _ = try? s.send(t.bytes, to: t.endpoint) }
            return
        }
        // Cookie replies go in the batch; anything else (a handshake response,
        // data) is sent by itself first, so a batch the kernel cuts short
        // (a full send buffer under a flood) loses only cookie replies.
        var used = 0
        for t in transmits {
            guard t.bytes.first == WireGuardProtocol.messageHandshakeCookie, t.bytes.count <= batch.slotSize else {
                _ = try? s.send(t.bytes, to: t.endpoint)
                continue
            }
            t.bytes.withUnsafeBytes { batch.slotBuffer(used).copyMemory(from: $0) }
            batch.setPayload(used, offset: 0, length: t.bytes.count)
            batch.setEndpoint(used, t.endpoint)
            used += 1
            if used == batch.capacity { _ = try? s.send(batch, count: used); used = 0 }
        }
        if used > 0 { _ = try? s.send(batch, count: used) }
    }

    private func tunLoop() {
        guard let batch = try? DatagramBatch(capacity: configuration.batchSize, bufferSize: 65535,
                                             headroom: WireGuardProtocol.transportHeaderSize, tailroom: 32) else { return }
        let poller = Poller([tun.fileDescriptor, stopSignal.fileDescriptor])
        var sendable = [Bool](repeating: false, count: batch.capacity)
        let offload = configuration.offload
        while !isStopping {
            guard (try? poller.wait(timeout: nil)) != nil else { return }
            if poller.isReady(1) { return }
            while true {
                guard let n = try? tun.read(into: batch), n > 0 else { break }
                let now = MonotonicClock.now()
                let out = device.withLock { d -> [Transmit] in
                    for i in 0..<n {
                        sendable[i] = false
                        if batch.isTruncated(i) { continue }
                        var offset = batch.offset(i), length = batch.length(i)
                        if case .send(let endpoint) = d.encrypt(batch.slotBuffer(i), offset: &offset, length: &length, now: now) {
                            batch.setPayload(i, offset: offset, length: length)
                            batch.setEndpoint(i, endpoint)
                            sendable[i] = true
                        }
                    }
                    return d.hasPendingTransmits ? drain(d) : []
                }
                let s = socket.withLock { $0 }
                var i = 0
                while i < n {
                    guard sendable[i] else { i += 1; continue }
                    var j = i
                    while j < n && sendable[j] { j += 1 }
                    _ = try? offload ? s.sendCoalesced(batch, slots: i..<j) : s.send(batch, slots: i..<j)
                    i = j
                }
                send(out)
                superPacketsSplit.store(batch.superPacketsSplit, ordering: .relaxed)
                if n < batch.capacity { break }
            }
        }
    }

    /// An opened data packet: where its IP packet lies in the receive batch.
    private struct Delivery { var slot: Int; var offset: Int; var length: Int }

    private func udpLoop() {
        guard let batch = try? DatagramBatch(capacity: configuration.batchSize, bufferSize: 65535) else { return }
        let coalescer = TCPCoalescer()
        var deliveries: [Delivery] = []
        // Sized for 64 datagrams per slot (the kernel's UDP_GRO_CNT_MAX); more only grows it once.
        deliveries.reserveCapacity(batch.capacity * 64)
        var control: [([UInt8], Endpoint)] = []
        let replies = try? DatagramBatch(capacity: configuration.batchSize, bufferSize: 2048)
        while !isStopping {
            let s = socket.withLock { $0 }
            let poller = Poller([s.fileDescriptor, stopSignal.fileDescriptor, udpWake.fileDescriptor])
            var rebuild = false
            while !rebuild {
                guard (try? poller.wait(timeout: nil)) != nil else { return }
                if poller.isReady(1) { return }
                if poller.isReady(2) { udpWake.drain(); rebuild = socket.withLock { $0 } !== s; if rebuild { break } }
                guard poller.isReady(0) else { continue }
                while true {
                    guard let n = try? s.receive(into: batch), n > 0 else { break }
                    let now = MonotonicClock.now()
                    control.removeAll(keepingCapacity: true)
                    deliveries.removeAll(keepingCapacity: true)
                    let out = device.withLock { d -> [Transmit] in
                        for i in 0..<n {
                            guard !batch.isTruncated(i), let from = batch.endpoint(i) else { continue }
                            let buffer = batch.slotBuffer(i)
                            for (start, count) in batch.datagrams(in: i) {
                                let payload = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + count)])
                                guard MessageKind.classify(payload) != .other || UserspaceEngine.looksLikeWireGuard(payload) else {
                                    control.append((Array(payload), from))
                                    continue
                                }
                                var offset = start, length = count
                                if d.receive(buffer, offset: &offset, length: &length, from: from, now: now) == .deliver {
                                    deliveries.append(Delivery(slot: i, offset: offset, length: length))
                                }
                            }
                        }
                        return d.hasPendingTransmits ? drain(d) : []
                    }
                    send(out, batch: replies)
                    for p in deliveries {
                        let packet = UnsafeRawBufferPointer(rebasing: batch.slotBuffer(p.slot)[p.offset..<(p.offset + p.length)])
                        tun.write(packet, coalescing: coalescer)
                    }
                    tun.flush(coalescer)
                    segmentsMerged.store(coalescer.merged, ordering: .relaxed)
                    if !control.isEmpty, let h = controlHandler.withLock({ $0 })?.call {
                        for (bytes, from) in control { h(bytes, from) }
                    }
                    if n < batch.capacity { break }
                }
            }
        }
    }

    /// Bytes whose first four name a WireGuard type (1-4 and three zeros) but
    /// whose size is wrong: the device counts them as malformed, rather than
    /// the control plane seeing them.
    static func looksLikeWireGuard(_ p: UnsafeRawBufferPointer) -> Bool {
        p.count >= 4 && (1...4).contains(p[0]) && p[1] == 0 && p[2] == 0 && p[3] == 0
    }

    private func controlLoop() {
        while !isStopping {
            let now = MonotonicClock.now()
            let wall = WallClock.now()
            let out = device.withLock { d -> [Transmit] in
                d.setWallClock(WallTime(seconds: wall.seconds, nanoseconds: Int64(wall.nanoseconds)), at: now)
                d.handleTimers(now: now)
                return drain(d)
            }
            send(out)
            let deadline = device.withLock { $0.nextDeadline() }
            // Sleep until the next timer, but at most 100 ms: the data path may
            // arm an earlier one while we sleep.
            var timeout: Duration = .milliseconds(100)
            if let d = deadline {
                let until = d - MonotonicClock.now()
                if until < timeout { timeout = max(until, .zero) }
            }
            let uapiFDs = uapi?.pollDescriptors ?? []
            let fds = [stopSignal.fileDescriptor, controlWake.fileDescriptor] + uapiFDs
            let poller = Poller(fds)
            guard (try? poller.wait(timeout: timeout)) != nil else { return }
            if poller.isReady(0) { return }
            if poller.isReady(1) { controlWake.drain() }
            for (i, fd) in uapiFDs.enumerated() where poller.isReady(i + 2) { uapi?.handleReadable(fd) }
        }
    }
}

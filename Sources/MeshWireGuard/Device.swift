// WireGuardDevice: the sans-IO userspace WireGuard engine. It owns peers,
// keypairs, the index and allowed-IPs tables, cookies and timers, and turns
// inputs into outputs without doing I/O or reading a clock:
//
//   inputs                                   outputs
//   ------                                   -------
//   encrypt(packet from TUN, now)       ->   .send(endpoint) with the message in place | .queued | .drop
//   receive(datagram, from, now)        ->   .deliver (inner packet in place) | .consumed | .drop
//   handleTimers(now)                   ->   queued transmits (handshakes, keepalives, staged data)
//   apply(configuration change, now)
//                                            pollTransmit(): datagrams to send, in order
//                                            nextDeadline(): when handleTimers must run next
//
// Buffers belong to the caller. Data packets are sealed and opened in place;
// the caller leaves `transportHeaderSize` bytes of headroom and 16 + 15 bytes
// of tailroom (tag and padding). Handshakes, keepalives and staged packets go
// through the transmit queue (they are rare; those allocate).
//
// Not thread-safe: one owner drives it (the engine serialises calls).
import MeshBase
import MeshCrypto

/// A datagram the device wants sent.
public struct Transmit: Sendable, Equatable {
    public var bytes: [UInt8]
    public var endpoint: Endpoint
    public init(bytes: [UInt8], endpoint: Endpoint) { self.bytes = bytes; self.endpoint = endpoint }
}

public enum OutgoingResult: Equatable, Sendable {
    /// The buffer now holds a transport message for this endpoint.
    case send(Endpoint)
    /// Kept until a session exists (a handshake was started).
    case queued
    case drop(DropReason)
}

public enum IncomingResult: Equatable, Sendable {
    /// The buffer now holds an IP packet to write to the TUN device.
    case deliver
    /// Handled (handshake, cookie, keepalive); check `pollTransmit()`.
    case consumed
    case drop(DropReason)
}

public struct DeviceOptions: Sendable {
    /// Interface MTU: plaintext is padded to a multiple of 16 but not beyond it.
    public var mtu: Int = 1420
    /// Handshake messages per second above which cookies are demanded.
    public var underLoadHandshakesPerSecond = WireGuardProtocol.underLoadHandshakesPerSecond
    public init() {}
}

/// Per-source token buckets for handshake messages while under load (kernel ratelimiter.c).
/// Per-source token buckets for handshakes that carry a valid cookie while
/// under load (kernel ratelimiter.c): IPv4 sources by address, IPv6 by /64
/// (one host has a whole /64), at most `capacity` sources at once (more are
/// refused until idle ones are swept, so a flood of sources costs bounded memory).
struct HandshakeRateLimiter {
    struct Bucket { var tokens: Double; var last: Instant }
    private(set) var buckets: [IPAddress: Bucket] = [:]
    private var lastSweep: Instant = .zero
    let capacity: Int

    init(capacity: Int = 16_384) { self.capacity = capacity }

    static func key(_ source: IPAddress) -> IPAddress {
        if case .v6(let a) = source { return .v6(IPv6Address(high: a.high, low: 0)) }
        return source
    }

    mutating func allow(_ source: IPAddress, now: Instant) -> Bool {
        if now - lastSweep > .seconds(1) {
            buckets = buckets.filter { now - $0.value.last < .seconds(1) }
            lastSweep = now
        }
        let key = Self.key(source)
        let rate = Double(WireGuardProtocol.ratelimitPacketsPerSecond)
        let burst = Double(WireGuardProtocol.ratelimitBurst)
        guard var b = buckets[key] ?? (buckets.count < capacity ? Bucket(tokens: burst, last: now) : nil) else { return false }
        b.tokens = min(burst, b.tokens + (now - b.last).seconds * rate)
        b.last = now
        let ok = b.tokens >= 1
        if ok { b.tokens -= 1 }
        buckets[key] = b
        return ok
    }
}

public final class WireGuardDevice {
    enum IndexEntry: Sendable { case handshake(UInt32), keypair(UInt32) }

    public private(set) var options: DeviceOptions
    private(set) var local: LocalStatic?
    public private(set) var listenPort: UInt16 = 0
    public private(set) var firewallMark: UInt32 = 0
    public private(set) var statistics = DeviceStatistics()

    private var peers: [UInt32: Peer] = [:]
    private var peerIDs: [Bytes32: UInt32] = [:]
    private var nextPeerID: UInt32 = 1
    private var allowedIPs = AllowedIPs<UInt32>()
    private var indices = IndexTable<IndexEntry>()
    private var timerHeap = TimerHeap()
    private var cookieChecker = CookieChecker()
    private var rateLimiter = HandshakeRateLimiter()
    private var rng: SeededRandom
    private var transmits: [Transmit] = []
    private var transmitHead = 0

    // Under-load detection: handshake messages counted per one-second window.
    private var loadWindowStart: Instant = .zero
    private var loadWindowCount = 0
    private var lastUnderLoad: Instant?
    private var noncePool: [UInt8] = []
    private var noncePoolUsed = 0

    /// Wall-clock time at monotonic instant zero, for TAI64N timestamps and
    /// last-handshake times. Set by the I/O layer (`setWallClock`).
    private var wallAtZero = WallTime(seconds: 0, nanoseconds: 0)

    public init(options: DeviceOptions = DeviceOptions(), seed: UInt64) {
        self.options = options
        rng = SeededRandom(seed: seed)
    }

    public var publicKey: Bytes32? { local?.publicKey }
    public var peerCount: Int { peers.count }

    /// Tells the device which wall-clock time corresponds to monotonic `now`.
    public func setWallClock(_ wall: WallTime, at now: Instant) {
        let ns = wall.seconds * 1_000_000_000 + wall.nanoseconds - Int64(clamping: now.nanoseconds)
        wallAtZero = WallTime(seconds: ns / 1_000_000_000, nanoseconds: ns % 1_000_000_000)
    }

    func wallTime(at now: Instant) -> WallTime {
        let ns = wallAtZero.seconds * 1_000_000_000 + wallAtZero.nanoseconds + Int64(clamping: now.nanoseconds)
        return WallTime(seconds: ns / 1_000_000_000, nanoseconds: ns % 1_000_000_000)
    }

    // MARK: - Output queue

    /// The next datagram to send, in the order they were produced.
    public func pollTransmit() -> Transmit? {
        guard transmitHead < transmits.count else {
            if !transmits.isEmpty { transmits.removeAll(keepingCapacity: true); transmitHead = 0 }
            return nil
        }
        let t = transmits[transmitHead]
        transmitHead += 1
        if transmitHead == transmits.count { transmits.removeAll(keepingCapacity: true); transmitHead = 0 }
        return t
    }

    public var hasPendingTransmits: Bool { transmitHead < transmits.count }

    private func queue(_ bytes: [UInt8], to endpoint: Endpoint, peer: Peer?) {
        transmits.append(Transmit(bytes: bytes, endpoint: endpoint))
        peer?.transmittedBytes &+= UInt64(bytes.count)
    }

    private func drop(_ r: DropReason) { statistics.drops[r, default: 0] &+= 1 }

    // MARK: - Configuration

    /// Applies a change (see Configuration.swift for its semantics).
    public func apply(_ change: DeviceConfiguration, now: Instant) {
        // Setting the key it already has changes nothing (sessions survive `wg syncconf`).
        if let pk = change.privateKey, !(local.map { $0.privateKey.secret.constantTimeEquals(pk) } ?? false) {
            setPrivateKey(pk.withUnsafeBytes { ConstantTime.isZero($0) } ? nil : X25519.PrivateKey(secret: pk), now: now)
        }
        if let p = change.listenPort { listenPort = p }
        if let m = change.firewallMark { firewallMark = m }
        if change.replacePeers {
            for id in Array(peers.keys) { removePeer(id) }
        }
        for pc in change.peers { applyPeer(pc, now: now) }
    }

    private func setPrivateKey(_ key: X25519.PrivateKey?, now: Instant) {
        local = key.map(LocalStatic.init)
        // A peer with our own public key cannot exist (kernel netlink.c).
        if let pub = local?.publicKey, let id = peerIDs[pub] { removePeer(id) }
        for p in peers.values {
            p.remote = RemoteStatic(publicKey: p.publicKey, local: local)
            // Sessions under the old identity are void (kernel: expire current keypairs).
            for k in p.keypairs.clear() { _ = indices.remove(k.localIndex) }
            clearHandshake(p)
        }
    }

    private func applyPeer(_ pc: PeerConfiguration, now: Instant) {
        if pc.remove {
            if let id = peerIDs[pc.publicKey] { removePeer(id) }
            return
        }
        var peer = peerIDs[pc.publicKey].flatMap { peers[$0] }
        if peer == nil {
            if pc.updateOnly || pc.publicKey == local?.publicKey { return }
            let p = Peer(id: nextPeerID, remote: RemoteStatic(publicKey: pc.publicKey, local: local),
                         presharedKey: SecretBytes(count: 32) { _ in })
            nextPeerID &+= 1
            peers[p.id] = p
            peerIDs[pc.publicKey] = p.id
            peer = p
        }
        guard let p = peer else { return }
        if let psk = pc.presharedKey { p.presharedKey = SecretBytes(copying: psk.bytes) }
        if let e = pc.endpoint { p.endpoint = e }
        if pc.replaceAllowedIPs {
            for prefix in allowedIPs.prefixes(for: p.id) { _ = allowedIPs.remove(prefix, value: p.id) }
        }
        for prefix in pc.allowedIPs { allowedIPs.insert(prefix, value: p.id) }
        if let k = pc.persistentKeepaliveInterval {
            let was = p.persistentKeepaliveInterval
            p.persistentKeepaliveInterval = k
            if k == 0 {
                cancel(.persistentKeepalive, p)
            } else if was == 0 {
                // Turning it on sends one at once (kernel netlink.c set_peer).
                sendKeepalive(p, now: now)
            }
        }
    }

    private func removePeer(_ id: UInt32) {
        guard let p = peers.removeValue(forKey: id) else { return }
        peerIDs[p.publicKey] = nil
        allowedIPs.removeAll(value: id)
        for k in p.keypairs.clear() { _ = indices.remove(k.localIndex) }
        clearHandshake(p)
        p.staged.removeAll()
    }

    private func clearHandshake(_ p: Peer) {
        if let i = p.handshakeIndex {
            // The index may have become a keypair's: only remove it while it names the handshake.
            if case .handshake? = indices.lookup(i) { _ = indices.remove(i) }
        }
        p.handshakeIndex = nil
        p.handshake = .none
    }

    /// The device as `wg show` sees it.
    public func snapshot() -> DeviceConfiguration {
        var c = DeviceConfiguration()
        c.privateKey = local?.privateKey.secret
        c.publicKey = local?.publicKey
        c.listenPort = listenPort
        c.firewallMark = firewallMark
        c.peers = peers.values.sorted { $0.id < $1.id }.map { p in
            let psk = p.presharedKey.withUnsafeBytes { ConstantTime.isZero($0) } ? nil : Bytes32(p.presharedKey.unsafeExportedBytes())
            return PeerConfiguration(publicKey: p.publicKey, presharedKey: psk, endpoint: p.endpoint,
                                     persistentKeepaliveInterval: p.persistentKeepaliveInterval,
                                     allowedIPs: allowedIPs.prefixes(for: p.id), lastHandshake: p.lastHandshake,
                                     receivedBytes: p.receivedBytes, transmittedBytes: p.transmittedBytes, protocolVersion: 1)
        }
        return c
    }

    // MARK: - Outgoing

    /// Encrypts the IP packet at `buffer[offset ..< offset+length]` in place for
    /// the peer whose allowed IPs hold its destination. On `.send`, `offset`
    /// and `length` describe the transport message.
    public func encrypt(_ buffer: UnsafeMutableRawBufferPointer, offset: inout Int, length: inout Int, now: Instant) -> OutgoingResult {
        let packet = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + length)])
        guard IPPacket.isValid(packet) else { drop(.invalidPacket); return .drop(.invalidPacket) }
        guard let id = allowedIPs.lookupDestination(ofPacket: packet), let p = peers[id] else {
            drop(.noRoute); return .drop(.noRoute)
        }
        guard let endpoint = p.endpoint else { drop(.noEndpoint); return .drop(.noEndpoint) }
        // Packets already staged go first, in order.
        if !p.staged.isEmpty || !(p.keypairs.current?.canSend(now: now) ?? false) {
            stage(Array(packet), p)
            sendStaged(p, now: now)
            return .queued
        }
        let k = p.keypairs.current!
        let padded = paddedLength(length)
        guard offset >= WireGuardProtocol.transportHeaderSize, offset + padded + 16 <= buffer.count else {
            drop(.bufferTooSmall); return .drop(.bufferTooSmall)
        }
        seal(buffer, offset: &offset, length: &length, padded: padded, keypair: k)
        p.transmittedBytes &+= UInt64(length)
        afterDataSent(p, keypair: k, wasData: true, now: now)
        return .send(endpoint)
    }

    /// Plaintext length after padding: a multiple of 16, but not beyond the MTU.
    func paddedLength(_ n: Int) -> Int {
        let aligned = (n + 15) & ~15
        return n > options.mtu ? n : min(aligned, max(options.mtu, n))
    }

    /// Seals in place: header before, padding and tag after the plaintext.
    private func seal(_ buffer: UnsafeMutableRawBufferPointer, offset: inout Int, length: inout Int, padded: Int, keypair k: Keypair) {
        let base = buffer.baseAddress!
        let payload = base + offset
        if padded > length { (payload + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
        let counter = k.sendCounter
        k.sendCounter &+= 1
        let header = payload - WireGuardProtocol.transportHeaderSize
        header.storeBytes(of: UInt32(WireGuardProtocol.messageTransportData).littleEndian, as: UInt32.self)
        header.storeBytes(of: k.remoteIndex.littleEndian, toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: counter.littleEndian, toByteOffset: 8, as: UInt64.self)
        k.sendingKey.withUnsafeBytes { key in
            ChaChaPoly.sealInPlace(key: key.baseAddress!, counter: counter, data: payload, length: padded, tag: payload + padded)
        }
        offset -= WireGuardProtocol.transportHeaderSize
        length = WireGuardProtocol.transportHeaderSize + padded + 16
    }

    private func stage(_ packet: [UInt8], _ p: Peer) {
        if p.staged.count >= WireGuardProtocol.maxStagedPackets {
            p.staged.removeFirst()
            drop(.stagedQueueFull)
        }
        p.staged.append(packet)
    }

    /// Sends every staged packet if a session allows, else starts a handshake
    /// (kernel send.c wg_packet_send_staged_packets).
    private func sendStaged(_ p: Peer, now: Instant) {
        guard !p.staged.isEmpty else { return }
        guard let k = p.keypairs.current, k.canSend(now: now), let endpoint = p.endpoint else {
            if let k = p.keypairs.current, k.sendingValid, !k.canSend(now: now) { k.sendingValid = false }
            sendHandshakeInitiation(p, isRetry: false, now: now)
            return
        }
        let packets = p.staged
        p.staged.removeAll(keepingCapacity: true)
        var sentData = false
        for packet in packets {
            guard k.canSend(now: now) else { stage(packet, p); continue }
            let padded = paddedLength(packet.count)
            var buf = [UInt8](repeating: 0, count: WireGuardProtocol.transportHeaderSize + padded + 16)
            var offset = WireGuardProtocol.transportHeaderSize
            var length = packet.count
            buf.withUnsafeMutableBytes { b in
                b.baseAddress!.advanced(by: offset).copyMemory(from: packet, byteCount: packet.count)
                seal(b, offset: &offset, length: &length, padded: padded, keypair: k)
            }
            queue(buf, to: endpoint, peer: p)
            if !packet.isEmpty { sentData = true }
        }
        afterDataSent(p, keypair: k, wasData: sentData, now: now)
        if !p.staged.isEmpty { sendHandshakeInitiation(p, isRetry: false, now: now) }
    }

    /// Timer events and key freshness after transport messages went out.
    private func afterDataSent(_ p: Peer, keypair k: Keypair, wasData: Bool, now: Instant) {
        anyAuthenticatedPacketTraversal(p, now: now)
        anyAuthenticatedPacketSent(p)
        if wasData { dataSent(p, now: now) }
        // keep_key_fresh (send side).
        if k.sendingValid && (k.sendCounter > WireGuardProtocol.rekeyAfterMessages
                              || (k.isInitiator && now - k.birth >= WireGuardProtocol.rekeyAfterTime)) {
            sendHandshakeInitiation(p, isRetry: false, now: now)
        }
    }

    /// A keepalive: an empty transport message, or a handshake if there is no session.
    private func sendKeepalive(_ p: Peer, now: Instant) {
        if p.staged.isEmpty { p.staged.append([]) }
        sendStaged(p, now: now)
    }

    private func sendHandshakeInitiation(_ p: Peer, isRetry: Bool, now: Instant) {
        if !isRetry { p.timers.handshakeAttempts = 0 }
        // Rate limited to one per REKEY_TIMEOUT.
        if let last = p.lastSentHandshake, now - last < WireGuardProtocol.rekeyTimeout { return }
        guard let local, let endpoint = p.endpoint else { return }
        p.lastSentHandshake = now
        clearHandshake(p)
        let index = indices.insert(.handshake(p.id), using: &rng)
        let timestamp = TAI64N.encode(wallTime(at: now))
        guard let (initiation, pending) = try? Noise.createInitiation(local: local, remote: p.remote, presharedKey: p.presharedKey,
                                                                      ephemeral: .generate(), timestamp: timestamp, localIndex: index) else {
            _ = indices.remove(index)
            return
        }
        var msg = initiation
        p.handshake = .initiated(pending)
        p.handshakeIndex = index
        p.cookie.addMACs(&msg, remote: p.remote, now: now)
        queue(msg, to: endpoint, peer: p)
        statistics.handshakeInitiationsSent &+= 1
        anyAuthenticatedPacketTraversal(p, now: now)
        anyAuthenticatedPacketSent(p)
        handshakeInitiated(p, now: now)
    }

    // MARK: - Incoming

    /// Processes a datagram from `source` held at `buffer[offset ..< offset+length]`.
    public func receive(_ buffer: UnsafeMutableRawBufferPointer, offset: inout Int, length: inout Int,
                        from source: Endpoint, now: Instant) -> IncomingResult {
        let msg = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + length)])
        switch MessageKind.classify(msg) {
        case .transportData:
            return receiveTransport(buffer, offset: &offset, length: &length, from: source, now: now)
        case .handshakeInitiation, .handshakeResponse:
            return receiveHandshake(msg, from: source, now: now)
        case .cookieReply:
            return receiveCookieReply(msg, now: now)
        case .other:
            drop(.malformed)
            return .drop(.malformed)
        }
    }

    /// A random 24-byte nonce for a cookie reply, from a pool filled 128 at a
    /// time (one getrandom call per 128 replies under a flood, not one each).
    private func cookieNonce() -> [UInt8] {
        if noncePoolUsed + 24 > noncePool.count {
            noncePool = SystemRandom.bytes(24 * 128)
            noncePoolUsed = 0
        }
        defer { noncePoolUsed += 24 }
        return Array(noncePool[noncePoolUsed..<(noncePoolUsed + 24)])
    }

    private func isUnderLoad(now: Instant) -> Bool {
        if now - loadWindowStart >= .seconds(1) {
            loadWindowStart = now
            loadWindowCount = 0
        }
        loadWindowCount += 1
        if loadWindowCount > options.underLoadHandshakesPerSecond { lastUnderLoad = now }
        if let l = lastUnderLoad, now - l < WireGuardProtocol.underLoadAfterTime { return true }
        return false
    }

    private func receiveHandshake(_ msg: UnsafeRawBufferPointer, from source: Endpoint, now: Instant) -> IncomingResult {
        guard let local else { drop(.noPrivateKey); return .drop(.noPrivateKey) }
        let isInitiation = msg[0] == WireGuardProtocol.messageHandshakeInitiation
        let mac1Offset = isInitiation ? Layout.Initiation.mac1 : Layout.Response.mac1
        let underLoad = isUnderLoad(now: now)
        switch cookieChecker.validate(msg, mac1Offset: mac1Offset, local: local, source: source, checkCookie: underLoad, now: now) {
        case .invalidMAC:
            drop(.invalidMAC); return .drop(.invalidMAC)
        case .validMACNoCookie where underLoad:
            let reply = cookieChecker.makeReply(receiverIndex: msg.u32(at: 4), mac1: msg.array(mac1Offset..<(mac1Offset + 16)),
                                                source: source, local: local, nonce: cookieNonce(), now: now)
            queue(reply, to: source, peer: nil)
            statistics.cookieRepliesSent &+= 1
            drop(.cookieRequired)
            return .drop(.cookieRequired)
        case .validMACWithCookie:
            guard rateLimiter.allow(source.address, now: now) else { drop(.rateLimited); return .drop(.rateLimited) }
        case .validMACNoCookie:
            break
        }
        return isInitiation ? consumeInitiation(msg, local: local, from: source, now: now)
                            : consumeResponse(msg, local: local, from: source, now: now)
    }

    private func consumeInitiation(_ msg: UnsafeRawBufferPointer, local: LocalStatic, from source: Endpoint, now: Instant) -> IncomingResult {
        let consumed: ConsumedInitiation
        do {
            consumed = try Noise.consumeInitiation(msg, local: local) { key in
                peerIDs[key].flatMap { peers[$0]?.remote }
            }
        } catch {
            drop(.handshakeFailed); return .drop(.handshakeFailed)
        }
        guard let id = peerIDs[consumed.remoteStatic], let p = peers[id] else { drop(.handshakeFailed); return .drop(.handshakeFailed) }
        guard TAI64N.isAfter(consumed.timestamp, p.latestTimestamp) else { drop(.replayedHandshake); return .drop(.replayedHandshake) }
        if let last = p.lastInitiationConsumed, now - last < .nanoseconds(1_000_000_000 / WireGuardProtocol.initiationsPerSecond) {
            drop(.handshakeFlood); return .drop(.handshakeFlood)
        }
        p.latestTimestamp = consumed.timestamp
        p.lastInitiationConsumed = now
        p.endpoint = source
        p.receivedBytes &+= UInt64(msg.count)
        // Respond at once (kernel send.c wg_packet_send_handshake_response).
        let index = indices.insert(.keypair(p.id), using: &rng)
        guard let (message, keys) = try? Noise.createResponse(consumed, remote: p.remote, presharedKey: p.presharedKey,
                                                              ephemeral: .generate(), localIndex: index) else {
            _ = indices.remove(index)
            drop(.handshakeFailed); return .drop(.handshakeFailed)
        }
        var response = message
        clearHandshake(p)
        installKeypair(Keypair(keys, birth: now), p)
        p.cookie.addMACs(&response, remote: p.remote, now: now)
        queue(response, to: source, peer: p)
        statistics.handshakeResponsesSent &+= 1
        sessionDerived(p, now: now)
        anyAuthenticatedPacketTraversal(p, now: now)
        anyAuthenticatedPacketSent(p)
        anyAuthenticatedPacketReceived(p)
        return .consumed
    }

    private func consumeResponse(_ msg: UnsafeRawBufferPointer, local: LocalStatic, from source: Endpoint, now: Instant) -> IncomingResult {
        let receiver = msg.u32(at: Layout.Response.receiver)
        guard case .handshake(let id)? = indices.lookup(receiver), let p = peers[id],
              case .initiated(let pending) = p.handshake, pending.localIndex == receiver else {
            drop(.unexpectedResponse); return .drop(.unexpectedResponse)
        }
        guard let keys = try? Noise.consumeResponse(msg, pending: pending, local: local, presharedKey: p.presharedKey) else {
            drop(.handshakeFailed); return .drop(.handshakeFailed)
        }
        // The handshake's index now names the keypair (kernel noise.c begin_session).
        p.handshake = .none
        p.handshakeIndex = nil
        _ = indices.replace(receiver, with: .keypair(p.id))
        installKeypair(Keypair(keys, birth: now), p)
        p.endpoint = source
        p.receivedBytes &+= UInt64(msg.count)
        sessionDerived(p, now: now)
        handshakeComplete(p, now: now)
        anyAuthenticatedPacketReceived(p)
        anyAuthenticatedPacketTraversal(p, now: now)
        // Send what waited for the session, or confirm it with a keepalive.
        sendKeepalive(p, now: now)
        return .consumed
    }

    private func installKeypair(_ k: Keypair, _ p: Peer) {
        for old in p.keypairs.add(k) { _ = indices.remove(old.localIndex) }
        statistics.sessionsDerived &+= 1
    }

    private func receiveCookieReply(_ msg: UnsafeRawBufferPointer, now: Instant) -> IncomingResult {
        let receiver = msg.u32(at: Layout.Cookie.receiver)
        let id: UInt32
        switch indices.lookup(receiver) {
        case .handshake(let i)?, .keypair(let i)?: id = i
        case nil: drop(.unknownIndex); return .drop(.unknownIndex)
        }
        guard let p = peers[id], p.cookie.consumeReply(msg, remote: p.remote, now: now) else {
            drop(.invalidCookieReply); return .drop(.invalidCookieReply)
        }
        return .consumed
    }

    private func receiveTransport(_ buffer: UnsafeMutableRawBufferPointer, offset: inout Int, length: inout Int,
                                  from source: Endpoint, now: Instant) -> IncomingResult {
        let msg = UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + length)])
        let receiver = msg.u32(at: Layout.Transport.receiver)
        let counter = msg.u64(at: Layout.Transport.counter)
        guard case .keypair(let id)? = indices.lookup(receiver), let p = peers[id],
              let k = p.keypairs.find(localIndex: receiver) else {
            drop(.unknownIndex); return .drop(.unknownIndex)
        }
        guard k.canReceive(now: now), counter < WireGuardProtocol.rejectAfterMessages else {
            drop(.expiredKeypair); return .drop(.expiredKeypair)
        }
        let payloadLength = length - WireGuardProtocol.transportHeaderSize - 16
        let payload = buffer.baseAddress! + offset + WireGuardProtocol.transportHeaderSize
        let ok = k.receivingKey.withUnsafeBytes { key in
            ChaChaPoly.openInPlace(key: key.baseAddress!, counter: counter, data: payload, length: payloadLength,
                                   tag: payload + payloadLength)
        }
        guard ok else { drop(.decryptionFailed); return .drop(.decryptionFailed) }
        guard k.replay.accept(counter) else { drop(.replayedPacket); return .drop(.replayedPacket) }
        p.receivedBytes &+= UInt64(length)
        p.endpoint = source
        let (promoted, fallen) = p.keypairs.received(with: k)
        if let f = fallen { _ = indices.remove(f.localIndex) }
        if promoted {
            handshakeComplete(p, now: now)
            sendStaged(p, now: now)
        }
        keepKeyFreshOnReceive(p, now: now)
        anyAuthenticatedPacketReceived(p)
        anyAuthenticatedPacketTraversal(p, now: now)
        offset += WireGuardProtocol.transportHeaderSize
        if payloadLength == 0 {
            length = 0
            return .consumed      // keepalive
        }
        let inner = UnsafeRawBufferPointer(start: payload, count: payloadLength)
        guard let innerLength = IPPacket.totalLength(inner) else {
            drop(.invalidInnerPacket); return .drop(.invalidInnerPacket)
        }
        guard allowedIPs.lookupSource(ofPacket: inner) == p.id else {
            drop(.disallowedSource); return .drop(.disallowedSource)
        }
        length = innerLength
        dataReceived(p, now: now)
        return .deliver
    }

    private func keepKeyFreshOnReceive(_ p: Peer, now: Instant) {
        guard !p.timers.sentLastMinuteHandshake, let k = p.keypairs.current, k.sendingValid, k.isInitiator,
              now - k.birth >= WireGuardProtocol.rejectAfterTime - WireGuardProtocol.keepaliveTimeout - WireGuardProtocol.rekeyTimeout
        else { return }
        p.timers.sentLastMinuteHandshake = true
        sendHandshakeInitiation(p, isRetry: false, now: now)
    }

    // MARK: - Timers (kernel timers.c vocabulary)

    /// Uniform in [0, REKEY_TIMEOUT_JITTER_MAX], in whole milliseconds.
    private func jitter() -> Duration {
        let maxMilliseconds = UInt64(WireGuardProtocol.rekeyTimeoutJitterMax.nanosecondsClamped / 1_000_000)
        return .milliseconds(Int64(rng.next() % (maxMilliseconds + 1)))
    }

    private func arm(_ t: PeerTimer, _ p: Peer, at deadline: Instant) {
        p.timers.deadline[t.rawValue] = deadline
        if let q = p.timers.queued[t.rawValue], q <= deadline { return }
        p.timers.queued[t.rawValue] = deadline
        timerHeap.push(.init(deadline: deadline, peer: p.id, timer: t))
    }

    private func cancel(_ t: PeerTimer, _ p: Peer) { p.timers.deadline[t.rawValue] = nil }

    /// Should be called after an authenticated data packet is sent.
    private func dataSent(_ p: Peer, now: Instant) {
        if !p.timers.isPending(.newHandshake) {
            arm(.newHandshake, p, at: now + WireGuardProtocol.keepaliveTimeout + WireGuardProtocol.rekeyTimeout + jitter())
        }
    }

    /// Should be called after an authenticated data packet is received.
    private func dataReceived(_ p: Peer, now: Instant) {
        if !p.timers.isPending(.sendKeepalive) {
            arm(.sendKeepalive, p, at: now + WireGuardProtocol.keepaliveTimeout)
        } else {
            p.timers.needAnotherKeepalive = true
        }
    }

    /// Should be called after any type of authenticated packet is sent: keepalive, data, or handshake.
    private func anyAuthenticatedPacketSent(_ p: Peer) { cancel(.sendKeepalive, p) }

    /// Should be called after any type of authenticated packet is received: keepalive, data, or handshake.
    private func anyAuthenticatedPacketReceived(_ p: Peer) { cancel(.newHandshake, p) }

    /// Should be called after a handshake initiation message is sent.
    private func handshakeInitiated(_ p: Peer, now: Instant) {
        arm(.retransmitHandshake, p, at: now + WireGuardProtocol.rekeyTimeout + jitter())
    }

    /// Should be called after a handshake response message is received and processed,
    /// or when getting the first data message under a new session (responder).
    private func handshakeComplete(_ p: Peer, now: Instant) {
        cancel(.retransmitHandshake, p)
        p.timers.handshakeAttempts = 0
        p.timers.sentLastMinuteHandshake = false
        p.lastHandshake = wallTime(at: now)
    }

    /// Should be called after ephemeral keys are created, either after a response
    /// is sent or after a response is consumed.
    private func sessionDerived(_ p: Peer, now: Instant) {
        arm(.zeroKeyMaterial, p, at: now + WireGuardProtocol.rejectAfterTime * 3)
    }

    /// Should be called before a packet with authentication, whether keepalive,
    /// data, or handshake, is sent, or after one is received.
    private func anyAuthenticatedPacketTraversal(_ p: Peer, now: Instant) {
        if p.persistentKeepaliveInterval > 0 {
            arm(.persistentKeepalive, p, at: now + .seconds(Int64(p.persistentKeepaliveInterval)))
        }
    }

    /// The earliest instant at which `handleTimers` has work, if any.
    public func nextDeadline() -> Instant? { timerHeap.earliest }

    /// Runs every timer due at `now`.
    public func handleTimers(now: Instant) {
        while let e = timerHeap.earliest, e <= now {
            let entry = timerHeap.pop()!
            guard let p = peers[entry.peer], p.timers.queued[entry.timer.rawValue] == entry.deadline else { continue }
            p.timers.queued[entry.timer.rawValue] = nil
            guard let d = p.timers.deadline[entry.timer.rawValue] else { continue }
            if d > now {
                p.timers.queued[entry.timer.rawValue] = d
                timerHeap.push(.init(deadline: d, peer: p.id, timer: entry.timer))
                continue
            }
            p.timers.deadline[entry.timer.rawValue] = nil
            fire(entry.timer, p, now: now)
        }
    }

    private func fire(_ t: PeerTimer, _ p: Peer, now: Instant) {
        switch t {
        case .retransmitHandshake:
            if p.timers.handshakeAttempts > WireGuardProtocol.maxTimerHandshakes {
                cancel(.sendKeepalive, p)
                p.staged.removeAll()
                if !p.timers.isPending(.zeroKeyMaterial) {
                    arm(.zeroKeyMaterial, p, at: now + WireGuardProtocol.rejectAfterTime * 3)
                }
            } else {
                p.timers.handshakeAttempts += 1
                sendHandshakeInitiation(p, isRetry: true, now: now)
            }
        case .sendKeepalive:
            sendKeepalive(p, now: now)
            if p.timers.needAnotherKeepalive {
                p.timers.needAnotherKeepalive = false
                arm(.sendKeepalive, p, at: now + WireGuardProtocol.keepaliveTimeout)
            }
        case .newHandshake:
            sendHandshakeInitiation(p, isRetry: false, now: now)
        case .zeroKeyMaterial:
            for k in p.keypairs.clear() { _ = indices.remove(k.localIndex) }
            clearHandshake(p)
        case .persistentKeepalive:
            if p.persistentKeepaliveInterval > 0 { sendKeepalive(p, now: now) }
        }
    }

    // MARK: - Introspection for tests and status

    /// The session state of a peer, for tests and status output.
    public struct PeerSessionInfo: Equatable, Sendable {
        public var hasCurrent: Bool
        public var hasPrevious: Bool
        public var hasNext: Bool
        public var stagedPackets: Int
        public var handshakeInProgress: Bool
        public var endpoint: Endpoint?
    }

    public func sessionInfo(for publicKey: Bytes32) -> PeerSessionInfo? {
        guard let id = peerIDs[publicKey], let p = peers[id] else { return nil }
        var inProgress = false
        if case .initiated = p.handshake { inProgress = true }
        return PeerSessionInfo(hasCurrent: p.keypairs.current != nil, hasPrevious: p.keypairs.previous != nil,
                               hasNext: p.keypairs.next != nil, stagedPackets: p.staged.count,
                               handshakeInProgress: inProgress, endpoint: p.endpoint)
    }

    /// Live entries in the index table (handshakes and keypairs).
    public var indexCount: Int { indices.count }
}

/// Minimal IP header reading for the data path.
enum IPPacket {
    /// True for a plausible IPv4 or IPv6 packet (version and minimum header).
    static func isValid(_ p: UnsafeRawBufferPointer) -> Bool {
        guard let first = p.first else { return false }
        switch first >> 4 {
        case 4: return p.count >= 20
        case 6: return p.count >= 40
        default: return false
        }
    }

    /// The packet's length from its header, when it fits in `p` (the rest is padding).
    static func totalLength(_ p: UnsafeRawBufferPointer) -> Int? {
        guard isValid(p) else { return nil }
        if p[0] >> 4 == 4 {
            let n = Int(p[2]) << 8 | Int(p[3])
            return n >= 20 && n <= p.count ? n : nil
        }
        let n = 40 + (Int(p[4]) << 8 | Int(p[5]))
        return n <= p.count ? n : nil
    }
}

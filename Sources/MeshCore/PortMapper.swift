// PortMapper: a NAT-PMP client (RFC 6886), sans-IO on a virtual clock. It
// asks the home router (the default gateway, port 5351) for its external
// address and for UDP mappings of this node's ports, renews them at half their
// lifetime, maps again when the router restarted (its epoch went back), and
// deletes them on `stop`. Requests are retransmitted from 250 ms, doubling,
// 9 times in all (RFC 6886 §3.1); a router that never answers costs nine tiny
// datagrams over about two minutes and delays nothing.
//
// Answers count only from the gateway's port 5351 and for a request we made;
// anything else is a counted drop.
import MeshBase
import MeshProtocol

public struct PortMapper: Sendable {
    public let gateway: Endpoint
    /// The UDP ports to map (the control port; in kernel mode also WireGuard's).
    public let ports: [UInt16]
    public let lifetime: UInt32

    /// Where the router maps each port, once it has answered both questions.
    public private(set) var mappings: [UInt16: Endpoint] = [:]
    public private(set) var externalAddress: IPv4Address?
    /// Why the last request failed (the router's refusal, or no answer).
    public private(set) var failure: String?
    public private(set) var drops: [String: UInt64] = [:]
    public private(set) var isStopped = false

    private enum Request: Hashable, Sendable {
        case address
        case map(UInt16)
        case delete(UInt16)
    }
    private struct Pending: Sendable {
        var attempts: Int
        var next: Instant
        var rto: Duration
    }
    private var pending: [Request: Pending] = [:]
    private var outbox: [[UInt8]] = []
    private var mappedPorts: [UInt16: (external: UInt16, renewAt: Instant)] = [:]
    private var epoch: (value: UInt32, at: Instant)?
    private var changed = false

    public static let initialRTO: Duration = .milliseconds(250)
    public static let maxAttempts = 9

    public init(gateway: Endpoint, ports: [UInt16], lifetime: UInt32 = 7200) {
        self.gateway = gateway
        self.ports = Array(Set(ports)).sorted()
        self.lifetime = max(lifetime, 60)
    }

    /// Asks for the external address and every mapping.
    public mutating func start(now: Instant) {
        guard !isStopped else { return }
        ask(.address, now: now)
        for p in ports { ask(.map(p), now: now) }
    }

    /// Deletes every mapping (one request each; the process is going away).
    public mutating func stop(now: Instant) {
        guard !isStopped else { return }
        isStopped = true
        pending.removeAll()
        for p in ports where mappedPorts[p] != nil {
            outbox.append(NATPMP.mappingRequest(internalPort: p, suggestedPort: 0, lifetime: 0))
        }
        mappedPorts.removeAll()
        if !mappings.isEmpty { mappings.removeAll(); changed = true }
    }

    private mutating func ask(_ r: Request, now: Instant) {
        pending[r] = Pending(attempts: 1, next: now + PortMapper.initialRTO, rto: PortMapper.initialRTO)
        outbox.append(bytes(r))
    }

    private func bytes(_ r: Request) -> [UInt8] {
        switch r {
        case .address: NATPMP.externalAddressRequest
        case .map(let p): NATPMP.mappingRequest(internalPort: p, suggestedPort: mappedPorts[p]?.external ?? p, lifetime: lifetime)
        case .delete(let p): NATPMP.mappingRequest(internalPort: p, suggestedPort: 0, lifetime: 0)
        }
    }

    public func nextDeadline() -> Instant? {
        let retry = pending.values.map(\.next).min()
        let renew = isStopped ? nil : mappedPorts.values.map(\.renewAt).min()
        switch (retry, renew) {
        case let (a?, b?): return min(a, b)
        case let (a, b): return a ?? b
        }
    }

    public mutating func handleTimers(now: Instant) {
        for (r, var p) in pending where p.next <= now {
            if p.attempts >= PortMapper.maxAttempts {
                pending[r] = nil
                failure = "no answer from the router at \(gateway)"
                continue
            }
            p.attempts += 1
            p.rto = p.rto * 2
            p.next = now + p.rto
            pending[r] = p
            outbox.append(bytes(r))
        }
        guard !isStopped else { return }
        for port in mappedPorts.keys.sorted() where mappedPorts[port]!.renewAt <= now && pending[.map(port)] == nil {
            ask(.map(port), now: now)
        }
    }

    public mutating func pollTransmit() -> (bytes: [UInt8], to: Endpoint)? {
        outbox.isEmpty ? nil : (outbox.removeFirst(), gateway)
    }

    /// True when the datagram came from the router's NAT-PMP port (consumed: an answer or a counted drop).
    public mutating func receive(_ bytes: [UInt8], from source: Endpoint, now: Instant) -> Bool {
        guard source == gateway else { return false }
        guard !isStopped else { return true }
        let response: NATPMP.Response
        do {
            response = try NATPMP.parse(bytes)
        } catch {
            if case .refused = error {
                // The router says no: remember why, stop asking what it refused.
                failure = "the router refused: \(error.reason)"
                if bytes.count > 1, bytes[1] == 128 { pending[.address] = nil }
                if bytes.count >= 12, bytes[1] == 129 { pending[.map(UInt16(bytes[8]) << 8 | UInt16(bytes[9]))] = nil }
            }
            drops[error.reason, default: 0] &+= 1
            return true
        }
        switch response {
        case let .externalAddress(e, address):
            guard pending.removeValue(forKey: .address) != nil || externalAddress != nil else {
                drops["unexpected answer", default: 0] &+= 1
                return true
            }
            noteEpoch(e, now: now)
            if externalAddress != address { externalAddress = address; rebuild() }
        case let .mapping(e, inside, outside, granted):
            guard ports.contains(inside), pending.removeValue(forKey: .map(inside)) != nil else {
                drops["unexpected answer", default: 0] &+= 1
                return true
            }
            noteEpoch(e, now: now)
            guard granted > 0, outside != 0 else { failure = "the router granted no mapping for port \(inside)"; return true }
            failure = nil
            let renewAt = now + .seconds(Int64(granted / 2))
            let before = mappedPorts[inside]?.external
            mappedPorts[inside] = (outside, renewAt)
            if before != outside { rebuild() }
        }
        return true
    }

    /// A router whose epoch went back (it restarted and forgot us): map again.
    private mutating func noteEpoch(_ e: UInt32, now: Instant) {
        defer { epoch = (e, now) }
        guard let (last, at) = epoch else { return }
        let elapsed = UInt32(clamping: max(0, (now - at).nanosecondsClamped / 1_000_000_000))
        // RFC 6886 §3.6: expected at least 7/8 of the local elapsed time, minus 2 s.
        if UInt64(e) + 2 < UInt64(last) + UInt64(elapsed) * 7 / 8 {
            mappedPorts.removeAll()
            if !mappings.isEmpty { mappings.removeAll(); changed = true }
            start(now: now)
        }
    }

    private mutating func rebuild() {
        var m: [UInt16: Endpoint] = [:]
        if let a = externalAddress {
            for (p, x) in mappedPorts { m[p] = Endpoint(.v4(a), port: x.external) }
        }
        if m != mappings { mappings = m; changed = true }
    }

    /// True once after the mappings changed.
    public mutating func takeChanges() -> Bool {
        defer { changed = false }
        return changed
    }

    /// True while requests are out.
    public var isWaiting: Bool { !pending.isEmpty }
}

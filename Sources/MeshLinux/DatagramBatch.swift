// DatagramBatch: preallocated packet buffers for batched I/O, shared by the
// UDP socket (recvmmsg/sendmmsg) and the TUN device (a run of reads/writes),
// so that a packet can go from one to the other without being copied.
//
// Memory (one contiguous allocation, `capacity` slots of `slotSize` bytes):
//
//     slot i: |<- headroom ->|<------------ bufferSize ------------>|<- tailroom ->|pad|
//                            ^ receive/read put data here (offset = headroom)
//             |<-- payload may be moved anywhere in the slot with setPayload -------->|
//
// The engine reads a plaintext IP packet from TUN at `headroom` (16), writes
// the 16-byte WireGuard transport header into the headroom and the 16-byte
// Poly1305 tag into the tailroom in place, sets the peer's endpoint and sends
// the same slots with sendmmsg. Alongside the bytes the batch keeps, per slot,
// a `struct mmsghdr`, an `iovec`, a socket address (the datagram's source
// after a receive, its destination before a send) and a control buffer for
// the UDP_GRO / UDP_SEGMENT messages (udp(7)), all allocated once: batch
// receive and send allocate nothing per packet.
//
// Not Sendable: one thread owns a batch at a time (it may hand it to another,
// but never uses one batch from two threads). The buffers returned by
// `payload(_:)` and `slotBuffer(_:)` stay valid for the life of the batch.
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import MeshBase

/// A fixed set of reusable packet slots for batched UDP and TUN I/O.
public final class DatagramBatch {
    /// Per-slot bookkeeping.
    struct SlotState {
        var offset: Int
        var length: Int
        var segmentSize: Int
        var truncated: Bool
    }

    /// Number of slots (at most 1024, UIO_MAXIOV: the most recvmmsg(2) and
    /// sendmmsg(2) take in one call).
    public let capacity: Int
    /// Bytes a receive or read may place in one slot, starting at `headroom`.
    public let bufferSize: Int
    /// Bytes kept free before received data, for a header prepended in place.
    public let headroom: Int
    /// Bytes kept free after `bufferSize`, for a trailer appended in place.
    public let tailroom: Int
    /// Total bytes per slot: headroom + bufferSize + tailroom, rounded up to 16.
    public let slotSize: Int

    /// Largest `bufferSize` accepted: a UDP GRO or TUN GSO super-packet (64 KiB)
    /// plus room for a virtio_net_hdr.
    public static let maxBufferSize = 65536 + 64
    /// Largest head- or tailroom accepted.
    public static let maxRoom = 4096

    let storage: UnsafeMutableRawPointer
    let messages: UnsafeMutablePointer<mg_mmsghdr>
    let iovecs: UnsafeMutablePointer<iovec>
    let names: UnsafeMutablePointer<sockaddr_in6>
    let control: UnsafeMutableRawPointer
    let controlSize: Int
    let slots: UnsafeMutablePointer<SlotState>
    /// After `prepareCoalescedSend`: message g covers slots
    /// `groupStarts[g] ..< groupStarts[g + 1]`.
    let groupStarts: UnsafeMutablePointer<Int>

    // Offloaded TUN reads (TunOffload.swift): a lazily allocated frame buffer,
    // the super-packet being cut and the next segment to emit.
    var scratch: UnsafeMutableRawPointer?
    var carry: TCPSuperPacket?
    var carryNext = 0
    /// Offloaded TUN reads: TCP super-packets cut into segments so far.
    public internal(set) var superPacketsSplit = 0
    /// Offloaded TUN reads: frames dropped for an inconsistent virtio_net_hdr.
    public internal(set) var offloadDrops = 0

    /// Allocates `capacity` slots. Throws EINVAL for a capacity outside
    /// 1...1024, a `bufferSize` outside 1...`maxBufferSize`, or a head- or
    /// tailroom outside 0...`maxRoom`.
    public init(capacity: Int, bufferSize: Int, headroom: Int = 0, tailroom: Int = 0) throws(LinuxError) {
        let op = "allocate datagram batch"
        guard (1...Int(MG_UIO_MAXIOV)).contains(capacity) else { throw .invalid(op, "capacity \(capacity) is not in 1...\(MG_UIO_MAXIOV)") }
        guard (1...Self.maxBufferSize).contains(bufferSize) else { throw .invalid(op, "buffer size \(bufferSize) is not in 1...\(Self.maxBufferSize)") }
        guard (0...Self.maxRoom).contains(headroom), (0...Self.maxRoom).contains(tailroom) else {
            throw .invalid(op, "headroom \(headroom) or tailroom \(tailroom) is not in 0...\(Self.maxRoom)")
        }
        self.capacity = capacity
        self.bufferSize = bufferSize
        self.headroom = headroom
        self.tailroom = tailroom
        slotSize = (headroom + bufferSize + tailroom + 15) & ~15
        storage = .allocate(byteCount: capacity * slotSize, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * slotSize)
        messages = .allocate(capacity: capacity)
        messages.initialize(repeating: mg_mmsghdr(), count: capacity)
        iovecs = .allocate(capacity: capacity)
        iovecs.initialize(repeating: iovec(), count: capacity)
        names = .allocate(capacity: capacity)
        names.initialize(repeating: sockaddr_in6(), count: capacity)
        controlSize = (mg_cmsg_space_udp() + 7) & ~7
        control = .allocate(byteCount: capacity * controlSize, alignment: 8)
        control.initializeMemory(as: UInt8.self, repeating: 0, count: capacity * controlSize)
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: SlotState(offset: headroom, length: 0, segmentSize: 0, truncated: false), count: capacity)
        groupStarts = .allocate(capacity: capacity + 1)
        groupStarts.initialize(repeating: 0, count: capacity + 1)
    }

    deinit {
        storage.deallocate()
        messages.deallocate()
        iovecs.deallocate()
        names.deallocate()
        control.deallocate()
        slots.deallocate()
        groupStarts.deallocate()
        scratch?.deallocate()
    }

    @inline(__always)
    private func check(_ slot: Int) {
        precondition(slot >= 0 && slot < capacity, "slot \(slot) out of range 0..<\(capacity)")
    }

    // MARK: Reading a slot

    /// Where the slot's payload starts within the slot (`headroom` after a receive).
    public func offset(_ slot: Int) -> Int { check(slot); return slots[slot].offset }

    /// The payload's length in bytes. After a truncated receive, the bytes kept
    /// (`bufferSize`), not the datagram's original size.
    public func length(_ slot: Int) -> Int { check(slot); return slots[slot].length }

    /// Whether the last receive or read into this slot lost bytes because the
    /// datagram or packet was longer than `bufferSize` (MSG_TRUNC). Such a
    /// payload is incomplete: drop it.
    public func isTruncated(_ slot: Int) -> Bool { check(slot); return slots[slot].truncated }

    /// The GSO/GRO segment size: after a receive on a socket with UDP GRO
    /// enabled, nonzero when the slot holds several datagrams from one sender
    /// coalesced by the kernel (each `segmentSize` bytes, the last possibly
    /// shorter); before a send, nonzero asks the kernel to split the payload
    /// into datagrams of that size (UDP_SEGMENT, udp(7)). 0 otherwise.
    public func segmentSize(_ slot: Int) -> Int { check(slot); return slots[slot].segmentSize }

    /// The datagrams a received slot holds, as offsets and lengths within
    /// `slotBuffer(slot)`: its payload as one datagram, or after a GRO receive
    /// (`segmentSize` > 0) consecutive datagrams of `segmentSize` bytes, the
    /// last possibly shorter. An empty payload is one empty datagram.
    public func datagrams(in slot: Int) -> Datagrams {
        check(slot)
        let s = slots[slot]
        return Datagrams(position: s.offset, end: s.offset + s.length, step: s.segmentSize > 0 ? s.segmentSize : s.length,
                         yieldsEmpty: s.length == 0)
    }

    /// Iterates over the datagrams of one slot (see `datagrams(in:)`); allocates nothing.
    public struct Datagrams: Sequence, IteratorProtocol {
        var position: Int
        let end: Int
        let step: Int
        var yieldsEmpty: Bool

        public mutating func next() -> (offset: Int, length: Int)? {
            if position < end {
                defer { position += step }
                return (position, Swift.min(step, end - position))
            }
            guard yieldsEmpty else { return nil }
            yieldsEmpty = false
            return (position, 0)
        }
    }

    /// The slot's endpoint: the sender after a receive (IPv4 senders on a
    /// dual-stack socket come back as `.v4`), the destination set for a send.
    /// Nil when none was set. IPv6 scope ids are not represented.
    public func endpoint(_ slot: Int) -> Endpoint? {
        check(slot)
        return Self.decode(UnsafeRawPointer(names + slot), length: socklen_t(MemoryLayout<sockaddr_in6>.size))
    }

    /// The payload bytes, `[offset, offset + length)`, writable in place.
    public func payload(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        check(slot)
        let s = slots[slot]
        return UnsafeMutableRawBufferPointer(start: storage + slot * slotSize + s.offset, count: s.length)
    }

    /// The whole slot, `slotSize` bytes including head- and tailroom.
    public func slotBuffer(_ slot: Int) -> UnsafeMutableRawBufferPointer {
        check(slot)
        return UnsafeMutableRawBufferPointer(start: storage + slot * slotSize, count: slotSize)
    }

    /// A copy of the payload (allocates; for tests and diagnostics).
    public func payloadBytes(_ slot: Int) -> [UInt8] { Array(UnsafeRawBufferPointer(payload(slot))) }

    // MARK: Filling a slot

    /// Sets where the payload lies within the slot, e.g. after prepending a
    /// header (`offset - 16`) or appending a tag (`length + 16`). Clears the
    /// truncation flag and the segment size (so a slot received with GRO is not
    /// split when sent on; set it again after this call to send with GSO).
    /// Precondition: `0 <= offset`, `offset + length <= slotSize`.
    public func setPayload(_ slot: Int, offset: Int, length: Int) {
        check(slot)
        precondition(offset >= 0 && length >= 0 && offset <= slotSize - length, "payload \(offset)+\(length) outside a \(slotSize)-byte slot")
        slots[slot] = SlotState(offset: offset, length: length, segmentSize: 0, truncated: false)
    }

    /// Sets the destination for a send.
    public func setEndpoint(_ slot: Int, _ endpoint: Endpoint) {
        check(slot)
        Self.encode(endpoint, into: UnsafeMutableRawPointer(names + slot))
    }

    /// Sets the UDP GSO segment size for a send (0: one datagram). Use only
    /// when `UDPSocket.supportsGSO`; see `segmentSize(_:)`. The kernel refuses
    /// (EINVAL, that datagram only) more than 64 segments (UDP_MAX_SEGMENTS on
    /// older kernels), a total over 65507 bytes, or segments over the path MTU.
    public func setSegmentSize(_ slot: Int, _ size: Int) {
        check(slot)
        slots[slot].segmentSize = max(0, min(size, Int(UInt16.max)))
    }

    /// Copies `bytes` into the slot at `headroom`, sets the payload to them and
    /// the endpoint if given, and clears the segment size. Returns false (and
    /// changes nothing) when they do not fit in `bufferSize`.
    @discardableResult
    public func copy(_ bytes: UnsafeRawBufferPointer, into slot: Int, endpoint: Endpoint? = nil) -> Bool {
        check(slot)
        guard bytes.count <= bufferSize else { return false }
        if let base = bytes.baseAddress, bytes.count > 0 {
            (storage + slot * slotSize + headroom).copyMemory(from: base, byteCount: bytes.count)
        }
        slots[slot] = SlotState(offset: headroom, length: bytes.count, segmentSize: 0, truncated: false)
        if let endpoint { setEndpoint(slot, endpoint) }
        return true
    }

    /// `copy(_:into:endpoint:)` for an array.
    @discardableResult
    public func copy(_ bytes: [UInt8], into slot: Int, endpoint: Endpoint? = nil) -> Bool {
        bytes.withUnsafeBytes { copy($0, into: slot, endpoint: endpoint) }
    }

    // MARK: Kernel glue (internal)

    /// Points every slot's message at its whole receive area, name and control buffer.
    func prepareReceive() {
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: storage + i * slotSize + headroom, iov_len: bufferSize)
            messages[i].msg_len = 0
            messages[i].msg_hdr = msghdr(
                msg_name: UnsafeMutableRawPointer(names + i), msg_namelen: socklen_t(MemoryLayout<sockaddr_in6>.size),
                msg_iov: iovecs + i, msg_iovlen: 1,
                msg_control: control + i * controlSize, msg_controllen: controlSize, msg_flags: 0)
        }
    }

    /// Records what recvmmsg put in the first `count` slots.
    func finishReceive(count: Int) {
        for i in 0..<count {
            let m = messages + i
            let flags = m.pointee.msg_hdr.msg_flags
            slots[i] = SlotState(
                offset: headroom, length: min(Int(m.pointee.msg_len), bufferSize),
                segmentSize: Int(mg_cmsg_udp_gro_size(&m.pointee.msg_hdr)),
                truncated: flags & Int32(MG_MSG_TRUNC) != 0)
        }
    }

    /// Points the messages of `range` at their payloads and destinations, in
    /// the address form a socket of `family` takes, with a UDP_SEGMENT control
    /// message where a segment size is set.
    func prepareSend(_ range: Range<Int>, family: Int32) {
        for i in range {
            let s = slots[i]
            iovecs[i] = iovec(iov_base: storage + i * slotSize + s.offset, iov_len: s.length)
            let nameLength = mg_sockaddr_prepare(UnsafeMutableRawPointer(names + i), family)
            messages[i].msg_len = 0
            messages[i].msg_hdr = msghdr(
                msg_name: nameLength == 0 ? nil : UnsafeMutableRawPointer(names + i), msg_namelen: nameLength,
                msg_iov: iovecs + i, msg_iovlen: 1, msg_control: nil, msg_controllen: 0, msg_flags: 0)
            if s.segmentSize > 0 && s.length > s.segmentSize {
                mg_cmsg_put_udp_segment(&messages[i].msg_hdr, control + i * controlSize, UInt16(s.segmentSize))
            }
        }
    }

    /// Points messages `0..<g` at runs of `range` for UDPSocket.sendCoalesced
    /// and returns g: message k sends slots `groupStarts[k] ..< groupStarts[k + 1]`
    /// as one GSO datagram (their iovecs in a row, segment size the first
    /// slot's length) or, for a run of one, as a plain datagram. A run
    /// continues while the next slot has a payload no longer than the first,
    /// every slot before it has exactly the first's length, no segment size of
    /// its own, the same destination, and the limits hold. Each slot's iovec
    /// stays at the slot's index, so a run's iovecs lie in a row; messages
    /// are packed from index 0.
    func prepareCoalescedSend(_ range: Range<Int>, family: Int32, maxSegments: Int, maxBytes: Int) -> Int {
        for i in range {
            let s = slots[i]
            iovecs[i] = iovec(iov_base: storage + i * slotSize + s.offset, iov_len: s.length)
        }
        var g = 0
        var i = range.lowerBound
        while i < range.upperBound {
            let nameLength = mg_sockaddr_prepare(UnsafeMutableRawPointer(names + i), family)
            let size = slots[i].length
            var j = i + 1
            var total = size
            if slots[i].segmentSize == 0 && size > 0 && nameLength > 0 {
                while j < range.upperBound && j - i < maxSegments {
                    let s = slots[j]
                    guard slots[j - 1].length == size, s.segmentSize == 0, s.length > 0, s.length <= size,
                          total + s.length <= maxBytes,
                          mg_sockaddr_prepare(UnsafeMutableRawPointer(names + j), family) == nameLength,
                          memcmp(names + i, names + j, Int(nameLength)) == 0 else { break }
                    total += s.length
                    j += 1
                }
            }
            groupStarts[g] = i
            messages[g].msg_len = 0
            messages[g].msg_hdr = msghdr(
                msg_name: nameLength == 0 ? nil : UnsafeMutableRawPointer(names + i), msg_namelen: nameLength,
                msg_iov: iovecs + i, msg_iovlen: j - i, msg_control: nil, msg_controllen: 0, msg_flags: 0)
            let segment = j - i > 1 ? size : slots[i].segmentSize
            if segment > 0 && total > segment {
                mg_cmsg_put_udp_segment(&messages[g].msg_hdr, control + g * controlSize, UInt16(segment))
            }
            g += 1
            i = j
        }
        groupStarts[g] = range.upperBound
        return g
    }

    /// Records a TUN read into `slot`: `copied` bytes returned by read(2), of a
    /// packet whose header declares `declared` bytes (0: unknown). Truncated
    /// when either exceeds what the slot holds.
    func finishRead(_ slot: Int, copied: Int, declared: Int) {
        let length = min(copied, bufferSize)
        slots[slot] = SlotState(offset: headroom, length: length, segmentSize: 0, truncated: copied > bufferSize || declared > length)
    }

    /// Start of the receive area of `slot`.
    func receiveArea(_ slot: Int) -> UnsafeMutableRawPointer { storage + slot * slotSize + headroom }

    // MARK: Addresses

    static func decode(_ sa: UnsafeRawPointer, length: socklen_t) -> Endpoint? {
        var hi: UInt64 = 0, lo: UInt64 = 0, port: UInt16 = 0
        switch mg_sockaddr_get(sa, length, &hi, &lo, &port) {
        case AF_INET: return Endpoint(.v4(IPv4Address(UInt32(truncatingIfNeeded: lo))), port: port)
        case AF_INET6: return Endpoint(IPAddress.v6(IPv6Address(high: hi, low: lo)).unmapped, port: port)
        default: return nil
        }
    }

    /// Stores `endpoint` as a sockaddr_in6 (IPv4 as ::ffff:a.b.c.d);
    /// `mg_sockaddr_prepare` converts it for an IPv4-only socket.
    @discardableResult
    static func encode(_ endpoint: Endpoint, into sa: UnsafeMutableRawPointer) -> socklen_t {
        switch endpoint.address {
        case .v4(let a): return mg_sockaddr_in6_set(sa, 0, 0xffff_0000_0000 | UInt64(a.value), endpoint.port)
        case .v6(let a): return mg_sockaddr_in6_set(sa, a.high, a.low, endpoint.port)
        }
    }
}

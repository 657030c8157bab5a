// TunDevice: a Linux TUN interface, the userspace engine's side of the tunnel.
//
// tun(4), Documentation/networking/tuntap.rst: opening /dev/net/tun and
// issuing TUNSETIFF with IFF_TUN | IFF_NO_PI creates (or attaches to) a layer-3
// interface; every read(2) returns one IP packet the kernel routed into it and
// every write(2) injects one IP packet, as if received on it. IFF_NO_PI: no
// 4-byte packet-information prefix, so byte 0 is the IP version nibble. The
// interface lives while the descriptor is open (it is not made persistent),
// so closing the descriptor, or the process dying, deletes it with its
// addresses and routes.
//
//     open ──► TUNSETIFF "mg%d" ──► [MTU] ──► setUp(true) ──► read/write ... ──► close (deleted)
//
// MTU and IFF_UP are set with the classic netdevice(7) ioctls (SIOCSIFMTU,
// SIOCGIFFLAGS/SIOCSIFFLAGS) on a throwaway AF_INET datagram socket, because
// the TUN descriptor does not take them. Addresses and routes are the
// netlink layer's job.
//
// The descriptor is always opened O_NONBLOCK; a device created with
// `nonBlocking: false` waits in ppoll(2) when the kernel says EAGAIN. That is
// what lets a batched read take every packet already queued and return
// instead of blocking on the next one (TUN has no recvmmsg).
//
// Sizing: a read places at most the buffer's size; a packet longer than that
// (longer than the MTU the caller assumed) is consumed and reported as
// truncated, never returned in part as if whole. The kernel (6.x) returns only
// the bytes it copied, so truncation is detected from the IP header's own
// length (IPv4 total length, IPv6 40 + payload length) exceeding them.
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import MeshBase
import Synchronization
import SystemPackage

/// A TUN interface opened with IFF_TUN | IFF_NO_PI.
///
/// Sendable because its only mutable state is the descriptor, held in an
/// atomic: reads on one thread and writes on others are safe on one TUN
/// descriptor (the kernel serialises per queue), ioctls go through their own
/// socket, and `close()` swaps the descriptor out exactly once. Close only
/// after the threads using the device have stopped (a closed descriptor
/// number may be reused); wake them with a `WakeupSignal`.
public final class TunDevice: @unchecked Sendable {
    /// The interface name the kernel chose (a `%d` in the requested name
    /// replaced by the first free number).
    public let name: String
    /// Whether reads and writes return at once instead of waiting.
    public let isNonBlocking: Bool
    /// Whether the device was opened with IFF_VNET_HDR and TCP segmentation
    /// and checksum offload (TunOffload.swift). Reads then go through
    /// `read(into: DatagramBatch)`, which cuts the kernel's TCP super-packets
    /// into MTU-sized packets.
    public let offload: Bool

    private let fd: Atomic<Int32>

    /// Creates the interface `name` (at most 15 bytes; `%d` picks a free
    /// number, as in "mg%d") or attaches to an existing non-persistent TUN
    /// interface of that name, and sets its MTU if given. The interface starts
    /// down. Needs CAP_NET_ADMIN. Throws EINVAL for an empty or too long name,
    /// and the kernel's error otherwise (ENOENT: no /dev/net/tun; EPERM; EBUSY:
    /// name taken by a non-TUN interface).
    ///
    /// With `offload`, the device is opened with IFF_VNET_HDR and asks for
    /// TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 (TUNSETOFFLOAD), so the kernel
    /// hands over TCP in super-packets of up to 64 KiB, cut here; this saves
    /// the kernel most of its per-packet work on bulk TCP.
    public init(name: String = "mg%d", mtu: Int? = nil, nonBlocking: Bool = false, offload: Bool = false) throws(LinuxError) {
        let requested = Array(name.utf8)
        guard !requested.isEmpty, requested.count < Int(MG_IFNAMSIZ), !requested.contains(0) else {
            throw .invalid("TUNSETIFF \(name)", "interface name must be 1 to \(MG_IFNAMSIZ - 1) bytes")
        }
        let f = try syscall("open /dev/net/tun") { open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK) }
        var out = [CChar](repeating: 0, count: Int(MG_IFNAMSIZ))
        if mg_tun_set_iff(f, name, offload ? 1 : 0, &out, out.count) != 0 {
            let e = lastErrno()
            _ = Glibc.close(f)
            throw LinuxError("TUNSETIFF \(name)", e)
        }
        if offload {
            if mg_tun_set_vnet_hdr_size(f, MG_VIRTIO_NET_HDR_LEN) != 0 || mg_tun_set_offload(f, TunOffload.features) != 0 {
                let e = lastErrno()
                _ = Glibc.close(f)
                throw LinuxError("TUNSETOFFLOAD \(name)", e)
            }
        }
        self.offload = offload
        self.name = String(decoding: out.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        isNonBlocking = nonBlocking
        fd = Atomic(f)
        if let mtu { try setMTU(mtu) }   // on failure deinit closes the descriptor
    }

    deinit { close() }

    /// The descriptor, for polling (always O_NONBLOCK); -1 after `close()`.
    public var fileDescriptor: Int32 { fd.load(ordering: .relaxed) }

    /// Closes the descriptor, which deletes the interface (idempotent).
    public func close() {
        let old = fd.exchange(-1, ordering: .acquiringAndReleasing)
        if old >= 0 { _ = Glibc.close(old) }
    }

    // MARK: Interface settings (netdevice(7))

    /// Sets the MTU (SIOCSIFMTU). The kernel takes 68...65535 for TUN.
    public func setMTU(_ mtu: Int) throws(LinuxError) {
        guard let value = Int32(exactly: mtu), value > 0 else { throw .invalid("SIOCSIFMTU \(name) \(mtu)", "MTU must be positive") }
        try withControlSocket("SIOCSIFMTU \(name) \(mtu)") { mg_if_set_mtu($0, name, value) }
    }

    /// The current MTU (SIOCGIFMTU).
    public func mtu() throws(LinuxError) -> Int {
        var value: Int32 = 0
        try withControlSocket("SIOCGIFMTU \(name)") { mg_if_get_mtu($0, name, &value) }
        return Int(value)
    }

    /// Brings the interface up or down (IFF_UP via SIOCGIFFLAGS/SIOCSIFFLAGS;
    /// other flags are kept). The kernel routes packets into a TUN interface
    /// only while it is up.
    public func setUp(_ up: Bool) throws(LinuxError) {
        try withControlSocket("SIOCSIFFLAGS \(name) \(up ? "up" : "down")") { mg_if_set_up($0, name, up ? 1 : 0) }
    }

    /// Whether IFF_UP is set.
    public func isUp() throws(LinuxError) -> Bool {
        var up: Int32 = 0
        try withControlSocket("SIOCGIFFLAGS \(name)") { mg_if_get_up($0, name, &up) }
        return up != 0
    }

    /// The interface index (if_nametoindex(3)), for netlink address and route calls.
    public func interfaceIndex() throws(LinuxError) -> UInt32 {
        let index = if_nametoindex(name)
        guard index != 0 else { throw LinuxError("if_nametoindex \(name)", lastErrno()) }
        return index
    }

    private func withControlSocket(_ operation: @autoclosure () -> String, _ body: (Int32) -> Int32) throws(LinuxError) {
        let s = try syscall("socket(AF_INET, SOCK_DGRAM)") {
            Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        defer { _ = Glibc.close(s) }
        _ = try syscall(operation()) { body(s) }
    }

    // MARK: Packets

    /// Reads one IP packet into `buffer` and returns its length, or 0 when a
    /// nonblocking device has none queued (EAGAIN; no packet is empty). A
    /// blocking device waits. A packet longer than the buffer is consumed and
    /// reported as EMSGSIZE. Not available with `offload` (EINVAL: a
    /// super-packet needs a batch).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(LinuxError) -> Int {
        guard !offload else { throw .invalid("read \(name)", "a TUN device with offload is read into a DatagramBatch") }
        let f = fileDescriptor
        while true {
            switch retryingOnInterrupt({ Glibc.read(f, buffer.baseAddress, buffer.count) }) {
            case .success(let n):
                let declared = buffer.baseAddress.map { Self.declaredLength(UnsafeRawPointer($0), available: min(n, buffer.count)) } ?? 0
                guard n <= buffer.count, declared <= n else {
                    throw LinuxError("read \(name): \(max(n, declared))-byte packet longer than \(buffer.count)-byte buffer", .messageTooLong)
                }
                return n
            case .failure(let e) where e.isWouldBlock:
                if isNonBlocking { return 0 }
                try waitFor(f, events: Int16(POLLIN), operation: "ppoll \(name)")
            case .failure(let e):
                throw LinuxError("read \(name)", e)
            }
        }
    }

    /// Reads the packets already queued, up to `batch.capacity`, into slots
    /// `0..<n` at `headroom`, and returns n. A blocking device waits for the
    /// first packet only; a nonblocking one returns 0 when none is queued. A
    /// packet longer than `bufferSize` is consumed and its slot marked
    /// `isTruncated` (drop it). A failure after the first packet ends the batch
    /// early; the next call reports it. Endpoints are left untouched.
    /// Allocates nothing (with `offload`, a 64 KiB frame buffer once per batch).
    ///
    /// With `offload`, each TCP super-packet becomes several slots; segments
    /// that do not fit stay in the batch and are returned first by the next
    /// call with the same batch (so use a batch with one device only). Frames
    /// with an inconsistent virtio_net_hdr are dropped.
    public func read(into batch: DatagramBatch) throws(LinuxError) -> Int {
        if offload { return try readOffloaded(into: batch) }
        let f = fileDescriptor
        var count = 0
        while count < batch.capacity {
            let area = batch.receiveArea(count)
            switch retryingOnInterrupt({ Glibc.read(f, area, batch.bufferSize) }) {
            case .success(let n):
                batch.finishRead(count, copied: n, declared: Self.declaredLength(area, available: min(n, batch.bufferSize)))
                count += 1
            case .failure(let e) where e.isWouldBlock:
                if count > 0 || isNonBlocking { return count }
                try waitFor(f, events: Int16(POLLIN), operation: "ppoll \(name)")
            case .failure(let e):
                if count > 0 { return count }
                throw LinuxError("read \(name)", e)
            }
        }
        return count
    }

    private func readOffloaded(into batch: DatagramBatch) throws(LinuxError) -> Int {
        let f = fileDescriptor
        let scratch = batch.offloadScratch()
        var count = batch.drainCarry(from: 0)
        while count < batch.capacity && !batch.hasCarry {
            switch retryingOnInterrupt({ Glibc.read(f, scratch, DatagramBatch.offloadScratchSize) }) {
            case .success(let n):
                count = batch.acceptFrame(length: n, at: count)
            case .failure(let e) where e.isWouldBlock:
                if count > 0 || isNonBlocking { return count }
                try waitFor(f, events: Int16(POLLIN), operation: "ppoll \(name)")
            case .failure(let e):
                if count > 0 { return count }
                throw LinuxError("read \(name)", e)
            }
        }
        return count
    }

    /// One write(2), or with `offload` a writev(2) behind `header` (all zero:
    /// no GSO, checksums complete).
    private func writeOne(_ f: Int32, _ base: UnsafeRawPointer?, _ count: Int, header: VirtioNetHeader = VirtioNetHeader()) -> Result<Int, Errno> {
        guard offload else { return retryingOnInterrupt { Glibc.write(f, base, count) } }
        return withUnsafeTemporaryAllocation(byteCount: VirtioNetHeader.size, alignment: 8) { h in
            header.store(to: h.baseAddress!)
            return withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { iov in
                iov[0] = iovec(iov_base: h.baseAddress, iov_len: VirtioNetHeader.size)
                iov[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: count)
                return retryingOnInterrupt { Glibc.writev(f, iov.baseAddress, 2) }
            }
        }
    }

    /// Writes one IP packet through `coalescer` (TCPCoalescer.swift): with
    /// `offload`, TCP segments may be held and merged, and whatever must go out
    /// first is written now; without, the packet is written at once. Returns
    /// how many writes failed (the kernel refused the packet, or had no room:
    /// those packets are dropped). Call `flush(_:)` at the end of each batch.
    @discardableResult
    public func write(_ packet: UnsafeRawBufferPointer, coalescing coalescer: TCPCoalescer) -> Int {
        let f = fileDescriptor
        guard offload else { return writeOne(f, packet.baseAddress, packet.count).isFailure ? 1 : 0 }
        var failed = 0
        coalescer.add(packet) { header, frame in
            if writeOne(f, frame.baseAddress, frame.count, header: header).isFailure { failed += 1 }
        }
        return failed
    }

    /// Writes out every packet `coalescer` holds; returns how many writes failed.
    @discardableResult
    public func flush(_ coalescer: TCPCoalescer) -> Int {
        let f = fileDescriptor
        var failed = 0
        coalescer.flush { header, frame in
            if writeOne(f, frame.baseAddress, frame.count, header: header).isFailure { failed += 1 }
        }
        return failed
    }

    /// The length an IP packet's header declares (IPv4 total length; IPv6 40 +
    /// payload length), or 0 when the first `available` bytes do not say (not
    /// IP, too short, or an IPv6 jumbogram). Reads only those bytes.
    static func declaredLength(_ p: UnsafeRawPointer, available: Int) -> Int {
        guard available >= 6 else { return 0 }
        let b = p.assumingMemoryBound(to: UInt8.self)
        switch b[0] >> 4 {
        case 4: return Int(b[2]) << 8 | Int(b[3])
        case 6:
            let payload = Int(b[4]) << 8 | Int(b[5])
            return payload == 0 ? 0 : 40 + payload
        default: return 0
        }
    }

    /// Writes one IP packet (IPv4 or IPv6, by its first nibble) for the kernel
    /// to receive on the interface. Returns false when a nonblocking device has
    /// no room (EAGAIN); a blocking one waits. The kernel's refusal of this
    /// packet (EINVAL: not IP or malformed; EIO: interface down) throws.
    @discardableResult
    public func write(_ packet: UnsafeRawBufferPointer) throws(LinuxError) -> Bool {
        let f = fileDescriptor
        while true {
            switch writeOne(f, packet.baseAddress, packet.count) {
            case .success:
                return true
            case .failure(let e) where e.isWouldBlock:
                if isNonBlocking { return false }
                try waitFor(f, events: Int16(POLLOUT), operation: "ppoll \(name)")
            case .failure(let e):
                throw LinuxError("write \(name)", e)
            }
        }
    }

    /// `write(_:)` for an array.
    @discardableResult
    public func write(_ packet: [UInt8]) throws(LinuxError) -> Bool {
        var result: Result<Bool, LinuxError> = .success(false)
        packet.withUnsafeBytes { raw in result = Result { () throws(LinuxError) -> Bool in try write(raw) } }
        return try result.get()
    }

    /// Writes the payloads of `slots`, one write(2) each, in order. A packet
    /// the kernel refuses by itself (EINVAL, EIO, EMSGSIZE) is skipped and
    /// counted in `failed`; EAGAIN on a nonblocking device ends the call early
    /// (`isComplete` false). Throws only when the descriptor is unusable
    /// (EBADF, EBADFD, EFAULT), or EINVAL for slots outside the batch.
    /// Allocates nothing.
    public func write(_ batch: DatagramBatch, slots: Range<Int>) throws(LinuxError) -> BatchResult {
        guard slots.lowerBound >= 0, slots.upperBound <= batch.capacity else {
            throw .invalid("write \(name)", "slots \(slots) outside a batch of \(batch.capacity)")
        }
        let f = fileDescriptor
        var result = BatchResult(requested: slots.count)
        var i = slots.lowerBound
        while i < slots.upperBound {
            let p = batch.payload(i)
            switch writeOne(f, p.baseAddress, p.count) {
            case .success:
                result.completed += 1; result.processed += 1; i += 1
            case .failure(let e) where e.isWouldBlock:
                if isNonBlocking { result.lastError = e; return result }
                try waitFor(f, events: Int16(POLLOUT), operation: "ppoll \(name)")
            case .failure(let e) where e == .badFileDescriptor || e.rawValue == EBADFD || e == .badAddress:
                throw LinuxError("write \(name)", e)
            case .failure(let e):
                result.lastError = e; result.processed += 1; i += 1
            }
        }
        return result
    }

    /// Writes slots `0..<count`; see `write(_:slots:)`.
    public func write(_ batch: DatagramBatch, count: Int) throws(LinuxError) -> BatchResult {
        try write(batch, slots: 0..<count)
    }
}

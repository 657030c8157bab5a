// UDPSocket: the agent's one UDP socket, for WireGuard transport and handshake
// messages and for the control plane, with batched I/O.
//
// One dual-stack socket (ipv6(7): AF_INET6 with IPV6_V6ONLY = 0) serves both
// families; IPv4 peers appear as v4-mapped addresses (::ffff:a.b.c.d), which
// this type turns back into `.v4` endpoints on receive and produces from
// `.v4` endpoints on send. On a host without IPv6 (ipv6.disable=1) the
// dual-stack socket falls back to AF_INET.
//
// Batches go through recvmmsg(2) (MSG_WAITFORONE: a blocking socket waits for
// the first datagram only) and sendmmsg(2) into a `DatagramBatch`, whose
// messages, addresses and buffers are preallocated: no allocation per packet.
// Optional offloads, udp(7): UDP_SEGMENT (GSO: one send of a large payload the
// kernel splits into equal datagrams) and UDP_GRO (one receive returns several
// coalesced datagrams from one sender, with their size in a control message).
//
// Errors: "would block" is an empty result, never thrown. An ICMP error the
// kernel queued on the socket (ECONNREFUSED and the like; only possible with
// IP_RECVERR or a connected socket, neither of which is used) is consumed and
// the receive retried. On send, a datagram the kernel refuses by itself
// (EHOSTUNREACH, ENETUNREACH, EMSGSIZE, EACCES, EINVAL, EPERM from a firewall)
// is skipped and counted; a full buffer (EAGAIN, ENOBUFS, ENOMEM) stops the
// batch; only a broken descriptor throws.
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import MeshBase
import Synchronization
import SystemPackage

/// A UDP socket with batched send and receive.
///
/// Sendable because its only mutable state is the descriptor, held in an
/// atomic: recvmmsg/sendmmsg/setsockopt on one socket from several threads are
/// safe in the kernel (the engine receives on one thread while others send),
/// and `close()` swaps the descriptor out exactly once. Batches are not shared:
/// each thread uses its own `DatagramBatch`. Close only after the threads using
/// the socket have stopped, since a closed descriptor number may be reused.
public final class UDPSocket: @unchecked Sendable {
    /// Which addresses the socket speaks.
    public enum Family: Sendable, Equatable {
        /// AF_INET6 with IPV6_V6ONLY = 0: IPv6 and (v4-mapped) IPv4.
        case dualStack
        /// AF_INET only.
        case ipv4
        /// AF_INET6 with IPV6_V6ONLY = 1.
        case ipv6
    }

    /// The family the socket ended up with (`.ipv4` when a dual-stack socket
    /// fell back because the kernel has no IPv6).
    public let family: Family
    /// Whether calls return at once (with an empty result) instead of waiting.
    public let isNonBlocking: Bool
    /// Whether the kernel accepts UDP_SEGMENT (send-side GSO, Linux 4.18+).
    public let supportsGSO: Bool
    /// Whether `sendCoalesced` still merges: cleared for good the first time
    /// the kernel refuses a GSO send with EIO (the route's device cannot
    /// checksum for us).
    public var coalescesSends: Bool { gsoUsable.load(ordering: .relaxed) }

    private let fd: Atomic<Int32>
    private let gsoUsable: Atomic<Bool>
    private let addressFamily: Int32

    /// Opens the socket (close-on-exec). Not bound until `bind(port:)`, though
    /// a send binds it to an ephemeral port implicitly.
    public init(family: Family = .dualStack, nonBlocking: Bool = false) throws(LinuxError) {
        let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        var af = family == .ipv4 ? AF_INET : AF_INET6
        var actual = family
        var s = Glibc.socket(af, type, 0)
        if s < 0, family == .dualStack, lastErrno() == .addressFamilyNotSupported {
            af = AF_INET; actual = .ipv4
            s = Glibc.socket(af, type, 0)
        }
        guard s >= 0 else { throw LinuxError("socket(\(af == AF_INET ? "AF_INET" : "AF_INET6"), SOCK_DGRAM)", lastErrno()) }
        if af == AF_INET6 {
            var v6only: Int32 = actual == .ipv6 ? 1 : 0
            if setsockopt(s, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &v6only, socklen_t(MemoryLayout<Int32>.size)) != 0 {
                let e = lastErrno()
                _ = Glibc.close(s)
                throw LinuxError("setsockopt IPV6_V6ONLY", e)
            }
        }
        var segment: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        supportsGSO = getsockopt(s, MG_SOL_UDP, MG_UDP_SEGMENT, &segment, &len) == 0
        gsoUsable = Atomic(supportsGSO)
        fd = Atomic(s)
        addressFamily = af
        self.family = actual
        isNonBlocking = nonBlocking
    }

    deinit { close() }

    /// The socket's descriptor, for polling; -1 after `close()`.
    public var fileDescriptor: Int32 { fd.load(ordering: .relaxed) }

    /// Closes the socket (idempotent). Per close(2), the descriptor is released
    /// even when close reports an error, so nothing is retried or thrown.
    public func close() {
        let old = fd.exchange(-1, ordering: .acquiringAndReleasing)
        if old >= 0 { _ = Glibc.close(old) }
    }

    // MARK: Setup

    /// Binds to `port` (0: an ephemeral port) on `address` (nil: every
    /// address of the socket's family). Returns the bound port.
    @discardableResult
    public func bind(port: UInt16, address: IPAddress? = nil) throws(LinuxError) -> UInt16 {
        let wildcard: IPAddress = addressFamily == AF_INET ? .v4(IPv4Address(0)) : .v6(IPv6Address(high: 0, low: 0))
        let endpoint = Endpoint(address ?? wildcard, port: port)
        var sa = sockaddr_in6()
        let length = withUnsafeMutableBytes(of: &sa) { raw -> socklen_t in
            DatagramBatch.encode(endpoint, into: raw.baseAddress!)
            return mg_sockaddr_prepare(raw.baseAddress!, addressFamily)
        }
        guard length > 0 else { throw LinuxError("bind \(endpoint)", .addressFamilyNotSupported) }
        let f = fileDescriptor
        _ = try syscall("bind \(endpoint)") {
            withUnsafePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(f, $0, length) } }
        }
        return try localEndpoint().port
    }

    /// The address and port the socket is bound to (getsockname(2)); a v4-mapped
    /// address comes back as `.v4`.
    public func localEndpoint() throws(LinuxError) -> Endpoint {
        var sa = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let f = fileDescriptor
        _ = try syscall("getsockname") {
            withUnsafeMutablePointer(to: &sa) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(f, $0, &length) } }
        }
        guard let e = withUnsafeBytes(of: &sa, { DatagramBatch.decode($0.baseAddress!, length: length) }) else {
            throw LinuxError("getsockname", .addressFamilyNotSupported)
        }
        return e
    }

    /// The bound port; 0 when unbound or closed.
    public var port: UInt16 { (try? localEndpoint())?.port ?? 0 }

    /// Datagrams the kernel dropped for this socket (a full receive buffer,
    /// checksum errors): the `drops` column of its line in /proc/net/udp6 or
    /// /proc/net/udp (this network namespace), found by the socket's inode.
    /// nil when the socket is closed or not listed.
    public var kernelDrops: UInt64? {
        var st = stat()
        guard fstat(fileDescriptor, &st) == 0 else { return nil }
        let inode = String(st.st_ino)
        for table in ["/proc/net/udp6", "/proc/net/udp"] {
            guard let text = Self.readProcFile(table) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let f = line.split(separator: " ", omittingEmptySubsequences: true)
                if f.count >= 13, f[9] == inode { return UInt64(f[12]) }
            }
        }
        return nil
    }

    /// A /proc file's text (its size is not known in advance: read to the end).
    static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Sets the receive buffer (SO_RCVBUF, socket(7)). Tries SO_RCVBUFFORCE
    /// first, which exceeds net.core.rmem_max but needs CAP_NET_ADMIN, and
    /// falls back to SO_RCVBUF (capped by rmem_max) on EPERM. Returns the size
    /// the kernel reports afterwards (it doubles the request for bookkeeping).
    @discardableResult
    public func setReceiveBufferSize(_ bytes: Int) throws(LinuxError) -> Int {
        try setBufferSize(bytes, force: MG_SO_RCVBUFFORCE, plain: SO_RCVBUF, name: "SO_RCVBUF")
    }

    /// Sets the send buffer: SO_SNDBUFFORCE, else SO_SNDBUF; see `setReceiveBufferSize`.
    @discardableResult
    public func setSendBufferSize(_ bytes: Int) throws(LinuxError) -> Int {
        try setBufferSize(bytes, force: MG_SO_SNDBUFFORCE, plain: SO_SNDBUF, name: "SO_SNDBUF")
    }

    private func setBufferSize(_ bytes: Int, force: Int32, plain: Int32, name: String) throws(LinuxError) -> Int {
        let value = Int32(clamping: max(0, bytes) / 2 * 2)
        switch setOption(SOL_SOCKET, force, value) {
        case .success: break
        case .failure(.notPermitted):
            if case .failure(let e) = setOption(SOL_SOCKET, plain, value) { throw LinuxError("setsockopt \(name) \(bytes)", e) }
        case .failure(let e): throw LinuxError("setsockopt \(name)FORCE \(bytes)", e)
        }
        switch getOption(SOL_SOCKET, plain) {
        case .success(let v): return Int(v)
        case .failure(let e): throw LinuxError("getsockopt \(name)", e)
        }
    }

    /// Sets the firewall mark on outgoing packets (SO_MARK, socket(7); needs
    /// CAP_NET_ADMIN), so policy routing can keep tunnel traffic out of the tunnel.
    public func setMark(_ mark: UInt32) throws(LinuxError) {
        if case .failure(let e) = setOption(SOL_SOCKET, MG_SO_MARK, Int32(bitPattern: mark)) {
            throw LinuxError("setsockopt SO_MARK \(mark)", e)
        }
    }

    /// Asks for UDP GRO (udp(7), Linux 5.0+): a receive may then return several
    /// datagrams from one sender in one slot, with `segmentSize` set. Only
    /// useful with batches whose `bufferSize` is 65535 or more; with smaller
    /// slots coalesced datagrams would be truncated. Returns false when the
    /// kernel does not know the option (ENOPROTOOPT).
    @discardableResult
    public func enableGRO() throws(LinuxError) -> Bool {
        switch setOption(MG_SOL_UDP, MG_UDP_GRO, 1) {
        case .success: return true
        case .failure(.protocolNotAvailable): return false
        case .failure(let e): throw LinuxError("setsockopt UDP_GRO", e)
        }
    }

    private func setOption(_ level: Int32, _ name: Int32, _ value: Int32) -> Result<Int32, Errno> {
        var v = value
        let f = fileDescriptor
        return retryingOnInterrupt { setsockopt(f, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    private func getOption(_ level: Int32, _ name: Int32) -> Result<Int32, Errno> {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        let f = fileDescriptor
        return retryingOnInterrupt { getsockopt(f, level, name, &v, &len) }.map { _ in v }
    }

    // MARK: Batched I/O

    /// Receives up to `batch.capacity` datagrams with one recvmmsg(2) and
    /// returns how many: slots `0..<n` hold each payload at `headroom`, its
    /// length, its sender and, with GRO, its segment size. A datagram longer
    /// than `bufferSize` is cut and its slot marked `isTruncated` (drop it).
    /// A blocking socket waits for the first datagram only; a nonblocking one
    /// returns 0 when there is none (EAGAIN). Allocates nothing.
    public func receive(into batch: DatagramBatch) throws(LinuxError) -> Int {
        let f = fileDescriptor
        var consumedErrors = 0
        while true {
            batch.prepareReceive()
            switch retryingOnInterrupt({ mg_recvmmsg(f, batch.messages, UInt32(batch.capacity), MG_MSG_WAITFORONE) }) {
            case .success(let n):
                batch.finishReceive(count: Int(n))
                return Int(n)
            case .failure(let e) where e.isWouldBlock:
                return 0
            case .failure(let e) where Self.isQueuedICMPError(e) && consumedErrors < 8:
                consumedErrors += 1
            case .failure(let e):
                throw LinuxError("recvmmsg", e)
            }
        }
    }

    /// Sends slots `0..<count` of `batch`; see `send(_:slots:)`.
    public func send(_ batch: DatagramBatch, count: Int) throws(LinuxError) -> BatchResult {
        try send(batch, slots: 0..<count)
    }

    /// Sends the payloads of `slots` to their endpoints with as few sendmmsg(2)
    /// calls as the kernel allows, in order. A partial send continues where
    /// the kernel stopped; a datagram refused by itself is skipped (counted in
    /// `failed`, errno in `lastError`); EAGAIN, ENOBUFS or ENOMEM ends the call
    /// early (`isComplete` false) so the caller can wait for POLLOUT, retry the
    /// rest or drop it. A slot with a segment size larger than 0 and smaller
    /// than its length is sent as one UDP GSO super-datagram. Throws only when
    /// the descriptor itself is unusable (EBADF, ENOTSOCK, EFAULT). A slot
    /// range outside the batch is an error (EINVAL). Allocates nothing.
    public func send(_ batch: DatagramBatch, slots: Range<Int>) throws(LinuxError) -> BatchResult {
        guard slots.lowerBound >= 0, slots.upperBound <= batch.capacity else {
            throw .invalid("sendmmsg", "slots \(slots) outside a batch of \(batch.capacity)")
        }
        var result = BatchResult(requested: slots.count)
        guard !slots.isEmpty else { return result }
        batch.prepareSend(slots, family: addressFamily)
        let f = fileDescriptor
        var next = slots.lowerBound
        while next < slots.upperBound {
            let remaining = UInt32(slots.upperBound - next)
            switch retryingOnInterrupt({ mg_sendmmsg(f, batch.messages + next, remaining, 0) }) {
            case .success(let n) where n > 0:
                next += Int(n); result.processed += Int(n); result.completed += Int(n)
            case .success:
                // sendmmsg returns 0 only for vlen 0; treat as "no room" rather than spin.
                result.lastError = .resourceTemporarilyUnavailable
                return result
            case .failure(let e) where Self.isFatalSendError(e):
                throw LinuxError("sendmmsg", e)
            case .failure(let e) where e.isWouldBlock || e == .noBufferSpace || e == .noMemory:
                result.lastError = e
                return result
            case .failure(let e):
                // This datagram alone was refused: skip it and go on.
                result.lastError = e
                next += 1; result.processed += 1
            }
        }
        return result
    }

    /// Sends `slots` like `send(_:slots:)`, but each run of consecutive slots
    /// to the same endpoint goes out as one UDP GSO send (udp(7) UDP_SEGMENT):
    /// the kernel cuts the run back into one datagram per slot, so the
    /// receiver sees exactly what `send(_:slots:)` would have sent. A run has
    /// slots of one length, except that its last may be shorter, and at most
    /// `maxCoalescedSegments` slots and `maxCoalescedBytes` bytes. Slots with
    /// their own segment size are sent alone. The result counts slots.
    /// A run the kernel refuses as a GSO send goes out one datagram per slot:
    /// after EIO (the route's device cannot checksum for us) merging is also
    /// turned off for this socket (`coalescesSends`); after EMSGSIZE or EINVAL
    /// (a segment over the path MTU) only that run is affected. Without GSO
    /// support this is `send(_:slots:)`. Allocates nothing.
    public func sendCoalesced(_ batch: DatagramBatch, slots: Range<Int>) throws(LinuxError) -> BatchResult {
        guard slots.lowerBound >= 0, slots.upperBound <= batch.capacity else {
            throw .invalid("sendmmsg", "slots \(slots) outside a batch of \(batch.capacity)")
        }
        var result = BatchResult(requested: slots.count)
        let f = fileDescriptor
        var start = slots.lowerBound
        rounds: while start < slots.upperBound {
            guard coalescesSends else {
                result.absorb(try send(batch, slots: start..<slots.upperBound))
                return result
            }
            let groups = batch.prepareCoalescedSend(start..<slots.upperBound, family: addressFamily,
                                                    maxSegments: Self.maxCoalescedSegments, maxBytes: Self.maxCoalescedBytes)
            var next = 0
            while next < groups {
                let first = batch.groupStarts[next], end = batch.groupStarts[next + 1]
                switch retryingOnInterrupt({ mg_sendmmsg(f, batch.messages + next, UInt32(groups - next), 0) }) {
                case .success(let n) where n > 0:
                    next += Int(n)
                    let sent = batch.groupStarts[next] - first
                    result.processed += sent; result.completed += sent
                case .success:
                    result.lastError = .resourceTemporarilyUnavailable
                    return result
                case .failure(let e) where Self.isFatalSendError(e):
                    throw LinuxError("sendmmsg", e)
                case .failure(let e) where e.isWouldBlock || e == .noBufferSpace || e == .noMemory:
                    result.lastError = e
                    return result
                case .failure(let e) where end - first > 1 && (e == .ioError || e == .messageTooLong || e == .invalidArgument):
                    // The plain resend rebuilds the messages: plan the rest afresh after it.
                    if e == .ioError { gsoUsable.store(false, ordering: .relaxed) }
                    result.lastError = e
                    let plain = try send(batch, slots: first..<end)
                    result.absorb(plain)
                    guard plain.isComplete else { return result }
                    start = end
                    continue rounds
                case .failure(let e):
                    result.lastError = e
                    next += 1; result.processed += end - first
                }
            }
            break
        }
        return result
    }

    /// Most datagrams in one GSO send: UDP_MAX_SEGMENTS of older kernels
    /// (newer ones take 128), and what one GRO receive coalesces (UDP_GRO_CNT_MAX).
    public static let maxCoalescedSegments = 64
    /// Most bytes in one GSO send: 65535 - 40 - 8, a 64 KiB IP packet less
    /// IPv6 and UDP headers, within the kernel's limit for both families
    /// (IPv4 allows 65507).
    public static let maxCoalescedBytes = 65535 - 40 - 8

    // MARK: Single datagrams

    /// Sends one datagram. Returns false when a nonblocking socket has no room
    /// (EAGAIN) or the kernel is short of buffers (ENOBUFS): the datagram was
    /// not sent. Every other failure throws, naming the destination.
    @discardableResult
    public func send(_ bytes: UnsafeRawBufferPointer, to endpoint: Endpoint) throws(LinuxError) -> Bool {
        var sa = sockaddr_in6()
        let length = withUnsafeMutableBytes(of: &sa) { raw -> socklen_t in
            DatagramBatch.encode(endpoint, into: raw.baseAddress!)
            return mg_sockaddr_prepare(raw.baseAddress!, addressFamily)
        }
        guard length > 0 else { throw LinuxError("sendto \(endpoint)", .addressFamilyNotSupported) }
        let f = fileDescriptor
        let rc = retryingOnInterrupt {
            withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(f, bytes.baseAddress, bytes.count, 0, $0, length) }
            }
        }
        switch rc {
        case .success: return true
        case .failure(let e) where e.isWouldBlock || e == .noBufferSpace: return false
        case .failure(let e): throw LinuxError("sendto \(endpoint)", e)
        }
    }

    /// `send(_:to:)` for an array.
    @discardableResult
    public func send(_ bytes: [UInt8], to endpoint: Endpoint) throws(LinuxError) -> Bool {
        var result: Result<Bool, LinuxError> = .success(false)
        bytes.withUnsafeBytes { raw in result = Result { () throws(LinuxError) -> Bool in try send(raw, to: endpoint) } }
        return try result.get()
    }

    /// Receives one datagram into `buffer`: its length and sender, or nil when
    /// a nonblocking socket has none (EAGAIN). A datagram longer than the
    /// buffer is consumed and reported as EMSGSIZE.
    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(LinuxError) -> (length: Int, from: Endpoint)? {
        var sa = sockaddr_in6()
        var iov = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        let f = fileDescriptor
        var consumedErrors = 0
        while true {
            var msg = msghdr()
            let rc = withUnsafeMutablePointer(to: &sa) { sap in
                withUnsafeMutablePointer(to: &iov) { iovp in
                    msg.msg_name = UnsafeMutableRawPointer(sap)
                    msg.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
                    msg.msg_iov = iovp
                    msg.msg_iovlen = 1
                    return retryingOnInterrupt { recvmsg(f, &msg, 0) }
                }
            }
            switch rc {
            case .success(let n):
                if msg.msg_flags & Int32(MG_MSG_TRUNC) != 0 {
                    throw LinuxError("recvmsg: datagram longer than \(buffer.count) bytes", .messageTooLong)
                }
                let from = withUnsafeBytes(of: &sa) { DatagramBatch.decode($0.baseAddress!, length: msg.msg_namelen) }
                guard let from else { throw LinuxError("recvmsg", .addressFamilyNotSupported) }
                return (Int(n), from)
            case .failure(let e) where e.isWouldBlock:
                return nil
            case .failure(let e) where Self.isQueuedICMPError(e) && consumedErrors < 8:
                consumedErrors += 1
            case .failure(let e):
                throw LinuxError("recvmsg", e)
            }
        }
    }

    // MARK: Error classes

    /// Errors a receive reports from an ICMP message queued on the socket; the
    /// call that reports one clears it.
    static func isQueuedICMPError(_ e: Errno) -> Bool {
        e == .connectionRefused || e == .noRouteToHost || e == .networkUnreachable || e == .hostIsDown
    }

    /// Errors that mean the descriptor, not a datagram, is broken.
    static func isFatalSendError(_ e: Errno) -> Bool {
        e == .badFileDescriptor || e == .notSocket || e == .badAddress
    }
}

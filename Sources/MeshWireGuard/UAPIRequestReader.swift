// Framing the UAPI byte stream into requests, with limits, so a hostile
// client of the socket cannot make the server allocate without bound.
//
// Grammar (https://www.wireguard.com/xplatform/, wireguard-go IpcHandle):
//
//   request = "get=1\n" "\n"
//           | "set=1\n" *( line "\n" ) "\n"
//   line    = 1*( any byte except "\n" )          ; "key=value", checked by UAPI.parseSet
//
// As in wireguard-go (bufio.ScanLines), one "\r" before a set line's "\n" is
// allowed, so "\r\n" also ends a set; the operation line and the get
// terminator must be exact, as there. Anything else as an operation is
// refused.
//
//        feed(bytes)                       nextRequest()
//   ─────────────────►  [ buffered ]  ─────────────────►  .get | .set(body) | nil (need more)
//                                                       └─ throws UAPIError: the reader is
//                                                          failed for good; reply
//                                                          UAPI.formatErrno(error), close
//
// Differences from wireguard-go, all deliberate:
//   - A set is framed whole before any of it is parsed or applied, so a bad
//     line refuses the whole request (wireguard-go applies the lines before
//     it) and the connection stays usable; a set cut short by end of stream
//     is never applied (see `hasPartialRequest`).
//   - Limits: lines of at most `maxLineBytes`, requests of at most
//     `maxRequestBytes` (wireguard-go allows 64 KiB lines, unbounded sets).
//   - An unknown operation is answered with EINVAL before closing
//     (wireguard-go closes without a reply).
import MeshCrypto

/// One framed UAPI request.
public enum UAPIRequest: Sendable, Equatable {
    /// `get=1`: answer with `UAPI.formatGet` of the device's snapshot.
    case get
    /// `set=1`: parse with `UAPI.parseSet`, apply, answer with `UAPI.formatErrno`.
    case set(UAPISetRequest)
}

/// The body of a `set=1` request: its `key=value` lines, each ending in "\n"
/// (an optional "\r" before it is ignored), without the `set=1` line and
/// without the blank line that ends the request.
///
/// The bytes live in `SecretBytes` (wiped on release, never printed) because
/// they may carry the private key and preshared keys.
public struct UAPISetRequest: Sendable, Equatable, CustomStringConvertible {
    public let body: SecretBytes

    public init(body: SecretBytes) { self.body = body }

    /// A body made from `lines` (without their newlines), for tests and for
    /// building requests in code. A line containing "\n" cannot be framed;
    /// it is split there, which `UAPI.parseSet` then sees as two lines.
    public init<S: Sequence>(lines: S) where S.Element: StringProtocol {
        let lines = Array(lines)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(lines.reduce(0) { $0 + $1.utf8.count + 1 })   // no regrowth: no unwiped copies
        for line in lines { bytes += line.utf8; bytes.append(UInt8(ascii: "\n")) }
        body = SecretBytes(copying: bytes)
        ConstantTime.wipe(&bytes)
    }

    public static func == (a: UAPISetRequest, b: UAPISetRequest) -> Bool { a.body.constantTimeEquals(b.body) }

    public var description: String { "UAPISetRequest(\(body.count) bytes, redacted)" }
}

/// Splits a UAPI byte stream into requests. Sans-IO: the caller reads the
/// socket, feeds what it read, and takes out requests.
///
/// Contract: after each `feed`, call `nextRequest()` until it returns nil
/// (more bytes needed) or throws. Then the reader holds at most one partial
/// request (at most `limits.maxRequestBytes`). A `feed` that would make the
/// reader hold more than twice that fails it with EMSGSIZE instead of
/// buffering. Once `nextRequest()` has thrown, it throws the same error
/// forever and `feed` discards its input: write `UAPI.formatErrno(error)` and
/// close the connection.
///
/// Bytes handed in are wiped from the reader's own buffer as soon as they
/// have been framed (and when the reader is released), since a set carries
/// keys. Not safe for concurrent use; one connection owns one reader.
public struct UAPIRequestReader: Sendable {
    /// Bounds on what one request may make the reader buffer.
    public struct Limits: Sendable, Equatable {
        /// Longest line, in bytes, not counting its "\n". The longest line
        /// `wg` sends is a key line (78 bytes); the longest valid endpoint or
        /// allowed IP is under 64. 4096 leaves room for extensions and
        /// matches a page.
        public var maxLineBytes: Int
        /// Largest request, in bytes, from `set=1` through the terminating
        /// blank line. A `wg setconf` peer with a preshared key, an IPv6
        /// endpoint, a keepalive and four allowed IPs is about 450 bytes, so
        /// 16 MiB carries 10,000 such peers with room for ~30 allowed IPs
        /// each, while bounding a hostile client.
        public var maxRequestBytes: Int

        /// Values are clamped to 16…1 MiB bytes per line and 64 bytes…1 TiB
        /// per request, so a misconfiguration cannot overflow the arithmetic.
        public init(maxLineBytes: Int = 4096, maxRequestBytes: Int = 16 << 20) {
            self.maxLineBytes = min(max(maxLineBytes, 16), 1 << 20)
            self.maxRequestBytes = min(max(maxRequestBytes, 64), 1 << 40)
        }

        public static let `default` = Limits()
    }

    private enum Phase: Sendable, Equatable {
        /// Reading `get=1` or `set=1`; the current line starts at `head`.
        case operation
        /// Read `get=1\n`; the next byte must be "\n".
        case getTerminator
        /// Read `set=1\n`; the body starts at `bodyStart`.
        case setBody(bodyStart: Int)
    }

    public let limits: Limits
    /// Fed bytes; `buffer.bytes[head...]` are not yet framed.
    private var buffer: UAPIInputBuffer
    /// Start of the current request.
    private var head = 0
    /// Start of the current (incomplete) line.
    private var lineStart = 0
    /// First byte not yet examined (everything before it is in complete lines).
    private var scan = 0
    private var phase = Phase.operation
    private var failure: UAPIError?

    public init(limits: Limits = .default) {
        self.limits = limits
        buffer = UAPIInputBuffer()
    }

    /// Bytes fed but not yet framed into a request.
    public var bufferedByteCount: Int { buffer.bytes.count - head }

    /// True when the stream stopped inside a request (some of it was fed, or
    /// the reader failed). At end of stream such a request is dropped: a set
    /// cut short is never applied.
    public var hasPartialRequest: Bool { failure != nil || bufferedByteCount > 0 || phase != .operation }

    /// Appends bytes read from the socket.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil, !bytes.isEmpty else { return }
        guard bufferedByteCount + bytes.count <= 2 * limits.maxRequestBytes else {
            fail(UAPIError(errno: UAPIError.Errno.EMSGSIZE,
                           message: "more than \(2 * limits.maxRequestBytes) bytes buffered without a complete request"))
            return
        }
        uniqueBuffer()
        compact()
        buffer.append(bytes)
    }

    /// Appends bytes read from the socket.
    public mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feed($0) }
    }

    /// The next complete request, or nil until more bytes are fed.
    /// Throws on an unknown operation or trailing bytes after `get=1` (EINVAL),
    /// a line over `maxLineBytes` (EIO, as wireguard-go's scanner reports
    /// an over-long line) or a request over `maxRequestBytes` (EMSGSIZE).
    public mutating func nextRequest() throws(UAPIError) -> UAPIRequest? {
        if let failure { throw failure }
        switch step() {
        case .success(let request): return request
        case .failure(let error):
            fail(error)
            throw error
        }
    }

    // MARK: - Framing

    private static let get1: [UInt8] = Array("get=1".utf8)
    private static let set1: [UInt8] = Array("set=1".utf8)
    private static let newline = UInt8(ascii: "\n")
    private static let carriageReturn = UInt8(ascii: "\r")

    private mutating func step() -> Result<UAPIRequest?, UAPIError> {
        while true {
            let count = buffer.bytes.count
            switch phase {
            case .operation:
                guard let end = firstNewline() else {
                    // Refuse as soon as the operation cannot be get=1 or set=1.
                    let partial = buffer.bytes[lineStart..<count]
                    if !Self.get1.starts(with: partial) && !Self.set1.starts(with: partial) {
                        return .failure(invalidOperation(partial))
                    }
                    scan = count
                    return .success(nil)
                }
                let line = buffer.bytes[lineStart..<end]
                if line.elementsEqual(Self.get1) {
                    phase = .getTerminator
                } else if line.elementsEqual(Self.set1) {
                    phase = .setBody(bodyStart: end + 1)
                } else {
                    return .failure(invalidOperation(line))
                }
                lineStart = end + 1
                scan = end + 1

            case .getTerminator:
                guard scan < count else { return .success(nil) }
                let byte = buffer.bytes[scan]
                guard byte == Self.newline else {
                    return .failure(.invalid("trailing character in UAPI get: \"\(UAPIError.sanitized([byte]))\""))
                }
                consume(through: scan + 1)
                return .success(.get)

            case .setBody(let bodyStart):
                guard let end = firstNewline() else {
                    if count - lineStart > limits.maxLineBytes { return .failure(lineTooLong()) }
                    if count - head > limits.maxRequestBytes { return .failure(requestTooLarge()) }
                    scan = count
                    return .success(nil)
                }
                if end - lineStart > limits.maxLineBytes { return .failure(lineTooLong()) }
                if end + 1 - head > limits.maxRequestBytes { return .failure(requestTooLarge()) }
                let length = end - lineStart
                if length == 0 || (length == 1 && buffer.bytes[lineStart] == Self.carriageReturn) {
                    let body = SecretBytes(copying: buffer.bytes[bodyStart..<lineStart])
                    consume(through: end + 1)
                    return .success(.set(UAPISetRequest(body: body)))
                }
                lineStart = end + 1
                scan = end + 1
            }
        }
    }

    /// The index of the first "\n" at or after `scan`, if fed yet.
    private func firstNewline() -> Int? {
        buffer.bytes.withUnsafeBufferPointer { b in
            var i = scan
            while i < b.count {
                if b[i] == Self.newline { return i }
                i += 1
            }
            return nil
        }
    }

    private func invalidOperation(_ line: ArraySlice<UInt8>) -> UAPIError {
        .invalid("invalid UAPI operation: \"\(UAPIError.sanitized(line, limit: 16))\" (expected get=1 or set=1)")
    }

    private func lineTooLong() -> UAPIError {
        UAPIError(errno: UAPIError.Errno.EIO, message: "line longer than \(limits.maxLineBytes) bytes")
    }

    private func requestTooLarge() -> UAPIError {
        UAPIError(errno: UAPIError.Errno.EMSGSIZE, message: "request larger than \(limits.maxRequestBytes) bytes")
    }

    /// Marks the request `head..<end` framed: wipes it and starts the next one.
    private mutating func consume(through end: Int) {
        uniqueBuffer()
        buffer.wipe(head..<end)
        head = end
        lineStart = end
        scan = end
        phase = .operation
    }

    private mutating func fail(_ error: UAPIError) {
        failure = error
        uniqueBuffer()
        buffer.wipeAll()
        head = 0; lineStart = 0; scan = 0
        phase = .operation
    }

    /// Moves the unframed bytes to the front of the buffer (wiping what they
    /// leave behind) and rebases the indices.
    private mutating func compact() {
        guard head > 0 else { return }
        buffer.dropFirst(head)
        lineStart -= head
        scan -= head
        if case .setBody(let bodyStart) = phase { phase = .setBody(bodyStart: bodyStart - head) }
        head = 0
    }

    private mutating func uniqueBuffer() {
        if !isKnownUniquelyReferenced(&buffer) { buffer = buffer.copy() }
    }
}

/// The reader's byte buffer: wiped before any of its storage is released or
/// reused, because it holds keys in transit. Copy-on-write through
/// `UAPIRequestReader` (which copies before mutating a shared instance), so
/// the unchecked Sendable conformance holds: a shared instance is never
/// mutated.
final class UAPIInputBuffer: @unchecked Sendable {
    private(set) var bytes: [UInt8] = []

    init() {}

    func copy() -> UAPIInputBuffer {
        let c = UAPIInputBuffer()
        c.bytes.reserveCapacity(bytes.capacity)
        c.bytes.append(contentsOf: bytes)
        return c
    }

    /// Appends, growing by hand so no unwiped copy is left in freed memory.
    func append(_ more: UnsafeRawBufferPointer) {
        if bytes.count + more.count > bytes.capacity {
            var bigger: [UInt8] = []
            bigger.reserveCapacity(max(bytes.count + more.count, 2 * bytes.capacity, 4096))
            bigger.append(contentsOf: bytes)
            ConstantTime.wipe(&bytes)
            bytes = bigger
        }
        bytes.append(contentsOf: more)
    }

    func wipe(_ range: Range<Int>) {
        bytes.withUnsafeMutableBytes { ConstantTime.wipe(UnsafeMutableRawBufferPointer(rebasing: $0[range])) }
    }

    func wipeAll() {
        ConstantTime.wipe(&bytes)
        bytes.removeAll(keepingCapacity: true)
    }

    /// Removes the first `n` bytes, wiping the vacated tail.
    func dropFirst(_ n: Int) {
        let count = bytes.count
        bytes.withUnsafeMutableBytes { raw in
            var i = n
            while i < count { raw[i - n] = raw[i]; i += 1 }
            ConstantTime.wipe(UnsafeMutableRawBufferPointer(rebasing: raw[(count - n)..<count]))
        }
        bytes.removeLast(n)
    }

    deinit { ConstantTime.wipe(&bytes) }
}

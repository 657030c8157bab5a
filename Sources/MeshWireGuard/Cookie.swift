// MAC1, MAC2 and cookie replies: WireGuard's DoS mitigation (paper section
// 5.4.4 and 5.4.7, kernel cookie.c).
//
//   mac1 = MAC(HASH(LABEL-MAC1 || S_receiver), msg[..<mac1])      always present
//   mac2 = MAC(cookie, msg[..<mac2])                               zero without a cookie
//   cookie = MAC(R_secret, source IP || source port)               R_secret rotates every 2 min
//   reply  = type 3 | receiver | nonce(24) | XAEAD(HASH(LABEL-COOKIE || S_responder), nonce, cookie, mac1)
// MAC is keyed BLAKE2s with a 16-byte output.
import MeshBase
import MeshCrypto

enum MAC {
    static func compute(key: [UInt8], _ data: UnsafeRawBufferPointer) -> [UInt8] {
        var h = BLAKE2s(outputLength: 16, key: key)
        h.update(data)
        return h.finalize()
    }
}

/// Responder side: checks mac1/mac2 of incoming handshake messages and makes cookie replies.
struct CookieChecker {
    enum Verdict: Equatable { case invalidMAC, validMACNoCookie, validMACWithCookie }

    private var secret: [UInt8] = []
    private var secretBirth: Instant?

    /// Checks mac1 (under our static key) and, when `checkCookie`, mac2 for `source`.
    mutating func validate(_ msg: UnsafeRawBufferPointer, mac1Offset: Int, local: LocalStatic,
                           source: Endpoint, checkCookie: Bool, now: Instant) -> Verdict {
        let mac1 = MAC.compute(key: local.mac1Key, UnsafeRawBufferPointer(rebasing: msg[0..<mac1Offset]))
        guard ConstantTime.equal(mac1, Array(msg[mac1Offset..<(mac1Offset + 16)])) else { return .invalidMAC }
        guard checkCookie else { return .validMACNoCookie }
        let cookie = currentCookie(for: source, now: now)
        let mac2Offset = mac1Offset + 16
        let mac2 = MAC.compute(key: cookie, UnsafeRawBufferPointer(rebasing: msg[0..<mac2Offset]))
        return ConstantTime.equal(mac2, Array(msg[mac2Offset..<(mac2Offset + 16)])) ? .validMACWithCookie : .validMACNoCookie
    }

    /// The cookie reply to a message from `source` (its sender index and mac1 given).
    mutating func makeReply(receiverIndex: UInt32, mac1: [UInt8], source: Endpoint, local: LocalStatic,
                            nonce: [UInt8], now: Instant) -> [UInt8] {
        let cookie = currentCookie(for: source, now: now)
        var msg: [UInt8] = [WireGuardProtocol.messageHandshakeCookie, 0, 0, 0]
        msg.appendLE(receiverIndex)
        msg += nonce
        msg += XChaChaPoly.seal(key: local.cookieKey, nonce: nonce, plaintext: cookie, aad: mac1)
        return msg
    }

    private mutating func currentCookie(for source: Endpoint, now: Instant) -> [UInt8] {
        if secretBirth == nil || now - secretBirth! >= WireGuardProtocol.cookieSecretMaxAge {
            secret = SystemRandom.bytes(32)
            secretBirth = now
        }
        return MAC.compute(key: secret, CookieChecker.sourceBytes(source).withUnsafeBytes { UnsafeRawBufferPointer($0) })
    }

    /// IP address bytes then the port in network order (kernel cookie.c).
    static func sourceBytes(_ e: Endpoint) -> [UInt8] {
        var out: [UInt8]
        switch e.address {
        case .v4(let a): out = a.octets
        case .v6(let a): out = a.bytes
        }
        out.append(UInt8(e.port >> 8)); out.append(UInt8(e.port & 0xff))
        return out
    }
}

/// Initiator side, per peer: adds mac1/mac2 to outgoing handshake messages and
/// takes cookies from the peer's cookie replies.
struct CookieGenerator {
    private var cookie: [UInt8]?
    private var cookieBirth: Instant = .zero
    /// mac1 of the last handshake message we sent: the AAD of the reply's cookie.
    private(set) var lastMAC1: [UInt8]?

    /// Fills mac1 and mac2 of `msg` (whose last 32 bytes are the two MACs).
    mutating func addMACs(_ msg: inout [UInt8], remote: RemoteStatic, now: Instant) {
        let mac1Offset = msg.count - 32
        let mac1 = msg.withUnsafeBytes { MAC.compute(key: remote.mac1Key, UnsafeRawBufferPointer(rebasing: $0[0..<mac1Offset])) }
        msg.replaceSubrange(mac1Offset..<(mac1Offset + 16), with: mac1)
        lastMAC1 = mac1
        if let c = cookie, now - cookieBirth < WireGuardProtocol.cookieSecretMaxAge - WireGuardProtocol.cookieSecretLatency {
            let mac2 = msg.withUnsafeBytes { MAC.compute(key: c, UnsafeRawBufferPointer(rebasing: $0[0..<(mac1Offset + 16)])) }
            msg.replaceSubrange((mac1Offset + 16)..<(mac1Offset + 32), with: mac2)
        } else {
            msg.replaceSubrange((mac1Offset + 16)..<(mac1Offset + 32), with: [UInt8](repeating: 0, count: 16))
        }
    }

    /// Decrypts a cookie reply from this peer; false when it does not
    /// authenticate (wrong peer, forged, or not a reply to our last message).
    mutating func consumeReply(_ m: UnsafeRawBufferPointer, remote: RemoteStatic, now: Instant) -> Bool {
        guard let aad = lastMAC1 else { return false }
        typealias L = Layout.Cookie
        guard let c = try? XChaChaPoly.open(key: remote.cookieKey, nonce: m.array(L.nonce..<L.encryptedCookie),
                                            ciphertext: m.array(L.encryptedCookie..<WireGuardProtocol.cookieReplySize), aad: aad)
        else { return false }
        cookie = c
        cookieBirth = now
        return true
    }
}

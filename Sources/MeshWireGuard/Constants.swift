// Every WireGuard protocol constant in one place, named as in the
// specification (WireGuard paper section 6, the kernel's messages.h) with
// derivations written down. Implementation limits, which are ours to choose,
// are kept apart at the bottom.

public enum WireGuardProtocol {
    // MARK: Noise construction (paper section 5.4)
    /// CONSTRUCTION, hashed into the initial chaining key Ci.
    public static let construction = Array("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s".utf8)
    /// IDENTIFIER, hashed with Ci into the initial hash Hi.
    public static let identifier = Array("WireGuard v1 zx2c4 Jason@zx2c4.com".utf8)
    /// LABEL-MAC1 and LABEL-COOKIE: prefixes of the mac1 and cookie keys.
    public static let labelMAC1 = Array("mac1----".utf8)
    public static let labelCookie = Array("cookie--".utf8)

    // MARK: Message types and sizes (paper section 5.4, messages.h)
    public static let messageHandshakeInitiation: UInt8 = 1
    public static let messageHandshakeResponse: UInt8 = 2
    public static let messageHandshakeCookie: UInt8 = 3
    public static let messageTransportData: UInt8 = 4
    /// 4 type+reserved, 4 sender, 32 ephemeral, 32+16 static, 12+16 timestamp, 16 mac1, 16 mac2.
    public static let initiationSize = 148
    /// 4 type+reserved, 4 sender, 4 receiver, 32 ephemeral, 0+16 empty, 16 mac1, 16 mac2.
    public static let responseSize = 92
    /// 4 type+reserved, 4 receiver, 24 nonce, 16+16 cookie.
    public static let cookieReplySize = 64
    /// 4 type+reserved, 4 receiver, 8 counter.
    public static let transportHeaderSize = 16
    /// A transport message always carries at least the Poly1305 tag.
    public static let transportMinimumSize = transportHeaderSize + 16
    /// Plaintext is zero-padded to a multiple of this (paper section 5.4.6).
    public static let paddingMultiple = 16

    // MARK: Timers and limits (paper section 6.1, messages.h)
    /// After this many messages a new handshake is initiated (2^60).
    public static let rekeyAfterMessages: UInt64 = 1 << 60
    /// Anti-replay window: COUNTER_BITS_TOTAL (8192) minus the 64 redundant
    /// bits of the ring's current word = 8128 (kernel messages.h, RFC 6479).
    public static let counterWindowSize = 8192 - 64
    /// A keypair is never used past this counter. The kernel's definition,
    /// U64_MAX - COUNTER_WINDOW_SIZE - 1, keeps the window below 2^64 (the
    /// paper rounds the window to 2^13: 2^64 - 2^13 - 1).
    public static let rejectAfterMessages: UInt64 = UInt64.max - UInt64(counterWindowSize) - 1
    /// The initiator of a session starts a new handshake after this long.
    public static let rekeyAfterTime: Duration = .seconds(120)
    /// No keypair is used for sending or receiving after this long.
    public static let rejectAfterTime: Duration = .seconds(180)
    /// Give up retrying a handshake after this long.
    public static let rekeyAttemptTime: Duration = .seconds(90)
    /// Retransmit a handshake initiation after this long (plus jitter).
    public static let rekeyTimeout: Duration = .seconds(5)
    /// Send a keepalive when data was received and nothing sent for this long.
    public static let keepaliveTimeout: Duration = .seconds(10)
    /// Handshake retries before giving up: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT = 90 / 5 = 18.
    public static let maxTimerHandshakes = 18
    /// Random extra delay added to handshake timers, up to a third of a second (kernel timers.c).
    public static let rekeyTimeoutJitterMax: Duration = .milliseconds(333)
    /// The responder's cookie secret is replaced after this long (paper section 5.4.7).
    public static let cookieSecretMaxAge: Duration = .seconds(120)
    /// A received cookie is used for mac2 only while younger than
    /// COOKIE_SECRET_MAX_AGE - COOKIE_SECRET_LATENCY = 120 - 5 s.
    public static let cookieSecretLatency: Duration = .seconds(5)
    /// At most this many handshake initiations per second are accepted from one
    /// peer (a timestamp flood check: 1 s / 50 = 20 ms apart).
    public static let initiationsPerSecond = 50
    /// TAI64N timestamps are rounded down to this many nanoseconds: the largest
    /// power of two <= 1e9 / INITIATIONS_PER_SECOND (= 2^24 = 16,777,216 ns),
    /// so precise clocks do not leak (kernel noise.c tai64n_now).
    public static let timestampGranularityNanoseconds: Int64 = 1 << 24
    /// TAI64 label: 2^62, plus the 10 s TAI-UTC offset of 1970 (cr.yp.to/libtai/tai64.html).
    public static let tai64Base: UInt64 = 0x4000_0000_0000_000a

    // MARK: Implementation limits (ours; chosen like the kernel's)
    /// Packets queued per peer while a handshake is under way (kernel MAX_STAGED_PACKETS).
    public static let maxStagedPackets = 128
    /// Handshake rate limit per source address while under load (kernel ratelimiter.c).
    public static let ratelimitPacketsPerSecond = 20
    public static let ratelimitBurst = 5
    /// Handshake messages per second above which the device is "under load"
    /// and demands cookies (mac2). wireguard-go switches at a queue of 512.
    public static let underLoadHandshakesPerSecond = 512
    /// Once under load, stay so for this long (wireguard-go UnderLoadAfterTime).
    public static let underLoadAfterTime: Duration = .seconds(1)
}

// libsodium at the edge: initialisation, random bytes, constant-time compare
// and wiping. Every other file in this module calls libsodium only after
// `Sodium.ready` has been touched.
import CSodium

public enum Sodium {
    /// True once `sodium_init()` has succeeded. Swift runs a static `let`
    /// initialiser exactly once, thread-safely, which is what libsodium asks for.
    public static let ready: Bool = sodium_init() >= 0

    @inline(__always) static func ensure() {
        // sodium_init() fails only when /dev/urandom cannot be opened; nothing
        // cryptographic can work then, so stop rather than go on insecurely.
        if !ready { fatalError("libsodium could not be initialised (no system randomness)") }
    }
}

/// Cryptographically secure random bytes from the operating system.
public enum SystemRandom {
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        Sodium.ensure()
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        randombytes_buf(base, buffer.count)
    }

    public static func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { fill($0) }
        return out
    }

    /// A uniformly random integer in 0..<upperBound (upperBound > 0).
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        Sodium.ensure()
        return randombytes_uniform(upperBound)
    }
}

/// Constant-time helpers for secret data.
public enum ConstantTime {
    /// True when the buffers are equal; the time taken depends only on the
    /// length, never on where they differ. Buffers of different lengths are unequal.
    public static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        Sodium.ensure()
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        return sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
    }

    public static func equal<A: ContiguousBytes, B: ContiguousBytes>(_ a: A, _ b: B) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { y in equal(x, y) } }
    }

    /// True when every byte is zero, in constant time.
    public static func isZero(_ a: UnsafeRawBufferPointer) -> Bool {
        Sodium.ensure()
        guard let base = a.baseAddress, a.count > 0 else { return true }
        return sodium_is_zero(base.assumingMemoryBound(to: UInt8.self), a.count) == 1
    }

    /// Overwrites memory with zeros in a way the compiler may not elide.
    public static func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }

    /// Wipes an array's storage in place.
    public static func wipe(_ array: inout [UInt8]) {
        array.withUnsafeMutableBytes { wipe($0) }
    }
}

/// Types whose raw bytes can be borrowed (arrays, SecretBytes, Bytes32...).
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}
extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}

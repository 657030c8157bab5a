// SecretBytes: key material that is wiped when released.
import MeshBase

/// A fixed-size buffer of secret bytes, zeroed (sodium_memzero) when the last
/// reference goes away. Immutable after creation, so it is safe to share
/// between threads. Its description never shows the bytes.
public final class SecretBytes: @unchecked Sendable, ContiguousBytes, CustomStringConvertible {
    private let storage: UnsafeMutableRawBufferPointer

    public var count: Int { storage.count }

    /// A buffer of `count` bytes filled in by `initializer`. If `initializer`
    /// throws, the partial contents are wiped before the error propagates.
    public init(count: Int, _ initializer: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        do {
            try initializer(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<count]))
        } catch {
            ConstantTime.wipe(buffer)
            buffer.deallocate()
            throw error
        }
        storage = buffer
        countValue = count
    }

    private let countValue: Int

    /// A copy of `bytes` (the caller should wipe its own copy if it matters).
    public convenience init<C: Collection>(copying bytes: C) where C.Element == UInt8 {
        self.init(count: bytes.count) { dst in
            var i = 0
            for b in bytes { dst[i] = b; i += 1 }
        }
    }

    /// Fresh random bytes from the system generator.
    public static func random(count: Int) -> SecretBytes {
        SecretBytes(count: count) { SystemRandom.fill($0) }
    }

    deinit {
        ConstantTime.wipe(storage)
        storage.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<countValue]))
    }

    /// Constant-time equality of the contents.
    public func constantTimeEquals(_ other: SecretBytes) -> Bool { ConstantTime.equal(self, other) }

    /// A copy of the bytes as an array: for handing to file writers only. The
    /// caller must wipe it (`ConstantTime.wipe`) when done.
    public func unsafeExportedBytes() -> [UInt8] { withUnsafeBytes { Array($0) } }

    public var description: String { "SecretBytes(\(countValue) bytes, redacted)" }
}

extension Bytes32: ContiguousBytes {}

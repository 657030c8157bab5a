// Files: the one place that reads and writes the configuration directory.
//
// Writes are atomic: the bytes go to a fresh temporary file in the same
// directory (O_EXCL, final mode set before any byte is written), which is
// fsync'ed and renamed over the target, and the directory is fsync'ed. A crash
// leaves either the old file or the new one, never a half-written one; the
// temporary file is removed on every error path.
#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// A failed file operation, with the path, as one line: `cannot read X: reason`.
public struct FileError: Error, Equatable, CustomStringConvertible {
    public let operation: String
    public let path: String
    public let errno: Errno?
    public let detail: String?

    /// When set, the whole message (for errors that are not "cannot X").
    public let message: String?

    public init(_ operation: String, _ path: String, errno: Errno? = nil, detail: String? = nil, message: String? = nil) {
        self.operation = operation; self.path = path; self.errno = errno; self.detail = detail; self.message = message
    }

    /// A secret file that group or others may read.
    public static func insecure(_ path: String, mode: UInt32) -> FileError {
        FileError("read", path, detail: "insecure permissions",
                  message: "\(path) is readable by group or others (mode \(String(mode, radix: 8).leftPadded(4))); fix with: chmod 600 \(path)")
    }

    public var description: String {
        message ?? ("cannot \(operation) \(path): " + (detail ?? errno.map { $0.description } ?? "failed"))
    }

    public var isNotFound: Bool { errno == .noSuchFileOrDirectory }
}

/// Calls `body` until it does not fail with EINTR; returns its result or throws the errno.
@discardableResult
func retryingOnInterrupt(_ body: () -> CInt) throws(Errno) -> CInt {
    while true {
        let rc = body()
        if rc != -1 { return rc }
        let e = Errno(rawValue: Glibc.errno)
        if e != .interrupted { throw e }
    }
}

public enum Files {
    /// Files larger than this are refused when read: config files are small,
    /// and a huge one is a mistake or an attack.
    public static let defaultReadLimit = 1 << 20

    /// What `stat` says about a path, without following a final symlink.
    public struct Info: Sendable, Equatable {
        public let isRegular: Bool
        public let isDirectory: Bool
        public let isSymlink: Bool
        public let permissions: UInt32   // the low 12 bits of st_mode
        public let owner: UInt32
    }

    public static func info(_ path: String) throws(FileError) -> Info? {
        var st = stat()
        if lstat(path, &st) != 0 {
            let e = Errno(rawValue: Glibc.errno)
            if e == .noSuchFileOrDirectory || e == .notDirectory { return nil }
            throw FileError("inspect", path, errno: e)
        }
        let type = st.st_mode & S_IFMT
        return Info(isRegular: type == S_IFREG, isDirectory: type == S_IFDIR, isSymlink: type == S_IFLNK,
                    permissions: UInt32(st.st_mode & 0o7777), owner: st.st_uid)
    }

    public static func exists(_ path: String) throws(FileError) -> Bool { try info(path) != nil }

    /// The whole contents of a regular file (symlinks are followed). With
    /// `secret`, the file (as opened, so no race) must not be readable or
    /// writable by group or others.
    /// With `trusted`, the file (as opened) must not be writable by group or
    /// others: it decides who is trusted (authorized_keys/), as ssh's StrictModes.
    public static func read(_ path: String, limit: Int = defaultReadLimit, secret: Bool = false, trusted: Bool = false) throws(FileError) -> [UInt8] {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        } catch {
            throw FileError("read", path, errno: error as? Errno)
        }
        defer { try? fd.close() }
        var st = stat()
        guard fstat(fd.rawValue, &st) == 0 else { throw FileError("read", path, errno: Errno(rawValue: Glibc.errno)) }
        if st.st_mode & S_IFMT == S_IFDIR { throw FileError("read", path, errno: .isDirectory) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw FileError("read", path, detail: "not a regular file") }
        if secret && st.st_mode & 0o077 != 0 { throw FileError.insecure(path, mode: UInt32(st.st_mode & 0o7777)) }
        if trusted && st.st_mode & 0o022 != 0 {
            throw FileError("read", path, detail: "writable by group or others (mode \(String(UInt32(st.st_mode & 0o7777), radix: 8))): fix with chmod go-w")
        }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n: Int
            do {
                n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) }
            } catch {
                throw FileError("read", path, errno: error as? Errno)
            }
            if n == 0 { break }
            out.append(contentsOf: chunk[0..<n])
            if out.count > limit { throw FileError("read", path, detail: "file is larger than \(limit) bytes") }
        }
        return out
    }

    /// Reads a file as UTF-8 text.
    public static func readText(_ path: String, limit: Int = defaultReadLimit, trusted: Bool = false) throws(FileError) -> String {
        let bytes = try read(path, limit: limit, trusted: trusted)
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw FileError("read", path, detail: "not UTF-8 text")
        }
        return s
    }

    /// Temporary files of `base` left by a writer that was killed before its
    /// rename (the suffix carries the writer's pid): removed, so a crash leaves
    /// nothing half-written behind for long. A live writer's are kept.
    static func removeStaleTemporaries(dir: String, base: String) {
        let prefix = "." + base + ".tmp-"
        guard let names = try? list(dir == "" ? "." : dir) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let suffix = UInt64(name.dropFirst(prefix.count), radix: 16) else { continue }
            let pid = pid_t(truncatingIfNeeded: suffix >> 32)
            guard pid > 0, pid != getpid(), kill(pid, 0) == -1, Glibc.errno == ESRCH else { continue }
            unlink((dir == "" ? "" : dir + "/") + name)
        }
    }

    /// Replaces (or creates) `path` with `contents` atomically, with `mode`.
    public static func writeAtomically(_ path: String, contents: [UInt8], mode: UInt32 = 0o600) throws(FileError) {
        let (dir, base) = split(path)
        removeStaleTemporaries(dir: dir, base: base)
        var suffix = UInt64(getpid()) << 32 | UInt64(UInt32.random(in: 0...UInt32.max))
        var tmp = ""
        var fd: CInt = -1
        for _ in 0..<16 {
            tmp = (dir == "" ? "" : dir + "/") + "." + base + ".tmp-" + String(suffix, radix: 16)
            fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
            if fd >= 0 || Glibc.errno != EEXIST { break }
            suffix &+= 1
        }
        guard fd >= 0 else { throw FileError("write", path, errno: Errno(rawValue: Glibc.errno)) }
        var ok = false
        defer {
            if fd >= 0 { close(fd) }
            if !ok { unlink(tmp) }
        }
        do {
            // open() applied the umask; set the exact mode before any byte lands.
            try retryingOnInterrupt { fchmod(fd, mode_t(mode)) }
            let failure = contents.withUnsafeBytes { writeAll(fd, $0) }
            if let failure { throw failure }
            try retryingOnInterrupt { fsync(fd) }
            let rc = close(fd)
            fd = -1
            if rc != 0 { throw Errno(rawValue: Glibc.errno) }
            try retryingOnInterrupt { rename(tmp, path) }
        } catch {
            throw FileError("write", path, errno: error as? Errno)
        }
        ok = true
        // Make the rename durable. A failure here leaves the new file in place.
        let dfd = open(dir == "" ? "." : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Writes every byte of `buf` to `fd`; nil on success, else the errno.
    static func writeAll(_ fd: CInt, _ buf: UnsafeRawBufferPointer) -> Errno? {
        var written = 0
        while written < buf.count {
            let n = write(fd, buf.baseAddress! + written, buf.count - written)
            if n < 0 {
                let e = Errno(rawValue: Glibc.errno)
                if e == .interrupted { continue }
                return e
            }
            written += n
        }
        return nil
    }

    /// Creates a directory and any missing parents with `mode`. An existing
    /// directory is accepted as it is; an existing non-directory is an error.
    public static func createDirectory(_ path: String, mode: UInt32 = 0o755) throws(FileError) {
        if let i = try info(path) {
            if i.isDirectory { return }
            if i.isSymlink, let t = try? statFollowing(path), t { return }
            throw FileError("create directory", path, errno: .fileExists)
        }
        let (parent, _) = split(path)
        if parent != "" && parent != path { try createDirectory(parent, mode: mode) }
        if mkdir(path, mode_t(mode)) != 0 {
            let e = Errno(rawValue: Glibc.errno)
            if e == .fileExists, (try? statFollowing(path)) == true { return }
            throw FileError("create directory", path, errno: e)
        }
    }

    private static func statFollowing(_ path: String) throws -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return st.st_mode & S_IFMT == S_IFDIR
    }

    /// The names in a directory (without "." and ".."), sorted.
    public static func list(_ path: String) throws(FileError) -> [String] {
        guard let d = opendir(path) else { throw FileError("list", path, errno: Errno(rawValue: Glibc.errno)) }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes a file; a missing file is an error (the caller decided it was there).
    public static func remove(_ path: String) throws(FileError) {
        if unlink(path) != 0 { throw FileError("remove", path, errno: Errno(rawValue: Glibc.errno)) }
    }

    /// (directory, last component) of a path; directory is "" for a bare name.
    static func split(_ path: String) -> (String, String) {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return ("", String(p)) }
        let dir = slash == p.startIndex ? "/" : String(p[..<slash])
        return (dir, String(p[p.index(after: slash)...]))
    }

    /// `dir/name`.
    public static func join(_ dir: String, _ name: String) -> String {
        dir.hasSuffix("/") ? dir + name : dir + "/" + name
    }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

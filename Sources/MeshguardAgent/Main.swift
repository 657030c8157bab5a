// meshguard-agent: entry point. Parses the command line with
// swift-argument-parser and turns every failure into exactly one line on
// stderr and a non-zero exit (64 for usage errors, 1 for everything else).
import ArgumentParser
import MeshCore
import MeshLinux
#if canImport(Glibc)
import Glibc
#endif

@main
enum Main {
    static func main() {
        do {
            var command = try MeshguardAgentCommand.parseAsRoot()
            try command.run()
        } catch {
            exit(report(error))
        }
    }

    /// Prints help/version to stdout, or an error as one line to stderr; returns the exit code.
    static func report(_ error: Error) -> Int32 {
        let code = MeshguardAgentCommand.exitCode(for: error)
        if code == .success {
            print(MeshguardAgentCommand.fullMessage(for: error))
            return 0
        }
        var message: String
        if let e = error as? CLIError {
            message = e.message
        } else {
            message = MeshguardAgentCommand.message(for: error)
        }
        // ArgumentParser messages may span lines (usage follows); keep the first.
        message = String(message.split(separator: "\n", omittingEmptySubsequences: true).first ?? "failed")
        if message.hasPrefix("Error: ") { message.removeFirst(7) }
        Terminal.printError("meshguard-agent: error: \(message)")
        return code.rawValue
    }
}

/// A failure the user can act on, already phrased as one line.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    init(_ error: any Error) { self.message = "\(error)" }
    var description: String { message }
}

enum Terminal {
    static func printError(_ line: String) {
        var s = line
        if !s.hasSuffix("\n") { s += "\n" }
        // write(2) on fd 2: the C `stderr` global is not concurrency-safe in Swift 6.
        var bytes = Array(s.utf8)[...]
        while !bytes.isEmpty {
            let n = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            bytes = bytes.dropFirst(n)
        }
    }

    static func warn(_ line: String, _ fields: KeyValuePairs<String, String> = [:]) { Log.emit(.warning, line, fields) }
    static func info(_ line: String, _ fields: KeyValuePairs<String, String> = [:]) { Log.emit(.info, line, fields) }
}

/// The daemon's log on stderr: text for people (with syslog priority
/// prefixes when stderr is the journal, so journald keeps the levels), or one
/// JSON object per line (`--log-format json`). Keys appear abbreviated and
/// secrets never (callers pass only public, abbreviated values).
enum Log {
    enum Level: String, CaseIterable, Comparable, ExpressibleByArgument {
        case debug, info, warning, error
        var priority: Int { switch self { case .debug: 7; case .info: 6; case .warning: 4; case .error: 3 } }
        static func < (a: Level, b: Level) -> Bool { a.priority > b.priority }
    }
    enum Format: String, CaseIterable, ExpressibleByArgument { case text, json }

    // Set once by `up` before any other thread starts, read afterwards.
    nonisolated(unsafe) static var level: Level = .info
    nonisolated(unsafe) static var format: Format = .text
    nonisolated(unsafe) static var journal = Log.stderrIsJournal()

    static func emit(_ level: Level, _ message: String, _ fields: KeyValuePairs<String, String>) {
        emit(level, message, pairs: fields.map { ($0.key, $0.value) })
    }

    static func emit(_ level: Level, _ message: String, pairs fields: [(String, String)]) {
        guard level >= Log.level else { return }
        switch format {
        case .json:
            let now = WallClock.now()
            var line = "{\"time\":\"\(Log.timestamp(seconds: Int(now.seconds), milliseconds: Int(now.nanoseconds / 1_000_000)))\",\"level\":\"\(level.rawValue)\","
            line += "\"message\":\(JSONWriter.quote(message))"
            for (k, v) in fields { line += ",\(JSONWriter.quote(k)):\(JSONWriter.quote(v))" }
            Terminal.printError(line + "}")
        case .text:
            let tail = fields.map { " \($0.0)=\($0.1.contains(" ") ? JSONWriter.quote($0.1) : $0.1)" }.joined()
            if journal {
                Terminal.printError("<\(level.priority)>\(message)\(tail)")
            } else {
                Terminal.printError("meshguard-agent: \(level >= .warning ? level.rawValue + ": " : "")\(message)\(tail)")
            }
        }
    }

    /// RFC 3339 UTC with milliseconds.
    static func timestamp(seconds: Int, milliseconds: Int) -> String {
        var t = time_t(seconds)
        var tm = tm()
        gmtime_r(&t, &tm)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        let ms = milliseconds < 10 ? "00\(milliseconds)" : milliseconds < 100 ? "0\(milliseconds)" : "\(milliseconds)"
        return "\(tm.tm_year + 1900)-\(two(tm.tm_mon + 1))-\(two(tm.tm_mday))T\(two(tm.tm_hour)):\(two(tm.tm_min)):\(two(tm.tm_sec)).\(ms)Z"
    }

    /// systemd sets JOURNAL_STREAM to "device:inode" of the stream stderr is connected to.
    static func stderrIsJournal() -> Bool {
        guard let v = getenv("JOURNAL_STREAM") else { return false }
        let parts = String(cString: v).split(separator: ":")
        guard parts.count == 2, let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        var st = stat()
        guard fstat(2, &st) == 0 else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }
}

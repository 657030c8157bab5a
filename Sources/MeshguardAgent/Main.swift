// meshguard-agent: entry point. Parses the command line with
// swift-argument-parser and turns every failure into exactly one line on
// stderr and a non-zero exit (64 for usage errors, 1 for everything else).
import ArgumentParser
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

    static func warn(_ line: String) { printError("meshguard-agent: warning: \(line)") }
    static func info(_ line: String) { printError("meshguard-agent: \(line)") }
}

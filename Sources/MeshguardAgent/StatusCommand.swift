// `meshguard-agent status | peers | down`: ask the running agent over its
// control socket, <runtime-dir>/control.sock (runtime dir: /run/meshguard,
// $MESHGUARD_RUNTIME_DIR, or --runtime-dir). The socket belongs to root and
// the agent's admin group; anyone else gets a permission error at once.
// Requests and answers: docs/control.md.
import ArgumentParser
import MeshLinux
import MeshSystem
#if canImport(Glibc)
import Glibc
#endif

struct RuntimeOptions: ParsableArguments {
    @Option(name: .customLong("runtime-dir"), help: ArgumentHelp("Runtime directory (default /run/meshguard).", valueName: "dir"))
    var runtimeDir: String?

    var path: String { runtimeDir ?? environmentPath ?? "/run/meshguard" }

    /// $MESHGUARD_RUNTIME_DIR when set and not empty.
    var environmentPath: String? {
        if let e = getenv("MESHGUARD_RUNTIME_DIR"), e.pointee != 0 { return String(cString: e) }
        return nil
    }

    var controlSocket: String { Files.join(path, "control.sock") }

    /// Sends one request to the agent and prints its answer.
    func ask(_ request: String) throws {
        do {
            print(try UnixControlClient.request(request, path: controlSocket), terminator: "")
        } catch {
            throw CLIError("\(error)")
        }
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the running agent is doing: mode (and why), interface, keys, addresses, members and peers.",
        discussion: "Per member: name, state, endpoint, path, latest handshake and transfer. --json prints the same as JSON (schema: docs/control.md).")
    @OptionGroup var runtime: RuntimeOptions
    @Flag(help: "Print JSON (schema 1, docs/control.md).") var json = false

    func run() throws { try runtime.ask(json ? "status json" : "status") }
}

struct Peers: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the running agent's WireGuard peers: endpoint, mesh address, latest handshake, transfer.")
    @OptionGroup var runtime: RuntimeOptions

    func run() throws { try runtime.ask("peers") }
}

struct Down: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop the running agent: it leaves the mesh gracefully and removes its interface.")
    @OptionGroup var runtime: RuntimeOptions

    func run() throws { try runtime.ask("down") }
}

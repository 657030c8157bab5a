// `meshguard-agent status`: what the running agent is doing. Until the
// control socket arrives (issue 6), `up` writes its status atomically to
// <runtime-dir>/<interface>.status whenever it changes, and this command
// prints it. The runtime directory is /run/meshguard, or
// $MESHGUARD_RUNTIME_DIR, or --runtime-dir.
import ArgumentParser
import MeshSystem
#if canImport(Glibc)
import Glibc
#endif

struct RuntimeOptions: ParsableArguments {
    @Option(name: .customLong("runtime-dir"), help: ArgumentHelp("Runtime directory (default /run/meshguard).", valueName: "dir"))
    var runtimeDir: String?

    var path: String {
        if let r = runtimeDir { return r }
        if let e = getenv("MESHGUARD_RUNTIME_DIR"), e.pointee != 0 { return String(cString: e) }
        return "/run/meshguard"
    }

    func statusFile(_ interface: String) -> String { Files.join(path, interface + ".status") }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the running agent's data plane mode (and why), interface and peers.")
    @OptionGroup var runtime: RuntimeOptions
    @Option(name: .customLong("interface"), help: "Interface name.") var interfaceName = "mg0"

    func run() throws {
        let file = runtime.statusFile(interfaceName)
        do {
            print(try Files.readText(file), terminator: "")
        } catch let e where e.isNotFound {
            throw CLIError("no agent is running on \(interfaceName) (no \(file)); start one with: meshguard-agent up")
        } catch {
            throw CLIError(error)
        }
    }
}

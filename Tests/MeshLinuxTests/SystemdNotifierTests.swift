// SystemdNotifier: the NOTIFY_SOCKET forms systemd uses, the watchdog period,
// and datagrams as a real AF_UNIX listener receives them.
import Testing
#if canImport(Glibc)
import Glibc
#endif
import MeshBase
@testable import MeshLinux

@Suite struct SystemdNotifierTests {
    @Test func noNotifySocketMeansNoNotifier() {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": ""]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]) == nil)
    }

    @Test func addressForms() throws {
        let (path, pathLength) = try #require(SystemdNotifier.address("/run/systemd/notify"))
        #expect(Int(pathLength) == MemoryLayout<sa_family_t>.size + 19 + 1)
        #expect(withUnsafeBytes(of: path.sun_path) { Array($0.prefix(19)) } == Array("/run/systemd/notify".utf8))
        let (abstract, abstractLength) = try #require(SystemdNotifier.address("@sd-notify"))
        #expect(Int(abstractLength) == MemoryLayout<sa_family_t>.size + 10)
        #expect(withUnsafeBytes(of: abstract.sun_path) { Array($0.prefix(10)) } == [0] + Array("sd-notify".utf8))
    }

    @Test func watchdogIsHalfTheRequestedPeriodForThisProcessOnly() {
        #expect(SystemdNotifier.watchdogInterval(["WATCHDOG_USEC": "30000000"]) == .seconds(15))
        #expect(SystemdNotifier.watchdogInterval(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(getpid())"]) == .seconds(15))
        #expect(SystemdNotifier.watchdogInterval(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(getpid() + 1)"]) == nil)
        #expect(SystemdNotifier.watchdogInterval(["WATCHDOG_USEC": "0"]) == nil)
        #expect(SystemdNotifier.watchdogInterval(["WATCHDOG_USEC": "soon"]) == nil)
        #expect(SystemdNotifier.watchdogInterval([:]) == nil)
    }

    @Test func messagesAreOneAssignmentPerLine() {
        #expect(SystemdNotifier.message([("READY", "1"), ("STATUS", "mg0 up\nand running")]) == Array("READY=1\nSTATUS=mg0 up and running".utf8))
    }

    /// What a listener on the notify socket receives, for a path and an abstract address.
    @Test(arguments: [false, true])
    func datagramsReachTheListener(abstract: Bool) throws {
        let name = "/tmp/mg-notify-test-\(getpid())-\(abstract)"
        unlink(name)
        let listener = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #expect(listener >= 0)
        defer { close(listener); unlink(name) }
        let given = abstract ? "@" + name.dropFirst() : name
        let (addr, length) = try #require(SystemdNotifier.address(String(given)))
        var a = addr
        let bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        #expect(bound == 0)
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": String(given), "WATCHDOG_USEC": "2000000"]))
        #expect(notifier.watchdogInterval == .seconds(1))
        notifier.ready(status: "mg0 userspace: 2 peer(s)")
        notifier.watchdog()
        notifier.reloading(now: Instant(nanoseconds: 5_000_000_000))
        notifier.stopping()
        var got: [String] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        for _ in 0..<4 {
            let n = buffer.withUnsafeMutableBytes { recv(listener, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            #expect(n > 0)
            if n > 0 { got.append(String(decoding: buffer[0..<n], as: UTF8.self)) }
        }
        #expect(got == ["READY=1\nSTATUS=mg0 userspace: 2 peer(s)", "WATCHDOG=1", "RELOADING=1\nMONOTONIC_USEC=5000000", "STOPPING=1"])
    }
}

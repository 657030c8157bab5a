import Testing
import Foundation
@testable import MeshLinux

@Suite struct FileWatcherTests {
    @Test func directoryChangesWakeThePoller() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mg-watch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let w = try DirectoryWatcher()
        #expect(w.watch(dir))
        #expect(!w.watch(dir + "/missing"))
        let poller = Poller([w.fileDescriptor])
        #expect(try poller.wait(timeout: .zero) == 0)
        #expect(!w.drain())
        try "key\n".write(toFile: dir + "/a.pub", atomically: false, encoding: .utf8)
        #expect(try poller.wait(timeout: .seconds(5)) == 1)
        #expect(w.drain())
        try FileManager.default.removeItem(atPath: dir + "/a.pub")
        #expect(try poller.wait(timeout: .seconds(5)) == 1)
        #expect(w.drain())
    }
}

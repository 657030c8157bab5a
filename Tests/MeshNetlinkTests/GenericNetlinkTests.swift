import Testing
@testable import MeshNetlink

@Suite struct GenericNetlinkTests {
    // The generic netlink controller is always registered, with the fixed id GENL_ID_CTRL (16).
    @Test func resolvesTheController() throws {
        let sock = try GenericNetlinkSocket()
        #expect(try sock.familyID("nlctrl") == 16)
    }

    @Test func unknownFamilyIsNil() throws {
        let sock = try GenericNetlinkSocket()
        #expect(try sock.familyID("no-such-family-xyz") == nil)
        #expect(GenericNetlinkSocket.wireGuardFamily == "wireguard")
    }

    @Test func errorsReadAsLibnlText() {
        let e = NetlinkError(code: -12, operation: "resolve")
        #expect(e.isNotFound)
        #expect(e.description == "resolve: Object not found")
    }
}

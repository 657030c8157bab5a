// Name resolution for seeds: getaddrinfo(3) for A/AAAA, res_query(3) for the
// SRV and TXT records of a seed domain. Blocking calls: run them off the
// packet threads (at start, and on the periodic re-join).
#if canImport(Glibc)
import Glibc
#endif
import CLinuxShims
import MeshBase

public enum Resolver {
    /// The IPv4 and IPv6 addresses of `host` as endpoints with `port` (empty when it does not resolve).
    public static func endpoints(host: String, port: UInt16) -> [Endpoint] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var out: [Endpoint] = []
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let a = p {
            if let sa = a.pointee.ai_addr {
                if a.pointee.ai_family == AF_INET {
                    let sin = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in.self)
                    out.append(Endpoint(.v4(IPv4Address(UInt32(bigEndian: sin.sin_addr.s_addr))), port: port))
                } else if a.pointee.ai_family == AF_INET6 {
                    let sin6 = UnsafeRawPointer(sa).loadUnaligned(as: sockaddr_in6.self)
                    let bytes = withUnsafeBytes(of: sin6.sin6_addr) { Array($0) }
                    if let v6 = IPv6Address(bytes: bytes) { out.append(Endpoint(IPAddress.v6(v6).unmapped, port: port)) }
                }
            }
            p = a.pointee.ai_next
        }
        var seen = Set<Endpoint>()
        return out.filter { seen.insert($0).inserted }
    }

    /// The raw DNS answer for `name` and record `type` (MG_DNS_TYPE_SRV / _TXT), nil when there is none.
    public static func query(_ name: String, type: Int32) -> [UInt8]? {
        var answer = [UInt8](repeating: 0, count: 65535)
        let n = answer.withUnsafeMutableBufferPointer { mg_res_query(name, type, $0.baseAddress, Int32($0.count)) }
        guard n > 0 else { return nil }
        return Array(answer.prefix(Int(n)))
    }

    public static let typeSRV = Int32(MG_DNS_TYPE_SRV)
    public static let typeTXT = Int32(MG_DNS_TYPE_TXT)
}

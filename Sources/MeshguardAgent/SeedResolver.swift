// Turns seeds (flags, the seeds file, DNS) into endpoints to contact.
import MeshBase
import MeshCore
import MeshLinux
import MeshProtocol

enum SeedResolver {
    /// Every endpoint the seeds name, in order, without duplicates. Names that
    /// do not resolve are reported through `warn` and skipped.
    static func resolve(_ seeds: [Seed], warn: (String) -> Void) -> [Endpoint] {
        var out: [Endpoint] = []
        func add(_ es: [Endpoint]) { for e in es where !out.contains(e) { out.append(e) } }
        for seed in seeds {
            switch seed {
            case .endpoint(let e):
                add([e])
            case .host(let h, let port):
                let es = Resolver.endpoints(host: h, port: port)
                if es.isEmpty { warn("seed \(seed) does not resolve") }
                add(es)
            case .dns(let domain):
                let name = Seed.serviceName(domain)
                var found: [Endpoint] = []
                if let answer = Resolver.query(name, type: Resolver.typeSRV), let srv = try? DNSMessage.srvRecords(answer) {
                    for r in srv { found += Resolver.endpoints(host: r.target, port: r.port) }
                }
                if let answer = Resolver.query(name, type: Resolver.typeTXT), let txt = try? DNSMessage.txtStrings(answer) {
                    for s in Seed.fromTXT(txt) { found += resolve([s], warn: warn) }
                }
                if found.isEmpty { warn("no seeds found in DNS at \(name) (SRV or TXT)") }
                add(found)
            }
        }
        return out
    }
}

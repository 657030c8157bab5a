// The SWIM packet codec: MeshSWIM.SWIMPacket <-> the bytes of an envelope's
// payload (kind .swim), in the layout documented in Sources/MeshSWIM/Messages.swift
// and docs/wire-protocol.md. Strict: lengths checked, enums validated,
// nothing trailing. The envelope authenticates the sender; `decode` requires
// the packet's sender to be the envelope's.
import MeshBase
import MeshSWIM

public enum SWIMCodec {
    enum MessageType: UInt8 { case ping = 1, ack, nack, pingReq, gossip, pushPull }
    enum UpdateKind: UInt8 { case alive = 1, suspect, dead, left }
    /// Largest metadata blob (a member record with 16 IPv6 endpoints is about 430 bytes).
    public static let maxMetadata = 1024

    public static func encode(_ p: SWIMPacket) -> [UInt8] {
        var w = ByteWriter()
        switch p.message {
        case .ping: w.u8(MessageType.ping.rawValue)
        case .ack: w.u8(MessageType.ack.rawValue)
        case .nack: w.u8(MessageType.nack.rawValue)
        case .pingReq: w.u8(MessageType.pingReq.rawValue)
        case .gossip: w.u8(MessageType.gossip.rawValue)
        case .pushPull: w.u8(MessageType.pushPull.rawValue)
        }
        w.key(p.sender)
        switch p.message {
        case let .ping(seq, target): w.u32(seq); w.key(target)
        case let .ack(seq), let .nack(seq): w.u32(seq)
        case let .pingReq(seq, target, endpoint, wantNack):
            w.u32(seq); w.key(target); w.endpoint(endpoint); w.u8(wantNack ? 1 : 0)
        case .gossip: break
        case .pushPull(let pp):
            w.u32(pp.exchange)
            w.u8((pp.isReply ? 1 : 0) | (pp.isJoin ? 2 : 0))
            w.u16(pp.part); w.u16(pp.parts); w.u16(UInt16(pp.entries.count))
            for e in pp.entries {
                w.key(e.member); w.u8(e.status.rawValue); w.u64(e.incarnation); w.endpoint(e.endpoint); w.blob(e.metadata)
            }
        }
        w.u8(UInt8(p.updates.count))
        for u in p.updates {
            switch u {
            case let .alive(m, inc, endpoint, meta):
                w.u8(UpdateKind.alive.rawValue); w.key(m); w.u64(inc); w.endpoint(endpoint); w.blob(meta)
            case let .suspect(m, inc, from):
                w.u8(UpdateKind.suspect.rawValue); w.key(m); w.u64(inc); w.key(from)
            case let .dead(m, inc, from):
                w.u8(UpdateKind.dead.rawValue); w.key(m); w.u64(inc); w.key(from)
            case let .left(m, inc):
                w.u8(UpdateKind.left.rawValue); w.key(m); w.u64(inc)
            }
        }
        return w.bytes
    }

    /// Decodes a payload sent by `sender` (the envelope's authenticated sender).
    public static func decode(_ bytes: [UInt8], sender: Bytes32) throws(WireError) -> SWIMPacket {
        var r = ByteReader(bytes)
        guard let type = MessageType(rawValue: try r.u8()) else { throw WireError(.unknownType, "SWIM message") }
        let claimed = try r.key()
        guard claimed == sender else { throw WireError(.badValue, "SWIM sender is not the envelope's sender") }
        let message: SWIMMessage
        switch type {
        case .ping: message = .ping(sequence: try r.u32(), target: try r.key())
        case .ack: message = .ack(sequence: try r.u32())
        case .nack: message = .nack(sequence: try r.u32())
        case .pingReq:
            let seq = try r.u32(), target = try r.key(), endpoint = try r.endpoint()
            let flag = try r.u8()
            guard flag <= 1 else { throw WireError(.badValue, "ping-req flag") }
            message = .pingReq(sequence: seq, target: target, targetEndpoint: endpoint, wantNack: flag == 1)
        case .gossip: message = .gossip
        case .pushPull:
            let exchange = try r.u32(), flags = try r.u8()
            guard flags & ~3 == 0 else { throw WireError(.badValue, "push-pull flags") }
            let part = try r.u16(), parts = try r.u16(), count = Int(try r.u16())
            guard part < parts else { throw WireError(.badValue, "push-pull part \(part) of \(parts)") }
            var entries: [MemberEntry] = []
            for _ in 0..<count {
                let m = try r.key()
                guard let status = MemberStatus(rawValue: try r.u8()) else { throw WireError(.badValue, "member status") }
                let inc = try r.u64(), endpoint = try r.endpoint(), meta = try r.blob(max: maxMetadata)
                entries.append(MemberEntry(member: m, incarnation: inc, status: status, endpoint: endpoint, metadata: meta))
            }
            message = .pushPull(PushPull(exchange: exchange, isReply: flags & 1 != 0, isJoin: flags & 2 != 0,
                                         part: part, parts: parts, entries: entries))
        }
        var updates: [GossipUpdate] = []
        for _ in 0..<Int(try r.u8()) {
            guard let kind = UpdateKind(rawValue: try r.u8()) else { throw WireError(.badValue, "update kind") }
            let m = try r.key(), inc = try r.u64()
            switch kind {
            case .alive: updates.append(.alive(member: m, incarnation: inc, endpoint: try r.endpoint(), metadata: try r.blob(max: maxMetadata)))
            case .suspect: updates.append(.suspect(member: m, incarnation: inc, from: try r.key()))
            case .dead: updates.append(.dead(member: m, incarnation: inc, from: try r.key()))
            case .left: updates.append(.left(member: m, incarnation: inc))
            }
        }
        try r.expectEnd()
        return SWIMPacket(sender: claimed, message: message, updates: updates)
    }
}

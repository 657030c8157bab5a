// The NAT kind (NATMapping, from STUNClient) in a member record: bits 1-2 of
// its flags, so members can tell at once whether a direct path between them
// can exist.
extension NATMapping {
    /// The two bits in a member record's flags.
    public var recordBits: UInt8 {
        switch self {
        case .unknown: 0
        case .none: 1
        case .endpointIndependent: 2
        case .endpointDependent: 3
        }
    }

    public init(recordBits: UInt8) {
        switch recordBits & 3 {
        case 1: self = .none
        case 2: self = .endpointIndependent
        case 3: self = .endpointDependent
        default: self = .unknown
        }
    }
}

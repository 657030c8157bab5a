// The agent's configuration file, `<config-dir>/meshguard-agent.toml`: every
// option `up` has as a flag, as TOML (the flat subset a daemon's settings
// need: `key = value` lines, `#` comments, basic and literal strings,
// integers, booleans, and arrays of those, which may span lines). Anything
// else — tables, dates, floats, duplicate or unknown keys, bad values — is
// an error naming the file, the line and the fix. Pure: text in, values out.
//
// Flags override the file; the file overrides the defaults (docs/configuration.md).

public enum ConfigValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case bool(Bool)
    case array([ConfigValue])

    var typeName: String {
        switch self {
        case .string: "a string"
        case .integer: "an integer"
        case .bool: "a boolean"
        case .array: "an array"
        }
    }
}

public struct ConfigFileError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let line: Int
    public let message: String
    public init(path: String, line: Int, message: String) { self.path = path; self.line = line; self.message = message }
    public var description: String { "\(path):\(line): \(message)" }
}

public struct AgentConfigFile: Sendable {
    /// What one key may hold, for validation and for the error's fix.
    public enum Kind: Sendable, Equatable {
        case string(example: String)
        case integer(ClosedRange<Int64>)
        case bool
        case strings(example: String)
        /// One of these words.
        case choice([String])
    }

    /// Every key the file may set, with its kind.
    public static let keys: [(String, Kind)] = [
        ("mode", .choice(["auto", "kernel", "userspace"])),
        ("interface", .string(example: "\"mg0\"")),
        ("mtu", .integer(1280...65535)),
        ("listen-port", .integer(1...65535)),
        ("control-port", .integer(1...65535)),
        ("seeds", .strings(example: "[\"192.0.2.1:51821\", \"dns:example.com\"]")),
        ("stun-servers", .strings(example: "[\"stun.example.com:3478\", \"192.0.2.1:3478\"]")),
        ("relay", .choice(["auto", "on", "off"])),
        ("port-mapping", .choice(["auto", "off"])),
        ("advertise", .string(example: "\"192.0.2.10\"")),
        ("peers-file", .string(example: "\"/etc/meshguard/static-peers\"")),
        ("runtime-dir", .string(example: "\"/run/meshguard\"")),
        ("admin-group", .string(example: "\"meshguard\"")),
        ("log-level", .choice(["debug", "info", "warning", "error"])),
        ("log-format", .choice(["text", "json"])),
        ("metrics-address", .string(example: "\"127.0.0.1:9586\"")),
        ("open", .bool),
    ]

    public let path: String
    /// Each key set, with its value and line.
    public private(set) var entries: [String: (value: ConfigValue, line: Int)] = [:]

    /// Parses and validates `text` (the contents of `path`).
    public init(text: String, path: String) throws(ConfigFileError) {
        self.path = path
        var parser = Parser(text: text, path: path)
        while let (key, value, line) = try parser.nextEntry() {
            guard let kind = AgentConfigFile.keys.first(where: { $0.0 == key })?.1 else {
                let known = AgentConfigFile.keys.map(\.0).joined(separator: ", ")
                throw ConfigFileError(path: path, line: line, message: "unknown key '\(key)' (known keys: \(known))")
            }
            if let first = entries[key] {
                throw ConfigFileError(path: path, line: line, message: "'\(key)' is set twice (first on line \(first.line)); keep one")
            }
            try AgentConfigFile.check(key, value, kind, line: line, path: path)
            entries[key] = (value, line)
        }
    }

    private static func check(_ key: String, _ value: ConfigValue, _ kind: Kind, line: Int, path: String) throws(ConfigFileError) {
        func fail(_ fix: String) -> ConfigFileError {
            ConfigFileError(path: path, line: line, message: "'\(key)' must be \(fix)")
        }
        switch (kind, value) {
        case (.string, .string(let s)):
            if s.isEmpty { throw fail("a non-empty string") }
        case (.string(let example), _):
            throw fail("a string, e.g. \(key) = \(example) (not \(value.typeName))")
        case (.integer(let range), .integer(let n)):
            if !range.contains(n) { throw fail("between \(range.lowerBound) and \(range.upperBound) (not \(n))") }
        case (.integer(let range), _):
            throw fail("an integer between \(range.lowerBound) and \(range.upperBound), e.g. \(key) = \(range.lowerBound) (not \(value.typeName))")
        case (.bool, .bool):
            break
        case (.bool, _):
            throw fail("true or false (not \(value.typeName))")
        case (.strings, .array(let items)) where items.allSatisfy({ if case .string(let s) = $0 { return !s.isEmpty } else { return false } }):
            break
        case (.strings(let example), _):
            throw fail("an array of non-empty strings, e.g. \(key) = \(example)")
        case (.choice(let words), .string(let s)) where words.contains(s):
            break
        case (.choice(let words), _):
            throw fail("one of " + words.map { "\"\($0)\"" }.joined(separator: ", "))
        }
    }

    public func string(_ key: String) -> String? {
        if case .string(let s)? = entries[key]?.value { return s }
        return nil
    }

    public func integer(_ key: String) -> Int64? {
        if case .integer(let n)? = entries[key]?.value { return n }
        return nil
    }

    public func bool(_ key: String) -> Bool? {
        if case .bool(let b)? = entries[key]?.value { return b }
        return nil
    }

    public func strings(_ key: String) -> [String]? {
        guard case .array(let items)? = entries[key]?.value else { return nil }
        return items.compactMap { if case .string(let s) = $0 { return s } else { return nil } }
    }

    /// An error about `key`'s value found after parsing (e.g. a seed that does not parse), at its line.
    public func error(_ key: String, _ message: String) -> ConfigFileError {
        ConfigFileError(path: path, line: entries[key]?.line ?? 0, message: message)
    }
}

// MARK: The TOML subset

private struct Parser {
    let path: String
    var chars: [Character]
    var i = 0
    var line = 1

    init(text: String, path: String) {
        self.path = path
        // By Unicode scalar, so a CRLF is two characters (as a Character it would be one grapheme).
        chars = text.unicodeScalars.map(Character.init)
    }

    func error(_ message: String, line: Int? = nil) -> ConfigFileError {
        ConfigFileError(path: path, line: line ?? self.line, message: message)
    }

    var atEnd: Bool { i >= chars.count }
    var peek: Character? { atEnd ? nil : chars[i] }

    mutating func advance() -> Character {
        let c = chars[i]
        i += 1
        if c == "\n" { line += 1 }
        return c
    }

    /// Spaces and tabs (not newlines).
    mutating func skipBlanks() {
        while let c = peek, c == " " || c == "\t" { _ = advance() }
    }

    mutating func skipComment() {
        if peek == "#" { while let c = peek, c != "\n" { _ = advance() } }
    }

    /// Blank lines and comment lines, and spaces within arrays.
    mutating func skipWhitespaceAndComments() {
        while let c = peek {
            if c == " " || c == "\t" || c == "\n" || c == "\r" { _ = advance() } else if c == "#" { skipComment() } else { break }
        }
    }

    mutating func endOfLine() throws(ConfigFileError) {
        skipBlanks()
        skipComment()
        if peek == "\r" { _ = advance() }
        guard atEnd || peek == "\n" else {
            throw error("unexpected '\(peek!)' after the value; one 'key = value' per line (a comment starts with #)")
        }
        if !atEnd { _ = advance() }
    }

    mutating func nextEntry() throws(ConfigFileError) -> (String, ConfigValue, Int)? {
        skipWhitespaceAndComments()
        guard let c = peek else { return nil }
        let start = line
        if c == "[" {
            throw error("tables ([section]) are not used: every setting is a top-level 'key = value'")
        }
        let key = try parseKey()
        skipBlanks()
        guard peek == "=" else { throw error("expected '=' after '\(key)': write \(key) = value") }
        _ = advance()
        skipBlanks()
        let value = try parseValue()
        try endOfLine()
        return (key, value, start)
    }

    mutating func parseKey() throws(ConfigFileError) -> String {
        var key = ""
        if peek == "\"" {
            let s = try parseBasicString()
            return s
        }
        while let c = peek, c.isASCII, c.isLetter || c.isNumber || c == "-" || c == "_" { key.append(advance()) }
        if key.isEmpty { throw error("expected a key (letters, digits, '-' or '_') at '\(peek.map(String.init) ?? "end of file")'") }
        if peek == "." { throw error("dotted keys are not used: every setting is a top-level key") }
        return key
    }

    mutating func parseValue() throws(ConfigFileError) -> ConfigValue {
        guard let c = peek, c != "\n", c != "#" else { throw error("missing value after '='") }
        switch c {
        case "\"":
            if chars[i...].starts(with: "\"\"\"") { throw error("multi-line strings are not used here; write the value on one line") }
            return .string(try parseBasicString())
        case "'":
            if chars[i...].starts(with: "'''") { throw error("multi-line strings are not used here; write the value on one line") }
            return .string(try parseLiteralString())
        case "[":
            return try parseArray()
        case "t", "f":
            var word = ""
            while let d = peek, d.isLetter { word.append(advance()) }
            if word == "true" { return .bool(true) }
            if word == "false" { return .bool(false) }
            throw error("'\(word)' is not a value: strings need quotes (\"\(word)\"), booleans are true or false")
        case "+", "-", "0"..."9":
            var text = ""
            while let d = peek, d.isNumber || d == "_" || d == "+" || d == "-" || d == "." || d == ":" || d.isLetter { text.append(advance()) }
            let digits = text.filter { $0 != "_" }
            guard let n = Int64(digits), !text.hasPrefix("_"), !text.hasSuffix("_"), !text.contains("__") else {
                throw error("'\(text)' is not an integer (floats, dates and hex are not used; quote it if it is a string)")
            }
            if digits.count > 1, digits.hasPrefix("0") || digits.hasPrefix("+0") || digits.hasPrefix("-0") {
                throw error("'\(text)': leading zeros are not allowed")
            }
            return .integer(n)
        default:
            var word = ""
            while let d = peek, d != " ", d != "\t", d != "\n", d != "\r", d != "#", d != ",", d != "]" { word.append(advance()) }
            throw error("'\(word)' is not a value: strings need quotes (\"\(word)\"), booleans are true or false")
        }
    }

    mutating func parseBasicString() throws(ConfigFileError) -> String {
        let startLine = line
        _ = advance()   // "
        var s = ""
        while true {
            guard let c = peek, c != "\n" else { throw error("unterminated string: add the closing \"", line: startLine) }
            _ = advance()
            if c == "\"" { return s }
            if c == "\\" {
                guard let e = peek else { throw error("unterminated string", line: startLine) }
                _ = advance()
                switch e {
                case "\"": s.append("\"")
                case "\\": s.append("\\")
                case "n": s.append("\n")
                case "t": s.append("\t")
                case "r": s.append("\r")
                case "b": s.append("\u{08}")
                case "f": s.append("\u{0C}")
                case "u", "U":
                    let count = e == "u" ? 4 : 8
                    var hex = ""
                    for _ in 0..<count { if let h = peek, h.isHexDigit { hex.append(advance()) } }
                    guard hex.count == count, let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) else {
                        throw error("bad \\\(e) escape: use \\\(e) and \(count) hex digits")
                    }
                    s.unicodeScalars.append(u)
                default:
                    throw error("unknown escape '\\\(e)' (use \\\\ for a backslash, or a literal 'string')")
                }
            } else if c.asciiValue.map({ $0 < 0x20 && $0 != 0x09 }) ?? false || c == "\u{7F}" {
                throw error("control characters are not allowed in strings")
            } else {
                s.append(c)
            }
        }
    }

    mutating func parseLiteralString() throws(ConfigFileError) -> String {
        let startLine = line
        _ = advance()   // '
        var s = ""
        while true {
            guard let c = peek, c != "\n" else { throw error("unterminated string: add the closing '", line: startLine) }
            _ = advance()
            if c == "'" { return s }
            s.append(c)
        }
    }

    mutating func parseArray() throws(ConfigFileError) -> ConfigValue {
        let startLine = line
        _ = advance()   // [
        var items: [ConfigValue] = []
        while true {
            skipWhitespaceAndComments()
            guard let c = peek else { throw error("unterminated array: add the closing ]", line: startLine) }
            if c == "]" { _ = advance(); return .array(items) }
            // Refused before it is read: a deep nesting would otherwise recurse until the stack runs out (found by fuzzing).
            if c == "[" { throw error("nested arrays are not used") }
            let v = try parseValue()
            items.append(v)
            skipWhitespaceAndComments()
            if peek == "," { _ = advance(); continue }
            if atEnd { throw error("unterminated array: add the closing ]", line: startLine) }
            guard peek == "]" else { throw error("expected ',' or ']' in the array that starts on line \(startLine)") }
        }
    }
}

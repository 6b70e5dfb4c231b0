import Foundation
import ShoalTestSupport

/// One HTTP/1.1 request over a fresh loopback socket (`Connection: close`)
/// and its parsed answer: enough client for tests of the operator's view,
/// with nothing between the test and the bytes on the wire.
struct HTTPExchange: Sendable {
    var status: Int
    /// Header names lowercased; repeated headers joined with "\n".
    var headers: [String: String]
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    /// Sends `method path` to 127.0.0.1:`port` with `headers` and `body`; reads until the server closes.
    static func send(_ method: String = "GET", _ path: String, port: Int, headers: [String: String] = [:], body: String = "") async throws -> HTTPExchange {
        let socket = try RawSocket(port: port, timeout: 30)
        defer { socket.close() }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if !body.isEmpty || method == "POST" { head += "Content-Length: \(body.utf8.count)\r\n" }
        socket.send(Array((head + "\r\n" + body).utf8))
        let (bytes, _) = await socket.readUntilClosedAsync()
        return try parse(bytes)
    }

    static func parse(_ bytes: [UInt8]) throws -> HTTPExchange {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else {
            throw HTTPExchangeError("no complete answer head in \(bytes.count) bytes: \(String(decoding: bytes.prefix(200), as: UTF8.self))")
        }
        let lines = String(decoding: bytes[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw HTTPExchangeError("bad status line \(lines[0])") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            headers[name] = headers[name].map { $0 + "\n" + value } ?? value
        }
        var body = Array(bytes[(end + 4)...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true { body = try dechunk(body) }
        return HTTPExchange(status: status, headers: headers, body: body)
    }

    private static func dechunk(_ bytes: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            guard let lineEnd = bytes[i...].indices.first(where: { bytes[$0...].starts(with: [13, 10]) }),
                  let size = Int(String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";")[0], radix: 16) else {
                throw HTTPExchangeError("bad chunk header")
            }
            if size == 0 { break }
            let start = lineEnd + 2
            guard start + size <= bytes.count else { throw HTTPExchangeError("chunk past the end") }
            out += bytes[start..<(start + size)]
            i = start + size + 2
        }
        return out
    }
}

struct HTTPExchangeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

import Foundation
import Hummingbird
import ShoalTracker

/// Who may see the operator's view: whoever shows the operator token the
/// tracker wrote at start, the same rule as `status`. Every request passes
/// through here, unknown paths included, so nothing answers without it.
///
/// The token may come as
/// - `Authorization: Bearer TOKEN` (Prometheus, scripts);
/// - the `shoal_operator` cookie (a browser, after one of the two below);
/// - `?token=TOKEN` on any page: answered with the cookie and a redirect to
///   the same path without the query, so the token leaves the address bar;
/// - `POST /login` with the form field `token` (the form a refused browser is shown).
///
/// Anything else gets 401, with the login form for a browser and one
/// line of text for anything else. Tokens are compared in constant time.
struct OperatorAccess<Context: RequestContext>: RouterMiddleware {
    static var cookieName: String { "shoal_operator" }
    /// The largest `POST /login` body read (the form holds one 64-digit token).
    static var loginBodyLimit: Int { 4096 }

    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let given = request.uri.queryParameters.get("token") {
            guard OperatorToken.matches(given, token) else {
                return Self.refusal(request, "the token in ?token= is not this tracker's operator token; copy it again from the file the tracker wrote at its last start")
            }
            return withCookie(Response.redirect(to: request.uri.path.isEmpty ? "/" : request.uri.path, type: .found))
        }
        if request.method == .post, request.uri.path == "/login" {
            var request = request
            let body = try await request.collectBody(upTo: Self.loginBodyLimit)
            let form = URLComponents(string: "?" + String(buffer: body))?.queryItems ?? []
            guard let given = form.first(where: { $0.name == "token" })?.value, OperatorToken.matches(given.trimmingCharacters(in: .whitespacesAndNewlines), token) else {
                return Self.refusal(request, "that is not this tracker's operator token; copy it again from the file the tracker wrote at its last start")
            }
            return withCookie(Response.redirect(to: "/", type: .normal))
        }
        if let header = request.headers[.authorization] {
            guard header.hasPrefix("Bearer "), OperatorToken.matches(String(header.dropFirst(7)), token) else {
                return Self.refusal(request, "the Authorization header does not carry this tracker's operator token (send `Authorization: Bearer TOKEN` with the token from the file the tracker wrote at start)")
            }
            return try await next(request, context)
        }
        if let cookie = request.cookies[Self.cookieName]?.value {
            guard OperatorToken.matches(cookie, token) else {
                return Self.refusal(request, "your browser holds the operator token of an earlier start of this tracker; give the new one")
            }
            return try await next(request, context)
        }
        return Self.refusal(request, "the operator's view needs the operator token: the one in the file the tracker wrote beside its database at start (DB-operator-token, or --token-file)")
    }

    private func withCookie(_ response: Response) -> Response {
        var response = response
        response.setCookie(Cookie(name: Self.cookieName, value: token, path: "/", httpOnly: true, sameSite: .strict))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    /// 401: the login form for a browser, one line for anything else.
    static func refusal(_ request: Request, _ message: String) -> Response {
        var headers = OperatorResponses.commonHeaders
        headers[.wwwAuthenticate] = "Bearer realm=\"shoal tracker operator\""
        if request.headers[.accept]?.contains("text/html") == true {
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.contentSecurityPolicy] = OperatorPage.contentSecurityPolicy
            return Response(status: .unauthorized, headers: headers, body: .init(byteBuffer: ByteBuffer(string: OperatorPage.login(message: message))))
        }
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: .unauthorized, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "401 Unauthorized: \(message)\n")))
    }
}

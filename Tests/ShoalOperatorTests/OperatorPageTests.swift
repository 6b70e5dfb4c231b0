import Foundation
import ShoalCore
import ShoalTestSupport
import Testing

/// The status page in a real browser (Debian's headless `chromium`) against a
/// real tracker with real clients, one browser at a time (each start costs
/// seconds of CPU on a 2-core machine that runs the rest of the suite beside it).
@Suite(.serialized) struct OperatorPageTests {
    /// The page shows the swarm's peers, files and availability bars once the
    /// token is given in the address, and shows a peer that joins afterwards
    /// without being reloaded.
    @Test func pageRendersTheSwarmAndUpdatesLive() async throws {
        try await OperatorFixture.with { view in
            let (alice, _) = try await view.peer("alice", port: 9101, files: [("alpha-notes.txt", sampleManifest(1, chunks: 40))])
            defer { alice.close() }
            try await HeadlessChromium.with { browser in
                let page = try await browser.open("http://127.0.0.1:\(view.port)/?token=\(view.token)")
                let text = "document.body ? document.body.innerText : ''"
                let shown = try await browser.waitUntil("(\(text)).includes('alpha-notes.txt') && (\(text)).includes('alice')", session: page)
                let before = try await browser.evaluate(text, session: page) as? String ?? ""
                #expect(shown, "the page never showed alice and alpha-notes.txt: \(before)")
                // The token left the address bar for the cookie, which scripts cannot read.
                #expect(try await browser.evaluate("location.search", session: page) as? String == "")
                #expect(try await browser.evaluate("document.cookie", session: page) as? String == "")
                #expect(try await browser.evaluate("document.querySelectorAll('.bar span').length", session: page) as? Int == 40)

                // A mark on this very document: a reload would wipe it.
                _ = try await browser.evaluate("window.shoalMark = 'same document'", session: page)
                let (bob, _) = try await view.peer("bob", port: 9102, files: [("beta-song.ogg", sampleManifest(2, chunks: 8))])
                defer { bob.close() }
                let updated = try await browser.waitUntil("(\(text)).includes('beta-song.ogg') && (\(text)).includes('bob')", session: page)
                let after = try await browser.evaluate(text, session: page) as? String ?? ""
                #expect(updated, "the page never showed bob and beta-song.ogg: \(after)")
                #expect(try await browser.evaluate("window.shoalMark", session: page) as? String == "same document")
                #expect(try await browser.evaluate("document.getElementById('connected').textContent", session: page) as? String == "2")
            }
        }
    }

    /// Without the token a browser is shown the token form, and typing the
    /// token into it opens the page.
    @Test func browserWithoutTokenGetsTheForm() async throws {
        try await OperatorFixture.with { view in
            let (carol, _) = try await view.peer("carol", port: 9103, files: [("gamma.iso", sampleManifest(3, chunks: 4))])
            defer { carol.close() }
            try await HeadlessChromium.with { browser in
                let page = try await browser.open("http://127.0.0.1:\(view.port)/")
                let form = try await browser.waitUntil("document.querySelector('form input[name=token]') !== null", session: page)
                #expect(form)
                #expect(try await browser.evaluate("document.body.innerText.includes('gamma.iso')", session: page) as? Bool == false)
                _ = try await browser.evaluate("document.querySelector('input[name=token]').value = '\(view.token)'; document.querySelector('form').submit()", session: page)
                let shown = try await browser.waitUntil("document.body !== null && document.body.innerText.includes('gamma.iso')", session: page)
                #expect(shown)
            }
        }
    }
}

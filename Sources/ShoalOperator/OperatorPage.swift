/// The operator's status page: one self-contained HTML document (inline CSS
/// and script, nothing fetched from elsewhere) that asks `/api/status` once
/// a second (never two requests at once; every 5 s while the tracker does not
/// answer) and redraws from the answer. Every name from the swarm goes in
/// as text (`textContent`), never as markup.
enum OperatorPage {
    /// Only this page's own inline style and script, and requests to its own origin.
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    /// The form a browser without the token is shown, with why it was refused.
    static func login(message: String) -> String {
        """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Shoal tracker: operator token</title>
        <style>
        body { font: 15px/1.45 system-ui, sans-serif; margin: 3em auto; max-width: 40em; color: #1d2733; }
        input[type=password] { width: 100%; font: 14px monospace; padding: .4em; box-sizing: border-box; }
        button { margin-top: .6em; padding: .4em 1.2em; }
        .why { background: #fdecea; border-left: 4px solid #c62828; padding: .5em .8em; }
        </style></head>
        <body><h1>Shoal tracker</h1>
        <p class="why">\(escape(message))</p>
        <form method="post" action="/login">
        <label for="token">Operator token (<code>cat tracker.sqlite-operator-token</code> on the tracker's machine)</label>
        <input type="password" id="token" name="token" autocomplete="off" autofocus>
        <button type="submit">Show the tracker</button>
        </form></body></html>
        """
    }

    /// `text` safe inside HTML text.
    static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    static let html = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Shoal tracker</title>
        <style>
        :root { --ink: #1d2733; --soft: #5d6b7a; --line: #e3e8ee; --ok: #2e7d32; --bad: #c62828; }
        * { box-sizing: border-box; }
        body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: var(--ink); background: #f6f8fa; }
        header { display: flex; align-items: baseline; gap: 2em; padding: .8em 1.5em; background: #16324f; color: #fff; flex-wrap: wrap; }
        header h1 { font-size: 18px; margin: 0; }
        header .figure b { font-size: 18px; margin-right: .25em; }
        header #state { margin-left: auto; font-size: 12px; opacity: .85; }
        header #state.down { color: #ffb4a9; opacity: 1; }
        main { padding: 1em 1.5em; display: grid; gap: 1.2em; }
        section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: .8em 1em; overflow-x: auto; }
        h2 { font-size: 15px; margin: 0 0 .6em; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .3em .6em; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
        th { font-weight: 600; color: var(--soft); font-size: 12px; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .mono { font-family: ui-monospace, monospace; font-size: 12px; color: var(--soft); }
        .on { color: var(--ok); font-weight: 600; }
        .off { color: var(--soft); }
        .holders { white-space: normal; max-width: 22em; }
        .holder { display: inline-block; margin: 0 .4em .1em 0; }
        .holder.partial { color: var(--soft); font-style: italic; }
        .bar { display: flex; height: 16px; width: 320px; border: 1px solid #c9d1d9; border-radius: 3px; overflow: hidden; background: #eee; }
        .bar span { flex: 1 1 0; min-width: 1px; }
        .bar span.rare { box-shadow: inset 0 -4px 0 var(--bad); }
        .barnote { font-size: 11px; color: var(--soft); }
        .barnote.rare { color: var(--bad); }
        .score { font-variant-numeric: tabular-nums; }
        .pager { margin-top: .5em; font-size: 12px; color: var(--soft); }
        .pager button { font-size: 12px; margin-right: .5em; }
        .empty { color: var(--soft); font-style: italic; }
        .legend { font-size: 12px; color: var(--soft); margin-bottom: .5em; }
        .legend i { display: inline-block; width: 12px; height: 12px; vertical-align: -2px; margin: 0 .2em 0 .6em; }
        </style></head>
        <body>
        <header>
          <h1>Shoal tracker</h1>
          <span class="figure"><b id="registered">–</b>registered</span>
          <span class="figure"><b id="connected">–</b>connected</span>
          <span class="figure"><b id="fileCount">–</b>files</span>
          <span id="state">connecting…</span>
        </header>
        <main>
          <section id="files-section">
            <h2>Files</h2>
            <div class="legend">Availability: how many connected holders have each part of the file (fewest in each cell)
              <i style="background:hsl(0,70%,45%)"></i>none<i style="background:hsl(60,70%,45%)"></i>some<i style="background:hsl(120,55%,38%)"></i>all holders;
              <span style="color:var(--bad)">▁</span> marks the rarest parts.</div>
            <table><thead><tr><th>File</th><th>Content</th><th class="num">Size</th><th>Holders</th><th>Availability</th></tr></thead>
            <tbody id="files"></tbody></table>
            <div class="pager" id="files-pager"></div>
          </section>
          <section id="peers-section">
            <h2>Peers</h2>
            <table><thead><tr><th>Peer</th><th>State</th><th class="num">Files</th><th class="num">Downloads</th><th class="num">Failures</th><th class="num">Bytes served</th><th class="num" title="PeerScore reputation from the tracker's counters: 1 = clean record, up to 5; downloaders multiply their measured chunk time by it (lower is better)">Score</th></tr></thead>
            <tbody id="peers"></tbody></table>
            <div class="pager" id="peers-pager"></div>
          </section>
        </main>
        <script>
        "use strict";
        const cursor = { peers: [], files: [] };   // stacks of cursors: the page shown is the last one
        let busy = false, failures = 0;

        function el(tag, text, cls) {
          const node = document.createElement(tag);
          if (text !== undefined && text !== null) node.textContent = String(text);
          if (cls) node.className = cls;
          return node;
        }
        function bytes(n) {
          const units = ["B", "KiB", "MiB", "GiB", "TiB"];
          let i = 0; while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
          return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
        }
        function bar(a) {
          const box = el("div");
          const strip = el("div", null, "bar");
          const top = Math.max(a.holders, 1);
          a.cells.forEach((count, i) => {
            const cell = el("span");
            const hue = Math.round(120 * Math.min(count, top) / top);
            cell.style.background = count === 0 ? "hsl(0,70%,45%)" : "hsl(" + hue + "," + (hue === 120 ? 55 : 70) + "%," + (hue === 120 ? 38 : 45) + "%)";
            if (count === a.rarest && a.rarest < a.holders) cell.className = "rare";
            const first = i * a.chunksPerCell, last = Math.min(a.chunkCount, first + a.chunksPerCell) - 1;
            cell.title = "chunks " + first + (last > first ? "–" + last : "") + ": " + count + " holder" + (count === 1 ? "" : "s");
            strip.appendChild(cell);
          });
          box.appendChild(strip);
          const rare = a.rarest < a.holders;
          box.appendChild(el("div", a.chunkCount + " chunk" + (a.chunkCount === 1 ? "" : "s") + "; rarest part: " + a.rarest + " of " + a.holders + " holder" + (a.holders === 1 ? "" : "s") +
            (rare ? " (" + a.rarestChunks + " chunk" + (a.rarestChunks === 1 ? "" : "s") + ")" : ""), "barnote" + (rare ? " rare" : "")));
          return box;
        }
        function pager(id, next, kind) {
          const box = document.getElementById(id);
          box.replaceChildren();
          if (cursor[kind].length > 0) {
            const back = el("button", "← first page"); back.onclick = () => { cursor[kind] = []; refresh(); }; box.appendChild(back);
          }
          if (next) {
            const more = el("button", "next page →"); more.onclick = () => { cursor[kind].push(next); refresh(); }; box.appendChild(more);
          }
        }
        function render(s) {
          document.getElementById("registered").textContent = s.registered;
          document.getElementById("connected").textContent = s.connected;
          document.getElementById("fileCount").textContent = s.fileCount;
          const files = document.getElementById("files");
          const fileRows = s.files.map(f => {
            const tr = el("tr");
            tr.appendChild(el("td", f.name));
            tr.appendChild(el("td", f.contentID.slice(0, 12), "mono"));
            tr.appendChild(el("td", bytes(f.size), "num"));
            const who = el("td", null, "holders");
            f.holders.forEach(h => who.appendChild(el("span", h.user + (h.complete ? "" : " (" + Math.floor(100 * h.chunks / Math.max(f.chunkCount, 1)) + "%)"), "holder" + (h.complete ? "" : " partial"))));
            if (f.moreHolders) who.appendChild(el("span", "and " + f.moreHolders + " more", "holder"));
            tr.appendChild(who);
            const cell = el("td"); cell.appendChild(bar(f.availability)); tr.appendChild(cell);
            return tr;
          });
          if (fileRows.length === 0) { const tr = el("tr"); const td = el("td", "No files are shared.", "empty"); td.colSpan = 5; tr.appendChild(td); fileRows.push(tr); }
          files.replaceChildren(...fileRows);
          const peers = document.getElementById("peers");
          const peerRows = s.peers.map(p => {
            const tr = el("tr");
            tr.appendChild(el("td", p.user));
            tr.appendChild(p.connected ? el("td", "connected " + (p.port ? p.host + ":" + p.port : "(not serving)"), "on") : el("td", "offline", "off"));
            tr.appendChild(el("td", p.files === undefined ? "–" : p.files, "num"));
            tr.appendChild(el("td", p.countDownloads, "num"));
            tr.appendChild(el("td", p.countFailures, "num"));
            tr.appendChild(el("td", bytes(p.bytesServed), "num"));
            tr.appendChild(el("td", p.score.toFixed(2), "num score"));
            return tr;
          });
          if (peerRows.length === 0) { const tr = el("tr"); const td = el("td", "No accounts.", "empty"); td.colSpan = 7; tr.appendChild(td); peerRows.push(tr); }
          peers.replaceChildren(...peerRows);
          pager("files-pager", s.nextFiles, "files");
          pager("peers-pager", s.nextPeers, "peers");
          const state = document.getElementById("state");
          state.className = "";
          state.textContent = "live · updated " + new Date(s.at * 1000).toLocaleTimeString();
        }
        async function refresh() {
          if (busy) return;
          busy = true;
          let wait = 1000;
          try {
            const q = new URLSearchParams();
            const p = cursor.peers[cursor.peers.length - 1], f = cursor.files[cursor.files.length - 1];
            if (p) q.set("peersAfter", p);
            if (f) { q.set("filesAfterName", f.name); q.set("filesAfterContent", f.contentID); }
            const reply = await fetch("/api/status?" + q.toString(), { credentials: "same-origin", cache: "no-store" });
            if (reply.status === 401) { window.location.reload(); return; }
            if (!reply.ok) throw new Error("HTTP " + reply.status + ": " + (await reply.text()).slice(0, 200));
            render(await reply.json());
            failures = 0;
          } catch (error) {
            failures++;
            wait = 5000;
            const state = document.getElementById("state");
            state.className = "down";
            state.textContent = "tracker not answering (" + error.message + "); retrying";
          } finally {
            busy = false;
            clearTimeout(window.shoalTimer);
            window.shoalTimer = setTimeout(refresh, wait);
          }
        }
        refresh();
        </script>
        </body></html>
        """
}

"""The live view's two pages, the one source's and the grid of many (served by `http_view.LiveServer`).

Every value from outside (model names, source labels, the selector's switch log, error text) goes into them
as text (`textContent`, `setAttribute`, `encodeURIComponent` in URLs), never as HTML. Their
Content-Security-Policy (`POLICY`) lets in only their own script and style, by hash, and requests to the
server itself: a value that still got in as HTML would run no script. `__BASE__` (a source's page's own path,
HTML-escaped by the server) appears only in the HTML, so the script, and its hash, stay the same.
"""

from __future__ import annotations

import base64
import hashlib
import re

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rtseg live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 14px system-ui, sans-serif; margin: 0; background: #111; color: #eee; display: flex; flex-wrap: wrap; }
 #view { flex: 1 1 640px; padding: 12px; } #view img { width: 100%; max-width: 1280px; background: #000; }
 #side { flex: 0 0 300px; padding: 12px; } table { border-collapse: collapse; width: 100%; }
 td { padding: 2px 6px; border-bottom: 1px solid #333; } td.v { text-align: right; font-variant-numeric: tabular-nums; }
 #fps { font-size: 32px; font-weight: 600; } ol { padding-left: 18px; font-size: 12px; }
</style></head><body data-base="__BASE__">
<div id="view"><img id="live" src="__BASE__stream.mjpg" alt="live overlay"></div>
<div id="side">
 <div><span id="fps">-</span> FPS</div>
 <div id="model">-</div>
 <table id="numbers"></table>
 <h4>Model switches</h4><ol id="switches"><li>none yet</li></ol>
</div>
<script>
const base = document.body.dataset.base;
const rows = [["frames in", "frames_in"], ["frames out", "frames_out"], ["dropped", "dropped"],
              ["latency p95 ms", "latency_ms_p95"], ["viewers", "viewers"], ["uptime s", "uptime_s"]];
function fmt(v) { return v === null || v === undefined ? "-" : (typeof v === "number" ? +v.toFixed(2) : v); }
// values from outside (model names, the switch log) go in as text, never as HTML
function el(tag, text, cls) {
  const e = document.createElement(tag);
  e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function row(name, value) {
  const tr = document.createElement("tr");
  tr.append(el("td", name), el("td", fmt(value), "v"));
  return tr;
}
async function tick() {
  try {
    const s = await (await fetch(base + "stats.json", {cache: "no-store"})).json();
    document.getElementById("fps").textContent = (s.fps || 0).toFixed(1);
    document.getElementById("model").textContent = (s.model || "-") + (s.backend ? " [" + s.backend + "]" : "")
      + (s.state && s.state !== "running" ? " (" + s.state + ")" : "");
    const stages = Object.entries(s.stage_ms || {}).map(([k, v]) => [k + " ms", v]);
    document.getElementById("numbers").replaceChildren(
      ...rows.map(([n, k]) => [n, s[k]]).concat(stages).map(([n, v]) => row(n, v)));
    if ((s.switches || []).length) document.getElementById("switches").replaceChildren(
      ...s.switches.slice().reverse().map(e => el("li", `${e.t}s frame ${e.frame}: ${e.from} \\u2192 ${e.to}`)));
  } catch (e) { document.getElementById("model").textContent = "run ended"; }
}
setInterval(tick, 500); tick();
</script></body></html>
"""

GRID_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rtseg live: all sources</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body { font: 13px system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
 header { padding: 8px 12px; font-size: 16px; } #grid { display: flex; flex-wrap: wrap; gap: 8px; padding: 0 8px; }
 .tile { flex: 0 1 400px; background: #1b1b1b; padding: 6px; } .tile img { width: 100%; background: #000; }
 .tile a { color: #9cf; } .bad { color: #f88; } .num { font-variant-numeric: tabular-nums; }
</style></head><body>
<header><b id="total">-</b> FPS in all, <span id="count">-</span> source(s)</header>
<div id="grid"></div>
<script>
const tiles = new Map();  // a Map: a label may be "__proto__" or "constructor"
// a label goes in as text and, in URLs, encoded: never as HTML
function tile(label) {
  if (tiles.has(label)) return tiles.get(label);
  const d = document.createElement("div"), img = document.createElement("img"), line = document.createElement("div"),
        a = document.createElement("a"), num = document.createElement("span");
  d.className = "tile";
  img.setAttribute("alt", label);
  a.setAttribute("href", "/" + encodeURIComponent(label) + "/");
  a.textContent = label;
  num.className = "num";
  line.append(a, " ", num);
  d.append(img, line);
  document.getElementById("grid").appendChild(d);
  tiles.set(label, d);
  return d;
}
async function tick() {
  try {
    const s = await (await fetch("/stats.json", {cache: "no-store"})).json();
    document.getElementById("total").textContent = s.fps.toFixed(1);
    document.getElementById("count").textContent = s.source_count;
    for (const [label, v] of Object.entries(s.sources)) {
      const d = tile(label), n = d.querySelector(".num");
      n.className = "num" + (v.state && v.state !== "running" ? " bad" : "");
      n.textContent = `${(v.fps || 0).toFixed(1)} FPS, ${v.frames_out || 0} frames, ${v.model || ""}` +
                      (v.state && v.state !== "running" ? ` (${v.state}${v.error ? ": " + v.error : ""})` : "");
      d.querySelector("img").src = "/" + encodeURIComponent(label) + "/frame.jpg?t=" + Date.now();
    }
  } catch (e) { document.getElementById("total").textContent = "run ended"; }
}
setInterval(tick, 500); tick();
</script></body></html>
"""


def _policy(page: str) -> str:
    """A page's Content-Security-Policy: its own script and style (by hash), pictures and numbers from this
    server, nothing else."""

    def digest(tag: str) -> str:
        found = re.search(f"<{tag}>(.*?)</{tag}>", page, re.S)
        assert found is not None, f"the page has no <{tag}>"  # the pages are the constants above: each has both
        text = found.group(1)
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    return (
        f"default-src 'none'; script-src {digest('script')}; style-src {digest('style')}; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


POLICY = {PAGE: _policy(PAGE), GRID_PAGE: _policy(GRID_PAGE)}

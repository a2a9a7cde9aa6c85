"""The live page `mnist-edge camera --serve` serves at `/`: the reading, large, above the stream.

    >>> from edge.page import render_page
    >>> page = render_page({"frame": 3, "reading": "42"}, "desk-pi")
    >>> "<title>mnist-edge: desk-pi</title>" in page and '"reading": "42"' in page
    True

One static HTML page with its script inline (nothing fetched from elsewhere: a device on a LAN
without internet serves it whole). The reading when the page was served is written into it, so it
is right before the script's first fetch; then it polls `/latest.json` twice a second. `edge.web`
serves it; tests/test_web.py drives it in headless Chromium.
"""

from __future__ import annotations

import html
import json

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mnist-edge: {title}</title>
<style>
 body {{ font-family: system-ui, sans-serif; margin: 1rem; background: #111; color: #eee; }}
 #reading {{ font-size: 4rem; font-weight: 700; letter-spacing: .1em; min-height: 4.5rem; }}
 #details, #status, #video-off {{ color: #aaa; font-size: .9rem; }}
 a {{ color: #8cf; }}
 img {{ max-width: 100%; border: 1px solid #444; display: block; margin-top: .5rem; }}
</style></head>
<body>
<h1>mnist-edge <small>{title}</small></h1>
<div>reading</div>
<div id="reading" data-frame="">\u2014</div>
<div id="details"></div>
{video}
<div id="status">waiting for the first frame</div>
<script>
const $ = (id) => document.getElementById(id);
const img = $("stream");
if (img) img.addEventListener("load", () => {{  // each decoded frame
  img.dataset.size = img.naturalWidth + "x" + img.naturalHeight;
}});
function show(d) {{
  if (!d) return;
  $("reading").textContent = d.reading || "\u2014";
  $("reading").dataset.frame = d.frame;
  $("details").textContent = d.digits.map(
    (x) => x.digit + " (" + (100 * x.confidence).toFixed(0) + "%)").join("  ");
  $("status").textContent = "frame " + d.frame + ", " + d.ms.total.toFixed(1) + " ms"
    + (d.file ? ", " + d.file : "")
    + ((d.found_by || "").startsWith("segmentation: ") ? ", " + d.found_by : "");  // a fallback
}}
async function poll() {{
  try {{
    // from the origin, not the address typed: http://user:password@host/ would make a relative URL
    // carry the login in it, which browsers refuse to fetch (they send the login they were given)
    const r = await fetch(new URL("/latest.json", location.origin), {{cache: "no-store"}});
    show(await r.json());
  }} catch (e) {{
    $("status").textContent = "no connection to the device";
  }}
  setTimeout(poll, 500);
}}
show({latest});  // the reading when the page was served; then /latest.json every 0.5 s
setTimeout(poll, 500);
</script>
</body></html>
"""
VIDEO_ON = ('<img id="stream" src="/stream.mjpg" data-size="" alt="live camera stream, digits boxed">'
            '<div id="video-off"><a href="/?video=0">reading only</a> (saves bandwidth)</div>')
VIDEO_OFF = '<div id="video-off">video off: <a href="/">show the stream</a></div>'


def render_page(latest: dict | None, title: str, video: bool = True) -> str:
    """The page, with the latest reading inlined so it is right before any script runs a fetch."""
    data = json.dumps(latest).replace("<", "\\u003c")  # safe inside <script>: no "</script>" nor
    #   "<!--<script" (which hides the real end tag from the HTML parser) from a file name
    return PAGE.format(title=html.escape(title), latest=data, video=VIDEO_ON if video else VIDEO_OFF)

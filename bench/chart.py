"""The benchmark chart as a PNG, with nothing but the standard library: a small RGB canvas, a
5x7 bitmap font drawn for this file, and a PNG writer (zlib + crc32).

One panel per metric, one bar per init, lower is better; vigil's bar is orange, the peers' grey,
and a dashed line marks the target where there is one.
"""

import struct
import zlib

# 5 columns x 9 rows per glyph (7 above the baseline, 2 below for descenders); rows not given
# are blank. Each line: the character (SP for space), then its rows.
FONT_SRC = r"""
SP
0 .###. #...# #..## #.#.# ##..# #...# .###.
1 ..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.
2 .###. #...# ....# ...#. ..#.. .#... #####
3 ##### ...#. ..#.. ...#. ....# #...# .###.
4 ...#. ..##. .#.#. #..#. ##### ...#. ...#.
5 ##### #.... ####. ....# ....# #...# .###.
6 ..##. .#... #.... ####. #...# #...# .###.
7 ##### ....# ...#. ..#.. .#... .#... .#...
8 .###. #...# #...# .###. #...# #...# .###.
9 .###. #...# #...# .#### ....# ...#. .##..
A .###. #...# #...# ##### #...# #...# #...#
B ####. #...# #...# ####. #...# #...# ####.
C .###. #...# #.... #.... #.... #...# .###.
D ###.. #..#. #...# #...# #...# #..#. ###..
E ##### #.... #.... ####. #.... #.... #####
F ##### #.... #.... ####. #.... #.... #....
G .###. #...# #.... #.### #...# #...# .####
H #...# #...# #...# ##### #...# #...# #...#
I .###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
J ..### ...#. ...#. ...#. ...#. #..#. .##..
K #...# #..#. #.#.. ##... #.#.. #..#. #...#
L #.... #.... #.... #.... #.... #.... #####
M #...# ##.## #.#.# #.#.# #...# #...# #...#
N #...# #...# ##..# #.#.# #..## #...# #...#
O .###. #...# #...# #...# #...# #...# .###.
P ####. #...# #...# ####. #.... #.... #....
Q .###. #...# #...# #...# #.#.# #..#. .##.#
R ####. #...# #...# ####. #.#.. #..#. #...#
S .#### #.... #.... .###. ....# ....# ####.
T ##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
U #...# #...# #...# #...# #...# #...# .###.
V #...# #...# #...# #...# #...# .#.#. ..#..
W #...# #...# #...# #.#.# #.#.# #.#.# .#.#.
X #...# #...# .#.#. ..#.. .#.#. #...# #...#
Y #...# #...# .#.#. ..#.. ..#.. ..#.. ..#..
Z ##### ....# ...#. ..#.. .#... #.... #####
a ..... ..... .###. ....# .#### #...# .####
b #.... #.... ####. #...# #...# #...# ####.
c ..... ..... .###. #.... #.... #...# .###.
d ....# ....# .#### #...# #...# #...# .####
e ..... ..... .###. #...# ##### #.... .###.
f ..##. .#..# .#... ###.. .#... .#... .#...
g ..... ..... .#### #...# #...# #...# .#### ....# .###.
h #.... #.... #.##. ##..# #...# #...# #...#
i ..#.. ..... .##.. ..#.. ..#.. ..#.. .###.
j ...#. ..... ..##. ...#. ...#. ...#. ...#. #..#. .##..
k #.... #.... #..#. #.#.. ##... #.#.. #..#.
l .##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###.
m ..... ..... ##.#. #.#.# #.#.# #.#.# #.#.#
n ..... ..... #.##. ##..# #...# #...# #...#
o ..... ..... .###. #...# #...# #...# .###.
p ..... ..... ####. #...# #...# #...# ####. #.... #....
q ..... ..... .#### #...# #...# #...# .#### ....# ....#
r ..... ..... #.##. ##..# #.... #.... #....
s ..... ..... .#### #.... .###. ....# ####.
t .#... .#... ###.. .#... .#... .#..# ..##.
u ..... ..... #...# #...# #...# #..## .##.#
v ..... ..... #...# #...# #...# .#.#. ..#..
w ..... ..... #...# #...# #.#.# #.#.# .#.#.
x ..... ..... #...# .#.#. ..#.. .#.#. #...#
y ..... ..... #...# #...# #...# #...# .#### ....# .###.
z ..... ..... ##### ...#. ..#.. .#... #####
. ..... ..... ..... ..... ..... .##.. .##..
, ..... ..... ..... ..... ..... .##.. ..#.. .#...
- ..... ..... ..... .###. ..... ..... .....
( ...#. ..#.. .#... .#... .#... ..#.. ...#.
) .#... ..#.. ...#. ...#. ...#. ..#.. .#...
[ .###. .#... .#... .#... .#... .#... .###.
] .###. ...#. ...#. ...#. ...#. ...#. .###.
/ ..... ....# ...#. ..#.. .#... #.... .....
% ##... ##..# ...#. ..#.. .#... #..## ...##
: ..... .##.. .##.. ..... .##.. .##.. .....
; ..... .##.. .##.. ..... .##.. .##.. ..#.. .#...
@ .###. #...# #.### #.#.# #.### #.... .###.
+ ..... ..#.. ..#.. ##### ..#.. ..#.. .....
= ..... ..... ##### ..... ##### ..... .....
< ...#. ..#.. .#... #.... .#... ..#.. ...#.
> .#... ..#.. ...#. ....# ...#. ..#.. .#...
_ ..... ..... ..... ..... ..... ..... ##### .....
! ..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..
? .###. #...# ....# ...#. ..#.. ..... ..#..
' ..#.. ..#.. .#... ..... ..... ..... .....
* ..... ..#.. #.#.# .###. #.#.# ..#.. .....
| ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..
"""

GW, GH = 5, 9


def _parse_font():
    font = {}
    for line in FONT_SRC.strip().splitlines():
        parts = line.split()
        ch = " " if parts[0] == "SP" else parts[0]
        rows = parts[1:] + ["....."] * (GH - len(parts) + 1)
        font[ch] = [[c == "#" for c in r] for r in rows[:GH]]
    return font


FONT = _parse_font()
REPLACE = {"µ": "u", "×": "x", "—": "-", "→": ">", "≤": "<=", "≥": ">=", "’": "'"}


class Canvas:
    def __init__(self, w, h, bg=(255, 255, 255)):
        self.w, self.h = w, h
        self.px = bytearray(bytes(bg) * (w * h))

    def rect(self, x, y, w, h, color):
        x0, y0 = max(0, int(x)), max(0, int(y))
        x1, y1 = min(self.w, int(x + w)), min(self.h, int(y + h))
        if x1 <= x0 or y1 <= y0:
            return
        row = bytes(color) * (x1 - x0)
        for yy in range(y0, y1):
            i = (yy * self.w + x0) * 3
            self.px[i:i + len(row)] = row

    def text(self, x, y, s, color=(30, 30, 30), scale=2):
        """Draw s with its top-left at (x, y); returns the x after the last glyph."""
        for a, b in REPLACE.items():
            s = s.replace(a, b)
        for ch in s:
            g = FONT.get(ch, FONT["?"])
            for ry, row in enumerate(g):
                for rx, on in enumerate(row):
                    if on:
                        self.rect(x + rx * scale, y + ry * scale, scale, scale, color)
            x += (GW + 1) * scale
        return x

    @staticmethod
    def text_width(s, scale=2):
        for a, b in REPLACE.items():
            s = s.replace(a, b)
        return len(s) * (GW + 1) * scale

    def dashed_vline(self, x, y0, y1, color, dash=6, width=2):
        y = y0
        while y < y1:
            self.rect(x, y, width, min(dash, y1 - y), color)
            y += dash * 2

    def png(self, path):
        raw = bytearray()
        stride = self.w * 3
        for y in range(self.h):
            raw.append(0)
            raw += self.px[y * stride:(y + 1) * stride]

        def chunk(kind, data):
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        data = (b"\x89PNG\r\n\x1a\n"
                + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))
        with open(path, "wb") as f:
            f.write(data)


ORANGE = (230, 120, 20)
GREY = (140, 150, 165)
GREEN = (20, 130, 50)
RED = (200, 40, 40)
INK = (30, 30, 30)
FAINT = (225, 228, 232)
TARGET = (200, 40, 40)


def panel(c, x, y, w, h, title, bars, unit, fmt, target=None, target_label="", status=None,
          all_vigil=False):
    """bars: [(name, value or None, note)]; lower is better. target: a value to mark."""
    c.rect(x, y, w, h, (248, 249, 251))
    c.text(x + 12, y + 10, title, INK, 2)
    if status:
        col = GREEN if status == "PASS" else RED if status == "MISS" else GREY  # TIE, n/a: grey
        sw = Canvas.text_width(status, 2)
        c.rect(x + w - sw - 22, y + 6, sw + 12, 26, col)
        c.text(x + w - sw - 16, y + 11, status, (255, 255, 255), 2)
    sub = unit + (f"; target {target_label}" if target_label else "")
    c.text(x + 12, y + 34, sub, (90, 90, 90), 2 if Canvas.text_width(sub, 2) <= w - 24 else 1)
    label_w = 12 * 12
    value_w = 12 * 10
    bx = x + 12 + label_w
    bw = w - 24 - label_w - value_w
    vals = [v for _, v, _ in bars if v is not None]
    top = max(vals + ([target] if target is not None else []) + [1e-9])
    top *= 1.05
    n = len(bars)
    area_y = y + 58
    slot = (h - 58 - 10) / max(n, 1)
    bh = min(22, slot - 6)
    for i, (name, v, note) in enumerate(bars):
        by = area_y + i * slot + (slot - bh) / 2
        c.text(x + 12, by + (bh - 18) / 2 + 2, name, INK, 2)
        c.rect(bx, by, bw, bh, FAINT)
        if v is None:
            c.text(bx + 6, by + (bh - 18) / 2 + 2, note or "n/a", (120, 120, 120), 2)
            continue
        length = max(2, bw * max(v, 0) / top)
        c.rect(bx, by, length, bh, ORANGE if all_vigil or name.startswith("vigil") else GREY)
        c.text(bx + bw + 8, by + (bh - 18) / 2 + 2, fmt(v), INK, 2)
    if target is not None:
        tx = bx + bw * target / top
        c.dashed_vline(tx, area_y - 4, y + h - 6, TARGET)


def render(R, targets, path):
    names = ["vigil", "tini-static", "tini", "dumb-init", "catatonit"]
    status = {t[0]: t[4] for t in targets}

    def st(prefix):
        for k, v in status.items():
            if k.startswith(prefix):
                return v
        return None

    def series(metric, key, scale=1.0, sub=None):
        out = []
        for n in names:
            d = R.get(metric, {}).get(n, {}) if isinstance(R.get(metric), dict) else {}
            if sub is not None:
                d = d.get(sub, {})
            v = d.get(key) if isinstance(d, dict) else None
            out.append((n, None if v is None else v * scale, "n/a"))
        return out

    W, PW, PH, GAP = 1440, 700, 250, 14
    panels = []
    ts = R["size"]["tini-static"]["bytes"]
    panels.append(dict(title="Binary size", unit="KiB",
                       bars=[(n, R["size"][n]["bytes"] / 1024, "") for n in names],
                       fmt=lambda v: f"{v:,.0f}", target=0.7 * ts / 1024,
                       target_label="<= 0.7x tini-static", status=st("binary size")))
    peer_rss = [R["idle"][n]["rss_kib"] for n in names[1:] if "rss_kib" in R["idle"].get(n, {})]
    panels.append(dict(title="Idle RSS", unit="KiB", bars=series("idle", "rss_kib"),
                       fmt=lambda v: f"{v:,.0f}", target=min(peer_rss) if peer_rss else None,
                       target_label="<= smallest peer", status=st("idle RSS")))
    panels.append(dict(title="Start-up overhead (subreaper)", unit="us over busybox true alone",
                       bars=series("startup", "overhead_us"), fmt=lambda v: f"{v:,.0f} us",
                       target_label="<= best peer", status=st("start-up overhead")))
    panels.append(dict(title="Start-up overhead (PID 1)", unit="us, both under unshare; informational",
                       bars=series("startup_pid1", "overhead_us"), fmt=lambda v: f"{v:,.0f} us"))
    panels.append(dict(title="SIGTERM to exit", unit="us, median",
                       bars=series("sigterm", "median_us"), fmt=lambda v: f"{v:,.0f} us",
                       target=1000, target_label="< 1 ms", status=st("SIGTERM")))
    runs = (("forward", f"{R['machine']['nproc']} CPUs"), ("forward_pinned", "one CPU"))
    for metric, where in runs:
        for sink, what in (("pipe", "stderr a drained pipe"), ("null", "stderr /dev/null")):
            d = R.get(metric, {}).get(sink, {})
            bars = [(n, d.get(n, {}).get("median_us"), "n/a") for n in names]
            peers = [v for n, v, _ in bars[1:] if v is not None]
            panels.append(dict(title=f"Forwarding, {where}, {what}", fmt=lambda v: f"{v:,.1f} us",
                               unit="us, median, kill to handler", bars=bars,
                               target=1.1 * min(peers) if peers else None,
                               target_label="<= 1.1x best peer",
                               status=st(f"forwarding on {where}, {what}")))
    panels.append(dict(title="Idle wake-ups", unit=f"per s over {R['params']['idle_s']} s",
                       bars=series("idle", "wakeups_per_s"), fmt=lambda v: f"{v:.2f}/s",
                       target_label="0 for vigil", status=st("zero idle")))
    big = str(max(R["params"]["orphan_counts"]))
    panels.append(dict(title=f"Reaping {int(big):,} orphans (PID 1)", unit="ms to reap all",
                       bars=series("orphans", "reap_ms", sub=big), fmt=lambda v: f"{v:,.1f} ms",
                       target_label="no zombies left", status=st("no zombies")))
    w = R["healthz"]
    h = R["idle"].get("vigil+health", {})
    ok = "error" not in w
    na = "n/a (not supported)"
    vbars = [("idle", R["idle"].get("vigil", {}).get("rss_kib"), "n/a"),
             ("+health", h.get("rss_kib"), na),
             ("+wrk load", w.get("hwm_kib") if ok else None, na)]
    panels.append(dict(title="vigil RSS", unit="KiB; +health: 5 s tcp probe; load: peak",
                       bars=vbars, fmt=lambda v: f"{v:,.0f}", target=2048,
                       target_label="< 2 MB", status=st("RSS under"), all_vigil=True))
    lbars = [("p50", w.get("p50_ms") if ok else None, na),
             ("p99", w.get("p99_ms") if ok else None, na)]
    rps = f", {w['rps']:,.0f} req/s" if ok and w.get("rps") else ""
    panels.append(dict(title="vigil /healthz latency", unit=f"ms, wrk -c50{rps}",
                       bars=lbars, fmt=lambda v: f"{v:.2f} ms", target=2.0,
                       target_label="p99 < 2 ms", status=st("/healthz p99"), all_vigil=True))
    rows = (len(panels) + 1) // 2
    H = 70 + rows * (PH + GAP) + 40
    c = Canvas(W, H)
    c.text(14, 12, "vigil vs tini, dumb-init, catatonit: lower is better", INK, 3)
    m = R["machine"]
    line = (f"{R['command']}, {m['date']}; {m['model']}, nproc {m['nproc']}, "
            f"kernel {m['kernel']}")
    c.text(14, 44, line, (90, 90, 90), 2 if Canvas.text_width(line, 2) <= W - 28 else 1)
    for i, p in enumerate(panels):
        px = 14 + (i % 2) * (PW + GAP)
        py = 70 + (i // 2) * (PH + GAP)
        panel(c, px, py, PW, PH, p["title"], p["bars"], p["unit"], p["fmt"], p.get("target"),
              p.get("target_label", ""), p.get("status"), p.get("all_vigil", False))
    c.text(14, H - 28, "orange: vigil; grey: peers; dashed red line: the target; PASS/MISS/TIE as in BENCHMARKS.md",
           (90, 90, 90), 2)
    c.png(path)

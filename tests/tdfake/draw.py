"""Draws a saved component description (the fake's .tox) as an SVG picture: the
operators at their node positions, coloured by family as in TouchDesigner, the
operator references between them, and the custom parameter pages.

    python3 tests/tdfake/draw.py DESCRIPTION.json OUT.svg
"""

import json
import sys
from xml.sax.saxutils import escape

FAMILY_COLOURS = {"DAT": "#8c6db3", "CHOP": "#5a9e56", "COMP": "#8a8a8a"}
BOX_W, BOX_H, SCALE, MARGIN, PANEL_W = 150, 56, 1.0, 40, 300


def family(op_type):
    return next((f for f in FAMILY_COLOURS if op_type.endswith(f)), "COMP")


def draw(description):
    ops = description["children"]
    xs = [op["nodeX"] for op in ops]
    ys = [-op["nodeY"] for op in ops]
    left, top = min(xs), min(ys)
    width = int(max(xs) - left + BOX_W + 2 * MARGIN)
    height = int(max(ys) - top + BOX_H + 2 * MARGIN)
    centre = {}
    parts = []
    for op, x, y in zip(ops, xs, ys):
        bx, by = x - left + MARGIN, y - top + MARGIN
        centre[op["path"]] = (bx + BOX_W / 2, by + BOX_H / 2)
        colour = FAMILY_COLOURS[family(op["type"])]
        parts.append('<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" stroke="#222"/>'
                     % (bx, by, BOX_W, BOX_H, colour))
        parts.append('<text x="%d" y="%d" class="name">%s</text>' % (bx + 8, by + 22, escape(op["name"])))
        parts.append('<text x="%d" y="%d" class="type">%s</text>' % (bx + 8, by + 42, escape(op["type"])))
    edges = []
    for op in ops:
        for par, target in sorted(op.get("pars", {}).items()):
            if target in centre and target != op["path"]:
                (x1, y1), (x2, y2) = centre[target], centre[op["path"]]
                edges.append('<line x1="%d" y1="%d" x2="%d" y2="%d" class="ref"/>' % (x1, y1, x2, y2))
    panel = ['<text x="%d" y="%d" class="title">%s (%s)</text>'
             % (width + 10, MARGIN, escape(description["name"]), escape(description["type"]))]
    y = MARGIN + 24
    page = None
    for par in description.get("customPars", []):
        if par["page"] != page:
            page = par["page"]
            y += 8
            panel.append('<text x="%d" y="%d" class="page">%s page</text>' % (width + 10, y, escape(page)))
            y += 18
        flag = " (read-only)" if par["readOnly"] else ""
        panel.append('<text x="%d" y="%d" class="par">%s  %s%s</text>'
                     % (width + 18, y, escape(par["name"]), escape(par["style"]), flag))
        y += 16
    total_w, total_h = width + PANEL_W, max(height, y + MARGIN)
    style = ("<style>text{font-family:sans-serif;fill:#eee}.name{font-size:14px;font-weight:bold}"
             ".type{font-size:11px}.title{font-size:15px;font-weight:bold;fill:#222}.page{font-size:13px;"
             "font-weight:bold;fill:#222}.par{font-size:12px;fill:#333}.ref{stroke:#c33;stroke-width:2;"
             "stroke-dasharray:5 3}</style>")
    return "\n".join(['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">'
                      % (total_w, total_h, total_w, total_h), style,
                      '<rect width="%d" height="%d" fill="#3a3a3a"/>' % (width, total_h),
                      '<rect x="%d" width="%d" height="%d" fill="#f4f4f4"/>' % (width, PANEL_W, total_h)]
                     + edges + parts + panel + ["</svg>", ""])


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        svg = draw(json.load(f))
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(svg)

"""The statistics report: one self-contained HTML file (inline SVG, no script, nothing fetched)."""

from __future__ import annotations

from html import escape

from services.viewer.dataset import DatasetView
from services.viewer.stats import Figures, Histogram, compute_figures

# Plot size in px: two plots side by side on a laptop screen, readable printed on A4.
PLOT_WIDTH, PLOT_HEIGHT = 460, 220
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 44, 74, 10
# Axis labels longer than this are cut (the bar's tooltip has the whole text).
LABEL_CHARS = 22
BAR_COLOUR = "#3b7dd8"

STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#1d2433;background:#fff}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde;padding-bottom:4px}
.grid{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0;border:1px solid #e3e6ee;border-radius:6px;padding:8px;background:#fafbfd;width:478px}
figcaption{font-weight:600;margin-bottom:4px}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#778}
svg text{font:10px system-ui,sans-serif;fill:#445}
"""


def bar_chart(name: str, labels: list[str], counts: list[float], note: str = "") -> str:
    """A bar chart as an SVG figure; ``data-plot`` names it for readers and tests."""
    caption = f"<figcaption>{escape(name)}{f' <span class=muted>{escape(note)}</span>' if note else ''}</figcaption>"
    if not counts:
        return (f'<figure class="plot" data-plot="{escape(name)}" data-bars="0">{caption}'
                f'<p class="muted">no values in this dataset</p></figure>')
    inner_w = PLOT_WIDTH - MARGIN_LEFT - 8
    inner_h = PLOT_HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    top = max(counts) or 1
    step = inner_w / len(counts)
    parts = [f'<svg width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" role="img" aria-label="{escape(name)}">',
             f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP + inner_h}" x2="{PLOT_WIDTH - 8}" '
             f'y2="{MARGIN_TOP + inner_h}" stroke="#99a"/>',
             f'<text x="{MARGIN_LEFT - 6}" y="{MARGIN_TOP + 8}" text-anchor="end">{top:g}</text>',
             f'<text x="{MARGIN_LEFT - 6}" y="{MARGIN_TOP + inner_h}" text-anchor="end">0</text>']
    label_every = max(1, len(labels) // 10)
    for i, (label, count) in enumerate(zip(labels, counts)):
        h = inner_h * count / top
        x = MARGIN_LEFT + i * step
        parts.append(f'<rect class="bar" x="{x + 1:.1f}" y="{MARGIN_TOP + inner_h - h:.1f}" '
                     f'width="{max(step - 2, 1):.1f}" height="{h:.1f}" fill="{BAR_COLOUR}">'
                     f'<title>{escape(label)}: {count:g}</title></rect>')
        if i % label_every == 0:
            cx, cy = x + step / 2, MARGIN_TOP + inner_h + 8
            parts.append(f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
                         f'transform="rotate(-40 {cx:.1f} {cy:.1f})">{escape(_short(label))}</text>')
    parts.append("</svg>")
    return f'<figure class="plot" data-plot="{escape(name)}" data-bars="{len(counts)}">{caption}{"".join(parts)}</figure>'


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1] + "\u2026"


def _histogram_figure(h: Histogram) -> str:
    total = sum(h.counts)
    note = f"{total} clip{'s' if total != 1 else ''}" + (f", {h.missing} without a value" if h.missing else "")
    return bar_chart(h.column, h.labels, h.counts, note)


def _count_table(title: str, counts: dict[str, int], empty: str) -> str:
    if not counts:
        return f"<p class='muted'>{escape(empty)}</p>"
    rows = "".join(f"<tr><td>{escape(k)}</td><td class=n>{v}</td></tr>" for k, v in counts.items())
    return f"<table><tr><th>{escape(title)}</th><th>clips</th></tr>{rows}</table>"


def render_report(figures: Figures, title: str) -> str:
    f = figures
    labels = list(f.label_clips)
    timing_rows = "".join(
        f"<tr><td>{escape(t.stage)}</td><td class=n>{t.items}</td><td class=n>{t.total_s:.1f}</td>"
        f"<td class=n>{t.mean_s:.2f}</td><td class=n>{t.p95_s:.2f}</td></tr>" for t in f.timings)
    sections = [
        f"<h1>{escape(title)}</h1>",
        f"<p>{f.videos} videos, {f.clips} clips: <b>{f.kept}</b> kept, <b>{f.filtered}</b> filtered, "
        f"<b>{f.failed}</b> failed.</p>",
        "<h2>Scores and annotations</h2><div class=grid>",
        *(_histogram_figure(h) for h in f.histograms),
        "</div><h2>Camera motion</h2><div class=grid>",
        bar_chart("camera-motion labels (clips)", labels, [f.label_clips[k] for k in labels]),
        bar_chart("camera-motion labels (frames)", labels, [f.label_frames[k] for k in labels]),
        "</div><h2>What was filtered, and why</h2><div class=grid>",
        bar_chart("filter rules", list(f.filter_rules), list(f.filter_rules.values()),
                  "clips failing each rule; a clip may fail several"),
        bar_chart("failed stages", list(f.failed_stages), list(f.failed_stages.values())),
        bar_chart("shots dropped before clipping", list(f.dropped_shots), list(f.dropped_shots.values())),
        "</div>",
        _count_table("filter rule", f.filter_rules, "no clip was filtered out"),
        "<h2>Time per stage</h2><div class=grid>",
        bar_chart("stage time (s, total)", [t.stage for t in f.timings], [round(t.total_s, 2) for t in f.timings]),
        "</div>",
        "<table><tr><th>stage</th><th>items</th><th>total s</th><th>mean s</th><th>p95 s</th></tr>"
        f"{timing_rows}</table>",
    ]
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>")


def dataset_report(view: DatasetView, title: str) -> str:
    index = view.index()
    figures = compute_figures(index.rows, index.kinds, index.segments, view.records(), view.book.all_videos())
    return render_report(figures, title)

"""`spatialvid report DIR`: one self-contained HTML file with every figure."""

from __future__ import annotations

import re

import pandas as pd

from tests.viewer.conftest import run_cli
from services.viewer.stats import REQUIRED_HISTOGRAMS

SCORES = ("luminance_mean", "luminance_min", "luminance_max", "motion", "flow_magnitude", "ocr", "quality_brisque",
          "aesthetic")


def plots(html: str) -> dict[str, int]:
    return {name: int(bars) for name, bars in re.findall(r'data-plot="([^"]+)" data-bars="(\d+)"', html)}


def test_report_has_every_histogram_label_count_filter_rule_and_timing(bikes_dataset, tmp_path):
    out = tmp_path / "report.html"
    run_cli("report", str(bikes_dataset), "--out", str(out))
    html = out.read_text()
    found = plots(html)
    table = pd.read_parquet(bikes_dataset / "metadata.parquet")
    for column in (*SCORES, *REQUIRED_HISTOGRAMS):
        assert column in found, column
        has_values = column == "duration" or table[column].notna().any()
        assert (found[column] > 0) == bool(has_values), column
    assert found["camera-motion labels (clips)"] > 0
    # The fixture's motion floor filters one clip: the rule is counted.
    assert found["filter rules"] == 1 and ">motion<" in html.replace("<td>", ">").replace("</td>", "<")
    # Every stage that ran has its time.
    assert found["stage time (s, total)"] == 6
    # Self-contained: nothing to fetch.
    assert not re.search(r'(src|href)=["\']?(https?:)?//', html) and "<script" not in html


def test_report_refuses_a_folder_without_a_dataset(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "services.cli", "report", str(tmp_path)], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "holds no dataset" in done.stderr

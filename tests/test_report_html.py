"""The HTML report: self-contained, user data escaped, text differences marked."""
from __future__ import annotations

import numpy as np

import leakguard as lg

CFG = lg.AuditConfig(progress=False)


def test_user_text_and_file_names_are_escaped(tmp_path):
    evil = '<script>alert("x")</script> & <b>bold</b>'
    report = lg.audit({"<img src=x onerror=alert(1)>": [evil, "plain"], "val": [evil]},
                      train="<img src=x onerror=alert(1)>", config=CFG, checks=["exact_duplicate"])
    html = report.to_html()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<img src=x onerror" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html


def test_text_differences_are_marked():
    from leakguard.report.html import text_diff

    a, b = text_diff("the quick brown fox jumps", "the quick red fox jumps")
    assert ("brown ", True) in a and ("red ", True) in b
    assert a[0] == ("the quick ", False)


def test_report_is_self_contained_with_thumbnails(rng):
    imgs = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    report = lg.audit({"train": imgs, "val": imgs[[1]]}, config=CFG, checks=["exact_duplicate"])
    html = report.to_html()
    assert html.count("data:image/png;base64,") >= 2
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert 'id="verdict"' in html and ">fail<" in html

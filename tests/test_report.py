"""report.html: self-contained, well-formed, every plot referenced; and the comparison page."""

import re
import shutil
from html.parser import HTMLParser

from tests.conftest import run_cli

VOID = {"meta", "img", "br", "hr", "input", "link", "path", "rect", "use", "line", "circle",
        "polyline", "polygon",
        "stop", "ellipse", "image"}


class Balanced(HTMLParser):
    """Every opened element closed, in order; SVG's self-closing elements allowed."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID and (not self.stack or self.stack[-1] != tag):
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def _parse(path):
    text = path.read_text(encoding="utf-8")
    p = Balanced()
    p.feed(text)
    p.close()
    assert not p.errors and not p.stack, (p.errors[:5], p.stack[:5])
    assert text.startswith("<!DOCTYPE html>")
    # self-contained: nothing fetched from anywhere
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    return text, p


def test_training_writes_a_self_contained_report(tiny_run):
    text, p = _parse(tiny_run / "report.html")
    ids = {a.get("id") for _, a in p.tags}
    assert {"curves", "per-class", "confusion", "gates-0"} <= ids
    imgs = [a["src"] for t, a in p.tags if t == "img"]
    assert imgs and all(s.startswith("data:image/png;base64,") and len(s) > 2000 for s in imgs)
    assert text.count("<svg") >= 2  # curves and per-class bars, inline
    assert "Worst errors" in text and "Config" in text


def test_report_cli_one_run_and_comparison(tiny_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other, ignore=shutil.ignore_patterns("wandb"))
    cfg = other / "config.yaml"
    cfg.write_text(cfg.read_text().replace("hidden_size: 16", "hidden_size: 17"))
    out = tmp_path / "one.html"
    code, stdout, err = run_cli("report", tiny_run, "--out", out)
    assert code == 0, err
    assert stdout.strip() == str(out)
    _parse(out)
    both = tmp_path / "both.html"
    code, _, err = run_cli("report", tiny_run, other, "--out", both)
    assert code == 0, err
    text, p = _parse(both)
    assert "model.encoder.hidden_size" in text and "(best)" in text
    assert text.count("<svg") == 1


def test_report_of_an_unfinished_run_is_a_clear_error(tmp_path):
    code, _, err = run_cli("report", tmp_path)
    assert code == 2 and "no metrics.json" in err and "Traceback" not in err

"""Leaderboards: submit checks, generated Markdown/HTML (parsed, and rendered in headless Chromium
when it is installed), paper tables kept apart from reproduced rows."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict
from html.parser import HTMLParser
from pathlib import Path

import pytest

from characterbench.cli import main
from characterbench.leaderboard import (
    NOT_REPRODUCED,
    Board,
    SubmissionError,
    build,
    load_board,
    new_board,
    register_gt,
    save_board,
    submit,
)
from tests.characterbench.conftest import OVERRIDE

# Numbers of a made-up table, to test the paper-table plumbing; no real paper values here.
FAKE_PAPER_TABLE = {
    "paper": "Example et al. (test fixture)",
    "source": "Table 9",
    "status": NOT_REPRODUCED,
    "task": "multiview",
    "caption": "made-up rows for the test",
    "rows": [{"method": "MethodA", "metrics": {"psnr": 20.5, "fv4d": 300.0}}, {"method": "MethodB", "metrics": {"psnr": 22.25}}],
}


class Tables(HTMLParser):
    """Collect every <table>: caption, header texts, and body rows of (text, data-sort) cells."""

    def __init__(self):
        super().__init__()
        self.tables, self.scripts, self._cell, self._caption = [], 0, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"caption": "", "rows": [], "class": attrs.get("class")})
        elif tag == "caption":
            self._caption = True
        elif tag == "tr":
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._cell = {"text": "", "sort": attrs.get("data-sort"), "tag": tag}
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "caption":
            self._caption = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        elif self._caption:
            self.tables[-1]["caption"] += data


def parse_tables(text: str) -> Tables:
    parser = Tables()
    parser.feed(text)
    for t in parser.tables:
        rows = [r for r in t["rows"] if r]
        t["headers"] = [c["text"].strip() for r in rows if r[0]["tag"] == "th" for c in r]
        t["rows"] = [[(c["text"].strip(), c["sort"]) for c in r] for r in rows if r[0]["tag"] == "td"]
    return parser


@pytest.fixture(scope="module")
def board(gt_shard, tmp_path_factory) -> Path:
    """A board on the tiny ground truth; entries need PSNR only (the others need weights)."""
    path = tmp_path_factory.mktemp("boards") / "characterbench-v1"
    new_board(path)
    register_gt(path, gt_shard, "two fake samples", progress=False)
    b = load_board(path)
    save_board(Board(**{**asdict(b), "required_metrics": {"multiview": ["psnr"], "apose": ["psnr"]}}), path)
    return path


CLEAN_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def records(baselines, gt_shard, tmp_path_factory) -> dict[str, Path]:
    """PSNR records under the real protocol v1 (512 px), and one under a modified protocol. They name a
    clean commit whatever the state of this checkout (submit refuses records of modified trees)."""
    import characterbench.evaluate

    out = tmp_path_factory.mktemp("records")
    mp = pytest.MonkeyPatch()
    mp.setattr(characterbench.evaluate, "git_commit", lambda path=None: CLEAN_COMMIT)
    paths = {}
    for name in ("ground-truth", "front-view", "static-apose"):
        paths[name] = out / f"{name}.json"
        args = ["eval", "--pred", str(baselines[name]), "--gt", str(gt_shard), "--metrics", "psnr", "--out", str(paths[name])]
        assert main(args + ["--quiet", "--label", name]) == 0
    paths["custom"] = out / "custom.json"
    args = ["eval", "--pred", str(baselines["front-view"]), "--gt", str(gt_shard), "--metrics", "psnr", "--out", str(paths["custom"])]
    assert main(args + ["--quiet", *OVERRIDE]) == 0
    mp.undo()
    return paths


def scored(records, baselines, gt_shard, name: str) -> list[str]:
    """``submit`` arguments that re-score record ``name`` from its predictions."""
    return [str(records[name]), "--pred", str(baselines[name]), "--gt", str(gt_shard), "--quiet"]


def fresh(board: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(board, tmp_path / board.name))


def test_submit_and_build(board, records, baselines, gt_shard, tmp_path, capsys):
    board = fresh(board, tmp_path)
    (board / "paper").mkdir()
    (board / "paper" / "example-table9.json").write_text(json.dumps(FAKE_PAPER_TABLE))
    assert main(["submit", *scored(records, baselines, gt_shard, "front-view"), "--board", str(board), "--url", "https://example.org/a<b>"]) == 0
    assert main(["submit", *scored(records, baselines, gt_shard, "static-apose"), "--board", str(board), "--name", "Static A-pose"]) == 0
    assert main(["submit", *scored(records, baselines, gt_shard, "ground-truth"), "--board", str(board), "--no-build"]) == 0
    assert main(["leaderboard", "build", "--board", str(board)]) == 0
    assert sorted(p.name for p in (board / "entries").glob("*.json")) == [
        "multiview--front-view.json", "multiview--ground-truth.json", "multiview--static-a-pose.json"
    ]
    entry = json.loads((board / "entries" / "multiview--static-a-pose.json").read_text())
    assert entry["entry"]["name"] == "Static A-pose" and entry["entry"]["status"] == "reproduced with characterbench"
    # The SHA-256 manifest of exactly the scored files (81 cells x 2 samples), independently hashed here.
    import hashlib

    files = entry["entry"]["predictions"]["files"]
    assert entry["entry"]["predictions"]["count"] == len(files) == 162
    rel = "alice__walk/view05/frame012.png"
    assert files[rel] == hashlib.sha256((baselines["static-apose"] / rel).read_bytes()).hexdigest()
    assert entry["entry"]["verified"]["tolerance"]["rel"] == 1e-4
    # A preview strip per row: the 9 protocol views of the first sample at the middle frame.
    from PIL import Image

    assert entry["entry"]["preview"] == "previews/multiview--static-a-pose.png"
    assert Image.open(board / entry["entry"]["preview"]).size == (9 * 96, 96)

    md = (board / "README.md").read_text()
    assert "do not edit" in md and "| Method | N | PSNR ↑ | Preview | Date | Commit |" in md
    assert "![9 views](previews/multiview--front-view.png)" in md
    assert f"| {CLEAN_COMMIT} |" in md  # full commits
    assert "[front-view](https://example.org/a<b>)" in md and "| Static A-pose | 2 |" in md
    assert md.index("Reproduced with characterbench") < md.index("MethodA")  # paper rows in their own section
    assert "Example et al. (test fixture), Table 9" in md and NOT_REPRODUCED.capitalize() in md

    page = parse_tables((board / "index.html").read_text())
    assert page.scripts == 1
    ours, paper = page.tables  # the apose task has no entries: a note, no table
    assert "(apose): no entries yet." in (board / "index.html").read_text()
    assert ours["class"] == "board" and ours["headers"] == ["Method", "N", "PSNR ↑", "Preview", "Date", "Commit"]
    assert [r[0][0] for r in ours["rows"]] == ["front-view", "ground-truth", "Static A-pose"]
    psnr = {r[0][0]: float(r[2][1]) for r in ours["rows"]}
    assert psnr["ground-truth"] == 100.0 and psnr["Static A-pose"] < psnr["front-view"] < 100.0
    assert all(cell[1] is not None for row in ours["rows"] for cell in row)  # every cell sortable
    assert paper["headers"] == ["Method", "PSNR ↑", "FV4D ↓", "Source"]
    assert [(r[0][0], r[-1][0]) for r in paper["rows"]] == [("MethodA", "Table 9"), ("MethodB", "Table 9")]
    assert paper["rows"][1][2] == ("–", "")  # not reported in that table
    assert "a&lt;b&gt;" in (board / "index.html").read_text()  # escaped


def test_submit_rejects_what_does_not_fit(board, records, gt_folder, tmp_path):
    board = fresh(board, tmp_path)
    with pytest.raises(SubmissionError) as err:
        submit(records["custom"], board)
    text = "\n".join(err.value.problems)
    assert "protocol version: expected 'characterbench-v1', got 'characterbench-v1+custom'" in text
    assert "protocol fingerprint" in text and "name: give --name" in text
    assert "predictions: pass --pred DIR --gt PATH" in text and "--unverified" in text
    # A record of a modified checkout names no code: refused.
    dirty = tmp_path / "dirty.json"
    data = json.loads(records["front-view"].read_text())
    data["git_commit"] = CLEAN_COMMIT + "+dirty"
    dirty.write_text(json.dumps(data))
    with pytest.raises(SubmissionError, match=r"git_commit: .*\+dirty is a modified checkout"):
        submit(dirty, board, unverified=True)

    other = fresh(board, tmp_path / "other")
    b = load_board(other)
    save_board(Board(**{**asdict(b), "gt_manifest_hash": "sha256:" + "1" * 64, "required_metrics": {"multiview": ["psnr", "fv4d"]}}), other)
    with pytest.raises(SubmissionError) as err:
        submit(records["front-view"], other, unverified=True)
    text = "\n".join(err.value.problems)
    assert f"ground-truth manifest hash: expected sha256:{'1' * 64}" in text and "missing ['fv4d']" in text

    submit(records["front-view"], board, unverified=True)
    with pytest.raises(SubmissionError, match="pass --replace"):
        submit(records["front-view"], board, unverified=True)
    assert submit(records["front-view"], board, replace=True, unverified=True).exists()


def test_unregistered_board_and_hand_edits(board, records, tmp_path, capsys):
    empty = tmp_path / "new-board"
    new_board(empty)
    assert main(["submit", str(records["front-view"]), "--board", str(empty), "--unverified"]) == 1
    assert "no registered ground truth" in capsys.readouterr().err
    board = fresh(board, tmp_path)
    path = submit(records["front-view"], board, unverified=True)
    original = path.read_text()
    data = json.loads(original)
    data["metrics"]["psnr"] = 99.0  # a hand edit of one value alone
    path.write_text(json.dumps(data))
    with pytest.raises(SubmissionError, match=r"metrics.psnr: 99.0 is not the mean of its per-sample values"):
        build(board)
    data["gt_manifest_hash"] = "sha256:" + "2" * 64  # a hand edit that moves the entry to another test set
    path.write_text(json.dumps(data))
    with pytest.raises(SubmissionError, match="ground-truth manifest hash"):
        build(board)


def test_impossible_records_are_refused_with_every_problem(board, records, tmp_path):
    from characterbench.leaderboard import check_submission
    from characterbench.results import load_results

    b = load_board(board)
    good = load_results(records["front-view"])
    assert check_submission(good, b) == []
    data = good.to_dict()
    data["protocol"]["psnr_cap_db"] = 1000.0
    data["sample_count"] += 1
    data["per_sample"][1]["key"] = data["per_sample"][0]["key"]
    for s in data["per_sample"]:
        s["metrics"]["psnr"] = -5.0
    data["metrics"]["psnr"] = -5.0
    data["metrics"]["fvd_d"] = -3.0
    data["clip_counts"]["fvd_d"] = 7
    bad = good.from_dict(data)
    problems = "\n".join(check_submission(bad, b))
    for fragment in ("protocol: fields ['psnr_cap_db'] differ", "sample_count: 3, but per_sample has 2",
                     "per_sample: duplicated keys", "metrics.psnr: -5.0 is out of range", "metrics.fvd_d: -3.0 is out of range",
                     "clip_counts.fvd_d: expected 3 samples x 1 = 3, got 7"):
        assert fragment in problems, fragment
    # Required FVD and LPIPS: intervals and weight hashes must be there.
    strict = Board(**{**asdict(b), "required_metrics": {"multiview": ["psnr", "lpips", "fv4d"]}})
    problems = "\n".join(check_submission(good, strict))
    assert "intervals: required metric 'fv4d' has no bootstrap interval" in problems
    assert "weights: no SHA-256 recorded for ['i3d_kinetics400', 'lpips_alex']" in problems


def test_only_web_urls_become_links(board, records, tmp_path):
    board = fresh(board, tmp_path)
    submit(records["front-view"], board, url="javascript:alert(1)", unverified=True)
    submit(records["ground-truth"], board, url="HTTPS://example.org/gt", unverified=True)
    build(board)
    page = (board / "index.html").read_text()
    md = (board / "README.md").read_text()
    assert "javascript:" not in page and "javascript:" not in md
    assert 'href="HTTPS://example.org/gt"' in page and "[ground-truth](HTTPS://example.org/gt)" in md


def test_invalid_paper_table_is_refused(board, tmp_path):
    board = fresh(board, tmp_path)
    (board / "paper").mkdir()
    bad = {**FAKE_PAPER_TABLE, "status": "reproduced"}
    bad["rows"] = [{"method": "X", "metrics": {"ssim_x": 1.0}}]
    (board / "paper" / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="status"):
        build(board)


def test_register_gt_refuses_a_different_test_set(board, gt_folder, tmp_path):
    board = fresh(board, tmp_path)
    assert register_gt(board, gt_folder, "the same samples as a folder", progress=False).gt_manifest_hash
    b = load_board(board)
    save_board(Board(**{**asdict(b), "gt_manifest_hash": "sha256:" + "3" * 64}), board)
    with pytest.raises(ValueError, match="needs a new board"):
        register_gt(board, gt_folder, "x", progress=False)


def test_repository_board_is_consistent(tmp_path):
    """The shipped board: pinned protocol, and its generated files are up to date with its data."""
    from characterbench.leaderboard import DEFAULT_BOARD, render_html, render_markdown
    from characterbench.protocol import PROTOCOL_V1

    b = load_board(DEFAULT_BOARD)
    assert (b.protocol_version, b.protocol_fingerprint) == (PROTOCOL_V1.version, PROTOCOL_V1.fingerprint())
    assert (DEFAULT_BOARD / "README.md").read_text() == render_markdown(DEFAULT_BOARD)
    assert (DEFAULT_BOARD / "index.html").read_text() == render_html(DEFAULT_BOARD)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _dump_dom(page: Path, tmp_path: Path) -> str:
    profile = tmp_path / "profile"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium); the HTML is still parsed above")
def test_page_in_headless_chromium_sorts_by_clicked_column(board, records, baselines, gt_shard, tmp_path):
    board = fresh(board, tmp_path)
    for name in ("front-view", "ground-truth", "static-apose"):
        submit(records[name], board, pred=baselines[name], gt=gt_shard)
    build(board)
    # As rendered (script run, nothing clicked): the table is there, in file order.
    rendered = parse_tables(_dump_dom(board / "index.html", tmp_path))
    assert [r[0][0] for r in rendered.tables[0]["rows"]] == ["front-view", "ground-truth", "static-apose"]
    # Click "PSNR" twice (ascending, then descending) through the page's own script.
    clicked = board / "clicked.html"
    clicked.write_text(
        (board / "index.html").read_text().replace(
            "</body>",
            "<script>var th = document.querySelectorAll('table.board')[0].tHead.rows[0].cells[2]; th.click(); th.click();</script></body>",
        )
    )
    after = parse_tables(_dump_dom(clicked, tmp_path))
    assert [r[0][0] for r in after.tables[0]["rows"]] == ["ground-truth", "front-view", "static-apose"]
    # Without JavaScript (the page with its script removed; --dump-dom itself needs scripting): the rows,
    # a preview image per row and a bar chart per metric are all there.
    import re

    nojs = board / "nojs.html"
    nojs.write_text(re.sub(r"<script>.*?</script>", "", (board / "index.html").read_text(), flags=re.S))
    plain = _dump_dom(nojs, tmp_path)
    assert "<script" not in plain
    assert [r[0][0] for r in parse_tables(plain).tables[0]["rows"]] == ["front-view", "ground-truth", "static-apose"]
    assert plain.count('<img src="previews/multiview--') == 3 and plain.count('class="bar"') == 3
    assert 'aria-label="multi-view videos on the 9-view x 9-frame matrix M[v, f] (multiview): PSNR ↑"' in plain


def _tamper(record: Path, out: Path, metric: str, factor: float) -> Path:
    """A consistent hand edit: one metric scaled in the headline, every sample and every cell, so that
    the record still agrees with itself (what a self-consistency check cannot see)."""
    data = json.loads(record.read_text())
    data["metrics"][metric] *= factor
    for s in data["per_sample"]:
        s["metrics"][metric] *= factor
        s["grid"][metric] = [[v * factor for v in row] for row in s["grid"][metric]]
    data["grid"]["values"][metric] = [[v * factor for v in row] for row in data["grid"]["values"][metric]]
    out.write_text(json.dumps(data))
    return out


def test_tampered_record_is_refused_and_the_honest_one_accepted(board, records, baselines, gt_shard, tmp_path):
    from characterbench.leaderboard import check_submission
    from characterbench.results import load_results

    board = fresh(board, tmp_path)
    forged = _tamper(records["front-view"], tmp_path / "forged.json", "psnr", 1.2)
    data = json.loads(forged.read_text())
    data["weights"]["i3d_kinetics400"] = "stand-in"
    forged.write_text(json.dumps(data))
    # The self-consistency check sees only the pinned weight hash...
    problems = check_submission(load_results(forged), load_board(board))
    assert problems == ["weights.i3d_kinetics400: SHA-256 'stand-in' is not the protocol's "
                        "52ee8197c5f15cbf1c985af655bf59f749906c528f7cea3ea0fe64aef01ced36"]
    # ...re-scoring sees the numbers.
    del data["weights"]["i3d_kinetics400"]
    forged.write_text(json.dumps(data))
    assert check_submission(load_results(forged), load_board(board)) == []
    with pytest.raises(SubmissionError) as err:
        submit(forged, board, pred=baselines["front-view"], gt=gt_shard)
    text = "\n".join(err.value.problems)
    assert "not reproduced from" in text and "metrics.psnr: the record says" in text and "grid.psnr" in text
    assert not (board / "entries").exists() or not list((board / "entries").glob("*.json"))
    # The honest record passes, and an unverified one is shown apart.
    assert submit(records["front-view"], board, pred=baselines["front-view"], gt=gt_shard).exists()
    submit(records["static-apose"], board, unverified=True)
    build(board)
    md = (board / "README.md").read_text()
    assert md.index("front-view") < md.index("## Unverified") < md.index("static-apose")


def test_leaderboard_verify_catches_an_edited_baseline_row(board, records, baselines, gt_shard, tmp_path, capsys):
    board = fresh(board, tmp_path)
    for name in ("ground-truth", "front-view"):
        assert main(["submit", *scored(records, baselines, gt_shard, name), "--board", str(board),
                     "--name", f"{name} (baseline)"]) == 0
    assert main(["leaderboard", "verify", "--board", str(board), "--gt", str(gt_shard), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "2 reproduced, 0 differ, 0 skipped" in out
    entry = board / "entries" / "multiview--front-view-baseline.json"
    _tamper(entry, entry, "psnr", 1.01)
    assert main(["leaderboard", "build", "--board", str(board)]) == 0  # still self-consistent
    assert main(["leaderboard", "verify", "--board", str(board), "--gt", str(gt_shard), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "differs    multiview--front-view-baseline.json" in out and "metrics.psnr" in out
    # Without the ground truth nothing can be re-computed: skipped, not passed.
    assert main(["leaderboard", "verify", "--board", str(board), "--quiet"]) == 0
    assert "0 reproduced, 0 differ, 2 skipped" in capsys.readouterr().out


def test_a_viewer_page_is_copied_linked_and_must_be_self_contained(board, records, baselines, gt_shard, tmp_path):
    board = fresh(board, tmp_path)
    page = tmp_path / "fit-page.html"
    page.write_text("<!doctype html><html><body><canvas></canvas><script>const splats = [1, 2];</script></body></html>")
    assert main(["submit", *scored(records, baselines, gt_shard, "front-view"), "--board", str(board),
                 "--viewer", str(page)]) == 0
    entry = json.loads((board / "entries" / "multiview--front-view.json").read_text())
    assert entry["entry"]["viewer"] == "viewers/multiview--front-view.html"
    assert (board / "viewers" / "multiview--front-view.html").read_bytes() == page.read_bytes()
    md = (board / "README.md").read_text()
    assert "| Method | N | PSNR ↑ | Preview | 4D viewer | Date | Commit |" in md
    assert "[open](viewers/multiview--front-view.html)" in md
    assert '<a href="viewers/multiview--front-view.html">open</a>' in (board / "index.html").read_text()
    # A page that reaches the network, a file that is not HTML, and an unverified entry are refused.
    remote = tmp_path / "remote.html"
    remote.write_text('<html><script src="https://cdn.example.org/three.js"></script></html>')
    scored_args = dict(pred=baselines["static-apose"], gt=gt_shard)
    for bad, kwargs, why in ((remote, scored_args, "self-contained"), (tmp_path / "x.txt", scored_args, "not an .html file"),
                             (page, dict(unverified=True), "only a verified entry")):
        with pytest.raises(SubmissionError, match=why):
            submit(records["static-apose"], board, viewer=bad, **kwargs)
    assert not (board / "viewers" / "multiview--static-apose.html").exists()
    # A hand-edited entry pointing elsewhere is not linked.
    entry["entry"]["viewer"] = "../../etc/passwd.html"
    (board / "entries" / "multiview--front-view.json").write_text(json.dumps(entry))
    build(board)
    assert "passwd" not in (board / "README.md").read_text() and "passwd" not in (board / "index.html").read_text()

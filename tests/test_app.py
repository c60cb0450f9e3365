"""``tvr app``: the answers behind the app (``RetrievalDemo``), the install hint without gradio, and the app itself
driven in headless Chromium through Playwright (skipped, with the reason, where Chromium or Playwright is missing)."""

import os
import shutil
import sys

import pytest

from app_server import REPO_ROOT, free_port, running_app, save_demo_model
from tvr.app import RetrievalDemo
from tvr.cli import main

NUM_VIDEOS = 4
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """``(model_dir, video_dir, captions)``: the demo's tiny (untrained) model saved with its processor, and a few
    synthetic videos."""
    return save_demo_model(tmp_path_factory.mktemp("app"), NUM_VIDEOS)


def expected_top_video(demo: RetrievalDemo, query: str) -> str:
    return os.path.basename(demo.retriever(query, videos=demo.index.paths)[0]["video"])


def test_search_and_analyse_answer_in_text(demo_model, tmp_path):
    model_dir, video_dir, captions = demo_model
    demo = RetrievalDemo(model_dir, videos=video_dir, device="cpu")
    assert len(demo.index) == NUM_VIDEOS and demo.video_folders == [str(video_dir)]
    gallery, table = demo.search(captions[1], top_k=2)
    assert len(gallery) == 2 and os.path.basename(gallery[0][0]) == expected_top_video(demo, captions[1])
    assert f"| 1 | {expected_top_video(demo, captions[1])} |" in table
    assert "Type what happens" in demo.search("  ")[1]

    video = demo.index.paths[0]
    labels, message = demo.analyse(video, "red, blue, green", "\n".join(captions))
    expected = demo.classifier(video, candidate_labels=["red", "blue", "green"], hypothesis_template="a video of {}.")
    assert labels == {result["label"]: result["score"] for result in expected}
    best = demo.retriever(videos=video, texts=captions)[0]["text"]
    assert f"| 1 | {best} |" in message

    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 500)
    labels, message = demo.analyse(str(junk), "red, blue")
    assert labels == {} and "Could not read the uploaded file **junk.mp4** as a video" in message
    assert demo.analyse(None)[1] == "Upload a video first."
    assert "labels" in demo.analyse(video, " , ", "")[1]


def test_an_index_folder_and_no_gallery(demo_model, tmp_path):
    model_dir, video_dir, captions = demo_model
    from_videos = RetrievalDemo(model_dir, videos=video_dir, device="cpu")
    from_videos.index.save(tmp_path / "index")
    from_index = RetrievalDemo(model_dir, index=tmp_path / "index", device="cpu")
    assert from_index.search(captions[0])[1] == from_videos.search(captions[0])[1]
    without = RetrievalDemo(model_dir, device="cpu")
    assert without.search("a red square")[0] == [] and "--index" in without.search("a red square")[1]
    with pytest.raises(ValueError, match="not both"):
        RetrievalDemo(model_dir, index=tmp_path / "index", videos=video_dir)


def test_tvr_app_says_how_to_install_gradio(demo_model, monkeypatch, capsys):
    model_dir, video_dir, _ = demo_model
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError, as when not installed
    monkeypatch.delitem(sys.modules, "tvr.app.ui", raising=False)
    with pytest.raises(SystemExit, match=r"tvr: error: tvr app needs gradio: pip install -e '\.\[app\]' in tvr's "
                                         "clone"):
        main(["app", str(model_dir), "--videos", str(video_dir)])


def browser_or_skip() -> tuple[object, str]:
    """Playwright's sync API and the system Chromium, or skip saying what is missing."""
    pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[app]')")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    chromium = os.environ.get("TVR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium not found: install Debian's chromium (apt-get install chromium) or set TVR_CHROMIUM")
    return sync_api, chromium


def test_app_in_a_real_browser(demo_model, tmp_path):
    sync_api, chromium = browser_or_skip()
    model_dir, video_dir, captions = demo_model
    query = captions[2]
    expected = expected_top_video(RetrievalDemo(model_dir, videos=video_dir, device="cpu"), query)
    port = free_port()
    command = [sys.executable, "-m", "tvr.cli", "app", str(model_dir), "--videos", str(video_dir), "--device", "cpu"]
    with running_app(command + ["--port", str(port)], REPO_ROOT, tmp_path, port=port) as url:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1100, "height": 900})
                page.set_default_timeout(90_000)
                page.goto(url)
                page.get_by_label("Query").fill(query)
                page.get_by_role("button", name="Search").click()
                results = page.locator("#search-results table")
                results.wait_for()
                assert results.locator("tr").nth(1).inner_text().split()[:2] == ["1", expected]  # rank 1
                assert page.locator("#search-gallery").get_by_text(f"1. {expected}").count() == 1
                page.screenshot(path=tmp_path / "app-search.png")

                page.get_by_role("tab", name="Upload a video").click()
                page.locator("#upload-video input[type=file]").set_input_files(str(video_dir / expected))
                page.locator("#upload-video video").wait_for()
                page.get_by_label("Labels (comma-separated)").fill("red, green, blue")
                page.get_by_role("button", name="Analyse").click()
                page.locator("#analysis").get_by_text(expected).wait_for()
                labels = page.locator("#labels-output").inner_text()
                assert all(label in labels for label in ("red", "green", "blue")) and "%" in labels
                page.screenshot(path=tmp_path / "app-upload.png", full_page=True)

                junk = tmp_path / "not-a-video.mp4"
                junk.write_bytes(b"\x00" * 2000)
                page.locator("#upload-video button[aria-label='Clear']").click()
                page.locator("#upload-video input[type=file]").set_input_files(str(junk))
                page.get_by_role("button", name="Analyse").click()
                page.get_by_text("Could not read the uploaded file").wait_for()
                assert "not-a-video.mp4" in page.locator("#analysis").inner_text()
                page.get_by_role("tab", name="Search").click()  # the app survived the bad upload
                page.get_by_role("button", name="Search").click()
                page.locator("#search-results table").wait_for()
            finally:
                browser.close()
    assert (tmp_path / "app-search.png").stat().st_size > 0

"""The pack in ComfyUI's real front end, driven in a real browser (Playwright from PyPI with
Debian's chromium): the page loads, every workflow loads and saves back what it loaded, the
badges show, Recurrent Generate's badged attempts replace the live preview, the review grid's
clicks land in the dataset (and survive a reload), and Cancel stops a run.

Opt-in, as the ComfyUI integration tests: set RF_BROWSER_TESTS=1 and COMFYUI_DIR (and
COMFYUI_PYTHON, CHROMIUM_PATH where they differ). `scripts/setup_browser_tests.sh` installs it all
and runs them. RF_BROWSER_SHOTS=DIR keeps a screenshot of every workflow and every check there;
`scripts/setup_browser_tests.sh --thumbnails` makes them the workflow thumbnails.
"""
import json
import os
import time
from pathlib import Path

import pytest
from comfy_server import NO_COMFY, ROOT, comfy_found, comfy_server, get, tiny_recurrent
from pack_loader import import_pack

CHROMIUM = os.environ.get("CHROMIUM_PATH") or next(
    (p for p in ("/usr/lib/chromium/chromium", "/usr/lib/chromium-browser/chromium-browser") if Path(p).exists()), "")
SHOTS = os.environ.get("RF_BROWSER_SHOTS")

pytestmark = [
    pytest.mark.skipif(os.environ.get("RF_BROWSER_TESTS") != "1",
                       reason="browser tests are opt-in: set RF_BROWSER_TESTS=1 (scripts/setup_browser_tests.sh)"),
    pytest.mark.skipif(not comfy_found(), reason=NO_COMFY),
    pytest.mark.skipif(not CHROMIUM, reason="no chromium: apt-get install chromium, or set CHROMIUM_PATH"),
]

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
INSPECT_FLOW = next(p for p in WORKFLOWS if "Inspect a generated image" in p.name)
OURS = ("reliable_ad", "/extensions/reliable_ad")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:  # live previews on, as a designer runs it: they used to hide Recurrent Generate's results
        with comfy_server(tmp_path_factory.mktemp("comfy"), ("--preview-method", "auto")) as s:
            yield s
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield b
        b.close()


class Page:
    """A front-end tab with the errors it logged."""

    def __init__(self, browser, url):
        self.url = url
        self.page = browser.new_page(viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}\n{getattr(e, 'stack', '')}"))
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text} @ {m.location}")
                     if m.type == "error" else None)
        self.open()

    def open(self):
        self.page.goto(self.url)
        self.wait_ready()

    def wait_ready(self):
        self.page.wait_for_function("() => window.app?.graph && window.app?.canvas && window.LiteGraph", timeout=120_000)
        self.page.wait_for_function(
            "() => app.extensions.some((e) => e.name === 'reliable_ad.badge')", timeout=60_000)

    def js(self, script, arg=None):
        return self.page.evaluate(script, arg)

    def node(self, node_type):
        return self.js("(t) => { const n = app.graph.nodes.find((n) => n.type === t); return n ? n.id : null; }",
                       node_type)

    def load_workflow(self, ui: dict, name: str):
        self.js("async ([wf, name]) => { await app.loadGraphData(wf, true, true, name); }", [ui, name])

    def load_api(self, api: dict, name: str):
        self.js("async ([p, name]) => { await app.loadApiJson(p, name); }", [api, name])

    def queue(self):
        self.js("async () => { await app.queuePrompt(0, 1); }")

    def shot(self, name: str, fit: bool = False):
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            clip = None
            if fit:  # the whole graph and nothing else, as the thumbnails show it
                self.js("async () => { await app.extensionManager.command.execute('Comfy.Canvas.FitView'); }")
                self.page.wait_for_timeout(300)
                clip = self.js("""() => {
                    app.canvas.draw(true, true);
                    const r = app.graph.nodes.map((n) => n.boundingRect);
                    const ds = app.canvas.ds, box = app.canvas.canvas.getBoundingClientRect();
                    const [x0, y0] = ds.convertOffsetToCanvas([Math.min(...r.map((b) => b[0])) - 10,
                                                               Math.min(...r.map((b) => b[1])) - 30]);
                    const [x1, y1] = ds.convertOffsetToCanvas([Math.max(...r.map((b) => b[0] + b[2])) + 10,
                                                               Math.max(...r.map((b) => b[1] + b[3])) + 10]);
                    return {x: box.left + x0, y: box.top + y0, width: x1 - x0, height: y1 - y0};
                }""")
            self.js("() => app.canvas.draw(true, true)")
            if clip:
                self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), clip=clip)
            else:
                self.page.locator("#graph-canvas").screenshot(path=str(Path(SHOTS) / f"{name}.png"))

    def our_errors(self):
        return [e for e in self.errors if any(o in e for o in OURS)]


@pytest.fixture
def page(browser, server):
    p = Page(browser, server["url"])
    yield p
    p.page.close()


@pytest.fixture(scope="module", autouse=True)
def no_first_run_dialogs(server):
    import urllib.request

    # a new user's first visit opens the template browser over the canvas, the minimap would sit in
    # every screenshot, and zoomed out to fit a workflow the canvas would drop all its text
    for key, value in (("Comfy.TutorialCompleted", True), ("Comfy.Minimap.Visible", False),
                       ("LiteGraph.Canvas.MinFontSizeForLOD", 1)):
        req = urllib.request.Request(f"{server['url']}/settings/{key}", json.dumps(value).encode(),
                                     {"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=10).read()


def _history_done(server, timeout):
    """Wait until the queue is empty; return the newest history entry."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        q = get(server["url"] + "/queue")
        if not q["queue_running"] and not q["queue_pending"]:
            hist = get(server["url"] + "/history?max_items=1")
            if hist:
                return next(iter(hist.values()))
        time.sleep(0.5)
    pytest.fail(f"the queue did not empty in {timeout} s")


def test_the_page_loads_with_our_extensions_and_no_error_of_ours(page):
    names = page.js("() => app.extensions.map((e) => e.name)")
    assert {"reliable_ad.badge", "reliable_ad.review"} <= set(names)
    defs = page.js("() => Object.keys(LiteGraph.registered_node_types)")
    assert {"RFNetInspect", "RFRecurrentGenerate", "RFReviewLabel", "RFTrainRFNet"} <= set(defs)
    assert not page.our_errors(), page.our_errors()


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_every_workflow_loads_with_no_missing_node_and_saves_what_it_loaded(page, path):
    ui = json.loads(path.read_text(encoding="utf-8"))
    page.load_workflow(ui, path.name)
    got = page.js("""() => {
        const missing = app.graph.nodes.filter((n) => !LiteGraph.registered_node_types[n.type]).map((n) => n.type);
        const saved = app.graph.serialize();
        app.canvas.draw(true, true);  // lays the widgets out, which can grow a node
        const boxes = app.graph.nodes.map((n) => ({title: n.title, rect: Array.from(n.boundingRect)}));
        return {missing, boxes, nodes: saved.nodes.map((n) => ({id: n.id, type: n.type, values: n.widgets_values ?? null}))};
    }""")
    assert not got["missing"], f"{path.name}: missing nodes {got['missing']}"
    boxes = got["boxes"]  # as the front end draws them, title bar included: no node hides another's widgets
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = a["rect"], b["rect"]
            apart = ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay
            assert apart, f"{path.name}: {a['title']!r} {a['rect']} and {b['title']!r} {b['rect']} overlap"
    saved = {n["id"]: n for n in got["nodes"]}
    for n in ui["nodes"]:
        assert n["id"] in saved, f"{path.name}: node {n['id']} ({n['type']}) was dropped"
        want = n.get("widgets_values")
        if want is not None:  # what the file says is what the front end holds and saves back
            assert saved[n["id"]]["values"] == want, f"{path.name}: {n['type']} #{n['id']}"
    page.shot(path.stem, fit=True)
    assert not page.our_errors(), page.our_errors()


def test_the_template_browser_lists_and_loads_every_workflow_under_its_title(page, server):
    listed = get(server["url"] + "/workflow_templates")
    module = next(m for m in listed if "reliable_ad" in m)
    assert sorted(listed[module]) == sorted(p.stem for p in WORKFLOWS)
    for name in listed[module]:  # the URLs the template browser builds, spaces and Chinese included
        got = page.js("""async ([module, name]) => {
            const api = window.comfyAPI.api.api;
            const wf = await (await fetch(api.apiURL(`/workflow_templates/${module}/${name}.json`))).json();
            const thumb = await fetch(api.apiURL(`/workflow_templates/${module}/${name}.jpg`));
            await app.loadGraphData(wf, true, true, name);
            return {nodes: app.graph.nodes.length, thumb: thumb.status, type: thumb.headers.get('content-type')};
        }""", [module, name])
        assert got["nodes"] >= 3 and got["thumb"] == 200 and "image/jpeg" in got["type"], (name, got)
    # and as a designer does it: Templates, the pack's entry, a card
    page.js("async () => { await app.loadGraphData(undefined, true, true, 'empty'); app.graph.clear(); }")
    page.js("async () => { await app.extensionManager.command.execute('Comfy.BrowseTemplates'); }")
    dialog = page.page.get_by_role("dialog")
    dialog.get_by_text(module, exact=True).first.click(timeout=30_000)
    card = dialog.get_by_text("6 Review and label 审核标注", exact=True).first
    card.wait_for(timeout=30_000)
    page.page.wait_for_timeout(1000)  # the thumbnails
    if SHOTS:
        page.page.screenshot(path=str(Path(SHOTS) / "check_template_browser.png"))
    card.click()
    page.page.wait_for_function("() => app.graph.nodes.some((n) => n.type === 'RFReviewLabel')", timeout=30_000)
    assert not page.our_errors(), page.our_errors()


def test_a_fresh_node_of_the_pack_shows_its_whole_title_and_the_right_control_modes(page):
    got = page.js("""() => {
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = `${LiteGraph.NODE_TEXT_SIZE}px ${LiteGraph.NODE_FONT}`;
        const out = {};
        for (const [type, cls] of Object.entries(LiteGraph.registered_node_types)) {
            if (!String(cls.category || cls.nodeData?.category || '').startsWith('Reliable AD')) continue;
            const n = LiteGraph.createNode(type);
            app.graph.add(n);
            out[type] = {width: n.size[0], title: ctx.measureText(n.title).width,
                         controls: Object.fromEntries((n.widgets || []).filter((w) => w.linkedWidgets?.length)
                             .map((w) => [w.name, w.linkedWidgets[0].value]))};
        }
        return out;
    }""")
    assert len(got) == len(import_pack().NODE_CLASS_MAPPINGS), sorted(got)
    short = {t: v for t, v in got.items() if v["width"] < v["title"] + 40}
    assert not short, short  # "Paste Product…" and "Depth Map …" were cut
    assert got["RFFTTrain"]["controls"] == {"seed": "fixed"}
    assert got["RFTrainRFNet"]["controls"] == {"seed": "fixed"}
    assert got["RFLoadProductFolder"]["controls"] == {"index": "increment"}
    assert got["RFRecurrentGenerate"]["controls"] == {"seed": "randomize"}  # a new image each run
    assert not page.our_errors(), page.our_errors()


def _badge_colour(page, node_id):
    """The pixel in the middle of the badge's left edge, above the node's title bar."""
    return page.js("""(id) => {
        app.canvas.draw(true, true);
        const n = app.graph.getNodeById(id);
        const [x, y] = app.canvas.ds.convertOffsetToCanvas([n.pos[0] + 3, n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT - 13]);
        const px = app.canvas.canvas.getContext('2d').getImageData(Math.round(x), Math.round(y), 1, 1).data;
        return [px[0], px[1], px[2]];
    }""", node_id)


def _near(rgb, want, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(rgb, want))


GREEN, RED, ORANGE = (0x1e, 0x96, 0x3c), (0xc8, 0x28, 0x28), (0xd2, 0x82, 0x1e)  # web/reliable_ad.js


def test_inspect_shows_its_badge(page, server):
    ui = json.loads(INSPECT_FLOW.read_text(encoding="utf-8"))
    page.load_workflow(ui, INSPECT_FLOW.name)
    node = page.node("RFNetInspect")
    before = _badge_colour(page, node)
    page.queue()
    page.page.wait_for_function("(id) => app.graph.getNodeById(id).rfVerdicts?.length > 0", arg=node,
                                timeout=300_000)
    v = page.js("(id) => app.graph.getNodeById(id).rfVerdicts[0]", node)
    outside = str(v.get("note") or "").startswith("outside the inspector's training data")
    colour = _badge_colour(page, node)
    want = ORANGE if outside and not v["accepted"] else GREEN if v["accepted"] else RED
    assert _near(colour, want), (colour, v, before)
    assert not _near(before, GREEN) and not _near(before, RED)  # no badge before the run
    page.shot("check_inspect_badge")
    assert _history_done(server, 60)["status"]["status_str"] == "success"


def test_recurrent_generate_leaves_its_badged_attempts_on_the_node_with_live_previews(page, server):
    page.load_api(tiny_recurrent(steps=6, attempts=3, candidates=1), "tiny recurrent")
    node = page.node("RFRecurrentGenerate")
    assert node is not None
    page.js("""(id) => {
        window.rfSeen = {previews: 0, statuses: []};
        const api = window.comfyAPI.api.api;
        api.addEventListener('b_preview_with_metadata', (e) => {
            if (String(e.detail.displayNodeId) === String(id)) window.rfSeen.previews += 1; });
        api.addEventListener('reliable_ad.status', (e) => window.rfSeen.statuses.push(e.detail.text));
        app.canvas.centerOnNode(app.graph.getNodeById(id));
    }""", node)
    page.queue()
    page.page.wait_for_function("(id) => app.graph.getNodeById(id).rfVerdicts?.length > 0", arg=node,
                                timeout=300_000)
    try:  # the front end loads the output images asynchronously after a draw
        page.page.wait_for_function("""(id) => { app.canvas.draw(true, true);
            const imgs = app.graph.getNodeById(id).imgs || [];
            return imgs.length && imgs.every((i) => !i.src.startsWith('blob:')); }""", arg=node, timeout=20_000)
    except Exception:  # noqa: BLE001 - the assertion below says what the node shows
        pass
    shown = page.js("""(id) => {
        app.canvas.draw(true, true);
        const n = app.graph.getNodeById(id);
        return {imgs: (n.imgs || []).map((i) => i.src), preview: app.nodePreviewImages?.[String(id)] ?? null,
                outputs: (app.nodeOutputs?.[String(id)]?.images || []).map((i) => i.filename),
                widgets: (n.widgets || []).map((w) => w.name), seen: window.rfSeen, status: n.rfStatus ?? null};
    }""", node)
    assert shown["seen"]["previews"], "no live preview reached the node: the check would not mean anything"
    assert shown["outputs"] and all(f.startswith("rf_recurrent") for f in shown["outputs"]), shown
    # the badged attempts, not the last latent preview (a blob: URL), are what the node shows
    assert shown["imgs"] and all("rf_recurrent" in src and not src.startswith("blob:") for src in shown["imgs"]), shown
    assert shown["preview"] is None
    # each attempt's verdict went to the badge, and no progress text was laid over the preview
    assert [t.split(":")[0] for t in shown["seen"]["statuses"]] == [
        f"attempt {i + 1}/3" for i in range(len(shown["seen"]["statuses"]))] and shown["seen"]["statuses"], shown
    assert "$$node-text-preview" not in shown["widgets"], shown["widgets"]
    assert shown["status"] is None  # the status gave way to the final verdict
    page.shot("check_recurrent_generate")


def test_review_clicks_land_in_the_dataset_and_come_back_after_a_reload(page, server):
    dataset = "浏览器 测试"
    api = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "reliable_ad_generated.png"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "reliable_ad_product.png"}},
        "3": {"class_type": "RFNetLoader", "inputs": {"model_name": "embedded", "dtype": "auto"}},
        "4": {"class_type": "RFReviewLabel", "inputs": {
            "images": ["1", 0], "product": ["2", 0], "product_mask": ["2", 1], "rfnet": ["3", 0],
            "dataset": dataset, "caption": "青色香水 15ml", "prompt": "a perfume on a marble table"}},
    }
    page.load_api(api, "review")
    node = page.node("RFReviewLabel")
    page.queue()
    page.page.wait_for_function("(id) => app.graph.getNodeById(id).rfReviewEl?.querySelector('button')",
                                arg=node, timeout=300_000)
    page.js("(id) => app.canvas.centerOnNode(app.graph.getNodeById(id))", node)
    page.page.wait_for_timeout(300)
    button = page.page.locator("button[title='Space Mismatch']").first
    inside = page.js("""() => {
        const b = document.querySelector("button[title='Space Mismatch']").getBoundingClientRect();
        const g = document.querySelector("button[title='Space Mismatch']").closest('.dom-widget, [class*=widget]')
            ?.getBoundingClientRect();
        return !g || (b.bottom <= g.bottom + 1 && b.top >= g.top - 1);
    }""")
    assert inside, "the label buttons are cut off below the node's grid"
    button.click()
    page.page.wait_for_function("() => document.querySelector(\"button[title='Space Mismatch']\").style.fontWeight === 'bold'",
                                timeout=30_000)
    manifests = list((server["base"] / "output" / "rf_feedback").rglob("manifest.jsonl"))
    rows = [json.loads(x) for m in manifests if dataset in str(m) for x in m.read_text(encoding="utf-8").splitlines()]
    assert [r["label"] for r in rows] == ["Space Mismatch"], rows
    page.shot("check_review")
    # a reload restores the graph from the browser and the labels from the server
    page.page.reload()
    page.wait_ready()
    page.page.wait_for_function(
        "() => [...document.querySelectorAll(\"button[title='Space Mismatch']\")].some((b) => b.style.fontWeight === 'bold')",
        timeout=60_000)
    assert not page.our_errors(), page.our_errors()


def test_cancel_stops_recurrent_generate(page, server):
    page.load_api(tiny_recurrent(steps=400, attempts=5, candidates=1), "tiny recurrent, long")
    page.queue()
    deadline = time.time() + 120
    while time.time() < deadline and not get(server["url"] + "/queue")["queue_running"]:
        time.sleep(0.2)
    time.sleep(6)  # into the sampling
    t0 = time.time()
    page.js("async () => { await window.comfyAPI.api.api.interrupt(); }")
    entry = _history_done(server, 60)
    stopped = time.time() - t0
    msgs = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in msgs, msgs
    assert stopped < 10, f"took {stopped:.1f} s to stop"

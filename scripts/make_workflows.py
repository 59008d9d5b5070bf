"""Write the example workflows in workflows/ (ComfyUI's UI format, for drag and drop and the
template browser) with a .jpg thumbnail each, and the input images they load (workflows/assets/).

    python scripts/make_workflows.py

Only this pack's nodes and ComfyUI's core nodes are used. tests/test_comfyui.py converts each
to the API format and validates it against a running ComfyUI's /object_info.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rfsynth.scene import render_sample  # noqa: E402

CKPT = "v1-5-pruned-emaonly.safetensors"
CONTROLNET = "control_v11p_sd15_canny.pth"
LORA = "your_style_lora.safetensors"
PRODUCT = "reliable_ad_product.png"
GENERATED = "reliable_ad_generated.png"
POSITIVE = "a product on a marble table, beige wall, soft daylight, potted fern, commercial photography"
NEGATIVE = "lowres, blurry, floating, cluttered, deformed, watermark, text"
EXAMPLE_SEED = 90210  # the RF-Synth sample whose product and image the workflows load (see assets())
# the caption of that very product (a black cabinet): a caption naming another product (it once
# said "teal perfume") is a caption mismatch the inspector is right to doubt
CAPTION = render_sample(EXAMPLE_SEED, 128, "Available").caption

# Outputs (name, type) and linkable inputs (name, type) of the core nodes used here.
CORE = {
    "CheckpointLoaderSimple": ([("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], []),
    "LoraLoader": ([("MODEL", "MODEL"), ("CLIP", "CLIP")], [("model", "MODEL"), ("clip", "CLIP")]),
    "CLIPTextEncode": ([("CONDITIONING", "CONDITIONING")], [("clip", "CLIP")]),
    "LoadImage": ([("IMAGE", "IMAGE"), ("MASK", "MASK")], []),
    "ControlNetLoader": ([("CONTROL_NET", "CONTROL_NET")], []),
    "ControlNetApplyAdvanced": ([("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
                                [("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                 ("control_net", "CONTROL_NET"), ("image", "IMAGE"), ("vae", "VAE")]),
    "VAEEncode": ([("LATENT", "LATENT")], [("pixels", "IMAGE"), ("vae", "VAE")]),
    "SetLatentNoiseMask": ([("LATENT", "LATENT")], [("samples", "LATENT"), ("mask", "MASK")]),
    "KSampler": ([("LATENT", "LATENT")], [("model", "MODEL"), ("positive", "CONDITIONING"),
                                          ("negative", "CONDITIONING"), ("latent_image", "LATENT")]),
    "VAEDecode": ([("IMAGE", "IMAGE")], [("samples", "LATENT"), ("vae", "VAE")]),
    "SaveImage": ([], [("images", "IMAGE")]),
    "PreviewImage": ([], [("images", "IMAGE")]),
}


def _ours():
    from pack_loader import import_pack  # scripts/pack_loader.py

    return import_pack().NODE_CLASS_MAPPINGS


def _io(cls_name: str, ours: dict):
    if cls_name in CORE:
        return CORE[cls_name]
    cls = ours[cls_name]
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    outs = list(zip(names, cls.RETURN_TYPES))
    spec = cls.INPUT_TYPES()
    ins = []
    for section in ("required", "optional"):
        for name, s in spec.get(section, {}).items():
            t = s[0]
            if isinstance(t, str) and t not in ("INT", "FLOAT", "STRING", "BOOLEAN"):
                ins.append((name, t))
    return outs, ins


class Flow:
    def __init__(self, title: str):
        self.title = title
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self.ours = _ours()

    def add(self, cls: str, pos, widgets=(), title: str | None = None, size=(300, 120)) -> int:
        outs, ins = _io(cls, self.ours)
        nid = len(self.nodes) + 1
        node = {"id": nid, "type": cls, "pos": list(pos), "size": list(size), "flags": {}, "order": nid - 1,
                "mode": 0, "inputs": [{"name": n, "type": t, "link": None} for n, t in ins],
                "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outs)],
                "properties": {"Node name for S&R": cls}, "widgets_values": list(widgets)}
        if title:
            node["title"] = title
        self.nodes.append(node)
        return nid

    def link(self, src: int, slot: int, dst: int, name: str) -> None:
        lid = len(self.links) + 1
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        inp = next((i for i in d["inputs"] if i["name"] == name), None)
        if inp is None:
            raise KeyError(f"{d['type']} has no linkable input {name!r}")
        t = s["outputs"][slot]["type"]
        inp["link"] = lid
        s["outputs"][slot]["links"].append(lid)
        self.links.append([lid, src, slot, dst, d["inputs"].index(inp), t])

    def note(self, pos, text: str) -> None:
        nid = len(self.nodes) + 1
        self.nodes.append({"id": nid, "type": "Note", "pos": list(pos), "size": [360, 140], "flags": {},
                           "order": nid - 1, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                           "widgets_values": [text]})

    def ui(self) -> dict:
        return {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
                "links": self.links, "groups": [], "config": {}, "extra": {"reliable_ad": self.title},
                "version": 0.4}


# ---------------------------------------------------------------------------------------------
def sd_front(f: Flow, lora: bool = False):
    """Checkpoint (+ LoRA), prompts, canny ControlNet: (model, vae, positive, negative, cn, clip)."""
    ck = f.add("CheckpointLoaderSimple", (0, 0), [CKPT])
    model, clip = (ck, 0), (ck, 1)
    if lora:
        lo = f.add("LoraLoader", (0, 160), [LORA, 0.8, 0.8])
        f.link(ck, 0, lo, "model")
        f.link(ck, 1, lo, "clip")
        model, clip = (lo, 0), (lo, 1)
    pos = f.add("CLIPTextEncode", (350, 0), [POSITIVE], title="background prompt")
    neg = f.add("CLIPTextEncode", (350, 170), [NEGATIVE], title="negative prompt")
    f.link(*clip, pos, "clip")
    f.link(*clip, neg, "clip")
    cn = f.add("ControlNetLoader", (0, 330), [CONTROLNET])
    return model, (ck, 2), pos, neg, cn


def placement(f: Flow, product_src, pos=(0, 480), mask_src=None):
    pl = f.add("RFProductPlacement", pos, [512, 512, 0.7, False, -1, 100, 200])
    f.link(*product_src, pl, "product")
    if mask_src:
        f.link(*mask_src, pl, "mask")
    return pl


def apply_controlnet(f: Flow, pos, neg, cn, pl, vae):
    ap = f.add("ControlNetApplyAdvanced", (700, 60), [1.0, 0.0, 1.0])
    f.link(pos, 0, ap, "positive")
    f.link(neg, 0, ap, "negative")
    f.link(cn, 0, ap, "control_net")
    f.link(pl, 2, ap, "image")
    f.link(*vae, ap, "vae")
    return ap


def inspect_flow() -> Flow:
    f = Flow("Inspect a generated image with RFNet")
    prod = f.add("LoadImage", (0, 0), [PRODUCT, "image"], title="product cutout", size=(315, 360))
    gen = f.add("LoadImage", (0, 420), [GENERATED, "image"], title="generated image", size=(315, 360))
    rf = f.add("RFNetLoader", (350, 0), ["embedded", "auto"])
    ins = f.add("RFNetInspect", (700, 0), [CAPTION, 0.0], size=(340, 420))
    f.link(rf, 0, ins, "rfnet")
    f.link(prod, 0, ins, "product")
    f.link(prod, 1, ins, "product_mask")
    f.link(gen, 0, ins, "images")
    f.note((330, 200), "RFNet says Available, or which defect it sees. The embedded model was trained on "
                       "RF-Synth; put your own RFNet folder in models/rfnet and pick it in the loader.")
    return f


def generate_once_flow() -> Flow:
    f = Flow("Place, generate and inspect once")
    model, vae, pos, neg, cn = sd_front(f)
    prod = f.add("LoadImage", (0, 620), [PRODUCT, "image"], title="product cutout")
    pl = placement(f, (prod, 0), (350, 480), (prod, 1))
    ap = apply_controlnet(f, pos, neg, cn, pl, vae)
    enc = f.add("VAEEncode", (700, 330), size=(300, 80))
    f.link(pl, 0, enc, "pixels")
    f.link(*vae, enc, "vae")
    nm = f.add("SetLatentNoiseMask", (700, 450))
    f.link(enc, 0, nm, "samples")
    f.link(pl, 1, nm, "mask")
    ks = f.add("KSampler", (1050, 0), [0, "randomize", 40, 7.5, "ddim", "ddim_uniform", 1.0], size=(320, 260))
    f.link(*model, ks, "model")
    f.link(ap, 0, ks, "positive")
    f.link(ap, 1, ks, "negative")
    f.link(nm, 0, ks, "latent_image")
    dec = f.add("VAEDecode", (1050, 300), size=(300, 80))
    f.link(ks, 0, dec, "samples")
    f.link(*vae, dec, "vae")
    paste = f.add("RFPasteProduct", (1050, 420), size=(300, 80))
    f.link(dec, 0, paste, "images")
    f.link(pl, 3, paste, "placement")
    rf = f.add("RFNetLoader", (1050, 540), ["embedded", "auto"])
    ins = f.add("RFNetInspect", (1400, 0), [CAPTION, 0.0], size=(340, 420))
    f.link(rf, 0, ins, "rfnet")
    f.link(prod, 0, ins, "product")
    f.link(prod, 1, ins, "product_mask")
    f.link(paste, 0, ins, "images")
    save = f.add("SaveImage", (1400, 460), ["reliable_ad"])
    f.link(paste, 0, save, "images")
    return f


def recurrent_flow(lora: bool, folder: bool) -> Flow:
    f = Flow("Recurrent Generate" + (" with a LoRA" if lora else "") + (" over a product folder" if folder else ""))
    model, vae, pos, neg, cn = sd_front(f, lora)
    if folder:
        # five outputs and three widgets: the front end draws it 216 high whatever the file says
        src = f.add("RFLoadProductFolder", (0, 620), ["products", 0, "increment"], size=(300, 200))
        cap = (src, 2)
    else:
        src = f.add("LoadImage", (0, 620), [PRODUCT, "image"], title="product cutout")
        cap = None
    pl = placement(f, (src, 0), (350, 480), (src, 1))
    ap = apply_controlnet(f, pos, neg, cn, pl, vae)
    rf = f.add("RFNetLoader", (700, 330), ["embedded", "auto"])
    rg = f.add("RFRecurrentGenerate", (1050, 0), [CAPTION, 0, "randomize", 40, 7.5, "ddim", "ddim_uniform", 5, 2, 0.0],
               size=(340, 480))
    f.link(*model, rg, "model")
    f.link(ap, 0, rg, "positive")
    f.link(ap, 1, rg, "negative")
    f.link(*vae, rg, "vae")
    f.link(pl, 3, rg, "placement")
    f.link(rf, 0, rg, "rfnet")
    if cap:
        rg_node = f.nodes[rg - 1]
        rg_node["inputs"].append({"name": "caption", "type": "STRING", "link": None,
                                  "widget": {"name": "caption"}})
        f.link(*cap, rg, "caption")
    save = f.add("SaveImage", (1450, 0), ["reliable_ad/accepted"])
    f.link(rg, 0, save, "images")
    prev = f.add("PreviewImage", (1450, 330), title="every attempt")
    f.link(rg, 1, prev, "images")
    if folder:
        f.note((0, 880), "Copy your cutouts to ComfyUI/input/products (products.json or NAME.txt give captions). "
                         "Each queued run takes the next product (index: increment); queue the folder's count.")
    return f


def feedback_flow() -> Flow:
    f = Flow("Collect designer feedback for retraining RFNet")
    prod = f.add("LoadImage", (0, 0), [PRODUCT, "image"], title="product cutout", size=(315, 360))
    gen = f.add("LoadImage", (0, 420), [GENERATED, "image"], title="generated image", size=(315, 360))
    rf = f.add("RFNetLoader", (350, 0), ["embedded", "auto"])
    ins = f.add("RFNetInspect", (700, 0), [CAPTION, 0.0], size=(340, 420))
    f.link(rf, 0, ins, "rfnet")
    f.link(prod, 0, ins, "product")
    f.link(prod, 1, ins, "product_mask")
    f.link(gen, 0, ins, "images")
    fb = f.add("RFFeedback", (700, 460), ["Space Mismatch", "feedback", CAPTION, POSITIVE, ""], size=(340, 300))
    f.link(gen, 0, fb, "images")
    f.link(prod, 0, fb, "product")
    f.link(prod, 1, fb, "product_mask")
    f.note((1100, 0), "Look at RFNet's verdict, set the label you see, queue. Images are added to "
                      "output/rf_feedback/feedback. Retrain: python -m rfnet.train --train_data "
                      "output/rf_feedback/feedback --init_from <your RFNet> ...")
    return f


def review_flow() -> Flow:
    f = Flow("Review and label generated images for your own RFNet")
    model, vae, pos, neg, cn = sd_front(f)
    src = f.add("RFLoadProductFolder", (0, 620), ["products", 0, "increment"], size=(300, 200))
    pl = placement(f, (src, 0), (350, 480), (src, 1))
    ap = apply_controlnet(f, pos, neg, cn, pl, vae)
    rf = f.add("RFNetLoader", (700, 330), ["embedded", "auto"])
    rg = f.add("RFRecurrentGenerate", (1050, 0), [CAPTION, 0, "randomize", 40, 7.5, "ddim", "ddim_uniform", 4, 4, 0.0],
               size=(340, 480))
    for a, slot, name in ((model[0], model[1], "model"), (ap, 0, "positive"), (ap, 1, "negative"),
                          (vae[0], vae[1], "vae"), (pl, 3, "placement"), (rf, 0, "rfnet")):
        f.link(a, slot, rg, name)
    for node, name in ((rg, "caption"),):
        f.nodes[node - 1]["inputs"].append({"name": name, "type": "STRING", "link": None, "widget": {"name": name}})
    f.link(src, 2, rg, "caption")
    rv = f.add("RFReviewLabel", (1450, 0), ["feedback", CAPTION, POSITIVE], size=(560, 620))
    f.link(rg, 1, rv, "images")
    f.link(src, 0, rv, "product")
    f.link(src, 1, rv, "product_mask")
    f.link(rf, 0, rv, "rfnet")
    f.nodes[rv - 1]["inputs"].append({"name": "caption", "type": "STRING", "link": None, "widget": {"name": "caption"}})
    f.link(src, 2, rv, "caption")
    f.note((0, 880), "Each queued run generates 4 attempts for the next product and shows them in Review & Label, the "
                     "least certain first, with RFNet's verdict. Click the label you see: it is saved at once into "
                     "output/rf_feedback/feedback. With 50 Available and 50 defects, run the workflow Train RFNet from your labels.")
    return f


def train_rfnet_flow() -> Flow:
    f = Flow("Train your own RFNet from your labels")
    tr = f.add("RFTrainRFNet", (0, 0), ["feedback", "embedded", 1000, "my_rfnet", 300, 5e-4, 16, 0.9, 0, "fixed", 50,
                                        ""], size=(380, 420))
    prev = f.add("PreviewImage", (430, 0), title="loss and validation accuracy", size=(420, 320))
    f.link(tr, 1, prev, "images")
    f.note((430, 380), "Fine-tunes RFNet on output/rf_feedback/feedback (label with Review & Label first) with RF-Synth "
                       "scenes mixed in, and writes models/rfnet/my_rfnet with its acceptance threshold and a model "
                       "card. Cancel keeps the last checkpoint; queue again to resume. Then pick my_rfnet in Load RFNet.")
    return f


def rfft_flow() -> Flow:
    f = Flow("RFFT: fine-tune the ControlNet with RFNet's feedback")
    prompts = json.dumps([{"prompt": "a {product} on a marble table, beige wall, soft daylight",
                           "negative_prompt": "blurry, floating", "image_scale": 0.5}])
    tr = f.add("RFFTTrain", (0, 0), ["embedded", "(the generator's own)", "embedded", "products", prompts,
                                    "rfft_controlnet", 200, 1e-5, "cc", 1.0, 40, 10, 1, 0, "fixed", 25], size=(380, 520))
    prev = f.add("PreviewImage", (420, 0), title="loss curve")
    f.link(tr, 1, prev, "images")
    f.note((420, 300), "Products: a folder of cutouts in ComfyUI's input folder. The trained ControlNet is "
                       "written to models/controlnet/NAME; cancel keeps the last checkpoint and queueing "
                       "again resumes it. For SD1.5, put a diffusers SD1.5 folder in models/diffusers.")
    return f


def thumbnail(ui: dict, path: Path) -> None:
    """A schematic of the graph: node boxes (this pack's in green) and links."""
    nodes = list(ui["nodes"])
    xs = [n["pos"][0] for n in nodes] + [n["pos"][0] + n["size"][0] for n in nodes]
    ys = [n["pos"][1] for n in nodes] + [n["pos"][1] + n["size"][1] for n in nodes]
    x0, y0, x1, y1 = min(xs) - 20, min(ys) - 50, max(xs) + 20, max(ys) + 20
    W = 640
    s = W / (x1 - x0)
    H = int((y1 - y0) * s) + 1
    im = Image.new("RGB", (W, max(H, 200)), (40, 40, 44))
    d = ImageDraw.Draw(im)
    d.text((8, 6), ui["extra"]["reliable_ad"], fill=(240, 240, 240))
    box = {n["id"]: ((n["pos"][0] - x0) * s, (n["pos"][1] - y0) * s, n["size"][0] * s, n["size"][1] * s) for n in nodes}
    for _, a, _, b, _, _ in ui["links"]:
        ax, ay, aw, ah = box[a]
        bx, by, _, bh = box[b]
        d.line([(ax + aw, ay + ah / 2), (bx, by + bh / 2)], fill=(150, 150, 160), width=2)
    for n in nodes:
        x, y, w, h = box[n["id"]]
        ours = n["type"].startswith("RF")
        d.rounded_rectangle([x, y, x + w, y + h], 6, fill=(40, 110, 60) if ours else (70, 70, 80),
                            outline=(200, 200, 200))
        d.text((x + 4, y + 3), (n.get("title") or n["type"])[:32], fill=(255, 255, 255))
    im.save(path, "JPEG", quality=85)


def assets(out: Path) -> None:
    """The product cutout and a generated-looking image the workflows load (RF-Synth, seed 90210)."""
    out.mkdir(parents=True, exist_ok=True)
    s = render_sample(EXAMPLE_SEED, 128, "Available")
    s.product.save(out / PRODUCT)
    s.image.save(out / GENERATED)
    (out / "README.md").write_text(
        "Input images of the example workflows (RF-Synth, `render_sample(90210, 128, 'Available')`, "
        "written by scripts/make_workflows.py). Copy them into ComfyUI's input folder.\n")


def main() -> int:
    wf = ROOT / "workflows"
    wf.mkdir(exist_ok=True)
    flows = {"1 Inspect a generated image 检查生成图": inspect_flow(),
             "2 Place, generate and inspect 放置 生成 检查": generate_once_flow(),
             "3 Recurrent Generate with a LoRA 循环生成 LoRA": recurrent_flow(True, False),
             "4 Recurrent Generate over a product folder 批量循环生成": recurrent_flow(False, True),
             "5 Collect feedback 收集反馈": feedback_flow(),
             "6 Review and label 审核标注": review_flow(),
             "7 Train RFNet from your labels 用标注训练检查器": train_rfnet_flow(),
             "8 RFFT fine-tune the ControlNet 微调 ControlNet": rfft_flow()}
    for name, f in flows.items():
        ui = f.ui()
        (wf / f"{name}.json").write_text(json.dumps(ui, indent=1, ensure_ascii=False) + "\n")
        if not (wf / f"{name}.jpg").exists():  # the real ones are browser screenshots (setup_browser_tests.sh)
            thumbnail(ui, wf / f"{name}.jpg")
    assets(wf / "assets")
    print(f"wrote {len(flows)} workflows to {wf}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""UI workflow (what ComfyUI saves and users drag in) to API prompt (what POST /prompt takes),
and a validator against /object_info. ComfyUI has no server-side converter; this is the test's
own, following the frontend's rules:

- widget values follow the widget inputs in object_info's ``input_order`` (required, then
  optional); an INT with a control widget takes two slots (value, then the control), an input
  with ``image_upload`` too. An INT has a control widget when ``control_after_generate`` says so
  and, when it says nothing, when it is named ``seed`` or ``noise_seed`` (the front end's
  useIntWidget: ``inputSpec.control_after_generate ?? ['seed', 'noise_seed'].includes(name)``);
- Note, MarkdownNote, Reroute and PrimitiveNode are UI only; mode 2 (muted) and 4 (bypassed)
  nodes are left out;
- a linked input becomes ``[source node id, output slot]``.
"""
from __future__ import annotations

UI_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def _spec(info: dict, cls: str, name: str):
    for section in ("required", "optional"):
        s = info[cls]["input"].get(section, {})
        if name in s:
            return s[name]
    return None


def _is_widget(spec) -> bool:
    t = spec[0]
    return isinstance(t, list) or t in WIDGET_TYPES


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")


def has_control_slot(name: str, spec) -> bool:
    """Whether the front end stores a second value (the control, or the upload) after this widget."""
    opts = _options(spec)
    if opts.get("image_upload"):
        return True
    if spec[0] != "INT":
        return False
    flag = opts.get("control_after_generate")
    return bool(flag) if flag is not None else name in ("seed", "noise_seed")


def widget_slots(info: dict, cls: str) -> list[tuple[str, bool]]:
    """(input name, is a control slot) for each value the front end writes to widgets_values."""
    order = info[cls].get("input_order") or {k: list(v) for k, v in info[cls]["input"].items()}
    slots = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = _spec(info, cls, name)
            if spec is not None and _is_widget(spec):
                slots.append((name, False))
                if has_control_slot(name, spec):
                    slots.append((name, True))
    return slots


def _combo_values(spec):
    t = spec[0]
    if isinstance(t, list):
        return t
    if t == "COMBO":
        return _options(spec).get("options", [])
    return None


def ui_to_api(ui: dict, info: dict) -> dict:
    links = {ln[0]: ln for ln in ui.get("links", [])}
    nodes = {n["id"]: n for n in ui["nodes"]}
    skip = {i for i, n in nodes.items() if n["type"] in UI_ONLY or n.get("mode", 0) in (2, 4)}
    api = {}
    for nid, n in nodes.items():
        if nid in skip:
            continue
        cls = n["type"]
        if cls not in info:
            raise KeyError(f"node {nid}: unknown node type {cls!r}")
        order = info[cls].get("input_order") or {k: list(v) for k, v in info[cls]["input"].items()}
        values = list(n.get("widgets_values") or [])
        linked = {}
        for inp in n.get("inputs", []):
            if inp.get("link") is not None and inp["link"] in links:
                ln = links[inp["link"]]
                if ln[1] not in skip:
                    linked[inp["name"]] = [str(ln[1]), ln[2]]
        inputs = {}
        for section in ("required", "optional"):
            for name in order.get(section, []):
                spec = _spec(info, cls, name)
                if spec is None:
                    continue
                if _is_widget(spec):
                    if values:
                        inputs[name] = values.pop(0)
                    if has_control_slot(name, spec) and values:
                        values.pop(0)
                if name in linked:
                    inputs[name] = linked[name]
        api[str(nid)] = {"class_type": cls, "inputs": inputs}
    return api


def validate_api(api: dict, info: dict, allow_missing_files: bool = False) -> list[str]:
    """What POST /prompt would refuse, as a list of problems (empty when valid)."""
    problems = []
    for nid, node in api.items():
        cls = node["class_type"]
        if cls not in info:
            problems.append(f"{nid}: unknown node type {cls}")
            continue
        req = info[cls]["input"].get("required", {})
        for name, spec in req.items():
            if name not in node["inputs"]:
                problems.append(f"{nid} {cls}: required input {name!r} missing")
        for name, v in node["inputs"].items():
            spec = _spec(info, cls, name)
            if spec is None:
                problems.append(f"{nid} {cls}: no input called {name!r}")
                continue
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str):
                src = api.get(v[0])
                if src is None:
                    problems.append(f"{nid} {cls}.{name}: linked to missing node {v[0]}")
                    continue
                outs = info[src["class_type"]]["output"]
                if v[1] >= len(outs):
                    problems.append(f"{nid} {cls}.{name}: {src['class_type']} has no output {v[1]}")
                    continue
                want = spec[0] if isinstance(spec[0], str) else "COMBO"
                got = outs[v[1]]
                if want not in ("*", got) and not (want == "COMBO" and isinstance(got, list)):
                    problems.append(f"{nid} {cls}.{name}: wants {want}, linked to {got}")
                continue
            combo = _combo_values(spec)
            opts = _options(spec)
            if combo is not None:
                if v not in combo and not (allow_missing_files and not combo_is_fixed(combo)):
                    problems.append(f"{nid} {cls}.{name}: {v!r} not among {combo[:8]}")
            elif spec[0] in ("INT", "FLOAT"):
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    problems.append(f"{nid} {cls}.{name}: {v!r} is not a number")
                elif ("min" in opts and v < opts["min"]) or ("max" in opts and v > opts["max"]):
                    problems.append(f"{nid} {cls}.{name}: {v} outside [{opts.get('min')}, {opts.get('max')}]")
            elif spec[0] == "BOOLEAN" and not isinstance(v, bool):
                problems.append(f"{nid} {cls}.{name}: {v!r} is not a boolean")
            elif spec[0] == "STRING" and not isinstance(v, str):
                problems.append(f"{nid} {cls}.{name}: {v!r} is not a string")
    return problems


def combo_is_fixed(values) -> bool:
    """A combo of choices (samplers, labels) rather than files found on disk: file lists hold
    names with a suffix, or are empty on a machine without models."""
    return bool(values) and not any("." in str(x) for x in values)

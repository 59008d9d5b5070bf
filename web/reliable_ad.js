// Reliable AD: a verdict badge on RFNet Inspect and Recurrent Generate nodes, and the review grid
// of Review & Label.
// The nodes send {"rf_verdicts": [{label, p_available, accepted, ...}]} in their UI output;
// the badge shows the chosen verdict (green Available, red with the defect) and how many passed.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

const NODES = new Set(["RFNetInspect", "RFRecurrentGenerate"]);

// The front end draws a node's latest live (latent) preview in preference to its output images
// and drops it only when the node runs again, so Recurrent Generate's badged attempts stayed
// hidden behind its last latent preview. Once the node has executed, its outputs are what to show.
function dropLivePreview(node) {
  const previews = app.nodePreviewImages;
  if (!previews) return;
  const keys = [String(node.id)];
  if (node.graph && node.graph !== app.graph && node.graph.id) keys.push(`${node.graph.id}:${node.id}`);
  for (const key of keys) delete previews[key];
  // and the outputs count as new, so the next draw shows them even if a draw came in between
  node.images = null;
}

const COLOURS = { green: "#1e963c", red: "#c82828", orange: "#d2821e", grey: "#555" };
const OUTSIDE = "outside the inspector's training data";

// What the badge says: while a node runs, its latest status line (an attempt's verdict, sent as
// "reliable_ad.status"; ComfyUI's progress text would be drawn over the image preview); after it,
// the chosen verdict and how many passed, or that the images are unlike the inspector's data.
function badgeOf(node) {
  if (node.rfStatus) return { text: node.rfStatus.text, colour: COLOURS[node.rfStatus.colour] || COLOURS.grey };
  const v = node.rfVerdicts;
  if (!v || !v.length) return null;
  const chosen = v.find((x) => x.chosen) || v[0];
  const passed = v.filter((x) => x.accepted).length;
  const count = v.length > 1 ? `  (${passed}/${v.length} passed)` : "";
  if (!chosen.accepted && String(chosen.note || "").startsWith(OUTSIDE)) {
    return { text: `${OUTSIDE}: label with Review & Label, then Train RFNet${count}`, colour: COLOURS.orange };
  }
  const text = `${chosen.accepted ? "Available" : chosen.label}  ${Number(chosen.p_available).toFixed(2)}${count}`;
  return { text, colour: chosen.accepted ? COLOURS.green : COLOURS.red };
}

api.addEventListener("reliable_ad.status", ({ detail }) => {
  const node = app.graph?.getNodeById(Number(detail.node)) ?? app.graph?.getNodeById(detail.node);
  if (!node) return;
  node.rfStatus = detail;
  node.setDirtyCanvas(true, true);
});

app.registerExtension({
  name: "reliable_ad.badge",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      this.rfVerdicts = message?.rf_verdicts || null;
      this.rfStatus = null;
      if (message?.images?.length) dropLivePreview(this);
      this.setDirtyCanvas(true, true);
    };
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      const b = badgeOf(this);
      if (!b || this.flags?.collapsed) return;
      ctx.save();
      ctx.font = "bold 12px sans-serif";
      const w = ctx.measureText(b.text).width + 12;
      ctx.fillStyle = b.colour;
      // above the title bar, not on it: on the bar it covered the node's title
      const top = -LiteGraph.NODE_TITLE_HEIGHT - 22;
      ctx.beginPath();
      ctx.roundRect(0, top, w, 18, 4);
      ctx.fill();
      ctx.fillStyle = "#fff";
      ctx.fillText(b.text, 6, top + 13);
      ctx.restore();
    };
  },
});

// Review & Label: the batch on the node, the least certain image first, with RFNet's verdict as
// the pre-filled label. Each click is posted at once (POST /reliable_ad/review/label); the node
// keeps only the batch's name in its properties, so after a reload the labels come back from the
// server (GET /reliable_ad/review/batch).
const LABEL_COLOURS = {
  "Available": "#1e963c", "Space Mismatch": "#c8641e", "Size Mismatch": "#b4961e",
  "Indistinctiveness": "#6e6eb4", "Shape Hallucination": "#c82828", "Unsuitable": "#646464",
};

// short, distinct button texts (the initials of Space and Size Mismatch are the same)
const SHORT = {
  "Available": "OK", "Space Mismatch": "Space", "Size Mismatch": "Size",
  "Indistinctiveness": "Indist.", "Shape Hallucination": "Shape", "Unsuitable": "Unsuit.",
};

function viewURL(item) {
  const q = new URLSearchParams({ filename: item.filename, subfolder: item.subfolder, type: item.type });
  return api.apiURL(`/view?${q}`);
}

function renderReview(node, batch) {
  const root = node.rfReviewEl;
  root.replaceChildren();
  const head = document.createElement("div");
  head.style.cssText = "font:12px sans-serif;color:#ddd;margin:2px 0 4px";
  const count = () => batch.items.filter((x) => x.label).length;
  const setHead = (msg) => {
    head.textContent = `${batch.dataset}: ${count()}/${batch.items.length} labelled` + (msg ? ` — ${msg}` : "");
  };
  setHead();
  root.appendChild(head);
  const grid = document.createElement("div");
  grid.style.cssText = "display:grid;grid-template-columns:repeat(auto-fill,minmax(132px,1fr));gap:6px";
  root.appendChild(grid);
  for (const item of batch.items) {
    const cell = document.createElement("div");
    cell.style.cssText = "border:2px solid #444;border-radius:4px;padding:2px;background:#222";
    const img = document.createElement("img");
    img.src = viewURL(item);
    img.style.cssText = "width:100%;display:block;image-rendering:pixelated";
    const info = document.createElement("div");
    info.style.cssText = "font:10px sans-serif;color:#aaa;margin:2px 0";
    info.textContent = `RFNet: ${item.rfnet} (${Number(item.p_available).toFixed(2)})`;
    const buttons = document.createElement("div");
    buttons.style.cssText = "display:flex;flex-wrap:wrap;gap:2px";
    const current = item.label || item.rfnet;
    const paint = () => {
      cell.style.borderColor = item.label ? LABEL_COLOURS[item.label] || "#888" : "#444";
      for (const b of buttons.children) {
        const on = b.dataset.label === (item.label || current);
        b.style.background = on ? LABEL_COLOURS[b.dataset.label] || "#888" : "#333";
        b.style.fontWeight = item.label && on ? "bold" : "normal";
      }
    };
    for (const label of batch.labels) {
      const b = document.createElement("button");
      b.dataset.label = label;
      b.textContent = SHORT[label] || label;
      b.title = label;
      b.style.cssText = "font:10px sans-serif;color:#fff;border:0;border-radius:3px;padding:1px 4px;cursor:pointer";
      b.onclick = async () => {
        try {
          const r = await api.fetchApi("/reliable_ad/review/label", {
            method: "POST", headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ dataset: batch.dataset, batch: batch.batch, index: item.index, label }),
          });
          const res = await r.json();
          if (!r.ok || !res.ok) throw new Error(res.error || r.statusText);
          item.label = res.label;
          paint();
          setHead();
        } catch (e) {
          setHead(`not saved: ${e.message}`);
        }
      };
      buttons.appendChild(b);
    }
    cell.append(img, info, buttons);
    grid.appendChild(cell);
    paint();
  }
  const [w, h] = node.computeSize();
  node.setSize([Math.max(node.size[0], w), Math.max(node.size[1], h)]);
  node.setDirtyCanvas(true, true);
}

async function loadReview(node, ref) {
  const q = new URLSearchParams({ dataset: ref.dataset, batch: ref.batch });
  const r = await api.fetchApi(`/reliable_ad/review/batch?${q}`);
  if (!r.ok) return;
  const batch = await r.json();
  if (batch.ok) renderReview(node, batch);
}

app.registerExtension({
  name: "reliable_ad.review",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== "RFReviewLabel") return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      onNodeCreated?.apply(this, arguments);
      this.rfReviewEl = document.createElement("div");
      this.rfReviewEl.style.cssText = "overflow:auto;max-height:100%";
      // Not saved with the workflow (the labels live on the server): set on the widget itself, as
      // the core's DOM widgets do, since the option alone still saved an empty value. The minimum
      // height leaves room for a row of cells with their buttons (they were cut below the images).
      const grid = this.addDOMWidget("review", "rf_review", this.rfReviewEl, {
        serialize: false, getMinHeight: () => (this.rfReviewEl.childElementCount ? 240 : 40),
      });
      grid.serialize = false;
      this.setSize([Math.max(this.size[0], 460), Math.max(this.size[1], 420)]);
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const batch = message?.rf_review?.[0];
      if (!batch) return;
      this.properties = this.properties || {};
      this.properties.rf_review = { dataset: batch.dataset, batch: batch.batch };
      renderReview(this, batch);
    };
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      onConfigure?.apply(this, arguments);
      const ref = this.properties?.rf_review;
      if (ref) loadReview(this, ref);  // after a reload: the labels are on the server
    };
  },
});

// A new node of the pack: at least as wide as its title (the front end sizes a new node by its
// widgets alone, which cut titles such as "Paste Product Back" and "Depth Map (RF)"), with its
// control widgets in the modes its inputs ask for.
const measure = document.createElement("canvas").getContext("2d");

function titleWidth(title) {
  measure.font = `${LiteGraph.NODE_TEXT_SIZE ?? 14}px ${LiteGraph.NODE_FONT ?? "Arial"}`;
  // the title's text, the collapse dot on its left and some room on the right
  return Math.ceil(measure.measureText(title).width) + (LiteGraph.NODE_TITLE_HEIGHT ?? 30) + 20;
}

app.registerExtension({
  name: "reliable_ad.new_nodes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!String(nodeData.category || "").startsWith("Reliable AD")) return;
    // The front end sets every control widget of a new node to randomize. The training seeds must
    // stay fixed (queueing again resumes the same run) and Load Product Folder must increment (each
    // queued run takes the next product): their inputs name the mode in rf_control_default.
    const inputs = { ...(nodeData.input?.required || {}), ...(nodeData.input?.optional || {}) };
    const controls = Object.entries(inputs).filter(([, spec]) => spec?.[1]?.rf_control_default)
      .map(([name, spec]) => [name, spec[1].rf_control_default]);
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      onNodeCreated?.apply(this, arguments);
      const w = titleWidth(this.title || nodeData.display_name || nodeData.name);
      if (this.size[0] < w) this.setSize([w, this.size[1]]);
      for (const [name, mode] of controls) {
        const control = this.widgets?.find((x) => x.name === name)?.linkedWidgets?.[0];
        if (control) control.value = mode;  // a loaded workflow's own value replaces it afterwards
      }
    };
  },
});

// Reliable AD: a verdict badge on RFNet Inspect and Recurrent Generate nodes.
// The nodes send {"rf_verdicts": [{label, p_available, accepted, ...}]} in their UI output;
// the badge shows the first verdict (green Available, red with the defect) and how many passed.
import { app } from "../../scripts/app.js";

const NODES = new Set(["RFNetInspect", "RFRecurrentGenerate"]);

app.registerExtension({
  name: "reliable_ad.badge",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      this.rfVerdicts = message?.rf_verdicts || null;
      this.setDirtyCanvas(true, true);
    };
    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      const v = this.rfVerdicts;
      if (!v || !v.length || this.flags?.collapsed) return;
      const chosen = v.find((x) => x.chosen) || v[0];
      const ok = !!chosen.accepted;
      const passed = v.filter((x) => x.accepted).length;
      const text = `${ok ? "Available" : chosen.label}  ${Number(chosen.p_available).toFixed(2)}` +
        (v.length > 1 ? `  (${passed}/${v.length} passed)` : "");
      ctx.save();
      ctx.font = "bold 12px sans-serif";
      const w = ctx.measureText(text).width + 12;
      ctx.fillStyle = ok ? "#1e963c" : "#c82828";
      ctx.beginPath();
      ctx.roundRect(this.size[0] - w - 6, -LiteGraph.NODE_TITLE_HEIGHT + 5, w, 18, 4);
      ctx.fill();
      ctx.fillStyle = "#fff";
      ctx.fillText(text, this.size[0] - w, -LiteGraph.NODE_TITLE_HEIGHT + 18);
      ctx.restore();
    };
  },
});

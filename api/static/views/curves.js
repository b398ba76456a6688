// Learning curves, shared by the job view and Compare: train solid, validation dashed.

import { PALETTE, plot, qualityMetric } from "../ui.js";

const TITLES = { loss: "Loss", accuracy: "Accuracy", mae: "Mean absolute error" };

// series: [{label, rows, objective}] where rows are per-epoch metric rows sorted by epoch.
function traces(series, metric) {
  return series.flatMap(({ label, rows }, index) => {
    const color = PALETTE[index % PALETTE.length];
    const epochs = rows.map((r) => r.epoch);
    const name = (part) => (series.length > 1 ? `${label} · ${part}` : part);
    return [
      { x: epochs, y: rows.map((r) => r[metric]), name: name("train"), mode: "lines+markers",
        line: { color, width: 2 }, marker: { size: 5 } },
      { x: epochs, y: rows.map((r) => r[`val_${metric}`]), name: name("validation"),
        mode: "lines+markers", line: { color, width: 2, dash: "dash" }, marker: { size: 5 } },
    ].filter((t) => t.y.some((v) => v !== null && v !== undefined));
  });
}

// Draws the loss chart and the accuracy (or mae) chart; `maxEpoch`, when given, fixes the x axis
// so that a running job's curve grows towards its last epoch.
export function drawCurves(lossNode, qualityNode, series, maxEpoch) {
  const metric = qualityMetric(series.flatMap((s) => s.rows), series[0]?.objective);
  const xaxis = { title: { text: "epoch" }, range: maxEpoch ? [0.5, maxEpoch + 0.5] : undefined };
  plot(lossNode, traces(series, "loss"), { title: { text: TITLES.loss }, xaxis });
  plot(qualityNode, traces(series, metric), { title: { text: TITLES[metric] }, xaxis });
}

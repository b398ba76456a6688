// A finished job's evaluation on its test split: the confusion matrix (a cell lists its
// misclassified samples, drawn for images, as rows for tabular data), per-class scores, ROC and
// precision-recall curves for binary tasks, residuals for regression.

import { get, send } from "../api.js";
import { el, errorBox, fmt, loading, mount, plot } from "../ui.js";
import { picture } from "./datasets.js";

// An image is a [height][width] (or [height][width][channels]) array; frames are images in a row.
const isImage = (features) => Array.isArray(features?.[0]);
const isFrames = (features) => Array.isArray(features?.[0]?.[0]?.[0]);

function sampleView(samples, featureNames) {
  if (!samples.length) {
    return el("p", { class: "muted" }, "The report keeps no misclassified sample of this cell.");
  }
  const label = (s) => `#${s.index}${s.step !== undefined ? ` step ${s.step}` : ""}: `
    + `${s.true} taken for ${s.predicted}`;
  const caption = (s) => el("figcaption", {}, `#${s.index}`,
    s.step !== undefined ? ` · step ${s.step}` : "", el("br"),
    `p(${s.predicted}) = ${Math.max(...s.probabilities).toFixed(2)}`);
  if (samples.every((s) => isFrames(s.features))) {
    return el("div", { class: "samples" }, samples.map((s) => el("figure", {},
      el("div", { class: "frames" }, s.features.map((frame, t) => picture(frame,
        `${label(s)}, frame ${t + 1}`))), caption(s))));
  }
  if (samples.every((s) => isImage(s.features))) {
    return el("div", { class: "samples" }, samples.map((s) => el("figure", {},
      picture(s.features, label(s)), caption(s))));
  }
  const width = samples[0].features ? samples[0].features.flat(Infinity).length : 0;
  const columns = width && width <= 16
    ? (featureNames || Array.from({ length: width }, (_, i) => `x${i}`)) : [];
  return el("div", { class: "scroll" }, el("table", { class: "numbers" },
    el("thead", {}, el("tr", {}, ["index", ...columns, "probabilities"].map((h) => el("th",
      { scope: "col" }, h)))),
    el("tbody", {}, samples.map((s) => el("tr", {},
      el("td", {}, String(s.index) + (s.step !== undefined ? ` step ${s.step}` : "")),
      columns.length ? s.features.flat(Infinity).map((v) => el("td", {}, fmt(v))) : null,
      el("td", {}, s.probabilities.map((p) => p.toFixed(2)).join(" ")))))));
}

function confusion(report, featureNames) {
  const { classes } = report;
  const detail = el("div", { id: "cell-samples" });
  const largest = Math.max(1, ...report.confusion_matrix.flat());
  const choose = (t, p) => {
    const samples = report.misclassified.filter((s) => s.true === classes[t]
      && s.predicted === classes[p]);
    const count = report.confusion_matrix[t][p];
    mount(detail, el("h3", {}, `True ${classes[t]}, predicted ${classes[p]}: ${count}`
      + (samples.length < count ? ` (${samples.length} kept)` : "")),
    sampleView(samples, featureNames));
  };
  const cell = (count, t, p) => {
    const shade = count / largest;
    const style = `background: rgba(${t === p ? "37, 99, 235" : "220, 38, 38"}, ${shade * 0.6})`;
    if (t === p || !count) return el("td", { style }, String(count));
    return el("td", { style }, el("button", { type: "button", class: "link",
      "aria-label": `${count} of true ${classes[t]} predicted ${classes[p]}`,
      onclick: () => choose(t, p) }, String(count)));
  };
  return el("div", {},
    el("div", { class: "scroll" }, el("table", { class: "numbers confusion", id: "confusion" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "true ↓ predicted →"),
        classes.map((c) => el("th", { scope: "col" }, c)))),
      el("tbody", {}, report.confusion_matrix.map((row, t) => el("tr", {},
        el("th", { scope: "row" }, classes[t]), row.map((count, p) => cell(count, t, p))))))),
    el("p", { class: "muted" }, report.misclassified_total
      ? "Click a count off the diagonal for its misclassified samples." : "No test sample is misclassified."),
    detail);
}

function perClass(report) {
  const rows = [...report.per_class.map((c) => [c.class, c.precision, c.recall, c.f1, c.support]),
    ...["macro", "weighted"].map((a) => [`${a} avg`, report[a].precision, report[a].recall,
      report[a].f1, null])];
  return el("table", { class: "numbers" },
    el("thead", {}, el("tr", {}, ["class", "precision", "recall", "F1", "support"].map((h) =>
      el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, fmt(v, 3)))))));
}

function curves(report) {
  if (!report.roc) return null;
  const roc = el("div", { class: "chart", id: "roc-chart", role: "img", "aria-label": "ROC curve" });
  const pr = el("div", { class: "chart", id: "pr-chart", role: "img",
    "aria-label": "precision-recall curve" });
  requestAnimationFrame(() => {
    plot(roc, [{ x: report.roc.fpr, y: report.roc.tpr, mode: "lines", name: "ROC" }],
      { title: { text: `ROC (AUC ${fmt(report.roc.auc, 3)})` },
        xaxis: { title: { text: "false positive rate" } },
        yaxis: { title: { text: "true positive rate" } } });
    plot(pr, [{ x: report.pr.recall, y: report.pr.precision, mode: "lines", name: "PR" }],
      { title: { text: `Precision-recall (AUC ${fmt(report.pr.auc, 3)})` },
        xaxis: { title: { text: "recall" } }, yaxis: { title: { text: "precision" } } });
  });
  return el("div", { class: "charts" }, roc, pr);
}

function regression(report) {
  const chart = el("div", { class: "chart", id: "residual-chart", role: "img",
    "aria-label": "residuals against predictions" });
  requestAnimationFrame(() => plot(chart, [{ x: report.residuals.map((r) => r.predicted),
    y: report.residuals.map((r) => r.residual), mode: "markers", name: "residual",
    text: report.residuals.map((r) => `#${r.index}`) }],
  { title: { text: "Residual (true − predicted) against prediction" },
    xaxis: { title: { text: "predicted" } }, yaxis: { title: { text: "residual" } } }));
  return [el("dl", { class: "facts" }, [["MAE", report.mae], ["RMSE", report.rmse],
    ["R²", report.r2]].map(([k, v]) => [el("dt", {}, k), el("dd", {}, fmt(v))])), chart];
}

function draw(report, featureNames) {
  const scope = `${report.samples} ${report.split === "test" ? "test " : ""}samples`
    + (report.per_time_step ? ` × ${report.steps} time steps, each step counted` : "");
  if (report.task === "regression") return [el("p", { class: "muted" }, scope), regression(report)];
  return [el("p", {}, `Accuracy ${fmt(report.accuracy)} on ${scope}; macro F1 `,
    `${fmt(report.macro.f1)}.`), confusion(report, featureNames), el("h3", {}, "Per class"),
  perClass(report), curves(report)];
}

// The section for a succeeded job (filled when its report arrives).
export function evaluationSection(job) {
  const section = el("section", { class: "card", id: "evaluation" }, el("h2", {}, "Evaluation"),
    loading("Loading the evaluation"));
  Promise.all([get(`/jobs/${job.id}/evaluation`),
    get(`/datasets/${encodeURIComponent(job.dataset)}`).catch(() => null)])
    .then(([report, dataset]) => mount(section, el("h2", {}, "Evaluation on the test split"),
      draw(report, dataset?.feature_names)))
    .catch((error) => mount(section, el("h2", {}, "Evaluation"), errorBox(error,
      "No evaluation")));
  return section;
}

// A version of the caller's evaluated on a dataset they pick, by its served ONNX graph.
export function evaluateSection(name, version) {
  const out = el("div", { id: "evaluate-result" });
  const choice = el("select", { id: "evaluate-dataset", "aria-label": "dataset" });
  get("/datasets").then((datasets) => mount(choice, datasets.map((d) => el("option",
    { value: d.id }, d.id)))).catch((error) => mount(out, errorBox(error)));
  const run = async (event) => {
    event.preventDefault();
    mount(out, loading("Evaluating"));
    try {
      const report = await send("POST", `/models/${encodeURIComponent(name)}/versions/${version}`
        + "/evaluate", { dataset: choice.value });
      const dataset = await get(`/datasets/${encodeURIComponent(choice.value)}`).catch(() => null);
      mount(out, draw(report, dataset?.feature_names));
    } catch (error) {
      mount(out, errorBox(error, "Not evaluated"));
    }
  };
  return el("section", { class: "card", id: "evaluate" }, el("h2", {}, `Evaluate v${version}`),
    el("p", { class: "muted" }, "By the served ONNX graph: on the test split of the data it "
      + "was trained on, else on every sample of the dataset."),
    el("form", { class: "inline", onsubmit: run }, choice, " ",
      el("button", { type: "submit", class: "primary" }, "Evaluate")), out);
}

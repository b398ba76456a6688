// Small DOM helpers shared by the views: elements without innerHTML, errors in words, charts.

import { get, send } from "./api.js";

// The service's vocabulary, `GET /catalog`: the views take names, statuses, formats and metric
// columns from it and keep no copies. It is fetched once (again after a failure); the sets
// below are filled from it for the views' synchronous checks, before any view renders.
let catalogRequest = null;
export const FINISHED = new Set();  // the job statuses that are final
const BOOKKEEPING = new Set();  // the metric columns that describe the run, not the model
const OBJECTIVE_TASKS = new Map();  // objective name → "classification" or "regression"

export function loadCatalog() {
  catalogRequest ??= get("/catalog").then((catalog) => {
    for (const status of catalog.job_statuses) if (status.finished) FINISHED.add(status.name);
    for (const metric of catalog.metrics) if (metric.bookkeeping) BOOKKEEPING.add(metric.name);
    for (const objective of catalog.objectives) OBJECTIVE_TASKS.set(objective.name, objective.task);
    return catalog;
  }, (error) => {
    catalogRequest = null;
    throw error;
  });
  return catalogRequest;
}

// el("a", {href: "#/jobs", class: "x", onclick: fn}, "text", child, [children])
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  node.append(...children.flat(Infinity)
    .filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function mount(root, ...children) {
  root.replaceChildren(...children.flat(Infinity).filter(Boolean));
}

// An API error (or any error) as a block of words: the message, then each detail's place.
export function errorBox(error, title = "Something went wrong") {
  const details = (error.details || []).filter((d) => d.field || d.message);
  return el("div", { class: "error", role: "alert" },
    el("strong", {}, title + ": "), error.message || String(error),
    details.length ? el("ul", {}, details.map((d) => el("li", {},
      d.field ? el("code", {}, d.field) : null, d.field ? " " : null,
      d.message || "", d.value !== undefined && d.value !== null
        ? ` (received ${JSON.stringify(d.value)})` : ""))) : null);
}

export function empty(message, ...action) {
  return el("div", { class: "empty" }, el("p", {}, message), ...action);
}

export function loading(what = "Loading") {
  return el("p", { class: "loading", role: "status" }, `${what}…`);
}

let toastTimer;
export function toast(message) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("shown"), 4000);
}

// Opens a dataset or model (`path`) to every member, or closes it; only its owner may.
export function publicToggle(path, isPublic, onChanged) {
  return el("button", { type: "button", "aria-pressed": isPublic ? "true" : "false",
    onclick: async () => {
      try {
        const changed = await send("PATCH", path, { public: !isPublic });
        toast(changed.public ? "Public: every member may now use it" : "Private again");
        onChanged();
      } catch (error) { toast(error.message); }
    } }, isPublic ? "Make private" : "Make public");
}

export function fmt(value, digits = 4) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return Number(value.toPrecision(digits)).toString();
}

export function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function seconds(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function shape(dims) {
  return dims ? `[${dims.join(" × ")}]` : "—";
}

export function statusBadge(status) {
  return el("span", { class: `badge ${status}` }, status);
}

// The metric a job is judged by: accuracy for classification, mean absolute error otherwise.
// A link to a dataset that reads its name (an upload's id is opaque), its id kept as the title;
// it reads the id until the name comes, and keeps it if the dataset cannot be read.
const DATASET_NAMES = new Map();
export function datasetLink(id) {
  const link = el("a", { href: `#/datasets/${encodeURIComponent(id)}`, title: id,
    class: "dataset-link" }, DATASET_NAMES.get(id) || id);
  if (!DATASET_NAMES.has(id)) {
    get(`/datasets/${encodeURIComponent(id)}`).then((d) => {
      DATASET_NAMES.set(id, d.name);
      link.textContent = d.name;
    }, () => {});
  }
  return link;
}

// The training coach's flags (`coach` on a job and on a model card), each in plain words with
// links to the catalog entries that help; `brief` shows only a badge per flag (the jobs list).
const COACH_BADGES = { diverged: "diverged", chance: "at chance level", overfit: "overfit" };

export function coachFlags(flags, brief = false) {
  if (!flags || !flags.length) return null;
  if (brief) {
    return el("span", { class: "coach-badges" }, flags.map((f) => el("span",
      { class: "badge coach", title: f.message, dataset: { flag: f.code } },
      COACH_BADGES[f.code] || f.code)));
  }
  return el("ul", { class: "coach", "aria-label": "What the training coach found" },
    flags.map((f) => el("li", { dataset: { flag: f.code } }, f.message, " ",
      el("span", { class: "small" }, "See ", f.links.map((l, i) => [i ? ", " : "",
        el("a", { href: `#/catalog/${l.section}` }, l.label)]), "."))));
}

// Accuracy for a classification, mean absolute error for a regression: from the objective when
// it is known (a job with no epoch yet), else from the rows.
export function qualityMetric(rows, objective) {
  const task = OBJECTIVE_TASKS.get(objective);
  if (task) return task === "classification" ? "accuracy" : "mae";
  return rows.some((r) => r.accuracy !== null && r.accuracy !== undefined) ? "accuracy" : "mae";
}

// A job's final (or a card's) metrics without what every epoch row carries besides its
// metrics: its number and the bookkeeping columns.
export function resultMetrics(metrics) {
  return Object.entries(metrics || {}).filter(([name, value]) => typeof value === "number"
    && name !== "epoch" && !BOOKKEEPING.has(name));
}

export const PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2",
  "#db2777", "#4b5563"];

const CHART_LAYOUT = {
  margin: { l: 56, r: 16, t: 36, b: 44 },
  font: { family: "system-ui, sans-serif", size: 12, color: "#1f2937" },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "#ffffff",
  legend: { orientation: "h", x: 0, xanchor: "left", y: -0.3, yanchor: "top" },
  xaxis: { gridcolor: "#e5e7eb", zeroline: false },
  yaxis: { gridcolor: "#e5e7eb", zeroline: false },
};

// Draws (or redraws in place) a Plotly chart; `layout` overrides the shared look.
// The toolbar keeps zoom, reset and "save as PNG"; nothing that sends data to Plotly's cloud.
const CHART_CONFIG = { displaylogo: false, responsive: true, showSendToCloud: false,
  showEditInChartStudio: false, showLink: false, plotlyServerURL: "",
  modeBarButtonsToRemove: ["sendDataToCloud", "editInChartStudio", "lasso2d", "select2d"] };

export function plot(node, traces, layout = {}) {
  if (!window.Plotly) {
    mount(node, el("p", { class: "muted" }, "Charts need the plotly package on the server."));
    return;
  }
  const merged = {
    ...CHART_LAYOUT, ...layout,
    xaxis: { ...CHART_LAYOUT.xaxis, ...(layout.xaxis || {}) },
    yaxis: { ...CHART_LAYOUT.yaxis, ...(layout.yaxis || {}) },
  };
  window.Plotly.react(node, traces, merged, CHART_CONFIG);
}

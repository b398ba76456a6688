// One job: its learning curves growing live, timeline, metrics and a link to its model card.

import { download, get, send } from "../api.js";
import { listen } from "../live.js";
import {
  FINISHED, coachFlags, datasetLink, el, fmt, loadCatalog, loading, mount, resultMetrics,
  seconds, shape, statusBadge, toast, when,
} from "../ui.js";
import { codeCard } from "./code.js";
import { drawCurves } from "./curves.js";
import { evaluationSection } from "./evaluation.js";
import { cancelJob, progress } from "./jobs.js";
import { editAsNewJob } from "./new-job.js";

// The job's spec queued again on the catalog's other framework, with its name and note; the
// new job, or null once a refusal was shown.
export async function runOnOtherFramework(job) {
  const { job: parameters } = await loadCatalog();
  const frameworks = parameters.find((p) => p.name === "framework").schema.enum;
  const other = frameworks.find((f) => f !== job.framework);
  try {
    return await send("POST", "/jobs", { ...job.spec, framework: other,
      ...(job.name ? { name: job.name } : {}), ...(job.note ? { note: job.note } : {}) });
  } catch (error) {
    toast(error.message);
    return null;
  }
}

function summary(job) {
  const facts = [
    ["Model", job.model_version
      ? el("a", { href: `#/models/${encodeURIComponent(job.model_name)}/${job.model_version}` },
        `${job.model_name} version ${job.model_version} (model card)`)
      : job.model_name],
    ["Framework", job.framework],
    ["Device", job.device || `${job.requested_device} (requested)`],
    ["Dataset", datasetLink(job.dataset)],
    ["Epochs", progress(job)],
    ["Attempt", `${job.attempt} of ${job.max_attempts}`],
    ["Worker", job.worker || "—"],
    ["Split", job.split ? `${job.split.train} train · ${job.split.validation} validation · `
      + `${job.split.test} test (seed ${job.split.seed})` : "—"],
  ];
  return el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function timeline(job) {
  if (!job.timeline.length) return el("p", { class: "muted" }, "No events yet.");
  return el("ol", { class: "timeline" }, job.timeline.map((event) => el("li", {},
    statusBadge(event.status), " ", el("time", { datetime: event.at }, when(event.at)),
    event.detail ? el("div", { class: "muted" }, event.detail) : null)));
}

function metricsTable(rows) {
  // The API's own field order (GET /catalog lists and describes them), less the empty ones.
  const used = Object.keys(rows[0] || {}).filter((c) => rows.some((r) => r[c] !== null
    && r[c] !== undefined));
  return el("div", { class: "scroll tall" }, el("table", { class: "numbers" },
    el("thead", {}, el("tr", {}, used.map((c) => el("th", { scope: "col" }, c)))),
    el("tbody", {}, rows.map((r) => el("tr", {}, used.map((c) => el("td", {},
      c === "duration_s" ? seconds(r[c]) : fmt(r[c]))))))));
}

function finalMetrics(job) {
  const final = resultMetrics(job.final_metrics);
  if (!final.length) return null;
  return el("section", { class: "card" }, el("h2", {}, "Final metrics"),
    el("dl", { class: "facts" }, final.map(([k, v]) => [el("dt", {}, k), el("dd", {}, fmt(v))])));
}

export async function render(root, id) {
  mount(root, loading("Loading the job"));
  let job = null;
  const rows = new Map();
  const lossChart = el("div", { class: "chart", id: "loss-chart", role: "img",
    "aria-label": "loss per epoch, train and validation" });
  const qualityChart = el("div", { class: "chart", id: "quality-chart", role: "img",
    "aria-label": "accuracy or mean absolute error per epoch, train and validation" });
  const header = el("div");
  const side = el("div");
  const table = el("section", { class: "card" });
  const evaluation = el("div");  // the report, once the job has succeeded

  function drawHeader() {
    mount(header, el("div", { class: "head" },
      el("h1", {}, job.name ? `${job.name} ` : "Job ", el("code", {}, job.id.slice(0, 8)), " ",
        statusBadge(job.status)),
      el("div", { class: "actions" },
        el("button", { type: "button", id: "edit-as-new", onclick: () => editAsNewJob(job.spec) },
          "Edit as a new job"),
        el("button", { type: "button", id: "other-framework",
          onclick: async () => {
            const copy = await runOnOtherFramework(job);
            if (copy) location.hash = `#/jobs/${copy.id}`;
          } }, "Run on the other framework"),
        el("a", { class: "button", href: `#/compare/${job.id}` }, "Compare with…"),
        FINISHED.has(job.status) ? null : el("button", { type: "button", class: "danger",
          onclick: async () => { const out = await cancelJob(job.id); if (out) refresh(); } },
        "Cancel"))),
    job.failure_reason ? el("div", { class: "error", role: "alert" },
      el("strong", {}, `${job.status === "cancelled" ? "Cancelled" : "Failed"}: `),
      job.failure_reason) : null,
    job.coach && job.coach.length ? el("section", { class: "warning", id: "coach",
      role: "status" }, el("strong", {}, "The training coach: "), coachFlags(job.coach)) : null,
    job.note ? el("p", { class: "note", id: "job-note" }, job.note) : null,
    summary(job));
    mount(side, el("section", { class: "card" }, el("h2", {}, "Timeline"), timeline(job)),
      finalMetrics(job),
      el("section", { class: "card" }, el("h2", {}, "Spec"),
        el("p", {}, `Input ${shape(job.spec.model.input.shape)}, `,
          `${job.spec.model.layers.length} layers, objective ${job.spec.model.objective}, `,
          `optimizer ${job.spec.training.optimizer?.type || "adam"}`),
        el("details", {}, el("summary", {}, "JSON"),
          el("pre", {}, JSON.stringify(job.spec, null, 2)))),
      codeCard(job));
  }

  function drawEvaluation() {
    if (job.status === "succeeded" && !evaluation.childElementCount) {
      mount(evaluation, evaluationSection(job));
    }
  }

  function drawRows() {
    const sorted = [...rows.values()].sort((a, b) => a.epoch - b.epoch);
    drawCurves(lossChart, qualityChart, [{ label: job.model_name, rows: sorted,
      objective: job.spec.model.objective }],
      FINISHED.has(job.status) ? null : job.epochs);
    lossChart.dataset.epochs = String(sorted.length);
    mount(table, el("h2", {}, "Per epoch"), sorted.length ? metricsTable(sorted)
      : el("p", { class: "muted" }, job.status === "queued" ? "Waiting for a worker…"
        : "No epoch finished yet."),
    el("p", {}, el("a", { href: `/jobs/${job.id}/metrics.csv`, onclick: downloadCsv },
      "Download as CSV")));
  }

  function downloadCsv(event) {
    event.preventDefault();
    download(`/jobs/${job.id}/metrics.csv`, `${job.id}-metrics.csv`).catch((e) => alert(e.message));
  }

  async function refresh() {
    job = await get(`/jobs/${id}`);
    drawHeader();
    drawRows();
    drawEvaluation();
  }

  // The job's events from the caller's stream. Rows are keyed by epoch: an epoch trained again
  // (a resumed job) replaces its row, and one the page also loads is not added twice. Until the
  // page is drawn, events are only kept; then a burst redraws once per frame.
  let drawn = false;
  let changed = false;  // a status event came before the page was drawn
  let pending = false;
  const stop = await listen((kind, data) => {
    if (data.job_id !== id) return;
    if (kind !== "epoch") {
      if (drawn) refresh(); else changed = true;
      return;
    }
    const row = { ...data };
    delete row.job_id;
    rows.set(row.epoch, row);
    if (!drawn) return;
    job = { ...job, epochs_done: Math.max(job.epochs_done, row.epoch) };
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; drawHeader(); drawRows(); });
  });
  let loaded;
  try {
    loaded = await Promise.all([get(`/jobs/${id}`), get(`/jobs/${id}/metrics`)]);
  } catch (error) {
    stop();
    throw error;
  }
  job = loaded[0];
  for (const row of loaded[1]) if (!rows.has(row.epoch)) rows.set(row.epoch, row);
  job = { ...job, epochs_done: Math.max(job.epochs_done, ...rows.keys()) };
  mount(root, header, el("div", { class: "columns" },
    el("div", { class: "wide" }, el("section", { class: "card charts" }, lossChart, qualityChart),
      evaluation, table),
    side));
  drawHeader();
  drawRows();
  drawEvaluation();
  drawn = true;
  if (changed) await refresh();
  if (FINISHED.has(job.status)) { stop(); return null; }
  return stop;
}

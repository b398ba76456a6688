// Compare: two or more jobs' curves overlaid, final metrics and epoch times side by side.

import { get } from "../api.js";
import {
  FINISHED, PALETTE, el, empty, errorBox, fmt, loading, mount, plot, resultMetrics, seconds,
  statusBadge, when,
} from "../ui.js";
import { drawCurves } from "./curves.js";
import { runOnOtherFramework } from "./job.js";

const REFRESH_MS = 2000;  // while a compared job still runs

function label(job) {
  return `${job.name || job.model_name} · ${job.framework} · ${job.id.slice(0, 8)}`;
}

// A body as its leaves: "training.optimizer.learning_rate" → 0.01, "model.layers[2].units" → 64.
function leaves(value, path = "", out = new Map()) {
  if (value !== null && typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) {
      leaves(inner, Array.isArray(value) ? `${path}[${key}]` : (path ? `${path}.${key}` : key),
        out);
    }
  } else {
    out.set(path, value);
  }
  return out;
}

// What differs between the jobs' bodies (spec, name and note), a row per setting, the values
// that differ from the first job's highlighted; the settings they share are only counted.
function specDiff(entries) {
  const bodies = entries.map(({ job }) => leaves({ ...job.spec, name: job.name,
    note: job.note }));
  const paths = [...new Set(bodies.flatMap((b) => [...b.keys()]))];
  const text = (body, path) => (body.has(path) ? JSON.stringify(body.get(path)) : "—");
  const differing = paths.filter((p) => new Set(bodies.map((b) => text(b, p))).size > 1);
  const same = paths.length - differing.length;
  if (!differing.length) {
    return el("p", { id: "spec-diff", class: "muted" },
      `The bodies are the same (${same} settings).`);
  }
  return el("div", { class: "scroll" }, el("table", { id: "spec-diff", class: "numbers diff" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "setting"),
      entries.map(({ job }) => el("th", { scope: "col" }, label(job))))),
    el("tbody", {}, differing.map((path) => el("tr", {}, el("th", { scope: "row" },
      el("code", {}, path)), bodies.map((body, i) => el("td",
      { class: i > 0 && text(body, path) !== text(bodies[0], path) ? "changed" : null },
      text(body, path))))))),
  el("p", { class: "muted small" }, `${same} other settings are the same.`));
}

function mean(values) {
  const numbers = values.filter((v) => typeof v === "number");
  return numbers.length ? numbers.reduce((a, b) => a + b, 0) / numbers.length : null;
}

function picker(all, chosen) {
  const boxes = all.map((job) => el("label", { class: "pick" },
    el("input", { type: "checkbox", value: job.id, checked: chosen.includes(job.id) }),
    " ", label(job), " ", statusBadge(job.status),
    el("span", { class: "muted small" }, ` ${when(job.created_at)}`)));
  const form = el("form", { class: "card", onsubmit: (event) => {
    event.preventDefault();
    const ids = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked)
      .map((i) => i.value);
    if (ids.length < 2) { problem.textContent = "Pick at least two jobs."; return; }
    location.hash = `#/compare/${ids.join(",")}`;
  } },
  el("h2", {}, "Jobs to compare"),
  el("p", { class: "muted" },
    "Typically the same spec trained on TensorFlow and on PyTorch."),
  el("div", { class: "picks" }, boxes));
  const problem = el("p", { class: "reason", role: "alert" });
  form.append(problem, el("button", { type: "submit", class: "primary" }, "Compare"));
  return form;
}

function sideBySide(entries) {
  const finals = [...new Set(entries.flatMap(({ job }) =>
    resultMetrics(job.final_metrics).map(([name]) => name)))];
  const lines = [
    ["Status", ({ job }) => statusBadge(job.status)],
    ["Framework", ({ job }) => job.framework],
    ["Device", ({ job }) => job.device || job.requested_device],
    ["Epochs", ({ job }) => `${job.epochs_done}/${job.epochs}`],
    ...finals.map((name) => [name, ({ job }) => fmt(job.final_metrics?.[name])]),
    ["Mean epoch time", ({ rows }) => seconds(mean(rows.map((r) => r.duration_s)))],
    ["Total training time",
      ({ rows }) => seconds(rows.reduce((a, r) => a + (r.duration_s || 0), 0))],
    ["Samples per second", ({ rows }) => fmt(mean(rows.map((r) => r.samples_per_s)), 3)],
  ];
  return el("div", { class: "scroll" }, el("table", { class: "numbers side" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, ""), entries.map(({ job }, i) =>
      el("th", { scope: "col" }, el("span", { class: "swatch",
        style: `background:${PALETTE[i % PALETTE.length]}` }), " ",
      el("a", { href: `#/jobs/${job.id}` }, label(job)))))),
    el("tbody", {}, lines.map(([name, cell]) => el("tr", {}, el("th", { scope: "row" }, name),
      entries.map((entry) => el("td", {}, cell(entry))))))));
}

// With one job only: train it on the other framework and compare the two (no dead end).
async function nothingToCompare(id) {
  const only = id ? await get(`/jobs/${id}`) : null;
  if (!only) {
    return empty("Compare needs at least two jobs.", el("a", { class: "button primary",
      href: "#/new" }, "Submit a job"));
  }
  return empty("This is your only job: train the same spec on the other framework, then "
    + "compare the two.", el("button", { type: "button", class: "primary", id: "compare-other",
    onclick: async () => {
      const copy = await runOnOtherFramework(only);
      if (copy) location.hash = `#/compare/${only.id},${copy.id}`;
    } }, "Train it on the other framework"));
}

export async function render(root, idList) {
  mount(root, loading("Loading jobs"));
  const ids = idList ? idList.split(",").filter(Boolean) : [];
  const all = (await get("/jobs?limit=100")).items;
  const head = el("div", { class: "head" }, el("h1", {}, "Compare"));
  if (ids.length < 2) {
    mount(root, head, all.length >= 2 ? picker(all, ids) : await nothingToCompare(ids[0]));
    return null;
  }
  const lossChart = el("div", { class: "chart", id: "compare-loss", role: "img",
    "aria-label": "loss per epoch of each job" });
  const qualityChart = el("div", { class: "chart", id: "compare-quality", role: "img",
    "aria-label": "accuracy or mean absolute error per epoch of each job" });
  const timeChart = el("div", { class: "chart", id: "compare-time", role: "img",
    "aria-label": "seconds per epoch of each job" });
  const table = el("section", { class: "card" });
  const diff = el("section", { class: "card" });
  mount(root, head, diff, el("section", { class: "card charts" }, lossChart, qualityChart),
    el("div", { class: "columns even" }, table,
      el("section", { class: "card" }, timeChart)),
    el("details", { class: "card" }, el("summary", {}, "Change the jobs"), picker(all, ids)));

  let timer = null;
  async function load() {
    let entries;
    try {
      entries = await Promise.all(ids.map(async (id) => ({
        job: await get(`/jobs/${id}`), rows: await get(`/jobs/${id}/metrics`) })));
    } catch (error) {
      mount(table, errorBox(error, "A job could not be read"));
      return;
    }
    // A running job's axis reaches its last epoch, so that its curve is seen to grow.
    const maxEpoch = Math.max(...entries.map(({ job }) =>
      (FINISHED.has(job.status) ? job.epochs_done : job.epochs)));
    drawCurves(lossChart, qualityChart,
      entries.map(({ job, rows }) => ({ label: label(job), rows,
        objective: job.spec.model.objective })), maxEpoch);
    plot(timeChart, entries.map(({ job, rows }, i) => ({
      type: "bar", name: label(job), x: rows.map((r) => r.epoch), y: rows.map((r) => r.duration_s),
      marker: { color: PALETTE[i % PALETTE.length] } })),
    { title: { text: "Seconds per epoch" }, barmode: "group",
      xaxis: { title: { text: "epoch" } } });
    mount(diff, el("h2", {}, "What differs"), specDiff(entries));
    mount(table, el("h2", {}, "Side by side"), sideBySide(entries));
    lossChart.dataset.jobs = String(entries.length);
    if (entries.some(({ job }) => !FINISHED.has(job.status))) timer = setTimeout(load, REFRESH_MS);
  }
  await load();
  return () => clearTimeout(timer);
}

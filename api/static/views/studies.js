// Studies: the list, a New study form, and one study: every trial's curve coloured by a chosen
// parameter, parameters → objective in parallel coordinates, parameter importance, a sortable
// trial table, cancel and "publish best"; kept live by the study's event stream.

import { download, follow, get, send } from "../api.js";
import {
  PALETTE, el, empty, errorBox, fmt, loading, mount, plot, statusBadge, toast, when,
} from "../ui.js";

const OVER = new Set(["finished", "cancelled"]);

function counts(study) {
  return Object.entries(study.counts).map(([status, n]) => `${n} ${status}`).join(", ") || "—";
}

async function renderList(root) {
  mount(root, loading("Loading studies"));
  let page;
  try {
    page = await get("/studies?limit=100");
  } catch (error) {
    mount(root, errorBox(error, "The studies could not be listed"));
    return null;
  }
  const table = el("table", { class: "jobs" },
    el("thead", {}, el("tr", {}, ["Study", "Status", "Objective", "Trials", "Created"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, page.items.map((study) => el("tr", { id: `study-${study.id}` },
      el("td", {}, el("a", { href: `#/studies/${study.id}` }, study.name),
        el("div", { class: "muted small" }, el("code", {}, study.id.slice(0, 8)))),
      el("td", {}, statusBadge(study.status)),
      el("td", {}, `${study.objective.direction} ${study.objective.metric}`),
      el("td", {}, `${study.trials_started}/${study.max_trials} started · ${counts(study)}`),
      el("td", {}, when(study.created_at))))));
  mount(root, el("div", { class: "head" }, el("h1", {}, "Studies"),
    el("div", { class: "actions" },
      el("a", { class: "button primary", href: "#/new-study" }, "New study"))),
  page.items.length ? el("section", { class: "card" }, el("div", { class: "scroll" }, table))
    : empty("No studies yet.", el("a", { class: "button primary", href: "#/new-study" },
      "Start a study")));
  return null;
}

// A first study to edit: the MLP example, its learning rate against its batch size.
async function starter() {
  const base = await get("/static/examples/mlp-digits.json");
  base.training.epochs = 8;
  return {
    name: "learning-rate-x-batch-size", base,
    space: { "training.optimizer.learning_rate": { grid: [0.0003, 0.001, 0.003, 0.01] },
      "training.batch_size": { grid: [16, 32, 64, 128] } },
    objective: { metric: "val_loss", direction: "minimize" },
    sampler: "grid", pruner: { type: "median", startup_trials: 4, warmup_epochs: 2 },
    max_concurrent: 2, publish: "best",
  };
}

export async function renderNew(root) {
  mount(root, loading("Loading an example"));
  const text = el("textarea", { id: "study-json", rows: 28, spellcheck: "false",
    class: "code", "aria-describedby": "study-help" });
  text.value = JSON.stringify(await starter(), null, 2);
  const problems = el("div", { role: "alert" });
  const form = el("form", { class: "card", onsubmit: async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(text.value);
    } catch (error) {
      mount(problems, errorBox(new Error(`not JSON: ${error.message}`), "The study is not JSON"));
      return;
    }
    try {
      const study = await send("POST", "/studies", body);
      toast(`Study ${study.name} started`);
      location.hash = `#/studies/${study.id}`;
    } catch (error) {
      mount(problems, errorBox(error, "The study was refused"));
    }
  } },
  el("label", { for: "study-json" }, "Study (JSON)"), text,
  el("p", { id: "study-help", class: "muted" },
    "A base job, the values to vary by their path (grid, choice, uniform, loguniform, int), "
    + "an objective and a budget: see the README's Studies section."),
  problems,
  el("button", { type: "submit", class: "primary" }, "Start the study"));
  mount(root, el("div", { class: "head" }, el("h1", {}, "New study")), form);
  return null;
}

// A parameter's value as text, and its place on a colour or an axis.
function shown(value) {
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function colourBy(trials, path) {
  const values = trials.map((t) => t.params[path]);
  if (values.every((v) => typeof v === "number")) {
    const low = Math.min(...values), high = Math.max(...values);
    return (trial) => {
      const share = high > low ? (trial.params[path] - low) / (high - low) : 0.5;
      return `hsl(${Math.round(240 - 240 * share)}, 70%, 45%)`;  // blue (low) → red (high)
    };
  }
  const distinct = [...new Set(values.map(shown))];
  return (trial) => PALETTE[distinct.indexOf(shown(trial.params[path])) % PALETTE.length];
}

function drawCurves(node, study, path) {
  const colour = colourBy(study.trials, path);
  plot(node, study.trials.filter((t) => t.curve.length).map((trial) => ({
    x: trial.curve.map((p) => p.epoch), y: trial.curve.map((p) => p.value),
    name: `#${trial.number} ${shown(trial.params[path])}`, mode: "lines+markers",
    line: { color: colour(trial), width: 2, dash: trial.status === "pruned" ? "dot" : "solid" },
    marker: { size: 4 },
  })), { title: { text: `${study.objective.metric} per epoch, coloured by ${path}` },
  xaxis: { title: { text: "epoch" } }, showlegend: study.trials.length <= 16 });
}

// A chart's place holds either a note (nothing to draw yet) or the chart: the note goes first.
function chartOrNote(node, note) {
  if (note) { mount(node, el("p", { class: "muted" }, note)); return false; }
  node.querySelector(":scope > p")?.remove();
  return true;
}

function drawParallel(node, study) {
  const done = study.trials.filter((t) => t.value !== null);
  if (!chartOrNote(node, done.length ? null : "No trial has a value yet.")) return;
  const dimensions = Object.keys(study.definition.space).map((path) => {
    const values = done.map((t) => t.params[path]);
    if (values.every((v) => typeof v === "number")) return { label: path, values };
    const distinct = [...new Set(values.map(shown))];
    return { label: path, values: values.map((v) => distinct.indexOf(shown(v))),
      tickvals: distinct.map((_, i) => i), ticktext: distinct };
  });
  const objective = done.map((t) => t.value);
  plot(node, [{ type: "parcoords", line: { color: objective, colorscale: "Viridis",
    reversescale: study.objective.direction === "minimize", showscale: true },
  dimensions: [...dimensions, { label: study.objective.metric, values: objective }] }],
  { title: { text: "Parameters → objective" }, margin: { l: 80, r: 80, t: 60, b: 30 } });
}

function drawImportance(node, importance) {
  const entries = Object.entries(importance.importance);
  if (!chartOrNote(node, entries.length ? null : "Parameter importance needs three succeeded "
    + `trials (${importance.trials} so far) and a parameter that varies.`)) return;
  plot(node, [{ type: "bar", orientation: "h", x: entries.map(([, v]) => v),
    y: entries.map(([k]) => k), marker: { color: PALETTE[0] } }],
  { title: { text: "Parameter importance (fANOVA)" }, margin: { l: 220, r: 16, t: 36, b: 44 },
    xaxis: { range: [0, 1] } });
}

const COLUMNS = [
  ["#", (t) => t.number], ["status", (t) => t.status], ["epochs", (t) => t.epochs_done],
  ["value", (t) => t.value], ["parameters", (t) => JSON.stringify(t.params)],
];

function trialTable(study, sort, onSort) {
  const [column, descending] = sort;
  const key = COLUMNS.find(([name]) => name === column)[1];
  const rows = [...study.trials].sort((a, b) => {
    const x = key(a), y = key(b);
    const order = x === null ? 1 : y === null ? -1 : x < y ? -1 : x > y ? 1 : 0;
    return descending ? -order : order;
  });
  const best = study.best?.number;
  return el("table", { class: "numbers", id: "trials" },
    el("thead", {}, el("tr", {}, COLUMNS.map(([name]) => el("th", { scope: "col",
      "aria-sort": name === column ? (descending ? "descending" : "ascending") : "none" },
    el("button", { type: "button", class: "link", onclick: () => onSort(name) }, name))))),
    el("tbody", {}, rows.map((t) => el("tr", { class: t.number === best ? "best" : "" },
      el("td", {}, t.job_id ? el("a", { href: `#/jobs/${t.job_id}` }, String(t.number))
        : String(t.number), t.number === best ? " ★" : ""),
      el("td", {}, statusBadge(t.status), t.pruned_reason || t.failure_reason
        ? el("div", { class: "reason" }, t.pruned_reason || t.failure_reason) : null),
      el("td", {}, String(t.epochs_done)),
      el("td", {}, fmt(t.value)),
      el("td", {}, Object.entries(t.params).map(([p, v]) => el("div", {},
        el("code", {}, p), ` ${shown(v)}`)))))));
}

async function renderStudy(root, id) {
  mount(root, loading("Loading the study"));
  let study = await get(`/studies/${id}`);
  let colour = Object.keys(study.definition.space)[0];
  let sort = ["#", false];
  const header = el("div");
  const curves = el("div", { class: "chart", id: "study-curves", role: "img",
    "aria-label": "every trial's objective per epoch" });
  const parallel = el("div", { class: "chart", id: "study-parallel", role: "img",
    "aria-label": "parameters against the objective, one line a trial" });
  const importance = el("div", { class: "chart", id: "study-importance", role: "img",
    "aria-label": "how much each parameter explains of the objective" });
  const table = el("div", { class: "scroll tall" });
  let importanceFor = -1;  // the succeeded trials the importance chart was drawn from

  function drawHeader() {
    const alias = el("input", { id: "alias", placeholder: "alias (optional)", size: 14 });
    const best = study.best;
    mount(header, el("div", { class: "head" },
      el("h1", {}, `Study ${study.name} `, statusBadge(study.status)),
      el("div", { class: "actions" },
        el("a", { class: "button", href: `/studies/${id}/trials.csv`, onclick: (event) => {
          event.preventDefault();
          download(`/studies/${id}/trials.csv`, `${id}-trials.csv`)
            .catch((e) => toast(e.message));
        } }, "Trials as CSV"),
        best ? el("span", {}, el("label", { for: "alias", class: "muted" }, "Alias "), alias,
          el("button", { type: "button", class: "primary", onclick: async () => {
            try {
              const out = await send("POST", `/studies/${id}/publish`,
                { alias: alias.value.trim() || null });
              toast(`Published ${out.model} version ${out.version}`
                + (out.alias ? ` as ${out.alias}` : ""));
              refresh();
            } catch (error) { toast(error.message); }
          } }, "Publish best")) : null,
        OVER.has(study.status) ? null : el("button", { type: "button", class: "danger",
          onclick: async () => {
            try { study = await send("POST", `/studies/${id}/cancel`); toast("Study cancelled"); draw(); }
            catch (error) { toast(error.message); }
          } }, "Cancel"))),
    el("dl", { class: "facts" }, [
      ["Objective", `${study.objective.direction} ${study.objective.metric}`],
      ["Trials", `${study.trials_started}/${study.max_trials} started, at most `
        + `${study.max_concurrent} at once · ${counts(study)}`],
      ["Sampler · pruner", `${study.sampler} · ${study.pruner}`],
      ["Best", best ? el("span", {}, `#${best.number}: ${fmt(best.value)} with `,
        Object.entries(best.params).map(([p, v]) => `${p}=${shown(v)}`).join(", "),
        best.model_version ? el("span", {}, " · ", el("a", { href:
          `#/models/${encodeURIComponent(study.definition.base.model.name)}/${best.model_version}`
        }, `version ${best.model_version}`)) : null) : "—"],
    ].map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  }

  function drawTable() {
    mount(table, trialTable(study, sort, (name) => {
      sort = [name, sort[0] === name ? !sort[1] : false];
      drawTable();
    }));
  }

  async function drawImportanceIfNew() {
    const succeeded = study.counts.succeeded || 0;
    if (succeeded === importanceFor) return;
    importanceFor = succeeded;
    drawImportance(importance, await get(`/studies/${id}/importance`));
  }

  function draw() {
    drawHeader();
    drawCurves(curves, study, colour);
    drawParallel(parallel, study);
    drawTable();
    drawImportanceIfNew().catch(() => {});
  }

  async function refresh() {
    study = await get(`/studies/${id}`);
    draw();
  }

  const picker = el("select", { id: "colour-by", onchange: (event) => {
    colour = event.target.value;
    drawCurves(curves, study, colour);
  } }, Object.keys(study.definition.space).map((p) => el("option", { value: p }, p)));
  mount(root, header, el("section", { class: "card charts" },
    el("label", { for: "colour-by" }, "Colour the curves by "), picker, curves),
  el("div", { class: "columns" },
    el("section", { class: "card wide" }, parallel),
    el("section", { class: "card" }, importance)),
  el("section", { class: "card" }, el("h2", {}, "Trials"), table));
  draw();
  if (OVER.has(study.status) && !Object.keys(study.counts).some((s) => s === "queued"
    || s === "running")) return null;
  // Every trial's events: redraw at most once per half second of a burst.
  let pending = false;
  const stream = follow(`/studies/${id}/events`, () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; refresh().catch(() => {}); }, 500);
  }, () => { refresh().catch(() => {}); });
  return () => stream.stop();
}

export async function render(root, id) {
  return id === undefined ? renderList(root) : renderStudy(root, id);
}

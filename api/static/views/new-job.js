// New job: a JSON spec editor offering the catalog's names, the examples one click away, live
// validation drawn as a layer diagram with each error at its layer and its line, then submit.

import { get, send } from "../api.js";
import { locate, pathSteps } from "../jsonpath.js";
import { el, errorBox, fmt, loadCatalog, loading, mount, shape } from "../ui.js";

const VALIDATE_DELAY_MS = 300;
const DRAFT = "capas.draft";  // the editor's text survives a reload of the tab
const REPLACED = "capas.replaced";  // a draft that "Edit as a new job" replaced, to undo
const LAYER_FIELD = /^model\.layers\[(\d+)\]/;
const WIDTH = 88;  // the editor's line length when it rewrites the spec

// Every parameter the catalog describes, by the layer or optimizer type it belongs to ("" for
// those of the job, its model and its training block, blocks within included).
function parametersByType(catalog) {
  const flat = (params) => params.flatMap((p) => [p, ...flat(p.parameters || [])]);
  return Object.fromEntries([
    ...catalog.layers.map((l) => [l.type, l.parameters]),
    ...catalog.optimizers.map((o) => [o.type, o.parameters]),
    ["", flat([...catalog.job, ...catalog.model, ...catalog.training])]]);
}

// What a string value may be, by the key it belongs to: the names each parameter allows (and
// the activations' aliases), layer and optimizer types, and the datasets.
function namesByKey(catalog, parameters, datasets) {
  const names = {
    type: [...catalog.layers.map((l) => l.type), ...catalog.optimizers.map((o) => o.type)],
    dataset: datasets.map((d) => d.id),
  };
  for (const p of Object.values(parameters).flat()) {
    const allowed = p.allowed || p.schema.enum;
    if (allowed) names[p.name] = [...new Set([...(names[p.name] || []), ...allowed])];
  }
  for (const key of ["activation", "function"]) {
    names[key] = [...names[key], ...Object.keys(catalog.activation_aliases)];
  }
  return names;
}

function allowedValues(parameter) {
  const values = parameter.schema.enum;
  return values ? ` (${values.join(", ")})` : "";
}

// JSON on one line, with a space after each colon and comma, as the examples are written.
function oneLine(value) {
  if (Array.isArray(value)) return `[${value.map(oneLine).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${oneLine(v)}`)
      .join(", ")}}`;
  }
  return JSON.stringify(value);
}

// Indented JSON that keeps whatever fits on a line (a layer, a shape) on one line.
function pretty(value, indent = "") {
  const line = oneLine(value);
  if (typeof value !== "object" || value === null || indent.length + line.length <= WIDTH) {
    return line;
  }
  const inner = `${indent}  `;
  const items = Array.isArray(value) ? value.map((v) => inner + pretty(v, inner))
    : Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pretty(v, inner)}`);
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return `${open}\n${items.join(",\n")}\n${indent}${close}`;
}

// A layer that holds a block of layers (`layer`, or a list of `layers`), and what it does with
// the block's output, as the diagram says it under the block.
const BLOCKS = { time_distributed: "the block applied at every time step (shapes of one step)",
  residual: "the block's output added to its input" };

// The layers of a block, each with its path below the layer that holds it.
function members(layer) {
  if (!layer || !BLOCKS[layer.type]) return [];
  if (Array.isArray(layer.layers)) return layer.layers.map((l, j) => [l, `layers[${j}]`]);
  return layer.layer ? [[layer.layer, "layer"]] : [];
}

function layerSummary(layer) {
  const block = BLOCKS[layer.type] ? ["layer", "layers"] : [];
  return Object.entries(layer).filter(([k]) => k !== "type" && !block.includes(k))
    .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join("×") : v}`).join(", ");
}

// A wrapped or residual block drawn inside its layer: its layers in order with the analysis's
// report of each (`reports`, when the layer was analysed), those an error names marked, then
// what the layer does with the block.
function blockOf(layer, path, errors, reports) {
  const inner = members(layer);
  if (!inner.length) return null;
  return el("div", { class: `block ${layer.type}` },
    el("ol", { class: "layers" }, inner.map(([member, at], j) => {
      const where = `${path}.${at}`;
      const bad = errors.some((e) => e.field === where || e.field?.startsWith(`${where}.`)
        || e.field?.startsWith(`${where}[`));
      const info = reports?.[j];
      return el("li", { class: `layer inner${bad ? " bad" : ""}`, dataset: { path: where } },
        el("span", { class: "name" }, member?.type || "?"),
        el("span", { class: "shape" }, info ? shape(info.output_shape) : "?"),
        el("span", { class: "muted params-of" }, member ? layerSummary(member) : ""),
        el("span", { class: "count" },
          info ? `${fmt(info.params)} params · ${fmt(info.multiply_adds)} mult-adds` : ""),
        blockOf(member, where, errors, info?.block));
    })),
    el("p", { class: "block-note muted" }, BLOCKS[layer.type]));
}

// Opens the editor on `body` (a job's spec, to change and submit as a new job); the draft it
// replaces is one Back away no more: the caller asked for this one.
export function editAsNewJob(body) {
  const draft = sessionStorage.getItem(DRAFT);
  if (draft) sessionStorage.setItem(REPLACED, draft);
  sessionStorage.setItem(DRAFT, pretty(body));
  location.hash = "#/new";
}

export async function render(root) {
  mount(root, loading("Loading the catalog"));
  const [catalog, datasets, examples] = await Promise.all([
    loadCatalog(), get("/datasets"),
    fetch("/static/examples/index.json").then((r) => r.json())]);
  const parameters = parametersByType(catalog);
  const names = namesByKey(catalog, parameters, datasets);
  const jobParameter = (name) => parameters[""].find((p) => p.name === name);

  const editor = el("textarea", { id: "spec", class: "code", spellcheck: "false", rows: 28,
    wrap: "off",
    "aria-label": "Job spec (JSON)", "aria-describedby": "json-status" });
  const jsonStatus = el("p", { id: "json-status", class: "muted", "aria-live": "polite" });
  const hints = el("div", { class: "hints", "aria-live": "polite" });
  const datasetSelect = el("select", { id: "dataset" },
    datasets.map((d) => el("option", { value: d.id }, `${d.name} (${d.id})`)));
  const datasetSchema = el("div", { class: "schema" });
  const choice = (name) => el("select", { id: name, title: jobParameter(name).description },
    names[name].map((value) => el("option",
      { value, selected: value === jobParameter(name).default }, value)));
  const framework = choice("framework");
  const device = choice("device");
  const diagram = el("div", { id: "diagram", class: "diagram", "aria-live": "polite" });
  const submitBox = el("div", { "aria-live": "polite" });
  const submit = el("button", { type: "submit", class: "primary" }, "Submit job");

  let sequence = 0, timer = null;

  function parse() {
    try {
      const spec = JSON.parse(editor.value);
      if (typeof spec !== "object" || spec === null || Array.isArray(spec)) {
        throw new SyntaxError("the spec must be a JSON object");
      }
      editor.removeAttribute("aria-invalid");
      jsonStatus.textContent = "JSON is well formed.";
      jsonStatus.className = "muted";
      return spec;
    } catch (error) {
      editor.setAttribute("aria-invalid", "true");
      jsonStatus.textContent = `JSON: ${error.message}`;
      jsonStatus.className = "reason";
      return null;
    }
  }

  function setText(spec) {
    editor.value = pretty(spec);
    changed();
  }

  function syncControls(spec) {
    if (spec.dataset && names.dataset.includes(spec.dataset)) datasetSelect.value = spec.dataset;
    framework.value = spec.framework || jobParameter("framework").default;
    device.value = spec.device || jobParameter("device").default;
    const dataset = datasets.find((d) => d.id === datasetSelect.value);
    mount(datasetSchema, dataset ? el("p", { class: "muted" },
      `${dataset.kind}, ${dataset.task}: ${fmt(dataset.num_samples)} samples of `,
      el("strong", {}, shape(dataset.feature_shape)),
      dataset.class_names ? `, ${dataset.num_classes} classes (${dataset.class_names.slice(0, 10)
        .join(", ")}${dataset.num_classes > 10 ? ", …" : ""})` : "",
      !dataset.target_shape ? ""
        : dataset.task === "classification" ? `, a class at each of ${dataset.target_shape[0]} steps`
          : `, target ${shape(dataset.target_shape)}`,
      " · ", el("a", { href: `#/datasets/${encodeURIComponent(dataset.id)}` }, "preview"))
      : null);
  }

  // Selects the value an error names in the editor, and scrolls it into view.
  function select(found) {
    editor.focus();
    editor.setSelectionRange(found.start, found.end);
    const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 16;
    editor.scrollTop = Math.max(0, (found.line - 3) * lineHeight);
  }

  // An error's line in the editor, as a button that goes there.
  function lineOf(error) {
    const found = error.field ? locate(editor.value, pathSteps(error.field)) : null;
    return found ? el("button", { type: "button", class: "link small goto",
      "aria-label": `Go to line ${found.line}: ${error.field}`,
      onclick: () => select(locate(editor.value, pathSteps(error.field)) || found) },
    `line ${found.line}`) : null;
  }

  function drawDiagram(spec, report) {
    const errors = report ? report.errors : [];
    const atLayer = new Map();
    const general = [];
    for (const error of errors) {
      const match = error.field && error.field.match(LAYER_FIELD);
      if (match) {
        const index = Number(match[1]);
        atLayer.set(index, [...(atLayer.get(index) || []), error]);
      } else general.push(error);
    }
    const analysed = new Map((report?.layers || []).map((l) => [l.index, l]));
    const layers = Array.isArray(spec.model?.layers) ? spec.model.layers : [];
    const problem = (e) => el("li", {}, lineOf(e), " ", el("code", {}, e.field), ` ${e.message}`);
    mount(diagram,
      report ? el("p", { class: report.valid ? "ok" : "reason", id: "validity" },
        report.valid ? `Valid: ${fmt(report.total_params)} parameters in all; `
          + `${fmt(report.total_multiply_adds)} multiply-adds a sample.`
          : `${errors.length} problem${errors.length === 1 ? "" : "s"} to fix.`) : null,
      general.length ? el("ul", { class: "error", role: "alert" }, general.map(problem)) : null,
      el("ol", { class: "layers" },
        el("li", { class: "layer io" }, el("span", { class: "name" }, "input"),
          el("span", { class: "shape" }, shape(spec.model?.input?.shape))),
        layers.map((layer, index) => {
          const info = analysed.get(index);
          const bad = atLayer.get(index);
          return el("li", { class: `layer${bad ? " bad" : ""}`, id: `layer-${index}`,
            dataset: { index: String(index) } },
          el("span", { class: "index" }, String(index)),
          el("span", { class: "name" }, layer?.type || "?"),
          el("span", { class: "muted params-of" }, layer ? layerSummary(layer) : ""),
          el("span", { class: "shape" }, info ? shape(info.output_shape) : "?"),
          el("span", { class: "count" },
            info ? `${fmt(info.params)} params · ${fmt(info.multiply_adds)} mult-adds` : ""),
          blockOf(layer, `model.layers[${index}]`, bad || [], info?.block),
          bad ? el("ul", { class: "layer-errors", role: "alert" }, bad.map(problem)) : null);
        }),
        // The output only once every layer is analysed: a partial analysis ends early.
        report?.output_shape && analysed.size === layers.length ? el("li", { class: "layer io" },
          el("span", { class: "name" }, "output"),
          el("span", { class: "shape" }, shape(report.output_shape)),
          el("span", { class: "count" }, `${fmt(report.total_params)} params`)) : null));
  }

  async function validate() {
    const spec = parse();
    if (!spec) return;
    syncControls(spec);
    const mine = ++sequence;
    try {
      const report = await send("POST", "/specs/validate", spec);
      if (mine !== sequence) return;
      drawDiagram(spec, report);
      if (report.valid) mount(submitBox);  // a refusal of an earlier submit no longer holds
    } catch (error) {
      if (mine === sequence) mount(diagram, errorBox(error, "Validation failed"));
    }
  }

  // Offers the names that fit the string being typed at the cursor, what the key being edited
  // means, and the parameters of the layer (or optimizer) being edited.
  function suggest() {
    const before = editor.value.slice(0, editor.selectionStart);
    const typing = before.match(/"(\w+)"\s*:\s*"(\w*)$/);
    const key = before.match(/"(\w+)"\s*:\s*[^,{}[\]]*$/)?.[1];
    const type = [...before.matchAll(/"type"\s*:\s*"(\w+)"/g)].pop()?.[1];
    const params = parameters[type];
    const described = (params || []).find((p) => p.name === key) || jobParameter(key);
    const offers = typing ? (names[typing[1]] || []).filter((n) => n.startsWith(typing[2])
      && n !== typing[2]) : [];
    mount(hints,
      offers.length ? el("div", {}, el("span", { class: "muted" }, `${typing[1]}: `),
        offers.slice(0, 24).map((name) => el("button", { type: "button", class: "chip",
          onclick: () => complete(typing[2], name) }, name))) : null,
      described ? el("p", { class: "small", id: "hint-key" }, el("code", {}, described.name),
        `: ${described.description}${allowedValues(described)}`) : null,
      params ? el("details", { class: "muted small" },
        el("summary", {}, el("strong", {}, type), ": ", params.map((p) => p.name
          + (p.required ? " (required)" : ` = ${JSON.stringify(p.default)}`)).join(", ")),
        el("ul", { class: "params" }, params.map((p) => el("li", {},
          el("code", {}, p.name), `: ${p.description}${allowedValues(p)}`)))) : null);
  }

  function complete(partial, name) {
    const at = editor.selectionStart;
    editor.setRangeText(name.slice(partial.length), at, at, "end");
    editor.focus();
    changed();
  }

  function changed() {
    sessionStorage.setItem(DRAFT, editor.value);
    suggest();
    clearTimeout(timer);
    timer = setTimeout(validate, VALIDATE_DELAY_MS);
  }

  function setField(name, value) {
    const spec = parse();
    if (spec) setText({ ...spec, [name]: value });
  }

  // An example replaces the editor's text; an edit it replaced stays one click away.
  const undo = el("div", { class: "undo", "aria-live": "polite" });
  let loaded = null;  // the example the editor holds unedited, if any
  function offerUndo(previous, what) {
    mount(undo, el("p", {}, `${what} replaced your spec. `,
      el("button", { type: "button", id: "undo-replace", onclick: () => {
        editor.value = previous;
        loaded = null;
        mount(undo);
        changed();
      } }, "Undo")));
  }
  async function loadExample(e) {
    const previous = editor.value;
    editor.value = await fetch(`/static/examples/${e.file}`).then((r) => r.text());
    changed();
    const edited = previous.trim() !== "" && previous !== loaded;
    loaded = editor.value;
    if (edited) offerUndo(previous, `"${e.name}"`); else mount(undo);
  }

  editor.addEventListener("input", () => { mount(undo); changed(); });
  editor.addEventListener("click", suggest);
  editor.addEventListener("keyup", (event) => { if (event.key.startsWith("Arrow")) suggest(); });
  datasetSelect.addEventListener("change", () => setField("dataset", datasetSelect.value));
  framework.addEventListener("change", () => setField("framework", framework.value));
  device.addEventListener("change", () => setField("device", device.value));

  const form = el("form", { class: "new-job", onsubmit: async (event) => {
    event.preventDefault();
    const spec = parse();
    if (!spec) return;
    submit.disabled = true;
    mount(submitBox, el("p", { class: "muted" }, "Submitting…"));
    try {
      const job = await send("POST", "/jobs", spec);
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      mount(submitBox, errorBox(error, "The job was not queued"));
      drawDiagram(spec, { valid: false, errors: error.details.filter((d) => d.field) });
    } finally {
      submit.disabled = false;
    }
  } },
  el("div", { class: "columns" },
    el("div", { class: "wide" },
      el("section", { class: "card" },
        el("h2", {}, "Examples"),
        el("div", { class: "examples" }, examples.map((e) => el("button", { type: "button",
          class: "chip", onclick: () => loadExample(e), title: e.title }, e.name))), undo),
      el("section", { class: "card" },
        el("label", { for: "spec" }, el("h2", {}, "Spec")), editor, jsonStatus, hints)),
    el("div", {},
      el("section", { class: "card" }, el("h2", {}, "Layers"), diagram),
      el("section", { class: "card options" },
        el("h2", {}, "Run"),
        el("label", { for: "dataset" }, "Dataset"), datasetSelect, datasetSchema,
        el("label", { for: "framework" }, "Framework"), framework,
        el("label", { for: "device" }, "Device"), device,
        submitBox))),
  // Stuck to the bottom of the window: Submit stays in reach however long the spec.
  el("div", { class: "submit-bar" }, submit));
  mount(root, el("div", { class: "head" }, el("h1", {}, "New job")), form);
  const draft = sessionStorage.getItem(DRAFT);
  if (draft) { editor.value = draft; changed(); } else await loadExample(examples[0]);
  const replaced = sessionStorage.getItem(REPLACED);
  sessionStorage.removeItem(REPLACED);
  if (replaced && replaced !== draft) offerUndo(replaced, "The job's spec");
  return () => clearTimeout(timer);
}

// Datasets: built-ins and uploads, an upload form, one dataset's schema and first samples.

import { get, send } from "../api.js";
import {
  el, empty, errorBox, fmt, loading, mount, publicToggle, shape, toast, when,
} from "../ui.js";

// The column names of a CSV's first line (quoted names may hold commas).
function csvHeader(line) {
  const names = [];
  let name = "", quoted = false;
  for (const char of line.replace(/^\uFEFF/, "")) {
    if (char === '"') quoted = !quoted;
    else if (char === "," && !quoted) { names.push(name.trim()); name = ""; } else name += char;
  }
  return [...names, name.trim()].filter(Boolean);
}

// A chosen CSV's columns, offered for the target column it needs.
async function offerColumns(file, target, columns) {
  mount(columns);
  if (!file || !file.name.toLowerCase().endsWith(".csv")) return;
  const head = await file.slice(0, 65536).text();
  const names = csvHeader(head.split(/\r?\n/, 1)[0]);
  mount(columns, names.map((n) => el("option", { value: n })));
  target.placeholder = names.length ? `one of its ${names.length} columns` : "";
}

function uploadForm(onDone) {
  const result = el("div", { "aria-live": "polite" });
  const columns = el("datalist", { id: "target-columns" });
  const target = el("input", { id: "target", name: "target", list: "target-columns",
    autocomplete: "off" });
  const field = (id, text, input, help) => [el("label", { for: id }, text), input,
    help ? el("p", { class: "muted small" }, help) : null];
  const form = el("form", { class: "card upload", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    for (const [name, value] of [...data.entries()]) {
      if (value === "" || (value instanceof File && !value.name)) data.delete(name);
    }
    mount(result, el("p", { class: "muted" }, "Uploading and checking…"));
    try {
      const dataset = await send("POST", "/datasets", data);
      form.reset();
      mount(result);
      toast(`Dataset ${dataset.name} uploaded: ${dataset.num_samples} samples`);
      onDone(dataset);
    } catch (error) {
      mount(result, errorBox(error, "The file was refused"));
    }
  } },
  el("h2", {}, "Upload"),
  field("file", "File (.csv, .npz, .zip of class folders, or .zip/.tar.gz of IDX or CIFAR files)",
    el("input", { id: "file", name: "file", type: "file", required: true,
      accept: ".csv,.npz,.zip,.tar,.gz,.tgz",
      onchange: (event) => offerColumns(event.target.files[0], target, columns) })),
  field("target", "Target column (CSV: its header's columns are offered; CIFAR-100: fine or "
    + "coarse)", [target, columns]),
  field("name", "Name", el("input", { id: "name", name: "name" }),
    "Shown in lists; the file name otherwise."),
  field("description", "Description", el("input", { id: "description", name: "description" })),
  field("task", "Task", el("select", { id: "task", name: "task" },
    el("option", { value: "" }, "infer from the target"),
    el("option", { value: "classification" }, "classification"),
    el("option", { value: "regression" }, "regression"))),
  field("image_size", "Image size (ZIP)", el("input", { id: "image_size", name: "image_size",
    placeholder: "32x32" }), "HEIGHTxWIDTH; the most common size otherwise."),
  field("channels", "Channels (ZIP)", el("select", { id: "channels", name: "channels" },
    el("option", { value: "" }, "grey if every image is, else colour"),
    el("option", { value: "1" }, "1 (grey)"), el("option", { value: "3" }, "3 (colour)"))),
  el("button", { type: "submit", class: "primary" }, "Upload"), result);
  return form;
}

async function list(root) {
  mount(root, loading("Loading datasets"));
  const datasets = await get("/datasets");
  const rows = datasets.map((d) => el("tr", {},
    el("td", {}, el("a", { href: `#/datasets/${encodeURIComponent(d.id)}` }, d.name),
      el("div", { class: "muted small" }, el("code", {}, d.id))),
    el("td", {}, d.source), el("td", {}, d.kind), el("td", {}, d.task),
    el("td", {}, shape(d.feature_shape)), el("td", {}, fmt(d.num_samples)),
    el("td", {}, d.num_classes ? String(d.num_classes) : "—"),
    el("td", {}, d.public ? "yes" : "—")));
  mount(root, el("div", { class: "head" }, el("h1", {}, "Datasets")),
    el("div", { class: "columns" },
      el("section", { class: "card wide" }, datasets.length ? el("div", { class: "scroll" },
        el("table", {}, el("thead", {}, el("tr", {}, ["Dataset", "Source", "Kind", "Task",
          "Features", "Samples", "Classes", "Public"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows))) : empty("No datasets.")),
      uploadForm((dataset) => {
        location.hash = `#/datasets/${encodeURIComponent(dataset.id)}`;
      })));
}

// An image sample drawn as stored (high values bright), scaled to the sample's brightest pixel.
export function picture(features, label) {
  const [height, width] = [features.length, features[0].length];
  const canvas = el("canvas", { width, height, class: "sample", role: "img", "aria-label": label });
  const context = canvas.getContext("2d");
  const values = features.flat(Infinity);
  const top = Math.max(...values) || 1;
  const image = context.createImageData(width, height);
  features.forEach((row, y) => row.forEach((pixel, x) => {
    const channels = Array.isArray(pixel) ? pixel : [pixel];
    const rgb = channels.length >= 3 ? channels.slice(0, 3)
      : [channels[0], channels[0], channels[0]];
    const at = (y * width + x) * 4;
    rgb.forEach((v, c) => { image.data[at + c] = Math.round((255 * v) / top); });
    image.data[at + 3] = 255;
  }));
  context.putImageData(image, 0, 0);
  return canvas;
}

function preview(dataset) {
  const samples = dataset.preview || [];
  if (!samples.length) return el("p", { class: "muted" }, "No preview.");
  if (dataset.kind === "image" && samples.every((s) => s.features)) {
    return el("div", { class: "samples" }, samples.map((s, i) => el("figure", {},
      picture(s.features, `sample ${i + 1}: ${s.target}`),
      el("figcaption", {}, String(s.target)))));
  }
  // A sequence of images (builtin:digit_sequences): each sample's frames side by side.
  const isFrames = (features) => Array.isArray(features?.[0]?.[0]?.[0]);
  if (dataset.kind === "sequence" && samples.every((s) => isFrames(s.features))) {
    return el("div", { class: "samples" }, samples.map((s, i) => el("figure", {},
      el("div", { class: "frames" }, s.features.map((frame, t) => picture(frame,
        `sample ${i + 1}, step ${t + 1}`))),
      el("figcaption", {}, String(s.target)))));
  }
  const withFeatures = samples.some((s) => s.features);
  const names = dataset.feature_names;
  const flat = (features) => features.flat(Infinity);
  const width = withFeatures ? flat(samples[0].features).length : 0;
  const tabular = withFeatures && width <= 16;
  const headers = ["#", ...(tabular ? (names || Array.from({ length: width }, (_, i) => `x${i}`))
    : withFeatures ? ["features"] : []), dataset.target_name || "target"];
  return el("div", { class: "scroll" }, el("table", { class: "numbers" },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, samples.map((s, i) => el("tr", {}, el("td", {}, String(i + 1)),
      tabular ? flat(s.features).map((v) => el("td", {}, fmt(v))) : withFeatures
        ? el("td", { class: "small" },
          `${flat(s.features).slice(0, 12).map((v) => fmt(v)).join(", ")}, …`)
        : null,
      el("td", {}, Array.isArray(s.target) ? s.target.map((v) => fmt(v)).join(", ")
        : String(s.target)))))));
}

async function show(root, id) {
  mount(root, loading("Loading the dataset"));
  let dataset;
  try {
    dataset = await get(`/datasets/${encodeURIComponent(id)}`);
  } catch (error) {
    mount(root, errorBox(error, "The dataset could not be read"),
      el("p", {}, el("a", { href: "#/datasets" }, "All datasets")));
    return;
  }
  const facts = [
    ["Id", el("code", {}, dataset.id)], ["Source", dataset.source],
    ["Format", dataset.format || "—"], ["Kind", dataset.kind], ["Task", dataset.task],
    ["Features", shape(dataset.feature_shape)], ["Feature names",
      dataset.feature_names ? dataset.feature_names.join(", ") : "—"],
    ["Type", dataset.dtype], ["Samples", fmt(dataset.num_samples)],
    ["Classes", dataset.class_names ? dataset.class_names.map((c, i) =>
      `${c}${dataset.class_counts ? ` (${dataset.class_counts[i]})` : ""}`).join(", ") : "—"],
    ["Target", dataset.target_shape ? shape(dataset.target_shape) : (dataset.target_name || "—")],
    ["Added", when(dataset.created_at)], ["sha256", el("code", { class: "small" }, dataset.sha256)],
    ["Public", dataset.public ? "yes: every member may see it and train on it"
      : "no: only its owner (and admins)"],
  ];
  mount(root, el("div", { class: "head" }, el("h1", {}, dataset.name),
    el("div", { class: "actions" },
      el("a", { class: "button", href: "#/datasets" }, "All datasets"),
      dataset.source === "upload" ? publicToggle(`/datasets/${encodeURIComponent(dataset.id)}`,
        dataset.public, () => show(root, id)) : null,
      dataset.source === "upload" ? el("button", { type: "button", class: "danger",
        onclick: async () => {
          if (!confirm(`Delete ${dataset.name}?`)) return;
          try {
            await send("DELETE", `/datasets/${encodeURIComponent(dataset.id)}`);
            location.hash = "#/datasets";
          } catch (error) { toast(error.message); }
        } }, "Delete") : null)),
  dataset.description ? el("p", {}, dataset.description) : null,
  el("div", { class: "columns" },
    el("section", { class: "card" }, el("h2", {}, "First samples"), preview(dataset)),
    el("section", { class: "card" }, el("h2", {}, "Schema"),
      el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])))));
}

export async function render(root, id) {
  if (id) await show(root, id); else await list(root);
  return null;
}

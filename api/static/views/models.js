// Models: the registry, one model's versions, aliases and card, and a predict playground.

import { download, get, send } from "../api.js";
import {
  coachFlags, datasetLink, el, empty, errorBox, fmt, loadCatalog, loading, mount, publicToggle, resultMetrics, shape, toast,
  when,
} from "../ui.js";
import { evaluateSection } from "./evaluation.js";
import { playground } from "./playground.js";

function headline(metrics) {
  const test = metrics.test || {};
  const name = Object.keys(test).find((k) => k === "test_accuracy")
    || Object.keys(test).find((k) => k === "test_mae") || Object.keys(test)[0];
  return name ? `${name} ${fmt(test[name])}` : "—";
}

async function list(root) {
  mount(root, loading("Loading models"));
  const models = await get("/models");
  mount(root, el("div", { class: "head" }, el("h1", {}, "Models")),
    models.length ? el("section", { class: "card" }, el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, ["Model", "Versions", "Latest", "Aliases", "Frameworks",
        "Public"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, models.map((m) => el("tr", {},
        el("td", {}, el("a", { href: `#/models/${encodeURIComponent(m.name)}` }, m.name)),
        el("td", {}, String(m.versions.length)), el("td", {}, String(m.latest_version ?? "—")),
        el("td", {}, Object.entries(m.aliases).map(([a, v]) => `${a} → ${v}`).join(", ") || "—"),
        el("td", {}, [...new Set(m.versions.map((v) => v.framework))].join(", ")),
        el("td", {}, m.public ? "yes" : "—")))))))
      : empty("No model yet: a job that succeeds publishes a version of the model it names.",
        el("a", { class: "button primary", href: "#/new" }, "Train one")));
}

// `formats`: the catalog's download formats, whose suffixes name the saved files.
function versionsTable(model, current, formats) {
  const suffix = Object.fromEntries(formats.map((f) => [f.name, f.suffix]));
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, ["Version", "Framework", "Test", "Served", "Created", "Files"]
      .map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, [...model.versions].reverse().map((v) => el("tr",
      { class: v.version === current ? "current" : null },
      el("td", {}, el("a", { href: `#/models/${encodeURIComponent(model.name)}/${v.version}`,
        "aria-current": v.version === current ? "true" : null }, `v${v.version}`),
      Object.entries(model.aliases).filter(([, n]) => n === v.version)
        .map(([a]) => el("span", { class: "badge alias" }, a))),
      el("td", {}, v.framework), el("td", {}, headline(v.metrics)),
      el("td", {}, v.servable ? "yes" : el("span", { class: "reason" },
        `no: export differs by ${fmt(v.onnx_max_abs_diff)}`)),
      el("td", {}, when(v.created_at)),
      el("td", {}, v.formats.map((f) => el("button", { type: "button", class: "link small",
        onclick: () => download(
          `/models/${encodeURIComponent(model.name)}/versions/${v.version}/artifacts/${f}`,
          `${model.name}-v${v.version}${suffix[f] || ""}`).catch((e) => toast(e.message)) },
      f))))))));
}

function aliasForm(model, onMoved) {
  const name = el("input", { id: "alias-name", required: true, value: "production",
    pattern: "[A-Za-z0-9_.-]+" });
  const version = el("select", { id: "alias-version" }, [...model.versions].reverse().map((v) =>
    el("option", { value: String(v.version) }, `v${v.version} (${v.framework})`)));
  const result = el("div", { "aria-live": "polite" });
  return el("form", { class: "inline", onsubmit: async (event) => {
    event.preventDefault();
    try {
      const moved = await send("PUT", `/models/${encodeURIComponent(model.name)}/aliases/`
        + encodeURIComponent(name.value), { version: Number(version.value) });
      toast(`${model.name}@${moved.alias} → version ${moved.version}`);
      onMoved();
    } catch (error) {
      mount(result, errorBox(error, "The alias was not moved"));
    }
  } },
  el("label", { for: "alias-name" }, "Alias"), name,
  el("label", { for: "alias-version" }, "points at"), version,
  el("button", { type: "submit" }, "Point"), result);
}

function card(model, c) {
  const metrics = Object.entries(c.metrics).flatMap(([group, values]) =>
    resultMetrics(values).map(([k, v]) => [`${group} ${k}`, fmt(v)]));
  const facts = [
    ["Job", el("a", { href: `#/jobs/${c.job_id}` }, el("code", {}, c.job_id.slice(0, 8)))],
    ["Framework", `${c.framework} (${Object.entries(c.library_versions)
      .map(([k, v]) => `${k} ${v}`).join(", ")})`],
    ["Trained on", c.device], ["Created", when(c.created_at)],
    ["Aliases", c.aliases.join(", ") || "—"],
    ["Input", `${shape(c.input.shape)} ${c.input.dtype}`],
    ["Output", `${shape(c.output.shape)} ${c.output.dtype}`],
    ["Task", c.task === "classification" && c.output.shape.length > 1
      ? `classification, a class at each of ${c.output.shape[0]} time steps` : c.task],
    ["Classes", c.class_names ? c.class_names.join(", ") : "—"],
    ["Parameters", fmt(c.params)],
    ["Preprocessing", c.preprocessing.method],
    ["Dataset", el("span", {}, datasetLink(c.dataset.id), ` (seed ${c.dataset.seed}`,
    c.dataset.split ? `; ${c.dataset.split.train} train, `
      + `${c.dataset.split.validation} validation, ${c.dataset.split.test} test` : "", ")")],
    ["Export parity", `max |ONNX − ${c.framework}| = ${fmt(c.export_parity.max_abs_diff, 3)} `
      + `(tolerance ${fmt(c.export_parity.tolerance, 3)})`],
    ["Served", c.servable ? "yes" : "no: the export does not match the trained model"],
    ["Formats", c.formats.join(", ")],
    ["Served by default", c.publishing],
    ["Training coach", coachFlags(c.coach) || "nothing to flag"],
    ["Evaluation", c.evaluation ? el("a", { href: `#/jobs/${c.job_id}` }, c.evaluation.task
      === "classification" ? `accuracy ${fmt(c.evaluation.accuracy)}, macro F1 `
        + `${fmt(c.evaluation.macro_f1)}` : `MAE ${fmt(c.evaluation.mae)}, R² ${fmt(c.evaluation.r2)}`,
    ` on ${c.evaluation.samples} test samples`) : "—"],
    ...metrics,
  ];
  return el("section", { class: "card", id: "model-card" },
    el("h2", {}, `Model card · v${c.version}`),
    el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("details", {}, el("summary", {}, "Spec and files"),
      el("pre", {}, JSON.stringify({ spec: c.spec, files: c.files }, null, 2))));
}

async function show(root, name, versionText) {
  mount(root, loading(`Loading ${name}`));
  let model;
  try {
    model = await get(`/models/${encodeURIComponent(name)}`);
  } catch (error) {
    mount(root, errorBox(error, "The model could not be read"),
      el("p", {}, el("a", { href: "#/models" }, "All models")));
    return null;
  }
  if (!model.versions.length) {
    mount(root, el("h1", {}, model.name), empty("This model has no version yet."));
    return null;
  }
  const version = versionText ? Number(versionText) : model.default_version;
  const { formats } = await loadCatalog();
  const cardBox = el("div", {}, loading("Loading the card"));
  const play = el("section", { class: "card", id: "playground" });
  mount(root, el("div", { class: "head" }, el("h1", {}, model.name),
    el("div", { class: "actions" }, el("a", { class: "button", href: "#/models" }, "All models"))),
  el("div", { class: "columns" },
    el("div", { class: "wide" },
      el("section", { class: "card" }, el("h2", {}, "Versions"),
        versionsTable(model, version, formats)),
      play, evaluateSection(model.name, version)),
    el("div", {},
      el("section", { class: "card" }, el("h2", {}, "Aliases"),
        Object.keys(model.aliases).length ? el("ul", {}, Object.entries(model.aliases).map(
          ([a, v]) => el("li", {}, el("strong", {}, a), ` → v${v} `,
            el("button", { type: "button", class: "link small", "aria-label": `Remove ${a}`,
              onclick: async () => {
                try {
                  await send("DELETE", `/models/${encodeURIComponent(model.name)}/aliases/`
                    + encodeURIComponent(a));
                  toast(`${model.name}@${a} removed`);
                  show(root, name, versionText);
                } catch (error) { toast(error.message); }
              } }, "remove"))))
          : el("p", { class: "muted" }, "No alias: predictions use the latest version "
            + "the training coach did not flag."),
        aliasForm(model, () => show(root, name, versionText)),
        el("p", { class: "muted small" }, `Batching: up to ${model.batching.max_batch_size} `
          + `instances, waiting at most ${model.batching.max_delay_ms} ms.`)),
      el("section", { class: "card" }, el("h2", {}, "Who may use it"),
        el("p", {}, model.public ? "Every member: it is public."
          : "Its owner (and admins), and app keys given it."),
        publicToggle(`/models/${encodeURIComponent(model.name)}`, model.public,
          () => show(root, name, versionText))),
      cardBox)));
  try {
    const c = await get(`/models/${encodeURIComponent(name)}/versions/${version}`);
    mount(cardBox, card(model, c));
    return await playground(play, c);
  } catch (error) {
    mount(cardBox, errorBox(error, "The model card could not be read"));
    return null;
  }
}

export async function render(root, name, version) {
  if (name) return show(root, name, version);
  await list(root);
  return null;
}

// The catalog: the workshop's tables, alive — every activation drawn, every formula shown.

import { el, loadCatalog, loading, mount, plot } from "../ui.js";

const MAX_LISTED = 6;  // longer lists of allowed names (activations, initializers) are elided
const Y_LIMIT = 5;  // a curve that leaves ±5 (exp, 1/g, g²) is drawn within it

function constraint(schema = {}) {
  const parts = [];
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) parts.push(`< ${schema.exclusiveMaximum}`);
  return [schema.type, parts.join(" and ")].filter(Boolean).join(", ");
}

function allowedNames(names) {
  return el("span", { class: "muted", title: names.join(", ") }, names.length > MAX_LISTED
    ? `: one of ${names.length} names (${names.slice(0, 3).join(", ")}, …)`
    : `: ${names.join(", ")}`);
}

function parameters(params) {
  if (!params.length) return el("span", { class: "muted" }, "no parameters");
  return el("ul", { class: "params" }, params.map((p) => el("li", {},
    el("code", {}, p.name),
    p.required ? el("strong", {}, " required") : ` = ${JSON.stringify(p.default)}`,
    el("span", { class: "muted" }, ` ${constraint(p.schema)}`),
    p.allowed || p.schema.enum ? allowedNames(p.allowed || p.schema.enum) : null,
    el("div", { class: "small" }, p.description),
    p.parameters ? parameters(p.parameters) : null)));
}

function activationCard(activation) {
  const { curve } = activation;
  const chart = el("div", { class: "mini-chart", role: "img",
    "aria-label": `${activation.name}: ${activation.formula}` });
  const card = el("figure", { class: "card activation", id: `activation-${activation.name}` },
    el("figcaption", {}, el("h3", {}, activation.name),
      el("p", {}, el("code", {}, activation.formula)),
      el("p", { class: "muted small" }, `range ${activation.range}`,
        activation.description ? ` · ${activation.description}` : "")),
    chart);
  const steep = curve.value.some((y) => y !== null && Math.abs(y) > Y_LIMIT);
  requestAnimationFrame(() => plot(chart, [{ x: curve.g, y: curve.value, mode: "lines",
    line: { color: "#2563eb", width: 2 }, hovertemplate: "g=%{x:.2f}<br>%{y:.3f}<extra></extra>",
    connectgaps: false }], {
    margin: { l: 32, r: 8, t: 8, b: 24 }, showlegend: false, height: 150,
    xaxis: { zeroline: true, zerolinecolor: "#9ca3af" },
    yaxis: { zeroline: true, zerolinecolor: "#9ca3af",
      range: steep ? [-Y_LIMIT, Y_LIMIT] : undefined } }));
  return card;
}

function table(headers, rows) {
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))));
}

// `section`: the one to scroll to (the training coach links to them).
export async function render(root, section) {
  mount(root, loading("Loading the catalog"));
  const catalog = await loadCatalog();
  const aliases = Object.entries(catalog.activation_aliases)
    .map(([alias, name]) => `${alias} → ${name}`).join(", ");
  mount(root,
    el("div", { class: "head" }, el("h1", {}, "Catalog")),
    el("nav", { class: "toc", "aria-label": "Catalog sections" },
      ["activations", "combinations", "optimizers", "objectives", "layers", "initializers",
        "job"]
        .map((s) => el("a", { href: `#/catalog`, onclick: (event) => {
          event.preventDefault();
          document.getElementById(`section-${s}`).scrollIntoView();
        } }, s))),
    el("section", { id: "section-activations" },
      el("h2", {}, "Activation functions"),
      el("p", { class: "muted" }, "Of the net input g. Aliases: ", aliases, "."),
      el("div", { class: "grid" }, catalog.activations.map(activationCard))),
    el("section", { id: "section-combinations", class: "card" },
      el("h2", {}, "Combination functions"),
      el("p", { class: "muted" }, "The net input of unit j of a dense layer: f the fan-in, wᵢⱼ ",
        "the weights (the centres, for radial ones), aⱼ altitudes, bⱼ widths."),
      table(["name", "net input of unit j", "what"], catalog.combinations.map((c) =>
        [el("code", {}, c.name), el("code", {}, c.formula), c.description || ""]))),
    el("section", { id: "section-optimizers", class: "card" },
      el("h2", {}, "Optimizers"),
      el("p", { class: "muted" }, "η the learning rate, g the gradient, w a weight, t the step: "
        + "the rules both backends run (Keras's; the PyTorch backend follows them)."),
      table(["name", "update", "parameters"], catalog.optimizers.map((o) =>
        [el("code", {}, o.type), o.update, parameters(o.parameters)]))),
    el("section", { id: "section-objectives", class: "card" },
      el("h2", {}, "Objective functions"),
      table(["name", "task", "formula"], catalog.objectives.map((o) =>
        [el("code", {}, o.name), o.task, el("code", {}, o.formula)]))),
    el("section", { id: "section-layers", class: "card" },
      el("h2", {}, "Layers"),
      table(["type", "what", "parameters"], catalog.layers.map((l) =>
        [el("code", {}, l.type), l.description || "", parameters(l.parameters)]))),
    el("section", { id: "section-initializers", class: "card" },
      el("h2", {}, "Initializers"),
      table(["name", "distribution"], catalog.initializers.map((i) =>
        [el("code", {}, i.name), el("code", {}, i.formula)]))),
    el("section", { id: "section-job", class: "card" },
      el("h2", {}, "The job"),
      table(["block", "parameters"], [["job", catalog.job], ["model", catalog.model],
        ["training", catalog.training]].map(([block, params]) =>
        [el("code", {}, block), parameters(params)]))));
  if (section) document.getElementById(`section-${section === "training" ? "job" : section}`)
    ?.scrollIntoView();
  return null;
}

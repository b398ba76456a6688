// The catalog: the workshop's tables, alive — every activation drawn, every formula shown.

import { get } from "../api.js";
import { el, loading, mount, plot } from "../ui.js";

// Error function (Abramowitz and Stegun 7.1.26, |error| < 1.5e-7), for the exact GELU.
function erf(x) {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const y = 1 - t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
    + t * 1.061405429)))) * Math.exp(-x * x);
  return x >= 0 ? y : -y;
}

const logistic = (g) => 1 / (1 + Math.exp(-g));
const SELU_ALPHA = 1.6732632423543772, SELU_SCALE = 1.0507009873554805;

// Each activation as a function of the net input g, as the catalog's formulas state them.
const CURVES = {
  identity: (g) => g,
  exponential: Math.exp,
  reciprocal: (g) => (Math.abs(g) < 1e-9 ? null : 1 / g),
  square: (g) => g * g,
  logistic,
  softmax: logistic,  // one unit of a two-unit softmax whose other input is 0
  gauss: (g) => Math.exp(-g * g),
  sine: Math.sin,
  cosine: Math.cos,
  elliott: (g) => g / (1 + Math.abs(g)),
  tanh: Math.tanh,
  arctan: (g) => (2 / Math.PI) * Math.atan(g),
  relu: (g) => Math.max(0, g),
  leaky_relu: (g) => (g > 0 ? g : 0.01 * g),
  elu: (g) => (g > 0 ? g : Math.exp(g) - 1),
  selu: (g) => SELU_SCALE * (g > 0 ? g : SELU_ALPHA * (Math.exp(g) - 1)),
  gelu: (g) => (g * (1 + erf(g / Math.SQRT2))) / 2,
  softplus: (g) => Math.log1p(Math.exp(g)),
  silu: (g) => g * logistic(g),
};
const NOTES = { softmax: "drawn for two units, the other's net input 0: exp(g) / (exp(g) + 1)" };

const MAX_LISTED = 6;  // longer lists of allowed names (activations, initializers) are elided
const XS = Array.from({ length: 161 }, (_, i) => -4 + i * 0.05);

function constraint(schema = {}) {
  const parts = [];
  if (schema.minimum !== undefined) parts.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) parts.push(`≤ ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) parts.push(`< ${schema.exclusiveMaximum}`);
  return [schema.type, parts.join(" and ")].filter(Boolean).join(", ");
}

function parameters(params) {
  if (!params.length) return el("span", { class: "muted" }, "no parameters");
  return el("ul", { class: "params" }, params.map((p) => el("li", {},
    el("code", {}, p.name),
    p.required ? el("strong", {}, " required") : ` = ${JSON.stringify(p.default)}`,
    el("span", { class: "muted" }, ` ${constraint(p.schema)}`),
    p.allowed ? el("span", { class: "muted", title: p.allowed.join(", ") },
      p.allowed.length > MAX_LISTED ? `: one of ${p.allowed.length} names (${p.allowed.slice(0, 3)
        .join(", ")}, …)` : `: ${p.allowed.join(", ")}`) : null)));
}

function activationCard(activation) {
  const curve = CURVES[activation.name];
  const chart = el("div", { class: "mini-chart", role: "img",
    "aria-label": `${activation.name}: ${activation.formula}` });
  const card = el("figure", { class: "card activation", id: `activation-${activation.name}` },
    el("figcaption", {}, el("h3", {}, activation.name),
      el("p", {}, el("code", {}, activation.formula)),
      el("p", { class: "muted small" }, `range ${activation.range}`,
        activation.description ? ` · ${activation.description}` : "",
        NOTES[activation.name] ? ` · ${NOTES[activation.name]}` : "")),
    curve ? chart : el("p", { class: "muted" }, "no curve drawn for this function"));
  if (curve) {
    requestAnimationFrame(() => plot(chart, [{ x: XS, y: XS.map(curve), mode: "lines",
      line: { color: "#2563eb", width: 2 }, hovertemplate: "g=%{x:.2f}<br>%{y:.3f}<extra></extra>",
      connectgaps: false }], {
      margin: { l: 32, r: 8, t: 8, b: 24 }, showlegend: false, height: 150,
      xaxis: { zeroline: true, zerolinecolor: "#9ca3af" },
      yaxis: { zeroline: true, zerolinecolor: "#9ca3af",
        range: activation.name === "reciprocal" || activation.name === "exponential"
          || activation.name === "square" ? [-5, 5] : undefined } }));
  }
  return card;
}

function table(headers, rows) {
  return el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c)))))));
}

export async function render(root) {
  mount(root, loading("Loading the catalog"));
  const catalog = await get("/catalog");
  const aliases = Object.entries(catalog.activation_aliases)
    .map(([alias, name]) => `${alias} → ${name}`).join(", ");
  mount(root,
    el("div", { class: "head" }, el("h1", {}, "Catalog")),
    el("nav", { class: "toc", "aria-label": "Catalog sections" },
      ["activations", "combinations", "optimizers", "objectives", "layers", "initializers"]
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
        [el("code", {}, i.name), el("code", {}, i.formula)]))));
  return null;
}

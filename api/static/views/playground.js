// The predict playground: an 8×8 drawing grid for digit models, a form for tabular and sequence
// inputs; a class per time step is answered step by step.

import { get, send } from "../api.js";
import { el, errorBox, fmt, mount, shape } from "../ui.js";

const SIDE = 8;
const INK = 16;  // the digits' pixel values run from 0 to 16
const FORM_LIMIT = 64;  // inputs with more values than this are left to the API

const size = (dims) => dims.reduce((a, b) => a * b, 1);

// A flat list of values in the model's input shape (row-major, as numpy reshapes).
function reshape(flat, dims) {
  if (dims.length <= 1) return flat;
  const step = size(dims.slice(1));
  return Array.from({ length: dims[0] }, (_, i) => reshape(flat.slice(i * step, (i + 1) * step),
    dims.slice(1)));
}

function isDigits(c) {
  const dims = c.input.shape;
  return size(dims) === SIDE * SIDE && (c.dataset.id === "builtin:digits"
    || (dims[0] === SIDE && dims[1] === SIDE));
}

// A class per time step: each step's predicted class, with its probability as a bar.
function stepsAnswer(out) {
  const steps = out.predictions[0];
  const probabilities = out.probabilities[0];
  return el("div", { class: "answer" },
    el("p", {}, "Prediction: ", el("strong", { id: "prediction", class: "big" }, steps.join(" ")),
      el("span", { class: "muted small" }, ` (v${out.version})`)),
    el("ol", { class: "bars", "aria-label": "predicted class and its probability at each step" },
      steps.map((name, t) => {
        const p = Math.max(...probabilities[t]);
        return el("li", {},
          el("span", { class: "label" }, `step ${t + 1}: ${name}`),
          el("span", { class: "bar" }, el("span", { style: `width:${(p * 100).toFixed(1)}%` })),
          el("span", { class: "value" }, `${(p * 100).toFixed(1)}%`));
      })));
}

// Shows the answer: the predicted class with every class's probability, or the value.
function answer(out) {
  if (out.probabilities && Array.isArray(out.probabilities[0][0])) return stepsAnswer(out);
  const prediction = out.predictions[0];
  const probabilities = out.probabilities ? out.probabilities[0] : null;
  const top = probabilities ? Math.max(...probabilities) : null;
  return el("div", { class: "answer" },
    el("p", {}, "Prediction: ", el("strong", { id: "prediction", class: "big" },
      Array.isArray(prediction) ? prediction.map((v) => fmt(v)).join(", ")
        : String(fmt(prediction))),
    el("span", { class: "muted small" }, ` (v${out.version})`)),
    probabilities ? el("ol", { class: "bars", "aria-label": "probability of each class" },
      probabilities.map((p, i) => el("li", { class: p === top ? "best" : null },
        el("span", { class: "label" }, out.classes ? out.classes[i] : String(i)),
        el("span", { class: "bar" }, el("span", { style: `width:${(p * 100).toFixed(1)}%` })),
        el("span", { class: "value" }, `${(p * 100).toFixed(1)}%`)))) : null);
}

// Runs one prediction at a time; a change made meanwhile is predicted right after.
function predictor(c, output) {
  let busy = false, next = null;
  async function run(values) {
    if (busy) { next = values; return; }
    busy = true;
    try {
      const out = await send("POST", `/models/${encodeURIComponent(c.name)}/predict`,
        { instances: [reshape(values, c.input.shape)], version: c.version });
      mount(output, answer(out));
    } catch (error) {
      mount(output, errorBox(error, "No prediction"));
    } finally {
      busy = false;
      if (next) { const values = next; next = null; run(values); }
    }
  }
  return run;
}

function drawingGrid(c, output) {
  const predict = predictor(c, output);
  const pixels = new Array(SIDE * SIDE).fill(0);
  let painting = null;  // "ink" or "erase" while a pointer is down
  // Drawing draws, wherever a stroke starts; erasing is a mode of its own (or Shift, or the
  // right button, for one stroke).
  let mode = "ink";
  // One tab stop for the whole grid (the first cell); arrows move within it.
  const cells = pixels.map((_, i) => el("button", { type: "button", class: "pixel",
    tabindex: i ? "-1" : "0", dataset: { i: String(i) },
    "aria-label": `row ${Math.floor(i / SIDE) + 1}, column ${(i % SIDE) + 1}` }));

  function show(i) {
    cells[i].style.setProperty("--ink", String(pixels[i] / INK));
    cells[i].setAttribute("aria-pressed", String(pixels[i] > 0));
  }
  // A soft brush, like the scanned digits: full ink where it lands, some on the four sides.
  function stroke(i, erase) {
    const row = Math.floor(i / SIDE), col = i % SIDE;
    const touched = [[row, col, INK], [row - 1, col, 4], [row + 1, col, 4], [row, col - 1, 4],
      [row, col + 1, 4]];
    for (const [r, k, amount] of touched) {
      if (r < 0 || r >= SIDE || k < 0 || k >= SIDE) continue;
      const j = r * SIDE + k;
      pixels[j] = erase ? (j === i ? 0 : pixels[j]) : Math.min(INK, pixels[j] + amount);
      show(j);
    }
    predict([...pixels]);
  }
  function cellAt(event) {
    const target = document.elementFromPoint(event.clientX, event.clientY);
    return target && target.classList.contains("pixel") ? Number(target.dataset.i) : null;
  }
  const grid = el("div", { class: "grid8", role: "group",
    "aria-label": "8 by 8 drawing grid: draw with the mouse or a finger; with the keyboard, "
      + "arrows move and space inks a cell (erases it in erase mode)",
    onpointerdown: (event) => {
      const i = cellAt(event);
      if (i === null) return;
      event.preventDefault();
      painting = event.button === 2 || event.shiftKey ? "erase" : mode;
      stroke(i, painting === "erase");
    },
    onpointermove: (event) => {
      if (!painting) return;
      const i = cellAt(event);
      if (i !== null) stroke(i, painting === "erase");
    },
    oncontextmenu: (event) => event.preventDefault(),
    onkeydown: (event) => {
      const i = Number(event.target.dataset.i);
      if (Number.isNaN(i)) return;
      const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -SIDE, ArrowDown: SIDE };
      if (event.key in moves) {
        event.preventDefault();
        const j = i + moves[event.key];
        if (j < 0 || j >= SIDE * SIDE) return;
        cells[i].tabIndex = -1;
        cells[j].tabIndex = 0;
        cells[j].focus();
      } else if (event.key === " " || event.key === "Enter") {
        event.preventDefault();
        stroke(i, mode === "erase");
      }
    } }, cells);
  const stop = () => { painting = null; };
  window.addEventListener("pointerup", stop);
  cells.forEach((_, i) => show(i));
  const modes = ["ink", "erase"].map((name) => el("button", { type: "button",
    id: `grid-${name}`, "aria-pressed": String(name === mode), onclick: () => {
      mode = name;
      modes.forEach((b) => b.setAttribute("aria-pressed", String(b.id === `grid-${name}`)));
    } }, name === "ink" ? "Draw" : "Erase"));
  const clear = el("button", { type: "button", onclick: () => {
    pixels.fill(0);
    cells.forEach((_, i) => show(i));
    mount(output, el("p", { class: "muted" }, "Draw a digit."));
  } }, "Clear");
  mount(output, el("p", { class: "muted" }, "Draw a digit."));
  return { node: el("div", { class: "draw" }, grid, el("div", { class: "actions" },
    el("span", { role: "group", "aria-label": "Pen" }, modes), clear)),
    cleanup: () => window.removeEventListener("pointerup", stop) };
}

async function tabularForm(c, output) {
  const count = size(c.input.shape);
  let dataset = null;
  try {
    dataset = await get(`/datasets/${encodeURIComponent(c.dataset.id)}`);
  } catch {
    dataset = null;  // deleted or not ours: the form still works, without names or samples
  }
  const names = dataset?.feature_names?.length === count ? dataset.feature_names
    : Array.from({ length: count }, (_, i) => `x${i}`);
  const inputs = names.map((name, i) => el("input", { id: `feature-${i}`, type: "number",
    step: "any", required: true, value: "0", name }));
  const samples = (dataset?.preview || []).filter((s) => s.features);
  function fill(sample) {
    sample.features.flat(Infinity).forEach((v, i) => { inputs[i].value = String(v); });
  }
  if (samples.length) fill(samples[0]);
  const predict = predictor(c, output);
  const form = el("form", { class: "features", onsubmit: (event) => {
    event.preventDefault();
    predict(inputs.map((input) => Number(input.value)));
  } },
  samples.length ? el("p", {}, "Fill with a sample of ", el("code", {}, c.dataset.id), ": ",
    samples.map((s, i) => el("button", { type: "button", class: "chip",
      onclick: () => { fill(s); form.requestSubmit(); } },
    `#${i + 1} (${Array.isArray(s.target) ? s.target.join(", ") : s.target})`))) : null,
  el("div", { class: "feature-grid" }, names.map((name, i) => el("div", {},
    el("label", { for: `feature-${i}` }, name), inputs[i]))),
  el("button", { type: "submit", class: "primary" }, "Predict"));
  mount(output, el("p", { class: "muted" }, "Enter raw feature values and press Predict."));
  return form;
}

// Fills `root` with the playground for one model version; returns a cleanup function.
export async function playground(root, c) {
  const output = el("div", { id: "prediction-box", "aria-live": "polite" });
  const title = el("h2", {}, `Predict with v${c.version}`);
  if (!c.servable) {
    mount(root, title, el("p", { class: "reason" },
      "This version is not served: its ONNX export does not match the trained model."));
    return null;
  }
  if (isDigits(c)) {
    const { node, cleanup } = drawingGrid(c, output);
    mount(root, title, el("p", { class: "muted" },
      "Draw a digit: click or drag to ink, in as many strokes as you like; erase with the "
      + "Erase pen (or hold Shift, or right-click). The prediction follows each stroke."), el("div", { class: "play" }, node, output));
    return cleanup;
  }
  if (size(c.input.shape) > FORM_LIMIT) {
    mount(root, title, el("p", { class: "muted" }, `This model reads ${shape(c.input.shape)} `
      + `(${size(c.input.shape)} values): send it instances through the API.`));
    return null;
  }
  const form = await tabularForm(c, output);
  mount(root, title, el("div", { class: "play stacked" }, form, output));
  return null;
}

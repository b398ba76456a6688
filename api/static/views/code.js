// A job's spec as a plain PyTorch or Keras script: shown on request, and downloadable.

import { download, getText } from "../api.js";
import { el, mount } from "../ui.js";

const FRAMEWORKS = [["pytorch", "PyTorch"], ["tensorflow", "Keras"]];

export function codeCard(job) {
  const shown = el("div", { class: "code-script" });
  const path = (framework) => `/jobs/${job.id}/code?framework=${framework}`;

  async function show(framework) {
    mount(shown, el("p", { class: "muted" }, "Writing the script…"));
    try {
      const script = await getText(path(framework));
      mount(shown,
        el("p", {}, el("a", { href: path(framework), onclick: (event) => {
          event.preventDefault();
          download(path(framework), `${job.model_name}-${framework}.py`)
            .catch((e) => alert(e.message));
        } }, `Download ${job.model_name}-${framework}.py`)),
        el("pre", { "aria-label": `${framework} script` }, script));
    } catch (error) {
      mount(shown, el("div", { class: "error", role: "alert" }, error.message));
    }
  }

  return el("section", { class: "card" }, el("h2", {}, "Code"),
    el("p", { class: "muted" }, "What you declared, as a standalone script that builds, loads ",
      "and trains the same way."),
    el("div", { class: "actions" }, ...FRAMEWORKS.map(([framework, label]) =>
      el("button", { type: "button", onclick: () => show(framework) }, `Code: ${label}`))),
    shown);
}

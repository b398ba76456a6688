// The dashboard's shell: sign-in, the hash router, the header.

import { ApiError, get, session } from "./api.js";
import * as live from "./live.js";
import { el, errorBox, loadCatalog, mount } from "./ui.js";
import * as jobs from "./views/jobs.js";
import * as job from "./views/job.js";
import * as compare from "./views/compare.js";
import * as newJob from "./views/new-job.js";
import * as catalog from "./views/catalog.js";
import * as datasets from "./views/datasets.js";
import * as models from "./views/models.js";
import * as studies from "./views/studies.js";

// Each route: a pattern on the hash path and the view that renders it with the captures.
const ROUTES = [
  [/^\/jobs$/, jobs],
  [/^\/jobs\/([^/]+)$/, job],
  [/^\/compare(?:\/([^/]+))?$/, compare],
  [/^\/new$/, newJob],
  [/^\/catalog(?:\/([^/]+))?$/, catalog],
  [/^\/datasets(?:\/([^/]+))?$/, datasets],
  [/^\/models(?:\/([^/]+))?(?:\/(\d+))?$/, models],
  [/^\/studies(?:\/([^/]+))?$/, studies],
  [/^\/new-study$/, { render: studies.renderNew }],
];

const main = document.getElementById("main");
let cleanup = null;
let navigation = 0;  // counts the routes taken: a render that ends after the next began is stale

// `capas up` prints a link `/#key=...`: take the key, then drop it from the address bar and
// the history so that it is neither bookmarked nor shared by accident.
function takeKeyFromLink() {
  const match = location.hash.match(/^#key=([^&]+)/);
  if (!match) return;
  session.key = decodeURIComponent(match[1]);
  history.replaceState(null, "", `${location.pathname}#/jobs`);
}

function signInForm(problem) {
  const input = el("input", { id: "key", type: "password", autocomplete: "off", required: true,
    placeholder: "capas_…", "aria-describedby": "key-help" });
  const form = el("form", { class: "card signin", onsubmit: async (event) => {
    event.preventDefault();
    session.key = input.value.trim();
    await start();
  } },
  el("h1", {}, "Sign in"),
  el("label", { for: "key" }, "API key"), input,
  el("p", { id: "key-help", class: "muted" },
    "The key that ", el("code", {}, "capas up"), " printed on its first start (also in ",
    el("code", {}, "capas-data/credentials.json"), "). ",
    "It stays in this tab only and is forgotten when you close it."),
  problem ? errorBox(problem, "Not signed in") : null,
  el("button", { type: "submit", class: "primary" }, "Sign in"));
  document.getElementById("nav").hidden = true;
  mount(document.getElementById("who"));
  mount(main, form);
  input.focus();
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const current = ++navigation;
  const path = location.hash.replace(/^#/, "") || "/jobs";
  for (const link of document.querySelectorAll("#nav a")) {
    const here = path === link.hash.slice(1) || path.startsWith(`${link.hash.slice(1)}/`);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [pattern, view] of ROUTES) {
    const match = path.match(pattern);
    if (!match) continue;
    const captures = match.slice(1)
      .map((c) => (c === undefined ? undefined : decodeURIComponent(c)));
    // Each page draws into a container of its own: a page still loading when the address
    // changes ends up drawing into a container no longer shown, never over the next page.
    const page = el("div", { class: "page" });
    mount(main, page);
    let done = null;
    try {
      await loadCatalog();  // the vocabulary every view draws on
      done = (await view.render(page, ...captures)) || null;
    } catch (error) {
      mount(page, errorBox(error, "This page could not be shown"));
    }
    if (current !== navigation) {  // left while it loaded: stop what it started
      if (done) done();
      return;
    }
    cleanup = done;
    main.focus({ preventScroll: true });
    return;
  }
  mount(main, errorBox(new Error(`no page at ${path}`), "Not found"),
    el("p", {}, el("a", { href: "#/jobs" }, "Back to the jobs")));
}

async function start() {
  if (!session.key) { signInForm(); return; }
  let me;
  try {
    me = await get("/me");
  } catch (error) {
    session.key = null;
    signInForm(error instanceof ApiError && error.status === 401
      ? new Error("this key is not valid") : error);
    return;
  }
  document.getElementById("nav").hidden = false;
  mount(document.getElementById("who"), el("span", {}, `${me.name} (${me.role})`),
    el("button", { type: "button", class: "link", onclick: () => {
      session.key = null;
      live.close();
      location.hash = "#/jobs";
      signInForm();
    } }, "Sign out"));
  if (!location.hash || location.hash === "#") history.replaceState(null, "", "#/jobs");
  await route();
}

window.addEventListener("hashchange", () => { if (session.key) route(); });
window.addEventListener("capas:signed-out", () => {
  session.key = null;
  live.close();
  signInForm(new Error("the key was refused; sign in again"));
});
takeKeyFromLink();
start();

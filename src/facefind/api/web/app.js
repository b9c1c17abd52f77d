// The web UI's shell: sign-in, navigation by role, and a hash router (#/search, #/people/12).
// Each page is a module with `render(main, context)`; pages the role may not use are not shown
// in the navigation and, if reached by URL, say so instead of failing request by request.

import { api, setCsrfToken } from "./api.js";
import { h, say } from "./dom.js";
import * as audit from "./pages/audit.js";
import * as collections from "./pages/collections.js";
import * as confirm from "./pages/confirm.js";
import * as keys from "./pages/keys.js";
import * as people from "./pages/people.js";
import * as publish from "./pages/publish.js";
import * as requests from "./pages/requests.js";
import * as review from "./pages/review.js";
import * as search from "./pages/search.js";
import * as signin from "./pages/signin.js";

// Page, its title, and the action (policy.ACTIONS) a role needs to see it.
const PAGES = [
  { path: "search", title: "Search", action: "search", page: search },
  { path: "people", title: "People", action: "people.read", page: people },
  { path: "review", title: "Review", action: "people.write", page: review },
  { path: "confirm", title: "Awaiting confirmation", action: "review.read", page: confirm },
  { path: "publish", title: "Publish", action: "redact", page: publish },
  { path: "collections", title: "Collections", action: "collections.read", page: collections },
  { path: "keys", title: "Keys", action: "keys", page: keys },
  { path: "requests", title: "Requests", action: "consent.write", page: requests },
  { path: "audit", title: "Audit", action: "audit", page: audit },
];

// Where each role starts: its own work first, the shared collections list last.
const HOME = ["search", "people", "review", "publish", "requests", "audit", "confirm", "collections", "keys"];

let session = null;
let leaving = [];

function allowed() {
  return PAGES.filter((p) => session.actions.includes(p.action));
}

function renderChrome(current) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!session) {
    nav.replaceChildren();
    who.replaceChildren();
    return;
  }
  nav.replaceChildren(
    h("ul", {}, allowed().map((p) =>
      h("li", {}, h("a", { href: `#/${p.path}`, "aria-current": p === current ? "page" : false }, p.title)),
    )),
  );
  who.replaceChildren(
    h("span", { class: "identity" }, session.name, " ", h("span", { class: "role" }, session.role)),
    h("button", { type: "button", class: "secondary", onclick: signOut }, "Sign out"),
  );
}

async function signOut() {
  await api("DELETE", "/ui/session").catch(() => {});
  signedOut();
}

function signedOut() {
  session = null;
  setCsrfToken("");
  route();
}

function home() {
  return allowed().sort((a, b) => HOME.indexOf(a.path) - HOME.indexOf(b.path))[0];
}

function signedIn(s) {
  session = s;
  setCsrfToken(s.csrf_token);
  if (PAGES.some((p) => location.hash === `#/${p.path}` || location.hash.startsWith(`#/${p.path}/`))) {
    route(); // a reload, or a link to a page: stay there
    return;
  }
  const first = home();
  if (first && location.hash !== `#/${first.path}`) location.hash = `#/${first.path}`;
  else route();
}

function route() {
  for (const cleanup of leaving) cleanup();
  leaving = [];
  const main = document.getElementById("main");
  const [path, ...params] = location.hash.replace(/^#\/?/, "").split("/");
  if (!session) {
    renderChrome(null);
    document.title = "Sign in · facefind";
    signin.render(main, { signedIn });
    return;
  }
  const page = PAGES.find((p) => p.path === path) ?? home();
  renderChrome(page);
  const context = {
    session,
    params,
    may: (action) => session.actions.includes(action),
    onLeave: (cleanup) => leaving.push(cleanup),
  };
  if (!page) {
    main.replaceChildren(h("h1", { tabindex: -1 }, "Nothing to show"), h("p", {}, `The role ${session.role} has no pages here.`));
  } else if (!session.actions.includes(page.action)) {
    document.title = "Not available · facefind";
    main.replaceChildren(
      h("h1", { tabindex: -1 }, "Not available for your role"),
      h("p", {}, `${page.title} needs another role than ${session.role}. Ask an administrator if you need it.`),
    );
  } else {
    document.title = `${page.title} · facefind`;
    page.page.render(main, context);
  }
  // Move focus to the new page's heading, as a page load would, and announce it.
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
    say(heading.textContent);
  }
}

window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#/") || location.hash === "") route();
});
window.addEventListener("facefind:signed-out", signedOut);
document.getElementById("skip").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});

// Signed out, the server answers {"signed_in": false} (not an error: nothing in the console).
api("GET", "/ui/session").then((s) => (s?.signed_in ? signedIn(s) : signedOut()), () => signedOut());

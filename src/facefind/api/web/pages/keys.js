// Keys (admin): the service's API keys with their role, collection limit, maker and state; a new
// key is shown once (only its hash is kept) with a button to copy it; revoking asks first.

import { del, get, post } from "../api.js";
import { actionForm, dataTable, field, h, problem, say, when } from "../dom.js";

const ROLES = {
  operator: "operator: index, search, verify",
  reviewer: "reviewer: people (names, merges, splits)",
  dpo: "dpo: consent, opt-outs, erasure",
  auditor: "auditor: the audit log and report, read-only",
  admin: "admin: keys and collections",
};

export function render(main, context) {
  const list = h("div", {}, h("p", { class: "busy" }, "Loading…"));
  const load = async () => {
    try {
      list.replaceChildren(keysTable(await get("/v1/keys"), context.session.name, load));
    } catch (err) {
      list.replaceChildren(problem(err));
    }
  };
  main.replaceChildren(
    h("h1", {}, "Keys"),
    h("p", {}, "Each person or program that uses facefind has its own key: the audit log names it, and revoking it ends its sessions at once."),
    list,
    addForm(load),
  );
  load();
}

function keysTable(keys, me, changed) {
  if (!keys.length) return h("p", {}, "No keys.");
  const active = keys.filter((k) => !k.revoked_at).concat(keys.filter((k) => k.revoked_at));
  return dataTable("API keys", ["Name", "Role", "Collections", "Created", "State", ""], active.map((k) => {
    const action = h("td", {});
    if (!k.revoked_at) action.append(revokeButton(k, me, action, changed));
    return h("tr", { "data-key": k.name, class: k.revoked_at ? "revoked" : false },
      h("th", { scope: "row" }, k.name),
      h("td", {}, k.role),
      h("td", {}, k.collections ? k.collections.join(", ") : "all"),
      h("td", {}, `${when(k.created_at)} by ${k.created_by}`),
      h("td", {}, k.revoked_at ? `revoked ${when(k.revoked_at)}` : "active"),
      action,
    );
  }));
}

// "Revoke" asks in place: the key stops working at once and its sessions end.
function revokeButton(k, me, cell, changed) {
  const ask = () => {
    const yes = h("button", { type: "button", class: "danger" }, `Yes, revoke ${k.name}`);
    const no = h("button", { type: "button", class: "secondary" }, "Cancel");
    const own = k.name === me ? " It is the key you are signed in with: you will be signed out." : "";
    const confirm = h("div", { class: "confirm-revoke", role: "group", "aria-label": `Revoke ${k.name}?` },
      h("span", {}, `Revoke ${k.name}? It stops working at once and cannot be restored.${own}`), yes, no);
    no.addEventListener("click", () => {
      cell.replaceChildren(revokeButton(k, me, cell, changed));
      cell.querySelector("button").focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      try {
        await del(`/v1/keys/${encodeURIComponent(k.name)}`);
        say(`Key ${k.name} revoked`);
        await changed();
      } catch (err) {
        confirm.replaceChildren(problem(err));
      }
    });
    cell.replaceChildren(confirm);
    no.focus();
  };
  return h("button", { type: "button", class: "secondary", "aria-label": `Revoke key ${k.name}`, onclick: ask }, "Revoke");
}

function addForm(done) {
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 200, autocomplete: "off", spellcheck: "false" });
  const role = h("select", { name: "role", required: true }, Object.entries(ROLES).map(([value, text]) => h("option", { value }, text)));
  const scope = h("fieldset", {}, h("legend", {}, "Limit to collections (operators and publishers only; none ticked: all)"));
  get("/v1/collections").then(
    (list) => scope.append(...list.map((c) => h("label", { class: "inline" }, h("input", { type: "checkbox", name: "collection", value: c.name }), ` ${c.name}`))),
    (err) => scope.append(problem(err)),
  );
  const showScope = () => (scope.hidden = role.value !== "operator");
  role.addEventListener("change", showScope);
  showScope();
  const add = async (form) => {
    const ticked = [...scope.querySelectorAll("input:checked")].map((c) => c.value);
    const made = await post("/v1/keys", { name: name.value, role: role.value, collections: ["operator", "publisher"].includes(role.value) && ticked.length ? ticked : null });
    form.reset();
    showScope();
    await done();
    return newKey(made);
  };
  return actionForm(
    { title: h("h2", {}, "Add a key"), submit: "Add key" },
    add,
    h("div", { class: "row" }, field("Name", name, "Who or what uses it, e.g. anna-newsdesk."), field("Role", role)),
    scope,
  );
}

// The new key, once: facefind keeps only its hash, so it cannot be shown again.
function newKey(made) {
  const value = h("input", { type: "text", readonly: true, value: made.key, "aria-label": `The key of ${made.name}`, spellcheck: "false" });
  const copied = h("span", { role: "status" });
  const copy = async () => {
    value.select();
    try {
      await navigator.clipboard.writeText(made.key);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Copying is not allowed here: the key is selected, press Ctrl+C (⌘C).";
    }
  };
  return h("div", { class: "new-key", role: "region", "aria-label": "New key" },
    h("h3", {}, `Key for ${made.name} (${made.role})`),
    h("p", {}, h("strong", {}, "Copy it now: it is shown only this once. "),
      "facefind keeps only its hash; a lost key cannot be recovered, only revoked and replaced. Give it to its user over a private channel."),
    h("div", { class: "key-value" }, value, h("button", { type: "button", onclick: copy }, "Copy"), copied),
  );
}

// Sign in with an API key: the server answers with an HttpOnly session cookie and a CSRF token.

import { api } from "../api.js";
import { field, h, problem } from "../dom.js";

export function render(main, { signedIn }) {
  const key = h("input", { type: "password", name: "key", autocomplete: "current-password", required: true, spellcheck: "false" });
  const message = h("div");
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: async (event) => {
        event.preventDefault();
        message.replaceChildren();
        try {
          signedIn(await api("POST", "/ui/session", { key: key.value }));
        } catch (err) {
          message.replaceChildren(problem(err.status === 401 ? { message: "That key is unknown or revoked." } : err));
          key.select();
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, "Use your facefind API key. An administrator makes one with ", h("code", {}, "facefind keys add NAME --role ROLE"), "."),
    field("API key", key),
    h("button", { type: "submit" }, "Sign in"),
    message,
    h("p", { class: "fine" }, "Every search is recorded with who made it and why. Candidates are for human review, never an identification."),
  );
  main.replaceChildren(form);
}

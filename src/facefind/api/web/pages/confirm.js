// Awaiting confirmation (reviewer; auditor read-only): the candidates of searches, each with the
// query face beside the catalogued face it matched. A candidate becomes an identification only when
// as many distinct people as its collection requires confirmed it; one rejection blocks it. Every
// decision, with its note, is kept in the audit log (EU AI Act Art. 14(5)).

import { get, post } from "../api.js";
import { crop, field, h, oneIn, pathText, problem, say, when } from "../dom.js";

export function render(main, { may }) {
  const decides = may("review.decide");
  const message = h("div", { "aria-live": "polite" });
  const list = h("div", { class: "confirmations" });

  const queryFace = (c) => {
    const img = h("img", {
      class: "crop",
      src: `/v1/review/${c.search_seq}/${c.face_id}/query-face`,
      alt: `Query face of search ${c.search_seq}`,
      width: 128,
      height: 128,
      loading: "lazy",
    });
    img.addEventListener("error", () => img.classList.add("missing"));
    return img;
  };

  const decide = async (c, verb, note) => {
    message.replaceChildren();
    try {
      const done = await post(`/v1/review/${c.search_seq}/${c.face_id}/${verb}`, { note: note.value });
      const text =
        done.state === "identified"
          ? `Face ${c.face_id} of search ${c.search_seq} is an identification: confirmed by ${done.confirmed_by.join(", ")}.`
          : done.state === "rejected"
            ? `Face ${c.face_id} of search ${c.search_seq} rejected.`
            : `Face ${c.face_id} of search ${c.search_seq}: ${done.confirmed_by.length} of ${done.required} confirmations.`;
      message.replaceChildren(h("p", { class: "ok", role: "status" }, text));
      say(text);
      await load();
    } catch (err) {
      message.replaceChildren(problem(err));
      say(err.message);
    }
  };

  const candidate = (c) => {
    const note = h("input", { type: "text", maxlength: 2000, required: true, autocomplete: "off" });
    const confirmed = c.confirmed_by.length ? ` (by ${c.confirmed_by.join(", ")})` : "";
    return h(
      "li",
      { class: "to-confirm", "data-search": c.search_seq, "data-face": c.face_id },
      decides
        ? h(
            "div",
            { class: "faces" },
            h("figure", {}, queryFace(c), h("figcaption", { class: "fine" }, "Searched for")),
            h("figure", {}, crop(c.face_id, `Candidate: face ${c.face_id}`, 128), h("figcaption", { class: "fine" }, `Face ${c.face_id}`)),
          )
        : null,
      h("p", {}, h("strong", {}, `Search #${c.search_seq}, face ${c.face_id}`), ` · by ${c.searcher} · ${when(c.searched_at)}`),
      h("p", { class: "fine" }, `Purpose: ${c.purpose ?? "—"}`),
      c.path ? h("p", { class: "path" }, pathText(c.path)) : null,
      h("p", { class: "fine" }, `similarity ${c.similarity.toFixed(3)} · strangers score this high ${oneIn(c.fmr)}`),
      h("p", { class: "tally" }, `${c.confirmed_by.length} of ${c.required} confirmations${confirmed}`),
      decides
        ? h(
            "form",
            { class: "toolbar", onsubmit: (event) => event.preventDefault() },
            field("Note", note, "What you compared and why you decided (kept in the audit log)."),
            h("button", { type: "button", onclick: () => decide(c, "confirm", note) }, "Confirm"),
            h("button", { type: "button", class: "danger", onclick: () => decide(c, "reject", note) }, "Reject"),
          )
        : null,
    );
  };

  const load = async () => {
    list.replaceChildren(h("p", { class: "busy" }, "Loading…"));
    try {
      const found = await get("/v1/review", { limit: 50 });
      list.replaceChildren(
        found.length
          ? h("ul", { class: "confirm-list" }, found.map(candidate))
          : h("p", {}, "No candidate awaits confirmation."),
      );
    } catch (err) {
      list.replaceChildren(problem(err));
    }
  };

  main.replaceChildren(
    h("h1", {}, "Awaiting confirmation"),
    h(
      "p",
      {},
      "Matches of searches, each beside the face that was searched for. A match becomes an identification only when enough different people confirmed it; one rejection stops it. Nobody may act on a match before that.",
    ),
    decides ? null : h("p", { class: "fine" }, "Read-only: reviewers confirm or reject; you see who decided what."),
    message,
    list,
  );
  load();
}

// Review (reviewer): the review queue. Each question shows an unassigned face or an unnamed
// person beside the most similar face of a named person, with the similarity and the false
// match rate it implies; Yes puts it there (pinned), No is remembered ("not this person"),
// Skip asks again after every other question. "Yes to all" answers a whole group at once.
// "Are these one person?" shows faces in no person that look alike: the checked ones become a
// new person (to name on its page).

import { get, post } from "../api.js";
import { crop, h, moreButton, oneIn, pathText, problem, say } from "../dom.js";

const PAGE = 30;

export function render(main) {
  const message = h("div", { "aria-live": "polite" });
  const list = h("div", { class: "review" });
  const more = h("div");
  let total = 0;
  let floor = 0;
  // Below the calibration's floor a rate is only bounded (as the CLI's "<4.8e-08").
  const rate = (fmr) => (fmr <= floor ? `less often than ${oneIn(floor)}` : oneIn(fmr));

  const answer = async (items, body, note) => {
    message.replaceChildren();
    try {
      await post("/v1/people/suggestions/answers", { items, ...body });
      message.replaceChildren(h("p", { class: "ok", role: "status" }, note));
      say(note);
      await load();
    } catch (err) {
      message.replaceChildren(problem(err));
    }
  };

  const who = (q) => q.candidate_name ?? `Person ${q.candidate}`;

  const question = (q) => {
    const what = q.item.startsWith("face:") ? `Face ${q.item.slice(5)}` : `Person ${q.item.slice(7)} (${q.face_count} face${q.face_count === 1 ? "" : "s"})`;
    return h(
      "li",
      { class: "question", "data-item": q.item },
      h("div", { class: "faces" }, q.faces.map((f) => crop(f.face_id, `${what}: face ${f.face_id} in ${f.path}`, 96))),
      h("p", {}, h("strong", {}, what), q.skipped ? " · skipped before" : ""),
      q.faces[0] ? h("p", { class: "path" }, pathText(q.faces[0].path)) : null,
      h("p", { class: "fine" }, `similarity ${q.similarity.toFixed(3)} · strangers score this high ${rate(q.fmr)}`),
      h(
        "div",
        { class: "toolbar" },
        h("button", { type: "button", onclick: () => answer([q.item], { yes: q.candidate }, `${what} is now ${who(q)}.`) }, `Yes, ${who(q)}`),
        h("button", { type: "button", class: "secondary", onclick: () => answer([q.item], { no: q.candidate }, `${what} is not ${who(q)}: remembered.`) }, "No"),
        h("button", { type: "button", class: "secondary", onclick: () => answer([q.item], { skip: true }, `${what} skipped.`) }, "Skip"),
      ),
    );
  };

  const group = (candidate, questions) => {
    const first = questions[0];
    const heading = first.kind === "merge" ? `May be one person with Person ${candidate}?` : `Is this ${who(first)}?`;
    return h(
      "section",
      { class: "review-group", "data-candidate": candidate },
      h("h2", {}, heading),
      first.candidate_face
        ? h("figure", {}, crop(first.candidate_face.face_id, `${who(first)}: face ${first.candidate_face.face_id}`, 96), h("figcaption", { class: "fine" }, `${who(first)}, closest face`))
        : null,
      questions.length > 1
        ? h("button", { type: "button", onclick: () => answer(questions.map((q) => q.item), { yes: candidate }, `${questions.length} answered: ${who(first)}.`) }, `Yes to all ${questions.length}`)
        : null,
      h("ul", { class: "grid questions" }, questions.map(question)),
    );
  };

  const together = (q) => {
    const picked = new Set(q.items);
    const yes = h("button", { type: "button" }, "Yes: the checked faces are one person");
    yes.addEventListener("click", () => answer([...picked], { together: true }, `${picked.size} faces are now one person: name them on the People page.`));
    return h(
      "section",
      { class: "review-group together", "data-item": q.item },
      h("h2", {}, "Are these one person?"),
      h("p", { class: "fine" }, `Faces in no person, most similar pair: similarity ${q.similarity.toFixed(3)} · strangers score this high ${rate(q.fmr)}. Uncheck those that are someone else.`),
      h(
        "ul",
        { class: "grid questions" },
        q.faces.map((f) =>
          h(
            "li",
            { class: "question", "data-item": `face:${f.face_id}` },
            crop(f.face_id, `Face ${f.face_id} in ${f.path}`, 96),
            h("label", {}, h("input", {
              type: "checkbox",
              checked: true,
              onchange: (event) => {
                if (event.target.checked) picked.add(`face:${f.face_id}`);
                else picked.delete(`face:${f.face_id}`);
                yes.disabled = picked.size < 2;
              },
            }), ` Face ${f.face_id}`),
            h("p", { class: "path" }, pathText(f.path)),
          ),
        ),
      ),
      h(
        "div",
        { class: "toolbar" },
        yes,
        h("button", { type: "button", class: "secondary", onclick: () => answer([q.item], { skip: true }, "Skipped.") }, "Skip"),
      ),
    );
  };

  const show = (suggestions) => {
    const groups = new Map();
    for (const q of suggestions) {
      if (q.kind === "together") {
        list.append(together(q));
        continue;
      }
      if (!groups.has(q.candidate)) groups.set(q.candidate, []);
      groups.get(q.candidate).push(q);
    }
    list.append(...[...groups].map(([candidate, questions]) => group(candidate, questions)));
  };

  const load = async () => {
    list.replaceChildren(h("p", { class: "busy" }, "Loading…"));
    more.replaceChildren();
    try {
      const page = await get("/v1/people/suggestions", { limit: PAGE });
      total = page.total;
      floor = page.fmr_floor;
      list.replaceChildren(h("p", { class: "fine" }, `${total} question${total === 1 ? "" : "s"} in the queue.`));
      if (!page.suggestions.length) list.append(h("p", {}, "Nothing to review: every face is in a person, and no unnamed person looks like a named one."));
      show(page.suggestions);
      let next = page.next;
      if (next) {
        more.replaceChildren(moreButton("More questions", async () => {
          const following = await get("/v1/people/suggestions", { limit: PAGE, after: next });
          show(following.suggestions);
          next = following.next;
          return Boolean(next);
        }));
      }
    } catch (err) {
      list.replaceChildren(problem(err));
    }
  };

  main.replaceChildren(
    h("h1", {}, "Review"),
    h("p", {}, "Faces in no person and unnamed persons, each beside the most similar named person. Naming still needs the person's consent on record; every answer is kept in the audit log."),
    message,
    list,
    more,
  );
  load();
}

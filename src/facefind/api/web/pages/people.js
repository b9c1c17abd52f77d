// People (reviewer): persons as a grid of cover crops; merge several; open one to name it
// (consent required), split faces off, say "not this person", or hide it; remove a detection
// that is not a face, or draw a box on a face's photo to add a face the detector missed.

import { del, get, getImage, getPage, post, put } from "../api.js";
import { crop, field, h, moreButton, pathText, problem, say } from "../dom.js";

// Persons and faces load a page at a time (a "More" button fetches the next).
const PERSONS_PAGE = 60;
const FACES_PAGE = 48;

export function render(main, context) {
  if (context.params[0]) return renderPerson(main, context, Number(context.params[0]));
  return renderGrid(main, context);
}

function personName(p) {
  return p.name ?? `Person ${p.id}`;
}

async function renderGrid(main, context) {
  const editable = context.may("people.write");
  const showHidden = h("input", { type: "checkbox", name: "hidden" });
  const confirm = h("input", { type: "checkbox", name: "confirm" });
  const message = h("div", { "aria-live": "polite" });
  const grid = h("ul", { class: "grid people", "aria-label": "Persons" });
  const more = h("div");
  const merge = h("button", { type: "button", disabled: true }, "Merge selected");
  const selected = new Set();
  const faceCounts = new Map();

  const load = async () => {
    grid.replaceChildren(h("li", { class: "busy" }, "Loading…"));
    more.replaceChildren();
    selected.clear();
    merge.disabled = true;
    let shown = 0;
    let after = null; // keyset paging: each page starts after the last person of the one before
    const page = async () => {
      const query = { include_hidden: showHidden.checked ? "true" : "", after, limit: PERSONS_PAGE };
      const { rows, more: following, next } = await getPage("/v1/people", query);
      rows.forEach((p) => faceCounts.set(p.id, p.face_count));
      grid.append(...rows.map((p) => card(p)));
      shown += rows.length;
      after = next;
      return following;
    };
    try {
      grid.replaceChildren();
      if (await page()) more.replaceChildren(moreButton("More persons", page));
      if (!shown) grid.replaceChildren(h("li", {}, "No persons yet: index photos first."));
    } catch (err) {
      grid.replaceChildren(h("li", {}, problem(err)));
    }
  };

  const card = (p) => {
    const box = editable
      ? h("input", {
          type: "checkbox",
          "aria-label": `Select ${personName(p)}`,
          "data-person": p.id,
          onchange: (event) => {
            if (event.target.checked) selected.add(p.id);
            else selected.delete(p.id);
            merge.disabled = selected.size < 2;
          },
        })
      : null;
    return h(
      "li",
      { class: `person${p.hidden ? " hidden-person" : ""}`, "data-person": p.id },
      p.cover ? crop(p.cover.face_id, `Cover face of ${personName(p)}`) : h("span", { class: "crop missing" }),
      h("div", { class: "person-head" }, box, h("a", { href: `#/people/${p.id}` }, personName(p))),
      h("p", { class: "fine" }, `${p.face_count} face${p.face_count === 1 ? "" : "s"}${p.hidden ? " · hidden" : ""}`),
    );
  };

  merge.addEventListener("click", async () => {
    // Into the selected person with the most faces (its cover and name, if any, stay).
    const [into, ...others] = [...selected].sort((a, b) => faceCounts.get(b) - faceCounts.get(a));
    message.replaceChildren();
    try {
      const person = await post(`/v1/people/${into}/merge`, { persons: others, confirm: confirm.checked });
      message.replaceChildren(h("p", { class: "ok" }, `Merged into ${personName(person)}: ${person.face_count} faces.`));
      say(`Merged into ${personName(person)}`);
      await load();
    } catch (err) {
      message.replaceChildren(problem(err));
    }
  });
  showHidden.addEventListener("change", load);

  main.replaceChildren(
    h("h1", {}, "People"),
    h("p", {}, "Faces grouped into persons by similarity. Groupings are suggestions: check before you name or merge."),
    h(
      "div",
      { class: "toolbar" },
      field("Show hidden persons", showHidden),
      editable ? [field("Names and consent records move with the faces (confirm)", confirm), merge] : null,
    ),
    message,
    grid,
    more,
  );
  await load();
}

async function renderPerson(main, context, id) {
  const editable = context.may("people.write");
  const heading = h("h1", {}, `Person ${id}`);
  const body = h("div", {}, h("p", { class: "busy" }, "Loading…"));
  main.replaceChildren(h("p", {}, h("a", { href: "#/people" }, "← All people")), heading, body);

  const reload = async (note) => {
    try {
      const person = await get(`/v1/people/${id}`, { offset: 0, limit: FACES_PAGE });
      const consents = context.may("consent.read") ? await get("/v1/consents", { person_id: id }) : null;
      heading.textContent = personName(person);
      const view = personView(person, consents, editable, reload);
      body.replaceChildren(...view.parts);
      if (person.faces.length < person.face_count) {
        let shown = person.faces.length;
        body.append(moreButton("More faces", async () => {
          const next = await get(`/v1/people/${id}`, { offset: shown, limit: FACES_PAGE });
          view.addFaces(next.faces);
          shown += next.faces.length;
          return next.faces.length > 0 && shown < next.face_count;
        }));
      }
      if (note) body.prepend(h("p", { class: "ok", role: "status" }, note));
    } catch (err) {
      body.replaceChildren(problem(err));
    }
  };
  await reload();
}

function personView(person, consents, editable, reload) {
  const act = async (promise, note) => {
    try {
      const result = await promise;
      await reload(typeof note === "function" ? note(result) : note);
      say(typeof note === "function" ? note(result) : note);
    } catch (err) {
      errors.replaceChildren(problem(err));
    }
  };
  const errors = h("div");
  const active = consents?.filter((c) => c.active) ?? [];
  const consentText = consents === null
    ? null
    : active.length
      ? `Consent on record (${active.map((c) => `#${c.id}: ${c.scope.join(", ")}, until ${c.expires_on}`).join("; ")}).`
      : "No active consent on record: naming this person needs one (ask your data protection officer).";
  const parts = [h("p", { class: "fine" }, `${person.face_count} face${person.face_count === 1 ? "" : "s"}${person.hidden ? " · hidden" : ""}`)];
  if (consentText) parts.push(h("p", { class: active.length ? "consent ok" : "consent" }, consentText));

  const selected = new Set();
  const faceButtons = [];
  if (editable) {
    const name = h("input", { type: "text", name: "name", value: person.name ?? "", maxlength: 200, autocomplete: "off" });
    parts.push(
      h(
        "form",
        {
          class: "toolbar",
          onsubmit: (event) => {
            event.preventDefault();
            act(put(`/v1/people/${person.id}/name`, { name: name.value }), `Named ${name.value}.`);
          },
        },
        field("Name", name),
        h("button", { type: "submit" }, "Save name"),
        person.name ? h("button", { type: "button", class: "secondary", onclick: () => act(del(`/v1/people/${person.id}/name`), "Name removed.") }, "Remove name") : null,
        h("button", { type: "button", class: "secondary", onclick: () => act(put(`/v1/people/${person.id}/hidden`, { hidden: !person.hidden }), person.hidden ? "Shown again." : "Hidden.") }, person.hidden ? "Show" : "Hide"),
      ),
    );
    const split = h("button", { type: "button", disabled: true }, "Split selected into a new person");
    const remove = h("button", { type: "button", class: "secondary", disabled: true }, "Not this person");
    split.addEventListener("click", () => act(post(`/v1/people/${person.id}/split`, { faces: [...selected] }), (p) => `Split into person ${p.id}.`));
    remove.addEventListener("click", () => act(post(`/v1/people/${person.id}/remove`, { faces: [...selected] }), "Faces removed; they will not come back to this person."));
    faceButtons.push(split, remove);
    parts.push(h("div", { class: "toolbar" }, split, remove));
  }
  parts.push(errors);
  const drawing = h("div");
  parts.push(drawing);
  const update = () => faceButtons.forEach((b) => (b.disabled = selected.size === 0));
  const faceCard = (f) =>
    h(
      "li",
      { class: "face-card", "data-face": f.face_id },
      crop(f.face_id, `Face ${f.face_id} in ${f.path}`),
      editable
        ? h("label", {}, h("input", {
            type: "checkbox",
            onchange: (event) => {
              if (event.target.checked) selected.add(f.face_id);
              else selected.delete(f.face_id);
              update();
            },
          }), ` Face ${f.face_id}`)
        : h("span", {}, `Face ${f.face_id}`),
      h("p", { class: "path" }, pathText(f.path)),
      editable
        ? h(
            "div",
            { class: "face-actions" },
            h("button", { type: "button", class: "secondary", onclick: () => act(post(`/v1/faces/${f.face_id}/not-a-face`), `Face ${f.face_id} removed: not a face. Indexing the photo again will not bring it back.`) }, "Not a face"),
            h("button", { type: "button", class: "secondary", onclick: () => drawing.replaceChildren(drawPanel(f, person, act)) }, "Add a missed face here"),
          )
        : null,
    );
  const grid = h("ul", { class: "grid faces", "aria-label": "Faces" }, person.faces.map(faceCard));
  parts.push(grid);
  // The page's nodes, and how the "More faces" button adds the next page's cards.
  return { parts, addFaces: (faces) => grid.append(...faces.map(faceCard)) };
}

// The whole photo of face `f`: drag over it to draw a box around a face the detector missed.
// The box is kept in the photo's own pixels (the image is shown scaled: by the server, whose
// X-Facefind-Scale says how much, and by the page's layout), and can be typed instead.
function drawPanel(f, person, act) {
  const img = h("img", { class: "draw-photo", alt: `The photo of face ${f.face_id}`, draggable: "false" });
  const rect = h("div", { class: "draw-box", hidden: true });
  const stage = h("div", { class: "draw-stage" }, img, rect);
  const boxInput = h("input", { type: "text", name: "box", placeholder: "x,y,w,h", autocomplete: "off", pattern: "\\s*\\d+(\\.\\d+)?(\\s*,\\s*\\d+(\\.\\d+)?){3}\\s*" });
  const into = h("input", { type: "checkbox", name: "into" });
  const add = h("button", { type: "submit" }, "Add this face");
  const status = h("p", { class: "fine", role: "status" }, "Loading the photo…");
  let scale = 1;
  let start = null;
  getImage(`/v1/faces/${f.face_id}/photo`, { size: 1600 })
    .then(({ url, headers }) => {
      scale = Number(headers.get("X-Facefind-Scale")) || 1;
      img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
      img.src = url;
      status.textContent = "Drag over the photo around the missed face, or type its box.";
    })
    .catch((err) => status.replaceWith(problem(err)));

  // Pointer position on the image as shown, clamped to it.
  const at = (event) => {
    const r = img.getBoundingClientRect();
    return [Math.min(Math.max(event.clientX - r.left, 0), r.width), Math.min(Math.max(event.clientY - r.top, 0), r.height)];
  };
  const draw = (a, b) => {
    const [x, y, w, hh] = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1])];
    rect.hidden = false;
    rect.style.left = `${x}px`;
    rect.style.top = `${y}px`;
    rect.style.width = `${w}px`;
    rect.style.height = `${hh}px`;
    // shown on screen -> the JPEG's pixels -> the photo's pixels
    const k = img.naturalWidth / img.getBoundingClientRect().width / scale;
    boxInput.value = [x, y, w, hh].map((v) => Math.round(v * k)).join(",");
  };
  stage.addEventListener("pointerdown", (event) => {
    if (!img.naturalWidth) return;
    event.preventDefault();
    start = at(event);
    stage.setPointerCapture(event.pointerId);
    draw(start, start);
  });
  stage.addEventListener("pointermove", (event) => start && draw(start, at(event)));
  stage.addEventListener("pointerup", (event) => {
    if (!start) return;
    draw(start, at(event));
    start = null;
  });

  const name = person.name ?? `Person ${person.id}`;
  return h(
    "form",
    {
      class: "card draw",
      onsubmit: (event) => {
        event.preventDefault();
        const body = { path: f.path, box: boxInput.value.replace(/\s/g, ""), person: into.checked ? person.id : null };
        act(post("/v1/faces", body), (added) => `Face ${added.face_id} added (${added.alignment === "detector" ? "aligned by the detector's landmarks" : "centred in the box"})${added.person_id ? `, in person ${added.person_id}` : ""}.`);
      },
    },
    h("h2", {}, "Add a face the detector missed"),
    h("p", { class: "path" }, pathText(f.path)),
    stage,
    status,
    h(
      "div",
      { class: "toolbar" },
      field("Box (x,y,w,h in the photo's pixels)", boxInput),
      field(`Put it in ${name} (else grouping places it)`, into),
      add,
      h("button", { type: "button", class: "secondary", onclick: (event) => event.target.closest("form").remove() }, "Close"),
    ),
  );
}

// Search (operator): a photo (or up to 10 photos of one person, searched as one) and a purpose in;
// per face found, the candidates for human review with their face crops, similarity and the false
// positive rate each implies, or "no match".

import { get, post } from "../api.js";
import { crop, field, h, oneIn, pathText, percent, problem, say } from "../dom.js";

export function render(main, context) {
  const photo = h("input", { type: "file", name: "photo", accept: "image/*", required: true, multiple: true });
  const purpose = h("input", { type: "text", name: "purpose", required: true, maxlength: 500, autocomplete: "off" });
  const collection = h("select", { name: "collection" }, h("option", { value: "" }, "All collections you may search"));
  const strictness = h(
    "select",
    { name: "max_fpir" },
    h("option", { value: "0.01" }, "1 in 100 (default)"),
    h("option", { value: "0.001" }, "1 in 1,000 (stricter)"),
    h("option", { value: "0.1" }, "1 in 10 (looser: more candidates, more of them wrong)"),
  );
  const prompt = "Drop a photo here, or choose one (several photos of one person are searched as one)";
  const drop = h("label", { class: "drop", for: "photo" }, h("span", {}, prompt));
  photo.id = "photo";
  const output = h("section", { "aria-label": "Results", class: "results" });
  const button = h("button", { type: "submit" }, "Search");

  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) {
      photo.files = event.dataTransfer.files;
      photo.dispatchEvent(new Event("change"));
    }
  });
  photo.addEventListener("change", () => {
    const names = [...photo.files].map((f) => f.name);
    drop.firstChild.textContent = !names.length ? prompt
      : names.length === 1 ? `Photo: ${names[0]}` : `${names.length} photos of one person: ${names.join(", ")}`;
  });

  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const files = [...photo.files];
        if (!files.length) return;
        const body = new FormData();
        for (const file of files) body.append("photo", file);
        body.append("purpose", purpose.value);
        body.append("max_fpir", strictness.value);
        if (collection.value) body.append("collection", collection.value);
        button.disabled = true;
        output.replaceChildren(h("p", { class: "busy" }, "Searching…"));
        say("Searching");
        try {
          const result = await post("/v1/search", body);
          output.replaceChildren(...showResult(result, files[0]));
          say(result.faces.some((f) => f.matches.length) ? "Candidates found" : "No match");
        } catch (err) {
          output.replaceChildren(problem(err));
          say(err.message);
        } finally {
          button.disabled = false;
        }
      },
    },
    h("div", { class: "drop-field" }, drop, photo),
    field("Purpose", purpose, "Why you search: kept in the audit log with your name and what was found."),
    h("div", { class: "row" }, field("Collection", collection), field("False positives allowed", strictness,
      "Share of searches for someone who is not in the collection that still return a candidate.")),
    button,
  );
  main.replaceChildren(h("h1", {}, "Search by face"), form, output);
  get("/v1/collections").then(
    (list) => collection.append(...list.map((c) => h("option", { value: c.name }, c.name))),
    () => {},
  );
}

function showResult(result, file) {
  const figure = h("div", { class: "query" });
  const img = h("img", { src: URL.createObjectURL(file), alt: "The photo searched" });
  figure.append(img);
  img.addEventListener("load", () => {
    for (const face of result.faces) {
      const { x, y, w, h: height } = face.box;
      const box = h("span", { class: `box${face.matches.length ? " matched" : ""}`, "aria-hidden": "true" }, String(face.face + 1));
      box.style.left = `${(100 * x) / img.naturalWidth}%`;
      box.style.top = `${(100 * y) / img.naturalHeight}%`;
      box.style.width = `${(100 * w) / img.naturalWidth}%`;
      box.style.height = `${(100 * height) / img.naturalHeight}%`;
      figure.append(box);
    }
  });
  const rule = result.rule === "fpir"
    ? `at most ${oneIn(result.max_fpir)} searches for someone who is not here returns anyone (FPIR ${percent(result.max_fpir)})`
    : `rule ${result.rule}`;
  const summary = h(
    "p",
    { class: "summary" },
    `${result.faces.length} face${result.faces.length === 1 ? "" : "s"} found in the photo; `,
    `${result.faces_searched.toLocaleString("en")} catalogued faces searched. `,
    `Similarity threshold ${result.threshold}: ${rule}.`,
    result.threshold_extrapolated ? " (The threshold is extrapolated: it rests on the calibration's tail model.)" : "",
    " A candidate's FPIR says how often a face that similar comes back when the person searched for is not here at all.",
  );
  const faces = result.faces.map((face) => showFace(face, result));
  const caption = result.fused.length ? "The first photo's face" : "Faces found, numbered as below";
  return [h("div", { class: "result-layout" }, h("figure", {}, figure, h("figcaption", {}, caption)), h("div", {}, summary, fused(result), faces))];
}

// A search by several photos of one person: each photo's face, and whether it looks like the first.
function fused(result) {
  if (!result.fused.length) return null;
  return h(
    "section",
    { class: "fused" },
    h("h2", {}, `Searched as one person: ${result.fused.length} photos`),
    h("p", { class: "fine" }, "Each catalogued face scores its best similarity to any of them; the false positive rate allowed is shared between them, so the rate stated still holds."),
    h("ul", {}, result.fused.map((p, i) => h(
      "li",
      {},
      h("span", { class: "path" }, pathText(p.query)),
      i === 0 ? " (first photo)" : ` · similarity to the first ${p.similarity_to_first.toFixed(3)}`,
      p.warnings.length ? h("ul", { class: "warnings" }, p.warnings.map((w) => h("li", {}, w))) : null,
    ))),
  );
}

function showFace(face, result) {
  const warnings = face.warnings.length
    ? h("ul", { class: "warnings" }, face.warnings.map((w) => h("li", {}, w)))
    : null;
  const answer = face.matches.length
    ? [
        h("p", { class: "candidates-label" }, h("strong", {}, "Candidates for human review"),
          " — not an identification. Compare each with the photo yourself; a wrong match can harm someone."),
        h("ol", { class: "candidates" }, face.matches.map((m) => candidate(m))),
      ]
    : h("p", { class: "nomatch" }, h("strong", {}, "No match. "),
        `No catalogued face is similar enough (threshold ${result.threshold}). `,
        "The person is probably not in the collections searched; this is an answer, not an error.");
  return h("section", { class: "face" }, h("h2", {}, `Face ${face.face + 1}`), warnings, answer);
}

function candidate(m) {
  const who = m.person ? `${m.person} (person ${m.person_id})` : m.person_id ? `Unnamed person ${m.person_id}` : "Not grouped into a person";
  return h(
    "li",
    { class: "candidate" },
    crop(m.face_id, `Face ${m.face_id}, ${who}`),
    h(
      "div",
      {},
      h("p", { class: "who" }, who),
      h("p", {}, h("strong", {}, `Similarity ${m.similarity.toFixed(3)}`), " · ", m.extrapolated
        ? `FPIR at most ${oneIn(m.fpir_upper)} (estimated beyond the calibration data)`
        : `FPIR ${oneIn(m.fpir)}`),
      h("p", { class: "path" }, h("span", { class: "visually-hidden" }, "Photo: "), pathText(m.path)),
      h("p", { class: "fine" }, `Collection ${m.collection} · face ${m.face_id} · FMR (one comparison) ${m.fmr < 1e-9 ? "under 1e-9" : m.fmr.toExponential(1)}`),
    ),
  );
}

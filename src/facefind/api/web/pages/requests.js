// Requests (data protection officer): consent records, opt-out by a photo of the person, and
// erasure with its receipt, shown and downloadable.
//
// A DPO may not browse people (people.read is the reviewer's, docs/security.md), so the persons it
// can pick are those of the consent records it keeps; any other person is named by the id a
// reviewer gives it. Collections and opt-outs are picked from their lists; a photo is named by
// its path on the server (pasted: the DPO sees no photos).

import { del, file, get, post } from "../api.js";
import { actionForm, dataTable, download, field, fill, h, problem, say, when } from "../dom.js";

export function render(main) {
  const consents = h("div", {}, h("p", { class: "busy" }, "Loading…"));
  const optouts = h("div", {}, h("p", { class: "busy" }, "Loading…"));
  const persons = h("datalist", { id: "consent-persons" });
  const erasure = erasureForm(() => Promise.all([loadConsents(), loadOptouts(), loadCollections()]));
  const loadConsents = async () => {
    try {
      const list = await get("/v1/consents");
      consents.replaceChildren(consentTable(list, loadConsents));
      const known = personsOnRecord(list);
      persons.replaceChildren(...known.map((p) => h("option", { value: p.id }, p.label)));
      erasure.choices.persons(known);
    } catch (err) {
      consents.replaceChildren(problem(err));
    }
  };
  const loadOptouts = async () => {
    try {
      const list = await get("/v1/optouts");
      optouts.replaceChildren(optoutTable(list, loadOptouts));
      erasure.choices.optouts(list);
    } catch (err) {
      optouts.replaceChildren(problem(err));
    }
  };
  const loadCollections = async () => {
    try {
      erasure.choices.collections(await get("/v1/collections"));
    } catch {
      erasure.choices.collections([]);
    }
  };
  main.replaceChildren(
    h("h1", {}, "Requests"),
    h("p", {}, "Answer people's requests: record or withdraw consent, keep someone out of every search, erase what is stored."),
    h("section", { "aria-labelledby": "consent-h" }, h("h2", { id: "consent-h" }, "Consent"), consentForm(loadConsents, persons), consents),
    h("section", { "aria-labelledby": "optout-h" }, h("h2", { id: "optout-h" }, "Opt-out"), optoutForm(loadOptouts), optouts),
    h("section", { "aria-labelledby": "erase-h" }, h("h2", { id: "erase-h" }, "Erasure"), erasure.form),
    h("section", { "aria-labelledby": "access-h" }, h("h2", { id: "access-h" }, "Subject access"), accessForm(persons)),
    h("section", { "aria-labelledby": "dpia-h" }, h("h2", { id: "dpia-h" }, "Impact assessment"),
      h("a", { class: "button secondary", href: "/v1/report/dpia?format=html", download: "facefind-dpia.html" }, "Impact-assessment pack (DPIA, HTML)")),
  );
  loadConsents();
  loadOptouts();
  loadCollections();
}

// The persons of the consent records, each once, with what the records say of them.
function personsOnRecord(list) {
  const by = new Map();
  for (const c of list) {
    const p = by.get(c.person_id) ?? { id: c.person_id, records: [] };
    p.records.push(c);
    by.set(c.person_id, p);
  }
  return [...by.values()].sort((a, b) => a.id - b.id).map((p) => {
    const latest = p.records[p.records.length - 1];
    const state = p.records.some((c) => c.active) ? "consent active" : "no active consent";
    return { id: p.id, label: `Person ${p.id}: given by ${latest.given_by}, ${state}` };
  });
}

// Everything stored about one person (GDPR Art. 15, 20), as a zip: by the person's id, or by the
// requester's own photo (an audited search). The zip is made on the server and offered here.
function accessForm(persons) {
  const person = h("input", { type: "number", name: "person", min: 1, list: persons.id });
  const photo = h("input", { type: "file", name: "photo", accept: "image/*" });
  const face = h("input", { type: "number", name: "face", min: 0, placeholder: "the largest" });
  const crops = h("input", { type: "checkbox", name: "crops" });
  const make = async () => {
    let blob;
    if (photo.files.length) {
      const body = new FormData();
      body.append("photo", photo.files[0]);
      if (face.value !== "") body.append("face", face.value);
      body.append("crops", crops.checked ? "true" : "false");
      blob = await file("POST", "/v1/subjects/export", body);
    } else if (person.value) {
      blob = await file("GET", `/v1/subjects/export?${new URLSearchParams({ person: person.value, crops: crops.checked })}`);
    } else {
      throw new Error("Give the person's id, or the requester's own photo.");
    }
    const name = `subject-${photo.files.length ? "by-photo" : person.value}.zip`;
    return h("p", { class: "ok", role: "status" }, `Export made (${Math.round(blob.size / 1024)} KB, audited). `,
      h("a", { class: "button secondary", href: URL.createObjectURL(blob), download: name }, `Download ${name}`),
      " Check that the requester is this person before handing it over.");
  };
  return actionForm({ title: "Export a person's data", submit: "Export" }, make,
    h("p", { class: "fine" }, "Their photos with every other face hidden, their faces, consents, opt-outs, erasure receipts and the audit entries that found them."),
    field("Whose data (person id)", person), field("Or the requester's own photo", photo), field("Face in that photo (0 = largest)", face),
    h("label", { class: "inline" }, crops, " Only crops of their faces, not whole photos"));
}

function consentForm(done, persons) {
  const person = h("input", { type: "number", name: "person_id", min: 1, required: true, list: persons.id });
  const givenBy = h("input", { type: "text", name: "given_by", required: true, maxlength: 200 });
  // publication (facefind redact keeps the face visible) is never implied: it is asked for on its own.
  const scopes = ["search", "results", "clustering", "publication"].map((s) =>
    h("input", { type: "checkbox", name: "scope", value: s, checked: s !== "publication" }));
  const expires = h("input", { type: "date", name: "expires", required: true });
  const evidence = h("input", { type: "text", name: "evidence", required: true, maxlength: 2000 });
  const record = async () => {
    const scope = scopes.filter((s) => s.checked).map((s) => s.value).join(",");
    const c = await post("/v1/consents", { person_id: Number(person.value), given_by: givenBy.value, scope, expires: expires.value, evidence: evidence.value });
    done();
    return `Consent ${c.id} recorded for person ${c.person_id}.`;
  };
  return actionForm(
    { title: h("h3", {}, "Record a consent"), submit: "Record consent" },
    record,
    persons,
    h("div", { class: "row" }, field("Person (id)", person, "The id the reviewer gives you, or one of the persons on record (suggested)."), field("Given by", givenBy, "The person, or who may consent for them.")),
    h("fieldset", {}, h("legend", {}, "Covers"), scopes.map((s) => h("label", { class: "inline" }, s, ` ${s.value}`))),
    h("div", { class: "row" }, field("Expires on", expires), field("Evidence", evidence, "Where the signed form is kept.")),
  );
}

function consentTable(list, changed) {
  if (!list.length) return h("p", {}, "No consent records.");
  return dataTable("Consent records", ["#", "Person", "Given by", "Covers", "Expires", "State", "Evidence", ""], list.map((c) =>
      h("tr", {},
        h("th", { scope: "row" }, String(c.id)),
        h("td", {}, h("a", { href: `#/people/${c.person_id}` }, String(c.person_id))),
        h("td", {}, c.given_by),
        h("td", {}, c.scope.join(", ")),
        h("td", {}, c.expires_on),
        h("td", {}, c.active ? "active" : c.withdrawn_at ? `withdrawn ${when(c.withdrawn_at)}` : "expired"),
        h("td", {}, c.evidence),
        h("td", {}, c.active
          ? h("button", { type: "button", class: "secondary", onclick: async () => { await post(`/v1/consents/${c.id}/withdraw`); say(`Consent ${c.id} withdrawn`); changed(); }, "aria-label": `Withdraw consent ${c.id}` }, "Withdraw")
          : null),
      ),
    ),
  );
}

function optoutForm(done) {
  const photo = h("input", { type: "file", name: "photo", accept: "image/*", required: true });
  const note = h("input", { type: "text", name: "note", maxlength: 500 });
  const add = async (form) => {
    const body = new FormData();
    body.append("photo", photo.files[0]);
    if (note.value) body.append("note", note.value);
    const o = await post("/v1/optouts", body);
    form.reset();
    done();
    return `Opt-out ${o.id} in force: ${o.faces_suppressed} catalogued faces withheld from every search, now and when indexed later. The photo itself is not kept.`;
  };
  return actionForm(
    { title: h("h3", {}, "Add an opt-out"), submit: "Add opt-out" },
    add,
    h("p", { class: "fine" }, "A photo of the person who asks: only their face template is kept."),
    h("div", { class: "row" }, field("Photo of the person", photo), field("Note", note, "E.g. the request's reference.")),
  );
}

function optoutTable(list, changed) {
  if (!list.length) return h("p", {}, "No opt-outs in force.");
  return dataTable("Opt-outs in force", ["#", "Added", "By", "Note", "Faces withheld", ""], list.map((o) =>
      h("tr", {},
        h("th", { scope: "row" }, String(o.id)),
        h("td", {}, when(o.created_at)),
        h("td", {}, o.created_by),
        h("td", {}, o.note ?? ""),
        h("td", { class: "num" }, String(o.faces_suppressed)),
        h("td", {}, h("button", { type: "button", class: "secondary", onclick: async () => { await del(`/v1/optouts/${o.id}`).catch(() => {}); changed(); } , "aria-label": `Lift opt-out ${o.id}` }, "Lift")),
      ),
    ),
  );
}

// What to erase is picked, not typed, where the DPO may see the list: persons of the consent
// records (or another person's id, from a reviewer), collections, opt-outs; a photo by its path.
function erasureForm(changed) {
  const kind = h("select", { name: "kind" },
    h("option", { value: "image" }, "A photo or folder (its path)"),
    h("option", { value: "person" }, "A person"),
    h("option", { value: "collection" }, "A collection"),
    h("option", { value: "optout-matches" }, "Faces matching an opt-out"));
  const OTHER = "other";
  const controls = {
    image: h("input", { type: "text", name: "path", required: true, autocomplete: "off", spellcheck: "false" }),
    person: h("select", { name: "person", required: true }),
    personId: h("input", { type: "number", name: "person_id", min: 1, required: true }),
    collection: h("select", { name: "collection", required: true }),
    "optout-matches": h("select", { name: "optout", required: true }),
  };
  const fields = {
    image: field("Path of the photo or folder", controls.image, "As the server names it, e.g. from the operator's index job or failed-files list."),
    person: field("Person", controls.person, "Persons with consent records; another person by the id a reviewer gives you."),
    personId: field("Person id", controls.personId),
    collection: field("Collection", controls.collection),
    "optout-matches": field("Opt-out", controls["optout-matches"]),
  };
  const options = (select, list, other) => {
    const kept = select.value;
    fill(select,
      h("option", { value: "" }, list.length ? "Choose…" : "None on record"),
      list.map(([value, text]) => h("option", { value }, text)),
      other ? h("option", { value: OTHER }, other) : null,
    );
    if ([...select.options].some((o) => o.value === kept)) select.value = kept;
  };
  const choices = {
    persons: (list) => options(controls.person, list.map((p) => [String(p.id), p.label]), "Another person (type the id)"),
    collections: (list) => options(controls.collection, list.map((c) => [c.name, `${c.name} (${c.images} photos)`])),
    optouts: (list) => options(controls["optout-matches"], list.map((o) => [String(o.id), `Opt-out ${o.id}${o.note ? `: ${o.note}` : ""} (${o.faces_suppressed} faces withheld)`])),
  };
  // Only the fields of the kind chosen are shown and enabled (a disabled control is not required).
  const show = () => {
    const visible = new Set([kind.value]);
    if (kind.value === "person" && controls.person.value === OTHER) visible.add("personId");
    for (const [name, box] of Object.entries(fields)) {
      box.hidden = !visible.has(name);
      controls[name].disabled = !visible.has(name);
    }
  };
  kind.addEventListener("change", show);
  controls.person.addEventListener("change", show);
  show();
  const target = () => {
    if (kind.value === "person") return controls.person.value === OTHER ? controls.personId.value : controls.person.value;
    return controls[kind.value].value;
  };
  const sure = h("input", { type: "checkbox", name: "sure", required: true });
  const many = h("input", { type: "checkbox", name: "many" });
  const erase = async (form) => {
    const receipt = await post("/v1/erasures", { kind: kind.value, target: target(), confirm: many.checked });
    form.reset();
    show();
    changed();
    return showReceipt(receipt);
  };
  const form = actionForm(
    { title: h("h3", {}, "Erase"), submit: "Erase", danger: true },
    erase,
    h("p", { class: "fine" }, "Removes the rows, the vector index entries and the faces' templates. It cannot be undone."),
    h("div", { class: "row" }, field("What", kind), Object.values(fields)),
    h("div", { class: "field" }, h("label", { class: "inline" }, sure, " I understand this cannot be undone")),
    h("div", { class: "field" }, h("label", { class: "inline" }, many, " It is a folder or a collection: erase every photo in it")),
  );
  return { form, choices };
}

function showReceipt(r) {
  const text = JSON.stringify(r, null, 2);
  return h(
    "div",
    { class: "receipt", role: "region", "aria-label": "Erasure receipt" },
    h("h4", {}, "Erasure receipt"),
    h("dl", {},
      h("dt", {}, "Erased"), h("dd", {}, `${r.kind} ${r.target}`),
      h("dt", {}, "When, by"), h("dd", {}, `${when(r.at)}, ${r.by}`),
      h("dt", {}, "Removed"), h("dd", {}, `${r.images_removed} photos, ${r.faces_removed} faces, ${r.persons_removed} persons`),
      h("dt", {}, "Audit entry"), h("dd", {}, r.audit_seq === null ? "—" : `#${r.audit_seq}`),
      h("dt", {}, "Database files"), h("dd", {}, r.file_scrub === "done" ? "scrubbed" : `pending: ${(r.pending ?? []).join(" ")}`)),
    h("details", {}, h("summary", {}, "Full receipt"), h("pre", {}, text)),
    download(`erasure-receipt-${r.audit_seq ?? "new"}.json`, text),
  );
}

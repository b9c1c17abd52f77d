// Collections and indexing: each collection with its lawful basis and retention; admins create
// them, operators start index jobs and watch them live (polled each second), with failed files.

import { del, get, post } from "../api.js";
import { actionForm, dataTable, field, fill, h, pathText, problem } from "../dom.js";

const BASES = {
  own: "The operator's own photos (household or personal use)",
  consent: "The people shown consented",
  contract: "Needed for a contract with the people shown",
  "legitimate-interest": "Legitimate interest, with a documented balancing test (note)",
};

export function render(main, context) {
  const table = h("div", {}, h("p", { class: "busy" }, "Loading…"));
  const jobs = h("div");
  const errors = h("div");
  const select = h("select", { name: "collection", required: true });
  fill(
    main,
    h("h1", {}, "Collections"),
    h("p", {}, "Every collection states why its faces may be processed and for how long they are kept."),
    table,
    context.may("collections.write") ? createForm(() => load()) : null,
    context.may("index") ? [indexForm(select, () => pollJobs()), h("h2", {}, "Index jobs"), jobs, h("h2", {}, "Files that failed"), errors] : null,
  );

  const load = async () => {
    try {
      const list = await get("/v1/collections");
      table.replaceChildren(collectionsTable(list));
      select.replaceChildren(...list.map((c) => h("option", { value: c.name }, c.name)));
    } catch (err) {
      table.replaceChildren(problem(err));
    }
  };

  let timer = null;
  const pollJobs = async () => {
    clearTimeout(timer);
    try {
      const list = await get("/v1/index-jobs");
      jobs.replaceChildren(jobsTable(list, pollJobs));
      const running = list.some((j) => j.state === "running" || j.state === "queued");
      if (running) timer = setTimeout(pollJobs, 1000);
      else {
        errors.replaceChildren(errorsTable(await get("/v1/errors")));
        load(); // photo counts changed
      }
    } catch (err) {
      jobs.replaceChildren(problem(err));
    }
  };
  context.onLeave(() => clearTimeout(timer));
  load();
  if (context.may("index")) pollJobs();
}

function collectionsTable(list) {
  if (!list.length) return h("p", {}, "No collections yet.");
  return dataTable("Collections", ["Name", "Owner", "Lawful basis", "Retention", "Photos", "Note"], list.map((c) =>
      h("tr", {},
        h("th", { scope: "row" }, c.name),
        h("td", {}, c.owner ?? "—"),
        h("td", {}, c.basis ? `${c.basis}` : h("strong", {}, "none: indexing refused")),
        h("td", {}, c.retention_days ? `${c.retention_days} days` : "—"),
        h("td", { class: "num" }, c.images.toLocaleString("en")),
        h("td", {}, c.note ?? ""),
      ),
    ),
  );
}

function createForm(done) {
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 200 });
  const owner = h("input", { type: "text", name: "owner", required: true, maxlength: 200 });
  const basis = h("select", { name: "basis" }, Object.entries(BASES).map(([value, text]) => h("option", { value }, text)));
  const retention = h("input", { type: "text", name: "retention", required: true, value: "5y", pattern: "\\s*\\d+\\s*[dwmyDWMY]\\s*" });
  const note = h("input", { type: "text", name: "note", maxlength: 2000 });
  const create = async (form) => {
    const c = await post("/v1/collections", { name: name.value, owner: owner.value, basis: basis.value, retention: retention.value, note: note.value || null });
    form.reset();
    done();
    return `Collection ${c.name} created.`;
  };
  return actionForm(
    { title: h("h2", {}, "New collection"), submit: "Create collection" },
    create,
    h("div", { class: "row" }, field("Name", name), field("Owner", owner)),
    field("Lawful basis", basis),
    h("div", { class: "row" }, field("Retention", retention, "How long faces are kept: 30d, 6w, 18m, 5y."), field("Note", note, "E.g. where the balancing test is filed.")),
  );
}

function indexForm(select, started) {
  const path = h("input", { type: "text", name: "path", required: true, autocomplete: "off", spellcheck: "false" });
  const retry = h("input", { type: "checkbox", name: "retry_errors" });
  const start = async () => {
    const job = await post("/v1/index-jobs", { path: path.value, collection: select.value, retry_errors: retry.checked });
    started();
    return `Index job ${job.id} started.`;
  };
  return actionForm(
    { title: h("h2", {}, "Index photos"), submit: "Start indexing" },
    start,
    h("div", { class: "row" }, field("Folder or photo on the server", path, "A path the server can read, e.g. /srv/photos/2024."), field("Into collection", select)),
    field("Try files that failed before again", retry),
  );
}

function jobsTable(list, changed) {
  if (!list.length) return h("p", {}, "No index jobs yet.");
  return dataTable("Index jobs", ["Job", "Collection", "Path", "State", "Progress", "Rate", "ETA", ""], [...list].reverse().map((j) => {
      const seconds = (Date.parse(j.updated_at) - Date.parse(j.created_at)) / 1000;
      const rate = seconds > 0 ? j.done / seconds : 0;
      const eta = j.state === "running" && rate > 0 && j.total ? Math.round((j.total - j.done) / rate) : null;
      const report = j.report ?? {};
      return h("tr", { "data-job": j.id, "data-state": j.state },
        h("th", { scope: "row" }, String(j.id)),
        h("td", {}, j.collection),
        h("td", { class: "path" }, pathText(j.path)),
        h("td", {}, j.state, j.error ? h("span", { class: "fine" }, ` (${j.error})`) : null,
          j.state === "done" ? h("span", { class: "fine" }, ` · ${report.indexed ?? 0} indexed, ${report.faces_found ?? 0} faces, ${report.errors ?? 0} failed`) : null),
        h("td", {}, h("progress", { max: Math.max(j.total, 1), value: j.done, "aria-label": `Job ${j.id} progress` }), ` ${j.done} / ${j.total}`),
        h("td", { class: "num" }, rate ? `${rate.toFixed(1)}/s` : "—"),
        h("td", { class: "num" }, eta === null ? "—" : `${eta} s`),
        h("td", {}, j.state === "running" || j.state === "queued"
          ? h("button", { type: "button", class: "secondary", onclick: async () => { await del(`/v1/index-jobs/${j.id}`).catch(() => {}); changed(); } }, "Cancel")
          : null),
      );
    }),
  );
}

function errorsTable(list) {
  if (!list.length) return h("p", {}, "No failed files.");
  return dataTable("Files that failed", ["File", "Collection", "Reason"], list.map((e) => h("tr", {}, h("td", { class: "path" }, pathText(e.path)), h("td", {}, e.collection ?? ""), h("td", {}, e.error))),
  );
}


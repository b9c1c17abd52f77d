// Audit (auditor, read-only): whether the hash chain is intact, the log with filters, its
// export, and the transparency report with searches per day by actor.

import { get, getPage } from "../api.js";
import { dataTable, field, fill, h, moreButton, percent, problem, svg, table, when } from "../dom.js";

const ACTIONS = ["search", "verify", "confirm", "reject", "view", "index", "export", "redact", "erase", "consent", "optout", "person", "face", "authenticate", "key", "collection", "models", "checkpoint"];
const SHOWN = 200; // entries a page; "Older entries" fetches the page before

export function render(main) {
  const chain = h("div", { class: "chain busy", role: "status" }, "Checking the audit chain…");
  const log = h("div");
  const report = h("div", {}, h("p", { class: "busy" }, "Loading…"));
  const inputs = {
    actor: h("input", { type: "text", name: "actor", autocomplete: "off" }),
    action: h("select", { name: "action" }, h("option", { value: "" }, "Any"), ACTIONS.map((a) => h("option", { value: a }, a))),
    purpose: h("input", { type: "text", name: "purpose", autocomplete: "off" }),
    since: h("input", { type: "date", name: "since" }),
    until: h("input", { type: "date", name: "until" }),
  };
  const exportLink = h("a", { class: "button secondary", href: "/v1/audit/export", download: "facefind-audit.json" }, "Export (JSON with hashes)");
  const query = () => ({
    actor: inputs.actor.value.trim(),
    action: inputs.action.value,
    purpose: inputs.purpose.value.trim(),
    since: inputs.since.value,
    until: inputs.until.value,
  });
  const load = async () => {
    const q = query();
    const range = Object.fromEntries(Object.entries({ since: q.since, until: q.until }).filter(([, v]) => v));
    exportLink.href = `/v1/audit/export${Object.keys(range).length ? `?${new URLSearchParams(range)}` : ""}`;
    log.replaceChildren(h("p", { class: "busy" }, "Loading…"));
    try {
      log.replaceChildren(...logTable(q, await getPage("/v1/audit", { ...q, limit: SHOWN })));
    } catch (err) {
      log.replaceChildren(problem(err));
    }
  };
  const filters = h(
    "form",
    { class: "card filters", onsubmit: (event) => { event.preventDefault(); load(); } },
    h("h2", {}, "Log"),
    h("div", { class: "row" }, field("Actor", inputs.actor), field("Action", inputs.action), field("Purpose contains", inputs.purpose),
      field("From", inputs.since), field("To", inputs.until)),
    h("div", { class: "toolbar" }, h("button", { type: "submit" }, "Filter"), exportLink),
  );
  const dpia = h("a", { class: "button secondary", href: "/v1/report/dpia?format=html", download: "facefind-dpia.html" }, "Impact-assessment pack (DPIA, HTML)");
  main.replaceChildren(h("h1", {}, "Audit"), chain, filters, log, h("h2", {}, "Transparency report"), report, h("h2", {}, "Impact assessment"),
    h("p", {}, "What a data protection impact assessment needs from the software: purposes, bases, volumes, accuracy at the operating point, oversight, and the questions only you can answer."), dpia);

  get("/v1/audit/verify").then(
    (v) => {
      chain.className = `chain ${v.ok ? "ok" : "broken"}`;
      chain.replaceChildren(v.ok
        ? `Audit chain intact: ${v.entries.toLocaleString("en")} entries verified (head ${v.head_hash ? v.head_hash.slice(0, 16) : "—"}…).`
        : h("div", {}, h("strong", {}, "Audit chain broken: "), `${v.problems.length} problem(s).`,
            h("ul", {}, v.problems.slice(0, 20).map((p) => h("li", {}, `entry ${p.seq}: ${p.problem}`)))));
    },
    (err) => chain.replaceChildren(problem(err)),
  );
  get("/v1/report").then((r) => fill(report, showReport(r)), (err) => report.replaceChildren(problem(err)));
  load();
}

function summarise(e) {
  const d = e.details ?? {};
  if (e.action === "search") {
    const faces = d.faces ?? [];
    const matched = faces.filter((f) => f.matches?.length).length;
    if (d.person !== undefined) return `photos of person ${d.person}: ${d.photos}`;
    return `${d.query ?? ""} · ${faces.length} face(s), ${matched} with candidates · ${d.searched ?? "?"} searched`;
  }
  if (e.action === "erase") return `${d.kind} ${d.target}: ${d.faces_removed} faces, ${d.images_removed} photos`;
  return Object.entries(d).slice(0, 4).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
}

// The newest page of entries that match, newest first, and a button for the page before it.
function logTable(query, { rows, more }) {
  if (!rows.length) return [h("p", {}, "No entries match.")];
  const row = (e) =>
    h("tr", { "data-action": e.action },
      h("th", { scope: "row" }, String(e.seq)),
      h("td", {}, when(e.at)),
      h("td", {}, e.actor),
      h("td", {}, e.action),
      h("td", {}, e.purpose ?? ""),
      h("td", { class: "details" }, summarise(e)),
    );
  const entries = dataTable("Audit log entries", ["#", "When", "Actor", "Action", "Purpose", "Details"], [...rows].reverse().map(row), { class: "log" });
  const count = h("p", { class: "fine" });
  let shown = rows.length;
  let oldest = rows[0].seq;
  const counted = (following) => (count.textContent = following ? `The newest ${shown} entries, newest first; export for all.` : `${shown} ${shown === 1 ? "entry" : "entries, newest first"}.`);
  counted(more);
  const older = async () => {
    const page = await getPage("/v1/audit", { ...query, limit: SHOWN, before_seq: oldest });
    entries.querySelector("tbody").append(...[...page.rows].reverse().map(row));
    shown += page.rows.length;
    if (page.rows.length) oldest = page.rows[0].seq;
    counted(page.more);
    return page.more;
  };
  return [count, entries, more ? moreButton("Older entries", older) : null].filter(Boolean);
}

function showReport(r) {
  const s = r.searches;
  const figures = [
    ["Searches", s.total],
    ["with candidates", `${s.with_match}${s.total ? ` (${percent(s.with_match / s.total)})` : ""}`],
    ["Verifications", r.verifications],
    ["Opt-outs in force", r.optouts.in_force],
    ["Erasures", r.erasures.total],
    ["Active consents", r.consents.active],
  ];
  return [
    h("p", { class: "fine" }, `Since ${when(r.since)}; generated ${when(r.generated_at)}; audit chain ${r.audit_intact ? "intact" : "BROKEN"}.`),
    h("dl", { class: "figures" }, figures.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, String(v))))),
    chart(s.per_day),
    Object.keys(s.by_purpose).length
      ? table({}, h("caption", {}, "Searches by purpose"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Purpose"), h("th", { scope: "col" }, "Searches"))),
          h("tbody", {}, Object.entries(s.by_purpose).map(([p, n]) => h("tr", {}, h("td", {}, p), h("td", { class: "num" }, String(n))))))
      : null,
  ];
}

// Searches per day, stacked by actor: an SVG built here (no chart library, nothing from a CDN).
function chart(perDay) {
  const days = Object.keys(perDay).sort();
  const actors = [...new Set(days.flatMap((d) => Object.keys(perDay[d])))].sort();
  if (!days.length) return h("p", {}, "No searches in this period.");
  const width = 640, height = 220, left = 40, bottom = 40, top = 10;
  const max = Math.max(...days.map((d) => Object.values(perDay[d]).reduce((a, b) => a + b, 0)));
  const barWidth = Math.min(48, (width - left) / days.length - 6);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const bars = [];
  days.forEach((day, i) => {
    let total = 0;
    const x = left + i * ((width - left) / days.length) + 3;
    actors.forEach((actor, a) => {
      const n = perDay[day][actor] ?? 0;
      if (!n) return;
      bars.push(svg("rect", { x, y: y(total + n), width: barWidth, height: y(total) - y(total + n), class: `series-${a % 6}` },
        svg("title", {}, `${day}: ${n} by ${actor}`)));
      total += n;
    });
    bars.push(svg("text", { x: x + barWidth / 2, y: height - bottom + 16, "text-anchor": "middle", class: "tick" }, day.slice(5)));
  });
  const axis = [svg("line", { x1: left, x2: width, y1: y(0), y2: y(0), class: "axis" }),
    svg("text", { x: left - 6, y: y(max) + 4, "text-anchor": "end", class: "tick" }, String(max)),
    svg("text", { x: left - 6, y: y(0) + 4, "text-anchor": "end", class: "tick" }, "0")];
  const description = days.map((d) => `${d}: ${Object.entries(perDay[d]).map(([a, n]) => `${n} by ${a}`).join(", ")}`).join("; ");
  return h("figure", { class: "chart" },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Searches per day by actor. ${description}` }, ...axis, ...bars),
    h("figcaption", {}, "Searches per day, by actor: ",
      actors.map((a, i) => h("span", { class: "legend" }, h("span", { class: `swatch series-${i % 6}`, "aria-hidden": "true" }), a))),
  );
}

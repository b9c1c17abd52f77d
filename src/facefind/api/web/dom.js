// Small helpers for building pages. Nodes are built with textContent, never innerHTML: names,
// purposes and file names come from users and are data, not markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

// Replace an element's children; like h, it skips null and false and flattens arrays.
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

// Tables scroll sideways inside their own box on narrow screens instead of widening the page.
export function table(attrs, ...children) {
  return h("div", { class: "scroll" }, h("table", attrs, ...children));
}

// A table of records: a caption for screen readers, column headers, and the rows (tr nodes).
export function dataTable(caption, headers, rows, attrs = {}) {
  return table(
    attrs,
    h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows),
  );
}

// A form in a card that runs `action(form)` when submitted; the line of text (or the node) it
// returns is shown under the form and announced, and an error is shown in its place.
export function actionForm({ title, submit, danger = false }, action, ...fields) {
  const message = h("div");
  return h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        message.replaceChildren(h("p", { class: "busy" }, "Working…"));
        try {
          const done = await action(event.target);
          message.replaceChildren(done instanceof Node ? done : h("p", { class: "ok", role: "status" }, done));
          say(done instanceof Node ? "Done" : done);
        } catch (err) {
          message.replaceChildren(problem(err));
          say(err.message);
        }
      },
    },
    title,
    fields,
    h("button", { type: "submit", class: danger ? "danger" : false }, submit),
    message,
  );
}

const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  append(el, children);
  return el;
}

let ids = 0;
// A labelled form field: the label's `for` points at the control, so screen readers name it.
export function field(label, control, hint) {
  control.id ||= `f${++ids}`;
  const hintEl = hint ? h("small", { id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control, hintEl);
}

// A message in the page's live region (read out by screen readers) and, for errors, in place.
export function say(text) {
  document.getElementById("status").textContent = text;
}

export function problem(err) {
  return h("p", { class: "problem", role: "alert" }, err.message ?? String(err));
}

// A file name as text that wraps after its '/' or '\' (a <wbr> each) rather than mid-word; the CSS's
// `overflow-wrap: anywhere` still breaks a single name longer than its box.
export function pathText(path) {
  return String(path).split(/(?<=[/\\])/).flatMap((part, i) => (i ? [h("wbr"), part] : [part]));
}

// A "More" button under a paged list: `load()` appends the next page and says whether more follow;
// the button goes away once nothing follows.
export function moreButton(label, load) {
  const button = h("button", { type: "button", class: "secondary more" }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const more = await load();
      if (more) button.disabled = false;
      else button.remove();
    } catch (err) {
      button.replaceWith(problem(err));
    }
  });
  return button;
}

export function crop(faceId, alt, size = 160) {
  const img = h("img", {
    class: "crop",
    src: `/v1/faces/${faceId}/crop?size=${size}`,
    alt,
    width: size,
    height: size,
    loading: "lazy",
  });
  img.addEventListener("error", () => img.classList.add("missing"));
  return img;
}

// "1 in 12,000", "1 in 43 million": how rare rates read to people, to two significant figures
// (more would claim a precision the calibration does not have).
export function oneIn(rate) {
  if (rate <= 0) return "below what the calibration can measure";
  if (rate >= 0.5) return `${Math.round(rate * 100)}%`;
  if (rate < 1e-9) return "under 1 in a billion";
  const n = Number((1 / rate).toPrecision(2));
  if (n >= 1e6) return `1 in ${Number((n / 1e6).toPrecision(2))} million`;
  return `1 in ${n.toLocaleString("en")}`;
}

export function percent(rate) {
  return `${(rate * 100).toLocaleString("en", { maximumSignificantDigits: 3 })}%`;
}

export function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\+00:00$|Z$/, " UTC") : "—";
}

export function download(name, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: name, class: "button secondary" }, `Download ${name}`);
  return link;
}

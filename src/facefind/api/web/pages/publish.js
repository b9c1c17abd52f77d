// Publish (publisher): copies of photos and videos to publish, every face hidden but those of
// persons whose consent covers publication. A photo: the redacted copy with every face boxed (kept
// green, hidden red, the reason as its title); click a box to switch it, drag on the photo to hide
// a face the detector missed, render again, download. A video, or a folder on the server: a job
// with its progress, rate and ETA, then its download. Redactions stay on the server 30 minutes
// after their last use (the API deletes them then), or until "Delete".

import { del, get, post } from "../api.js";
import { dataTable, field, fill, h, pathText, problem, say, when } from "../dom.js";

const REASONS = {
  consent: "kept: this person's consent covers publication",
  reviewer: "your decision",
  small: "hidden: too small to recognise",
  "no-consent": "hidden: no publication consent on record for this face",
};
const VIDEO = /\.(mp4|m4v|mov|mkv|webm)$/i;

export function render(main, context) {
  const file = h("input", { type: "file", name: "file", accept: "image/*,video/*,.mp4,.mov,.mkv,.webm", required: true });
  const purpose = h("input", { type: "text", name: "purpose", required: true, maxlength: 500, autocomplete: "off" });
  const style = h(
    "select",
    { name: "style" },
    h("option", { value: "blur" }, "Blur"),
    h("option", { value: "pixelate" }, "Pixelate"),
    h("option", { value: "fill" }, "Black box"),
  );
  const button = h("button", { type: "submit" }, "Redact");
  const editor = h("section", { "aria-label": "Redacted photo", class: "publish" });
  const jobs = h("div");

  let timer = null;
  const pollJobs = async () => {
    clearTimeout(timer);
    try {
      const list = (await get("/v1/redactions")).filter((r) => r.kind !== "photo");
      jobs.replaceChildren(jobsTable(list, pollJobs));
      if (list.some((r) => r.state === "running")) timer = setTimeout(pollJobs, 1000);
    } catch (err) {
      jobs.replaceChildren(problem(err));
    }
  };
  context.onLeave(() => clearTimeout(timer));

  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        const chosen = file.files[0];
        if (!chosen) return;
        const body = new FormData();
        body.append("file", chosen);
        body.append("purpose", purpose.value);
        body.append("style", style.value);
        button.disabled = true;
        editor.replaceChildren(h("p", { class: "busy" }, VIDEO.test(chosen.name) ? "Uploading…" : "Finding faces…"));
        say("Working");
        try {
          const made = await post("/v1/redactions", body);
          if (made.kind === "photo") {
            showPhoto(editor, made);
            say(`${made.summary.kept} kept, ${made.summary.hidden} hidden`);
          } else {
            editor.replaceChildren(h("p", { class: "ok", role: "status" }, `${made.name}: started; its progress is below.`));
            pollJobs();
          }
        } catch (err) {
          editor.replaceChildren(problem(err));
          say(err.message);
        } finally {
          button.disabled = false;
        }
      },
    },
    field("Photo or video", file, "A photo, or a short video (MP4, MOV, MKV, WebM); up to 32 MiB."),
    field("Purpose", purpose, "Why you publish it: kept in the audit log with your name and who was kept visible."),
    field("Hide faces by", style),
    button,
  );

  const path = h("input", { type: "text", name: "path", required: true, autocomplete: "off" });
  const collection = h("select", { name: "collection", required: true });
  const folderPurpose = h("input", { type: "text", name: "folder-purpose", required: true, maxlength: 500, autocomplete: "off" });
  const folderMessage = h("div");
  const folderForm = h(
    "form",
    {
      class: "card",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const made = await post("/v1/redactions/folders", {
            path: path.value, collection: collection.value, purpose: folderPurpose.value, style: style.value,
          });
          folderMessage.replaceChildren(h("p", { class: "ok", role: "status" }, `${made.name}: started.`));
          pollJobs();
        } catch (err) {
          folderMessage.replaceChildren(problem(err));
          say(err.message);
        }
      },
    },
    h("h2", {}, "A folder on the server"),
    h("div", { class: "row" },
      field("Folder", path, "Under an index root of the collection, e.g. /srv/photos/2024/summer."),
      field("Collection", collection)),
    field("Purpose", folderPurpose),
    h("button", { type: "submit" }, "Redact the folder"),
    folderMessage,
  );

  fill(
    main,
    h("h1", {}, "Publish"),
    h("p", {}, "A copy to publish: faces of people whose consent covers publication stay visible, every other face is hidden, ",
      "and location and other metadata are removed. Check every face before you publish: a face the detector missed is not hidden."),
    form,
    editor,
    h("h2", {}, "Videos and folders"),
    jobs,
    context.may("collections.read") ? folderForm : null,
  );
  if (context.may("collections.read")) {
    get("/v1/collections").then(
      (list) => collection.replaceChildren(...list.map((c) => h("option", { value: c.name }, c.name))),
      () => {},
    );
  }
  pollJobs();
}

function showPhoto(editor, made) {
  let current = made;
  let faces = made.faces.map((f) => ({ ...f }));
  const figure = h("div", { class: "query drawable" });
  const img = h("img", { alt: "The redacted copy", draggable: "false" });
  const legend = h("p", { class: "fine" });
  const renderButton = h("button", { type: "button", disabled: true }, "Render again");
  const download = h("a", { class: "button secondary", download: "" }, "Download");
  const message = h("div");

  const place = (el, box) => {
    el.style.left = `${(100 * box.x) / current.width}%`;
    el.style.top = `${(100 * box.y) / current.height}%`;
    el.style.width = `${(100 * box.w) / current.width}%`;
    el.style.height = `${(100 * box.h) / current.height}%`;
  };
  const drawBoxes = () => {
    figure.replaceChildren(img);
    faces.forEach((face, i) => {
      const reason = REASONS[face.reason] ?? face.reason;
      const box = h("button", {
        type: "button",
        class: `pbox ${face.decision}`,
        title: `${face.decision === "kept" ? "Kept" : "Hidden"}: ${reason}${face.person_id ? ` (person ${face.person_id}, consent ${face.consent_id})` : ""}. Click to ${face.decision === "kept" ? "hide" : "show"}.`,
        "aria-label": `Face ${i + 1}: ${face.decision}, ${reason}`,
        "aria-pressed": face.decision === "kept" ? "true" : "false",
        "data-box": `${face.box.x},${face.box.y},${face.box.w},${face.box.h}`,
        onclick: () => {
          face.decision = face.decision === "kept" ? "hidden" : "kept";
          face.reason = "reviewer";
          changed();
        },
      });
      place(box, face.box);
      figure.append(box);
    });
    const kept = faces.filter((f) => f.decision === "kept").length;
    legend.textContent = `${faces.length} face${faces.length === 1 ? "" : "s"}: ${kept} kept (green), ${faces.length - kept} hidden (red). ` +
      "Click a face to switch it; drag on the photo, or type a box below, to hide a face that has no box. " +
      `Kept on the server until ${when(current.expires_at)}.`;
  };
  const changed = () => {
    renderButton.disabled = false;
    download.classList.add("stale");
    drawBoxes();
  };
  const show = (result) => {
    current = result;
    faces = result.faces.map((f) => ({ ...f }));
    img.src = `${result.download}?render=${result.renders}`;
    download.href = result.download;
    download.setAttribute("download", result.name.replace(/\.[^.]*$/, "") + "-redacted" + (result.download ? extension(result) : ""));
    download.classList.remove("stale");
    renderButton.disabled = true;
    drawBoxes();
  };

  // Drag on the photo (not on a box) to add a box, in the photo's own pixels.
  let start = null;
  let ghost = null;
  const at = (event) => {
    const rect = img.getBoundingClientRect();
    const x = Math.min(Math.max(event.clientX - rect.left, 0), rect.width) * (current.width / rect.width);
    const y = Math.min(Math.max(event.clientY - rect.top, 0), rect.height) * (current.height / rect.height);
    return { x, y };
  };
  const spanned = (a, b) => ({ x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y) });
  figure.addEventListener("pointerdown", (event) => {
    if (event.target !== img || event.button !== 0) return;
    event.preventDefault();
    start = at(event);
    ghost = h("span", { class: "pbox drawing", "aria-hidden": "true" });
    place(ghost, { ...start, w: 0, h: 0 });
    figure.append(ghost);
    figure.setPointerCapture(event.pointerId);
  });
  figure.addEventListener("pointermove", (event) => {
    if (start) place(ghost, spanned(start, at(event)));
  });
  figure.addEventListener("pointerup", (event) => {
    if (!start) return;
    const box = spanned(start, at(event));
    start = null;
    ghost.remove();
    if (box.w >= 4 && box.h >= 4) {
      const round = (v) => Math.round(v * 10) / 10;
      faces.push({ box: { x: round(box.x), y: round(box.y), w: round(box.w), h: round(box.h) }, decision: "hidden", reason: "reviewer" });
      changed();
      say("Box added: hidden");
    }
  });

  // The same without a pointer: a box typed in the photo's pixels.
  const typed = h("input", { type: "text", name: "box", placeholder: "x,y,w,h", autocomplete: "off", oninput: () => typed.setCustomValidity(""), pattern: "\\s*\\d+(\\.\\d+)?(\\s*,\\s*\\d+(\\.\\d+)?){3}\\s*" });
  const addTyped = h("form", { class: "inline", onsubmit: (event) => {
    event.preventDefault();
    const [x, y, w, hh] = typed.value.split(",").map(Number);
    if (!(w >= 4 && hh >= 4 && x + w <= current.width && y + hh <= current.height)) {
      say(`A box is x,y,w,h inside the photo (${current.width} x ${current.height} pixels), at least 4 x 4`);
      typed.setCustomValidity("outside the photo or too small");
      typed.reportValidity();
      return;
    }
    typed.setCustomValidity("");
    faces.push({ box: { x, y, w, h: hh }, decision: "hidden", reason: "reviewer" });
    typed.value = "";
    changed();
    say("Box added: hidden");
  } }, h("label", {}, "Hide a box (x,y,w,h in the photo's pixels) ", typed), " ", h("button", { type: "submit", class: "secondary" }, "Add box"));

  renderButton.addEventListener("click", async () => {
    renderButton.disabled = true;
    message.replaceChildren(h("p", { class: "busy" }, "Rendering…"));
    try {
      const result = await post(`/v1/redactions/${current.id}/manifest`, { faces: faces.map(({ box, decision }) => ({ box, decision })) });
      show(result);
      // The server has the last word: a face of someone who opted out stays hidden.
      const kept = result.faces.filter((f) => f.decision === "kept").length;
      message.replaceChildren(h("p", { class: "ok", role: "status" }, `Rendered again: ${kept} kept, ${result.faces.length - kept} hidden.`));
    } catch (err) {
      renderButton.disabled = false;
      message.replaceChildren(problem(err));
      say(err.message);
    }
  });
  const remove = h("button", {
    type: "button",
    class: "secondary",
    onclick: async () => {
      await del(`/v1/redactions/${current.id}`).catch(() => {});
      editor.replaceChildren(h("p", { class: "ok", role: "status" }, "Deleted from the server."));
    },
  }, "Delete from the server");

  show(made);
  editor.replaceChildren(
    h("figure", {}, figure, h("figcaption", {}, legend)),
    addTyped,
    h("div", { class: "actions" }, renderButton, " ", download, " ", remove),
    message,
  );
}

function extension(result) {
  const match = /\.[^.]*$/.exec(result.name);
  return match && /^\.(jpe?g|png|webp|bmp|tiff?)$/i.test(match[0]) ? match[0].replace(/^\.jpeg$/i, ".jpg") : ".png";
}

function jobsTable(list, changed) {
  if (!list.length) return h("p", {}, "No video or folder redactions of yours on the server.");
  return dataTable("Video and folder redactions", ["Name", "State", "Progress", "Rate", "ETA", ""], list.map((r) => {
    const summary = r.summary ?? {};
    const counts = r.kind === "video"
      ? `${summary.frames ?? 0} frames, ${summary.tracks ?? 0} faces tracked: ${summary.kept ?? 0} kept, ${summary.hidden ?? 0} hidden`
      : `${summary.photos ?? 0} photos: ${summary.kept ?? 0} faces kept, ${summary.hidden ?? 0} hidden${r.errors.length ? `, ${r.errors.length} files failed` : ""}`;
    return h("tr", { "data-redaction": r.id, "data-state": r.state },
      h("th", { scope: "row", class: "path" }, pathText(r.name)),
      h("td", {}, r.state, r.error ? h("span", { class: "fine" }, ` (${r.error})`) : null,
        r.state === "done" ? h("span", { class: "fine" }, ` · ${counts}`) : null),
      h("td", {}, h("progress", { max: Math.max(r.total, 1), value: r.done, "aria-label": `${r.name} progress` }),
        ` ${Math.round((100 * r.done) / Math.max(r.total, 1))}%`),
      h("td", { class: "num" }, r.rate ? `${r.rate.toFixed(1)}/s` : "—"),
      h("td", { class: "num" }, r.eta_seconds === null || r.eta_seconds === undefined ? "—" : `${Math.round(r.eta_seconds)} s`),
      h("td", {},
        r.download ? h("a", { class: "button secondary", href: r.download, download: "" }, "Download") : null, " ",
        h("button", { type: "button", class: "secondary", onclick: async () => { await del(`/v1/redactions/${r.id}`).catch(() => {}); changed(); } },
          r.state === "running" ? "Cancel" : "Delete")),
    );
  }));
}

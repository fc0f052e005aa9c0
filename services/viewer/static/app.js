// The spatialvid viewer: dataset table, clip page (video + mask overlay + depth + 3D + timeline), report.
// Every URL is relative to <base href>, so the same files work locally and behind the gateway.
// three.js (scene.js) loads with the first clip page, so the table does not wait for it.
const loadScene = () => import("./scene.js");

// The app's state, readable from outside (the browser tests read it).
const state = (window.viewerState = {
  route: "", dataset: null, rows: [], total: 0,
  query: { sort: null, desc: false, filters: {}, offset: 0, limit: 50 },
  extraColumns: [], tableLoadedAt: null, clip: null, frame: -1, row: -1, interactiveAt: null, scene: null,
});

const main = document.getElementById("main");
const LABEL_COLOURS = ["#3b7dd8", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4d7c0f", "#be185d"];
let leaveClip = () => {};

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

function fmt(value) {
  if (value === null || value === undefined || value === "") return "";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(3);
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

function route() {
  leaveClip();
  const hash = location.hash || "#/";
  state.route = hash;
  if (hash.startsWith("#/clip/")) showClip(decodeURIComponent(hash.slice(7)));
  else if (hash === "#/report") showReport();
  else showDataset();
}

// -- dataset page ------------------------------------------------------------------------------------------
async function showDataset() {
  state.tableLoadedAt = null;
  if (!state.dataset) state.dataset = await api("api/dataset");
  const d = state.dataset;
  const counts = Object.entries(d.status_counts).map(([k, v]) => `${v} ${k}`).join(", ");
  const others = d.columns.map((c) => c.name).filter((n) => !d.shown.includes(n) && !state.extraColumns.includes(n));
  const addColumn = el("select", { id: "add-column", onchange: (e) => {
    if (e.target.value) { state.extraColumns.push(e.target.value); showDataset(); }
  } }, el("option", { value: "" }, "+ column"), others.map((n) => el("option", { value: n }, n)));
  main.replaceChildren(
    el("div", { class: "toolbar" },
      el("b", {}, `${d.total} clips`), el("span", { class: "muted" }, counts),
      el("span", { id: "matching", class: "muted" }), addColumn,
      el("span", { style: "margin-left:auto" }),
      el("button", { id: "prev", onclick: () => page(-1) }, "previous"),
      el("span", { id: "page-info" }),
      el("button", { id: "next", onclick: () => page(1) }, "next")),
    el("div", { class: "table-wrap" }, el("table", { class: "clips", id: "clips" }, el("thead"), el("tbody"))));
  renderHead();
  await loadRows();
}

function columns() {
  return [...state.dataset.shown, ...state.extraColumns];
}

function kindOf(name) {
  return (state.dataset.columns.find((c) => c.name === name) || {}).kind || "text";
}

function renderHead() {
  const q = state.query;
  const head = document.querySelector("#clips thead");
  const names = el("tr", {}, el("th", {}, ""), columns().map((name) => el("th", {
    "data-column": name,
    class: q.sort === name ? (q.desc ? "sorted-desc" : "sorted-asc") : "",
    title: "sort",
    onclick: () => { q.desc = q.sort === name ? !q.desc : false; q.sort = name; q.offset = 0; renderHead(); loadRows(); },
  }, name)));
  let timer = null;
  const filters = el("tr", { class: "filters" }, el("th", {}, ""), columns().map((name) => el("th", {},
    el("input", {
      "data-filter": name, value: q.filters[name] || "",
      placeholder: kindOf(name) === "number" ? ">1, 0..5" : "contains",
      oninput: (e) => {
        q.filters[name] = e.target.value; q.offset = 0;
        clearTimeout(timer); timer = setTimeout(loadRows, 250);
      },
    }))));
  head.replaceChildren(names, filters);
}

async function loadRows() {
  const q = state.query;
  const params = new URLSearchParams({ offset: q.offset, limit: q.limit });
  if (q.sort) { params.set("sort", q.sort); params.set("desc", q.desc); }
  for (const [name, expr] of Object.entries(q.filters)) if (expr.trim()) params.set(`f.${name}`, expr);
  let page;
  try {
    page = await api(`api/clips?${params}`);
  } catch (err) {
    document.getElementById("matching").textContent = String(err.message).slice(0, 200);
    return;
  }
  state.rows = page.rows; state.total = page.total;
  const body = document.querySelector("#clips tbody");
  if (!body) return;
  body.replaceChildren(...page.rows.map((row) => el("tr", {
    class: `status-${row.status}`, "data-id": row.id, onclick: () => { location.hash = `#/clip/${encodeURIComponent(row.id)}`; },
  }, el("td", {}, el("img", { class: "thumb", loading: "lazy", alt: "", src: `api/clips/${encodeURIComponent(row.id)}/thumb.jpg` })),
  columns().map((name) => cell(name, row)))));
  const last = Math.min(page.offset + page.rows.length, page.total);
  document.getElementById("page-info").textContent = page.total ? `${page.offset + 1}-${last} of ${page.total}` : "none";
  document.getElementById("matching").textContent = page.total === state.dataset.total ? "" : `${page.total} matching`;
  document.getElementById("prev").disabled = page.offset === 0;
  document.getElementById("next").disabled = last >= page.total;
  state.tableLoadedAt = performance.now();
}

function cell(name, row) {
  const value = row[name];
  if (name === "id") return el("td", {}, el("a", { href: `#/clip/${encodeURIComponent(row.id)}` }, row.id));
  if (name === "status") return el("td", {}, el("span", { class: `badge ${value}` }, value));
  if (name === "reasons" || name === "labels" || name === "qc_flags") return el("td", { class: "wrap" }, fmt(value));
  return el("td", { class: typeof value === "number" ? "num" : "" }, fmt(value));
}

function page(direction) {
  const q = state.query;
  q.offset = Math.max(0, q.offset + direction * q.limit);
  loadRows();
}

// -- report ------------------------------------------------------------------------------------------------
function showReport() {
  main.replaceChildren(el("iframe", { class: "report", id: "report", src: "report", title: "statistics report" }));
}

// -- clip page ---------------------------------------------------------------------------------------------
function rowForFrame(indexes, frame) {
  // The annotation row of a clip frame: the last annotated frame at or before it.
  if (!indexes.length) return frame;
  let lo = 0, hi = indexes.length - 1;
  if (frame <= indexes[0]) return 0;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (indexes[mid] <= frame) lo = mid; else hi = mid - 1;
  }
  return lo;
}

class FrameImages {
  // Per-frame PNGs (depth or mask), fetched once each, nearest-first from the frame on screen.
  constructor(kind, clipId, count) {
    this.kind = kind; this.clipId = clipId; this.count = count; this.images = new Map(); this.pending = new Set();
  }
  get(row, onload) {
    if (row < 0 || row >= this.count) return null;
    const image = this.images.get(row);
    if (image && image.complete && image.naturalWidth) return image;
    if (!image) {
      const img = new Image();
      img.onload = () => onload && onload(row);
      img.src = `api/clips/${encodeURIComponent(this.clipId)}/${this.kind}/${row}.png`;
      this.images.set(row, img);
    }
    return null;
  }
  prefetch(from, ahead) {
    for (let r = from; r < Math.min(this.count, from + ahead); r++) this.get(r);
  }
}

function showClip(clipId) {
  let alive = true;
  leaveClip = () => { alive = false; if (state.scene) state.scene.dispose(); state.scene = null; leaveClip = () => {}; };
  state.clip = null; state.frame = -1; state.row = -1; state.interactiveAt = null;
  main.replaceChildren(el("p", { class: "muted" }, "loading clip..."));
  api(`api/clips/${encodeURIComponent(clipId)}`).then((detail) => alive && renderClip(detail, () => alive));
}

function renderClip(detail, alive) {
  state.clip = detail;
  const aspect = `${detail.width} / ${detail.height}`;
  const video = el("video", { id: "video", src: detail.video_url, controls: "", muted: "", playsinline: "", loop: "", preload: "auto" });
  video.muted = true;
  const overlay = el("canvas", { id: "overlay", class: "overlay", width: detail.width, height: detail.height });
  const depthCanvas = el("canvas", { id: "depth", width: detail.width, height: detail.height });
  const maskToggle = el("input", { type: "checkbox", id: "mask-toggle", checked: "" });
  const frameLabel = el("span", { id: "frame-label", class: "muted" });
  const timeline = el("div", { id: "timeline" });
  const scene3d = el("div", { id: "scene3d" });
  const badge = el("span", { class: `badge ${detail.status}` }, detail.status);

  main.replaceChildren(
    el("div", { class: "toolbar" }, el("a", { href: "#/" }, "\u2190 clips"), el("b", {}, detail.id), badge,
      el("span", { class: "muted" }, detail.reasons || ""),
      el("span", { class: "muted" }, `${detail.num_frames} frames at ${fmt(detail.fps)} fps, ${detail.width}x${detail.height}`)),
    el("div", { class: "clip-grid" },
      el("div", { class: "panel" }, el("h3", {}, "video"),
        el("div", { class: "frame-box", style: `aspect-ratio:${aspect}` }, video, overlay),
        el("div", { class: "controls" },
          el("label", {}, maskToggle, ` dynamic mask (${detail.mask_frames ? detail.mask_frames + " frames" : "none"})`),
          frameLabel),
        timeline),
      el("div", { class: "panel" }, el("h3", {}, "depth"),
        el("div", { class: "frame-box depth-box", style: `aspect-ratio:${aspect}` }, depthCanvas),
        el("p", { class: "muted", id: "depth-note" }, depthNote(detail))),
      el("div", { class: "panel" }, el("h3", {}, "camera path and points"), scene3d),
      el("div", { class: "panel" }, el("h3", {}, "annotations"), facts(detail))));

  renderTimeline(timeline, detail, video);
  const masks = new FrameImages("mask", detail.id, detail.mask_frames);
  const depths = new FrameImages("depth", detail.id, detail.depth_valid ? detail.depth_frames : 0);
  const overlayCtx = overlay.getContext("2d");
  const depthCtx = depthCanvas.getContext("2d");
  const playhead = timeline.querySelector(".playhead");

  const draw = (frame) => {
    if (!alive()) return;
    const row = rowForFrame(detail.indexes, frame);
    state.frame = frame; state.row = row;
    frameLabel.textContent = `frame ${frame} / ${detail.num_frames}`;
    playhead.style.left = `${(100 * (frame + 0.5)) / Math.max(1, detail.num_frames)}%`;
    overlayCtx.clearRect(0, 0, overlay.width, overlay.height);
    if (maskToggle.checked) {
      const image = masks.get(row, (r) => r === state.row && draw(state.frame));
      if (image) overlayCtx.drawImage(image, 0, 0, overlay.width, overlay.height);
    }
    const depth = depths.get(row, (r) => r === state.row && draw(state.frame));
    if (depth) { depthCtx.clearRect(0, 0, depthCanvas.width, depthCanvas.height); depthCtx.drawImage(depth, 0, 0, depthCanvas.width, depthCanvas.height); }
    masks.prefetch(row + 1, 12); depths.prefetch(row + 1, 12);
    if (state.scene) state.scene.setFrame(row);
  };
  const frameAt = (seconds) => Math.min(detail.num_frames - 1, Math.max(0, Math.round(seconds * detail.fps)));
  const onVideoFrame = (_now, meta) => {
    if (!alive()) return;
    draw(frameAt(meta.mediaTime));
    video.requestVideoFrameCallback(onVideoFrame);
  };
  video.requestVideoFrameCallback(onVideoFrame);
  video.addEventListener("seeked", () => draw(frameAt(video.currentTime)));
  video.addEventListener("loadeddata", () => { draw(frameAt(video.currentTime)); state.interactiveAt = state.interactiveAt || performance.now(); });
  maskToggle.addEventListener("change", () => draw(frameAt(video.currentTime)));
  timeline.addEventListener("click", (e) => {
    const box = timeline.getBoundingClientRect();
    video.currentTime = (((e.clientX - box.left) / box.width) * detail.num_frames) / detail.fps;
  });
  draw(0);

  if (detail.c2w.length) {
    const points = fetch(`api/clips/${encodeURIComponent(detail.id)}/points.bin`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.arrayBuffer() : null));
    loadScene().then(({ ClipScene }) => {
      if (!alive()) return;
      state.scene = new ClipScene(scene3d, detail);
      if (state.row >= 0) state.scene.setFrame(state.row);
      return points.then((buffer) => { if (buffer && alive() && state.scene) state.scene.setPoints(buffer); });
    });
  } else {
    scene3d.append(el("p", { class: "muted", style: "padding:10px" }, "no camera poses for this clip"));
  }
  video.play().catch(() => {});
}

function depthNote(detail) {
  if (!detail.depth_frames) return "no depth for this clip";
  if (!detail.depth_valid) return (detail.stages.depth && detail.stages.depth.note) || "no valid depth";
  return "inverse depth, near is warm, far is cold; grey where depth is invalid (sky, moving objects, no parallax)";
}

function renderTimeline(timeline, detail, video) {
  const n = Math.max(1, detail.num_frames);
  const colours = new Map();
  detail.segments.forEach((segment, i) => {
    const text = segment.labels.join(" + ");
    if (!colours.has(text)) colours.set(text, LABEL_COLOURS[colours.size % LABEL_COLOURS.length]);
    timeline.append(el("div", {
      class: "segment", "data-labels": text, title: `${text}: frames ${segment.start}-${segment.end}`,
      style: `left:${(100 * segment.start) / n}%;width:${(100 * (segment.end - segment.start)) / n}%;background:${colours.get(text)}`,
    }, text));
  });
  if (!detail.segments.length) timeline.append(el("span", { class: "muted", style: "padding:12px;display:block" }, "no camera-motion labels"));
  timeline.append(el("div", { class: "playhead" }));
}

function facts(detail) {
  const caption = detail.caption || {};
  const trajectory = Object.entries(detail.trajectory).map(([k, v]) => [k, fmt(v)]);
  const flags = detail.qc_flags ? String(detail.qc_flags).split(/[,;]\s*/).filter(Boolean) : [];
  const stageRows = Object.entries(detail.stages).map(([name, s]) =>
    [name, `${s.state}, ${fmt(s.seconds)} s${s.note ? " - " + s.note : ""}${s.error ? " - " + s.error : ""}`]);
  const list = (pairs) => el("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  return el("div", { id: "facts" },
    el("h3", {}, "caption"),
    caption.SceneSummary ? list([["summary", caption.SceneSummary], ["camera", caption.CamMotion || ""],
      ["scene", caption.SceneDesc || ""], ["tags", (caption.SceneTags || []).join(", ")]])
      : el("p", { class: "muted" }, "no caption"),
    el("h3", {}, "trajectory"), trajectory.length ? list(trajectory) : el("p", { class: "muted" }, "no camera poses"),
    el("h3", {}, "quality flags"),
    el("div", { id: "qc-flags" }, flags.length ? flags.map((f) => el("span", { class: "flag" }, f)) : el("span", { class: "muted" }, "none")),
    el("h3", {}, "stages"), list(stageRows),
    el("h3", {}, "metadata"), list(Object.entries(detail.row).map(([k, v]) => [k, fmt(v)])));
}

window.addEventListener("hashchange", route);
route();

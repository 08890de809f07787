// The page: open or drop a sketch, paint hints, see the draft (and refined) colouring after each
// stroke. Talks to the server through GET /api/models and POST /api/colorize only.
import { HintLayer } from "./hints.js";

const $ = (id) => document.getElementById(id);
const sketchCanvas = $("sketch");
const hints = new HintLayer($("hints"));
const state = { file: null, stem: "sketch", models: null, refine: false, seq: 0, timer: 0, results: {}, recent: [], lastTool: "stroke" };
const DEBOUNCE_MS = 250;
const BUSY_RETRIES = 3; // a 503 (server busy) is retried after its Retry-After this many times in all

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function tool() {
  return document.querySelector('input[name="tool"]:checked').value;
}

function setTool(value) {
  document.querySelector(`input[name="tool"][value="${value}"]`).checked = true;
  document.body.classList.toggle("pick", value === "pick");
}

async function loadModels() {
  const answer = await fetch("/api/models").then((r) => r.json());
  state.models = answer;
  state.refine = answer.models.some((m) => m.role === "refine");
  const parts = answer.models.map((m) => `${m.role}: ${m.name} · ${m.size} px · step ${m.step} (${m.weights})`);
  $("models").textContent = `${parts.join(" | ")} | ${answer.device}` + (answer.takes_hints ? "" : " | these models take no hints");
  $("final-panel").hidden = !state.refine;
  $("draft-caption").textContent = `draft (${answer.models[0].name})`;
  if (state.refine) $("final-caption").textContent = `refined (${answer.models[1].name})`;
  $("reference-group").hidden = !answer.models.some((m) => m.needs_palette);
  if (answer.palette_problem) status(answer.palette_problem, true);
}

async function openSketch(file) {
  if (!file) return;
  const limit = state.models ? state.models.max_upload_mb : Infinity;
  if (file.size > limit * 2 ** 20) {
    status(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB, over this server's upload limit of ${limit} MiB`, true);
    return;
  }
  const url = URL.createObjectURL(file);
  const image = new Image();
  image.src = url;
  try {
    await image.decode();
  } catch {
    status(`${file.name} is not an image the browser can show`, true);
    return;
  } finally {
    URL.revokeObjectURL(url);
  }
  const { naturalWidth: width, naturalHeight: height } = image;
  const maxPixels = state.models ? state.models.max_pixels : Infinity;
  if (width * height > maxPixels) {  // the server would answer 413: say so before uploading
    status(`${file.name} is ${width}x${height} (${(width * height / 1e6).toFixed(0)} MP), over this server's limit of ${maxPixels / 1e6} MP (pipe serve --max-pixels)`, true);
    return;
  }
  sketchCanvas.width = width;
  sketchCanvas.height = height;
  sketchCanvas.getContext("2d").drawImage(image, 0, 0);
  hints.reset(width, height);
  state.file = file;
  state.stem = file.name.replace(/\.[^.]*$/, "") || "sketch";
  const brush = Math.max(2, Math.round(Math.max(width, height) / 64));
  $("size").max = Math.max(200, brush * 4);
  setBrush(brush);
  for (const id of ["sketch", "hints"]) $(id).hidden = false;
  $("drop-note").hidden = true;
  $("download-hints").classList.remove("disabled");
  for (const id of ["draft", "final"]) $(id).hidden = true;
  updateButtons();
  update();
}

function setBrush(size) {
  $("size").value = size;
  $("size-value").textContent = $("size").value;
}

function point(event) {
  const rect = hints.canvas.getBoundingClientRect();
  return { x: ((event.clientX - rect.left) * hints.canvas.width) / rect.width, y: ((event.clientY - rect.top) * hints.canvas.height) / rect.height };
}

function addRecent(colour) {
  state.recent = [colour, ...state.recent.filter((c) => c !== colour)].slice(0, 10);
  const box = $("recent");
  box.replaceChildren(...state.recent.map((c) => {
    const button = document.createElement("button");
    button.style.background = c;
    button.title = c;
    button.addEventListener("click", () => { $("colour").value = c; });
    return button;
  }));
}

function updateButtons() {
  $("undo").disabled = !hints.ops.length;
  $("redo").disabled = !hints.undone.length;
}

function edited() {
  updateButtons();
  scheduleUpdate();
}

function scheduleUpdate() {
  clearTimeout(state.timer);
  state.timer = setTimeout(update, DEBOUNCE_MS);
}

async function colourRequest(stage, hintBlob) {
  const form = new FormData();
  form.append("sketch", state.file, state.file.name);
  if (hintBlob) form.append("hints", hintBlob, "hints.png");
  const reference = $("reference").files[0];
  if (reference && !$("reference-group").hidden) form.append("reference", reference, reference.name);
  form.append("stage", stage);
  for (let attempt = 1; ; attempt++) {
    const response = await fetch("/api/colorize", { method: "POST", body: form });
    if (response.ok) {
      const headers = response.headers;
      return { blob: await response.blob(), ms: headers.get("X-Pipe-Milliseconds"), batch: headers.get("X-Pipe-Batch-Size"), scaledFrom: headers.get("X-Pipe-Scaled-From") };
    }
    // Every refusal is JSON {"error": "..."}; anything else (a proxy's page) shows its status text.
    const body = await response.json().catch(() => ({ error: response.statusText }));
    const wait = Number(response.headers.get("Retry-After") || 0);
    if (response.status === 503 && wait > 0 && attempt < BUSY_RETRIES) {
      status(`${body.error} (retrying in ${wait} s)`, true);
      await new Promise((done) => setTimeout(done, wait * 1000));
      continue;
    }
    throw new Error(`${response.status}: ${body.error}`);
  }
}

async function update() {
  if (!state.file) return;
  const seq = ++state.seq;
  const useHints = $("source").value === "user" && !hints.empty;
  document.body.dataset.busy = "1";
  status("colouring…");
  try {
    const hintBlob = useHints ? await hints.toBlob() : null;
    const stages = state.refine ? ["draft", "final"] : ["draft"];
    const answers = await Promise.all(stages.map((stage) => colourRequest(stage, hintBlob)));
    if (seq !== state.seq) return; // a newer edit is on its way
    stages.forEach((stage, i) => showResult(stage, answers[i].blob));
    const times = answers.map((a, i) => `${stages[i]} ${a.ms} ms (batch of ${a.batch})`).join(", ");
    const scaled = answers[0].scaledFrom ? ` (your ${answers[0].scaledFrom} sketch was coloured at the server's ${state.models.max_side} px long side)` : "";
    status(`coloured with ${useHints ? "your hints" : "no hints"}: ${times}${scaled}`);
    document.body.dataset.results = String(Number(document.body.dataset.results || 0) + 1);
  } catch (error) {
    if (seq === state.seq) status(String(error.message || error), true);
  } finally {
    if (seq === state.seq) delete document.body.dataset.busy;
  }
}

function showResult(stage, blob) {
  const image = $(stage);
  if (state.results[stage]) URL.revokeObjectURL(state.results[stage].url);
  const url = URL.createObjectURL(blob);
  state.results[stage] = { blob, url };
  image.src = url;
  image.hidden = false;
  const link = $("download-result");
  link.href = url;
  link.download = `${state.stem}-${stage === "final" ? "refined" : "draft"}.png`;
  link.classList.remove("disabled");
}

function pick(event) {
  if (tool() !== "pick") return;
  const image = event.currentTarget;
  const rect = image.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) * image.naturalWidth) / rect.width);
  const y = Math.floor(((event.clientY - rect.top) * image.naturalHeight) / rect.height);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 1;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, x, y, 1, 1, 0, 0, 1, 1);
  const [r, g, b] = ctx.getImageData(0, 0, 1, 1).data;
  const colour = "#" + [r, g, b].map((v) => v.toString(16).padStart(2, "0")).join("");
  $("colour").value = colour;
  addRecent(colour);
  setTool(state.lastTool);
  status(`picked ${colour}`);
}

function bindCanvas() {
  const canvas = hints.canvas;
  canvas.addEventListener("pointerdown", (event) => {
    const kind = tool();
    if (!state.file || kind === "pick" || event.button !== 0) return;
    const size = Number($("size").value);
    if (kind === "point") {
      hints.begin("stroke", $("colour").value, size, point(event));
      hints.end();
      addRecent($("colour").value);
      edited();
      return;
    }
    canvas.setPointerCapture(event.pointerId);
    hints.begin(kind === "erase" ? "erase" : "stroke", $("colour").value, size, point(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!hints.current) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
    for (const e of events.length ? events : [event]) hints.extend(point(e));
  });
  const finish = () => {
    const op = hints.end();
    if (!op) return;
    if (op.kind === "stroke") addRecent(op.colour);
    edited();
  };
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
}

function saveBlob(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function bindControls() {
  $("file").addEventListener("change", (e) => openSketch(e.target.files[0]));
  $("size").addEventListener("input", (e) => setBrush(e.target.value));
  $("undo").addEventListener("click", () => hints.undo() && edited());
  $("redo").addEventListener("click", () => hints.redo() && edited());
  $("clear").addEventListener("click", () => { hints.clear(); edited(); });
  $("source").addEventListener("change", () => { document.body.classList.toggle("no-hints", $("source").value === "none"); update(); });
  $("reference").addEventListener("change", () => update());
  $("download-hints").addEventListener("click", async () => { if (state.file) saveBlob(await hints.toBlob(), `${state.stem}-hints.png`); });
  for (const id of ["draft", "final"]) $(id).addEventListener("click", pick);
  document.querySelectorAll('input[name="tool"]').forEach((input) => input.addEventListener("change", () => {
    if (tool() !== "pick") state.lastTool = tool();
    setTool(tool());
  }));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement && e.target.type !== "radio") return;
    const key = e.key.toLowerCase();
    if ((e.ctrlKey || e.metaKey) && key === "z") { e.preventDefault(); (e.shiftKey ? hints.redo() : hints.undo()) && edited(); }
    else if ((e.ctrlKey || e.metaKey) && key === "y") { e.preventDefault(); hints.redo() && edited(); }
    else if (key === "[" || key === "]") setBrush(Math.max(1, Number($("size").value) + (key === "]" ? 1 : -1) * Math.max(1, Math.round($("size").value / 8))));
  });
  const stage = $("stage");
  document.addEventListener("dragover", (e) => { e.preventDefault(); stage.classList.add("dragging"); });
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) stage.classList.remove("dragging"); });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    stage.classList.remove("dragging");
    openSketch(e.dataTransfer.files[0]);
  });
}

bindCanvas();
bindControls();
loadModels().catch((error) => status(`cannot reach the server: ${error}`, true));

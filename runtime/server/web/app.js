// The page at /: pick a picture, a prompt and a preset, watch the job, list recent jobs.
// Served under a strict Content-Security-Policy: no inline script, style or handler attributes,
// and every piece of data reaches the page as text (textContent, never innerHTML).
"use strict";

const $ = (id) => document.getElementById(id);
const SEED_MAX = 4294967295; // 2^32 - 1: presets.toml's seed_max
const NUMBERS = ["height", "width", "frames", "steps", "guidance", "fps", "decode_chunk"];
const FROM_PRESET = ["height", "width", "frames", "steps"];
// share of the bar for each stage: encode, denoise, decode, write
const STAGES = { encode: [0, 5], denoise: [5, 90], decode: [90, 97], write: [97, 100] };
const RANDOM_WEIGHTS = "The demo model has random weights: its output is noise. " +
  "Serve a real model (i2vkit serve --model wan2.2-ti2v-5b ...) for real videos.";

const state = {
  image: null, current: null, source: null, loaded: false, loading: null,
  info: null, presets: [], hasToken: false, items: new Map(),
};

class AuthError extends Error {}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function duration(seconds) {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    $("login").hidden = false;
    throw new AuthError("an API token is required: enter it and sign in");
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    const fits = body?.fits?.length ? "\nsettings that fit: " + body.fits.join(" | ") : "";
    const detail = body?.detail;
    throw new Error((detail ? (typeof detail === "string" ? detail : JSON.stringify(detail)) : response.statusText) + fits);
  }
  return body;
}

async function login() {
  const token = $("token").value;
  if (!token) return;
  const form = new FormData();
  form.append("token", token);
  await api("/v1/login", { method: "POST", body: form });
  $("token").value = "";
  $("login").hidden = true;
}

function setError(message) {
  $("status").className = "error";
  $("status").textContent = message;
}

// ---- what the server runs and offers -------------------------------------------------------

async function loadInfo() {
  const info = await api("/v1/info");
  state.info = info;
  $("model").textContent = info.model;
  $("model").title = info.model_note || "the model this server runs";
  const devices = [...new Set(info.devices || [])];
  $("devices").textContent = (devices.length ? devices.join(", ") : "no device loaded") + (info.dtype ? ` · ${info.dtype}` : "");
  if (info.random_weights === true) {
    $("notice").textContent = RANDOM_WEIGHTS + (info.model_note ? ` (${info.model_note})` : "");
    $("notice").hidden = false;
  } else {
    $("notice").hidden = true;
  }
  // what this model takes (its size multiple, Wan's 4k+1 frames, its schedulers): the form's
  // own checks then match the server's instead of refusing valid values
  const s = info.settings;
  for (const id of ["height", "width"]) {
    Object.assign($(id), { step: s.size_multiple, min: Math.ceil(s.size_min / s.size_multiple) * s.size_multiple, max: s.size_max });
  }
  const firstFrames = s.frames_step > 1 ? s.frames_step + 1 : s.frames_min;
  Object.assign($("frames"), { step: s.frames_step, min: firstFrames, max: s.frames_max });
  $("steps").max = s.steps_max;
  $("scheduler").replaceChildren(new Option(`model default (${s.scheduler})`, ""), ...s.schedulers.map((name) => new Option(name, name)));
  // whether the server wants a token: the API snippets then show where it goes
  state.hasToken = (await fetch("/v1/info", { credentials: "omit" })).status === 401;
}

function presetLabel(p) {
  const parts = [`${p.name}: ${p.height}x${p.width}, ${p.frames} frames, ${p.steps} steps`];
  if (p.strategy) parts.push(`memory ${p.strategy}` + (p.estimate_gib != null ? ` (~${p.estimate_gib} GiB)` : ""));
  else if (p.estimate_gib != null) parts.push(`~${p.estimate_gib} GiB`);
  if (p.seconds_estimate != null) parts.push(`~${duration(p.seconds_estimate)}`);
  return parts.join(", ") + (p.fits ? "" : " (does not fit)");
}

// the presets with their estimates; again after each job (the time estimates learn from them),
// then updated in place: the choice and the fields stay as the user left them
async function loadPresets(first = true) {
  const presets = await api("/v1/presets");
  state.presets = presets;
  const select = $("preset");
  const same = select.options.length === presets.length && presets.every((p, i) => select.options[i].value === p.name);
  if (!same) select.replaceChildren(...presets.map((p) => new Option(p.name, p.name)));
  presets.forEach((p, i) => {
    const option = select.options[i];
    option.text = presetLabel(p);
    option.disabled = !p.fits;
    option.title = p.fits ? (p.warning || "") : p.reason;
    if (first || !same) option.selected = p.default && p.fits;
  });
  if (select.selectedOptions[0]?.disabled) {
    const fit = presets.find((p) => p.fits);
    if (fit) select.value = fit.name;
  }
  const reasons = presets.filter((p) => !p.fits).map((p) => `${p.name}: ${p.reason}`);
  $("preset-reason").textContent = reasons.join("\n");
  if (first) fill(defaults(), NUMBERS);
  presetChosen();
}

// the values a job gets for a field the form leaves as it is: the preset's, then the model's
function defaults(name = $("preset").value) {
  const p = state.presets.find((x) => x.name === name) || {};
  const s = state.info?.settings || {};
  return { height: p.height, width: p.width, frames: p.frames, steps: p.steps,
    guidance: s.guidance, fps: s.fps, decode_chunk: s.decode_chunk };
}

function fill(values, names) {
  for (const name of names) $(name).value = values[name] ?? "";
}

function presetChosen() {
  const p = state.presets.find((x) => x.name === $("preset").value);
  $("preset-warning").textContent = p?.warning || "";
  $("preset-warning").hidden = !p?.warning;
  snippets();
}

async function load() {
  // one load at a time: the 2 s poll and a sign-in may both ask
  state.loading ||= (async () => {
    await loadInfo();
    await loadPresets();
    state.loaded = true;
    await loadJobs();
  })().finally(() => { state.loading = null; });
  return state.loading;
}

// ---- the form --------------------------------------------------------------------------------

// [name, value] for each field the job needs: the preset, then only what differs from it
function fields() {
  const out = $("preset").value ? [["preset", $("preset").value]] : [];
  for (const name of ["prompt", "negative_prompt"]) if ($(name).value) out.push([name, $(name).value]);
  const base = defaults();
  for (const name of NUMBERS) {
    const value = $(name).value;
    if (value !== "" && Number(value) !== Number(base[name])) out.push([name, value]);
  }
  const scheduler = $("scheduler").value;
  if (scheduler && scheduler !== state.info?.settings?.scheduler) out.push(["scheduler", scheduler]);
  if (!$("random-seed").checked && $("seed").value !== "") out.push(["seed", $("seed").value]);
  return out;
}

function randomSeed() {
  const seed = crypto.getRandomValues(new Uint32Array(1))[0]; // uniform in [0, 2^32 - 1]
  return Math.min(seed, SEED_MAX);
}

function choose(file) {
  if (!file) return;
  state.image = file;
  if ($("preview").src.startsWith("blob:")) URL.revokeObjectURL($("preview").src);
  $("preview").src = URL.createObjectURL(file);
  $("preview").hidden = false;
  $("submit").disabled = false;
  snippets();
}

async function submit(event) {
  event.preventDefault();
  if (!$("form").checkValidity()) {
    $("advanced").open = true; // an invalid field may be in the closed section
    $("form").reportValidity();
    return;
  }
  $("submit").disabled = true;
  try {
    if ($("token").value) await login();
    if (!state.loaded) await load();
    if ($("random-seed").checked) $("seed").value = String(randomSeed());
    const form = new FormData();
    form.append("image", state.image, state.image.name || "image.png");
    for (const [name, value] of fields()) form.append(name, value);
    if ($("random-seed").checked) form.append("seed", $("seed").value);
    const job = await api("/v1/jobs", { method: "POST", body: form });
    follow(job);
    loadJobs();
  } catch (error) {
    setError(error.message);
  } finally {
    $("submit").disabled = !state.image;
  }
}

// the settings of an earlier job back in the form (its picture stays the one chosen here)
function reuse(job) {
  const s = job.settings;
  const same = state.presets.find((p) => p.fits && FROM_PRESET.every((k) => p[k] === s[k]));
  if (same) $("preset").value = same.name;
  presetChosen();
  fill(s, NUMBERS);
  const own = s.scheduler !== state.info?.settings?.scheduler && [...$("scheduler").options].some((o) => o.value === s.scheduler);
  $("scheduler").value = own ? s.scheduler : ""; // the model's default stays "model default"
  $("prompt").value = s.prompt || "";
  $("negative_prompt").value = s.negative_prompt || "";
  $("seed").value = String(s.seed);
  $("random-seed").checked = false;
  $("advanced").open = true;
  snippets();
  $("prompt").focus();
}

// ---- the job being watched -------------------------------------------------------------------

function setBar(percent) {
  $("bar").firstElementChild.style.width = percent + "%"; // CSSOM, which the CSP allows
  $("bar").setAttribute("aria-valuenow", String(Math.round(percent)));
}

function queued(job) {
  const q = job.queue;
  if (!q) return "queued";
  const place = q.position === 1 ? "next in the queue" : `position ${q.position} in the queue`;
  return `queued: ${place}` + (q.wait_seconds != null ? ` · about ${duration(q.wait_seconds)} wait` : "");
}

function show(job) {
  const p = job.progress;
  let percent = 0, text = job.status;
  if (job.status === "queued") text = queued(job);
  if (job.status === "running" && p && STAGES[p.stage]) {
    const [lo, hi] = STAGES[p.stage];
    percent = lo + (hi - lo) * (p.total ? p.step / p.total : 0);
    text = p.stage === "denoise"
      ? `denoising step ${p.step}/${p.total}` + (p.eta_seconds != null ? ` · about ${duration(p.eta_seconds)} left` : "")
      : p.stage + "…";
  }
  if (job.status === "succeeded") {
    percent = 100;
    text = `done in ${job.result.seconds.total.toFixed(1)} s · ${job.result.frames} frames`;
    if ($("video").getAttribute("src") !== job.urls.video) {
      $("video").src = job.urls.video;
      $("video").play().catch(() => {});
    }
    $("video").hidden = false;
    $("download").href = job.urls.video;
    $("download").hidden = false;
  }
  setBar(percent);
  $("status").className = job.status === "failed" ? "error" : "";
  $("status").textContent = job.status === "failed" ? `failed (${job.cause}): ${job.error}` : text;
  const s = job.settings;
  $("job-info").textContent = `job ${job.id.slice(0, 8)} · seed ${s.seed} · ${s.height}x${s.width}, ${s.frames} frames, ${s.steps} steps`;
  $("cancel").hidden = !["queued", "running"].includes(job.status);
}

function follow(job) {
  if (state.source) state.source.close();
  state.current = job.id;
  $("video").hidden = true;
  $("video").removeAttribute("src");
  $("download").hidden = true;
  for (const [id, item] of state.items) item.li.classList.toggle("current", id === job.id);
  show(job);
  const source = new EventSource(job.urls.events);
  state.source = source;
  const update = (event) => { const j = JSON.parse(event.data); if (j.id === state.current) show(j); };
  source.addEventListener("progress", update);
  source.addEventListener("done", (event) => {
    update(event);
    source.close();
    if (state.source === source) state.source = null;
    loadJobs();
    loadPresets(false).catch(() => {});
  });
  source.addEventListener("deleted", (event) => {  // through the videos API, or by retention
    source.close();
    if (state.source === source) state.source = null;
    if (JSON.parse(event.data).id === state.current) setError("this job was deleted");
    loadJobs();
  });
}

async function cancel() {
  if (!state.current) return;
  try { show(await api(`/v1/jobs/${encodeURIComponent(state.current)}/cancel`, { method: "POST" })); }
  catch (error) { setError(error.message); }
}

// ---- recent jobs: kept in place and updated, so thumbnails load once -------------------------

function item(job) {
  const thumb = el("img", { className: "thumb", alt: "", width: 56, height: 56, src: `/v1/jobs/${encodeURIComponent(job.id)}/input` });
  const tag = el("span", { className: "tag" });
  const prompt = el("span", { className: "prompt" });
  const line = el("div", {}, tag, prompt);
  const meta = el("small", { className: "meta" });
  const link = el("a", { className: "video-link", textContent: "video", hidden: true });
  const again = el("button", { className: "secondary small reuse", type: "button", textContent: "reuse settings" });
  const li = el("li", { tabIndex: 0 }, thumb, line, el("div", { className: "actions" }, link, again), meta);
  const entry = { li, tag, prompt, meta, link, again, job };
  li.dataset.id = job.id;
  li.addEventListener("click", (event) => { if (!event.target.closest("a, button")) follow(entry.job); });
  li.addEventListener("keydown", (event) => { if (event.key === "Enter" && event.target === li) follow(entry.job); });
  again.addEventListener("click", () => reuse(entry.job));
  again.setAttribute("aria-label", "reuse the settings of this job");
  return entry;
}

function update(entry, job) {
  const s = job.settings;
  entry.job = job;
  entry.tag.className = `tag ${job.status}`;
  entry.tag.textContent = job.status;
  const text = s.prompt || "(no prompt)";
  entry.prompt.textContent = text.length > 80 ? text.slice(0, 79) + "…" : text;
  entry.prompt.title = text;
  const when = new Date(job.created * 1000).toLocaleTimeString();
  const queue = job.status === "queued" && job.queue ? ` · #${job.queue.position} in the queue` : "";
  entry.meta.textContent = `${s.height}x${s.width}, ${s.frames} frames, ${s.steps} steps · seed ${s.seed} · ${when}${queue}`;
  entry.link.hidden = !job.urls.video;
  if (job.urls.video) entry.link.href = job.urls.video;
  entry.li.classList.toggle("current", job.id === state.current);
}

async function loadJobs() {
  let jobs;
  try { jobs = await api("/v1/jobs?limit=20"); } catch (error) { return; } // shown on submit
  const seen = new Set();
  const nodes = jobs.map((job) => {
    let entry = state.items.get(job.id);
    if (!entry) state.items.set(job.id, (entry = item(job)));
    update(entry, job);
    seen.add(job.id);
    return entry.li;
  });
  for (const id of [...state.items.keys()]) if (!seen.has(id)) state.items.delete(id);
  const list = $("jobs");
  const now = [...list.children];
  if (now.length !== nodes.length || now.some((node, i) => node !== nodes[i])) list.replaceChildren(...nodes);
}

// ---- "use via API" -------------------------------------------------------------------------

const sh = (text) => "'" + String(text).replace(/'/g, "'\\''") + "'";
const py = (text) => JSON.stringify(String(text)); // a JSON string is a valid Python literal

function snippets() {
  const origin = location.origin;
  const name = state.image?.name && /^[\w.-]+$/.test(state.image.name) ? state.image.name : "picture.png";
  const lines = [`curl -X POST ${sh(origin + "/v1/jobs")}`];
  if (state.hasToken) lines.push(`-H "Authorization: Bearer $I2VKIT_TOKEN"`);
  lines.push(`-F ${sh("image=@" + name)}`);
  for (const [field, value] of fields()) {
    // --form-string: a prompt that starts with @ or < is text, not a file to read
    lines.push(`${field.endsWith("prompt") ? "--form-string" : "-F"} ${sh(field + "=" + value)}`);
  }
  $("api-curl").textContent = lines.join(" \\\n  ");

  const height = Number($("height").value) || defaults().height;
  const width = Number($("width").value) || defaults().width;
  const frames = Number($("frames").value) || defaults().frames;
  const fps = Number($("fps").value) || defaults().fps || 8;
  const seconds = Number((frames / fps).toFixed(3));
  // i2vkit's own settings ride along as more form fields (size and seconds say the rest)
  const extra = fields().filter(([field]) => !["prompt", "height", "width", "frames"].includes(field))
    .map(([field, value]) => `${py(field)}: ${NUMBERS.includes(field) || field === "seed" ? Number(value) : py(value)}`);
  $("api-openai").textContent = [
    ...(state.hasToken ? ["import os", ""] : []),
    "from openai import OpenAI",
    "",
    `client = OpenAI(base_url=${py(origin + "/v1")}, api_key=${state.hasToken ? 'os.environ["I2VKIT_TOKEN"]' : '"unused"'})`,
    "video = client.videos.create(",
    `    model=${py(state.info?.model || "")},`,
    `    prompt=${py($("prompt").value)},`,
    `    input_reference=open(${py(name)}, "rb"),`,
    `    size=${py(`${width}x${height}`)},`,
    `    seconds=${py(seconds)},`,
    ...(extra.length ? [`    extra_body={${extra.join(", ")}},`] : []),
    ")",
    "print(video.id, video.status)",
  ].join("\n");
}

// ---- wiring --------------------------------------------------------------------------------

async function poll() {
  let health;
  try {
    health = await (await fetch("/healthz")).json();
  } catch (error) {
    $("state").textContent = "server unreachable";
    return;
  }
  $("state").textContent = health.state + (health.reason ? `: ${health.reason}` : "");
  if (!["READY", "BUSY"].includes(health.state)) return;
  try {
    if (!state.loaded) await load();
    else if (document.visibilityState === "visible") await loadJobs();
  } catch (error) {
    if (!(error instanceof AuthError)) setError(error.message);
  }
}

function wire() {
  $("drop").addEventListener("click", () => $("file").click());
  $("drop").addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  $("file").addEventListener("change", () => choose($("file").files[0]));
  $("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
  $("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
  $("drop").addEventListener("drop", (e) => { e.preventDefault(); $("drop").classList.remove("over"); choose(e.dataTransfer.files[0]); });
  $("preset").addEventListener("change", () => { fill(defaults(), FROM_PRESET); presetChosen(); });
  $("seed").addEventListener("input", () => { $("random-seed").checked = $("seed").value === ""; });
  $("form").addEventListener("input", snippets);
  $("form").addEventListener("change", snippets);
  $("form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", cancel);
  const signIn = () => login().then(load).catch((error) => setError(error.message));
  $("sign-in").addEventListener("click", signIn);
  $("token").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); signIn(); } });
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible" && state.loaded) loadJobs(); });
  snippets();
  poll();
  setInterval(poll, 2000);
}

wire();

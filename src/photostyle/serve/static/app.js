// photostyle page: uploads go to POST /v1/results (one network pass at alpha 1); the strength
// slider only fetches re-blended previews; the download links ask for the full-size image and
// for the .cube LUT of the look at the slider's strength.
"use strict";
const $ = (id) => document.getElementById(id);
const state = { id: null, seq: 0, timer: null };

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function showThumb(input) {
  const thumb = $(input.id + "-thumb");
  if (!thumb) return;
  const file = input.files[0];
  thumb.hidden = !file;
  if (file) thumb.src = URL.createObjectURL(file);
}

function inputsChanged() {
  ["content", "style"].forEach((id) => showThumb($(id)));
  $("run").disabled = !($("content").files.length && $("style").files.length);
  if (!$("run").disabled) stylize();
}

for (const id of ["content", "style"]) {
  const drop = $(id + "-drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) { $(id).files = e.dataTransfer.files; inputsChanged(); }
  });
  $(id).addEventListener("change", inputsChanged);
}
for (const id of ["content_mask", "style_mask"]) {
  $(id).addEventListener("change", () => {  // masks count in pairs: wait for the second one
    if ($("content_mask").files.length === $("style_mask").files.length) inputsChanged();
  });
}
$("run").addEventListener("click", stylize);
$("max_size").addEventListener("change", () => { if (!$("run").disabled) stylize(); });

async function errorText(response) {
  try { return (await response.json()).error || response.statusText; }
  catch (_) { return response.status + " " + response.statusText; }
}

async function stylize() {
  const form = new FormData();
  for (const id of ["content", "style", "content_mask", "style_mask"]) {
    if ($(id).files.length) form.append(id, $(id).files[0]);
  }
  if ($("max_size").value) form.append("max_size", $("max_size").value);
  const seq = ++state.seq;
  $("run").disabled = true;
  document.body.dataset.state = "working";
  setStatus("Stylizing…");
  const started = performance.now();
  try {
    const response = await fetch("/v1/results", { method: "POST", body: form });
    if (seq !== state.seq) return;
    if (!response.ok) throw new Error(await errorText(response));
    const result = await response.json();
    state.id = result.id;
    $("size").textContent = result.width + " × " + result.height + " px";
    $("before").src = "/v1/results/" + result.id + "/preview?alpha=0";
    $("result-panel").hidden = false;
    await updatePreview();
    setStatus("Done in " + ((performance.now() - started) / 1000).toFixed(1) + " s");
  } catch (err) {
    document.body.dataset.state = "error";
    setStatus(err.message, true);
  } finally {
    $("run").disabled = !($("content").files.length && $("style").files.length);
  }
}

async function updatePreview() {
  const alpha = Number($("alpha").value).toFixed(2);
  $("alpha-value").textContent = alpha;
  const fmt = $("format").value;
  $("download").href = "/v1/results/" + state.id + "/image?alpha=" + alpha + "&format=" + fmt;
  $("download").classList.remove("disabled");
  $("download-lut").href = "/v1/results/" + state.id + "/look.cube?alpha=" + alpha;
  $("download-lut").classList.remove("disabled");
  const response = await fetch("/v1/results/" + state.id + "/preview?alpha=" + alpha);
  if (!response.ok) throw new Error(await errorText(response));
  const url = URL.createObjectURL(await response.blob());
  await new Promise((resolve) => { $("after").onload = resolve; $("after").src = url; });
  layoutCompare();
  document.body.dataset.alpha = alpha;
  document.body.dataset.state = "ready";
}

function onAlpha() {
  if (!state.id) return;
  document.body.dataset.state = "updating";
  clearTimeout(state.timer);
  state.timer = setTimeout(() => updatePreview().catch((err) => setStatus(err.message, true)), 40);
}
$("alpha").addEventListener("input", onAlpha);
$("format").addEventListener("change", onAlpha);

function layoutCompare() {
  const before = $("before");
  const split = Number($("split").value) / 100;
  $("after").style.width = before.clientWidth + "px";
  $("after-wrap").style.clipPath = "inset(0 0 0 " + (split * 100) + "%)";
  $("divider").style.left = (split * before.clientWidth) + "px";
}
$("split").addEventListener("input", layoutCompare);
window.addEventListener("resize", layoutCompare);
$("before").addEventListener("load", layoutCompare);

// The viewer page: /viewer/?doc=ID&page=N&q=QUOTE[&lang=fr]
//
// Loads the PDF from ../pdf/ID with PDF.js, finds the quote in the text layer of page N and the next one (then
// N-1, then N+1 and N+2, should the cited page be off by one), renders the page(s) holding it with their text
// layer, highlights the quote and scrolls to it. The chat can also post {type: "arrival-open", doc, page, q}
// to show another citation without reloading PDF.js. The state is on <body> for tests and assistive
// technology: data-state (loading | ready | error), data-match (exact | approximate | none), data-pages.

import * as pdfjsLib from "../pdfjs/build/pdf.min.mjs";
import { buildStream, findQuote, itemRanges } from "./quote-match.mjs";

pdfjsLib.GlobalWorkerOptions.workerSrc = new URL("../pdfjs/build/pdf.worker.min.mjs", import.meta.url).href;
const PDFJS = new URL("../pdfjs/", import.meta.url).href;
// Started at once, before any document: the chat loads this page in its hidden panel ahead of the first click,
// so opening a citation only has to fetch and draw the PDF.
const worker = new pdfjsLib.PDFWorker();

const TEXT = {
  en: {
    prev: "Previous page", next: "Next page", open: "Open the PDF in a new tab", page: "Page {p} of {n}",
    zoomin: "Zoom in", zoomout: "Zoom out",
    pages: "PDF pages", toolbar: "PDF viewer", loading: "Loading the PDF…",
    exact: "Page {p}: the quoted passage is highlighted.",
    exact2: "Pages {p}–{q}: the quoted passage is highlighted (it runs onto the next page).",
    approx: "Page {p}: the closest match to the quote is highlighted ({pct}% of it found in the page's text).",
    none: "The quote was not found in the text of page {p}; the page is shown without a highlight.",
    error: "The PDF could not be shown: {reason}", login: "your session has expired: reload the page to log in",
    missing: "this document is no longer in the index", bad: "bad link",
  },
  fr: {
    prev: "Page précédente", next: "Page suivante", open: "Ouvrir le PDF dans un nouvel onglet",
    zoomin: "Agrandir", zoomout: "Réduire",
    page: "Page {p} sur {n}", pages: "Pages du PDF", toolbar: "Visionneuse PDF", loading: "Chargement du PDF…",
    exact: "Page {p} : le passage cité est surligné.",
    exact2: "Pages {p}–{q} : le passage cité est surligné (il se poursuit sur la page suivante).",
    approx: "Page {p} : le passage le plus proche de la citation est surligné ({pct} % trouvé dans le texte de la page).",
    none: "La citation n'a pas été trouvée dans le texte de la page {p} ; la page est affichée sans surlignage.",
    error: "Impossible d'afficher le PDF : {reason}", login: "votre session a expiré : rechargez la page pour vous connecter",
    missing: "ce document n'est plus dans l'index", bad: "lien incorrect",
  },
};

const params = new URLSearchParams(location.search);
const lang = (params.get("lang") || navigator.language || "en").toLowerCase().startsWith("fr") ? "fr" : "en";
const T = (key, vars = {}) => TEXT[lang][key].replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ""));
const $ = (id) => document.getElementById(id);

const state = { doc: "", page: 1, quote: "", pdf: null, shown: [], marks: new Map(), token: 0, zoom: 1 };
// One document open at a time: PDF.js 5.4 keeps the page count of the last document loaded in a global
// (PagesMapper), so a second open document would refuse its own pages. The worker stays.
let current = null;  // {doc, task, promise}
const texts = new Map(); // "page" -> text content of the current document

function setStatus(text) { $("status").textContent = text; }

function labels() {
  document.documentElement.lang = lang;
  $("prev").setAttribute("aria-label", T("prev"));
  $("next").setAttribute("aria-label", T("next"));
  document.querySelector("#open .long").textContent = T("open");
  $("open").setAttribute("aria-label", T("open"));
  for (const id of ["zoomin", "zoomout"]) {
    $(id).setAttribute("aria-label", T(id));
    $(id).title = T(id);
  }
  $("pages").setAttribute("aria-label", T("pages"));
  document.querySelector(".bar").setAttribute("aria-label", T("toolbar"));
}

function openDoc(doc) {
  if (current && current.doc === doc) return current.promise;
  if (current) current.task.destroy();
  texts.clear();
  const task = pdfjsLib.getDocument({
    url: `../pdf/${doc}`, cMapUrl: `${PDFJS}cmaps/`, cMapPacked: true,
    standardFontDataUrl: `${PDFJS}standard_fonts/`, wasmUrl: `${PDFJS}wasm/`, iccUrl: `${PDFJS}iccs/`,
    isEvalSupported: false, enableXfa: false, withCredentials: true, worker,
  });
  const entry = { doc, task, promise: task.promise };
  entry.promise.catch(() => { if (current === entry) current = null; });
  current = entry;
  return entry.promise;
}

async function pageText(pdf, number) {
  if (!texts.has(number)) {
    texts.set(number, pdf.getPage(number).then((p) => p.getTextContent()));
  }
  return texts.get(number);
}

// Find the quote near page n: returns {pages: [numbers], ranges: Map(page -> Map(itemIndex -> ranges)), result}.
async function locate(pdf, doc, n, quote) {
  const windows = [[n, n + 1], [n - 1, n], [n + 1, n + 2]];
  let best = null;
  for (const w of windows) {
    const pages = w.filter((p) => p >= 1 && p <= pdf.numPages);
    if (!pages.length) continue;
    const items = [];
    const contents = await Promise.all(pages.map((p) => pageText(pdf, p)));
    pages.forEach((p, i) => {
      contents[i].items.filter((it) => it.str !== undefined).forEach((it, idx) => items.push({ str: it.str, page: p, idx }));
    });
    const stream = buildStream(items);
    const result = findQuote(stream, quote);
    if (!best || result.matched > best.result.matched) best = { stream, items, result };
    if (result.exact) break;
  }
  const ranges = new Map();
  if (!best || best.result.matched / Math.max(best.result.total, 1) < 0.5) {
    return { pages: [n], ranges, result: best ? best.result : null };
  }
  for (const [i, list] of itemRanges(best.stream, best.result.segments)) {
    const { page, idx } = best.items[i];
    if (!ranges.has(page)) ranges.set(page, new Map());
    ranges.get(page).set(idx, list);
  }
  return { pages: [...ranges.keys()].sort((a, b) => a - b), ranges, result: best.result };
}

function highlight(textDivs, ranges) {
  for (const [idx, list] of ranges) {
    const div = textDivs[idx];
    if (!div) continue;
    const text = div.textContent;
    const frag = document.createDocumentFragment();
    let at = 0;
    for (const [s, e0] of list) {
      const e = Math.min(e0, text.length);
      if (s > at) frag.append(text.slice(at, s));
      const mark = document.createElement("mark");
      mark.className = "arrival-hl";
      mark.textContent = text.slice(s, e);
      frag.append(mark);
      at = e;
    }
    if (at < text.length) frag.append(text.slice(at));
    div.replaceChildren(frag);
  }
}

async function renderPage(pdf, doc, number, ranges, token) {
  const page = await pdf.getPage(number);
  const tc = await pageText(pdf, number);
  if (token !== state.token) return null;
  const box = $("pages");
  const base = page.getViewport({ scale: 1 });
  const scale = Math.max(0.4, Math.min(5, state.zoom * (box.clientWidth - 24) / base.width));
  const viewport = page.getViewport({ scale });
  const wrap = document.createElement("section");
  wrap.className = "page-wrap";
  wrap.dataset.page = String(number);
  wrap.setAttribute("aria-label", T("page", { p: number, n: pdf.numPages }));
  const label = document.createElement("p");
  label.className = "page-label";
  label.textContent = T("page", { p: number, n: pdf.numPages });
  const div = document.createElement("div");
  div.className = "page";
  div.style.setProperty("--scale-factor", String(scale));
  div.style.width = `${Math.floor(viewport.width)}px`;
  div.style.height = `${Math.floor(viewport.height)}px`;
  const canvasWrap = document.createElement("div");
  canvasWrap.className = "canvasWrapper";
  const canvas = document.createElement("canvas");
  canvas.setAttribute("aria-hidden", "true");
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.floor(viewport.width * ratio);
  canvas.height = Math.floor(viewport.height * ratio);
  canvasWrap.append(canvas);
  const layer = document.createElement("div");
  layer.className = "textLayer";
  div.append(canvasWrap, layer);
  wrap.append(label, div);
  box.append(wrap);
  const textLayer = new pdfjsLib.TextLayer({ textContentSource: tc, container: layer, viewport });
  const drawing = page.render({
    canvas, canvasContext: canvas.getContext("2d"), viewport,
    transform: ratio !== 1 ? [ratio, 0, 0, ratio, 0, 0] : null,
  }).promise;
  await textLayer.render();
  if (ranges) highlight(textLayer.textDivs, ranges);
  return drawing;
}

function updateBar() {
  const n = state.pdf ? state.pdf.numPages : 0;
  const first = state.shown[0] || state.page, last = state.shown[state.shown.length - 1] || state.page;
  $("pageinfo").textContent = n ? T("page", { p: first, n }) : "";
  $("prev").disabled = !n || first <= 1;
  $("next").disabled = !n || last >= n;
  $("open").href = `../pdf/${state.doc}#page=${first}`;
}

async function show(pages, token) {
  $("pages").replaceChildren();
  state.shown = pages;
  updateBar();
  const drawings = [];
  for (const p of pages) {
    drawings.push(renderPage(state.pdf, state.doc, p, state.marks.get(p), token));
  }
  await Promise.all(drawings);
}

async function open(doc, page, quote) {
  const token = ++state.token;
  document.body.dataset.state = "loading";
  delete document.body.dataset.match;
  setStatus(T("loading"));
  if (!/^[0-9a-f]{16}$/.test(doc) || !(page >= 1)) {  // (the page number is checked against the PDF below)
    fail(T("bad"));
    return;
  }
  Object.assign(state, { doc, page, quote, shown: [], marks: new Map() });
  $("open").href = `../pdf/${doc}#page=${page}`;
  const t0 = performance.now();
  const lap = {};
  try {
    const pdf = await openDoc(doc);
    lap.open = Math.round(performance.now() - t0);
    if (token !== state.token) return;
    state.pdf = pdf;
    page = Math.min(page, pdf.numPages);
    let pages = [page], match = "none", result = null;
    if (quote) {
      const found = await locate(pdf, doc, page, quote);
      if (token !== state.token) return;
      result = found.result;
      state.marks = found.ranges;
      if (found.ranges.size) {
        pages = found.pages;
        match = result.exact ? "exact" : "approximate";
      }
    }
    lap.find = Math.round(performance.now() - t0);
    await show(pages, token);
    lap.draw = Math.round(performance.now() - t0);
    if (token !== state.token) return;
    document.body.dataset.timing = JSON.stringify(lap);  // milliseconds since the request, for measurements
    const first = pages[0];
    if (!quote) setStatus("");
    else if (match === "exact") setStatus(pages.length > 1 ? T("exact2", { p: first, q: pages[1] }) : T("exact", { p: first }));
    else if (match === "approximate") setStatus(T("approx", { p: first, pct: Math.round(100 * result.matched / result.total) }));
    else setStatus(T("none", { p: first }));
    document.body.dataset.match = match;
    document.body.dataset.pages = pages.join(",");
    const mark = document.querySelector("mark.arrival-hl");
    if (mark) {  // scroll the pages only: scrollIntoView would scroll the chat page around this frame too
      const box = $("pages");
      box.scrollTop += mark.getBoundingClientRect().top - box.getBoundingClientRect().top - box.clientHeight / 3;
    }
    document.title = `arrival — ${T("page", { p: first, n: pdf.numPages })}`;
    document.body.dataset.state = "ready";
  } catch (err) {
    if (token !== state.token) return;
    const status = err && (err.status || (/(\d{3})/.exec(String(err.message)) || [])[1]);
    fail(String(status) === "401" ? T("login") : String(status) === "404" ? T("missing") : (err && err.message) || String(err));
  }
}

function fail(reason) {
  setStatus(T("error", { reason }));
  document.body.dataset.state = "error";
}

async function step(delta) {
  if (!state.pdf) return;
  const first = state.shown[0] || state.page, last = state.shown[state.shown.length - 1] || state.page;
  const target = delta < 0 ? first - 1 : last + 1;
  if (target < 1 || target > state.pdf.numPages) return;
  const token = ++state.token;
  await show([target], token);
  $("pages").scrollTop = 0;
  if (token === state.token) setStatus("");
}

async function zoom(factor) {
  if (!state.pdf || !state.shown.length) return;
  const box = $("pages");
  const at = box.scrollHeight ? box.scrollTop / box.scrollHeight : 0;
  state.zoom = Math.max(0.5, Math.min(4, state.zoom * factor));
  const token = ++state.token;
  await show(state.shown, token);
  box.scrollTop = at * box.scrollHeight;
}

labels();
$("prev").addEventListener("click", () => step(-1));
$("next").addEventListener("click", () => step(1));
$("zoomin").addEventListener("click", () => zoom(1.25));
$("zoomout").addEventListener("click", () => zoom(0.8));
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") window.parent.postMessage({ type: "arrival-viewer-close" }, location.origin);
  else if ((e.key === "+" || e.key === "=") && !e.ctrlKey && !e.metaKey) zoom(1.25);
  else if (e.key === "-" && !e.ctrlKey && !e.metaKey) zoom(0.8);
});
window.addEventListener("message", (e) => {
  if (e.origin !== location.origin || !e.data || e.data.type !== "arrival-open") return;
  const { doc, page, q } = e.data;
  const url = new URL(location.href);
  url.search = new URLSearchParams({ doc, page: String(page), q: q || "", lang }).toString();
  history.replaceState(null, "", url);
  open(String(doc), Number(page), String(q || ""));
});
if (params.get("doc")) {
  open(params.get("doc"), Number(params.get("page") || "1"), params.get("q") || "");
} else {
  document.body.dataset.state = "idle";  // warmed up, waiting for a citation
}

// The chat page's own script (loaded through Gradio's `head`): opens a citation in the viewer beside the answer.
//
// A citation's link (a[data-viewer]) points at viewer/?doc=&page=&q=; without this script it opens the viewer in a
// new tab. With it, the click shows the panel beside the answer (#arrival-viewer-panel) and loads the viewer in
// its frame, or, when the frame already holds the viewer, posts it the new citation (no reload of PDF.js). The
// panel closes with its × button or Escape (in the panel or inside the viewer), and focus goes back to the link.

(() => {
  let lastLink = null;

  const panel = () => document.getElementById("arrival-viewer-panel");

  function viewerUrl(link) {
    return new URL(link.getAttribute("href"), document.baseURI);
  }

  function open(link) {
    const p = panel();
    if (!p) return false;
    const frame = p.querySelector("iframe");
    const url = viewerUrl(link);
    p.hidden = false;
    if (!p.getClientRects().length) {  // the panel is in another tab (a search result): a new tab instead
      p.hidden = true;
      return false;
    }
    lastLink = link;
    document.body.classList.add("arrival-viewer-open");
    const doc = p.querySelector(".viewer-doc");
    if (doc) doc.textContent = ` — ${link.dataset.title || ""}, p. ${link.dataset.page || ""}`;
    const win = frame.contentWindow;
    let same = false;
    try {
      same = win && win.location.pathname === url.pathname && win.document.body &&
        win.document.body.dataset.state !== undefined;
    } catch (_) { same = false; }
    if (same) {
      const params = url.searchParams;
      frame.contentDocument.body.dataset.state = "loading";
      win.postMessage({ type: "arrival-open", doc: params.get("doc"), page: Number(params.get("page")),
                        q: params.get("q") || "" }, location.origin);
    } else {
      frame.src = url.href;
    }
    if (window.matchMedia("(max-width: 900px)").matches) p.scrollIntoView({ block: "start" });
    const heading = p.querySelector("h3");
    if (heading) heading.focus({ preventScroll: true });
    return true;
  }

  function close() {
    const p = panel();
    if (!p || p.hidden) return;
    p.hidden = true;
    document.body.classList.remove("arrival-viewer-open");
    if (lastLink && document.body.contains(lastLink)) lastLink.focus();
  }

  document.addEventListener("click", (e) => {
    const closer = e.target.closest && e.target.closest(".viewer-close");
    if (closer) { close(); return; }
    const link = e.target.closest && e.target.closest("a[data-viewer]");
    if (!link || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey || e.altKey) return;
    if (open(link)) e.preventDefault();
  });
  document.addEventListener("keydown", (e) => {
    const p = panel();
    if (e.key === "Escape" && p && !p.hidden && p.contains(document.activeElement)) close();
  });
  // Load the viewer (PDF.js and its worker) in the hidden panel as soon as the panel is on the page.
  function warm() {
    const p = panel();
    if (!p) return false;
    const frame = p.querySelector("iframe");
    if (frame && (!frame.getAttribute("src") || frame.getAttribute("src") === "about:blank")) {
      frame.src = new URL("viewer/", document.baseURI).href;  // in the browser's language, as the chat
    }
    return true;
  }
  if (!warm()) {
    const watch = new MutationObserver(() => { if (warm()) watch.disconnect(); });
    watch.observe(document.documentElement, { childList: true, subtree: true });
  }
  window.addEventListener("message", (e) => {
    if (e.origin === location.origin && e.data && e.data.type === "arrival-viewer-close") close();
  });
})();

"""A guided tour for a first-time visitor: seven steps across the tabs, each highlighting the control to
use next, on the example photo, skippable at any step. The steps are data (``STEPS``); ``TOUR_JS`` draws
them in the browser (no server round trip per step). A test checks that every target exists.
"""

from __future__ import annotations

import json

from .urlstate import PICK_EXAMPLE_JS

TOUR_EXAMPLE = "coffee.png"   # the example photo the tour runs on (the README's screenshots use it too)

# tab: the tab's label; target: elem_id of the control to highlight; title and text: plain words;
# press (optional): Next presses the target for the visitor when the element ``unless`` is still empty
# (the later steps look at what that button draws).
STEPS: list[dict[str, str]] = [
    {"tab": "Restore", "target": "restore-btn", "title": "Restore", "press": "1", "unless": "details",
     "text": "The example photo is loaded. Press Restore (or Next, which presses it for you): MambaIRv2 and "
             "MambaIR each restore it (here: super-resolution), side by side. Drag the slider on the right "
             "to compare with bicubic."},
    {"tab": "Internals", "target": "internals-btn", "title": "Route", "press": "1",
     "unless": "internals-summary",
     "text": "Press Show internals (or Next). Inside every MambaIRv2 layer a small router gives each pixel "
             "a label (a colour): pixels with the same label will be read together. The lesson opens on "
             "the layer whose router is most decided and on a pixel on an edge; click another pixel to "
             "follow it."},
    {"tab": "Internals", "target": "seq-ribbon", "title": "Sort",
     "text": "The pixels are sorted by label into one long sequence: your pixel's group becomes one run, "
             "even when its members are far apart in the image. MambaIR reads plain raster rows instead."},
    {"tab": "Internals", "target": "ase-fig", "title": "Scan with the prompt",
     "text": "One state-space scan reads the sequence. Each pixel adds its label's prompt to its query C, "
             "so pixels of one group ask the running state the same kind of question."},
    {"tab": "Internals", "target": "attn-v2", "title": "Unsort",
     "text": "The outputs go back to their pixels. These maps show which pixels your pixel's output drew "
             "on: MambaIRv2 reaches same-label pixels anywhere, MambaIR only what its scans passed first."},
    {"tab": "Restore", "target": "out-v2", "title": "LAM",
     "text": "Click anywhere on the MambaIRv2 output: LAM attributes that 16x16 window to the input pixels "
             "for both networks, and the diffusion index (DI) says how far each one looks."},
    {"tab": "Evidence", "target": "ev-redundancy-btn", "title": "Evidence",
     "text": "Each view here tests one claim of the paper on your image and says what would contradict it. "
             "That's the tour: upload your own photo any time; the address bar keeps a link to the view."},
]


def tour_js() -> str:
    """JS run once on page load: defines ``window.__tour`` (start, next, back, end)."""
    return (TOUR_JS.replace("__STEPS__", json.dumps(STEPS)).replace("__PICK__", PICK_EXAMPLE_JS)
            .replace("__EXAMPLE__", json.dumps(TOUR_EXAMPLE)))


START_JS = "() => { if (window.__tour) window.__tour.start(); }"

TOUR_JS = """() => {
  if (window.__tour) return;
  const steps = __STEPS__;
  const css = document.createElement('style');
  css.textContent = `
    .tour-target { outline: 3px solid #f59e0b !important; outline-offset: 3px;
                   box-shadow: 0 0 0 9999px rgba(0,0,0,0.18) !important; position: relative; z-index: 50; }
    #tour-panel { position: fixed; right: 20px; bottom: 20px; width: 360px; z-index: 1000;
                  background: var(--background-fill-primary, #fff); color: var(--body-text-color, #111);
                  border: 2px solid #f59e0b; border-radius: 10px; padding: 14px 16px;
                  box-shadow: 0 6px 24px rgba(0,0,0,0.25); font-size: 15px; line-height: 1.4; }
    #tour-panel h3 { margin: 0 0 6px 0; font-size: 17px; }
    #tour-panel .tour-count { font-size: 12px; opacity: 0.7; }
    #tour-panel .tour-buttons { display: flex; gap: 8px; margin-top: 10px; justify-content: flex-end; }
    #tour-panel button { padding: 4px 12px; border-radius: 6px; border: 1px solid #ccc; cursor: pointer;
                         background: var(--button-secondary-background-fill, #eee); color: inherit; }
    #tour-panel button.tour-next { background: #f59e0b; border-color: #f59e0b; color: #111; }`;
  document.head.appendChild(css);
  let i = -1, panel = null;
  const unmark = () => document.querySelectorAll('.tour-target')
      .forEach((e) => e.classList.remove('tour-target'));
  const openTab = (name) => {
    const b = [...document.querySelectorAll('button[role="tab"]')]
      .find((x) => x.textContent.trim() === name);
    if (b && b.getAttribute('aria-selected') !== 'true') b.click();
  };
  const mark = (id, tries) => {
    const e = document.getElementById(id);
    if (!e || !e.offsetParent) { if (tries < 30) setTimeout(() => mark(id, tries + 1), 100); return; }
    if (steps[i].target !== id) return;
    e.classList.add('tour-target');
    e.scrollIntoView({block: 'center', behavior: 'instant'});
  };
  const show = () => {
    unmark();
    const s = steps[i];
    openTab(s.tab);
    if (!panel) {
      panel = document.createElement('div'); panel.id = 'tour-panel'; document.body.appendChild(panel);
    }
    panel.dataset.step = String(i + 1);
    const last = i === steps.length - 1;
    panel.innerHTML = `<div class="tour-count">Step ${i + 1} of ${steps.length} · ${s.tab} tab</div>
      <h3></h3><div class="tour-text"></div>
      <div class="tour-buttons">
        <button class="tour-skip">${last ? 'Close' : 'Skip tour'}</button>
        ${i > 0 ? '<button class="tour-back">Back</button>' : ''}
        <button class="tour-next">${last ? 'Finish' : 'Next'}</button></div>`;
    panel.querySelector('h3').textContent = s.title;
    panel.querySelector('.tour-text').textContent = s.text;
    panel.querySelector('.tour-skip').onclick = () => window.__tour.end();
    const back = panel.querySelector('.tour-back');
    if (back) back.onclick = () => window.__tour.back();
    panel.querySelector('.tour-next').onclick = () => {
      const t = document.getElementById(s.target), u = s.unless && document.getElementById(s.unless);
      if (s.press && t && u && !u.innerText.trim()) (t.querySelector('button') || t).click();
      if (last) window.__tour.end(); else window.__tour.next();
    };
    mark(s.target, 0);
  };
  window.__tour = {
    steps: steps,
    step: () => i + 1,
    start: () => { (__PICK__)(__EXAMPLE__, true); i = 0; show(); },
    next: () => { if (i < steps.length - 1) { i += 1; show(); } },
    back: () => { if (i > 0) { i -= 1; show(); } },
    end: () => { unmark(); if (panel) panel.remove(); panel = null; i = -1; },
  };
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && i >= 0) window.__tour.end(); });
}"""

// The step-through of one scan layer, drawn in the browser (the js_on_load of a gr.HTML whose value is
// the JSON of viz.stepscan.step_data): no server call per frame. Each frame only repaints the pixels
// whose state changed since the last one, then scales the small picture up onto the canvas.
// Globals for tests and the fps readout: window.__stepscan = {t, frames: [rAF timestamps of drawn
// frames while playing]}.
const UNREAD = [226, 226, 226];     // viz.stepscan.UNREAD_RGB
const TINT = 0.35;                  // viz.stepscan.LABEL_TINT
const CYAN = 'rgb(0,255,255)';
const NETS = {v2: {name: 'MambaIRv2', color: '#1f77b4'}, v1: {name: 'MambaIR', color: '#d62728'}};
const RATES = [10, 30, 100, 300, 1000, 3000];  // pixels read per second while playing
const SIDE = 320;                   // largest side of a panel in CSS pixels

const stats = window.__stepscan = window.__stepscan || {t: 0, frames: []};
if (element.__ss && element.__ss.raf) cancelAnimationFrame(element.__ss.raf);

function hexRgb(h) { return [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16)); }
function pct(v) { return (100 * v).toFixed(v < 0.1 ? 1 : 0) + '%'; }

function build() {
  if (element.__ss && element.__ss.raf) cancelAnimationFrame(element.__ss.raf);
  const host = element.querySelector('.ss-host') || element;
  let data = null;
  try { data = props.value ? JSON.parse(props.value) : null; } catch (e) { data = null; }
  if (!data || !(data.v2 || data.v1)) {
    host.innerHTML = '<p class="ss-empty">Press <b>Show internals</b> to step through the scan.</p>';
    return;
  }
  const W = data.w, H = data.h, S = W * H;
  const zoom = Math.max(1, Math.floor(SIDE / Math.max(W, H)));
  const bytes = Uint8Array.from(atob(data.rgb), c => c.charCodeAt(0));
  const nets = ['v2', 'v1'].filter(k => data[k]);
  const colors = data.colors ? data.colors.map(hexRgb) : null;
  const top = Math.max(1e-6, ...nets.map(k => Math.max(...data[k].share)));
  host.innerHTML = `
    <div class="ss-controls">
      <button class="ss-reset" title="back to the start (t = 0)">start</button>
      <button class="ss-back" title="one step back">◀ step</button>
      <button class="ss-play" title="play / pause">▶ play</button>
      <button class="ss-fwd" title="one step forward: read one more pixel">step ▶</button>
      <input class="ss-slider" type="range" min="0" max="${S}" step="1" value="0"
             title="t: how many pixels the scans have read">
      <span class="ss-t"></span>
      <label class="ss-rate-label">speed <select class="ss-rate">${RATES.map(r =>
        `<option value="${r}"${r === 300 ? ' selected' : ''}>${r} px/s</option>`).join('')}</select></label>
      ${data.pixel ? '<button class="ss-yours" title="run MambaIRv2\'s scan up to your pixel">to your pixel</button>' : ''}
      <span class="ss-fps"></span>
    </div>
    <div class="ss-panels">${nets.map(k => `
      <div class="ss-panel" data-net="${k}" style="width: ${W * zoom + 2}px">
        <div class="ss-title">${NETS[k].name} ${data[k].layer}: ${data[k].scan}</div>
        <canvas class="ss-canvas" data-net="${k}" data-w="${W}" data-h="${H}" data-zoom="${zoom}"
                width="${W * zoom}" height="${H * zoom}"></canvas>
        <div class="ss-plot-title">share of each output from pixels read before it (0 to ${pct(top)})</div>
        <canvas class="ss-plot" data-net="${k}" width="${W * zoom}" height="64"></canvas>
        <div class="ss-info" data-net="${k}"></div>
      </div>`).join('')}
    </div>
    <div class="ss-hover" hidden></div>`;

  // Per network: its visit order, the inverse (raster pixel -> step), colours when read, plot images.
  const P = {};
  for (const k of nets) {
    const d = data[k], order = d.order, at = new Int32Array(S);
    order.forEach((p, i) => { at[p] = i; });
    const read = new Uint8ClampedArray(S * 3);
    for (let p = 0; p < S; p++) {
      for (let c = 0; c < 3; c++) {
        let v = bytes[3 * p + c];
        if (k === 'v2' && colors) v = (1 - TINT) * v + TINT * colors[data.labels[p]][c];
        read[3 * p + c] = Math.floor(v + 0.5);
      }
    }
    const small = document.createElement('canvas');
    small.width = W; small.height = H;
    const sctx = small.getContext('2d');
    const img = sctx.createImageData(W, H);
    for (let p = 0; p < S; p++) {
      img.data.set(UNREAD, 4 * p); img.data[4 * p + 3] = 255;
    }
    const canvas = host.querySelector(`.ss-canvas[data-net="${k}"]`);
    const ctx = canvas.getContext('2d');
    ctx.imageSmoothingEnabled = false;
    const plot = host.querySelector(`.ss-plot[data-net="${k}"]`);
    const curve = (alpha) => {  // the share curve over all steps, pre-drawn once
      const c = document.createElement('canvas');
      c.width = plot.width; c.height = plot.height;
      const g = c.getContext('2d');
      g.strokeStyle = NETS[k].color; g.globalAlpha = alpha; g.lineWidth = 1;
      g.beginPath();
      d.share.forEach((s, i) => {
        const x = (i + 0.5) * c.width / S, y = c.height - 2 - (c.height - 4) * s / top;
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
      return c;
    };
    P[k] = {d, order, at, read, small, sctx, img, canvas, ctx, plot, pctx: plot.getContext('2d'),
            faint: curve(0.25), strong: curve(1.0), shown: 0,
            info: host.querySelector(`.ss-info[data-net="${k}"]`)};
  }

  const slider = host.querySelector('.ss-slider');
  const tText = host.querySelector('.ss-t');
  const playBtn = host.querySelector('.ss-play');
  const rateSel = host.querySelector('.ss-rate');
  const fpsText = host.querySelector('.ss-fps');
  const st = element.__ss = {t: 0, pos: 0, playing: false, last: null, raf: 0};

  function paintTo(q, t) {  // set the pixels whose read state changes between q.shown and t
    const px = q.img.data;
    if (t > q.shown) {
      for (let i = q.shown; i < t; i++) { const p = q.order[i]; px.set(q.read.subarray(3 * p, 3 * p + 3), 4 * p); }
    } else {
      for (let i = t; i < q.shown; i++) { px.set(UNREAD, 4 * q.order[i]); }
    }
    q.shown = t;
  }

  function describe(k, p) {  // plain words for raster pixel p of network k
    const q = P[k], i = q.at[p], x = p % W, y = Math.floor(p / W);
    let s = `pixel (x ${x}, y ${y})`;
    if (k === 'v2' && data.labels) s += ` · label ${data.labels[p]}`;
    s += ` · read at step ${i + 1} of ${S}`;
    if (k === 'v2') s += ` · prompt added there: ${q.d.prompt[i]}`;
    s += ` · ${pct(q.d.share[i])} of its output from the ${i} pixels read before it`;
    return s;
  }

  function draw() {
    const t = st.t;
    for (const k of nets) {
      const q = P[k];
      paintTo(q, t);
      q.sctx.putImageData(q.img, 0, 0);
      q.ctx.drawImage(q.small, 0, 0, W * zoom, H * zoom);
      if (t > 0) {
        const p = q.order[t - 1];
        q.ctx.strokeStyle = CYAN; q.ctx.lineWidth = 2;  // on the cell's edge: cell centres stay visible
        q.ctx.strokeRect((p % W) * zoom, Math.floor(p / W) * zoom, zoom, zoom);
        q.info.textContent = 'now: ' + describe(k, p);
      } else {
        q.info.textContent = 'nothing read yet: press play or step';
      }
      const g = q.pctx, pw = q.plot.width, ph = q.plot.height, xt = t * pw / S;
      g.clearRect(0, 0, pw, ph);
      g.drawImage(q.faint, 0, 0);
      if (xt > 0) g.drawImage(q.strong, 0, 0, xt, ph, 0, 0, xt, ph);
      g.fillStyle = CYAN; g.fillRect(Math.max(0, xt - 1), 0, 2, ph);
    }
    slider.value = String(t);
    tText.textContent = `t = ${t} / ${S} pixels read`;
    host.dataset.t = String(t);
    stats.t = t;
  }

  function setT(t) { st.t = Math.max(0, Math.min(S, Math.round(t))); st.pos = st.t; draw(); }
  function pause() { st.playing = false; playBtn.textContent = '▶ play'; }
  function frame(ts) {
    st.raf = 0;
    if (!st.playing) return;
    if (st.last !== null) st.pos = Math.min(S, st.pos + Number(rateSel.value) * (ts - st.last) / 1000);
    st.last = ts;
    st.t = Math.floor(st.pos);
    draw();
    stats.frames.push(ts);
    if (stats.frames.length > 600) stats.frames.splice(0, stats.frames.length - 600);
    const recent = stats.frames.filter(f => f > ts - 1000);
    if (recent.length > 1) fpsText.textContent = `${recent.length} frames/s`;
    if (st.t >= S) { pause(); return; }
    st.raf = requestAnimationFrame(frame);
  }
  function play() {
    if (st.t >= S) setT(0);
    st.playing = true; st.last = null; playBtn.textContent = '⏸ pause';
    st.raf = requestAnimationFrame(frame);
  }
  playBtn.addEventListener('click', () => (st.playing ? pause() : play()));
  host.querySelector('.ss-reset').addEventListener('click', () => { pause(); setT(0); });
  host.querySelector('.ss-back').addEventListener('click', () => { pause(); setT(st.t - 1); });
  host.querySelector('.ss-fwd').addEventListener('click', () => { pause(); setT(st.t + 1); });
  slider.addEventListener('input', () => { pause(); setT(Number(slider.value)); });
  const yours = host.querySelector('.ss-yours');
  if (yours) {
    yours.addEventListener('click', () => {
      pause();
      const k = P.v2 ? 'v2' : 'v1';
      setT(P[k].at[data.pixel[0] * W + data.pixel[1]] + 1);
    });
  }
  const tip = host.querySelector('.ss-hover');
  for (const k of nets) {
    const c = P[k].canvas;
    c.addEventListener('mousemove', (e) => {
      const r = c.getBoundingClientRect();
      const x = Math.floor((e.clientX - r.left) * W / r.width), y = Math.floor((e.clientY - r.top) * H / r.height);
      if (x < 0 || y < 0 || x >= W || y >= H) { tip.hidden = true; return; }
      const p = y * W + x;
      tip.textContent = `${NETS[k].name}: ${describe(k, p)} · ${P[k].at[p] < st.t ? 'already read' : 'not read yet'}`;
      tip.hidden = false;
      tip.style.left = `${e.clientX - host.getBoundingClientRect().left + 12}px`;
      tip.style.top = `${e.clientY - host.getBoundingClientRect().top + 12}px`;
    });
    c.addEventListener('mouseleave', () => { tip.hidden = true; });
  }
  draw();
}

build();
watch('value', build);

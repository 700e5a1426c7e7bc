// Rates kept in the page and drawn as inline SVG (no chart library).
//
// History holds cumulative counter samples {t, values:{series: count}} for the last hour and
// turns them into per-minute rates over a sliding window; a counter that goes down (the node
// restarted) starts the history again.

const HOUR_MS = 60 * 60 * 1000;
const WINDOW_MS = 60 * 1000;
const SVG_NS = 'http://www.w3.org/2000/svg';

export class History {
  constructor(span = HOUR_MS) {
    this.span = span;
    this.samples = [];
  }

  // How far back the history reaches (ms), for a chart span that grows to the hour.
  age(now) {
    return this.samples.length ? now - this.samples[0].t : 0;
  }

  add(t, values) {
    const last = this.samples[this.samples.length - 1];
    if (last && Object.keys(values).some((k) => values[k] < (last.values[k] ?? 0))) this.samples = [];
    this.samples.push({ t, values });
    while (this.samples.length && this.samples[0].t < t - this.span) this.samples.shift();
  }

  // [{t, v}] per sample: the rate per minute of one series over the WINDOW_MS before it
  // (or since the first sample when the history is younger).
  rates(series) {
    const out = [];
    let j = 0;
    for (let i = 1; i < this.samples.length; i++) {
      const cur = this.samples[i];
      while (j < i - 1 && this.samples[j + 1].t <= cur.t - WINDOW_MS) j++;
      const base = this.samples[j];
      const dt = cur.t - base.t;
      if (dt <= 0) continue;
      const dv = (cur.values[series] ?? 0) - (base.values[series] ?? 0);
      out.push({ t: cur.t, v: (dv * 60000) / dt });
    }
    return out;
  }
}

function el(name, attrs) {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// Draws points over [now - span, now] into svg (a viewBox of 600 x 120), an area under a line,
// with the maximum as a label. Sets data-points and data-last on the svg.
export function drawRate(svg, points, now, span = HOUR_MS) {
  const W = 600;
  const H = 120;
  const PAD = 4;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.replaceChildren();
  svg.dataset.points = String(points.length);
  svg.dataset.last = points.length ? String(Math.round(points[points.length - 1].v)) : '';
  for (let i = 1; i < 4; i++) {
    svg.append(el('line', { x1: 0, x2: W, y1: (H * i) / 4, y2: (H * i) / 4, class: 'grid' }));
  }
  if (points.length < 1) return;
  const max = Math.max(1, ...points.map((p) => p.v));
  const x = (t) => Math.max(0, Math.min(W, W - ((now - t) / span) * W));
  const y = (v) => H - PAD - (v / max) * (H - 2 * PAD);
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
  const first = points[0];
  const last = points[points.length - 1];
  svg.append(el('path', { d: `${d} L${x(last.t).toFixed(1)},${H} L${x(first.t).toFixed(1)},${H} Z`, class: 'area' }));
  svg.append(el('path', { d, class: 'line', 'vector-effect': 'non-scaling-stroke' }));
  const label = el('text', { x: 6, y: 14, class: 'max' });
  label.textContent = 'max ' + Math.round(max);
  svg.append(label);
}

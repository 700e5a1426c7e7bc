// Reads the Prometheus text format of GET /metrics into samples {name, labels, value}.
// Comments, histogram buckets and malformed lines are skipped.

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = LINE.exec(line);
    if (!m || m[1].endsWith('_bucket')) continue;
    const labels = {};
    if (m[2]) {
      for (const l of m[2].matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (x, c) => (c === 'n' ? '\n' : c));
    }
    const value = Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') continue;
    out.push({ name: m[1], labels, value });
  }
  return out;
}

// Samples of one metric whose labels include every pair of match.
export function select(samples, name, match = {}) {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

export function sum(samples, name, match = {}) {
  return select(samples, name, match).reduce((a, s) => a + s.value, 0);
}

// One value, or undefined when the metric is absent.
export function value(samples, name, match = {}) {
  const s = select(samples, name, match);
  return s.length ? s[0].value : undefined;
}

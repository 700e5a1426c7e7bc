// Small DOM helpers: build elements without innerHTML (data from the node is never parsed as
// HTML), and keep table rows by key so polling updates cells in place (no focus lost, no
// layout jump).

export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'testid') e.dataset.testid = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (v === true) e.setAttribute(k, '');
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function setText(e, text) {
  const s = String(text);
  if (e.textContent !== s) e.textContent = s;
}

export function setData(e, values) {
  for (const [k, v] of Object.entries(values)) {
    const s = v === undefined || v === null ? '' : String(v);
    if (e.dataset[k] !== s) e.dataset[k] = s;
  }
}

// Makes container's children match items, in order: key(item) names a row, create(item)
// builds a new one, update(row, item) refreshes one (also right after create). Rows whose key
// is gone are removed.
export function syncRows(container, items, key, create, update) {
  const old = new Map();
  for (const row of Array.from(container.children)) {
    if (row.dataset.key !== undefined) old.set(row.dataset.key, row);
    else row.remove();
  }
  let prev = null;
  for (const item of items) {
    const k = String(key(item));
    let row = old.get(k);
    if (row) old.delete(k);
    else {
      row = create(item);
      row.dataset.key = k;
    }
    update(row, item);
    const want = prev ? prev.nextSibling : container.firstChild;
    if (want !== row) container.insertBefore(row, want);
    prev = row;
  }
  for (const row of old.values()) row.remove();
}

export function fmtTime(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtDateTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${fmtTime(ms)}`;
}

export function fmtNum(n, digits = 0) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  return Number(n).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

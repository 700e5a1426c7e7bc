// Tasks: the list (every filter applied by the node: status, provider, q; pages of 100 asked
// with offset, the node's total shown), the submit form, and a task's page with its chunks,
// cancel and retry.

import { request, get, ApiError } from './api.js';
import { h, setText, setData, syncRows, fmtNum, fmtDateTime } from './dom.js';
import { t } from './i18n.js';
import { hooks, toast, report } from './ui.js';

const PAGE = 100;
const MAX_LIMIT = 1000;  // the node's largest `limit`
const SEARCH_DEBOUNCE_MS = 300;
let lastTasks = [];  // the rows loaded so far: the first pages of the current filters
let lastTotal = 0;  // tasks matching the filters (the node's count)
let wanted = PAGE;  // rows to keep loaded: grows by PAGE with task-more
let filterGen = 0;  // bumped when a filter changes or more rows load: older answers are dropped
let searchTimer = null;
let providers = [];

function statusBadge(el, status) {
  el.dataset.status = status;
  const badge = el.firstChild && el.firstChild.nodeType === 1 ? el.firstChild : null;
  const text = t('status.' + status);
  if (badge && badge.className === 'state ' + status && badge.textContent === text) return;
  el.replaceChildren(h('span', { class: 'state ' + status }, text));
}

function $(section, sel) {
  return section.querySelector(sel);
}

// The query of the current filters (without limit and offset).
function filterQuery(section) {
  const qs = new URLSearchParams();
  const status = $(section, '.task-status-filter').value;
  const prov = $(section, '.task-provider-filter').value;
  const q = $(section, '.task-search').value.trim();
  if (status) qs.set('status', status);
  if (prov) qs.set('provider', prov);
  if (q) qs.set('q', q);
  return qs;
}

// `count` rows from `offset` of the current filters, in requests of at most MAX_LIMIT.
async function fetchRows(section, offset, count) {
  const rows = [];
  let total = 0;
  for (let at = offset; at < offset + count;) {
    const qs = filterQuery(section);
    qs.set('limit', String(Math.min(MAX_LIMIT, offset + count - at)));
    qs.set('offset', String(at));
    const r = await get('/api/v1/tasks?' + qs);
    const got = r.tasks || [];
    rows.push(...got);
    total = r.total ?? rows.length;
    if (got.length === 0) break;
    at += got.length;
  }
  return { rows, total };
}

// A filter changed: back to the first page, asked now.
function filtersChanged() {
  filterGen += 1;
  wanted = PAGE;
  hooks.refresh();
}

async function loadMore(section) {
  const more = $(section, '[data-testid="task-more"]');
  // A poll in flight asked for fewer rows: its answer must not replace the rows loaded here.
  // One started meanwhile asks for these rows too.
  filterGen += 1;
  const gen = filterGen;
  wanted = Math.max(wanted, lastTasks.length + PAGE);
  more.disabled = true;
  try {
    const r = await fetchRows(section, lastTasks.length, PAGE);
    if (gen !== filterGen) return;
    const have = new Set(lastTasks.map((x) => x.id));
    lastTasks = lastTasks.concat(r.rows.filter((x) => !have.has(x.id)));
    lastTotal = r.total;
    wanted = Math.max(wanted, lastTasks.length);
    renderList(section);
  } catch (e) {
    report(e);
  } finally {
    more.disabled = false;
  }
}

function renderList(section) {
  const shown = lastTasks;
  const count = $(section, '[data-testid="task-count"]');
  setData(count, { total: lastTotal, shown: shown.length });
  setText(count, shown.length ? t('tasks.count_range', { from: 1, to: shown.length, total: lastTotal })
    : t('tasks.count', { count: lastTotal }));
  $(section, '.tasks-empty').hidden = shown.length > 0;
  const more = $(section, '[data-testid="task-more"]');
  more.hidden = shown.length >= lastTotal;
  setText(more, t('tasks.more', { n: Math.min(PAGE, Math.max(0, lastTotal - shown.length)) }));
  syncRows($(section, '.task-rows'), shown, (x) => x.id,
    (x) => h('tr', { testid: 'task-row' },
      h('td', { class: 'wrap' }, h('a', { testid: 'task-link', href: '#/tasks/' + encodeURIComponent(x.id) })),
      h('td', { class: 'narrow-hide' }, h('code', {}, x.id)), h('td', { class: 'provider' }), h('td', { testid: 'task-status' }),
      h('td', { class: 'num', testid: 'task-progress' }), h('td', { class: 'updated' })),
    (row, x) => {
      setData(row, { taskId: x.id, status: x.status, provider: x.provider });
      setText(row.querySelector('[data-testid="task-link"]'), x.title || x.id);
      setText(row.querySelector('.provider'), x.provider);
      statusBadge(row.querySelector('[data-testid="task-status"]'), x.status);
      const pr = row.querySelector('[data-testid="task-progress"]');
      setData(pr, { done: x.chunks_done, failed: x.chunks_failed, total: x.chunks_total });
      setText(pr, `${fmtNum(x.chunks_done)}/${fmtNum(x.chunks_total)}` + (x.chunks_failed ? ` (${fmtNum(x.chunks_failed)} ✗)` : ''));
      setText(row.querySelector('.updated'), fmtDateTime(x.updated_at_ms));
      row.title = x.warning || x.error || '';
    });
}

function fillProviders(section) {
  for (const sel of [$(section, '.task-provider-filter'), $(section, '[data-testid="submit-provider"]')]) {
    const have = new Set(Array.from(sel.options).map((o) => o.value));
    for (const p of providers) if (!have.has(p)) sel.append(h('option', { value: p }, p));
  }
}

async function submit(section, ev) {
  ev.preventDefault();
  const form = ev.target;
  const out = $(section, '[data-testid="submit-result"]');
  const button = $(section, '[data-testid="submit-button"]');
  const file = form.file.files[0];
  const text = form.text.value;
  const fields = { title: form.title.value.trim(), provider: form.provider.value, format: form.format.value };
  let opts;
  let path = '/api/v1/tasks';
  if (file) {
    const fd = new FormData();
    fd.append('file', file, file.name);
    for (const [k, v] of Object.entries(fields)) if (v) fd.append(k, v);
    opts = { body: fd, timeout: 120000 };
  } else if (text.trim()) {
    const qs = new URLSearchParams(Object.entries(fields).filter(([, v]) => v));
    if (qs.toString()) path += '?' + qs;
    opts = { body: text, headers: { 'Content-Type': 'text/plain; charset=utf-8' }, timeout: 120000 };
  } else {
    out.dataset.kind = 'error';
    setText(out, t('tasks.empty_submit'));
    return;
  }
  button.disabled = true;
  try {
    const r = await request('POST', path, opts);
    out.dataset.kind = 'ok';
    out.dataset.taskId = r.id;
    // replaceChildren would print a null as "null": the warning only when there is one.
    out.replaceChildren(...[h('a', { href: '#/tasks/' + encodeURIComponent(r.id) }, t('tasks.submitted', { id: r.id, chunks: r.chunks_total })),
      r.warning ? h('span', { class: 'warning' }, ' ' + r.warning) : null].filter(Boolean));
    form.text.value = '';
    form.file.value = '';
    form.title.value = ''; // the next document is another one: its title is not this one's
    hooks.refresh();
  } catch (e) {
    out.dataset.kind = 'error';
    delete out.dataset.taskId;
    setText(out, t('common.error', { message: e.message }));
    if (!(e instanceof ApiError)) report(e);
  } finally {
    button.disabled = false;
  }
}

export const tasksView = {
  init() {
    const section = document.querySelector('section[data-view="tasks"]');
    $(section, '.task-search').addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(filtersChanged, SEARCH_DEBOUNCE_MS);
    });
    $(section, '[data-testid="task-more"]').addEventListener('click', () => loadMore(section));
    $(section, '.task-provider-filter').addEventListener('change', filtersChanged);
    $(section, '.task-status-filter').addEventListener('change', filtersChanged);
    $(section, '.submit-form').addEventListener('submit', (ev) => submit(section, ev));
  },
  // The rows loaded so far (the first `wanted`) again, with the current filters.
  async refresh(section) {
    const gen = filterGen;
    const [list, prov] = await Promise.all([fetchRows(section, 0, wanted),
      providers.length ? null : get('/api/v1/providers')]);
    if (prov) {
      providers = (prov.providers || []).map((p) => p.name);
      fillProviders(section);
    }
    if (gen !== filterGen) return;  // a filter changed meanwhile: its own refresh follows
    lastTasks = list.rows;
    lastTotal = list.total;
    renderList(section);
  },
  relabel() {
    const s = document.querySelector('section[data-view="tasks"]');
    if (s) renderList(s);
  },
};

// --- one task ---

let current = null;

// A chunk's state as the API names it (queued, running, done, dead, cancelled).
function chunkBadge(el, state) {
  const text = t('chunk.state.' + state);
  const badge = el.firstChild && el.firstChild.nodeType === 1 ? el.firstChild : null;
  if (badge && badge.className === 'state ' + state && badge.textContent === text) return;
  el.replaceChildren(h('span', { class: 'state ' + state }, text));
}

function fmtDuration(ms) {
  if (ms === undefined || ms === null) return '—';
  return ms < 1000 ? `${fmtNum(ms)} ms` : `${fmtNum(ms / 1000, 1)} s`;
}

function renderChunks(section, x) {
  const chunks = x.chunks || [];
  const note = $(section, '[data-testid="chunks-truncated"]');
  let noteText = '';
  if (x.chunks_error) noteText = t('task.chunks_error', { message: x.chunks_error });
  else if (x.chunks_truncated) noteText = t('task.chunks_truncated', { shown: fmtNum(chunks.length), total: fmtNum(x.chunks_total) });
  note.hidden = !noteText;
  note.dataset.truncated = x.chunks_truncated ? 'true' : 'false';
  setText(note, noteText);
  $(section, '.chunk-empty').hidden = chunks.length > 0 || !!x.chunks_error;
  syncRows($(section, '.chunk-rows'), chunks, (c) => c.id,
    () => h('tr', { testid: 'chunk-row' }, h('td', { class: 'num idx' }), h('td', { class: 'cstate' }),
      h('td', { class: 'num attempts' }), h('td', { class: 'num crashes' }), h('td', { class: 'num duration' }),
      h('td', { class: 'num tokens' }), h('td', { class: 'num cost' }), h('td', { class: 'chunk-error' })),
    (row, c) => {
      setData(row, { chunk: c.id, idx: c.idx, state: c.state, attempts: c.attempts, durationMs: c.duration_ms ?? '' });
      row.classList.toggle('dead', c.state === 'dead');
      row.title = c.id;
      setText(row.querySelector('.idx'), c.idx);
      chunkBadge(row.querySelector('.cstate'), c.state);
      setText(row.querySelector('.attempts'), c.attempts);
      setText(row.querySelector('.crashes'), c.crashes);
      setText(row.querySelector('.duration'), fmtDuration(c.duration_ms));
      setText(row.querySelector('.tokens'), c.usage ? fmtNum(c.usage.tokens) : '—');
      setText(row.querySelector('.cost'), c.usage ? fmtNum(c.usage.cost, 4) : '—');
      const err = row.querySelector('.chunk-error');
      setText(err, c.error || '');
      // The cell is cut to one line by CSS; the whole reason (with the output snippet) is in title.
      if (err.title !== (c.error || '')) err.title = c.error || '';
    });
}

function renderTask(section, x) {
  section.dataset.taskId = x.id;
  setText($(section, '.task-title'), x.title || x.id);
  setText($(section, '.task-id'), x.id);
  setText($(section, '.task-provider'), x.provider);
  setText($(section, '.task-document'), x.document || '');
  statusBadge($(section, '.status'), x.status);
  const c = { total: x.chunks_total, done: x.chunks_done, failed: x.chunks_failed, queued: x.chunks_queued ?? '', running: x.chunks_running ?? '' };
  setData($(section, '[data-testid="task-chunks"]'), c);
  for (const k of Object.keys(c)) setText($(section, '.c-' + k), c[k] === '' ? '—' : fmtNum(c[k]));
  $(section, '.progress .bar').style.width = x.chunks_total ? `${(100 * x.chunks_done) / x.chunks_total}%` : '0%';
  const err = $(section, '[data-testid="task-error"]');
  err.hidden = !x.error;
  setText(err, x.error ? `${t('task.error')}: ${x.error}` : '');
  const warn = $(section, '[data-testid="task-warning"]');
  const warning = x.warning || x.usage_error;
  warn.hidden = !warning;
  setText(warn, warning ? `${t('task.warning')}: ${warning}` : '');
  $(section, '[data-testid="cancel-button"]').disabled = x.status === 'done' || x.status === 'cancelled';
  $(section, '[data-testid="retry-button"]').disabled = !(x.status === 'failed' || x.status === 'cancelled');
  const dead = x.dead_letters || [];
  $(section, '.dead-empty').hidden = dead.length > 0;
  syncRows($(section, '.dead-rows'), dead, (d) => d.chunk,
    () => h('tr', { testid: 'dead-letter' }, h('td', {}, h('code', { class: 'chunk' })), h('td', { class: 'num attempts' }), h('td', { class: 'wrap reason' })),
    (row, d) => {
      setData(row, { chunk: d.chunk, attempts: d.attempts });
      setText(row.querySelector('.chunk'), d.chunk);
      setText(row.querySelector('.attempts'), d.attempts);
      setText(row.querySelector('.reason'), d.error || '');
    });
  renderChunks(section, x);
  const u = x.usage || {};
  setData($(section, '[data-testid="task-usage"]'), { requests: u.requests ?? '', tokens: u.tokens ?? '', cost: u.cost ?? '' });
  setText($(section, '.u-requests'), fmtNum(u.requests));
  setText($(section, '.u-prompt'), fmtNum(u.prompt_tokens));
  setText($(section, '.u-completion'), fmtNum(u.completion_tokens));
  setText($(section, '.u-cost'), u.cost === undefined ? '—' : fmtNum(u.cost, 4));
  setText($(section, '.u-budget'), x.token_budget ? fmtNum(x.token_budget) : t('common.none'));
}

async function act(section, what) {
  if (!current) return;
  const button = $(section, `[data-testid="${what}-button"]`);
  button.disabled = true;
  try {
    const r = await request('POST', `/api/v1/tasks/${encodeURIComponent(current)}/${what}`);
    toast(what === 'cancel' ? t('task.cancelled', { n: r.chunks_cancelled ?? 0 }) : t('task.retried'));
    if (r && r.id) renderTask(section, r);
  } catch (e) {
    report(e);
  } finally {
    hooks.refresh();
  }
}

export const taskView = {
  init() {
    const section = document.querySelector('section[data-view="task"]');
    $(section, '[data-testid="cancel-button"]').addEventListener('click', () => act(section, 'cancel'));
    $(section, '[data-testid="retry-button"]').addEventListener('click', () => act(section, 'retry'));
  },
  enter(section, params) {
    if (current !== params.id) {
      current = params.id;
      section.dataset.taskId = params.id;
      setText($(section, '.task-title'), params.id);
      $(section, '.status').replaceChildren();
      delete $(section, '.status').dataset.status;
      $(section, '.dead-rows').replaceChildren();
      $(section, '.chunk-rows').replaceChildren();
      $(section, '[data-testid="chunks-truncated"]').hidden = true;
    }
  },
  async refresh(section, params) {
    const x = await get(`/api/v1/tasks/${encodeURIComponent(params.id)}?chunks=1`);
    if (current === params.id) renderTask(section, x);
  },
  failed(section, err) {
    setText($(section, '.task-title'), err.status === 404 ? t('task.not_found') : t('common.error', { message: err.message }));
    $(section, '[data-testid="cancel-button"]').disabled = true;
    $(section, '[data-testid="retry-button"]').disabled = true;
  },
};

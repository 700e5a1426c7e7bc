// Cluster: nodes, processes against both caps, quarantines, and the scaling controls.
// Everything comes from GET /api/v1/workers: each node's version, caps and quarantines are in
// its heartbeat record (null for a node of an older kgflow: shown as unknown), so every node's
// console shows every node's figures, not only its own.

import { request, get } from './api.js';
import { h, setText, setData, syncRows, fmtNum } from './dom.js';
import { t } from './i18n.js';
import { hooks, toast, report } from './ui.js';

// Every state a node reports for a process row (src/supervisor/supervisor.cc Processes()): the
// last two are rows without a process (pid 0), a provider waiting to respawn or quarantined.
const STATES = ['starting', 'idle', 'busy', 'stopping', 'backoff', 'quarantined'];
let lastWorkers = null;
let lastFetchedAt = 0; // Date.now() when lastWorkers arrived: quarantine time left counts down from it

function level(used, max) {
  if (!max) return 'ok';
  const r = used / max;
  return r >= 1 ? 'full' : r >= 0.8 ? 'amber' : 'ok';
}

function capBar(cap, provider) {
  return h('div', { class: 'cap', testid: 'cap-bar', role: 'meter', 'data-cap': cap, 'data-provider': provider || undefined },
    h('div', { class: 'label' }, h('span', { class: 'name' }), h('span', { class: 'figure' })),
    h('div', { class: 'cap-track' }, h('div', { class: 'cap-fill' })));
}

function updateCapBar(bar, used, max, label) {
  setData(bar, { used, max: max ?? '', level: level(used, max) });
  bar.setAttribute('aria-valuenow', String(used));
  bar.setAttribute('aria-valuemin', '0');
  if (max) bar.setAttribute('aria-valuemax', String(max));
  bar.setAttribute('aria-label', label);
  setText(bar.querySelector('.name'), label);
  setText(bar.querySelector('.figure'), max ? `${used} / ${max} (${Math.round((used / max) * 100)} %)` : `${used} / ${t('common.unknown')}`);
  bar.querySelector('.cap-fill').style.width = max ? `${Math.min(100, (used / max) * 100)}%` : '0%';
}

function stateBadge(cls, text) {
  return h('span', { class: 'state ' + cls }, text);
}

// Seconds left of a quarantine reported `remaining` s at the last poll, now.
function secondsLeft(remaining) {
  return Math.max(0, Math.round((remaining ?? 0) - (Date.now() - lastFetchedAt) / 1000));
}

function quarantineRows(nodes) {
  const out = [];
  for (const n of nodes) for (const q of n.quarantine || []) out.push({ node: n.name, provider: q.provider, remaining: q.remaining_s });
  return out;
}

function updateQuarantineRow(li, q) {
  const left = secondsLeft(q.remaining);
  setData(li, { node: q.node, provider: q.provider, remainingS: left });
  setText(li, t('cluster.quarantine.item_node', { node: q.node, provider: q.provider, seconds: left }));
}

// Between polls the time left counts down every second (only the quarantine rows change).
function tickQuarantine() {
  const s = document.querySelector('section[data-view="cluster"]');
  if (!s || s.hidden || !lastWorkers || document.hidden) return; // nothing to see while hidden
  const nodes = [...(lastWorkers.nodes || []), ...(lastWorkers.down || [])];
  const byKey = new Map(quarantineRows(nodes).map((q) => [q.node + '|' + q.provider, q]));
  for (const li of s.querySelectorAll('[data-testid="quarantine-row"]')) {
    const q = byKey.get(li.dataset.key);
    if (q) updateQuarantineRow(li, q);
  }
}
setInterval(tickQuarantine, 1000);

function render(section) {
  const w = lastWorkers;
  if (!w) return;
  const now = Date.now();
  const nodes = [...(w.nodes || []).map((n) => ({ ...n, up: true })), ...(w.down || []).map((n) => ({ ...n, up: false }))];

  section.querySelector('.nodes-empty').hidden = nodes.length > 0;
  syncRows(section.querySelector('.nodes'), nodes, (n) => n.name,
    () => h('tr', { testid: 'node-row' },
      h('td', { testid: 'node-name' }), h('td', { testid: 'node-role' }), h('td', { testid: 'node-host' }),
      h('td', { testid: 'node-version' }), h('td', { class: 'num', testid: 'node-heartbeat' }), h('td', { testid: 'node-state' })),
    (row, n) => {
      const age = n.heartbeat_age_ms ?? Math.max(0, now - (n.heartbeat_at || now));
      setData(row, { node: n.name, state: n.up ? 'up' : 'down', version: n.version ?? '' });
      setText(row.querySelector('[data-testid="node-name"]'), n.name);
      setText(row.querySelector('[data-testid="node-role"]'), n.role || t('common.none'));
      setText(row.querySelector('[data-testid="node-host"]'), n.host || t('common.none'));
      setText(row.querySelector('[data-testid="node-version"]'), n.version || t('common.none'));
      const hb = row.querySelector('[data-testid="node-heartbeat"]');
      hb.dataset.ageMs = String(age);
      setText(hb, `${fmtNum(age / 1000, 1)} s`);
      const st = row.querySelector('[data-testid="node-state"]');
      st.replaceChildren(stateBadge(n.up ? 'up' : 'down', n.up ? t('cluster.up') : t('cluster.down')));
    });

  // Capacity per live node: all its processes against its total cap, each provider's against
  // its per-provider cap (each node's own caps, from its record).
  const providersOf = (n) => [...new Set([...(n.processes || []).map((p) => p.provider), ...(w.scaling || []).map((s) => s.provider)])].sort();
  syncRows(section.querySelector('.caps'), nodes.filter((n) => n.up), (n) => n.name,
    (n) => h('div', { class: 'cap-node' }, h('h3', {}, n.name), h('div', { class: 'bars' }), h('p', { class: 'hint unknown' })),
    (card, n) => {
      card.dataset.node = n.name;
      // Only processes that exist count against a cap (a quarantined or backing-off provider's
      // row has pid 0).
      const procs = (n.processes || []).filter((x) => x.pid > 0);
      const capTotal = n.caps?.total ?? undefined;
      const capProvider = n.caps?.per_provider ?? undefined;
      const bars = [{ cap: 'total', provider: '', used: procs.length, max: capTotal, label: t('cluster.cap.total') }];
      for (const p of providersOf(n)) {
        bars.push({ cap: 'per_provider', provider: p, used: procs.filter((x) => x.provider === p).length, max: capProvider,
          label: t('cluster.cap.per_provider', { provider: p }) });
      }
      syncRows(card.querySelector('.bars'), bars, (b) => b.cap + ':' + b.provider, (b) => capBar(b.cap, b.provider),
        (bar, b) => {
          bar.dataset.node = n.name;
          updateCapBar(bar, b.used, b.max, b.label);
        });
      const unk = card.querySelector('.unknown');
      unk.hidden = capTotal !== undefined;
      setText(unk, t('cluster.cap.unknown_node'));
    });

  const byProvider = [];
  for (const n of nodes) {
    for (const p of providersOf(n)) {
      const procs = (n.processes || []).filter((x) => x.provider === p);
      const c = { node: n.name, provider: p, total: procs.length };
      for (const s of STATES) c[s] = procs.filter((x) => x.state === s).length;
      byProvider.push(c);
    }
  }
  syncRows(section.querySelector('.by-provider'), byProvider, (c) => c.node + '|' + c.provider,
    () => h('tr', { testid: 'provider-processes' }, h('td', { class: 'node' }), h('td', { class: 'provider' }),
      ...STATES.map((s) => h('td', { class: 'num s-' + s })), h('td', { class: 'num total' })),
    (row, c) => {
      setData(row, { node: c.node, provider: c.provider, total: c.total, ...Object.fromEntries(STATES.map((x) => [x, c[x]])) });
      setText(row.querySelector('.node'), c.node);
      setText(row.querySelector('.provider'), c.provider);
      for (const s of STATES) setText(row.querySelector('.s-' + s), c[s]);
      setText(row.querySelector('.total'), c.total);
    });

  const procs = [];
  for (const n of nodes) for (const p of n.processes || []) procs.push({ ...p, node: n.name });
  section.querySelector('.processes-empty').hidden = procs.length > 0;
  syncRows(section.querySelector('.processes'), procs, (p) => `${p.node}|${p.provider}|${p.pid || 'last' + (p.last_pid || 0)}`,
    () => h('tr', { testid: 'process-row' },
      h('td', { class: 'node' }), h('td', { class: 'provider' }), h('td', { class: 'num', testid: 'process-pid' }),
      h('td', { testid: 'process-state' }), h('td', { class: 'num', testid: 'process-cpu' }), h('td', { class: 'num', testid: 'process-rss' }),
      h('td', { class: 'num', testid: 'process-restarts' }), h('td', { class: 'wrap', testid: 'process-last-exit' })),
    (row, p) => {
      setData(row, { node: p.node, provider: p.provider, pid: p.pid, state: p.state, restarts: p.restarts ?? 0 });
      setText(row.querySelector('.node'), p.node);
      setText(row.querySelector('.provider'), p.provider);
      setText(row.querySelector('[data-testid="process-pid"]'), p.pid || (p.last_pid ? `(${p.last_pid})` : 0));
      row.querySelector('[data-testid="process-state"]').replaceChildren(stateBadge(p.state, t('state.' + p.state)));
      setText(row.querySelector('[data-testid="process-cpu"]'), fmtNum(p.cpu_seconds, 2));
      const rss = row.querySelector('[data-testid="process-rss"]');
      rss.dataset.bytes = String(p.rss_bytes ?? '');
      setText(rss, p.rss_bytes === undefined ? '—' : fmtNum(p.rss_bytes / 1048576, 1));
      setText(row.querySelector('[data-testid="process-restarts"]'), fmtNum(p.restarts ?? 0));
      const ex = row.querySelector('[data-testid="process-last-exit"]');
      ex.dataset.exit = p.last_exit || '';
      setText(ex, p.last_exit || t('common.none'));
    });

  const quarantined = quarantineRows(nodes);
  syncRows(section.querySelector('.quarantine'), quarantined, (q) => q.node + '|' + q.provider,
    () => h('li', { testid: 'quarantine-row' }), updateQuarantineRow);
  section.querySelector('[data-testid="no-quarantine"]').hidden = quarantined.length > 0;

  syncRows(section.querySelector('.scale-rows'), w.scaling || [], (s) => s.provider, createScaleRow,
    (row, s) => {
      row.dataset.provider = s.provider;
      setText(row.querySelector('.provider'), s.provider);
      setText(row.querySelector('[data-testid="scale-configured"]'), s.configured);
      setText(row.querySelector('[data-testid="scale-override"]'), s.override ?? t('common.none'));
      // A web node runs no workers: its scaling rows carry no per_node.
      const perNode = s.per_node ?? null;
      const eff = row.querySelector('[data-testid="scale-effective"]');
      eff.dataset.perNode = perNode === null ? '' : String(perNode);
      setText(eff, perNode === null ? t('common.none') : perNode);
      const input = row.querySelector('[data-testid="scale-input"]');
      if (input.value === '' && perNode !== null) input.value = String(perNode);
      setText(row.querySelector('[data-testid="scale-apply"]'), t('cluster.apply'));
      setText(row.querySelector('[data-testid="scale-reset"]'), t('cluster.reset'));
    });
}

function createScaleRow(s) {
  const input = h('input', { type: 'number', min: 0, max: 100000, step: 1, required: true, testid: 'scale-input',
    'aria-label': t('cluster.wanted') + ' ' + s.provider });
  const result = h('td', { class: 'result', testid: 'scale-result', 'aria-live': 'polite' });
  const apply = h('button', { type: 'submit', testid: 'scale-apply' }, t('cluster.apply'));
  const reset = h('button', { type: 'button', testid: 'scale-reset' }, t('cluster.reset'));
  const form = h('form', { class: 'inline' }, input, apply, reset);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const n = Number(input.value);
    if (!Number.isInteger(n) || n < 0 || n > 100000) {
      toast(t('cluster.scale_invalid'), 'error');
      return;
    }
    apply.disabled = true;
    try {
      const r = await request('PUT', `/api/v1/providers/${encodeURIComponent(s.provider)}/processes`, { json: { per_node: n } });
      setData(result, { clamped: !!r.clamped, target: r.target ?? r.per_node });
      // A clamp is the cap doing its job: what runs is said, in amber, not as a failure.
      const msg = r.clamped ? t('cluster.clamped', { target: r.target ?? r.per_node, asked: n, reason: r.reason || (r.binding_cap && r.binding_cap.name) || '' })
        : t('cluster.scaled', { provider: s.provider, target: r.target ?? r.per_node });
      setText(result, msg + (r.applied && r.applied !== 'now' ? ` (${r.applied})` : ''));
      result.dataset.kind = r.clamped ? 'warn' : 'ok';
      toast(msg, r.clamped ? 'warn' : 'ok');
      hooks.refresh();
    } catch (e) {
      report(e);
    } finally {
      apply.disabled = false;
    }
  });
  reset.addEventListener('click', async () => {
    reset.disabled = true;
    try {
      const r = await request('DELETE', `/api/v1/providers/${encodeURIComponent(s.provider)}/processes`);
      setData(result, { clamped: false, target: r.per_node });
      const msg = t('cluster.reset_done', { provider: s.provider, per_node: r.per_node });
      setText(result, msg);
      input.value = String(r.per_node);
      toast(msg);
      hooks.refresh();
    } catch (e) {
      report(e);
    } finally {
      reset.disabled = false;
    }
  });
  return h('tr', { testid: 'scale-row' }, h('th', { scope: 'row', class: 'provider' }),
    h('td', { class: 'num', testid: 'scale-configured' }), h('td', { class: 'num', testid: 'scale-override' }),
    h('td', { class: 'num', testid: 'scale-effective' }), h('td', {}, form), result);
}

export const clusterView = {
  async refresh(section, params, samples) {
    lastWorkers = await get('/api/v1/workers');
    lastFetchedAt = Date.now();
    render(section);
  },
  relabel() {
    const s = document.querySelector('section[data-view="cluster"]');
    if (s && lastWorkers) render(s);
  },
};

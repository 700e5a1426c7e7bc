// Queues and throughput. The queue by state and LLM requests by status come from
// GET /api/v1/providers (the queue is the cluster's, read by whichever node answers). Every poll
// (whatever the view) also reads /metrics once for the chunk outcome counters, kept as an hour
// of history in the page for the rate charts.

import { get, ApiError } from './api.js';
import { parseMetrics, sum } from './promtext.js';
import { History, drawRate } from './charts.js';
import { h, setText, setData, syncRows, fmtNum } from './dom.js';
import { t } from './i18n.js';

const history = new History();
let lastSamples = null;

// Fetches /metrics and records the counters; returns the samples, or null when /metrics
// answered an error (the views then show what the JSON API has). Unreachable propagates.
export async function sampleThroughput() {
  let text;
  try {
    text = await get('/metrics', { text: true });
  } catch (e) {
    if (e instanceof ApiError) return (lastSamples = null);
    throw e;
  }
  const samples = parseMetrics(text);
  const done = sum(samples, 'kg_chunks_total', { outcome: 'done' });
  const errors = sum(samples, 'kg_chunks_total', { outcome: 'dead_lettered' }) + sum(samples, 'kg_chunks_total', { outcome: 'retry' });
  history.add(Date.now(), { done, errors });
  lastSamples = samples;
  return samples;
}

export function latestMetrics() {
  return lastSamples;
}

// Per provider with queue figures: { provider, queued, running, delayed, dead, done }.
function queueFigures(providers) {
  return (providers.providers || []).filter((p) => p.queue).map((p) => ({ provider: p.name, ...p.queue }));
}

function drawCharts(section) {
  const now = Date.now();
  const chunks = history.rates('done');
  const errors = history.rates('errors');
  // The x axis spans what the page has seen, from 5 minutes up to the hour it keeps.
  const span = Math.min(60 * 60000, Math.max(5 * 60000, history.age(now)));
  drawRate(section.querySelector('[data-testid="chart-chunks"]'), chunks, now, span);
  drawRate(section.querySelector('[data-testid="chart-errors"]'), errors, now, span);
  const last = (pts) => (pts.length ? fmtNum(pts[pts.length - 1].v, 1) : '—');
  setText(section.querySelector('.chunks-now'), t('queues.now', { value: last(chunks) }));
  setText(section.querySelector('.errors-now'), t('queues.now', { value: last(errors) }));
  section.querySelector('.chart-hint').hidden = chunks.length > 1;
}

const QCOLS = ['queued', 'running', 'delayed', 'dead', 'done'];

export const queuesView = {
  async refresh(section, params, samples) {
    const providers = await get('/api/v1/providers');
    const figures = queueFigures(providers);
    section.querySelector('.queues-empty').hidden = figures.length > 0;
    setText(section.querySelector('.queue-error'), providers.queue_error || '');
    syncRows(
      section.querySelector('.queue-rows'),
      figures,
      (f) => f.provider,
      () => h('tr', { testid: 'provider-queue' }, h('th', { scope: 'row' }), ...QCOLS.map((c) => h('td', { class: 'num', testid: 'queue-' + c }))),
      (row, f) => {
        setData(row, { provider: f.provider, queued: f.queued, running: f.running, delayed: f.delayed, dead: f.dead, done: f.done });
        setText(row.firstChild, f.provider);
        for (const c of QCOLS) setText(row.querySelector(`[data-testid="queue-${c}"]`), fmtNum(f[c]));
      },
    );
    drawCharts(section);
    syncRows(
      section.querySelector('.llm-rows'),
      providers.providers || [],
      (p) => p.name,
      () =>
        h('tr', { testid: 'llm-usage' }, h('th', { scope: 'row' }), h('td', { class: 'num requests' }), h('td', { class: 'codes' }),
          h('td', { class: 'num prompt' }), h('td', { class: 'num completion' }), h('td', { class: 'num cost' }), h('td', { class: 'num cached' })),
      (row, p) => {
        const u = p.usage || {};
        setData(row, { provider: p.name, requests: u.requests ?? '', tokens: u.tokens ?? '', cost: u.cost ?? '' });
        setText(row.firstChild, `${p.name} (${p.kind})`);
        setText(row.querySelector('.requests'), fmtNum(u.requests));
        // This node's workers' requests by HTTP status (null on a node without workers).
        const codes = Object.entries(p.llm_requests || {}).filter(([, n]) => n > 0);
        setText(row.querySelector('.codes'), codes.length ? codes.map(([code, n]) => `${code}: ${fmtNum(n)}`).join(', ') : t('common.none'));
        setText(row.querySelector('.prompt'), fmtNum(u.prompt_tokens));
        setText(row.querySelector('.completion'), fmtNum(u.completion_tokens));
        setText(row.querySelector('.cost'), u.cost === undefined ? '—' : fmtNum(u.cost, 4));
        setText(row.querySelector('.cached'), fmtNum(u.cached_chunks));
      },
    );
  },
  relabel() {
    const s = document.querySelector('section[data-view="queues"]');
    if (s && !s.hidden) drawCharts(s);
  },
};

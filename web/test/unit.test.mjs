// Verifies the console's pure parts without a browser: the Prometheus text parser, the rate
// history behind the charts, the i18n dictionary (every label in both languages), and that
// the data-testid hooks in web/README.md and in web/src are the same set.
// Run: node --test web/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseMetrics, sum, value, select } from '../src/promtext.js';
import { History } from '../src/charts.js';
import { missingKeys, t, setLang } from '../src/i18n.js';

const here = dirname(fileURLToPath(import.meta.url));

test('parseMetrics reads labels, escapes and values, and skips comments and buckets', () => {
  const s = parseMetrics([
    '# HELP kg_queue_chunks chunks by state',
    '# TYPE kg_queue_chunks gauge',
    'kg_queue_chunks{provider="builtin",state="ready"} 7',
    'kg_queue_chunks{provider="llm",state="ready"} 3',
    'kg_worker_exits_total{provider="a\\"b",reason="crashed"} 2',
    'kg_chunk_duration_seconds_bucket{provider="builtin",le="0.1"} 5',
    'kg_ready 1',
    'garbage line',
    '',
  ].join('\n'));
  assert.equal(sum(s, 'kg_queue_chunks', { state: 'ready' }), 10);
  assert.equal(value(s, 'kg_queue_chunks', { provider: 'llm' }), 3);
  assert.equal(select(s, 'kg_worker_exits_total')[0].labels.provider, 'a"b');
  assert.equal(value(s, 'kg_ready'), 1);
  assert.equal(select(s, 'kg_chunk_duration_seconds_bucket').length, 0);
  assert.equal(value(s, 'absent'), undefined);
});

test('History gives per-minute rates over a sliding minute and restarts on a counter reset', () => {
  const h = new History();
  const t0 = 1_000_000;
  for (let i = 0; i <= 40; i++) h.add(t0 + i * 3000, { done: i * 30 }); // 30 per 3 s = 600/min
  const r = h.rates('done');
  assert.equal(r.length, 40);
  for (const p of r) assert.ok(Math.abs(p.v - 600) < 1e-9, `rate ${p.v}`);
  h.add(t0 + 41 * 3000, { done: 5 }); // the node restarted: its counter went back
  assert.equal(h.samples.length, 1);
  assert.deepEqual(h.rates('done'), []);
});

test('History keeps one hour', () => {
  const h = new History();
  for (let i = 0; i < 100; i++) h.add(i * 60_000, { done: i });
  assert.ok(h.samples[0].t >= 99 * 60_000 - 3_600_000);
  assert.equal(h.age(99 * 60_000), 60 * 60_000);
});

test('every label exists in English and Chinese, and placeholders are filled', () => {
  assert.deepEqual(missingKeys(), []);
  setLang('zh');
  assert.match(t('tasks.count', { count: 3 }), /3/);
  setLang('en');
  assert.equal(t('tasks.count', { count: 3 }), '3 shown');
});

test('the data-testid hooks of web/src are exactly those web/README.md lists', () => {
  const src = join(here, '..', 'src');
  const code = readdirSync(src).filter((f) => /\.(js|html)$/.test(f)).map((f) => readFileSync(join(src, f), 'utf8')).join('\n');
  const inSrc = new Set([
    ...[...code.matchAll(/data-testid="([a-z-]+)"/g)].map((m) => m[1]),
    ...[...code.matchAll(/testid: '([a-z-]+)'/g)].map((m) => m[1]),
    ...[...code.matchAll(/testid="([a-z-]+)"/g)].map((m) => m[1]),
  ]);
  // Built from a prefix: queue-queued ... queue-done.
  inSrc.delete('queue-');
  for (const c of ['queued', 'running', 'delayed', 'dead', 'done']) inSrc.add('queue-' + c);
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const documented = new Set();
  for (const line of readme.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const first = line.split('|')[1];
    for (const m of first.matchAll(/`([a-z-]+)`/g)) documented.add(m[1]);
  }
  const undocumented = [...inSrc].filter((x) => !documented.has(x)).sort();
  const missing = [...documented].filter((x) => !inSrc.has(x)).sort();
  assert.deepEqual({ undocumented, missing }, { undocumented: [], missing: [] });
});

// The values the server sends for each labelled family, as read in its sources:
// process states: src/supervisor/supervisor.cc Processes() ("starting" at spawn, "idle"/"busy"
// from the worker's status lines, "stopping" once a stop is sent, "backoff" and "quarantined"
// for a provider without a live process) and src/api/routes.cc ("unknown" on a down node);
// task statuses: src/api/routes.cc kStatuses (the list filter) and DeriveStatus; chunk states:
// src/api/routes.cc ChunkStateApiName (its fallback "unknown" included).
const SERVER_VALUES = {
  state: ['starting', 'idle', 'busy', 'stopping', 'backoff', 'quarantined', 'unknown'],
  status: ['queued', 'running', 'done', 'failed', 'cancelled'],
  'chunk.state': ['queued', 'running', 'done', 'dead', 'cancelled', 'unknown'],
};

test('every state, status and chunk state the server sends has a label in both languages', () => {
  const missing = [];
  for (const lang of ['en', 'zh']) {
    setLang(lang);
    for (const [family, values] of Object.entries(SERVER_VALUES)) {
      for (const v of values) if (t(family + '.' + v) === family + '.' + v) missing.push(`${lang}:${family}.${v}`);
    }
  }
  setLang('en');
  assert.deepEqual(missing, []);
  assert.deepEqual(missingKeys(), []);
});

test('the cluster view has a column for every process state the server sends', () => {
  const html = readFileSync(join(here, '..', 'src', 'index.html'), 'utf8');
  const code = readFileSync(join(here, '..', 'src', 'cluster.js'), 'utf8');
  const states = JSON.parse(code.match(/const STATES = (\[[^\]]*\])/)[1].replace(/'/g, '"'));
  const columns = [...html.matchAll(/<th class="num" data-i18n="state\.([a-z]+)"/g)].map((m) => m[1]);
  for (const s of SERVER_VALUES.state.filter((x) => x !== 'unknown')) {
    assert.ok(states.includes(s), `cluster.js STATES lacks ${s}`);
    assert.ok(columns.includes(s), `index.html has no column for ${s}`);
  }
});

// Graph explorer: search entities, open one, draw its neighbourhood with cytoscape (loaded on
// first use from cytoscape.min.js next to the page), click a node to expand it, export the
// drawing as JSON. The detail panel shows the provenance the API gives: per relation the
// sentence naming both ends (else its first chunk's text), and the entity's mention chunks.

import { get, ApiError } from './api.js';
import { h, setText, setData, syncRows, fmtNum } from './dom.js';
import { t } from './i18n.js';
import { report } from './ui.js';

let cy = null;
let cyLoading = null;
let opened = null; // the entity shown in the detail panel (the API's JSON)
let routeKey = null; // the key the route last opened (a new one clears the drawing)
const entities = new Map(); // key -> entity JSON (without neighbours)
const edges = new Map(); // id -> {source, target, type, weight, evidence, sentence, sentence_chunk, evidence_text}
const expanded = new Set();

const PALETTE = ['#1f6feb', '#2da44e', '#bf3989', '#d4a72c', '#8250df', '#cf222e', '#0a7ea4', '#7d5a00'];
function colour(type) {
  let n = 0;
  for (const ch of type || '') n = (n * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[n % PALETTE.length];
}

function section() {
  return document.querySelector('section[data-view="graph"]');
}

function loadCytoscape() {
  if (window.cytoscape) return Promise.resolve(window.cytoscape);
  if (!cyLoading) {
    cyLoading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = 'cytoscape.min.js';
      s.onload = () => resolve(window.cytoscape);
      s.onerror = () => {
        cyLoading = null;
        reject(new Error('cytoscape.min.js did not load'));
      };
      document.head.append(s);
    });
  }
  return cyLoading;
}

async function ensureCy() {
  if (cy) return cy;
  const cytoscape = await loadCytoscape();
  const container = section().querySelector('[data-testid="graph-canvas"]');
  cy = cytoscape({
    container,
    style: [
      { selector: 'node', style: { 'background-color': 'data(colour)', label: 'data(label)', 'font-size': 11, 'text-valign': 'bottom',
        'text-margin-y': 4, width: 'mapData(mentions, 1, 20, 18, 44)', height: 'mapData(mentions, 1, 20, 18, 44)',
        'text-wrap': 'ellipsis', 'text-max-width': 120 } },
      { selector: 'node.center', style: { 'border-width': 4, 'border-color': '#111826' } },
      { selector: 'node.expanded', style: { 'border-width': 2, 'border-color': '#5b6577' } },
      { selector: 'edge', style: { width: 1.5, 'line-color': '#9aa5b8', 'target-arrow-color': '#9aa5b8', 'target-arrow-shape': 'triangle',
        'curve-style': 'bezier', label: 'data(type)', 'font-size': 9, color: '#5b6577', 'text-rotation': 'autorotate' } },
    ],
  });
  cy.on('tap', 'node', (ev) => {
    const key = ev.target.id();
    history.replaceState(null, '', '#/graph/' + encodeURIComponent(key));
    routeKey = key;
    open(key, false).catch(report);
  });
  return cy;
}

// Adds an entity once; a new one starts at position (near the entity it was found from, so
// the layout moves the drawing little).
function addEntity(e, position) {
  const prev = entities.get(e.key);
  entities.set(e.key, { key: e.key, name: e.name, type: e.type, description: e.description, mentions: e.mentions });
  if (!prev) cy.add({ group: 'nodes', data: { id: e.key, label: e.name, colour: colour(e.type), mentions: e.mentions || 1 }, position });
}

// The text a relation row shows: its sentence, else the start of its first evidence chunk
// whose text the API sent, else nothing; with the chunk and document it comes from.
const EXCERPT = 300;
function supportOf(n, evidence) {
  const ev = evidence || {};
  if (n.sentence && n.sentence_chunk) {
    const c = ev[n.sentence_chunk] || {};
    return { source: 'sentence', text: n.sentence, chunk: n.sentence_chunk, doc: c.doc_id || '' };
  }
  for (const id of n.evidence || []) {
    const c = ev[id];
    if (!c) continue;
    const chars = [...c.text];
    const text = chars.length > EXCERPT ? chars.slice(0, EXCERPT).join('') + '…' : c.text;
    return { source: 'chunk', text, chunk: id, doc: c.doc_id };
  }
  return { source: 'none', text: '', chunk: '', doc: '' };
}

// The evidence text of a relation that the view `e` carries, merged into what the drawing has.
function evidenceText(n, evidence, prev) {
  const out = { ...(prev || {}) };
  for (const id of n.evidence || []) {
    if (evidence && evidence[id]) out[id] = evidence[id];
  }
  return out;
}

function addNeighbourhood(e) {
  addEntity(e, { x: 0, y: 0 });
  const at = cy.getElementById(e.key).position();
  const list = e.neighbours || [];
  list.forEach((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, list.length);
    addEntity(n.entity, { x: at.x + 150 * Math.cos(a), y: at.y + 150 * Math.sin(a) });
    const [source, target] = n.direction === 'in' ? [n.entity.key, e.key] : [e.key, n.entity.key];
    const id = `${source}|${n.type}|${target}`;
    const prev = edges.get(id);
    // Seen again from its other end: keep what was drawn, add the text this view brought.
    edges.set(id, {
      source, target, type: n.type, weight: n.weight, evidence: n.evidence || [],
      sentence: n.sentence || (prev && prev.sentence) || null,
      sentence_chunk: n.sentence ? n.sentence_chunk : (prev && prev.sentence_chunk) || null,
      evidence_text: evidenceText(n, e.evidence, prev && prev.evidence_text),
    });
    if (!prev) cy.add({ group: 'edges', data: { id, source, target, type: n.type } });
  });
  expanded.add(e.key);
}

function layout(center) {
  cy.nodes().removeClass('center');
  cy.getElementById(center).addClass('center');
  for (const k of expanded) cy.getElementById(k).addClass('expanded');
  cy.layout({ name: 'cose', animate: false, randomize: false, nodeRepulsion: () => 20000, idealEdgeLength: () => 110, nodeOverlap: 20, fit: true, padding: 24 }).run();
  const canvas = section().querySelector('[data-testid="graph-canvas"]');
  setData(canvas, { nodes: cy.nodes().length, edges: cy.edges().length, center });
  setText(section().querySelector('.graph-drawn'), t('graph.drawn', { nodes: cy.nodes().length, edges: cy.edges().length }));
}

function clearDrawing() {
  entities.clear();
  edges.clear();
  expanded.clear();
  if (cy) cy.elements().remove();
}

// Opens key: fetches it, adds its neighbourhood to the drawing (fresh: clears it first) and
// shows it in the detail panel. A name with several matches lists them instead.
async function open(key, fresh) {
  const s = section();
  let e;
  try {
    e = await get('/api/v1/graph/entities/' + encodeURIComponent(key));
  } catch (err) {
    if (err instanceof ApiError && err.status === 300 && err.body && err.body.candidates) {
      showResults(err.body.candidates.map((k) => ({ key: k, name: k, type: '' })), t('graph.candidates'));
      return;
    }
    throw err;
  }
  await ensureCy();
  if (fresh) clearDrawing();
  addNeighbourhood(e);
  layout(e.key);
  opened = e;
  renderDetail(s);
}

function renderDetail(s) {
  const e = opened;
  const d = s.querySelector('[data-testid="entity-detail"]');
  d.hidden = !e;
  if (!e) return;
  d.dataset.key = e.key;
  setText(d.querySelector('[data-testid="entity-name"]'), e.name);
  setText(d.querySelector('[data-testid="entity-type"]'), e.type || t('common.none'));
  setText(d.querySelector('[data-testid="entity-mentions"]'), fmtNum(e.mentions));
  setText(d.querySelector('[data-testid="entity-description"]'), e.description || '');
  syncRows(d.querySelector('.relation-rows'), e.neighbours || [], (n) => `${n.direction}|${n.type}|${n.entity.key}`,
    (n) => {
      const expand = h('button', { type: 'button', testid: 'relation-expand' }, t('graph.expand'));
      expand.addEventListener('click', () => {
        history.replaceState(null, '', '#/graph/' + encodeURIComponent(n.entity.key));
        routeKey = n.entity.key;
        open(n.entity.key, false).catch(report);
      });
      // Expand first: a keyboard user tabbing to it still sees the relation and the neighbour beside it.
      return h('tr', { testid: 'relation-row' }, h('td', {}, expand), h('td', { class: 'rel' }),
        h('td', { class: 'wrap' }, h('a', { href: '#/graph/' + encodeURIComponent(n.entity.key), class: 'nb' })),
        h('td', { class: 'support' }, h('q', { class: 'sentence', testid: 'relation-sentence' }), h('span', { class: 'source' })),
        h('td', { class: 'evidence', testid: 'relation-evidence' }));
    },
    (row, n) => {
      setData(row, { type: n.type, direction: n.direction, neighbour: n.entity.key });
      setText(row.querySelector('.rel'), (n.direction === 'in' ? '← ' : '→ ') + n.type);
      setText(row.querySelector('.nb'), `${n.entity.name} (${n.entity.type})`);
      const sup = supportOf(n, e.evidence);
      const q = row.querySelector('[data-testid="relation-sentence"]');
      setData(q, { source: sup.source, chunk: sup.chunk, doc: sup.doc });
      setText(q, sup.source === 'none' ? t('graph.no_text') : sup.text);
      setText(row.querySelector('.source'), sup.chunk ? t('graph.source', { chunk: sup.chunk, doc: sup.doc }) : '');
      setText(row.querySelector('.evidence'), (n.evidence || []).join(', '));
      const expand = row.querySelector('[data-testid="relation-expand"]');
      setText(expand, t('graph.expand'));
      expand.setAttribute('aria-label', t('graph.expand_named', { name: n.entity.name }));
    });
  renderMentions(d, e);
}

// The entity's mention chunks whose text the API sent, in a collapsible list (closed at first;
// kept open or closed across language switches and re-renders).
function renderMentions(d, e) {
  const box = d.querySelector('.mention-chunks');
  const ev = e.evidence || {};
  const list = (e.chunks || []).filter((id) => ev[id]).map((id) => ({ id, ...ev[id] }));
  box.hidden = list.length === 0;
  setText(box.querySelector('.mention-summary'), t('graph.mention_chunks', { count: fmtNum((e.chunks || []).length) }));
  const note = box.querySelector('.evidence-truncated');
  note.hidden = !e.evidence_truncated;
  setText(note, e.evidence_truncated ? t('graph.evidence_truncated', { count: fmtNum(Object.keys(ev).length) }) : '');
  syncRows(box.querySelector('.mention-list'), list, (c) => c.id,
    () => h('li', { testid: 'mention-chunk' }, h('span', { class: 'source' }), h('span', { class: 'text' })),
    (li, c) => {
      setData(li, { chunk: c.id, doc: c.doc_id });
      setText(li.querySelector('.source'), t('graph.source', { chunk: c.id, doc: c.doc_id }));
      setText(li.querySelector('.text'), c.text);
    });
}

function showResults(list, heading) {
  const s = section();
  const ul = s.querySelector('.graph-results');
  ul.setAttribute('aria-label', heading || t('graph.search'));
  s.querySelector('.graph-hint').hidden = list.length > 0;
  if (!list.length) setText(s.querySelector('.graph-hint'), t('graph.no_results'));
  syncRows(ul, list, (e) => e.key,
    (e) => h('li', { testid: 'graph-result' }, h('a', { href: '#/graph/' + encodeURIComponent(e.key) }, h('span', { class: 'name' }), h('span', { class: 'type' }))),
    (li, e) => {
      setData(li, { type: e.type || '' });
      setText(li.querySelector('.name'), e.name);
      setText(li.querySelector('.type'), e.type || '');
    });
}

async function search(q) {
  const r = await get('/api/v1/graph/entities?' + new URLSearchParams({ q, limit: '30' }));
  showResults(r.entities || []);
}

function exportView() {
  const data = {
    exported_at: new Date().toISOString(),
    center: opened ? opened.key : null,
    nodes: [...entities.values()].map((e) => {
      const n = cy ? cy.getElementById(e.key) : null;
      return { ...e, expanded: expanded.has(e.key), position: n && n.length ? n.position() : null };
    }),
    edges: [...edges.values()],
  };
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
  const a = h('a', { href: URL.createObjectURL(blob), download: 'kgflow-graph.json' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  section().querySelector('[data-testid="graph-export"]').dataset.exported = String(data.nodes.length + data.edges.length);
}

export const graphView = {
  enter() {
    // The canvas was hidden (size 0) while another view was shown.
    if (cy) requestAnimationFrame(() => cy.resize());
  },
  init() {
    const s = section();
    s.querySelector('.graph-search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const q = s.querySelector('.graph-search').value.trim();
      search(q).catch(report);
    });
    s.querySelector('[data-testid="graph-export"]').addEventListener('click', exportView);
    s.querySelector('.graph-fit').addEventListener('click', () => cy && cy.fit(undefined, 24));
  },
  // The graph does not change under the reader: the route's entity is loaded once, the
  // poll only keeps the banner honest (a cheap call).
  async refresh(s, params) {
    // The key as the address says now: expanding rewrites the address with replaceState (no
    // hashchange), so `params`, parsed at the last hashchange, may name the entity expanded from;
    // reading it would reopen that one and undo the expansion at the next poll.
    const here = location.hash.match(/^#\/?graph\/(.+)$/);
    const key = here ? decodeURIComponent(here[1]) : params.key;
    if (key && key !== routeKey) {
      routeKey = key;
      await open(key, true);
    } else if (!key && routeKey) {
      routeKey = null;
      opened = null;
      clearDrawing();
      renderDetail(s);
    }
    if (!params.key && !s.dataset.searched) {
      s.dataset.searched = '1';
      await search('');
    }
  },
  failed(s, err) {
    setText(s.querySelector('.graph-hint'), t('common.error', { message: err.message }));
    s.querySelector('.graph-hint').hidden = false;
  },
  relabel() {
    const s = section();
    if (opened) renderDetail(s);
    if (cy) setText(s.querySelector('.graph-drawn'), t('graph.drawn', { nodes: cy.nodes().length, edges: cy.edges().length }));
  },
};

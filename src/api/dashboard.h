#pragma once
// The dashboard at GET /: one static page that polls the JSON API.
namespace kg {
inline constexpr const char* kDashboardHtml = R"html(<!doctype html>
<html><head><meta charset="utf-8"><title>kgflow</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}h2{margin-top:1.5em}</style></head>
<body><h1>kgflow</h1>
<div id="error" style="color:#b00"></div>
<div id="stats"></div>
<h2>Workers</h2><table id="workers"></table>
<h2>Recent tasks</h2><table id="tasks"></table>
<script>
// With KG_API_TOKEN set every /api/ route needs the token: ask once, keep it for the tab.
let asked=false;
async function api(path){
  const h=()=>{const t=sessionStorage.getItem('kgToken');return t?{Authorization:'Bearer '+t}:{}};
  let r=await fetch(path,{headers:h()});
  if(r.status===401&&!asked){asked=true;const t=prompt('kgflow API token (KG_API_TOKEN)');if(t){sessionStorage.setItem('kgToken',t);asked=false;r=await fetch(path,{headers:h()});}}
  if(r.status===401)throw new Error('This node needs its API token (KG_API_TOKEN). Reload the page to enter it.');
  if(!r.ok)throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]))}
async function refresh(){
  try{
    const s=await api('/api/v1/graph/stats');
    document.getElementById('stats').textContent=`documents ${s.documents} · chunks ${s.chunks} · entities ${s.entities} · relations ${s.relations}`;
    const w=await api('/api/v1/workers');
    let h='<tr><th>node</th><th>pid</th><th>provider</th><th>state</th><th>RSS MB</th><th>CPU s</th><th>chunks</th><th>restarts</th><th>last exit</th></tr>';
    for(const n of w.nodes)for(const p of n.processes)h+=`<tr><td>${esc(n.name)}${n.stale?' (stale)':''}</td><td>${p.pid}</td><td>${esc(p.provider)}</td><td>${esc(p.state)}</td><td>${(p.rss_bytes/1048576).toFixed(1)}</td><td>${p.cpu_seconds.toFixed(2)}</td><td>${p.chunks_done}</td><td>${p.restarts}</td><td>${esc(p.last_exit)}</td></tr>`;
    document.getElementById('workers').innerHTML=h;
    const t=await api('/api/v1/tasks?limit=20');
    h='<tr><th>id</th><th>title</th><th>status</th><th>done</th><th>failed</th><th>total</th></tr>';
    for(const x of t.tasks)h+=`<tr><td>${esc(x.id)}</td><td>${esc(x.title)}</td><td>${esc(x.status)}</td><td>${x.chunks_done}</td><td>${x.chunks_failed}</td><td>${x.chunks_total}</td></tr>`;
    document.getElementById('tasks').innerHTML=h;
    document.getElementById('error').textContent='';
  }catch(e){document.getElementById('error').textContent=e.message}
}
refresh();setInterval(refresh,2000);
</script></body></html>
)html";
}  // namespace kg

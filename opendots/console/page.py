"""The console's HTML: rendered by the server (the page is complete without JavaScript), then kept current by a
small inline script fed by server-sent events. Nothing is loaded from elsewhere: the page works offline."""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from typing import Any

from opendots.console.views import rate_text

OPERATOR_STATUSES = (
    "attack-mitigation-in-progress",
    "attack-successfully-mitigated",
    "attack-stopped",
    "attack-exceeded-capability",
)

STYLE = """
body{font:14px system-ui,sans-serif;margin:1em 2em;color:#222}
h1{font-size:1.3em;margin:0 0 .5em} h2{font-size:1.1em;margin:1.2em 0 .3em} h3{font-size:1em;margin:.8em 0 .3em}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f3f3f3} td.n{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:6px 10px}
.bad{color:#a00;font-weight:600} .ok{color:#070} #live{float:right;font-size:.9em}
#notice{min-height:1.3em;margin:.5em 0} form.login{max-width:24em} input,select,button{font:inherit}
"""


def shell(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f'<link rel=icon href="data:,"><title>{escape(title)}</title><style>{STYLE}</style></head>'
        f"<body>{body}</body></html>"
    )


def login_page(message: str = "") -> str:
    notice = f"<p class=bad id=refused>{escape(message)}</p>" if message else ""
    return shell(
        "OpenDOTS console: log in",
        "<h1>OpenDOTS console</h1>"
        f"{notice}<form class=login method=post action=/login>"
        "<p><label>Token (the content of [dashboard] token_file)<br>"
        "<input type=password name=token id=token autocomplete=off required size=40></label></p>"
        "<p><button type=submit id=login>Log in</button></p></form>",
    )


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "never"
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def lifetime_text(seconds: int) -> str:
    return "indefinite" if seconds < 0 else f"{seconds} s"


def _cells(values: list[Any], numeric: tuple[int, ...] = ()) -> str:
    return "".join(f"<td{' class=n' if i in numeric else ''}>{escape(shown(v))}</td>" for i, v in enumerate(values))


def shown(value: Any) -> str:
    """A value as the page shows it: a counter no mitigator measured (None) is "-", not zero."""
    return "-" if value is None else str(value)


def client_rows(state: dict[str, Any]) -> str:
    rows = []
    for c in state["clients"]:
        values = [c["name"], c["cuid"], c["transport"], c["address"], c["health"], when(c["last-seen"])]
        rows.append(f"<tr>{_cells([*values, c['mitigations'], c['enforcing'], c['config']], (6, 7))}</tr>")
    return "".join(rows)


def mitigation_rows(state: dict[str, Any]) -> str:
    rows = []
    for m in state["mitigations"]:
        values = [
            m["client"],
            m["mid"],
            m["status"],
            m["targets"],
            lifetime_text(m["lifetime"]),
            m["pkts-dropped"],
            m["bytes-dropped"],
            rate_text(m["pkt-rate"], m["bit-rate"]),
            m["enforced-by"],
        ]
        key = escape(f"{m['cuid']}/{m['mid']}")
        chart = f"<td class=chart>{chart_svg(m['chart'])}</td>"
        rows.append(f'<tr data-key="{key}">{_cells(values, (1, 4, 5, 6, 7))}{chart}<td>{_action(m)}</td></tr>')
    return "".join(rows)


CHART_WIDTH, CHART_HEIGHT = 120, 24


def chart_svg(points: list[float]) -> str:
    """Packets dropped per second over the last minute or so, as a line (the page's script draws the same)."""
    if len(points) < 2:
        return ""
    top = max(points) or 1.0
    step = CHART_WIDTH / (len(points) - 1)
    line = " ".join(
        f"{i * step:.1f},{CHART_HEIGHT - 1 - (p / top) * (CHART_HEIGHT - 2):.1f}" for i, p in enumerate(points)
    )
    return (
        f'<svg width={CHART_WIDTH} height={CHART_HEIGHT} role=img aria-label="dropped packets per second">'
        f'<polyline fill=none stroke="#a33" stroke-width=1.5 points="{line}"/></svg>'
    )


def table_rows(rows: list[list[Any]]) -> str:
    """Rows of words (the data channel's and telemetry's views)."""
    return "".join(f"<tr>{_cells(row)}</tr>" for row in rows)


def _action(m: dict[str, Any]) -> str:
    options = "".join(f"<option>{label}</option>" for label in OPERATOR_STATUSES)
    data = f'data-cuid="{escape(m["cuid"])}" data-mid="{m["mid"]}"'
    return (
        f'<select class=report-status aria-label="status to report">{options}</select> '
        f"<button class=report {data}>Report</button> <button class=terminate {data}>Terminate</button>"
    )


def dashboard_page(state: dict[str, Any]) -> str:
    banner = (
        ""
        if state["enforced"]
        else "<p class=warn id=not-enforced>Nothing is enforced: only the logging mitigator runs, no traffic is "
        "dropped (configure nftables or bgp in [[mitigators]]).</p>"
    )
    return shell(
        "OpenDOTS console",
        "<span id=live>connecting…</span><h1>OpenDOTS console</h1>"
        f"{banner}<div id=notice role=status></div>"
        "<h2>Clients</h2><table><thead><tr><th>Name</th><th>CUID</th><th>Session</th><th>Address</th>"
        "<th>Heartbeat</th><th>Last seen</th><th>Mitigations</th><th>Enforcing</th>"
        "<th>Session configuration</th></tr></thead>"
        f"<tbody id=clients>{client_rows(state)}</tbody></table>"
        "<h2>Mitigations</h2><table><thead><tr><th>Client</th><th>mid</th><th>Status</th><th>Targets</th>"
        "<th>Lifetime left</th><th>Packets dropped</th><th>Bytes dropped</th><th>Drop rate</th><th>Enforced by</th>"
        "<th>Dropped packets/s</th>"
        "<th>Report a status (externally run mitigation) or terminate (status 6)</th></tr></thead>"
        f"<tbody id=mitigations>{mitigation_rows(state)}</tbody></table><p id=more>{_more(state)}</p>"
        f"{OPERATOR_FORMS}"
        "<h2>ACLs and aliases (data channel)</h2><table><thead><tr><th>Client</th><th>Kind</th><th>Name</th>"
        "<th>Activation</th><th>Content</th></tr></thead>"
        f"<tbody id=data-channel>{table_rows(state['data-channel'])}</tbody></table>"
        "<h2>Telemetry</h2><h3>Setups and baselines</h3><table><thead><tr><th>Client</th><th>tsid</th>"
        "<th>Setup</th><th>Values</th></tr></thead>"
        f"<tbody id=telemetry-setups>{table_rows(state['telemetry-setups'])}</tbody></table>"
        "<h3>Attacks reported (pre-or-ongoing-mitigation)</h3><table><thead><tr><th>Client</th><th>tmid</th>"
        "<th>Target</th><th>Total traffic</th><th>Attack traffic</th><th>Attack</th><th>Severity</th>"
        "<th>Top talkers</th><th>By protocol; by port</th></tr></thead>"
        f"<tbody id=telemetry-reports>{table_rows(state['telemetry-reports'])}</tbody></table>"
        f"<h2>Timeline (audit log)</h2><ul id=audit>{audit_items(state.get('audit', []))}</ul>"
        f"<script>const STATUSES={json.dumps(OPERATOR_STATUSES)};{SCRIPT}</script>",
    )


def audit_items(entries: list[dict[str, Any]]) -> str:
    return "".join(f"<li>{escape(audit_text(e))}</li>" for e in reversed(entries))


def audit_text(e: dict[str, Any]) -> str:
    return (
        f"{when(e['at'])} {e['who']}: {e['what']} {e['subject']}: {value_text(e['before'])} → {value_text(e['after'])}"
    )


def value_text(value: Any) -> str:
    """A before or after value of the audit log as an operator reads it (the page's script does the same)."""
    if value is None:
        return "-"
    if isinstance(value, dict) and "alt-server" in value:
        return f"{value['alt-server']} ({', '.join(value['records']) or '-'}) TTL {value['ttl']} s"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


OPERATOR_FORMS = (
    "<h2>Operator actions</h2><p id=redirection>Redirection: <span id=redirected>-</span></p>"
    "<p><label>Alternate server <input id=alt-server size=28 placeholder=dots2.example.net></label> "
    '<label>addresses <input id=alt-records size=28 placeholder="192.0.2.10, 2001:db8::10"></label> '
    "<label>TTL (s) <input id=alt-ttl size=8 inputmode=numeric></label> "
    "<button id=redirect>Redirect every client</button> <button id=redirect-clear>Stop redirecting</button></p>"
    "<p><button id=reload>Reload the client list</button> (server.toml's [[clients]], as SIGHUP does)</p>"
)


# Rows are filled with textContent only: nothing a client sent is ever parsed as HTML. A mitigation's row is kept
# (updated in place) while it lasts, so an operator's choice in its form survives the updates.
SCRIPT = """
const $=id=>document.getElementById(id),shown=v=>v==null?'-':String(v);
let received=0, state=null;
function when(t){return t==null?'never':new Date(t*1000).toISOString().replace('T',' ').slice(0,19)+' UTC';}
function row(values,numeric){const tr=document.createElement('tr');values.forEach((v,i)=>{
 const td=document.createElement('td');td.textContent=shown(v);if(numeric.includes(i))td.className='n';
 tr.appendChild(td);});return tr;}
function left(m){if(m.lifetime<0)return 'indefinite';
 return Math.max(0,Math.round(m.lifetime-(Date.now()/1000-received)))+' s';}
function action(m){const td=document.createElement('td'),sel=document.createElement('select'),
 b=document.createElement('button');sel.className='report-status';sel.setAttribute('aria-label','status to report');
 STATUSES.forEach(s=>{const o=document.createElement('option');o.textContent=s;sel.appendChild(o);});
 b.className='report';b.textContent='Report';b.dataset.cuid=m.cuid;b.dataset.mid=m.mid;
 const t=document.createElement('button');t.className='terminate';t.textContent='Terminate';
 t.dataset.cuid=m.cuid;t.dataset.mid=m.mid;td.append(sel,' ',b,' ',t);return td;}
function render(s){state=s;received=Date.now()/1000;
 $('clients').replaceChildren(...s.clients.map(c=>row([c.name,c.cuid,c.transport,c.address,c.health,
  when(c['last-seen']),c.mitigations,c.enforcing,c.config],[6,7])));
 for(const id of ['data-channel','telemetry-setups','telemetry-reports'])
  $(id).replaceChildren(...s[id].map(r=>row(r,[])));
 $('more').textContent=s['mitigations-total']>s.mitigations.length?
  'showing '+s.mitigations.length+' of '+s['mitigations-total']+' (opendots admin mitigations lists all)':'';
 const body=$('mitigations'),held=new Map([...body.children].map(tr=>[tr.dataset.key,tr]));
 body.replaceChildren(...s.mitigations.map(m=>{const key=m.cuid+'/'+m.mid,values=[m.client,m.mid,m.status,
  m.targets,left(m),m['pkts-dropped'],m['bytes-dropped'],rate(m),m['enforced-by']];let tr=held.get(key);
  if(!tr){tr=row(values,[1,4,5,6,7]);tr.dataset.key=key;const td=document.createElement('td');td.className='chart';
   tr.append(td,action(m));}
  else values.forEach((v,i)=>{if(tr.children[i].textContent!==shown(v))tr.children[i].textContent=shown(v);});
  chart(tr.children[9],m.chart);return tr;}));
 $('audit').replaceChildren(...s.audit.slice().reverse().map(e=>{const li=document.createElement('li');
  li.textContent=when(e.at)+' '+e.who+': '+e.what+' '+e.subject+': '+value(e.before)+' \\u2192 '+value(e.after);
  return li;}));
 $('redirected').textContent=s.redirection?value(s.redirection):'none';}
function si(v){for(const [f,p] of [[1e9,'G'],[1e6,'M'],[1e3,'k']])if(v>=f)return (v/f).toFixed(1)+' '+p;
 return v.toFixed(0)+' ';}
function rate(m){return m['pkt-rate']==null?'-':si(m['pkt-rate'])+'pkt/s, '+si(m['bit-rate'])+'bit/s';}
const SVG='http://www.w3.org/2000/svg',W=120,H=24;
function chart(td,points){if(points.length<2){td.replaceChildren();return;}
 const top=Math.max(...points)||1,step=W/(points.length-1),svg=document.createElementNS(SVG,'svg'),
  line=document.createElementNS(SVG,'polyline');svg.setAttribute('width',W);svg.setAttribute('height',H);
 svg.setAttribute('role','img');svg.setAttribute('aria-label','dropped packets per second');
 line.setAttribute('fill','none');line.setAttribute('stroke','#a33');line.setAttribute('stroke-width','1.5');
 line.setAttribute('points',points.map((p,i)=>(i*step).toFixed(1)+','+(H-1-p/top*(H-2)).toFixed(1)).join(' '));
 svg.appendChild(line);td.replaceChildren(svg);}
function value(v){if(v==null)return '-';if(Array.isArray(v))return v.join(', ')||'none';
 if(typeof v==='object'&&'alt-server' in v)return v['alt-server']+' ('+(v.records.join(', ')||'-')+') TTL '+v.ttl+' s';
 return String(v);}
async function act(op,body,question,done){if(!confirm(question))return;
 const r=await fetch('/action/'+op,{method:'POST',headers:{'Content-Type':'application/json'},
  body:JSON.stringify(body)});
 const answer=await r.json();$('notice').textContent=r.ok?done(answer):'Refused: '+answer.error;
 $('notice').className=r.ok?'ok':'bad';}
$('redirect').addEventListener('click',()=>{const body={'alt-server':$('alt-server').value.trim(),
 records:$('alt-records').value.split(/[ ,]+/).filter(Boolean)};
 if($('alt-ttl').value)body.ttl=Number($('alt-ttl').value);
 act('redirect',body,'Redirect every client to '+body['alt-server']+'? Their requests get 5.03 until you stop.',
  a=>'Redirecting to '+value(a.redirection));});
$('redirect-clear').addEventListener('click',()=>act('redirect-clear',{},'Stop redirecting clients?',
 ()=>'Redirection cleared'));
$('reload').addEventListener('click',()=>act('reload',{},'Read server.toml\\'s [[clients]] again?',
 a=>'Clients reloaded: added '+value(a.clients.added)+'; removed '+value(a.clients.removed)+'; changed '+
  value(a.clients.changed)));
setInterval(()=>{if(state)state.mitigations.forEach(m=>{
 const tr=document.querySelector('#mitigations tr[data-key="'+CSS.escape(m.cuid+'/'+m.mid)+'"]');
 if(tr)tr.children[4].textContent=left(m);});},1000);
$('mitigations').addEventListener('click',ev=>{const b=ev.target.closest('button.report,button.terminate');
 if(!b)return;const key=b.dataset.cuid+'/'+b.dataset.mid,named={cuid:b.dataset.cuid,mid:Number(b.dataset.mid)};
 if(b.className==='terminate'){act('terminate',named,'Terminate mitigation '+key+
  ' (status 6)? Its traffic is no longer mitigated.',a=>'Terminated '+key+' (was '+a.before+')');return;}
 const status=b.parentElement.querySelector('select').value;
 act('report-status',{...named,status:status},'Report '+status+' for mitigation '+key+'?',a=>'Reported '+a.status);});
function connect(){const events=new EventSource('/events');
 events.addEventListener('state',e=>{$('live').textContent='live';render(JSON.parse(e.data));});
 events.onerror=()=>{$('live').textContent='reconnecting…';};}
connect();
"""


def _more(state: dict[str, Any]) -> str:
    total, shown = state.get("mitigations-total", 0), len(state["mitigations"])
    return f"showing {shown} of {total} (opendots admin mitigations lists all)" if total > shown else ""

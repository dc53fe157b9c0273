'use strict';
// vmpooler dashboard: no library, charts drawn as SVG by hand.
//
// Live updates poll /status and /dashboard/running every POLL_MS while the
// tab is visible, rather than Server-Sent Events: /status is answered from
// in-memory counts (no database transaction), polling goes through any
// proxy, and it holds no connection open, where SSE would keep one per
// open tab against the server's max_connections cap and its write timeout,
// and would need its own fan-out and shutdown path in the server.
(() => {
  const POLL_MS = 3000, INFO_EVERY = 20, HISTORY_EVERY = 100;
  // The page may sit behind a proxy under a prefix: every URL is relative
  // to where /dashboard is.
  const base = location.pathname.replace(/\/dashboard\/?$/, '');
  const api = base + '/api/v1';
  const $ = id => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const TOKEN_KEY = 'vmpooler.token';

  const st = {token: localStorage.getItem(TOKEN_KEY) || '', info: null, status: null, running: null, history: null,
    days: 30, pool: '', sort: {key: 'remaining', dir: 1}, filter: '', polls: 0, timer: 0, offset: 0};

  // h builds an element; text is always set as text (hostnames and tags
  // come from users).
  function h(tag, props, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids) if (c != null) el.append(c);
    return el;
  }
  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (k === 'text') el.textContent = v; else el.setAttribute(k, v);
    for (const c of kids) if (c != null) el.append(c);
    return el;
  }
  // setText changes an element only when its text changes, so live
  // regions are not announced again on every poll.
  const setText = (id, v) => { const el = $(id); if (el.textContent !== String(v)) el.textContent = v; };

  async function get(path) {
    const headers = {Accept: 'application/json'};
    if (st.token) headers['X-AUTH-TOKEN'] = st.token;
    // credentials: omit, so a 401 never opens the browser's own login box.
    const r = await fetch(path, {headers, credentials: 'omit', cache: 'no-store'});
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    return {status: r.status, body};
  }

  // ---- formatting
  const nowServer = () => Date.now() + st.offset;
  function parseRuby(t) { // "2015-03-11 10:01:05 +0000"
    const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) ([+-]\d\d)(\d\d)$/.exec(t || '');
    return m ? Date.parse(`${m[1]}T${m[2]}${m[3]}:${m[4]}`) : NaN;
  }
  function ago(ms) {
    if (!isFinite(ms)) return 'never';
    const s = Math.max(0, Math.round((nowServer() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }
  function left(hours) {
    if (hours <= 0) return 'expired';
    const m = Math.round(hours * 60);
    if (m < 60) return m + ' min';
    if (m < 2880) return Math.floor(m / 60) + ' h ' + (m % 60) + ' min';
    return Math.floor(m / 1440) + ' d ' + Math.floor((m % 1440) / 60) + ' h';
  }
  const secs = v => v >= 100 ? Math.round(v) + '' : (Math.round(v * 10) / 10) + '';
  const clock = iso => new Date(iso).toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});

  // ---- live data
  function setLive(ok, text) {
    $('live-dot').className = 'dot ' + (ok ? 'on' : 'off');
    setText('live', text);
  }

  async function poll() {
    clearTimeout(st.timer);
    try {
      if (!st.info || st.polls % INFO_EVERY === 0) await loadInfo();
      if (!st.history || st.polls % HISTORY_EVERY === 0) loadHistory();
      const wantRun = st.info && (st.info.public || st.info.logged_in);
      const [sr, rr] = await Promise.all([get(api + '/status'), wantRun ? get(api + '/dashboard/running') : null]);
      if (sr.status !== 200 || !sr.body) throw new Error('/status answered ' + sr.status);
      st.status = sr.body;
      renderStatus();
      if (rr && rr.status === 200) st.running = rr.body;
      else st.running = null;
      renderRunning();
      st.polls++;
      setLive(true, 'Live · updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      setLive(false, 'Cannot reach the pooler (' + e.message + '); retrying');
    }
    if (!document.hidden) st.timer = setTimeout(poll, POLL_MS);
  }

  async function loadInfo() {
    const r = await get(api + '/dashboard/info');
    if (r.status !== 200 || !r.body) throw new Error('/dashboard/info answered ' + r.status);
    st.info = r.body;
    st.offset = Date.parse(r.body.now) - Date.now();
    if (st.token && !r.body.logged_in) { // the token was deleted or expired
      st.token = '';
      localStorage.removeItem(TOKEN_KEY);
    }
    const name = r.body.site_name || 'vmpooler';
    setText('site', name);
    document.title = name + ' dashboard';
    $('login-open').hidden = !r.body.auth || r.body.logged_in;
    $('logout').hidden = !r.body.logged_in;
    setText('who', r.body.logged_in ? 'Logged in as ' + r.body.user : '');
    setText('task-limit', r.body.task_limit);
    const sel = $('hist-pool'), names = r.body.pools.map(p => p.name);
    const have = [...sel.options].slice(1).map(o => o.value);
    if (have.join('\n') !== names.join('\n')) {
      sel.replaceChildren(h('option', {value: '', text: 'All pools'}), ...names.map(n => h('option', {value: n, text: n})));
      sel.value = names.includes(st.pool) ? st.pool : '';
    }
  }

  function renderStatus() {
    const S = st.status, q = S.queue || {}, cap = S.capacity || {};
    setText('cap-pct', cap.percent ?? '–');
    setText('cap-cur', cap.current ?? '–');
    setText('cap-total', cap.total ?? '–');
    $('cap-bar').style.width = Math.min(100, cap.percent || 0) + '%';
    for (const k of ['pending', 'cloning', 'booting', 'ready', 'running', 'completed']) setText('q-' + k, q[k] ?? '–');
    const limit = st.info ? st.info.task_limit : 0;
    setText('inflight', q.cloning ?? '–');
    $('inflight-bar').style.width = (limit ? Math.min(100, 100 * (q.cloning || 0) / limit) : 0) + '%';
    const vc = S.vcenter;
    const vcEl = $('vcenter');
    if (!vc) { vcEl.textContent = 'not reported'; vcEl.className = 'big muted'; setText('vcenter-err', 'this provider has no vCenter'); }
    else if (vc.connected) { vcEl.textContent = '✓ reachable'; vcEl.className = 'big ok'; setText('vcenter-err', ''); }
    else { vcEl.textContent = '✗ unreachable'; vcEl.className = 'big down'; setText('vcenter-err', vc.error || ''); }
    const msg = $('message'), ss = S.status || {};
    msg.hidden = ss.ok !== false;
    msg.className = 'message' + (vc && !vc.connected ? ' bad' : '');
    setText('message', ss.message || '');
    renderPools();
  }

  function renderPools() {
    const pools = (st.status && st.status.pools) || {};
    const tmpl = {};
    if (st.info) for (const p of st.info.pools) tmpl[p.name] = p.template;
    const rows = Object.entries(pools).map(([name, p]) => {
      const total = Math.max(p.max, p.ready + p.pending + p.running, 1);
      const pct = n => (100 * n / total) + '%';
      const bar = h('div', {class: 'bar', 'aria-hidden': 'true'});
      for (const k of ['ready', 'pending', 'running']) { const seg = h('span', {class: k}); seg.style.width = pct(p[k]); bar.append(seg); }
      const mark = h('span', {class: 'size'}); mark.style.left = 'calc(' + pct(p.max) + ' - 1px)'; bar.append(mark);
      const boot = parseRuby(p.lastBoot);
      return h('tr', {'data-pool': name},
        h('td', {class: 'name', text: name}, p.alias && p.alias.length ? h('span', {class: 'alias', text: 'alias: ' + p.alias.join(', ')}) : null),
        h('td', {class: 'tmpl', text: tmpl[name] || ''}),
        h('td', {class: 'barcol'}, h('span', {class: 'vh', text: `${p.ready} ready, ${p.pending} pending, ${p.running} running of size ${p.max}`}), bar),
        h('td', {class: 'num', 'data-k': 'ready', 'data-label': 'ready', text: p.ready}),
        h('td', {class: 'num', 'data-k': 'pending', 'data-label': 'pending', text: p.pending}),
        h('td', {class: 'num', 'data-k': 'running', 'data-label': 'running', text: p.running}),
        h('td', {class: 'num', 'data-k': 'size', 'data-label': 'size', text: p.max}),
        h('td', {class: 'wide', 'data-label': 'last boot', text: ago(boot), title: p.lastBoot || null}),
        h('td', {class: 'wide', 'data-label': 'health'}, ...badges(p)));
    });
    $('pools').tBodies[0].replaceChildren(...rows);
  }

  function badges(p) {
    const out = [];
    const b = (cls, text, title) => out.push(h('span', {class: 'badge ' + cls, text, title}));
    if (p.ready === 0 && p.max > 0) b('bad', 'empty');
    if (p.clone_failure) b('bad', 'clones failing · backing off until ' + clock(p.clone_failure.next_clone), p.clone_failure.reason);
    if (p.ready_failure) b('bad', 'ready checks failing · backing off until ' + clock(p.ready_failure.next_clone), p.ready_failure.reason);
    if (p.foreign) b('warn', p.foreign.count + ' foreign VM' + (p.foreign.count === 1 ? '' : 's'), (p.foreign.vms || []).join('\n'));
    if (p.waiting) b('warn', p.waiting.count + ' checkout' + (p.waiting.count === 1 ? '' : 's') + ' waiting · oldest ' + Math.round(p.waiting.oldest_seconds) + ' s');
    for (const n of p.notes || []) b('warn', 'note', n);
    if (!out.length) b('good', 'ok');
    return out;
  }

  // ---- running VMs and ondemand requests
  const sortVal = {
    hostname: v => v.hostname, pool: v => v.pool, user: v => v.user || '',
    tags: v => Object.entries(v.tags).map(([k, x]) => k + '=' + x).join(' '), remaining: v => v.remaining,
  };
  function renderRunning() {
    const R = st.running, note = $('run-note');
    const body = $('running').tBodies[0];
    if (!R) {
      const priv = st.info && st.info.auth && !st.info.public && !st.info.logged_in;
      note.hidden = false;
      note.textContent = priv ? 'Log in to see the running VMs (dashboard_public = false).' : 'The running list is unavailable.';
      body.replaceChildren();
      $('ondemand').tBodies[0].replaceChildren();
      setText('run-count', '');
      return;
    }
    note.hidden = R.users_shown;
    note.textContent = 'User names are shown to logged-in users only.';
    const f = st.filter.toLowerCase();
    const {key, dir} = st.sort;
    const rows = R.running.filter(v => !f || [v.hostname, v.pool, v.user || '', sortVal.tags(v)].join(' ').toLowerCase().includes(f));
    rows.sort((a, b) => {
      const x = sortVal[key](a), y = sortVal[key](b);
      return (x < y ? -1 : x > y ? 1 : 0) * dir || (a.hostname < b.hostname ? -1 : 1);
    });
    body.replaceChildren(...rows.map(v => h('tr', {'data-host': v.hostname},
      h('td', {text: v.hostname}), h('td', {text: v.pool}),
      h('td', {text: R.users_shown ? (v.user || '(anonymous)') : 'hidden', class: R.users_shown ? null : 'muted'}),
      h('td', {}, ...Object.entries(v.tags).map(([k, x]) => h('span', {class: 'badge', text: k + '=' + x}))),
      h('td', {text: left(v.remaining), title: 'ends ' + v.end_time}))));
    setText('run-count', `${rows.length} of ${R.count} running VM${R.count === 1 ? '' : 's'}` + (R.truncated ? ` (the ${R.running.length} ending soonest listed)` : ''));
    const od = R.ondemand.map(r => h('tr', {},
      h('td', {text: r.request_id}), h('td', {text: r.state}),
      h('td', {text: r.pools.map(p => `${p.pool} ${p.delivered}/${p.wanted}`).join(', ')}),
      h('td', {text: R.users_shown ? (r.user || '') : 'hidden', class: R.users_shown ? null : 'muted'}),
      h('td', {text: left(r.age / 3600)})));
    if (!od.length) od.push(h('tr', {}, h('td', {colspan: 5, class: 'muted', text: 'No pending on-demand requests.'})));
    $('ondemand').tBodies[0].replaceChildren(...od);
  }

  for (const th of $('running').tHead.rows[0].cells) {
    th.querySelector('button').addEventListener('click', () => {
      const key = th.dataset.key;
      st.sort = {key, dir: st.sort.key === key ? -st.sort.dir : 1};
      for (const c of $('running').tHead.rows[0].cells) c.removeAttribute('aria-sort');
      th.setAttribute('aria-sort', st.sort.dir > 0 ? 'ascending' : 'descending');
      renderRunning();
    });
  }
  $('run-filter').addEventListener('input', e => { st.filter = e.target.value; renderRunning(); });

  // ---- history and charts
  async function loadHistory() {
    const days = st.days;
    if (st.histBusy === days) return;
    st.histBusy = days;
    try {
      const r = await get(api + '/dashboard/history?days=' + days);
      if (r.status !== 200 || !r.body || days !== st.days) return;
      st.history = r.body;
      renderHistory();
    } catch (e) {
      // the next poll says the pooler is unreachable, and retries
    } finally {
      if (st.histBusy === days) st.histBusy = 0;
    }
  }

  function series(kind) {
    return st.history.days.map(d => (st.pool ? d[kind].pools[st.pool] : d[kind].all) || {count: 0, average: 0, min: 0, max: 0});
  }

  function renderHistory() {
    const H = st.history, dates = H.days.map(d => d.date);
    const clone = series('clone'), boot = series('boot');
    const sum = a => a.reduce((n, x) => n + x.count, 0);
    const overall = a => {
      const n = sum(a), w = a.reduce((t, x) => t + x.average * x.count, 0), used = a.filter(x => x.count);
      return n ? {n, avg: w / n, min: Math.min(...used.map(x => x.min)), max: Math.max(...used.map(x => x.max))} : {n: 0};
    };
    const oc = overall(clone), ob = overall(boot);
    const who = st.pool || 'all pools';
    const line = (o, what) => o.n ? `${o.n} ${what} (average ${secs(o.avg)} s, min ${secs(o.min)} s, max ${secs(o.max)} s)` : `no ${what}`;
    setText('hist-summary', `${H.from} to ${H.to}, ${who}: ${line(oc, 'clones')}; ${line(ob, 'boots')}.`);
    countChart($('chart-counts'), dates, clone, boot, `Clones and boots per day, ${who}, ${H.from} to ${H.to}: ${oc.n} clones and ${ob.n} boots in all, at most ${Math.max(0, ...clone.map(x => x.count))} clones on one day.`);
    rangeChart($('chart-clone'), dates, clone, `Clone duration per day, ${who}: ${line(oc, 'clones')}.`);
    rangeChart($('chart-boot'), dates, boot, `Boot duration per day, ${who}: ${line(ob, 'boots')}.`);
    $('chart-counts').dataset.total = oc.n;
    $('chart-counts').dataset.days = dates.length;
    const f = x => x.count ? [x.count, secs(x.average), secs(x.min), secs(x.max)] : [0, '–', '–', '–'];
    $('hist-table').querySelector('tbody').replaceChildren(...dates.map((d, i) =>
      h('tr', {}, h('td', {text: d}), ...[...f(clone[i]), ...f(boot[i])].map(v => h('td', {class: 'num', text: v})))));
    const tags = Object.entries(H.tags);
    $('tags').tBodies[0].replaceChildren(...(tags.length ? tags.map(([t, v]) => h('tr', {},
      h('td', {text: t}), h('td', {class: 'num', text: v.total}),
      h('td', {}, ...v.values.map(([val, n]) => h('span', {class: 'badge', text: `${val} · ${n}`}))))) :
      [h('tr', {}, h('td', {colspan: 3, class: 'muted', text: 'No tags in this range.'}))]));
  }

  const W = 420, HT = 190, L = 34, R = 6, T = 10, B = 22;
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v))), m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function frame(id, label, ymax, dates) {
    const svg = s('svg', {viewBox: `0 0 ${W} ${HT}`, role: 'img', 'aria-labelledby': id + '-t'},
      s('title', {id: id + '-t', text: label}));
    for (const f of [0, 0.5, 1]) {
      const y = T + (HT - T - B) * (1 - f);
      svg.append(s('line', {class: 'grid', x1: L, x2: W - R, y1: y, y2: y}),
        s('text', {x: L - 4, y: y + 4, 'text-anchor': 'end', text: secs(ymax * f)}));
    }
    const n = dates.length;
    for (const [i, anchor] of [[0, 'start'], [Math.floor((n - 1) / 2), 'middle'], [n - 1, 'end']]) {
      if (i < 0 || (n < 3 && anchor === 'middle')) continue;
      const x = anchor === 'start' ? L : anchor === 'end' ? W - R : L + (W - L - R) * (i + 0.5) / n;
      svg.append(s('text', {x, y: HT - 6, 'text-anchor': anchor, text: dates[i].slice(5)}));
    }
    return svg;
  }
  function countChart(fig, dates, clone, boot, label) {
    const ymax = niceMax(Math.max(1, ...clone.map(x => x.count), ...boot.map(x => x.count)));
    const svg = frame(fig.id, label, ymax, dates);
    const n = dates.length, slot = (W - L - R) / n, bw = Math.max(1, slot * 0.4);
    const yOf = v => T + (HT - T - B) * (1 - v / ymax);
    dates.forEach((d, i) => {
      [[clone[i], 's-clone', 'clones', 0], [boot[i], 's-boot', 'boots', 1]].forEach(([x, cls, what, k]) => {
        if (!x.count) return;
        const y = yOf(x.count);
        svg.append(s('rect', {class: cls, x: L + slot * i + slot * 0.1 + k * bw, y, width: bw, height: HT - B - y, 'data-date': d},
          s('title', {text: `${d}: ${x.count} ${what}`})));
      });
    });
    fig.querySelector('.svg').replaceChildren(svg,
      h('p', {class: 'key', 'aria-hidden': 'true'}, h('span', {class: 'sw running'}), 'clones', h('span', {class: 'sw ready'}), 'boots'));
  }
  function rangeChart(fig, dates, xs, label) {
    const ymax = niceMax(Math.max(1, ...xs.map(x => x.count ? x.max : 0)));
    const svg = frame(fig.id, label, ymax, dates);
    const n = dates.length, xOf = i => L + (W - L - R) * (i + 0.5) / n, yOf = v => T + (HT - T - B) * (1 - v / ymax);
    // Draw each run of days with data as its own band and line.
    let run = [];
    const flush = () => {
      if (!run.length) return;
      const top = run.map(i => `${xOf(i)},${yOf(xs[i].max)}`), bottom = run.slice().reverse().map(i => `${xOf(i)},${yOf(xs[i].min)}`);
      svg.append(s('polygon', {class: 'band', points: top.concat(bottom).join(' ')}),
        s('polyline', {class: 'avg', points: run.map(i => `${xOf(i)},${yOf(xs[i].average)}`).join(' ')}));
      run = [];
    };
    xs.forEach((x, i) => { if (x.count) run.push(i); else flush(); });
    flush();
    xs.forEach((x, i) => {
      if (x.count) svg.append(s('circle', {class: 'pt', cx: xOf(i), cy: yOf(x.average), r: 2.5},
        s('title', {text: `${dates[i]}: average ${secs(x.average)} s, min ${secs(x.min)} s, max ${secs(x.max)} s (${x.count})`})));
    });
    fig.querySelector('.svg').replaceChildren(svg);
  }

  for (const b of $('range').querySelectorAll('button')) {
    b.addEventListener('click', () => {
      st.days = +b.dataset.days;
      for (const o of $('range').querySelectorAll('button')) o.setAttribute('aria-pressed', o === b ? 'true' : 'false');
      loadHistory();
    });
  }
  $('hist-pool').addEventListener('change', e => { st.pool = e.target.value; if (st.history) renderHistory(); });

  // ---- login: a token from POST /api/v1/token, kept in local storage
  const dlg = $('login');
  $('login-open').addEventListener('click', () => { setText('login-err', ''); dlg.showModal(); });
  $('login-cancel').addEventListener('click', () => dlg.close());
  $('login-form').addEventListener('submit', async e => {
    e.preventDefault();
    const bytes = new TextEncoder().encode($('login-user').value + ':' + $('login-pass').value);
    const basic = btoa(String.fromCharCode(...bytes));
    try {
      const r = await fetch(api + '/token', {method: 'POST', credentials: 'omit', headers: {Authorization: 'Basic ' + basic}});
      const body = await r.json();
      if (!r.ok || !body.token) { setText('login-err', body.error || 'Login failed.'); return; }
      st.token = body.token;
      localStorage.setItem(TOKEN_KEY, st.token);
      $('login-pass').value = '';
      dlg.close();
      st.info = null;
      poll();
    } catch (err) { setText('login-err', 'Login failed: ' + err.message); }
  });
  $('logout').addEventListener('click', () => {
    st.token = '';
    localStorage.removeItem(TOKEN_KEY);
    st.info = null;
    poll();
  });

  $('l-pool').href = base + '/dashboard/stats/vmpooler/pool';
  $('l-running').href = base + '/dashboard/stats/vmpooler/running';
  $('l-status').href = api + '/status';
  $('l-summary').href = api + '/summary';
  document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });
  poll();
})();

// SPDX-License-Identifier: Apache-2.0
//
// The status page's only script: the Content-Security-Policy forbids
// inline ones. It polls the admin API every two seconds and redraws.
// Everything shown is set with textContent, never parsed as HTML: tags,
// gateway names and health reasons come from operators and checks.
//
// URLs are relative so that the page works behind a reverse proxy that
// serves it under a prefix.
'use strict';

(function () {
  const POLL_MS = 2000;
  const FETCH_TIMEOUT_MS = 5000;
  const MAX_EVENTS = 50;
  // A gateway reports every few seconds; older than this, it may be gone.
  const STALE_REPORT_MS = 15000;

  const state = {
    status: null,
    activity: null,
    refreshed: null, // Date of the last successful status fetch
    skewMs: 0, // the gateway's clock minus ours, from activity.now
  };

  function $(id) {
    return document.getElementById(id);
  }

  // el builds an element. props: {cls, text, title, data: {k: v}}.
  function el(tag, props, children) {
    const e = document.createElement(tag);
    if (props) {
      if (props.cls) e.className = props.cls;
      if (props.text !== undefined) e.textContent = String(props.text);
      if (props.title) e.title = props.title;
      if (props.data) {
        for (const k of Object.keys(props.data)) e.dataset[k] = props.data[k];
      }
    }
    for (const c of children || []) {
      if (c) e.appendChild(c);
    }
    return e;
  }

  function svgEl(svg, tag, attrs) {
    // The namespace of the page's own <svg>: no namespace URL to spell here.
    const e = document.createElementNS(svg.namespaceURI, tag);
    for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    return e;
  }

  // parseTime returns milliseconds, or NaN for a missing or zero time
  // (Go's zero time.Time is year 1).
  function parseTime(s) {
    if (!s) return NaN;
    const t = Date.parse(s);
    return t > Date.UTC(2000, 0, 1) ? t : NaN;
  }

  function serverNow() {
    return Date.now() + state.skewMs;
  }

  function ago(ms) {
    if (isNaN(ms)) return '';
    const s = Math.max(0, Math.round((serverNow() - ms) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 86400) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  }

  function pad(n) {
    return n < 10 ? '0' + n : String(n);
  }

  function clock(ms) {
    const d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  // stamp is a local time, with the date when it is not today.
  function stamp(ms) {
    if (isNaN(ms)) return '—';
    const d = new Date(ms);
    if (d.toDateString() === new Date().toDateString()) return clock(ms);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + clock(ms);
  }

  function timeEl(ms, cls) {
    const t = el('time', { cls: cls, text: stamp(ms) });
    if (!isNaN(ms)) t.dateTime = new Date(ms).toISOString();
    return t;
  }

  function sum(obj) {
    let n = 0;
    for (const k of Object.keys(obj || {})) n += Number(obj[k]) || 0;
    return n;
  }

  // getJSON fetches a path of the admin API with the browser's own
  // credentials (the Basic or Bearer token it opened the page with).
  // A 404 is {missing: true}: an endpoint this gateway does not have.
  async function getJSON(path) {
    const ctl = new AbortController();
    const timer = setTimeout(function () { ctl.abort(); }, FETCH_TIMEOUT_MS);
    let r;
    try {
      r = await fetch(path, {
        credentials: 'same-origin',
        cache: 'no-store',
        headers: { Accept: 'application/json' },
        signal: ctl.signal,
      });
    } catch (e) {
      throw new Error(path + ': ' + (e.name === 'AbortError' ? 'no answer within ' + FETCH_TIMEOUT_MS / 1000 + ' s' : 'the gateway cannot be reached'));
    } finally {
      clearTimeout(timer);
    }
    if (r.status === 404) return { missing: true };
    if (!r.ok) {
      let msg = r.status + ' ' + r.statusText;
      try {
        const body = await r.json();
        if (body && body.error) msg += ': ' + body.error;
      } catch (_) {
        // Not JSON: the status line says enough.
      }
      if (r.status === 401) msg += ' (reload the page to sign in again)';
      throw new Error(path + ': ' + msg);
    }
    return { data: await r.json() };
  }

  async function refresh() {
    const received = Date.now();
    const [st, act] = await Promise.allSettled([getJSON('api/v1/status'), getJSON('api/v1/activity')]);
    const errors = [];
    if (st.status === 'fulfilled' && st.value.data) {
      state.status = st.value.data;
      state.refreshed = new Date();
    } else {
      errors.push(st.status === 'rejected' ? st.reason.message : 'api/v1/status: 404 Not Found');
    }
    // Failures keep the last data on screen; only a gateway without the
    // endpoint (404) drops it.
    if (act.status === 'fulfilled') {
      state.activity = act.value.missing ? null : act.value.data;
      const now = state.activity ? parseTime(state.activity.now) : NaN;
      if (!isNaN(now)) state.skewMs = now - received;
    } else {
      errors.push(act.reason.message);
    }
    showError(errors.join('; '));
    if (state.status) {
      render();
      document.body.dataset.loaded = 'true';
    }
  }

  function showError(msg) {
    const b = $('error');
    if (!msg) {
      b.hidden = true;
      b.textContent = '';
      return;
    }
    let text = 'Refresh failed: ' + msg + '.';
    if (state.refreshed) text += ' Showing the data of ' + clock(state.refreshed.getTime()) + '.';
    b.textContent = text;
    b.hidden = false;
  }

  function selfGateway() {
    const gws = (state.status && state.status.gateways) || [];
    return gws.find(function (g) { return g.self; }) || null;
  }

  function render() {
    renderHeader();
    renderHosts();
    renderGateways();
    renderLogins();
    renderEvents();
  }

  function renderHeader() {
    const self = selfGateway();
    const a = state.activity;
    const name = (a && a.gateway) || (self && self.name) || 'maildirector';
    $('gateway-name').textContent = name;
    document.title = name + ' — maildirector status';
    $('fenced').hidden = !((a && a.fenced) || (self && self.fenced));
    tick();
  }

  // tick keeps "n s ago" of the last refresh current between polls.
  function tick() {
    if (!state.refreshed) return;
    const t = $('refreshed');
    t.textContent = clock(state.refreshed.getTime());
    t.dateTime = state.refreshed.toISOString();
    const s = Math.round((Date.now() - state.refreshed.getTime()) / 1000);
    $('refreshed-age').textContent = '(' + s + ' s ago)';
  }

  function hostState(h) {
    if (h.down) return 'down';
    if (h.drained) return 'drained';
    return 'up';
  }

  function stateLabel(h) {
    if (h.down) return h.down_by ? 'down (by ' + h.down_by + ')' : 'down';
    if (h.drained) return 'drained (was ' + (h.drained_from || 0) + ' vhosts)';
    return 'up';
  }

  function renderHosts() {
    const hosts = state.status.hosts || [];
    const box = $('hosts');
    let total = 0;
    for (const h of hosts) total += h.users || 0;
    const cards = hosts.map(function (h) { return hostCard(h, total); });
    if (cards.length === 0) cards.push(el('p', { cls: 'muted', text: 'No backends.' }));
    box.replaceChildren.apply(box, cards);
  }

  function hostCard(h, totalUsers) {
    const st = hostState(h);
    const users = h.users || 0;
    const sessions = h.sessions || {};
    const per = Object.keys(sessions).sort().map(function (g) { return g + ': ' + sessions[g]; });
    const share = totalUsers > 0 ? (100 * users) / totalUsers : 0;

    const fill = el('span', { cls: 'fill' });
    // The CSSOM, not a style attribute: CSP allows it without 'unsafe-inline'.
    fill.style.width = share.toFixed(1) + '%';
    const bar = el('div', { cls: 'bar', title: share.toFixed(0) + '% of the assigned users' }, [fill]);

    const health = h.health || [];
    const last = health.length ? health[health.length - 1] : null;
    let healthText = 'no transition';
    if (last) {
      healthText = (last.up ? 'up' : 'down') + ' ' + ago(parseTime(last.at)) + (last.reason ? ': ' + last.reason : '');
    }
    const changedAt = parseTime(h.changed_at);
    const changed = isNaN(changedAt) ? '—' : ago(changedAt) + (h.changed_by ? ' by ' + h.changed_by : '');

    const facts = el('dl', { cls: 'facts' }, [
      el('div', null, [el('dt', { text: 'users' }), el('dd', { cls: 'users', text: users })]),
      el('div', null, [
        el('dt', { text: 'sessions' }),
        el('dd', { cls: 'sessions', text: sum(sessions), title: per.join(', ') || 'no sessions' }),
        per.length ? el('dd', { cls: 'per-gateway', text: per.join(' · ') }) : null,
      ]),
      el('div', null, [el('dt', { text: 'vhosts' }), el('dd', { cls: 'vhosts', text: h.vhosts || 0 })]),
      el('div', { cls: 'wide' }, [el('dt', { text: 'last health' }), el('dd', { cls: 'health', text: healthText })]),
      el('div', { cls: 'wide' }, [el('dt', { text: 'changed' }), el('dd', { cls: 'changed', text: changed, title: stamp(changedAt) })]),
    ]);

    return el('article', { cls: 'host state-' + st, data: { host: h.ip, state: st } }, [
      el('div', { cls: 'host-head' }, [
        el('span', { cls: 'ip', text: h.ip }),
        h.tag ? el('span', { cls: 'tag', text: '@' + h.tag }) : null,
        el('span', { cls: 'state', text: stateLabel(h) }),
      ]),
      el('div', { cls: 'share' }, [bar, el('span', { cls: 'share-text', text: share.toFixed(0) + '%' })]),
      facts,
    ]);
  }

  function renderGateways() {
    const gws = (state.status.gateways || []).slice().sort(function (a, b) {
      if (a.self !== b.self) return a.self ? -1 : 1;
      return String(a.name).localeCompare(String(b.name));
    });
    const items = gws.map(function (g) {
      const at = parseTime(g.at);
      const stale = !isNaN(at) && serverNow() - at > STALE_REPORT_MS;
      const badges = [];
      if (g.self) badges.push(el('span', { cls: 'badge self', text: 'this gateway' }));
      if (g.fenced) badges.push(el('span', { cls: 'badge fenced', text: 'fenced' }));
      if (stale) badges.push(el('span', { cls: 'badge stale', text: 'no recent report' }));
      const counts = sum(g.sessions) + ' sessions, ' + sum(g.deliveries) + ' deliveries, ' + sum(g.users) + ' users';
      return el('li', { cls: 'gateway' + (stale ? ' stale' : ''), data: { gateway: g.name } }, [
        el('div', { cls: 'gw-head' }, [el('span', { cls: 'gw-name', text: g.name })].concat(badges)),
        el('div', { cls: 'muted' }, [
          el('span', { cls: 'gw-sessions', text: counts }),
          el('span', { text: ' · reported ' + (isNaN(at) ? 'never' : ago(at)) }),
        ]),
      ]);
    });
    if (items.length === 0) items.push(el('li', { cls: 'muted', text: 'No gateway reports.' }));
    const list = $('gateway-list');
    list.replaceChildren.apply(list, items);
  }

  function failures(b) {
    return (b.auth_failed || 0) + (b.tempfail || 0) + (b.limit || 0) + (b.aborted || 0);
  }

  function renderLogins() {
    const a = state.activity;
    const section = $('logins');
    if (!a || !Array.isArray(a.logins)) {
      section.hidden = true;
      return;
    }
    section.hidden = false;
    const buckets = a.logins;
    const svg = $('logins-chart');
    const W = 900;
    const H = 120;
    let peak = 1;
    for (const b of buckets) peak = Math.max(peak, (b.ok || 0) + failures(b));
    const step = W / Math.max(buckets.length, 1);
    const shapes = [svgEl(svg, 'line', { x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5, class: 'baseline' })];
    buckets.forEach(function (b, i) {
      const ok = b.ok || 0;
      const bad = failures(b);
      const okH = (ok / peak) * H;
      const badH = (bad / peak) * H;
      const g = svgEl(svg, 'g', {});
      const title = svgEl(svg, 'title', {});
      title.textContent = clock(parseTime(b.at)) + ': ' + ok + ' ok, ' + bad + ' failed';
      g.appendChild(title);
      // Failures stacked on top of the successes, one column per bucket.
      if (okH > 0) g.appendChild(svgEl(svg, 'rect', { x: i * step, y: H - okH, width: step * 0.85, height: okH, class: 'ok' }));
      if (badH > 0) g.appendChild(svgEl(svg, 'rect', { x: i * step, y: H - okH - badH, width: step * 0.85, height: badH, class: 'fail' }));
      shapes.push(g);
    });
    svg.replaceChildren.apply(svg, shapes);
    $('logins-peak').textContent = 'peak ' + peak + ' / 10 s';
    $('logins-from').textContent = buckets.length ? clock(parseTime(buckets[0].at)) : '';
    $('logins-to').textContent = buckets.length ? clock(parseTime(buckets[buckets.length - 1].at)) : '';

    // The last minute: the buckets that start less than 60 s before now.
    const now = parseTime(a.now);
    const since = (isNaN(now) ? serverNow() : now) - 60000;
    const t = { ok: 0, auth_failed: 0, tempfail: 0, limit: 0, aborted: 0 };
    for (const b of buckets) {
      if (parseTime(b.at) < since) continue;
      for (const k of Object.keys(t)) t[k] += b[k] || 0;
    }
    $('logins-ok').textContent = t.ok;
    $('logins-failed').textContent = failures(t);
    $('logins-detail').textContent = failures(t)
      ? '(wrong password ' + t.auth_failed + ', temporary failure ' + t.tempfail + ', limit ' + t.limit + ', aborted ' + t.aborted + ')'
      : '';
  }

  const KINDS = ['host', 'health', 'move', 'drain', 'fence'];

  // mergedEvents joins the gateway's event feed with the health
  // transitions the store keeps per backend (all there is without the
  // feed), newest first.
  function mergedEvents() {
    const out = [];
    const a = state.activity;
    for (const e of (a && Array.isArray(a.events) ? a.events : [])) {
      out.push({ at: parseTime(e.at), kind: e.kind || '', host: e.host || '', text: e.text || '' });
    }
    const fromFeed = out.length;
    for (const h of state.status.hosts || []) {
      for (const ev of h.health || []) {
        const at = parseTime(ev.at);
        // The feed may carry the same transition: show it once.
        const dup = out.slice(0, fromFeed).some(function (e) {
          return e.kind === 'health' && e.host === h.ip && Math.abs(e.at - at) < 2000;
        });
        if (dup) continue;
        out.push({ at: at, kind: 'health', host: h.ip, text: (ev.up ? 'up' : 'down') + (ev.reason ? ': ' + ev.reason : '') });
      }
    }
    out.sort(function (x, y) { return (y.at || 0) - (x.at || 0); });
    return out.slice(0, MAX_EVENTS);
  }

  function renderEvents() {
    const events = mergedEvents();
    const items = events.map(function (e) {
      const kind = KINDS.indexOf(e.kind) >= 0 ? e.kind : 'other';
      return el('li', { cls: 'event kind-' + kind }, [
        timeEl(e.at, 'when'),
        el('span', { cls: 'badge kind', text: e.kind || 'event' }),
        e.host ? el('span', { cls: 'ev-host', text: e.host }) : null,
        el('span', { cls: 'ev-text', text: e.text }),
      ]);
    });
    const list = $('event-list');
    list.replaceChildren.apply(list, items);
    $('no-events').hidden = items.length > 0;
  }

  function loop() {
    refresh()
      .catch(function (e) { showError(String(e && e.message ? e.message : e)); })
      .finally(function () { setTimeout(loop, POLL_MS); });
  }

  function start() {
    loop();
    setInterval(tick, 1000);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
